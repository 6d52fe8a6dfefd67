// deno-lint-ignore-file no-explicit-any
// (the cases pass deliberately ill-typed arguments, as a JavaScript caller could)
// Bad inputs across the library and train.ts, one table: each case names its group, and asserts the
// exact error class and fragments of the message (the op, the bad value, what was expected). With
// the tables of api_checks_test.ts and hardening_test.ts, these make the bad-input suite.
import assert from "node:assert/strict";
import * as M from "../mod.ts";
import { targetLogProbs } from "../tensor/composite.ts";
import { parseFlags } from "../train/args.ts";
import { assertThrowsWith } from "./util.ts";

const T = M as any;
const { ShapeError } = M;
type Case = [
  group: string,
  name: string,
  fn: () => unknown,
  cls: new (...a: any[]) => Error,
  parts: string[],
];

const t = (data: unknown, dtype?: unknown) => T.tensor(data, dtype);
const idx = (data: unknown) => T.tensor(data, "i32");
/** A tensor that was disposed. */
const gone = () => {
  const x = t([[1, 2], [3, 4]]);
  x.dispose();
  return x;
};
const cfg = { vocabSize: 10, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
const gpt = new M.GPT(cfg);
const sd = gpt.stateDict();
const without = (k: string) => Object.fromEntries(Object.entries(sd).filter(([n]) => n !== k));
const lp = (a: number[]) => M.tensor(a) as M.Tensor<[number]>;
const pairLogProbs = { policyChosen: lp([0]), policyRejected: lp([0]), referenceChosen: lp([0]) };
const logProbs = { ...pairLogProbs, referenceRejected: lp([0]) };
const J = (o: unknown) => JSON.stringify(o);
const z12 = () => M.zeros([1, 2]);
const jsonl = (text: string) => () => M.parsePreferenceJsonl(text, "p.jsonl");
const msg = (role: unknown, content: unknown) => ({ role, content });
/** A one-step DPO trainer on `pair` (tokens of the 10-symbol GPT above). */
const dpoStep = (pair: M.EncodedPair) => () =>
  new M.DPOTrainer({
    policy: new M.GPT(cfg),
    train: [pair],
    config: { beta: 0.1, lr: 1e-3, steps: 1, batchSize: 1, padId: 0 },
  }).step();
/** Header-only safetensors bytes with `header` as JSON and `data` bytes of data. */
const safetensors = (header: string, data = 0) => {
  const j = new TextEncoder().encode(header), b = new Uint8Array(8 + j.length + data);
  new DataView(b.buffer).setUint32(0, j.length, true);
  b.set(j, 8);
  return b;
};
const decode = (header: string, data = 0) => () => M.decodeSafetensors(safetensors(header, data), "f.st");
const emb = (wte: number[], wpe: number[], more: Record<string, { shape: number[] }> = {}) => ({
  "transformer.wte.weight": { shape: wte },
  "transformer.wpe.weight": { shape: wpe },
  ...more,
});

// Files for the loading cases, and run folders for the flag cases.
const dir = Deno.makeTempDirSync({ prefix: "bad_inputs_" });
const file = (name: string, bytes: Uint8Array | string) => {
  const path = `${dir}/${name}`;
  if (typeof bytes === "string") Deno.writeTextFileSync(path, bytes);
  else Deno.writeFileSync(path, bytes);
  return path;
};
const folder = (name: string, files: Record<string, Uint8Array | string> = {}) => {
  Deno.mkdirSync(`${dir}/${name}`);
  for (const [f, b] of Object.entries(files)) file(`${name}/${f}`, b);
  return `${dir}/${name}`;
};
const truncated = file("trunc.safetensors", (await M.saveSafetensors({ a: M.zeros([4]) })).slice(0, 20));
const bomOnly = file("bom.jsonl", "\uFEFF\r\n\r\n");
const badConfig = folder("badconfig", { "config.json": "{oops", "model.safetensors": new Uint8Array() });
const wideGpt = new M.GPT({ ...cfg, nEmbd: 16 });
const mismatched = folder("mismatched", {
  "config.json": J({ n_embd: 8, n_layer: 1, n_head: 2, vocab_size: 10, n_positions: 8 }),
  "model.safetensors": await M.saveSafetensors(wideGpt.stateDict()),
});
wideGpt.dispose();
const notOurs = folder("notours", { "notes.txt": "mine" });
const emptyRun = folder("emptyrun", { "notes.txt": "mine" });
const midSft = folder("midsft", { "metrics.jsonl": "" });
const sftDone = folder("sftdone", { "metrics.jsonl": "", "sft.safetensors": "" });
const sftPrev = folder("sftprev", { "metrics.jsonl": "", "sft.safetensors.prev": "" });
const flags = (...argv: string[]) => () => parseFlags(argv);
/** A DPO trainer of one pair (1 step of 1 pair) with `config` changed. */
const trainer = (config: Record<string, unknown>) =>
  new M.DPOTrainer({
    policy: gpt,
    reference: null,
    train: [{ prompt: [1], chosen: [2], rejected: [3] }],
    config: { beta: 0.1, lr: 1e-3, steps: 1, batchSize: 1, padId: 0, referenceFree: true, ...config },
  });

const cases: Case[] = [
  // Tensor creation: nested data, counts, dtypes, shapes, scalars.
  ["create", "ragged nested array", () => t([[1, 2], [3]]), ShapeError, ["tensor", "ragged", "at [1]"]],
  ["create", "ragged after an empty row", () => t([[], [1]]), ShapeError, ["tensor", "ragged"]],
  ["create", "string element", () => t(["a"]), TypeError, ["tensor", "element at [0]", "not a number"]],
  ["create", "undefined data", () => t(undefined), TypeError, ["tensor", "not a number"]],
  ["create", "object data", () => t({}), TypeError, ["tensor", "not a number"]],
  ["create", "values do not fill the shape", () => T.fromArray([1, 2, 3], [2]), ShapeError, [
    "fromArray",
    "3 values",
    "shape [2]",
  ]],
  ["create", "uppercase dtype", () => t([1], "F32"), TypeError, ['"F32"', "f32, i32, bool, f64"]],
  ["create", "cast to int32", () => t([1]).cast("int32"), TypeError, ["cast", '"int32"']],
  ["create", "zeros of null", () => T.zeros(null), ShapeError, ["full", "invalid shape null"]],
  ["create", "full of a string shape", () => T.full("3", 0), ShapeError, ["full", "invalid shape"]],
  ["create", "bool from 0.5", () => t([0.5], "bool"), RangeError, ["value 0.5", "index 0", "bool"]],
  ["create", "i32 below its range", () => T.fromArray([-(2 ** 31) - 1], [1], "i32"), RangeError, [
    "-2147483649",
    "i32",
  ]],
  ["create", "Int32Array 2 as bool", () => T.fromArray(new Int32Array([0, 2]), [2], "bool"), RangeError, [
    "value 2",
    "index 1",
  ]],
  ["create", "item of two elements", () => t([1, 2]).item(), ShapeError, ["item", "shape [2]", "2 elements"]],
  ["create", "backward of a vector", () => t([1, 2]).requiresGrad_().mul(2).backward(), ShapeError, [
    "backward",
    "shape [2]",
    "scalar",
  ]],
  ["create", "backward without grad", () => t(1).mul(2).backward(), Error, [
    "backward",
    "does not require grad",
  ]],
  ["create", "assign another shape", () => M.zeros([2]).assign(M.zeros([3]) as any), ShapeError, [
    "assign",
    "[3]",
    "[2]",
  ]],
  ["create", "unknown backend", () => T.setBackend("tpu"), Error, [
    "setBackend",
    '"tpu"',
    "cpu, webgpu or auto",
  ]],
  ["create", "fromArray of a string", () => T.fromArray("ab", [2]), TypeError, [
    "fromArray",
    "must be an array or a typed array",
    "got string",
  ]],
  ["create", "fromArray of null", () => T.fromArray(null, [0]), TypeError, ["fromArray", "got null"]],
  ["create", "requiresGrad_ on i32", () => idx([1, 2]).requiresGrad_(), TypeError, [
    "requiresGrad_",
    "only floating tensors",
    "dtype i32",
  ]],
  ["create", "requiresGrad_ on bool", () => t([true]).requiresGrad_(), TypeError, [
    "requiresGrad_",
    "dtype bool",
  ]],

  // Elementwise ops broadcast or name both shapes.
  ["elementwise", "add [3] + [2]", () => t([1, 2, 3]).add(t([1, 2])), ShapeError, [
    "add",
    "[3] and [2]",
    "cannot broadcast",
  ]],
  ["elementwise", "mul [1, 3] · [1, 2]", () => t([[1, 2, 3]]).mul(t([[1, 2]])), ShapeError, [
    "mul",
    "[1, 3] and [1, 2]",
  ]],
  ["elementwise", "sub [2, 2] − [3]", () => M.zeros([2, 2]).sub(M.zeros([3]) as any), ShapeError, [
    "sub",
    "[2, 2] and [3]",
  ]],
  ["elementwise", "div [2] / [3]", () => t([1, 2]).div(t([1, 2, 3])), ShapeError, ["div", "[2] and [3]"]],
  ["elementwise", "maximum [2], [3]", () => t([1, 2]).maximum(t([1, 2, 3])), ShapeError, [
    "maximum",
    "[2] and [3]",
  ]],
  ["elementwise", "pow [2], [3]", () => t([1, 2]).pow(t([1, 2, 3])), ShapeError, ["pow", "[2] and [3]"]],
  ["elementwise", "gt [2], [3]", () => t([1, 2]).gt(t([1, 2, 3])), ShapeError, ["gt", "[2] and [3]"]],
  ["elementwise", "where [2] and [3]", () => T.where(t([1, 0], "bool"), t([1, 2, 3]), 0), ShapeError, [
    "where",
    "[2] and [3]",
  ]],
  [
    "elementwise",
    "maskedFill with a longer mask",
    () => t([1, 2]).maskedFill(t([1, 0, 1], "bool"), 0),
    ShapeError,
    [
      "[3] and [2]",
      "cannot broadcast",
    ],
  ],
  ["elementwise", "expand [2] to [3]", () => M.zeros([2]).expand([3] as any), ShapeError, [
    "expand",
    "[2] and [3]",
  ]],
  ["elementwise", "expand to a lower rank", () => M.zeros([2, 2]).expand([2] as any), ShapeError, [
    "expand",
    "[2, 2] and [2]",
  ]],
  ["elementwise", "add a string", () => t([1]).add("x"), TypeError, [
    "add: operand must be a tensor or a number",
    "got string",
  ]],
  ["elementwise", "add undefined", () => t([1]).add(undefined), TypeError, ["add: operand", "got undefined"]],
  ["elementwise", "sub null", () => t([1]).sub(null), TypeError, ["sub: operand", "got null"]],
  ["elementwise", "gt a boolean", () => t([1]).gt(true), TypeError, ["gt: operand", "got boolean"]],
  ["elementwise", "and an array", () => t([true]).and([true]), TypeError, ["and: operand", "got object"]],

  // matmul names the inner dimensions, or the batch shapes.
  ["matmul", "inner 3 and 1", () => t([[1, 2, 3]]).matmul(t([[1, 2]])), ShapeError, [
    "matmul",
    "inner dimensions 3 and 1",
    "[1, 3] and [1, 2]",
  ]],
  ["matmul", "a scalar", () => t(1).matmul(t([1])), ShapeError, ["matmul", "at least 1 dimension"]],
  ["matmul", "batch 2 and 3", () => T.zeros([2, 2, 3]).matmul(T.zeros([3, 3, 4])), ShapeError, [
    "matmul",
    "[2] and [3]",
    "cannot broadcast",
  ]],
  ["matmul", "vectors of 2 and 3", () => t([1, 2]).matmul(t([1, 2, 3])), ShapeError, [
    "matmul",
    "inner dimensions 2 and 3",
  ]],
  ["matmul", "batched by a matrix", () => T.zeros([2, 3, 4]).matmul(T.zeros([5, 6])), ShapeError, [
    "matmul",
    "inner dimensions 4 and 5",
  ]],

  // Reductions name the axis and the shape.
  ["reduce", "sum axis 1 of [2]", () => t([1, 2]).sum(1), ShapeError, [
    "sum",
    "axis 1",
    "out of range",
    "[2]",
  ]],
  ["reduce", "sum axis -3 of [1, 2]", () => t([[1, 2]]).sum(-3), ShapeError, ["sum", "axis -3", "[1, 2]"]],
  ["reduce", "sum axis 0.5", () => t([1, 2]).sum(0.5), ShapeError, ["sum", "axis 0.5"]],
  ["reduce", 'mean axis "0"', () => t([1, 2]).mean("0"), ShapeError, ['mean: axis "0" is not an integer']],
  ["reduce", 'sum axes "10"', () => t([[1, 2]]).sum("10"), ShapeError, ['sum: axis "10" is not an integer']],
  ["reduce", "softmax axis null", () => t([1, 2]).softmax(null), ShapeError, ["softmax: axis null is not"]],
  ["reduce", "sum an axis twice", () => t([[1, 2]]).sum([0, 0]), ShapeError, ["sum", "axis 0 is repeated"]],
  ["reduce", "mean axis 2", () => t([1, 2]).mean(2), ShapeError, ["mean", "axis 2", "[2]"]],
  ["reduce", "max axis 2", () => t([1, 2]).max(2), ShapeError, ["max", "axis 2", "[2]"]],
  ["reduce", "argmax axis 1", () => t([1, 2]).argmax(1), ShapeError, ["argmax", "axis 1", "[2]"]],
  ["reduce", "softmax axis 1", () => t([1, 2]).softmax(1), ShapeError, ["softmax", "axis 1", "[2]"]],
  ["reduce", "logSoftmax axis 3", () => t([1, 2]).logSoftmax(3), ShapeError, ["logSoftmax", "axis 3"]],
  ["reduce", "min of nothing", () => M.zeros([0]).min(), ShapeError, ["min", "empty axis 0", "[0]"]],
  ["reduce", "max over axes with an empty one", () => M.zeros([2, 0]).max([0, 1]), ShapeError, [
    "max",
    "empty axis 1",
    "[2, 0]",
  ]],
  ["reduce", "argmin of an empty column", () => M.zeros([0, 2]).argmin(0), ShapeError, [
    "argmin",
    "empty axis 0",
  ]],

  // Movement: reshape, permute, transpose, narrow, split, concat, stack, squeeze.
  ["movement", "reshape 3 to 4 elements", () => t([1, 2, 3]).reshape([2, 2]), ShapeError, [
    "reshape",
    "[3] (3 elements)",
    "[2, 2] (4 elements)",
  ]],
  ["movement", "reshape with two -1", () => M.zeros([4]).reshape([-1, -1] as any), ShapeError, [
    "reshape",
    "only one dimension can be -1",
  ]],
  ["movement", "reshape with -2", () => M.zeros([4]).reshape([-2, -2] as any), ShapeError, [
    "reshape",
    "[-2, -2]",
  ]],
  ["movement", "reshape 5 by -1 into 2s", () => M.zeros([5]).reshape([2, -1] as any), ShapeError, [
    "reshape",
    "[5] (5 elements)",
    "[2, -1]",
  ]],
  ["movement", "reshape to a fraction", () => M.zeros([4]).reshape([2.5, 2] as any), ShapeError, [
    "reshape",
    "[2.5, 2]",
  ]],
  ["movement", "permute too few axes", () => T.zeros([2, 3]).permute([0]), ShapeError, [
    "permute",
    "[0] is not a permutation",
    "[2, 3]",
  ]],
  ["movement", "permute a repeated axis", () => T.zeros([2, 3]).permute([0, 0]), ShapeError, [
    "permute",
    "[0, 0]",
  ]],
  ["movement", "permute axis 2 of a matrix", () => T.zeros([2, 3]).permute([0, 2]), ShapeError, [
    "permute",
    "[0, 2]",
  ]],
  ["movement", "transpose axis 2", () => T.zeros([2, 3]).transpose(0, 2), ShapeError, [
    "transpose",
    "axis 2",
  ]],
  ["movement", "narrow past the end", () => T.zeros([4]).narrow(0, 2, 3), ShapeError, [
    "narrow",
    "range 2..5",
    "axis 0 of shape [4]",
  ]],
  ["movement", "narrow a negative length", () => T.zeros([4]).narrow(0, 0, -1), ShapeError, [
    "narrow",
    "range 0..-1",
  ]],
  ["movement", "narrow axis 1 of a vector", () => T.zeros([4]).narrow(1, 0, 1), ShapeError, [
    "narrow",
    "axis 1",
  ]],
  ["movement", "narrow from 0.5", () => T.zeros([4]).narrow(0, 0.5, 1), ShapeError, ["narrow", "0.5..1.5"]],
  ["movement", "split sizes short of the axis", () => T.zeros([4]).split([1, 2]), ShapeError, [
    "split",
    "[1, 2] do not add up to 4",
  ]],
  ["movement", "split along axis 1 of a vector", () => T.zeros([4]).split(2, 1), ShapeError, [
    "split",
    "axis 1",
  ]],
  ["movement", "concat of nothing", () => T.concat([]), ShapeError, ["concat", "at least one tensor"]],
  ["movement", "concat of ranks 1 and 2", () => T.concat([T.zeros([2]), T.zeros([2, 2])]), ShapeError, [
    "concat",
    "[2] and [2, 2]",
  ]],
  ["movement", "concat of other widths", () => T.concat([T.zeros([2, 3]), T.zeros([2, 4])]), ShapeError, [
    "concat",
    "[2, 3] and [2, 4] differ outside axis 0",
  ]],
  [
    "movement",
    "concat along axis 1 of vectors",
    () => T.concat([T.zeros([2]), T.zeros([2])], 1),
    ShapeError,
    [
      "concat",
      "axis 1",
    ],
  ],
  ["movement", "stack of nothing", () => T.stack([]), ShapeError, ["stack", "at least one tensor"]],
  ["movement", "stack of [2] and [3]", () => T.stack([T.zeros([2]), T.zeros([3])]), ShapeError, [
    "stack",
    "[2] and [3] differ",
  ]],
  ["movement", "stack along axis 3", () => T.stack([T.zeros([2]), T.zeros([2])], 3), ShapeError, [
    "stack",
    "axis 3",
  ]],
  ["movement", "squeeze a size-2 axis", () => T.zeros([2]).squeeze(0), ShapeError, [
    "squeeze",
    "axis 0 of shape [2] has size 2",
  ]],
  ["movement", "unsqueeze at 3", () => T.zeros([2]).unsqueeze(3), ShapeError, ["unsqueeze", "axis 3"]],

  // Indexing: i32 indices of the right rank, in range (checked when read on the CPU).
  ["indexing", "gather by f32 indices", () => t([[1, 2]]).gather(1, t([[0]])), TypeError, [
    "gather",
    "index must be i32, got f32",
  ]],
  ["indexing", "gather by a lower rank", () => t([[1, 2]]).gather(1, idx([0])), ShapeError, [
    "gather",
    "index shape [1]",
    "same rank",
  ]],
  ["indexing", "gather along axis 2", () => t([[1, 2]]).gather(2, idx([[0]])), ShapeError, [
    "gather",
    "axis 2",
  ]],
  ["indexing", "gather index 2 of 2", () => t([[1, 2]]).gather(1, idx([[2]])).data(), RangeError, [
    "gather",
    "index 2 is out of range for size 2",
  ]],
  ["indexing", "gather index -1", () => t([[1, 2]]).gather(1, idx([[-1]])).data(), RangeError, [
    "gather",
    "index -1",
  ]],
  ["indexing", "indexSelect by f32", () => t([1, 2]).indexSelect(0, t([0])), TypeError, [
    "indexSelect",
    "index must be i32",
  ]],
  ["indexing", "indexSelect by a matrix", () => t([1, 2]).indexSelect(0, idx([[0]])), ShapeError, [
    "indexSelect",
    "must be 1-D, got [1, 1]",
  ]],
  ["indexing", "indexSelect index 5 of 2", () => t([1, 2]).indexSelect(0, idx([5])).data(), RangeError, [
    "indexSelect",
    "index 5 is out of range for size 2",
  ]],
  ["indexing", "indexSelect along axis 1", () => t([1, 2]).indexSelect(1, idx([0])), ShapeError, [
    "indexSelect",
    "axis 1",
  ]],
  ["indexing", "embedding by f32", () => T.embedding(T.zeros([3, 2]), t([0])), TypeError, [
    "embedding",
    "index must be i32",
  ]],
  ["indexing", "embedding of a vector", () => T.embedding(T.zeros([3]), idx([0])), ShapeError, [
    "embedding",
    "weight must be [vocab, dim], got [3]",
  ]],
  ["indexing", "embedding row 3 of 3", () => T.embedding(T.zeros([3, 2]), idx([3])).data(), RangeError, [
    "embedding",
    "index 3 is out of range for size 3",
  ]],
  [
    "indexing",
    "scatterAdd index and src differ",
    () => T.zeros([2, 2]).scatterAdd(0, idx([[0, 1]]), T.zeros([2, 2])),
    ShapeError,
    [
      "scatterAdd",
      "index shape [1, 2] and src shape [2, 2] differ",
    ],
  ],
  ["indexing", "scatterAdd by f32", () => T.zeros([2]).scatterAdd(0, t([0, 1]), T.zeros([2])), TypeError, [
    "scatterAdd",
    "index must be i32",
  ]],
  [
    "indexing",
    "scatterAdd axis 1 of a vector",
    () => T.zeros([2]).scatterAdd(1, idx([0]), T.ones([1])),
    ShapeError,
    [
      "scatterAdd: axis 1 is out of range for shape [2]",
    ],
  ],
  [
    "indexing",
    "scatterAdd index of another rank",
    () => T.zeros([2]).scatterAdd(0, idx([[0]]), T.ones([1, 1])),
    ShapeError,
    [
      "scatterAdd: index shape [1, 1] must have the same rank as shape [2]",
    ],
  ],
  [
    "indexing",
    "scatterAdd index 2 of 2",
    () => T.zeros([2]).scatterAdd(0, idx([0, 2]), T.ones([2])).data(),
    RangeError,
    [
      "scatterAdd",
      "index 2 is out of range for size 2",
    ],
  ],

  // crossEntropy and targetLogProbs: i32 targets matching the logits' leading shape, in range.
  [
    "composite",
    "crossEntropy with f32 targets",
    () => T.crossEntropy(T.zeros([2, 3]), t([0, 1])),
    TypeError,
    [
      "crossEntropy",
      "index must be i32",
    ],
  ],
  [
    "composite",
    "crossEntropy with 3 targets for 2 rows",
    () => T.crossEntropy(T.zeros([2, 3]), idx([0, 1, 2])),
    ShapeError,
    [
      "crossEntropy",
      "logits [2, 3] do not match targets [3]",
    ],
  ],
  ["composite", "crossEntropy of 1-D logits", () => T.crossEntropy(T.zeros([3]), idx([0])), ShapeError, [
    "crossEntropy",
    "logits [3]",
  ]],
  [
    "composite",
    "crossEntropy target 3 of 3 classes",
    () => T.crossEntropy(T.zeros([2, 3]), idx([0, 3])).item(),
    RangeError,
    [
      "crossEntropy",
      "index 3 is out of range for size 3",
    ],
  ],
  [
    "composite",
    "crossEntropy target -1",
    () => T.crossEntropy(T.zeros([2, 3]), idx([0, -1])).item(),
    RangeError,
    [
      "crossEntropy",
      "index -1",
    ],
  ],
  [
    "composite",
    "targetLogProbs with 3 targets for 2 rows",
    () => targetLogProbs(T.zeros([2, 3]), idx([0, 1, 2])),
    ShapeError,
    [
      "targetLogProbs",
      "logits [2, 3] need targets and mask [2]",
    ],
  ],
  [
    "composite",
    "targetLogProbs with a longer mask",
    () => targetLogProbs(T.zeros([2, 3]), idx([0, 1]), t([1, 1, 1])),
    ShapeError,
    [
      "targetLogProbs",
      "[2]",
    ],
  ],
  [
    "composite",
    "targetLogProbs with f32 targets",
    () => targetLogProbs(T.zeros([2, 3]), t([0, 1])),
    TypeError,
    [
      "index must be i32, got f32",
    ],
  ],

  // A disposed tensor names the op that met it.
  ["disposed", "matmul", () => t([[1, 0], [0, 1]]).matmul(gone()), Error, ["matmul", "[2, 2] was disposed"]],
  ["disposed", "concat", () => T.concat([t([[1, 2]]), gone()]), Error, ["concat", "was disposed"]],
  ["disposed", "gather", () => gone().gather(1, idx([[0]])), Error, ["gather", "was disposed"]],
  ["disposed", "sum", () => gone().sum(), Error, ["sum", "was disposed"]],
  ["disposed", "reshape", () => gone().reshape([4]), Error, ["reshape", "was disposed"]],
  ["disposed", "cast", () => gone().cast("i32"), Error, ["cast", "was disposed"]],
  ["disposed", "toArray", () => gone().toArray(), Error, ["data", "[2, 2] was disposed"]],
  [
    "disposed",
    "a disposed index",
    () => {
      const i = idx([0]);
      i.dispose();
      return t([1, 2]).indexSelect(0, i);
    },
    Error,
    ["indexSelect", "[1] was disposed"],
  ],
  [
    "disposed",
    "backward through a disposed leaf",
    () => {
      const x = t([1, 2]).requiresGrad_(), y = x.mul(2).sum();
      x.dispose();
      return y.backward();
    },
    Error,
    ["mul", "[2] was disposed"],
  ],
  [
    "disposed",
    "forward of a disposed GPT",
    () => {
      const g = new M.GPT(cfg);
      g.dispose();
      return g.forward(idx([[1]]));
    },
    Error,
    ["[10, 8] was disposed"],
  ],

  // nn: GPT config and forward, modules, state dicts.
  ["nn", "GPT config without blockSize", () => new M.GPT({ vocabSize: 10 } as any), RangeError, [
    "config.blockSize must be a positive integer, got undefined",
  ]],
  ["nn", "GPT blockSize Infinity", () => new M.GPT({ ...cfg, blockSize: Infinity }), RangeError, [
    "config.blockSize",
    "Infinity",
  ]],
  ["nn", "GPT dropout 1.5", () => new M.GPT({ ...cfg, dropout: 1.5 } as any), RangeError, [
    "Dropout",
    "[0, 1)",
    "1.5",
  ]],
  ["nn", "GPT dropout -0.1", () => new M.GPT({ ...cfg, dropout: -0.1 } as any), RangeError, [
    "Dropout",
    "-0.1",
  ]],
  ["nn", "Dropout p = 1", () => new T.Dropout(1), RangeError, ["Dropout", "got 1"]],
  ["nn", "GPT.forward of 1-D tokens", () => gpt.forward(idx([1, 2]) as any), ShapeError, [
    "GPT.forward: tokens must be [B, T] with T ≥ 1, got [2]",
  ]],
  ["nn", "GPT.forward of no tokens", () => gpt.forward(idx([[]]) as any), ShapeError, [
    "GPT.forward: tokens must be [B, T] with T ≥ 1, got [1, 0]",
  ]],
  ["nn", "loadStateDict(null)", () => gpt.loadStateDict(null as any), TypeError, [
    "loadStateDict: expected an object of name → tensor, got null",
  ]],
  [
    "nn",
    "loadStateDict with an undefined value",
    () => gpt.loadStateDict({ ...sd, "transformer.wte.weight": undefined } as any),
    Error,
    [
      "shape mismatches: transformer.wte.weight (expected [10, 8], got undefined (not a tensor))",
    ],
  ],
  [
    "nn",
    "loadStateDict with an array for a tensor",
    () => {
      const k = "transformer.wte.weight";
      return gpt.loadStateDict({ ...sd, [k]: [1, 2] } as any);
    },
    Error,
    ["shape mismatches: transformer.wte.weight (expected [10, 8], got 1,2 (not a tensor))"],
  ],
  ["nn", "layerNorm of a 0-d tensor", () => T.layerNorm(t(1)), ShapeError, [
    "layerNorm: a 0-d input has no last axis to normalize",
  ]],
  [
    "nn",
    "layerNorm weight of the wrong size",
    () => T.layerNorm(t([[1, 2, 3]]), t([1, 1, 1, 1])),
    ShapeError,
    [
      "layerNorm: input [1, 3] needs weight and bias [3], got [4]",
    ],
  ],
  ["nn", "layerNorm eps -1", () => T.layerNorm(t([[1, 2, 3]]), undefined, undefined, -1), RangeError, [
    "layerNorm: eps must be ≥ 0, got -1",
  ]],
  [
    "nn",
    "attention k of rank 3",
    () => T.attention(T.zeros([1, 2, 3, 4]), T.zeros([1, 2, 3]), T.zeros([1, 2, 3, 4])),
    ShapeError,
    [
      "attention: q [1, 2, 3, 4] needs k, v [1, 2, S, 4] and keyMask [1, S], got [1, 2, 3], [1, 2, 3, 4]",
    ],
  ],
  [
    "nn",
    "attention keyMask of the wrong length",
    () => {
      const kv = T.zeros([1, 2, 5, 4]);
      return T.attention(T.zeros([1, 2, 3, 4]), kv, kv, { keyMask: T.ones([1, 3]) });
    },
    ShapeError,
    ["attention: q [1, 2, 3, 4] needs k, v [1, 2, S, 4] and keyMask [1, S], got [1, 2, 5, 4], [1, 2, 5, 4], [1, 3]"],
  ],
  ["nn", "AdamW lr NaN", () => new M.AdamW(gpt.parameters(), { lr: NaN }), RangeError, [
    "AdamW: lr must be ≥ 0, got NaN",
  ]],
  ["nn", "AdamW betas [1.5, 0.9]", () => new M.AdamW(gpt.parameters(), { betas: [1.5, 0.9] }), RangeError, [
    "AdamW: betas[0] must be in [0, 1), got 1.5",
  ]],
  ["nn", "AdamW eps -1", () => new M.AdamW(gpt.parameters(), { eps: -1 }), RangeError, [
    "AdamW: eps must be ≥ 0, got -1",
  ]],
  ["nn", "SGD lr -1", () => new M.SGD(gpt.parameters(), -1), RangeError, ["SGD: lr must be ≥ 0, got -1"]],
  ["nn", "SGD momentum Infinity", () => new M.SGD(gpt.parameters(), 0.1, Infinity), RangeError, [
    "SGD: momentum must be ≥ 0, got Infinity (not finite)",
  ]],
  [
    "nn",
    "optimizer state with step NaN",
    () => new M.AdamW(gpt.namedParameters()).loadStateDict({ step: NaN, state: {} }),
    RangeError,
    [
      "AdamW.loadStateDict: step must be a non-negative integer, got NaN",
    ],
  ],
  [
    "nn",
    "optimizer state for no parameter",
    () => new M.AdamW(gpt.namedParameters()).loadStateDict({ step: 1, state: { "nope.exp_avg": t([1]) } }),
    Error,
    [
      "AdamW.loadStateDict: state nope.exp_avg is [1], not a slot (exp_avg,exp_avg_sq) of a parameter",
    ],
  ],
  [
    "nn",
    "optimizer state of the wrong shape",
    () =>
      new M.AdamW(gpt.namedParameters()).loadStateDict({
        step: 1,
        state: { "transformer.wte.weight.exp_avg": t([1]) },
      }),
    Error,
    [
      "state transformer.wte.weight.exp_avg is [1], expected [10, 8]",
    ],
  ],
  [
    "dpo",
    "a reference of another shape",
    () => M.dpoLoss({ ...logProbs, referenceChosen: lp([0, 1]) }),
    ShapeError,
    [
      "dpoLoss: shapes [1] and [2] cannot broadcast (policyChosen, referenceChosen)",
    ],
  ],
  ["nn", "Linear of -1 inputs", () => new M.Linear(-1, 2), ShapeError, ["invalid shape [-1, 2]"]],
  ["nn", "Embedding of 2.5 rows", () => new M.Embedding(2.5, 2), ShapeError, ["invalid shape [2.5, 2]"]],
  ["nn", "forward past blockSize", () => gpt.forward(M.zeros([1, 9], "i32")), RangeError, [
    "GPT.forward",
    "sequence length 9 exceeds blockSize 8",
  ]],
  ["nn", "forward of f32 tokens", () => gpt.forward(M.zeros([1, 3]) as any), TypeError, [
    "embedding",
    "index must be i32",
  ]],
  ["nn", "forward of token 10 of 10", () => gpt.forward(idx([[10]])).data(), RangeError, [
    "embedding",
    "index 10 is out of range for size 10",
  ]],
  ["nn", "loadStateDict without a key", () => gpt.loadStateDict(without("transformer.ln_f.weight")), Error, [
    "loadStateDict",
    "missing keys: transformer.ln_f.weight",
  ]],
  [
    "nn",
    "loadStateDict with an extra key",
    () => gpt.loadStateDict({ ...sd, "foo.bar": M.zeros([1]) }),
    Error,
    [
      "loadStateDict",
      "unexpected keys: foo.bar",
    ],
  ],
  [
    "nn",
    "loadStateDict with a wrong shape",
    () => gpt.loadStateDict({ ...sd, "transformer.ln_f.bias": M.zeros([9]) }),
    Error,
    [
      "loadStateDict",
      "transformer.ln_f.bias (expected [8], got [9])",
    ],
  ],
  [
    "nn",
    "loadStateDict of a Linear without bias",
    () => new M.Linear(2, 3).loadStateDict({ weight: M.zeros([2, 3]) }),
    Error,
    [
      "missing keys: bias",
    ],
  ],
  ["nn", "generate from an empty prompt", () => M.generate(gpt, [[]], { maxNewTokens: 2 }), Error, [
    "generate",
    "at least one token",
  ]],
  // Sampling options: each names generate (or sampleToken) and the option; none is silently ignored.
  ["nn", "generate topK 0", () => M.generate(gpt, [[1]], { maxNewTokens: 2, topK: 0 }), RangeError, [
    "generate: topK must be a positive integer, got 0",
  ]],
  [
    "nn",
    "generate maxNewTokens Infinity",
    () => M.generate(gpt, [[1]], { maxNewTokens: Infinity }),
    RangeError,
    [
      "generate: maxNewTokens",
      "Infinity (not finite)",
    ],
  ],
  ["nn", "generate maxNewTokens -1", () => M.generate(gpt, [[1]], { maxNewTokens: -1 }), RangeError, [
    "generate: maxNewTokens must be a non-negative integer, got -1",
  ]],
  ["nn", "generate without options", () => T.generate(gpt, [[1]]), RangeError, [
    "generate: maxNewTokens",
    "undefined",
  ]],
  [
    "nn",
    "generate temperature -1",
    () => M.generate(gpt, [[1]], { maxNewTokens: 1, temperature: -1 }),
    RangeError,
    [
      "generate: temperature must be ≥ 0, got -1",
    ],
  ],
  ["nn", "generate topP 1.5", () => M.generate(gpt, [[1]], { maxNewTokens: 1, topP: 1.5 }), RangeError, [
    "generate: topP must be in (0, 1], got 1.5",
  ]],
  ["nn", "generate from a string", () => T.generate(gpt, "abc", { maxNewTokens: 1 }), Error, [
    "generate: prompts must be arrays of token ids",
  ]],
  ["nn", "sampleToken topK -2", () => M.sampleToken([0, 1], { topK: -2 }, 0.5), RangeError, [
    "sampleToken: topK",
    "-2",
  ]],
  // Optimizers and schedules.
  ["nn", "AdamW of a model", () => new M.AdamW(gpt as any), TypeError, [
    "AdamW: params must be",
    "namedParameters",
  ]],
  ["nn", "AdamW betas [0.9]", () => new M.AdamW(gpt.parameters(), { betas: [0.9] as any }), RangeError, [
    "AdamW: betas[1] must be in [0, 1), got undefined",
  ]],
  [
    "nn",
    "SGD step at lr NaN",
    () => {
      const opt = new M.SGD([M.zeros([2]).requiresGrad_()], 0.1);
      opt.lr = NaN;
      opt.step();
    },
    RangeError,
    ["SGD: lr must be ≥ 0, got NaN"],
  ],
  ["nn", "clipGradNorm NaN", () => M.clipGradNorm(gpt.parameters(), NaN), RangeError, [
    "clipGradNorm: maxNorm must be > 0, got NaN",
  ]],
  ["nn", "lrAt decay typo", () => M.lrAt(0, { lr: 1, decay: "cos" as any }), Error, [
    'lrAt: unknown decay "cos"',
  ]],
  ["nn", "lrAt step -3", () => M.lrAt(-3, { lr: 1, warmup: 5 }), RangeError, ["lrAt: step", "-3"]],
  ["nn", "lrAt warmup 0.5", () => M.lrAt(0, { lr: 1, warmup: 0.5 }), RangeError, ["lrAt: warmup", "0.5"]],
  // Safetensors: only the dtypes it writes; the bytes as either array kind.
  [
    "nn",
    "encodeSafetensors Float64Array",
    () => M.encodeSafetensors({ a: { shape: [2], data: new Float64Array(2) as any } }),
    Error,
    [
      'safetensors: tensor "a": data must be a Float32Array or an Int32Array',
    ],
  ],
  ["nn", "decodeSafetensors null", () => M.decodeSafetensors(null as any, "x.st"), Error, [
    "x.st: expected the file's bytes (Uint8Array or ArrayBuffer)",
  ]],
  ["tensor", "expand to -1", () => t([[1, 2, 3]]).expand([-1, 3]), ShapeError, [
    "expand: invalid shape [-1, 3]",
  ]],
  ["tensor", "expand of a number", () => t([[1, 2, 3]]).expand(5 as any), ShapeError, [
    "expand: invalid shape 5",
  ]],
  [
    "tensor",
    "attention past -1",
    () => {
      const q = M.zeros([1, 1, 2, 4]);
      return M.attention(q, q, q, { past: -1 });
    },
    RangeError,
    ["attention: past must be a non-negative integer, got -1"],
  ],
  ["tensor", "tril diagonal 0.5", () => M.tril(3, 3, 0.5), RangeError, [
    "tril: diagonal must be an integer, got 0.5",
  ]],
  ["tensor", "permutation of 2.5", () => M.permutation(2.5, M.rng(0)), RangeError, ["permutation: n", "2.5"]],
  ["tensor", "randn std -1", () => M.randn([3], { std: -1 }), RangeError, ["randn: std must be ≥ 0, got -1"]],
  ["tensor", "fromArray of a string", () => T.fromArray([1, "a"], [2]), TypeError, [
    'fromArray: value "a" at index 1 is not a number',
  ]],
  ["tensor", "full of undefined", () => T.full([2], undefined), TypeError, [
    "full: fill: value undefined",
    "not a number",
  ]],
  ["tensor", "oneHot dtype float", () => M.oneHot(idx([0, 1]), 3, "float" as any), TypeError, [
    'oneHot: unknown dtype "float"',
  ]],
  ["tokenizer", "ByteTokenizer encode null", () => new M.ByteTokenizer().encode(null as any), Error, [
    "ByteTokenizer.encode: expected a string, got null",
  ]],
  ["tokenizer", "WordTokenizer encode a number", () => new M.WordTokenizer(["a"]).encode(3 as any), Error, [
    "WordTokenizer.encode: expected a string, got number",
  ]],
  ["tokenizer", "tokenizerFromJSON of bad JSON", () => M.tokenizerFromJSON("{bad"), Error, [
    "tokenizerFromJSON: not valid JSON",
  ]],
  ["rlhf", "gae gamma NaN", () => T.gae(z12(), z12(), z12(), { gamma: NaN }), RangeError, [
    "gae: gamma",
    "NaN",
  ]],
  ["rlhf", "gae lambda 2", () => T.gae(z12(), z12(), z12(), { lambda: 2 }), RangeError, [
    "gae: lambda",
    "in [0, 1]",
  ]],
  [
    "rlhf",
    "ppoLoss clip as a string",
    () => {
      const [z, c] = [z12(), "0.2"];
      return T.ppoLoss({ logProbs: z, oldLogProbs: z, advantages: z, mask: z }, { clip: c });
    },
    RangeError,
    ['ppoLoss: clip must be > 0, got "0.2"'],
  ],
  [
    "rlhf",
    "valueLoss clip -1",
    () => {
      const z = z12();
      return T.valueLoss({ values: z, oldValues: z, returns: z, mask: z }, { clip: -1 });
    },
    RangeError,
    ["valueLoss: clip must be > 0, got -1"],
  ],
  [
    "rlhf",
    "klPenalizedRewards klCoef NaN",
    () => T.klPenalizedRewards(T.zeros([1]), z12(), z12(), z12(), NaN),
    RangeError,
    [
      "klPenalizedRewards: klCoef must be ≥ 0, got NaN",
    ],
  ],
  ["nn", "compile of a number", () => T.compile(5), TypeError, ["compile: expected a function, got number"]],
  ["nn", "compile cache -1", () => M.compile((x: M.Tensor<[2]>) => x, { cache: -1 }), RangeError, [
    "compile: cache must be a positive integer, got -1",
  ]],
  ["nn", "Dropout p as a string", () => new M.Dropout("0.5" as any), RangeError, [
    'Dropout: p must be in [0, 1), got "0.5"',
  ]],
  ["nn", "LayerNorm eps -1", () => new M.LayerNorm(3, -1), RangeError, [
    "LayerNorm: eps must be ≥ 0, got -1",
  ]],
  ["tensor", "chunk into 0", () => t([1, 2, 3]).chunk(0), RangeError, [
    "chunk: chunks must be a positive integer, got 0",
  ]],
  ["tensor", "gradcheck eps 0", () => M.gradcheck((x) => x.sum(), [t([1])], { eps: 0 }), RangeError, [
    "gradcheck: eps must be > 0, got 0",
  ]],

  // Tokenizers name the unknown symbol and where it is.
  [
    "tokenizer",
    "CharTokenizer unknown character",
    () => new M.CharTokenizer(["a", "b"]).encode("abc"),
    Error,
    [
      "CharTokenizer",
      'unknown character "c"',
      "position 2",
    ],
  ],
  ["tokenizer", "CharTokenizer duplicates", () => new M.CharTokenizer(["a", "a"]), Error, [
    "CharTokenizer: duplicate characters",
  ]],
  ["tokenizer", "WordTokenizer unknown word", () => new M.WordTokenizer(["a", "b"]).encode("a c"), Error, [
    "WordTokenizer",
    'unknown word "c" at word 1',
  ]],
  ["tokenizer", "WordTokenizer word with a space", () => new M.WordTokenizer(["a b"]), Error, [
    "WordTokenizer",
    "without spaces",
  ]],
  ["tokenizer", "ByteTokenizer decodes id 9999", () => new M.ByteTokenizer().decode([9999]), Error, [
    "ByteTokenizer",
    "id 9999 is outside the vocabulary",
  ]],
  [
    "tokenizer",
    "tokenizerFromJSON of another type",
    () => M.tokenizerFromJSON({ type: "sentencepiece" } as any),
    Error,
    [
      "tokenizerFromJSON",
      '"sentencepiece"',
    ],
  ],
  [
    "tokenizer",
    "tokenizer.json not JSON",
    () => M.BPETokenizer.fromTokenizerJson("{nope"),
    Error,
    [
      "fromTokenizerJson",
      "not valid JSON",
    ],
  ],
  [
    "tokenizer",
    "tokenizer.json of WordPiece",
    () => M.BPETokenizer.fromTokenizerJson(J({ model: { type: "WordPiece" } })),
    Error,
    [
      "fromTokenizerJson",
      'model.type is "WordPiece", expected "BPE"',
    ],
  ],

  // safetensors and checkpoint files: every problem named with the file.
  ["checkpoint", "a 4-byte file", () => M.decodeSafetensors(new Uint8Array(4), "f.st"), Error, [
    "f.st",
    "4 bytes, shorter than the 8-byte header length",
  ]],
  ["checkpoint", "header past the end", () => M.loadCheckpoint(truncated), Error, [
    "trunc.safetensors",
    "header length 56 runs past the end",
  ]],
  ["checkpoint", "header not JSON", decode("{nope}"), Error, ["f.st", "header is not valid JSON"]],
  ["checkpoint", "header an array", decode("[1]"), Error, ["f.st", "header is not a JSON object"]],
  ["checkpoint", "dtype U8", decode(J({ a: { dtype: "U8", shape: [1], data_offsets: [0, 1] } }), 1), Error, [
    'tensor "a"',
    'unsupported dtype "U8"',
  ]],
  [
    "checkpoint",
    "offsets past the data",
    decode(J({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }), 4),
    Error,
    [
      'tensor "a"',
      "data_offsets [0, 8] lie outside the 4-byte data area",
    ],
  ],
  [
    "checkpoint",
    "bytes short of the shape",
    decode(J({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }), 8),
    Error,
    [
      'tensor "a"',
      "8 bytes but shape [3] of F32 needs 12",
    ],
  ],
  [
    "checkpoint",
    "a negative dimension",
    decode(J({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }), 8),
    Error,
    [
      "invalid dimension -2",
    ],
  ],
  ["checkpoint", "metadata value a number", decode(J({ __metadata__: { a: 1 } })), Error, [
    'metadata value for "a" is not a string',
  ]],
  [
    "checkpoint",
    "a name twice",
    decode(
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
      4,
    ),
    Error,
    [
      'duplicate name "a"',
    ],
  ],
  [
    "checkpoint",
    "encode the reserved name",
    () => M.encodeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } }),
    Error,
    [
      '"__metadata__": the name is reserved',
    ],
  ],
  [
    "checkpoint",
    "encode 1 value for shape [2]",
    () => M.encodeSafetensors({ a: { shape: [2], data: new Float32Array(1) } }),
    Error,
    [
      'tensor "a"',
      "shape [2] needs 2",
    ],
  ],
  ["checkpoint", "a missing file", () => M.loadCheckpoint(`${dir}/none.safetensors`), Error, [
    "cannot read",
    "none.safetensors",
  ]],
  [
    "checkpoint",
    "save into a missing folder",
    () => M.saveCheckpoint(`${dir}/no/x.safetensors`, { a: M.zeros([1]) }),
    Error,
    [
      "cannot write",
      "no/x.safetensors",
    ],
  ],
  ["checkpoint", "config of no embedding", () => M.gptConfigFromCheckpoint({}), Error, [
    "gptConfigFromCheckpoint",
    "has no transformer.wte.weight",
  ]],
  [
    "checkpoint",
    "config of a 1-D embedding",
    () => M.gptConfigFromCheckpoint({ "transformer.wte.weight": { shape: [10] } }),
    Error,
    [
      "transformer.wte.weight of shape [10], expected 2-D",
    ],
  ],
  ["checkpoint", "config of other widths", () => M.gptConfigFromCheckpoint(emb([10, 8], [4, 6])), Error, [
    "token embeddings of width 8 but position embeddings of 6",
  ]],
  [
    "checkpoint",
    "config without block 0",
    () => M.gptConfigFromCheckpoint(emb([10, 8], [4, 8], { "transformer.h.1.x": { shape: [1] } })),
    Error,
    [
      "blocks up to 1 but no block 0",
    ],
  ],
  [
    "checkpoint",
    "config n_head 3 of width 8",
    () => M.gptConfigFromCheckpoint(emb([10, 8], [4, 8]), { n_head: "3" }),
    Error,
    [
      'metadata n_head "3"',
      "divides nEmbd 8",
    ],
  ],
  [
    "checkpoint",
    "config width 100 without n_head",
    () => M.gptConfigFromCheckpoint(emb([10, 100], [4, 100])),
    Error,
    [
      "nEmbd 100, not a multiple of 64",
    ],
  ],
  ["checkpoint", "pretrained folder missing", () => M.fromPretrained(`${dir}/none`), Error, [
    "fromPretrained",
    "has no config.json and no model.safetensors",
  ]],
  ["checkpoint", "pretrained config.json not JSON", () => M.fromPretrained(badConfig), Error, [
    "fromPretrained",
    "config.json is not valid JSON",
  ]],
  ["checkpoint", "pretrained config and weights disagree", () => M.fromPretrained(mismatched), Error, [
    "has n_embd 8",
    "transformer.wte.weight is [10, 16]",
  ]],
  ["checkpoint", "savePretrained into a folder of other files", () => M.savePretrained(gpt, notOurs), Error, [
    "savePretrained",
    "holds notes.txt, not written by savePretrained",
  ]],

  // Preference data: every line error names the file and the 1-based line.
  ["data", "an empty file", jsonl(""), Error, ["p.jsonl: no preference pairs"]],
  ["data", "only blank lines", jsonl("\n  \n\r\n"), Error, ["p.jsonl: no preference pairs"]],
  ["data", "only a byte-order mark", () => M.loadPreferenceJsonl(bomOnly), Error, [
    "bom.jsonl: no preference pairs",
  ]],
  ["data", "a byte-order mark on line 2", jsonl(J({ chosen: "b", rejected: "c" }) + "\n\uFEFF{}"), Error, [
    "p.jsonl:2: invalid JSON",
  ]],
  ["data", "cut-off JSON", jsonl('{"prompt": "a",'), Error, ["p.jsonl:1: invalid JSON"]],
  ["data", "a trailing comma", jsonl('{"prompt":"a","chosen":"b","rejected":"c",}'), Error, [
    "p.jsonl:1: invalid JSON",
  ]],
  [
    "data",
    "bad JSON on line 3 after CRLF",
    jsonl(J({ chosen: "b", rejected: "c" }) + "\r\n\r\n{oops"),
    Error,
    [
      "p.jsonl:3: invalid JSON",
    ],
  ],
  ["data", "an array line", jsonl("[1, 2]"), Error, ["p.jsonl:1: not a JSON object"]],
  ["data", "a null line", jsonl("null"), Error, ["p.jsonl:1: not a JSON object"]],
  ["data", "a string line", jsonl('"x"'), Error, ["p.jsonl:1: not a JSON object"]],
  ["data", "no chosen", jsonl(J({ prompt: "a", rejected: "c" })), Error, ['p.jsonl:1: missing "chosen"']],
  ["data", "no rejected", jsonl(J({ prompt: "a", chosen: "c" })), Error, ['p.jsonl:1: missing "rejected"']],
  ["data", "chosen a number", jsonl(J({ chosen: 1, rejected: "c" })), Error, [
    '"chosen" must be a string or a list of messages, got number',
  ]],
  ["data", "chosen null", jsonl(J({ chosen: null, rejected: "c" })), Error, ['"chosen"', "got null"]],
  ["data", "prompt a number", jsonl(J({ prompt: 5, chosen: "b", rejected: "c" })), Error, [
    '"prompt" must be a string or a list of messages, got number',
  ]],
  ["data", "rejected an object", jsonl(J({ chosen: "b", rejected: {} })), Error, [
    '"rejected"',
    "got object",
  ]],
  ["data", "empty chosen", jsonl(J({ prompt: "a", chosen: "", rejected: "c" })), Error, [
    'p.jsonl:1: "chosen" is an empty completion',
  ]],
  ["data", "no rejected messages", jsonl(J({ chosen: [msg("user", "x")], rejected: [] })), Error, [
    '"rejected" is an empty completion',
  ]],
  [
    "data",
    "text prompt, message completions",
    jsonl(J({ prompt: "a", chosen: [msg("u", "x")], rejected: [msg("u", "y")] })),
    Error,
    [
      '"prompt" is a string but "chosen" is a list of messages',
    ],
  ],
  ["data", "a message that is a string", jsonl(J({ chosen: ["x"], rejected: [msg("u", "y")] })), Error, [
    '"chosen"[0] must be a { role, content } object',
  ]],
  [
    "data",
    "a message without role",
    jsonl(J({ chosen: [{ content: "x" }], rejected: [msg("u", "y")] })),
    Error,
    [
      '"chosen"[0].role must be a non-empty string, got nothing',
    ],
  ],
  [
    "data",
    "a message with an empty role",
    jsonl(J({ chosen: [msg("u", "x")], rejected: [msg("", "y")] })),
    Error,
    [
      '"rejected"[0].role must be a non-empty string, got ""',
    ],
  ],
  [
    "data",
    "a message with numeric content",
    jsonl(J({ chosen: [msg("u", 3)], rejected: [msg("u", "y")] })),
    Error,
    [
      '"chosen"[0].content must be a string, got 3',
    ],
  ],
  ["data", "every pair identical", jsonl(J({ prompt: "a", chosen: "b", rejected: "b" })), Error, [
    "no preference pairs (1 skipped as chosen === rejected)",
  ]],
  ["data", "a missing file", () => M.loadPreferenceJsonl(`${dir}/none.jsonl`), Error, [
    "cannot read",
    "none.jsonl",
  ]],
  [
    "data",
    "truncate to 1 token",
    () => M.truncatePair({ prompt: [1], chosen: [2], rejected: [3] }, 1),
    Error,
    [
      "truncatePair: maxLength 1",
    ],
  ],
  [
    "data",
    "truncate prompts to the whole length",
    () => M.truncatePair({ prompt: [1], chosen: [2], rejected: [3] }, 4, 4),
    Error,
    [
      "maxPromptLength 4 must be in 1..3",
    ],
  ],
  [
    "data",
    "truncate prompts to 0",
    () => M.truncatePair({ prompt: [1], chosen: [2], rejected: [3] }, 4, 0),
    Error,
    [
      "maxPromptLength 0",
    ],
  ],
  [
    "data",
    "truncate an empty completion",
    () => M.truncatePair({ prompt: [1], chosen: [], rejected: [3] }, 4),
    Error,
    [
      "truncatePair: empty completion",
    ],
  ],
  [
    "data",
    "a completion that encodes to nothing",
    () => M.encodePairs([{ prompt: "p", chosen: "c", rejected: "r" }], (s) => s === "c" ? [] : [1], 8),
    Error,
    [
      "encodePairs: pair 0",
      "encodes to no tokens",
    ],
  ],

  // DPO losses, log-probs and the trainer.
  ["dpo", "beta 0", () => M.dpoLoss(logProbs, { beta: 0 }), RangeError, ["dpoLoss: beta must be > 0, got 0"]],
  ["dpo", "sftWeight NaN", () => M.dpoLoss(logProbs, { sftWeight: NaN }), RangeError, [
    "dpoLoss: sftWeight",
    "NaN",
  ]],
  ["dpo", "bcoDelta NaN", () => M.dpoLoss(logProbs, { lossType: "bco_pair", bcoDelta: NaN }), RangeError, [
    "dpoLoss: bcoDelta must be a finite number, got NaN",
  ]],
  ["dpo", "trainer without lr", () => trainer({ lr: undefined }), RangeError, [
    "DPOTrainer: lr",
    "undefined",
  ]],
  ["dpo", "trainer padId -1", () => trainer({ padId: -1 }), RangeError, ["DPOTrainer: padId", "-1"]],
  ["dpo", "trainer warmup 0.5", () => trainer({ warmup: 0.5 }), RangeError, ["DPOTrainer: warmup", "0.5"]],
  ["dpo", "trainer maxGradNorm NaN", () => trainer({ maxGradNorm: NaN }), RangeError, [
    "DPOTrainer: maxGradNorm must be > 0, got NaN",
  ]],
  ["dpo", "batchPairs of no pairs", () => M.batchPairs([], 0), Error, ["batchPairs: no pairs"]],
  ["dpo", "an empty chosen", dpoStep({ prompt: [1], chosen: [], rejected: [3] }), Error, [
    "batchPairs: pair 0 has an empty completion",
  ]],
  [
    "dpo",
    "batchPairs padTo 0",
    () => M.batchPairs([{ prompt: [1], chosen: [2], rejected: [3] }], 0, 0),
    RangeError,
    [
      "batchPairs: padTo",
      "got 0",
    ],
  ],
  [
    "dpo",
    "precomputeReference batchSize 0",
    () => M.precomputeReference(gpt, [{ prompt: [1], chosen: [2], rejected: [3] }], 0, 0),
    RangeError,
    [
      "precomputeReference: batchSize must be a positive integer, got 0",
    ],
  ],
  ["dpo", "beta NaN", () => M.dpoLoss(logProbs, { beta: NaN }), RangeError, ["beta must be > 0, got NaN"]],
  ["dpo", "label smoothing 0.5", () => M.dpoLoss(logProbs, { labelSmoothing: 0.5 }), RangeError, [
    "labelSmoothing must be in [0, 0.5), got 0.5",
  ]],
  ["dpo", "label smoothing -0.1", () => M.dpoLoss(logProbs, { labelSmoothing: -0.1 }), RangeError, [
    "labelSmoothing",
    "-0.1",
  ]],
  ["dpo", "loss type kto", () => M.dpoLoss(logProbs, { lossType: "kto" as any }), RangeError, [
    'unknown lossType "kto"',
    "sigmoid, robust, ipo",
  ]],
  ["dpo", "no reference log-probs", () => M.dpoLoss({ ...pairLogProbs, referenceChosen: undefined }), Error, [
    "dpoLoss: reference log-probs are required",
  ]],
  ["dpo", "half the reference", () => M.dpoLoss(pairLogProbs), Error, ["reference log-probs are required"]],
  ["dpo", "an SFT term without its log-probs", () => M.dpoLoss(logProbs, { sftWeight: 1 }), Error, [
    "sftWeight needs policyChosenAvg",
  ]],
  [
    "dpo",
    "2 chosen, 3 rejected",
    () => M.dpoLoss({ ...logProbs, policyChosen: lp([0, 1]), policyRejected: lp([0, 1, 2]) }),
    ShapeError,
    [
      "[2] and [3]",
      "cannot broadcast",
    ],
  ],
  [
    "dpo",
    "sequenceLogProbs tokens too short",
    () => M.sequenceLogProbs(M.zeros([1, 3, 4]), M.zeros([1, 2], "i32") as any, M.zeros([1, 3])),
    Error,
    [
      "sequenceLogProbs",
      "need tokens and mask [1, 3], got [1, 2] and [1, 3]",
    ],
  ],
  [
    "dpo",
    "sequenceLogProbs mask of 2 rows",
    () => M.sequenceLogProbs(M.zeros([1, 3, 4]), M.zeros([1, 3], "i32"), M.zeros([2, 3]) as any),
    Error,
    [
      "got [1, 3] and [2, 3]",
    ],
  ],
  [
    "dpo",
    "sequenceLogProbs of f32 tokens",
    () => M.sequenceLogProbs(M.zeros([1, 3, 4]), M.zeros([1, 3]), M.ones([1, 3])),
    TypeError,
    [
      "index must be i32, got f32",
    ],
  ],
  [
    "dpo",
    "a trainer without pairs",
    () =>
      new M.DPOTrainer({
        policy: gpt,
        train: [],
        config: { beta: 0.1, lr: 1e-3, steps: 1, batchSize: 1, padId: 0 },
      }),
    Error,
    [
      "DPOTrainer: no training pairs",
    ],
  ],
  ["dpo", "a pair with token 20 of 10", dpoStep({ prompt: [1], chosen: [20], rejected: [3] }), RangeError, [
    "embedding",
    "index 20 is out of range for size 10",
  ]],
  [
    "dpo",
    "a pair longer than blockSize",
    dpoStep({ prompt: [1, 1, 1, 1, 1, 1, 1], chosen: [2, 2, 2], rejected: [3] }),
    RangeError,
    [
      "GPT.forward",
      "exceeds blockSize 8",
    ],
  ],

  // Found by probing after the first table: each was a silent wrong value, a hang, an obscure TypeError
  // or an error naming the wrong op.
  ["create", "full i32 with 1.5", () => M.full([2], 1.5, "i32"), RangeError, ["full", "value 1.5", "i32"]],
  ["create", "full i32 with NaN", () => M.full([2], NaN, "i32"), RangeError, ["full", "value NaN", "i32"]],
  ["create", "full bool with 2", () => M.full([2], 2, "bool"), RangeError, ["full", "value 2", "bool"]],
  ["create", "arange i32 by 0.5", () => M.arange(0, 1.5, 0.5, "i32"), RangeError, [
    "arange: start and step",
    "value 0.5",
    "i32",
  ]],
  ["create", "tril(-1)", () => M.tril(-1), ShapeError, ["tril", "invalid shape [-1, -1]"]],
  ["create", "tril(2.5)", () => M.tril(2.5), ShapeError, ["tril", "invalid shape [2.5, 2.5]"]],
  ["create", "triu(-2)", () => M.triu(-2), ShapeError, ["triu", "invalid shape [-2, -2]"]],
  ["create", "oneHot index 3 of 3", () => M.oneHot(idx([3]), 3), RangeError, [
    "oneHot",
    "index 3 is out of range for size 3",
  ]],
  ["create", "oneHot index -1", () => M.oneHot(idx([0, -1]), 3), RangeError, ["oneHot", "index -1"]],
  ["create", "oneHot of 0 classes", () => M.oneHot(idx([0]), -1), ShapeError, [
    "oneHot",
    "invalid shape [1, -1]",
  ]],
  ["movement", "split into pieces of 0", () => M.zeros([4]).split(0), RangeError, [
    "split: size must be a positive integer, got 0",
  ]],
  ["nn", "GPT of null", () => new M.GPT(null as any), TypeError, ["GPT: config must be an object, got null"]],
  ["dpo", "a trainer of batchSize 0", () => trainer({ batchSize: 0 }), RangeError, [
    "DPOTrainer: batchSize must be a positive integer, got 0",
  ]],
  ["dpo", "a trainer of beta -1", () => trainer({ beta: -1 }), RangeError, [
    "DPOTrainer: beta must be > 0, got -1",
  ]],
  ["movement", "split into pieces of -1", () => M.zeros([4]).split(-1), RangeError, [
    "split: size",
    "got -1",
  ]],
  [
    "composite",
    "crossEntropy with a mask for options",
    () => T.crossEntropy(M.zeros([2, 3]), idx([0, 1]), t([1, 0])),
    TypeError,
    [
      "crossEntropy",
      "opts is a tensor; pass a mask as { mask }",
    ],
  ],
  ["dpo", "beta Infinity", () => M.dpoLoss(logProbs, { beta: Infinity }), RangeError, [
    "dpoLoss: beta must be > 0, got Infinity (not finite)",
  ]],
  [
    "dpo",
    "simpoGamma NaN",
    () => M.dpoLoss(pairLogProbs, { lossType: "simpo", simpoGamma: NaN }),
    RangeError,
    [
      "dpoLoss: simpoGamma must be a finite number, got NaN",
    ],
  ],
  [
    "dpo",
    "a trainer of simpoGamma Infinity",
    () => trainer({ lossType: "simpo", simpoGamma: Infinity }),
    RangeError,
    [
      "DPOTrainer: simpoGamma",
      "Infinity (not finite)",
    ],
  ],
  [
    "dpo",
    "restore 1e12 shuffle draws",
    () => trainer({}).restore(sd, { step: "0", shuffle: J({ draws: 1e12, order: [] }) }),
    Error,
    [
      "DPOTrainer: checkpoint has 1000000000000 shuffle draws, not an integer in 0..2",
    ],
  ],

  // train.ts flags (parsed in-process): values, ranges and the flags a mode would ignore.
  [
    "flags",
    "--label-smoothing with --loss hinge",
    flags("--loss", "hinge", "--label-smoothing", "0.1"),
    Error,
    [
      "--label-smoothing is ignored with --loss hinge",
      "only sigmoid, robust, simpo use it",
    ],
  ],
  ["flags", "--label-smoothing 0 with --loss ipo", flags("--loss", "ipo", "--label-smoothing", "0"), Error, [
    "--label-smoothing is ignored with --loss ipo",
  ]],
  [
    "flags",
    "--label-smoothing with --compare-rlhf --loss apo_zero",
    flags("--compare-rlhf", "--loss", "apo_zero", "--label-smoothing", "0.2"),
    Error,
    [
      "--label-smoothing is ignored with --loss apo_zero",
    ],
  ],
  [
    "flags",
    "--init with --resume after SFT",
    flags("--init", "a.safetensors", "--resume", "--out", sftDone),
    Error,
    [
      "--init is ignored with --resume",
      "sft.safetensors",
    ],
  ],
  [
    "flags",
    "--init with --resume after SFT (previous copy)",
    flags("--resume", "--init", "a.safetensors", "--out", sftPrev),
    Error,
    [
      "--init is ignored with --resume",
    ],
  ],
  ["flags", "--resume of a folder of other files", flags("--resume", "--out", emptyRun), Error, [
    "--resume",
    "holds no run to resume",
  ]],
  ["flags", "--loss kto", flags("--loss", "kto"), Error, ["--loss must be one of sigmoid", 'got "kto"']],
  ["flags", "--steps 0", flags("--steps", "0"), Error, [
    "--steps must be an integer from 1 to 1000000, got 0",
  ]],
  ["flags", "--steps abc", flags("--steps", "abc"), Error, ["--steps must be", 'got "abc"']],
  ["flags", "--steps 1e7", flags("--steps", "1e7"), Error, ["--steps must be", "got 1e7"]],
  ["flags", "--batch-size 1.5", flags("--batch-size", "1.5"), Error, [
    "--batch-size must be an integer",
    "got 1.5",
  ]],
  ["flags", "--batch-size 65537", flags("--batch-size", "65537"), Error, ["from 1 to 65536, got 65537"]],
  ["flags", "--lr 0", flags("--lr", "0"), Error, ["--lr must be > 0 and ≤ 1, got 0"]],
  ["flags", "--lr 2", flags("--lr", "2"), Error, ["--lr must be > 0 and ≤ 1, got 2"]],
  ["flags", "--lr -1e-3", flags("--lr", "-1e-3"), Error, ["--lr must be > 0 and ≤ 1, got -1e-3"]],
  ["flags", "--seed 2^32", flags("--seed", "4294967296"), Error, ["--seed must be", "got 4294967296"]],
  ["flags", "--seed 1.5", flags("--seed", "1.5"), Error, ["--seed must be an integer", "got 1.5"]],
  ["flags", "--label-smoothing -0.1", flags("--label-smoothing", "-0.1"), Error, [
    "--label-smoothing must be ≥ 0 and < 0.5, got -0.1",
  ]],
  ["flags", "--label-smoothing abc", flags("--label-smoothing", "abc"), Error, [
    "--label-smoothing must be",
    'got "abc"',
  ]],
  ["flags", "--sweep-beta with an empty item", flags("--sweep-beta", "0.1,,1"), Error, [
    '--sweep-beta must be > 0 and ≤ 100 (comma-separated), got ""',
  ]],
  ["flags", "--sweep-beta 0", flags("--sweep-beta", "0"), Error, ["--sweep-beta must be", "got 0"]],
  ["flags", "--beta 0", flags("--beta", "0"), Error, ["--beta must be > 0 and ≤ 100, got 0"]],
  ["flags", "--beta 101", flags("--beta", "101"), Error, ["--beta must be > 0 and ≤ 100, got 101"]],
  ["flags", "a positional argument", flags("extra"), Error, ["train.ts", "'extra'", "see --help"]],
  ["flags", "--beta without its value", flags("--beta"), Error, ["train.ts", "--beta", "argument missing"]],
  ["flags", "--quick=yes", flags("--quick=yes"), Error, ["'--quick' does not take an argument"]],
  ["flags", "-q", flags("-q"), Error, ["Unknown option '-q'"]],
  ["flags", "--backend GPU", flags("--backend", "GPU"), Error, [
    '--backend must be cpu, webgpu or auto, got "GPU"',
  ]],
  ["flags", "--init of a folder without --data", flags("--init", dir), Error, [
    `--init ${dir} is a pretrained folder, which needs --data FILE`,
  ]],
];

/** Like assertThrowsWith, and the class must be exactly `cls` (an Error is not a TypeError in disguise). */
async function refuses(fn: () => unknown, cls: new (...a: any[]) => Error, parts: string[]): Promise<void> {
  const e = await assertThrowsWith(fn, cls, parts);
  assert.equal(e.constructor, cls, `expected exactly ${cls.name}, got ${e.constructor.name}: ${e.message}`);
}

for (const [group, name, fn, cls, parts] of cases) {
  Deno.test(`bad inputs: ${group}: ${name}`, () => refuses(fn, cls, parts));
}

Deno.test("bad inputs: at least 120 cases in this table, across every group", () => {
  const groups = new Map<string, number>();
  for (const [g] of cases) groups.set(g, (groups.get(g) ?? 0) + 1);
  assert.ok(cases.length >= 120, `${cases.length} cases`);
  for (const g of ["create", "elementwise", "matmul", "reduce", "movement", "indexing", "composite"]) {
    assert.ok(groups.get(g)! >= 5, g);
  }
  for (const g of ["disposed", "nn", "tokenizer", "checkpoint", "data", "dpo", "flags"]) {
    assert.ok(groups.get(g)! >= 5, g);
  }
});

Deno.test("bad inputs: the flags a refusal is about pass where the mode uses them", () => {
  assert.equal(parseFlags(["--loss", "robust", "--label-smoothing", "0.2"])!.labelSmoothing, 0.2);
  assert.equal(parseFlags(["--loss", "simpo", "--label-smoothing", "0.1"])!.labelSmoothing, 0.1);
  assert.equal(parseFlags(["--label-smoothing", "0.1"])!.loss, "sigmoid");
  assert.equal(parseFlags(["--loss", "hinge"])!.labelSmoothing, 0);
  // --init still starts SFT when the folder has no SFT model yet, and gives --data its model and tokenizer.
  assert.equal(parseFlags(["--init", "a.safetensors", "--resume", "--out", midSft])!.init, "a.safetensors");
  assert.equal(parseFlags(["--data", "p.jsonl", "--init", "gpt", "--resume", "--out", sftDone])!.init, "gpt");
});

// Operands on different backends (where a WebGPU adapter is present, as in api_checks_test.ts), realized
// so that each operand is a buffer on its backend; these add to api_checks_test.ts's eleven.
const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
Deno.test({
  name: "bad inputs: mixed backends: ops beyond api_checks_test.ts's refuse operands on two backends",
  ignore: !adapter,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const c = t([[1, 2], [3, 4]]).realize(), ci = idx([0, 1]).realize();
    const model = new M.GPT(cfg);
    try {
      await M.setBackend("webgpu");
      const g = t([[1, 2], [3, 4]]).realize(), gi = idx([[0, 1], [1, 0]]).realize();
      const gv = t([0, 1]).realize();
      const mixed: [string, () => unknown, string[]][] = [
        ["sub", () => c.sub(g), ["sub"]],
        ["div", () => g.div(c), ["div"]],
        ["pow", () => c.pow(g), ["pow"]],
        ["maximum", () => g.maximum(c), ["maximum"]],
        ["maskedFill", () => c.maskedFill(g.gt(1), 0), []],
        ["assign", () => c.assign(g), ["assign"]],
        ["layerNorm", () => T.layerNorm(c, g.narrow(0, 0, 1).reshape([2])), []],
        ["targetLogProbs", () => targetLogProbs(g, ci), []],
        [
          "sequenceLogProbs",
          () => M.sequenceLogProbs(c.reshape([1, 2, 2]), gi.narrow(0, 0, 1), gi.narrow(0, 0, 1)),
          [],
        ],
        ["GPT.forward", () => model.forward(gi), []],
        [
          "dpoLoss",
          () => {
            const row = c.narrow(0, 0, 1).reshape([2]);
            return M.dpoLoss({
              policyChosen: gv,
              policyRejected: row,
              referenceChosen: row,
              referenceRejected: row,
            });
          },
          [],
        ],
      ];
      for (const [name, fn, op] of mixed) {
        await assertThrowsWith(fn, Error, [...op, "tensors live on different backends", "cpu", "webgpu"])
          .catch((e) => Promise.reject(new Error(`${name}: ${e.message}`)));
      }
      assert.equal(mixed.length, 11);
    } finally {
      await M.setBackend("cpu");
    }
  },
});

// Indices computed on the device (no host copy to check): a check kernel runs with the op, and the next
// read throws naming the op and the offending index.
Deno.test({
  name: "bad inputs: webgpu: out-of-range indices computed on the device throw at the next read",
  ignore: !adapter,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    try {
      await M.setBackend("webgpu");
      const dev = (v: M.Nested) => t(v as number[]).cast("i32"); // a cast: computed on the device
      const table = t([[1, 2], [3, 4], [5, 6]]).realize();
      const cases: [string, () => M.Tensor<any>, string][] = [
        [
          "indexSelect",
          () => table.indexSelect(0, dev([0, 3])),
          "indexSelect: index 3 (computed on the device)",
        ],
        ["gather", () => table.gather(1, dev([[0, 1], [2, 0], [1, 1]])), "gather: index 2 (computed"],
        ["embedding", () => T.embedding(table, dev([2, -1])), "embedding: index -1 (computed on the device)"],
        [
          "scatterAdd",
          () => t([0, 0]).scatterAdd(0, dev([1, 5]), t([1, 1])),
          "scatterAdd: index 5 (computed",
        ],
        ["crossEntropy", () => T.crossEntropy(table, dev([1, 2, 3])), "crossEntropy: index 3 (computed"],
      ];
      for (const [name, fn, fragment] of cases) {
        await refuses(() => fn().data(), RangeError, [fragment])
          .catch((e) => Promise.reject(new Error(`${name}: ${e.message}`)));
      }
      // In range, or the ignored index of crossEntropy: no error.
      assert.equal((await table.indexSelect(0, dev([2, 0])).data()).length, 4);
      assert.ok(Number.isFinite(await T.crossEntropy(table, dev([1, -100, 0])).item()));
    } finally {
      await M.setBackend("cpu");
    }
  },
});

Deno.test({
  name: "bad inputs: remove the temp folder",
  fn: () => Deno.remove(dir, { recursive: true }),
});
