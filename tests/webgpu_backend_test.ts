/**
 * Differential tests: every primitive runs on CpuBackend (the oracle) and WebGpuBackend with the
 * same seeded random inputs, and the results must agree. Tolerances: elementwise f32 within
 * rtol 1e-5 / atol 1e-5 (transcendentals 1e-4: drivers' exp/log/tanh differ by a few ulp);
 * reductions and matmuls within rtol/atol 1e-4 (the CPU sums in f64, the GPU in f32 trees);
 * i32 and bool exactly. NaN equals NaN, ±Infinity must match exactly.
 *
 * Without an adapter the tests are skipped with a printed reason, unless REQUIRE_WEBGPU=1.
 */
import assert from "node:assert/strict";
import {
  type Backend,
  type BackendBuffer,
  contiguousStrides,
  type ReduceOp,
  type Src,
  type View,
} from "../tensor/backend.ts";
import { CpuBackend } from "../tensor/cpu.ts";
import {
  bin,
  type BinaryOp,
  cast,
  cnst,
  type DType,
  type Exp,
  idx,
  load,
  un,
  type UnaryOp,
  where,
} from "../tensor/exp.ts";
import { WebGpuBackend } from "../tensor/webgpu/backend.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const required = Deno.env.get("REQUIRE_WEBGPU") === "1";
if (!adapter) {
  console.log(`webgpu tests skipped: no WebGPU adapter (navigator.gpu.requestAdapter() gave null)`);
}
Deno.test({
  name: "webgpu: adapter available when REQUIRE_WEBGPU=1",
  ignore: !required,
  fn: () => assert.ok(adapter, "REQUIRE_WEBGPU=1 but navigator.gpu.requestAdapter() gave null"),
});

const cpu = new CpuBackend();
const gpu = adapter ? await WebGpuBackend.create() : undefined;
const opts = { ignore: !gpu, sanitizeOps: false, sanitizeResources: false };
const test = (name: string, fn: () => Promise<void>) => Deno.test({ name: `webgpu: ${name}`, ...opts, fn });

/** mulberry32: a small seeded PRNG. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(42);
function data(n: number, dtype: DType, lo = -2, hi = 2): number[] {
  return Array.from({ length: n }, () => {
    const x = lo + (hi - lo) * rand();
    return dtype === "bool" ? (x > (lo + hi) / 2 ? 1 : 0) : dtype === "i32" ? Math.round(x) : x;
  });
}

const view = (shape: number[], strides = contiguousStrides(shape), offset = 0): View => ({
  shape,
  strides,
  offset,
});

/** Assert two arrays agree (see the tolerances above). */
function close(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-5, what = ""): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i], want[i]];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (g === w) continue;
    if (!(Math.abs(g - w) <= tol + tol * Math.abs(w))) assert.fail(`${what}: [${i}] got ${g}, want ${w}`);
  }
}

/** Run `f` on both backends with the same host inputs and compare the results. */
async function same(
  what: string,
  inputs: { data: number[]; dtype: DType }[],
  f: (b: Backend, bufs: BackendBuffer[]) => BackendBuffer,
  tol = 1e-5,
): Promise<void> {
  const run = async (b: Backend) => {
    const bufs = inputs.map((x) => b.upload(x.data, x.dtype));
    const out = f(b, bufs);
    const r = await b.read(out);
    for (const x of [...bufs, out]) b.free(x);
    return { r, dtype: out.dtype };
  };
  const [want, got] = [await run(cpu), await run(gpu!)];
  assert.equal(got.dtype, want.dtype, `${what}: dtype`);
  assert.equal(got.r.constructor, want.r.constructor, `${what}: array type`);
  close(got.r, want.r, want.dtype === "f32" ? tol : 0, what);
}

/** A map of `e` over `shape` with inputs read contiguously. */
const mapC = (e: Exp, shape: number[], n: number) => (b: Backend, bufs: BackendBuffer[]) =>
  b.map(e, bufs.slice(0, n).map((buf) => ({ buf, view: view(shape) })), shape);

const SPECIAL = [0, -0, 1, -1, 0.5, -0.5, 3, -3, 20, -20, 100, -100, 1e4, -1e4, Infinity, -Infinity];

test("info names the adapter", () => {
  assert.match(gpu!.info, /\S/);
  assert.equal(gpu!.name, "webgpu");
  return Promise.resolve();
});

test("unary ops on f32, i32 and bool", async () => {
  const ops: UnaryOp[] = [
    "neg",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "abs",
    "tanh",
    "sigmoid",
    "relu",
    "floor",
    "not",
  ];
  const f = [...data(1000, "f32", -5, 5), ...SPECIAL];
  for (const op of ops) {
    const tol = ["exp", "log", "tanh", "sigmoid", "sqrt", "rsqrt"].includes(op) ? 1e-4 : 1e-5;
    await same(`${op} f32`, [{ data: f, dtype: "f32" }], mapC(un(op, load(0, "f32")), [f.length], 1), tol);
  }
  const i = data(333, "i32", -50, 50);
  for (const op of ["neg", "abs", "relu", "floor", "not"] as UnaryOp[]) {
    await same(`${op} i32`, [{ data: i, dtype: "i32" }], mapC(un(op, load(0, "i32")), [i.length], 1));
  }
  const m = data(77, "bool");
  await same("not bool", [{ data: m, dtype: "bool" }], mapC(un("not", load(0, "bool")), [m.length], 1));
});

test("binary ops on f32, i32 and bool", async () => {
  const ops: BinaryOp[] = [
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "max",
    "min",
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
  ];
  const n = 517;
  const a = data(n, "f32"), b = data(n, "f32");
  for (let k = 0; k < 40; k++) b[k] = a[k]; // ties for comparisons
  // pow: negative bases with integer exponents (the frontend's pow(x, 2) and pow(x, 3)).
  const e = data(n, "f32").map((x, k) => (k % 3 ? [-2, -1, 0, 1, 2, 3, 0.5][k % 7] : Math.abs(x)));
  for (const op of ops) {
    const tol = op === "pow" ? 1e-4 : 1e-5;
    const rhs = op === "pow" ? e : b;
    await same(
      `${op} f32`,
      [{ data: a, dtype: "f32" }, { data: rhs, dtype: "f32" }],
      mapC(bin(op, load(0, "f32"), load(1, "f32")), [n], 2),
      tol,
    );
  }
  const ia = data(n, "i32", -20, 20), ib = data(n, "i32", -20, 20);
  const ie = ib.map((x) => Math.abs(x) % 6 - 1);
  for (const op of ops) {
    const rhs = op === "pow" ? ie : ib;
    await same(
      `${op} i32`,
      [{ data: ia, dtype: "i32" }, { data: rhs, dtype: "i32" }],
      mapC(bin(op, load(0, "i32"), load(1, "i32")), [n], 2),
    );
  }
  const ba = data(n, "bool"), bb = data(n, "bool");
  for (const op of ["and", "or", "eq", "ne", "lt", "max", "min", "mul"] as BinaryOp[]) {
    await same(
      `${op} bool`,
      [{ data: ba, dtype: "bool" }, { data: bb, dtype: "bool" }],
      mapC(bin(op, load(0, "bool"), load(1, "bool")), [n], 2),
    );
  }
  await same(
    "and f32",
    [{ data: a.map((x) => (x > 0 ? x : 0)), dtype: "f32" }, { data: b, dtype: "f32" }],
    mapC(bin("and", load(0, "f32"), load(1, "f32")), [n], 2),
  );
});

test("where, cast, idx and constants incl. ±Infinity and NaN", async () => {
  const n = 301;
  const c = data(n, "bool"), a = data(n, "f32", -1e3, 1e3), b = data(n, "f32");
  const ins = [{ data: c, dtype: "bool" as DType }, { data: a, dtype: "f32" as DType }, {
    data: b,
    dtype: "f32" as DType,
  }];
  await same("where", ins, mapC(where(load(0, "bool"), load(1, "f32"), load(2, "f32")), [n], 3));
  const casts: [DType, DType][] = [["f32", "i32"], ["i32", "f32"], ["bool", "f32"], ["f32", "bool"], [
    "i32",
    "bool",
  ], ["bool", "i32"]];
  for (const [from, to] of casts) {
    const x = from === "f32" ? [...a, 0, -0.5, 0.5] : data(n, from, -100, 100);
    await same(
      `cast ${from}->${to}`,
      [{ data: x, dtype: from }],
      mapC(cast(load(0, from), to), [x.length], 1),
    );
  }
  for (const v of [Infinity, -Infinity, NaN, 0, -0, 1e-3, 1 / 3, 3.4e38, 1e-40, -7.25, 2 ** 24 + 1]) {
    await same(`const ${v}`, [], mapC(bin("add", cnst(v, "f32"), cast(idx(0), "f32")), [5], 0));
  }
  for (const v of [-2147483648, 2147483647, -5, 0]) {
    await same(`const i32 ${v}`, [], mapC(cnst(v, "i32"), [3], 0));
  }
  // idx on a rank-3 shape, a causal-mask style comparison, idx in a reduce.
  const shape = [3, 4, 5];
  await same(
    "idx",
    [],
    mapC(bin("add", bin("mul", idx(0), cnst(100, "i32")), bin("sub", idx(2), idx(1))), shape, 0),
  );
  await same("mask", [], mapC(bin("ge", idx(1), idx(2)), [1, 6, 6], 0));
  const x = data(60, "f32");
  await same(
    "reduce with idx",
    [{ data: x, dtype: "f32" }],
    (be, [buf]) =>
      be.reduce("sum", bin("mul", load(0, "f32"), cast(idx(1), "f32")), [{ buf, view: view(shape) }], shape, [
        1,
        2,
      ]),
  );
});

test("non-contiguous views: transposes, broadcasts, offsets; odd sizes; rank 0; empty", async () => {
  const x = data(7 * 9 + 3, "f32"), y = data(9, "f32");
  const e = bin("add", bin("mul", load(0, "f32"), cnst(2, "f32")), load(1, "f32"));
  const ins = [{ data: x, dtype: "f32" as DType }, { data: y, dtype: "f32" as DType }];
  // x transposed ([9,7] read from a [7,9] block at offset 3), y broadcast along the columns.
  await same(
    "transpose+broadcast+offset",
    ins,
    (b, [bx, by]) =>
      b.map(e, [{ buf: bx, view: view([9, 7], [1, 9], 3) }, { buf: by, view: view([9, 7], [1, 0]) }], [9, 7]),
  );
  await same(
    "broadcast scalar",
    ins,
    (b, [bx, by]) =>
      b.map(e, [{ buf: bx, view: view([2, 3, 4], [0, 0, 0], 5) }, {
        buf: by,
        view: view([2, 3, 4], [0, 1, 0]),
      }], [2, 3, 4]),
  );
  await same(
    "rank 0",
    ins,
    (b, [bx, by]) => b.map(e, [{ buf: bx, view: view([], [], 4) }, { buf: by, view: view([]) }], []),
  );
  for (const n of [1, 3, 255, 257, 1023, 4097]) {
    const z = data(n, "f32");
    await same(`odd size ${n}`, [{ data: z, dtype: "f32" }], mapC(un("tanh", load(0, "f32")), [n], 1), 1e-4);
  }
  for (const shape of [[0], [3, 0, 2]]) {
    await same(`empty map ${shape}`, [], mapC(cnst(1, "f32"), shape, 0));
    for (const op of ["sum", "max", "min", "argmax"] as ReduceOp[]) {
      await same(
        `empty ${op} ${shape}`,
        [],
        (b) => b.reduce(op, cnst(1, "f32"), [], shape, [shape.length - 2 < 0 ? 0 : 1]),
      );
    }
  }
  await same("reduce over empty axis", [], (b) => b.reduce("sum", cnst(1, "f32"), [], [4, 0], [1]));
  await same("max over empty axis", [], (b) => b.reduce("max", cnst(1, "f32"), [], [4, 0], [1]));
  await same("max i32 over empty axis", [], (b) => b.reduce("max", cnst(1, "i32"), [], [2, 0], [1]));
});

test("map into a strided region, including in place", async () => {
  const m = data(6 * 5, "f32"), v = data(6, "f32");
  const ins = [{ data: m, dtype: "f32" as DType }, { data: v, dtype: "f32" as DType }];
  // Write v * 3 into column 2 of a 6x5 matrix.
  await same(
    "into column",
    ins,
    (b, [bm, bv]) =>
      b.map(bin("mul", load(0, "f32"), cnst(3, "f32")), [{ buf: bv, view: view([6]) }], [6], {
        buf: bm,
        view: view([6], [5], 2),
      }),
  );
  // m[:, 1:4] += m[:, 0:3]^T-ish broadcast of v (reads the target buffer itself).
  await same("in place", ins, (b, [bm, bv]) =>
    b.map(
      bin("add", load(0, "f32"), load(1, "f32")),
      [
        { buf: bm, view: view([6, 3], [5, 1], 1) },
        { buf: bv, view: view([6, 3], [1, 0]) },
      ],
      [6, 3],
      { buf: bm, view: view([6, 3], [5, 1], 1) },
    ));
});

test("reduce: every op over first/middle/last/multiple/all axes, views, dtypes", async () => {
  const shape = [5, 7, 9];
  const x = data(5 * 7 * 9, "f32");
  for (let k = 0; k < 30; k++) x[k * 7] = x[3]; // ties for argmax/argmin
  const axesSets = [[0], [1], [2], [0, 2], [1, 2], [0, 1], [0, 1, 2], []];
  const ops: ReduceOp[] = ["sum", "max", "min", "argmax", "argmin"];
  for (const op of ops) {
    for (const axes of axesSets) {
      await same(
        `${op} ${axes}`,
        [{ data: x, dtype: "f32" }],
        (b, [buf]) => b.reduce(op, un("exp", load(0, "f32")), [{ buf, view: view(shape) }], shape, axes),
        1e-4,
      );
      // The same over a transposed view of the data.
      await same(
        `${op} ${axes} transposed`,
        [{ data: x, dtype: "f32" }],
        (b, [buf]) => b.reduce(op, load(0, "f32"), [{ buf, view: view(shape, [1, 5, 35]) }], shape, axes),
        1e-4,
      );
    }
    const xi = data(5 * 7 * 9, "i32", -30, 30);
    await same(
      `${op} i32`,
      [{ data: xi, dtype: "i32" }],
      (b, [buf]) => b.reduce(op, load(0, "i32"), [{ buf, view: view(shape) }], shape, [1]),
    );
    const xb = data(5 * 7 * 9, "bool");
    await same(
      `${op} bool`,
      [{ data: xb, dtype: "bool" }],
      (b, [buf]) => b.reduce(op, load(0, "bool"), [{ buf, view: view(shape) }], shape, [0, 2]),
    );
  }
  // Reduction lengths that pick each thread count (1, 8, 64, 256 threads per output).
  for (const n of [5, 40, 300, 3000, 70001]) {
    const z = data(n * 3, "f32");
    for (const op of ops) {
      await same(
        `${op} rows of ${n}`,
        [{ data: z, dtype: "f32" }],
        (b, [buf]) => b.reduce(op, load(0, "f32"), [{ buf, view: view([3, n]) }], [3, n], [1]),
        1e-4,
      );
    }
  }
  // A broadcast input with a fused binary prologue.
  const y = data(9, "f32");
  await same(
    "sum of x*y (broadcast)",
    [{ data: x, dtype: "f32" }, { data: y, dtype: "f32" }],
    (b, [bx, by]) =>
      b.reduce(
        "sum",
        bin("mul", load(0, "f32"), load(1, "f32")),
        [
          { buf: bx, view: view(shape) },
          { buf: by, view: view(shape, [0, 0, 1]) },
        ],
        shape,
        [0, 2],
      ),
    1e-4,
  );
});

test("large sizes: map over 2^16 and 2^22, folded grids, exact big sums", async () => {
  for (const n of [70_000, (1 << 22) + 5]) {
    const x = data(n, "f32");
    await same(
      `map ${n}`,
      [{ data: x, dtype: "f32" }],
      mapC(bin("mul", load(0, "f32"), load(0, "f32")), [n], 1),
    );
    await same(
      `sum ${n}`,
      [{ data: x, dtype: "f32" }],
      (b, [buf]) => b.reduce("sum", load(0, "f32"), [{ buf, view: view([n]) }], [n], [0]),
      1e-3,
    );
    await same(
      `argmax ${n}`,
      [{ data: x, dtype: "f32" }],
      (b, [buf]) => b.reduce("argmax", load(0, "f32"), [{ buf, view: view([n]) }], [n], [0]),
    );
  }
  // More than 65,535 * 256 outputs: the 1-D grid must fold into 2-D.
  const big = (1 << 24) + 384; // 167,776 rows of 100
  await same(
    "map folded grid",
    [{ data: data(1000, "f32"), dtype: "f32" }],
    (b, [buf]) =>
      b.map(bin("add", load(0, "f32"), cast(idx(1), "f32")), [{
        buf,
        view: view([big / 100, 100], [0, 1], 7),
      }], [big / 100, 100]),
  );
  // Sum of 5,000,000 ones is exact; 70,000 rows of 2048 (one workgroup each: folded grid).
  await same("sum of 5e6 ones", [], (b) => b.reduce("sum", cnst(1, "f32"), [], [5_000_000], [0]), 0);
  const ones = await readGpu((b) => b.reduce("sum", cnst(1, "f32"), [], [5_000_000], [0]));
  assert.equal(ones[0], 5_000_000);
  const row = data(2048, "f32");
  await same(
    "70000 row sums",
    [{ data: row, dtype: "f32" }],
    (b, [buf]) =>
      b.reduce("sum", load(0, "f32"), [{ buf, view: view([70_000, 2048], [0, 1]) }], [70_000, 2048], [1]),
    1e-4,
  );
});

test("split reductions: few outputs over long ranges, ties across chunk boundaries", async () => {
  // Few outputs over ≥ 8192 elements take two passes: C chunks per output (C and the chunk length
  // L as in WebGpuBackend.reduce), partials, then a reduce of those.
  const n = (1 << 20) + 12345, C = Math.min(1024, Math.floor(n / 4096)), L = Math.ceil(n / C);
  const x = data(n, "f32");
  // Equal extremes at the last element of chunk 63, the first of chunk 64 and in chunk 127 (stage
  // 2 runs 64 lanes over the 259 partials: chunks 63 and 127 share one lane, 64 is lane 0's), and
  // in chunks 3 and 67 (one lane): the first index must win.
  const ties = [64 * L - 1, 64 * L, 127 * L];
  for (const i of ties) x[i] = 5;
  for (const i of [3 * L + 5, 67 * L]) x[i] = -5;
  const xi = data(n, "i32", -1000, 1000), xb = data(n, "bool");
  for (const i of ties) xi[i] = 2000;
  for (const op of ["sum", "max", "min", "argmax", "argmin"] as ReduceOp[]) {
    for (const [dtype, d] of [["f32", x], ["i32", xi], ["bool", xb]] as const) {
      if (dtype === "bool" && op === "sum") continue;
      await same(
        `${op} ${dtype} of ${n}`,
        [{ data: d, dtype }],
        (b, [buf]) => b.reduce(op, load(0, dtype), [{ buf, view: view([n]) }], [n], [0]),
        1e-4,
      );
    }
    // Few outputs: rows, a strided first axis, and kept dims around the reduced one.
    const src = [{ data: x, dtype: "f32" as DType }], rows = [4, n >> 2];
    for (const [shape, axis] of [[rows, 1], [[n >> 2, 4], 0], [[2, n >> 3, 4], 1]] as const) {
      await same(
        `${op} [${shape}] axis ${axis}`,
        src,
        (b, [buf]) => b.reduce(op, load(0, "f32"), [{ buf, view: view([...shape]) }], shape, [axis]),
        1e-4,
      );
    }
    // A fused prologue (evaluated in stage 1): relu(x) * y with y broadcast.
    const y = data(n >> 2, "f32");
    await same(
      `${op} of relu(x)*y`,
      [...src, { data: y, dtype: "f32" }],
      (b, [bx, by]) =>
        b.reduce(
          op,
          bin("mul", un("relu", load(0, "f32")), load(1, "f32")),
          [{ buf: bx, view: view(rows) }, { buf: by, view: view(rows, [0, 1]) }],
          rows,
          [1],
        ),
      1e-4,
    );
  }
  // Sums of ones stay exact: (2^22 + 5) ones to one output, and to 3 outputs of a constant.
  const big = (1 << 22) + 5;
  assert.equal((await readGpu((b) => b.reduce("sum", cnst(1, "f32"), [], [big], [0])))[0], big);
  const three = await readGpu((b) => b.reduce("sum", cnst(1, "f32"), [], [3, big], [1]));
  assert.deepEqual([...three], [big, big, big]);
  // All -Infinity: argmax is index 0, as on the cpu.
  await same("argmax of -inf", [], (b) => b.reduce("argmax", cnst(-Infinity, "f32"), [], [n], [0]));
});

async function readGpu(f: (b: Backend) => BackendBuffer) {
  const out = f(gpu!);
  const r = await gpu!.read(out);
  gpu!.free(out);
  return r;
}

test("matmul: odd sizes, transposed operands, broadcast batch", async () => {
  const mm = (a: Src, b: Src) => (be: Backend, bufs: BackendBuffer[]) =>
    be.matmul({ buf: bufs[0], view: a.view }, { buf: bufs[1], view: b.view });
  const dummy = undefined as unknown as BackendBuffer;
  for (
    const [M, K, N] of [[1, 1, 1], [3, 5, 7], [33, 17, 65], [130, 257, 64], [64, 64, 64], [5, 0, 3], [
      37,
      1029,
      130,
    ], [70, 513, 256]]
  ) {
    const a = data(M * K, "f32"), b = data(K * N, "f32");
    const ins = [{ data: a, dtype: "f32" as DType }, { data: b, dtype: "f32" as DType }];
    await same(
      `${M}x${K}x${N}`,
      ins,
      mm({ buf: dummy, view: view([M, K]) }, { buf: dummy, view: view([K, N]) }),
      1e-4,
    );
    // b stored as [N, K] and read transposed; a stored as [K, M] and read transposed.
    await same(
      `${M}x${K}x${N} bT`,
      ins,
      mm({ buf: dummy, view: view([M, K]) }, { buf: dummy, view: view([K, N], [1, K]) }),
      1e-4,
    );
    await same(
      `${M}x${K}x${N} aT`,
      ins,
      mm({ buf: dummy, view: view([M, K], [1, M]) }, { buf: dummy, view: view([K, N]) }),
      1e-4,
    );
  }
  // A wide, deep batch: K = 1030 (not a multiple of 4) and an Inf in B's last row.
  {
    const [M, K, N] = [19, 1030, 132];
    const a = data(2 * M * K, "f32"), b = data(2 * K * N, "f32");
    b[2 * K * N - 1] = Infinity;
    await same(
      "wide deep batch",
      [{ data: a, dtype: "f32" }, { data: b, dtype: "f32" }],
      mm({ buf: dummy, view: view([2, M, K]) }, { buf: dummy, view: view([2, K, N]) }),
      1e-4,
    );
  }
  // Batched [2, 3, M, K] @ [K, N] broadcast over the batch (stride 0), with an offset into a.
  const [M, K, N] = [9, 10, 11];
  const a = data(1 + 6 * M * K, "f32"), b = data(K * N, "f32");
  const ins = [{ data: a, dtype: "f32" as DType }, { data: b, dtype: "f32" as DType }];
  await same(
    "broadcast batch",
    ins,
    mm(
      { buf: dummy, view: view([2, 3, M, K], [3 * M * K, M * K, K, 1], 1) },
      { buf: dummy, view: view([2, 3, K, N], [0, 0, N, 1]) },
    ),
    1e-4,
  );
  await same(
    "batch with transposed b",
    ins,
    mm(
      { buf: dummy, view: view([2, 3, M, K], [3 * M * K, M * K, K, 1], 1) },
      { buf: dummy, view: view([2, 3, K, N], [0, 0, 1, K]) },
    ),
    1e-4,
  );
  // Big enough for the CPU adapters' vec4 kernel: batched, broadcast, transposed, odd and padded sizes.
  for (const [M, K, N] of [[70, 67, 66], [64, 64, 64], [33, 130, 128]]) {
    const a = data(4 + 2 * M * K, "f32"), b = data(K * N, "f32");
    const ins = [{ data: a, dtype: "f32" as DType }, { data: b, dtype: "f32" as DType }];
    for (const bt of [false, true]) {
      await same(
        `batched ${M}x${K}x${N} bT=${bt}`,
        ins,
        mm(
          { buf: dummy, view: view([2, M, K], [M * K, K, 1], 1) },
          { buf: dummy, view: view([2, K, N], bt ? [0, 1, K] : [0, N, 1]) },
        ),
        1e-4,
      );
    }
    await same(
      `${M}x${K}x${N} contiguous at offset 4`,
      ins,
      mm(
        { buf: dummy, view: view([M, K], [K, 1], 4) },
        { buf: dummy, view: view([K, N]) },
      ),
      1e-4,
    );
  }
});

test("gather and scatterAdd on several axes", async () => {
  const shape = [4, 5, 6];
  const x = data(4 * 5 * 6, "f32");
  for (let axis = 0; axis < 3; axis++) {
    const ishape = shape.map((n, d) => (d === axis ? 7 : n - 1)); // smaller in the other dims
    const n = ishape.reduce((p, q) => p * q, 1);
    const index = Array.from({ length: n }, () => Math.floor(rand() * shape[axis]));
    const ins = [{ data: x, dtype: "f32" as DType }, { data: index, dtype: "i32" as DType }];
    await same(
      `gather axis ${axis}`,
      ins,
      (b, [bx, bi]) =>
        b.gather(
          { buf: bx, view: view(ishape, contiguousStrides(shape)) },
          { buf: bi, view: view(ishape) },
          axis,
        ),
    );
    // Gather from a transposed source.
    const tshape = [shape[2], shape[1], shape[0]];
    const tish = tshape.map((s, d) => (d === axis ? 3 : s));
    const tn = tish.reduce((p, q) => p * q, 1);
    const tindex = Array.from({ length: tn }, () => Math.floor(rand() * tshape[axis]));
    await same(
      `gather axis ${axis} transposed`,
      [ins[0], { data: tindex, dtype: "i32" }],
      (b, [bx, bi]) =>
        // The source's view spans its whole axis (the CPU backend bounds indices by it).
        b.gather({ buf: bx, view: view(tish.map((s, d) => d === axis ? tshape[d] : s), [1, 6, 30]) }, {
          buf: bi,
          view: view(tish),
        }, axis),
    );
    const src = data(n, "f32");
    await same(
      `scatterAdd axis ${axis}`,
      [{ data: index, dtype: "i32" }, { data: src, dtype: "f32" }],
      (b, [bi, bs]) =>
        b.scatterAdd({ buf: bi, view: view(ishape) }, { buf: bs, view: view(ishape) }, axis, shape),
      1e-5,
    );
    const isrc = data(n, "i32", -9, 9);
    await same(
      `scatterAdd i32 axis ${axis}`,
      [{ data: index, dtype: "i32" }, { data: isrc, dtype: "i32" }],
      (b, [bi, bs]) =>
        b.scatterAdd({ buf: bi, view: view(ishape) }, { buf: bs, view: view(ishape) }, axis, shape),
    );
  }
  // Embedding-style: rows of a [10, 8] table picked by a broadcast index.
  const table = data(80, "f32"), ids = [3, 3, 9, 0, 5];
  await same(
    "gather rows",
    [{ data: table, dtype: "f32" }, { data: ids, dtype: "i32" }],
    (b, [bt, bi]) =>
      b.gather({ buf: bt, view: view([10, 8], [8, 1]) }, { buf: bi, view: view([5, 8], [1, 0]) }, 0),
  );
});

test("bool and i32 round trips; f64 rejected", async () => {
  const bools = [1, 0, 0, 1, 1];
  const bb = gpu!.upload(bools, "bool");
  const rb = await gpu!.read(bb);
  assert.ok(rb instanceof Uint8Array);
  assert.deepEqual([...rb], bools);
  const ints = [-2147483648, 2147483647, 0, -1, 42];
  const bi = gpu!.upload(ints, "i32");
  const ri = await gpu!.read(bi);
  assert.ok(ri instanceof Int32Array);
  assert.deepEqual([...ri], ints);
  const rf = await gpu!.read(gpu!.upload([1.5, -Infinity, NaN], "f32"));
  assert.ok(rf instanceof Float32Array);
  assert.deepEqual([...rf], [1.5, -Infinity, NaN]);
  assert.throws(() => gpu!.upload([1], "f64"), /f64 is not supported/);
  assert.deepEqual([...(await gpu!.read(gpu!.upload([], "f32")))], []);
});

test("pool: free then alloc of the same size reuses; pooledBytes reflects it", async () => {
  await gpu!.flush();
  const a = gpu!.upload(data(1000, "f32"), "f32");
  const before = gpu!.pooledBytes();
  gpu!.free(a);
  assert.equal(gpu!.pooledBytes(), before + 4096);
  const b = gpu!.alloc(900, "f32"); // same size class (4 KiB): a's buffer comes back
  assert.equal(gpu!.pooledBytes(), before);
  assert.equal(raw(b), raw(a));
  // A buffer the pending encoder uses is pooled only after the next submit.
  const c = gpu!.map(cnst(2, "f32"), [], [900], { buf: b, view: view([900]) });
  gpu!.free(c);
  assert.equal(gpu!.pooledBytes(), before + 4096);
  const d = gpu!.alloc(1000, "f32");
  assert.notEqual(raw(d), raw(c));
  await gpu!.flush();
  const e = gpu!.alloc(1000, "f32");
  assert.equal(raw(e), raw(c));
  gpu!.free(d);
  gpu!.free(e);
  assert.throws(() => gpu!.alloc(2 ** 30, "f32"), /maxStorageBufferBindingSize/);
});

const raw = (b: BackendBuffer): unknown => (b as unknown as { raw: unknown }).raw;
