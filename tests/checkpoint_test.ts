// gptConfigFromCheckpoint: a GPT's sizes read back from its checkpoint's tensor names and shapes.
import assert from "node:assert/strict";
import {
  decodeSafetensors,
  fromArray,
  GPT,
  type GPTConfig,
  gptConfigFromCheckpoint,
  loadCheckpoint,
  noGrad,
  saveCheckpoint,
} from "../mod.ts";

const CFG: GPTConfig = { vocabSize: 11, blockSize: 9, nLayer: 3, nHead: 2, nEmbd: 16 };

/** Only the shapes matter to the function: stand-ins with a shape and no data. */
const shapes = (names: Record<string, number[]>) =>
  Object.fromEntries(Object.entries(names).map(([k, shape]) => [k, { shape }]));

Deno.test("gptConfigFromCheckpoint recovers every size of a saved GPT and the file loads into it", async () => {
  const model = new GPT({ ...CFG, seed: 3 });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/m.safetensors`;
    await saveCheckpoint(path, model.stateDict(), { n_head: "2" });
    const { tensors, metadata } = await loadCheckpoint(path);
    assert.deepEqual(gptConfigFromCheckpoint(tensors, metadata, path), CFG);
    // The raw decoded file (no tensors on a backend) gives the same answer.
    const raw = decodeSafetensors(await Deno.readFile(path), path);
    assert.deepEqual(gptConfigFromCheckpoint(raw.tensors, raw.metadata), CFG);
    // A model built from the guessed config takes the weights and computes the same logits.
    const copy = new GPT(gptConfigFromCheckpoint(tensors, metadata));
    await copy.loadStateDict(tensors);
    const logits = (m: GPT) => noGrad(() => m.forward(fromArray([1, 2, 3, 4], [1, 4], "i32"))).data();
    assert.deepEqual(Array.from(await logits(copy)), Array.from(await logits(model)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gptConfigFromCheckpoint without n_head: GPT-2's head width 64, at least one head", () => {
  const sd = (C: number) => new GPT({ ...CFG, nHead: 1, nEmbd: C }).stateDict();
  assert.equal(gptConfigFromCheckpoint(sd(16)).nHead, 1); // narrower than one 64-wide head
  assert.equal(gptConfigFromCheckpoint(sd(64)).nHead, 1);
  assert.equal(gptConfigFromCheckpoint(sd(128)).nHead, 2);
  // GPT-2 small's names and shapes, with the extras a Hugging Face file carries (tied head, mask buffers).
  const gpt2: Record<string, number[]> = {
    "transformer.wte.weight": [50257, 768],
    "transformer.wpe.weight": [1024, 768],
    "lm_head.weight": [50257, 768],
  };
  for (let i = 0; i < 12; i++) {
    gpt2[`transformer.h.${i}.attn.c_attn.weight`] = [768, 2304];
    gpt2[`transformer.h.${i}.attn.bias`] = [1, 1, 1024, 1024];
  }
  assert.deepEqual(gptConfigFromCheckpoint(shapes(gpt2)), {
    vocabSize: 50257,
    blockSize: 1024,
    nLayer: 12,
    nHead: 12,
    nEmbd: 768,
  });
});

Deno.test("gptConfigFromCheckpoint rejects checkpoints it cannot size, naming the file", () => {
  const ok = { "transformer.wte.weight": [11, 16], "transformer.wpe.weight": [9, 16] };
  const guess = (names: Record<string, number[]>, metadata: Record<string, string> = {}) => () =>
    gptConfigFromCheckpoint(shapes(names), metadata, "m.safetensors");
  assert.throws(
    guess({ "transformer.wpe.weight": [9, 16] }),
    /m\.safetensors has no transformer\.wte\.weight/,
  );
  assert.throws(guess({ "transformer.wte.weight": [11, 16] }), /has no transformer\.wpe\.weight/);
  assert.throws(
    guess({ ...ok, "transformer.wte.weight": [176] }),
    /wte\.weight of shape \[176\], expected 2-D/,
  );
  assert.throws(guess({ ...ok, "transformer.wpe.weight": [9, 8] }), /width 16 but position embeddings of 8/);
  assert.throws(
    guess({ ...ok, "transformer.h.0.ln_1.weight": [16], "transformer.h.2.ln_1.weight": [16] }),
    /blocks up to 2 but no block 1/,
  );
  assert.throws(guess(ok, { n_head: "3" }), /n_head "3", not a positive integer that divides nEmbd 16/);
  assert.throws(guess(ok, { n_head: "two" }), /n_head "two"/);
  assert.throws(guess(ok, { n_head: "0" }), /n_head "0"/);
  const wide = { "transformer.wte.weight": [11, 96], "transformer.wpe.weight": [9, 96] };
  assert.throws(guess(wide), /nEmbd 96, not a multiple of 64: give the head count as metadata n_head/);
  assert.equal(gptConfigFromCheckpoint(shapes(wide), { n_head: "3" }).nHead, 3);
});
