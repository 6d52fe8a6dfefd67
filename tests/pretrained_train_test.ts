// train.ts on a pretrained folder: `--init DIR --data FILE` tokenizes with the folder's BPE tokenizer,
// truncates to the model's context, writes the aligned model as a pretrained folder (dpo/), and refuses a
// tokenizer whose ids the model's vocabulary does not cover.
import assert from "node:assert/strict";
import { runTrain } from "./util.ts";
import {
  decodeSafetensors,
  fromPretrained,
  GPT,
  type GPTConfig,
  loadTokenizer,
  savePretrained,
} from "../mod.ts";

const train = (...args: string[]) => runTrain("--backend", "cpu", ...args);

/** GPT-2's byte↔unicode alphabet, rebuilt here so the test vocabulary covers every byte. */
function byteChars(): string[] {
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    return String.fromCharCode(printable ? b : next++);
  });
}

/** Writes a tiny byte-level BPE as vocab.json + merges.txt: every byte, "Ġt", "Ġth", <|endoftext|> = 258. */
async function writeTokenizerFiles(dir: string): Promise<void> {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, i) => vocab[c] = i);
  Object.assign(vocab, { "Ġt": 256, "Ġth": 257, "<|endoftext|>": 258 });
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(vocab));
  await Deno.writeTextFile(`${dir}/merges.txt`, "#version: 0.2\nĠ t\nĠt h\n");
}

/** A pretrained folder: a tiny random GPT with vocabulary `vocabSize`, with or without the tokenizer. */
async function pretrainedFolder(dir: string, vocabSize: number, tokenizer: boolean): Promise<GPTConfig> {
  const config: GPTConfig = { vocabSize, blockSize: 64, nLayer: 1, nHead: 2, nEmbd: 16 };
  if (tokenizer) await writeTokenizerFiles(dir);
  const model = new GPT({ ...config, seed: 3 });
  await savePretrained(model, dir); // keeps vocab.json + merges.txt already in dir
  model.dispose();
  return config;
}

/** Ten TRL-format pairs (standard and conversational), one with a prompt longer than the context. */
async function writePrefs(path: string): Promise<void> {
  const rows: unknown[] = Array.from({ length: 8 }, (_, i) => ({
    prompt: `Is the ${i}th thing there?`,
    chosen: " Yes, the thing is there.",
    rejected: " no",
  }));
  rows.push({ prompt: "the ".repeat(40), chosen: " then", rejected: " thus" });
  rows.push({
    prompt: [{ role: "user", content: "Say thanks." }],
    chosen: [{ role: "assistant", content: "Thank you!" }],
    rejected: [{ role: "assistant", content: "No." }],
  });
  await Deno.writeTextFile(path, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("train.ts --init DIR --data FILE: the folder's tokenizer, and dpo/ as a pretrained folder", async () => {
  await withDir(async (root) => {
    const config = await pretrainedFolder(`${root}/gpt`, 262, true);
    await writePrefs(`${root}/prefs.jsonl`);
    const args = ["--init", `${root}/gpt`, "--data", `${root}/prefs.jsonl`, "--steps", "2"];
    const r = await train(...args, "--batch-size", "4", "--out", `${root}/run`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /BPE tokenizer with 259 ids/);

    const summary = JSON.parse(await Deno.readTextFile(`${root}/run/summary.json`));
    assert.equal(summary.tokenizer, "bpe");
    assert.equal(summary.vocabSize, 259);
    assert.equal(summary.modelVocabSize, 262);
    assert.equal(summary.pairs, 9); // one of 10 held out
    assert.equal(summary.truncated, 1, "the long prompt is cut to the model's 64 tokens");
    assert.ok(Number.isFinite(summary.eval.eval_loss));
    for (const f of ["metrics.jsonl", "curves.svg", "dpo.safetensors"]) {
      assert.ok((await Deno.stat(`${root}/run/${f}`)).isFile, f);
    }

    // dpo/ is a pretrained folder: fromPretrained loads it, with the same tokenizer.
    const names = (await Array.fromAsync(Deno.readDir(`${root}/run/dpo`))).map((e) => e.name).sort();
    assert.deepEqual(names, ["config.json", "model.safetensors", "tokenizer.json"]);
    const loaded = await fromPretrained(`${root}/run/dpo`);
    assert.deepEqual(loaded.config, config);
    assert.ok(loaded.tokenizer, "dpo/ has the tokenizer");
    const original = await loadTokenizer(`${root}/gpt`);
    const text = "the thing, thanks — ü 🙂";
    const ids = loaded.tokenizer.encode(text);
    assert.deepEqual(ids, original.encode(text));
    assert.ok(ids.includes(257), "the merges survive");
    assert.equal(loaded.tokenizer.decode(ids), text);
    // For PyTorch: GPT-2's names, lm_head.weight present, format "pt".
    const st = decodeSafetensors(await Deno.readFile(`${root}/run/dpo/model.safetensors`), "dpo");
    assert.ok("transformer.wte.weight" in st.tensors && "lm_head.weight" in st.tensors);
    assert.equal(st.metadata.format, "pt");
    // DPO moved the weights away from the initial model.
    const init = await fromPretrained(`${root}/gpt`);
    const w = async (m: GPT) => Array.from(await m.stateDict()["transformer.h.0.attn.c_attn.weight"].data());
    assert.notDeepEqual(await w(loaded.model), await w(init.model));
    loaded.model.dispose();
    init.model.dispose();
  });
});

Deno.test("train.ts --init DIR without tokenizer files uses bytes when they fit", async () => {
  await withDir(async (root) => {
    await pretrainedFolder(`${root}/gpt`, 259, false);
    await writePrefs(`${root}/prefs.jsonl`);
    const args = ["--init", `${root}/gpt`, "--data", `${root}/prefs.jsonl`, "--steps", "1"];
    const r = await train(...args, "--batch-size", "4", "--out", `${root}/run`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /no tokenizer files, so the byte tokenizer/);
    assert.equal(JSON.parse(await Deno.readTextFile(`${root}/run/summary.json`)).tokenizer, "byte");
    const loaded = await fromPretrained(`${root}/run/dpo`);
    assert.equal(loaded.tokenizer, undefined);
    loaded.model.dispose();
  });
});

Deno.test("train.ts --init DIR refuses a tokenizer the model's vocabulary does not fit", async () => {
  await withDir(async (root) => {
    await writePrefs(`${root}/prefs.jsonl`);
    const run = (dir: string) =>
      train("--init", dir, "--data", `${root}/prefs.jsonl`, "--out", `${root}/run`);

    // The folder's BPE tokenizer has 259 ids; the model embeds 200.
    await pretrainedFolder(`${root}/bpe`, 200, true);
    const bpe = await run(`${root}/bpe`);
    assert.equal(bpe.code, 1, bpe.stdout + bpe.stderr);
    assert.match(bpe.stderr, /tokenizer/);
    assert.match(bpe.stderr, /259 ids/);
    assert.match(bpe.stderr, /\b200\b/);

    // No tokenizer files, and the byte tokenizer's 259 ids do not fit 200 either.
    await pretrainedFolder(`${root}/bytes`, 200, false);
    const bytes = await run(`${root}/bytes`);
    assert.equal(bytes.code, 1, bytes.stdout + bytes.stderr);
    assert.match(
      bytes.stderr,
      /has no tokenizer files, and the byte tokenizer has 259 ids, the model's vocabulary only 200/,
    );
    assert.doesNotMatch(bytes.stdout + bytes.stderr, /DPO/, "refused before training");

    // A pretrained folder has its own tokenizer, so the built-in word-level task refuses it.
    const task = await train("--init", `${root}/bpe`, "--quick");
    assert.equal(task.code, 1);
    assert.match(task.stderr, /is a pretrained folder, which needs --data FILE/);
  });
});
