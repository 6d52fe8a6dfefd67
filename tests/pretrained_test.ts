// Hugging Face pretrained folders: config.json + model.safetensors (+ tokenizer) written and read back.
import assert from "node:assert/strict";
import {
  BPETokenizer,
  decodeSafetensors,
  fromArray,
  fromGPT2Config,
  fromPretrained,
  GPT,
  type GPTConfig,
  loadTokenizer,
  noGrad,
  readFileBytes,
  saveCheckpoint,
  saveFileAtomic,
  savePretrained,
  scope,
  toGPT2Config,
} from "../mod.ts";

const CFG: GPTConfig = { vocabSize: 260, blockSize: 12, nLayer: 2, nHead: 2, nEmbd: 16 };

/** GPT-2's byte↔unicode alphabet, rebuilt here so the test tokenizer covers every byte. */
function byteChars(): string[] {
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    return String.fromCharCode(printable ? b : next++);
  });
}

/** A small byte-level BPE: every byte, two merges ("Ġt", "Ġth"), and <|endoftext|> at 258. */
function tinyTokenizer(): BPETokenizer {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, i) => vocab[c] = i);
  vocab["Ġt"] = 256;
  vocab["Ġth"] = 257;
  vocab["<|endoftext|>"] = 258;
  return new BPETokenizer(vocab, [["Ġ", "t"], ["Ġt", "h"]], { "<|endoftext|>": 258 });
}

async function logitsOf(model: GPT, tokens: number[][]): Promise<number[]> {
  const B = tokens.length, T = tokens[0].length;
  return await scope(() =>
    noGrad(async () => Array.from(await model.forward(fromArray(tokens.flat(), [B, T], "i32")).data()))
  );
}

/** Runs `fn` with a fresh temp folder, removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const names = async (dir: string) => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));

Deno.test("savePretrained → fromPretrained (and GPT.fromPretrained): same config, identical logits, same tokenizer", async () => {
  await withDir(async (root) => {
    const model = new GPT({ ...CFG, seed: 7 });
    const tokenizer = tinyTokenizer();
    const dir = `${root}/gpt`;
    await savePretrained(model, dir, { tokenizer });
    assert.deepEqual(await names(dir), ["config.json", "model.safetensors", "tokenizer.json"]);
    assert.deepEqual(await names(root), ["gpt"], "no temp folder is left behind");

    const loaded = await fromPretrained(dir);
    assert.deepEqual(loaded.config, CFG);
    const tokens = [[1, 258, 40, 3, 259, 0, 7], [5, 5, 5, 200, 1, 2, 3]];
    assert.deepEqual(await logitsOf(loaded.model, tokens), await logitsOf(model, tokens));
    const text = "the thing <|endoftext|> ü 🙂";
    assert.deepEqual(
      loaded.tokenizer?.encode(text, { allowedSpecial: "all" }),
      tokenizer.encode(text, { allowedSpecial: "all" }),
    );
    assert.ok(tokenizer.encode(" the").includes(257), "the merges survive");
    const viaClass = await GPT.fromPretrained(dir); // the static form gives the same model
    assert.deepEqual(await logitsOf(viaClass, tokens), await logitsOf(model, tokens));
    model.dispose();
    loaded.model.dispose();
    viaClass.dispose();
  });
});

Deno.test("the written folder has GPT2Config's keys and GPT-2's tensor names, with a tied lm_head", async () => {
  await withDir(async (dir) => {
    const model = new GPT({ ...CFG, dropout: 0.1, seed: 1 });
    await savePretrained(model, dir);
    const config = await readJson(`${dir}/config.json`);
    assert.deepEqual(config, {
      architectures: ["GPT2LMHeadModel"],
      model_type: "gpt2",
      vocab_size: 260,
      n_positions: 12,
      n_embd: 16,
      n_layer: 2,
      n_head: 2,
      layer_norm_epsilon: 1e-5,
      activation_function: "gelu_new",
      tie_word_embeddings: true,
      resid_pdrop: 0.1,
      embd_pdrop: 0.1,
      attn_pdrop: 0.1,
    });
    assert.deepEqual(config, toGPT2Config(model.config));
    const { tensors, metadata } = decodeSafetensors(await Deno.readFile(`${dir}/model.safetensors`));
    assert.deepEqual(metadata, { format: "pt" });
    const want = [...Object.keys(model.stateDict()), "lm_head.weight"].sort();
    assert.deepEqual(Object.keys(tensors).sort(), want);
    assert.ok(want.includes("transformer.h.1.attn.c_attn.weight"));
    assert.deepEqual(tensors["lm_head.weight"], tensors["transformer.wte.weight"]);
    assert.ok(Object.values(tensors).every((t) => t.dtype === "F32"));
    model.dispose();
  });
});

Deno.test("savePretrained replaces its own folder whole and keeps an existing tokenizer", async () => {
  await withDir(async (root) => {
    const dir = `${root}/m`;
    const a = new GPT({ ...CFG, seed: 1 }), b = new GPT({ ...CFG, nLayer: 1, seed: 2 });
    await savePretrained(a, dir, { tokenizer: tinyTokenizer() });
    await savePretrained(b, `${dir}/`); // a trailing slash names the same folder
    assert.deepEqual(await names(root), ["m"]);
    assert.deepEqual(await names(dir), ["config.json", "model.safetensors", "tokenizer.json"]);
    const loaded = await fromPretrained(dir);
    assert.equal(loaded.config.nLayer, 1);
    assert.ok(loaded.tokenizer);
    const tokens = [[1, 2, 3]];
    assert.deepEqual(await logitsOf(loaded.model, tokens), await logitsOf(b, tokens));
    for (const m of [a, b, loaded.model]) m.dispose();
  });
});

Deno.test("savePretrained refuses a folder holding other files and leaves it as it was", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/notes.txt`, "keep me");
    const model = new GPT(CFG);
    await assert.rejects(
      savePretrained(model, dir),
      /savePretrained: .* holds notes\.txt, not written by savePretrained/,
    );
    assert.deepEqual(await names(dir), ["notes.txt"]);
    await assert.rejects(savePretrained(model, `${dir}/notes.txt`), /savePretrained: /);
    model.dispose();
  });
});

Deno.test("fromPretrained names missing files", async () => {
  await withDir(async (dir) => {
    await assert.rejects(
      fromPretrained(dir),
      new RegExp(`fromPretrained: ${dir} has no config\\.json and no model\\.safetensors$`),
    );
    await Deno.writeTextFile(`${dir}/config.json`, "{}");
    await Deno.writeTextFile(`${dir}/pytorch_model.bin`, "");
    await assert.rejects(
      fromPretrained(dir),
      /has no model\.safetensors \(it has pytorch_model\.bin; only model\.safetensors is read\)/,
    );
    await assert.rejects(
      fromPretrained(`${dir}/nowhere`),
      /nowhere has no config\.json and no model\.safetensors/,
    );
    await Deno.writeTextFile(`${dir}/config.json`, "{nope");
    await Deno.writeTextFile(`${dir}/model.safetensors`, "");
    await assert.rejects(fromPretrained(dir), /fromPretrained: .*config\.json is not valid JSON/);
  });
});

Deno.test("fromPretrained: a config that disagrees with the weights names the key and both shapes", async () => {
  await withDir(async (dir) => {
    const model = new GPT(CFG);
    await savePretrained(model, dir);
    model.dispose();
    const config = await readJson(`${dir}/config.json`);
    const expectError = async (change: Record<string, unknown>, re: RegExp) => {
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...config, ...change }));
      await assert.rejects(fromPretrained(dir), re);
    };
    await expectError(
      { vocab_size: 300 },
      /config\.json has vocab_size 300 but in .*model\.safetensors transformer\.wte\.weight is \[260, 16\], config implies \[300, 16\]/,
    );
    await expectError(
      { n_embd: 32 },
      /has n_embd 32 but .*wte\.weight is \[260, 16\], config implies \[260, 32\]/,
    );
    await expectError(
      { n_positions: 8 },
      /has n_positions 8 but .*wpe\.weight is \[12, 16\], config implies \[8, 16\]/,
    );
    await expectError({ n_layer: 3 }, /has n_layer 3 but in .*model\.safetensors it has 2 blocks/);
    await expectError(
      { n_inner: 32 },
      /n_inner 32 is not supported \(this GPT's MLP is 4 \* n_embd = 64 wide\)/,
    );
    // The tokenizer may not have ids the model cannot embed.
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
    await Deno.writeTextFile(`${dir}/vocab.json`, "{}");
    await assert.rejects(fromPretrained(dir), /loadTokenizer: .* \(merges\.txt is missing\)/);
    await Deno.remove(`${dir}/vocab.json`);
    const small = new GPT({ ...CFG, vocabSize: 100 });
    await savePretrained(small, dir, { tokenizer: tinyTokenizer() });
    small.dispose();
    await assert.rejects(fromPretrained(dir), /the tokenizer in .* has 259 ids but vocab_size is 100/);
  });
});

Deno.test("fromPretrained reads the hub's bare GPT2Model names and ignores attention buffers", async () => {
  await withDir(async (dir) => {
    const model = new GPT({ ...CFG, seed: 4 });
    const bare = Object.fromEntries(
      Object.entries(model.stateDict()).map(([k, t]) => [k.replace(/^transformer\./, ""), t]),
    );
    for (const i of [0, 1]) {
      bare[`h.${i}.attn.bias`] = fromArray(new Float32Array(144).fill(1), [1, 1, 12, 12]);
    }
    await saveCheckpoint(`${dir}/model.safetensors`, bare, { format: "pt" });
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(toGPT2Config(CFG)));
    const loaded = await fromPretrained(dir);
    assert.equal(loaded.tokenizer, undefined);
    const tokens = [[9, 8, 7, 6]];
    assert.deepEqual(await logitsOf(loaded.model, tokens), await logitsOf(model, tokens));
    model.dispose();
    loaded.model.dispose();
  });
});

Deno.test("fromGPT2Config: defaults, accepted activations and clear errors", () => {
  assert.deepEqual(fromGPT2Config({}), {
    vocabSize: 50257,
    blockSize: 1024,
    nLayer: 12,
    nHead: 12,
    nEmbd: 768,
  });
  const base = toGPT2Config(CFG);
  assert.deepEqual(fromGPT2Config(base), CFG);
  assert.deepEqual(fromGPT2Config({ ...base, activation_function: "gelu_pytorch_tanh", n_inner: null }), CFG);
  const bad = (change: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => fromGPT2Config({ ...base, ...change }, "m/config.json"), re);
  bad(
    { activation_function: "gelu" },
    /m\/config\.json: activation_function "gelu" is not supported; accepted: gelu_new, gelu_pytorch_tanh/,
  );
  bad({ activation_function: "relu" }, /activation_function "relu" is not supported/);
  bad({ layer_norm_epsilon: 1e-6 }, /layer_norm_epsilon 0\.000001 is not supported \(this GPT uses 1e-5\)/);
  bad({ tie_word_embeddings: false }, /tie_word_embeddings must be true/);
  bad({ model_type: "llama" }, /model_type "llama" is not supported, only "gpt2"/);
  bad({ n_head: 3 }, /n_embd 16 is not divisible by n_head 3/);
  bad({ n_layer: 1.5 }, /n_layer must be a positive integer, got 1\.5/);
  bad({ vocab_size: "260" }, /vocab_size must be a positive integer, got "260"/);
  bad({ scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx: true is not supported/);
  assert.throws(() => fromGPT2Config([1], "c.json"), /c\.json: not a JSON object/);
});

Deno.test("without Deno (in a browser) the file functions throw naming themselves and what to use instead", async () => {
  const model = new GPT({ ...CFG, seed: 1 });
  const calls: [string, () => Promise<unknown>][] = [
    ["readFileBytes", () => readFileBytes("x.safetensors")],
    ["saveFileAtomic", () => saveFileAtomic("x.safetensors", new Uint8Array(8))],
    ["loadTokenizer", () => loadTokenizer("gpt2")],
    ["fromPretrained", () => fromPretrained("gpt2")],
    ["savePretrained", () => savePretrained(model, "gpt2")],
  ];
  // Deno is hidden only while the calls start: each checks for it before its first await.
  const deno = Object.getOwnPropertyDescriptor(globalThis, "Deno")!;
  let settled: Promise<PromiseSettledResult<unknown>[]>;
  delete (globalThis as { Deno?: unknown }).Deno;
  try {
    settled = Promise.allSettled(calls.map(([, call]) => call()));
  } finally {
    Object.defineProperty(globalThis, "Deno", deno);
  }
  assert.equal(typeof Deno.readFile, "function");
  const results = await settled;
  calls.forEach(([name], i) => {
    const r = results[i];
    assert.equal(r.status, "rejected", name);
    assert.equal(
      ((r as PromiseRejectedResult).reason as Error).message,
      `${name}: needs Deno's file system; in a browser, fetch the bytes and decode them ` +
        "(decodeSafetensors, parsePreferenceJsonl, BPETokenizer.fromTokenizerJson)",
    );
  });
  model.dispose();
});
