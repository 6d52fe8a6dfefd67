// deno-lint-ignore-file no-explicit-any
// (the cases pass deliberately ill-typed arguments, as a JavaScript caller could)
// Hostile inputs at the API boundary: bad dtypes, shapes and data, reductions over empty axes, and
// operands on different backends each give a typed error naming the op and the bad value.
import assert from "node:assert/strict";
import * as M from "../mod.ts";
import { assertThrowsWith } from "./util.ts";

const T = M as any;
const { ShapeError } = M;
type Case = [string, () => unknown, new (...a: any[]) => Error, string[]];

const cases: Case[] = [
  // dtypes come from a closed list
  ["tensor float32", () => T.tensor([1, 2], "float32"), TypeError, [
    "tensor",
    '"float32"',
    "f32, i32, bool, f64",
  ]],
  ["tensor options object", () => T.tensor([1], { requiresGrad: true }), TypeError, [
    "tensor",
    "requiresGrad",
  ]],
  ["fromArray int64", () => T.fromArray([1], [1], "int64"), TypeError, ["fromArray", '"int64"']],
  ["full dtype", () => T.full([2], 1, "float"), TypeError, ["full", '"float"', "f32"]],
  ["zeros dtype", () => T.zeros([2], "double"), TypeError, ["full", '"double"']],
  ["ones dtype null", () => T.ones([2], null), TypeError, ["full", "null"]],
  ["arange dtype", () => T.arange(0, 3, 1, "int"), TypeError, ["arange", '"int"']],
  ["rand dtype", () => T.rand([2], { dtype: "f16" }), TypeError, ["rand", '"f16"']],
  ["randn dtype", () => T.randn([2], { dtype: 32 }), TypeError, ["randn", "32"]],
  ["cast dtype", () => T.tensor([1]).cast("float64"), TypeError, ["cast", '"float64"']],
  // shapes are arrays of non-negative safe integers
  ["fromArray negative", () => T.fromArray([1, 2], [-1, -2]), ShapeError, ["fromArray", "[-1, -2]"]],
  ["fromArray fraction", () => T.fromArray([1, 2], [0.5, 4]), ShapeError, ["fromArray", "0.5"]],
  ["fromArray NaN", () => T.fromArray([1], [NaN]), ShapeError, ["fromArray", "NaN"]],
  ["fromArray not array", () => T.fromArray([1], 1), ShapeError, ["fromArray", "invalid shape"]],
  ["full negative", () => T.full([-3], 0), ShapeError, ["full", "[-3]"]],
  ["zeros Infinity", () => T.zeros([Infinity]), ShapeError, ["full", "Infinity"]],
  ["ones fraction", () => T.ones([2.5]), ShapeError, ["full", "2.5"]],
  ["rand negative", () => T.rand([-2]), ShapeError, ["rand", "[-2]"]],
  ["randn fraction", () => T.randn([1.5]), ShapeError, ["randn", "1.5"]],
  ["rand string size", () => T.rand(["2"]), ShapeError, ["rand", "invalid shape"]],
  // huge allocations fail fast with the size
  ["zeros huge", () => T.zeros([1e6, 1e6]), RangeError, ["full", "1000000000000", "2^31"]],
  ["rand huge", () => T.rand([2 ** 20, 2 ** 12]), RangeError, ["rand", "4294967296"]],
  ["randn huge", () => T.randn([2 ** 32]), RangeError, ["randn", "4294967296"]],
  ["fromArray huge", () => T.fromArray([1], [2 ** 16, 2 ** 16]), RangeError, ["fromArray", "2^31"]],
  ["arange huge", () => T.arange(0, 2 ** 40), RangeError, ["arange", "1099511627776"]],
  ["arange Infinity", () => T.arange(Infinity), RangeError, ["arange", "Infinity"]],
  ["arange NaN step", () => T.arange(0, 3, NaN), RangeError, ["arange", "NaN"]],
  ["arange zero step", () => T.arange(0, 3, 0), RangeError, ["arange", "step"]],
  // integer dtypes take integers, and the first bad index is named
  ["i32 fraction", () => T.tensor([1, 2.5], "i32"), RangeError, ["tensor", "2.5", "index 1", "i32"]],
  ["i32 NaN", () => T.fromArray([0, 1, NaN], [3], "i32"), RangeError, ["fromArray", "NaN", "index 2"]],
  ["i32 Infinity", () => T.tensor([Infinity], "i32"), RangeError, ["tensor", "Infinity", "index 0"]],
  ["i32 overflow", () => T.fromArray([2 ** 31], [1], "i32"), RangeError, ["fromArray", "2147483648", "i32"]],
  ["bool 2", () => T.tensor([0, 2], "bool"), RangeError, ["tensor", "value 2", "index 1", "bool"]],
  [
    "Float32Array as i32",
    () => T.fromArray(new Float32Array([0.5]), [1], "i32"),
    RangeError,
    [
      "fromArray",
      "0.5",
    ],
  ],
  // max/min/argmax/argmin have no identity over an empty axis
  ["max empty", () => T.zeros([0, 3]).max(), ShapeError, ["max", "empty axis 0", "[0, 3]"]],
  ["min empty axis", () => T.zeros([3, 0]).min(1), ShapeError, ["min", "empty axis 1", "[3, 0]"]],
  ["argmax empty", () => T.zeros([0, 3]).argmax(0), ShapeError, ["argmax", "empty axis 0", "[0, 3]"]],
  ["argmax flat empty", () => T.zeros([0]).argmax(), ShapeError, ["argmax", "empty axis 0", "[0]"]],
  ["argmin empty", () => T.zeros([2, 0]).argmin(-1), ShapeError, ["argmin", "empty axis 1"]],
  ["max keepdim empty", () => T.zeros([2, 0, 2]).max(1, true), ShapeError, ["max", "axis 1", "[2, 0, 2]"]],
];

for (const [name, fn, cls, parts] of cases) {
  Deno.test(`api checks: ${name}`, async () => void await assertThrowsWith(fn, cls, parts));
}

Deno.test("api checks: at least 40 bad-input cases", () => assert.ok(cases.length >= 40));

Deno.test("api checks: typed arrays give their own dtype; empty reductions that have an identity still work", async () => {
  assert.equal(T.fromArray(new Int32Array([2147483647]), [1]).dtype, "i32");
  assert.deepEqual(await T.fromArray(new Int32Array([2147483647]), [1]).toArray(), [2147483647]);
  assert.equal(T.fromArray(new Uint8Array([0, 1]), [2]).dtype, "bool");
  assert.equal(T.fromArray(new Float64Array([1]), [1]).dtype, "f64");
  assert.equal(T.fromArray(new Float32Array([1]), [1]).dtype, "f32");
  assert.equal(T.fromArray([1, 2], [2]).dtype, "f32");
  assert.deepEqual(T.zeros([0, 3]).max(1).shape, [0]);
  assert.deepEqual(await T.zeros([0, 3]).sum(0).toArray(), [0, 0, 0]);
});

// Operands on different backends: run when a WebGPU adapter is present (as in webgpu_ops_test.ts).
const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
Deno.test({
  name: "api checks: every multi-tensor op rejects operands on different backends",
  ignore: !adapter,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const c = T.tensor([[1, 2], [3, 4]]), ci = T.tensor([0, 1], "i32");
    try {
      await M.setBackend("webgpu");
      const g = T.tensor([[1, 2], [3, 4]]), gi = T.tensor([0, 1], "i32");
      const gi2 = gi.reshape([2, 1]).expand([2, 2]);
      const mixed: [string, () => unknown][] = [
        ["add", () => c.add(g)],
        ["matmul", () => c.matmul(g)],
        ["concat", () => T.concat([c, g])],
        ["concat", () => T.stack([g, c])],
        ["gather", () => c.gather(1, gi2)],
        ["gather", () => c.indexSelect(0, gi)],
        ["scatterAdd", () => c.scatterAdd(0, gi2, c)],
        ["gather", () => T.embedding(c, gi)],
        ["gather", () => T.crossEntropy(c, gi)],
        ["gather", () => T.crossEntropy(g, ci)],
        ["where", () => T.where(c.gt(1), g, 0)],
      ];
      for (const [op, fn] of mixed) {
        await assertThrowsWith(fn, Error, [op, "tensors live on different backends", "cpu", "webgpu"]);
      }
    } finally {
      await M.setBackend("cpu");
    }
  },
});
