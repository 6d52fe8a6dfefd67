import assert from "node:assert/strict";
import { ByteTokenizer, CharTokenizer, type Tokenizer, tokenizerFromJSON } from "../nn/tokenizer.ts";

Deno.test("ByteTokenizer: UTF-8 ids, specials, round trip", () => {
  const t = new ByteTokenizer();
  assert.deepEqual([t.vocabSize, t.bos, t.eos, t.pad], [259, 256, 257, 258]);
  assert.deepEqual(t.encode("hi"), [104, 105]);
  assert.deepEqual(t.encode("é", { bos: true, eos: true }), [256, 0xc3, 0xa9, 257]);
  assert.deepEqual(t.encode(""), []);
  const s = "naïve 🙂 café";
  assert.equal(t.decode(t.encode(s, { bos: true, eos: true })), s);
  assert.equal(t.decode([256, 104, 105, 257, 258]), "hi");
  assert.equal(t.decode([256, 0xc3, 0xa9, 257, 258], { specials: true }), "<|bos|>é<|eos|><|pad|>");
  assert.equal(t.decode(new Set([0xff, 104])), "\ufffdh"); // invalid UTF-8 becomes U+FFFD
});

Deno.test("ByteTokenizer: bad ids and JSON", () => {
  const t = new ByteTokenizer();
  assert.throws(() => t.decode([259]), /ByteTokenizer: id 259 is outside the vocabulary 0\.\.258/);
  assert.throws(() => t.decode([-1]), /id -1 is outside/);
  assert.throws(() => t.decode([1.5]), /id 1\.5 is outside/);
  assert.deepEqual(t.toJSON(), { type: "byte" });
  assert.ok(ByteTokenizer.fromJSON(JSON.parse(JSON.stringify(t))) instanceof ByteTokenizer);
  assert.throws(() => ByteTokenizer.fromJSON({ type: "char" }), /expected \{type: "byte"\}/);
  assert.throws(() => ByteTokenizer.fromJSON(null), /expected/);
});

Deno.test("CharTokenizer: sorted chars after PAD/BOS/EOS", () => {
  const t = CharTokenizer.fromCorpus("banana bread");
  assert.deepEqual(t.chars, [" ", "a", "b", "d", "e", "n", "r"]);
  assert.deepEqual([t.pad, t.bos, t.eos, t.vocabSize], [0, 1, 2, 10]);
  assert.deepEqual(t.encode("bad", { bos: true, eos: true }), [1, 5, 4, 6, 2]);
  assert.deepEqual(t.encode("a b"), [4, 3, 5]);
  assert.equal(t.decode([1, 5, 4, 6, 2, 0]), "bad");
  assert.equal(t.decode([1, 5, 2, 0], { specials: true }), "<|bos|>b<|eos|><|pad|>");
  const emoji = CharTokenizer.fromCorpus("a🙂");
  assert.deepEqual(emoji.encode("🙂a"), [4, 3]);
  assert.equal(emoji.decode([4, 3]), "🙂a");
});

Deno.test("CharTokenizer: unknown characters and bad ids", () => {
  const t = CharTokenizer.fromCorpus("abc");
  assert.throws(() => t.encode("abz"), /CharTokenizer: unknown character "z" \(U\+007A\) at position 2/);
  assert.throws(() => t.encode("🙂x"), /unknown character "🙂" \(U\+1F642\) at position 0/);
  assert.throws(() => t.encode("a🙂x"), /"🙂" .* at position 1/);
  assert.throws(() => t.decode([6]), /CharTokenizer: id 6 is outside the vocabulary 0\.\.5/);
});

Deno.test("CharTokenizer: JSON round trip and validation", () => {
  const t = CharTokenizer.fromCorpus("hello world");
  const back = CharTokenizer.fromJSON(JSON.parse(JSON.stringify(t)));
  assert.deepEqual(back.chars, t.chars);
  assert.deepEqual(back.encode("low"), t.encode("low"));
  assert.throws(
    () => CharTokenizer.fromJSON({ type: "byte" }),
    /expected \{type: "char", chars: string\[\]\}/,
  );
  assert.throws(() => CharTokenizer.fromJSON({ type: "char", chars: "abc" }), /expected/);
  assert.throws(
    () => CharTokenizer.fromJSON({ type: "char", chars: ["a", "bc"] }),
    /"bc" is not a single char/,
  );
  assert.throws(
    () => CharTokenizer.fromJSON({ type: "char", chars: ["a", 1] }),
    /1 is not a single character/,
  );
  assert.throws(() => CharTokenizer.fromJSON({ type: "char", chars: ["a", "a"] }), /duplicate characters/);
});

Deno.test("tokenizerFromJSON dispatches on type", () => {
  const toks: Tokenizer[] = [new ByteTokenizer(), CharTokenizer.fromCorpus("xyz")];
  for (const t of toks) {
    const back = tokenizerFromJSON(JSON.stringify(t));
    assert.equal(back.constructor, t.constructor);
    assert.equal(back.vocabSize, t.vocabSize);
    assert.equal(back.decode(back.encode("zy", { eos: true })), "zy");
  }
  assert.throws(() => tokenizerFromJSON({ type: "bpe" }), /unknown tokenizer type "bpe"/);
  assert.throws(() => tokenizerFromJSON(null), /unknown tokenizer type undefined/);
});
