import assert from "node:assert/strict";
import {
  type Broadcast,
  broadcastShapes,
  type Concat,
  concatShape,
  type CrossEntropy,
  embeddingCheck,
  type EmbeddingLookup,
  fmtShape,
  type FromNested,
  type Gather,
  gatherCheck,
  type Guard,
  type IndexSelect,
  type MatMul,
  matmulShape,
  type Narrow,
  narrowCheck,
  type Narrowed,
  type NormAxis,
  normAxis,
  type Ok,
  type Permute,
  permuteCheck,
  type Reduce,
  reduceAxes,
  type Reshape,
  type Reshaped,
  reshapeShape,
  type Shape,
  ShapeError,
  type Squeeze,
  squeezeShape,
  type Stack,
  stackShape,
  type Transpose,
  type Unsqueeze,
  unsqueezeAxis,
  type Where,
} from "../tensor/shape.ts";

// Exact type equality: a broken rule makes `deno check` fail on the line that tests it.
type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;

// ---- type level -------------------------------------------------------------------------------------------

// Broadcast / Where
const _b1: Equal<Broadcast<[2, 3], [3], "add">, [2, 3]> = true;
const _b2: Equal<Broadcast<[4, 1, 3], [5, 1], "mul">, [4, 5, 3]> = true;
const _b3: Equal<Broadcast<[2, 3], [4], "add">, "add: shapes [2, 3] and [4] cannot broadcast"> = true;
const _b4: Equal<Broadcast<[number, 3], [2, 1], "add">, [2, 3]> = true;
const _b5: Equal<Broadcast<[number, 1], [number], "add">, [number, number]> = true;
const _b6: Equal<Broadcast<number[], [2], "add">, number[]> = true;
const _b7: Equal<Broadcast<readonly [2, 3], readonly [], "sub">, [2, 3]> = true;
const _b8: Equal<
  Broadcast<[number, 3], [5, 4], "add">,
  "add: shapes [number, 3] and [5, 4] cannot broadcast"
> = true;
const _w1: Equal<Where<[2, 1], [1, 3], [3]>, [2, 3]> = true;
const _w2: Equal<Where<[2, 1], [1, 3], [4]>, "where: shapes [2, 3] and [4] cannot broadcast"> = true;

// MatMul
const _m1: Equal<MatMul<[2, 3], [3, 4]>, [2, 4]> = true;
const _m2: Equal<MatMul<[3], [3]>, []> = true;
const _m3: Equal<MatMul<[3], [5, 3, 4]>, [5, 4]> = true;
const _m4: Equal<MatMul<[5, 2, 3], [3]>, [5, 2]> = true;
const _m5: Equal<MatMul<[7, 1, 2, 3], [5, 3, 4]>, [7, 5, 2, 4]> = true;
const _m6: Equal<
  MatMul<[2, 3], [4, 5]>,
  "matmul: inner dimensions 3 and 4 differ (shapes [2, 3] and [4, 5])"
> = true;
const _m7: Equal<MatMul<[], [3]>, "matmul: operands must have at least 1 dimension (shapes [] and [3])"> =
  true;
const _m8: Equal<MatMul<[2, 2, 3], [4, 3, 5]>, "matmul: shapes [2] and [4] cannot broadcast"> = true;
const _m9: Equal<MatMul<[number, 3], [number, number]>, [number, number]> = true;
const _m11: Equal<MatMul<[2, 3], [4]>, "matmul: inner dimensions 3 and 4 differ (shapes [2, 3] and [4])"> =
  true;
const _m10: Equal<MatMul<number[], [3, 4]>, number[]> = true;

// Reduce
const _r1: Equal<Reduce<[2, 3, 4], 1, false, "sum">, [2, 4]> = true;
const _r2: Equal<Reduce<[2, 3, 4], -1, true, "sum">, [2, 3, 1]> = true;
const _r3: Equal<Reduce<[2, 3, 4], undefined, false, "sum">, []> = true;
const _r4: Equal<Reduce<[2, 3, 4], undefined, true, "max">, [1, 1, 1]> = true;
const _r5: Equal<Reduce<[2, 3, 4], [0, -1], false, "mean">, [3]> = true;
const _r6: Equal<Reduce<[2, 3], 3, false, "sum">, "sum: axis 3 is out of range for shape [2, 3]"> = true;
const _r7: Equal<Reduce<[2, 3], [1, -1], false, "sum">, "sum: axis 1 is repeated"> = true;
const _r8: Equal<Reduce<[2, 3], number, false, "sum">, [number]> = true;
const _r10: Equal<Reduce<[2, 3, 4], [2, 0], true, "sum">, [1, 3, 1]> = true;
const _r9: Equal<Reduce<number[], 0, false, "sum">, number[]> = true;

// Permute / Transpose
const _p1: Equal<Permute<[2, 3, 4], [2, 0, 1]>, [4, 2, 3]> = true;
const _p2: Equal<Permute<[2, 3, 4], [-1, 0, 1]>, [4, 2, 3]> = true;
const _p3: Equal<
  Permute<[2, 3], [0, 0]>,
  "permute: [0, 0] is not a permutation of the axes of shape [2, 3]"
> = true;
const _p4: Equal<Permute<[2, 3], [1]>, "permute: [1] is not a permutation of the axes of shape [2, 3]"> =
  true;
const _p5: Equal<
  Permute<[2, 3], [0, 2]>,
  "permute: [0, 2] is not a permutation of the axes of shape [2, 3]"
> = true;
const _t1: Equal<Transpose<[2, 3, 4], 0, -1>, [4, 3, 2]> = true;
const _t2: Equal<Transpose<[2, number], -2, -1>, [number, 2]> = true;
const _t3: Equal<Transpose<[2, 3], 0, 2>, "transpose: axis 2 is out of range for shape [2, 3]"> = true;

// Reshape
const _s1: Equal<Reshape<[2, 3], [3, 2]>, [3, 2]> = true;
const _s2: Equal<
  Reshape<[2, 3], [4, 2]>,
  "reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)"
> = true;
const _s3: Equal<Reshape<[2, 3, 4], [-1, 4]>, [number, 4]> = true;
const _s4: Equal<Reshape<[2, 3], [-1, -1]>, "reshape: only one dimension can be -1 (got [-1, -1])"> = true;
const _s5: Equal<Reshape<[64, 128, 50257], [8192, 50257]>, [8192, 50257]> = true;
const _s6: Equal<
  Reshape<[64, 128, 50257], [8192, 50256]>,
  "reshape: cannot reshape [64, 128, 50257] (411705344 elements) to [8192, 50256] (411697152 elements)"
> = true;
const _s7: Equal<Reshape<[number, 3], [7, 5]>, [7, 5]> = true;
const _s8: Equal<Reshape<[2, 0, 3], [0]>, [0]> = true;
const _s9: Equal<Reshape<[], [1, 1]>, [1, 1]> = true;
const _s10: Equal<Reshape<[99999, 99999], [9999800001]>, [9999800001]> = true;

const _s11: Equal<Reshape<number[], [2, -1]>, [2, number]> = true;

// Unsqueeze / Squeeze
const _u1: Equal<Unsqueeze<[2, 3], 0>, [1, 2, 3]> = true;
const _u2: Equal<Unsqueeze<[2, 3], 2>, [2, 3, 1]> = true;
const _u3: Equal<Unsqueeze<[2, 3], -1>, [2, 3, 1]> = true;
const _u4: Equal<Unsqueeze<[2, 3], -3>, [1, 2, 3]> = true;
const _u5: Equal<Unsqueeze<[2, 3], 5>, "unsqueeze: axis 5 is out of range for shape [2, 3]"> = true;
const _q1: Equal<Squeeze<[1, 2, 1, 3], undefined>, [2, 3]> = true;
const _q2: Equal<Squeeze<[1, number], undefined>, number[]> = true;
const _q3: Equal<Squeeze<[2, 1, 3], -2>, [2, 3]> = true;
const _q4: Equal<Squeeze<[2, 3], 1>, "squeeze: axis 1 of shape [2, 3] has size 3, not 1"> = true;
const _q5: Equal<Squeeze<[2, number], 1>, [2]> = true;

// Concat / Stack
const _c1: Equal<Concat<[[2, 3], [4, 3]], 0>, [6, 3]> = true;
const _c2: Equal<Concat<[[2, 3], [2, 5], [2, 7]], -1>, [2, 15]> = true;
const _c3: Equal<
  Concat<[[2, 3], [2, 4, 1]], 0>,
  "concat: shapes [2, 3] and [2, 4, 1] differ outside axis 0"
> = true;
const _c4: Equal<Concat<[[2, 3], [number, 3]], 1>, [2, 6]> = true;
const _c5: Equal<Concat<[[2, 3], [2, number]], 1>, [2, number]> = true;
const _c6: Equal<Concat<[[50000, 3], [70000, 3]], 0>, [120000, 3]> = true;
const _c7: Equal<Concat<[], 0>, "concat: needs at least one tensor"> = true;
const _c8: Equal<Concat<[[99999, 2], [1, 2], [900000, 2]], 0>, [1000000, 2]> = true;
const _c9: Equal<Concat<readonly [readonly [2, 3], readonly [2, 3]], 1>, [2, 6]> = true;
const _k1: Equal<Stack<[[2, 3], [2, 3], [2, 3]], 0>, [3, 2, 3]> = true;
const _k2: Equal<Stack<[[2, 3], [2, 3]], -1>, [2, 3, 2]> = true;
const _k3: Equal<Stack<[[2, 3], [3, 2]], 0>, "stack: shapes [2, 3] and [3, 2] differ"> = true;
const _k5: Equal<Stack<[[2, 3]], 3>, "stack: axis 3 is out of range for shape [2, 3]"> = true;
const _k4: Equal<Stack<[[2, number], [number, 3]], 1>, [2, 2, 3]> = true;

// Narrow / IndexSelect / Gather / Embedding
const _n1: Equal<Narrow<[2, 3], 1, 2>, [2, 2]> = true;
const _n2: Equal<Narrow<[2, 3], -1, 5>, "narrow: length 5 exceeds size 3 of axis 1 in shape [2, 3]"> = true;
const _n3: Equal<Narrow<[2, number], 1, 5>, [2, 5]> = true;
const _n4: Equal<Narrow<[2, 50257], 1, 9999>, [2, 9999]> = true;
const _n6: Equal<Narrow<[2, 99], 1, 100>, "narrow: length 100 exceeds size 99 of axis 1 in shape [2, 99]"> =
  true;
const _n7: Equal<Narrow<[2, 21], 1, 12>, [2, 12]> = true;
const _n5: Equal<Narrow<[2, 3], 2, 1>, "narrow: axis 2 is out of range for shape [2, 3]"> = true;
const _i1: Equal<IndexSelect<[5, 3], 0, 7>, [7, 3]> = true;
const _i2: Equal<IndexSelect<[5, 3], -1, number>, [5, number]> = true;
const _g1: Equal<Gather<[2, 3], 1, [2, 5]>, [2, 5]> = true;
const _g2: Equal<Gather<[2, 3], 1, [2]>, "gather: index shape [2] must have the same rank as shape [2, 3]"> =
  true;
const _e1: Equal<EmbeddingLookup<[50257, 768], [4, 16]>, [4, 16, 768]> = true;
const _e2: Equal<EmbeddingLookup<[2, 3, 4], [5]>, "embedding: weight must be [vocab, dim], got [2, 3, 4]"> =
  true;

// FromNested / NormAxis / Ok / Guard
const _f1: Equal<FromNested<[[1, 2], [3, 4]]>, [2, 2]> = true;
const _f2: Equal<FromNested<number>, []> = true;
const _f3: Equal<FromNested<number[][]>, [number, number]> = true;
const _f4: Equal<FromNested<readonly [readonly [1, 2, 3]]>, [1, 3]> = true;
const _f5: Equal<FromNested<[]>, [0]> = true;
const _a1: Equal<NormAxis<[2, 3, 4], -1>, 2> = true;
const _a2: Equal<NormAxis<[2, 3], 2, "softmax">, "softmax: axis 2 is out of range for shape [2, 3]"> = true;
const _a3: Equal<NormAxis<[2, 3], -3000000>, "axis: axis -3000000 is out of range for shape [2, 3]"> = true;
const _o1: Equal<Ok<Broadcast<[2], [3], "add">>, never> = true;
const _o2: Equal<Guard<Broadcast<[2], [2], "add">>, unknown> = true;

// Generic dims: identity decides, so rules resolve through type parameters; distinct generics leave a rule
// unevaluated, which Guard rejects and Soft lets through. A generic dim against a known one (a literal or
// `number`) passes, the known one winning as against `number`: the run time decides.
export function _generic<B extends number, T extends number, C extends number, K extends number>(): void {
  const _g1: Equal<Broadcast<[B, T, C], [C], "add">, [B, T, C]> = true;
  const _g2: Equal<Broadcast<[T, C], [B, T, C], "add">, [B, T, C]> = true;
  const _g3: Equal<MatMul<[B, T, C], [C, K]>, [B, T, K]> = true;
  const _g4: Equal<MatMul<[B, T, C], [B, C, T]>, [B, T, T]> = true;
  const _g5: Equal<MatMul<[B, T, 8], [8, 16]>, [B, T, 16]> = true;
  const _g6: Equal<Reduce<[B, T, C], -1, true, "sum">, [B, T, 1]> = true;
  const _g7: Equal<Transpose<[B, T, C], 0, -1>, [C, T, B]> = true;
  const _g8: Equal<Permute<[B, T, C], [1, 2, 0]>, [T, C, B]> = true;
  const _g9: Equal<Unsqueeze<[B, T], 1>, [B, 1, T]> = true;
  const _g10: Equal<Squeeze<[B, 1, T], 1>, [B, T]> = true;
  const _g11: Equal<Narrow<[B, 6], 1, 2>, [B, 2]> = true;
  const _g12: Equal<Narrowed<[B, T], 1, 2>, [B, 2]> = true;
  const _g13: Equal<Reshaped<[4, -1]>, [4, number]> = true;
  const _g14: Equal<Stack<[[B, T], [B, T]], 0>, [2, B, T]> = true;
  const _g15: Equal<Gather<[B, T, C], -1, [B, T, 1]>, [B, T, 1]> = true;
  const _g16: Equal<IndexSelect<[B, T, C], 0, 4>, [4, T, C]> = true;
  const _g17: Equal<EmbeddingLookup<[K, C], [B, T]>, [B, T, C]> = true;
  const _g18: Equal<Where<[T, T], [B, T, T], [B, T, T]>, [B, T, T]> = true;
  const _g19: Equal<CrossEntropy<[B, T, C], [B, T]>, []> = true;
  const _g21: Equal<Concat<[[B, 2], [B, 3]], 1>, [B, 5]> = true;
  const _g22: Equal<Broadcast<[2, 3], [4], "add">, "add: shapes [2, 3] and [4] cannot broadcast"> = true;
  // What the types cannot decide: the best shape they can state.
  const _g23: Equal<Concat<[[B, T], [B, T]], 1>, [B, number]> = true;
  const _g24: Equal<Concat<[[B, T], [8, 3]], 1>, [8, number]> = true;
  const _g25: Equal<Squeeze<[B, 1, T], undefined>, number[]> = true;
  const _g26: Equal<Broadcast<[T, 1], [1, T], "add">, [T, T]> = true;
  const _g27: Equal<Broadcast<[B, T, K], [number], "add">, [B, T, K]> = true;
  const _g28: Equal<Broadcast<[number], [B, T, K], "add">, [B, T, K]> = true;
  const _g29: Equal<Reshaped<[B, -1]>, [B, number]> = true;
  const _g30: Equal<Reshape<[B, T, 4], [B, -1, 2]>, [B, number, 2]> = true;
  const _g31: Equal<Reshape<[B, T, C], [B, T, 1, C]>, [B, T, 1, C]> = true;
  const _g32: Equal<Broadcast<[B, T, K], [8], "add">, [B, T, 8]> = true;
  const _g33: Equal<Broadcast<[8, 1], [K, T], "add">, [8, T]> = true;
  const _g34: Equal<MatMul<[B, T, K], [8, 16]>, [B, T, 16]> = true;
  const _g35: Equal<MatMul<[B, T, 8], [K, 16]>, [B, T, 16]> = true;
  const _g36: Equal<Stack<[[B, T], [8, 1]], 0>, [2, 8, 1]> = true;
  const _g37: Equal<Broadcast<[B, 2], [1, 2], "mul">, [B, 2]> = true;
}
// What stays an error: distinct generics (unevaluated, so Guard rejects) and literal mismatches.
export function _genericErrors<B extends number, K extends number, J extends number>(
  a: T<[B, K]>,
  b: T<[J]>,
  c: T<[B, 8]>,
  d: T<[9]>,
): void {
  // @ts-expect-error K and J: the rule is unevaluated
  a.add(b);
  // @ts-expect-error 8 and 9 differ, next to a generic dim
  c.add(d);
  const _ok: T<[B, 8]> = c.add(a);
}

// How tensor.ts uses Guard: a mismatch is a compile error that quotes the message. (Never called.)
interface T<S extends Shape> {
  add<B extends Shape>(other: T<B> & Guard<Broadcast<S, B, "add">>): T<Ok<Broadcast<S, B, "add">>>;
  shape: S;
}
export function _guardUse(a: T<[2, 3]>, b: T<[3]>, c: T<[4]>): void {
  const _ok: T<[2, 3]> = a.add(b);
  // @ts-expect-error add: shapes [2, 3] and [4] cannot broadcast
  a.add(c);
}

// ---- runtime ---------------------------------------------------------------------------------------------

function throwsShape(f: () => unknown, message: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof ShapeError);
    assert.equal(e.name, "ShapeError");
    assert.equal(e.message, message);
    return true;
  });
}

Deno.test("fmtShape and normAxis", () => {
  assert.equal(fmtShape([2, 3]), "[2, 3]");
  assert.equal(fmtShape([]), "[]");
  assert.equal(normAxis("sum", -1, [2, 3]), 1);
  assert.equal(normAxis("sum", 0, [2, 3]), 0);
  throwsShape(() => normAxis("sum", 3, [2, 3]), "sum: axis 3 is out of range for shape [2, 3]");
  throwsShape(() => normAxis("sum", -3, [2, 3]), "sum: axis -3 is out of range for shape [2, 3]");
  throwsShape(() => normAxis("sum", 0.5, [2, 3]), "sum: axis 0.5 is out of range for shape [2, 3]");
});

Deno.test("broadcastShapes", () => {
  assert.deepEqual(broadcastShapes("add", [2, 3], [3]), [2, 3]);
  assert.deepEqual(broadcastShapes("add", [4, 1, 3], [5, 1]), [4, 5, 3]);
  assert.deepEqual(broadcastShapes("add", [], [2]), [2]);
  assert.deepEqual(broadcastShapes("add", [0], [1]), [0]);
  throwsShape(() => broadcastShapes("add", [2, 3], [4]), "add: shapes [2, 3] and [4] cannot broadcast");
});

Deno.test("matmulShape", () => {
  assert.deepEqual(matmulShape([2, 3], [3, 4]), [2, 4]);
  assert.deepEqual(matmulShape([3], [3]), []);
  assert.deepEqual(matmulShape([3], [5, 3, 4]), [5, 4]);
  assert.deepEqual(matmulShape([5, 2, 3], [3]), [5, 2]);
  assert.deepEqual(matmulShape([7, 1, 2, 3], [5, 3, 4]), [7, 5, 2, 4]);
  throwsShape(
    () => matmulShape([2, 3], [4, 5]),
    "matmul: inner dimensions 3 and 4 differ (shapes [2, 3] and [4, 5])",
  );
  throwsShape(
    () => matmulShape([], [3]),
    "matmul: operands must have at least 1 dimension (shapes [] and [3])",
  );
  throwsShape(() => matmulShape([2, 2, 3], [4, 3, 5]), "matmul: shapes [2] and [4] cannot broadcast");
});

Deno.test("reduceAxes", () => {
  assert.deepEqual(reduceAxes("sum", [2, 3, 4], undefined), [0, 1, 2]);
  assert.deepEqual(reduceAxes("sum", [2, 3, 4], -1), [2]);
  assert.deepEqual(reduceAxes("sum", [2, 3, 4], [2, 0]), [0, 2]);
  throwsShape(() => reduceAxes("sum", [2, 3], 3), "sum: axis 3 is out of range for shape [2, 3]");
  throwsShape(() => reduceAxes("mean", [2, 3], [1, -1]), "mean: axis 1 is repeated");
});

Deno.test("permuteCheck", () => {
  assert.deepEqual(permuteCheck([2, 3, 4], [2, 0, 1]), [2, 0, 1]);
  assert.deepEqual(permuteCheck([2, 3, 4], [-1, 0, -2]), [2, 0, 1]);
  const msg = (p: string) => `permute: ${p} is not a permutation of the axes of shape [2, 3]`;
  throwsShape(() => permuteCheck([2, 3], [0, 0]), msg("[0, 0]"));
  throwsShape(() => permuteCheck([2, 3], [1]), msg("[1]"));
  throwsShape(() => permuteCheck([2, 3], [0, 2]), msg("[0, 2]"));
});

Deno.test("reshapeShape", () => {
  assert.deepEqual(reshapeShape([2, 3], [3, 2]), [3, 2]);
  assert.deepEqual(reshapeShape([2, 3, 4], [-1, 4]), [6, 4]);
  assert.deepEqual(reshapeShape([64, 128, 50257], [8192, -1]), [8192, 50257]);
  assert.deepEqual(reshapeShape([], [1, -1]), [1, 1]);
  throwsShape(
    () => reshapeShape([2, 3], [4, 2]),
    "reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)",
  );
  throwsShape(() => reshapeShape([2, 3], [4, -1]), "reshape: cannot reshape [2, 3] (6 elements) to [4, -1]");
  throwsShape(() => reshapeShape([2, 3], [-1, -1]), "reshape: only one dimension can be -1 (got [-1, -1])");
  throwsShape(
    () => reshapeShape([2, 3], [-2, -3]),
    "reshape: cannot reshape [2, 3] (6 elements) to [-2, -3]",
  );
});

Deno.test("unsqueezeAxis and squeezeShape", () => {
  assert.equal(unsqueezeAxis([2, 3], 0), 0);
  assert.equal(unsqueezeAxis([2, 3], 2), 2);
  assert.equal(unsqueezeAxis([2, 3], -1), 2);
  assert.equal(unsqueezeAxis([2, 3], -3), 0);
  throwsShape(() => unsqueezeAxis([2, 3], 5), "unsqueeze: axis 5 is out of range for shape [2, 3]");
  throwsShape(() => unsqueezeAxis([2, 3], -4), "unsqueeze: axis -4 is out of range for shape [2, 3]");
  assert.deepEqual(squeezeShape([1, 2, 1, 3]), [2, 3]);
  assert.deepEqual(squeezeShape([2, 1, 3], -2), [2, 3]);
  throwsShape(() => squeezeShape([2, 3], 1), "squeeze: axis 1 of shape [2, 3] has size 3, not 1");
  throwsShape(() => squeezeShape([2, 3], 2), "squeeze: axis 2 is out of range for shape [2, 3]");
});

Deno.test("concatShape and stackShape", () => {
  assert.deepEqual(concatShape([[2, 3], [4, 3]], 0), [6, 3]);
  assert.deepEqual(concatShape([[2, 3], [2, 5], [2, 7]], -1), [2, 15]);
  throwsShape(
    () => concatShape([[2, 3], [2, 4, 1]], 0),
    "concat: shapes [2, 3] and [2, 4, 1] differ outside axis 0",
  );
  throwsShape(
    () => concatShape([[2, 3], [3, 3]], 1),
    "concat: shapes [2, 3] and [3, 3] differ outside axis 1",
  );
  throwsShape(() => concatShape([], 0), "concat: needs at least one tensor");
  throwsShape(() => concatShape([[2, 3]], 2), "concat: axis 2 is out of range for shape [2, 3]");
  assert.deepEqual(stackShape([[2, 3], [2, 3], [2, 3]], 0), [3, 2, 3]);
  assert.deepEqual(stackShape([[2, 3], [2, 3]], -1), [2, 3, 2]);
  throwsShape(() => stackShape([[2, 3], [3, 2]], 0), "stack: shapes [2, 3] and [3, 2] differ");
  throwsShape(() => stackShape([], 0), "stack: needs at least one tensor");
  throwsShape(() => stackShape([[2, 3]], 3), "stack: axis 3 is out of range for shape [2, 3]");
});

Deno.test("narrowCheck, gatherCheck, embeddingCheck", () => {
  assert.equal(narrowCheck([2, 3], 1, 1, 2), 1);
  assert.equal(narrowCheck([2, 3], -1, -2, 2), 1);
  throwsShape(
    () => narrowCheck([2, 3], 1, 0, 5),
    "narrow: length 5 exceeds size 3 of axis 1 in shape [2, 3]",
  );
  throwsShape(
    () => narrowCheck([2, 3], 1, 2, 3),
    "narrow: range 2..5 is out of bounds for axis 1 of shape [2, 3]",
  );
  throwsShape(
    () => narrowCheck([2, 3], 1, -1, 2),
    "narrow: range 2..4 is out of bounds for axis 1 of shape [2, 3]",
  );
  throwsShape(() => narrowCheck([2, 3], 2, 0, 1), "narrow: axis 2 is out of range for shape [2, 3]");
  assert.equal(gatherCheck("gather", [2, 3], -1, [2, 5]), 1);
  throwsShape(
    () => gatherCheck("gather", [2, 3], 1, [2]),
    "gather: index shape [2] must have the same rank as shape [2, 3]",
  );
  embeddingCheck([10, 4]);
  throwsShape(() => embeddingCheck([2, 3, 4]), "embedding: weight must be [vocab, dim], got [2, 3, 4]");
});
