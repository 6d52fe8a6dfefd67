// Compile-time shape probes for the public ops. `deno check` is the real test here: each correct use
// asserts its exact result type with `Equal`, and each mismatch sits under `// @ts-expect-error`, so the
// check fails if a rule stops firing. The Deno.test blocks also run every probe (zeros are cheap) and
// check that each mismatch throws a ShapeError whose message is the rule's type-level string (the
// `satisfies` pins the literal to the type).
import assert from "node:assert/strict";
import {
  type Broadcast,
  type Concat,
  concat,
  embedding,
  type Gather,
  type MatMul,
  type Narrow,
  type Permute,
  type Reduce,
  type Reshape,
  ShapeError,
  type Squeeze,
  type Stack,
  stack,
  type Tensor,
  tensor,
  type Transpose,
  type Unsqueeze,
  type Where,
  where,
  zeros,
} from "../mod.ts";
// mod.ts also exports nn's `Embedding` module class, which shadows the shape rule of that name there.
import type { EmbeddingLookup } from "../mod.ts";

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;

/** `fn` throws a ShapeError with exactly `message`. */
function throwsShape(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ShapeError, `expected a ShapeError, got ${e}`);
    assert.equal(e.message, message);
    return true;
  });
}

// Sizes known only at run time: `as` widens the literal shapes zeros() would infer.
const rt = () => zeros([5, 3] as [number, 3]);

Deno.test("types: creation", () => {
  const t = tensor([[1, 2], [3, 4]]);
  const _t: Equal<typeof t, Tensor<[2, 2]>> = true;
  const v = tensor([1, 2, 3]);
  const _v: Equal<typeof v, Tensor<[3]>> = true;
  const s = tensor(5);
  const _s: Equal<typeof s, Tensor<[]>> = true;
  // zeros keeps its `const` argument's readonly tuple; ops that compute a shape give mutable tuples.
  const z = zeros([2, 3]);
  const _z: Equal<typeof z, Tensor<readonly [2, 3]>> = true;
  assert.deepEqual([t.shape, v.shape, s.shape, z.shape], [[2, 2], [3], [], [2, 3]]);
});

Deno.test("types: broadcasting elementwise ops", () => {
  const a = zeros([2, 3]).add(zeros([3]));
  const _a: Equal<typeof a, Tensor<[2, 3]>> = true;
  const b = zeros([4, 1, 3]).mul(zeros([2, 1]));
  const _b: Equal<typeof b, Tensor<[4, 2, 3]>> = true;
  const c = zeros([2, 3]).add(1);
  const _c: Equal<typeof c, Tensor<[2, 3]>> = true;
  const d = zeros([2, 3]).mul(zeros([]));
  const _d: Equal<typeof d, Tensor<[2, 3]>> = true;
  const e = zeros([3, 1]).sub(zeros([1, 4])).div(2).pow(zeros([4]));
  const _e: Equal<typeof e, Tensor<[3, 4]>> = true;
  const f = zeros([2, 1]).maximum(zeros([5])).minimum(0);
  const _f: Equal<typeof f, Tensor<[2, 5]>> = true;
  const g = zeros([1, 3]).expand([4, 3]);
  const _g: Equal<typeof g, Tensor<[4, 3]>> = true;
  const h = zeros([2, 3]).maskedFill(zeros([3], "bool"), -1);
  const _h: Equal<typeof h, Tensor<[2, 3]>> = true;
  assert.deepEqual([a.shape, b.shape, e.shape, f.shape, g.shape], [[2, 3], [4, 2, 3], [3, 4], [2, 5], [
    4,
    3,
  ]]);

  throwsShape(
    // @ts-expect-error add: shapes [2, 3] and [4] cannot broadcast
    () => zeros([2, 3]).add(zeros([4])),
    "add: shapes [2, 3] and [4] cannot broadcast" satisfies Broadcast<[2, 3], [4], "add">,
  );
  throwsShape(
    // @ts-expect-error mul: shapes [2, 3] and [3, 2] cannot broadcast
    () => zeros([2, 3]).mul(zeros([3, 2])),
    "mul: shapes [2, 3] and [3, 2] cannot broadcast" satisfies Broadcast<[2, 3], [3, 2], "mul">,
  );
  throwsShape(
    // @ts-expect-error expand: shapes [2, 3] and [4, 3] cannot broadcast
    () => zeros([2, 3]).expand([4, 3]),
    "expand: shapes [2, 3] and [4, 3] cannot broadcast" satisfies Broadcast<[2, 3], [4, 3], "expand">,
  );
});

Deno.test("types: comparisons", () => {
  const a = zeros([2, 3]).lt(zeros([3]));
  const _a: Equal<typeof a, Tensor<[2, 3]>> = true;
  const b = zeros([4, 1]).ge(zeros([5]));
  const _b: Equal<typeof b, Tensor<[4, 5]>> = true;
  const c = zeros([2, 3]).eq(0).and(zeros([2, 1]).gt(1));
  const _c: Equal<typeof c, Tensor<[2, 3]>> = true;
  assert.deepEqual([a.shape, b.shape, c.shape], [[2, 3], [4, 5], [2, 3]]);

  throwsShape(
    // @ts-expect-error lt: shapes [2, 3] and [2] cannot broadcast
    () => zeros([2, 3]).lt(zeros([2])),
    "lt: shapes [2, 3] and [2] cannot broadcast" satisfies Broadcast<[2, 3], [2], "lt">,
  );
});

Deno.test("types: matmul", () => {
  const a = zeros([2, 3]).matmul(zeros([3, 4]));
  const _a: Equal<typeof a, Tensor<[2, 4]>> = true;
  const b = zeros([5, 1, 2, 3]).matmul(zeros([4, 3, 6]));
  const _b: Equal<typeof b, Tensor<[5, 4, 2, 6]>> = true;
  const c = zeros([3]).matmul(zeros([3]));
  const _c: Equal<typeof c, Tensor<[]>> = true;
  const d = zeros([2, 3]).matmul(zeros([3]));
  const _d: Equal<typeof d, Tensor<[2]>> = true;
  const e = zeros([3]).matmul(zeros([7, 3, 4]));
  const _e: Equal<typeof e, Tensor<[7, 4]>> = true;
  assert.deepEqual([a.shape, b.shape, c.shape, d.shape, e.shape], [[2, 4], [5, 4, 2, 6], [], [2], [7, 4]]);

  throwsShape(
    // @ts-expect-error matmul: inner dimensions 3 and 4 differ
    () => zeros([2, 3]).matmul(zeros([4, 5])),
    "matmul: inner dimensions 3 and 4 differ (shapes [2, 3] and [4, 5])" satisfies MatMul<[2, 3], [4, 5]>,
  );
  throwsShape(
    // @ts-expect-error matmul: inner dimensions 3 and 2 differ (vector operand)
    () => zeros([2, 3]).matmul(zeros([2])),
    "matmul: inner dimensions 3 and 2 differ (shapes [2, 3] and [2])" satisfies MatMul<[2, 3], [2]>,
  );
  throwsShape(
    // @ts-expect-error matmul: batch dims [2] and [3] cannot broadcast
    () => zeros([2, 4, 3]).matmul(zeros([3, 3, 5])),
    "matmul: shapes [2] and [3] cannot broadcast" satisfies MatMul<[2, 4, 3], [3, 3, 5]>,
  );
  throwsShape(
    // @ts-expect-error matmul: a 0-d operand
    () => zeros([]).matmul(zeros([3])),
    "matmul: operands must have at least 1 dimension (shapes [] and [3])" satisfies MatMul<[], [3]>,
  );
});

Deno.test("types: reductions", () => {
  const x = () => zeros([2, 3, 4]);
  const a = x().sum(1);
  const _a: Equal<typeof a, Tensor<[2, 4]>> = true;
  const b = x().mean(-1);
  const _b: Equal<typeof b, Tensor<[2, 3]>> = true;
  const c = x().max(1, true);
  const _c: Equal<typeof c, Tensor<[2, 1, 4]>> = true;
  const d = x().sum();
  const _d: Equal<typeof d, Tensor<[]>> = true;
  const e = x().mean(undefined, true);
  const _e: Equal<typeof e, Tensor<[1, 1, 1]>> = true;
  const f = x().sum([0, -1]);
  const _f: Equal<typeof f, Tensor<[3]>> = true;
  const g = x().min(-3, true);
  const _g: Equal<typeof g, Tensor<[1, 3, 4]>> = true;
  const h = x().var(2);
  const _h: Equal<typeof h, Tensor<[2, 3]>> = true;
  const i = x().logsumexp(-1, true);
  const _i: Equal<typeof i, Tensor<[2, 3, 1]>> = true;
  const j = x().argmax(-1);
  const _j: Equal<typeof j, Tensor<[2, 3]>> = true;
  const k = x().argmax();
  const _k: Equal<typeof k, Tensor<[]>> = true;
  const l = x().argmax(0, true);
  const _l: Equal<typeof l, Tensor<[1, 3, 4]>> = true;
  assert.deepEqual(
    [a, b, c, d, e, f, g, h, i, j, k, l].map((t) => t.shape),
    [[2, 4], [2, 3], [2, 1, 4], [], [1, 1, 1], [3], [1, 3, 4], [2, 3], [2, 3, 1], [2, 3], [], [1, 3, 4]],
  );

  throwsShape(
    // @ts-expect-error sum: axis 3 is out of range
    () => x().sum(3),
    "sum: axis 3 is out of range for shape [2, 3, 4]" satisfies Reduce<[2, 3, 4], 3, false, "sum">,
  );
  throwsShape(
    // @ts-expect-error mean: axis -4 is out of range
    () => x().mean(-4, true),
    "mean: axis -4 is out of range for shape [2, 3, 4]" satisfies Reduce<[2, 3, 4], -4, true, "mean">,
  );
  throwsShape(
    // @ts-expect-error max: axis 1 is repeated (as 1 and -2)
    () => x().max([1, -2]),
    "max: axis 1 is repeated" satisfies Reduce<[2, 3, 4], [1, -2], false, "max">,
  );
  throwsShape(
    // @ts-expect-error argmax: axis 2 is out of range
    () => zeros([2, 3]).argmax(2),
    "argmax: axis 2 is out of range for shape [2, 3]" satisfies Reduce<[2, 3], 2, false, "argmax">,
  );
});

Deno.test("types: permute and transpose", () => {
  const x = () => zeros([2, 3, 4]);
  const a = x().permute([2, 0, 1]);
  const _a: Equal<typeof a, Tensor<[4, 2, 3]>> = true;
  const b = x().permute([-1, 1, 0]);
  const _b: Equal<typeof b, Tensor<[4, 3, 2]>> = true;
  const c = x().transpose();
  const _c: Equal<typeof c, Tensor<[2, 4, 3]>> = true;
  const d = x().transpose(0, 2);
  const _d: Equal<typeof d, Tensor<[4, 3, 2]>> = true;
  const e = x().transpose(-3, 1);
  const _e: Equal<typeof e, Tensor<[3, 2, 4]>> = true;
  assert.deepEqual([a, b, c, d, e].map((t) => t.shape), [[4, 2, 3], [4, 3, 2], [2, 4, 3], [4, 3, 2], [
    3,
    2,
    4,
  ]]);

  throwsShape(
    // @ts-expect-error permute: repeated axis
    () => x().permute([0, 0, 1]),
    "permute: [0, 0, 1] is not a permutation of the axes of shape [2, 3, 4]" satisfies Permute<
      [2, 3, 4],
      [0, 0, 1]
    >,
  );
  throwsShape(
    // @ts-expect-error permute: missing axis
    () => x().permute([1, 0]),
    "permute: [1, 0] is not a permutation of the axes of shape [2, 3, 4]" satisfies Permute<
      [2, 3, 4],
      [1, 0]
    >,
  );
  throwsShape(
    // @ts-expect-error transpose: axis 3 is out of range
    () => x().transpose(0, 3),
    "transpose: axis 3 is out of range for shape [2, 3, 4]" satisfies Transpose<[2, 3, 4], 0, 3>,
  );
});

Deno.test("types: reshape", () => {
  const x = () => zeros([2, 3, 4]);
  const a = x().reshape([6, 4]);
  const _a: Equal<typeof a, Tensor<[6, 4]>> = true;
  const b = x().reshape([-1, 4]);
  const _b: Equal<typeof b, Tensor<[number, 4]>> = true;
  const c = x().reshape([24]);
  const _c: Equal<typeof c, Tensor<[24]>> = true;
  assert.deepEqual([a.shape, b.shape, c.shape], [[6, 4], [6, 4], [24]]);

  throwsShape(
    // @ts-expect-error reshape: 24 elements into 25
    () => x().reshape([5, 5]),
    "reshape: cannot reshape [2, 3, 4] (24 elements) to [5, 5] (25 elements)" satisfies Reshape<
      [2, 3, 4],
      [5, 5]
    >,
  );
  throwsShape(
    // @ts-expect-error reshape: two -1s
    () => x().reshape([-1, -1]),
    "reshape: only one dimension can be -1 (got [-1, -1])" satisfies Reshape<[2, 3, 4], [-1, -1]>,
  );
});

Deno.test("types: unsqueeze and squeeze", () => {
  const a = zeros([2, 3]).unsqueeze(0);
  const _a: Equal<typeof a, Tensor<[1, 2, 3]>> = true;
  const b = zeros([2, 3]).unsqueeze(-1);
  const _b: Equal<typeof b, Tensor<[2, 3, 1]>> = true;
  const c = zeros([1, 3, 1]).squeeze();
  const _c: Equal<typeof c, Tensor<[3]>> = true;
  const d = zeros([1, 3, 1]).squeeze(0);
  const _d: Equal<typeof d, Tensor<[3, 1]>> = true;
  const e = zeros([1, 3, 1]).squeeze(-1);
  const _e: Equal<typeof e, Tensor<[1, 3]>> = true;
  assert.deepEqual([a, b, c, d, e].map((t) => t.shape), [[1, 2, 3], [2, 3, 1], [3], [3, 1], [1, 3]]);

  throwsShape(
    // @ts-expect-error unsqueeze: axis 3 is out of range for a rank-2 tensor
    () => zeros([2, 3]).unsqueeze(3),
    "unsqueeze: axis 3 is out of range for shape [2, 3]" satisfies Unsqueeze<[2, 3], 3>,
  );
  throwsShape(
    // @ts-expect-error squeeze: axis 1 has size 3
    () => zeros([1, 3, 1]).squeeze(1),
    "squeeze: axis 1 of shape [1, 3, 1] has size 3, not 1" satisfies Squeeze<[1, 3, 1], 1>,
  );
});

Deno.test("types: narrow", () => {
  const a = zeros([2, 3]).narrow(1, 1, 2);
  const _a: Equal<typeof a, Tensor<[2, 2]>> = true;
  const b = zeros([4, 3]).narrow(-2, 0, 4);
  const _b: Equal<typeof b, Tensor<[4, 3]>> = true;
  assert.deepEqual([a.shape, b.shape], [[2, 2], [4, 3]]);

  throwsShape(
    // @ts-expect-error narrow: length 4 exceeds size 3
    () => zeros([2, 3]).narrow(1, 0, 4),
    "narrow: length 4 exceeds size 3 of axis 1 in shape [2, 3]" satisfies Narrow<[2, 3], 1, 4>,
  );
  throwsShape(
    // @ts-expect-error narrow: axis 2 is out of range
    () => zeros([2, 3]).narrow(2, 0, 1),
    "narrow: axis 2 is out of range for shape [2, 3]" satisfies Narrow<[2, 3], 2, 1>,
  );
});

Deno.test("types: concat and stack", () => {
  const a = concat([zeros([2, 3]), zeros([2, 4])], 1);
  const _a: Equal<typeof a, Tensor<[2, 7]>> = true;
  const b = concat([zeros([2, 3]), zeros([5, 3]), zeros([1, 3])]);
  const _b: Equal<typeof b, Tensor<[8, 3]>> = true;
  const c = concat([zeros([2, 3]), zeros([2, 1])], -1);
  const _c: Equal<typeof c, Tensor<[2, 4]>> = true;
  const d = stack([zeros([2, 3]), zeros([2, 3])]);
  const _d: Equal<typeof d, Tensor<[2, 2, 3]>> = true;
  const e = stack([zeros([2, 3]), zeros([2, 3]), zeros([2, 3])], -1);
  const _e: Equal<typeof e, Tensor<[2, 3, 3]>> = true;
  assert.deepEqual([a, b, c, d, e].map((t) => t.shape), [[2, 7], [8, 3], [2, 4], [2, 2, 3], [2, 3, 3]]);

  // concat and stack have no `this` to guard: a mismatch gives Tensor<never>, which is invariant, so
  // it fails to compile wherever a real shape is expected.
  throwsShape(() => {
    // @ts-expect-error concat: shapes differ outside axis 1
    const _bad: Tensor<[2, 7]> = concat([zeros([2, 3]), zeros([3, 4])], 1);
  }, "concat: shapes [2, 3] and [3, 4] differ outside axis 1" satisfies Concat<[[2, 3], [3, 4]], 1>);
  const _concatNever: Equal<ReturnType<typeof concat<[Tensor<[2, 3]>, Tensor<[3, 4]>], 1>>, Tensor<never>> =
    true;
  throwsShape(() => {
    // @ts-expect-error stack: shapes differ
    const _bad: Tensor<[2, 2, 3]> = stack([zeros([2, 3]), zeros([2, 4])]);
  }, "stack: shapes [2, 3] and [2, 4] differ" satisfies Stack<[[2, 3], [2, 4]], 0>);
  const _stackNever: Equal<ReturnType<typeof stack<[Tensor<[2, 3]>, Tensor<[2, 4]>], 0>>, Tensor<never>> =
    true;
});

Deno.test("types: gather, indexSelect, embedding", () => {
  const a = zeros([2, 3]).gather(1, zeros([2, 5], "i32"));
  const _a: Equal<typeof a, Tensor<[2, 5]>> = true;
  const b = zeros([4, 3]).indexSelect(0, zeros([5], "i32"));
  const _b: Equal<typeof b, Tensor<[5, 3]>> = true;
  const c = zeros([4, 3]).indexSelect(-1, zeros([2], "i32"));
  const _c: Equal<typeof c, Tensor<[4, 2]>> = true;
  const d = embedding(zeros([10, 8]), zeros([2, 5], "i32"));
  const _d: Equal<typeof d, Tensor<[2, 5, 8]>> = true;
  assert.deepEqual([a, b, c, d].map((t) => t.shape), [[2, 5], [5, 3], [4, 2], [2, 5, 8]]);

  throwsShape(
    // @ts-expect-error gather: index of rank 1 for a rank-2 tensor
    () => zeros([2, 3]).gather(1, zeros([5], "i32")),
    "gather: index shape [5] must have the same rank as shape [2, 3]" satisfies Gather<[2, 3], 1, [5]>,
  );
  throwsShape(
    // @ts-expect-error indexSelect: axis 2 is out of range
    () => zeros([4, 3]).indexSelect(2, zeros([5], "i32")),
    "indexSelect: axis 2 is out of range for shape [4, 3]",
  );
  throwsShape(
    // @ts-expect-error embedding: weight of rank 3
    () => embedding(zeros([10, 8, 2]), zeros([2, 5], "i32")),
    "embedding: weight must be [vocab, dim], got [10, 8, 2]" satisfies EmbeddingLookup<[10, 8, 2], [2, 5]>,
  );
});

Deno.test("types: where", () => {
  const a = where(zeros([2, 1], "bool"), zeros([3]), zeros([4, 1, 1]));
  const _a: Equal<typeof a, Tensor<[4, 2, 3]>> = true;
  const b = where(zeros([2, 3], "bool"), zeros([3]), zeros([2, 1]));
  const _b: Equal<typeof b, Tensor<[2, 3]>> = true;
  assert.deepEqual([a.shape, b.shape], [[4, 2, 3], [2, 3]]);

  throwsShape(
    // @ts-expect-error where: condition [2, 3] and branch [4]
    () => where(zeros([2, 3], "bool"), zeros([4]), zeros([3])),
    "where: shapes [2, 3] and [4] cannot broadcast" satisfies Where<[2, 3], [4], [3]>,
  );
  throwsShape(
    // @ts-expect-error where: the broadcast [2, 3] against the second branch [2]
    () => where(zeros([2, 3], "bool"), zeros([3]), zeros([2])),
    "where: shapes [2, 3] and [2] cannot broadcast" satisfies Where<[2, 3], [3], [2]>,
  );
});

Deno.test("types: runtime-size dims pass at compile time", () => {
  const a = rt().add(zeros([3]));
  const _a: Equal<typeof a, Tensor<[number, 3]>> = true;
  const b = rt().add(zeros([5, 3]));
  const _b: Equal<typeof b, Tensor<[5, 3]>> = true;
  const c = rt().matmul(zeros([3, 4]));
  const _c: Equal<typeof c, Tensor<[number, 4]>> = true;
  const d = rt().sum(0);
  const _d: Equal<typeof d, Tensor<[3]>> = true;
  const e = rt().transpose();
  const _e: Equal<typeof e, Tensor<[3, number]>> = true;
  const f = rt().reshape([-1]);
  const _f: Equal<typeof f, Tensor<[number]>> = true;
  const g = rt().unsqueeze(1);
  const _g: Equal<typeof g, Tensor<[number, 1, 3]>> = true;
  const h = concat([rt(), zeros([2, 3])]);
  const _h: Equal<typeof h, Tensor<[number, 3]>> = true;
  const i = zeros([1, 3] as [number, 3]).squeeze(0);
  const _i: Equal<typeof i, Tensor<[3]>> = true;
  const j = rt().narrow(0, 1, 4);
  const _j: Equal<typeof j, Tensor<[4, 3]>> = true;
  // Unknown rank: every rule passes and gives number[].
  const k = zeros([2, 3] as number[]).add(zeros([3]));
  const _k: Equal<typeof k, Tensor<number[]>> = true;
  assert.deepEqual(
    [a, b, c, d, e, f, g, h, i, j, k].map((t) => t.shape),
    [[5, 3], [5, 3], [5, 4], [3], [3, 5], [15], [5, 1, 3], [7, 3], [3], [4, 3], [2, 3]],
  );

  // A known mismatch next to a runtime-only dim is still caught.
  throwsShape(
    // @ts-expect-error matmul: inner dimensions 3 and 5 differ
    () => rt().matmul(zeros([5, 4])),
    "matmul: inner dimensions 3 and 5 differ (shapes [5, 3] and [5, 4])",
  );
  // Checks the types defer happen at run time, with the same sentence.
  throwsShape(
    () => rt().add(zeros([4, 3])),
    "add: shapes [5, 3] and [4, 3] cannot broadcast" satisfies Broadcast<[5, 3], [4, 3], "add">,
  );
  throwsShape(
    () => zeros([2, 3] as [2, number]).matmul(zeros([4, 5])),
    "matmul: inner dimensions 3 and 4 differ (shapes [2, 3] and [4, 5])" satisfies MatMul<[2, 3], [4, 5]>,
  );
});
