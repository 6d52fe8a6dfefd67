/**
 * Optimizers (SGD with momentum, Adam, AdamW), learning-rate schedules and gradient clipping.
 * State lives on the device next to the parameters; an update is a few fused kernels per tensor.
 */
import { hostWrite, keep, scope, type Shape, Tensor, where, zeros, zerosLike } from "../tensor/mod.ts";
import { assignAll } from "../tensor/mod.ts";
import { checkInt, checkNumber, raise } from "../tensor/check.ts";
import { fmtShape } from "../tensor/shape.ts";

const nonNegative = (v: number) => v >= 0;

/** What every optimizer has. */
export interface Optimizer {
  /** Current learning rate (a schedule may set it before each step). */
  lr: number;
  /** Apply one update from the parameters' `.grad`; with `ok` (a bool scalar on the device), only
   * where it is true, so a step can be skipped without reading a value back. */
  step(ok?: Tensor<[]>): void;
  /** Clear the parameters' gradients. */
  zeroGrad(): void;
  /** Step count and state tensors, for checkpoints. */
  stateDict(): { step: number; state: Record<string, Tensor<Shape>> };
  /** Restore from `stateDict()`. */
  loadStateDict(sd: { step: number; state: Record<string, Tensor<Shape>> }): void;
}

/** Shared bookkeeping of optimizers: named parameters and per-parameter state buffers. */
export abstract class OptimizerBase implements Optimizer {
  /** Named parameters. */
  protected params: [string, Tensor<Shape>][];
  /** State tensors by "param.slot". */
  protected state: Map<string, Tensor<Shape>> = new Map();
  /** Steps taken. */
  protected t = 0;
  /** Optimize `params` (tensors, or [name, tensor] pairs) at learning rate `lr`. */
  constructor(params: Tensor<Shape>[] | [string, Tensor<Shape>][], public lr: number) {
    const kind = "an array of tensors or [name, tensor] pairs (model.namedParameters())";
    if (!Array.isArray(params)) throw new TypeError(`${this.constructor.name}: params must be ${kind}`);
    this.params = params.map((p, i): [string, Tensor<Shape>] => (p instanceof Tensor ? [String(i), p] : p));
    checkNumber(`${this.constructor.name}: lr`, lr, "≥ 0", nonNegative);
  }
  /** The state slots a parameter may have (what `loadStateDict` accepts after "name."). */
  protected slots: string[] = [];
  /** The state slot `key` of parameter `name`, created as zeros. */
  protected slot(name: string, key: string, like: Tensor<Shape>): Tensor<Shape> {
    const k = `${name}.${key}`;
    if (!this.state.has(k)) this.state.set(k, keep(zerosLike(like).realize()));
    return this.state.get(k)!;
  }
  /** Update one parameter from its gradient. */
  abstract update(name: string, p: Tensor<Shape>, g: Tensor<Shape>): void;
  /** The numbers step `t` needs from the host (the learning rate first). */
  protected coefficients(_t: number): number[] {
    return [this.lr];
  }
  /** This step's `coefficients` as 0-d tensors. They are written into device memory each step (by
   * `hostWrite`, so also before each replay of a compiled step), not baked into kernels as constants:
   * a schedule's lr and the step count stay live, and every step reuses the same kernels. */
  protected coef: Tensor<[]>[] = [];
  #coef: Tensor<Shape> | null = null;
  #ok: Tensor<[]> | undefined;
  /** `t.assign(v)` for each `[t, v]` (one launch where the backend can: `assignAll`), unless this
   * step's `ok` is false. Returns the first `t`. */
  protected put(...pairs: [Tensor<Shape>, Tensor<Shape>][]): Tensor<Shape> {
    assignAll(pairs.map(([t, v]) => [t, this.#ok ? where(this.#ok, v, t) : v]));
    return pairs[0][0];
  }
  /** Apply one update to every parameter with a gradient (where `ok`, when given, is true). */
  step(ok?: Tensor<[]>): void {
    checkNumber(`${this.constructor.name}: lr`, this.lr, "≥ 0", nonNegative); // (a schedule may have set it)
    this.#ok = ok;
    const coef = this.#coef ??= keep(zeros([this.coefficients(1).length]).realize());
    hostWrite(coef, () => this.coefficients(++this.t));
    scope(() => {
      this.coef = coef.split(1).map((c) => c.reshape([]));
      for (const [name, p] of this.params) if (p.grad) this.update(name, p, p.grad);
    });
  }
  /** Clear gradients. */
  zeroGrad(): void {
    for (const [, p] of this.params) p.zeroGrad();
  }
  /** Step count and state tensors. */
  stateDict(): { step: number; state: Record<string, Tensor<Shape>> } {
    return { step: this.t, state: Object.fromEntries([...this.state].map(([k, v]) => [k, v.detach()])) };
  }
  /** Restore `stateDict()` output. */
  loadStateDict(sd: { step: number; state: Record<string, Tensor<Shape>> }): void {
    const who = `${this.constructor.name}.loadStateDict`;
    checkInt(`${who}: step`, sd.step, 0);
    // Every state tensor is checked before anything changes.
    const want = new Map<string, string>();
    for (const [n, p] of this.params) for (const s of this.slots) want.set(`${n}.${s}`, fmtShape(p.shape));
    const shape = (v: unknown) => v instanceof Tensor ? fmtShape(v.shape) : `${v}`;
    const [k, v] = Object.entries(sd.state).find(([k, v]) => shape(v) !== want.get(k)) ?? [];
    if (k !== undefined) {
      const why = want.has(k) ? `expected ${want.get(k)}` : `not a slot (${this.slots}) of a parameter`;
      throw new Error(`${who}: state ${k} is ${shape(v)}, ${why}`);
    }
    this.t = sd.step;
    // Into the existing state's memory where there is some (a compiled step holds on to it), else
    // into new memory: never shared with `sd`, whose owner updates it in place.
    for (const [k, v] of Object.entries(sd.state)) {
      this.state.get(k)?.assign(v) ?? this.state.set(k, keep(zerosLike(v).assign(v)));
    }
  }
}

/** Stochastic gradient descent with optional momentum. */
export class SGD extends OptimizerBase {
  /** Its state: a momentum buffer per parameter. */
  protected override slots = ["momentum"];
  /** SGD at `lr`, with `momentum` (0 = none). */
  constructor(params: Tensor<Shape>[] | [string, Tensor<Shape>][], lr: number, readonly momentum = 0) {
    super(params, lr);
    checkNumber("SGD: momentum", momentum, "≥ 0", nonNegative);
  }
  /** p ← p − lr·(μ·buf + g). */
  update(name: string, p: Tensor<Shape>, g: Tensor<Shape>): void {
    if (this.momentum) {
      const buf = this.slot(name, "momentum", p);
      g = this.put([buf, buf.mul(this.momentum).add(g)]);
    }
    this.put([p, p.sub(g.mul(this.coef[0]))]);
  }
}

/** Adam options. */
export interface AdamOptions {
  /** Learning rate. */
  lr?: number;
  /** Moment decay rates (default 0.9, 0.999). */
  betas?: [number, number];
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (AdamW; default 0). */
  weightDecay?: number;
  /** Which parameters decay; default: those of rank ≥ 2 (not biases or LayerNorm). */
  decay?: (name: string, p: Tensor<Shape>) => boolean;
}

/** Adam (Kingma & Ba, 2015) with decoupled weight decay (AdamW, Loshchilov & Hutter, 2019). */
export class AdamW extends OptimizerBase {
  /** Its state: first and second moments per parameter. */
  protected override slots = ["exp_avg", "exp_avg_sq"];
  /** Moment decay rates. */
  readonly betas: [number, number];
  /** Denominator guard. */
  readonly eps: number;
  /** Decoupled weight decay. */
  readonly weightDecay: number;
  /** Which parameters decay. */
  readonly decay: (name: string, p: Tensor<Shape>) => boolean;
  /** AdamW over `params` (names let `decay` choose). */
  constructor(params: Tensor<Shape>[] | [string, Tensor<Shape>][], opts: AdamOptions = {}) {
    super(params, opts.lr ?? 1e-3);
    const who = this.constructor.name;
    this.betas = opts.betas ?? [0.9, 0.999];
    [0, 1].forEach((i) =>
      checkNumber(`${who}: betas[${i}]`, this.betas[i], "in [0, 1)", (v) => v >= 0 && v < 1)
    );
    this.eps = checkNumber(`${who}: eps`, opts.eps ?? 1e-8, "≥ 0", nonNegative);
    this.weightDecay = checkNumber(`${who}: weightDecay`, opts.weightDecay ?? 0, "≥ 0", nonNegative);
    this.decay = opts.decay ?? ((_, p) => p.rank >= 2);
  }
  /** [stepSize, c2, lr·wd] of step `t`. */
  protected override coefficients(t: number): number[] {
    const [b1, b2] = this.betas;
    return [this.lr / (1 - b1 ** t), 1 / Math.sqrt(1 - b2 ** t), this.lr * this.weightDecay];
  }
  /** m, v moving averages; p ← p − lr·(m̂/(√v̂ + eps) + wd·p). */
  update(name: string, p: Tensor<Shape>, g: Tensor<Shape>): void {
    const [b1, b2] = this.betas, [stepSize, c2, decay] = this.coef;
    const m = this.slot(name, "exp_avg", p), v = this.slot(name, "exp_avg_sq", p);
    const m1 = m.mul(b1).add(g.mul(1 - b1)), v1 = v.mul(b2).add(g.mul(g).mul(1 - b2));
    let next = p.sub(m1.mul(stepSize).div(v1.sqrt().mul(c2).add(this.eps)));
    if (this.weightDecay && this.decay(name, p)) next = next.sub(p.mul(decay));
    this.put([p, next], [m, m1], [v, v1]);
  }
}

/** Adam: AdamW without weight decay. */
export class Adam extends AdamW {
  /** Adam over `params`. */
  constructor(
    params: Tensor<Shape>[] | [string, Tensor<Shape>][],
    opts: Omit<AdamOptions, "weightDecay" | "decay"> = {},
  ) {
    super(params, { ...opts, weightDecay: 0 });
  }
}

/** Learning rate at `step` (0-based): linear warmup over `warmup` steps, then constant, linear or
 * cosine decay to `minLr` at `total`. */
export function lrAt(
  step: number,
  o: {
    lr: number;
    warmup?: number;
    total?: number;
    decay?: "constant" | "linear" | "cosine";
    minLr?: number;
  },
): number {
  const { lr, warmup = 0, total = Infinity, decay = "constant", minLr = 0 } = o;
  checkInt("lrAt: warmup", warmup, 0);
  for (const [k, v] of Object.entries({ step, lr, minLr })) checkNumber(`lrAt: ${k}`, v, "≥ 0", nonNegative);
  if (!["constant", "linear", "cosine"].includes(decay)) raise(`lrAt: unknown decay "${decay}"`);
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (decay === "constant" || !Number.isFinite(total)) return lr;
  const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  const f = decay === "linear" ? 1 - t : 0.5 * (1 + Math.cos(Math.PI * t));
  return minLr + (lr - minLr) * f;
}

/** Scale all gradients so their global L2 norm is at most `maxNorm`, on the device (no read).
 * Returns the norm before clipping as a scalar tensor. */
export function clipGradNorm(params: Tensor<Shape>[], maxNorm: number): Tensor<[]> {
  checkNumber("clipGradNorm: maxNorm", maxNorm, "> 0", (v) => v > 0);
  const grads = params.map((p) => p.grad).filter((g): g is Tensor<Shape> => !!g);
  if (!grads.length) return zeros([]);
  const norm = grads.map((g) => g.mul(g).sum()).reduce((a, b) => a.add(b)).sqrt().realize();
  const coef = norm.add(1e-6).div(maxNorm).maximum(1).realize(); // ≥ 1: divide by it
  for (const g of grads) g.assign(g.div(coef));
  return norm as Tensor<[]>;
}
