// Hostile inputs to train.ts's flags, GPT configs, checkpoints and preference data: each is refused
// with an error of the right type whose message names what is wrong.
import assert from "node:assert/strict";
import { DPOTrainer, encodePairs, GPT, loadSafetensors, saveSafetensors } from "../mod.ts";
import { parseFlags } from "../train/args.ts";

/** Asserts that `f` throws a `type` whose message contains `fragment`. */
function refuses(f: () => unknown, type: ErrorConstructor, fragment: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof type, `${e} is not a ${type.name}`);
    assert.ok((e as Error).message.includes(fragment), `"${(e as Error).message}" lacks "${fragment}"`);
    return true;
  });
}

Deno.test("train.ts flags: bad values and combinations are refused before any work, naming the range", () => {
  const table: [string[], string][] = [
    [["--beta", "-1"], "--beta must be > 0 and ≤ 100, got -1"],
    [["--beta", "1e400"], "--beta must be > 0 and ≤ 100, got 1e400"],
    [["--beta", "1e38"], "--beta must be > 0 and ≤ 100, got 1e38"],
    [["--beta", "0x10"], '--beta must be > 0 and ≤ 100, got "0x10"'],
    [["--beta", ""], '--beta must be > 0 and ≤ 100, got ""'],
    [["--lr", "NaN"], '--lr must be > 0 and ≤ 1, got "NaN"'],
    [["--lr", "Infinity"], '--lr must be > 0 and ≤ 1, got "Infinity"'],
    [["--label-smoothing", "0.5"], "--label-smoothing must be ≥ 0 and < 0.5, got 0.5"],
    [["--steps", "2.5"], "--steps must be an integer from 1 to 1000000, got 2.5"],
    [["--steps", "-3"], "--steps must be an integer from 1 to 1000000, got -3"],
    [["--batch-size", "0"], "--batch-size must be an integer from 1 to 65536, got 0"],
    [["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"],
    [["--sweep-beta", "0.1,-2"], "--sweep-beta must be > 0 and ≤ 100 (comma-separated), got -2"],
    [["--sweep-beta", "0.1,0.5", "--beta", "0.2"], "--beta is ignored with --sweep-beta"],
    [["--compare-rlhf", "--beta", "0.2"], "--beta is ignored by --compare-rlhf"],
    [["--data", "x.jsonl", "--quick"], "--quick is ignored with --data"],
    [["--data", "x.jsonl", "--sweep-beta", "0.1,1"], "--sweep-beta is ignored with --data"],
    [["--loss", "simpo", "--precompute-ref"], "--precompute-ref is ignored with --loss simpo"],
    [["--resume"], "--resume needs --out DIR"],
    [["--resume", "--out", "/nonexistent/run"], "/nonexistent/run holds no run to resume"],
    [["--backend", "tpu"], '--backend must be cpu, webgpu or auto, got "tpu"'],
    [["--bogus"], "--bogus"],
  ];
  for (const [argv, fragment] of table) refuses(() => parseFlags(argv), Error, fragment);
});

Deno.test("train.ts flags: a negative number is a value, and good values pass", () => {
  assert.equal(parseFlags(["--beta", "0.5", "--seed", "7"])!.beta, 0.5);
  refuses(() => parseFlags(["--beta", "-.5"]), Error, "got -.5");
  assert.deepEqual(parseFlags(["--sweep-beta", "0.1,1"])!.betas, [0.1, 1]);
});

Deno.test("GPT config: every size must be a positive integer and nEmbd divisible by nHead", () => {
  const ok = { vocabSize: 10, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
  const table: [Partial<typeof ok>, string][] = [
    [{ vocabSize: 0 }, "config.vocabSize must be a positive integer, got 0"],
    [{ blockSize: 2.5 }, "config.blockSize must be a positive integer, got 2.5"],
    [{ nLayer: NaN }, "config.nLayer must be a positive integer, got NaN"],
    [{ nHead: -1 }, "config.nHead must be a positive integer, got -1"],
    [{ nEmbd: 7 }, "nEmbd 7 is not divisible by nHead 2"],
  ];
  for (const [bad, fragment] of table) refuses(() => new GPT({ ...ok, ...bad }), RangeError, fragment);
});

Deno.test("checkpoints: names, shapes, optimizer state and step are checked before anything loads", async () => {
  const cfg = { vocabSize: 10, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
  const pair = { prompt: [1, 2], chosen: [3], rejected: [4] };
  const make = (c = cfg) =>
    new DPOTrainer({
      policy: new GPT(c),
      train: [pair, pair],
      config: { beta: 0.1, lr: 1e-3, steps: 4, batchSize: 2, padId: 0 },
    });
  const src = make();
  await src.step();
  const { tensors, metadata } = src.checkpoint();
  const wide = make({ ...cfg, nEmbd: 16 }).checkpoint();
  const table: [Record<string, unknown>, Record<string, string>, string][] = [
    [tensors, { ...metadata, step: "" }, 'has step "", not a step count in 0..4'],
    [tensors, { shuffle: metadata.shuffle }, "has step undefined"],
    [tensors, { ...metadata, step: "9" }, 'has step "9"'],
    [tensors, { ...metadata, shuffle: "{" }, "has no shuffle state"],
    [tensors, { ...metadata, shuffle: '{"draws":1,"order":[7]}' }, "shuffle state for other training pairs"],
    [wide.tensors, metadata, "does not fit the policy"],
    [{ ...tensors, "optimizer.nope.m": tensors["transformer.wte.weight"] }, metadata, "optimizer.nope.m"],
  ];
  for (const [t, m, fragment] of table) {
    const dst = make();
    refuses(() => dst.restore(t as typeof tensors, m, "x.safetensors"), Error, fragment);
    assert.equal(dst.stepCount, 0, fragment);
  }
  // A file whose untied lm_head.weight differs from the token embedding is refused when read.
  const bytes = await saveSafetensors({
    ...src.policy.stateDict(),
    "lm_head.weight": wide.tensors["transformer.wte.weight"],
  });
  refuses(() => loadSafetensors(bytes, "h.safetensors"), Error, "h.safetensors: lm_head.weight differs");
});

Deno.test("data: pairs identical after truncation are dropped with a counted warning", () => {
  const warn = console.warn, said: string[] = [];
  console.warn = (s: string) => said.push(s);
  try {
    const enc = (s: string) => [...s].map((c) => c.charCodeAt(0));
    const pairs = [
      { prompt: "p", chosen: "abcX", rejected: "abcY" }, // identical once cut to 4 tokens
      { prompt: "p", chosen: "aX", rejected: "aY" },
    ];
    const r = encodePairs(pairs, enc, 4, undefined, "d.jsonl");
    assert.equal(r.pairs.length, 1);
    assert.equal(r.identical, 1);
    assert.match(said.join("\n"), /d\.jsonl: dropped 1 of 2 pairs whose chosen and rejected are identical/);
  } finally {
    console.warn = warn;
  }
});
