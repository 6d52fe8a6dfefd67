/**
 * The reward model of RLHF: a GPT trunk (copied from the SFT model) with a scalar head read at each
 * sequence's last real token, fitted to the same preference pairs DPO uses with the Bradley–Terry
 * loss −log σ(r_chosen − r_rejected). Also the per-token helpers the PPO trainer shares with it.
 * @module
 */
import { fromArray, noGrad, rng, scope, stack, type Tensor } from "../tensor/mod.ts";
import { targetLogProbs } from "../tensor/composite.ts";
import { GPT } from "../nn/gpt.ts";
import { Linear, Module } from "../nn/module.ts";
import { AdamW, clipGradNorm } from "../nn/optim.ts";
import type { EncodedPair } from "../dpo/data.ts";
import { batchPairs } from "../dpo/trainer.ts";

/** log p(token[t+1] | tokens ≤ t) for every position t: logits [B, T, V], tokens [B, T] → [B, T−1]. */
export function tokenLogProbs(
  logits: Tensor<[number, number, number]>,
  tokens: Tensor<[number, number]>,
): Tensor<[number, number]> {
  const T = tokens.shape[1]; // logits at t score token t+1 (fused: no [B, T, V] log-probabilities)
  return targetLogProbs(logits.narrow(1, 0, T - 1), tokens.narrow(1, 1, T - 1));
}

/** A trainable copy of `model` (same config and weights). */
export function cloneGPT(model: GPT): GPT {
  const copy = new GPT(model.config);
  copy.loadStateDict(model.stateDict());
  return copy;
}

/** Right-pad token lists to one [B, L] i32 batch. Causal attention never looks right, so padding at
 * the end changes no real position's output. */
export function padRight(seqs: number[][], padId: number): Tensor<[number, number]> {
  const L = Math.max(...seqs.map((s) => s.length));
  const out = new Int32Array(seqs.length * L).fill(padId);
  seqs.forEach((s, i) => out.set(s, i * L));
  return fromArray<[number, number]>(out, [seqs.length, L], "i32");
}

/** A GPT trunk with a scalar head: the reward r(prompt, completion) of a whole sequence. */
export class RewardModel extends Module {
  /** The transformer, initialised from the SFT model. */
  trunk: GPT;
  /** [C] → [1]: the reward, read at the last real token. */
  head: Linear<number, 1>;
  /** A reward model whose trunk copies `sft`'s weights; the head starts near 0. */
  constructor(sft: GPT, opts: { seed?: number } = {}) {
    super();
    this.trunk = cloneGPT(sft);
    this.head = new Linear(sft.config.nEmbd, 1, { seed: opts.seed ?? 7 });
  }
  /** Scores [B] of right-padded `tokens` [B, L] whose real lengths are `lengths`. */
  forward(tokens: Tensor<[number, number]>, lengths: number[]): Tensor<[number]> {
    const [B, L] = tokens.shape;
    if (lengths.length !== B || lengths.some((n) => !(n >= 1 && n <= L))) {
      throw new RangeError(`RewardModel: need ${B} lengths in 1..${L}, got [${lengths.join(", ")}]`);
    }
    const all = this.head.forward(this.trunk.hidden(tokens)).reshape([B, L]);
    // A one-hot of each row's last real position picks its score.
    const last = new Float32Array(B * L);
    lengths.forEach((n, i) => (last[i * L + n - 1] = 1));
    return all.mul(fromArray<[number, number]>(last, [B, L])).sum(1);
  }
  /** Scores [B] of token lists (padded here). */
  score(seqs: number[][], padId: number): Tensor<[number]> {
    return this.forward(padRight(seqs, padId), seqs.map((s) => s.length));
  }
}

/** The Bradley–Terry loss: mean over pairs of −log σ(r_chosen − r_rejected), from rewards [B]. */
export function rewardModelLoss(chosen: Tensor<[number]>, rejected: Tensor<[number]>): Tensor<[]> {
  return chosen.sub(rejected).logsigmoid().mean().neg();
}

/** Rewards [chosen, rejected], each [B], of preference pairs in one forward. */
export function pairRewards(
  rm: RewardModel,
  pairs: EncodedPair[],
  padId: number,
): { chosen: Tensor<[number]>; rejected: Tensor<[number]> } {
  const lengths = (k: "chosen" | "rejected") => pairs.map((p) => p.prompt.length + p[k].length);
  const r = rm.forward(batchPairs(pairs, padId).tokens, [...lengths("chosen"), ...lengths("rejected")]);
  return { chosen: r.narrow(0, 0, pairs.length), rejected: r.narrow(0, pairs.length, pairs.length) };
}

/** Fraction of `pairs` whose chosen completion gets the higher reward (no tape). */
export async function rewardAccuracy(
  rm: RewardModel,
  pairs: EncodedPair[],
  padId: number,
  batchSize = 16,
): Promise<number> {
  let right = 0;
  for (let i = 0; i < pairs.length; i += batchSize) {
    right += await scope(() => {
      const { chosen, rejected } = noGrad(() => pairRewards(rm, pairs.slice(i, i + batchSize), padId));
      return chosen.gt(rejected).cast("f32").sum().item();
    });
  }
  return right / pairs.length; // 0 / 0 = NaN without pairs
}

/** Reward-model training settings. */
export interface RewardModelConfig {
  /** Optimizer steps. */
  steps: number;
  /** Pairs per step. */
  batchSize: number;
  /** Learning rate (AdamW, constant). */
  lr: number;
  /** Padding token id. */
  padId: number;
  /** Gradient-norm clip (default 1). */
  maxGradNorm?: number;
  /** Shuffling seed (default 0). */
  seed?: number;
}

/** Fits `rm` to preference pairs with {@link rewardModelLoss}; returns each step's loss and the
 * accuracy on `heldOut` pairs (NaN without them). */
export async function trainRewardModel(
  rm: RewardModel,
  train: EncodedPair[],
  heldOut: EncodedPair[],
  cfg: RewardModelConfig,
): Promise<{ losses: number[]; heldOutAccuracy: number }> {
  if (!train.length) throw new Error("trainRewardModel: no training pairs");
  const opt = new AdamW(rm.namedParameters(), { lr: cfg.lr, weightDecay: 0 });
  const rand = rng(cfg.seed ?? 0), losses: number[] = [];
  for (let s = 0; s < cfg.steps; s++) {
    const batch = Array.from({ length: cfg.batchSize }, () => train[Math.floor(rand() * train.length)]);
    const v = await scope(() => {
      const { chosen, rejected } = pairRewards(rm, batch, cfg.padId);
      const loss = rewardModelLoss(chosen, rejected);
      loss.backward();
      clipGradNorm(rm.parameters(), cfg.maxGradNorm ?? 1);
      opt.step();
      opt.zeroGrad();
      return stack([loss.detach()]).data();
    });
    if (!Number.isFinite(v[0])) throw new Error(`trainRewardModel: loss is ${v[0]} at step ${s + 1}`);
    losses.push(v[0]);
  }
  return { losses, heldOutAccuracy: await rewardAccuracy(rm, heldOut, cfg.padId, cfg.batchSize) };
}
