/**
 * What the demo does with sampled completions: preference pairs (best versus worst of four samples by
 * the sentiment scorer, as the DPO paper builds its sentiment pairs) and the evaluation of a policy
 * (mean reward, a sampled KL to the reference, and fluency).
 * @module
 */
import {
  type EncodedPair,
  generate,
  type GPT,
  noGrad,
  pairLogProbs,
  type PreferencePair,
  scope,
  type Tokenizer,
} from "../mod.ts";
import { isGrammatical, sentimentScore } from "./sentiment.ts";

/** One sampled completion of a prompt. */
export interface Sample {
  /** The prompt text. */
  prompt: string;
  /** The prompt's token ids (BOS first). */
  ids: number[];
  /** The completion's token ids, up to and including EOS when one was sampled. */
  completion: number[];
  /** Prompt and completion, decoded. */
  text: string;
}

/** Samples one completion per prompt at temperature 1, as long as the model's context allows (or
 * `maxNewTokens`, when smaller). */
export async function sampleTexts(
  model: GPT,
  tok: Tokenizer,
  prompts: string[],
  seed: number,
  maxNewTokens = Infinity,
): Promise<Sample[]> {
  const ids = prompts.map((p) => tok.encode(p, { bos: true }));
  const room = Math.min(maxNewTokens, model.config.blockSize - Math.max(...ids.map((x) => x.length)));
  const out = await generate(model, ids, { maxNewTokens: room, temperature: 1, seed, eosToken: tok.eos });
  return out.map((o, i) => {
    const end = o.indexOf(tok.eos, ids[i].length);
    const completion = o.slice(ids[i].length, end < 0 ? undefined : end + 1);
    return { prompt: prompts[i], ids: ids[i], completion, text: tok.decode([...ids[i], ...completion]) };
  });
}

/**
 * Preference pairs for `prompts`: four samples each, the highest-scoring one chosen and the lowest
 * rejected. Prompts whose samples are empty or score within 0.1 of each other give no pair.
 */
export async function preferencePairs(
  model: GPT,
  tok: Tokenizer,
  prompts: string[],
  seed: number,
): Promise<PreferencePair[]> {
  const samples = await sampleTexts(model, tok, prompts.flatMap((p) => [p, p, p, p]), seed);
  const pairs: PreferencePair[] = [];
  for (let i = 0; i < samples.length; i += 4) {
    const four = samples.slice(i, i + 4).filter((s) => tok.decode(s.completion)).map((s) => ({
      ...s,
      r: sentimentScore(s.text),
    }));
    four.sort((a, b) => b.r - a.r);
    if (four.length < 2 || four[0].r - four[four.length - 1].r < 0.1) continue;
    const tail = (s: Sample) => " " + tok.decode(s.completion);
    pairs.push({ prompt: four[0].prompt, chosen: tail(four[0]), rejected: tail(four[four.length - 1]) });
  }
  return pairs;
}

/**
 * Samples from `policy` on `prompts` and returns their mean reward, the samples, the sampled
 * KL(policy ‖ reference) = E_y~π[log π(y|x) − log π_ref(y|x)], averaged over the samples, and the
 * fluency: the share of samples that end (EOS) as a sentence the review grammar can produce.
 */
export async function evaluateSamples(
  policy: GPT,
  reference: GPT,
  tok: Tokenizer,
  prompts: string[],
  seed: number,
  maxNewTokens = Infinity,
): Promise<{ reward: number; kl: number; fluency: number; samples: Sample[] }> {
  const samples = await sampleTexts(policy, tok, prompts, seed, maxNewTokens);
  const reward = samples.reduce((s, x) => s + sentimentScore(x.text), 0) / samples.length;
  const fluent = samples.filter((x) => x.completion.at(-1) === tok.eos && isGrammatical(x.text));
  // Each sample as the "chosen" side of a pair, so pairLogProbs scores exactly its completion.
  const pairs: EncodedPair[] = samples.map((s) => ({
    prompt: s.ids,
    chosen: s.completion.length ? s.completion : [tok.eos],
    rejected: [tok.eos],
  }));
  let kl = 0;
  for (let i = 0; i < pairs.length; i += 64) {
    const chunk = pairs.slice(i, i + 64);
    kl += await scope(() =>
      noGrad(() =>
        pairLogProbs(policy, chunk, tok.pad).chosen.sub(pairLogProbs(reference, chunk, tok.pad).chosen).sum()
          .item()
      )
    );
  }
  return { reward, kl: kl / pairs.length, fluency: fluent.length / samples.length, samples };
}
