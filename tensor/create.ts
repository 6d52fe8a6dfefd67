// deno-lint-ignore-file no-explicit-any
// (`any` here is on implementation signatures behind typed overloads, and on casts to shape types the
// compiler computes but cannot relate to the runtime shape: the typed surface is the overloads.)
/**
 * Making tensors: from nested arrays or flat data, constants and ranges (lazy: no memory until
 * used), masks, and seeded random samples that are the same on every backend.
 */
import { numel } from "./backend.ts";
import { getBackend } from "./backends.ts";
import { checkData, checkDType, checkInt, checkNumber, checkShape, dataDType, fail } from "./check.ts";
import { MAX_ELEMENTS, typeName } from "./check.ts";
import * as X from "./exp.ts";
import type { DType } from "./exp.ts";
import { bufferForm, fuse, hostCopy } from "./lazy.ts";
import { fmtShape, type FromNested, type Shape, ShapeError } from "./shape.ts";
import { checkIndex, type Nested, Tensor } from "./tensor.ts";

/** A tensor whose elements `exp` computes from their indices: no reads, no memory until used. */
const computed = <S extends Shape>(shape: S, exp: X.Exp): Tensor<[...S]> =>
  new Tensor(shape, { exp, reads: [] }) as Tensor<any>;

function upload<S extends Shape>(data: ArrayLike<number>, shape: S, dtype: DType): Tensor<[...S]> {
  const be = getBackend(), device = be.name !== "cpu";
  if (dtype === "f64" && device) throw new Error(`${be.name}: f64 is not supported; use the cpu backend`);
  const buf = be.upload(data, dtype);
  if (dtype === "i32" && device && data.length <= 1 << 20) hostCopy.set(buf, Int32Array.from(data));
  return new Tensor(shape, bufferForm(buf, shape, be)) as Tensor<any>;
}

function flatten(data: Nested, shape: number[], out: number[], depth: number, path: string): boolean {
  // The first leaf fixes the rank: every leaf must sit at that depth, every array above it.
  const at = path || "top level";
  const ragged = (detail = "") => new ShapeError(`tensor: ragged nested array at ${at}${detail}`);
  if (!Array.isArray(data)) {
    if (depth !== shape.length) throw ragged();
    if (typeof data !== "number" && typeof data !== "boolean") {
      throw new TypeError(`tensor: element at ${at} is not a number`);
    }
    out.push(+data);
    return typeof data === "boolean";
  }
  if (shape.length === depth) {
    if (out.length > 0) throw ragged();
    shape.push(data.length);
  } else if (shape[depth] !== data.length) throw ragged(` (length ${data.length}, expected ${shape[depth]})`);
  let bool = false;
  data.forEach((d, i) => (bool = flatten(d, shape, out, depth + 1, `${path}[${i}]`) || bool));
  return bool;
}

/** A tensor from nested arrays; the shape is inferred, also at compile time:
 * `tensor([[1, 2], [3, 4]])` is `Tensor<[2, 2]>`. */
export function tensor<const T extends Nested>(data: T, dtype?: DType): Tensor<FromNested<T>> {
  const shape: number[] = [], flat: number[] = [];
  const bool = flatten(data, shape, flat, 0, "");
  const dt = dtype === undefined ? (bool ? "bool" : "f32") : checkDType("tensor", dtype);
  checkData("tensor", flat, dt);
  return upload(flat, checkShape("tensor", shape), dt) as any;
}

/** A tensor from a flat array and a shape. Without a dtype, typed arrays give their own
 * (Float64Array → f64, Uint8Array → bool, other integer arrays → i32) and anything else f32. */
export function fromArray<const S extends Shape>(
  data: ArrayLike<number>,
  shape: S,
  dtype: DType = dataDType(data),
): Tensor<[...S]> {
  if (!Array.isArray(data) && !ArrayBuffer.isView(data)) {
    throw new TypeError(`fromArray: data must be an array or a typed array, got ${typeName(data)}`);
  }
  checkShape("fromArray", shape);
  checkData("fromArray", data, checkDType("fromArray", dtype));
  if (data.length !== numel(shape)) {
    fail(`fromArray: ${data.length} values do not fill shape ${fmtShape(shape)} (${numel(shape)} elements)`);
  }
  return upload(data, shape, dtype);
}

/** A tensor of `shape` filled with `value` (no memory until it is used). */
export function full<const S extends Shape>(shape: S, value: number, dtype: DType = "f32"): Tensor<[...S]> {
  checkShape("full", shape);
  checkData("full: fill", [value], checkDType("full", dtype));
  return computed(shape, X.cnst(value, dtype));
}
/** Zeros. */
export function zeros<const S extends Shape>(shape: S, dtype: DType = "f32"): Tensor<[...S]> {
  return full(shape, 0, dtype);
}
/** Ones. */
export function ones<const S extends Shape>(shape: S, dtype: DType = "f32"): Tensor<[...S]> {
  return full(shape, 1, dtype);
}
/** Zeros shaped like `t`. */
export function zerosLike<S extends Shape>(t: Tensor<S>): Tensor<S> {
  return full(t.shape, 0, t.dtype);
}
/** Ones shaped like `t`. */
export function onesLike<S extends Shape>(t: Tensor<S>): Tensor<S> {
  return full(t.shape, 1, t.dtype);
}
/** `value` shaped like `t`. */
export function fullLike<S extends Shape>(t: Tensor<S>, value: number): Tensor<S> {
  return full(t.shape, value, t.dtype);
}

/** start, start+step, … below end (`arange(n)` is 0…n−1); i32 when all arguments are integers. */
export function arange(start: number, end?: number, step = 1, dtype?: DType): Tensor<[number]> {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0 || ![start, end, step].every(Number.isFinite)) {
    throw new RangeError(
      `arange: needs finite start, end and a non-zero step, got ${start}, ${end}, ${step}`,
    );
  }
  const n = Math.max(0, Math.ceil((end - start) / step));
  if (n > MAX_ELEMENTS) throw new RangeError(`arange: ${n} elements, more than 2^31`);
  const dt = checkDType("arange", dtype ?? ([start, end, step].every(Number.isInteger) ? "i32" : "f32"));
  checkData("arange: start and step", [start, step], dt);
  const i = X.cast(X.idx(0), dt);
  return computed([n], X.bin("add", X.bin("mul", i, X.cnst(step, dt)), X.cnst(start, dt)));
}

/** A small seedable PRNG (mulberry32): the same seed gives the same tensors on every backend. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** 0…n−1 in a random order drawn from `rand` (Fisher–Yates, n − 1 draws, last position first). */
export function permutation(n: number, rand: () => number): number[] {
  checkInt("permutation: n", n, 0);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
let globalRng = rng(0);
/** Seed the generator behind `rand`/`randn` when no seed is given. */
export function manualSeed(seed: number): void {
  globalRng = rng(seed);
}

/** Uniform [0, 1) samples. */
export function rand<const S extends Shape>(
  shape: S,
  opts: { seed?: number; dtype?: DType } = {},
): Tensor<[...S]> {
  const r = opts.seed === undefined ? globalRng : rng(opts.seed);
  checkShape("rand", shape);
  return upload(Array.from({ length: numel(shape) }, r), shape, checkDType("rand", opts.dtype ?? "f32"));
}
/** Standard normal samples (Box–Muller). */
export function randn<const S extends Shape>(
  shape: S,
  opts: { seed?: number; dtype?: DType; std?: number } = {},
): Tensor<[...S]> {
  const r = opts.seed === undefined ? globalRng : rng(opts.seed);
  const n = numel(checkShape("randn", shape)), out = new Float64Array(n);
  const std = checkNumber("randn: std", opts.std ?? 1, "≥ 0", (v) => v >= 0);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r(), v = r(), m = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return upload(out, shape, checkDType("randn", opts.dtype ?? "f32"));
}
/** Uniform samples shaped like `t`. */
export function randLike<S extends Shape>(t: Tensor<S>, seed?: number): Tensor<S> {
  return rand(t.shape, { seed, dtype: t.dtype });
}
/** Normal samples shaped like `t`. */
export function randnLike<S extends Shape>(t: Tensor<S>, seed?: number): Tensor<S> {
  return randn(t.shape, { seed, dtype: t.dtype });
}

/** One-hot rows: [...index] i32 → [...index, n] of dtype (default f32). */
export function oneHot<I extends Shape>(
  index: Tensor<I>,
  n: number,
  dtype: DType = "f32",
): Tensor<[...I, number]> {
  const x = (index as Tensor<any>).unsqueeze(-1), to = checkShape("oneHot", [...index.shape, n]);
  checkIndex("oneHot", index, n);
  checkDType("oneHot", dtype);
  const form = fuse([x], to, ([e]) => X.cast(X.bin("eq", e, X.idx(index.rank)), dtype), "oneHot");
  return new Tensor(to, form) as any;
}

/** A bool mask [rows, cols] that is true on and below diagonal `k` (j ≤ i + k). */
export function tril<R extends number, C extends number = R>(rows: R, cols?: C, k = 0): Tensor<[R, C]> {
  return diagonalMask("tril", rows, cols ?? rows, k);
}

/** A bool mask [rows, cols] that is true on and above diagonal `k` (j ≥ i + k). */
export function triu<R extends number, C extends number = R>(rows: R, cols?: C, k = 0): Tensor<[R, C]> {
  return diagonalMask("triu", rows, cols ?? rows, k);
}

/** The mask `j ≤ i + k` (tril) or `j ≥ i + k` (triu) over [rows, cols] (i the row, j the column). */
function diagonalMask(op: "tril" | "triu", rows: number, cols: number, k: number): any {
  checkNumber(`${op}: diagonal`, k, "an integer", Number.isInteger);
  const diagonal = X.bin("add", X.idx(0), X.cnst(k, "i32")); // i + k
  return computed(checkShape(op, [rows, cols]), X.bin(op === "tril" ? "le" : "ge", X.idx(1), diagonal));
}
