/**
 * KV cache tests: a cached forward, fed one chunk at a time, gives the same logits as one full
 * forward at every position, and `generate` samples the same tokens with and without the cache
 * (through the block-size fallback and early stops at EOS).
 */
import assert from "node:assert/strict";
import { fromArray, generate, GPT, type GPTConfig, KVCache, memoryStats, noGrad, scope } from "../mod.ts";
import { assertClose } from "./util.ts";

const CFG: GPTConfig = { vocabSize: 13, blockSize: 12, nLayer: 2, nHead: 2, nEmbd: 16, seed: 5 };

Deno.test("KV cache: chunked cached forward equals the full forward at every position", async () => {
  const model = new GPT(CFG).eval();
  const B = 2, T = 9;
  const ids = Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % CFG.vocabSize);
  const row = (b: number, from: number, to: number) => ids.slice(b * T + from, b * T + to);
  const full = await noGrad(() => model.forward(fromArray<[number, number]>(ids, [B, T], "i32")).data());
  const kv = new KVCache();
  const got = new Float32Array(B * T * CFG.vocabSize);
  // Chunks of 4, 1, 1, 3 tokens: a prompt, single steps, then a longer chunk.
  let at = 0;
  for (const n of [4, 1, 1, 3]) {
    const part = await scope(() =>
      noGrad(() => {
        const idx = fromArray<[number, number]>(
          [...row(0, at, at + n), ...row(1, at, at + n)],
          [B, n],
          "i32",
        );
        return model.forward(idx, undefined, { cache: kv }).data();
      })
    );
    for (let b = 0; b < B; b++) {
      got.set(
        part.subarray(b * n * CFG.vocabSize, (b + 1) * n * CFG.vocabSize),
        (b * T + at) * CFG.vocabSize,
      );
    }
    at += n;
  }
  assert.equal(kv.length, T);
  await assertClose(got, full, { atol: 1e-5, rtol: 0 });
  kv.dispose();
  assert.equal(kv.layers.length, 0);
  // Past the block size is an error, not a silent wrap.
  const kv2 = new KVCache();
  const long = fromArray<[number, number]>(new Array(13).fill(1), [1, 13], "i32");
  assert.throws(() => noGrad(() => model.forward(long, undefined, { cache: kv2 })), /exceeds blockSize/);
  // A cache that already holds 9 positions takes at most 3 more.
  const kv3 = new KVCache();
  noGrad(() =>
    model.forward(fromArray<[number, number]>(ids.slice(0, 9), [1, 9], "i32"), undefined, { cache: kv3 })
  );
  const four = fromArray<[number, number]>([1, 2, 3, 4], [1, 4], "i32");
  assert.throws(() => noGrad(() => model.forward(four, undefined, { cache: kv3 })), /length 13 exceeds/);
  kv3.dispose();
});

Deno.test("KV cache: generate gives the same tokens with and without the cache", async () => {
  const model = new GPT(CFG);
  const prompts = [[1, 2, 3], [4, 5, 6], [7], [8, 9, 10, 11]];
  for (
    const o of [
      { maxNewTokens: 6, seed: 3 },
      { maxNewTokens: 6, seed: 4, temperature: 0.7, topK: 5 },
      { maxNewTokens: 15, seed: 1, eosToken: 2 }, // passes the block size (12) and stops rows early
      { maxNewTokens: 5, temperature: 0 },
      { maxNewTokens: 12, seed: 2 }, // every row runs past the block size
    ]
  ) {
    const a = await generate(model, prompts, { ...o, cache: true });
    const b = await generate(model, prompts, { ...o, cache: false });
    assert.deepEqual(a, b, JSON.stringify(o));
  }
  assert.equal(model.training, true, "generate restores training mode");
});

Deno.test("KV cache: generate frees its cache", async () => {
  const model = new GPT(CFG);
  await generate(model, [[1, 2]], { maxNewTokens: 3 });
  const { liveBytes, liveTensors } = memoryStats();
  await generate(model, [[1, 2], [3, 4]], { maxNewTokens: 8 });
  const after = memoryStats();
  assert.deepEqual([after.liveBytes, after.liveTensors], [liveBytes, liveTensors]);
});
