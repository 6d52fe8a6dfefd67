/**
 * Preference data in TRL's formats, plus TRL's truncation rule for encoded pairs. Each JSONL line is one
 * of:
 * - standard: `prompt`, `chosen`, `rejected` strings, the completions continuing the prompt;
 * - implicit prompt: only `chosen` and `rejected`; their shared start becomes the prompt (see
 *   {@link parsePreferenceJsonl});
 * - conversational: the same keys holding lists of `{ role, content }` messages, rendered to text by
 *   {@link renderChat}.
 * @module
 */
import { readFileBytes } from "../nn/safetensors.ts";
import { isRecord, parseJson, raise, typeName } from "../tensor/check.ts";

/** One preference: `chosen` is preferred over `rejected` as a continuation of `prompt`. */
export interface PreferencePair {
  /** Shared prefix (may be empty). */
  prompt: string;
  /** The preferred completion (non-empty). */
  chosen: string;
  /** The dispreferred completion (non-empty). */
  rejected: string;
}

/** One message of TRL's conversational format (other keys of a message are ignored). */
export interface ChatMessage {
  /** Who speaks: `system`, `user`, `assistant`, … (non-empty). */
  role: string;
  /** What they say. */
  content: string;
}

/**
 * This project's chat template: each message becomes `<|role|>\ncontent\n`, so
 * `[{ role: "user", content: "Hi" }]` renders as `"<|user|>\nHi\n"`. Rendering concatenates, so a prompt
 * rendered alone is a prefix of the prompt and completion rendered together.
 */
export function renderChat(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join("");
}

/** The result of parsing a preference file. */
export interface ParsedPreferences {
  /** The usable pairs, in file order. */
  pairs: PreferencePair[];
  /** Pairs dropped because `chosen === rejected` (they carry no preference signal). */
  skippedIdentical: number;
}

/**
 * TRL's `extract_prompt`: the prompt is the longest common prefix of the two sequences. When one is a
 * prefix of the other, the last shared item goes back to the completions so both stay non-empty; a
 * space just before the first difference also goes to the completions (GPT-2 tokens carry their
 * leading space). Returns the prompt's length.
 */
function promptLength<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && same(a[i], b[i])) i++;
  if (i === n) return n - 1;
  return i > 0 && a[i - 1] === " " ? i - 1 : i;
}

/** A prompt/chosen/rejected field as read from a line: text, or messages. */
type Part = string | ChatMessage[];

/** Reads field `k` (undefined when absent), checking it is a string or a list of messages. */
function readPart(o: Record<string, unknown>, k: string, at: string): Part | undefined {
  if (!Object.hasOwn(o, k)) return undefined;
  const v = o[k];
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) raise(`${at}: "${k}" must be a string or a list of messages, got ${typeName(v)}`);
  return v.map((m: unknown, j) => {
    const where = `${at}: "${k}"[${j}]`;
    if (!isRecord(m)) throw new Error(`${where} must be a { role, content } object`);
    const { role, content } = m;
    const bad = (key: "role" | "content", rule: string) =>
      new Error(`${where}.${key} must be ${rule}, got ${JSON.stringify(m[key]) ?? "nothing"}`);
    if (typeof role !== "string" || role === "") throw bad("role", "a non-empty string");
    if (typeof content !== "string") throw bad("content", "a string");
    return { role, content };
  });
}

/**
 * One line's fields as a text pair. An absent prompt is extracted by {@link promptLength} (characters of
 * text, whole messages of a conversation). Messages render with {@link renderChat}; when both completions
 * start with the same role, that role's `<|role|>\n` header moves to the end of the prompt, as TRL's
 * generation prompt does, so the completions hold only what the model is to say.
 */
function toPair(prompt: Part | undefined, chosen: Part, rejected: Part): PreferencePair {
  if (typeof chosen === "string" && typeof rejected === "string") {
    if (typeof prompt === "string") return { prompt, chosen, rejected };
    const [a, b] = [[...chosen], [...rejected]]; // code points, as TRL indexes Python strings
    const n = promptLength(a, b, (x, y) => x === y);
    return { prompt: a.slice(0, n).join(""), chosen: a.slice(n).join(""), rejected: b.slice(n).join("") };
  }
  // parsePreferenceJsonl has checked that the three parts are of one kind.
  let [p, c, r] = [prompt as ChatMessage[] | undefined, chosen as ChatMessage[], rejected as ChatMessage[]];
  if (p === undefined) {
    const n = promptLength(c, r, (x, y) => x.role === y.role && x.content === y.content);
    [p, c, r] = [c.slice(0, n), c.slice(n), r.slice(n)];
  }
  const head = c[0].role === r[0].role ? `<|${c[0].role}|>\n` : "";
  const completion = (ms: ChatMessage[]) => renderChat(ms).slice(head.length);
  return { prompt: renderChat(p) + head, chosen: completion(c), rejected: completion(r) };
}

/**
 * Parses JSONL preference data in any of TRL's formats (see the module doc), one JSON object per non-blank
 * line; a UTF-8 byte-order mark and CRLF line ends are accepted. Without a `prompt`, the prompt is
 * extracted as TRL's `extract_prompt` does: the longest common prefix of `chosen` and `rejected` (of
 * characters, or of whole messages), minus a trailing space before the first difference, and minus the
 * last shared item when one completion is a prefix of the other. Unlike TRL, which then re-extracts, a
 * text prompt with message completions (or any other mix) is an error. Errors name `source` and the
 * 1-based line, and the field and message index for a bad message; extra keys are ignored; a file with no
 * usable pair is an error.
 */
export function parsePreferenceJsonl(text: string, source: string): ParsedPreferences {
  const pairs: PreferencePair[] = [];
  let skippedIdentical = 0;
  text.replace(/^\uFEFF/, "").split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    const at = `${source}:${i + 1}`, o = parseJson(line, (why) => `${at}: invalid JSON (${why})`);
    if (!isRecord(o)) throw new Error(`${at}: not a JSON object`);
    const [prompt, chosen, rejected] = ["prompt", "chosen", "rejected"].map((k) => readPart(o, k, at));
    if (chosen === undefined) throw new Error(`${at}: missing "chosen"`);
    if (rejected === undefined) throw new Error(`${at}: missing "rejected"`);
    const empty = ([["chosen", chosen], ["rejected", rejected]] as const).find(([, v]) => v.length === 0);
    if (empty) throw new Error(`${at}: "${empty[0]}" is an empty completion`);
    const kind = (v: Part) => typeof v === "string" ? "a string" : "a list of messages";
    for (const [k, v] of [["prompt", prompt], ["rejected", rejected]] as const) {
      if (v !== undefined && kind(v) !== kind(chosen)) {
        throw new Error(`${at}: "${k}" is ${kind(v)} but "chosen" is ${kind(chosen)}; use one format a line`);
      }
    }
    const pair = toPair(prompt, chosen, rejected);
    if (pair.chosen === pair.rejected) skippedIdentical++;
    else pairs.push(pair);
  });
  if (pairs.length === 0) {
    throw new Error(`${source}: no preference pairs (${skippedIdentical} skipped as chosen === rejected)`);
  }
  return { pairs, skippedIdentical };
}

/** Reads and parses a JSONL preference file; errors name the path. */
export async function loadPreferenceJsonl(path: string): Promise<ParsedPreferences> {
  return parsePreferenceJsonl(new TextDecoder().decode(await readFileBytes(path)), path);
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
  if (!Number.isInteger(maxLength) || maxLength < 2) raise(`truncatePair: maxLength ${maxLength} < 2`);
  if (!Number.isInteger(maxPromptLength) || maxPromptLength < 1 || maxPromptLength >= maxLength) {
    throw new Error(`truncatePair: maxPromptLength ${maxPromptLength} must be in 1..${maxLength - 1}`);
  }
  if (p.chosen.length === 0 || p.rejected.length === 0) throw new Error("truncatePair: empty completion");
  const longer = Math.max(p.chosen.length, p.rejected.length);
  if (p.prompt.length + longer <= maxLength) return { pair: p, truncated: false };
  const prompt = p.prompt.slice(Math.max(0, p.prompt.length - maxPromptLength));
  // Completions are cut to maxLength − prompt length tokens, ≥ 1 since maxPromptLength < maxLength.
  const cut = (ids: number[]) => ids.slice(0, maxLength - prompt.length);
  return { pair: { prompt, chosen: cut(p.chosen), rejected: cut(p.rejected) }, truncated: true };
}

/**
 * Tokenizes and truncates pairs. `encode` gets which part it encodes, so a caller can add BOS to prompts
 * and EOS to completions. Pairs whose chosen and rejected become identical once truncated carry no
 * preference (their loss is stuck at ln 2): they are dropped, with a warning that counts them and names
 * `source`. Returns the pairs kept, how many were truncated and how many were dropped.
 */
export function encodePairs(
  pairs: readonly PreferencePair[],
  encode: (text: string, part: "prompt" | "completion") => number[],
  maxLength: number,
  maxPromptLength?: number,
  source = "encodePairs",
): { pairs: EncodedPair[]; truncated: number; identical: number } {
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
  const kept = out.filter((p) => p.chosen.join() !== p.rejected.join());
  const identical = out.length - kept.length;
  const why = `whose chosen and rejected are identical once truncated to ${maxLength} tokens`;
  if (identical) console.warn(`${source}: dropped ${identical} of ${out.length} pairs ${why}`);
  return { pairs: kept, truncated, identical };
}
