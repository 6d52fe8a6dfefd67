/**
 * Tokenizers: {@link ByteTokenizer} (UTF-8 bytes, no training needed) and {@link CharTokenizer} (one id per
 * character of a corpus). Both share the {@link Tokenizer} interface and serialize to small JSON objects.
 * @module
 */

import { isRecord, parseJson, raise, typeName } from "../tensor/check.ts";

/** Options for {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend the BOS id. */
  bos?: boolean;
  /** Append the EOS id. */
  eos?: boolean;
}

/** Options for {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Render special ids as `<|bos|>`, `<|eos|>`, `<|pad|>` instead of skipping them (the default). */
  specials?: boolean;
}

/** The JSON form of a tokenizer: `{type: "byte"}` or `{type: "char", chars: [...]}`. */
export type TokenizerJSON = { type: "byte" } | { type: "char"; chars: string[] } | {
  type: "word";
  words: string[];
};

/** What the model code needs from a tokenizer. */
export interface Tokenizer {
  /** Number of ids, specials included; valid ids are 0..vocabSize-1. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id. */
  readonly bos: number;
  /** End-of-sequence id. */
  readonly eos: number;
  /** Padding id. */
  readonly pad: number;
  /** Text to ids, optionally wrapped in BOS/EOS. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Ids to text; specials are skipped unless `opts.specials`; an id outside the vocabulary throws. */
  decode(ids: Iterable<number>, opts?: DecodeOptions): string;
  /** A JSON-serializable description that {@link tokenizerFromJSON} restores. */
  toJSON(): TokenizerJSON;
}

function wrap(t: Tokenizer, ids: number[], opts: EncodeOptions): number[] {
  if (opts.bos) ids.unshift(t.bos);
  if (opts.eos) ids.push(t.eos);
  return ids;
}

/** Shared decode: validates ids and renders runs of ordinary ids with `show`, specials per `opts`. */
function decodeWith(t: Tokenizer, ids: Iterable<number>, opts: DecodeOptions, show: (r: number[]) => string) {
  let out = "", run: number[] = [];
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= t.vocabSize) {
      throw new Error(`${t.constructor.name}: id ${id} is outside the vocabulary 0..${t.vocabSize - 1}`);
    }
    if (id !== t.bos && id !== t.eos && id !== t.pad) run.push(id);
    else if (opts.specials) {
      out += show(run) + (id === t.bos ? "<|bos|>" : id === t.eos ? "<|eos|>" : "<|pad|>");
      run = [];
    }
  }
  return out + show(run); // whole runs keep multi-byte UTF-8 sequences together
}

/** The list `json[key]` of a `{type, [key]: [...]}` JSON form; otherwise the error of `who`'s fromJSON. */
function listFromJSON(json: unknown, type: string, key: string, who: string): string[] {
  const list = isRecord(json) && json.type === type ? json[key] : undefined;
  return Array.isArray(list) ? list : raise(`${who}.fromJSON: expected {type: "${type}", ${key}: string[]}`);
}

/** `text` if it is a string; an error naming the tokenizer's encode otherwise. */
const str = (who: string, text: unknown) =>
  typeof text === "string" ? text : raise(`${who}.encode: expected a string, got ${typeName(text)}`);

/**
 * UTF-8 bytes as ids 0..255, then BOS=256, EOS=257, PAD=258. Decoding invalid UTF-8 (a model may emit any
 * byte sequence) yields U+FFFD replacement characters rather than an error.
 */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize: number = 259;
  readonly bos: number = 256;
  readonly eos: number = 257;
  readonly pad: number = 258;
  encode(text: string, opts: EncodeOptions = {}): number[] {
    return wrap(this, [...new TextEncoder().encode(str("ByteTokenizer", text))], opts);
  }
  decode(ids: Iterable<number>, opts: DecodeOptions = {}): string {
    return decodeWith(this, ids, opts, (run) => new TextDecoder().decode(new Uint8Array(run)));
  }
  toJSON(): TokenizerJSON {
    return { type: "byte" };
  }
  /** Restores a ByteTokenizer from {@link ByteTokenizer.toJSON}'s output. */
  static fromJSON(json: unknown): ByteTokenizer {
    if ((json as TokenizerJSON)?.type !== "byte") raise(`ByteTokenizer.fromJSON: expected {type: "byte"}`);
    return new ByteTokenizer();
  }
}

/**
 * One id per distinct character (Unicode code point) of a corpus: PAD=0, BOS=1, EOS=2, then the sorted
 * characters from id 3. Encoding a character not in the corpus throws.
 */
export class CharTokenizer implements Tokenizer {
  readonly pad: number = 0;
  readonly bos: number = 1;
  readonly eos: number = 2;
  readonly vocabSize: number;
  /** The characters, in id order starting at id 3. */
  readonly chars: readonly string[];
  #ids: Map<string, number>;

  /** Builds from a list of distinct single characters (see {@link CharTokenizer.fromCorpus}). */
  constructor(chars: readonly string[]) {
    const bad = chars.findIndex((c) => typeof c !== "string" || [...c].length !== 1);
    if (bad >= 0) throw new Error(`CharTokenizer: ${JSON.stringify(chars[bad])} is not a single character`);
    this.chars = [...chars];
    this.#ids = new Map(chars.map((c, i) => [c, i + 3]));
    if (this.#ids.size !== chars.length) throw new Error("CharTokenizer: duplicate characters");
    this.vocabSize = chars.length + 3;
  }

  /** The sorted distinct characters of `text`. */
  static fromCorpus(text: string): CharTokenizer {
    return new CharTokenizer([...new Set(text)].sort());
  }

  /** Text to ids; throws naming the character and its (code point) position when it is not in the corpus. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const unknown = (c: string, pos: number) => {
      const code = "U+" + c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
      return raise(`CharTokenizer: unknown character ${JSON.stringify(c)} (${code}) at position ${pos}`);
    };
    const chars = str("CharTokenizer", text);
    return wrap(this, Array.from(chars, (c, pos) => this.#ids.get(c) ?? unknown(c, pos)), opts);
  }
  decode(ids: Iterable<number>, opts: DecodeOptions = {}): string {
    return decodeWith(this, ids, opts, (run) => run.map((id) => this.chars[id - 3]).join(""));
  }
  toJSON(): TokenizerJSON {
    return { type: "char", chars: [...this.chars] };
  }
  /** Restores a CharTokenizer from {@link CharTokenizer.toJSON}'s output, validating it. */
  static fromJSON(json: unknown): CharTokenizer {
    return new CharTokenizer(listFromJSON(json, "char", "chars", "CharTokenizer"));
  }
}

/**
 * One id per distinct space-separated word of a corpus: PAD=0, BOS=1, EOS=2, then the sorted words.
 * Decoding joins words with single spaces. Suits grammars with a small vocabulary (the built-in task).
 */
export class WordTokenizer implements Tokenizer {
  readonly pad: number = 0;
  readonly bos: number = 1;
  readonly eos: number = 2;
  readonly vocabSize: number;
  /** The words, in id order starting at id 3. */
  readonly words: readonly string[];
  #ids: Map<string, number>;

  /** Builds from distinct words without spaces. */
  constructor(words: readonly string[]) {
    if (words.some((w) => typeof w !== "string" || !w || /\s/.test(w))) {
      throw new Error("WordTokenizer: words must be non-empty strings without spaces");
    }
    this.words = [...words];
    this.#ids = new Map(words.map((w, i) => [w, i + 3]));
    if (this.#ids.size !== words.length) throw new Error("WordTokenizer: duplicate words");
    this.vocabSize = words.length + 3;
  }
  /** The sorted distinct words of `text`. */
  static fromCorpus(text: string): WordTokenizer {
    return new WordTokenizer([...new Set(text.split(/\s+/).filter(Boolean))].sort());
  }
  /** Text to ids; an unknown word throws naming it and its word position. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = str("WordTokenizer", text).split(/\s+/).filter(Boolean).map((w, pos) =>
      this.#ids.get(w) ?? raise(`WordTokenizer: unknown word ${JSON.stringify(w)} at word ${pos}`)
    );
    return wrap(this, ids, opts);
  }
  decode(ids: Iterable<number>, opts: DecodeOptions = {}): string {
    return decodeWith(this, ids, opts, (run) => run.map((id) => this.words[id - 3]).join(" "));
  }
  toJSON(): TokenizerJSON {
    return { type: "word", words: [...this.words] };
  }
  /** Restores a WordTokenizer from {@link WordTokenizer.toJSON}'s output. */
  static fromJSON(json: unknown): WordTokenizer {
    return new WordTokenizer(listFromJSON(json, "word", "words", "WordTokenizer"));
  }
}

/** Restores either tokenizer from its JSON form (an object or a JSON string). */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  const notJson = (why: string) => `tokenizerFromJSON: not valid JSON (${why})`;
  const j = (typeof json === "string" ? parseJson(json, notJson) : json) as { type?: unknown } | null;
  if (j?.type === "byte") return ByteTokenizer.fromJSON(j);
  if (j?.type === "char") return CharTokenizer.fromJSON(j);
  if (j?.type === "word") return WordTokenizer.fromJSON(j);
  throw new Error(`tokenizerFromJSON: unknown tokenizer type ${JSON.stringify(j?.type)}`);
}
