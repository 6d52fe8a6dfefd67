/**
 * Raw-WebGPU timing of the fp32 matmul kernels on square sizes:
 *   deno run -A bench/matmul_gpu.ts [sizes...] [--kernels tiled,vec4] [--runs 5]
 * (default sizes 1024 2048 4096). Kernels: `tiled` (tensor/webgpu/tiled.ts, default tile TILED),
 * `t{tm}x{tn}x{bk}` (the same with another tile, e.g. t8x8x8), `vec4` (matmulVec4Kernel with
 * small blocks, [4, 1, 16, 16]) and `vec4cpu` (backend.ts's big CPU-adapter blocks, [16, 4, 4, 4]).
 * Operands are packed as backend.ts packs them (n is a multiple of 4 here, so the packed layouts
 * are plain row-major), bound the same way. Each sample records `reps` dispatches in one command
 * buffer and waits for `onSubmittedWorkDone` (reps sized after a 0.3 s warmup so a sample lasts
 * ≥ ~0.1 s: submit latency does not dominate small sizes); the kernels' samples are interleaved
 * round by round and the median of `runs` is reported. Every kernel's result is spot-checked
 * against a float64 reference (maxRelErr, relative to Σ|a||b|). One JSON line per (size, kernel):
 *   {"name":"matmul-4096","kernel":"tiled","gflops":…,"ms":…,"reps":…,"maxRelErr":…,"adapter":…}
 */
import { matmulVec4Kernel } from "../tensor/webgpu/kernels.ts";
import { TILED, tiledMatmulGrid, tiledMatmulKernel } from "../tensor/webgpu/tiled.ts";

const args = [...Deno.args];
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(name);
  return i < 0 ? dflt : args.splice(i, 2)[1];
};
const kernels = opt("--kernels", "tiled,vec4").split(",");
const runs = Number(opt("--runs", "5"));
const sizes = args.length ? args.map(Number) : [1024, 2048, 4096];

const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) {
  console.log(JSON.stringify({ error: "no WebGPU adapter (navigator.gpu.requestAdapter() gave null)" }));
  Deno.exit(Deno.env.get("REQUIRE_WEBGPU") === "1" ? 1 : 0);
}
const info = adapter.info;
const adapterName = [info.vendor, info.architecture, info.device, info.description]
  .filter((s) => s && s !== "0").join(" ");
// Ask only for what the kernels need, capped at what the adapter offers.
const al = adapter.limits;
const want = (k: keyof GPUSupportedLimits, v: number) => Math.min(v, al[k] as number);
const maxN = Math.max(...sizes);
const device = await adapter.requestDevice({
  requiredLimits: {
    maxComputeInvocationsPerWorkgroup: want("maxComputeInvocationsPerWorkgroup", 256),
    maxComputeWorkgroupSizeX: want("maxComputeWorkgroupSizeX", 256),
    maxComputeWorkgroupStorageSize: want("maxComputeWorkgroupStorageSize", 32768),
    maxStorageBufferBindingSize: want("maxStorageBufferBindingSize", Math.max(2 ** 27, maxN * maxN * 4)),
    maxBufferSize: want("maxBufferSize", Math.max(2 ** 28, maxN * maxN * 4)),
  },
});
device.lost.then((l) =>
  l.reason !== "destroyed" && console.log(JSON.stringify({ error: `device lost: ${l.message}` }))
);

const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const entry = (binding: number, type: GPUBufferBindingType) => ({
  binding,
  visibility: GPUShaderStage.COMPUTE,
  buffer: { type, hasDynamicOffset: binding === 0 },
});
// The layout device.ts builds: uniform params (dynamic offset), A and B read-only, C written.
const layout = device.createBindGroupLayout({
  entries: [
    entry(0, "uniform"),
    entry(1, "read-only-storage"),
    entry(2, "read-only-storage"),
    entry(3, "storage"),
  ],
});

/** Source and grid of kernel `name` for an n×n×n product (no batch dims: nb = 0). */
function plan(name: string, n: number): { code: string; grid: number[] } {
  if (name === "vec4" || name === "vec4cpu") {
    // The register-blocked kernel with small blocks (what GPUs used before tiled.ts), or BLOCKS.big
    const [tm, tb, wx, wy] = name === "vec4" ? [4, 1, 16, 16] : [16, 4, 4, 4];
    return {
      code: matmulVec4Kernel(0, { tm, tb, wx, wy }),
      grid: [Math.ceil(n / 4 / tb / wx), Math.ceil(n / tm / wy), 1],
    };
  }
  // "tiled" (TILED) or "t{tm}x{tn}x{bk}".
  const t = name.match(/^t(\d+)x(\d+)x(\d+)$/)?.slice(1).map(Number);
  if (name !== "tiled" && !t) throw new Error(`unknown kernel ${name}`);
  const tile = t ? { tm: t[0], tn: t[1], bk: t[2] } : TILED;
  return {
    code: tiledMatmulKernel(0, tile),
    grid: tiledMatmulGrid(n, n, 1, tile),
  };
}

/** A failure as one JSON line. */
const fail = (n: number, kernel: string, e: unknown) =>
  console.log(
    JSON.stringify({
      name: `matmul-${n}`,
      kernel,
      error: String((e as Error)?.message ?? e),
      adapter: adapterName,
    }),
  );

/** Time every kernel on one n×n×n product. The operands, C and the params (the tiled kernels'
 * 7; matmulVec4Kernel reads the first 6 of the same 2 vec4s) are shared; the samples of the
 * kernels are interleaved round by round, so drifting clocks or memory state hit all alike. */
async function benchSize(n: number) {
  const A = Float32Array.from({ length: n * n }, rand), B = Float32Array.from({ length: n * n }, rand);
  const u = new Int32Array(8);
  u.set([n, n, n, n, 0, 0, n]); // M, Kp, N, Np, A offset, B offset, K
  device.pushErrorScope("out-of-memory");
  const ub = device.createBuffer({ size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const [ab, bb, cb] = [0, 1, 2].map(() => device.createBuffer({ size: n * n * 4, usage: storage }));
  const read = device.createBuffer({
    size: n * n * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const oom = await device.popErrorScope();
  if (oom) return kernels.forEach((k) => fail(n, k, oom.message));
  device.queue.writeBuffer(ub, 0, u);
  device.queue.writeBuffer(ab, 0, A);
  device.queue.writeBuffer(bb, 0, B);
  const group = device.createBindGroup({
    layout,
    entries: [
      { binding: 0, resource: { buffer: ub, size: 32 } },
      ...[ab, bb, cb].map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
    ],
  });
  /** `reps` dispatches of `pipe` in one submit; seconds until the queue is done. */
  const sample = async (pipe: GPUComputePipeline, grid: number[], reps: number) => {
    const t0 = performance.now();
    const enc = device.createCommandEncoder(), pass = enc.beginComputePass();
    pass.setPipeline(pipe);
    pass.setBindGroup(0, group, [0]);
    for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / 1000;
  };
  type Run = { name: string; pipe: GPUComputePipeline; grid: number[]; reps: number; times: number[] };
  const live: Run[] = [];
  for (const name of kernels) {
    try {
      const { code, grid } = plan(name, n);
      device.pushErrorScope("validation");
      const pipe = device.createComputePipeline({
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
      });
      const err = await device.popErrorScope();
      if (err) throw new Error(err.message);
      await sample(pipe, grid, 1); // compile + first touch
      // ~0.3 s of work: GPUs drop to idle clocks (an H100 to 345 MHz) within moments.
      for (let t = 0; t < 0.3;) t += await sample(pipe, grid, 1);
      const one = await sample(pipe, grid, 1);
      const reps = Math.max(1, Math.min(100, Math.ceil(0.1 / Math.max(one, 1e-6))));
      live.push({ name, pipe, grid, reps, times: [] });
    } catch (e) {
      fail(n, name, e);
    }
  }
  for (let r = 0; r < runs; r++) for (const k of live) k.times.push(await sample(k.pipe, k.grid, k.reps));
  for (const k of live) {
    const t = k.times.sort((x, y) => x - y)[k.times.length >> 1] / k.reps;
    // Spot check: this kernel's C (run once more) at 64 entries against float64 sums.
    await sample(k.pipe, k.grid, 1);
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(cb, 0, read, 0, n * n * 4);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const C = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    let maxRelErr = 0;
    for (let s = 0; s < 64; s++) {
      const i = (s * 7919) % n, j = (s * 104729 + 13) % n;
      let sum = 0, abs = 0;
      for (let q = 0; q < n; q++) {
        sum += A[i * n + q] * B[q * n + j], abs += Math.abs(A[i * n + q] * B[q * n + j]);
      }
      maxRelErr = Math.max(maxRelErr, Math.abs(C[i * n + j] - sum) / abs);
    }
    console.log(JSON.stringify({
      name: `matmul-${n}`,
      kernel: k.name,
      gflops: Number(((2 * n ** 3) / t / 1e9).toFixed(1)),
      ms: Number((t * 1000).toFixed(3)),
      reps: k.reps,
      maxRelErr: Number(maxRelErr.toPrecision(2)),
      adapter: adapterName,
    }));
  }
  for (const x of [ub, ab, bb, cb, read]) x.destroy();
}

let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
for (const n of sizes) {
  if (n % 4) throw new Error(`sizes must be multiples of 4 (got ${n})`);
  await benchSize(n);
}
device.destroy();
