/**
 * The Backend interface: the few primitives every op in the library is composed from. A backend
 * owns opaque buffers; the frontend (tensor.ts) owns shapes, views, laziness and autograd.
 *
 * Every read goes through a strided `View`, so transposes, broadcasts and slices reach kernels
 * without copies. Every primitive writes a fresh, contiguous (row-major) buffer unless `into` says
 * where. Nothing here is synchronous except recording work: only `read` waits for the device.
 */
import type { DType, Exp } from "./exp.ts";

/** A strided window on a buffer, in elements: element `i` (a multi-index) lives at
 * `offset + Σ i[d]·strides[d]`. A stride of 0 is a broadcast. */
export interface View {
  /** Size of each dimension. */
  shape: readonly number[];
  /** Elements to step per index of each dimension. */
  strides: readonly number[];
  /** Element where index 0 lives. */
  offset: number;
}

/** Backend-owned storage. `size` is in elements. */
export interface BackendBuffer {
  /** Elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
}

/** An input to a kernel: a buffer read through a view (whose shape is the kernel's shape). */
export interface Src {
  /** The buffer read. */
  buf: BackendBuffer;
  /** How it is read. */
  view: View;
}

/** Typed arrays the library reads back: f32, f64, i32, and bool as Uint8Array (0/1). */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** Reductions a backend implements. `argmax`/`argmin` give the first index on ties (i32). */
export type ReduceOp = "sum" | "max" | "min" | "argmax" | "argmin";

/** Attention's inputs: q [B, H, T, D], k and v [B, H, S, D]; key j is hidden (score −1e9) from
 * query i when j > past + i or the key mask [B, S] is false there. */
export interface AttentionInputs {
  /** Queries. */
  q: Src;
  /** Keys. */
  k: Src;
  /** Values. */
  v: Src;
  /** Key mask [B, S] (bool), or null. */
  mask: Src | null;
  /** Positions before the first query (a KV cache's length). */
  past: number;
}

/** The primitives. */
export interface Backend {
  /** "cpu" or "webgpu". */
  readonly name: "cpu" | "webgpu";
  /** What runs the kernels, e.g. the adapter's description. */
  readonly info: string;
  /** How many reads an operand's fused expression may have before it is realized (default 4). */
  readonly fuseReads?: number;
  /** A new uninitialised buffer (used as an `into` target). */
  alloc(size: number, dtype: DType): BackendBuffer;
  /** Copy host data into a new buffer. */
  upload(data: ArrayLike<number>, dtype: DType): BackendBuffer;
  /** Read a buffer back to the host (the only wait): the whole of it, or just its `n` elements from `at`. */
  read(buf: BackendBuffer, at?: number, n?: number): Promise<TypedArray>;
  /** Give a buffer back; the backend may pool it. */
  free(buf: BackendBuffer): void;
  /** out[i] = exp(inputs[·] at i) for every multi-index i of `shape`, where `load k` reads
   * `inputs[k]` through its view (its view's shape equals `shape`). Writes a new contiguous buffer
   * of dtype `exp.dtype`, or the strided region `into` of an existing one. */
  map(exp: Exp, inputs: Src[], shape: readonly number[], into?: Src): BackendBuffer;
  /** Several maps over one shape and the same inputs in one launch (optional: where absent, the
   * frontend maps each): `into[i]`, a strided region of a distinct buffer, gets `exps[i]`. All reads
   * at an index happen before any write there, so an output may also be an input read through the
   * same view (an in-place update); through another view it would race. */
  mapMany?(exps: Exp[], inputs: Src[], shape: readonly number[], into: Src[]): void;
  /** Reduce `exp` (evaluated as in `map` over `shape`) along `axes` (sorted, distinct). The result
   * is contiguous with `shape` where reduced axes have size 1. argmax/argmin give i32 indices. */
  reduce(op: ReduceOp, exp: Exp, inputs: Src[], shape: readonly number[], axes: number[]): BackendBuffer;
  /** Batched matmul: a is [...batch, M, K], b is [...batch, K, N] (batch dims already broadcast
   * through strides), result contiguous [...batch, M, N] in a's float dtype. */
  matmul(a: Src, b: Src): BackendBuffer;
  /** out[i] = src[i with i[axis] := index[i]] over index's shape (torch.gather); src's view spans
   * the source's whole `axis`. Indices are checked by the frontend (the CPU backend checks again). */
  gather(src: Src, index: Src, axis: number): BackendBuffer;
  /** out = zeros(shape); out[i with i[axis] := index[i]] += src[i] over index's shape
   * (torch.scatter_add; deterministic order). */
  scatterAdd(index: Src, src: Src, axis: number, shape: readonly number[]): BackendBuffer;
  /** Fused causal attention (optional: where absent, tensor/composite.ts composes it): softmax(q·kᵀ/√D)·v
   * as contiguous [B, H, T, D], with buffers its backward needs after it. */
  attention?(a: AttentionInputs): BackendBuffer[];
  /** The backward of `attention` given what it returned and the output's gradient: [dq, dk, dv]. */
  attentionGrad?(a: AttentionInputs, fwd: BackendBuffer[], g: Src): BackendBuffer[];
  /** Fused layer normalization over the last axis of f32 `x` (optional: where absent, tensor/composite.ts
   * composes it): [y (contiguous, x's shape), stats (each row's mean and 1/σ, for the backward)]. */
  layerNorm?(x: Src, weight: Src | null, bias: Src | null, eps: number): BackendBuffer[];
  /** The backward of `layerNorm` from its inputs, its stats and the output's gradient: dx, then the
   * gradients of the weight and of the bias when present. */
  layerNormGrad?(x: Src, weight: Src | null, bias: Src | null, stats: BackendBuffer, g: Src): BackendBuffer[];
  /** Overwrite a whole buffer with host data, after every kernel recorded so far. */
  write(buf: BackendBuffer, data: ArrayLike<number>): void;
  /** Run a compiled step's recorded launches again (one submit on WebGPU). */
  replay(arena: Arena): void;
  /** Submit recorded work; resolves when it is queued. */
  flush(): Promise<void>;
  /** Bytes held in the backend's free pool. */
  pooledBytes(): number;
}

/** Row-major strides of a contiguous shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = shape.map(() => 1); // (a loop, not a product per dim: every op's views come through here)
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1] * shape[d + 1];
  return s;
}

/** Whether a view reads its buffer in row-major order without gaps. */
export const isContig = (v: View): boolean =>
  contiguousStrides(v.shape).every((s, d) => v.shape[d] === 1 || s === v.strides[d]);

/** Number of elements of a shape. */
export const numel = (shape: readonly number[]): number => shape.reduce((n, d) => n * d, 1);

/** Offsets of every element of `view` in row-major order. */
export function offsets(view: View): Int32Array {
  const out = new Int32Array(numel(view.shape));
  const i = view.shape.map(() => 0);
  let o = view.offset;
  for (let p = 0; p < out.length; p++) {
    out[p] = o;
    for (let d = i.length - 1; d >= 0; d--) {
      i[d]++;
      o += view.strides[d];
      if (i[d] < view.shape[d]) break;
      o -= i[d] * view.strides[d];
      i[d] = 0;
    }
  }
  return out;
}

// The typed array each dtype is held in on the host (bool as 0/1 bytes).
const HOST_ARRAYS = { f32: Float32Array, f64: Float64Array, i32: Int32Array, bool: Uint8Array };
/** A host typed array for a dtype. */
export function hostArray(dtype: DType, n: number): TypedArray {
  return new HOST_ARRAYS[dtype](n);
}

/** An environment variable, or undefined when unset or without env permission (the library imports
 * and runs with no permissions). */
export function envVar(name: string): string | undefined {
  try {
    return (globalThis as { Deno?: { env: { get(k: string): string | undefined } } }).Deno?.env.get(name);
  } catch { /* no env permission: unset */ }
}

/** What a compiled step (autograd/compile.ts) owns: the launches recorded in its second call, the
 * buffers they touch that it allocated, and host writes to repeat. Its buffers never go back to a
 * pool while it lives, so between replays nothing else can overwrite them. */
export class Arena {
  /** The backend's recorded launches, in order. */
  readonly launches: unknown[] = [];
  /** Host writes to repeat before each replay (an optimizer's step coefficients). */
  readonly hooks: (() => void)[] = [];
  /** Buffers allocated while recording, and uploads among them (constants: never reused). */
  readonly owned: Set<BackendBuffer> = new Set();
  /** Uploads made while recording: constants of the step, never reused for anything else. */
  readonly constants: Set<BackendBuffer> = new Set();
  /** Owned buffers that no tensor holds (reused by later allocations while recording). */
  readonly spare: BackendBuffer[] = [];
  /** Backend data made from the launches at the first replay (WebGPU: bind groups). */
  plan: unknown = null;
  /** Tensors numbered below this existed before the recording: the step's state. */
  constructor(readonly since: number) {}
}

/** Arenas of live compiled steps, and the one recording now. */
export const arenas: { live: Set<Arena>; current: Arena | null } = { live: new Set(), current: null };

/** Backends allocate through this: a spare buffer of the recording arena, else `fresh()`, which
 * the arena then owns (uploads as constants). */
export function arenaAlloc<B extends BackendBuffer>(
  size: number,
  dtype: DType,
  fresh: () => B,
  upload = false,
): B {
  const a = arenas.current, spare = a && !upload ? a.spare : []; // uploads take no spare
  const i = spare.findIndex((b) => b.size === size && b.dtype === dtype && !a!.constants.has(b));
  if (i >= 0) return spare.splice(i, 1)[0] as B;
  const b = fresh();
  if (a) a.owned.add(b), upload && a.constants.add(b);
  return b;
}

/** Backends free through this: true when a live arena keeps `buf` (it becomes spare). */
export function arenaFree(buf: BackendBuffer): boolean {
  for (const a of arenas.live) if (a.owned.has(buf)) return (a.spare.push(buf), true);
  return false;
}
