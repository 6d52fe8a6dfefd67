/**
 * The toy version of the DPO paper's controlled sentiment generation task: a seeded grammar of short
 * lowercase movie-review sentences, and a ground-truth sentiment reward computed from a word table.
 * @module
 */
import { rng } from "../mod.ts";

/** The grammar's word classes (adjectives are the keys of {@link VALENCE}, split by sign). */
export const WORDS = {
  openers: ["honestly", "overall", "i thought", "in the end"],
  subjects: ["movie", "film", "plot", "acting", "soundtrack", "ending", "cast", "story", "script", "dialogue"]
    .concat(["pacing", "director", "music", "camera work"]),
  verbs: ["was", "felt", "seemed", "is"],
  intensifiers: ["really", "very", "quite", "truly", "so", "rather", "incredibly"],
  /** Flip the next adjective's valence when scoring; the grammar itself only uses "not". */
  negators: ["not", "never", "hardly"],
} as const;

// deno-fmt-ignore
/**
 * Word valences for {@link sentimentScore}. Neutral adjectives are listed with 0 so that a negator before
 * them ("not long") is used up instead of flipping a later word. Words not listed count 0.
 */
export const VALENCE: Readonly<Record<string, number>> = {
  great: 2, wonderful: 2, excellent: 2, brilliant: 2, superb: 2, amazing: 2, charming: 1.5, beautiful: 1.5,
  lovely: 1.5, good: 1, nice: 1, fun: 1, warm: 1, enjoyable: 1, moving: 1, fine: 0.5, decent: 0.5,
  awful: -2, terrible: -2, horrible: -2, dreadful: -2, boring: -1.5, tedious: -1.5, bad: -1, dull: -1,
  weak: -1, poor: -1, bland: -1, messy: -1, cold: -1, clumsy: -1, forgettable: -1, slow: -0.5,
  long: 0, short: 0, simple: 0, quiet: 0, loud: 0, familiar: 0, unusual: 0, different: 0, modern: 0, old: 0,
};

const adjectives = (sign: number) => Object.keys(VALENCE).filter((w) => Math.sign(VALENCE[w]) === sign);
const POSITIVE = adjectives(1), NEGATIVE = adjectives(-1), NEUTRAL = adjectives(0);

/**
 * Ground-truth reward: tanh(sum / 2), bounded in [−1, 1], where sum adds each word's {@link VALENCE}, and a negator
 * ("not", "never", "hardly") flips the sign of the next listed adjective in its clause ("not boring" = +1.5).
 * E.g. "the movie was great ." → tanh(1) ≈ 0.762; "good but awful" → tanh(−0.5).
 */
export function sentimentScore(text: string): number {
  let sum = 0, flip = false;
  for (const w of text.toLowerCase().split(/[^a-z]+/)) {
    if ((WORDS.negators as readonly string[]).includes(w)) flip = true;
    else if (w === "and" || w === "but") flip = false;
    else if (w in VALENCE) sum += flip ? -VALENCE[w] : VALENCE[w], flip = false;
  }
  return Math.tanh(sum / 2);
}

/**
 * The best score among `sentences` (e.g. a large {@link generateCorpus}): what a completion in the
 * grammar can reach; the analytic supremum is 1. -Infinity when empty.
 */
export function bestAchievableScore(sentences: Iterable<string>): number {
  let best = -Infinity;
  for (const s of sentences) best = Math.max(best, sentimentScore(s));
  return best;
}

/** One sentence from the grammar (6–14 words then " ."), drawing randomness from `r`. */
export function generateSentence(r: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const phrase = (pol: number): string => {
    const words = [NEUTRAL, POSITIVE, NEGATIVE].at(pol)!; // at(-1) is NEGATIVE
    const adj = () => (r() < 0.3 ? pick(WORDS.intensifiers) + " " : "") + pick(words);
    if (pol !== 0 && r() < 0.15) return `not ${pick(pol > 0 ? NEGATIVE : POSITIVE)}`; // "felt never good" reads badly
    return r() < 0.3 ? `${adj()} and ${adj()}` : adj();
  };
  const clause = (pol: number) => `the ${pick(WORDS.subjects)} ${pick(WORDS.verbs)} ${phrase(pol)}`;
  for (;;) {
    // Sentence kinds: positive, negative, neutral, mixed (one clause each way, joined by "but").
    const u = r(), pol = u < 0.3 ? 1 : u < 0.6 ? -1 : u < 0.75 ? 0 : 2;
    let s = r() < 0.25 ? pick(WORDS.openers) + " " : "";
    if (pol === 2) {
      const first = r() < 0.5 ? 1 : -1;
      s += `${clause(first)} but ${clause(-first)}`;
    } else {
      s += clause(pol);
      if (r() < 0.5) s += ` and ${clause(r() < 0.6 ? pol : 0)}`;
    }
    const n = s.split(" ").length;
    if (n >= 6 && n <= 14) return s + " .";
  }
}

/** `n` sentences from the grammar, deterministic for a given `seed`. */
export function generateCorpus(n: number, seed: number): string[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => generateSentence(r));
}

/**
 * The first `nWords` words of `sentence` (e.g. "the movie"), to use as a prompt; the completion is
 * `sentence.slice(prompt.length)` (starting with a space). Throws unless 1 ≤ nWords < the word count.
 */
export function promptOf(sentence: string, nWords = 2): string {
  const words = sentence.split(" ");
  if (!Number.isInteger(nWords) || nWords < 1 || nWords >= words.length) {
    throw new Error(`promptOf: nWords ${nWords} must be in 1..${words.length - 1} for "${sentence}"`);
  }
  return words.slice(0, nWords).join(" ");
}

/** The polarity (1, −1, 0) of a clause "the SUBJECT VERB PHRASE" as {@link generateSentence} builds
 * it, or null when the grammar cannot produce it. */
function clausePolarity(words: string[]): number | null {
  if (words[0] !== "the") return null;
  const subject = WORDS.subjects.find((s) => words.slice(1, 1 + s.split(" ").length).join(" ") === s);
  if (!subject) return null;
  const rest = words.slice(1 + subject.split(" ").length);
  if (!(WORDS.verbs as readonly string[]).includes(rest[0])) return null;
  const phrase = rest.slice(1);
  // "not ADJ": the opposite of a non-neutral adjective, with no intensifier.
  if (phrase[0] === "not") {
    return phrase.length === 2 && VALENCE[phrase[1]] ? -Math.sign(VALENCE[phrase[1]]) : null;
  }
  // ADJ or "ADJ and ADJ", each with an optional intensifier, all of one sign.
  const signs: number[] = [];
  for (const part of phrase.join(" ").split(" and ")) {
    const w = part.split(" ");
    const adj = w.length === 2 && (WORDS.intensifiers as readonly string[]).includes(w[0])
      ? w[1]
      : w.join(" ");
    if (!(adj in VALENCE)) return null;
    signs.push(Math.sign(VALENCE[adj]));
  }
  return signs.length <= 2 && signs.every((s) => s === signs[0]) ? signs[0] : null;
}

/**
 * Whether {@link generateSentence} can produce `text` (a decoded sample): the fluency check of the
 * evaluation. A policy that games the word-valence scorer ("great great superb") fails it.
 */
export function isGrammatical(text: string): boolean {
  const words = text.trim().split(/\s+/);
  if (words.at(-1) !== "." || words.length < 7 || words.length > 15) return false;
  let body = words.slice(0, -1).join(" ");
  const opener = WORDS.openers.find((o) => body.startsWith(o + " the "));
  if (opener) body = body.slice(opener.length + 1);
  // Clauses start with "the", which no phrase contains, so "and the" / "but the" join two clauses.
  const [first, join, second, ...more] = body.split(/ (and|but) (?=the )/);
  if (more.length) return false;
  const p = clausePolarity(first.split(" "));
  if (p === null) return false;
  if (!join) return true;
  const q = clausePolarity(second.split(" "));
  if (q === null) return false;
  return join === "but" ? p !== 0 && q === -p : q === p || q === 0;
}
