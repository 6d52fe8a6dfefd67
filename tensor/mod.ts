/**
 * The tensor layer's public surface, in one place: what nn/, dpo/ and users import. How the layer
 * is split into files (tensor.ts, create.ts, lazy.ts, backends.ts, …) stays behind this list.
 * @module
 */
export {
  arange,
  concat,
  crossEntropy,
  embedding,
  flush,
  fromArray,
  full,
  fullLike,
  getBackend,
  keep,
  layerNorm,
  manualSeed,
  memoryStats,
  type Nested,
  oneHot,
  ones,
  onesLike,
  rand,
  randLike,
  randn,
  randnLike,
  rng,
  scope,
  setBackend,
  stack,
  Tensor,
  tensor,
  tril,
  triu,
  where,
  zeros,
  zerosLike,
} from "./tensor.ts";
export type { BinaryOp, DType, Exp, UnaryOp } from "./exp.ts";
export type { Backend, BackendBuffer, ReduceOp, Src, TypedArray, View } from "./backend.ts";
export { ShapeError } from "./shape.ts";
export type * from "./shape.ts";
export { isGradEnabled, noGrad } from "./tape.ts";
