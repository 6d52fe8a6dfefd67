// Compile-time shape probes for the public ops. `deno check` is the real test here: each correct use
// asserts its exact result type with `Equal`, and each mismatch sits under `// @ts-expect-error`, so the
// check fails if a rule stops firing. The Deno.test blocks also run every probe (zeros are cheap) and
// check that each mismatch throws a ShapeError whose message is the rule's type-level string (the
// `satisfies` pins the literal to the type).
import assert from "node:assert/strict";
import {
  attention,
  type Broadcast,
  type Concat,
  concat,
  crossEntropy,
  embedding,
  fromArray,
  gae,
  type Gather,
  GPT,
  maskedMean,
  type MatMul,
  type Narrow,
  ones,
  type Permute,
  randn,
  type Reduce,
  type Reshape,
  sequenceLogProbs,
  type Shape,
  ShapeError,
  type Squeeze,
  type Stack,
  stack,
  type Tensor,
  tensor,
  type Transpose,
  tril,
  type Unsqueeze,
  type Where,
  where,
  whiten,
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
  const r = randn([4]);
  // Creation functions give mutable tuples like every op, so their tensors fit parameters typed
  // Tensor<[number, number]> (rlhf's, a user's own) after being stored in a variable.
  const z = zeros([2, 3]);
  const _z: Equal<typeof z, Tensor<[2, 3]>> = true;
  const _r: Equal<typeof r, Tensor<[4]>> = true;
  const takesRows = (x: Tensor<[number, number]>) => x.shape[0];
  assert.equal(takesRows(z), 2);
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

Deno.test("types: attention", () => {
  const q = zeros([2, 4, 8, 16]), kv = zeros([2, 4, 10, 16]);
  const a = attention(q, kv, kv, { past: 2 });
  const _a: Equal<typeof a, Tensor<[2, 4, 8, 16]>> = true;
  assert.deepEqual(a.shape, [2, 4, 8, 16]);
  throwsShape(
    // @ts-expect-error attention: keys of head size 8 for queries of 16
    () => attention(q, zeros([2, 4, 10, 8]), zeros([2, 4, 10, 8])),
    "attention: q [2, 4, 8, 16] needs k, v [2, 4, S, 16] and keyMask [2, S], got [2, 4, 10, 8], [2, 4, 10, 8]",
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

// ---- generic dims ---------------------------------------------------------------------------------------
// Dims that are type parameters (`B extends number`) resolve to exact symbolic shapes. A generic dim
// equals only itself: K against J is a compile error, as is a literal mismatch; where the types cannot
// decide (K against a literal 8 or `number`, a reshape of symbolic sizes, a concat of symbolic sizes, a
// narrow of a symbolic axis) the op type-checks with the best shape it can state and the run time decides.

/** Scaled dot-product attention with a causal mask, shapes all symbolic. */
function maskedAttention<B extends number, H extends number, T extends number, D extends number>(
  q: Tensor<[B, H, T, D]>,
  k: Tensor<[B, H, T, D]>,
  v: Tensor<[B, H, T, D]>,
  mask: Tensor<[T, T]>,
): Tensor<[B, H, T, D]> {
  const scores = q.matmul(k.transpose(-1, -2)).div(Math.sqrt(q.shape[3]));
  const _s: Equal<typeof scores, Tensor<[B, H, T, T]>> = true;
  const p = scores.maskedFill(mask.not(), -Infinity).softmax(-1);
  return p.matmul(v);
}

/** Attention that forgets to transpose k: [B, H, T, D] @ [B, H, T, D] does not compile. */
function _forgottenTranspose<B extends number, H extends number, T extends number, D extends number>(
  q: Tensor<[B, H, T, D]>,
  k: Tensor<[B, H, T, D]>,
) {
  // @ts-expect-error matmul: inner dimensions D and T differ
  return q.matmul(k);
}

/** Splitting [B, T, C] into heads [B, H, T, D] and back. */
function splitHeads<B extends number, T extends number, H extends number, D extends number>(
  x: Tensor<[B, T, number]>,
  b: B,
  t: T,
  h: H,
  d: D,
): Tensor<[B, H, T, D]> {
  return x.reshape([b, t, h, d]).transpose(1, 2);
}
function _wrongHeadSplit<B extends number, T extends number, H extends number, D extends number>(
  x: Tensor<[B, T, number]>,
  b: B,
  t: T,
  h: H,
  d: D,
): Tensor<[B, H, T, D]> {
  // @ts-expect-error the heads axis is left in place: [B, T, H, D] is not [B, H, T, D]
  return x.reshape([b, t, h, d]);
}
function _wrongHeadTranspose<B extends number, T extends number, H extends number, D extends number>(
  x: Tensor<[B, T, number]>,
  b: B,
  t: T,
  h: H,
  d: D,
): Tensor<[B, H, T, D]> {
  // @ts-expect-error transposing axes 1 and 3 gives [B, D, H, T]
  return x.reshape([b, t, h, d]).transpose(1, 3);
}

/** An MLP block: [B, T, C] → [B, T, F] → [B, T, C], with a residual and a layer norm. */
function mlp<B extends number, T extends number, C extends number, F extends number>(
  x: Tensor<[B, T, C]>,
  w1: Tensor<[C, F]>,
  b1: Tensor<[F]>,
  w2: Tensor<[F, C]>,
  b2: Tensor<[C]>,
): Tensor<[B, T, C]> {
  const h = x.matmul(w1).add(b1).gelu();
  const _h: Equal<typeof h, Tensor<[B, T, F]>> = true;
  const mu = x.mean(-1, true);
  const _mu: Equal<typeof mu, Tensor<[B, T, 1]>> = true;
  const centred = x.sub(mu).div(x.sub(mu).pow(2).mean(-1, true).add(1e-5).sqrt());
  return centred.add(h.matmul(w2).add(b2));
}
function _mlpMismatch<B extends number, T extends number, C extends number, F extends number>(
  x: Tensor<[B, T, C]>,
  w1: Tensor<[C, F]>,
  b1: Tensor<[C]>,
) {
  // @ts-expect-error the second layer's weight is [C, F], not [F, C]: inner dimensions F and C differ
  x.matmul(w1).matmul(w1);
  // @ts-expect-error a bias of size C on [B, T, F]: F and C cannot broadcast
  x.matmul(w1).add(b1);
}

/** Masked log-probabilities of the targets, summed per sequence: [B, T, V] → [B]. */
function maskedLogProbs<B extends number, T extends number, V extends number>(
  logits: Tensor<[B, T, V]>,
  targets: Tensor<[B, T]>,
  mask: Tensor<[B, T]>,
): Tensor<[B]> {
  const lp = logits.logSoftmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  const _lp: Equal<typeof lp, Tensor<[B, T]>> = true;
  return lp.mul(mask).sum(-1);
}
function _wrongReductionAxis<B extends number, T extends number, V extends number>(
  logits: Tensor<[B, T, V]>,
  targets: Tensor<[B, T]>,
): Tensor<[B]> {
  const lp = logits.logSoftmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  // @ts-expect-error summing over axis 0 leaves [T], not [B]
  return lp.sum(0);
}

Deno.test("types: generic dims resolve", () => {
  function probes<B extends number, T extends number, C extends number, K extends number, J extends number>(
    x: Tensor<[B, T, C]>,
    c: Tensor<[C]>,
    k: Tensor<[B, T, K]>,
    m1: Tensor<[B, T, 1]>,
    wkj: Tensor<[K, J]>,
    wjn: Tensor<[J, 4]>,
    ids: Tensor<[B, T]>,
    table: Tensor<[K, C]>,
  ) {
    // elementwise and broadcasting
    const a = x.add(c);
    const _a: Equal<typeof a, Tensor<[B, T, C]>> = true;
    const b = x.sub(m1).mul(2);
    const _b: Equal<typeof b, Tensor<[B, T, C]>> = true;
    const b2 = m1.mul(x);
    const _b2: Equal<typeof b2, Tensor<[B, T, C]>> = true;
    const cmp = x.gt(c).and(x.lt(1));
    const _cmp: Equal<typeof cmp, Tensor<[B, T, C]>> = true;
    // @ts-expect-error distinct generic dims C and K do not broadcast
    x.add(k);
    // matmul: 2-D, batched with a shared batch, vector
    const p = x.matmul(zeros([3, 16]) as unknown as Tensor<[C, 16]>);
    const _p: Equal<typeof p, Tensor<[B, T, 16]>> = true;
    const q = k.matmul(wkj).matmul(wjn);
    const _q: Equal<typeof q, Tensor<[B, T, 4]>> = true;
    const r = x.matmul(x.transpose(-1, -2));
    const _r: Equal<typeof r, Tensor<[B, T, T]>> = true;
    const s = x.matmul(c);
    const _s: Equal<typeof s, Tensor<[B, T]>> = true;
    // @ts-expect-error matmul: inner dimensions K and J differ
    k.matmul(wjn);
    // @ts-expect-error matmul: [K, J] @ [K, J], J and K differ
    wkj.matmul(wkj);
    // movement
    const t = x.permute([2, 0, 1]).unsqueeze(0);
    const _t: Equal<typeof t, Tensor<[1, C, B, T]>> = true;
    const u = m1.squeeze(-1);
    const _u: Equal<typeof u, Tensor<[B, T]>> = true;
    const e = m1.expand([0, 0, 0] as unknown as [B, T, C]);
    const _e: Equal<typeof e, Tensor<[B, T, C]>> = true;
    // reductions
    const f = x.sum(-1);
    const _f: Equal<typeof f, Tensor<[B, T]>> = true;
    const g = x.max(1, true);
    const _g: Equal<typeof g, Tensor<[B, 1, C]>> = true;
    const h = x.argmax(-1);
    const _h: Equal<typeof h, Tensor<[B, T]>> = true;
    const i = x.logsumexp([0, 1]);
    const _i: Equal<typeof i, Tensor<[C]>> = true;
    const j = x.min(undefined, true);
    const _j: Equal<typeof j, Tensor<[1, 1, 1]>> = true;
    // @ts-expect-error sum: axis 3 is out of range for shape [B, T, C]
    x.sum(3);
    // softmax family keeps the shape; cast too
    const l = x.softmax(-1).logSoftmax(1).cast("f64");
    const _l: Equal<typeof l, Tensor<[B, T, C]>> = true;
    // narrow / split / chunk: a literal length on a symbolic axis is checked at run time
    const n = x.narrow(1, 0, 4);
    const _n: Equal<typeof n, Tensor<[B, 4, C]>> = true;
    const [sp] = x.split(2, -1);
    const _sp: Equal<typeof sp, Tensor<[B, T, number]>> = true;
    const [ch] = x.chunk(2, 1);
    const _ch: Equal<typeof ch, Tensor<[B, number, C]>> = true;
    // reshape: the element count of symbolic sizes is checked at run time
    const rs = x.reshape([0, 0, 1, 0] as unknown as [B, T, 1, C]);
    const _rs: Equal<typeof rs, Tensor<[B, T, 1, C]>> = true;
    // stack, gather, indexSelect, embedding, where, crossEntropy
    const st = stack([x, x], 1);
    const _st: Equal<typeof st, Tensor<[B, 2, T, C]>> = true;
    const ga = x.gather(-1, ids.unsqueeze(-1));
    const _ga: Equal<typeof ga, Tensor<[B, T, 1]>> = true;
    const is = x.indexSelect(1, zeros([5], "i32"));
    const _is: Equal<typeof is, Tensor<[B, 5, C]>> = true;
    const em = embedding(table, ids);
    const _em: Equal<typeof em, Tensor<[B, T, C]>> = true;
    const wh = where(x.gt(0), x, c);
    const _wh: Equal<typeof wh, Tensor<[B, T, C]>> = true;
    const ce = crossEntropy(x, ids);
    const _ce: Equal<typeof ce, Tensor<[]>> = true;
    // @ts-expect-error crossEntropy: targets [B, T, C] are not logits [B, T, C] without their class axis
    crossEntropy(x, x);
  }
  // Sizes a library function takes from its first tensor are not widened by a later one (NoInfer): a
  // mismatch is a compile error, not a union like [2 | 3].
  const lg = zeros([2, 8, 16]), q = zeros([2, 2, 4, 8]);
  // @ts-expect-error sequenceLogProbs: tokens [3, 8] for logits [2, 8, 16]
  const _lp3 = () => sequenceLogProbs(lg, zeros([3, 8], "i32"), ones([3, 8]));
  // @ts-expect-error attention: keyMask [3, 5] for a batch of 2
  const _km3 = () => attention(q, q, q, { keyMask: zeros([3, 5], "bool") });
  const gpt = new GPT({ vocabSize: 16, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 });
  // @ts-expect-error GPT.forward: keyMask [2, 7] for tokens [2, 8]
  const _fw = () => gpt.forward(zeros([2, 8], "i32"), zeros([2, 7], "bool"));
  const lpOk = sequenceLogProbs(lg, zeros([2, 8], "i32"), ones([2, 8]));
  const _lpOk: Equal<typeof lpOk, Tensor<[2]>> = true;
  // Rank-generic code: a scalar or a tensor of the same shape S leaves S as it is.
  const swish = <S extends Shape>(x: Tensor<S>): Tensor<S> => x.mul(x.sigmoid());
  const affine = <S extends Shape>(x: Tensor<S>): Tensor<S> => x.mul(2).add(x).sub(1);
  const sw = swish(affine(zeros([2, 3])));
  const _sw: Equal<typeof sw, Tensor<[2, 3]>> = true;
  assert.deepEqual(sw.shape, [2, 3]);
  // RLHF's per-token functions keep [B, T] through generic code and reject other sizes.
  const advantages = <B extends number, T extends number>(
    r: Tensor<[B, T]>,
    v: Tensor<[B, T]>,
    m: Tensor<[B, T]>,
  ) => whiten(gae(r, v, m).advantages, m);
  const adv = advantages(zeros([2, 5]), zeros([2, 5]), ones([2, 5]));
  const _adv: Equal<typeof adv, Tensor<[2, 5]>> = true;
  assert.deepEqual(adv.shape, [2, 5]);
  // @ts-expect-error gae: values [2, 4] for rewards [2, 5]
  const _gae = () => gae(zeros([2, 5]), zeros([2, 4]), ones([2, 5]));
  // @ts-expect-error maskedMean: a mask [3, 5] for x [2, 5]
  const _mm = () => maskedMean(zeros([2, 5]), ones([3, 5]));
  const _probes = probes;

  // The generic functions above, at run time with concrete sizes.
  const qkv = zeros([2, 3, 4, 5]);
  assert.deepEqual(maskedAttention(qkv, qkv, qkv, tril(4)).shape, [2, 3, 4, 5]);
  const x = zeros([2, 4, 15] as [2, 4, number]);
  assert.deepEqual(splitHeads(x, 2, 4, 3, 5).shape, [2, 3, 4, 5]);
  const y = mlp(
    zeros([2, 4, 6]),
    zeros([6, 8]),
    zeros([8]),
    zeros([8, 6]),
    zeros([6]),
  );
  assert.deepEqual(y.shape, [2, 4, 6]);
  const lp = maskedLogProbs(zeros([2, 4, 7]), zeros([2, 4], "i32"), ones([2, 4]));
  assert.deepEqual(lp.shape, [2]);
  // A runtime check decides what the types could not.
  throwsShape(
    () => splitHeads(zeros([2, 4, 7] as [2, 4, number]), 2, 4, 3, 5),
    "reshape: cannot reshape [2, 4, 7] (56 elements) to [2, 4, 3, 5] (120 elements)",
  );
});

/** What the types cannot decide passes, with the best shape they can state; the run time checks it. */
function undecided<B extends number, T extends number, K extends number>(
  x: Tensor<[B, T]>,
  col: Tensor<[T, 1]>,
  row: Tensor<[1, T]>,
  k: Tensor<[B, T, K]>,
  b: B,
) {
  const cat = concat([x, x], 1); // the sum of two symbolic sizes is a number
  const _cat: Equal<typeof cat, Tensor<[B, number]>> = true;
  const sq = x.squeeze(); // B or T may be 1: the rank is unknown
  const _sq: Equal<typeof sq, Tensor<number[]>> = true;
  const outer = col.mul(row);
  const _outer: Equal<typeof outer, Tensor<[T, T]>> = true;
  const rt = k.add(zeros([8] as [number]));
  const _rt: Equal<typeof rt, Tensor<[B, T, K]>> = true;
  const rs = x.reshape([b, -1]);
  const _rs: Equal<typeof rs, Tensor<[B, number]>> = true;
  const lit = k.add(zeros([8])); // K is 8 or 1 at run time
  const _lit: Equal<typeof lit, Tensor<[B, T, 8]>> = true;
  const mm = k.matmul(zeros([8, 4])); // K is 8 at run time
  const _mm: Equal<typeof mm, Tensor<[B, T, 4]>> = true;
  return [cat, sq, outer, rt, rs, lit, mm].map((t) => t.shape);
}
function _stillErrors<B extends number, T extends number, K extends number, J extends number>(
  k: Tensor<[B, T, K]>,
  j: Tensor<[J]>,
) {
  // @ts-expect-error the literal mismatch [.., 8] and [9] is still caught next to generic dims
  k.add(zeros([8])).add(zeros([9]));
  // @ts-expect-error distinct generic dims K and J still do not broadcast
  k.add(j);
}

Deno.test("types: undecided generic dims are checked at run time", () => {
  const x = zeros([2, 3]).add(0), col = zeros([3, 1]).add(0), row = zeros([1, 3]).add(0);
  assert.deepEqual(
    undecided(x, col, row, zeros([2, 3, 8]).add(0), 2),
    [[2, 6], [2, 3], [3, 3], [2, 3, 8], [2, 3], [2, 3, 8], [2, 3, 4]],
  );
  throwsShape(
    () => undecided(x, col, row, zeros([2, 3, 5]).add(0), 2),
    "add: shapes [2, 3, 5] and [8] cannot broadcast",
  );
});

Deno.test("types: the union trap and literal dims stay errors", () => {
  throwsShape(
    // @ts-expect-error matmul: inner dimensions 8 and 9 differ (no K = 8 | 9)
    () => zeros([2, 8]).matmul(zeros([9, 4])),
    "matmul: inner dimensions 8 and 9 differ (shapes [2, 8] and [9, 4])" satisfies MatMul<[2, 8], [9, 4]>,
  );
  function project<B extends number, T extends number>(x: Tensor<[B, T, 8]>): Tensor<[B, T, 16]> {
    return x.matmul(zeros([8, 16]));
  }
  assert.deepEqual(project(zeros([2, 3, 8])).shape, [2, 3, 16]);
  function _badProject<B extends number, T extends number>(x: Tensor<[B, T, 8]>) {
    // @ts-expect-error matmul: inner dimensions 8 and 9 differ, with generic batch dims
    return x.matmul(zeros([9, 16]));
  }
  throwsShape(
    // @ts-expect-error crossEntropy: logits [2, 3, 5] do not match targets [2, 4]
    () => crossEntropy(zeros([2, 3, 5]), zeros([2, 4], "i32")),
    "crossEntropy: logits [2, 3, 5] do not match targets [2, 4]",
  );
});

Deno.test("types: every tensor is a Tensor<Shape> (covariant in its shape)", () => {
  // What an optimizer's parameter list needs: literal, generic and runtime-rank shapes all widen.
  function params<B extends number, T extends number>(x: Tensor<[B, T]>): Tensor<Shape>[] {
    const generic: Tensor<Shape> = x;
    const literal: Tensor<Shape> = tensor([1, 2, 3]) satisfies Tensor<[3]>;
    const runtime: Tensor<Shape> = zeros([2, 3] as number[]) satisfies Tensor<number[]>;
    const frozen: Tensor<Shape> = zeros([2, 3]) satisfies Tensor<readonly [2, 3]>;
    const grads: (Tensor<Shape> | null)[] = [x.grad, literal.grad];
    assert.equal(grads.length, 2);
    return [generic, literal, runtime, frozen];
  }
  const ps = params(zeros([4, 5]));
  assert.deepEqual(ps.map((p) => p.shape), [[4, 5], [3], [2, 3], [2, 3]]);
  // Widening is one way only, and distinct literal shapes stay distinct.
  // @ts-expect-error Tensor<Shape> is not a Tensor<[3]>
  const _narrow: Tensor<[3]> = ps[1];
  // @ts-expect-error [2, 3] is not [3, 2]
  const _swapped: Tensor<[3, 2]> = zeros([2, 3]) as Tensor<[2, 3]>;
  // @ts-expect-error a runtime-rank shape is not a tuple
  const _rank: Tensor<[number, number]> = zeros([2, 3] as number[]);
});

Deno.test("types: GPT<V>.forward maps [B, T] to [B, T, V], V from the config", () => {
  const model = new GPT({ vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 } as const);
  const idx = fromArray([1, 2, 3, 4, 5, 6], [2, 3], "i32");
  const logits = model.forward(idx);
  const _l: Equal<typeof logits, Tensor<[2, 3, 11]>> = true;
  function generic<B extends number, T extends number>(x: Tensor<readonly [B, T]>): Tensor<[B, T, 11]> {
    return model.forward(x);
  }
  assert.deepEqual(generic(idx).shape, [2, 3, 11]);
  const unknownV = new GPT({ vocabSize: 11 as number, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 });
  const _u: Equal<ReturnType<typeof unknownV.forward<2, 3>>, Tensor<[2, 3, number]>> = true;
});
