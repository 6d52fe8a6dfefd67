/**
 * A from-scratch tensor library with compile-time shapes and reverse-mode autodiff that runs on
 * the CPU or compiles its ops to WebGPU — and, built on it alone, GPT-2-compatible transformers and
 * Direct Preference Optimization.
 *
 * ```ts
 * import { tensor, setBackend } from "./mod.ts";
 * await setBackend("auto");
 * const x = tensor([[1, 2], [3, 4]]).requiresGrad_(); // Tensor<[2, 2]>
 * const y = x.matmul(x).relu().sum();
 * y.backward();
 * console.log(await x.grad!.data());
 * ```
 *
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
} from "./tensor/tensor.ts";
export type { BinaryOp, DType, Exp, UnaryOp } from "./tensor/exp.ts";
export type { Backend, BackendBuffer, ReduceOp, Src, TypedArray, View } from "./tensor/backend.ts";
export { ShapeError } from "./tensor/shape.ts";
export type * from "./tensor/shape.ts";
export { isGradEnabled, noGrad } from "./autograd/tape.ts";
export { grad, gradcheck, type Grads, valueAndGrad } from "./autograd/functional.ts";
