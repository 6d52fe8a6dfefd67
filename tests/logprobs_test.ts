// deno-lint-ignore-file no-explicit-any
// (the reference and the checks run on shape-erased tensors)
/**
 * The fused log-probabilities behind `sequenceLogProbs` (and `crossEntropy`): values and gradients
 * equal the unfused log-softmax + gather, on the CPU and on WebGPU; gradcheck in f64; masked
 * positions may hold anything, even −Infinity; and a DPO-step-sized forward + backward at a large
 * vocabulary keeps about one logits-sized tensor plus its gradient alive.
 */
import assert from "node:assert/strict";
import {
  flush,
  fromArray,
  gradcheck,
  memoryStats,
  randn,
  resetPeakBytes,
  rng,
  scope,
  sequenceLogProbs,
  setBackend,
  type Tensor,
} from "../mod.ts";
import { assertClose } from "./util.ts";

type T = Tensor<any>;

/** The unfused reference: [B, T−1, V] log-probabilities, gathered and multiplied by the mask. */
function reference(logits: T, tokens: T, mask: T): T {
  const T = logits.shape[1];
  const head = logits.narrow(1, 0, T - 1), next = tokens.narrow(1, 1, T - 1);
  const lp = head.logSoftmax(-1).gather(2, next.unsqueeze(-1)).squeeze(-1);
  return lp.mul(mask.narrow(1, 1, T - 1).cast(logits.dtype)).sum(1);
}

/** Random logits [B, T, V], tokens and a mask with a prompt and padding per row. */
function inputs(seed: number, B: number, T: number, V: number, dtype: "f32" | "f64" = "f32") {
  const r = rng(seed);
  const lg = Array.from({ length: B * T * V }, () => 4 * r() - 2);
  const tk = Array.from({ length: B * T }, () => Math.floor(r() * V));
  const mk = Array.from(
    { length: B * T },
    (_, i) => (i % T >= 1 + (i / T | 0) % 2 && i % T < T - (i / T | 0) % 3 ? 1 : 0),
  );
  return {
    logits: (): T => fromArray(lg, [B, T, V], dtype),
    tokens: (): T => fromArray(tk, [B, T], "i32"),
    mask: (): T => fromArray(mk, [B, T], dtype),
  };
}

/** Value and logits gradient of `f` (a seeded weighting of its [B] output). */
async function run(f: (l: T, t: T, m: T) => T, x: ReturnType<typeof inputs>) {
  const l = x.logits().requiresGrad_();
  const y = f(l, x.tokens(), x.mask());
  y.mul(fromArray(Array.from({ length: y.size }, (_, i) => 1 + i), y.shape, l.dtype)).sum().backward();
  return { y: await y.data(), g: await l.grad!.data() };
}

Deno.test("sequenceLogProbs: the fused path equals log-softmax + gather (values and gradients, CPU)", async () => {
  const x = inputs(1, 3, 7, 11);
  const [want, got] = [await run(reference, x), await run((l, t, m) => sequenceLogProbs(l, t, m), x)];
  await assertClose(got.y, Array.from(want.y), { rtol: 1e-5, atol: 1e-5 });
  await assertClose(got.g, Array.from(want.g), { rtol: 1e-5, atol: 1e-5 });
});

Deno.test("sequenceLogProbs: gradcheck in f64", async () => {
  const x = inputs(2, 2, 5, 6, "f64");
  await gradcheck((l: T) => sequenceLogProbs(l, x.tokens(), x.mask()), [x.logits()]);
  await gradcheck((l: T) => sequenceLogProbs(l, x.tokens(), x.mask(), { average: true }), [x.logits()]);
});

Deno.test("sequenceLogProbs: masked positions may hold −Infinity (finite value, zero gradient there)", async () => {
  const V = 4,
    l: T = fromArray([0, 1, 2, 3, -Infinity, -Infinity, -Infinity, -Infinity, 1, 1, 1, 1], [1, 3, V]);
  const lr = l.requiresGrad_(), mask: T = fromArray([0, 1, 0], [1, 3]); // position 1 scores token 2 at logits 0
  const y = sequenceLogProbs(lr, fromArray([0, 3, 9], [1, 3], "i32"), mask);
  y.sum().backward();
  const want = 3 - Math.log([0, 1, 2, 3].reduce((s, v) => s + Math.exp(v), 0));
  await assertClose(y, [want]);
  const g = Array.from(await lr.grad!.data());
  assert.ok(g.slice(4).every((v) => v === 0), `masked rows' gradient: ${g.slice(4)}`);
  assert.ok(g.every(Number.isFinite));
});

Deno.test("sequenceLogProbs: a DPO-step-sized forward + backward at V = 50,257 keeps ≈ logits + gradient alive", async () => {
  const [B, T, V] = [4, 8, 50_257], bytes = B * T * V * 4;
  const x = inputs(3, B, T, 8);
  const tokens = x.tokens(), mask = x.mask();
  await scope(async () => {
    const w = randn([16, V]).mul(0.1).realize().requiresGrad_();
    const h = randn([B, T, 16]).realize();
    const base = memoryStats().liveBytes;
    resetPeakBytes();
    const logits = h.matmul(w); // [B, T, V], realised by the matmul
    const lp = sequenceLogProbs(logits, tokens, mask);
    await lp.data();
    const fwd = memoryStats().peakBytes - base;
    lp.sum().backward();
    await flush();
    const peak = memoryStats().peakBytes - base - w.grad!.size * 4; // less w's own gradient
    console.log(
      `peak bytes over the inputs: forward ${fwd}, forward + backward (less w.grad) ${peak}; logits ${bytes}`,
    );
    // The high-water mark, not a sample: no [B, T, V] log-softmax copy ever lives beside the logits.
    assert.ok(fwd < 1.1 * bytes, `forward peaked at ${fwd} bytes, logits are ${bytes}`);
    assert.ok(peak < 2.2 * bytes, `backward peaked at ${peak} bytes, logits are ${bytes}`);
  });
});

// ---- WebGPU ≡ CPU ------------------------------------------------------------------------------------

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
if (!adapter) console.log("webgpu logprobs tests skipped: no WebGPU adapter");
Deno.test({
  name: "sequenceLogProbs: WebGPU equals the CPU (values and gradients, fused and unfused)",
  ignore: !adapter && Deno.env.get("REQUIRE_WEBGPU") !== "1",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const x = inputs(4, 3, 9, 300);
    const fused = (l: T, t: T, m: T) => sequenceLogProbs(l, t, m);
    const want = await run(fused, x), ref = await run(reference, x);
    try {
      await setBackend("webgpu");
      for (const got of [await run(fused, x), await run(reference, x)]) {
        await assertClose(got.y, Array.from(want.y), { rtol: 1e-4, atol: 1e-4 });
        await assertClose(got.g, Array.from(ref.g), { rtol: 1e-4, atol: 1e-4 });
      }
    } finally {
      await setBackend("cpu");
    }
  },
});
