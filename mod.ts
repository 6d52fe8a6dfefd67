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

export * from "./tensor/mod.ts";
export * from "./autograd/functional.ts";
export * from "./autograd/compile.ts";

// nn: modules, GPT-2 (with a KV cache), optimizers, sampling, tokenizers (byte, char, word, GPT-2's
// BPE), safetensors, checkpoints and Hugging Face folders
export * from "./nn/module.ts";
export * from "./nn/gpt.ts";
export * from "./nn/optim.ts";
export * from "./nn/sample.ts";
export * from "./nn/tokenizer.ts";
export * from "./nn/bpe.ts";
export * from "./nn/safetensors.ts";
export * from "./nn/checkpoint.ts";
export * from "./nn/pretrained.ts";

// dpo: log-probs, the loss family, TRL's data formats, the trainer
export * from "./dpo/loss.ts";
export * from "./dpo/data.ts";
export * from "./dpo/trainer.ts";

// rlhf: reward model, KL-penalised rewards, GAE, PPO and RLOO
export * from "./rlhf/ppo.ts";
export * from "./rlhf/reward.ts";
export * from "./rlhf/trainer.ts";
