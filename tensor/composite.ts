// deno-lint-ignore-file no-explicit-any
// (`any` here is on implementation signatures behind typed overloads, and on casts to shape types the
// compiler computes but cannot relate to the runtime shape: the typed surface is the overloads.)
/**
 * Ops composed of other ops. Most are a few lines of Tensor methods and need no backward rule of their
 * own; `targetLogProbs` records one, so its backward never builds [..., V] log-probabilities.
 */
import { embeddingCheck, fmtShape, stackShape, unsqueezeAxis } from "./shape.ts";
import type { CrossEntropy, EmbeddingLookup, Guard, Ok, Shape, Stack } from "./shape.ts";
import { arange, tril } from "./create.ts";
import { checkInt, checkNumber, fail, sameBackend } from "./check.ts";
import { realRead } from "./lazy.ts";
import { checkIndex, concat, fromBuffer, record, sumTo, Tensor, where } from "./tensor.ts";

/** Join same-shaped tensors along a new axis. */
export function stack<const T extends readonly Tensor<any>[], const A extends number = 0>(
  // The guard makes a mismatch a compile error here: the result, Tensor<never>, fits anywhere (Tensor is covariant).
  tensors: T & NoInfer<Guard<Stack<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>>,
  axis: A = 0 as A,
): Tensor<Ok<Stack<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>> {
  stackShape(tensors.map((t) => t.shape), axis);
  const a = unsqueezeAxis(tensors[0].shape, axis);
  return concat(tensors.map((t) => t.unsqueeze(a)), a) as any;
}

/** Embedding lookup: rows of `weight` [V, D] picked by i32 `index` of any shape → [...index, D]. */
export function embedding<W extends Shape, I extends Shape>(
  weight: Tensor<W> & Guard<EmbeddingLookup<W, I>>,
  index: Tensor<I>,
): Tensor<Ok<EmbeddingLookup<W, I>>> {
  const w = weight as Tensor<any>;
  embeddingCheck(w.shape);
  checkIndex("embedding", index, w.shape[0]);
  const flat = (index as Tensor<any>).reshape([-1]) as Tensor<[number]>;
  return w.indexSelect(0, flat).reshape([...index.shape, w.shape[1]] as number[]) as any;
}

/** Mean cross-entropy of `logits` [..., V] against i32 `targets` [...], skipping targets equal to
 * `ignoreIndex` (default −100) and, when given, where `mask` is false. */
export function crossEntropy<L extends Shape, T extends Shape, M extends Shape = T>(
  logits: Tensor<L>,
  targets: Tensor<T> & Guard<CrossEntropy<L, T>>,
  opts: { ignoreIndex?: number; mask?: Tensor<M> } = {},
): Tensor<[]> {
  if (logits.shape.slice(0, -1).join() !== targets.shape.join()) {
    fail(`crossEntropy: logits ${fmtShape(logits.shape)} do not match targets ${fmtShape(targets.shape)}`);
  }
  if (opts instanceof Tensor) throw new TypeError("crossEntropy: opts is a tensor; pass a mask as { mask }");
  const ignore = opts.ignoreIndex ?? -100;
  checkIndex("crossEntropy", targets, logits.shape[logits.rank - 1], ignore);
  let keepM = (targets as Tensor<any>).ne(ignore);
  if (opts.mask) keepM = keepM.and(opts.mask.cast("bool"));
  const nll = targetLogProbs(logits as Tensor<any>, targets as Tensor<any>, keepM).sum().neg();
  return nll.div(keepM.cast(logits.dtype).sum().maximum(1));
}

/**
 * log p(target) = logit[target] − logsumexp(logits) over the last axis of `logits` [..., V], for
 * i32 `targets` [...]; 0 where `mask` [...] is false, whatever the logits or targets hold there
 * (even −Infinity). It never materialises [..., V] log-probabilities: forward is a max, a
 * sum-of-exp reduction with the subtract and exp fused in, and a gather; backward writes
 * g·(onehot − softmax), masked, into the logits' gradient as one fused elementwise pass.
 */
export function targetLogProbs<S extends Shape>(
  logits: Tensor<any>, // [...S, V]
  targets: Tensor<S>,
  mask?: Tensor<S>,
): Tensor<S> {
  // Shape-erased: the shapes are checked at run time just below.
  const [x, t, m] = [logits.detach(), targets as Tensor<any>, mask as Tensor<any> | undefined];
  const V = x.shape[x.rank - 1], want = fmtShape(x.shape.slice(0, -1));
  if (fmtShape(targets.shape) !== want || (mask && fmtShape(mask.shape) !== want)) {
    fail(`targetLogProbs: logits ${fmtShape(x.shape)} need targets and mask ${want}`);
  }
  const keep = (m ? m.cast("bool") : t.eq(t)).unsqueeze(-1).realize(); // [..., 1]
  const safe = where(keep, t.unsqueeze(-1), 0).realize();
  const lse = x.logsumexp(-1, true).realize(); // [..., 1]
  const lp: Tensor<any> = where(keep, x.gather(-1, safe).sub(lse), 0).squeeze(-1).realize();
  return record(lp, [logits], (g) => {
    const p = arange(V).eq(safe).cast(x.dtype).sub(x.sub(lse).exp()); // onehot − softmax
    return [where(keep, p.mul(g.unsqueeze(-1)), 0)];
  });
}

/** What `attention` may be told besides q, k and v. */
export interface AttentionOptions<B extends number> {
  /** Positions already cached before the queries (query i sits at past + i; default 0). */
  past?: number;
  /** [B, S]: false where a key is padding, hidden from every query. */
  keyMask?: Tensor<readonly [B, number]>;
  /** Applied to the [B, H, T, S] probabilities (dropout): forces the composed path. */
  probs?: (p: Tensor<[B, number, number, number]>) => Tensor<[B, number, number, number]>;
}

/**
 * Causal scaled dot-product attention: softmax(q·kᵀ/√D)·v for q [B, H, T, D] and k, v [B, H, S, D],
 * where key j is hidden from query i (score −1e9, so a query that sees no key averages all values)
 * when j > past + i or `keyMask` is false. A backend with a fused kernel (WebGPU) never writes the
 * [B, H, T, S] scores to memory; elsewhere, or with `probs`, it is matmul, where and softmax.
 */
export function attention<B extends number, H extends number, T extends number, D extends number>(
  q: Tensor<readonly [B, H, T, D]>,
  // Sizes come from q alone, so k or v disagreeing with it is a compile error where sizes are known.
  k: Tensor<readonly [NoInfer<B>, NoInfer<H>, number, NoInfer<D>]>,
  v: Tensor<readonly [NoInfer<B>, NoInfer<H>, number, NoInfer<D>]>,
  { past = 0, keyMask, probs }: AttentionOptions<NoInfer<B>> = {},
): Tensor<[B, H, T, D]> {
  checkInt("attention: past", past, 0);
  const [B, H, T, D] = q.shape, S = k.shape[2], fmt = fmtShape, want = fmt([B, H, S, D]);
  const got = [k, v, ...(keyMask ? [keyMask] : [])].map((t) => fmt(t.shape)).join(", ");
  if (q.rank !== 4 || got !== [want, want, ...(keyMask ? [fmt([B, S])] : [])].join(", ")) {
    fail(`attention: q ${fmt(q.shape)} needs k, v [${B}, ${H}, S, ${D}] and keyMask [${B}, S], got ${got}`);
  }
  const be = q.backendOf(), mask = keyMask?.cast("bool") as Tensor<[B, number]> | undefined;
  if (!be.attention || probs) {
    const scores = q.matmul(k.transpose(-1, -2)).mul(1 / Math.sqrt(D)); // [B, H, T, S]
    let masked = where(tril(T, S, past), scores, -1e9);
    if (mask) masked = masked.maskedFill(mask.not().reshape([B, 1, 1, S]), -1e9);
    return (probs ? probs(masked.softmax(-1)) : masked.softmax(-1)).matmul(v) as Tensor<any>;
  }
  sameBackend("attention", mask ? [q, k, v, mask] : [q, k, v]);
  const read = (t: Tensor<any>) => realRead(t, "attention");
  const a = { q: read(q), k: read(k), v: read(v), mask: mask ? read(mask) : null, past };
  const [out, stats] = be.attention(a).map((b, i) => fromBuffer(i ? [b.size] : [B, H, T, D], b, q));
  return record(out as Tensor<[B, H, T, D]>, [q, k, v], (g) => {
    const grads = be.attentionGrad!(a, [read(out).buf, read(stats).buf], read(g));
    return grads.map((b, i) => fromBuffer([q, k, v][i].shape, b, q));
  });
}

/** Layer normalization over the last axis: (x − mean)/√(var + eps)·weight + bias. */
export function layerNorm<S extends Shape, W extends Shape = Shape, Bs extends Shape = W>(
  x: Tensor<S>,
  weight?: Tensor<W>,
  bias?: Tensor<Bs>,
  eps = 1e-5,
): Tensor<S> {
  const t = x as Tensor<any>, D = `[${t.shape[t.rank - 1]}]`, fmt = fmtShape;
  if (!t.rank) fail("layerNorm: a 0-d input has no last axis to normalize");
  const bad = [weight, bias].find((p) => p && fmt(p.shape) !== D);
  if (bad) fail(`layerNorm: input ${fmt(t.shape)} needs weight and bias ${D}, got ${fmt(bad.shape)}`);
  checkNumber("layerNorm: eps", eps, "≥ 0", (e) => e >= 0);
  const be = t.backendOf(), inputs = [t, weight, bias].filter(Boolean) as Tensor<any>[];
  sameBackend("layerNorm", inputs);
  // A backend's fused kernels (WebGPU) on contiguous f32 operands, keeping each row's mean and 1/σ for the
  // backward.
  if (be.layerNorm && t.size && inputs.every((p) => p.dtype === "f32")) {
    const read = (p?: Tensor<any>) => p ? realRead(p.realize().contiguous(), "layerNorm") : null;
    const [xs, ws, bs] = [t, weight, bias].map(read);
    const [y, stats] = be.layerNorm(xs!, ws, bs, eps).map((b, i) => fromBuffer(i ? [b.size] : t.shape, b, t));
    const grads = (g: Tensor<any>) => be.layerNormGrad!(xs!, ws, bs, read(stats)!.buf, read(g)!);
    return record(y, inputs, (g) => grads(g).map((b, i) => fromBuffer(inputs[i].shape, b, t)));
  }
  // Its own backward from the saved mean and 1/σ: a few fused passes instead of the graph's many.
  const [xd, w, b] = [t, weight, bias].map((p) => p?.detach()) as Tensor<any>[];
  // Lazy (their reductions are realized): fused into y as before, so rounding matches the plain graph's.
  const d = xd.sub(xd.mean(-1, true)), rstd = d.mul(d).mean(-1, true).add(eps).rsqrt(), xhat = d.mul(rstd);
  const scaled = w ? xhat.mul(w) : xhat;
  const y = b ? scaled.add(b) : scaled;
  return record(y as Tensor<any>, inputs, (g) => {
    const gw = w ? g.mul(w) : g;
    const dx = gw.sub(gw.mean(-1, true)).sub(xhat.mul(gw.mul(xhat).mean(-1, true))).mul(rstd);
    return [dx, ...(w ? [sumTo(g.mul(xhat), w.shape)] : []), ...(b ? [sumTo(g, b.shape)] : [])];
  });
}
