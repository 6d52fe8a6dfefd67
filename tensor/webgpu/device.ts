/**
 * The device: adapter and device with the adapter's real limits, a size-class buffer pool, one
 * pending command encoder that every dispatch records into (submitted only on read, flush or every
 * 1024 dispatches, since a submit costs ~0.5 ms on the software adapters), a per-submit
 * arena of uniform params bound with dynamic offsets, pipeline and bind-group caches, and errors
 * (device loss, out-of-memory, invalid kernels) turned into an Error on the next call.
 */
import type { Binding } from "./kernels.ts";
import { type Arena, arenas, envVar } from "../backend.ts";

/** A pooled GPU buffer: `cap` bytes; `use` is the submit number that last used it. */
export interface Raw {
  readonly buf: GPUBuffer;
  readonly cap: number;
  readonly id: number;
  use: number;
}

/** Limits requested at the adapter's values (the defaults are far lower, e.g. 8 storage buffers). */
const LIMITS = ("maxStorageBufferBindingSize maxBufferSize maxStorageBuffersPerShaderStage " +
  "maxUniformBufferBindingSize maxComputeWorkgroupStorageSize maxComputeInvocationsPerWorkgroup " +
  "maxComputeWorkgroupsPerDimension").split(" ");
type Pipe = { pipe: GPUComputePipeline; layout: GPUBindGroupLayout; id: number };
/** Workgroup counts along x, y and z (default 1). */
type Grid = [number, number, number?];
/** A launch as a compiled step records it (`params` are its uniforms). */
type Launch = Omit<Pipe, "id"> & { bufs: Raw[]; params: ArrayLike<number>; grid: Grid };
// A training step of the tiny GPT records ~400 dispatches: one submit per step, yet bounded encoders.
const SUBMIT_EVERY = 1024;
const ARENA_BYTES = 1 << 18;
/** Bytes of uniforms a launch with `n` params binds: whole vec4s, at least one. */
const uniformBytes = (n: number): number => Math.max(1, Math.ceil(n / 4)) * 16;

/** Adapter, device, pool, pending encoder and caches. */
export class Gpu {
  /** Adapter description plus the backend that serves it. */
  readonly info: string;
  /** True on CPU (software) adapters, where storage loads are slow and big register blocks pay. */
  readonly cpuLike: boolean;
  /** Submits issued so far; the pending encoder's work belongs to submit number `submits`. */
  submits = 0;
  private error: string | undefined;
  private readonly pool = new Map<number, Raw[]>();
  private deferred: Raw[] = [];
  /** Bytes in the pool (including buffers waiting for a submit). */
  pooled = 0;
  private nextId = 0;
  private encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | undefined;
  private pending = 0;
  private readonly arena = new Int32Array(ARENA_BYTES / 4);
  private arenaUsed = 0;
  private readonly arenaBuf: GPUBuffer;
  private readonly pipelines = new Map<string, Pipe>();
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly debug = envVar("TENSOR_DEBUG") ?? "";
  /** Since the last `report`: pipelines compiled, dispatches recorded, bytes of new buffers. */
  private stats = { compiled: 0, launches: 0, submits: 0, allocated: 0 };
  private since = performance.now();
  private readonly lost: Promise<never>;

  private constructor(readonly device: GPUDevice, adapter: GPUAdapter) {
    const a = adapter.info;
    const desc = [a.vendor, a.architecture, a.device, a.description].filter((s) => s && s !== "0");
    const backend = envVar("DENO_WEBGPU_BACKEND");
    this.info = `${desc.join(" ")}${backend ? ` (${backend})` : ""}`;
    this.cpuLike = a.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|cpu/i.test(this.info);
    this.encoder = device.createCommandEncoder();
    const usage = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
    this.arenaBuf = device.createBuffer({ size: ARENA_BYTES, usage });
    this.lost = device.lost.then((l) => {
      this.error ??= `webgpu: device lost (${l.reason}): ${l.message}`;
      throw new Error(this.error);
    });
    this.lost.catch(() => {});
    device.addEventListener("uncapturederror", (ev) => {
      this.error ??= `webgpu: ${(ev as GPUUncapturedErrorEvent).error.message}`;
    });
  }

  /** Request an adapter and a device with the adapter's limits and optional features. */
  static async create(): Promise<Gpu> {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    const adapter = await gpu?.requestAdapter({ powerPreference: "high-performance" });
    const why = gpu ? "requestAdapter() gave null" : "no navigator.gpu";
    if (!adapter) throw new Error(`webgpu: no adapter available (${why})`);
    const l = adapter.limits as unknown as Record<string, number>;
    const requiredLimits = Object.fromEntries(LIMITS.map((k) => [k, l[k]]));
    const requiredFeatures = (["shader-f16", "subgroups"] as const).filter((f) => adapter.features.has(f));
    return new Gpu(await adapter.requestDevice({ requiredLimits, requiredFeatures }), adapter);
  }

  /** Throw the first error the device reported (loss, out-of-memory, invalid kernel). */
  check(): void {
    if (this.error) throw new Error(this.error);
  }

  /** A buffer of at least `bytes` (size classes: powers of two ≥ 256), from the pool if possible. */
  acquire(bytes: number): Raw {
    this.check();
    const max = this.device.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      throw new Error(`webgpu: tensor of ${bytes} bytes exceeds maxStorageBufferBindingSize (${max} bytes)`);
    }
    const cap = Math.min(Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1)))), max);
    const hit = this.pool.get(cap)?.pop();
    if (hit) {
      this.pooled -= cap;
      return hit;
    }
    this.device.pushErrorScope("out-of-memory");
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buf = this.device.createBuffer({ size: cap, usage });
    this.device.popErrorScope().then((e) => {
      if (e) this.error ??= `webgpu: out of memory allocating ${cap} bytes: ${e.message}`;
    });
    this.stats.allocated += cap;
    return { buf, cap, id: this.nextId++, use: -1 };
  }

  /** Return a buffer to the pool; one the pending encoder uses waits for the next submit. */
  release(r: Raw): void {
    this.pooled += r.cap;
    if (r.use === this.submits) this.deferred.push(r);
    else this.toPool(r);
  }

  /** Pool lists stay sorted by descending id so `acquire` hands out the oldest buffer: a repeated
   * step then gets the same buffers every time, and its bind groups come from the cache. */
  private toPool(r: Raw): void {
    const list = this.pool.get(r.cap) ?? [];
    list.splice(list.findLastIndex((x) => x.id >= r.id) + 1, 0, r);
    this.pool.set(r.cap, list);
  }

  /** Host data into a buffer (queued before the pending encoder's work, which is why pending
   * buffers are never handed out again before a submit). */
  write(r: Raw, data: ArrayBufferView<ArrayBuffer>): void {
    if (data.byteLength > 0) this.device.queue.writeBuffer(r.buf, 0, data);
  }

  /** Workgroup counts (x, y) covering `n` workgroups with no dimension above the limit. */
  grid(n: number): [number, number] {
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (n <= max) return [n, 1];
    const y = Math.ceil(n / max);
    return [Math.ceil(n / y), y];
  }

  /** Record one dispatch of kernel `code` (compiled once) over `bufs` with uniform `params`. */
  dispatch(tag: string, code: string, bindings: Binding[], bufs: Raw[], params: number[], grid: Grid): void {
    this.check();
    const { pipe, layout, id } = this.pipeline(tag, code, bindings);
    const bytes = uniformBytes(params.length), align = this.device.limits.minUniformBufferOffsetAlignment;
    let at = Math.ceil(this.arenaUsed / align) * align;
    if (at + bytes > ARENA_BYTES) {
      this.submit();
      at = 0;
    }
    this.arena.set(params, at / 4);
    this.arenaUsed = at + bytes;
    const key = `${id}:${bytes}:${bufs.map((b) => b.id).join(",")}`;
    let group = this.groups.get(key);
    if (!group) {
      if (this.groups.size > 4096) this.groups.clear();
      group = this.bindGroup(layout, this.arenaBuf, bytes, bufs);
      this.groups.set(key, group);
    }
    arenas.current?.launches.push({ pipe, layout, bufs, params: Int32Array.from(params), grid });
    this.pass ??= this.encoder.beginComputePass();
    this.record(this.pass, { pipe, layout, bufs, params, grid }, group, at);
    if (this.pending >= SUBMIT_EVERY) this.submit();
  }

  /** Record a launch into `pass` with `group` at uniform offset `at`; its buffers count as used by the
   * pending submit. */
  private record(pass: GPUComputePassEncoder, l: Launch, group: GPUBindGroup, at: number): void {
    for (const b of l.bufs) b.use = this.submits;
    pass.setPipeline(l.pipe);
    pass.setBindGroup(0, group, [at]);
    pass.dispatchWorkgroups(l.grid[0], l.grid[1], l.grid[2] ?? 1);
    this.stats.launches++;
    this.pending++;
  }

  private pipeline(tag: string, source: string, bindings: Binding[]) {
    let p = this.pipelines.get(source);
    if (p) return p;
    if (this.debug.includes("kernels")) console.log(`// ---- webgpu kernel: ${tag}\n${source}`);
    const d = this.device;
    d.pushErrorScope("validation");
    const buffers: GPUBufferBindingLayout[] = [{ type: "uniform", hasDynamicOffset: true }];
    for (const b of bindings) buffers.push({ type: b.write ? "storage" : "read-only-storage" });
    const visibility = GPUShaderStage.COMPUTE;
    const entries = buffers.map((buffer, binding) => ({ binding, visibility, buffer }));
    const layout = d.createBindGroupLayout({ entries });
    const module = d.createShaderModule({ code: source });
    const pipe = d.createComputePipeline({
      layout: d.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    d.popErrorScope().then((e) => {
      if (e) this.error ??= `webgpu: kernel ${tag} failed to compile: ${e.message}\n${source}`;
    });
    p = { pipe, layout, id: this.pipelines.size };
    this.pipelines.set(source, p);
    this.stats.compiled++;
    return p;
  }

  /** Encode a compiled step's launches as one pass of the pending encoder (with the inputs' copies
   * before it and the results' reads after it, a replayed step is one submit). The first replay
   * makes the plan: every launch's uniforms in one buffer, written once, and a bind group each. */
  replay(arena: Arena): void {
    this.check();
    const launches = arena.launches as Launch[];
    const plan = (arena.plan ??= this.plan(launches)) as { group: GPUBindGroup; at: number }[];
    this.pass?.end();
    const pass = this.encoder.beginComputePass();
    launches.forEach((l, i) => this.record(pass, l, plan[i].group, plan[i].at));
    pass.end();
    this.pass = undefined;
  }

  private plan(launches: Launch[]) {
    const align = this.device.limits.minUniformBufferOffsetAlignment, at = [0];
    for (const l of launches) at.push(at.at(-1)! + Math.ceil(uniformBytes(l.params.length) / align) * align);
    const end = at.pop()!;
    const data = new Int32Array(end / 4);
    launches.forEach((l, i) => data.set(l.params, at[i] / 4));
    const usage = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
    const uniforms = this.device.createBuffer({ size: Math.max(end, 16), usage });
    this.device.queue.writeBuffer(uniforms, 0, data);
    return launches.map((l, i) => ({
      at: at[i],
      group: this.bindGroup(l.layout, uniforms, uniformBytes(l.params.length), l.bufs),
    }));
  }

  /** A bind group of `layout`: `size` bytes of `uniforms` (at a dynamic offset) at binding 0, then `bufs`. */
  private bindGroup(layout: GPUBindGroupLayout, uniforms: GPUBuffer, size: number, bufs: Raw[]) {
    const resources = [{ buffer: uniforms, size }, ...bufs.map((b) => ({ buffer: b.buf }))];
    const entries = resources.map((resource, binding) => ({ binding, resource }));
    return this.device.createBindGroup({ layout, entries });
  }

  /** Submit the pending encoder (if it holds work) and start a new one. */
  submit(): void {
    this.pass?.end();
    this.pass = undefined;
    if (this.pending === 0 && this.arenaUsed === 0) return;
    if (this.arenaUsed) this.device.queue.writeBuffer(this.arenaBuf, 0, this.arena, 0, this.arenaUsed / 4);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = this.device.createCommandEncoder();
    this.submits++;
    this.stats.submits++;
    this.pending = 0;
    this.arenaUsed = 0;
    for (const r of this.deferred) this.toPool(r);
    this.deferred = [];
  }

  /** With TENSOR_DEBUG=stats, print one line of counts since the last report, and the host time (the
   * backend reports at each flush, a training step's end). */
  report(): void {
    const now = performance.now(), us = Math.round((now - this.since) * 1000);
    this.since = now;
    if (!this.debug.includes("stats")) return;
    const { compiled, launches, submits, allocated } = this.stats;
    const counts = `${compiled} kernels compiled, ${launches} launches, ${submits} submits`;
    const bytes = `${allocated} bytes allocated, ${this.pooled} bytes pooled`;
    console.log(`[webgpu] flush: ${counts}, ${bytes}, ${us} µs`);
    this.stats = { compiled: 0, launches: 0, submits: 0, allocated: 0 };
  }

  /** Copy `bytes` of a buffer to the host: staging copy, submit, map (racing device loss). */
  async read(r: Raw, bytes: number): Promise<ArrayBuffer> {
    this.check();
    const usage = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
    const staging = this.device.createBuffer({ size: bytes, usage });
    this.pass?.end();
    this.pass = undefined;
    this.encoder.copyBufferToBuffer(r.buf, 0, staging, 0, bytes);
    r.use = this.submits;
    this.pending++;
    this.submit();
    try {
      // A device error, when there is one, is what the read reports (it may be why the map failed).
      await Promise.race([staging.mapAsync(GPUMapMode.READ), this.lost]).finally(() => this.check());
      const out = staging.getMappedRange().slice(0);
      staging.unmap();
      return out;
    } finally {
      staging.destroy();
    }
  }
}
