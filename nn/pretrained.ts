/**
 * Hugging Face pretrained folders for GPT-2: `config.json` (GPT2Config's keys), `model.safetensors`
 * (GPT-2's tensor names) and, optionally, a tokenizer (`tokenizer.json`, or `vocab.json` + `merges.txt`).
 * Functions touch the file system only when called.
 * @module
 */
import { checkInt, parseJson, raise } from "../tensor/check.ts";
import type { Shape } from "../tensor/mod.ts";
import { type BPETokenizer, type BPETokenizerJSON, loadTokenizer } from "./bpe.ts";
import { gptConfigFromCheckpoint, loadSafetensors, saveSafetensors } from "./checkpoint.ts";
import { GPT, type GPTConfig } from "./gpt.ts";
import { needDenoFs, readFileBytes } from "./safetensors.ts";

/** The `config.json` that {@link savePretrained} writes: the GPT2Config keys this GPT uses. */
export interface GPT2Config {
  /** Always `["GPT2LMHeadModel"]`. */
  architectures: string[];
  /** Always `"gpt2"`. */
  model_type: "gpt2";
  /** Tokens in the vocabulary. */
  vocab_size: number;
  /** Longest context. */
  n_positions: number;
  /** Width of the residual stream. */
  n_embd: number;
  /** Transformer blocks. */
  n_layer: number;
  /** Attention heads per block. */
  n_head: number;
  /** LayerNorm epsilon (1e-5, the only value this GPT supports). */
  layer_norm_epsilon: number;
  /** `"gelu_new"`: GPT-2's tanh GELU. */
  activation_function: string;
  /** Always true: the output head is the token embedding. */
  tie_word_embeddings: boolean;
  /** Dropout on residual branches (the GPT's `dropout`). */
  resid_pdrop: number;
  /** Dropout on embeddings (the GPT's `dropout`). */
  embd_pdrop: number;
  /** Dropout on attention weights (the GPT's `dropout`). */
  attn_pdrop: number;
}

const CONFIG = "config.json", WEIGHTS = "model.safetensors";
const TOKENIZER_FILES = ["tokenizer.json", "vocab.json", "merges.txt"];
/** Hugging Face's names for the tanh-approximated GELU that this GPT's MLP uses. */
const GELUS = ["gelu_new", "gelu_pytorch_tanh"];
/** GPT2Config's defaults (GPT-2 small), which Hugging Face applies to keys a config.json leaves out. */
const DEFAULTS = toGPT2Config({ vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 });

/**
 * The {@link GPTConfig} of a parsed GPT2Config (`config.json`); missing keys take GPT2Config's defaults.
 * Dropout keys are not read (a loaded GPT has dropout 0). Throws, naming `source` and the key, for a
 * size that is not a positive integer and for settings this GPT cannot run: another `model_type`, an
 * activation other than GPT-2's tanh GELU, a LayerNorm epsilon other than 1e-5, untied embeddings, an
 * MLP width other than 4·n_embd, or attention scaled by layer index.
 */
export function fromGPT2Config(json: unknown, source = CONFIG): GPTConfig {
  const fail = (why: string) => raise(`${source}: ${why}`);
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fail("not a JSON object");
  const c: Record<string, unknown> = { ...DEFAULTS, ...json };
  const keys = ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"];
  const [vocabSize, blockSize, nEmbd, nLayer, nHead] = keys.map((k) => checkInt(`${source}: ${k}`, c[k]));
  const unsupported = (k: string, why: string) => fail(`${k} ${JSON.stringify(c[k])} is not supported${why}`);
  if (c.model_type !== "gpt2") unsupported("model_type", `, only "gpt2"`);
  if (!GELUS.some((g) => g === c.activation_function)) {
    unsupported("activation_function", `; accepted: ${GELUS.join(", ")} (the tanh GELU this GPT uses)`);
  }
  if (c.layer_norm_epsilon !== 1e-5) unsupported("layer_norm_epsilon", " (this GPT uses 1e-5)");
  if (c.tie_word_embeddings !== true) {
    fail("tie_word_embeddings must be true (this GPT ties its head to wte)");
  }
  if (c.n_inner != null && c.n_inner !== 4 * nEmbd) {
    unsupported("n_inner", ` (this GPT's MLP is 4 * n_embd = ${4 * nEmbd} wide)`);
  }
  if (c.scale_attn_by_inverse_layer_idx === true) {
    fail("scale_attn_by_inverse_layer_idx: true is not supported");
  }
  if (nEmbd % nHead) fail(`n_embd ${nEmbd} is not divisible by n_head ${nHead}`);
  return { vocabSize, blockSize, nLayer, nHead, nEmbd };
}

/** The GPT2Config (`config.json` contents) for `cfg`, as Hugging Face's GPT2LMHeadModel reads it. */
export function toGPT2Config(cfg: GPTConfig): GPT2Config {
  const p = cfg.dropout ?? 0;
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: cfg.vocabSize,
    n_positions: cfg.blockSize,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
    tie_word_embeddings: true,
    resid_pdrop: p,
    embd_pdrop: p,
    attn_pdrop: p,
  };
}

/** True when `path` is a file; false when nothing is there. */
function isFile(path: string): Promise<boolean> {
  return Deno.stat(path).then((info) => info.isFile, (e) => {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  });
}

/** Throws, naming the config key and both shapes, when the weights' sizes are not the config's. */
function checkSizes(c: GPTConfig, sd: Record<string, { shape: Shape }>, cfgPath: string, wPath: string) {
  const w = gptConfigFromCheckpoint(sd, { n_head: "1" }, wPath); // head count leaves no trace in shapes
  const implies = (name: string, rows: number, want: number) =>
    `transformer.${name}.weight is [${rows}, ${w.nEmbd}], config implies [${want}, ${c.nEmbd}]`;
  const wte = implies("wte", w.vocabSize, c.vocabSize), wpe = implies("wpe", w.blockSize, c.blockSize);
  const checks: [string, number, number, string][] = [
    ["vocab_size", c.vocabSize, w.vocabSize, wte],
    ["n_embd", c.nEmbd, w.nEmbd, wte],
    ["n_positions", c.blockSize, w.blockSize, wpe],
    ["n_layer", c.nLayer, w.nLayer, `it has ${w.nLayer} blocks (transformer.h.*)`],
  ];
  const [key, want, , why] = checks.find(([, fromConfig, fromWeights]) => fromConfig !== fromWeights) ?? [];
  if (key) raise(`fromPretrained: ${cfgPath} has ${key} ${want} but in ${wPath} ${why}`);
}

/**
 * Builds a GPT from a Hugging Face folder: `config.json` ({@link fromGPT2Config}), `model.safetensors`
 * (with `transformer.` names, or the hub's bare GPT2Model names such as `wte.weight`; F16/BF16 become
 * f32) and, when present, the tokenizer files via {@link loadTokenizer}. Throws naming the missing files,
 * a config key that disagrees with the weights (with both shapes), or what else failed to load.
 */
export async function fromPretrained(
  dir: string,
): Promise<{ model: GPT; config: GPTConfig; tokenizer?: BPETokenizer }> {
  needDenoFs("fromPretrained");
  const path = (name: string) => `${dir.replace(/[\/\\]+$/, "")}/${name}`;
  const missing: string[] = [];
  for (const f of [CONFIG, WEIGHTS]) if (!(await isFile(path(f)))) missing.push(f);
  if (missing.length) {
    const why = `fromPretrained: ${dir} has no ${missing.join(" and no ")}`;
    if (!(await isFile(path("pytorch_model.bin")))) throw new Error(why);
    throw new Error(`${why} (it has pytorch_model.bin; only model.safetensors is read)`);
  }
  const text = await Deno.readTextFile(path(CONFIG));
  const json = parseJson(text, (why) => `fromPretrained: ${path(CONFIG)} is not valid JSON: ${why}`);
  const config = fromGPT2Config(json, path(CONFIG));
  const { tensors } = loadSafetensors(await readFileBytes(path(WEIGHTS)), path(WEIGHTS));
  const bare = !("transformer.wte.weight" in tensors) && "wte.weight" in tensors;
  const fullName = (k: string) => k.startsWith("lm_head.") ? k : `transformer.${k}`;
  const sd = bare ? Object.fromEntries(Object.entries(tensors).map(([k, t]) => [fullName(k), t])) : tensors;
  const model = new GPT(config);
  try {
    checkSizes(config, sd, path(CONFIG), path(WEIGHTS));
    model.loadStateDict(sd);
  } catch (e) {
    model.dispose();
    const msg = (e as Error).message;
    throw new Error(msg.startsWith("fromPretrained") ? msg : `fromPretrained: ${path(WEIGHTS)}: ${msg}`);
  } finally {
    Object.values(tensors).forEach((t) => t.dispose()); // the parameters hold their own references
  }
  const hasTokenizer = (await Promise.all(TOKENIZER_FILES.map((f) => isFile(path(f))))).some(Boolean);
  if (!hasTokenizer) return { model, config };
  const tokenizer = await loadTokenizer(dir), ids = tokenizer.vocabSize;
  if (ids > config.vocabSize) {
    model.dispose();
    raise(`fromPretrained: the tokenizer in ${dir} has ${ids} ids but vocab_size is ${config.vocabSize}`);
  }
  return { model, config, tokenizer };
}

/** A Hugging Face `tokenizer.json` for a byte-level BPE tokenizer, as GPT-2's own is laid out. */
function tokenizerJson(tok: BPETokenizer): Record<string, unknown> {
  // BPETokenizer.toJSON returns a BPETokenizerJSON typed as the general TokenizerJSON.
  const { vocab, merges, specials } = tok.toJSON() as unknown as BPETokenizerJSON;
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const flags = { single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  const added_tokens = Object.entries(specials).map(([content, id]) => ({ id, content, ...flags }));
  const head = { version: "1.0", truncation: null, padding: null, added_tokens, normalizer: null };
  const post = { ...byteLevel, trim_offsets: false }, pairs = merges.map(([l, r]) => `${l} ${r}`);
  const model = { type: "BPE", dropout: null, unk_token: null, vocab, merges: pairs };
  return { ...head, pre_tokenizer: byteLevel, post_processor: post, decoder: byteLevel, model };
}

/**
 * Writes `model` as a Hugging Face folder that {@link fromPretrained} loads, in the layout transformers'
 * `GPT2LMHeadModel.from_pretrained` reads: `config.json` ({@link toGPT2Config}), `model.safetensors`
 * (f32, metadata `{"format": "pt"}`, GPT-2's names, with `lm_head.weight` a copy of the tied
 * `transformer.wte.weight` so a strict PyTorch `load_state_dict` finds it) and, given `opts.tokenizer`,
 * `tokenizer.json`. Without one, tokenizer files already in `dir` are kept.
 *
 * Atomic: everything is written into a temp folder beside `dir`, which then replaces `dir` whole, so
 * `dir` is never half-written. To not delete anything else, an existing `dir` may hold only the files
 * this function writes (config.json, model.safetensors, tokenizer.json, vocab.json, merges.txt).
 */
export async function savePretrained(
  model: GPT,
  dir: string,
  opts: { tokenizer?: BPETokenizer } = {},
): Promise<void> {
  needDenoFs("savePretrained");
  const target = dir.replace(/[\/\\]+$/, "");
  let exists = false;
  try {
    for await (const e of Deno.readDir(target)) {
      if ([CONFIG, WEIGHTS, ...TOKENIZER_FILES].includes(e.name)) continue;
      throw new Error(`${target} holds ${e.name}, not written by savePretrained; use a new or empty folder`);
    }
    exists = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw new Error(`savePretrained: ${(e as Error).message}`);
  }
  const id = crypto.randomUUID().slice(0, 8), tmp = `${target}.tmp-${id}`, old = `${target}.old-${id}`;
  let moved = false;
  try {
    await Deno.mkdir(tmp);
    const sd = model.stateDict(), tied = { ...sd, "lm_head.weight": sd["transformer.wte.weight"] };
    await Deno.writeFile(`${tmp}/${WEIGHTS}`, await saveSafetensors(tied, { format: "pt" }));
    await Deno.writeTextFile(`${tmp}/${CONFIG}`, JSON.stringify(toGPT2Config(model.config), null, 2) + "\n");
    if (opts.tokenizer) {
      await Deno.writeTextFile(`${tmp}/tokenizer.json`, JSON.stringify(tokenizerJson(opts.tokenizer)));
    } else if (exists) {
      for (const f of TOKENIZER_FILES) {
        if (await isFile(`${target}/${f}`)) await Deno.copyFile(`${target}/${f}`, `${tmp}/${f}`);
      }
    }
    if (exists) await Deno.rename(target, old);
    moved = exists;
    await Deno.rename(tmp, target);
  } catch (e) {
    if (moved) await Deno.rename(old, target).catch(() => {});
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`savePretrained: cannot write ${target}: ${(e as Error).message}`);
  }
  if (moved) await Deno.remove(old, { recursive: true });
}
