import assert from "node:assert/strict";
import {
  type EncodedPair,
  encodePairs,
  loadPreferenceJsonl,
  parsePreferenceJsonl,
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
  bad([`{"chosen":"b","rejected":"c"}`], /p\.jsonl:1: missing "prompt"/);
  bad([`{"prompt":"a","rejected":"c"}`], /p\.jsonl:1: missing "chosen"/);
  bad([`{"prompt":"a","chosen":"b"}`], /p\.jsonl:1: missing "rejected"/);
  bad([`{"prompt":1,"chosen":"b","rejected":"c"}`], /:1: "prompt" must be a string, got number/);
  bad(
    [`{"prompt":"a","chosen":[{"role":"user"}],"rejected":"c"}`],
    /"chosen" must be a string, got a list \(conversational/,
  );
  bad([`{"prompt":"a","chosen":"b","rejected":null}`], /"rejected" must be a string, got null/);
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
