// deno-lint-ignore-file no-explicit-any
// (tests call ops with deliberately wrong or untyped shapes to reach the runtime checks)
// Gradients: gradcheck (central differences, f64 on the CPU) for every differentiable op, hand-checked
// gradients at ties and repeated indices, and the tape's behaviour.
import assert from "node:assert/strict";
import {
  concat,
  crossEntropy,
  embedding,
  grad,
  gradcheck,
  layerNorm,
  noGrad,
  ones,
  ShapeError,
  stack,
  type Tensor,
  tensor,
  valueAndGrad,
  where,
  zeros,
} from "../mod.ts";
import { assertClose, assertThrowsWith, seededDistinct, seededUniform } from "./util.ts";

type F = (...xs: Tensor<any>[]) => Tensor<any>;

/** gradcheck `f` at `inputs` and assert the largest error it saw is tiny. */
async function check(f: F, inputs: Tensor<any>[], opts: { eps?: number; atol?: number; rtol?: number } = {}) {
  const worst = await gradcheck(f, inputs, opts);
  assert.ok(Number.isFinite(worst) && worst <= (opts.atol ?? 1e-5) * 10, `worst error ${worst}`);
}

const u = (shape: number[], seed: number, lo = -1, hi = 1) => seededUniform(shape, seed, lo, hi);
const pos = (shape: number[], seed: number) => seededUniform(shape, seed, 0.5, 2);
const I = (v: number[] | number[][]): Tensor<any> => tensor(v, "i32");

// ---- elementwise -----------------------------------------------------------------------------

Deno.test("gradcheck: add/sub/mul/div with broadcasting", async () => {
  const a = u([2, 3], 1), r = u([3], 2), c = u([2, 1], 3), s = u([], 4);
  for (const [b, name] of [[r, "[3]"], [c, "[2,1]"], [s, "[]"], [u([2, 3], 5), "[2,3]"]] as const) {
    await check((x, y) => x.add(y), [a, b]).catch((e) => assert.fail(`add ${name}: ${e}`));
    await check((x, y) => x.sub(y), [a, b]).catch((e) => assert.fail(`sub ${name}: ${e}`));
    await check((x, y) => y.sub(x), [a, b]).catch((e) => assert.fail(`rsub ${name}: ${e}`));
    await check((x, y) => x.mul(y), [a, b]).catch((e) => assert.fail(`mul ${name}: ${e}`));
  }
  await check((x, y) => x.div(y), [a, pos([3], 6)]);
  await check((x, y) => y.div(x), [pos([2, 3], 7), u([2, 1], 8)]);
  await check((x, y) => x.div(y), [a, pos([], 9)]);
  await check((x) => x.add(2).mul(3).sub(1).div(4).neg(), [a]);
  await check((x, y) => x.mul(y).add(x.div(y)), [c, pos([1, 3], 10)]); // [2,1] with [1,3]
});

Deno.test("gradcheck: pow (both operands), exp, log, sqrt, rsqrt", async () => {
  await check((x, y) => x.pow(y), [pos([2, 3], 1), u([2, 3], 2, -1, 2)]);
  await check((x, y) => x.pow(y), [pos([2, 3], 3), u([3], 4)]); // broadcast exponent
  await check((x) => x.pow(3), [u([4], 5)]); // negative bases, integer exponent
  await check((x) => x.pow(2), [tensor([-1.5, -0.5, 0.5, 2])]);
  await check((x) => tensor([2, 3]).pow(x), [u([2], 6)]);
  await check((x) => x.exp(), [u([2, 3], 7)]);
  await check((x) => x.log(), [pos([2, 3], 8)]);
  await check((x) => x.sqrt(), [pos([2, 3], 9)]);
  await check((x) => x.rsqrt(), [pos([2, 3], 10)]);
});

Deno.test("gradcheck: abs, tanh, sigmoid, relu, gelu, softplus, logsigmoid", async () => {
  const x = seededDistinct([3, 4], 11);
  await check((t) => t.abs(), [x]);
  await check((t) => t.tanh(), [x]);
  await check((t) => t.sigmoid(), [x]);
  await check((t) => t.relu(), [x]);
  await check((t) => t.gelu(), [x]);
  await check((t) => t.softplus(), [x]);
  await check((t) => t.logsigmoid(), [x]);
  await check((t) => t.mul(8).softplus(), [x]);
  await check((t) => t.mul(8).logsigmoid(), [x]);
});

Deno.test("gradcheck: maximum, minimum, clamp, where, maskedFill, cast", async () => {
  const a = seededDistinct([2, 3], 12), b = seededDistinct([2, 3], 13);
  await check((x, y) => x.maximum(y), [a, b]);
  await check((x, y) => x.minimum(y), [a, b]);
  await check((x, y) => x.maximum(y), [a, seededDistinct([3], 14)]);
  await check((x) => x.maximum(0.1), [a]);
  await check((x) => x.clamp(-0.5, 0.5), [a]);
  await check((x) => x.clamp(0.3), [a]);
  await check((x) => x.clamp(undefined, -0.3), [a]);
  const m = tensor([[true, false, true], [false, false, true]]);
  await check((x, y) => where(m, x, y), [a, b]);
  await check((x, y) => where(tensor([true, false, true]), x, y), [a, u([2, 1], 15)]); // broadcast
  await check((x) => where(m, x, 2), [a]);
  await check((x) => where(m, 2, x.exp()), [a]);
  await check((x) => x.maskedFill(m, -3).exp(), [a]);
  await check((x) => x.maskedFill(tensor([false, true, false]), 0).mul(x), [a]);
  // f64 → f32 → f64 round trip: f32 rounding needs a coarser eps
  await check((x) => x.cast("f32").mul(2).cast("f64").exp(), [a], { eps: 1e-3, atol: 1e-3, rtol: 1e-2 });
});

// ---- reductions ------------------------------------------------------------------------------

Deno.test("gradcheck: sum, mean over axes and keepdim", async () => {
  const x = u([2, 3, 4], 16);
  await check((t) => t.sum(), [x]);
  await check((t) => t.sum(1), [x]);
  await check((t) => t.sum(-1, true), [x]);
  await check((t) => t.sum([0, 2]).exp(), [x]);
  await check((t) => t.mean(), [x]);
  await check((t) => t.mean([-1, 0], true).exp(), [x]);
  await check((t) => t.mean(1).mul(t.sum(1)), [x]);
});

Deno.test("gradcheck: max, min (no ties), var, logsumexp", async () => {
  const x = seededDistinct([2, 3, 4], 17);
  await check((t) => t.max(), [x]);
  await check((t) => t.max(1), [x]);
  await check((t) => t.min(-1, true), [x]);
  await check((t) => t.max([0, 2]), [x]);
  await check((t) => t.var(), [x]);
  await check((t) => t.var(1), [x]);
  await check((t) => t.var(-1, true, 0), [x]);
  await check((t) => t.var([0, 2]), [x]);
  await check((t) => t.logsumexp(), [x]);
  await check((t) => t.logsumexp(2), [x]);
  await check((t) => t.logsumexp([0, 1], true), [x]);
  await check((t) => t.mul(100).logsumexp(-1), [x], { atol: 1e-4 }); // needs the max shift
});

Deno.test("max/min gradient is split evenly among ties (hand-checked)", async () => {
  const x = tensor([1, 3, 3]).requiresGrad_();
  x.max().backward();
  await assertClose(x.grad!, [0, 0.5, 0.5]);
  const y = tensor([2, 1, 1, 5]).requiresGrad_();
  y.min().backward();
  await assertClose(y.grad!, [0, 0.5, 0.5, 0]);
  const z = tensor([[1, 3, 3], [2, 2, 2]]).requiresGrad_();
  z.max(1).mul(tensor([1, 3])).sum().backward();
  await assertClose(z.grad!, [[0, 0.5, 0.5], [1, 1, 1]]);
  const w = tensor([[4, 1], [4, 0]]).requiresGrad_();
  w.max(0).sum().backward(); // column 0 ties, column 1 single winner
  await assertClose(w.grad!, [[0.5, 1], [0.5, 0]]);
});

Deno.test("maximum/minimum gradient is 0.5 each at ties (hand-checked)", async () => {
  const a = tensor([1, 2, 3]).requiresGrad_(), b = tensor([1, 5, 0]).requiresGrad_();
  a.maximum(b).sum().backward();
  await assertClose(a.grad!, [0.5, 0, 1]);
  await assertClose(b.grad!, [0.5, 1, 0]);
  const c = tensor([1, 2, 3]).requiresGrad_(), d = tensor([1, 5, 0]).requiresGrad_();
  c.minimum(d).sum().backward();
  await assertClose(c.grad!, [0.5, 1, 0]);
  await assertClose(d.grad!, [0.5, 0, 1]);
  const e = tensor([2, 2]).requiresGrad_();
  e.maximum(2).sum().backward(); // tie with a constant
  await assertClose(e.grad!, [0.5, 0.5]);
});

// ---- composites ------------------------------------------------------------------------------

Deno.test("gradcheck: softmax, logSoftmax, layerNorm, crossEntropy", async () => {
  const x = u([3, 4], 18, -2, 2);
  await check((t) => t.softmax(), [x]);
  await check((t) => t.softmax(0), [x]);
  await check((t) => t.logSoftmax(), [x]);
  await check((t) => t.logSoftmax(0), [x]);
  await check((t) => t.softmax(-1).log(), [x]);
  await check((t) => layerNorm(t), [x]);
  await check((t, w, b) => layerNorm(t, w, b), [x, u([4], 19), u([4], 20)]);
  await check((t, w) => layerNorm(t.reshape([3, 2, 2]), w, undefined, 1e-3), [x, u([2], 21)]);
  const tg = I([1, 0, 3]);
  await check((t) => crossEntropy(t, tg), [x]);
  await check((t) => crossEntropy(t, I([1, -100, 3])), [x]);
  await check((t) => crossEntropy(t, I([1, 2, 3]), { ignoreIndex: 2, mask: tensor([true, true, false]) }), [
    x,
  ]);
  await check((t) => crossEntropy(t.reshape([1, 3, 4]), I([[1, 0, 3]])), [x]);
});

Deno.test("gradcheck: matmul (2-D, vectors, batched with broadcast, transposed)", async () => {
  await check((a, b) => a.matmul(b), [u([2, 3], 22), u([3, 4], 23)]);
  await check((a, b) => a.matmul(b), [u([3], 24), u([3, 4], 25)]);
  await check((a, b) => a.matmul(b), [u([2, 3], 26), u([3], 27)]);
  await check((a, b) => a.matmul(b), [u([3], 28), u([3], 29)]);
  await check((a, b) => a.matmul(b), [u([2, 1, 3, 4], 30), u([3, 4, 2], 31)]);
  await check((a, b) => a.matmul(b), [u([2, 3, 4], 32), u([4, 2], 33)]);
  await check((a, b) => a.matmul(b), [u([2, 3, 4], 34), u([4], 35)]);
  await check((a, b) => a.transpose().matmul(b.transpose()), [u([3, 2], 36), u([4, 3], 37)]);
  await check((a) => a.matmul(a.transpose()), [u([2, 3], 38)]);
});

// ---- views -----------------------------------------------------------------------------------

Deno.test("gradcheck: reshape, permute, transpose, expand, unsqueeze, squeeze", async () => {
  const x = u([2, 3, 4], 39);
  await check((t) => t.reshape([6, -1]).exp(), [x]);
  await check((t) => t.transpose(0, 2).reshape([-1]).exp(), [x]); // reshape of a non-contiguous view
  await check((t) => t.permute([2, 0, 1]).exp(), [x]);
  await check((t) => t.transpose().exp(), [x]);
  await check((t) => t.expand([2, 2, 3]).exp(), [u([2, 1, 3], 40)]);
  await check((t) => t.expand([3, 2]).mul(tensor([[1, 2], [3, 4], [5, 6]])), [u([2], 41)]);
  await check((t) => t.unsqueeze(1).exp(), [x]);
  await check((t) => t.squeeze().exp(), [u([1, 3, 1], 42)]);
  await check((t) => t.squeeze(0).exp(), [u([1, 3], 43)]);
});

Deno.test("gradcheck: non-contiguous inputs inside f (transposed, narrowed)", async () => {
  await check((t) => t.transpose().exp().matmul(t), [u([3, 2], 44)]);
  await check((t, b) => t.transpose().add(b).tanh(), [u([3, 2], 45), u([3], 46)]);
  await check((t) => t.narrow(1, 1, 2).mul(t.narrow(1, 0, 2)), [u([2, 3], 47)]);
  await check((t) => t.narrow(0, 1, 2).transpose().sum(0), [u([3, 3], 48)]);
  await check((t) => t.transpose().softmax(), [u([3, 4], 49)]);
  await check((t) => t.transpose().max(1), [seededDistinct([3, 4], 50)]);
  await check((t) => layerNorm(t.transpose()), [u([3, 4], 51)]);
});

Deno.test("gradcheck: narrow, slice, split, chunk, concat, stack", async () => {
  const x = u([3, 4], 52);
  await check((t) => t.narrow(1, 1, 2).exp(), [x]);
  await check((t) => t.slice(0, -2).exp(), [x]);
  await check((t) => {
    const [p, q] = t.split([1, 3], 1);
    return p.mul(q.sum(1, true));
  }, [x]);
  await check((t) => {
    const [p, q] = t.chunk(2, 0); // [2,4] and [1,4]
    return p.sum(0).mul(q.reshape([4]));
  }, [x]);
  await check((a, b) => concat([a, b], 0).exp(), [x, u([2, 4], 53)]);
  await check((a, b) => concat([a, b.mul(2), a], 1).exp(), [x, u([3, 1], 54)]);
  await check((a, b) => concat([a.transpose(), b], -1), [u([4, 3], 55), u([3, 2], 56)]);
  await check((a, b) => stack([a, b]).exp(), [x, u([3, 4], 57)]);
  await check((a, b) => stack([a, b], -1).mul(tensor([1, -2])), [x, u([3, 4], 58)]);
  await check((a) => concat([a, tensor([[1, 2, 3, 4]])], 0).exp(), [x]); // one input constant
});

Deno.test("gradcheck: gather, indexSelect, scatterAdd, embedding", async () => {
  const x = u([3, 4], 59);
  await check((t) => t.gather(1, I([[0, 0, 3], [1, 2, 1], [3, 3, 3]])), [x]);
  await check((t) => t.gather(0, I([[2, 0, 0, 1]])), [x]);
  await check((t) => t.indexSelect(0, I([2, 0, 2, 2])), [x]);
  await check((t) => t.indexSelect(1, I([3, 3, 0])), [x]);
  await check((t, s) => t.scatterAdd(1, I([[0, 0], [3, 1], [2, 2]]), s), [x, u([3, 2], 60)]);
  await check((w) => embedding(w, I([[0, 2], [2, 2]])), [u([3, 2], 61)]);
});

Deno.test("gather/indexSelect/embedding gradients scatter-add at repeated indices (hand-checked)", async () => {
  const x = tensor([[1, 2, 3]]).requiresGrad_();
  x.gather(1, I([[0, 0, 2]])).sum().backward();
  await assertClose(x.grad!, [[2, 0, 1]]);
  const y = tensor([[1, 2], [3, 4]]).requiresGrad_();
  y.indexSelect(0, I([1, 1, 0])).mul(tensor([[1, 10], [2, 20], [3, 30]])).sum().backward();
  await assertClose(y.grad!, [[3, 30], [3, 30]]);
  const w = tensor([[1, 2], [3, 4], [5, 6]]).requiresGrad_();
  embedding(w, I([[0, 2], [0, 0]])).sum().backward();
  await assertClose(w.grad!, [[3, 3], [0, 0], [1, 1]]);
  const s = tensor([1, 2, 3]).requiresGrad_(), base = zeros([2]).requiresGrad_();
  base.scatterAdd(0, I([1, 1, 0]), s).mul(tensor([10, 100])).sum().backward();
  await assertClose(s.grad!, [100, 100, 10]);
  await assertClose(base.grad!, [10, 100]);
});

// ---- tape behaviour --------------------------------------------------------------------------

Deno.test("tape: .grad accumulates across two backward calls; zeroGrad clears", async () => {
  const x = tensor([1, 2, 3]).requiresGrad_();
  x.mul(2).sum().backward();
  await assertClose(x.grad!, [2, 2, 2]);
  x.mul(x).sum().backward();
  await assertClose(x.grad!, [4, 6, 8]);
  x.zeroGrad();
  assert.equal(x.grad, null);
  x.mul(3).sum().backward();
  await assertClose(x.grad!, [3, 3, 3]);
});

Deno.test("tape: two leaves fed to one add keep separate .grad tensors", async () => {
  // add/sub hand the same gradient tensor to both inputs; each leaf must own its .grad.
  const x = tensor([1, 2, 3]).requiresGrad_(), y = tensor([4, 5, 6]).requiresGrad_();
  x.add(y).sum().backward();
  await assertClose(x.grad!, [1, 1, 1]);
  await assertClose(y.grad!, [1, 1, 1]);
  x.zeroGrad();
  assert.equal(y.grad!.disposed, false, "zeroGrad on x disposed y.grad");
  await assertClose(y.grad!, [1, 1, 1]);
});

Deno.test("tape: a second backward accumulates into both leaves of one add", async () => {
  const a = tensor([1, 2]).requiresGrad_(), b = tensor([3, 4]).requiresGrad_();
  a.add(b).sum().backward();
  a.add(b).sum().backward(); // second backward accumulates into both leaves
  await assertClose(a.grad!, [2, 2]);
  await assertClose(b.grad!, [2, 2]);
});

Deno.test("tape: a leaf that is itself the output gets a gradient of its own", async () => {
  const x = tensor(3).requiresGrad_();
  x.backward();
  await assertClose(x.grad!, 1);
  const seed = tensor([1, 2]);
  const y = tensor([5, 6]).requiresGrad_();
  y.backward(seed);
  await assertClose(y.grad!, [1, 2]);
  y.zeroGrad();
  assert.equal(seed.disposed, false, "zeroGrad disposed the caller's seed tensor");
});

Deno.test("tape: detach stops the gradient; x*x gives 2x", async () => {
  const x = tensor([1, -2, 3]).requiresGrad_();
  x.mul(x.detach()).sum().backward();
  await assertClose(x.grad!, [1, -2, 3]);
  assert.equal(x.detach().requiresGrad, false);
  const y = tensor([1, -2, 3]).requiresGrad_();
  y.mul(y).sum().backward();
  await assertClose(y.grad!, [2, -4, 6]);
  const z = tensor([0.5, 2]).requiresGrad_();
  const zz = z.exp();
  zz.mul(zz).add(z).sum().backward(); // d/dz (e^2z + z) = 2e^2z + 1
  await assertClose(z.grad!, [2 * Math.E + 1, 2 * Math.exp(4) + 1], { rtol: 1e-5 });
});

Deno.test("tape: noGrad records nothing", async () => {
  const x = tensor([1, 2]).requiresGrad_();
  const y = noGrad(() => x.mul(2).exp());
  assert.equal(y.requiresGrad, false);
  await assertClose(y, [Math.exp(2), Math.exp(4)]);
  assert.throws(() => y.sum().backward(), /does not require grad/);
  assert.equal(x.grad, null);
  assert.equal(x.mul(2).requiresGrad, true); // recording is back on afterwards
  const z = await noGrad(() => Promise.resolve(x.add(1)));
  assert.equal(z.requiresGrad, false);
});

Deno.test("tape: backward on a non-scalar needs a seed of its shape", async () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]).requiresGrad_();
  const y = x.mul(3);
  await assertThrowsWith(() => y.backward(), ShapeError, ["backward", "[2, 3]"]);
  await assertThrowsWith(() => y.backward(ones([3]) as any), ShapeError, ["backward", "[3]", "[2, 3]"]);
  y.backward(tensor([[1, 0, 2], [0, 1, 0]]));
  await assertClose(x.grad!, [[3, 0, 6], [0, 3, 0]]);
});

Deno.test("grad/valueAndGrad over a record { w, b } (hand-worked)", async () => {
  const x = tensor([1, 2]);
  const f = ({ w, b }: { w: Tensor<[2]>; b: Tensor<[]> }) => w.mul(x).add(b).pow(2).sum();
  const params = { w: tensor([3, -1]), b: tensor(0.5) };
  // w·x + b = [3.5, −1.5]; f = 12.25 + 2.25; ∂f/∂w = 2(wx+b)x = [7, −6]; ∂f/∂b = 2·(3.5 − 1.5)
  const { value, grads } = valueAndGrad(f)(params);
  assert.deepEqual(value.shape, []);
  assert.equal(await value.item(), 14.5);
  assert.deepEqual(Object.keys(grads).sort(), ["b", "w"]);
  assert.deepEqual(grads.w.shape, [2]);
  assert.deepEqual(grads.b.shape, []);
  await assertClose(grads.w, [7, -6]);
  await assertClose(grads.b, 4);
  const g = grad(f)(params);
  await assertClose(g.w, [7, -6]);
  await assertClose(g.b, 4);
  // the inputs are untouched
  assert.equal(params.w.requiresGrad, false);
  assert.equal(params.w.grad, null);
  // a parameter the value does not depend on gets zeros of its shape
  const h = grad(({ p }: { p: Tensor<[2]>; q: Tensor<[3]> }) => p.sum())({
    p: tensor([1, 2]),
    q: tensor([1, 2, 3]),
  });
  await assertClose(h.p, [1, 1]);
  await assertClose(h.q, [0, 0, 0]);
  await assertThrowsWith(
    () => valueAndGrad(({ p }: { p: Tensor<[2]> }) => p.mul(2))({ p: tensor([1, 2]) }),
    Error,
    [
      "valueAndGrad",
      "[2]",
    ],
  );
});

Deno.test("derivatives at 0: logsigmoid'(0) = softplus'(0) = 0.5 exactly", async () => {
  const x = tensor([0]).requiresGrad_();
  x.logsigmoid().sum().backward();
  assert.equal((await x.grad!.data())[0], 0.5);
  const y = tensor([0]).requiresGrad_();
  y.softplus().sum().backward();
  assert.equal((await y.grad!.data())[0], 0.5);
  const z = tensor([1e4, -1e4]).requiresGrad_();
  z.softplus().add(z.logsigmoid()).sum().backward(); // σ(x) + σ(−x) = 1
  await assertClose(z.grad!, [1, 1]);
  const w = tensor([0, 0]).requiresGrad_();
  w.relu().add(w.abs()).sum().backward(); // both defined as 0 at 0
  await assertClose(w.grad!, [0, 0]);
});

Deno.test("gradcheck itself reports a wrong gradient", async () => {
  // detach hides the dependence: the analytic gradient (0) disagrees with the numeric one (1)
  await assertThrowsWith(() => gradcheck((x) => x.detach().add(x.mul(0)), [tensor([1, 2])]), Error, [
    "gradcheck",
    "analytic 0",
  ]);
});
