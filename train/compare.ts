/**
 * `--compare-rlhf`: DPO against RLHF from one SFT model and one set of preference pairs. DPO runs at
 * several β; RLHF fits a reward model to the same pairs, then runs PPO at several KL coefficients,
 * PPO against the ground-truth scorer ("PPO-GT", an upper bound for RLHF) and RLOO. Every method is
 * evaluated every few steps on the same held-out prompts (mean true reward, sampled KL to the SFT
 * model, fluency), and its cost is metered: wall time, peak live tensor bytes, models held, tokens
 * generated and trained on. Writes compare.json and frontier.svg and prints the cost table.
 * @module
 */
import {
  cloneGPT,
  DPOTrainer,
  type EncodedPair,
  frozenCopy,
  type GPT,
  memoryStats,
  noGrad,
  PPOTrainer,
  RewardModel,
  type RLConfig,
  type RLMetrics,
  RLOOTrainer,
  type RLTrainer,
  scope,
  type Tokenizer,
  trainRewardModel,
} from "../mod.ts";
import { lineChart, type Series } from "./svg.ts";
import { progress } from "./progress.ts";
import type { Flags } from "./args.ts";
import type { Run } from "./run.ts";
import { evaluateSamples } from "./sampling.ts";

/** Steps and settings of each method: the full comparison and `--quick` (a CI-sized smoke test). */
export const COMPARE_SIZES = {
  full: {
    betas: [0.05, 0.1, 0.5],
    dpoSteps: 120,
    rmSteps: 120,
    klCoefs: [0.01, 0.05, 0.2],
    rlSteps: 40,
    rlBatch: 32,
    dpoEvalEvery: 20,
    rlEvalEvery: 8,
  },
  quick: {
    betas: [0.1, 0.5],
    dpoSteps: 12,
    rmSteps: 16,
    klCoefs: [0.05],
    rlSteps: 4,
    rlBatch: 16,
    dpoEvalEvery: 6,
    rlEvalEvery: 2,
  },
};

/** KL coefficient of PPO-GT and RLOO (one setting each, to keep the run short). */
const RL_KL_COEF = 0.05;
/** Learning rate of the reward model, PPO and RLOO (the toy model is small and trained from scratch). */
const RL_LR = 1e-3;

/** One evaluated checkpoint. */
export interface ComparePoint {
  /** "DPO", "PPO", "PPO-GT" or "RLOO". */
  method: string;
  /** The method's knob, e.g. "β=0.1" or "kl_coef=0.05". */
  setting: string;
  /** Training steps done (0 = the SFT model). */
  step: number;
  /** Sampled KL(π ‖ π_ref), summed over completion tokens, averaged over samples. */
  kl: number;
  /** Mean true reward of the samples (with --data: the reward model's score). */
  reward: number;
  /** Share of samples the review grammar can produce (null with --data: no grammar). */
  fluency: number | null;
}

/** What one method cost, over all its settings. */
export interface Cost {
  /** Wall time of training (evaluation excluded). */
  seconds: number;
  /** Peak live tensor bytes above the stage's start, sampled during training. */
  peakBytes: number;
  /** Models held in memory while training. */
  modelsHeld: number;
  /** Which models those are. */
  models: string;
  /** Completion tokens sampled during training. */
  generatedTokens: number;
  /** Tokens through the trained model's forward and backward passes (as RLMetrics counts them). */
  trainedTokens: number;
  /** Training runs (settings) the totals add up. */
  runs: number;
}

/** compare.json. */
export interface CompareReport {
  /** What the reward axis measures. */
  reward: string;
  /** Every evaluated checkpoint of every method. */
  points: ComparePoint[];
  /** The RLHF reward model's accuracy on held-out preference pairs. */
  rewardModel: { heldOutAccuracy: number };
  /** Cost per method ("reward model" is RLHF's first stage). */
  cost: Record<string, Cost>;
  /** Methods left out, and why. */
  skipped: string[];
}

/** What the comparison starts from. */
export interface CompareInput {
  /** The SFT model: every policy starts here, and it is the reference of every KL. */
  sft: GPT;
  /** Its tokenizer. */
  tok: Tokenizer;
  /** Preference pairs for DPO and the reward model. */
  train: EncodedPair[];
  /** Held-out pairs for the reward model's accuracy. */
  evalPairs: EncodedPair[];
  /** Prompts for RLHF's rollouts. */
  trainPrompts: string[];
  /** Held-out prompts for evaluation. */
  evalPrompts: string[];
  /** The ground-truth reward of a whole text, or null (--data) when there is none. */
  scorer: ((text: string) => number) | null;
}

/** Times training and samples live bytes while it runs, for one method's {@link Cost}. */
class Meter {
  seconds = 0;
  peak = 0;
  generatedTokens = 0;
  trainedTokens = 0;
  runs = 0;
  #base = memoryStats().liveBytes;

  /** A meter whose byte count starts from what is live now. */
  constructor(readonly modelsHeld: number, readonly models: string) {}

  /** Samples the live bytes now. */
  sample(): void {
    this.peak = Math.max(this.peak, memoryStats().liveBytes - this.#base);
  }

  /** Runs `f` as training: timed, and the live bytes sampled every 5 ms whenever it yields. */
  async time<T>(f: () => Promise<T>): Promise<T> {
    const timer = setInterval(() => this.sample(), 5), t0 = performance.now();
    try {
      return await f();
    } finally {
      clearInterval(timer);
      this.seconds += (performance.now() - t0) / 1000;
      this.sample();
    }
  }

  /** The totals. */
  cost(): Cost {
    const { seconds, peak, modelsHeld, models, generatedTokens, trainedTokens, runs } = this;
    return { seconds, peakBytes: peak, modelsHeld, models, generatedTokens, trainedTokens, runs };
  }
}

/** Runs every method, writes compare.json and frontier.svg, and prints the cost table. */
export async function compareRlhf(input: CompareInput, flags: Flags, run: Run): Promise<CompareReport> {
  const size = flags.quick ? COMPARE_SIZES.quick : COMPARE_SIZES.full;
  const { sft, tok, train, evalPairs } = input;
  const betas = flags.options["sweep-beta"] ? flags.betas : size.betas;
  const dpoSteps = flags.steps ?? size.dpoSteps;
  const encode = (p: string) => tok.encode(p, { bos: true });
  const longest = Math.max(...input.trainPrompts.map((p) => encode(p).length));
  // Samples as long as the context allows, but at most twice the longest completion in the pairs:
  // an untrained byte-level model (--data) rarely stops by itself.
  const maxNew = Math.min(
    sft.config.blockSize - longest,
    2 * Math.max(...train.map((p) => Math.max(p.chosen.length, p.rejected.length))),
  );
  if (maxNew < 1) {
    throw new Error(
      `--compare-rlhf: a prompt of ${longest} tokens leaves no room to sample in ${sft.config.blockSize}`,
    );
  }
  const points: ComparePoint[] = [];
  const cost: Record<string, Cost> = {};
  const skipped: string[] = [];

  // Every method is evaluated on the same prompts with the same sampling seed.
  const evaluate = async (policy: GPT, method: string, setting: string, step: number) => {
    const e = await evaluateSamples(policy, sft, tok, input.evalPrompts, flags.seed + 4, maxNew);
    const reward = input.scorer ? e.reward : await proxyReward(rm, e.samples, tok.pad);
    const point = { method, setting, step, kl: e.kl, reward, fluency: input.scorer ? e.fluency : null };
    points.push(point);
    run.log(`compare ${method} ${setting}`, { step, kl: e.kl, reward });
  };

  // RLHF stage 1 comes first so that, with --data, the reward model can score DPO's samples too.
  console.log(`reward model: ${size.rmSteps} steps on the preference pairs`);
  const rmMeter = new Meter(1, "reward model (trunk + scalar head)");
  const rm = new RewardModel(sft, { seed: flags.seed });
  const trained = await rmMeter.time(() =>
    trainRewardModel(rm, train, evalPairs, {
      steps: size.rmSteps,
      batchSize: flags.batchSize,
      lr: RL_LR,
      padId: tok.pad,
      seed: flags.seed,
    })
  );
  trained.losses.forEach((loss, i) => run.log("reward-model", { step: i + 1, loss }));
  rmMeter.trainedTokens = size.rmSteps * flags.batchSize * meanPairTokens(train);
  rmMeter.runs = 1;
  cost["reward model"] = rmMeter.cost();
  console.log(`reward model: held-out accuracy ${trained.heldOutAccuracy.toFixed(3)}`);

  // The SFT model is step 0 of every run: evaluated once, copied to each.
  await evaluate(sft, "SFT", "", 0);
  const start = points.pop()!;
  const from = (method: string, setting: string) => points.push({ ...start, method, setting });

  // DPO per β: a policy and a frozen reference (or the reference's log-probs, computed once).
  const dpoMeter = flags.precomputeRef
    ? new Meter(1, "policy (reference log-probs precomputed)")
    : new Meter(2, "policy, reference");
  for (const beta of betas) {
    const setting = `β=${beta}`;
    from("DPO", setting);
    const policy = cloneGPT(sft);
    const trainer = new DPOTrainer({
      policy,
      reference: frozenCopy(sft),
      train,
      config: {
        beta,
        lossType: flags.loss,
        labelSmoothing: flags.labelSmoothing,
        lr: flags.lr,
        steps: dpoSteps,
        batchSize: flags.batchSize,
        precomputeRef: flags.precomputeRef,
        padId: tok.pad,
        seed: flags.seed,
      },
    });
    const bar = progress(`DPO ${setting}`, dpoSteps);
    while (trainer.stepCount < dpoSteps) {
      const m = await dpoMeter.time(() => trainer.step());
      run.log(`compare-dpo ${setting}`, { step: m.step, loss: m.loss });
      bar.tick(1, `loss ${m.loss.toFixed(3)}`);
      if (m.step % size.dpoEvalEvery === 0 || m.step === dpoSteps) {
        await evaluate(policy, "DPO", setting, m.step);
      }
    }
    bar.done();
    dpoMeter.trainedTokens += dpoSteps * Math.min(flags.batchSize, train.length) * meanPairTokens(train);
    dpoMeter.runs++;
  }
  cost.DPO = dpoMeter.cost();

  // RLHF stage 2: on-policy RL from the SFT model, sampling completions as long as the context allows.
  const rlConfig = (klCoef: number): RLConfig => ({
    steps: size.rlSteps,
    batchSize: size.rlBatch,
    lr: RL_LR,
    maxNewTokens: maxNew,
    padId: tok.pad,
    eosToken: tok.eos,
    klCoef,
    seed: flags.seed,
  });
  const prompts = input.trainPrompts.map(encode);
  const decode = (ids: number[]) => tok.decode(ids);
  const rl = async (method: string, meter: Meter, make: () => RLTrainer<RLConfig>) => {
    const trainer = make(), setting = `kl_coef=${trainer.klCoef}`;
    from(method, setting);
    const bar = progress(`${method} ${setting}`, size.rlSteps);
    while (trainer.stepCount < size.rlSteps) {
      const m: RLMetrics = await meter.time(() => trainer.step());
      meter.generatedTokens += m.generatedTokens;
      meter.trainedTokens += m.trainedTokens;
      run.log(`compare-${method} ${setting}`, {
        step: m.step,
        score: m["objective/scores"],
        kl: m["objective/kl"],
      });
      bar.tick(1, `score ${m["objective/scores"].toFixed(3)} kl ${m["objective/kl"].toFixed(2)}`);
      if (m.step % size.rlEvalEvery === 0 || m.step === size.rlSteps) {
        await evaluate(trainer.policy, method, setting, m.step);
      }
    }
    bar.done();
    meter.runs++;
    cost[method] = meter.cost();
  };
  const ppo = new Meter(4, "policy, reference, reward model, value head");
  for (const klCoef of size.klCoefs) {
    await rl(
      "PPO",
      ppo,
      () => new PPOTrainer({ policy: cloneGPT(sft), reward: rm, prompts, config: rlConfig(klCoef) }),
    );
  }
  const scorer = input.scorer;
  if (scorer) {
    await rl("PPO-GT", new Meter(3, "policy, reference, value head (true scorer)"), () =>
      new PPOTrainer({
        policy: cloneGPT(sft),
        reward: (completion, prompt) => scorer(`${prompt} ${completion}`),
        decode,
        prompts,
        config: rlConfig(RL_KL_COEF),
      }));
    await rl("RLOO", new Meter(3, "policy, reference, reward model"), () =>
      new RLOOTrainer({
        policy: cloneGPT(sft),
        reward: rm,
        prompts,
        // k = 4 completions per prompt: a quarter of the prompts for the same samples per step.
        config: { ...rlConfig(RL_KL_COEF), batchSize: Math.max(1, size.rlBatch / 4), k: 4 },
      }));
  } else {
    skipped.push("PPO-GT: --data has no ground-truth scorer to optimise", "RLOO: skipped with --data");
    skipped.forEach((s) => console.log(`skipped ${s}`));
  }

  const report: CompareReport = {
    reward: input.scorer ? "true reward (sentiment scorer)" : "reward-model score (no ground truth)",
    points,
    rewardModel: { heldOutAccuracy: trained.heldOutAccuracy },
    cost,
    skipped,
  };
  await run.writeText("compare.json", JSON.stringify(report, null, 2));
  await run.writeText("frontier.svg", frontierChart(points, report.reward));
  await run.writeMetrics();
  printComparison(report);
  return report;
}

/** Mean real tokens of a pair as DPO and the reward model see it: prompt twice, both completions. */
function meanPairTokens(pairs: EncodedPair[]): number {
  const total = pairs.reduce((n, p) => n + 2 * p.prompt.length + p.chosen.length + p.rejected.length, 0);
  return total / pairs.length;
}

/** Mean reward-model score of samples: the reward axis when there is no ground truth (--data). */
async function proxyReward(
  rm: RewardModel,
  samples: { ids: number[]; completion: number[] }[],
  padId: number,
): Promise<number> {
  const seqs = samples.map((s) => [...s.ids, ...s.completion]);
  const scores = Array.from(await scope(() => noGrad(() => rm.score(seqs, padId).data())));
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}

/**
 * The points (x = KL, y = reward) on the upper envelope: sorted by KL, each one with a higher
 * reward than every point at a lower KL. The best reward a method reached within each KL budget.
 */
export function upperEnvelope(points: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const p of [...points].sort((a, b) => a[0] - b[0] || b[1] - a[1])) {
    if (!out.length || p[1] > out.at(-1)![1]) out.push(p);
  }
  return out;
}

/**
 * Reward against KL, one colour per method (or per `method setting` when `bySetting`): every
 * evaluated checkpoint as a dot and the method's upper envelope as a line — the DPO paper's Figure 2
 * (left) at toy scale. A method's points are one series: the envelope, then each dot on its own
 * between gaps (a non-finite point breaks the line), so dots and line share the colour.
 */
export function frontierChart(points: ComparePoint[], yLabel: string, bySetting = false): string {
  const key = (p: ComparePoint) => bySetting ? `${p.method} ${p.setting}` : p.method;
  const series: Series[] = [...new Set(points.map(key))].map((name) => {
    const xy = points.filter((p) => key(p) === name).map((p): [number, number] => [p.kl, p.reward]);
    const gap: [number, number] = [NaN, NaN];
    return { name, points: [...upperEnvelope(xy), ...xy.flatMap((p) => [gap, p])] };
  });
  return lineChart({
    title: "reward vs KL: every checkpoint, and each method's frontier",
    xLabel: "KL(π ‖ π_ref), sampled, nats per completion",
    yLabel,
    series,
    markers: true,
    width: 640,
    height: 400,
  });
}

/** The cost table and, per method, the best reward it reached and at what KL. */
function printComparison(r: CompareReport): void {
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  console.log("\ncost per method (training only; evaluation excluded):");
  console.table(Object.fromEntries(
    Object.entries(r.cost).map(([m, c]) => [m, {
      runs: c.runs,
      "seconds": Number(c.seconds.toFixed(1)),
      "s per run": Number((c.seconds / c.runs).toFixed(1)),
      "peak MiB": mb(c.peakBytes),
      "models held": `${c.modelsHeld}: ${c.models}`,
      "tokens generated": c.generatedTokens,
      "tokens trained": Math.round(c.trainedTokens),
    }]),
  ));
  console.log(`reward model held-out accuracy: ${r.rewardModel.heldOutAccuracy.toFixed(3)}`);
  console.log(`\nbest checkpoint per method (${r.reward}):`);
  const methods = [...new Set(r.points.map((p) => p.method))];
  console.table(Object.fromEntries(methods.map((m) => {
    const best = r.points.filter((p) => p.method === m).reduce((a, b) => b.reward > a.reward ? b : a);
    return [m, {
      setting: best.setting,
      step: best.step,
      reward: Number(best.reward.toFixed(3)),
      kl: Number(best.kl.toFixed(2)),
      fluency: best.fluency === null ? "n/a" : best.fluency.toFixed(2),
    }];
  })));
}
