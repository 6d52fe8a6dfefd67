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
export { grad, gradcheck, type Grads, valueAndGrad } from "./autograd/functional.ts";

// nn: modules, GPT-2, optimizers, sampling, tokenizers, checkpoints
export { Dropout, Embedding, LayerNorm, Linear, Module, param } from "./nn/module.ts";
export { Block, CausalSelfAttention, GPT, type GPTConfig, KVCache, MLP } from "./nn/gpt.ts";
export {
  Adam,
  type AdamOptions,
  AdamW,
  clipGradNorm,
  lrAt,
  type Optimizer,
  OptimizerBase,
  SGD,
} from "./nn/optim.ts";
export { generate, type SampleOptions, sampleToken } from "./nn/sample.ts";
export {
  ByteTokenizer,
  CharTokenizer,
  type DecodeOptions,
  type EncodeOptions,
  type Tokenizer,
  tokenizerFromJSON,
  type TokenizerJSON,
  WordTokenizer,
} from "./nn/tokenizer.ts";
export { type BPEEncodeOptions, BPETokenizer, type BPETokenizerJSON, loadTokenizer } from "./nn/bpe.ts";
export {
  fromGPT2Config,
  fromPretrained,
  type GPT2Config,
  savePretrained,
  toGPT2Config,
} from "./nn/pretrained.ts";
export {
  gptConfigFromCheckpoint,
  loadCheckpoint,
  loadSafetensors,
  saveCheckpoint,
  saveSafetensors,
} from "./nn/checkpoint.ts";
export {
  type DecodedSafetensors,
  decodeSafetensors,
  type Dtype,
  encodeSafetensors,
  type RawTensor,
  readFileBytes,
  saveFileAtomic,
  type TensorToEncode,
} from "./nn/safetensors.ts";

// dpo: log-probs, the loss family, data, the trainer; a progress bar and SVG charts for training runs
export {
  dpoLoss,
  type DPOLossOptions,
  type DPOLossResult,
  LOSS_TYPES,
  type LossType,
  type PairLogProbs,
  sequenceLogProbs,
} from "./dpo/loss.ts";
export {
  type ChatMessage,
  type EncodedPair,
  encodePairs,
  loadPreferenceJsonl,
  type ParsedPreferences,
  parsePreferenceJsonl,
  type PreferencePair,
  renderChat,
  toJsonl,
  truncatePair,
} from "./dpo/data.ts";
export {
  batchPairs,
  type DPOConfig,
  type DPOMetrics,
  DPOTrainer,
  frozenCopy,
  pairLogProbs,
  precomputeReference,
} from "./dpo/trainer.ts";
export { type Progress, progress, type ProgressOptions } from "./dpo/progress.ts";
export { type ChartOptions, grid, lineChart, scatterChart, type Series } from "./dpo/svg.ts";

// rlhf: reward model, KL-penalised rewards, GAE, PPO and RLOO
export {
  AdaptiveKLController,
  type AdaptiveKLOptions,
  gae,
  type GAEOptions,
  klPenalizedRewards,
  lastMasked,
  maskedMean,
  ppoLoss,
  type PPOLossInputs,
  type PPOLossResult,
  valueLoss,
  whiten,
} from "./rlhf/ppo.ts";
export {
  cloneGPT,
  hiddenStates,
  lmHead,
  padRight,
  pairRewards,
  rewardAccuracy,
  RewardModel,
  type RewardModelConfig,
  rewardModelLoss,
  tokenLogProbs,
  trainRewardModel,
} from "./rlhf/reward.ts";
export {
  evaluatePolicy,
  type PPOConfig,
  PPOTrainer,
  type RLConfig,
  type RLMetrics,
  type RLOOConfig,
  RLOOTrainer,
  RLTrainer,
  type RLTrainerOptions,
  type Rollout,
  type TextScorer,
} from "./rlhf/trainer.ts";
