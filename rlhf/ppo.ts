/**
 * The arithmetic of RLHF with PPO, on per-token tensors [B, T] where position t scores token t+1
 * (the layout of {@link tokenLogProbs}) and `mask` marks completion tokens: KL-penalised rewards,
 * generalised advantage estimation, advantage whitening, the clipped policy and value losses, and
 * the adaptive KL coefficient of Ziegler et al. (2019).
 *
 * Unlike DPO, which fits preferences with one classification loss, RLHF first learns a reward,
 * then samples from the policy and pushes up what scored well, held near the reference by a KL
 * penalty paid token by token.
 * @module
 */
import { concat, type Tensor, where, zeros } from "../tensor/mod.ts";
import { checkNumber } from "../tensor/check.ts";

/** A [B, T] tensor whose sizes come from another argument (not inferred from this one). */
export type Same<B extends number, T extends number> = Tensor<[NoInfer<B>, NoInfer<T>]>;

/** Σ x·mask / Σ mask over every element (0 when the mask is empty). Here and below, sizes B and T come
 * from the first [B, T] tensor: another argument of other sizes is a compile error where they are known. */
export function maskedMean<B extends number, T extends number>(
  x: Tensor<[B, T]>,
  mask: Same<B, T>,
): Tensor<[]> {
  return x.mul(mask).sum().div(mask.sum().maximum(1));
}

/** (x − mean)/std over the masked elements (variance with Bessel's correction), 0 elsewhere;
 * `shiftMean: false` keeps the mean. Whitened advantages make the step size independent of the
 * reward's scale. */
export function whiten<B extends number, T extends number>(
  x: Tensor<[B, T]>,
  mask: Same<B, T>,
  opts: { shiftMean?: boolean } = {},
): Tensor<[B, T]> {
  const n = mask.sum(), mean = maskedMean(x, mask);
  const centred = x.sub(mean);
  const variance = maskedMean(centred.mul(centred), mask).mul(n.div(n.sub(1).maximum(1)));
  const scaled = centred.mul(variance.add(1e-8).rsqrt());
  return (opts.shiftMean === false ? scaled.add(mean) : scaled).mul(mask);
}

/** The last masked position of each row as a 0/1 tensor [B, T] (completions are contiguous). */
export function lastMasked<B extends number, T extends number>(mask: Tensor<[B, T]>): Tensor<[B, T]> {
  const [B, T] = mask.shape;
  const next = concat([mask.narrow(1, 1, T - 1), zeros([B, 1])], 1); // mask shifted left by one
  return mask.mul(next.neg().add(1));
}

/** Per-token rewards [B, T]: −klCoef·(log π − log π_ref) on every completion token, plus the
 * sequence's `score` [B] on its last completion token. The KL estimate log π − log π_ref is taken
 * at the sampled token, so its expectation under π is KL(π‖π_ref). */
export function klPenalizedRewards<B extends number, T extends number>(
  score: Tensor<[NoInfer<B>]>,
  logProbs: Tensor<[B, T]>,
  refLogProbs: Same<B, T>,
  mask: Same<B, T>,
  klCoef: number,
): Tensor<[B, T]> {
  checkNumber("klPenalizedRewards: klCoef", klCoef, "≥ 0", (v) => v >= 0);
  return logProbs.sub(refLogProbs).mul(mask).mul(-klCoef).add(lastMasked(mask).mul(score.unsqueeze(-1)));
}

/** Discount γ and GAE's λ (defaults 1 and 0.95). */
export interface GAEOptions {
  /** Discount per token (default 1: a completion is one episode with its reward at the end). */
  gamma?: number;
  /** Bias/variance trade-off: 0 = one-step TD, 1 = Monte Carlo returns (default 0.95). */
  lambda?: number;
}

/**
 * Generalised advantage estimation over the masked tokens, right to left:
 * δ_t = r_t + γ·V_{t+1} − V_t and A_t = δ_t + γλ·A_{t+1}, where V and A past the completion's end
 * count as 0 (the episode is over). Returns the advantages and the value targets A + V, both 0 off
 * the mask.
 */
export function gae<B extends number, T extends number>(
  rewards: Tensor<[B, T]>,
  values: Same<B, T>,
  mask: Same<B, T>,
  opts: GAEOptions = {},
): { advantages: Tensor<[B, T]>; returns: Tensor<[B, T]> } {
  const { gamma = 1, lambda = 0.95 } = opts, [B, T] = rewards.shape;
  for (const [k, v] of Object.entries({ gamma, lambda })) {
    checkNumber(`gae: ${k}`, v, "in [0, 1]", (x) => x >= 0 && x <= 1);
  }
  const col = (x: Tensor<[number, number]>, t: number): Tensor<[number, 1]> => x.narrow(1, t, 1);
  const v = values.mul(mask);
  let nextValue: Tensor<[number, 1]> = zeros([B, 1]), nextAdv: Tensor<[number, 1]> = zeros([B, 1]);
  const cols: Tensor<[number, 1]>[] = [];
  for (let t = T - 1; t >= 0; t--) {
    const delta = col(rewards, t).add(nextValue.mul(gamma)).sub(col(v, t));
    const adv = delta.add(nextAdv.mul(gamma * lambda)).mul(col(mask, t));
    cols.unshift(adv);
    [nextValue, nextAdv] = [col(v, t), adv];
  }
  const advantages = concat(cols, 1).reshape([B, T]);
  return { advantages, returns: advantages.add(v).mul(mask) };
}

/** Inputs of the policy loss, all [B, T] (sizes taken from `logProbs`). */
export interface PPOLossInputs<B extends number = number, T extends number = number> {
  /** log π(token) under the policy being trained (on the tape). */
  logProbs: Tensor<[B, T]>;
  /** log π_old(token) from when the rollout was sampled. */
  oldLogProbs: Same<B, T>;
  /** Advantages (usually whitened). */
  advantages: Same<B, T>;
  /** 1 on completion tokens, 0 elsewhere. */
  mask: Same<B, T>;
}

/** The clipped surrogate loss and its diagnostics. */
export interface PPOLossResult {
  /** Masked mean of max(−ρA, −clip(ρ, 1−ε, 1+ε)A), ρ = π/π_old. */
  loss: Tensor<[]>;
  /** Fraction of masked tokens where the clipped term is the larger (their gradient is 0). */
  clipFraction: Tensor<[]>;
  /** ½·mean (log ρ)², a low-variance estimate of KL(π_old‖π). */
  approxKl: Tensor<[]>;
}

/** PPO's clipped surrogate objective (Schulman et al., 2017), negated as a loss: a token's ratio
 * may move only ε (`clip`, default 0.2) past 1 in the direction its advantage favours. */
export function ppoLoss<B extends number, T extends number>(
  x: PPOLossInputs<B, T>,
  opts: { clip?: number } = {},
): PPOLossResult {
  const eps = checkNumber("ppoLoss: clip", opts.clip ?? 0.2, "> 0", (v) => v > 0);
  const logRatio = x.logProbs.sub(x.oldLogProbs), ratio = logRatio.exp();
  const unclipped = x.advantages.neg().mul(ratio);
  const clipped = x.advantages.neg().mul(ratio.clamp(1 - eps, 1 + eps));
  // `where` picks one branch, so a tie (ρ inside the range) sends the gradient through once.
  const isClipped = clipped.gt(unclipped);
  return {
    loss: maskedMean(where(isClipped, clipped, unclipped), x.mask),
    clipFraction: maskedMean(isClipped.cast("f32"), x.mask).detach(),
    approxKl: maskedMean(logRatio.mul(logRatio), x.mask).mul(0.5).detach(),
  };
}

/** The value loss with clipping: ½·masked mean of max((V − R)², (V_clipped − R)²), where
 * V_clipped = V_old + clip(V − V_old, −c, c) keeps the value head from jumping on one batch. */
export function valueLoss(
  x: Record<"values" | "oldValues" | "returns" | "mask", Tensor<[number, number]>>,
  opts: { clip?: number } = {},
): Tensor<[]> {
  const c = checkNumber("valueLoss: clip", opts.clip ?? 0.2, "> 0", (v) => v > 0);
  const vClipped = x.oldValues.add(x.values.sub(x.oldValues).clamp(-c, c));
  const a = x.values.sub(x.returns), b = vClipped.sub(x.returns);
  return maskedMean(a.mul(a).maximum(b.mul(b)), x.mask).mul(0.5);
}

/** Settings of the adaptive KL coefficient. */
export interface AdaptiveKLOptions {
  /** Initial coefficient. */
  initKlCoef: number;
  /** The per-sequence KL(π‖π_ref) to hold. */
  target: number;
  /** Samples over which a 20% error changes the coefficient by 20%. */
  horizon: number;
}

/** Ziegler et al.'s proportional controller: after each batch, coef ← coef·(1 + e·n/horizon),
 * e = clip(KL/target − 1, −0.2, 0.2), so the KL settles near the target whatever the reward scale. */
export class AdaptiveKLController {
  /** The current coefficient. */
  value: number;
  /** The settings. */
  readonly options: AdaptiveKLOptions;
  /** A controller starting at `o.initKlCoef`. */
  constructor(o: AdaptiveKLOptions) {
    checkNumber("AdaptiveKLController: target", o.target, "> 0", (v) => v > 0);
    checkNumber("AdaptiveKLController: horizon", o.horizon, "> 0", (v) => v > 0);
    checkNumber("AdaptiveKLController: initKlCoef", o.initKlCoef, "≥ 0", (v) => v >= 0);
    this.options = o;
    this.value = o.initKlCoef;
  }
  /** Update from the measured KL of a batch of `nSamples` sequences. */
  update(currentKl: number, nSamples: number): void {
    const err = Math.min(Math.max(currentKl / this.options.target - 1, -0.2), 0.2);
    this.value *= 1 + (err * nSamples) / this.options.horizon;
  }
}
