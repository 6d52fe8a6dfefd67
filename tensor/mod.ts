/**
 * The tensor layer's public surface, in one place: what nn/, dpo/ and users import. How the layer
 * is split into files (tensor.ts, create.ts, lazy.ts, backends.ts, …) stays behind this list.
 * @module
 */
export { type BinaryMethod, type Nested, type ReduceMethod, Tensor } from "./tensor.ts";
export { assignAll, concat, where } from "./tensor.ts";
export { attention, type AttentionOptions, crossEntropy, embedding, layerNorm, stack } from "./composite.ts";
// Creation, grouped: from data or constants; random (seeded); structured.
export { arange, fromArray, full, fullLike, ones, onesLike, tensor, zeros, zerosLike } from "./create.ts";
export { manualSeed, permutation, rand, randLike, randn, randnLike, rng } from "./create.ts";
export { oneHot, tril, triu } from "./create.ts";
export { flush, hostWrite, keep, Lazy, memoryStats, resetPeakBytes, scope } from "./lazy.ts";
export { getBackend, setBackend } from "./backends.ts";
export type { BinaryOp, DType, Exp, UnaryOp } from "./exp.ts";
export type {
  Arena,
  AttentionInputs,
  Backend,
  BackendBuffer,
  ReduceOp,
  Src,
  TypedArray,
  View,
} from "./backend.ts";
export { ShapeError } from "./shape.ts";
export type * from "./shape.ts";
export { isGradEnabled, noGrad } from "./tape.ts";
