/**
 * GPT-2, readable in one sitting: token + learned position embeddings, pre-LayerNorm blocks of
 * causal multi-head self-attention and a 4× GELU MLP, a final LayerNorm, and an output head tied to
 * the token embedding. Fields are laid out like Hugging Face's GPT2LMHeadModel, so parameter names
 * (and Conv1D weight layouts [in, out]) match its checkpoints.
 */
import { arange, attention, concat, keep, type Shape, ShapeError, type Tensor } from "../tensor/mod.ts";
import { checkInt, isRecord } from "../tensor/check.ts";
import { Dropout, Embedding, LayerNorm, Linear, Module } from "./module.ts";
import { fromPretrained } from "./pretrained.ts";

/**
 * Keys and values of every layer for one batch of sequences, so generation feeds only the new
 * tokens: each step then costs one token's forward instead of the whole prefix's. For inference
 * (under `noGrad`): old tensors are disposed as the cache grows. Call `dispose()` when done.
 */
export class KVCache {
  /** Per layer: cached keys and values [B, H, length, D] (empty until the first forward). */
  readonly layers: Record<"k" | "v", Tensor<[number, number, number, number]>>[] = [];
  /** Positions cached so far; the next token sits at this position. */
  length = 0;

  /** Append one layer's new keys and values; returns all of them. They are kept out of `scope`
   * cleanup because they outlive the step that made them. */
  append(
    layer: number,
    k: Tensor<[number, number, number, number]>,
    v: Tensor<[number, number, number, number]>,
  ): Record<"k" | "v", Tensor<[number, number, number, number]>> {
    const old = this.layers[layer];
    if (old) [k, v] = [concat([old.k, k], 2), concat([old.v, v], 2)]; // along the positions
    this.layers[layer] = keep({ k: k.realize(), v: v.realize() });
    if (old) old.k.dispose(), old.v.dispose();
    return this.layers[layer];
  }

  /** Free every cached tensor and start over. */
  dispose(): void {
    for (const { k, v } of this.layers) k.dispose(), v.dispose();
    this.layers.length = 0;
    this.length = 0;
  }
}

/** Model size; `V`, the vocabulary size's type, types the logits (a literal where one is given). */
export interface GPTConfig<V extends number = number> {
  /** Tokens in the vocabulary. */
  vocabSize: V;
  /** Longest context (positions). */
  blockSize: number;
  /** Transformer blocks. */
  nLayer: number;
  /** Attention heads per block. */
  nHead: number;
  /** Width of the residual stream. */
  nEmbd: number;
  /** Dropout probability (0 = off). */
  dropout?: number;
  /** Seed for initialization and dropout. */
  seed?: number;
}

/** Causal self-attention with one fused q/k/v projection. */
export class CausalSelfAttention extends Module {
  /** [C, 3C]: q, k, v side by side. */
  c_attn: Linear<number, number>;
  /** [C, C] output projection. */
  c_proj: Linear<number, number>;
  /** Dropout on attention weights. */
  attn_dropout: Dropout;
  /** Dropout on the output. */
  resid_dropout: Dropout;
  /** Attention for `cfg`, initialized from `seed`. */
  constructor(readonly cfg: GPTConfig, seed: number) {
    super();
    const C = cfg.nEmbd;
    if (C % cfg.nHead) throw new RangeError(`GPT: nEmbd ${C} is not divisible by nHead ${cfg.nHead}`);
    this.c_attn = new Linear(C, 3 * C, { seed: seed + 1 });
    // GPT-2 scales residual projections by 1/√(2·nLayer) so the residual stream's variance stays put.
    this.c_proj = new Linear(C, C, { seed: seed + 2, std: 0.02 / Math.sqrt(2 * cfg.nLayer) });
    this.attn_dropout = new Dropout(cfg.dropout ?? 0, seed + 3);
    this.resid_dropout = new Dropout(cfg.dropout ?? 0, seed + 4);
  }

  /** x [B, T, C] → [B, T, C]. `keyMask` [B, T] (true = may be attended to) hides padding. With
   * `cache`, x holds only new tokens; they attend to the cached positions as well. */
  forward<B extends number, T extends number, C extends number>(
    x: Tensor<[B, T, C]>,
    keyMask?: Tensor<readonly [NoInfer<B>, NoInfer<T>]>,
    cache?: { kv: KVCache; layer: number },
  ): Tensor<[B, T, C]> {
    const [B, T, C] = x.shape;
    // H heads of D = C / H: sizes known at run time.
    const H: number = this.cfg.nHead, D: number = C / H;
    // [B, T, C] → [B, H, T, D]
    const heads = (t: Tensor<[B, T, number]>) => t.reshape([B, T, H, D]).permute([0, 2, 1, 3]);
    const [q, k0, v0] = this.c_attn.forward(x).split(C, -1).map(heads);
    // Keys and values span S = past + T positions (S = T without a cache).
    const past = cache ? cache.kv.length : 0,
      kv = cache ? cache.kv.append(cache.layer, k0, v0) : { k: k0, v: v0 };
    const [k, v] = [kv.k as Tensor<[B, number, number, number]>, kv.v as Tensor<[B, number, number, number]>];
    // Dropout on the probabilities needs them in memory: then attention takes its composed path.
    const drop = this.training && this.attn_dropout.p > 0;
    const probs = drop ? (p: Tensor<[B, number, number, number]>) => this.attn_dropout.forward(p) : undefined;
    const att = attention(q, k, v, { past, keyMask: keyMask as Tensor<[B, number]> | undefined, probs }); // [B, H, T, D]
    const y = att.permute([0, 2, 1, 3]).reshape([B, T, C]); // [B, T, H, D] → [B, T, C]
    // c_proj is [C, C]: its output has x's width.
    return this.resid_dropout.forward(this.c_proj.forward(y) as Tensor<[B, T, C]>);
  }
}

/** The 4× expansion MLP with GELU (tanh approximation). */
export class MLP extends Module {
  /** [C, 4C]. */
  c_fc: Linear<number, number>;
  /** [4C, C]. */
  c_proj: Linear<number, number>;
  /** Output dropout. */
  dropout: Dropout;
  /** MLP for `cfg`, initialized from `seed`. */
  constructor(cfg: GPTConfig, seed: number) {
    super();
    const C = cfg.nEmbd;
    this.c_fc = new Linear(C, 4 * C, { seed: seed + 1 });
    // Scaled like the attention's c_proj: it too adds to the residual stream.
    this.c_proj = new Linear(4 * C, C, { seed: seed + 2, std: 0.02 / Math.sqrt(2 * cfg.nLayer) });
    this.dropout = new Dropout(cfg.dropout ?? 0, seed + 3);
  }
  /** [..., C] → [..., C]. */
  forward<S extends Shape>(x: Tensor<S>): Tensor<S> {
    // c_fc is [C, 4C] and c_proj [4C, C]: the output has x's shape.
    const y: Tensor<Shape> = this.c_proj.forward(this.c_fc.forward(x as Tensor<Shape>).gelu());
    return this.dropout.forward(y as Tensor<S>);
  }
}

/** A pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
export class Block extends Module {
  /** Norm before attention. */
  ln_1: LayerNorm<number>;
  /** Attention. */
  attn: CausalSelfAttention;
  /** Norm before the MLP. */
  ln_2: LayerNorm<number>;
  /** MLP. */
  mlp: MLP;
  /** Block for `cfg`, initialized from `seed`. */
  constructor(cfg: GPTConfig, seed: number) {
    super();
    this.ln_1 = new LayerNorm(cfg.nEmbd);
    this.attn = new CausalSelfAttention(cfg, seed + 10);
    this.ln_2 = new LayerNorm(cfg.nEmbd);
    this.mlp = new MLP(cfg, seed + 20);
  }
  /** [B, T, C] → [B, T, C]; `cache` as in {@link CausalSelfAttention.forward}. */
  forward<B extends number, T extends number, C extends number>(
    x: Tensor<[B, T, C]>,
    keyMask?: Tensor<readonly [NoInfer<B>, NoInfer<T>]>,
    cache?: { kv: KVCache; layer: number },
  ): Tensor<[B, T, C]> {
    x = x.add(this.attn.forward(this.ln_1.forward(x), keyMask, cache));
    return x.add(this.mlp.forward(this.ln_2.forward(x)));
  }
}

/** GPT-2 language model over a vocabulary of V tokens. */
export class GPT<V extends number = number> extends Module {
  /** The body, named as in Hugging Face's GPT-2. */
  transformer: {
    wte: Embedding<V, number>;
    wpe: Embedding<number, number>;
    drop: Dropout;
    h: Block[];
    ln_f: LayerNorm<number>;
  };
  /** The configuration (with defaults filled in). */
  readonly config: Required<GPTConfig<V>>;
  /** The model of a Hugging Face folder (config.json + model.safetensors): `fromPretrained(dir)`'s,
   * which also gives the folder's tokenizer. */
  static async fromPretrained(dir: string): Promise<GPT> {
    return (await fromPretrained(dir)).model;
  }

  /** A GPT with GPT-2 initialization (seeded by `cfg.seed`). */
  constructor(cfg: GPTConfig<V>) {
    super();
    const sizes = ["vocabSize", "blockSize", "nLayer", "nHead", "nEmbd"] as const;
    if (!isRecord(cfg)) throw new TypeError(`GPT: config must be an object, got ${cfg}`);
    for (const k of sizes) checkInt(`GPT: config.${k}`, cfg[k]);
    const { nEmbd, nHead } = cfg;
    if (nEmbd % nHead) throw new RangeError(`GPT: nEmbd ${nEmbd} is not divisible by nHead ${nHead}`);
    this.config = { dropout: 0, seed: 0, ...cfg };
    const s = this.config.seed * 1000;
    this.transformer = {
      wte: new Embedding(cfg.vocabSize, nEmbd, { seed: s + 1 }),
      wpe: new Embedding(cfg.blockSize, nEmbd, { seed: s + 2 }),
      drop: new Dropout(this.config.dropout, s + 3),
      h: Array.from({ length: cfg.nLayer }, (_, i) => new Block(this.config, s + 100 * (i + 1))),
      ln_f: new LayerNorm(nEmbd),
    };
  }

  /** Token ids [B, T] (i32) → logits [B, T, vocab]. `keyMask` [B, T] marks real (non-pad) tokens.
   * With `opts.cache`, `idx` continues the cached sequences: it is placed at the cached length, its
   * keys and values are appended, and only its logits come back (no `keyMask` then). */
  forward<B extends number, T extends number>(
    idx: Tensor<readonly [B, T]>,
    keyMask?: Tensor<readonly [NoInfer<B>, NoInfer<T>]>,
    opts: { cache?: KVCache } = {},
  ): Tensor<[B, T, V]> {
    return this.head(this.hidden(idx, keyMask, opts));
  }

  /** The final hidden states [B, T, C] (after the last LayerNorm, before the head): what a reward or
   * value head reads. Arguments as in {@link GPT.forward}, which is `head(hidden(...))`. */
  hidden<B extends number, T extends number>(
    idx: Tensor<readonly [B, T]>,
    keyMask?: Tensor<readonly [NoInfer<B>, NoInfer<T>]>,
    opts: { cache?: KVCache } = {},
  ): Tensor<[B, T, number]> {
    const [, T] = idx.shape;
    if (idx.rank !== 2 || !T) {
      throw new ShapeError(`GPT.forward: tokens must be [B, T] with T ≥ 1, got [${idx.shape.join(", ")}]`);
    }
    const kv = opts.cache, past = kv ? kv.length : 0, S = past + T, max = this.config.blockSize;
    if (S > max) throw new RangeError(`GPT.forward: sequence length ${S} exceeds blockSize ${max}`);
    if (kv && keyMask) throw new Error("GPT.forward: keyMask is not supported with a KV cache");
    const { wte, wpe, drop, h, ln_f } = this.transformer;
    const tok = wte.forward(idx); // [B, T, C]
    const pos = wpe.forward(arange(past, past + T) as Tensor<[T]>); // [T, C]
    let x = drop.forward(tok.add(pos)); // [B, T, C]
    for (const [layer, block] of h.entries()) x = block.forward(x, keyMask, kv && { kv, layer });
    if (kv) kv.length += T;
    return ln_f.forward(x);
  }

  /** Hidden states [B, T, C] → logits [B, T, V]. The head is the token embedding, transposed: a
   * view, not a copy. [B, T, C] @ [C, V] → [B, T, V] */
  head<B extends number, T extends number>(hidden: Tensor<[B, T, number]>): Tensor<[B, T, V]> {
    return hidden.matmul(this.transformer.wte.weight.transpose());
  }

  /** Load a Hugging Face GPT-2 state dict: buffers `attn.bias`/`attn.masked_bias` and a tied
   * `lm_head.weight` are ignored (a file's `lm_head.weight` is checked against its `transformer.wte.weight`
   * by `loadSafetensors`). Synchronous, like every module's: the next forward sees the new weights. */
  override loadStateDict(sd: Record<string, Tensor<Shape>>): void {
    super.loadStateDict(sd, (k) => k === "lm_head.weight" || /\.attn\.(masked_)?bias$/.test(k));
  }
}
