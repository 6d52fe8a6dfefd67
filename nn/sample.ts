/**
 * Autoregressive sampling: temperature, top-k and nucleus (top-p) filtering, greedy at
 * temperature 0, context cropped to the model's block size. A key/value cache makes each step one
 * token's forward; once a sequence fills the block size it falls back to full forwards of the cropped
 * context. Each step reads back only the last position's logits; the choice is made on the host with
 * a seeded generator, so a seed gives the same text on every backend.
 */
import { fromArray, noGrad, rng, scope } from "../tensor/mod.ts";
import { checkInt, checkNumber, raise } from "../tensor/check.ts";
import { type GPT, KVCache } from "./gpt.ts";

/** Sampling options. */
export interface SampleOptions {
  /** Tokens to add. */
  maxNewTokens: number;
  /** Softmax temperature; 0 = greedy (default 1). */
  temperature?: number;
  /** Keep only the k most likely tokens. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p. */
  topP?: number;
  /** Seed for the generator (default 0). */
  seed?: number;
  /** Stop a sequence after this token. */
  eosToken?: number;
  /** Reuse keys and values of earlier positions (default true; false recomputes the prefix each step). */
  cache?: boolean;
}

/** Throws, naming `who`, where a sampling option is out of range. */
function checkOptions(who: string, o: Omit<SampleOptions, "maxNewTokens">): void {
  checkNumber(`${who}: temperature`, o.temperature ?? 1, "≥ 0", (t) => t >= 0);
  if (o.topK !== undefined) checkInt(`${who}: topK`, o.topK);
  if (o.topP !== undefined) checkNumber(`${who}: topP`, o.topP, "in (0, 1]", (p) => p > 0 && p <= 1);
}

/** Pick one token from a row of logits. */
export function sampleToken(
  logits: ArrayLike<number>,
  o: Omit<SampleOptions, "maxNewTokens">,
  u: number,
): number {
  checkOptions("sampleToken", o);
  const t = o.temperature ?? 1, ids = Array.from(logits, (_, i) => i);
  if (t === 0) return ids.reduce((b, i) => (logits[i] > logits[b] ? i : b), 0);
  ids.sort((a, b) => logits[b] - logits[a]);
  let keepN = Math.min(o.topK ?? ids.length, ids.length);
  const m = logits[ids[0]], w = ids.map((i) => Math.exp((logits[i] - m) / t));
  if (o.topP !== undefined && o.topP < 1) {
    const total = w.slice(0, keepN).reduce((a, b) => a + b, 0);
    let acc = 0, n = 0;
    while (n < keepN && acc < o.topP * total) acc += w[n++];
    keepN = Math.max(1, n);
  }
  let r = u * w.slice(0, keepN).reduce((a, b) => a + b, 0);
  for (let j = 0; j < keepN; j++) if ((r -= w[j]) < 0) return ids[j];
  return ids[keepN - 1];
}

/** Continue each prompt (token id lists; prompts of equal length run as one batch) and return the
 * prompts with their new tokens. The model runs in eval mode without recording a tape. */
export async function generate(model: GPT, prompts: number[][], o: SampleOptions): Promise<number[][]> {
  if (!prompts?.every?.(Array.isArray)) raise("generate: prompts must be arrays of token ids");
  if (prompts.some((p) => !p.length)) raise("generate: every prompt needs at least one token (e.g. BOS)");
  checkInt("generate: maxNewTokens", o?.maxNewTokens, 0);
  checkOptions("generate", o);
  const rand = rng(o.seed ?? 0), out = prompts.map((p) => [...p]), done = prompts.map(() => false);
  const V = model.config.vocabSize, maxT = model.config.blockSize, wasTraining = model.training;
  model.eval();
  const groups = Map.groupBy(prompts.keys(), (i) => prompts[i].length); // rows by prompt length
  // One cache per group: its rows share a length, so they run as one batch. Finished rows stay in
  // the batch (their outputs are ignored) so the cache's rows never have to be reshuffled.
  const caches = new Map([...groups.keys()].map((len) => [len, new KVCache()]));
  try {
    for (let s = 0; s < o.maxNewTokens; s++) {
      for (const [len, rows] of groups) {
        const live = rows.filter((i) => !done[i]);
        if (!live.length) continue;
        const n = out[live[0]].length, kv = caches.get(len)!, cached = (o.cache ?? true) && n <= maxT;
        if (!cached) kv.dispose();
        // Which rows are fed, and their new tokens: with a cache, the whole prompt once, then one
        // token per step; without, the context cropped to the block size.
        const fed = cached ? rows : live, T = cached ? n - kv.length : Math.min(n, maxT);
        const last = await scope(() => {
          const ctx = fed.flatMap((i) => out[i].slice(-T));
          const idx = fromArray<[number, number]>(ctx, [fed.length, T], "i32");
          const logits = noGrad(() => model.forward(idx, undefined, { cache: cached ? kv : undefined }));
          return logits.narrow(1, T - 1, 1).data();
        });
        live.forEach((i) => {
          const r = fed.indexOf(i);
          const tok = sampleToken(last.subarray(r * V, (r + 1) * V), o, rand());
          out[i].push(tok);
          if (tok === o.eosToken) done[i] = true;
        });
      }
    }
  } finally {
    for (const kv of caches.values()) kv.dispose();
    model.train(wasTraining);
  }
  return out;
}
