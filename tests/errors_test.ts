// deno-lint-ignore-file no-explicit-any
// (tests call ops with deliberately wrong or untyped shapes to reach the runtime checks)
// Bad input gives clear errors that name the op and the shapes or values involved.
// (`as any` below switches off the compile-time shape checks so the runtime ones can be reached.)
import assert from "node:assert/strict";
import {
  arange,
  concat,
  crossEntropy,
  embedding,
  fromArray,
  full,
  setBackend,
  ShapeError,
  stack,
  tensor,
  zeros,
} from "../mod.ts";
import { assertClose, assertThrowsWith } from "./util.ts";

const x23 = () => tensor([[1, 2, 3], [4, 5, 6]]) as any;
const I = (v: any) => tensor(v, "i32") as any;

Deno.test("shape mismatches name the op and both shapes", async () => {
  await assertThrowsWith(() => x23().add(tensor([1, 2])), ShapeError, ["add", "[2, 3]", "[2]", "broadcast"]);
  await assertThrowsWith(() => x23().mul(zeros([3, 3])), ShapeError, ["mul", "[2, 3]", "[3, 3]"]);
  await assertThrowsWith(() => x23().matmul(x23()), ShapeError, ["matmul", "3", "2", "[2, 3]"]);
  await assertThrowsWith(() => tensor([1, 2]).matmul(tensor(3) as any), ShapeError, ["matmul", "[]"]);
  await assertThrowsWith(
    () => zeros([2, 2, 3]).matmul(zeros([3, 3, 1]) as any),
    ShapeError,
    ["matmul", "[2]", "[3]"],
  );
  await assertThrowsWith(() => concat([x23(), zeros([2, 2])]), ShapeError, ["concat", "[2, 3]", "[2, 2]"]);
  await assertThrowsWith(() => concat([x23(), zeros([2, 3, 1])], 1), ShapeError, ["concat", "[2, 3, 1]"]);
  // @ts-expect-error concat: needs at least one tensor (a compile error as well)
  await assertThrowsWith(() => concat([]), ShapeError, ["concat"]);
  await assertThrowsWith(() => stack([x23(), zeros([3, 2])]), ShapeError, ["stack", "[2, 3]", "[3, 2]"]);
  await assertThrowsWith(() => x23().reshape([4]), ShapeError, ["reshape", "[2, 3]", "[4]", "6"]);
  await assertThrowsWith(() => x23().reshape([-1, 4]), ShapeError, ["reshape", "[2, 3]", "[-1, 4]"]);
  await assertThrowsWith(() => x23().reshape([-1, -1]), ShapeError, ["reshape", "-1"]);
  await assertThrowsWith(() => x23().expand([3, 3]), ShapeError, ["expand", "[2, 3]", "[3, 3]"]);
  await assertThrowsWith(() => tensor([1, 2, 3]).expand([1] as any), ShapeError, ["expand", "[3]", "[1]"]);
  await assertThrowsWith(() => x23().gather(1, I([0, 1])), ShapeError, ["gather", "[2]", "[2, 3]"]);
  await assertThrowsWith(() => x23().indexSelect(0, I([[0]])), ShapeError, ["indexSelect", "[1, 1]"]);
  await assertThrowsWith(() => embedding(zeros([2, 2, 2]) as any, I([0])), ShapeError, [
    "embedding",
    "[2, 2, 2]",
  ]);
  await assertThrowsWith(
    () => x23().scatterAdd(1, I([[0], [1]]), tensor([[1, 2], [3, 4]])),
    ShapeError,
    ["scatterAdd", "[2, 1]", "[2, 2]"],
  );
  await assertThrowsWith(
    () => crossEntropy(x23(), I([1, 2, 0])),
    ShapeError,
    ["crossEntropy", "[2, 3]", "[3]"],
  );
  await assertThrowsWith(() => tensor([1, 2]).assign(tensor([1, 2, 3]) as any), ShapeError, [
    "assign",
    "[3]",
    "[2]",
  ]);
  await assertThrowsWith(() => tensor([1, 2, 3]).split([1, 1]), ShapeError, ["split", "[1, 1]", "3"]);
  await assertThrowsWith(() => tensor([1, 2, 3]).narrow(0, 2, 2 as any), ShapeError, [
    "narrow",
    "2..4",
    "[3]",
  ]);
  await assertThrowsWith(() => tensor([1, 2, 3]).narrow(0, 0, 4 as any), ShapeError, ["narrow", "4", "[3]"]);
  await assertThrowsWith(() => x23().squeeze(0), ShapeError, ["squeeze", "[2, 3]", "size 2"]);
  await assertThrowsWith(() => x23().permute([0, 0]), ShapeError, ["permute", "[0, 0]", "[2, 3]"]);
  await assertThrowsWith(() => full([-1], 1), ShapeError, ["full", "[-1]"]);
  await assertClose(x23().add(tensor([1, 2, 3])), [[2, 4, 6], [5, 7, 9]]); // the good case still works
});

Deno.test("gather rejects an index larger than the source outside the axis", async () => {
  // torch requires index.size(d) <= input.size(d) for d != axis; reading past it gives garbage.
  await assertThrowsWith(
    () => tensor([[1, 2], [3, 4]]).gather(1, I([[0], [1], [1]])),
    ShapeError,
    ["gather", "[3, 1]", "[2, 2]"],
  );
});

Deno.test("out-of-range axes name the op, the axis and the shape", async () => {
  const cases: [string, () => unknown, string][] = [
    ["sum", () => x23().sum(2), "2"],
    ["sum", () => x23().sum(-3), "-3"],
    ["mean", () => x23().mean([0, 5]), "5"],
    ["max", () => x23().max(2), "2"],
    ["argmax", () => x23().argmax(4), "4"],
    ["var", () => x23().var(3), "3"],
    ["logsumexp", () => x23().logsumexp(2), "2"],
    ["transpose", () => x23().transpose(0, 3), "3"],
    ["unsqueeze", () => x23().unsqueeze(4), "4"],
    ["squeeze", () => x23().squeeze(3), "3"],
    ["narrow", () => x23().narrow(2, 0, 1), "2"],
    ["slice", () => x23().slice(-3, 0), "-3"],
    ["split", () => x23().split(1, 2), "2"],
    ["concat", () => concat([x23(), x23()], 2), "2"],
    ["gather", () => x23().gather(2, I([[0], [0]])), "2"],
    ["indexSelect", () => x23().indexSelect(2, I([0])), "2"],
    ["softmax", () => x23().softmax(2), "2"],
    ["logSoftmax", () => x23().logSoftmax(-3), "-3"],
  ];
  const problems: string[] = [];
  for (const [op, fn, axis] of cases) {
    try {
      fn();
      problems.push(`${op}: nothing thrown`);
    } catch (e) {
      const m = (e as Error).message;
      if (
        !(e instanceof ShapeError) || !m.startsWith(`${op}:`) || !m.includes(axis) || !m.includes("[2, 3]")
      ) {
        problems.push(`${op}: ${(e as Error).name}: "${m}"`);
      }
    }
  }
  assert.deepEqual(
    problems,
    [],
    `each should be a ShapeError "<op>: axis … [2, 3]":\n${problems.join("\n")}`,
  );
  await assertThrowsWith(() => x23().sum([1, -1]), ShapeError, ["sum", "repeated"]);
});

/** Run each case, collecting the ones whose error is not `cls` with every part in its message. */
async function collect(cls: abstract new (...a: any[]) => Error, cases: [() => unknown, string[]][]) {
  const problems: string[] = [];
  for (const [fn, parts] of cases) {
    try {
      await assertThrowsWith(fn, cls, parts);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
}

Deno.test("float indices are TypeErrors naming the op and dtype", async () => {
  const w = tensor([[1, 2], [3, 4]]);
  await collect(TypeError, [
    [() => w.gather(1, tensor([[0, 1], [1, 0]])), ["gather", "i32", "f32"]],
    [() => w.gather(1, tensor([[true], [false]]) as any), ["gather", "bool"]],
    [() => zeros([2]).scatterAdd(0, tensor([0, 1]), tensor([1, 2])), ["scatterAdd", "f32"]],
    [() => w.indexSelect(0, tensor([0, 1])), ["indexSelect", "i32", "f32"]],
    [() => embedding(w, tensor([[1.0]])), ["embedding", "i32", "f32"]],
  ]);
});

Deno.test("out-of-range indices are RangeErrors naming the op, index and size", async () => {
  const w = tensor([[1, 2], [3, 4]]);
  await collect(RangeError, [
    [() => w.gather(1, I([[0, 2], [1, 0]])), ["gather", "2", "size 2"]],
    [() => w.gather(0, I([[-1, 0]])), ["gather", "-1"]],
    [() => zeros([2]).scatterAdd(0, I([3]), tensor([1])), ["scatterAdd", "3", "2"]],
    [() => w.indexSelect(0, I([0, 5])), ["indexSelect", "5", "2"]],
    [() => embedding(w, I([[2]])), ["embedding", "2"]],
  ]);
});

Deno.test("crossEntropy rejects a target outside the vocabulary instead of returning NaN", async () => {
  const logits = tensor([[1, 2, 3], [0, 0, 0]]);
  let value: number | null = null;
  let err: unknown = null;
  try {
    value = await crossEntropy(logits, I([5, 0])).item();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof RangeError, `expected a RangeError, got value ${value}`);
  assert.match((err as Error).message, /5/);
});

Deno.test("the bounds check of an index looks only at the index's own elements", async () => {
  // A view (narrow) of a bigger i32 buffer: its in-range elements must not be rejected because
  // other elements of the same buffer are out of range.
  const ids = tensor([0, 1, 7, 9], "i32");
  const w = tensor([[1, 2], [3, 4]]);
  await assertClose(w.indexSelect(0, ids.narrow(0, 0, 2) as any), [[1, 2], [3, 4]]);
  await assertClose(embedding(w, ids.narrow(0, 1, 1) as any), [[3, 4]]);
});

Deno.test("the bounds check of an index looks at its values, not at the buffer it was computed from", async () => {
  const w = tensor([[1, 2], [3, 4]]);
  // [1, 2] − 1 = [0, 1]: valid
  await assertClose(w.indexSelect(0, tensor([1, 2], "i32").sub(1) as any), [[1, 2], [3, 4]]);
  // [0, 1] + 5 = [5, 6]: out of range, must not read garbage
  await assertThrowsWith(() => w.indexSelect(0, tensor([0, 1], "i32").add(5) as any), RangeError, ["5"]);
});

Deno.test("backward on a non-scalar without a seed names the shape", async () => {
  const x = tensor([[1, 2], [3, 4]]).requiresGrad_();
  await assertThrowsWith(() => x.mul(2).backward(), ShapeError, ["backward", "[2, 2]"]);
  await assertThrowsWith(() => tensor([1]).mul(2).backward(), Error, ["backward", "require"]);
});

Deno.test("use after dispose names the op and says disposed", async () => {
  const t = tensor([1, 2]);
  t.dispose();
  await assertThrowsWith(() => t.sum(), Error, ["sum", "disposed", "[2]"]);
  await assertThrowsWith(() => t.reshape([2, 1]), Error, ["reshape", "disposed"]);
  await assertThrowsWith(() => t.data(), Error, ["data", "disposed"]);
  await assertThrowsWith(() => t.mul(2), Error, ["mul", "disposed"]);
});

Deno.test("tensor(): ragged arrays and non-numbers", async () => {
  await assertThrowsWith(() => tensor([[1, 2], [3]]), ShapeError, [
    "tensor",
    "ragged",
    "[1]",
    "length 1",
    "expected 2",
  ]);
  await assertThrowsWith(() => tensor([[1, 2], 3] as any), ShapeError, ["tensor", "ragged", "[1]"]);
  await assertThrowsWith(() => tensor([[[1], [2]], [[3], [4, 5]]] as any), ShapeError, ["ragged", "[1][1]"]);
  await assertThrowsWith(() => tensor([1, "a"] as any), TypeError, ["tensor", "[1]", "not a number"]);
  await assertThrowsWith(() => tensor([1, null] as any), TypeError, ["tensor", "[1]"]);
});

Deno.test("tensor(): a scalar before a nested array is ragged too", async () => {
  // [1, [2, 3]] must not silently become a [2, 2] tensor holding 3 values.
  await assertThrowsWith(() => tensor([1, [2, 3]] as any), ShapeError, ["tensor", "ragged"]);
});

Deno.test("fromArray with the wrong element count; item() of many elements", async () => {
  await assertThrowsWith(() => fromArray([1, 2, 3], [2, 2]), ShapeError, ["fromArray", "3", "[2, 2]", "4"]);
  await assertThrowsWith(() => fromArray([1, 2, 3, 4, 5], [2, 2]), ShapeError, ["fromArray", "5", "[2, 2]"]);
  await assertThrowsWith(() => tensor([1, 2, 3]).item(), ShapeError, ["item", "[3]", "3 elements"]);
  await assertThrowsWith(() => zeros([0]).item(), ShapeError, ["item", "[0]"]);
});

Deno.test("other bad arguments", async () => {
  await assertThrowsWith(() => setBackend("bogus" as any), Error, ["setBackend", "bogus", "cpu"]);
  await assertThrowsWith(() => arange(0, 1, 0), RangeError, ["arange", "step"]);
  // the backend is unchanged after the refusal
  await assertClose(tensor([1, 2]).add(1), [2, 3]);
});
