import assert from "node:assert/strict";
import { decodeSafetensors, encodeSafetensors, readFileBytes, saveFileAtomic } from "../nn/safetensors.ts";

/** Builds a file from a raw header text and data bytes (no padding, so the header text is exact). */
function build(header: string, data: number[] = []): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
const entry = (dtype: unknown, shape: unknown, offs: unknown) => ({ dtype, shape, data_offsets: offs });
const file = (header: unknown, data: number[] = []) => build(JSON.stringify(header), data);
const bad = (bytes: Uint8Array, re: RegExp) => assert.throws(() => decodeSafetensors(bytes, "m.st"), re);

Deno.test("encode: byte layout, sorted names, padding, metadata", () => {
  const bytes = encodeSafetensors({
    b: { shape: [2], data: new Float32Array([1, -2]) },
    a: { shape: [1, 1], data: new Int32Array([7]) },
  }, { step: "3" });
  const view = new DataView(bytes.buffer);
  const n = view.getUint32(0, true);
  assert.equal(view.getUint32(4, true), 0);
  assert.equal(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header, {
    __metadata__: { step: "3" },
    a: { dtype: "I32", shape: [1, 1], data_offsets: [0, 4] },
    b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  });
  assert.deepEqual([...bytes.subarray(8 + n)], [7, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
  assert.equal(bytes.length, 8 + n + 12);
});

Deno.test("round trip, including a scalar, an empty tensor and an unaligned view", () => {
  const bytes = encodeSafetensors({
    w: { shape: [2, 3], data: new Float32Array([0.5, -1.25, 3, 1e-8, -0, 6]) },
    s: { shape: [], data: new Float32Array([42]) },
    e: { shape: [0, 4], data: new Float32Array(0) },
    ids: { shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) },
  });
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  const { tensors, metadata } = decodeSafetensors(shifted.subarray(1));
  assert.deepEqual(metadata, {});
  assert.deepEqual(Object.keys(tensors).sort(), ["e", "ids", "s", "w"]);
  assert.deepEqual(tensors.w.shape, [2, 3]);
  assert.deepEqual([...tensors.w.data], [0.5, -1.25, 3, Math.fround(1e-8), -0, 6]);
  assert.ok(tensors.w.data instanceof Float32Array);
  assert.deepEqual(tensors.s, { dtype: "F32", shape: [], data: new Float32Array([42]) });
  assert.deepEqual(tensors.e.shape, [0, 4]);
  assert.equal(tensors.e.data.length, 0);
  assert.deepEqual(tensors.ids, { dtype: "I32", shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) });
});

Deno.test("decode: F16, BF16 and F64 convert to f32", () => {
  const f16 = [0x3c00, 0xc000, 0x3800, 0x0001, 0x7c00, 0xfc00].flatMap((h) => [h & 255, h >> 8]);
  const bf16 = [0x3f80, 0xc020].flatMap((h) => [h & 255, h >> 8]);
  const f64 = [...new Uint8Array(new Float64Array([0.1, -3]).buffer)];
  const { tensors } = decodeSafetensors(file({
    h: entry("F16", [6], [0, 12]),
    b: entry("BF16", [2], [12, 16]),
    d: entry("F64", [2], [16, 32]),
  }, [...f16, ...bf16, ...f64]));
  assert.deepEqual([...tensors.h.data], [1, -2, 0.5, 2 ** -24, Infinity, -Infinity]);
  assert.deepEqual([...tensors.b.data], [1, -2.5]);
  assert.deepEqual([...tensors.d.data], [Math.fround(0.1), -3]);
  assert.equal(tensors.h.dtype, "F16");
  assert.ok(tensors.d.data instanceof Float32Array);
  bad(
    file({ l: entry("I64", [1], [0, 8]) }, [1, 0, 0, 0, 0, 0, 0, 0]),
    /tensor "l": unsupported dtype "I64"/,
  );
});

Deno.test("decode: metadata is returned", () => {
  const { metadata } = decodeSafetensors(file({ __metadata__: { format: "pt", a: "1" } }));
  assert.deepEqual(metadata, { format: "pt", a: "1" });
});

Deno.test("decode: an ArrayBuffer (as fetch's response gives) reads like its bytes", () => {
  const bytes = encodeSafetensors({ a: { shape: [2], data: new Float32Array([1.5, -2]) } });
  const fromBuffer = decodeSafetensors(bytes.slice().buffer);
  assert.deepEqual(fromBuffer.tensors.a, decodeSafetensors(bytes).tensors.a);
  assert.deepEqual([...fromBuffer.tensors.a.data], [1.5, -2]);
});

Deno.test("decode errors name the source and the problem", () => {
  const f4 = [0, 0, 128, 63, 0, 0, 0, 64]; // f32 1, 2
  bad(new Uint8Array(5), /m\.st: file is 5 bytes, shorter than the 8-byte header length/);
  const long = build("{}");
  new DataView(long.buffer).setUint32(0, 100, true);
  bad(long, /m\.st: header length 100 runs past the end/);
  const huge = build("{}");
  new DataView(huge.buffer).setUint32(4, 1, true);
  bad(huge, /header length 4294967298 runs past/);
  bad(build("{nope"), /m\.st: header is not valid JSON/);
  bad(build("[1]"), /m\.st: header is not a JSON object/);
  bad(build("3"), /header is not a JSON object/);
  bad(file({ a: 3 }), /tensor "a": entry is not an object/);
  bad(file({ a: { shape: [1], data_offsets: [0, 4] } }, f4), /tensor "a": missing or non-string dtype/);
  bad(file({ a: entry(4, [1], [0, 4]) }, f4), /tensor "a": missing or non-string dtype/);
  bad(file({ a: entry("Q4", [1], [0, 4]) }, f4), /tensor "a": unsupported dtype "Q4"/);
  bad(file({ a: { dtype: "F32", data_offsets: [0, 4] } }, f4), /tensor "a": missing shape/);
  bad(file({ a: entry("F32", "1", [0, 4]) }, f4), /tensor "a": shape is not an array/);
  bad(file({ a: entry("F32", [-1], [0, 4]) }, f4), /tensor "a": shape \[-1\] has an invalid dimension -1/);
  bad(file({ a: entry("F32", [1.5], [0, 4]) }, f4), /invalid dimension 1\.5/);
  bad(file({ a: entry("F32", ["2"], [0, 4]) }, f4), /invalid dimension "2"/);
  bad(file({ a: { dtype: "F32", shape: [1] } }, f4), /tensor "a": data_offsets must be two non-negative/);
  bad(file({ a: entry("F32", [1], [0]) }, f4), /data_offsets must be two non-negative integers, got \[0\]/);
  bad(file({ a: entry("F32", [1], ["0", 4]) }, f4), /data_offsets must be two/);
  bad(file({ a: entry("F32", [1], [-4, 0]) }, f4), /data_offsets must be two/);
  bad(file({ a: entry("F32", [1], [4, 0]) }, f4), /tensor "a": data_offsets \[4, 0\] are reversed/);
  bad(file({ a: entry("F32", [1], [4, 12]) }, f4), /data_offsets \[4, 12\] lie outside the 8-byte data area/);
  bad(file({ a: entry("F32", [3], [0, 8]) }, f4), /tensor "a": 8 bytes but shape \[3\] of F32 needs 12/);
  bad(file({ a: entry("F16", [1], [0, 4]) }, f4), /4 bytes but shape \[1\] of F16 needs 2/);
  bad(
    file({ a: entry("F32", [2], [0, 8]), b: entry("F32", [1], [4, 8]) }, f4),
    /m\.st: tensors "a" and "b" overlap/,
  );
  bad(build(`{"a":${JSON.stringify(entry("F32", [1], [0, 4]))}, "a" :{"x":1}}`, f4), /duplicate name "a"/);
  bad(build(`{"\\u0061":{"a":1,"a":2},"b":[{"a":"}"}],"a":1}`), /duplicate name "a"/);
  bad(file({ __metadata__: { a: 1 } }), /m\.st: metadata value for "a" is not a string/);
  bad(file({ __metadata__: ["x"] }), /__metadata__ is not an object/);
});

Deno.test("decode: keys nested in values are not mistaken for duplicates", () => {
  const header = `{"x":${JSON.stringify(entry("F32", [1], [0, 4]))},"__metadata__":{"x":"a,\\"x\\":"}}`;
  const { tensors, metadata } = decodeSafetensors(build(header, [0, 0, 128, 63]));
  assert.deepEqual([...tensors.x.data], [1]);
  assert.deepEqual(metadata, { x: 'a,"x":' });
});

Deno.test("decode: a tensor named __proto__ is an ordinary entry", () => {
  const { tensors } = decodeSafetensors(
    build(`{"__proto__":${JSON.stringify(entry("F32", [1], [0, 4]))}}`, [0, 0, 128, 63]),
  );
  assert.deepEqual(Object.keys(tensors), ["__proto__"]);
  assert.deepEqual([...tensors["__proto__"].data], [1]);
});

Deno.test("encode errors", () => {
  assert.throws(
    () => encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
    /tensor "w": 3 elements but shape \[2,2\] needs 4/,
  );
  assert.throws(() => encodeSafetensors({ w: { shape: [-1], data: new Float32Array(3) } }), /invalid dim/);
  assert.throws(
    () => encodeSafetensors({ __metadata__: { shape: [], data: new Float32Array(1) } }),
    /reserved/,
  );
  assert.throws(() => encodeSafetensors({}, { a: 1 as unknown as string }), /metadata value for "a"/);
});

Deno.test("saveFileAtomic writes the whole file and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/m.safetensors`;
    const bytes = encodeSafetensors({ w: { shape: [3], data: new Float32Array([1, 2, 3]) } }, { k: "v" });
    await saveFileAtomic(path, new Uint8Array([1, 2, 3]));
    await saveFileAtomic(path, bytes); // overwrite
    assert.deepEqual(await readFileBytes(path), bytes);
    assert.deepEqual([...decodeSafetensors(await readFileBytes(path), path).tensors.w.data], [1, 2, 3]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saveFileAtomic failure leaves no temp file and no partial target", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The rename fails because the target is a non-empty directory: the temp file must be cleaned up.
    await Deno.mkdir(`${dir}/target`);
    await Deno.writeTextFile(`${dir}/target/keep`, "x");
    await assert.rejects(saveFileAtomic(`${dir}/target`, new Uint8Array(10)), /cannot write .*target/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["target"]);
    assert.equal(Deno.readTextFileSync(`${dir}/target/keep`), "x");
    // The write itself fails (missing folder): nothing appears.
    await assert.rejects(saveFileAtomic(`${dir}/missing/m.st`, new Uint8Array(1)), /cannot write .*missing/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["target"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file errors name the path", async () => {
  await assert.rejects(readFileBytes("/nonexistent/x.st"), /cannot read \/nonexistent\/x\.st/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/bad.st`, new Uint8Array(3));
    await assert.rejects(
      readFileBytes(`${dir}/bad.st`).then((b) => decodeSafetensors(b, `${dir}/bad.st`)),
      new RegExp(`${dir}/bad\\.st: file is 3 bytes`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
