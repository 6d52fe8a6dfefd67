/**
 * Checks on what users hand in at the boundaries: dtypes, shapes, flat data, reductions over
 * empty axes, and operands that must share a backend. Each error names the op and the bad value.
 */
import type { DType } from "./exp.ts";
import type { Lazy } from "./lazy.ts";
import { fail, fmtShape, ShapeError } from "./shape.ts";

const DTYPES: readonly DType[] = ["f32", "i32", "bool", "f64"];
/** The most elements one tensor may have (buffers are indexed by 32-bit integers). */
export const MAX_ELEMENTS = 2 ** 31;

/** `dtype` if it is one of the known dtypes; a TypeError listing them otherwise. */
export function checkDType(op: string, dtype: unknown): DType {
  if (DTYPES.includes(dtype as DType)) return dtype as DType;
  const got = typeof dtype === "string" ? `"${dtype}"` : JSON.stringify(dtype) ?? String(dtype);
  throw new TypeError(`${op}: unknown dtype ${got}; expected one of ${DTYPES.join(", ")}`);
}

/** `shape` if it is an array of non-negative safe integers of at most MAX_ELEMENTS elements. */
export function checkShape<S extends readonly number[]>(op: string, shape: S): S {
  if (!Array.isArray(shape) || shape.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    const got = Array.isArray(shape) ? fmtShape(shape) : JSON.stringify(shape) ?? String(shape);
    throw new ShapeError(`${op}: invalid shape ${got}; sizes must be non-negative integers`);
  }
  const n = shape.reduce((p, q) => p * q, 1);
  if (n > MAX_ELEMENTS) {
    throw new RangeError(`${op}: shape ${fmtShape(shape)} has ${n} elements, more than 2^31`);
  }
  return shape;
}

/** The dtype that typed-array data implies: Float64Array → f64, Uint8Array → bool, other integer
 * arrays → i32, anything else → f32. */
export function dataDType(data: ArrayLike<number>): DType {
  if (data instanceof Float64Array) return "f64";
  if (data instanceof Uint8Array) return "bool";
  const ints = [Int8Array, Int16Array, Int32Array, Uint16Array, Uint32Array];
  return ints.some((c) => data instanceof c) ? "i32" : "f32";
}

/** Plain arrays hold numbers only, and integer dtypes integers only (i32 in its range); the first bad
 * index is named. */
export function checkData(op: string, data: ArrayLike<number>, dtype: DType): void {
  // (typed arrays hold numbers)
  const i = Array.isArray(data) ? data.findIndex((v) => typeof v !== "number") : -1;
  if (i >= 0) throw new TypeError(`${op}: value ${JSON.stringify(data[i])} at index ${i} is not a number`);
  if (dtype !== "i32" && dtype !== "bool") return;
  const [lo, hi] = dtype === "i32" ? [-(2 ** 31), 2 ** 31 - 1] : [0, 1];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new RangeError(`${op}: value ${v} at index ${i} is not a valid ${dtype} (integers ${lo}…${hi})`);
    }
  }
}

/** `v` if it is a finite number for which `ok` holds; a RangeError "`what` must be `rule`, got `v`"
 * otherwise. One check for every numeric option and argument. */
export function checkNumber(what: string, v: unknown, rule: string, ok: (v: number) => boolean): number {
  if (typeof v === "number" && Number.isFinite(v) && ok(v)) return v;
  const got = typeof v === "string" ? `"${v}"` : Math.abs(v as number) === Infinity ? `${v} (not finite)` : v;
  throw new RangeError(`${what} must be ${rule}, got ${got}`);
}

/** `v` if it is an integer ≥ `min` (1 or 0); a RangeError naming `what` otherwise. */
export function checkInt(what: string, v: unknown, min = 1): number {
  const rule = min ? "a positive integer" : "a non-negative integer";
  return checkNumber(what, v, rule, (n) => Number.isInteger(n) && n >= min);
}

/** max/min/argmax/argmin have no value for an empty axis: an error, as in torch. */
export function checkNonEmpty(op: string, shape: readonly number[], axes: readonly number[]): void {
  const a = axes.find((d) => shape[d] === 0);
  if (a !== undefined) fail(`${op}: cannot reduce over an empty axis ${a} of shape ${fmtShape(shape)}`);
}

/** `typeof v`, but "null" for null: how errors name a value of the wrong kind. */
export const typeName = (v: unknown): string => v === null ? "null" : typeof v;

/** Throws an Error with `message`. Typed `never`, so it also works as an expression: `x ?? raise(…)`. */
export function raise(message: string): never {
  throw new Error(message);
}

// `fail`, `raise` for shape mismatches, lives in shape.ts (which this file imports).
export { fail };

/** A JSON-style object: not null, not an array. */
export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** `text` parsed as JSON; invalid JSON throws an Error with the message `error` makes of the parser's. */
export function parseJson(text: string, error: (why: string) => string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(error((e as Error).message));
  }
}

/** Operands that meet in one op must live on one backend. */
export function sameBackend(op: string, ops: readonly Lazy[]): void {
  const used = new Set(ops.flatMap((t) => t.form(op).reads.map((r) => r.st.backend.name)));
  if (used.size > 1) {
    raise(`${op}: tensors live on different backends (${[...used].join(" and ")}); move them to one`);
  }
}
