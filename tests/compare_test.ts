// End to end: `train.ts --compare-rlhf --quick` runs DPO, the reward model, PPO, PPO-GT and RLOO and
// writes compare.json and frontier.svg; the fluency check and the frontier's envelope, unit by unit.
import assert from "node:assert/strict";
import { runTrain } from "./util.ts";
import { generateCorpus, isGrammatical } from "../train/sentiment.ts";
import { upperEnvelope } from "../train/compare.ts";

const train = runTrain;

Deno.test("train.ts --compare-rlhf --quick: every method evaluated, costs and the frontier written", async () => {
  const dir = await Deno.makeTempDir();
  const r = await train("--compare-rlhf", "--quick", "--backend", "cpu", "--out", dir);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const report = JSON.parse(await Deno.readTextFile(`${dir}/compare.json`));
  const methods = ["DPO", "PPO", "PPO-GT", "RLOO"];
  for (const m of methods) {
    const pts = report.points.filter((p: { method: string }) => p.method === m);
    assert.ok(pts.length >= 2, `${m} has a start and a trained checkpoint`);
    for (const p of pts) {
      assert.ok(Number.isFinite(p.kl) && Number.isFinite(p.reward), `${m} ${p.setting} step ${p.step}`);
      assert.ok(p.fluency >= 0 && p.fluency <= 1, `${m} fluency ${p.fluency}`);
      assert.equal(typeof p.setting, "string");
      assert.ok(Number.isInteger(p.step));
    }
  }
  const acc = report.rewardModel.heldOutAccuracy;
  assert.ok(acc >= 0 && acc <= 1, `heldOutAccuracy ${acc}`);
  for (const m of [...methods, "reward model"]) {
    const c = report.cost[m];
    for (const k of ["seconds", "peakBytes", "modelsHeld", "generatedTokens", "trainedTokens"]) {
      assert.ok(Number.isFinite(c[k]) && c[k] >= 0, `cost.${m}.${k} = ${c[k]}`);
    }
  }
  assert.equal(report.cost.DPO.generatedTokens, 0, "DPO samples nothing while training");
  assert.ok(report.cost.PPO.generatedTokens > 0);
  assert.equal(report.cost.DPO.modelsHeld, 2);
  assert.equal(report.cost.PPO.modelsHeld, 4);
  const svg = await Deno.readTextFile(`${dir}/frontier.svg`);
  assert.match(svg, /^<svg[\s\S]*KL\(π ‖ π_ref\)[\s\S]*PPO-GT[\s\S]*<\/svg>\s*$/);
  assert.match(r.stdout, /cost per method[\s\S]*models held/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("isGrammatical accepts every grammar sentence and rejects reward hacks", () => {
  for (const s of generateCorpus(2000, 5)) assert.ok(isGrammatical(s), s);
  for (
    const s of [
      "the movie was great great superb .", // three adjectives
      "the movie was great", // no full stop
      "the plot is good but the cast was fun .", // "but" joins clauses of opposite sentiment
      "the ending felt cold music forgettable but plot boring .",
      "the acting seemed warm end thought brilliant and the camera work felt superb .",
    ]
  ) {
    assert.ok(!isGrammatical(s), s);
  }
  assert.ok(isGrammatical("in the end the plot is not boring and the cast was quite lovely ."));
});

Deno.test("upperEnvelope keeps the best reward within each KL budget", () => {
  assert.deepEqual(upperEnvelope([[3, 0.5], [0, 0], [1, 0.6], [2, 0.4], [4, 0.9]]), [[0, 0], [1, 0.6], [
    4,
    0.9,
  ]]);
});

Deno.test("train.ts --compare-rlhf --data skips PPO-GT and says why", async () => {
  const dir = await Deno.makeTempDir();
  const pairs = Array.from(
    { length: 20 },
    (_, i) => ({ prompt: `q${i}:`, chosen: " yes", rejected: " no!" }),
  );
  await Deno.writeTextFile(`${dir}/p.jsonl`, pairs.map((p) => JSON.stringify(p)).join("\n"));
  const r = await train(
    "--compare-rlhf",
    "--quick",
    "--data",
    `${dir}/p.jsonl`,
    "--batch-size",
    "4",
    "--backend",
    "cpu",
    "--out",
    dir,
  );
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /skipped PPO-GT: --data has no ground-truth scorer/);
  const report = JSON.parse(await Deno.readTextFile(`${dir}/compare.json`));
  const methods = new Set(report.points.map((p: { method: string }) => p.method));
  assert.deepEqual([...methods].sort(), ["DPO", "PPO"]);
  assert.ok(report.points.every((p: { fluency: number | null }) => p.fluency === null));
  await Deno.remove(dir, { recursive: true });
});
