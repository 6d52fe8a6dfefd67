/**
 * GPT-2, readable in one sitting: token + learned position embeddings, pre-LayerNorm blocks of
 * causal multi-head self-attention and a 4× GELU MLP, a final LayerNorm, and an output head tied to
 * the token embedding. Fields are laid out like Hugging Face's GPT2LMHeadModel, so parameter names
 * (and Conv1D weight layouts [in, out]) match its checkpoints.
 */
import { arange, type Shape, type Tensor, tril, where } from "../tensor/mod.ts";
import { Dropout, Embedding, LayerNorm, Linear, Module } from "./module.ts";

/** Model size. */
export interface GPTConfig {
  /** Tokens in the vocabulary. */
  vocabSize: number;
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

  /** x [B, T, C] → [B, T, C]. `keyMask` [B, T] (true = may be attended to) hides padding. */
  forward(
    x: Tensor<[number, number, number]>,
    keyMask?: Tensor<[number, number]>,
  ): Tensor<[number, number, number]> {
    const [B, T, C] = x.shape;
    const H = this.cfg.nHead, D = C / H;
    const heads = (t: Tensor<any>) => t.reshape([B, T, H, D]).permute([0, 2, 1, 3]); // [B, H, T, D]
    const [q, k, v] = this.c_attn.forward(x).split(C, -1).map(heads);
    let att: Tensor<any> = q.matmul(k.transpose(-1, -2)).mul(1 / Math.sqrt(D)); // [B, H, T, T]
    let allowed: Tensor<any> = tril(T, T);
    if (keyMask) allowed = allowed.and(keyMask.cast("bool").reshape([B, 1, 1, T]));
    // A large finite negative, not −∞: a row with every key hidden stays finite (uniform).
    att = where(allowed, att, -1e9).softmax(-1);
    att = this.attn_dropout.forward(att);
    const y = att.matmul(v).permute([0, 2, 1, 3]).reshape([B, T, C]);
    return this.resid_dropout.forward(this.c_proj.forward(y));
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
    this.c_fc = new Linear(cfg.nEmbd, 4 * cfg.nEmbd, { seed: seed + 1 });
    this.c_proj = new Linear(4 * cfg.nEmbd, cfg.nEmbd, {
      seed: seed + 2,
      std: 0.02 / Math.sqrt(2 * cfg.nLayer),
    });
    this.dropout = new Dropout(cfg.dropout ?? 0, seed + 3);
  }
  /** [..., C] → [..., C]. */
  forward<S extends Shape>(x: Tensor<S>): Tensor<S> {
    return this.dropout.forward(this.c_proj.forward(this.c_fc.forward(x).gelu())) as any;
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
  /** [B, T, C] → [B, T, C]. */
  forward(
    x: Tensor<[number, number, number]>,
    keyMask?: Tensor<[number, number]>,
  ): Tensor<[number, number, number]> {
    x = x.add(this.attn.forward(this.ln_1.forward(x), keyMask));
    return x.add(this.mlp.forward(this.ln_2.forward(x)));
  }
}

/** GPT-2 language model. */
export class GPT extends Module {
  /** The body, named as in Hugging Face's GPT-2. */
  transformer: {
    wte: Embedding<number, number>;
    wpe: Embedding<number, number>;
    drop: Dropout;
    h: Block[];
    ln_f: LayerNorm<number>;
  };
  /** The configuration (with defaults filled in). */
  readonly config: Required<GPTConfig>;

  /** A GPT with GPT-2 initialization (seeded by `cfg.seed`). */
  constructor(cfg: GPTConfig) {
    super();
    this.config = { dropout: 0, seed: 0, ...cfg };
    const s = this.config.seed * 1000;
    this.transformer = {
      wte: new Embedding(cfg.vocabSize, cfg.nEmbd, { seed: s + 1 }),
      wpe: new Embedding(cfg.blockSize, cfg.nEmbd, { seed: s + 2 }),
      drop: new Dropout(this.config.dropout, s + 3),
      h: Array.from({ length: cfg.nLayer }, (_, i) => new Block(this.config, s + 100 * (i + 1))),
      ln_f: new LayerNorm(cfg.nEmbd),
    };
  }

  /** Token ids [B, T] (i32) → logits [B, T, vocab]. `keyMask` [B, T] marks real (non-pad) tokens. */
  forward<B extends number, T extends number>(
    idx: Tensor<[B, T]>,
    keyMask?: Tensor<[B, T]>,
  ): Tensor<[B, T, number]> {
    const [, T] = idx.shape;
    if (T > this.config.blockSize) {
      throw new RangeError(`GPT.forward: sequence length ${T} exceeds blockSize ${this.config.blockSize}`);
    }
    const { wte, wpe, drop, h, ln_f } = this.transformer;
    const tok: Tensor<any> = wte.forward(idx);
    let x: Tensor<any> = drop.forward(tok.add(wpe.forward(arange(T))));
    for (const block of h) x = block.forward(x, keyMask as Tensor<any>);
    // The head is the token embedding, transposed: a view, not a copy.
    return ln_f.forward(x).matmul(wte.weight.transpose()) as any;
  }

  /** Load a Hugging Face GPT-2 state dict: buffers `attn.bias`/`attn.masked_bias` are ignored and a
   * `lm_head.weight` must equal `transformer.wte.weight` (the head is tied). */
  override async loadStateDict(sd: Record<string, Tensor<any>>): Promise<void> {
    const head = sd["lm_head.weight"];
    const wte = sd["transformer.wte.weight"];
    if (head && wte) {
      const [a, b] = [await head.data(), await wte.data()];
      if (a.length !== b.length || a.some((v, i) => v !== b[i])) {
        throw new Error(
          "loadStateDict: lm_head.weight differs from transformer.wte.weight (this GPT ties them)",
        );
      }
    }
    super.loadStateDict(sd, (k) => k === "lm_head.weight" || /\.attn\.(masked_)?bias$/.test(k));
  }
}
