/**
 * GPT-2's byte-level BPE tokenizer: text is split by GPT-2's pre-tokenization regex, each piece's UTF-8
 * bytes become one symbol each (through GPT-2's byte↔unicode map), and merges apply by rank. Load it from
 * `vocab.json` + `merges.txt` or from a Hugging Face `tokenizer.json` ({@link loadTokenizer}).
 * @module
 */

import { isRecord, parseJson, raise } from "../tensor/check.ts";
import { needDenoFs } from "./safetensors.ts";
import type { DecodeOptions, EncodeOptions, Tokenizer, TokenizerJSON } from "./tokenizer.ts";

/** Options for {@link BPETokenizer.encode}. */
export interface BPEEncodeOptions extends EncodeOptions {
  /**
   * Special tokens to recognise in the text: `"all"` or a list of them. By default none are, so
   * `<|endoftext|>` written in the text encodes as ordinary characters.
   */
  allowedSpecial?: "all" | Iterable<string>;
}

/** The JSON form of a {@link BPETokenizer}: its vocabulary, merges in rank order and special tokens. */
export interface BPETokenizerJSON {
  /** Always `"bpe"`. */
  type: "bpe";
  /** Token (in GPT-2's byte↔unicode alphabet) to id. */
  vocab: Record<string, number>;
  /** Merges, highest priority first. */
  merges: [string, string][];
  /** Special token text to id. */
  specials: Record<string, number>;
}

// GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other symbols, each with an optional
// leading space; whitespace before a non-space is left to lead the next piece.
const PIECE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's byte↔unicode map: printable Latin-1 bytes stand for themselves, the rest shift to U+0100 and up
 * in byte order, so every token is a printable string without spaces.
 */
const BYTE_CHARS: string[] = [];
for (let b = 0, next = 256; b < 256; b++) {
  const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  BYTE_CHARS.push(String.fromCharCode(printable ? b : next++));
}

/** Byte of each alphabet character. */
const CHAR_BYTE = new Map(BYTE_CHARS.map((c, b) => [c, b]));
const CACHE_LIMIT = 100_000;
const UTF8 = new TextEncoder();

/** The bytes a vocabulary token stands for. */
function tokenBytes(token: string): Uint8Array {
  // Characters outside the byte alphabet only come from hand-made vocabularies; keep their UTF-8.
  return new Uint8Array([...token].flatMap((c) => CHAR_BYTE.get(c) ?? [...UTF8.encode(c)]));
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&");

/** A merge given as `"left right"` or `["left", "right"]`, as a pair; otherwise throws naming `what`. */
function mergePair(m: unknown, what: string): [string, string] {
  const pair = typeof m === "string" ? m.split(" ") : m;
  if (!Array.isArray(pair) || pair.length !== 2 || pair.some((t) => typeof t !== "string" || !t)) {
    throw new Error(`${what} is ${JSON.stringify(m)}, not "left right" or ["left", "right"]`);
  }
  return [pair[0], pair[1]];
}

/**
 * Byte-level BPE exactly as GPT-2 does it. Any text encodes (there are no unknown characters) and
 * `decode(encode(text)) === text` for any valid UTF-8 text. bos, eos and pad are all the id of
 * `<|endoftext|>` when it is a special token, otherwise of the lowest-id special token.
 *
 * ```ts
 * const tok = await loadTokenizer("gpt2"); // a folder with tokenizer.json or vocab.json + merges.txt
 * tok.encode("Hello world"); // [15496, 995]
 * tok.encode("<|endoftext|>", { allowedSpecial: "all" }); // [50256]
 * ```
 */
export class BPETokenizer implements Tokenizer {
  /** One more than the largest id, vocabulary and special tokens included. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id. */
  readonly bos: number;
  /** End-of-sequence id. */
  readonly eos: number;
  /** Padding id. */
  readonly pad: number;
  /** What {@link BPETokenizer.toJSON} returns a copy of. */
  #json: BPETokenizerJSON;
  #specials: Map<string, number>;
  #specialText = new Map<number, string>();
  /** UTF-8 bytes of each ordinary id; undefined for special ids and gaps. */
  #bytes: (Uint8Array | undefined)[] = [];
  /** Id of each byte's single-symbol token. */
  #byteIds = new Int32Array(256);
  /** Pair key `left * vocabSize + right` to merge rank. */
  #ranks = new Map<number, number>();
  /** Id of the token each merge rank produces. */
  #mergedIds: Int32Array;
  /** Pre-tokenized piece to its ids: text repeats the same words, so most pieces skip the merge loop. */
  #cache = new Map<string, number[]>();

  /**
   * Builds from a vocabulary (token text in GPT-2's byte↔unicode alphabet to id), merges in rank order,
   * and special tokens (text to id). Throws naming the first inconsistency: a byte with no token, a merge
   * whose parts or result are not in the vocabulary, an id used twice.
   */
  constructor(
    vocab: Record<string, number>,
    merges: readonly (readonly [string, string])[],
    specials: Record<string, number> = {},
  ) {
    const fail = (why: string) => raise(`BPETokenizer: ${why}`);
    if (!isRecord(vocab)) fail("vocab must be an object of token → id");
    if (!Array.isArray(merges)) fail("merges must be an array of [left, right]");
    if (!isRecord(specials)) fail("specials must be an object of token → id");
    const vocabIds = new Map(Object.entries(vocab));
    this.#json = { type: "bpe", vocab: { ...vocab }, merges: [], specials: { ...specials } };
    this.#specials = new Map(Object.entries(specials));
    const owner = new Map<number, string>();
    const claim = (token: string, id: unknown, what: string) => {
      if (!Number.isInteger(id) || (id as number) < 0) {
        fail(`${what} ${JSON.stringify(token)} has id ${id}, not an integer ≥ 0`);
      }
      const prev = owner.get(id as number);
      if (prev !== undefined && prev !== token) {
        fail(`id ${id} belongs to both ${JSON.stringify(prev)} and ${JSON.stringify(token)}`);
      }
      owner.set(id as number, token);
    };
    for (const [token, id] of vocabIds) claim(token, id, "token");
    for (const [token, id] of this.#specials) claim(token, id, "special token");
    const maxId = [...owner.keys()].reduce((a, b) => Math.max(a, b), -1);
    this.vocabSize = maxId + 1;
    // Pair keys are left * vocabSize + right and must stay exact doubles.
    if (this.vocabSize > 2 ** 26) fail(`id ${maxId} is above the limit ${2 ** 26 - 1}`);

    for (const [text, id] of this.#specials) this.#specialText.set(id, text);
    for (const [token, id] of vocabIds) if (!this.#specialText.has(id)) this.#bytes[id] = tokenBytes(token);
    BYTE_CHARS.forEach((c, b) => {
      this.#byteIds[b] = vocabIds.get(c) ??
        fail(`byte 0x${b.toString(16)} has no token ${JSON.stringify(c)} in vocab`);
    });

    this.#mergedIds = new Int32Array(merges.length);
    merges.forEach((m, rank) => {
      if (!Array.isArray(m) || m.length !== 2 || typeof m[0] !== "string" || typeof m[1] !== "string") {
        fail(`merge ${rank} is ${JSON.stringify(m)}, not a [left, right] pair`);
      }
      const [left, right] = m, parts = [left, right, left + right];
      const ids = parts.map((t) => vocabIds.get(t)), missing = parts[ids.indexOf(undefined)];
      const what = `merge ${rank} ${JSON.stringify(`${left} ${right}`)}`;
      if (missing !== undefined) fail(`${what}: ${JSON.stringify(missing)} is not in the vocabulary`);
      // A repeated merge takes its later rank, as GPT-2's rank dictionary does.
      this.#ranks.set(ids[0]! * this.vocabSize + ids[1]!, rank);
      this.#mergedIds[rank] = ids[2]!;
      this.#json.merges.push([left, right]);
    });

    const end = this.#specials.get("<|endoftext|>") ?? Math.min(...this.#specials.values());
    if (end === Infinity) fail("no special tokens; bos/eos/pad need one such as <|endoftext|>");
    this.bos = this.eos = this.pad = end;
  }

  /**
   * Builds from the contents of `vocab.json` (token → id) and `merges.txt` (one `left right` pair a line,
   * optionally after a `#version` line). `specialTokens` lists vocabulary entries that are special; by
   * default `<|endoftext|>` when the vocabulary has it.
   */
  static fromVocabAndMerges(
    vocab: Record<string, number>,
    merges: string,
    opts: { specialTokens?: readonly string[] } = {},
  ): BPETokenizer {
    const where = "BPETokenizer.fromVocabAndMerges", bad = (why: string) => new Error(`${where}: ${why}`);
    if (!isRecord(vocab)) throw bad("vocab must be an object");
    if (typeof merges !== "string") throw bad("merges must be the text of merges.txt");
    const pairs = merges.split("\n").flatMap((raw, i) => {
      const line = raw.replace(/\r$/, "");
      if (line === "" || (i === 0 && line.startsWith("#version"))) return [];
      return [mergePair(line, `${where}: merges line ${i + 1}`)];
    });
    const names = opts.specialTokens ?? (vocab["<|endoftext|>"] !== undefined ? ["<|endoftext|>"] : []);
    const specials: Record<string, number> = {};
    for (const name of names) {
      if (vocab[name] === undefined) throw bad(`special token ${JSON.stringify(name)} is not in vocab`);
      specials[name] = vocab[name];
    }
    return new BPETokenizer(vocab, pairs, specials);
  }

  /**
   * Builds from a Hugging Face `tokenizer.json` (the parsed object or its text): a BPE model with a
   * byte-level pre-tokenizer. Merges may be `"left right"` strings or `["left", "right"]` pairs; every
   * entry of `added_tokens` becomes a special token.
   */
  static fromTokenizerJson(json: unknown): BPETokenizer {
    const where = "BPETokenizer.fromTokenizerJson", bad = (why: string) => new Error(`${where}: ${why}`);
    const j = typeof json === "string" ? parseJson(json, (why) => `${where}: not valid JSON: ${why}`) : json;
    if (!isRecord(j) || !isRecord(j.model)) throw bad(`expected an object with a "model"`);
    const { model, pre_tokenizer: pre } = j;
    if (model.type !== "BPE") throw bad(`model.type is ${JSON.stringify(model.type)}, expected "BPE"`);
    if (!isRecord(pre) || pre.type !== "ByteLevel") {
      throw bad(`pre_tokenizer must be ByteLevel, got ${JSON.stringify(isRecord(pre) ? pre.type : pre)}`);
    }
    if (pre.add_prefix_space === true) throw bad("add_prefix_space: true is not supported");
    if (pre.use_regex === false) throw bad("use_regex: false is not supported");
    if (!isRecord(model.vocab)) throw bad("model.vocab must be an object of token → id");
    if (!Array.isArray(model.merges)) throw bad("model.merges must be an array");
    const merges = model.merges.map((m: unknown, i: number) => mergePair(m, `${where}: model.merges[${i}]`));
    const added = j.added_tokens ?? [];
    if (!Array.isArray(added)) throw bad("added_tokens must be an array");
    const specials: Record<string, number> = {};
    added.forEach((t: unknown, i: number) => {
      if (!isRecord(t) || typeof t.content !== "string" || typeof t.id !== "number") {
        throw bad(`added_tokens[${i}] needs a string "content" and a number "id"`);
      }
      specials[t.content] = t.id;
    });
    return new BPETokenizer(model.vocab as Record<string, number>, merges, specials);
  }

  /** Restores a BPETokenizer from {@link BPETokenizer.toJSON}'s output (an object or its JSON text). */
  static fromJSON(json: unknown): BPETokenizer {
    const j = typeof json === "string" ? JSON.parse(json) : json;
    if (!isRecord(j) || j.type !== "bpe" || !isRecord(j.vocab) || !Array.isArray(j.merges)) {
      throw new Error(`BPETokenizer.fromJSON: expected {type: "bpe", vocab, merges, specials}`);
    }
    const { vocab, merges, specials = {} } = j as unknown as BPETokenizerJSON;
    return new BPETokenizer(vocab, merges, specials);
  }

  /**
   * Text to ids, optionally wrapped in BOS/EOS. Special tokens are recognised only when
   * `opts.allowedSpecial` names them (or is `"all"`); naming one this tokenizer lacks throws.
   */
  encode(text: string, opts: BPEEncodeOptions = {}): number[] {
    if (typeof text !== "string") raise(`BPETokenizer.encode: expected a string, got ${typeof text}`);
    const ids = opts.bos ? [this.bos] : [];
    const allowed = opts.allowedSpecial === "all" ? this.#specials.keys() : opts.allowedSpecial ?? [];
    const specials = this.#specialPattern([...allowed]);
    let start = 0;
    for (const m of specials ? text.matchAll(specials) : []) {
      this.#encodeOrdinary(text.slice(start, m.index), ids);
      ids.push(this.#specials.get(m[0])!);
      start = m.index + m[0].length;
    }
    this.#encodeOrdinary(start ? text.slice(start) : text, ids);
    if (opts.eos) ids.push(this.eos);
    return ids;
  }

  /**
   * Ids to text. Bytes that do not form valid UTF-8 (say, ids that split a character) become U+FFFD.
   * Special tokens are skipped unless `opts.specials`, which writes their text (`<|endoftext|>`).
   * An id with no token throws.
   */
  decode(ids: Iterable<number>, opts: DecodeOptions = {}): string {
    const decoder = new TextDecoder(); // not fatal: invalid UTF-8 becomes U+FFFD
    let out = "", run: number[] = [];
    for (const id of ids) {
      const bytes = this.#bytes[id], special = this.#specialText.get(id);
      if (bytes) run.push(...bytes);
      else if (special === undefined) {
        const range = Number.isInteger(id) && id >= 0 && id < this.vocabSize
          ? "has no token"
          : `is outside the vocabulary 0..${this.vocabSize - 1}`;
        throw new Error(`BPETokenizer: id ${id} ${range}`);
      } else if (opts.specials) {
        out += decoder.decode(new Uint8Array(run)) + special;
        run = [];
      }
    }
    return out + decoder.decode(new Uint8Array(run)); // whole runs keep multi-byte characters together
  }

  /**
   * The vocabulary, merges and special tokens ({@link BPETokenizerJSON}); {@link BPETokenizer.fromJSON}
   * restores it. Typed as {@link TokenizerJSON} to satisfy the {@link Tokenizer} interface.
   */
  toJSON(): TokenizerJSON {
    // TokenizerJSON does not list the "bpe" form; the object is a BPETokenizerJSON.
    return structuredClone(this.#json) as unknown as TokenizerJSON;
  }

  /** A regex matching any of `names` (longest first, so a token that prefixes another loses). */
  #specialPattern(names: string[]): RegExp | null {
    const bad = names.findIndex((n) => !this.#specials.has(n));
    if (bad >= 0) {
      raise(`BPETokenizer.encode: ${JSON.stringify(names[bad])} is not a special token of this tokenizer`);
    }
    if (!names.length) return null;
    return new RegExp([...names].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"), "g");
  }

  /** Appends the ids of text with no special tokens in it. */
  #encodeOrdinary(text: string, out: number[]): void {
    for (const [piece] of text.matchAll(PIECE)) {
      let ids = this.#cache.get(piece);
      if (!ids) {
        ids = this.#merge(Array.from(UTF8.encode(piece), (b) => this.#byteIds[b]));
        if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
        this.#cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /**
   * GPT-2's merge loop: find the lowest-ranked adjacent pair, merge every occurrence of it left to right,
   * repeat until no adjacent pair has a rank.
   */
  #merge(word: number[]): number[] {
    while (word.length > 1) {
      let best = Infinity, left = 0, right = 0;
      for (let i = 0; i + 1 < word.length; i++) {
        const rank = this.#ranks.get(word[i] * this.vocabSize + word[i + 1]);
        if (rank !== undefined && rank < best) [best, left, right] = [rank, word[i], word[i + 1]];
      }
      if (best === Infinity) break;
      const merged = this.#mergedIds[best], next: number[] = [];
      for (let i = 0; i < word.length; i++) {
        const pair = word[i] === left && word[i + 1] === right;
        next.push(pair ? merged : word[i]);
        if (pair) i++; // skip its right half
      }
      word = next;
    }
    return word;
  }
}

/**
 * Loads a {@link BPETokenizer} from a folder holding `tokenizer.json` (preferred) or `vocab.json` and
 * `merges.txt`. Needs read permission for the folder; throws naming the folder and the files it looked
 * for when neither form is there.
 */
export async function loadTokenizer(dir: string): Promise<BPETokenizer> {
  needDenoFs("loadTokenizer");
  const path = (name: string) => `${dir.replace(/[\/\\]+$/, "")}/${name}`;
  const read = (name: string): Promise<string | undefined> =>
    Deno.readTextFile(path(name)).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw new Error(`loadTokenizer: cannot read ${path(name)}: ${(e as Error).message}`);
    });
  const parse = (name: string, text: string) =>
    parseJson(text, (why) => `loadTokenizer: ${path(name)} is not valid JSON: ${why}`);
  const json = await read("tokenizer.json");
  if (json !== undefined) return BPETokenizer.fromTokenizerJson(parse("tokenizer.json", json));
  const [vocab, merges] = await Promise.all([read("vocab.json"), read("merges.txt")]);
  if (vocab !== undefined && merges !== undefined) {
    return BPETokenizer.fromVocabAndMerges(parse("vocab.json", vocab) as Record<string, number>, merges);
  }
  const half = vocab === undefined ? "vocab.json" : "merges.txt";
  const why = vocab !== undefined || merges !== undefined ? ` (${half} is missing)` : "";
  throw new Error(`loadTokenizer: ${dir} holds neither tokenizer.json nor vocab.json + merges.txt${why}`);
}
