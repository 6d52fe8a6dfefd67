/**
 * The WebGPU backend: every primitive becomes one generated kernel (see wgsl.ts) recorded into the
 * device's pending encoder (see device.ts). Before generating, dims that are contiguous in every
 * view are merged and size-1 dims dropped, so most kernels run at rank 1 and one pipeline serves
 * many shapes. Results equal the CPU backend's up to f32 rounding.
 */
import {
  type Backend,
  type BackendBuffer,
  contiguousStrides,
  hostArray,
  numel,
  type ReduceOp,
  type Src,
  type TypedArray,
  type View,
} from "../backend.ts";
import { cnst, type DType, type Exp, key, mapLeaves } from "../exp.ts";
import { Gpu, type Raw } from "./device.ts";
import {
  type Binding,
  literal,
  matmulKernel,
  type MatmulTile,
  p,
  render,
  scatterKernel,
  stridedKernel,
  threadsPer,
  wgslType,
} from "./wgsl.ts";

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
interface Dim {
  n: number;
  s: number[];
}

/** Merge dims `from..to` that are contiguous in every view of `strides`; drop size-1 dims. */
function collapse(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  from: number,
  to: number,
): Dim[] {
  const out: Dim[] = [];
  for (let d = from; d < to; d++) {
    if (shape[d] === 1) continue;
    const last = out[out.length - 1];
    if (last && strides.every((s, v) => last.s[v] === s[d] * shape[d])) {
      last.n *= shape[d];
      last.s = strides.map((s) => s[d]);
    } else out.push({ n: shape[d], s: strides.map((s) => s[d]) });
  }
  return out;
}

/** Dims kept as they are (used when the expression reads `idx`, whose axes must not move). */
const keep = (
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  from: number,
  to: number,
): Dim[] => shape.slice(from, to).map((n, i) => ({ n, s: strides.map((s) => s[from + i]) }));

const hasIdx = (e: Exp): boolean => {
  let found = false;
  mapLeaves(e, (l) => {
    if (l.op === "idx") found = true;
    return l;
  });
  return found;
};

/** Register-blocked matmul tiles: big register blocks on CPU adapters, smaller on real GPUs. */
const TILE_CPU: MatmulTile = { tm: 4, tn: 4, wx: 8, wy: 8 };
const TILE_GPU: MatmulTile = { tm: 4, tn: 4, wx: 16, wy: 16 };

/** The WebGPU backend. */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu" as const;
  /** The adapter's description and the backend serving it. */
  readonly info: string;

  private constructor(private readonly gpu: Gpu) {
    this.info = gpu.info;
  }

  /** Request an adapter and device; throws "webgpu: no adapter available (…)" without one. */
  static async create(): Promise<WebGpuBackend> {
    return new WebGpuBackend(await Gpu.create());
  }

  alloc(size: number, dtype: DType): BackendBuffer {
    wgslType(dtype);
    return new GpuBuffer(size, dtype, this.gpu.acquire(size * 4));
  }

  upload(data: ArrayLike<number>, dtype: DType): BackendBuffer {
    const t = wgslType(dtype);
    const host = t === "f32"
      ? new Float32Array(data)
      : t === "i32"
      ? new Int32Array(data)
      : new Uint32Array(data);
    const buf = this.alloc(host.length, dtype);
    this.gpu.write(raw(buf), host);
    return buf;
  }

  async read(buf: BackendBuffer): Promise<TypedArray> {
    if (buf.size === 0) return hostArray(buf.dtype, 0);
    const bytes = await this.gpu.read(raw(buf), buf.size * 4, buf.dtype);
    if (buf.dtype === "f32") return new Float32Array(bytes);
    if (buf.dtype === "i32") return new Int32Array(bytes);
    return Uint8Array.from(new Uint32Array(bytes));
  }

  free(buf: BackendBuffer): void {
    const b = buf as GpuBuffer;
    if (b.freed) return;
    b.freed = true;
    this.gpu.release(b.raw);
  }

  /** Bindings for `inputs` plus an output written last; an input that is the output reads it. */
  private bind(inputs: Raw[], out: Raw, types: string[], outType: string) {
    const bufs: Raw[] = [], bindings: Binding[] = [];
    const slots = inputs.map((r, i) => {
      if (r === out) return -1;
      if (!bufs.includes(r)) {
        bufs.push(r);
        bindings.push({ type: types[i], write: false });
      }
      return bufs.indexOf(r);
    });
    bufs.push(out);
    bindings.push({ type: outType, write: true });
    const max = this.gpu.limits.maxStorageBuffersPerShaderStage;
    if (bufs.length > max) {
      throw new Error(
        `webgpu: kernel needs ${bufs.length} storage buffers; maxStorageBuffersPerShaderStage is ${max}`,
      );
    }
    return { bufs, bindings, slots: slots.map((s) => (s < 0 ? bufs.length - 1 : s)) };
  }

  /** Render `e` with `load k` reading binding `slots[k]` at offset `o{k}` and `idx` via `axisOf`. */
  private value(e: Exp, slots: number[], axisOf: (a: number) => number): string {
    return render(
      e,
      (l) => l.op === "load" ? `B${slots[l.i]}[o${l.i}]` : `i32(i${axisOf((l as { axis: number }).axis)})`,
    );
  }

  map(e: Exp, inputs: Src[], shape: readonly number[], into?: Src): BackendBuffer {
    const out = into?.buf ?? this.alloc(numel(shape), e.dtype);
    const n = numel(shape);
    if (n === 0) return out;
    const ov: View = into?.view ?? { shape, strides: contiguousStrides(shape), offset: 0 };
    const views = [...inputs.map((x) => x.view), ov];
    const idx = hasIdx(e);
    const dims = (idx ? keep : collapse)(shape, views.map((v) => v.strides), 0, shape.length);
    const { bufs, bindings, slots } = this.bind(
      inputs.map((x) => raw(x.buf)),
      raw(out),
      inputs.map((x) => wgslType(x.buf.dtype)),
      wgslType(out.dtype),
    );
    const src = stridedKernel(
      "map",
      this.value(e, slots, (a) => a),
      inputs.length,
      bindings,
      dims.length,
      dims.length,
    );
    const params = [n, 1, ...dims.map((d) => d.n)];
    views.forEach((v, k) => params.push(v.offset, ...dims.map((d) => d.s[k])));
    this.gpu.dispatch(
      `map ${key(e).slice(0, 80)}`,
      src,
      bindings,
      bufs,
      params,
      this.gpu.grid(Math.ceil(n / 256)),
    );
    return out;
  }

  reduce(op: ReduceOp, e: Exp, inputs: Src[], shape: readonly number[], axes: number[]): BackendBuffer {
    const arg = op === "argmax" || op === "argmin";
    const outDtype: DType = arg ? "i32" : e.dtype;
    const kept = shape.map((_, d) => d).filter((d) => !axes.includes(d));
    const order = [...kept, ...axes];
    const nOut = numel(kept.map((d) => shape[d])), nRed = numel(axes.map((d) => shape[d]));
    const init = op === "sum" || arg ? 0 : op === "max" ? -Infinity : Infinity;
    if (nOut === 0 || nRed === 0) return this.upload(hostArray(outDtype, nOut).fill(init), outDtype);
    // Reorder dims as [kept..., reduced...] so outputs index the outer dims, then merge each group.
    const pshape = order.map((d) => shape[d]);
    const pstrides = inputs.map((x) => order.map((d) => x.view.strides[d]));
    const idx = hasIdx(e);
    const f = idx ? keep : collapse;
    const outer = f(pshape, pstrides, 0, kept.length), inner = f(pshape, pstrides, kept.length, order.length);
    const dims = [...outer, ...inner];
    const out = this.alloc(nOut, outDtype);
    const { bufs, bindings, slots } = this.bind(
      inputs.map((x) => raw(x.buf)),
      raw(out),
      inputs.map((x) => wgslType(x.buf.dtype)),
      wgslType(outDtype),
    );
    const acc = wgslType(e.dtype);
    const start = op === "sum"
      ? literal(0, e.dtype)
      : acc === "f32"
      ? literal(op === "max" || op === "argmax" ? -Infinity : Infinity, "f32")
      : op === "max" || op === "argmax"
      ? (acc === "i32" ? "bitcast<i32>(0x80000000u)" : "0u")
      : (acc === "i32" ? "2147483647i" : "0xffffffffu");
    const T = threadsPer(nRed);
    const value = this.value(e, slots, (a) => order.indexOf(a));
    const src = stridedKernel(op, value, inputs.length, bindings, dims.length, outer.length, T, acc, start);
    const params = [nOut, nRed, ...dims.map((d) => d.n)];
    inputs.forEach((x, k) => params.push(x.view.offset, ...dims.map((d) => d.s[k])));
    const grid = this.gpu.grid(Math.ceil(nOut / (256 / T)));
    this.gpu.dispatch(`reduce-${op} ${key(e).slice(0, 80)}`, src, bindings, bufs, params, grid);
    return out;
  }

  matmul(a: Src, b: Src): BackendBuffer {
    if (a.buf.dtype !== "f32" || b.buf.dtype !== "f32") throw new Error("webgpu: matmul supports f32 only");
    const r = a.view.shape.length;
    const [M, K, N] = [a.view.shape[r - 2], a.view.shape[r - 1], b.view.shape[r - 1]];
    const batchShape = a.view.shape.slice(0, -2);
    const nb = numel(batchShape);
    const outShape = [...batchShape, M, N];
    if (K === 0) return this.map(cnst(0, "f32"), [], outShape);
    const out = this.alloc(nb * M * N, "f32");
    if (nb * M * N === 0) return out;
    const outStrides = contiguousStrides(outShape);
    const batch = collapse(batchShape, [a.view.strides, b.view.strides, outStrides], 0, r - 2);
    const nz = numel(batch.map((d) => d.n));
    if (nz > this.gpu.limits.maxComputeWorkgroupsPerDimension) {
      throw new Error(`webgpu: matmul batch ${nz} too large`);
    }
    const [as0, as1] = a.view.strides.slice(-2), [bs0, bs1] = b.view.strides.slice(-2);
    const tile = this.gpu.cpuLike ? TILE_CPU : TILE_GPU;
    const src = matmulKernel(batch.length, tile, as1 === 1, bs1 === 1);
    const params = [M, K, N, 0, ...batch.map((d) => d.n)];
    params.push(a.view.offset, ...batch.map((d) => d.s[0]), as0, as1);
    params.push(b.view.offset, ...batch.map((d) => d.s[1]), bs0, bs1);
    const bindings = [{ type: "f32", write: false }, { type: "f32", write: false }, {
      type: "f32",
      write: true,
    }];
    this.gpu.dispatch(`matmul ${M}x${K}x${N}`, src, bindings, [raw(a.buf), raw(b.buf), raw(out)], params, [
      Math.ceil(N / (tile.tn * tile.wx)),
      Math.ceil(M / (tile.tm * tile.wy)),
      nz,
    ]);
    return out;
  }

  gather(src: Src, index: Src, axis: number): BackendBuffer {
    const shape = index.view.shape, n = numel(shape);
    const out = this.alloc(n, src.buf.dtype);
    if (n === 0) return out;
    // src read at index's positions with the axis stride zeroed; the index adds `idx * stride`.
    const sv = src.view.strides.map((s, d) => (d === axis ? 0 : s));
    const views = [index.view.strides, sv, contiguousStrides(shape)];
    const dims = collapse(shape, views, 0, shape.length);
    const t = wgslType(src.buf.dtype);
    const { bufs, bindings, slots } = this.bind([raw(index.buf), raw(src.buf)], raw(out), ["i32", t], t);
    const rank = dims.length, extra = 2 + rank + 3 * (rank + 1);
    const value = `B${slots[1]}[o1 + B${slots[0]}[o0] * ${p(extra)}]`;
    const code = stridedKernel("map", value, 2, bindings, rank, rank, 1, t, "", 1);
    const params = [n, 1, ...dims.map((d) => d.n)];
    [index.view.offset, src.view.offset, 0].forEach((o, k) => params.push(o, ...dims.map((d) => d.s[k])));
    params.push(src.view.strides[axis]);
    this.gpu.dispatch(`gather axis ${axis}`, code, bindings, bufs, params, this.gpu.grid(Math.ceil(n / 256)));
    return out;
  }

  scatterAdd(index: Src, src: Src, axis: number, shape: readonly number[]): BackendBuffer {
    const n = numel(shape), t = wgslType(src.buf.dtype);
    const out = this.alloc(n, src.buf.dtype);
    if (n === 0) return out;
    const params = [n, 0, ...shape, ...index.view.shape];
    params.push(index.view.offset, ...index.view.strides, src.view.offset, ...src.view.strides);
    const bindings = [{ type: "i32", write: false }, { type: t, write: false }, { type: t, write: true }];
    const bufs = [raw(index.buf), raw(src.buf), raw(out)];
    const grid = this.gpu.grid(Math.ceil(n / 256));
    this.gpu.dispatch(
      `scatterAdd axis ${axis}`,
      scatterKernel(shape.length, axis, t),
      bindings,
      bufs,
      params,
      grid,
    );
    return out;
  }

  flush(): Promise<void> {
    this.gpu.check();
    this.gpu.submit();
    return Promise.resolve();
  }

  pooledBytes(): number {
    return this.gpu.pooledBytes();
  }
}
