import assert from "node:assert/strict";
import { rng } from "../tensor/mod.ts";
import {
  bestAchievableScore,
  generateCorpus,
  generateSentence,
  promptOf,
  sentimentScore,
  VALENCE,
  WORDS,
} from "../train/sentiment.ts";

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

Deno.test("rng is deterministic, seed-dependent and in [0, 1)", () => {
  const a = rng(42), b = rng(42), c = rng(43);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => b()));
  assert.notEqual(xs[0], c());
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  assert.equal(rng(1)(), 0.6270739405881613); // mulberry32's known first output for seed 1
});

Deno.test("sentimentScore on hand-worked sentences", () => {
  close(sentimentScore("the movie was great ."), Math.tanh(1)); // 2 / 2
  close(sentimentScore("the plot was not boring ."), Math.tanh(0.75)); // +1.5 / 2
  close(sentimentScore("the film was good but the ending was awful ."), Math.tanh(-0.5)); // (1 - 2) / 2
  close(sentimentScore("the acting felt long and the story was quiet ."), 0);
  close(sentimentScore("The CAST was Wonderful, and lovely!"), Math.tanh(1.75)); // (2 + 1.5) / 2
  close(sentimentScore("the cast was not really good and great ."), Math.tanh(0.5)); // (-1 + 2) / 2
  close(sentimentScore("not long and good"), Math.tanh(0.5)); // "long" uses up the negation
  close(sentimentScore("the film was never dull but not fun"), Math.tanh(0)); // +1 - 1
  close(sentimentScore(""), 0);
  close(sentimentScore("zzz qqq"), 0);
  close(sentimentScore("great ".repeat(5)), Math.tanh(5));
  assert.equal(sentimentScore("great ".repeat(50)), 1); // bounded: tanh saturates in floating point
  assert.equal(sentimentScore("awful ".repeat(50)), -1);
});

Deno.test("VALENCE is documented and covers the grammar's adjectives", () => {
  assert.equal(VALENCE.great, 2);
  assert.equal(VALENCE.good, 1);
  assert.equal(VALENCE.fine, 0.5);
  assert.equal(VALENCE.bad, -1);
  assert.equal(VALENCE.awful, -2);
  const corpus = generateCorpus(500, 7);
  const known = new Set([
    ...Object.keys(VALENCE),
    ...Object.values(WORDS).flat().flatMap((w) => w.split(" ")),
    "the",
    "and",
    "but",
    ".",
  ]);
  for (const s of corpus) for (const w of s.split(" ")) assert.ok(known.has(w), `unknown word ${w} in ${s}`);
});

Deno.test("generateCorpus is deterministic and well-shaped", () => {
  const a = generateCorpus(2000, 3);
  assert.deepEqual(a, generateCorpus(2000, 3));
  assert.notDeepEqual(a.slice(0, 10), generateCorpus(10, 4));
  assert.deepEqual(generateCorpus(5, 3), a.slice(0, 5));
  for (const s of a) {
    assert.match(s, /^[a-z ]+ \.$/);
    const n = s.split(" ").length - 1;
    assert.ok(n >= 6 && n <= 14, `${n} words: ${s}`);
  }
  assert.ok(new Set(a).size > 1900);
  const scores = a.map(sentimentScore);
  const pos = scores.filter((x) => x > 0.1).length, neg = scores.filter((x) => x < -0.1).length;
  const neutral = scores.filter((x) => x === 0).length;
  assert.ok(pos > 600 && neg > 600 && Math.abs(pos - neg) < 250, `pos ${pos} neg ${neg}`);
  assert.ok(neutral > 200, `neutral ${neutral}`);
  assert.ok(a.some((s) => s.includes(" but ")) && a.some((s) => s.includes(" not ")));
  assert.ok(Math.abs(scores.reduce((x, y) => x + y) / scores.length) < 0.1);
  assert.equal(generateSentence(rng(9)), generateSentence(rng(9)));
});

Deno.test("bestAchievableScore is the best corpus score", () => {
  assert.equal(bestAchievableScore(["the film was bad .", "the film was good ."]), Math.tanh(0.5));
  assert.equal(bestAchievableScore([]), -Infinity);
  const best = bestAchievableScore(generateCorpus(2000, 1));
  assert.ok(best > 0.99 && best < 1);
});

Deno.test("promptOf returns a word prefix", () => {
  const s = "the movie was really great and the acting felt warm .";
  assert.equal(promptOf(s), "the movie");
  assert.equal(promptOf(s, 3), "the movie was");
  assert.equal(s.slice(promptOf(s, 3).length), " really great and the acting felt warm .");
  for (const c of generateCorpus(100, 5)) {
    const p = promptOf(c, 2);
    assert.ok(c.startsWith(p + " ") && p.split(" ").length === 2);
  }
  assert.throws(() => promptOf("the movie .", 3), /nWords 3 must be in 1\.\.2/);
  assert.throws(() => promptOf(s, 0), /nWords 0/);
  assert.throws(() => promptOf(s, 1.5), /nWords 1\.5/);
});
