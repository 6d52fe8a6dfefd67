/**
 * The safetensors file format at the byte level: an 8-byte little-endian header length, a JSON header
 * describing each tensor, then the raw little-endian tensor data. No Tensor dependency.
 * @module
 */

import { isRecord, parseJson, raise } from "../tensor/check.ts";

/** Dtypes this module reads (others are rejected): floats decode to Float32Array, I32 to Int32Array. */
export type Dtype = "F32" | "F16" | "BF16" | "F64" | "I32";

/** A decoded tensor: `data` is row-major with `shape`'s product elements. */
export interface RawTensor {
  /** The dtype stored in the file (F16, BF16 and F64 data are converted to f32). */
  dtype: Dtype;
  /** Dimensions, outermost first. */
  shape: number[];
  /** Float32Array for float dtypes, Int32Array for I32. */
  data: Float32Array | Int32Array;
}

/** A tensor to encode; Float32Array is written as F32 and Int32Array as I32. */
export interface TensorToEncode {
  /** Dimensions, outermost first. */
  shape: readonly number[];
  /** Row-major data with `shape`'s product elements. */
  data: Float32Array | Int32Array;
}

/** The result of {@link decodeSafetensors}. */
export interface DecodedSafetensors {
  /** Tensors by name. */
  tensors: Record<string, RawTensor>;
  /** The `__metadata__` string map ({} when absent). */
  metadata: Record<string, string>;
}

const SIZES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4 };

/**
 * Encodes tensors (in sorted name order) and optional string metadata as a safetensors file. Data bytes
 * are copied as-is, which is little-endian on every platform Deno runs on.
 */
export function encodeSafetensors(
  tensors: Record<string, TensorToEncode>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = Object.create(null);
  const bad = Object.entries(metadata ?? {}).find(([, v]) => typeof v !== "string");
  if (bad) throw new Error(`safetensors: metadata value for "${bad[0]}" is not a string`);
  if (metadata) header.__metadata__ = metadata;
  const names = Object.keys(tensors).sort(), chunks: [Uint8Array, number][] = []; // bytes, data offset
  let offset = 0;
  for (const name of names) {
    const { shape, data } = tensors[name], what = `safetensors: tensor "${name}"`;
    if (name === "__metadata__") throw new Error(`${what}: the name is reserved`);
    const dtype = data instanceof Float32Array ? "F32" : data instanceof Int32Array ? "I32" : null;
    if (!dtype) raise(`${what}: data must be a Float32Array or an Int32Array`);
    const n = checkShape(shape, what);
    if (n !== data.length) raise(`${what}: ${data.length} elements but shape [${shape}] needs ${n}`);
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + data.byteLength] };
    chunks.push([new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset]);
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headLen = Math.ceil(json.length / 8) * 8; // space padding keeps the data area 8-byte aligned
  const out = new Uint8Array(8 + headLen + offset).fill(0x20, 8 + json.length, 8 + headLen);
  new DataView(out.buffer).setUint32(0, headLen, true); // high word stays 0: headers are far below 4 GiB
  out.set(json, 8);
  for (const [bytes, at] of chunks) out.set(bytes, 8 + headLen + at);
  return out;
}

/** Validates dims (non-negative integers) and returns the element count. */
function checkShape(shape: unknown, what: string): number {
  if (!Array.isArray(shape)) throw new Error(`${what}: shape is not an array`);
  const i = shape.findIndex((d) => typeof d !== "number" || !Number.isInteger(d) || d < 0);
  if (i >= 0) raise(`${what}: shape [${shape}] has an invalid dimension ${JSON.stringify(shape[i])}`);
  const n = shape.reduce((p: number, d: number) => p * d, 1);
  if (!Number.isSafeInteger(n)) throw new Error(`${what}: shape [${shape}] is too large`);
  return n;
}

/**
 * Decodes a safetensors file. Every offset is checked before any read, so a corrupt or hostile file
 * gives an Error naming `source` rather than an out-of-bounds read or a silently wrong tensor.
 */
export function decodeSafetensors(
  bytes: Uint8Array | ArrayBuffer,
  source = "safetensors",
): DecodedSafetensors {
  const fail = (msg: string) => raise(`${source}: ${msg}`);
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) fail(`expected the file's bytes (Uint8Array or ArrayBuffer)`);
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerLen > bytes.length - 8) fail(`header length ${headerLen} runs past the end of the file`);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  const header = parseJson(text, (why) => `${source}: header is not valid JSON (${why})`);
  if (!isRecord(header)) return fail("header is not a JSON object");
  const seen = new Set<string>();
  for (const key of topLevelKeys(text)) {
    if (seen.has(key)) fail(`duplicate name "${key}" in header`);
    seen.add(key);
  }
  const dataStart = 8 + headerLen, dataLen = bytes.length - dataStart;
  const tensors: Record<string, RawTensor> = Object.create(null); // a "__proto__" name stays a plain key
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isRecord(entry)) return fail("__metadata__ is not an object");
      const bad = Object.entries(entry).find(([, v]) => typeof v !== "string");
      if (bad) fail(`metadata value for "${bad[0]}" is not a string`);
      metadata = entry as Record<string, string>;
      continue;
    }
    const what = `tensor "${name}"`, invalid = (msg: string) => fail(`${what}: ${msg}`);
    if (typeof entry !== "object" || entry === null) invalid("entry is not an object");
    const { dtype, shape, data_offsets: offs } = entry as Record<string, unknown>;
    if (typeof dtype !== "string") invalid("missing or non-string dtype");
    if (!Object.hasOwn(SIZES, dtype as string)) invalid(`unsupported dtype ${JSON.stringify(dtype)}`);
    if (shape === undefined) invalid("missing shape");
    const n = checkShape(shape, `${source}: ${what}`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      invalid(`data_offsets must be two non-negative integers, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as number[];
    if (begin > end) invalid(`data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataLen) invalid(`data_offsets [${begin}, ${end}] lie outside the ${dataLen}-byte data area`);
    const size = SIZES[dtype as Dtype], length = end - begin;
    if (length !== n * size) invalid(`${length} bytes but shape [${shape}] of ${dtype} needs ${n * size}`);
    spans.push([begin, end, name]);
    const data = readData(view, dataStart + begin, n, dtype as Dtype);
    tensors[name] = { dtype: dtype as Dtype, shape: shape as number[], data };
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const i = spans.findIndex((s, j) => j > 0 && s[0] < spans[j - 1][1]); // a span starting in the one before
  if (i > 0) fail(`tensors "${spans[i - 1][2]}" and "${spans[i][2]}" overlap`);
  return { tensors, metadata };
}

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);

function readData(view: DataView, pos: number, n: number, dtype: Dtype): Float32Array | Int32Array {
  const get = {
    F32: (p: number) => view.getFloat32(p, true),
    F16: (p: number) => view.getFloat16(p, true), // exact: every f16 value is representable in f32
    BF16: (p: number) => (u32[0] = view.getUint16(p, true) << 16, f32[0]), // bf16 is the top half of an f32
    F64: (p: number) => view.getFloat64(p, true),
    I32: (p: number) => view.getInt32(p, true),
  }[dtype];
  const out = dtype === "I32" ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0, size = SIZES[dtype]; i < n; i++) out[i] = get(pos + i * size);
  return out;
}

/**
 * Top-level keys of a JSON object text, in order, including duplicates (which JSON.parse silently
 * collapses). Assumes `text` already parsed as a JSON object.
 */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0, expectKey = false;
  for (const [tok] of text.matchAll(/"(?:[^"\\]|\\.)*"|[{}[\],]/g)) {
    if (tok[0] === '"') {
      if (depth === 1 && expectKey) keys.push(JSON.parse(tok));
      expectKey = false;
    } else if (tok === "{" || tok === "[") expectKey = ++depth === 1;
    else if (tok === "}" || tok === "]") depth--;
    else expectKey = depth === 1; // a comma
  }
  return keys;
}

/**
 * Throws `fn: needs Deno's file system; …` where there is none (in a browser), naming the functions that
 * decode fetched bytes instead. Called first by every function here that reads or writes files.
 */
export function needDenoFs(fn: string): void {
  if (typeof Deno !== "undefined") return;
  const decoders = "decodeSafetensors, parsePreferenceJsonl, BPETokenizer.fromTokenizerJson";
  raise(`${fn}: needs Deno's file system; in a browser, fetch the bytes and decode them (${decoders})`);
}

/** Reads a whole file; the error names the path. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  needDenoFs("readFileBytes");
  return await Deno.readFile(path).catch((e) => raise(`cannot read ${path}: ${(e as Error).message}`));
}

/**
 * Writes `bytes` to `path` atomically: a temp file next to it, then a rename, so readers never see a
 * partial file. On failure the temp file is removed and the target is left as it was.
 */
export async function saveFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  needDenoFs("saveFileAtomic");
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`cannot write ${path}: ${(e as Error).message}`);
  }
}
