/**
 * A tiny scalar-expression IR. Every elementwise op builds one of these trees; a backend renders a
 * tree once into a loop body (JavaScript on the CPU, WGSL on WebGPU) and caches it by `key`. Lazy
 * elementwise chains are just bigger trees, which is what makes fusion free.
 */

/** Element types: `f32` (default), `i32` (indices), `bool` (masks), `f64` (CPU only, for checks). */
export type DType = "f32" | "i32" | "bool" | "f64";

/** Ops of one operand. */
export type UnaryOp =
  | "neg"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "abs"
  | "tanh"
  | "sigmoid"
  | "relu"
  | "floor"
  | "not";

/** Ops of two operands; comparisons and `and`/`or` yield bool. */
export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "max"
  | "min"
  | "lt"
  | "le"
  | "gt"
  | "ge"
  | "eq"
  | "ne"
  | "and"
  | "or";

/** One node of a scalar expression; every node knows its dtype so renderers need no inference. */
export type Exp =
  | { op: "load"; dtype: DType; i: number }
  | { op: "const"; dtype: DType; v: number }
  | { op: "idx"; dtype: "i32"; axis: number }
  | { op: UnaryOp; dtype: DType; a: Exp }
  | { op: BinaryOp; dtype: DType; a: Exp; b: Exp }
  | { op: "where"; dtype: DType; c: Exp; a: Exp; b: Exp }
  | { op: "cast"; dtype: DType; a: Exp };

/** Ops whose result is bool whatever the operands. */
export const COMPARE: ReadonlySet<string> = new Set([
  "lt",
  "le",
  "gt",
  "ge",
  "eq",
  "ne",
  "and",
  "or",
  "not",
]);

/** Read input `i` at the current index. */
export const load = (i: number, dtype: DType): Exp => ({ op: "load", dtype, i });
/** A constant. */
export const cnst = (v: number, dtype: DType): Exp => ({ op: "const", dtype, v });
/** The current output index along `axis`, as i32. */
export const idx = (axis: number): Exp => ({ op: "idx", dtype: "i32", axis });
/** Convert to another dtype (no-op when it already is). */
export const cast = (a: Exp, dtype: DType): Exp => a.dtype === dtype ? a : { op: "cast", dtype, a };
/** Apply a unary op. */
export const un = (op: UnaryOp, a: Exp): Exp => ({ op, dtype: op === "not" ? "bool" : a.dtype, a });
/** Apply a binary op; both operands must already share a dtype. */
export const bin = (op: BinaryOp, a: Exp, b: Exp): Exp => ({
  op,
  dtype: COMPARE.has(op) ? "bool" : a.dtype,
  a,
  b,
});
/** `c ? a : b` elementwise. */
export const where = (c: Exp, a: Exp, b: Exp): Exp => ({ op: "where", dtype: a.dtype, c, a, b });

/** A stable string for caching kernels built from this tree. */
export function key(e: Exp): string {
  switch (e.op) {
    case "load":
      return `$${e.i}:${e.dtype}`;
    case "const":
      return `${e.v}:${e.dtype}`;
    case "idx":
      return `#${e.axis}`;
    case "where":
      return `where(${key(e.c)},${key(e.a)},${key(e.b)})`;
    case "cast":
      return `${e.dtype}(${key(e.a)})`;
    default:
      return "b" in e ? `${e.op}(${key(e.a)},${key(e.b)})` : `${e.op}(${key(e.a)})`;
  }
}

/** Number of nodes in the tree (fusion stops before trees grow too large). */
export function size(e: Exp): number {
  switch (e.op) {
    case "load":
    case "const":
    case "idx":
      return 1;
    case "where":
      return 1 + size(e.c) + size(e.a) + size(e.b);
    default:
      return 1 + size(e.a) + ("b" in e ? size(e.b) : 0);
  }
}

/** Rebuild a tree bottom-up, letting `f` replace leaves (`load`/`idx`). */
export function mapLeaves(e: Exp, f: (leaf: Exp) => Exp): Exp {
  switch (e.op) {
    case "load":
    case "idx":
      return f(e);
    case "const":
      return e;
    case "where":
      return { ...e, c: mapLeaves(e.c, f), a: mapLeaves(e.a, f), b: mapLeaves(e.b, f) };
    default:
      return "b" in e ? { ...e, a: mapLeaves(e.a, f), b: mapLeaves(e.b, f) } : { ...e, a: mapLeaves(e.a, f) };
  }
}
