/**
 * The built-in task's data and sizes: a corpus from the review grammar (sentiment.ts), its word
 * tokenizer, and prompts (each sentence's first words) split into held-in and held-out sets.
 * @module
 */
import { rng, type Tokenizer, WordTokenizer } from "../mod.ts";
import { generateCorpus, promptOf } from "./sentiment.ts";

/** Sizes of the default run and of `--quick`. */
export const SIZES = {
  full: {
    corpus: 4000,
    nLayer: 2,
    nHead: 4,
    nEmbd: 64,
    sftSteps: 400,
    sftBatch: 64,
    prompts: 512,
    dpoSteps: 120,
    evalPrompts: 160,
  },
  quick: {
    corpus: 1000,
    nLayer: 1,
    nHead: 2,
    nEmbd: 32,
    sftSteps: 80,
    sftBatch: 32,
    prompts: 96,
    dpoSteps: 40,
    evalPrompts: 48,
  },
  // Hidden `--tiny`: seconds long, for tests/crash_test.ts.
  tiny: {
    corpus: 200,
    nLayer: 1,
    nHead: 2,
    nEmbd: 16,
    sftSteps: 12,
    sftBatch: 8,
    prompts: 24,
    dpoSteps: 12,
    evalPrompts: 8,
  },
};

/** The GPT's context: long enough for every grammar sentence with BOS and EOS. */
export const BLOCK = 24;

/** Words of a sentence that make its prompt ("the movie was", "honestly the plot"). */
const PROMPT_WORDS = 3;

/** One configuration of {@link SIZES}. */
export type Sizes = typeof SIZES.full;

/** The task's data. */
export interface SentimentData {
  /** The sizes in use. */
  size: Sizes;
  /** Grammar sentences to learn in SFT. */
  corpus: string[];
  /** A word tokenizer built from the corpus. */
  tok: WordTokenizer;
  /** Prompts for preference pairs (with repeats, as in the corpus). */
  trainPrompts: string[];
  /** Prompts kept out of training, for evaluation. */
  evalPrompts: string[];
}

/** The task's data for `seed`, at the default sizes, the `quick` ones or the (hidden) `tiny` ones. */
export function sentimentData(seed: number, quick: boolean, tiny = false): SentimentData {
  const size = tiny ? SIZES.tiny : quick ? SIZES.quick : SIZES.full;
  const corpus = generateCorpus(size.corpus, seed);
  const tok = WordTokenizer.fromCorpus(corpus.join(" "));
  const prompts = corpus.map((s) => promptOf(s, PROMPT_WORDS));
  // Hold out a fifth of the distinct prompts for evaluation.
  const r = rng(seed + 1);
  const heldOut = new Set([...new Set(prompts)].filter(() => r() < 0.2));
  return {
    size,
    corpus,
    tok,
    trainPrompts: prompts.filter((p) => !heldOut.has(p)),
    evalPrompts: prompts.filter((p) => heldOut.has(p)),
  };
}

/** `n` prompts drawn from `prompts`; each draw has its own seed, so a resumed run sees the same ones. */
export function pickPrompts(prompts: string[], n: number, seed: number): string[] {
  const g = rng(seed);
  return Array.from({ length: n }, () => prompts[Math.floor(g() * prompts.length)]);
}

/** How pairs are encoded for DPO, as in TRL: BOS before prompts, EOS after completions. */
export function pairEncoder(tok: Tokenizer): (s: string, part: "prompt" | "completion") => number[] {
  return (s, part) => tok.encode(s, { bos: part === "prompt", eos: part === "completion" });
}
