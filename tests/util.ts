// deno-lint-ignore-file no-explicit-any
// (tests call ops with deliberately wrong or untyped shapes to reach the runtime checks)
/**
 * Helpers shared by the core test suites: tolerant numeric comparison of tensors against
 * hand-worked values, and seeded random inputs.
 *
 * @module
 */
import { fromArray, type Nested, rng, type Shape, Tensor } from "../mod.ts";

/** What `assertClose` accepts as the actual value. */
export type Actual = Tensor<any> | ArrayLike<number> | number;

/** What `assertClose` accepts as the expected value: a number, a flat array, or nested arrays
 * (whose shape is compared against a tensor's shape). */
export type Expected = Nested | ArrayLike<number>;

/** The shape of a nested array (the lengths along its first elements); [] for a number. */
function nestedShape(v: Expected): number[] {
  const shape: number[] = [];
  let cur: unknown = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0];
  }
  return shape;
}

function flatten(v: Expected): number[] {
  if (typeof v === "number" || typeof v === "boolean") return [+v];
  if (Array.isArray(v)) return (v as Expected[]).flatMap((x) => flatten(x));
  return Array.from(v as ArrayLike<number>);
}

/** The multi-index of flat position `i` in `shape`, as "[a, b]" (or "[i]" without a shape). */
function fmtIndex(i: number, shape: readonly number[] | null): string {
  if (!shape || shape.length === 0) return `[${i}]`;
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(shape[d] ? i % shape[d] : 0);
    i = shape[d] ? Math.floor(i / shape[d]) : 0;
  }
  return `[${idx.join(", ")}]`;
}

/**
 * Assert that `actual` matches `expected` elementwise within `atol + rtol·|expected|` (defaults
 * rtol 1e-5, atol 1e-6). NaN matches NaN and infinities must match exactly. When `actual` is a
 * tensor and `expected` a nested array (or a number, for a scalar), the shapes must agree too; a
 * typed array, or a flat array against a tensor of rank ≥ 2, is compared element by element.
 * The failure message names the first mismatching index, both values and the tolerance.
 */
export async function assertClose(
  actual: Actual | Promise<Actual>,
  expected: Expected,
  opts: { rtol?: number; atol?: number; msg?: string } = {},
): Promise<void> {
  const { rtol = 1e-5, atol = 1e-6, msg } = opts;
  const pre = msg ? `${msg}: ` : "";
  const a = await actual;
  let shape: readonly number[] | null = null;
  let got: number[];
  if (a instanceof Tensor) {
    shape = a.shape;
    got = Array.from(await a.data());
    const want = nestedShape(expected);
    // A flat array against a tensor of rank ≥ 2 is compared with its row-major elements only.
    const flatOnly = !Array.isArray(expected) || (want.length === 1 && a.rank > 1);
    if (!flatOnly || typeof expected === "number" || typeof expected === "boolean") {
      if (want.join() !== a.shape.join()) {
        throw new Error(`${pre}shape [${a.shape.join(", ")}] differs from expected [${want.join(", ")}]`);
      }
    }
  } else {
    got = typeof a === "number" ? [a] : Array.from(a);
  }
  const want = flatten(expected);
  if (got.length !== want.length) {
    throw new Error(`${pre}${got.length} elements, expected ${want.length}`);
  }
  for (let i = 0; i < want.length; i++) {
    const [x, y] = [got[i], want[i]];
    const ok = Number.isNaN(y)
      ? Number.isNaN(x)
      : !Number.isFinite(y)
      ? x === y
      : Math.abs(x - y) <= atol + rtol * Math.abs(y);
    if (!ok) {
      throw new Error(
        `${pre}mismatch at ${fmtIndex(i, shape)}: actual ${x}, expected ${y} ` +
          `(|diff| ${Math.abs(x - y)} > atol ${atol} + rtol ${rtol}·|expected|)`,
      );
    }
  }
}

/** A tensor of `shape` with uniform values in [lo, hi), reproducible from `seed`. */
export function seededUniform<const S extends Shape>(
  shape: S,
  seed: number,
  lo = -1,
  hi = 1,
  dtype: "f32" | "f64" = "f32",
): Tensor<S> {
  const r = rng(seed);
  let n = 1;
  for (const d of shape) n *= d;
  return fromArray(Array.from({ length: n }, () => lo + (hi - lo) * r()), shape, dtype);
}

/** Uniform values whose magnitudes stay at least `gap` away from 0 and from each other (inputs
 * for gradchecks of kinked ops: relu, abs, max…). */
export function seededDistinct<const S extends Shape>(shape: S, seed: number, gap = 0.05): Tensor<S> {
  const r = rng(seed);
  let n = 1;
  for (const d of shape) n *= d;
  const vals: number[] = [];
  while (vals.length < n) {
    const v = (r() * 2 - 1) * 2;
    if (Math.abs(v) >= gap && vals.every((u) => Math.abs(Math.abs(u) - Math.abs(v)) >= gap)) vals.push(v);
  }
  return fromArray(vals, shape);
}

/** Assert that `fn` throws (or rejects with) an error of class `cls` whose message contains
 * every string of `parts`; returns the error. */
export async function assertThrowsWith(
  fn: () => unknown,
  cls: abstract new (...args: any[]) => Error,
  parts: string[],
): Promise<Error> {
  let err: unknown = null;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof Error)) {
    throw new Error(`expected ${cls.name} containing ${JSON.stringify(parts)}; nothing thrown`);
  }
  if (!(err instanceof cls)) {
    const e = err as Error;
    throw new Error(`expected ${cls.name}, got ${e.name}: ${e.message}`);
  }
  for (const p of parts) {
    if (!err.message.includes(p)) {
      throw new Error(`${cls.name} message "${err.message}" does not contain "${p}"`);
    }
  }
  return err;
}

/** Run `train.ts` with `args` in a subprocess (no colour); its exit code and output. */
export async function runTrain(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../train.ts", import.meta.url).pathname, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
