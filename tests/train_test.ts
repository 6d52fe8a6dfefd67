// End to end: `train.ts --quick` runs every stage and writes every artifact; flags are validated.
import assert from "node:assert/strict";
import { runTrain } from "./util.ts";
import { decodeSafetensors, parsePreferenceJsonl } from "../mod.ts";

const train = runTrain;

Deno.test("train.ts --quick: SFT, preferences, DPO, evaluation and every artifact", async () => {
  const dir = await Deno.makeTempDir();
  const r = await train("--quick", "--backend", "cpu", "--out", dir);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const summary = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
  const res = summary.results[0];
  assert.equal(res.beta, 0.1);
  for (const k of ["referenceReward", "policyReward", "kl", "heldOutAccuracy"]) {
    assert.ok(Number.isFinite(res[k]), k);
  }
  assert.ok(res.heldOutAccuracy >= 0 && res.heldOutAccuracy <= 1);
  assert.ok(
    res.policyReward > res.referenceReward,
    `DPO raised the reward: ${res.referenceReward} → ${res.policyReward}`,
  );
  assert.equal(summary.backend, "cpu");

  const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  const dpo = lines.filter((m) => m.stage === "dpo");
  assert.equal(dpo.length, 40);
  for (
    const k of [
      "loss",
      "rewards/chosen",
      "rewards/accuracies",
      "rewards/margins",
      "logps/chosen",
      "grad_norm",
      "learning_rate",
      "tokens_per_s",
    ]
  ) {
    assert.ok(Number.isFinite(dpo[0][k]), k);
  }
  assert.ok(lines.some((m) => m.stage === "sft" && m.step === 1));
  assert.ok(dpo.at(-1).loss < dpo[0].loss, "DPO loss fell");

  const prefs = parsePreferenceJsonl(await Deno.readTextFile(`${dir}/prefs.jsonl`), "prefs.jsonl");
  assert.ok(prefs.pairs.length > 20);
  for (const f of ["sft", "dpo"]) {
    const st = decodeSafetensors(await Deno.readFile(`${dir}/${f}.safetensors`), f);
    assert.ok("transformer.wte.weight" in st.tensors, f);
  }
  assert.match(await Deno.readTextFile(`${dir}/curves.svg`), /^<svg[\s\S]*DPO loss[\s\S]*<\/svg>\s*$/);

  // --resume reuses the finished stages: no SFT progress this time, the same preferences.
  const again = await train("--quick", "--backend", "cpu", "--out", dir, "--resume", "--steps", "41");
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /SFT: reusing sft\.safetensors/);
  assert.doesNotMatch(again.stdout, /SFT \d+\/80/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train.ts --data aligns a byte-level model on a TRL-format file", async () => {
  const dir = await Deno.makeTempDir();
  const pairs = Array.from(
    { length: 12 },
    (_, i) => ({ prompt: `q${i}:`, chosen: " yes", rejected: " no!" }),
  );
  await Deno.writeTextFile(`${dir}/p.jsonl`, pairs.map((p) => JSON.stringify(p)).join("\n"));
  const r = await train(
    "--data",
    `${dir}/p.jsonl`,
    "--steps",
    "4",
    "--batch-size",
    "4",
    "--backend",
    "cpu",
    "--out",
    dir,
  );
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const summary = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
  assert.equal(summary.tokenizer, "byte");
  assert.equal(summary.pairs, 11); // one of 12 held out
  // The aligned model, as a pretrained folder (no tokenizer files: the byte tokenizer has none).
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(`${dir}/dpo`))).map((e) => e.name).sort(),
    ["config.json", "model.safetensors"],
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train.ts rejects bad flags and bad files with messages that name them", async () => {
  const help = await train("--help");
  assert.equal(help.code, 0);
  for (
    const f of [
      "--data",
      "--init",
      "--beta",
      "--loss",
      "--lr",
      "--steps",
      "--batch-size",
      "--precompute-ref",
      "--backend",
      "--seed",
      "--out",
      "--resume",
      "--quick",
      "--sweep-beta",
    ]
  ) {
    assert.ok(help.stdout.includes(f), f);
  }
  const unknown = await train("--bogus");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /--bogus/);
  const bad = await train("--beta", "abc", "--quick");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--beta must be > 0 and ≤ 100, got "abc"/);
  const loss = await train("--loss", "nope", "--quick");
  assert.match(loss.stderr, /--loss must be one of sigmoid/);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{oops\n');
  const data = await train("--data", `${dir}/bad.jsonl`, "--backend", "cpu", "--out", dir);
  assert.equal(data.code, 1);
  assert.match(data.stderr, /bad\.jsonl:2/);
  await Deno.remove(dir, { recursive: true });
});
