/**
 * Tensors in and out of safetensors files (the byte format lives in safetensors.ts). Saving reads
 * every tensor back from its backend once; files are written atomically. A GPT checkpoint's sizes
 * can be read back from its tensor names and shapes ({@link gptConfigFromCheckpoint}).
 */
import { fromArray, type Shape, type Tensor } from "../tensor/mod.ts";
import { raise } from "../tensor/check.ts";
import type { GPTConfig } from "./gpt.ts";
import { decodeSafetensors, encodeSafetensors, readFileBytes, saveFileAtomic } from "./safetensors.ts";

/** Encode named tensors (f32 or i32; others are converted to f32) and string metadata. */
export async function saveSafetensors(
  tensors: Record<string, Tensor<Shape>>,
  metadata?: Record<string, string>,
): Promise<Uint8Array> {
  const raw: Record<string, { shape: readonly number[]; data: Float32Array | Int32Array }> = {};
  for (const [k, t] of Object.entries(tensors)) {
    const d = await (t.dtype === "i32" || t.dtype === "f32" ? t : t.cast("f32")).data();
    raw[k] = { shape: t.shape, data: d as Float32Array | Int32Array };
  }
  return encodeSafetensors(raw, metadata);
}

/** Decode a safetensors file into tensors on the current backend (F16/BF16/F64 become f32). */
export function loadSafetensors(
  bytes: Uint8Array,
  source = "safetensors",
): { tensors: Record<string, Tensor<Shape>>; metadata: Record<string, string> } {
  const { tensors, metadata } = decodeSafetensors(bytes, source);
  // GPT ties its head to the token embedding: a file's separate lm_head.weight must be a copy of it.
  const [head, wte] = [tensors["lm_head.weight"]?.data, tensors["transformer.wte.weight"]?.data];
  if (head && wte && (head.length !== wte.length || head.some((v, i) => v !== wte[i]))) {
    throw new Error(`${source}: lm_head.weight differs from transformer.wte.weight (GPT ties them)`);
  }
  const out: Record<string, Tensor<Shape>> = {};
  for (const [k, r] of Object.entries(tensors)) out[k] = fromArray(r.data, r.shape); // i32 or f32, as r.data
  return { tensors: out, metadata };
}

/** Save tensors to `path` atomically (temp file, then rename). */
export async function saveCheckpoint(
  path: string,
  tensors: Record<string, Tensor<Shape>>,
  metadata?: Record<string, string>,
): Promise<void> {
  await saveFileAtomic(path, await saveSafetensors(tensors, metadata));
}

/** Load tensors from a safetensors file; errors name the path. */
export async function loadCheckpoint(
  path: string,
): Promise<{ tensors: Record<string, Tensor<Shape>>; metadata: Record<string, string> }> {
  return loadSafetensors(await readFileBytes(path), path);
}

/**
 * The {@link GPTConfig} of a checkpoint with Hugging Face GPT-2 names (`transformer.wte.weight`,
 * `transformer.h.<i>.…`), read from its tensors' names and shapes: vocabSize and nEmbd from the token
 * embedding, blockSize from the position embedding, nLayer from the block numbers. The head count
 * leaves no trace in the shapes, so it comes from `metadata.n_head` (Hugging Face's config name) when
 * present, else GPT-2's head width of 64 gives nEmbd / 64 (at least 1). Accepts loaded tensors or
 * {@link decodeSafetensors}' raw ones. Throws, naming `source`, when a size is missing or inconsistent.
 */
export function gptConfigFromCheckpoint(
  tensors: Record<string, { readonly shape: readonly number[] }>,
  metadata: Record<string, string> = {},
  source = "checkpoint",
): GPTConfig {
  const fail = (why: string) => raise(`gptConfigFromCheckpoint: ${source} ${why}`);
  const matrix = (name: string) => {
    const shape = tensors[name]?.shape;
    if (!shape) return fail(`has no ${name}`);
    if (shape.length !== 2) return fail(`has ${name} of shape [${shape.join(", ")}], expected 2-D`);
    return shape as readonly [number, number];
  };
  const [vocabSize, nEmbd] = matrix("transformer.wte.weight");
  const [blockSize, wpeDim] = matrix("transformer.wpe.weight");
  if (wpeDim !== nEmbd) fail(`has token embeddings of width ${nEmbd} but position embeddings of ${wpeDim}`);
  const blockOf = (name: string) => name.match(/^transformer\.h\.(\d+)\./)?.[1] ?? [];
  const blocks = new Set(Object.keys(tensors).flatMap(blockOf).map(Number)), nLayer = blocks.size;
  // Blocks 0..n−1 with one missing would load as a shorter model that silently drops a layer.
  const gap = Array.from({ length: nLayer }, (_, i) => i).find((i) => !blocks.has(i));
  if (gap !== undefined) fail(`has blocks up to ${Math.max(...blocks)} but no block ${gap}`);
  const nHead = metadata.n_head !== undefined ? Number(metadata.n_head) : Math.max(1, nEmbd / 64);
  const why = metadata.n_head !== undefined
    ? `has metadata n_head "${metadata.n_head}", not a positive integer that divides nEmbd ${nEmbd}`
    : `has nEmbd ${nEmbd}, not a multiple of 64: give the head count as metadata n_head`;
  if (!Number.isInteger(nHead) || nHead < 1 || nEmbd % nHead) fail(why);
  return { vocabSize, blockSize, nLayer, nHead, nEmbd };
}
