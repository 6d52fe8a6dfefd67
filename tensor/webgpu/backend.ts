/**
 * The WebGPU backend: every primitive becomes one generated kernel (kernels.ts and tiled.ts, with
 * element expressions from render/wgsl.ts) recorded into the device's pending encoder (device.ts).
 * Before generating, dims that are contiguous in every view are merged and size-1 dims dropped, so
 * most kernels run at rank 1 and one pipeline serves many shapes. Results equal the CPU backend's
 * up to f32 rounding.
 */
import type { AttentionInputs, Backend, BackendBuffer, ReduceOp, Src, TypedArray } from "../backend.ts";
import { type Arena, arenaAlloc, arenaFree, contiguousStrides, hostArray, numel } from "../backend.ts";
import { bin, cast, cnst, type DType, type Exp, idx, key, load, where } from "../exp.ts";
import { literal, render, wgslType } from "../render/wgsl.ts";
import { Gpu, type Raw } from "./device.ts";
import {
  mapKernel,
  MATMUL_BINDINGS,
  matmulVec4Kernel,
  p,
  reduceKernel,
  RO,
  RW,
  scatterKernel,
  SORT_PACK,
  SORT_STEP,
  threadsPer,
  type Vec4Block,
  viewAt,
} from "./kernels.ts";
import { tiledMatmulGrid, tiledMatmulKernel } from "./tiled.ts";
import { ATTENTION_ROWS, attentionForward, attentionGradKV, attentionGradQ } from "./attention.ts";
import { LAYER_NORM_GRAD_WB, layerNormForward, layerNormGradX } from "./layernorm.ts";

/** A device buffer: `size` elements of `dtype` (bool stored as u32). */
class GpuBuffer implements BackendBuffer {
  freed = false;
  constructor(readonly size: number, readonly dtype: DType, readonly raw: Raw) {}
}

const raw = (b: BackendBuffer): Raw => {
  if ((b as GpuBuffer).freed) throw new Error("webgpu: use of a freed buffer");
  return (b as GpuBuffer).raw;
};

/** One dim after merging: its size and its stride in every view. */
type Dim = { n: number; s: number[] };
/** One view's strides, in elements. */
type Strides = readonly number[];

/** A kernel's params: `head`, the dims' sizes, then each view's offset and its stride in every dim. */
function dimParams(head: number[], ds: Dim[], offsets: number[]): number[] {
  return [...head, ...ds.map((d) => d.n), ...offsets.flatMap((o, k) => [o, ...ds.map((d) => d.s[k])])];
}

/** Dims `from..to` with their stride in every view. When `merge`, dims contiguous in every view
 * are merged and size-1 dims dropped (not when the expression reads `idx`: its axes must stay). */
function dims(shape: readonly number[], strides: readonly Strides[], from: number, to: number, merge = true) {
  const out: Dim[] = [];
  for (let d = from; d < to; d++) {
    const last = out[out.length - 1];
    if (merge && shape[d] === 1) continue;
    if (merge && last && strides.every((s, v) => last.s[v] === s[d] * shape[d])) {
      last.n *= shape[d];
      last.s = strides.map((s) => s[d]);
    } else out.push({ n: shape[d], s: strides.map((s) => s[d]) });
  }
  return out;
}

/** A reduction as `reduce` takes it: `op` over `axes` of `e`, which reads `inputs`, over `shape`. */
type Reduction = { op: ReduceOp; e: Exp; inputs: Src[]; shape: readonly number[]; axes: number[] };

/** `matmulVec4Kernel`'s register blocks on CPU adapters: big ones for big products (each storage
 * load there costs ~25 cycles, so reuse matters most: measured on llvmpipe). */
const BIG_BLOCK: Vec4Block = { tm: 16, tb: 4, wx: 4, wy: 4 };
const SMALL_BLOCK: Vec4Block = { tm: 4, tb: 1, wx: 8, wy: 8 };
/** All of `buf` read contiguously as `shape`. */
const whole = (buf: BackendBuffer, shape: readonly number[]): Src => ({
  buf,
  view: { shape, strides: contiguousStrides(shape), offset: 0 },
});

/** The WebGPU backend. */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu" as const;
  /** The adapter's description and the backend serving it. */
  readonly info: string;
  /** True on a software (CPU) adapter such as llvmpipe or lavapipe. */
  readonly software: boolean;
  /** 7 (so an AdamW update, p, g, m, v and three coefficients, is one kernel) where two such operands
   * and the output fit the storage-buffer limit. Kernels are f32 throughout: fusion keeps the rounding. */
  readonly fuseReads: number;

  private constructor(private readonly gpu: Gpu) {
    this.info = gpu.info;
    this.software = gpu.cpuLike;
    this.fuseReads = Math.min(7, (gpu.device.limits.maxStorageBuffersPerShaderStage - 1) >> 1);
  }

  /** Request an adapter and device; throws "webgpu: no adapter available (…)" without one. */
  static async create(): Promise<WebGpuBackend> {
    return new WebGpuBackend(await Gpu.create());
  }

  alloc(size: number, dtype: DType, upload = false): BackendBuffer {
    wgslType(dtype);
    return arenaAlloc(size, dtype, () => new GpuBuffer(size, dtype, this.gpu.acquire(size * 4)), upload);
  }

  upload(data: ArrayLike<number>, dtype: DType): BackendBuffer {
    const buf = this.alloc(data.length, dtype, true);
    this.gpu.write(raw(buf), this.host(data, dtype));
    return buf;
  }

  /** Host data as the typed array a buffer of `dtype` holds (bool as u32). */
  private host(data: ArrayLike<number>, dtype: DType) {
    return new { f32: Float32Array, i32: Int32Array, u32: Uint32Array }[wgslType(dtype)](data);
  }

  write(buf: BackendBuffer, data: ArrayLike<number>): void {
    this.gpu.submit(); // queue writes land before pending work: submit that first
    this.gpu.write(raw(buf), this.host(data, buf.dtype));
  }

  replay(arena: Arena): void {
    this.gpu.replay(arena);
  }

  async read(buf: BackendBuffer): Promise<TypedArray> {
    if (buf.size === 0) return hostArray(buf.dtype, 0);
    const bytes = await this.gpu.read(raw(buf), buf.size * 4);
    if (buf.dtype === "bool") return Uint8Array.from(new Uint32Array(bytes));
    return buf.dtype === "f32" ? new Float32Array(bytes) : new Int32Array(bytes);
  }

  free(buf: BackendBuffer): void {
    const b = buf as GpuBuffer;
    if (b.freed || arenaFree(buf)) return;
    b.freed = true;
    this.gpu.release(b.raw);
  }

  /** Bindings for `inputs` plus the outputs, written, last; an input that is an output reads it. */
  private bind(inputs: Src[], outs: BackendBuffer[]) {
    const all = [...new Set(inputs.map((x) => x.buf))].filter((b) => !outs.includes(b)).concat(outs);
    const bindings = all.map((b, i) => ({ type: wgslType(b.dtype), write: i >= all.length - outs.length }));
    const bufs = all.map(raw), max = this.gpu.device.limits.maxStorageBuffersPerShaderStage, n = bufs.length;
    if (n > max) throw new Error(`webgpu: kernel needs ${n} storage buffers (max ${max})`);
    return { bufs, bindings, slots: inputs.map((x) => bufs.indexOf(raw(x.buf))) };
  }

  /** Render `e` with `load k` reading binding `slots[k]` at offset `o{k}` and `idx` via `axisOf`. */
  private value(e: Exp, slots: number[], axisOf: (a: number) => number): string {
    return render(e, (l) => l.op === "load" ? `B${slots[l.i]}[o${l.i}]` : `i32(i${axisOf(l.axis)})`);
  }

  map(e: Exp, inputs: Src[], shape: readonly number[], into?: Src): BackendBuffer {
    const out = into ?? whole(this.alloc(numel(shape), e.dtype), shape);
    this.mapMany([e], inputs, shape, [out]);
    return out.buf;
  }

  mapMany(exps: Exp[], inputs: Src[], shape: readonly number[], into: Src[]): void {
    const n = numel(shape), keys = exps.map(key).join(" ");
    if (n === 0) return;
    const views = [...inputs, ...into].map((x) => x.view);
    const ds = dims(shape, views.map((v) => v.strides), 0, shape.length, !keys.includes("#"));
    const { bufs, bindings, slots } = this.bind(inputs, into.map((x) => x.buf));
    const values = exps.map((e) => this.value(e, slots, (a) => a));
    const src = mapKernel({ values, inputs: inputs.length, bindings, rank: ds.length });
    const params = dimParams([n, 1], ds, views.map((v) => v.offset)), tag = `map ${keys.slice(0, 80)}`;
    this.gpu.dispatch(tag, src, bindings, bufs, params, this.gpu.grid(Math.ceil(n / 256)));
  }

  reduce(op: ReduceOp, e: Exp, inputs: Src[], shape: readonly number[], axes: number[]): BackendBuffer {
    const arg = op === "argmax" || op === "argmin", big = op === "max" || op === "argmax";
    const nRed = numel(axes.map((d) => shape[d])), nOut = numel(shape.filter((_, d) => !axes.includes(d)));
    if (nOut === 0 || nRed === 0) {
      const dt: DType = arg ? "i32" : e.dtype;
      return this.upload(hostArray(dt, nOut).fill(op === "sum" || arg ? 0 : big ? -Infinity : Infinity), dt);
    }
    // Each output runs in one workgroup, so few outputs over long ranges would leave the device
    // (or lavapipe's thread pool) idle: split each range into C chunks of ≥ 4096 elements, about
    // 1024 workgroups in all, reduce to partials [nOut, C], then reduce those. Chunks are in order
    // and each keeps its first best index, so argmax/argmin ties still go to the first index.
    const C = Math.min(Math.ceil(1024 / nOut), Math.floor(nRed / 4096));
    if (C < 2) return this.reducePass({ op, e, inputs, shape, axes });
    const part = this.reducePass({ op, e, inputs, shape, axes }, C, arg ? "out" : "");
    const partial = { buf: part, view: { shape: [nOut, C], strides: arg ? [2 * C, 2] : [C, 1], offset: 0 } };
    const ofPartials = { op, e: load(0, e.dtype), inputs: [partial], shape: [nOut, C], axes: [1] };
    const out = this.reducePass(ofPartials, 1, arg ? "in" : "");
    this.free(part);
    return out;
  }

  /** One reduce dispatch (nonempty) whose outputs each give `chunks` results (default 1); `pairs` as
   * in `reduceKernel`. */
  private reducePass({ op, e, inputs, shape, axes }: Reduction, chunks = 1, pairs: "" | "in" | "out" = "") {
    const arg = op === "argmax" || op === "argmin", big = op === "max" || op === "argmax";
    const kept = shape.map((_, d) => d).filter((d) => !axes.includes(d)), order = [...kept, ...axes];
    const nOut = numel(kept.map((d) => shape[d])), nRed = numel(axes.map((d) => shape[d]));
    // Reorder dims as [kept..., reduced...] so outputs index the outer dims, then merge each group.
    const ps = order.map((d) => shape[d]), pst = inputs.map((x) => order.map((d) => x.view.strides[d]));
    const merge = !key(e).includes("#"), outerDims = dims(ps, pst, 0, kept.length, merge);
    const ds = [...outerDims, ...dims(ps, pst, kept.length, ps.length, merge)];
    const out = this.alloc(nOut * chunks * (pairs === "out" ? 2 : 1), arg ? "i32" : e.dtype);
    const { bufs, bindings, slots } = this.bind(inputs, [out]), acc = wgslType(e.dtype);
    const init = op === "sum" || acc === "f32"
      ? literal(op === "sum" ? 0 : big ? -Infinity : Infinity, e.dtype)
      : acc === "i32"
      ? (big ? "bitcast<i32>(0x80000000u)" : "2147483647i")
      : (big ? "0u" : "0xffffffffu");
    const L = Math.ceil(nRed / chunks), threads = threadsPer(L), rank = ds.length, outer = outerDims.length;
    const value = this.value(e, slots, (a) => order.indexOf(a)), nIn = inputs.length;
    const src = reduceKernel({ op, value, inputs: nIn, bindings, rank, outer, threads, acc, init, pairs });
    const params = [...dimParams([nOut * chunks, nRed], ds, inputs.map((x) => x.view.offset)), chunks, L];
    const grid = this.gpu.grid(Math.ceil((nOut * chunks) / (256 / threads)));
    this.gpu.dispatch(`reduce-${op} ${key(e).slice(0, 80)}`, src, bindings, bufs, params, grid);
    return out;
  }

  /** Matmul on packed operands: workgroup tiles on GPUs (`tiledMatmulKernel`), register blocks on
   * CPU adapters (`matmulVec4Kernel`; `setBackend("auto")` prefers the CPU backend there anyway). */
  matmul(a: Src, b: Src): BackendBuffer {
    if (a.buf.dtype === "i32" && b.buf.dtype === "i32") return this.intMatmul(a, b);
    if (a.buf.dtype !== "f32" || b.buf.dtype !== "f32") throw new Error("webgpu: matmul supports f32 only");
    const r = a.view.shape.length, [M, K, N] = [...a.view.shape.slice(-2), b.view.shape[r - 1]];
    const batchShape = a.view.shape.slice(0, -2);
    if (K === 0) return this.map(cnst(0, "f32"), [], [...batchShape, M, N]);
    const out = this.alloc(numel(batchShape) * M * N, "f32");
    if (numel(batchShape) * M * N === 0) return out;
    const pa = this.packed(a, K), pb = this.packed(b, N, true);
    const Kp = Math.ceil(K / 4) * 4, Np = Math.ceil(N / 4) * 4;
    const strides = [pa.src.view.strides, pb.src.view.strides, contiguousStrides([...batchShape, M, N])];
    const batch = dims(batchShape, strides, 0, r - 2);
    const nz = numel(batch.map((d) => d.n)), lim = this.gpu.device.limits.maxComputeWorkgroupsPerDimension;
    if (nz > lim) throw new Error(`webgpu: matmul batch ${nz} too large`);
    const params = [M, Kp, N, Np, ...batch.map((d) => d.n), ...batch.map((d) => d.s[0])];
    params.push(...batch.map((d) => d.s[1]), pa.src.view.offset, pb.src.view.offset, K);
    // Real GPUs: workgroup-memory tiles (tiled.ts); CPU adapters: register blocks, no barriers.
    const tiled = !this.gpu.cpuLike, block = M * N * K >= 64 ** 3 ? BIG_BLOCK : SMALL_BLOCK;
    const src = tiled ? tiledMatmulKernel(batch.length) : matmulVec4Kernel(batch.length, block);
    const grid: [number, number, number] = tiled
      ? tiledMatmulGrid(M, N, nz)
      : [Math.ceil(Np / 4 / block.tb / block.wx), Math.ceil(M / block.tm / block.wy), nz];
    const bufs = [pa.src.buf, pb.src.buf, out].map(raw);
    this.gpu.dispatch(`matmul ${M}x${K}x${N}`, src, MATMUL_BINDINGS, bufs, params, grid);
    for (const x of [pa, pb]) if (x.tmp) this.free(x.src.buf);
    return out;
  }

  /** i32 matmul (the frontend keeps integer operands integer) as an f32 matmul of converted
   * copies: exact while every partial sum stays below 2^24 in magnitude. */
  private intMatmul(a: Src, b: Src): BackendBuffer {
    const conv = (x: Src, to: DType) =>
      whole(this.map(cast(load(0, x.buf.dtype), to), [x], x.view.shape), x.view.shape);
    const [fa, fb] = [conv(a, "f32"), conv(b, "f32")], r = a.view.shape.length;
    const c = whole(this.matmul(fa, fb), [...a.view.shape.slice(0, -1), b.view.shape[r - 1]]);
    const out = conv(c, "i32").buf;
    for (const t of [fa, fb, c]) this.free(t.buf);
    return out;
  }

  /** An operand as packed [...batch, rowsP, colsP] (colsP = cols rounded up to 4; rowsP = rows, or
   * rounded up to 4 when `padRows`), zero padded: the view itself when it already is, else a copy.
   * B's rows are padded so the k-loop's last vec4 of A (zero padded) never meets another batch's
   * data (0·Inf would be NaN). */
  private packed(x: Src, cols: number, padRows = false): { src: Src; tmp: boolean } {
    const v = x.view, r = v.shape.length, colsP = Math.ceil(cols / 4) * 4, rows = v.shape[r - 2];
    const rowsP = padRows ? Math.ceil(rows / 4) * 4 : rows;
    const ok = cols === colsP && rows === rowsP && v.strides[r - 1] === 1 && v.strides[r - 2] === cols &&
      v.offset % 4 === 0 && v.strides.slice(0, -2).every((s) => s % 4 === 0);
    if (ok) return { src: x, tmp: false };
    const shape = [...v.shape.slice(0, -2), rowsP, colsP];
    const below = (axis: number, n: number) => bin("lt", idx(axis), cnst(n, "i32"));
    const e = where(bin("and", below(r - 1, cols), below(r - 2, rows)), load(0, "f32"), cnst(0, "f32"));
    return { src: whole(this.map(e, [{ buf: x.buf, view: { ...v, shape } }], shape), shape), tmp: true };
  }

  attention(a: AttentionInputs): BackendBuffer[] {
    const rows = numel(a.q.view.shape.slice(0, 3));
    const [out, stats] = [a.q.view.shape[3], 3].map((n) => this.alloc(rows * n, "f32"));
    this.attend(attentionForward, a, a.q, [out, stats]); // (q stands in for the absent dout)
    return [out, stats];
  }

  attentionGrad(a: AttentionInputs, [out, stats]: BackendBuffer[], g: Src): BackendBuffer[] {
    const [dq, dk, dv] = [a.q, a.k, a.v].map((x) => this.alloc(numel(x.view.shape), "f32"));
    this.attend(attentionGradQ, a, g, [g.buf, out, stats, dq]);
    this.attend(attentionGradKV, a, g, [g.buf, stats, dk, dv]);
    return [dq, dk, dv];
  }

  /** One attention kernel (tensor/webgpu/attention.ts): a workgroup per block of query or key rows;
   * the last two of `rest` are written. */
  private attend(code: (D: number) => string, a: AttentionInputs, g: Src, rest: BackendBuffer[]) {
    const { q, k, v, mask, past } = a, [B, H, T, D] = q.view.shape, S = k.view.shape[2];
    const over = code === attentionGradKV ? "key" : "query", params = [0, H, T, S, past, mask ? 1 : 0];
    for (const x of [q, k, v, mask, g]) params.push(x?.view.offset ?? 0, ...(x?.view.strides ?? [0, 0]));
    const bufs = [q, k, v, mask ?? q].map((x) => x.buf).concat(rest).map(raw);
    const bindings = bufs.map((_, i) => ({ type: i === 3 ? "u32" : "f32", write: i >= bufs.length - 2 }));
    const blocks = B * H * Math.ceil((over === "query" ? T : S) / ATTENTION_ROWS);
    this.gpu.dispatch(`attention ${over} rows`, code(D), bindings, bufs, params, this.gpu.grid(blocks));
  }

  layerNorm(x: Src, weight: Src | null, bias: Src | null, eps: number): BackendBuffer[] {
    const n = numel(x.view.shape), out = [n, (2 * n) / x.view.shape.at(-1)!].map((k) => this.alloc(k, "f32"));
    return this.norm(layerNormForward(!!weight, !!bias), [x, weight, bias, null], out, out[1].size / 2, eps);
  }

  layerNormGrad(x: Src, weight: Src | null, bias: Src | null, stats: BackendBuffer, g: Src): BackendBuffer[] {
    const n = numel(x.view.shape), D = x.view.shape.at(-1)!;
    const [dx, dw, db] = [n, D, D].map((k) => this.alloc(k, "f32"));
    this.norm(layerNormGradX(!!weight), [x, weight, null, g], [stats, dx], n / D);
    if (weight || bias) this.norm(LAYER_NORM_GRAD_WB, [x, null, null, g], [stats, dw, db], D);
    // dx, then the gradients of the weight and bias given (freeing the others).
    return [dx, dw, db].filter((b, i) => [x, weight, bias][i] || this.free(b));
  }

  /** One layerNorm kernel (tensor/webgpu/layernorm.ts) over `groups` workgroups: x, the weight, the bias
   * and g (contiguous; an absent one bound as x), then `rest`, written; `eps` for the forward. */
  private norm(code: string, srcs: (Src | null)[], rest: BackendBuffer[], groups: number, eps = 0) {
    const [x] = srcs as Src[], D = x.view.shape.at(-1)!, params = [numel(x.view.shape) / D, D];
    params.push(...srcs.map((s) => s?.view.offset ?? 0), new Int32Array(Float32Array.of(eps).buffer)[0]);
    const bufs = srcs.map((s) => raw((s ?? x).buf)).concat(rest.map(raw));
    const bindings = bufs.map((_, i) => ({ type: "f32", write: i >= 4 }));
    this.gpu.dispatch("layerNorm", code, bindings, bufs, params, this.gpu.grid(groups));
    return rest;
  }

  gather(src: Src, index: Src, axis: number): BackendBuffer {
    const shape = index.view.shape, n = numel(shape), out = this.alloc(n, src.buf.dtype);
    if (n === 0) return out;
    // src read at index's positions with the axis stride zeroed; the index adds `idx * stride`.
    const sv = src.view.strides.map((s, d) => (d === axis ? 0 : s));
    const ds = dims(shape, [index.view.strides, sv, contiguousStrides(shape)], 0, shape.length);
    const { bufs, bindings, slots } = this.bind([index, src], [out]);
    // The axis stride is one extra param after the output's view (view 2).
    const rank = ds.length, value = `B${slots[1]}[o1 + B${slots[0]}[o0] * ${p(viewAt(rank, 3))}]`;
    const code = mapKernel({ values: [value], inputs: 2, bindings, rank, extraParams: 1 });
    const offsets = [index.view.offset, src.view.offset, 0];
    const params = [...dimParams([n, 1], ds, offsets), src.view.strides[axis]];
    this.gpu.dispatch(`gather axis ${axis}`, code, bindings, bufs, params, this.gpu.grid(Math.ceil(n / 256)));
    return out;
  }

  scatterAdd(index: Src, src: Src, axis: number, shape: readonly number[]): BackendBuffer {
    const n = numel(shape), t = wgslType(src.buf.dtype), out = this.alloc(n, src.buf.dtype);
    if (n === 0) return out;
    const params = [n, 0, ...shape, ...index.view.shape];
    params.push(index.view.offset, ...index.view.strides, src.view.offset, ...src.view.strides);
    const sorted = this.sortIndex(index, axis, shape[axis]);
    if (sorted) params.push(sorted.bits, sorted.keys.size);
    const bindings = [RO(sorted ? "u32" : "i32"), RO(t), RW(t)];
    const code = scatterKernel(shape.length, axis, t, !!sorted), grid = this.gpu.grid(Math.ceil(n / 256));
    const bufs = [sorted?.keys ?? index.buf, src.buf, out].map(raw);
    this.gpu.dispatch(`scatterAdd axis ${axis}`, code, bindings, bufs, params, grid);
    if (sorted) this.free(sorted.keys);
    return out;
  }

  /** An index that is the same across every axis but `axis` (an embedding's gradient) sorted on the
   * device as keys target << bits | entry, so each output binary-searches its own entries: O(N·C),
   * not O(V·N·C), for indices from the host and from the device alike. Undefined where the index
   * varies across other axes (each output then reads only its row) or keys would not fit 32 bits. */
  private sortIndex(index: Src, axis: number, n: number): { keys: BackendBuffer; bits: number } | undefined {
    const v = index.view, N = v.shape[axis], bits = Math.ceil(Math.log2(Math.max(N, 1))), size = 2 ** bits;
    const varies = v.shape.some((m, d) => d !== axis && m > 1 && v.strides[d] !== 0);
    if (varies || n * size >= 2 ** 32) return undefined;
    const keys = this.alloc(size, "i32"), grid = this.gpu.grid(Math.ceil(size / 256));
    const params = [size, N, v.offset, v.strides[axis], n, bits], bufs = [index.buf, keys].map(raw);
    this.gpu.dispatch("sort keys", SORT_PACK, [RO("i32"), RW("u32")], bufs, params, grid);
    for (let block = 2; block <= size; block *= 2) {
      for (let d = block / 2; d >= 1; d /= 2) {
        this.gpu.dispatch("sort step", SORT_STEP, [RW("u32")], [raw(keys)], [block, d, size], grid);
      }
    }
    return { keys, bits };
  }

  flush(): Promise<void> {
    this.gpu.check();
    this.gpu.submit();
    this.gpu.report();
    return Promise.resolve();
  }

  pooledBytes(): number {
    return this.gpu.pooled;
  }
}
