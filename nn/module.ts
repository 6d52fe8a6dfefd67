/**
 * Modules: plain objects whose tensor fields that require grad are parameters. Names come from
 * walking the fields (`transformer.h.0.attn.c_attn.weight`), so a model laid out like Hugging
 * Face's has Hugging Face's names for free.
 */
import { embedding, hostWrite, keep, layerNorm, ones, randn, type Shape, Tensor } from "../tensor/mod.ts";
import { rng, zeros } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { checkNumber, isRecord } from "../tensor/check.ts";

/** A parameter: a kept leaf tensor that requires grad. */
export function param<S extends Shape>(t: Tensor<S>): Tensor<S> {
  return keep(t.realize().requiresGrad_());
}

/** Base class: parameter discovery, state dicts and train/eval mode. */
export class Module {
  /** True in training mode (dropout active). */
  training = true;

  /** Parameters with their dotted names, in field order. */
  namedParameters(): [string, Tensor<Shape>][] {
    const out: [string, Tensor<Shape>][] = [];
    const walk = (v: unknown, name: string) => {
      if (v instanceof Tensor && v.requiresGrad) out.push([name, v]);
      else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${name}.${i}`));
      else if (v instanceof Module || (v != null && Object.getPrototypeOf(v) === Object.prototype)) {
        for (const [k, x] of Object.entries(v)) walk(x, name ? `${name}.${k}` : k);
      }
    };
    walk(this, "");
    return out;
  }
  /** All parameters. */
  parameters(): Tensor<Shape>[] {
    return this.namedParameters().map(([, p]) => p);
  }
  /** Name → parameter. */
  stateDict(): Record<string, Tensor<Shape>> {
    return Object.fromEntries(this.namedParameters());
  }
  /** Copy values into the parameters by name. Every parameter must be present with its shape;
   * keys for which `ignore(name)` is true are skipped; any other unknown key is an error. */
  loadStateDict(sd: Record<string, Tensor<Shape>>, ignore: (name: string) => boolean = () => false): void {
    if (!isRecord(sd)) throw new TypeError(`loadStateDict: expected an object of name → tensor, got ${sd}`);
    const own = this.stateDict();
    const shape = (v: unknown) => v instanceof Tensor ? fmtShape(v.shape) : `${v} (not a tensor)`;
    const missing = Object.keys(own).filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !(k in own) && !ignore(k));
    const bad = Object.keys(own).filter((k) => k in sd && shape(sd[k]) !== fmtShape(own[k].shape))
      .map((k) => `${k} (expected ${fmtShape(own[k].shape)}, got ${shape(sd[k])})`);
    const lists = { "missing keys": missing, "unexpected keys": unexpected, "shape mismatches": bad };
    const problems = Object.entries(lists).flatMap(([what, k]) => k.length ? `${what}: ${k.join(", ")}` : []);
    if (problems.length) throw new Error(`loadStateDict: ${problems.join("; ")}`);
    for (const [k, p] of Object.entries(own)) p.assign(sd[k].dtype === p.dtype ? sd[k] : sd[k].cast(p.dtype));
  }
  /** Switch this module and its children to training mode. */
  train(on = true): this {
    const walk = (v: unknown) => {
      if (v instanceof Module) v.training = on;
      if (v && typeof v === "object" && !(v instanceof Tensor)) Object.values(v).forEach(walk);
    };
    walk(this);
    return this;
  }
  /** Switch to evaluation mode (no dropout). */
  eval(): this {
    return this.train(false);
  }
  /** Number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }
  /** Release every parameter's memory. */
  dispose(): void {
    this.parameters().forEach((p) => p.dispose());
  }
}

/** y = x·W + b with GPT-2's Conv1D layout: weight [in, out]. */
export class Linear<In extends number, Out extends number> extends Module {
  /** [in, out]. */
  weight: Tensor<[In, Out]>;
  /** [out], or null. */
  bias: Tensor<[Out]> | null;
  /** A layer [in] → [out]; weights ~ N(0, std = 0.02), bias zeros. */
  constructor(inFeatures: In, outFeatures: Out, opts: { bias?: boolean; std?: number; seed?: number } = {}) {
    super();
    this.weight = param(randn([inFeatures, outFeatures], { std: opts.std ?? 0.02, seed: opts.seed }));
    this.bias = opts.bias === false ? null : param(zeros([outFeatures]));
  }
  /** [..., in] → [..., out]. */
  forward<P extends number[]>(x: Tensor<readonly [...P, In]>): Tensor<[...P, Out]>;
  /** A shape of unknown rank (`number[]`) gives one too. */
  forward(x: Tensor<Shape>): Tensor<number[]>;
  forward(x: Tensor<Shape>): Tensor<Shape> {
    const y = x.matmul(this.weight);
    return this.bias ? y.add(this.bias) : y;
  }
}

/** A table of vectors looked up by i32 index. */
export class Embedding<V extends number, D extends number> extends Module {
  /** [vocab, dim]. */
  weight: Tensor<[V, D]>;
  /** `num` vectors of size `dim`, ~ N(0, 0.02). */
  constructor(num: V, dim: D, opts: { std?: number; seed?: number } = {}) {
    super();
    this.weight = param(randn([num, dim], { std: opts.std ?? 0.02, seed: opts.seed }));
  }
  /** [...I] → [...I, dim]. */
  forward<I extends Shape>(idx: Tensor<I>): Tensor<[...I, D]> {
    return embedding(this.weight as Tensor<[number, number]>, idx as Tensor<Shape>) as Tensor<[...I, D]>;
  }
}

/** Layer normalization over the last axis with learned scale and shift (eps 1e-5, GPT-2's). */
export class LayerNorm<D extends number> extends Module {
  /** Scale, [dim]. */
  weight: Tensor<[D]>;
  /** Shift, [dim]. */
  bias: Tensor<[D]>;
  /** Normalize vectors of size `dim`. */
  constructor(dim: D, readonly eps = 1e-5) {
    super();
    checkNumber("LayerNorm: eps", eps, "≥ 0", (e) => e >= 0);
    this.weight = param(ones([dim]));
    this.bias = param(zeros([dim]));
  }
  /** Same shape out. */
  forward<S extends Shape>(x: Tensor<S>): Tensor<S> {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** Inverted dropout with its own seeded generator; identity in eval mode or when p = 0. */
export class Dropout extends Module {
  #calls = 0;
  /** Drop probability `p`, seeded. */
  constructor(readonly p: number, readonly seed = 0) {
    super();
    checkNumber("Dropout: p", p, "in [0, 1)", (v) => v >= 0 && v < 1);
  }
  /** Zero each element with probability p and scale the rest by 1/(1−p). */
  forward<S extends Shape>(x: Tensor<S>): Tensor<S> {
    if (!this.training || this.p === 0) return x;
    // Uniform draws by hostWrite: a compiled step draws a new mask at every replay, as an eager one does.
    const n = x.size, seed = () => this.seed * 1_000_003 + this.#calls++;
    const keepMask = hostWrite(zeros(x.shape as Shape), () => Float32Array.from({ length: n }, rng(seed())))
      .ge(this.p).cast(x.dtype);
    return (x as Tensor<Shape>).mul(keepMask).mul(1 / (1 - this.p)) as Tensor<Shape> as Tensor<S>;
  }
}
