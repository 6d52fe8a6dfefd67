/**
 * A tiny scalar-expression IR. Every elementwise op builds one of these trees; a backend renders a
 * tree once into a loop body (render/js.ts for the CPU, render/wgsl.ts for WebGPU) and caches the
 * kernel by `key`. Lazy elementwise chains are just bigger trees, which is what makes fusion free.
 */

/** Element types: `f32` (default), `i32` (indices), `bool` (masks), `f64` (CPU only, for checks). */
export type DType = "f32" | "i32" | "bool" | "f64";

/** Ops of one operand: arithmetic and math functions, and `not` (which yields bool). */
export type UnaryOp =
  | ("neg" | "exp" | "log" | "sqrt" | "rsqrt" | "abs" | "tanh" | "sigmoid" | "relu" | "floor")
  | "not";

/** Ops of two operands: arithmetic, then the comparisons and `and`/`or`, which yield bool. */
export type BinaryOp =
  | ("add" | "sub" | "mul" | "div" | "pow" | "max" | "min")
  | ("lt" | "le" | "gt" | "ge" | "eq" | "ne" | "and" | "or");

/** One node of a scalar expression. Every node knows its dtype (so renderers need no inference)
 * and lists its operands in `src`: none for the leaves `load`, `const` and `idx`, one for unary
 * ops and `cast`, two for binary ops, and `[cond, a, b]` for `where`. */
export type Exp =
  | { op: "load"; dtype: DType; src: Exp[]; i: number }
  | { op: "const"; dtype: DType; src: Exp[]; v: number }
  | { op: "idx"; dtype: "i32"; src: Exp[]; axis: number }
  | { op: UnaryOp | BinaryOp | "cast" | "where"; dtype: DType; src: Exp[] };

/** Ops of the inner nodes: each computes its value from its operands. */
export type Op = Exclude<Exp["op"], "load" | "const" | "idx">;

/** The leaves a kernel supplies values for: input reads and output indices (constants render
 * themselves). */
export type Leaf = Extract<Exp, { op: "load" | "idx" }>;

/** Ops whose result is bool whatever the operands. */
export const COMPARE: ReadonlySet<string> = new Set(["lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not"]);

/** Read input `i` at the current index. */
export const load = (i: number, dtype: DType): Exp => ({ op: "load", dtype, src: [], i });
/** A constant. */
export const cnst = (v: number, dtype: DType): Exp => ({ op: "const", dtype, src: [], v });
/** The current output index along `axis`, as i32. */
export const idx = (axis: number): Exp => ({ op: "idx", dtype: "i32", src: [], axis });
/** Convert to another dtype (no-op when it already is). */
export const cast = (a: Exp, dtype: DType): Exp => a.dtype === dtype ? a : { op: "cast", dtype, src: [a] };
/** Apply a unary op. */
export const un = (op: UnaryOp, a: Exp): Exp => ({ op, dtype: op === "not" ? "bool" : a.dtype, src: [a] });
/** Apply a binary op; both operands must already share a dtype. */
export function bin(op: BinaryOp, a: Exp, b: Exp): Exp {
  return { op, dtype: COMPARE.has(op) ? "bool" : a.dtype, src: [a, b] };
}
/** `c ? a : b` elementwise. */
export const where = (c: Exp, a: Exp, b: Exp): Exp => ({ op: "where", dtype: a.dtype, src: [c, a, b] });

/** A stable string for caching kernels built from this tree. */
export function key(e: Exp): string {
  if (e.op === "load") return `$${e.i}:${e.dtype}`;
  if (e.op === "const") return `${e.v}:${e.dtype}`;
  if (e.op === "idx") return `#${e.axis}`;
  return `${e.op}:${e.dtype}(${e.src.map(key).join(",")})`;
}

/** Number of nodes in the tree (fusion stops before trees grow too large). */
export const size = (e: Exp): number => e.src.reduce((n, s) => n + size(s), 1);

/** Rebuild a tree bottom-up, letting `f` replace leaves (`load`/`idx`). */
export function mapLeaves(e: Exp, f: (leaf: Exp) => Exp): Exp {
  if (e.op === "load" || e.op === "idx") return f(e);
  return e.src.length ? { ...e, src: e.src.map((s) => mapLeaves(s, f)) } : e;
}
