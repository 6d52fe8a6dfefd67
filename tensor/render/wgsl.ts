/**
 * The WGSL renderer: an `Exp` as a WGSL expression, for the WebGPU backend's kernels (built in
 * webgpu/kernels.ts). `TEMPLATES` holds one template per op; `render` walks the tree bottom-up and
 * applies them. On the device bool is u32 (0/1), so arithmetic on bools wraps exactly like the
 * CPU's Uint8Array once read back; `PRELUDE` spells out the CPU's JavaScript semantics where WGSL's
 * built-ins differ (NaN, division by zero, pow).
 *
 * The WGSL spec makes a constant expression that overflows or yields ±Infinity or NaN a
 * shader-creation error (Chrome's Tint enforces it; naga does not), so infinities and NaNs come
 * from `f32bits_`, a function call (never a constant expression), and an op whose operands are all
 * constants gets one operand through `rt*_` so the compiler cannot fold it at creation.
 */
import type { DType, Exp, Leaf, Op } from "../exp.ts";

/** The WGSL scalar type that stores a dtype. */
export function wgslType(dtype: DType): "f32" | "i32" | "u32" {
  if (dtype === "f64") throw new Error("webgpu: f64 is not supported; use the cpu backend for f64 checks");
  return dtype === "f32" ? "f32" : dtype === "i32" ? "i32" : "u32";
}

const ZERO = { f32: "0f", i32: "0i", u32: "0u" } as const;

/** The largest finite f32: a literal above it is out of range for Tint, even if it rounds down. */
const F32_MAX = 3.4028234663852886e38;

/** A WGSL expression for `v` as `dtype`: a literal, or for ±Infinity and NaN a run-time bitcast
 * (`f32bits_`), and for a subnormal a constant bitcast. */
export function literal(v: number, dtype: DType): string {
  const t = wgslType(dtype);
  if (t === "u32") return v !== 0 ? "1u" : "0u";
  if (t === "i32") {
    const i = Math.trunc(v) | 0;
    return i === -2147483648 ? "bitcast<i32>(0x80000000u)" : i < 0 ? `(${i}i)` : `${i}i`;
  }
  const f = Math.fround(v);
  if (!Number.isFinite(f) || (f !== 0 && Math.abs(f) < 1.1754943508222875e-38)) {
    const bits = new Uint32Array(new Float32Array([f]).buffer)[0];
    return `${Number.isFinite(f) ? "bitcast<f32>" : "f32bits_"}(0x${bits.toString(16)}u)`;
  }
  // The shortest decimal that rounds back to f (else String(f), exact: every f32 is a double).
  const fits = (t: string) => Math.fround(Number(t)) === f && Math.abs(Number(t)) <= F32_MAX;
  let s = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((p) => f.toPrecision(p)).find(fits) ?? String(f);
  s = /[.e]/.test(s) ? `${s}f` : `${s}.0f`;
  return f < 0 ? `(${s})` : s;
}

/** Functions the rendered code calls; every kernel carries them. The Mesa compilers assume no NaN
 * (x != x, max(NaN, y), NaN != y fold away), so NaN tests use the bits; WGSL leaves exp, log, sqrt
 * and pow of NaN, ±Infinity, 0 or negatives indeterminate (SwiftShader: log(0) ≈ −88), so `exp_`,
 * `log_`, `sqrt_` and `powf_` give JavaScript's answers for those. */
export const PRELUDE = `
fn f32bits_(b: u32) -> f32 { return bitcast<f32>(b); }
fn rtf_(x: f32) -> f32 { return x; }
fn rti_(x: i32) -> i32 { return x; }
fn rtu_(x: u32) -> u32 { return x; }
fn sigmoid_(x: f32) -> f32 { let e = exp(-abs(x)); return select(e / (1f + e), 1f / (1f + e), x >= 0f); }
fn nan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn inf_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
fn exp_(x: f32) -> f32 { return select(exp(x), x, nan_(x)); }
fn log_(x: f32) -> f32 {
  if (nan_(x) || x < 0f) { return f32bits_(0x7fc00000u); }
  if (x == 0f) { return f32bits_(0xff800000u); }
  return select(log(x), x, inf_(x));
}
fn sqrt_(x: f32) -> f32 { return select(select(sqrt(x), x, inf_(x)), f32bits_(0x7fc00000u), nan_(x) || x < 0f); }
fn tanh_(x: f32) -> f32 { return select(tanh(clamp(x, -15f, 15f)), x, nan_(x)); }
fn max_(a: f32, b: f32) -> f32 { return select(select(max(a, b), b, nan_(b)), a, nan_(a)); }
fn min_(a: f32, b: f32) -> f32 { return select(select(min(a, b), b, nan_(b)), a, nan_(a)); }
fn powf_(a: f32, b: f32) -> f32 {
  if (b == 0f) { return 1f; }
  if (nan_(a) || nan_(b)) { return f32bits_(0x7fc00000u); }
  if (b == 2f) { return a * a; }
  if (b == 1f) { return a; }
  if (a == 0f) { return select(0f, f32bits_(0x7f800000u), b < 0f); }
  var r = pow(abs(a), b);
  if (inf_(a)) { r = select(0f, f32bits_(0x7f800000u), b > 0f); }
  if (a > 0f) { return r; }
  if (floor(b) != b) { return f32bits_(0x7fc00000u); }
  return select(r, -r, fract(b * 0.5f) != 0f);
}
fn ipow_(a: i32, b: i32) -> i32 {
  if (b < 0) { if (a == 1) { return 1; } if (a == -1) { return select(1, -1, (b & 1) != 0); } return 0; }
  var r = 1i; var x = a; var e = b;
  loop { if (e == 0) { break; } if ((e & 1) != 0) { r = r * x; } x = x * x; e = e >> 1u; }
  return r;
}
fn idiv_(a: i32, b: i32) -> i32 { return select(a / select(b, 1i, b == 0i), 0i, b == 0i); }
fn udiv_(a: u32, b: u32) -> u32 { return select(a / select(b, 1u, b == 0u), 0u, b == 0u); }
`;

/** Code for one node, given the code of its operands (`src`, in order). */
type Template = (e: Exp, ...src: string[]) => string;

const ty = (e: Exp) => wgslType(e.dtype);
/** ` || nan_(s)` when `x` (rendered as `s`) is f32: JavaScript counts NaN as true and as unequal. */
const nan = (x: Exp, s: string) => (x.dtype === "f32" ? ` || nan_(${s})` : "");
/** `x` (rendered as `s`) as a WGSL bool, the way JavaScript tests truth. */
const truthy = (x: Exp, s: string) => `(${s} != ${ZERO[ty(x)]}${nan(x, s)})`;
const u32 = (cond: string) => `select(0u, 1u, ${cond})`;
/** Float-only functions on integer dtypes compute in f32 and convert back, like the CPU's stores. */
const float = (f: (s: string) => string): Template => (e, a) =>
  ty(e) === "f32" ? f(a) : `${ty(e)}(${f(`f32(${a})`)})`;
const infix = (op: string): Template => (_, a, b) => `(${a} ${op} ${b})`;
const compare = (op: string): Template => (_, a, b) => u32(`${a} ${op} ${b}`);
/** The NaN-aware f32 max/min from the prelude, the built-in for integers. */
const extremum = (f: string): Template => (e, a, b) => `${f}${ty(e) === "f32" ? "_" : ""}(${a}, ${b})`;

/** Whether `e` is a literal zero, maybe an integer one cast to f32. */
function litZero(e: Exp): boolean {
  if (e.op === "const") return e.v === 0;
  const [x] = e.src;
  return e.op === "cast" && x.op === "const" && x.dtype !== "f32" && !x.v;
}

/** Each op's WGSL. */
const TEMPLATES: Record<Op, Template> = {
  cast: (e, a) => (ty(e) === "u32" ? u32(truthy(e.src[0], a)) : `${ty(e)}(${a})`),
  where: (e, c, a, b) => `select(${b}, ${a}, ${truthy(e.src[0], c)})`,
  neg: (e, a) => (ty(e) === "u32" ? `(0u - ${a})` : `(-${a})`),
  exp: float((s) => `exp_(${s})`),
  log: float((s) => `log_(${s})`),
  sqrt: float((s) => `sqrt_(${s})`),
  tanh: float((s) => `tanh_(${s})`),
  sigmoid: float((s) => `sigmoid_(${s})`),
  rsqrt: float((s) => `(1f / sqrt_(${s}))`),
  abs: (e, a) => (ty(e) === "u32" ? a : `abs(${a})`),
  floor: (e, a) => (ty(e) === "f32" ? `floor(${a})` : a),
  relu: (e, a) => (ty(e) === "f32" ? `max_(${a}, 0f)` : `max(${a}, ${ZERO[ty(e)]})`),
  not: (e, a) => `select(1u, 0u, ${truthy(e.src[0], a)})`,
  add: infix("+"),
  sub: infix("-"),
  mul: infix("*"),
  div: (e, a, b) => {
    // The Mesa adapters fold x / 0.0 (a literal, maybe cast from an int) to 0; x·∞ is IEEE's x/0
    // (+0: the CPU oracle, like `literal`, renders −0 as 0).
    if (ty(e) === "f32" && litZero(e.src[1])) return `(${a} * ${literal(Infinity, "f32")})`;
    return ty(e) === "f32" ? `(${a} / ${b})` : ty(e) === "i32" ? `idiv_(${a}, ${b})` : `udiv_(${a}, ${b})`;
  },
  pow: (e, a, b) => (ty(e) === "f32" ? `powf_(${a}, ${b})` : `${ty(e)}(ipow_(i32(${a}), i32(${b})))`),
  max: extremum("max"),
  min: extremum("min"),
  and: (e, a, b) => u32(`${truthy(e.src[0], a)} && ${truthy(e.src[1], b)}`),
  or: (e, a, b) => u32(`${truthy(e.src[0], a)} || ${truthy(e.src[1], b)}`),
  lt: compare("<"),
  le: compare("<="),
  gt: compare(">"),
  ge: compare(">="),
  eq: compare("=="),
  ne: (e, a, b) => u32(`${a} != ${b}${nan(e.src[0], a)}${nan(e.src[1], b)}`),
};

/** Render `e` as a WGSL expression; `leaf` renders `load` and `idx` nodes. */
export function render(e: Exp, leaf: (l: Leaf) => string): string {
  ty(e); // f64 has no WGSL type: fail on any node that has it
  if (e.op === "const") return literal(e.v, e.dtype);
  if (e.op === "load" || e.op === "idx") return leaf(e);
  const src = e.src.map((s) => render(s, leaf));
  // All-constant operands would make a constant expression (exp(100f), 0u - 1u, 3e38f * 10f) that
  // fails shader creation when it overflows; a call to an identity function keeps it run time.
  if (e.src.every((s) => s.op === "const")) src[0] = `rt${ty(e.src[0])[0]}_(${src[0]})`;
  return TEMPLATES[e.op](e, ...src);
}
