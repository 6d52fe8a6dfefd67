/**
 * The reference backend: plain typed arrays. Expressions are rendered once into JavaScript loop
 * nests (render/js.ts; cached by expression and rank), so the oracle stays readable and is fast
 * enough to train small models. Sums accumulate in f64.
 */
import {
  type Arena,
  arenaAlloc,
  arenaFree,
  arenas,
  type Backend,
  type BackendBuffer,
  contiguousStrides,
  envVar,
  hostArray,
  numel,
  offsets,
  type ReduceOp,
  type Src,
  type TypedArray,
  type View,
} from "./backend.ts";
import { type DType, type Exp, key } from "./exp.ts";
import { PRELUDE, render } from "./render/js.ts";
import { wasmKernel } from "./render/wasm.ts";
import { heapArray, heapAt, heapFree, matmulF32, type Operand, threads } from "./wasm.ts";

/** A CPU buffer is a typed array. */
export class CpuBuffer implements BackendBuffer {
  constructor(readonly data: TypedArray, readonly dtype: DType) {}
  /** Elements. */
  get size(): number {
    return this.data.length;
  }
}

/** A compiled loop kernel: `out` and `acc` are the outputs, `xs` the inputs, `shape` the loop
 * bounds, `s` and `off` each view's strides and offset (inputs first, then the output). */
type Kernel = (
  out: TypedArray,
  acc: Float64Array | null,
  xs: TypedArray[],
  shape: readonly number[],
  s: readonly (readonly number[])[],
  off: number[],
) => void;

/** What a loop kernel computes: `exp` over `inputs` inputs at every index of a rank-`rank` shape,
 * where `body(v, o)` is the statement that consumes value `v` at output offset `o`. `tag` names the
 * body: kernels with the same tag, expression and sizes are the same kernel. */
type KernelSpec = { tag: string; exp: Exp; inputs: number; rank: number; body: Statement };
/** The statement that consumes value `v` at output offset `o`. */
type Statement = (v: string, o: string) => string;

/** The JavaScript of a kernel: a loop nest over the dims that keeps a running offset `o{k}` into
 * each view (view k reads its strides from `s[k]`, offset from `off[k]`; the output is the last
 * view), with the rendered expression and `body` innermost. */
function kernelSource({ exp, inputs, rank, body }: KernelSpec): string {
  const views = [...Array(inputs + 1).keys()];
  const xs = views.slice(0, -1).map((k) => `x${k}`);
  const { defs, value } = render(exp, (l) => (l.op === "load" ? `x${l.i}[o${l.i}]` : `i${l.axis}`));
  const each = (line: (k: number) => string) => views.map(line).join(" "); // one statement per view
  // Every stride and size is hoisted into a local so the loop body touches only numbers.
  const lines = [`const [${xs.join(", ")}] = xs;`, each((k) => `let o${k}_0 = off[${k}];`)];
  for (let d = 0; d < rank; d++) {
    lines.push(`const n${d} = shape[${d}]; ` + each((k) => `const s${k}_${d} = s[${k}][${d}];`));
  }
  const pad = (d: number) => "  ".repeat(d);
  for (let d = 0; d < rank; d++) {
    lines.push(`${pad(d)}for (let i${d} = 0; i${d} < n${d}; i${d}++) {`);
    lines.push(pad(d + 1) + each((k) => `const o${k}_${d + 1} = o${k}_${d} + i${d} * s${k}_${d};`));
  }
  lines.push(pad(rank) + each((k) => `const o${k} = o${k}_${rank};`));
  for (const line of [...defs, body(value, `o${inputs}`)]) lines.push(pad(rank) + line);
  for (let d = rank - 1; d >= 0; d--) lines.push(`${pad(d)}}`);
  return PRELUDE + lines.join("\n") + "\n";
}

const data = (b: BackendBuffer): TypedArray => (b as CpuBuffer).data;

/** Elements below which maps and reductions stay in JavaScript (copying in and out is not worth it). */
const WASM_MIN = 1024;

/** `i` when it indexes an axis of size `n` (the frontend checks indices too, but not those a compiled
 * step's replay meets). */
function inRange(i: number, n: number, op: string): number {
  if (i >= 0 && i < n) return i;
  throw new RangeError(`${op}: index ${i} is out of range for size ${n}`);
}

/** The map kernels' statement: store the value. */
const store: Statement = (v, o) => `out[${o}] = ${v};`;

/** A buffer and its view as `wasmKernel` reads them. */
const wasmSrc = (x: Src) => ({ data: data(x.buf), view: x.view });

/** View with `axis` made stride 0 (so offsets skip it). */
const drop = (v: View, axis: number) => ({ ...v, strides: v.strides.map((s, d) => (d === axis ? 0 : s)) });

/** The CPU backend. */
export class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  get info(): string {
    return `cpu (JavaScript and WebAssembly SIMD, ${threads()} threads)`;
  }
  /** Run large f32 maps and reductions as WebAssembly SIMD (false: all in JavaScript, the reference). */
  wasm = true;

  // Freed arrays are reused by size and dtype: allocating (and zeroing) fresh ones each step cost
  // more than the kernels that fill them. Every primitive overwrites all of its output.
  #pool = new Map<string, CpuBuffer[]>();
  #pooled = 0;
  #kernels = new Map<string, Kernel>();
  #debug = envVar("TENSOR_DEBUG") ?? "";
  /** Since the last flush: kernels compiled, kernels run, bytes of new arrays. */
  #stats = { compiled: 0, launches: 0, allocated: 0 };
  #since = performance.now();

  /** The kernel for `spec`, compiled on first use (printed under TENSOR_DEBUG=kernels). */
  #kernel(spec: KernelSpec): Kernel {
    const k = `${spec.tag}|${key(spec.exp)}|${spec.inputs}|${spec.rank}`;
    const cached = this.#kernels.get(k);
    if (cached) return cached;
    const code = kernelSource(spec);
    if (this.#debug.includes("kernels")) {
      console.log(`// ---- cpu kernel: ${spec.tag} ${key(spec.exp).slice(0, 80)}\n${code}`);
    }
    const f = new Function("out", "acc", "xs", "shape", "s", "off", code) as Kernel;
    this.#kernels.set(k, f);
    this.#stats.compiled++;
    return f;
  }

  /** Run a launch now, and record it when compile is recording a step. */
  #run(launch: () => void): void {
    this.#stats.launches++;
    launch();
    if (arenas.current) arenas.current.launches.push(launch);
  }

  alloc(size: number, dtype: DType, upload = false): BackendBuffer {
    return arenaAlloc(size, dtype, () => {
      const hit = this.#pool.get(`${dtype}${size}`)?.pop();
      // f32 arrays live in WebAssembly's shared memory where it has room: kernels use them in place.
      const buf = hit ?? new CpuBuffer((dtype === "f32" && heapArray(size)) || hostArray(dtype, size), dtype);
      if (hit) this.#pooled -= hit.data.byteLength;
      else this.#stats.allocated += buf.data.byteLength; // a new array (counted for TENSOR_DEBUG=stats)
      return buf;
    }, upload);
  }

  upload(src: ArrayLike<number>, dtype: DType): BackendBuffer {
    const buf = this.alloc(src.length, dtype, true);
    data(buf).set(src);
    return buf;
  }

  write(buf: BackendBuffer, src: ArrayLike<number>): void {
    data(buf).set(src);
  }

  read(buf: BackendBuffer, at = 0, n = buf.size): Promise<TypedArray> {
    return Promise.resolve(data(buf).slice(at, at + n));
  }

  free(buf: BackendBuffer): void {
    const d = data(buf);
    if (arenaFree(buf)) return;
    if (this.#pooled + d.byteLength > 256 << 20) { // let the GC have the rest (WebAssembly memory goes back)
      if (heapAt(d) >= 0) heapFree(d as Float32Array);
      return;
    }
    const k = `${buf.dtype}${d.length}`;
    if (!this.#pool.has(k)) this.#pool.set(k, []);
    this.#pool.get(k)!.push(buf as CpuBuffer);
    this.#pooled += d.byteLength;
  }

  replay(arena: Arena): void {
    for (const launch of arena.launches as (() => void)[]) launch();
    this.#stats.launches += arena.launches.length;
  }

  map(e: Exp, inputs: Src[], shape: readonly number[], into?: Src): BackendBuffer {
    const out = into?.buf ?? this.alloc(numel(shape), e.dtype);
    const ov = into?.view ?? { shape, strides: contiguousStrides(shape), offset: 0 };
    const views = [...inputs.map((x) => x.view), ov];
    // Large f32 maps run as WebAssembly SIMD (render/wasm.ts) when it covers them.
    const simd = this.wasm && numel(shape) >= WASM_MIN &&
      wasmKernel("map", e, inputs.map(wasmSrc), shape, 0, data(out) as Float32Array, ov);
    const [o, xs] = [data(out), inputs.map((x) => data(x.buf))];
    const [s, off] = [views.map((v) => v.strides), views.map((v) => v.offset)];
    const spec = { tag: "map", exp: e, inputs: inputs.length, rank: shape.length, body: store };
    let k: Kernel | undefined; // (compiled on first use: WebAssembly kernels fall back only on rare data)
    const js = () => (k ??= this.#kernel(spec))(o, null, xs, shape, s, off);
    this.#run(simd ? () => simd() || js() : js);
    return out;
  }

  reduce(op: ReduceOp, e: Exp, inputs: Src[], shape: readonly number[], axes: number[]): BackendBuffer {
    const outShape = shape.map((n, d) => (axes.includes(d) ? 1 : n));
    const n = numel(outShape);
    const ostr = contiguousStrides(outShape).map((s, d) => (axes.includes(d) ? 0 : s));
    const arg = op === "argmax" || op === "argmin";
    // Large f32 sum/max/min run as WebAssembly SIMD when it covers them: over dims [split, rank)
    // (trailing), else over dims [0, split) (leading); size-1 dims may fall on either side.
    const fits = (split: number, lead: boolean) =>
      shape.every((m, d) => m === 1 || axes.includes(d) === (d < split === lead));
    const splits = [...shape.keys(), shape.length];
    const lead = !splits.some((s) => fits(s, false)), split = splits.find((s) => fits(s, lead));
    if (this.wasm && !arg && numel(shape) >= WASM_MIN && split !== undefined) {
      const out = this.alloc(n, e.dtype);
      const o = data(out) as Float32Array;
      const simd = wasmKernel(op, e, inputs.map(wasmSrc), shape, split, o, undefined, lead);
      if (simd) return (this.#run(simd), out);
      this.free(out);
    }
    const init = op === "sum" ? 0 : op === "max" || op === "argmax" ? -Infinity : Infinity;
    const acc = new Float64Array(n);
    const out = this.alloc(n, arg ? "i32" : e.dtype);
    // Position along the reduced axes, for arg reductions (row-major over those axes only).
    let pos = "0";
    let step = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (!axes.includes(d)) continue;
      pos += `+i${d}*${step}`;
      step *= shape[d];
    }
    // NaN wins max/min (as in JavaScript's Math.max); arg reductions keep the first best index.
    const bodies: Record<ReduceOp, Statement> = {
      sum: (v, o) => `acc[${o}] += ${v};`,
      max: (v, o) => `{ const v = ${v}; if (v > acc[${o}] || v !== v) acc[${o}] = v; }`,
      min: (v, o) => `{ const v = ${v}; if (v < acc[${o}] || v !== v) acc[${o}] = v; }`,
      argmax: (v, o) => `{ const v = ${v}; if (v > acc[${o}]) { acc[${o}] = v; out[${o}] = ${pos}; } }`,
      argmin: (v, o) => `{ const v = ${v}; if (v < acc[${o}]) { acc[${o}] = v; out[${o}] = ${pos}; } }`,
    };
    const views = [...inputs.map((x) => x.view.strides), ostr];
    const tag = arg ? `reduce-${op} ${pos}` : `reduce-${op}`;
    const k = this.#kernel({ tag, exp: e, inputs: inputs.length, rank: shape.length, body: bodies[op] });
    const o = data(out), xs = inputs.map((x) => data(x.buf));
    const off = [...inputs.map((x) => x.view.offset), 0];
    this.#run(() => {
      acc.fill(init);
      if (arg) o.fill(0); // index 0 when nothing beats the initial value
      k(o, acc, xs, shape, views, off);
      if (!arg) o.set(acc);
    });
    return out;
  }

  matmul(a: Src, b: Src): BackendBuffer {
    const r = a.view.shape.length;
    const [M, K, N] = [a.view.shape[r - 2], a.view.shape[r - 1], b.view.shape[r - 1]];
    const batch = a.view.shape.slice(0, -2);
    const nb = numel(batch);
    const out = this.alloc(nb * M * N, a.buf.dtype);
    const [o, ad, bd] = [data(out), data(a.buf), data(b.buf)];
    // Offsets of each batch's [0,0] element; operands are read through their strides.
    const aBase = offsets({ shape: batch, strides: a.view.strides.slice(0, -2), offset: a.view.offset });
    const bBase = offsets({ shape: batch, strides: b.view.strides.slice(0, -2), offset: b.view.offset });
    const [as0, as1] = a.view.strides.slice(-2);
    const [bs0, bs1] = b.view.strides.slice(-2);
    // f32 goes to the WebAssembly SIMD kernel (which packs operands into its memory); f64 (the
    // gradcheck oracle) and hosts without SIMD use the plain i-k-j loop.
    const f32 = a.buf.dtype === "f32" && b.buf.dtype === "f32";
    const As = [...aBase].map((at): Operand => [ad as Float32Array, at, as0, as1]);
    const Bs = [...bBase].map((at): Operand => [bd as Float32Array, at, bs0, bs1]);
    this.#run(() => {
      if (f32 && matmulF32(As, Bs, [M, K, N], o as Float32Array, 0)) return;
      const row = new Float64Array(N);
      for (let p = 0; p < nb; p++) {
        for (let i = 0; i < M; i++) {
          row.fill(0);
          for (let k = 0; k < K; k++) {
            const aik = ad[aBase[p] + i * as0 + k * as1], bk = bBase[p] + k * bs0;
            for (let j = 0; j < N; j++) row[j] += aik * bd[bk + j * bs1];
          }
          o.set(row, p * M * N + i * N);
        }
      }
    });
    return out;
  }

  gather(src: Src, index: Src, axis: number): BackendBuffer {
    const base = offsets(drop({ ...src.view, shape: index.view.shape }, axis));
    const io = offsets(index.view);
    const [sd, id] = [data(src.buf), data(index.buf)];
    const out = this.alloc(io.length, src.buf.dtype);
    const o = data(out);
    const [st, n] = [src.view.strides[axis], src.view.shape[axis]];
    this.#run(() => {
      for (let p = 0; p < io.length; p++) o[p] = sd[base[p] + inRange(id[io[p]], n, "gather") * st];
    });
    return out;
  }

  scatterAdd(index: Src, src: Src, axis: number, shape: readonly number[]): BackendBuffer {
    const strides = contiguousStrides(shape);
    const base = offsets(drop({ shape: index.view.shape, strides, offset: 0 }, axis));
    const [io, so] = [offsets(index.view), offsets(src.view)];
    const [sd, id] = [data(src.buf), data(index.buf)];
    const acc = new Float64Array(numel(shape)), out = this.alloc(acc.length, src.buf.dtype), o = data(out);
    const [sa, n] = [strides[axis], shape[axis]];
    this.#run(() => {
      acc.fill(0);
      for (let p = 0; p < io.length; p++) {
        acc[base[p] + inRange(id[io[p]], n, "scatterAdd") * sa] += sd[so[p]];
      }
      o.set(acc);
    });
    return out;
  }

  /** Nothing is queued on the CPU; under TENSOR_DEBUG=stats, print the counts since the last flush
   * and the time it took (a step's host time: here the kernels run on the host too). */
  flush(): Promise<void> {
    const now = performance.now(), us = Math.round((now - this.#since) * 1000);
    if (this.#debug.includes("stats")) {
      const { compiled, launches, allocated } = this.#stats;
      const counts = `[cpu] flush: ${compiled} kernels compiled, ${launches} launches, 0 submits`;
      console.log(`${counts}, ${allocated} bytes allocated, ${this.#pooled} bytes pooled, ${us} µs`);
    }
    this.#stats = { compiled: 0, launches: 0, allocated: 0 };
    this.#since = now;
    return Promise.resolve();
  }

  pooledBytes(): number {
    return this.#pooled;
  }
}
