/**
 * The WebAssembly SIMD renderer: an f32 `Exp` as a wasm function that computes four elements at a
 * time, for the CPU backend's maps and reductions over trailing axes or (four output columns at a
 * time, row after row) over leading ones. Inputs are f32, bool (0/1 bytes, as lane masks) and output
 * indices (`idx`, read from an arange, with i32 arithmetic on small integers in f32 lanes); views must
 * read the columns with stride 1 or 0, and the dims before them that do not merge are looped over in
 * JavaScript. The rest (i32, bool and f64 results, i32 inputs, `pow`, transposed columns) stays on the
 * JavaScript renderer, which remains the reference (tests/wasm_render_test.ts compares the two).
 *
 * Arithmetic rounds to f32 at every node (the JavaScript path rounds once, at the store), and
 * exp/log/tanh/sigmoid are polynomials after range reduction (Cephes' expf, logf, tanhf); measured
 * against Math.* in f64 their relative error stays below 2e-7 (see the test). exp flushes results
 * below 2⁻¹⁴⁹ to 0; NaN and ±Infinity propagate as in JavaScript. Sums accumulate in f64.
 */
import { contiguousStrides, isContig, numel, offsets, type TypedArray, type View } from "../backend.ts";
import { COMPARE, type Exp, key, load, mapLeaves, type Op } from "../exp.ts";
import {
  asm,
  type Func,
  heap,
  heapAt,
  I32,
  instantiate,
  type Kernel,
  parallel,
  threads,
  uleb,
  V128,
  vec,
} from "../wasm.ts";

/** c[0]·xⁿ + … + c[n] by Horner's rule, x in local `x`. */
const poly = (x: number, c: number[]) =>
  `${c[0]} ${c.slice(1).map((k) => `get:${x} f.mul ${k} f.add`).join(" ")}`;
/** ln 2 in two parts, the first exact in 9 bits (so n·LN2_HI is exact), and 2^n for i32 lanes n
 * from −126 to 127 (n + 127 in the exponent bits). */
const [LN2_HI, LN2_LO, POW2] = [0.693359375, -2.12194440e-4, "i4:127 i.add i32:23 i.shl"];
/** The math functions (0 to 3), each v128 → v128 over its param (local 0) and locals 1 to n; kernels
 * inline them. */
// deno-fmt-ignore
const MATH: [number, string][] = [
  // exp: x = n·ln2 + r with |r| ≤ ½ln2, eʳ by a degree-7 polynomial, 2ⁿ in two halves (so results
  // from 2⁻¹⁴⁹ to 2¹²⁸ need no special case). NaN passes pmin and pmax (and they, unlike min and max,
  // are one x86 instruction each). n = round(x·log2 e) by adding 1.5·2²³, which leaves n in the low
  // mantissa bits (ties to even, as f.nearest; a conversion to i32 costs many more). Locals: 0 x, 1 n,
  // 2 r, 3 n as i32, 4 n/2.
  [4, `get:0 89 f.pmin -104 f.pmax set:0 get:0 ${Math.LOG2E} f.mul 12582912 f.add tee:1
    i4:${0x4b400000} i.sub set:3 get:1 12582912 f.sub set:1 get:0 get:1 ${LN2_HI} f.mul f.sub get:1 ${LN2_LO} f.mul f.sub set:2
    ${poly(2, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1])}
    get:2 f.mul get:2 f.mul get:2 f.add 1 f.add
    get:3 i32:1 i.shr_s tee:4 ${POW2} f.mul get:3 get:4 i.sub ${POW2} f.mul`],
  // log: x = m·2ᵉ with m in [√½, √2), log m by a polynomial in f = m − 1. A subnormal x is scaled by
  // 2²³ first; 0 → −∞, ∞ → ∞, negative or NaN → NaN. Locals: 0 x, 1 scaled x, 2 e, 3 m then f, 4 f²,
  // 5 masks.
  [5, `get:0 1.17549435e-38 f.lt set:5 get:0 8388608 f.mul get:0 get:5 v.select set:1
    get:1 i32:23 i.shr_u i4:255 v.and i4:126 i.sub f.convert_i 23 get:5 v.and f.sub set:2
    get:1 i4:${0x007fffff} v.and i4:${0x3f000000} v.or tee:3 ${Math.SQRT1_2} f.lt set:5
    get:3 get:3 get:5 v.and f.add 1 f.sub set:3 get:2 1 get:5 v.and f.sub set:2 get:3 get:3 f.mul set:4
    ${poly(3, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
      -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1])}
    get:3 f.mul get:4 f.mul get:2 ${LN2_LO} f.mul f.add get:4 0.5 f.mul f.sub get:3 f.add get:2 ${LN2_HI} f.mul f.add set:1
    -Infinity get:1 get:0 0 f.eq v.select set:1 Infinity get:1 get:0 Infinity f.eq v.select set:1
    NaN get:1 get:0 0 f.ge v.not v.select`],
  // tanh: below |x| = 0.625 an odd polynomial, above 1 − 2/(e²ˣ + 1) given x's sign. Locals: 0 x, 1 |x|,
  // 2 x².
  [2, `get:0 f.abs set:1 get:0 get:0 f.mul set:2
    ${poly(2, [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1])}
    get:2 f.mul get:0 f.mul get:0 f.add
    1 2 get:1 2 f.mul call:0 1 f.add f.div f.sub get:0 i4:${-0x80000000} v.and v.or get:1 0.625 f.lt v.select`],
  [0, "1 1 get:0 f.neg call:0 f.add f.div"], // sigmoid: 1/(1 + e⁻ˣ)
];

/** `code` with each `call:f` replaced by math function f on the value atop the stack, its param and
 * locals moved to locals `at` on (a nested call's after them). */
function inline(code: string, at: number): string {
  return code.replace(/call:(\d)/g, (_, f) => {
    const [n, body] = MATH[+f], shift = (_: string, op: string, i: string) => `${op}:${at + +i}`;
    return `set:${at} ${inline(body.replace(/(get|set|tee):(\d+)/g, shift), at + n + 1)}`;
  });
}
/** `code` with its vector constants (bare numbers, `i4:`) read from locals `at` on, set once before it:
 * V8 rebuilds a constant with three instructions at each use and does not hoist them out of the loop
 * (inlined and hoisted, exp-heavy maps ran 25–30% faster). */
function hoist(code: string, at: number): [string, number] {
  const consts = new Map<string, number>();
  const body = code.trim().split(/\s+/).map((t) => {
    const vector = t.startsWith("i4:") || t === "NaN" || (!t.includes(":") && !Number.isNaN(Number(t)));
    if (!vector) return t;
    if (!consts.has(t)) consts.set(t, at + consts.size);
    return `get:${consts.get(t)}`;
  }).join(" ");
  return [`${[...consts].map(([t, l]) => `${t} set:${l}`).join(" ")} ${body}`, consts.size];
}

/** Each op's code after its operands' (or with them at `$`); bools are lane masks: all ones or zero. */
// deno-fmt-ignore
const TEMPLATES: Partial<Record<Op, string>> = {
  where: "v.select", neg: "f.neg", abs: "f.abs", sqrt: "f.sqrt", rsqrt: "1 $ f.sqrt f.div", floor: "f.floor",
  exp: "call:0", log: "call:1", tanh: "call:2", sigmoid: "call:3", relu: "0 f.max", not: "v.not",
  add: "f.add", sub: "f.sub", mul: "f.mul", div: "f.div", max: "f.max", min: "f.min", and: "v.and", or: "v.or",
  lt: "f.lt", le: "f.le", gt: "f.gt", ge: "f.ge", eq: "f.eq", ne: "f.ne",
};
/** Casts by from>to: to bool a mask of nonzero lanes, bool to 1 or 0, i32 to f32 the same lanes. */
// deno-fmt-ignore
const CAST: Record<string, string> = {
  "f32>bool": "0 f.ne", "i32>bool": "0 f.ne", "bool>f32": "1 v.and", "bool>i32": "1 v.and", "i32>f32": "",
};
/** i32 ops that stay exact on integer-valued f32 lanes. */
const INT = new Set(["add", "sub", "mul", "max", "min", "neg", "abs"]);

/**
 * Whether `e` renders here, and how large its integers get: a bound on |value| of an i32 node (0 for
 * f32 and bool nodes), Infinity where it does not render. i32 values ride in f32 lanes, exact while
 * below 2²⁴: output indices (loads of i32 input i, below `bound[i]`) and constants under +, −, ×.
 * Bools are lane masks, made by comparisons of f32 or i32 and loaded from 0/1 bytes.
 */
export function range(e: Exp, bound: readonly number[] = []): number {
  if (e.op === "load" || e.op === "const") {
    const m = e.op === "load" ? bound[e.i] ?? Infinity : Math.abs(e.v);
    return e.dtype === "i32" ? m : e.dtype === "f64" ? Infinity : 0;
  }
  const r = e.src.map((s) => range(s, bound)), [a, b] = e.src.map((s) => s.dtype);
  const ok = e.op === "cast"
    ? CAST[`${a}>${e.dtype}`] !== undefined
    : ["and", "or", "not"].includes(e.op)
    ? a === "bool" && (b ?? a) === "bool"
    : e.op === "where"
    ? a === "bool" && b === e.dtype && e.src[2].dtype === e.dtype
    : COMPARE.has(e.op)
    ? a === b && (a === "f32" || a === "i32")
    : e.src.every((s) => s.dtype === e.dtype) && (e.dtype === "f32" || e.dtype === "i32" && INT.has(e.op));
  if (!ok || !TEMPLATES[e.op as Op] && e.op !== "cast" || r.some((m) => m === Infinity)) return Infinity;
  if (e.dtype !== "i32") return 0;
  const m = e.op === "add" || e.op === "sub" ? r[0] + r[1] : e.op === "mul" ? r[0] * r[1] : Math.max(1, ...r);
  return m < 2 ** 24 ? m : Infinity;
}

/** Elements from which a kernel is split across threads (measured: below, the hand-off costs more). */
const PAR_MIN = 1 << 16;

/** How a kernel consumes each value: stored (map), or folded into a sum, max or min per row. */
export type Mode = "map" | "sum" | "max" | "min";
/** Each reduction's starting value. */
const IDENTITY: Record<Mode, number> = { map: 0, sum: 0, max: -Infinity, min: Infinity };

/**
 * The kernel f(rows, n, out, p0, rs0, p1, rs1, …): for each of `rows` rows, evaluate `e` at n
 * columns, where input k's row starts at byte pk (moving rsk bytes per row) and steps 4 bytes per
 * column (or 0 where `splat[k]`). A map stores rows of n floats at out (the last group of four may
 * spill up to 3 floats past a row; the next row overwrites them); a reduction stores one float per
 * row; a leading reduction (`lead`) folds every row into n accumulators at out (f64 for sums; the
 * caller sets them to the identity, and lanes past n land in slack). Locals: params, then j (byte
 * column) and nb (bytes per row), then v128 accumulators, the lane limit, and one local per subtree
 * used twice.
 */
function kernel(mode: Mode, e: Exp, splats: boolean[], lead: boolean): Func {
  const P = 3 + 2 * splats.length, [j, nb, acc, acc2, lim, v] = [P, P + 1, P + 2, P + 3, P + 4, P + 5];
  const count = new Map<string, number>();
  const tally = (n: Exp) => (count.set(key(n), (count.get(key(n)) ?? 0) + 1), n.src.forEach(tally));
  tally(e);
  const temps = new Map<string, number>();
  // Loading input k: four lanes from byte column j, or its one value splat to all four.
  const loads = splats.map((s, k) => `get:${3 + 2 * k} ${s ? "v.load_splat" : `get:${j} i32.add v.load`}`);
  const walk = (n: Exp): string => {
    if (n.op === "const") {
      return n.dtype === "bool" ? `i4:${n.v ? -1 : 0}` : Object.is(n.v, -0) ? "-0" : `${n.v}`;
    }
    const k = key(n), t = temps.get(k);
    if (t !== undefined) return `get:${t}`;
    const code = n.op === "load"
      ? `${loads[n.i]} ${n.dtype === "bool" ? "0 f.ne" : ""}`
      : n.op === "cast"
      ? `${operands(n)} ${CAST[`${n.src[0].dtype}>${n.dtype}`]}`
      : TEMPLATES[n.op as Op]!.includes("$")
      ? TEMPLATES[n.op as Op]!.replace("$", operands(n))
      : `${operands(n)} ${TEMPLATES[n.op as Op]}`;
    if (count.get(k)! < 2) return code;
    temps.set(k, v + 1 + temps.size);
    return `${code} tee:${v + temps.size}`;
  };
  // Operands are walked in the order their code runs (`where` runs c last, as v.select wants), so
  // that a subtree shared by two operands is stored into its local before any read of it.
  const operands = (n: Exp) => {
    const code: string[] = [];
    for (const i of n.op === "where" ? [1, 2, 0] : n.src.keys()) code[i] = walk(n.src[i]);
    return (n.op === "where" ? [code[1], code[2], code[0]] : code).join(" ");
  };
  const value = walk(e), id = IDENTITY[mode];
  // Reductions replace the lanes past n with the identity: those whose byte column j + 4·lane ≥ nb.
  const masked = `${value} ${id} get:${j} i.splat i4:0,4,8,12 i.add get:${lim} i.lt_s v.select`;
  // A leading reduction adds a row's four columns from byte j into accumulators in memory: f32 at
  // out + j, or for sums two f64x2 at out + 2j (half h 16 bytes on).
  const at = (h: number) =>
    `get:2 get:${j} i32.add ${mode === "sum" ? `get:${j} i32.add i32:${16 * h} i32.add` : ""}`;
  const into = mode === "sum"
    ? `${at(0)} ${at(0)} v.load ${value} tee:${v} d.promote d.add v.store
      ${at(1)} ${at(1)} v.load get:${v} get:${v} v.high d.promote d.add v.store`
    : `${at(0)} ${at(0)} v.load ${value} f.${mode} v.store`;
  // max and min fold four lanes into one at the end of a row.
  const lane = (l: number) => `get:${acc} f.lane:${l}`;
  const lanes = `get:2 ${lane(0)} ${[1, 2, 3].map((l) => `${lane(l)} f32.${mode}`).join(" ")} f32.store`;
  const [fold, end] = lead ? [into, ""] : {
    map: [`get:2 get:${j} i32.add ${value} v.store`, ""],
    // Four lanes summed in two f64x2 accumulators (f64 like the JavaScript kernels), then added up.
    sum: [
      `${masked} tee:${v} d.promote get:${acc} d.add set:${acc} get:${v} get:${v} v.high d.promote get:${acc2} d.add set:${acc2}`,
      `get:2 get:${acc} get:${acc2} d.add tee:${acc} d.lane:0 get:${acc} d.lane:1 f64.add f32.demote f32.store`,
    ],
    max: [`${masked} get:${acc} f.max set:${acc}`, lanes],
    min: [`${masked} get:${acc} f.min set:${acc}`, lanes],
  }[mode];
  const next = lead ? "" : `get:2 ${mode === "map" ? `get:${nb}` : "i32:4"} i32.add set:2`; // out's next row
  const row = `${id} set:${acc} ${id} set:${acc2} i32:0 set:${j}
    block loop get:${j} get:${nb} i32.ge_s br_if:1 ${fold} get:${j} i32:16 i32.add set:${j} br:0 end end
    ${end} ${next}
    ${splats.map((_, k) => `get:${3 + 2 * k} get:${4 + 2 * k} i32.add set:${3 + 2 * k}`).join(" ")}`;
  // The row loop runs `rows` ≥ 1 times.
  const code =
    `get:1 i32:4 i32.mul tee:${nb} i.splat set:${lim} loop ${row} get:0 i32:1 i32.sub tee:0 br_if:0 end`;
  const base = v + 1 + temps.size, [hoisted, nc] = hoist(inline(code, base), base + 8);
  const locals = vec([[2, I32], [...uleb(4 + temps.size + 8 + nc), V128]]);
  return { params: new Array(P).fill(I32), results: [], body: [...locals, ...asm(hoisted), 0x0b] };
}

const kernels = new Map<string, Kernel | null>();
/** 0, 1, 2, … n − 1; and a view of `shape` that steps 1 along `d` and stays put along the others. */
const arange = (n: number) => Float32Array.from({ length: n }, (_, i) => i);
const axis = (shape: readonly number[], d: number) => ({ shape, strides: shape.map((_, a) => +(a === d)) });
/** Merged dims: their size and each view's stride. */
type Dim = { n: number; s: number[] };

/** Merge dims [a, b) of `shape` into one for every view, skipping size-1 dims: the merged size and
 * each view's stride, or null when a view's strides there are not nested (a transpose, a slice). */
function merge(shape: readonly number[], views: View[], a: number, b: number): Dim | null {
  let n = 1;
  const s = views.map(() => 0);
  for (let d = b - 1; d >= a; d--) {
    if (shape[d] === 1) continue;
    for (let k = 0; k < views.length; k++) {
      if (n === 1) s[k] = views[k].strides[d];
      else if (views[k].strides[d] !== s[k] * n) return null;
    }
    n *= shape[d];
  }
  return { n, s };
}

/**
 * A kernel running `e` over `shape` with WebAssembly SIMD: a map into `out` from `at` (row-major), or
 * a reduction of the last `shape.length - split` axes into `out` (one float per row), or with `lead`
 * of the first `split` axes (one float per column). Each call copies the inputs into wasm memory and
 * the result out. Null when this case is not covered (the caller runs the JavaScript kernel).
 */
export function wasmKernel(
  mode: Mode,
  e: Exp,
  inputs: { data: TypedArray; view: View }[],
  shape: readonly number[],
  split: number,
  out: Float32Array,
  ov: View = { shape, strides: contiguousStrides(shape), offset: 0 },
  lead = false,
): (() => boolean) | null {
  // Output indices become inputs: #d reads 0, 1, 2, … along axis d (a view of stride 1 there, 0 elsewhere).
  const axes: number[] = [], n0 = inputs.length;
  const slot = (axis: number) => (axes.includes(axis) || axes.push(axis), n0 + axes.indexOf(axis));
  e = mapLeaves(e, (l) => l.op === "idx" ? load(slot(l.axis), "i32") : l);
  const indices = axes.map((d) => ({ data: arange(shape[d]), view: { ...axis(shape, d), offset: 0 } }));
  inputs = [...inputs, ...indices];
  const dense = mode !== "map" || isContig(ov);
  // i32 inputs (a map's only: its caller can fall back) are checked below 2²⁴ at each call.
  const ints = inputs.map((x) => mode === "map" && x.data instanceof Int32Array);
  const bound = inputs.map((_, k) => k >= n0 ? shape[axes[k - n0]] : ints[k] ? 2 ** 24 - 1 : Infinity);
  const typed = (x: { data: ArrayLike<number> }, k: number) =>
    x.data instanceof Float32Array || x.data instanceof Uint8Array || ints[k];
  if (e.dtype !== "f32" || !inputs.every(typed) || range(e, bound) === Infinity) return null;
  // The output's view (a map's: it may be a strided region) shapes the loops too, as the last view.
  const views = inputs.map((x) => x.view), all = mode === "map" ? [...views, ov] : views, ko = views.length;
  if (all.some((v) => v.strides.some((s) => s < 0))) return null;
  // Outer × rows × columns: columns, for a map the longest run of trailing dims every input reads with
  // stride 1 or 0; rows, the most dims before them that merge; outer, the rest, looped over here (a
  // broadcast along some of the dims before the columns, a slice, a transpose).
  let rows: Dim | null = null, cols: Dim | null = null, r = 0;
  for (let d = mode === "map" ? 0 : split; d <= (mode === "map" ? shape.length - 1 : split) && !rows; d++) {
    cols = merge(shape, all, d, shape.length);
    for (r = 0; r <= d && cols?.s.every((s, k) => s === 1 || (s === 0 && k < ko)); r++) {
      if ((rows = merge(shape, all, r, d))) break;
    }
  }
  const outer = numel(shape.slice(0, r));
  if (!rows || !cols) return null;
  if (outer * rows.n === 0) return lead ? null : () => true; // nothing to write (leading: identities)
  if ((outer > 1 && numel(shape) < 64 * outer) || (!dense && cols.n < 64)) return null; // little work per call
  // Each input's offset at every index of the outer dims, in row-major order (so the last is largest).
  const starts = all.map((v) => offsets({ shape: shape.slice(0, r), strides: v.strides, offset: 0 }));
  const splats = cols.s.map((s) => s === 0 || cols.n === 1);
  const k = `${mode}|${+lead}|${splats.map(Number).join("")}|${key(e)}`;
  if (!kernels.has(k)) kernels.set(k, instantiate([kernel(mode, e, splats, lead)]));
  const f = kernels.get(k);
  if (!f) return null;
  // Inputs in the shared memory (the CPU backend's f32 buffers) are read where they are; the others'
  // spans are copied to 16-byte aligned places, with 16 bytes of slack for the last lanes.
  const spans = inputs.map((_, i) =>
    starts[i][outer - 1] + (rows.n - 1) * rows.s[i] + (splats[i] ? 1 : cols.n)
  );
  const home = inputs.map((x, i) => heapAt(x.data) < 0 ? -1 : heapAt(x.data) + views[i].offset);
  if (spans.some((n, i) => home[i] < 0 && n > 4 * numel(shape) + 4)) return null; // sparse: not worth copying
  const ptrs = spans.reduce((p, n, i) => [...p, p[i] + (home[i] < 0 ? 4 * Math.ceil(n / 4 + 1) : 0)], [0]);
  const src = home.map((h, i) => h < 0 ? ptrs[i] : h), end = ptrs[inputs.length];
  // Output floats per outer step (none for a leading reduction: its outer dims are reduced too).
  const step = lead ? 0 : mode === "map" ? rows.n * cols.n : rows.n, count = lead ? cols.n : outer * step;
  // A dense map into a buffer in the memory writes there, unless it also reads it (its last vector may
  // spill past its rows: into the slack after the buffer, never into its values).
  const direct = mode === "map" && dense && heapAt(out) >= 0 && inputs.every((x) => x.data !== out) &&
    (cols.n % 4 === 0 || ov.offset + count === out.length);
  const o = direct ? heapAt(out) + ov.offset : end, wide = lead && mode === "sum" ? 2 : 1;
  const size = 4 * (end + (direct ? 0 : wide * (count + 4))); // (wide: f64 accumulators)
  // Calls, split across threads when large: by outer steps; or by rows when there are fewer of those;
  // or, for a map with fewer rows than threads, each row by runs of columns (a multiple of four long).
  // Not a leading reduction (every row adds into the same outputs), nor a map whose rows' last four
  // lanes spill into the next row (another thread's).
  // A reduction to one value: two halves of the row into out[0] and out[1], then combined (always two,
  // whatever the thread count, so the rounding does not depend on the machine).
  const halves = mode !== "map" && !lead && outer * rows.n === 1 && numel(shape) >= PAR_MIN;
  const T = numel(shape) < PAR_MIN || lead || (mode === "map" && cols.n % 4) ? 1 : threads();
  const parts = halves ? 2 : outer >= T ? 1 : T, per = mode === "map" ? cols.n : 1;
  const w = 4 * Math.ceil(cols.n / 4 / parts);
  const cut = (t: number, n: number, of = parts) => Math.floor((t * n) / of);
  const rowRuns = [...Array(parts).keys()].map((t) => [cut(t, rows.n), cut(t + 1, rows.n), 0, cols.n]);
  const colRuns = (r: number) => [...Array(parts).keys()].map((t) => [r, r + 1, t * w, (t + 1) * w]);
  const units = (rows.n >= parts || mode !== "map") && !halves
    ? rowRuns
    : [...Array(rows.n).keys()].flatMap(colRuns);
  const calls: number[][] = [];
  for (let i = 0; i < outer; i++) {
    for (const [r0, r1, c0, c1] of units) {
      const ptr = (k: number) => 4 * (src[k] + starts[k][i] + r0 * rows.s[k] + (splats[k] ? 0 : c0));
      const n = Math.min(c1, cols.n) - c0, args = inputs.flatMap((_, k) => [ptr(k), 4 * rows.s[k]]);
      const at = o + i * step + (halves ? c0 / w : r0 * per + c0);
      if (r1 > r0 && n > 0) calls.push([r1 - r0, n, 4 * at, ...args]);
    }
  }
  const n = calls.length, U = Math.min(T, n); // (one call stays on this thread)
  const byThread = [...Array(U).keys()].map((t) => calls.slice(cut(t, n, U), cut(t + 1, n, U)));
  return () => {
    const h = heap(size),
      part = (i: number) => inputs[i].data.subarray(views[i].offset, views[i].offset + spans[i]);
    if (!h) throw new Error(`cpu: WebAssembly memory cannot grow to ${size} bytes`);
    if (ints.some((int, i) => int && part(i).some((v) => !(Math.abs(v) < 2 ** 24)))) return false;
    inputs.forEach((_, i) => home[i] < 0 && h.set(part(i), ptrs[i]));
    const res = wide === 2 ? new Float64Array(h.buffer, 4 * o, count + 4) : h.subarray(o, o + count + 4);
    if (lead) res.fill(IDENTITY[mode]);
    parallel(f, byThread);
    if (halves) res[0] = mode === "sum" ? res[0] + res[1] : Math[mode as "max" | "min"](res[0], res[1]);
    if (dense && !direct) out.set(res.subarray(0, count), ov.offset);
    for (let i = 0; i < outer && !dense; i++) { // rows into a strided region, one by one
      for (let r = 0, from = i * step; r < rows.n; r++, from += cols.n) {
        out.set(res.subarray(from, from + cols.n), ov.offset + starts[ko][i] + r * rows.s[ko]);
      }
    }
    return true;
  };
}
