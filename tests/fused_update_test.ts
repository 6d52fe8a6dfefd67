// deno-lint-ignore-file no-explicit-any
// (the tests reach into the WebGPU backend for its launch counter, and hide its mapMany)
/**
 * assignAll and the backends' mapMany: an optimizer step writes each parameter and its state in one
 * launch on WebGPU, with the same bits as one assign after another; where a value reads a target
 * through another view, or a target the order would already have written, it falls back to the
 * assigns (and on the CPU, which has no mapMany, it always does).
 *
 * Without an adapter the WebGPU tests are skipped with a printed reason, unless REQUIRE_WEBGPU=1.
 */
import assert from "node:assert/strict";
import { AdamW, assignAll, getBackend, randn, type Shape, type Tensor, tensor, where } from "../mod.ts";
import { adapter, backendTest } from "./compile_util.ts";

const required = Deno.env.get("REQUIRE_WEBGPU") === "1";
if (!adapter) console.log("fused update tests on webgpu skipped: no WebGPU adapter");
Deno.test({
  name: "fused update: adapter available when REQUIRE_WEBGPU=1",
  ignore: !required,
  fn: () => assert.ok(adapter, "REQUIRE_WEBGPU=1 but navigator.gpu.requestAdapter() gave null"),
});

const test = backendTest("fused update");

/** AdamW as it was: one assign per tensor written. */
class Unfused extends AdamW {
  protected override put(...pairs: [Tensor<Shape>, Tensor<Shape>][]): Tensor<Shape> {
    for (const pair of pairs) super.put(pair);
    return pairs[0][0];
  }
}

/** Dispatches the WebGPU backend has recorded so far (-1 on the CPU). */
const launches = () => (getBackend() as any).gpu?.stats.launches ?? -1;

/** Parameters of a few shapes (a matrix decays, the vector does not) with fixed gradients. */
function params(): [string, Tensor<Shape>][] {
  const shapes = [[8, 16], [16], [3, 5, 7]];
  return shapes.map((s, i) => {
    const p = randn(s, { seed: i + 1 }).realize();
    p.grad = randn(s, { seed: i + 10 }).realize();
    return [`p${i}`, p];
  });
}

/** Every parameter and state tensor's bits after 4 AdamW steps (when `guarded`, `ok` every other step), and
 * the launches of each step. */
async function adamw(
  fused: boolean,
  guarded: boolean,
): Promise<{ bits: Float32Array[]; launches: number[] }> {
  const ps = params(), opt = new (fused ? AdamW : Unfused)(ps, { lr: 1e-2, weightDecay: 0.1 });
  const counts: number[] = [];
  for (let i = 0; i < 4; i++) {
    const before = launches();
    opt.step(guarded ? tensor(i % 2 === 0) : undefined);
    counts.push(launches() - before);
  }
  const all = [...ps.map(([, p]) => p), ...Object.values(opt.stateDict().state)];
  return {
    bits: await Promise.all(all.map(async (t) => new Float32Array(await t.data()))),
    launches: counts,
  };
}

const sameBits = (a: Float32Array[], b: Float32Array[]) =>
  a.forEach((x, i) =>
    assert.deepEqual(new Uint32Array(x.buffer), new Uint32Array(b[i].buffer), `tensor ${i}`)
  );

test("AdamW steps equal the assign-by-assign steps bit for bit, in fewer launches", async (b) => {
  for (const guarded of [false, true]) {
    const [slow, fast] = [await adamw(false, guarded), await adamw(true, guarded)];
    sameBits(fast.bits, slow.bits);
    // Three writes (p, m, v) per parameter become one launch: two fewer per parameter and step, and
    // once the state exists, one launch per parameter (the whole update fuses).
    if (b === "webgpu") assert.deepEqual(fast.launches, slow.launches.map((n) => n - 2 * 3));
    if (b === "webgpu") assert.deepEqual(fast.launches.slice(1), [3, 3, 3]);
  }
});

/** `a`, `b`: [3, 3] tensors whose memory is all theirs (so assign writes them in place). */
const pair = () => [randn([3, 3], { seed: 1 }).realize(), randn([3, 3], { seed: 2 }).realize()] as const;

test("a target read through another view, or after its write in order, falls back to assigns", async (b) => {
  const cases: [
    string,
    (a: Tensor<readonly [3, 3]>, b: Tensor<readonly [3, 3]>) => [Tensor<Shape>, Tensor<Shape>][],
  ][] = [
    ["transpose", (a, b) => [[a, a.transpose(0, 1).add(1)], [b, b.mul(2)]]],
    ["written before", (a, b) => [[a, b.add(1)], [b, a]]],
    ["same target twice", (a, b) => [[a, b.add(1)], [a, b.mul(3)]]],
    ["in place, cast", (a, b) => [[a, b.mul(2).add(a).gt(0)], [b, where(b.gt(0), b, 2).sub(1)]]],
  ];
  for (const [name, make] of cases) {
    const [a1, b1] = pair(), [a2, b2] = pair();
    for (const [t, v] of make(a1, b1)) t.assign(v);
    const before = launches();
    assignAll(make(a2, b2));
    const n = launches() - before;
    for (const [x, y] of [[a1, a2], [b1, b2]]) assert.deepEqual(await y.data(), await x.data(), name);
    // Only the last case fuses (one launch); the others are one assign (and copy) at a time.
    if (b === "webgpu") assert.equal(n === 1, name === "in place, cast", `${name}: ${n} launches`);
  }
  // A lazy value of a target the order writes first is stale, as with one assign after another.
  const [a, b2] = pair();
  assert.throws(() => assignAll([[a, b2.add(1)], [b2, a.mul(2)]]), /a later assign overwrote/);
});
