/**
 * The DPO training loop: batches of preference pairs run as one concatenated forward (chosen and
 * rejected together), a frozen reference (or reference log-probs computed once up front), the loss
 * from loss.ts, clipping, warmup, periodic evaluation, and TRL-named metrics read back once a step.
 */
import { flush, fromArray, noGrad, rng, scope, type Shape, stack, type Tensor } from "../tensor/mod.ts";
import { compile, type Compiled } from "../autograd/compile.ts";
import { permutation } from "../tensor/mod.ts";
import { GPT } from "../nn/gpt.ts";
import { AdamW, clipGradNorm, lrAt, type Optimizer } from "../nn/optim.ts";
import { loadCheckpoint, saveCheckpoint } from "../nn/checkpoint.ts";
import type { EncodedPair } from "./data.ts";
import { checkLossOptions, dpoLoss, type DPOLossOptions, sequenceLogProbs } from "./loss.ts";
import { checkInt, checkNumber, parseJson, raise } from "../tensor/check.ts";

/** Trainer settings (loss options included). */
export interface DPOConfig extends DPOLossOptions {
  /** Optimizer steps. */
  steps: number;
  /** Pairs per step. */
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup steps (default 10% of steps). */
  warmup?: number;
  /** Global gradient-norm clip (default 1). */
  maxGradNorm?: number;
  /** Evaluate every this many steps (0 = only at the end). */
  evalEvery?: number;
  /** Use reference log-probs computed once before training instead of a forward per step. */
  precomputeRef?: boolean;
  /** Padding token id. */
  padId: number;
  /** Replay each batch shape's recorded step (default true; false: eager, for comparison). */
  compile?: boolean;
  /** Shuffling seed. */
  seed?: number;
  /** Where `run()` saves checkpoints (policy, optimizer state, step), atomically. */
  checkpointPath?: string;
  /** Save every this many steps (and always at the end) when `checkpointPath` is set. */
  checkpointEvery?: number;
}

/** One logged step, with TRL's metric names. */
export interface DPOMetrics {
  /** Step number (1-based). */
  step: number;
  /** Mean loss. */
  loss: number;
  /** Mean implicit reward of chosen completions. */
  "rewards/chosen": number;
  /** Mean implicit reward of rejected completions. */
  "rewards/rejected": number;
  /** Fraction of pairs whose chosen reward beats the rejected one. */
  "rewards/accuracies": number;
  /** Mean chosen − rejected reward. */
  "rewards/margins": number;
  /** Mean log-prob of chosen completions under the policy (summed over tokens; averaged for ipo and simpo). */
  "logps/chosen": number;
  /** Mean log-prob of rejected completions under the policy (as for chosen). */
  "logps/rejected": number;
  /** Gradient norm before clipping. */
  grad_norm: number;
  /** Learning rate used. */
  learning_rate: number;
  /** Non-padding tokens through the policy per second. */
  tokens_per_s: number;
}

/** TRL's names of the metrics a batch's forward yields, in order (the loss, then the rewards and
 * log-probs); a step adds `grad_norm`, `learning_rate` and `tokens_per_s`. */
const REWARDS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"] as const;
const METRICS = ["loss", ...REWARDS, "logps/chosen", "logps/rejected"] as const;

/** Pad chosen and rejected sequences of `pairs` into one [2B, L] batch (chosen rows first) with a
 * mask marking completion tokens. L is the longest sequence, rounded up to a multiple of `padTo` but
 * not past `maxLen` (fewer distinct shapes for compiled steps; right padding changes no result). */
export function batchPairs(pairs: EncodedPair[], padId: number, padTo = 1, maxLen = Infinity): {
  tokens: Tensor<[number, number]>;
  mask: Tensor<[number, number]>;
  realTokens: number;
} {
  if (!pairs.length) raise("batchPairs: no pairs");
  const empty = pairs.findIndex((p) => !p.chosen.length || !p.rejected.length);
  if (empty >= 0) raise(`batchPairs: pair ${empty} has an empty completion (nothing to score)`);
  checkInt("batchPairs: padTo", padTo);
  const seqs = [...pairs.map((p) => [p.prompt, p.chosen]), ...pairs.map((p) => [p.prompt, p.rejected])];
  const lengths = seqs.map(([p, c]) => p.length + c.length), longest = Math.max(...lengths);
  const L = Math.max(longest, Math.min(Math.ceil(longest / padTo) * padTo, maxLen));
  const tok = new Int32Array(seqs.length * L).fill(padId), mask = new Float32Array(seqs.length * L);
  seqs.forEach(([p, c], i) => {
    tok.set([...p, ...c], i * L);
    mask.fill(1, i * L + p.length, i * L + p.length + c.length);
  });
  const rows = seqs.length, realTokens = lengths.reduce((n, l) => n + l, 0);
  return { tokens: fromArray(tok, [rows, L], "i32"), mask: fromArray(mask, [rows, L]), realTokens };
}

/** Log-probs of chosen and rejected completions of `pairs` in one forward: each [B]. */
export function pairLogProbs(
  model: GPT,
  pairs: EncodedPair[],
  padId: number,
  average = false,
): { chosen: Tensor<[number]>; rejected: Tensor<[number]>; chosenAvg: Tensor<[number]> } {
  const { tokens, mask } = batchPairs(pairs, padId);
  return batchLogProbs(model, [tokens, mask, scoredCounts(pairs)], average);
}

/** Scored tokens of each pair's chosen and rejected completion, [2B] (chosen first): every
 * completion token that has a token before it. */
function scoredCounts(pairs: EncodedPair[]): Tensor<[number]> {
  const scored = (p: EncodedPair, c: number[]) => Math.max(p.prompt.length ? c.length : c.length - 1, 1);
  const counts = [...pairs.map((p) => scored(p, p.chosen)), ...pairs.map((p) => scored(p, p.rejected))];
  return fromArray(counts, [counts.length]);
}

/** `pairLogProbs` from a batch's tokens, mask and scored-token counts (`batchPairs`, `scoredCounts`). */
function batchLogProbs(model: GPT, [tokens, mask, counts]: Batch, average: boolean) {
  const sum = sequenceLogProbs(model.forward(tokens), tokens, mask), B = tokens.shape[0] / 2;
  const [c, r]: Tensor<[number]>[] = sum.split(B); // chosen rows, then rejected: [B] each
  const [nc, nr]: Tensor<[number]>[] = counts.split(B), chosenAvg = c.div(nc);
  return { chosen: average ? chosenAvg : c, rejected: average ? r.div(nr) : r, chosenAvg };
}

/** A frozen copy of a model: same weights, off the tape, never updated. */
export function frozenCopy(model: GPT): GPT {
  const ref = new GPT(model.config), sd = model.stateDict();
  for (const [name, p] of ref.namedParameters()) p.assign(sd[name]).requiresGrad_(false); // a copy
  return ref.eval();
}

/** Reference log-probs of every pair, computed once (batched, no tape): [chosen, rejected]. */
export async function precomputeReference(
  reference: GPT,
  pairs: EncodedPair[],
  padId: number,
  batchSize = 16,
  average = false,
): Promise<[Float32Array, Float32Array]> {
  checkInt("precomputeReference: batchSize", batchSize);
  const out: [Float32Array, Float32Array] = [new Float32Array(pairs.length), new Float32Array(pairs.length)];
  for (let i = 0; i < pairs.length; i += batchSize) {
    const chunk = pairs.slice(i, i + batchSize);
    const d = await scope(() => {
      const { chosen, rejected } = noGrad(() => pairLogProbs(reference, chunk, padId, average));
      return stack([chosen, rejected]).data();
    });
    out[0].set(d.subarray(0, chunk.length), i);
    out[1].set(d.subarray(chunk.length), i);
  }
  return out;
}

/** A batch's inputs (see `#inputs`). */
type Batch = [Tensor<[number, number]>, Tensor<[number, number]>, ...Tensor<[number]>[]];

/** Trains a policy with DPO. Construct, then `await train()` (or call `step()` yourself). */
export class DPOTrainer {
  /** The model being aligned. */
  readonly policy: GPT;
  /** The frozen reference (null when reference-free or SimPO). */
  readonly reference: GPT | null;
  /** Optimizer of the policy (AdamW by default). */
  readonly optimizer: Optimizer;
  /** Settings. */
  readonly config: DPOConfig;
  /** Training pairs. */
  readonly train: EncodedPair[];
  /** Held-out pairs. */
  readonly eval: EncodedPair[];
  /** Steps done. */
  stepCount = 0;
  #order: number[] = [];
  #rand: () => number;
  #draws = 0; // numbers drawn from #rand: a checkpoint replays them to restore its state
  #draw = () => (this.#draws++, this.#rand());
  #refCache: [Float32Array, Float32Array] | null = null;
  #average: boolean;

  /** A trainer; the reference defaults to a frozen copy of the policy. */
  constructor(o: {
    policy: GPT;
    reference?: GPT | null;
    train: EncodedPair[];
    eval?: EncodedPair[];
    optimizer?: Optimizer;
    config: DPOConfig;
  }) {
    if (!o.train.length) throw new Error("DPOTrainer: no training pairs");
    const c = o.config, needRef = !c.referenceFree && c.lossType !== "simpo";
    checkLossOptions(c, "DPOTrainer");
    for (const k of ["steps", "batchSize"] as const) checkInt(`DPOTrainer: ${k}`, c[k]);
    checkNumber("DPOTrainer: lr", c.lr, "≥ 0", (v) => v >= 0);
    checkInt("DPOTrainer: padId", c.padId, 0);
    if (c.warmup !== undefined) checkInt("DPOTrainer: warmup", c.warmup, 0);
    checkNumber("DPOTrainer: maxGradNorm", c.maxGradNorm ?? 1, "> 0", (v) => v > 0);
    this.policy = o.policy;
    this.config = c;
    // As in TRL, IPO and SimPO compare per-token averages of log-probs, every other loss sums.
    this.#average = c.lossType === "simpo" || c.lossType === "ipo";
    this.reference = needRef ? (o.reference ?? frozenCopy(o.policy)) : null;
    this.optimizer = o.optimizer ?? new AdamW(o.policy.namedParameters(), { lr: c.lr, weightDecay: 0 });
    this.train = o.train;
    this.eval = o.eval ?? [];
    this.#rand = rng(c.seed ?? 0);
    this.#step = compile((...ins: Tensor<Shape>[]) => this.#train(ins), { eager: c.compile === false });
  }

  /** Forward, backward, clipping and the update, compiled (`config.compile`): metrics and the
   * gradient norm come back as one tensor. A non-finite loss or norm skips the update on the device,
   * so `step()` can stop with the policy and optimizer as they were, after its one read. */
  #step: Compiled<Tensor<Shape>[], Tensor<Shape>>;
  #train(ins: Tensor<Shape>[]): Tensor<Shape> {
    const { loss, metrics } = this.#forward(ins as Batch);
    loss.backward();
    const norm = clipGradNorm(this.policy.parameters(), this.config.maxGradNorm ?? 1);
    const check = loss.add(norm);
    this.optimizer.step(check.sub(check).eq(0)); // NaN unless both are finite
    this.optimizer.zeroGrad();
    return stack([...metrics, norm]);
  }

  /** A batch's inputs: tokens and mask [2B, L], scored-token counts [2B], and the reference's
   * log-probs [2B] when they were computed up front (chosen first in each). */
  #inputs(idx: number[], pairs: EncodedPair[], cache: [Float32Array, Float32Array] | null): Batch {
    const batch = idx.map((i) => pairs[i]);
    const { tokens, mask } = batchPairs(batch, this.config.padId, 8, this.policy.config.blockSize);
    const ins: Batch = [tokens, mask, scoredCounts(batch)];
    if (cache) ins.push(fromArray(cache.flatMap((c) => idx.map((i) => c[i])), [2 * idx.length]));
    return ins;
  }

  /** Loss and metrics tensors of a batch from `#inputs` (shared by training and evaluation). */
  #forward(batch: Batch) {
    const [, , counts, cached] = batch, reference = this.reference;
    const pol = batchLogProbs(this.policy, batch, this.#average), B = counts.shape[0] / 2;
    const ref = reference && !cached ? noGrad(() => batchLogProbs(reference, batch, this.#average)) : null;
    const [refC, refR]: (Tensor<[number]> | undefined)[] = cached?.split(B) ?? [ref?.chosen, ref?.rejected];
    const logps = { policyChosen: pol.chosen, policyRejected: pol.rejected, policyChosenAvg: pol.chosenAvg };
    const out = dpoLoss({ ...logps, referenceChosen: refC, referenceRejected: refR }, this.config);
    const c = out.chosenRewards, r = out.rejectedRewards, lp = [pol.chosen, pol.rejected];
    // In METRICS' order.
    const metrics: Tensor<[]>[] = [out.loss.detach(), c.mean(), r.mean(), c.gt(r).cast("f32").mean()];
    metrics.push(c.sub(r).mean(), ...lp.map((l) => l.detach().mean()));
    return { loss: out.loss, metrics };
  }

  /** The reference's log-probs of `pairs`, computed once up front in batches of `batchSize`. */
  #precompute(pairs: EncodedPair[]): Promise<[Float32Array, Float32Array]> {
    const { padId, batchSize } = this.config;
    return precomputeReference(this.reference!, pairs, padId, batchSize, this.#average);
  }

  /** One optimizer step; returns its metrics (one device read). */
  async step(): Promise<DPOMetrics> {
    const cfg = this.config;
    if (cfg.precomputeRef && this.reference) this.#refCache ??= await this.#precompute(this.train);
    const lr = lrAt(this.stepCount, { lr: cfg.lr, warmup: cfg.warmup ?? Math.ceil(cfg.steps / 10) });
    this.optimizer.lr = lr;
    // The next batch of training pair indices (reshuffled each epoch).
    const idx = Array.from({ length: Math.min(cfg.batchSize, this.train.length) }, () => {
      if (!this.#order.length) this.#order = permutation(this.train.length, this.#draw);
      return this.#order.pop()!;
    });
    const t0 = performance.now();
    const pairs = idx.map((i) => this.train[i]);
    const real = pairs.reduce((n, p) => n + 2 * p.prompt.length + p.chosen.length + p.rejected.length, 0);
    const v = await scope(() => this.#step(...this.#inputs(idx, this.train, this.#refCache)).data());
    const bad = ([["loss", v[0]], ["gradient norm", v[7]]] as const).find(([, x]) => !Number.isFinite(x));
    const at = bad && `${bad[0]} is ${bad[1]} at step ${this.stepCount + 1}`;
    if (at) throw new Error(`DPOTrainer: ${at}; stopped before the update (lower lr or beta?)`);
    await flush(); // the step's end (TENSOR_DEBUG=stats reports per flush)
    this.stepCount++;
    return {
      step: this.stepCount,
      ...Object.fromEntries(METRICS.map((n, k) => [n, v[k]])) as Record<(typeof METRICS)[number], number>,
      grad_norm: v[7],
      learning_rate: lr,
      tokens_per_s: real / ((performance.now() - t0) / 1000),
    };
  }

  /** Mean loss and reward metrics over the held-out pairs (no tape), TRL's `eval_` names. */
  async evaluate(pairs: EncodedPair[] = this.eval): Promise<Record<string, number>> {
    const sums = new Float64Array(METRICS.length);
    const bs = this.config.batchSize, wasTraining = this.policy.training;
    this.policy.eval(); // no dropout while measuring
    const cache = this.reference ? await this.#precompute(pairs) : null;
    for (let i = 0; i < pairs.length; i += bs) {
      const idx = Array.from({ length: Math.min(bs, pairs.length - i) }, (_, k) => i + k);
      const v = await scope(() =>
        noGrad(() => stack(this.#forward(this.#inputs(idx, pairs, cache)).metrics).data())
      );
      v.forEach((x, k) => (sums[k] += x * idx.length));
    }
    this.policy.train(wasTraining);
    // With no pairs every mean is 0 / 0: NaN.
    return Object.fromEntries(METRICS.map((n, k) => [`eval_${n}`, sums[k] / pairs.length]));
  }

  /** Everything to continue exactly: the policy, the optimizer state, the step and the shuffle's state. */
  checkpoint(): { tensors: Record<string, Tensor<Shape>>; metadata: Record<string, string> } {
    const tensors = { ...this.policy.stateDict() };
    for (const [k, v] of Object.entries(this.optimizer.stateDict().state)) tensors[`optimizer.${k}`] = v;
    const shuffle = JSON.stringify({ draws: this.#draws, order: this.#order });
    return { tensors, metadata: { step: String(this.stepCount), shuffle } };
  }

  /** Continue from a {@link checkpoint}. Every name and shape is checked (policy and optimizer state)
   * before anything changes; errors name `source`. */
  restore(
    tensors: Record<string, Tensor<Shape>>,
    metadata: Record<string, string>,
    source = "checkpoint",
  ): void {
    const fail = (why: string) => raise(`DPOTrainer: ${source} ${why}`);
    const step = Number(metadata.step), steps = this.config.steps;
    if (!/^\d+$/.test(metadata.step ?? "") || step > steps) {
      fail(`has step ${JSON.stringify(metadata.step)}, not a step count in 0..${steps}`);
    }
    const noShuffle = () => `DPOTrainer: ${source} has no shuffle state (metadata shuffle)`;
    const shuffle = parseJson(metadata.shuffle ?? "", noShuffle) as { draws: number; order: number[] };
    if (!Array.isArray(shuffle.order) || shuffle.order.some((i) => !(i >= 0 && i < this.train.length))) {
      fail(`has a shuffle state for other training pairs`);
    }
    // An epoch of n pairs takes n − 1 draws: `steps` batches need at most steps · batchSize + n.
    const most = steps * this.config.batchSize + this.train.length;
    if (!(Number.isInteger(shuffle.draws) && shuffle.draws >= 0 && shuffle.draws <= most)) {
      fail(`has ${shuffle.draws} shuffle draws, not an integer in 0..${most} (steps × batchSize + pairs)`);
    }
    const [opt, model] = [true, false].map((o) =>
      Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith("optimizer.") === o))
    );
    const state = Object.fromEntries(Object.entries(opt).map(([k, v]) => [k.slice("optimizer.".length), v]));
    const params = this.policy.stateDict();
    const owner = (k: string) => params[k.replace(/\.[^.]+$/, "")]; // the parameter of state slot k
    const [k, v] = Object.entries(state).find(([s, t]) => owner(s)?.shape.join() !== t.shape.join()) ?? [];
    if (v) fail(`has optimizer state optimizer.${k} [${v.shape}] for no such parameter`);
    try {
      this.policy.loadStateDict(model);
    } catch (e) {
      fail(`does not fit the policy: ${(e as Error).message}`);
    }
    this.optimizer.loadStateDict({ step, state });
    this.stepCount = step;
    this.#rand = rng(this.config.seed ?? 0);
    for (this.#draws = 0; this.#draws < shuffle.draws; this.#draws++) this.#rand();
    this.#order = shuffle.order;
  }

  /** Save {@link checkpoint} to one safetensors file, atomically. */
  async save(path: string): Promise<void> {
    const { tensors, metadata } = this.checkpoint();
    await saveCheckpoint(path, tensors, metadata);
  }

  /** Continue from a file `save` wrote. */
  async load(path: string): Promise<void> {
    const { tensors, metadata } = await loadCheckpoint(path);
    this.restore(tensors, metadata, path);
  }

  /** Run all remaining steps, calling `onLog` with each step's metrics and `onEval` with
   * evaluations (every `evalEvery` steps and at the end). */
  async run(
    onLog: (m: DPOMetrics) => void = () => {},
    onEval: (step: number, m: Record<string, number>) => void = () => {},
  ): Promise<void> {
    const { checkpointPath: path, checkpointEvery: saveEvery = 0, evalEvery: every = 0 } = this.config;
    while (this.stepCount < this.config.steps) {
      onLog(await this.step());
      if (path && saveEvery && this.stepCount % saveEvery === 0) await this.save(path);
      if (this.eval.length && every && this.stepCount % every === 0 && this.stepCount < this.config.steps) {
        onEval(this.stepCount, await this.evaluate());
      }
    }
    if (this.eval.length) onEval(this.stepCount, await this.evaluate());
    if (path) await this.save(path);
  }
}
