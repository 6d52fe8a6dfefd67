/**
 * Direct Preference Optimization: the policy's log-probabilities of completions, and the DPO loss
 * family with Hugging Face TRL's names. DPO (Rafailov et al., 2023) fits a language model to
 * pairwise preferences with one classification loss on the implicit reward β·log π/π_ref — no
 * reward model, no RL loop.
 *
 * The formulas follow TRL v0.19: `DPOTrainer.dpo_loss`, and `CPOTrainer.cpo_loss` for SimPO. As in
 * TRL, IPO and SimPO take per-token averages of the completion log-probs (sum ÷ completion tokens)
 * where every other loss takes sums; the caller does the averaging (DPOTrainer does it for these two
 * types), since the loss never sees sequence lengths. Two differences from TRL: bco_pair's default
 * reward shift δ is the current batch's mean reward, where TRL keeps a running mean over batches;
 * and the SFT term averages each chosen completion's per-token log-prob, then the pairs, where TRL's
 * `rpo_alpha` term pools all chosen tokens of the batch.
 */
import { concat, type Tensor } from "../tensor/mod.ts";
import { checkNumber, fail } from "../tensor/check.ts";
import { targetLogProbs } from "../tensor/composite.ts";
import { fmtShape } from "../tensor/shape.ts";

/** Sum (or, with `average`, mean) over positions of log p(token[t+1] | tokens ≤ t), counting only
 * positions `mask` marks as completion: logits [B, T, V], tokens and mask [B, T] → [B]. A row with
 * no scored token gives 0. */
export function sequenceLogProbs<B extends number, T extends number, V extends number>(
  logits: Tensor<[B, T, V]>,
  // B and T come from the logits alone: tokens or a mask of other sizes is a compile error where known.
  tokens: Tensor<[NoInfer<B>, NoInfer<T>]>,
  mask: Tensor<[NoInfer<B>, NoInfer<T>]>,
  opts: { average?: boolean } = {},
): Tensor<[B]> {
  const [B, T] = logits.shape;
  if (tokens.shape.join() !== `${B},${T}` || mask.shape.join() !== `${B},${T}`) {
    const [l, t, m] = [logits.shape, tokens.shape, mask.shape].map(fmtShape);
    throw new Error(`sequenceLogProbs: logits ${l} need tokens and mask [${B}, ${T}], got ${t} and ${m}`);
  }
  if (T < 2) return logits.sum([1, 2]).mul(0);
  // Logits at t score token t+1 (fused: no [B, T, V] log-probabilities, forward or backward).
  const m = mask.narrow(1, 1, T - 1);
  const total = targetLogProbs(logits.narrow(1, 0, T - 1), tokens.narrow(1, 1, T - 1), m).sum(1);
  return opts.average ? total.div(m.cast("bool").cast(logits.dtype).sum(1).maximum(1)) : total;
}

/** The loss types (TRL's names) plus SimPO. */
export type LossType =
  | "sigmoid"
  | "robust"
  | "ipo"
  | "hinge"
  | "bco_pair"
  | "nca_pair"
  | "sppo_hard"
  | "apo_zero"
  | "apo_down"
  | "simpo";

/** Loss options. */
export interface DPOLossOptions {
  /** Strength of the KL anchor to the reference (the β of the paper; default 0.1). */
  beta?: number;
  /** Which loss (default "sigmoid", the paper's). */
  lossType?: LossType;
  /** Probability ε that a label is flipped (conservative DPO / robust DPO; default 0). */
  labelSmoothing?: number;
  /** SimPO's target reward margin γ (default 0.5). */
  simpoGamma?: number;
  /** Ignore the reference (its log-ratios count as 0). */
  referenceFree?: boolean;
  /** bco_pair's reward shift δ; default: the batch mean of the rewards (detached). */
  bcoDelta?: number;
  /** Weight of an SFT term: negative log-likelihood per token of the chosen completions. */
  sftWeight?: number;
}

/** Per-pair inputs: completion log-probs [B] under policy and reference, summed over tokens (or, for
 * ipo and simpo, averaged over them, as TRL does). */
export interface PairLogProbs {
  /** log π(chosen | prompt). */
  policyChosen: Tensor<[number]>;
  /** log π(rejected | prompt). */
  policyRejected: Tensor<[number]>;
  /** log π_ref(chosen | prompt) (unused when reference-free or SimPO). */
  referenceChosen?: Tensor<[number]>;
  /** log π_ref(rejected | prompt). */
  referenceRejected?: Tensor<[number]>;
  /** Mean per-token log-prob of chosen under the policy (for the SFT term). */
  policyChosenAvg?: Tensor<[number]>;
}

/** The mean loss and, per pair, the detached implicit rewards β·log π/π_ref. */
export interface DPOLossResult {
  /** Scalar loss. */
  loss: Tensor<[]>;
  /** Per-pair losses [B]. */
  losses: Tensor<[number]>;
  /** Implicit reward of chosen [B] (detached). */
  chosenRewards: Tensor<[number]>;
  /** Implicit reward of rejected [B] (detached). */
  rejectedRewards: Tensor<[number]>;
}

const ls = (t: Tensor<[number]>) => t.logsigmoid();

/** What a loss formula reads: the log-ratios c of chosen and r of rejected [B], h = c − r, β, ε and the
 * other options. */
type LossInputs = Record<"c" | "r" | "h", Tensor<[number]>> & Record<"beta" | "eps", number> & DPOLossOptions;

/** Per-pair losses [B] of each type. */
const LOSSES: Record<LossType, (x: LossInputs) => Tensor<[number]>> = {
  // DPO (Rafailov et al., 2023); with ε: conservative DPO (Mitchell, 2023)
  sigmoid: ({ h, beta, eps }) => ls(h.mul(beta)).mul(-(1 - eps)).sub(ls(h.mul(-beta)).mul(eps)),
  // unbiased under label noise ε (Chowdhury et al., 2024)
  robust: ({ h, beta, eps }) =>
    ls(h.mul(beta)).mul(-(1 - eps)).add(ls(h.mul(-beta)).mul(eps)).div(1 - 2 * eps),
  // squared distance of h to 1/(2β) (Azar et al., 2023); h from per-token averages
  ipo: ({ h, beta }) => h.sub(1 / (2 * beta)).pow(2),
  // SLiC hinge (Zhao et al., 2023)
  hinge: ({ h, beta }) => h.mul(-beta).add(1).relu(),
  // binary classifier optimization with a reward shift δ (Jung et al., 2024)
  bco_pair: ({ c, r, beta, bcoDelta }) => {
    const delta = bcoDelta ?? concat([c, r]).mul(beta).mean().detach();
    return ls(c.mul(beta).sub(delta)).neg().sub(ls(r.mul(beta).sub(delta).neg()));
  },
  // noise contrastive alignment (Chen et al., 2024)
  nca_pair: ({ c, r, beta }) =>
    ls(c.mul(beta)).neg().sub(ls(c.mul(-beta)).mul(0.5)).sub(ls(r.mul(-beta)).mul(0.5)),
  // self-play preference optimization, hard labels (Wu et al., 2024)
  sppo_hard: ({ c, r, beta }) => c.sub(0.5 / beta).pow(2).add(r.add(0.5 / beta).pow(2)),
  // anchored preference optimization: push chosen up, rejected down (D'Oosterlinck et al., 2024)
  apo_zero: ({ c, r, beta }) => c.mul(beta).sigmoid().neg().add(1).add(r.mul(beta).sigmoid()),
  // APO: push both down, rejected more
  apo_down: ({ c, h, beta }) => c.mul(beta).sigmoid().add(h.mul(beta).sigmoid().neg().add(1)),
  // length-normalised, reference-free, margin γ (Meng et al., 2024); inputs are averages
  simpo: ({ h, beta, eps, simpoGamma }) => {
    const z = h.sub((simpoGamma ?? 0.5) / beta).mul(beta);
    return ls(z).mul(-(1 - eps)).sub(ls(z.neg()).mul(eps));
  },
};

/** The loss types, for validation and `--help`. */
export const LOSS_TYPES: readonly LossType[] = Object.keys(LOSSES) as LossType[];

/** Checks the options `o` (`who` names the caller in errors): finite numbers, β > 0, ε in [0, 0.5), a
 * known loss type. */
export function checkLossOptions(o: DPOLossOptions, who: string): void {
  checkNumber(`${who}: beta`, o.beta ?? 0.1, "> 0", (b) => b > 0);
  checkNumber(`${who}: labelSmoothing`, o.labelSmoothing ?? 0, "in [0, 0.5)", (e) => e >= 0 && e < 0.5);
  checkNumber(`${who}: simpoGamma`, o.simpoGamma ?? 0.5, "a finite number", () => true);
  if (o.bcoDelta !== undefined) checkNumber(`${who}: bcoDelta`, o.bcoDelta, "a finite number", () => true);
  checkNumber(`${who}: sftWeight`, o.sftWeight ?? 0, "≥ 0", (w) => w >= 0);
  const type = o.lossType ?? "sigmoid";
  if (!LOSS_TYPES.includes(type)) {
    throw new RangeError(`${who}: unknown lossType "${type}" (one of ${LOSS_TYPES.join(", ")})`);
  }
}

/** The DPO loss family. Every formula is on the policy/reference log-ratios of chosen (c) and
 * rejected (r) completions and h = c − r. */
export function dpoLoss(x: PairLogProbs, o: DPOLossOptions = {}): DPOLossResult {
  checkLossOptions(o, "dpoLoss");
  const beta = o.beta ?? 0.1, eps = o.labelSmoothing ?? 0, type = o.lossType ?? "sigmoid";
  const pc = `[${x.policyChosen.shape}]`;
  const [name, t] = Object.entries(x).find(([, v]) => v && `[${v.shape}]` !== pc) ?? [];
  if (t) fail(`dpoLoss: shapes ${pc} and [${t.shape}] cannot broadcast (policyChosen, ${name})`);
  const noRef = o.referenceFree || type === "simpo";
  if (!noRef && (!x.referenceChosen || !x.referenceRejected)) {
    throw new Error("dpoLoss: reference log-probs are required unless referenceFree (or simpo) is set");
  }
  // Log-ratios of chosen and rejected, [B] each.
  const c: Tensor<[number]> = noRef ? x.policyChosen : x.policyChosen.sub(x.referenceChosen!);
  const r: Tensor<[number]> = noRef ? x.policyRejected : x.policyRejected.sub(x.referenceRejected!);
  const losses = LOSSES[type]({ ...o, c, r, h: c.sub(r), beta, eps });
  let loss: Tensor<[]> = losses.mean();
  if (o.sftWeight) {
    if (!x.policyChosenAvg) throw new Error("dpoLoss: sftWeight needs policyChosenAvg");
    loss = loss.sub(x.policyChosenAvg.mean().mul(o.sftWeight));
  }
  return { loss, losses, chosenRewards: c.mul(beta).detach(), rejectedRewards: r.mul(beta).detach() };
}
