/**
 * Tensors in and out of safetensors files (the byte format lives in safetensors.ts). Saving reads
 * every tensor back from its backend once; files are written atomically.
 */
import { fromArray, type Tensor } from "../tensor/mod.ts";
import { decodeSafetensors, encodeSafetensors, readFileBytes, saveFileAtomic } from "./safetensors.ts";

/** Encode named tensors (f32 or i32; others are converted to f32) and string metadata. */
export async function saveSafetensors(
  tensors: Record<string, Tensor<any>>,
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
): { tensors: Record<string, Tensor<any>>; metadata: Record<string, string> } {
  const { tensors, metadata } = decodeSafetensors(bytes, source);
  const out: Record<string, Tensor<any>> = {};
  for (const [k, r] of Object.entries(tensors)) {
    out[k] = fromArray(r.data, r.shape, r.data instanceof Int32Array ? "i32" : "f32");
  }
  return { tensors: out, metadata };
}

/** Save tensors to `path` atomically (temp file, then rename). */
export async function saveCheckpoint(
  path: string,
  tensors: Record<string, Tensor<any>>,
  metadata?: Record<string, string>,
): Promise<void> {
  await saveFileAtomic(path, await saveSafetensors(tensors, metadata));
}

/** Load tensors from a safetensors file; errors name the path. */
export async function loadCheckpoint(
  path: string,
): Promise<{ tensors: Record<string, Tensor<any>>; metadata: Record<string, string> }> {
  return loadSafetensors(await readFileBytes(path), path);
}
