// The WebAssembly SIMD renderer (tensor/render/wasm.ts) against the JavaScript one, the reference:
// random expressions over random views, special values, and the math functions' error bounds.
import assert from "node:assert/strict";
import { numel, type View } from "../tensor/backend.ts";
import { CpuBackend, CpuBuffer } from "../tensor/cpu.ts";
import * as X from "../tensor/exp.ts";
import { rng } from "../tensor/mod.ts";
import { type Mode, wasmKernel } from "../tensor/render/wasm.ts";
import { heapAt } from "../tensor/wasm.ts";

const js = new CpuBackend(), wasm = new CpuBackend();
js.wasm = false;

/** A random f32 expression over `inputs` loads, mostly bounded so that tolerances stay meaningful. */
function randomExp(r: () => number, inputs: number, depth: number): X.Exp {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  if (depth === 0 || r() < 0.2) {
    return r() < 0.8 ? X.load(Math.floor(r() * inputs), "f32") : X.cnst(r() * 4 - 2, "f32");
  }
  const a = () => randomExp(r, inputs, depth - 1);
  const abs1 = (e: X.Exp) => X.bin("add", X.un("abs", e), X.cnst(1, "f32"));
  return pick<() => X.Exp>([
    () => X.bin(pick(["add", "sub", "mul", "max", "min"] as const), a(), a()),
    () => X.bin("div", a(), abs1(a())),
    () => X.un(pick(["neg", "abs", "tanh", "sigmoid", "relu", "floor"] as const), a()),
    () => X.un("exp", X.un("tanh", a())),
    () => X.un(pick(["log", "sqrt", "rsqrt"] as const), abs1(a())),
    () => X.where(X.bin(pick(["lt", "le", "gt", "ge", "eq", "ne"] as const), a(), a()), a(), a()),
    () => X.cast(X.bin("or", X.bin("gt", a(), a()), X.un("not", X.bin("lt", a(), X.cnst(0, "f32")))), "f32"),
  ])();
}

/** A view of `shape` into a fresh buffer: contiguous, broadcast along some dims, offset, or transposed. */
function randomView(r: () => number, shape: number[]): { data: Float32Array; view: View } {
  const kind = Math.floor(r() * 4);
  const dims = shape.map((n, d) =>
    (kind === 1 && r() < 0.5) || (kind === 2 && d === shape.length - 1) ? 1 : n
  );
  let strides = dims.map((_, d) => dims.slice(d + 1).reduce((a, b) => a * b, 1)).map((s, d) =>
    dims[d] === 1 ? 0 : s
  );
  if (kind === 3 && shape.length >= 2) strides = [...strides.slice(0, -2), 1, dims[dims.length - 2]]; // transposed
  const offset = Math.floor(r() * 3);
  const size = offset + dims.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: size }, () => (r() * 2 - 1) * 3);
  return { data, view: { shape, strides, offset } };
}

/** Both backends' results agree: NaN where NaN, else within 1e-4 of (1 + |reference|). */
function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i]) || !Number.isFinite(want[i])) {
      assert.ok(Object.is(got[i], want[i]), `${what} [${i}]`);
    } else {assert.ok(
        Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])),
        `${what} [${i}]: ${got[i]} vs ${want[i]}`,
      );}
  }
}

async function both(f: (be: CpuBackend) => ReturnType<CpuBackend["map"]>, what: string) {
  close(await wasm.read(f(wasm)), await js.read(f(js)), what);
}

Deno.test("wasm renderer: random expressions over random views match JavaScript (maps and reductions)", async () => {
  const r = rng(42);
  const shapes = [[3000], [37, 61], [2, 3, 257], [1, 1025], [65, 17], [0, 2000], [2000, 0], [4, 1, 333], [
    70000,
  ], [300, 260]]; // the last two split across threads
  for (let t = 0; t < 130; t++) {
    const shape = shapes[t % shapes.length];
    const n = 1 + Math.floor(r() * 3);
    const e = randomExp(r, n, 4);
    const ins = Array.from({ length: n }, () => randomView(r, shape));
    // Every other round, the inputs are plain arrays (copied into WebAssembly memory by each call)
    // rather than the backend's own (in that memory already, read in place).
    const srcs = (be: CpuBackend) =>
      ins.map((x) => ({
        buf: t % 2 ? new CpuBuffer(Float32Array.from(x.data), "f32") : be.upload(x.data, "f32"),
        view: x.view,
      }));
    await both((be) => be.map(e, srcs(be), shape), `map ${X.key(e)} over ${shape}`);
    const op = (["sum", "max", "min"] as const)[t % 3];
    const axes = t % 2 || shape.length === 1 ? [shape.length - 1] : shape.map((_, d) => d).slice(1);
    await both(
      (be) => be.reduce(op, e, srcs(be), shape, axes),
      `${op} ${X.key(e)} over ${shape} axes ${axes}`,
    );
  }
});

Deno.test("wasm renderer: NaN, ±Infinity, ±0 and subnormals behave as in JavaScript", async () => {
  const special = [
    NaN,
    Infinity,
    -Infinity,
    0,
    -0,
    1e-40,
    -1e-40,
    1e-45,
    3e38,
    -3e38,
    88.5,
    89,
    -87.5,
    -104,
    1,
    -1,
  ];
  const data = Float32Array.from({ length: 2048 }, (_, i) => special[i % special.length]);
  const src = (
    be: CpuBackend,
  ) => [{ buf: be.upload(data, "f32"), view: { shape: [2048], strides: [1], offset: 0 } }];
  const x = X.load(0, "f32");
  for (
    const op of ["exp", "log", "tanh", "sigmoid", "neg", "abs", "sqrt", "rsqrt", "relu", "floor"] as const
  ) {
    const want = await js.read(js.map(X.un(op, x), src(js), [2048]));
    const got = await wasm.read(wasm.map(X.un(op, x), src(wasm), [2048]));
    for (let i = 0; i < 16; i++) {
      // Finite values agree within 2e-7 relative, or 1e-38 absolute: JavaScript's tanh of a
      // subnormal is 0, WebAssembly's the subnormal itself (which is closer).
      const ok = Object.is(got[i], want[i]) ||
        (Number.isFinite(want[i]) && Math.abs(got[i] - want[i]) <= 2e-7 * Math.abs(want[i]) + 1e-38);
      assert.ok(ok, `${op}(${data[i]}): ${got[i]} vs ${want[i]}`);
    }
  }
  for (const op of ["max", "min", "sum"] as const) {
    const shape = [128, 16]; // each row holds every special value
    await both((be) => be.reduce(op, x, src(be), shape, [1]), op);
  }
});

Deno.test("wasm renderer: exp, log, tanh, sigmoid within 2e-7 relative of Math.* in f64", () => {
  const r = rng(7), n = 1 << 18;
  const cases: [X.UnaryOp, (x: number) => number, () => number][] = [
    ["exp", Math.exp, () => r() * 175 - 87], // results from 2⁻¹²⁶ to f32's largest
    ["log", Math.log, () => r() < 0.5 ? 2 ** (r() * 250 - 125) : 0.5 + r()],
    ["tanh", Math.tanh, () => (r() - 0.5) * (r() < 0.5 ? 2 : 20)],
    ["sigmoid", (x) => 1 / (1 + Math.exp(-x)), () => r() * 160 - 80],
  ];
  for (const [op, ref, draw] of cases) {
    const x = Float32Array.from({ length: n }, draw), out = new Float32Array(n);
    const run = wasmKernel(
      "map",
      X.un(op, X.load(0, "f32")),
      [{ data: x, view: { shape: [n], strides: [1], offset: 0 } }],
      [n],
      0,
      out,
    );
    assert.ok(run);
    run();
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const want = ref(x[i]);
      if (want !== 0) worst = Math.max(worst, Math.abs(out[i] - want) / Math.abs(want));
    }
    assert.ok(worst <= 2e-7, `${op}: max relative error ${worst}`);
  }
});

Deno.test("wasm renderer: reductions over leading axes match JavaScript", async () => {
  const r = rng(3);
  // [shape, reduced axes]: columns not a multiple of 4, few columns and many rows, size-1 dims.
  const cases: [number[], number[]][] = [
    [[37, 61], [0]],
    [[1025, 3], [0]],
    [[6000, 2], [0]],
    [[300, 16], [0]],
    [[2, 3, 257], [0, 1]],
    [[4, 1, 333], [0]],
    [[4, 1, 333], [0, 1]],
    [[3, 400, 5], [0]],
    [[5, 1, 300, 7], [0, 2]],
    [[2000, 1], [0]],
  ];
  let ran = 0;
  for (let t = 0; t < 90; t++) {
    const [shape, axes] = cases[t % cases.length];
    const n = 1 + Math.floor(r() * 3);
    const e = randomExp(r, n, 4);
    const ins = Array.from({ length: n }, () => randomView(r, shape));
    const srcs = (be: CpuBackend) => ins.map((x) => ({ buf: be.upload(x.data, "f32"), view: x.view }));
    const op = (["sum", "max", "min"] as const)[t % 3], what = `${op} ${X.key(e)} over ${shape} axes ${axes}`;
    const want = await js.read(js.reduce(op, e, srcs(js), shape, axes));
    close(await wasm.read(wasm.reduce(op, e, srcs(wasm), shape, axes)), want, what);
    // The kernel itself (the backend sends [2000, 1] down the trailing path): null for transposes.
    const out = new Float32Array(want.length);
    const run = wasmKernel(op, e, ins, shape, 1 + Math.max(...axes), out, undefined, true);
    if (run) (run(), close(out, want, `kernel ${what}`), ran++);
  }
  // Transposes, and broadcasts along only some of the kept (or reduced) dims, stay in JavaScript.
  assert.ok(ran >= 25, `${ran} of 90 ran as WebAssembly`);
});

Deno.test("wasm renderer: leading-axis reductions of NaN and ±Infinity, and empty ones", async () => {
  // Column c holds, among finite values: a NaN (c % 4 = 0), Infinity (1), -Infinity (2) or both (3).
  const [rows, cols] = [120, 17], r = rng(9);
  const data = Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
  for (let c = 0; c < cols; c++) {
    const [a, b] = [(7 * c) % rows, (13 * c + 5) % rows];
    if (c % 4 === 0) data[a * cols + c] = NaN;
    if (c % 4 === 1 || c % 4 === 3) data[a * cols + c] = Infinity;
    if (c % 4 === 2 || c % 4 === 3) data[b * cols + c] = -Infinity;
  }
  // Plain, and fused with a row scale and a column bias (broadcast views: one number per row, per column).
  const shape = [rows, cols], x = X.load(0, "f32");
  const fused = X.bin("add", X.bin("mul", x, X.load(1, "f32")), X.load(2, "f32"));
  const ins = [
    { data, view: { shape, strides: [cols, 1], offset: 0 } },
    {
      data: Float32Array.from({ length: rows }, () => 0.5 + r()),
      view: { shape, strides: [1, 0], offset: 0 },
    },
    {
      data: Float32Array.from({ length: cols }, () => r() - 0.5),
      view: { shape, strides: [0, 1], offset: 0 },
    },
  ];
  const src = (be: CpuBackend) => ins.map((x) => ({ buf: be.upload(x.data, "f32"), view: x.view }));
  for (const [op, e] of [["sum", x], ["max", x], ["min", x], ["sum", fused], ["max", fused]] as const) {
    const want = await js.read(js.reduce(op, e, src(js), shape, [0]));
    const out = new Float32Array(cols), run = wasmKernel(op, e, ins, shape, 1, out, undefined, true);
    assert.ok(run);
    run();
    close(out, want, `kernel ${op} ${X.key(e)}`);
    await both((be) => be.reduce(op, e, src(be), shape, [0]), op);
  }
  // No rows (reachable only by calling the kernel: the backend sends empty tensors to JavaScript):
  // null, and the JavaScript kernel writes the identity.
  const empty = { data, view: { shape: [0, 8], strides: [8, 1], offset: 0 } };
  assert.equal(wasmKernel("max", x, [empty], [0, 8], 1, new Float32Array(8), undefined, true), null);
  assert.deepEqual([
    ...await js.read(js.reduce("max", x, [{ ...empty, buf: js.upload(data, "f32") }], [0, 8], [0])),
  ], new Array(8).fill(-Infinity));
});

Deno.test("wasm renderer: views merged only with an outer loop (a slice, a partial broadcast)", async () => {
  const r = rng(11), [B, T, C] = [6, 33, 41], shape = [B, T, C];
  const rand = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1);
  const ins = [
    { data: rand(B * (T + 1) * C), view: { shape, strides: [(T + 1) * C, C, 1], offset: C } }, // a slice
    { data: rand(T * C), view: { shape, strides: [0, C, 1], offset: 0 } }, // broadcast along B only
    { data: rand(B * T), view: { shape, strides: [T, 1, 0], offset: 0 } }, // one number per row
  ];
  const e = X.bin("mul", X.bin("add", X.load(0, "f32"), X.load(1, "f32")), X.load(2, "f32"));
  const srcs = (be: CpuBackend) => ins.map((x) => ({ buf: be.upload(x.data, "f32"), view: x.view }));
  // [mode, reduced axes, split]: a map, trailing reductions, leading reductions.
  const cases = [["map", [], 0], ["sum", [2], 2], ["max", [2], 2], ["sum", [0, 1], 2], ["min", [0, 1], 2]];
  for (const [mode, axes, split] of cases as [Mode, number[], number][]) {
    const run = (be: CpuBackend) =>
      mode === "map" ? be.map(e, srcs(be), shape) : be.reduce(mode, e, srcs(be), shape, axes);
    const want = await js.read(run(js)), out = new Float32Array(want.length);
    const kernel = wasmKernel(mode, e, ins, shape, split, out, undefined, axes[0] === 0);
    assert.ok(kernel, `${mode} ${axes}`);
    kernel();
    close(out, want, `kernel ${mode} ${axes}`);
    await both(run, `${mode} ${axes}`);
  }
});

Deno.test("wasm renderer: output indices, i32 arithmetic, bool loads, and views merged in no way", async () => {
  const r = rng(5), f = (n: number) => X.cnst(n, "f32"), i = (n: number) => X.cnst(n, "i32");
  const x = X.load(0, "f32");
  // GPT's causal mask: key index #3 ≤ query index #2 (+ 0), else -1e9; then a softmax's exp.
  const mask = X.bin("le", X.idx(3), X.bin("add", X.bin("mul", X.idx(2), i(1)), i(0)));
  const scores = X.where(mask, X.bin("mul", x, f(0.17)), f(-1e9));
  // A one-hot of integer targets made from output indices, and a cast of i32 to f32.
  const hot = X.cast(X.bin("eq", X.bin("sub", X.idx(3), i(2)), X.idx(1)), "f32");
  const exps = [scores, X.un("exp", X.bin("sub", scores, x)), X.bin("add", hot, X.cast(X.idx(2), "f32"))];
  // Contiguous, and with the two middle dims transposed (neither merges with the dims around it); the
  // second shape is large enough to be split across threads.
  const views = [[3, 2, 37, 37], [4, 80, 16, 16]].flatMap(([a, b, c, d]): View[] => [
    { shape: [a, b, c, d], strides: [b * c * d, c * d, d, 1], offset: 0 },
    { shape: [a, b, c, d], strides: [b * c * d, d, b * d, 1], offset: 0 },
  ]);
  let ran = 0;
  for (const e of exps) {
    for (const view of views) {
      const shape = view.shape, data = Float32Array.from({ length: numel(shape) }, () => r() * 4 - 2);
      const src = (be: CpuBackend) => [{ buf: be.upload(data, "f32"), view }];
      const cases = [["map", 0], ["max", 3], ["sum", 3]] as const;
      for (const [mode, split] of cases) {
        const want = mode === "map"
          ? await js.read(js.map(e, src(js), shape))
          : await js.read(js.reduce(mode, e, src(js), shape, shape.map((_, d) => d).slice(split)));
        const out = new Float32Array(want.length),
          run = wasmKernel(mode, e, [{ data, view }], shape, split, out);
        assert.ok(run, `${mode} ${X.key(e)} ran as WebAssembly`);
        run();
        close(out, want, `${mode} ${X.key(e)} strides ${view.strides}`);
        ran++;
      }
    }
  }
  assert.equal(ran, 36);
  // Optimizer updates: a bool scalar broadcast (a 0/1 byte) selects the new value or keeps the old.
  const ok = X.load(0, "bool"), [p, g] = [X.load(1, "f32"), X.load(2, "f32")];
  const step = X.where(ok, X.bin("sub", p, X.bin("mul", g, f(0.01))), p);
  const [pd, gd] = [0, 0].map(() => Float32Array.from({ length: 130 * 70 }, () => r() - 0.5));
  for (const flag of [0, 1]) {
    const srcs = (be: CpuBackend) => [
      { buf: be.upload([flag], "bool"), view: { shape: [130, 70], strides: [0, 0], offset: 0 } },
      ...[pd, gd].map((d) => ({
        buf: be.upload(d, "f32"),
        view: { shape: [130, 70], strides: [70, 1], offset: 0 },
      })),
    ];
    const want = await js.read(js.map(step, srcs(js), [130, 70]));
    const out = new Float32Array(want.length);
    const ins = srcs(wasm).map((s) => ({
      data: (s.buf as unknown as { data: Uint8Array }).data,
      view: s.view,
    }));
    const run = wasmKernel("map", step, ins, [130, 70], 0, out);
    assert.ok(run && ins[0].data instanceof Uint8Array);
    run();
    close(out, want, `where(ok = ${flag}, …)`);
  }
  // i32 inputs: a one-hot of targets minus probabilities (cross-entropy's gradient), targets broadcast
  // along the classes. A target of 2²⁴ or more (which f32 lanes would round) falls back to JavaScript
  // at that call: the backend's result still equals the reference.
  const grad = X.bin("sub", X.cast(X.bin("eq", X.idx(1), X.load(0, "i32")), "f32"), X.load(1, "f32"));
  const probs = Float32Array.from({ length: 40 * 256 }, () => r());
  for (const big of [0, 2 ** 24, -(2 ** 24) - 1]) {
    const targets = Int32Array.from({ length: 40 }, (_, i) => i === 7 ? big || 3 : (i * 37) % 256);
    const srcs = (be: CpuBackend) => [
      { buf: be.upload(targets, "i32"), view: { shape: [40, 256], strides: [1, 0], offset: 0 } },
      { buf: be.upload(probs, "f32"), view: { shape: [40, 256], strides: [256, 1], offset: 0 } },
    ];
    const want = await js.read(js.map(grad, srcs(js), [40, 256]));
    assert.deepEqual(await wasm.read(wasm.map(grad, srcs(wasm), [40, 256])), want);
    const out = new Float32Array(want.length);
    const run = wasmKernel(
      "map",
      grad,
      srcs(wasm).map((x) => ({ data: (x.buf as CpuBuffer).data, view: x.view })),
      [40, 256],
      0,
      out,
    );
    assert.equal(run?.(), !big, `target ${big}`);
    if (!big) assert.deepEqual(out, want);
  }
  // A reduction to one value of 2¹⁶ or more elements sums two halves (split across threads): NaN in the
  // second half, ±Infinity in the first, then finite values only.
  const long = Float32Array.from({ length: 70_001 }, () => r() - 0.5);
  for (const [i, v] of [[60_000, NaN], [5, Infinity], [7, -Infinity], [60_000, 0.5], [5, 1], [7, 2]]) {
    long[i] = v;
    const src = (
      be: CpuBackend,
    ) => [{ buf: be.upload(long, "f32"), view: { shape: [70_001], strides: [1], offset: 0 } }];
    for (const op of ["sum", "max", "min"] as const) {
      await both((be) => be.reduce(op, x, src(be), [70_001], [0]), `${op} ${i}`);
    }
  }
  // A map into a strided region of a larger buffer (a slice, and a slice of a transposed layout): rows
  // land where the region says, the rest of the buffer is untouched.
  const base = Float32Array.from({ length: 3 * 40 * 300 }, () => r());
  const regions: View[] = [
    { shape: [3, 40, 128], strides: [12_000, 300, 1], offset: 50 },
    { shape: [3, 40, 128], strides: [300, 900, 1], offset: 7 },
  ];
  for (const into of regions) {
    const ins = (
      be: CpuBackend,
    ) => [{ buf: be.upload(probs, "f32"), view: { shape: into.shape, strides: [0, 128, 1], offset: 0 } }];
    const write = async (be: CpuBackend) => {
      const buf = be.upload(base, "f32");
      be.map(X.un("exp", X.load(0, "f32")), ins(be), into.shape, { buf, view: into });
      return await be.read(buf);
    };
    assert.deepEqual(
      Array.from(await write(wasm), (v, i) => v === base[i]),
      Array.from(await write(js), (v, i) => v === base[i]),
    );
    close(await write(wasm), await write(js), `map into ${into.strides}`);
    const src = [{ data: probs, view: ins(js)[0].view }];
    assert.ok(wasmKernel("map", X.un("exp", X.load(0, "f32")), src, into.shape, 0, base.slice(), into));
  }
  // Integers that f32 lanes would not hold exactly stay in JavaScript.
  const big = X.cast(X.bin("mul", X.idx(0), i(1 << 24)), "f32");
  assert.equal(wasmKernel("map", big, [], [2048], 0, new Float32Array(2048)), null);
});

Deno.test("wasm renderer: f32 buffers live in WebAssembly memory; maps write into them, not past their values", () => {
  const data = (b: unknown) => (b as CpuBuffer).data as Float32Array;
  const x = wasm.upload(Float32Array.from({ length: 1037 }, (_, i) => i), "f32");
  assert.ok(heapAt(data(x)) >= 0, "an uploaded f32 buffer is in the shared memory");
  const e = X.bin("mul", X.load(0, "f32"), X.cnst(2, "f32"));
  const src = [{ buf: x, view: { shape: [17, 61], strides: [61, 1], offset: 0 } }];
  // 1037 floats: the last vector spills 3 floats past them. Into a buffer of exactly 17 × 61 the
  // map writes in place (the spill lands in the slack after it); the next buffer keeps its values.
  const [out, next] = [wasm.alloc(1037, "f32"), wasm.alloc(1037, "f32")];
  data(next).fill(7);
  wasm.map(e, src, [17, 61], { buf: out, view: { shape: [17, 61], strides: [61, 1], offset: 0 } });
  assert.deepEqual([...data(out)], Array.from({ length: 1037 }, (_, i) => 2 * i));
  assert.ok(data(next).every((v) => v === 7));
  // Into the first 1037 floats of a longer buffer: the floats after them are values, not slack.
  const big = wasm.alloc(2074, "f32");
  data(big).fill(7);
  wasm.map(e, src, [17, 61], { buf: big, view: { shape: [17, 61], strides: [61, 1], offset: 0 } });
  assert.deepEqual([...data(big).subarray(0, 1037)], Array.from({ length: 1037 }, (_, i) => 2 * i));
  assert.ok(data(big).subarray(1037).every((v) => v === 7));
  // A map that reads the buffer it writes, shifted: y[i + 4] = 2·x[i] in one buffer. Written in place,
  // each vector would read values already overwritten; it goes through scratch memory instead.
  const sh = wasm.upload(Float32Array.from({ length: 2004 }, (_, i) => i), "f32");
  wasm.map(e, [{ buf: sh, view: { shape: [2000], strides: [1], offset: 0 } }], [2000], {
    buf: sh,
    view: { shape: [2000], strides: [1], offset: 4 },
  });
  assert.deepEqual([...data(sh)], Array.from({ length: 2004 }, (_, i) => i < 4 ? i : 2 * (i - 4)));
});
