// deno-lint-ignore-file no-explicit-any
// (`any` here is on implementation signatures behind typed overloads and on casts to computed shape types;
// each should get a comment saying why, then this line can go: the typed-shapes issue.)
/**
 * Ops composed of other ops: each is a few lines of Tensor methods, so it needs no backward rule
 * of its own.
 */
import * as SH from "./shape.ts";
import type { CrossEntropy, EmbeddingLookup, Guard, Ok, Shape, Stack } from "./shape.ts";
import { checkIndex, concat, type Tensor, where } from "./tensor.ts";

/** Join same-shaped tensors along a new axis. */
export function stack<const T extends readonly Tensor<any>[], const A extends number = 0>(
  // The guard makes a mismatch a compile error here: the result, Tensor<never>, fits anywhere (Tensor is covariant).
  tensors: T & NoInfer<Guard<Stack<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>>,
  axis: A = 0 as A,
): Tensor<Ok<Stack<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>> {
  SH.stackShape(tensors.map((t) => t.shape), axis);
  const a = SH.unsqueezeAxis(tensors[0].shape, axis);
  return concat(tensors.map((t) => t.unsqueeze(a)), a) as any;
}

/** Embedding lookup: rows of `weight` [V, D] picked by i32 `index` of any shape → [...index, D]. */
export function embedding<W extends Shape, I extends Shape>(
  weight: Tensor<W> & Guard<EmbeddingLookup<W, I>>,
  index: Tensor<I>,
): Tensor<Ok<EmbeddingLookup<W, I>>> {
  const w = weight as Tensor<any>;
  SH.embeddingCheck(w.shape);
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
    throw new SH.ShapeError(
      `crossEntropy: logits ${SH.fmtShape(logits.shape)} do not match targets ${SH.fmtShape(targets.shape)}`,
    );
  }
  const ignore = opts.ignoreIndex ?? -100;
  checkIndex("crossEntropy", targets, logits.shape[logits.rank - 1], ignore);
  // The shapes were checked above; the body works on shape-erased tensors.
  const [lg, tg] = [logits as Tensor<any>, targets as Tensor<any>];
  let keepM = tg.ne(ignore);
  if (opts.mask) keepM = keepM.and(opts.mask.cast("bool"));
  const safe = where(keepM, tg, 0).realize();
  const nll = lg.logSoftmax(-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1).neg();
  const w = keepM.cast(lg.dtype);
  return nll.mul(w).sum().div(w.sum().maximum(1));
}

/** Layer normalization over the last axis: (x − mean)/√(var + eps)·weight + bias. */
export function layerNorm<S extends Shape, W extends Shape = Shape, Bs extends Shape = W>(
  x: Tensor<S>,
  weight?: Tensor<W>,
  bias?: Tensor<Bs>,
  eps = 1e-5,
): Tensor<S> {
  const t = x as Tensor<any>;
  const mu = t.mean(-1, true);
  const d = t.sub(mu);
  let y = d.mul(d.mul(d).mean(-1, true).add(eps).rsqrt());
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y as any;
}
