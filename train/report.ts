/**
 * The end of a run: summary.json, metrics.jsonl, curves.svg (and frontier.svg for a β sweep), and
 * the summary printed to the terminal.
 * @module
 */
import { getBackend } from "../mod.ts";
import { grid, lineChart } from "./svg.ts";
import type { Options } from "./args.ts";
import { frontierChart as methodFrontier } from "./compare.ts";
import type { Run } from "./run.ts";

/** One evaluation of a policy on held-out prompts. */
export interface Checkpoint {
  /** DPO steps done (0 = the reference). */
  step: number;
  /** Sampled KL(policy ‖ reference). */
  kl: number;
  /** Mean reward of the samples. */
  reward: number;
  /** Share of samples the review grammar can produce. */
  fluency: number;
}

/** One β of the built-in task, evaluated on held-out prompts. */
export interface BetaResult {
  /** DPO's β. */
  beta: number;
  /** Mean reward of the reference's (SFT model's) samples. */
  referenceReward: number;
  /** Mean reward of the policy's samples. */
  policyReward: number;
  /** Sampled KL(policy ‖ reference). */
  kl: number;
  /** Share of the reference's samples that the review grammar can produce. */
  referenceFluency: number;
  /** The same for the policy: reward hacking shows up as ungrammatical text. */
  fluency: number;
  /** Evaluations along the run (a β sweep samples every few steps; else start and end). */
  trajectory: Checkpoint[];
  /** Share of held-out pairs whose chosen completion gets the higher implicit reward. */
  heldOutAccuracy: number;
  /** Share of the gap from the reference's reward to the best achievable that DPO closed. */
  gapClosed: number;
  /** A few (reference sample, policy sample) texts for the same held-out prompts. */
  examples: [string, string][];
}

/** What the built-in sentiment task reports. */
export interface TaskReport {
  /** The tokenizer kind. */
  tokenizer: "word";
  /** Its vocabulary size. */
  vocabSize: number;
  /** Training preference pairs. */
  pairs: number;
  /** Held-out preference pairs. */
  evalPairs: number;
  /** The best score among many grammar sentences: the reward's ceiling. */
  bestAchievableReward: number;
  /** One entry per β. */
  results: BetaResult[];
}

/** What a `--data` run reports. */
export interface DataReport {
  /** The tokenizer kind: the `--init` folder's BPE, else bytes. */
  tokenizer: "bpe" | "byte";
  /** The tokenizer's ids. */
  vocabSize: number;
  /** The model's vocabulary (at least the tokenizer's ids). */
  modelVocabSize: number;
  /** Training preference pairs. */
  pairs: number;
  /** Pairs skipped because chosen equals rejected. */
  skippedIdentical: number;
  /** Pairs cut to fit the context. */
  truncated: number;
  /** The last held-out evaluation, with TRL's `eval_` names. */
  eval: Record<string, number>;
}

/** Writes every report file into the run's folder and prints the summary. */
export async function writeReport(
  run: Run,
  report: TaskReport | DataReport,
  options: Options,
  seconds: number,
): Promise<void> {
  await run.writeMetrics();
  await run.writeText("curves.svg", curvesChart(run.curves));
  const results = "results" in report ? report.results : [];
  if (results.length > 1) await run.writeText("frontier.svg", frontierChart(results));
  const summary = {
    ...report,
    seconds,
    options,
    deno: Deno.version.deno,
    backend: getBackend().name,
    adapter: getBackend().info,
  };
  await run.writeText("summary.json", JSON.stringify(summary, null, 2));
  printSummary(report, seconds);
}

/** SFT loss, then DPO loss, accuracy and margin per step (one line per β), with held-out evaluations. */
function curvesChart(curves: Record<string, [number, number][]>): string {
  const series = (keys: string[]) =>
    keys.filter((k) => curves[k]).map((k) => ({ name: k, points: curves[k] }));
  // DPO stages are "dpo" or "dpo-beta0.5"; their evaluations are logged under "<stage>-eval".
  const stages = [
    ...new Set(
      Object.keys(curves).map((k) => k.split(" ")[0]).filter((s) =>
        s.startsWith("dpo") && !s.endsWith("-eval")
      ),
    ),
  ];
  const charts = [
    lineChart({ title: "SFT loss", xLabel: "step", yLabel: "loss", series: series(["sft loss"]) }),
  ];
  for (const m of ["loss", "rewards/accuracies", "rewards/margins"]) {
    charts.push(
      lineChart({
        title: `DPO ${m}`,
        xLabel: "step",
        yLabel: m,
        series: series(stages.flatMap((s) => [`${s} ${m}`, `${s}-eval eval_${m}`])),
      }),
    );
  }
  return grid(charts, 2);
}

/** Reward against KL along each β's run, with each β's upper envelope: the DPO frontier. */
function frontierChart(results: BetaResult[]): string {
  const points = results.flatMap((r) =>
    r.trajectory.map((c) => ({ method: "DPO", setting: `β=${r.beta}`, ...c }))
  );
  return methodFrontier(points, "mean reward", true);
}

function printSummary(report: TaskReport | DataReport, seconds: number): void {
  console.log(`\nfinished in ${seconds.toFixed(0)} s`);
  if ("eval" in report) return console.table(report.eval);
  for (const r of report.results) {
    console.log(`\nβ = ${r.beta}`);
    console.table({
      "mean reward (reference → policy)": `${r.referenceReward.toFixed(3)} → ${
        r.policyReward.toFixed(3)
      } (best ${report.bestAchievableReward.toFixed(3)})`,
      "share of the gap to the best closed": r.gapClosed.toFixed(3),
      "KL(policy ‖ reference), sampled": r.kl.toFixed(3),
      "fluency: grammatical samples (reference → policy)": `${r.referenceFluency.toFixed(2)} → ${
        r.fluency.toFixed(2)
      }`,
      "held-out preference accuracy": r.heldOutAccuracy.toFixed(3),
    });
    console.log("before → after (same held-out prompt):");
    for (const [a, b] of r.examples) console.log(`  ${a}\n  → ${b}`);
  }
}
