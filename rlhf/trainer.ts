/**
 * On-policy RLHF training loops. Each step samples completions from the policy (temperature 1),
 * scores them (a {@link RewardModel}, or any function of the text for a ground-truth reward), turns
 * scores and the KL to the reference into advantages, and runs a few epochs of minibatch updates on
 * PPO's clipped loss. PPO estimates advantages per token with a value head and GAE; RLOO samples k
 * completions per prompt and uses the other k−1 as each one's baseline, with no value model.
 * @module
 */
import { fromArray, noGrad, permutation, rng, scope, type Shape, stack, type Tensor } from "../tensor/mod.ts";
import type { GPT } from "../nn/gpt.ts";
import { generate, type SampleOptions } from "../nn/sample.ts";
import { Linear } from "../nn/module.ts";
import { AdamW, clipGradNorm, type Optimizer } from "../nn/optim.ts";
import { raise } from "../tensor/check.ts";
import { frozenCopy } from "../dpo/trainer.ts";
import { AdaptiveKLController, type AdaptiveKLOptions, gae, klPenalizedRewards } from "./ppo.ts";
import { ppoLoss, valueLoss, whiten } from "./ppo.ts";
import { padRight, RewardModel, tokenLogProbs } from "./reward.ts";

/** A ground-truth reward: the completion's text (and its prompt's) → a finite number. */
export type TextScorer = (completion: string, prompt: string) => number;

/** Settings shared by PPO and RLOO. */
export interface RLConfig {
  /** Rollout batches (each followed by `epochs` of updates). */
  steps: number;
  /** Prompts per rollout batch. */
  batchSize: number;
  /** Learning rate (AdamW, constant). */
  lr: number;
  /** Tokens sampled per completion. */
  maxNewTokens: number;
  /** Padding token id. */
  padId: number;
  /** A completion ends after this token. */
  eosToken?: number;
  /** Optimisation epochs over each rollout batch (default 4). */
  epochs?: number;
  /** Minibatches per epoch (default 1). */
  minibatches?: number;
  /** Global gradient-norm clip (default 1). */
  maxGradNorm?: number;
  /** β: weight of the KL(π‖π_ref) penalty in the reward (default 0.05). */
  klCoef?: number;
  /** PPO's ratio clip ε (default 0.2). */
  clip?: number;
  /** Seed for prompt order and sampling (default 0). */
  seed?: number;
}

/** PPO's extra settings. */
export interface PPOConfig extends RLConfig {
  /** Adapt β towards a target KL instead of keeping `klCoef` fixed (β starts at `klCoef`). */
  adaptiveKl?: Omit<AdaptiveKLOptions, "initKlCoef">;
  /** Discount (default 1). */
  gamma?: number;
  /** GAE λ (default 0.95). */
  lambda?: number;
  /** Weight of the value loss (default 0.1). */
  vfCoef?: number;
  /** Value clip range (default 0.2). */
  clipValue?: number;
}

/** RLOO's extra settings. */
export interface RLOOConfig extends RLConfig {
  /** Completions per prompt (default 4, at least 2). */
  k?: number;
}

/** One step's metrics, with TRL's names where it has them. */
export interface RLMetrics {
  /** Step number (1-based). */
  step: number;
  /** Mean score of the sampled completions. */
  "objective/scores": number;
  /** Mean per-sequence Σ (log π − log π_ref) of the samples. */
  "objective/kl": number;
  /** Mean score − β·KL. */
  "objective/rlhf_reward": number;
  /** The KL coefficient β used. */
  kl_coef: number;
  /** Mean clipped-surrogate loss over updates. */
  "loss/policy_avg": number;
  /** Mean value loss over updates (0 for RLOO). */
  "loss/value_avg": number;
  /** Mean fraction of tokens clipped. */
  "policy/clipfrac_avg": number;
  /** Mean ½(log ρ)². */
  "policy/approxkl_avg": number;
  /** Completion tokens sampled this step. */
  generatedTokens: number;
  /** Tokens through forward and backward passes this step. */
  trainedTokens: number;
  /** Wall time of the step. */
  seconds: number;
}

/** A sampled batch, on the host. Per-token arrays are [B, L−1] in {@link tokenLogProbs}'s layout. */
export interface Rollout {
  /** Prompt + completion token lists. */
  seqs: number[][];
  /** Prompt lengths. */
  promptLens: number[];
  /** Padded length L. */
  L: number;
  /** Scores [B]. */
  scores: number[];
  /** 1 where position t scores a completion token. */
  mask: Float32Array;
  /** log π_old of each token. */
  logProbs: Float32Array;
  /** log π_ref of each token. */
  refLogProbs: Float32Array;
  /** Value estimates (PPO; zeros for RLOO). */
  values: Float32Array;
}

/** What both trainers are built from. */
export interface RLTrainerOptions<C extends RLConfig> {
  /** The policy (trained in place). */
  policy: GPT;
  /** The frozen reference (default: a frozen copy of the policy). */
  reference?: GPT;
  /** Scores a whole sequence: a reward model or a function of the decoded text. */
  reward: RewardModel | TextScorer;
  /** Turns token ids into text; required when `reward` is a function. */
  decode?: (ids: number[]) => string;
  /** Training prompts (token lists, each at least one token). */
  prompts: number[][];
  /** Settings. */
  config: C;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]) => sum(xs) / xs.length;

/** One completion per prompt at temperature 1, with the prompt lengths, the padded length L and the
 * mask that is 1 where position t of the [B, L−1] layout scores a completion token. */
async function sample(policy: GPT, prompts: number[][], o: Omit<SampleOptions, "temperature">) {
  const seqs = await generate(policy, prompts, { ...o, temperature: 1 });
  const promptLens = prompts.map((p) => p.length), L = Math.max(...seqs.map((s) => s.length));
  const mask = new Float32Array(seqs.length * (L - 1));
  seqs.forEach((s, i) => mask.fill(1, i * (L - 1) + promptLens[i] - 1, i * (L - 1) + s.length - 1));
  return { seqs, promptLens, L, mask };
}

/** Each sequence's KL Σ_t (log π − log π_ref) over its completion tokens, from [B, T] host arrays. */
function sequenceKls(r: Pick<Rollout, "mask" | "logProbs" | "refLogProbs">, T: number): number[] {
  const kl = Array.from(r.mask, (m, t) => m * (r.logProbs[t] - r.refLogProbs[t])); // per token
  return Array.from({ length: r.mask.length / T }, (_, i) => sum(kl.slice(i * T, (i + 1) * T)));
}

/** Same-shape tensors read back to the host in one transfer (stacked), as one array each. */
async function readBack(ts: Tensor<[number, number]>[]): Promise<Float32Array[]> {
  const d = await stack(ts).data(), n = d.length / ts.length;
  return ts.map((_, i) => Float32Array.from(d.subarray(i * n, (i + 1) * n)));
}

/** log π and log π_ref of every token of `seqs` ([B, L−1], as {@link tokenLogProbs} lays them out) and
 * values from `valuesOf` (zeros without one), read back to the host. */
async function scoreTokens(
  m: { policy: GPT; reference: GPT },
  seqs: number[][],
  padId: number,
  valuesOf: (hidden: Tensor<[number, number, number]>) => Tensor<[number, number]> | null = () => null,
): Promise<Float32Array[]> {
  return await scope(() =>
    noGrad(() => {
      const tokens = padRight(seqs, padId), hidden = m.policy.hidden(tokens);
      const lp = tokenLogProbs(m.policy.head(hidden), tokens);
      const ref = tokenLogProbs(m.reference.forward(tokens), tokens);
      return readBack([lp, ref, valuesOf(hidden)?.narrow(1, 0, lp.shape[1]) ?? lp.mul(0)]);
    })
  );
}

/** Turns token ids into text. */
type Decode = (ids: number[]) => string;

/** Scores of sequences from a reward function on their decoded prompt and completion; `who` names
 * the caller in the error when it throws or returns something other than a finite number. */
function scoreText(who: string, reward: TextScorer, decode: Decode, seqs: number[][], promptLens: number[]) {
  return seqs.map((s, i) => {
    const prompt = decode(s.slice(0, promptLens[i])), completion = decode(s.slice(promptLens[i]));
    const at = `${who}: reward function on sample ${i} (prompt ${JSON.stringify(prompt)}, ` +
      `completion ${JSON.stringify(completion)})`;
    let v: number;
    try {
      v = reward(completion, prompt);
    } catch (e) {
      throw new Error(`${at} threw: ${(e as Error).message}`);
    }
    if (!Number.isFinite(v)) throw new Error(`${at} returned ${v}, not a finite number`);
    return v;
  });
}

/** The shared loop; subclasses say how advantages are made and what else is trained. */
export abstract class RLTrainer<C extends RLConfig> {
  /** The model being trained. */
  readonly policy: GPT;
  /** The frozen reference. */
  readonly reference: GPT;
  /** The sequence scorer. */
  readonly reward: RewardModel | TextScorer;
  /** Settings. */
  readonly config: C;
  /** The optimizer. */
  optimizer!: Optimizer;
  /** Steps done. */
  stepCount = 0;
  #prompts: number[][];
  #order: number[] = [];
  #rand: () => number;
  #decode?: Decode;

  /** A trainer; see {@link RLTrainerOptions}. */
  constructor(o: RLTrainerOptions<C>) {
    const name = this.constructor.name, c = o.config;
    if (!o.prompts.length) throw new Error(`${name}: no prompts`);
    const bad = o.prompts.findIndex((p) => p.length === 0);
    if (bad >= 0) throw new Error(`${name}: prompt ${bad} is empty (it needs at least one token, e.g. BOS)`);
    const longest = Math.max(...o.prompts.map((p) => p.length)), block = o.policy.config.blockSize;
    const sum = `longest prompt (${longest}) + maxNewTokens (${c.maxNewTokens})`;
    if (longest + c.maxNewTokens > block) throw new RangeError(`${name}: ${sum} exceeds blockSize ${block}`);
    if (typeof o.reward === "function" && !o.decode) raise(`${name}: a reward function needs decode`);
    this.policy = o.policy;
    this.reference = o.reference ?? frozenCopy(o.policy);
    this.reward = o.reward;
    this.config = c;
    this.#prompts = o.prompts;
    this.#decode = o.decode;
    this.#rand = rng(c.seed ?? 0);
  }

  /** The KL coefficient for the next rollout. */
  get klCoef(): number {
    return this.config.klCoef ?? 0.05;
  }

  /** Advantages [B, L−1] (and returns, for a value loss) of a rollout, on the host. */
  protected abstract advantages(r: Rollout): Promise<{ advantages: Float32Array; returns: Float32Array }>;
  /** Trained parameters besides the policy's (none by default). */
  protected extraParameters(): [string, Tensor<Shape>][] {
    return [];
  }
  /** How many completions to sample per prompt (default 1). */
  protected samplesPerPrompt(): number {
    return 1;
  }
  /** Value estimates [B, T] from hidden states (by default null: no value model). */
  protected valuesOf(_hidden: Tensor<[number, number, number]>): Tensor<[number, number]> | null {
    return null;
  }
  /** After a step: adapt settings to the measured mean sequence KL. */
  protected afterStep(_kl: number, _samples: number): void {}

  /** The optimizer over the policy and extra parameters, made on first use. */
  protected opt(): Optimizer {
    return (this.optimizer ??= new AdamW(this.#trained(), { lr: this.config.lr, weightDecay: 0 }));
  }

  /** The trained parameters: the policy's and the extra ones. */
  #trained(): [string, Tensor<Shape>][] {
    return [...this.policy.namedParameters(), ...this.extraParameters()];
  }

  /** Scores of sequences: the reward model, or the reward function on decoded text (checked). */
  async score(seqs: number[][], promptLens: number[]): Promise<number[]> {
    const rm = this.reward;
    return rm instanceof RewardModel
      ? Array.from(await scope(() => noGrad(() => rm.score(seqs, this.config.padId).data())))
      : scoreText(this.constructor.name, rm, this.#decode!, seqs, promptLens);
  }

  /** Sample a batch and compute its log-probs, reference log-probs, values and scores. */
  async rollout(): Promise<Rollout> {
    const c = this.config, k = this.samplesPerPrompt();
    // The next prompts (reshuffled each pass), each sampled k times.
    const batch: number[][] = [];
    while (batch.length < c.batchSize) {
      if (!this.#order.length) this.#order = permutation(this.#prompts.length, this.#rand);
      batch.push(this.#prompts[this.#order.pop()!]);
    }
    const prompts = batch.flatMap((p) => Array.from({ length: k }, () => p));
    const seed = (c.seed ?? 0) * 100003 + this.stepCount;
    const sampling = { maxNewTokens: c.maxNewTokens, eosToken: c.eosToken, seed };
    const { seqs, promptLens, L, mask } = await sample(this.policy, prompts, sampling);
    const scores = await this.score(seqs, promptLens);
    const wasTraining = this.policy.training;
    this.policy.eval();
    const [logProbs, refLogProbs, values] = await scoreTokens(this, seqs, c.padId, (h) => this.valuesOf(h));
    this.policy.train(wasTraining);
    return { seqs, promptLens, L, scores, mask, logProbs, refLogProbs, values };
  }

  /** One rollout batch and its `epochs` of minibatch updates; returns the metrics. */
  async step(): Promise<RLMetrics> {
    // The config with PPO's optional keys, which RLOO leaves unset.
    const t0 = performance.now(), c: PPOConfig = this.config, beta = this.klCoef;
    const r = await this.rollout();
    const { advantages, returns } = await this.advantages(r);
    const B = r.seqs.length, T = r.L - 1;
    const epochs = c.epochs ?? 4, nMini = Math.min(c.minibatches ?? 1, B), updates = epochs * nMini;
    const sums = [0, 0, 0, 0], opt = this.opt();
    let trainedTokens = 0;
    for (let e = 0; e < epochs; e++) {
      const perm = permutation(B, this.#rand);
      for (let m = 0; m < nMini; m++) {
        const idx = perm.slice(Math.floor((m * B) / nMini), Math.floor(((m + 1) * B) / nMini));
        trainedTokens += idx.reduce((n, i) => n + r.seqs[i].length, 0);
        const v = await scope(() => {
          const tokens = padRight(idx.map((i) => r.seqs[i]), c.padId);
          // Minibatch rows may be shorter than L: keep the first Tm of the T positions of each row.
          const Tm = tokens.shape[1] - 1;
          const rows = (a: Float32Array) => {
            const picked = idx.flatMap((i) => Array.from(a.subarray(i * T, i * T + Tm)));
            return fromArray<[number, number]>(picked, [idx.length, Tm]);
          };
          const mask = rows(r.mask), hidden = this.policy.hidden(tokens);
          const logProbs = tokenLogProbs(this.policy.head(hidden), tokens), oldLogProbs = rows(r.logProbs);
          const pg = ppoLoss({ logProbs, oldLogProbs, advantages: rows(advantages), mask }, { clip: c.clip });
          // The value loss's inputs, when there is a value head.
          const values = this.valuesOf(hidden)?.narrow(1, 0, Tm);
          const valueInputs = values && { values, oldValues: rows(r.values), returns: rows(returns), mask };
          const vl = valueInputs ? valueLoss(valueInputs, { clip: c.clipValue }) : pg.loss.detach().mul(0);
          pg.loss.add(vl.mul(c.vfCoef ?? 0.1)).backward();
          clipGradNorm(this.#trained().map(([, p]) => p), c.maxGradNorm ?? 1);
          opt.step();
          opt.zeroGrad();
          return stack([pg.loss.detach(), vl.detach(), pg.clipFraction, pg.approxKl]).data();
        });
        if (!Number.isFinite(v[0])) {
          throw new Error(`${this.constructor.name}: loss is ${v[0]} at step ${this.stepCount + 1}`);
        }
        v.forEach((x, i) => (sums[i] += x));
      }
    }
    // The sequence KL at sampling time.
    const kl = mean(sequenceKls(r, T)), score = mean(r.scores);
    this.afterStep(kl, B);
    this.stepCount++;
    return {
      step: this.stepCount,
      "objective/scores": score,
      "objective/kl": kl,
      "objective/rlhf_reward": score - beta * kl,
      kl_coef: beta,
      "loss/policy_avg": sums[0] / updates,
      "loss/value_avg": sums[1] / updates,
      "policy/clipfrac_avg": sums[2] / updates,
      "policy/approxkl_avg": sums[3] / updates,
      generatedTokens: r.seqs.reduce((n, s, i) => n + s.length - r.promptLens[i], 0),
      trainedTokens: trainedTokens + B * r.L, // the updates, plus the rollout's scoring forward
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /** Run the remaining steps, calling `onLog` after each. */
  async train(onLog: (m: RLMetrics) => void = () => {}): Promise<void> {
    while (this.stepCount < this.config.steps) onLog(await this.step());
  }
}

/** PPO for RLHF: per-token KL-penalised rewards, a value head on the policy's trunk (one model, one
 * forward for both), GAE, whitened advantages, clipped policy and value losses. */
export class PPOTrainer extends RLTrainer<PPOConfig> {
  /** [C] → [1]: V(prefix), read from the policy's hidden states. */
  readonly valueHead: Linear<number, 1>;
  /** The adaptive KL controller, when `config.adaptiveKl` is set. */
  readonly klController: AdaptiveKLController | null;

  /** A PPO trainer; see {@link RLTrainerOptions}. */
  constructor(o: RLTrainerOptions<PPOConfig>) {
    super(o);
    this.valueHead = new Linear(o.policy.config.nEmbd, 1, { seed: (o.config.seed ?? 0) + 11 });
    const a = o.config.adaptiveKl;
    this.klController = a ? new AdaptiveKLController({ ...a, initKlCoef: o.config.klCoef ?? 0.05 }) : null;
  }
  /** β now: the controller's value, or the fixed `klCoef`. */
  override get klCoef(): number {
    return this.klController?.value ?? this.config.klCoef ?? 0.05;
  }
  /** The value head's weight and bias. */
  protected override extraParameters(): [string, Tensor<Shape>][] {
    return this.valueHead.namedParameters().map(([n, p]) => [`value_head.${n}`, p]);
  }
  /** V at every position [B, T]. */
  protected override valuesOf(hidden: Tensor<[number, number, number]>): Tensor<[number, number]> {
    return this.valueHead.forward(hidden).squeeze(-1);
  }
  /** Rewards with the KL penalty, then GAE, then whitening. */
  protected async advantages(r: Rollout): Promise<{ advantages: Float32Array; returns: Float32Array }> {
    const B = r.seqs.length, T = r.L - 1, c = this.config;
    const [advantages, returns] = await scope(() => {
      const t = (a: Float32Array) => fromArray<[number, number]>(a, [B, T]);
      const mask = t(r.mask), scores = fromArray<[number]>(r.scores, [B]);
      const rewards = klPenalizedRewards(scores, t(r.logProbs), t(r.refLogProbs), mask, this.klCoef);
      const { advantages, returns } = gae(rewards, t(r.values), mask, { gamma: c.gamma, lambda: c.lambda });
      return readBack([whiten(advantages, mask), returns]);
    });
    return { advantages, returns };
  }
  /** Adapt β. */
  protected override afterStep(kl: number, samples: number): void {
    this.klController?.update(kl, samples);
  }
}

/** REINFORCE leave-one-out: k completions per prompt; each one's advantage is its KL-penalised
 * sequence reward minus the mean of the other k−1, applied to all its tokens. No value model. */
export class RLOOTrainer extends RLTrainer<RLOOConfig> {
  /** A trainer; `config.k` ≥ 2. */
  constructor(o: RLTrainerOptions<RLOOConfig>) {
    super(o);
    if (!((o.config.k ?? 4) >= 2)) throw new RangeError(`RLOOTrainer: k must be ≥ 2, got ${o.config.k}`);
  }
  /** k. */
  protected override samplesPerPrompt(): number {
    return this.config.k ?? 4;
  }
  /** R_i = score_i − β·KL_i; A_i = R_i − mean of the other k−1 in its group. */
  protected advantages(r: Rollout): Promise<{ advantages: Float32Array; returns: Float32Array }> {
    const k = this.samplesPerPrompt(), T = r.L - 1, B = r.seqs.length;
    const R = sequenceKls(r, T).map((kl, i) => r.scores[i] - this.klCoef * kl);
    const A = R.map((Ri, i) => {
      const g = Math.floor(i / k) * k; // rows of one prompt are consecutive
      return Ri - sum(R.slice(g, g + k).filter((_, j) => g + j !== i)) / (k - 1);
    });
    const advantages = r.mask.map((m, t) => A[Math.floor(t / T)] * m);
    return Promise.resolve({ advantages, returns: new Float32Array(B * T) });
  }
}

/** Held-out evaluation of a policy: samples one completion per prompt (temperature 1) and returns
 * the mean true reward and the sampled KL(π‖π_ref) = mean over samples of Σ_t log π/π_ref. */
export async function evaluatePolicy(
  o:
    & Pick<RLConfig, "maxNewTokens" | "padId" | "eosToken" | "seed">
    & { reward: TextScorer }
    & Required<Pick<RLTrainerOptions<RLConfig>, "policy" | "reference" | "prompts" | "decode">>,
): Promise<{ reward: number; kl: number }> {
  const { maxNewTokens, eosToken, seed = 0 } = o;
  const { seqs, promptLens, L, mask } = await sample(o.policy, o.prompts, { maxNewTokens, eosToken, seed });
  const [logProbs, refLogProbs] = await scoreTokens(o, seqs, o.padId);
  const kls = sequenceKls({ mask, logProbs, refLogProbs }, L - 1);
  return { reward: mean(scoreText("evaluatePolicy", o.reward, o.decode, seqs, promptLens)), kl: mean(kls) };
}
