/**
 * nn tests: layers (hand-worked values), Module naming and modes, optimizers (hand-worked steps),
 * schedules, gradient clipping, sampling and generation, and the word tokenizer.
 */
import assert from "node:assert/strict";
import {
  Adam,
  AdamW,
  ByteTokenizer,
  CharTokenizer,
  clipGradNorm,
  Dropout,
  Embedding,
  fromArray,
  generate,
  GPT,
  type GPTConfig,
  LayerNorm,
  Linear,
  loadSafetensors,
  lrAt,
  Module,
  ones,
  param,
  rng,
  sampleToken,
  saveSafetensors,
  SGD,
  type Tensor,
  tensor,
  tokenizerFromJSON,
  WordTokenizer,
  zeros,
} from "../mod.ts";
import { assertClose } from "./util.ts";

// ---------------------------------------------------------------------------------------------
// Layers

Deno.test("Linear: x·W + b with weight [in, out], any leading dims, optional bias", async () => {
  const lin = new Linear(2, 3);
  assert.deepEqual(lin.weight.shape, [2, 3]);
  assert.deepEqual(lin.bias!.shape, [3]);
  lin.loadStateDict({ weight: tensor([[1, 2, 3], [4, 5, 6]]), bias: tensor([0.5, -0.5, 1]) });
  // [1, 2]·W = [1 + 8, 2 + 10, 3 + 12] = [9, 12, 15], plus b.
  await assertClose(lin.forward(tensor([[1, 2]])), [[9.5, 11.5, 16]]);
  await assertClose(lin.forward(tensor([[[1, 2]], [[0, -1]]])), [[[9.5, 11.5, 16]], [[-3.5, -5.5, -5]]]);
  await assertClose(lin.forward(tensor([1, 0])), [1.5, 1.5, 4]);

  const nb = new Linear(2, 3, { bias: false });
  assert.equal(nb.bias, null);
  assert.deepEqual(Object.keys(nb.stateDict()), ["weight"]);
  nb.loadStateDict({ weight: tensor([[1, 2, 3], [4, 5, 6]]) });
  await assertClose(nb.forward(tensor([[1, 2]])), [[9, 12, 15]]);
});

Deno.test("Linear: initialization is seeded N(0, std²) weights and zero bias", async () => {
  const a = new Linear(64, 32, { seed: 5 }), b = new Linear(64, 32, { seed: 5 });
  const c = new Linear(64, 32, { seed: 6, std: 0.5 });
  const wa = Array.from(await a.weight.data());
  assert.deepEqual(wa, Array.from(await b.weight.data()), "same seed, same weights");
  assert.notDeepEqual(wa, Array.from(await c.weight.data()));
  const std = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  assert.ok(Math.abs(std(wa) - 0.02) < 0.002, `std ${std(wa)} ≈ 0.02`);
  assert.ok(Math.abs(std(Array.from(await c.weight.data())) - 0.5) < 0.05);
  await assertClose(a.bias!, new Array(32).fill(0));
  assert.ok(a.weight.requiresGrad && a.bias!.requiresGrad);
});

Deno.test("Embedding: rows picked by i32 ids of any shape; bad ids are errors", async () => {
  const emb = new Embedding(4, 2);
  assert.deepEqual(emb.weight.shape, [4, 2]);
  emb.loadStateDict({ weight: tensor([[0, 1], [10, 11], [20, 21], [30, 31]]) });
  await assertClose(emb.forward(fromArray([2, 0, 3], [3], "i32")), [[20, 21], [0, 1], [30, 31]]);
  await assertClose(emb.forward(fromArray([1, 1, 3, 0], [2, 2], "i32")), [[[10, 11], [10, 11]], [[
    30,
    31,
  ], [0, 1]]]);
  assert.throws(() => emb.forward(fromArray([4], [1], "i32")), /4/);
  assert.throws(() => emb.forward(fromArray([-1], [1], "i32")), /-1/);
});

Deno.test("LayerNorm: (x − mean)/√(var + 1e-5)·weight + bias over the last axis", async () => {
  const ln = new LayerNorm(3);
  assert.equal(ln.eps, 1e-5);
  await assertClose(ln.weight, [1, 1, 1]);
  await assertClose(ln.bias, [0, 0, 0]);
  const s = 1 / Math.sqrt(2 / 3 + 1e-5); // [1, 2, 3]: mean 2, biased variance 2/3
  await assertClose(ln.forward(tensor([[1, 2, 3], [2, 2, 2]])), [[-s, 0, s], [0, 0, 0]]);
  ln.loadStateDict({ weight: tensor([1, 2, 3]), bias: tensor([0, 0, 1]) });
  await assertClose(ln.forward(tensor([[1, 2, 3], [2, 2, 2], [-4, 0, 4]])), [
    [-s, 0, 3 * s + 1],
    [0, 0, 1],
    // [-4, 0, 4]: mean 0, variance 32/3
    [-4 / Math.sqrt(32 / 3 + 1e-5), 0, (3 * 4) / Math.sqrt(32 / 3 + 1e-5) + 1],
  ]);
  const ln2 = new LayerNorm(2, 0.5); // eps matters for small variance: [0, 1] has variance 1/4
  await assertClose(ln2.forward(tensor([0, 1])), [-0.5 / Math.sqrt(0.75), 0.5 / Math.sqrt(0.75)]);
});

Deno.test("Dropout: identity in eval mode and at p = 0", async () => {
  const x = tensor([[1, 2], [3, 4]]);
  const d = new Dropout(0.5, 1);
  d.eval();
  assert.equal(d.forward(x), x);
  const d0 = new Dropout(0);
  assert.ok(d0.training);
  assert.equal(d0.forward(x), x);
  await assertClose(d0.forward(x), [[1, 2], [3, 4]]);
});

Deno.test("Dropout: training zeros about p of the elements and scales the rest by 1/(1 − p)", async () => {
  const p = 0.3, n = 20000;
  const d = new Dropout(p, 7);
  const y = Array.from(await d.forward(ones([100, 200])).data());
  const zeros = y.filter((v) => v === 0).length;
  assert.ok(Math.abs(zeros / n - p) < 0.015, `dropped fraction ${zeros / n} ≈ ${p}`);
  for (const v of y) if (v !== 0) assert.ok(Math.abs(v - 1 / (1 - p)) < 1e-6, `kept value ${v}`);
  // The expectation is preserved.
  const mean = y.reduce((a, b) => a + b, 0) / n;
  assert.ok(Math.abs(mean - 1) < 0.03, `mean ${mean}`);

  // The gradient goes through the same mask and scale.
  const x = param(fromArray(Array.from({ length: 50 }, (_, i) => i + 1), [50]));
  const d2 = new Dropout(0.5, 3);
  const out = d2.forward(x);
  out.sum().backward();
  const [o, g] = [Array.from(await out.data()), Array.from(await x.grad!.data())];
  o.forEach((v, i) => assert.ok(Math.abs(g[i] - v / (i + 1)) < 1e-6, `grad[${i}] ${g[i]} vs ${v / (i + 1)}`));
  assert.ok(g.includes(0) && g.includes(2), "both dropped and kept elements");
});

Deno.test("Dropout: seeded and deterministic; successive calls draw new masks", async () => {
  const x = ones([64]);
  const a = new Dropout(0.5, 11), b = new Dropout(0.5, 11), c = new Dropout(0.5, 12);
  const [a1, a2] = [Array.from(await a.forward(x).data()), Array.from(await a.forward(x).data())];
  const [b1, b2] = [Array.from(await b.forward(x).data()), Array.from(await b.forward(x).data())];
  assert.deepEqual(a1, b1);
  assert.deepEqual(a2, b2);
  assert.notDeepEqual(a1, a2, "a new mask per call");
  assert.notDeepEqual(a1, Array.from(await c.forward(x).data()), "another seed, another mask");
});

Deno.test("Dropout: p outside [0, 1) is a RangeError", () => {
  for (const p of [-0.1, 1, 1.5, NaN]) {
    assert.throws(
      () => new Dropout(p),
      (e: Error) => e instanceof RangeError && e.message.includes("p must be in [0, 1)"),
      `p = ${p}`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Module

class Inner extends Module {
  proj = new Linear(3, 1, { bias: false, seed: 2 });
}
class Net extends Module {
  enc = new Linear(2, 3, { seed: 1 });
  blocks: [LayerNorm<3>, { inner: Inner; gain: Tensor<[1]> }] = [
    new LayerNorm(3),
    { inner: new Inner(), gain: param(ones([1])) },
  ];
  /** Not a parameter: does not require grad. */
  buffer = ones([2]);
  /** Not walked: neither a Module nor a plain object. */
  table = new Map([["w", param(ones([5]))]]);
  drop = new Dropout(0.1);
  nested = { deeper: { list: [param(zeros([2, 2]))] } };
}

Deno.test("Module: namedParameters walks fields, nested objects and arrays in order", () => {
  const net = new Net();
  const names = net.namedParameters().map(([n, p]) => [n, [...p.shape]]);
  assert.deepEqual(names, [
    ["enc.weight", [2, 3]],
    ["enc.bias", [3]],
    ["blocks.0.weight", [3]],
    ["blocks.0.bias", [3]],
    ["blocks.1.inner.proj.weight", [3, 1]],
    ["blocks.1.gain", [1]],
    ["nested.deeper.list.0", [2, 2]],
  ]);
  assert.equal(net.numParameters(), 6 + 3 + 3 + 3 + 3 + 1 + 4);
  assert.deepEqual(net.parameters(), net.namedParameters().map(([, p]) => p));
  assert.equal(net.stateDict()["blocks.1.inner.proj.weight"], net.blocks[1].inner.proj.weight);
  assert.equal(new Inner().numParameters(), 3);
});

Deno.test("Module: train()/eval() reach every submodule, in arrays and objects too", () => {
  const net = new Net();
  const modes = () => [
    net.training,
    net.enc.training,
    net.blocks[0].training,
    net.blocks[1].inner.training,
    net.blocks[1].inner.proj.training,
    net.drop.training,
  ];
  assert.deepEqual(modes(), [true, true, true, true, true, true]);
  assert.equal(net.eval(), net);
  assert.deepEqual(modes(), [false, false, false, false, false, false]);
  assert.equal(net.train(), net);
  assert.deepEqual(modes(), [true, true, true, true, true, true]);
  net.train(false);
  assert.deepEqual(modes(), [false, false, false, false, false, false]);
  net.blocks[1].inner.train(); // a child alone does not touch its parent
  assert.deepEqual(modes(), [false, false, false, true, true, false]);
});

Deno.test("Module: loadStateDict copies values, casts dtypes and names bad keys", async () => {
  const lin = new Linear(2, 2);
  lin.loadStateDict({ weight: tensor([[1, 2], [3, 4]], "f64"), bias: tensor([0, 1]) });
  assert.equal(lin.weight.dtype, "f32");
  await assertClose(lin.weight, [[1, 2], [3, 4]]);
  assert.throws(
    () => lin.loadStateDict({ weight: tensor([[1, 2], [3, 4]]) }),
    /loadStateDict: missing keys: bias/,
  );
  assert.throws(
    () => lin.loadStateDict({ weight: tensor([[1, 2], [3, 4]]), bias: tensor([0, 1]), extra: tensor([1]) }),
    /unexpected keys: extra/,
  );
  assert.throws(
    () => lin.loadStateDict({ weight: tensor([[1, 2, 3]]), bias: tensor([0, 1]) }),
    /shape mismatches: weight \(expected \[2, 2\], got \[1, 3\]\)/,
  );
  lin.loadStateDict(
    { weight: tensor([[5, 6], [7, 8]]), bias: tensor([0, 1]), extra: tensor([1]) },
    (k) => k === "extra",
  );
  await assertClose(lin.weight, [[5, 6], [7, 8]]);
});

// ---------------------------------------------------------------------------------------------
// Optimizers

Deno.test("SGD: one plain step is p − lr·g", async () => {
  const p = param(tensor([1, -2]));
  const opt = new SGD([p], 0.1);
  p.mul(tensor([3, 0.5])).sum().backward(); // g = [3, 0.5]
  opt.step();
  await assertClose(p, [0.7, -2.05]);
  opt.zeroGrad();
  assert.equal(p.grad, null);
  // A parameter without a gradient is left alone.
  opt.step();
  await assertClose(p, [0.7, -2.05]);
});

Deno.test("SGD with momentum: buf = μ·buf + g, p −= lr·buf", async () => {
  const p = param(tensor([1, -2]));
  const opt = new SGD([p], 0.1, 0.9);
  const c = tensor([3, 0.5]); // loss = c·p: g = c every step
  p.mul(c).sum().backward();
  opt.step(); // buf = g
  await assertClose(p, [0.7, -2.05]);
  opt.zeroGrad();
  p.mul(c).sum().backward();
  opt.step(); // buf = 0.9·g + g = 1.9·g = [5.7, 0.95]
  await assertClose(p, [0.7 - 0.57, -2.05 - 0.095]);
  assert.deepEqual(Object.keys(opt.stateDict().state), ["0.momentum"]);
  await assertClose(opt.stateDict().state["0.momentum"], [5.7, 0.95]);
});

Deno.test("Adam: first two steps on a scalar, hand-worked (bias correction)", async () => {
  const p = param(tensor([1]));
  const opt = new Adam([p], { lr: 0.1 });
  // loss = p²: g = 2p.
  p.mul(p).sum().backward(); // g = 2
  opt.step();
  // m = 0.2, v = 0.004; m̂ = 2, v̂ = 4: the step is lr·2/(2 + 1e-8) ≈ lr.
  await assertClose(p, [0.9]);
  opt.zeroGrad();
  p.mul(p).sum().backward(); // g = 1.8
  opt.step();
  const m = 0.9 * 0.2 + 0.1 * 1.8; // 0.36
  const v = 0.999 * 0.004 + 0.001 * 1.8 ** 2; // 0.007236
  const mHat = m / (1 - 0.9 ** 2), vHat = v / (1 - 0.999 ** 2); // 1.894737, 3.619810
  await assertClose(p, [0.9 - (0.1 * mHat) / (Math.sqrt(vHat) + 1e-8)]);
  await assertClose(p, [0.800412], { atol: 1e-6 });
  const st = opt.stateDict();
  assert.equal(st.step, 2);
  await assertClose(st.state["0.exp_avg"], [0.36]);
  await assertClose(st.state["0.exp_avg_sq"], [0.007236]);
});

Deno.test("Adam: the first step moves every element by ≈ lr·sign(g), whatever |g|", async () => {
  const p = param(tensor([1, -3, 0.01, 200]));
  const opt = new Adam([p], { lr: 0.05 });
  p.mul(p).sum().backward(); // g = 2p
  opt.step();
  await assertClose(p, [0.95, -2.95, -0.04, 199.95], { atol: 1e-5 });
});

Deno.test("AdamW: decoupled weight decay on rank-2 parameters only by default", async () => {
  const W = param(tensor([[1, -2], [3, 4]])), b = param(tensor([5, -6]));
  const opt = new AdamW([["W", W], ["b", b]], { lr: 0.1, weightDecay: 0.5 });
  // Zero gradients: the Adam part is 0/(0 + eps) = 0, so only the decay acts: W·(1 − lr·wd).
  W.mul(0).sum().add(b.mul(0).sum()).backward();
  opt.step();
  await assertClose(W, [[0.95, -1.9], [2.85, 3.8]]);
  await assertClose(b, [5, -6]);

  // A custom predicate picks what decays.
  const W2 = param(tensor([[1, -2], [3, 4]])), b2 = param(tensor([5, -6]));
  const opt2 = new AdamW([["W", W2], ["b", b2]], { lr: 0.1, weightDecay: 0.5, decay: (n) => n === "b" });
  W2.mul(0).sum().add(b2.mul(0).sum()).backward();
  opt2.step();
  await assertClose(W2, [[1, -2], [3, 4]]);
  await assertClose(b2, [4.75, -5.7]);

  // With a gradient, the decay uses the pre-step weights: p − lr·(m̂/(√v̂ + eps)) − lr·wd·p.
  const W3 = param(tensor([[2]])), opt3 = new AdamW([W3], { lr: 0.1, weightDecay: 0.01 });
  W3.mul(W3).sum().backward();
  opt3.step();
  await assertClose(W3, [[2 - 0.1 - 0.1 * 0.01 * 2]]);
  // Adam ignores a weight decay it is given.
  const W4 = param(tensor([[2]]));
  const opt4 = new Adam([W4], { lr: 0.1, weightDecay: 0.5 } as object);
  W4.mul(W4).sum().backward();
  opt4.step();
  await assertClose(W4, [[1.9]]);
});

/** Two params and a quadratic loss whose gradient changes every step. */
function quadProblem(w0: number[][], b0: number[]) {
  const W = param(tensor(w0)), b = param(tensor(b0));
  const step = (opt: AdamW) => {
    const x = tensor([[1, 2], [-1, 0.5]]);
    const loss = x.matmul(W).add(b).sub(tensor([[0.3, -0.2], [0.1, 0.4]])).pow(2).sum();
    loss.backward();
    opt.step();
    opt.zeroGrad();
  };
  return { W, b, step };
}

Deno.test("AdamW: stateDict → safetensors → loadStateDict continues identically", async () => {
  const a = quadProblem([[0.5, -0.1], [0.2, 0.3]], [0.01, -0.02]);
  const optA = new AdamW([["W", a.W], ["b", a.b]], { lr: 0.05, weightDecay: 0.1 });
  for (let i = 0; i < 3; i++) a.step(optA);
  const sd = optA.stateDict();
  assert.equal(sd.step, 3);
  assert.deepEqual(Object.keys(sd.state).sort(), ["W.exp_avg", "W.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq"]);
  // A checkpoint: state tensors through safetensors bytes, a fresh model and optimizer.
  const { tensors } = loadSafetensors(await saveSafetensors(sd.state));
  const b = quadProblem(
    (await a.W.toArray()) as number[][],
    (await a.b.toArray()) as number[],
  );
  const optB = new AdamW([["W", b.W], ["b", b.b]], { lr: 0.05, weightDecay: 0.1 });
  optB.loadStateDict({ step: sd.step, state: tensors });
  for (let i = 0; i < 4; i++) a.step(optA);
  for (let i = 0; i < 4; i++) b.step(optB);
  assert.deepEqual(Array.from(await b.W.data()), Array.from(await a.W.data()));
  assert.deepEqual(Array.from(await b.b.data()), Array.from(await a.b.data()));
  assert.equal(optB.stateDict().step, 7);
});

Deno.test("AdamW: an optimizer loaded from another's in-memory stateDict evolves independently", async () => {
  const a = quadProblem([[0.5, -0.1], [0.2, 0.3]], [0.01, -0.02]);
  const optA = new AdamW([["W", a.W], ["b", a.b]], { lr: 0.05 });
  for (let i = 0; i < 2; i++) a.step(optA);
  const b = quadProblem((await a.W.toArray()) as number[][], (await a.b.toArray()) as number[]);
  const optB = new AdamW([["W", b.W], ["b", b.b]], { lr: 0.05 });
  optB.loadStateDict(optA.stateDict());
  // Interleaved steps: each optimizer must read only its own moments.
  for (let i = 0; i < 3; i++) {
    a.step(optA);
    b.step(optB);
  }
  assert.deepEqual(Array.from(await b.W.data()), Array.from(await a.W.data()));
  assert.deepEqual(Array.from(await b.b.data()), Array.from(await a.b.data()));
});

Deno.test("AdamW: a scheduled lr with weight decay follows the formula step by step", async () => {
  // The per-step coefficients are 0-d tensors uploaded each step; they must track lr and t.
  const W = param(tensor([[2, -1]])), opt = new AdamW([W], { lr: 0.1, weightDecay: 0.05 });
  const ref = [2, -1], m = [0, 0], v = [0, 0];
  for (let t = 1; t <= 4; t++) {
    opt.lr = lrAt(t - 1, { lr: 0.1, warmup: 2, total: 4, decay: "cosine" });
    W.mul(W).sum().backward(); // g = 2W
    opt.step();
    opt.zeroGrad();
    for (let i = 0; i < 2; i++) {
      const g = 2 * ref[i];
      m[i] = 0.9 * m[i] + 0.1 * g, v[i] = 0.999 * v[i] + 0.001 * g * g;
      const mHat = m[i] / (1 - 0.9 ** t), vHat = v[i] / (1 - 0.999 ** t);
      ref[i] -= opt.lr * (mHat / (Math.sqrt(vHat) + 1e-8) + 0.05 * ref[i]);
    }
    await assertClose(W, [ref], { atol: 1e-5 });
  }
});

Deno.test("AdamW: steps after the first compile no new kernels (TENSOR_DEBUG=stats)", async () => {
  // In a child process, so the counts are this model's alone; each flush prints and resets them.
  const code = `
    import { AdamW, flush, param, randn } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
    const ps = [param(randn([4, 3], { seed: 1 })), param(randn([3], { seed: 2 }))];
    const opt = new AdamW(ps, { lr: 0.01, weightDecay: 0.1 });
    for (let i = 0; i < 3; i++) {
      opt.lr = 0.01 * (1 - i / 10); // a schedule: lr changes every step, as do the bias corrections
      for (const p of ps) p.mul(p).sum().backward(); // the same graph each step: only AdamW could compile anew
      opt.step();
      opt.zeroGrad();
      for (const p of ps) await p.data();
      await flush();
    }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { TENSOR_DEBUG: "stats", TENSOR_BACKEND: "cpu" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, text);
  const compiled = [...text.matchAll(/(\d+) kernels compiled/g)].map((x) => Number(x[1]));
  assert.equal(compiled.length, 3, `expected one stats line per step, got:\n${text}`);
  assert.ok(compiled[0] > 0, text);
  assert.deepEqual(compiled.slice(1), [0, 0], text);
});

// ---------------------------------------------------------------------------------------------
// Schedules and clipping

Deno.test("lrAt: linear warmup, then constant", () => {
  const o = { lr: 1, warmup: 4 };
  assert.deepEqual([0, 1, 2, 3, 4, 100].map((s) => lrAt(s, o)), [0.25, 0.5, 0.75, 1, 1, 1]);
  assert.equal(lrAt(50, { lr: 3e-4, total: 100 }), 3e-4, "constant is the default decay");
  assert.equal(lrAt(50, { lr: 3e-4, decay: "cosine" }), 3e-4, "no total: nothing to decay to");
  assert.equal(lrAt(0, { lr: 0.1 }), 0.1);
});

Deno.test("lrAt: cosine decay reaches minLr at total", () => {
  const o = { lr: 1, warmup: 2, total: 12, decay: "cosine" as const, minLr: 0.1 };
  assert.equal(lrAt(0, o), 0.5);
  assert.equal(lrAt(1, o), 1);
  assert.equal(lrAt(2, o), 1, "decay starts after warmup");
  assert.ok(Math.abs(lrAt(7, o) - 0.55) < 1e-12, "halfway: minLr + (lr − minLr)/2");
  assert.ok(Math.abs(lrAt(12, o) - 0.1) < 1e-12);
  assert.ok(Math.abs(lrAt(30, o) - 0.1) < 1e-12, "stays at minLr after total");
  // A quarter of the way: 0.1 + 0.9·(1 + cos(π/4))/2.
  const q = lrAt(2 + 2.5, o);
  assert.ok(Math.abs(q - (0.1 + 0.45 * (1 + Math.SQRT1_2))) < 1e-12);
  for (let s = 2; s < 12; s++) assert.ok(lrAt(s + 1, o) < lrAt(s, o), "monotone");
});

Deno.test("lrAt: linear decay midpoint", () => {
  const o = { lr: 1, warmup: 2, total: 12, decay: "linear" as const };
  assert.equal(lrAt(7, o), 0.5);
  assert.equal(lrAt(12, o), 0);
  assert.ok(Math.abs(lrAt(7, { ...o, minLr: 0.2 }) - 0.6) < 1e-12);
  assert.ok(Math.abs(lrAt(4, { ...o, minLr: 0.2 }) - (0.2 + 0.8 * 0.8)) < 1e-12);
});

Deno.test("clipGradNorm: returns the pre-clip norm and scales gradients to maxNorm", async () => {
  const p = param(tensor([1, 1]));
  p.mul(tensor([3, 4])).sum().backward(); // g = [3, 4], ‖g‖ = 5
  const norm = clipGradNorm([p], 1);
  assert.deepEqual(norm.shape, []);
  await assertClose(norm, 5);
  await assertClose(p.grad!, [0.6, 0.8]);

  // Global over several parameters: ‖[1, 2, 2, 0, 4]‖ = 5; one without a gradient is skipped.
  const a = param(tensor([[1, 1], [1, 1]])), b = param(tensor([1])), none = param(tensor([7]));
  a.mul(tensor([[1, 2], [2, 0]])).sum().add(b.mul(4).sum()).backward();
  await assertClose(clipGradNorm([a, none, b], 2.5), 5);
  await assertClose(a.grad!, [[0.5, 1], [1, 0]]);
  await assertClose(b.grad!, [2]);
  assert.equal(none.grad, null);
});

Deno.test("clipGradNorm: a no-op below maxNorm; no gradients gives 0", async () => {
  const p = param(tensor([1, 1]));
  p.mul(tensor([3, 4])).sum().backward();
  await assertClose(clipGradNorm([p], 10), 5);
  assert.deepEqual(Array.from(await p.grad!.data()), [3, 4]);
  await assertClose(clipGradNorm([param(tensor([1]))], 1), 0);
});

// ---------------------------------------------------------------------------------------------
// Sampling

Deno.test("sampleToken: greedy at temperature 0, whatever u", () => {
  const logits = [0.1, 2, -1, 1.9];
  for (const u of [0, 0.3, 0.999]) assert.equal(sampleToken(logits, { temperature: 0 }, u), 1);
  assert.equal(sampleToken([1, 3, 3], { temperature: 0 }, 0.5), 1, "ties: the first");
  assert.equal(sampleToken(new Float32Array([-5, -4, -6]), { temperature: 0 }, 0.5), 1);
});

Deno.test("sampleToken: topK = 1 and a tiny topP are argmax; u maps through the sorted CDF", () => {
  const logits = [0.1, 2, -1, 1.9];
  for (const u of [0, 0.25, 0.5, 0.75, 0.9999]) {
    assert.equal(sampleToken(logits, { topK: 1 }, u), 1);
    assert.equal(sampleToken(logits, { topP: 1e-6 }, u), 1);
    assert.equal(sampleToken(logits, { topK: 1, temperature: 5 }, u), 1);
  }
  // probabilities [0.2, 0.5, 0.3]: sorted ids 1, 2, 0 with cumulative 0.5, 0.8, 1.
  const l = [0.2, 0.5, 0.3].map(Math.log);
  assert.deepEqual([0, 0.49, 0.51, 0.79, 0.81, 0.999].map((u) => sampleToken(l, {}, u)), [1, 1, 2, 2, 0, 0]);
  // topK 2 keeps ids 1 and 2 (renormalized: 0.625, 0.375).
  assert.deepEqual([0.1, 0.6, 0.7, 0.99].map((u) => sampleToken(l, { topK: 2 }, u)), [1, 1, 2, 2]);
  // topP 0.6: 0.5 < 0.6, so the nucleus is {1, 2}; topP 0.5 stops at {1}.
  assert.deepEqual([0.1, 0.7, 0.99].map((u) => sampleToken(l, { topP: 0.6 }, u)), [1, 2, 2]);
  assert.deepEqual([0.1, 0.7, 0.99].map((u) => sampleToken(l, { topP: 0.5 }, u)), [1, 1, 1]);
  assert.deepEqual([0.1, 0.9].map((u) => sampleToken(l, { topP: 1 }, u)), [1, 0], "topP 1 keeps all");
});

Deno.test("sampleToken: seeded draws follow softmax(logits / temperature)", () => {
  const logits = [1, 0, 2, -1];
  for (const temperature of [1, 0.5, 2]) {
    const r = rng(123);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 2000; i++) counts[sampleToken(logits, { temperature }, r())]++;
    const e = logits.map((v) => Math.exp(v / temperature));
    const z = e.reduce((a, b) => a + b, 0);
    counts.forEach((c, i) =>
      assert.ok(Math.abs(c / 2000 - e[i] / z) < 0.05, `T=${temperature} id ${i}: ${c / 2000} vs ${e[i] / z}`)
    );
  }
  const draw = (seed: number) => {
    const r = rng(seed);
    return Array.from({ length: 50 }, () => sampleToken(logits, {}, r()));
  };
  assert.deepEqual(draw(9), draw(9));
  assert.notDeepEqual(draw(9), draw(10));
});

// ---------------------------------------------------------------------------------------------
// generate

const GEN: GPTConfig = { vocabSize: 7, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8, seed: 4 };

/** A small model with large enough weights that its greedy choices depend on the context. */
function genModel(cfg = GEN): GPT {
  const m = new GPT(cfg);
  const sd = m.stateDict();
  let k = 0;
  for (const [name, p] of Object.entries(sd)) {
    if (name.endsWith(".bias") || /ln_/.test(name)) continue;
    k++;
    const vals = Array.from({ length: p.size }, (_, i) => Math.sin(1.7 * i + 3.1 * k));
    p.assign(fromArray(vals, p.shape as number[]));
  }
  return m;
}

Deno.test("generate: greedy continuation; a prompt longer than blockSize is cropped to the last blockSize tokens", async () => {
  const m = genModel();
  const long = [1, 2, 3, 4, 5, 6];
  const [out] = await generate(m, [long], { maxNewTokens: 5, temperature: 0 });
  assert.equal(out.length, 11);
  assert.deepEqual(out.slice(0, 6), long, "the prompt is kept");
  assert.ok(out.every((t) => Number.isInteger(t) && t >= 0 && t < 7));
  // Only the last blockSize tokens matter.
  const [cropped] = await generate(m, [long.slice(-4)], { maxNewTokens: 5, temperature: 0 });
  assert.deepEqual(out.slice(6), cropped.slice(4));
  const [other] = await generate(m, [[0, 0, ...long.slice(-4)]], { maxNewTokens: 5, temperature: 0 });
  assert.deepEqual(other.slice(6), out.slice(6));
  // Each greedy token is the argmax of the model's last-position logits on the cropped context.
  const ctx = out.slice(6 - 4, 6);
  const logits = await m.forward(fromArray(ctx, [1, 4], "i32")).data();
  const last = Array.from(logits.slice(3 * 7, 4 * 7));
  assert.equal(out[6], last.indexOf(Math.max(...last)));
  // maxNewTokens 0 returns copies of the prompts.
  const same = await generate(m, [long], { maxNewTokens: 0 });
  assert.deepEqual(same, [long]);
  assert.notEqual(same[0], long);
});

Deno.test("generate: batched prompts of different lengths equal one-at-a-time runs (greedy)", async () => {
  const m = genModel();
  const prompts = [[1, 2], [3, 4, 5], [6], [2, 1], [0, 1, 2, 3, 4]];
  const batched = await generate(m, prompts, { maxNewTokens: 6, temperature: 0 });
  assert.equal(batched.length, 5);
  for (let i = 0; i < prompts.length; i++) {
    const [one] = await generate(m, [prompts[i]], { maxNewTokens: 6, temperature: 0 });
    assert.deepEqual(batched[i], one, `row ${i}`);
    assert.equal(batched[i].length, prompts[i].length + 6);
  }
  assert.deepEqual(prompts[0], [1, 2], "prompts are not modified");
  // The rows really differ (the test would be vacuous for a constant model).
  assert.ok(new Set(batched.map((r) => r.slice(-6).join())).size > 1);
});

Deno.test("generate: eosToken stops a row after emitting it; other rows continue", async () => {
  const m = genModel();
  const prompts = [[1, 2], [3, 4, 5], [6], [2, 1]];
  const free = await generate(m, prompts, { maxNewTokens: 6, temperature: 0 });
  const eos = free[0][2]; // row 0's first new token
  const stopped = await generate(m, prompts, { maxNewTokens: 6, temperature: 0, eosToken: eos });
  assert.deepEqual(stopped[0], [1, 2, eos]);
  for (let i = 0; i < prompts.length; i++) {
    const gen = free[i].slice(prompts[i].length);
    const cut = gen.indexOf(eos);
    const want = [...prompts[i], ...(cut < 0 ? gen : gen.slice(0, cut + 1))];
    assert.deepEqual(stopped[i], want, `row ${i}`);
  }
  assert.ok(stopped.some((r, i) => r.length === prompts[i].length + 6), "some row runs to maxNewTokens");
});

Deno.test("generate: sampling is deterministic for a seed; eval mode inside, mode restored", async () => {
  const m = genModel({ ...GEN, dropout: 0.5 });
  assert.ok(m.training);
  const o = { maxNewTokens: 12, temperature: 1.5, seed: 3 };
  const a = await generate(m, [[1], [2, 3]], o);
  const b = await generate(m, [[1], [2, 3]], o);
  assert.deepEqual(a, b);
  assert.notDeepEqual(await generate(m, [[1], [2, 3]], { ...o, seed: 4 }), a);
  // Dropout 0.5 would make greedy decoding noisy if it ran in training mode.
  const g1 = await generate(m, [[1, 2]], { maxNewTokens: 8, temperature: 0 });
  const g2 = await generate(m, [[1, 2]], { maxNewTokens: 8, temperature: 0 });
  assert.deepEqual(g1, g2);
  assert.ok(m.training, "training mode restored");
  m.eval();
  await generate(m, [[1]], { maxNewTokens: 1 });
  assert.equal(m.training, false, "eval mode restored");
  assert.ok(m.parameters().every((p) => p.grad === null), "no gradients recorded");
});

// ---------------------------------------------------------------------------------------------
// Tokenizers (ByteTokenizer and CharTokenizer are covered in tokenizer_test.ts)

Deno.test("WordTokenizer: sorted words after PAD/BOS/EOS; encode/decode round trip", () => {
  const t = WordTokenizer.fromCorpus("the cat sat on the mat\nthe  end");
  assert.deepEqual(t.words, ["cat", "end", "mat", "on", "sat", "the"]);
  assert.deepEqual([t.pad, t.bos, t.eos, t.vocabSize], [0, 1, 2, 9]);
  assert.deepEqual(t.encode("the cat"), [8, 3]);
  assert.deepEqual(t.encode("  the\tcat \n sat ", { bos: true, eos: true }), [1, 8, 3, 7, 2]);
  assert.deepEqual(t.encode(""), []);
  assert.deepEqual(t.encode("", { bos: true }), [1]);
  assert.equal(t.decode([1, 8, 3, 7, 2, 0, 0]), "the cat sat");
  assert.equal(t.decode([1, 8, 3, 2, 0], { specials: true }), "<|bos|>the cat<|eos|><|pad|>");
  assert.equal(t.decode([]), "");
  const s = "the cat sat on the mat the end";
  assert.equal(t.decode(t.encode(s, { bos: true, eos: true })), s);
});

Deno.test("WordTokenizer: unknown words, bad ids and bad vocabularies are errors", () => {
  const t = new WordTokenizer(["b", "a"]); // the given order is kept
  assert.deepEqual(t.encode("a b"), [4, 3]);
  assert.throws(() => t.encode("a dog b"), /WordTokenizer: unknown word "dog" at word 1/);
  assert.throws(() => t.decode([5]), /WordTokenizer: id 5 is outside the vocabulary 0\.\.4/);
  assert.throws(() => t.decode([-1]), /id -1 is outside/);
  assert.throws(() => t.decode([2.5]), /id 2\.5 is outside/);
  assert.throws(() => new WordTokenizer(["a", "a"]), /duplicate words/);
  assert.throws(() => new WordTokenizer(["a b"]), /without spaces/);
  assert.throws(() => new WordTokenizer([""]), /non-empty/);
  assert.throws(() => new WordTokenizer([3 as unknown as string]), /non-empty strings/);
});

Deno.test("WordTokenizer: toJSON/fromJSON and tokenizerFromJSON round trips", () => {
  const t = WordTokenizer.fromCorpus("good bad movie plot");
  const json = JSON.parse(JSON.stringify(t));
  assert.deepEqual(json, { type: "word", words: ["bad", "good", "movie", "plot"] });
  const back = WordTokenizer.fromJSON(json);
  assert.deepEqual(back.words, t.words);
  assert.deepEqual(back.encode("good movie", { eos: true }), t.encode("good movie", { eos: true }));
  const viaString = tokenizerFromJSON(JSON.stringify(t));
  assert.ok(viaString instanceof WordTokenizer);
  assert.equal(viaString.decode(t.encode("bad plot")), "bad plot");
  assert.throws(() => WordTokenizer.fromJSON({ type: "char", chars: [] }), /expected \{type: "word"/);
  assert.throws(() => WordTokenizer.fromJSON({ type: "word" }), /expected/);
  assert.throws(() => WordTokenizer.fromJSON({ type: "word", words: ["x", "x"] }), /duplicate/);
  assert.throws(() => tokenizerFromJSON({ type: "bpe" }), /unknown tokenizer type "bpe"/);

  // All three tokenizers through the common interface.
  for (const tok of [new ByteTokenizer(), CharTokenizer.fromCorpus("ab c"), t]) {
    const text = tok instanceof WordTokenizer ? "plot bad" : "c ab";
    const restored = tokenizerFromJSON(JSON.stringify(tok));
    assert.equal(restored.constructor, tok.constructor);
    assert.equal(restored.vocabSize, tok.vocabSize);
    const ids = tok.encode(text, { bos: true, eos: true });
    assert.deepEqual(restored.encode(text, { bos: true, eos: true }), ids);
    assert.equal(ids[0], tok.bos);
    assert.equal(ids[ids.length - 1], tok.eos);
    assert.equal(restored.decode(ids), text);
  }
});
