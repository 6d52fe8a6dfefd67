/**
 * Preference data in TRL's format (JSONL with `prompt`, `chosen`, `rejected` strings, the completions
 * continuing the prompt), plus TRL's truncation rule for encoded pairs.
 * @module
 */

/** One preference: `chosen` is preferred over `rejected` as a continuation of `prompt`. */
export interface PreferencePair {
  /** Shared prefix (may be empty). */
  prompt: string;
  /** The preferred completion (non-empty). */
  chosen: string;
  /** The dispreferred completion (non-empty). */
  rejected: string;
}

/** The result of parsing a preference file. */
export interface ParsedPreferences {
  /** The usable pairs, in file order. */
  pairs: PreferencePair[];
  /** Pairs dropped because `chosen === rejected` (they carry no preference signal). */
  skippedIdentical: number;
}

/**
 * Parses JSONL preference data: one JSON object per non-blank line. Errors name `source` and the 1-based
 * line; extra keys are ignored; a file with no usable pair is an error.
 */
export function parsePreferenceJsonl(text: string, source: string): ParsedPreferences {
  const pairs: PreferencePair[] = [];
  let skippedIdentical = 0;
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const at = `${source}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new Error(`${at}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      throw new Error(`${at}: not a JSON object`);
    }
    const o = obj as Record<string, unknown>;
    for (const k of ["prompt", "chosen", "rejected"]) {
      if (!Object.hasOwn(o, k)) throw new Error(`${at}: missing "${k}"`);
      const v = o[k], got = Array.isArray(v) ? "a list (conversational format is not supported)" : typeof v;
      if (typeof v !== "string") {
        throw new Error(`${at}: "${k}" must be a string, got ${v === null ? "null" : got}`);
      }
      if (k !== "prompt" && o[k] === "") throw new Error(`${at}: "${k}" is an empty completion`);
    }
    const { prompt, chosen, rejected } = o as unknown as PreferencePair;
    if (chosen === rejected) skippedIdentical++;
    else pairs.push({ prompt, chosen, rejected });
  });
  if (pairs.length === 0) {
    throw new Error(`${source}: no preference pairs (${skippedIdentical} skipped as chosen === rejected)`);
  }
  return { pairs, skippedIdentical };
}

/** Reads and parses a JSONL preference file; errors name the path. */
export async function loadPreferenceJsonl(path: string): Promise<ParsedPreferences> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  return parsePreferenceJsonl(text, path);
}

/** Serializes pairs as JSONL (one object per line, trailing newline) that {@link parsePreferenceJsonl} reads. */
export function toJsonl(pairs: readonly PreferencePair[]): string {
  return pairs.map(({ prompt, chosen, rejected }) => JSON.stringify({ prompt, chosen, rejected }) + "\n")
    .join("");
}

/** A tokenized preference pair; the model sees `prompt ++ chosen` and `prompt ++ rejected`. */
export interface EncodedPair {
  /** Prompt ids. */
  prompt: number[];
  /** Chosen completion ids. */
  chosen: number[];
  /** Rejected completion ids. */
  rejected: number[];
}

/**
 * TRL's truncation: when prompt + the longer completion exceeds `maxLength`, keep the END of the prompt
 * (at most `maxPromptLength`, default ⌊maxLength/2⌋, tokens); if still too long, keep the START of each
 * completion, cut to `maxLength - prompt length`. Every completion keeps at least one token.
 */
export function truncatePair(
  p: EncodedPair,
  maxLength: number,
  maxPromptLength: number = Math.floor(maxLength / 2),
): { pair: EncodedPair; truncated: boolean } {
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new Error(`truncatePair: maxLength ${maxLength} < 2`);
  }
  if (!Number.isInteger(maxPromptLength) || maxPromptLength < 1 || maxPromptLength >= maxLength) {
    throw new Error(`truncatePair: maxPromptLength ${maxPromptLength} must be in 1..${maxLength - 1}`);
  }
  if (p.chosen.length === 0 || p.rejected.length === 0) throw new Error("truncatePair: empty completion");
  const longer = Math.max(p.chosen.length, p.rejected.length);
  if (p.prompt.length + longer <= maxLength) return { pair: p, truncated: false };
  const prompt = p.prompt.slice(Math.max(0, p.prompt.length - maxPromptLength));
  const room = maxLength - prompt.length; // ≥ 1 since maxPromptLength < maxLength
  return {
    pair: { prompt, chosen: p.chosen.slice(0, room), rejected: p.rejected.slice(0, room) },
    truncated: true,
  };
}

/**
 * Tokenizes and truncates pairs. `encode` gets which part it encodes, so a caller can add BOS to prompts
 * and EOS to completions. Returns the pairs and how many were truncated.
 */
export function encodePairs(
  pairs: readonly PreferencePair[],
  encode: (text: string, part: "prompt" | "completion") => number[],
  maxLength: number,
  maxPromptLength?: number,
): { pairs: EncodedPair[]; truncated: number } {
  let truncated = 0;
  const out = pairs.map((p, i) => {
    const c = (s: string) => encode(s, "completion");
    const pair = { prompt: encode(p.prompt, "prompt"), chosen: c(p.chosen), rejected: c(p.rejected) };
    if (pair.chosen.length === 0 || pair.rejected.length === 0) {
      throw new Error(`encodePairs: pair ${i} has a completion that encodes to no tokens`);
    }
    const r = truncatePair(pair, maxLength, maxPromptLength);
    if (r.truncated) truncated++;
    return r.pair;
  });
  return { pairs: out, truncated };
}
