/**
 * The workgroup-tiled matmul kernel (tensor/webgpu/tiled.ts) on raw WebGPU, against a float64 JS
 * reference: |got − want| ≤ 1e-4·Σ_k |a||b| per element. Operands are packed exactly as
 * backend.ts packs them (A [batch, M, Kp], B [batch, K, Np], columns zero padded to a multiple of
 * 4), with NaN before A's offset and after B's data, where the kernel must never look: B has only
 * K rows, so reading the rows K..Kp−1 that A's zero padding multiplies would give 0·NaN.
 *
 * Without an adapter the tests are skipped with a printed reason, unless REQUIRE_WEBGPU=1.
 */
import assert from "node:assert/strict";
import { type Tile, tiledMatmulGrid, tiledMatmulKernel } from "../tensor/webgpu/tiled.ts";

const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" }).catch(() =>
  null
);
const required = Deno.env.get("REQUIRE_WEBGPU") === "1";
if (!adapter) console.log("tiled matmul tests skipped: no WebGPU adapter (requestAdapter() gave null)");
Deno.test({
  name: "tiled matmul: adapter available when REQUIRE_WEBGPU=1",
  ignore: !required,
  fn: () => assert.ok(adapter, "REQUIRE_WEBGPU=1 but navigator.gpu.requestAdapter() gave null"),
});

/** A case: batch shape, M, K, N; `bBroadcast` gives B batch stride 0 on dim 0 (so the batch dims
 * cannot merge: nb = 2); `aOffset` floats of NaN precede A; `inf` sets B[1][0][0] = Inf. */
interface Case {
  batch: number[];
  M: number;
  K: number;
  N: number;
  bBroadcast?: boolean;
  aOffset?: number;
  inf?: boolean;
}

const CASES: Case[] = [
  { batch: [], M: 1, K: 1, N: 1 },
  { batch: [], M: 3, K: 5, N: 7 },
  { batch: [], M: 64, K: 64, N: 64 },
  { batch: [], M: 65, K: 129, N: 33 },
  { batch: [], M: 130, K: 257, N: 64 },
  { batch: [3], M: 17, K: 33, N: 9 },
  { batch: [2, 3], M: 19, K: 6, N: 130, bBroadcast: true, aOffset: 4 },
  // B[1] = Inf right after B[0]'s single row: C[0] must stay finite (no 0·Inf from padded rows).
  { batch: [2], M: 1, K: 1, N: 1, inf: true },
];

let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 4 - 2;

/** Run one case on `device` with `tile`: { got, want, scale = Σ_k |a||b| }. */
async function runCase(device: GPUDevice, c: Case, tile: Tile) {
  const { M, K, N } = c, Kp = Math.ceil(K / 4) * 4, Np = Math.ceil(N / 4) * 4;
  const nz = c.batch.reduce((x, y) => x * y, 1), nbB = c.bBroadcast ? nz / c.batch[0] : nz;
  const a = Array.from({ length: nz * M * K }, rand), b = Array.from({ length: nbB * K * N }, rand);
  if (c.inf) b[K * N] = Infinity;
  const aOff = c.aOffset ?? 0;
  // Packed A: NaN prefix (the view's offset), then [nz, M, Kp] zero padded.
  const pa = new Float32Array(aOff + nz * M * Kp).fill(NaN);
  pa.fill(0, aOff);
  for (let z = 0; z < nz; z++) {
    for (let m = 0; m < M; m++) {
      for (let k = 0; k < K; k++) pa[aOff + (z * M + m) * Kp + k] = a[(z * M + m) * K + k];
    }
  }
  // Packed B: [nbB, K, Np] zero padded, then a NaN tail (stale pool memory at its worst).
  const pb = new Float32Array(nbB * K * Np + 64).fill(NaN);
  pb.fill(0, 0, nbB * K * Np);
  for (let z = 0; z < nbB; z++) {
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) pb[(z * K + k) * Np + n] = b[(z * K + k) * N + n];
  }
  // Params as backend.ts builds them (batch dims after merging), plus K.
  const [shape, sa, sb] = c.batch.length === 2 && c.bBroadcast
    ? [c.batch, [c.batch[1] * M * Kp, M * Kp], [0, K * Np]]
    : c.batch.length
    ? [[nz], [M * Kp], [K * Np]]
    : [[], [], []];
  const params = [M, Kp, N, Np, ...shape, ...sa, ...sb, aOff, 0, K];
  const got = await dispatch(
    device,
    tiledMatmulKernel(shape.length, tile),
    pa,
    pb,
    params,
    nz * M * N,
    [
      ...tiledMatmulGrid(M, N, nz, tile),
    ],
  );
  const want = new Float64Array(nz * M * N), scale = new Float64Array(nz * M * N);
  for (let z = 0; z < nz; z++) {
    const zb = c.bBroadcast ? z % nbB : z;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0, t = 0;
        for (let k = 0; k < K; k++) {
          const p = a[(z * M + m) * K + k] * b[(zb * K + k) * N + n];
          s += p, t += Math.abs(p);
        }
        want[(z * M + m) * N + n] = s, scale[(z * M + m) * N + n] = t;
      }
    }
  }
  return { got, want, scale };
}

/** Bind like device.ts (uniform params with a dynamic offset at 0; A, B read; C written), dispatch
 * `grid`, read C back. */
async function dispatch(
  device: GPUDevice,
  code: string,
  pa: Float32Array<ArrayBuffer>,
  pb: Float32Array<ArrayBuffer>,
  params: number[],
  nOut: number,
  grid: number[],
): Promise<Float32Array> {
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const make = (data: ArrayBufferView<ArrayBuffer>, usage: number) => {
    const buf = device.createBuffer({ size: Math.max(16, Math.ceil(data.byteLength / 16) * 16), usage });
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  };
  const u = new Int32Array(Math.max(1, Math.ceil(params.length / 4)) * 4);
  u.set(params);
  const [ub, ab, bb] = [
    make(u, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
    make(pa, storage),
    make(pb, storage),
  ];
  const cb = device.createBuffer({ size: Math.max(16, nOut * 4), usage: storage });
  const read = device.createBuffer({
    size: Math.max(16, nOut * 4),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const entry = (binding: number, type: GPUBufferBindingType) => ({
    binding,
    visibility: GPUShaderStage.COMPUTE,
    buffer: { type, hasDynamicOffset: binding === 0 },
  });
  const layout = device.createBindGroupLayout({
    entries: [
      entry(0, "uniform"),
      entry(1, "read-only-storage"),
      entry(2, "read-only-storage"),
      entry(3, "storage"),
    ],
  });
  device.pushErrorScope("validation");
  const pipe = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
  });
  const group = device.createBindGroup({
    layout,
    entries: [
      { binding: 0, resource: { buffer: ub, size: u.byteLength } },
      ...[ab, bb, cb].map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
    ],
  });
  const enc = device.createCommandEncoder(), pass = enc.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, group, [0]);
  pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
  pass.end();
  enc.copyBufferToBuffer(cb, 0, read, 0, nOut * 4);
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(`${err.message}\n${code}`);
  await read.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(read.getMappedRange().slice(0, nOut * 4));
  for (const x of [ub, ab, bb, cb, read]) x.destroy();
  return out;
}

// Tiles (rows, columns per thread, slab depth): one load per thread, two, and half the threads.
const TILES = [[8, 4, 16], [4, 4, 16], [8, 8, 8], [4, 8, 16], [8, 4, 8], [4, 4, 4], [8, 8, 16]];
for (const [tm, tn, bk] of TILES) {
  Deno.test({
    name: `tiled matmul ${16 * tm}x${16 * tn} tiles (${tm}x${tn} per thread, bk ${bk}) match the reference`,
    ignore: !adapter,
    fn: async () => {
      const device = await adapter!.requestDevice();
      try {
        for (const c of CASES) {
          const { got, want, scale } = await runCase(device, c, { tm, tn, bk });
          const what = `batch [${c.batch}] ${c.M}x${c.K}x${c.N}`;
          assert.equal(got.length, want.length, what);
          for (let i = 0; i < want.length; i++) {
            if (got[i] === want[i]) continue; // includes C = Inf in the inf case
            const err = Math.abs(got[i] - want[i]);
            assert.ok(err <= 1e-4 * scale[i] + 1e-30, `${what}: C[${i}] = ${got[i]}, want ${want[i]}`);
          }
        }
      } finally {
        device.destroy();
      }
    },
  });
}
