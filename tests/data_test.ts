import assert from "node:assert/strict";
import {
  type EncodedPair,
  encodePairs,
  loadPreferenceJsonl,
  parsePreferenceJsonl,
  renderChat,
  toJsonl,
  truncatePair,
} from "../dpo/data.ts";

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

Deno.test("parse: pairs, blank lines, extra keys, identical pairs skipped", () => {
  const text = [
    `{"prompt":"the movie","chosen":" was great .","rejected":" was bad .","score":1}`,
    "",
    "   ",
    `{"prompt":"","chosen":"x","rejected":"x"}`,
    `{"prompt":"a","chosen":"b","rejected":"c"}\r`,
  ].join("\n");
  const { pairs, skippedIdentical } = parsePreferenceJsonl(text, "p.jsonl");
  assert.equal(skippedIdentical, 1);
  assert.deepEqual(pairs, [
    { prompt: "the movie", chosen: " was great .", rejected: " was bad ." },
    { prompt: "a", chosen: "b", rejected: "c" },
  ]);
});

Deno.test("parse errors name the source and line", () => {
  const bad = (lines: string[], re: RegExp) =>
    assert.throws(() => parsePreferenceJsonl(lines.join("\n"), "p.jsonl"), re);
  const ok = `{"prompt":"a","chosen":"b","rejected":"c"}`;
  bad([ok, "", "{nope"], /p\.jsonl:3: invalid JSON/);
  bad(["[1,2]"], /p\.jsonl:1: not a JSON object/);
  bad([ok, "null"], /p\.jsonl:2: not a JSON object/);
  bad([ok, `"str"`], /p\.jsonl:2: not a JSON object/);
  bad([`{"prompt":"a","rejected":"c"}`], /p\.jsonl:1: missing "chosen"/);
  bad([`{"prompt":"a","chosen":"b"}`], /p\.jsonl:1: missing "rejected"/);
  bad(
    [`{"prompt":1,"chosen":"b","rejected":"c"}`],
    /:1: "prompt" must be a string or a list of messages, got number/,
  );
  bad(
    [`{"prompt":"a","chosen":"b","rejected":null}`],
    /"rejected" must be a string or a list of messages, got null/,
  );
  bad([ok, `{"prompt":"a","chosen":"","rejected":"c"}`], /p\.jsonl:2: "chosen" is an empty completion/);
  bad([`{"prompt":"a","chosen":"b","rejected":""}`], /p\.jsonl:1: "rejected" is an empty completion/);
  bad([""], /p\.jsonl: no preference pairs \(0 skipped/);
  bad([`{"prompt":"a","chosen":"b","rejected":"b"}`], /p\.jsonl: no preference pairs \(1 skipped/);
});

Deno.test("toJsonl round trips through the parser and the file loader", async () => {
  const pairs = [{ prompt: 'p\n"q"', chosen: "ü 🙂", rejected: "x" }, {
    prompt: "",
    chosen: "a",
    rejected: "b",
  }];
  const text = toJsonl(pairs);
  assert.equal(text.split("\n").length, 3);
  assert.ok(text.endsWith("\n"));
  assert.deepEqual(parsePreferenceJsonl(text, "t").pairs, pairs);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.jsonl`, text);
    assert.deepEqual(await loadPreferenceJsonl(`${dir}/p.jsonl`), { pairs, skippedIdentical: 0 });
    await Deno.writeTextFile(`${dir}/bad.jsonl`, "{}\n");
    await assert.rejects(
      loadPreferenceJsonl(`${dir}/bad.jsonl`),
      new RegExp(`${dir}/bad\\.jsonl:1: missing`),
    );
    await assert.rejects(
      loadPreferenceJsonl(`${dir}/none.jsonl`),
      new RegExp(`cannot read ${dir}/none\\.jsonl`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("truncatePair: short pairs are untouched", () => {
  const p: EncodedPair = { prompt: [1, 2, 3], chosen: [4, 5], rejected: [6, 7, 8] };
  assert.deepEqual(truncatePair(p, 6), { pair: p, truncated: false });
});

Deno.test("truncatePair: prompt keeps its end first, then completions keep their start", () => {
  // prompt 8 + longer 3 = 11 > 10: prompt → last 5 (default 10/2); 5 + 3 fits, completions untouched.
  const p = { prompt: range(0, 8), chosen: [100, 101, 102], rejected: [200] };
  assert.deepEqual(truncatePair(p, 10), {
    pair: { prompt: [3, 4, 5, 6, 7], chosen: [100, 101, 102], rejected: [200] },
    truncated: true,
  });
  // prompt 8 + longer 9 > 10: prompt → last 4 (explicit), completions → first 10 - 4 = 6.
  const q = { prompt: range(0, 8), chosen: range(100, 109), rejected: range(200, 203) };
  assert.deepEqual(truncatePair(q, 10, 4).pair, {
    prompt: [4, 5, 6, 7],
    chosen: range(100, 106),
    rejected: range(200, 203),
  });
  // A short prompt is kept whole; the completion gets the rest.
  const r = { prompt: [1, 2], chosen: range(100, 120), rejected: range(200, 220) };
  assert.deepEqual(truncatePair(r, 10).pair, {
    prompt: [1, 2],
    chosen: range(100, 108),
    rejected: range(200, 208),
  });
  // maxPromptLength = maxLength - 1 still leaves each completion one token.
  const s = truncatePair({ prompt: range(0, 9), chosen: [100, 101], rejected: [200] }, 5, 4).pair;
  assert.deepEqual(s, { prompt: [5, 6, 7, 8], chosen: [100], rejected: [200] });
});

Deno.test("truncatePair: invalid arguments", () => {
  const p = { prompt: [1], chosen: [2], rejected: [3] };
  assert.throws(() => truncatePair(p, 1), /maxLength 1 < 2/);
  assert.throws(() => truncatePair(p, 2.5), /maxLength 2\.5/);
  assert.throws(() => truncatePair(p, 4, 4), /maxPromptLength 4 must be in 1\.\.3/);
  assert.throws(() => truncatePair(p, 4, 0), /maxPromptLength 0 must be in/);
  assert.throws(() => truncatePair({ ...p, chosen: [] }, 4), /empty completion/);
});

Deno.test("encodePairs encodes parts and counts truncations", () => {
  const encode = (s: string, part: "prompt" | "completion") =>
    part === "prompt"
      ? [0, ...[...s].map((c) => c.charCodeAt(0))]
      : [...[...s].map((c) => c.charCodeAt(0)), 1];
  const pairs = [{ prompt: "ab", chosen: "c", rejected: "de" }, {
    prompt: "abcdef",
    chosen: "ghijkl",
    rejected: "m",
  }];
  const { pairs: out, truncated } = encodePairs(pairs, encode, 8);
  assert.equal(truncated, 1);
  assert.deepEqual(out[0], { prompt: [0, 97, 98], chosen: [99, 1], rejected: [100, 101, 1] });
  // prompt 7 + 7 > 8: prompt → last 4 = "cdef", completions → first 4.
  assert.deepEqual(out[1], { prompt: [99, 100, 101, 102], chosen: [103, 104, 105, 106], rejected: [109, 1] });
  assert.throws(
    () => encodePairs(pairs, (s) => s === "c" ? [] : [1], 8),
    /pair 0 has a completion that encodes to no/,
  );
});

Deno.test("parse: a byte-order mark and CRLF line ends are accepted", () => {
  const text = "\uFEFF" +
    `{"prompt":"a","chosen":"b","rejected":"c"}\r\n\r\n{"prompt":"d","chosen":"e","rejected":"f"}\r\n`;
  assert.deepEqual(parsePreferenceJsonl(text, "p.jsonl").pairs, [
    { prompt: "a", chosen: "b", rejected: "c" },
    { prompt: "d", chosen: "e", rejected: "f" },
  ]);
  // Line numbers still count CRLF lines.
  assert.throws(
    () => parsePreferenceJsonl("\uFEFF{}\r\n{nope\r\n", "p.jsonl"),
    /p\.jsonl:1: missing "chosen"/,
  );
  assert.throws(
    () => parsePreferenceJsonl(`{"chosen":"a","rejected":"b"}\r\n\r\n{nope\r\n`, "p.jsonl"),
    /p\.jsonl:3: invalid JSON/,
  );
});

const line = (o: unknown) => JSON.stringify(o);
const parseOne = (o: unknown) => parsePreferenceJsonl(line(o), "t.jsonl").pairs[0];

Deno.test("implicit prompt: the shared start, as TRL's extract_prompt splits it", () => {
  // The space before the first difference goes to the completions.
  assert.deepEqual(parseOne({ chosen: "The sky is blue.", rejected: "The sky is green." }), {
    prompt: "The sky is",
    chosen: " blue.",
    rejected: " green.",
  });
  // Without a space there, the split is at the first difference, even inside a word.
  assert.deepEqual(parseOne({ chosen: "I love it", rejected: "I loathe it" }), {
    prompt: "I lo",
    chosen: "ve it",
    rejected: "athe it",
  });
  // Nothing shared: an empty prompt.
  assert.deepEqual(parseOne({ chosen: "yes", rejected: "no" }), {
    prompt: "",
    chosen: "yes",
    rejected: "no",
  });
  // One a prefix of the other: the last shared character goes back to the completions.
  assert.deepEqual(parseOne({ chosen: "abc", rejected: "abcd" }), {
    prompt: "ab",
    chosen: "c",
    rejected: "cd",
  });
  // Code points, not UTF-16 units: a shared emoji's surrogates are not split from each other.
  assert.deepEqual(parseOne({ chosen: "🙂😀", rejected: "🙂😃" }), {
    prompt: "🙂",
    chosen: "😀",
    rejected: "😃",
  });
  // Identical completions are skipped like any identical pair.
  const r = parsePreferenceJsonl(
    [line({ chosen: "same", rejected: "same" }), line({ chosen: "a", rejected: "b" })].join("\n"),
    "t",
  );
  assert.equal(r.skippedIdentical, 1);
});

const user = (content: string) => ({ role: "user", content });
const bot = (content: string) => ({ role: "assistant", content });

Deno.test("conversational: the chat template, with the assistant header ending the prompt", () => {
  assert.equal(
    renderChat([{ role: "system", content: "Be brief." }, user("Hi")]),
    "<|system|>\nBe brief.\n<|user|>\nHi\n",
  );
  assert.equal(renderChat([]), "");
  assert.deepEqual(parseOne({ prompt: [user("Sky?")], chosen: [bot("Blue.")], rejected: [bot("Green.")] }), {
    prompt: "<|user|>\nSky?\n<|assistant|>\n",
    chosen: "Blue.\n",
    rejected: "Green.\n",
  });
  // Completions that start with different roles keep their headers.
  assert.deepEqual(parseOne({ prompt: [], chosen: [bot("a")], rejected: [user("b")] }), {
    prompt: "",
    chosen: "<|assistant|>\na\n",
    rejected: "<|user|>\nb\n",
  });
  // Extra keys on messages are ignored.
  assert.deepEqual(
    parseOne({ prompt: [{ ...user("q"), name: "x" }], chosen: [bot("a")], rejected: [bot("b")] }).prompt,
    "<|user|>\nq\n<|assistant|>\n",
  );
});

Deno.test("all three formats give the same pair when they mean the same thing", () => {
  const conversation = { prompt: [user("Sky?")], chosen: [bot("Blue.")], rejected: [bot("Green.")] };
  const implicitConversation = {
    chosen: [user("Sky?"), bot("Blue.")],
    rejected: [user("Sky?"), bot("Green.")],
  };
  const standard = { prompt: "<|user|>\nSky?\n<|assistant|>\n", chosen: "Blue.\n", rejected: "Green.\n" };
  const implicitText = {
    chosen: standard.prompt + standard.chosen,
    rejected: standard.prompt + standard.rejected,
  };
  const text = [conversation, implicitConversation, standard, implicitText].map(line).join("\n");
  const { pairs } = parsePreferenceJsonl(text, "t.jsonl");
  assert.equal(pairs.length, 4);
  for (const p of pairs) assert.deepEqual(p, standard);
  // Conversations sharing more than one turn: every shared message is prompt.
  const long = parseOne({
    chosen: [user("a"), bot("b"), user("c"), bot("yes")],
    rejected: [user("a"), bot("b"), user("c"), bot("no")],
  });
  assert.deepEqual(
    long,
    parseOne({ prompt: [user("a"), bot("b"), user("c")], chosen: [bot("yes")], rejected: [bot("no")] }),
  );
  // One conversation a prefix of the other: the last shared message goes to the completions, as in TRL.
  assert.deepEqual(
    parseOne({ chosen: [user("q"), bot("a")], rejected: [user("q"), bot("a"), user("more")] }),
    {
      prompt: "<|user|>\nq\n<|assistant|>\n",
      chosen: "a\n",
      rejected: "a\n<|user|>\nmore\n",
    },
  );
  // toJsonl writes the rendered pairs back in the standard format.
  assert.deepEqual(parsePreferenceJsonl(toJsonl(pairs), "t").pairs, pairs);
});

Deno.test("conversational errors name the line, the field and the message", () => {
  const bad = (o: unknown, re: RegExp) =>
    assert.throws(() => parsePreferenceJsonl(`{"chosen":"a","rejected":"b"}\n` + line(o), "c.jsonl"), re);
  const ok = [bot("x")];
  bad(
    { chosen: [bot("a"), "hi"], rejected: ok },
    /c\.jsonl:2: "chosen"\[1\] must be a \{ role, content \} object/,
  );
  bad(
    { chosen: ok, rejected: [{ content: "a" }] },
    /c\.jsonl:2: "rejected"\[0\]\.role must be a non-empty string, got nothing/,
  );
  bad(
    { chosen: ok, rejected: [{ role: "", content: "a" }] },
    /"rejected"\[0\]\.role must be a non-empty string, got ""/,
  );
  bad(
    { prompt: [{ role: "user", content: 3 }], chosen: ok, rejected: ok },
    /c\.jsonl:2: "prompt"\[0\]\.content must be a string, got 3/,
  );
  bad({ prompt: [null], chosen: ok, rejected: ok }, /"prompt"\[0\] must be a \{ role, content \} object/);
  bad({ chosen: [], rejected: ok }, /c\.jsonl:2: "chosen" is an empty completion/);
  bad(
    { prompt: "p", chosen: ok, rejected: ok },
    /c\.jsonl:2: "prompt" is a string but "chosen" is a list of messages/,
  );
  bad({ chosen: ok, rejected: "b" }, /c\.jsonl:2: "rejected" is a string but "chosen" is a list of messages/);
  bad(
    { prompt: [user("q")], chosen: "a", rejected: "b" },
    /"prompt" is a list of messages but "chosen" is a string/,
  );
  bad(
    { chosen: { role: "user" }, rejected: ok },
    /c\.jsonl:2: "chosen" must be a string or a list of messages, got object/,
  );
});
