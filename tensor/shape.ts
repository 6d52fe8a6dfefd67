/**
 * Shape algebra, twice: as types (so adding shapes [2, 3] and [4] fails to compile) and as runtime
 * checks (for sizes only known at run time). Both give the same sentence for the same mistake.
 *
 * At type level a literal dim (`3`) is a known size and `number` a size known at run time: checks on
 * it pass here and happen at run time. A shape that is not a tuple (`number[]`) has unknown rank:
 * everything passes and results are `number[]`. Each rule gives a result tuple or, on a known
 * mismatch, a string literal type holding the error message (see `Ok` and `Guard`). Rules are
 * tail-recursive walks over short tuples; element counts use decimal digit strings, never tuple
 * lengths, so 64·128·50257 costs a few hundred steps.
 *
 * Layout: the shared machinery first, then one section per op with its type-level rule directly
 * above its runtime check. `@internal` marks helpers that exported types name, so `deno doc --lint`
 * accepts them.
 */

// ---- shapes, results, errors --------------------------------------------------------------------------
// A rule gives a shape tuple (`Ok` extracts it) or an error message (`Guard` turns it into a compile
// error); at run time the same message is thrown as a `ShapeError`, shapes printed as `[2, 3]`.

/** A tensor shape: a tuple of literal sizes, `number` for sizes known only at run time. */
export type Shape = readonly number[];

/** @internal A one-element wrapper for comparing types. The compiler defers a conditional on a literal
 * tuple (`[K] extends [J]`) whenever an element is generic, but decides `Box<K> extends Box<K>` (always
 * true) and `Box<8> extends Box<9>`; only distinct generics, or a generic against a literal, stay open. */
export type Box<T> = [T];

/** The result shape of a rule, or `never` where the rule gave an error message. (Bracketed, with `infer`:
 * the compiler proves `[B, T]` with generic dims a `Shape` only through the constraints of B and T.) */
export type Ok<R> = Box<R> extends Box<string> ? never
  : Box<R> extends Box<infer X extends Shape> ? X
  : never;

/** For a parameter's type: the rule's error message (making a mismatch a compile error), else `unknown`.
 * Strict: a rule the compiler cannot evaluate (it compares distinct generic dims `K` and `J`) is an error
 * too, so for generic dims a dim equals only itself. */
export type Guard<R> = R extends string ? R : unknown;

/** @internal The message of rule result R, if it is one. */
type Msg<R> = Box<R> extends Box<string> ? R & string : never;
/** Like `Guard`, for `this: Self & Soft<R, Self>`: the rule's error message is a compile error (a missing
 * property named by the sentence), and a rule the compiler cannot evaluate passes, leaving the check to
 * the run time. For rules whose result type is computed apart from the check (reshape, narrow, squeeze):
 * a generic size against a literal one can only be decided at run time. It works because the compiler
 * relates any `Self` to the still-generic mapped type `{ [P in …]: Self[P] }` without evaluating it. */
// deno-lint-ignore no-explicit-any -- any object type meets a string index of `any`, so Self[P] is valid
export type Soft<R, Self extends { [k: string]: any }> = { [P in Msg<R>]: Self[P] };

type Str<D> = D extends number ? (number extends D ? "number" : `${D}`) : "?";
/** @internal `[2, 3]`, as `fmtShape` prints it (a runtime-only size prints as `number`). */
type Fmt<S extends readonly unknown[], Acc extends string = ""> = S extends readonly [infer H, ...infer R]
  ? Fmt<R, Acc extends "" ? Str<H> : `${Acc}, ${Str<H>}`>
  : `[${Acc}]`;

/** A shape mismatch; the message is the one the type-level rule shows at compile time. */
export class ShapeError extends Error {
  /** Always "ShapeError". */
  override name: string = "ShapeError";
}

/** A shape as `[2, 3]`. */
export function fmtShape(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

/** Throws a ShapeError with `message` (`raise` for shape mismatches). */
export function fail(message: string): never {
  throw new ShapeError(message);
}

// ---- tuple helpers ------------------------------------------------------------------------------------
// Shape surgery by index on literal tuples: last/init, fill, replace, insert, remove, and a dim match.

/** @internal */
type Last<S extends Shape> = S extends readonly [...unknown[], infer D extends number] ? D : never;
/** @internal */
type Init<S extends Shape> = S extends readonly [...infer H extends Shape, unknown] ? H : [];
/** @internal S with every dim replaced by V (same rank). */
type Fill<S extends Shape, V, Acc extends unknown[] = []> = S extends
  readonly [unknown, ...infer R extends Shape] ? Fill<R, V, [...Acc, V]>
  : Acc;
/** @internal S with dim N replaced by V. */
type Replace<S extends Shape, N extends number, V extends number, Acc extends Shape = []> = S extends
  readonly [infer D extends number, ...infer R extends Shape]
  ? Replace<R, N, V, [...Acc, Acc["length"] extends N ? V : D]>
  : Acc;
/** @internal S with V inserted before dim N (N = rank appends). */
type Insert<S extends Shape, N extends number, V extends number, Acc extends Shape = []> =
  Acc["length"] extends N ? [...Acc, V, ...S]
    : S extends readonly [infer D extends number, ...infer R extends Shape] ? Insert<R, N, V, [...Acc, D]>
    : Acc;
/** @internal S without dim N. */
type Remove<S extends Shape, N extends number, Acc extends Shape = []> = S extends
  readonly [infer D extends number, ...infer R extends Shape]
  ? Acc["length"] extends N ? [...Acc, ...R] : Remove<R, N, [...Acc, D]>
  : Acc;
// Dims are compared identity first (`Box<K> extends Box<K>` is the one test the compiler decides for a
// generic dim K), then `number` (a runtime-only size matches anything; the known one wins). Rules compare
// in continuation style, each outcome's branch carrying on the walk, so a pair the compiler cannot
// decide (K against J) leaves the whole rule unevaluated, which `Guard` rejects, rather than one
// unevaluated dim inside an accepted shape. A generic dim against a known one (a literal or `number`)
// is set apart first by `Known`: the types cannot decide it, so it passes and the run time checks it.

/** @internal true if dims a and b are both known (literals or `number`) or the same generic dim, false if
 * just one is generic, open for distinct generics. It compares `a | number` with `b | number` (`number`
 * for a known dim) by identity, and the compiler, taking a generic dim for a wildcard there, decides
 * `K | number` is not `number`. With a dim that is generic where a rule is declared, the test waits
 * for the rule's use: a one-dim test is `Known<D, I>`, I an index the rule computes. */
type Known<a, b> = (<X>() => X extends Box<a | number> ? 1 : 2) extends
  (<X>() => X extends Box<b | number> ? 1 : 2) ? true : false;
/** @internal Generic dim G met with known dim D: G against `number`, One (broadcast: G) against 1, else D. */
type KnownWins<G, D, One = G> = Box<D> extends Box<1> ? One : number extends D ? G : D;

/** @internal Every shape that broadcasts into S leaving it unchanged: a suffix of S, any dims set to 1.
 * Ops use it as an argument type, so generic dims are compared by assignability, which decides `C` vs 1. */
export type Sub<S extends Shape, Acc extends Shape = readonly []> = S extends
  readonly [...infer H extends Shape, infer D extends number]
  ? Acc | Sub<H, readonly [D, ...Acc] | readonly [1, ...Acc]>
  : number extends S["length"] ? Shape
  : Acc;

// ---- decimal arithmetic -------------------------------------------------------------------------------
// On reversed digit strings ("123" is "321", so carries run left to right): add, multiply, compare,
// and element counts, so big sizes cost digits, not tuple lengths.

type Digit = "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9";
type Up<D extends Digit, Acc extends 0[] = []> = `${Acc["length"]}` extends D ? Acc : Up<D, [...Acc, 0]>;
type Dig<S extends string> = S extends `${infer D extends Digit}${string}` ? D : "0";
type Rest<S extends string> = S extends `${string}${infer R}` ? R : "";
/** @internal */
type Rev<S extends string, Acc extends string = ""> = S extends `${infer H}${infer R}` ? Rev<R, `${H}${Acc}`>
  : Acc;
/** @internal A + B, digit by digit with carry C. */
type AddR<A extends string, B extends string, C extends "0" | "1" = "0", Acc extends string = ""> =
  `${A}${B}` extends "" ? (C extends "1" ? `${Acc}1` : Acc)
    : [...Up<Dig<A>>, ...Up<Dig<B>>, ...Up<C>]["length"] extends infer N extends number
      ? `${N}` extends `1${infer U extends Digit}` ? AddR<Rest<A>, Rest<B>, "1", `${Acc}${U}`>
      : AddR<Rest<A>, Rest<B>, "0", `${Acc}${N}`>
    : never;
type TimesR<A extends string, N extends 0[], Acc extends string = "0"> = N extends [0, ...infer R extends 0[]]
  ? TimesR<A, R, AddR<Acc, A>>
  : Acc;
// Long multiplication: one digit of B at a time (repeated addition), A shifted one place per step.
type MulR<A extends string, B extends string, Acc extends string = "0"> = B extends
  `${infer D extends Digit}${infer R}` ? MulR<`0${A}`, R, AddR<Acc, TimesR<A, Up<D>>>>
  : Acc;
type Trim<S extends string> = S extends `0${infer R}` ? (R extends "" ? "0" : Trim<R>) : S;
/** @internal A reversed digit string as a number literal. */
type Num<R extends string> = Trim<Rev<R>> extends `${infer N extends number}` ? N : number;
// Compare digits a and b: true (a > b), false (a < b), else G, the verdict of the less significant digits.
type Cmp<a extends Digit, b extends Digit, G> = Up<a> extends [...Up<b>, 0, ...0[]] ? true
  : Up<b> extends [...Up<a>, 0, ...0[]] ? false
  : G;
/** @internal A > B, for reversed digit strings without leading zeros. */
type GtR<A extends string, B extends string, G extends boolean = false> = A extends
  `${infer a extends Digit}${infer A2}`
  ? B extends `${infer b extends Digit}${infer B2}` ? GtR<A2, B2, Cmp<a, b, G>>
  : true
  : B extends "" ? G
  : false;
/** @internal The element count of S as a decimal string, or false if some dim is not a literal. */
type Elems<S extends Shape, Acc extends string = "1"> = S extends
  readonly [infer D extends number, ...infer R extends Shape] ? Known<D, R["length"]> extends false ? false
  : number extends D ? false
  : Elems<R, MulR<Acc, Rev<`${D}`>>>
  : Trim<Rev<Acc>>;

const numel = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);

// ---- axis normalisation -------------------------------------------------------------------------------
// Axis A of a rank-r shape is valid in [-r, r); a negative one counts from the end.

type Neg<N extends number> = `-${N}` extends `${infer M extends number}` ? M : never;
/** @internal The index of axis A (negative: from the end) of S, or false. Walks S once: a huge A is cheap. */
type AxisIn<S extends readonly unknown[], A extends number, I extends 0[] = []> = S extends
  readonly [unknown, ...infer R]
  ? A extends I["length"] | Neg<S["length"]> ? I["length"] : AxisIn<R, A, [...I, 0]>
  : false;
/** @internal */
type AxisErr<Op extends string, A extends number, S extends Shape> =
  `${Op}: axis ${A} is out of range for shape ${Fmt<S>}`;

/** The non-negative form of axis A of S, or the error message (`Op` names the op in it). */
export type NormAxis<S extends Shape, A extends number, Op extends string = "axis"> = number extends
  A | S["length"] ? number
  : AxisIn<S, A> extends infer N extends number ? N
  : AxisErr<Op, A, S>;

/** Axis `axis` of `shape` made non-negative; throws if out of range. `rank` is the shape's unless an op
 * counts axes of a shape with a dim added (unsqueeze, stack: one more). */
export function normAxis(op: string, axis: number, shape: readonly number[], rank = shape.length): number {
  if (typeof axis !== "number") fail(`${op}: axis ${JSON.stringify(axis) ?? axis} is not an integer`);
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    fail(`${op}: axis ${axis} is out of range for shape ${fmtShape(shape)}`);
  }
  return axis < 0 ? axis + rank : axis;
}

// ---- broadcast (elementwise ops, expand, where) -------------------------------------------------------
// Right-aligned; each dim pair must be equal or contain a 1, and a missing dim counts as 1.
// `where` broadcasts the condition with one branch, then the result with the other.

/** @internal */
type BC<A extends Shape, B extends Shape, E extends string, Acc extends Shape = []> = A extends
  readonly [...infer AH extends Shape, infer a extends number]
  ? B extends readonly [...infer BH extends Shape, infer b extends number]
    ? Known<a, b> extends false
      ? BC<AH, BH, E, [Known<a, a | b> extends true ? KnownWins<a, b> : KnownWins<b, a>, ...Acc]>
    : Box<a> extends Box<b>
      ? BC<AH, BH, E, [Box<b> extends Box<a> ? a : Box<a> extends Box<1> ? b : a, ...Acc]>
    : Box<a> extends Box<1> ? BC<AH, BH, E, [b, ...Acc]>
    : Box<b> extends Box<1> ? BC<AH, BH, E, [a, ...Acc]>
    : number extends a ? BC<AH, BH, E, [b, ...Acc]>
    : number extends b ? BC<AH, BH, E, [a, ...Acc]>
    : E
  : [...A, ...Acc]
  : [...B, ...Acc];
/** Numpy broadcasting of A and B (right-aligned), or `${Op}: shapes [2, 3] and [4] cannot broadcast`. */
export type Broadcast<A extends Shape, B extends Shape, Op extends string> = number extends
  A["length"] | B["length"] ? number[]
  : BC<A, B, `${Op}: shapes ${Fmt<A>} and ${Fmt<B>} cannot broadcast`>;

/** The broadcast of condition C with A, then with B (op `where`). */
export type Where<C extends Shape, A extends Shape, B extends Shape> = Broadcast<C, A, "where"> extends
  infer R extends Shape ? Broadcast<R, B, "where"> : Broadcast<C, A, "where">;

/** Numpy broadcasting of two shapes (right-aligned). */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length), out = new Array<number>(n);
  for (let i = 1; i <= n; i++) {
    const x = a[a.length - i] ?? 1, y = b[b.length - i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      fail(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot broadcast`);
    }
    out[n - i] = x === 1 ? y : x;
  }
  return out;
}

// ---- matmul -------------------------------------------------------------------------------------------
// torch.matmul: inner dims must match, batch dims broadcast, a 1-D operand adds no dim.

/** @internal Matmul once ranks are ≥ 1: K1, K2 are the inner dims; vector operands add no dim. (Named for
 * the compile error on generic dims, which quotes it: `Guard<MatmulInnerDims<D, T, …>>`.) */
type MatmulInnerDims<K1 extends number, K2 extends number, A extends Shape, B extends Shape> =
  Known<K1, K2> extends false ? MatOut<A, B>
    : Box<K1> extends Box<K2> ? MatOut<A, B>
    : number extends K1 | K2 ? MatOut<A, B>
    : `matmul: inner dimensions ${K1} and ${K2} differ (shapes ${Fmt<A>} and ${Fmt<B>})`;
/** @internal Matmul's result once the inner dims match: broadcast batch, then the outer dims. */
type MatOut<A extends Shape, B extends Shape> = Broadcast<Init<Init<A>>, Init<Init<B>>, "matmul"> extends
  infer R extends Shape ? [
    ...R,
    ...(A extends readonly [unknown] ? [] : [Last<Init<A>>]),
    ...(B extends readonly [unknown] ? [] : [Last<B>]),
  ]
  : Broadcast<Init<Init<A>>, Init<Init<B>>, "matmul">;
/** torch.matmul: vector·vector → [], a vector operand drops its dim, batch dims broadcast. */
export type MatMul<A extends Shape, B extends Shape> = number extends A["length"] | B["length"] ? number[]
  : [A, B] extends [readonly [unknown, ...unknown[]], readonly [unknown, ...unknown[]]]
    ? MatmulInnerDims<Last<A>, B extends readonly [infer K extends number] ? K : Last<Init<B>>, A, B>
  : `matmul: operands must have at least 1 dimension (shapes ${Fmt<A>} and ${Fmt<B>})`;

/** The shape of torch.matmul(a, b), vector cases included. */
export function matmulShape(a: readonly number[], b: readonly number[]): number[] {
  const shapes = `(shapes ${fmtShape(a)} and ${fmtShape(b)})`;
  if (a.length === 0 || b.length === 0) fail(`matmul: operands must have at least 1 dimension ${shapes}`);
  const k1 = a[a.length - 1], k2 = b.length === 1 ? b[0] : b[b.length - 2];
  if (k1 !== k2) fail(`matmul: inner dimensions ${k1} and ${k2} differ ${shapes}`);
  const out = broadcastShapes("matmul", a.slice(0, -2), b.slice(0, -2));
  if (a.length > 1) out.push(a[a.length - 2]);
  if (b.length > 1) out.push(b[b.length - 1]);
  return out;
}

// ---- reductions ---------------------------------------------------------------------------------------
// Reduced axes (all when none given) must be in range and distinct; they drop out, or stay as 1s.

/** @internal The normalized axes P as [union], `number` if one is runtime-only, or an error message. */
type ReduceAxes<S extends Shape, P extends readonly number[], Op extends string, Acc extends number = never> =
  number extends P["length"] ? number
    : P extends readonly [infer A extends number, ...infer R extends readonly number[]]
      ? NormAxis<S, A, Op> extends infer N ? N extends string ? N
        : number extends N ? number
        : [N] extends [Acc] ? `${Op}: axis ${N & number} is repeated`
        : ReduceAxes<S, R, Op, Acc | (N & number)>
      : never
    : [Acc];
/** @internal S with each axis in the union Ax replaced by the dims K ([] drops it, [1] keeps a 1). */
type ReduceT<S extends Shape, Ax, K extends Shape, Acc extends Shape = [], I extends 0[] = []> = S extends
  readonly [infer D extends number, ...infer R extends Shape]
  ? ReduceT<R, Ax, K, [...Acc, ...(I["length"] extends Ax ? K : [D])], [...I, 0]>
  : Acc;
/** Reduction over Axis (all axes when undefined; negatives count from the end), keeping 1s if Keep. */
export type Reduce<
  S extends Shape,
  Axis extends number | readonly number[] | undefined,
  Keep extends boolean,
  Op extends string,
> = boolean extends Keep ? number[]
  : Axis extends undefined ? Keep extends true ? number extends S["length"] ? number[] : Fill<S, 1> : []
  : number extends S["length"] ? number[]
  : ReduceAxes<S, Axis extends number ? [Axis] : Exclude<Axis, number | undefined>, Op> extends infer X
    ? X extends string ? X
    : X extends [infer U] ? ReduceT<S, U, Keep extends true ? [1] : []>
    : Keep extends true ? Fill<S, number>
    : Axis extends number ? Fill<Init<S>, number>
    : number[]
  : never;

/** The sorted, distinct, non-negative axes a reduction covers (all of them when `axis` is undefined). */
export function reduceAxes(op: string, shape: Shape, axis: number | readonly number[] | undefined): number[] {
  if (axis === undefined) return shape.map((_, i) => i);
  const out: number[] = [];
  for (const a of Array.isArray(axis) ? axis : [axis]) {
    const n = normAxis(op, a, shape);
    if (out.includes(n)) fail(`${op}: axis ${n} is repeated`);
    out.push(n);
  }
  return out.sort((x, y) => x - y);
}

// ---- reshape ------------------------------------------------------------------------------------------
// At most one -1 (inferred); the element count must not change.

/** @internal [number of -1s, T with each -1 as `number`]. */
type Holes<T extends readonly number[], Acc extends Shape = [], H extends 0[] = []> = T extends
  readonly [infer D extends number, ...infer R extends readonly number[]]
  ? Known<D, H["length"]> extends false ? Holes<R, [...Acc, D], H> // a generic dim is no -1
  : Box<D> extends Box<-1> ? Holes<R, [...Acc, number], [...H, 0]>
  : Holes<R, [...Acc, D], H>
  : [H["length"], Acc];
/** @internal */
type ReshapeT<S extends Shape, T extends readonly number[], H extends number, Out extends Shape> = H extends
  0 | 1
  ? [H, Elems<S>, Elems<T>] extends [0, infer X extends string, infer Y extends string]
    ? X extends Y ? Out : `reshape: cannot reshape ${Fmt<S>} (${X} elements) to ${Fmt<T>} (${Y} elements)`
  : Out
  : `reshape: only one dimension can be -1 (got ${Fmt<T>})`;
/** S reshaped to T; a -1 in T becomes `number` (inferred at run time). Known element counts must match. */
export type Reshape<S extends Shape, T extends readonly number[]> = number extends T["length"] ? number[]
  : Holes<T> extends [infer H extends number, infer Out extends Shape]
    ? ReshapeT<number extends S["length"] ? [number] : S, T, H, Out>
  : never;

/** The shape a reshape to T gives (a -1 becomes `number`), apart from the check `Reshape` makes. */
export type Reshaped<T extends readonly number[]> = number extends T["length"] ? number[] : Holes<T>[1];

/** The target shape of a reshape with its -1 (if any) inferred; throws if the sizes don't fit. */
export function reshapeShape(shape: readonly number[], target: readonly number[]): number[] {
  const holes = target.filter((d) => d === -1).length;
  if (holes > 1) fail(`reshape: only one dimension can be -1 (got ${fmtShape(target)})`);
  const size = numel(shape), known = numel(target.filter((d) => d !== -1));
  const head = `reshape: cannot reshape ${fmtShape(shape)} (${size} elements) to ${fmtShape(target)}`;
  if (target.some((d) => !Number.isInteger(d) || d < -1)) fail(head);
  if (holes === 0) return known === size ? [...target] : fail(`${head} (${known} elements)`);
  if (known === 0 || size % known !== 0) fail(head);
  return target.map((d) => (d === -1 ? size / known : d));
}

// ---- permute / transpose ------------------------------------------------------------------------------
// permute: P lists every axis once, in the new order. transpose: swaps two in-range axes (its
// runtime check is `normAxis` on each).

/** @internal S[P[0]], S[P[1]], …, or E if P repeats an axis, leaves S's axes or misses one. */
type PermT<S extends Shape, P extends Shape, E extends string, Seen = never, Acc extends Shape = []> =
  P extends readonly [infer A extends number, ...infer R extends readonly number[]]
    ? number extends A ? PermT<S, R, E, Seen, [...Acc, number]>
    : AxisIn<S, A> extends infer N extends number
      ? [N] extends [Seen] ? E : PermT<S, R, E, Seen | N, [...Acc, S[N]]>
    : E
    : Acc["length"] extends S["length"] ? Acc
    : E;
/** The shape S[P[0]], S[P[1]], …; P must be a permutation of S's axes (negatives allowed). */
export type Permute<S extends Shape, P extends readonly number[]> = number extends S["length"] | P["length"]
  ? number[]
  : PermT<S, P, `permute: ${Fmt<P>} is not a permutation of the axes of shape ${Fmt<S>}`>;

/** Checks that `perm` permutes the axes of `shape`; returns it with negatives normalized. */
export function permuteCheck(shape: readonly number[], perm: readonly number[]): number[] {
  const r = shape.length;
  const out = perm.map((p) => (Number.isInteger(p) && p >= -r && p < r ? (p + r) % r : -1));
  if (perm.length !== r || out.includes(-1) || new Set(out).size !== r) {
    fail(`permute: ${fmtShape(perm)} is not a permutation of the axes of shape ${fmtShape(shape)}`);
  }
  return out;
}

/** @internal Swap normalized axes I and J (or pass an axis error on). */
type SwapT<S extends Shape, I, J> = I extends string ? I
  : J extends string ? J
  : number extends S["length"] ? number[]
  : number extends I | J ? Fill<S, number>
  : Replace<Replace<S, I & number, S[J & number]>, J & number, S[I & number]>;
/** S with axes D0 and D1 swapped (negatives allowed). */
export type Transpose<S extends Shape, D0 extends number, D1 extends number> = SwapT<
  S,
  NormAxis<S, D0, "transpose">,
  NormAxis<S, D1, "transpose">
>;

// ---- unsqueeze / squeeze ------------------------------------------------------------------------------
// unsqueeze inserts a 1 at an axis in [-(rank+1), rank]; squeeze drops one axis of size 1, or all 1s.

/** S with a 1 inserted at axis D, which ranges over [-(rank+1), rank]. */
export type Unsqueeze<S extends Shape, D extends number> = number extends S["length"] ? number[]
  : number extends D ? [number, ...Fill<S, number>]
  : AxisIn<[0, ...S], D> extends infer N extends number ? Insert<S, N, 1>
  : AxisErr<"unsqueeze", D, S>;

/** Where unsqueeze inserts its 1: `axis` in [-(rank+1), rank], made non-negative. */
export function unsqueezeAxis(shape: readonly number[], axis: number): number {
  return normAxis("unsqueeze", axis, shape, shape.length + 1);
}

/** @internal S without its 1s; `number[]` if some dim is runtime-only or generic (it may be 1). */
type DropOnes<S extends Shape, Acc extends Shape = []> = S extends
  readonly [infer D extends number, ...infer R extends Shape]
  ? Known<D, Acc["length"]> extends false ? number[]
  : number extends D ? number[]
  : DropOnes<R, [D] extends [1] ? Acc : [...Acc, D]>
  : Acc;
/** @internal Squeeze normalized axis N (or pass an axis error on). */
type SqueezeT<S extends Shape, N> = N extends number ? number extends N ? Fill<Init<S>, number>
  : [S[N]] extends [1] ? Remove<S, N>
  : number extends S[N] ? Remove<S, N>
  : `squeeze: axis ${N} of shape ${Fmt<S>} has size ${S[N]}, not 1`
  : N;
/** S without axis D (which must have size 1), or without all its 1s when D is undefined. */
export type Squeeze<S extends Shape, D extends number | undefined> = number extends S["length"] ? number[]
  : D extends number ? SqueezeT<S, NormAxis<S, D, "squeeze">>
  : DropOnes<S>;

/** The shape a squeeze gives, apart from the size-1 check `Squeeze` makes. */
export type Squeezed<S extends Shape, D extends number | undefined> = number extends S["length"] ? number[]
  : D extends number
    ? NormAxis<S, D, "squeeze"> extends infer N extends number
      ? number extends N ? Fill<Init<S>, number> : Remove<S, N>
    : never
  : DropOnes<S>;

/** `shape` without axis `axis` (which must have size 1), or without all its 1s. */
export function squeezeShape(shape: readonly number[], axis?: number): number[] {
  if (axis === undefined) return shape.filter((d) => d !== 1);
  const n = normAxis("squeeze", axis, shape);
  if (shape[n] !== 1) fail(`squeeze: axis ${n} of shape ${fmtShape(shape)} has size ${shape[n]}, not 1`);
  return shape.filter((_, i) => i !== n);
}

// ---- narrow -------------------------------------------------------------------------------------------
// A slice of Len elements along an axis: Len must not exceed its size (the start is checked at run time).

/** @internal S with normalized axis N set to V (or an axis error passed on); with Check, V ≤ the size. */
type SetAxis<S extends Shape, N, V extends number, Check extends boolean = false> = N extends string ? N
  : number extends N ? number extends S["length"] ? number[] : Fill<S, number>
  : Check extends true ? NarrowT<S, N & number, V, S[N & number]>
  : Replace<S, N & number, V>;
/** @internal Narrow of axis N (size D) to length V: identity first, then literal sizes by digits. */
type NarrowT<S extends Shape, N extends number, V extends number, D extends number> = Box<V> extends Box<D>
  ? Replace<S, N, V>
  : number extends V | D ? Replace<S, N, V>
  : GtR<Rev<`${V}`>, Rev<`${D}`>> extends true
    ? `narrow: length ${V} exceeds size ${D} of axis ${N} in shape ${Fmt<S>}`
  : Replace<S, N, V>;
/** S with S[Axis] replaced by Len, which must not exceed a known size. */
export type Narrow<S extends Shape, Axis extends number, Len extends number> = SetAxis<
  S,
  NormAxis<S, Axis, "narrow">,
  Len,
  true
>;

/** The shape a narrow gives, apart from the length check `Narrow` makes. */
export type Narrowed<S extends Shape, Axis extends number, Len extends number> = Ok<
  SetAxis<S, NormAxis<S, Axis, "narrow">, Len>
>;

/** A piece of S cut along Axis by split, chunk or slice: that axis's size becomes `number`. */
export type Split<S extends Shape, Axis extends number> = Ok<SetAxis<S, NormAxis<S, Axis, "split">, number>>;

/** Checks `length` elements from `start` (negative: from the end) fit in `axis`; returns the axis. */
export function narrowCheck(shape: readonly number[], axis: number, start: number, length: number): number {
  const n = normAxis("narrow", axis, shape), size = shape[n], s = start < 0 ? start + size : start;
  if (length > size) {
    fail(`narrow: length ${length} exceeds size ${size} of axis ${n} in shape ${fmtShape(shape)}`);
  }
  if (!Number.isInteger(s) || !Number.isInteger(length) || s < 0 || length < 0 || s + length > size) {
    fail(`narrow: range ${s}..${s + length} is out of bounds for axis ${n} of shape ${fmtShape(shape)}`);
  }
  return n;
}

// ---- concat / stack -----------------------------------------------------------------------------------
// concat: shapes equal except along the axis, where sizes add up. stack: equal shapes, joined along a
// new axis of size = their count. Both need at least one shape.

/** @internal A and B merged (known dims win, dim N is A's), or false where they differ. */
type Merge<A extends Shape, B extends Shape, N extends number, Acc extends Shape = []> = A extends
  readonly [infer a extends number, ...infer AR extends Shape]
  ? B extends readonly [infer b extends number, ...infer BR extends Shape]
    ? Acc["length"] extends N ? Merge<AR, BR, N, [...Acc, a]>
    : Known<a, b> extends false
      ? Merge<AR, BR, N, [...Acc, Known<a, a | b> extends true ? KnownWins<a, b, b> : KnownWins<b, a, a>]>
    : Box<a> extends Box<b> ? Merge<AR, BR, N, [...Acc, a]>
    : number extends a ? Merge<AR, BR, N, [...Acc, b]>
    : number extends b ? Merge<AR, BR, N, [...Acc, a]>
    : false
  : false
  : B extends readonly [] ? Acc
  : false;
/** @internal Sum is the axis total as a reversed digit string, or `number` once a size is runtime-only or
 * generic (N, the axis, makes `Known` a one-dim test). */
type AddDim<Sum, D extends number, N extends number> =
  [Sum, Known<D, N> extends false ? 0 : number extends D ? 0 : 1] extends [infer X extends string, 1]
    ? AddR<X, Rev<`${D}`>>
    : number;
/** @internal Concat of S0 (merged so far: M) with Ss along normalized axis N. */
type ConcatT<S0 extends Shape, Ss extends readonly Shape[], N, M extends Shape, Sum> = N extends string ? N
  : number extends N ? Fill<S0, number>
  : Ss extends readonly [infer S extends Shape, ...infer R extends readonly Shape[]]
    ? number extends S["length"] ? ConcatT<S0, R, N, M, number>
    : Merge<M, S, N & number> extends infer M2 extends Shape
      ? ConcatT<S0, R, N, M2, AddDim<Sum, S[N & number], N & number>>
    : `concat: shapes ${Fmt<S0>} and ${Fmt<S>} differ outside axis ${N & number}`
  : Replace<M, N & number, Sum extends string ? Num<Sum> : number>;
/** Shapes Ss joined along Axis: equal outside it, summed along it. */
export type Concat<Ss extends readonly Shape[], Axis extends number> = Ss extends
  readonly [infer S0 extends Shape, ...infer R extends readonly Shape[]]
  ? number extends S0["length"] ? number[]
  : NormAxis<S0, Axis, "concat"> extends infer N
    ? ConcatT<S0, R, N, S0, AddDim<"0", S0[N & number], N & number>>
  : never
  : Ss extends readonly [] ? "concat: needs at least one tensor"
  : number[];

/** The shape of a concatenation along `axis`. */
export function concatShape(shapes: readonly (readonly number[])[], axis: number): number[] {
  if (shapes.length === 0) fail("concat: needs at least one tensor");
  const first = shapes[0], n = normAxis("concat", axis, first);
  const other = shapes.find((s) => s.length !== first.length || s.some((d, i) => i !== n && d !== first[i]));
  if (other) fail(`concat: shapes ${fmtShape(first)} and ${fmtShape(other)} differ outside axis ${n}`);
  return first.map((d, i) => i === n ? shapes.reduce((sum, s) => sum + s[n], 0) : d);
}

/** @internal The merge of S0 with every shape in Ss, or the error for the first that differs. */
type StackT<S0 extends Shape, Ss extends readonly Shape[], M extends Shape> = Ss extends
  readonly [infer S extends Shape, ...infer R extends readonly Shape[]]
  ? number extends S["length"] ? StackT<S0, R, M>
  : Merge<M, S, -1> extends infer M2 extends Shape ? StackT<S0, R, M2>
  : `stack: shapes ${Fmt<S0>} and ${Fmt<S>} differ`
  : M;
/** Equal shapes Ss stacked along a new axis Axis, of size Ss["length"]. */
export type Stack<Ss extends readonly Shape[], Axis extends number> = Ss extends
  readonly [infer S0 extends Shape, ...infer R extends readonly Shape[]]
  ? number extends S0["length"] ? number[]
  : number extends Axis ? [number, ...Fill<S0, number>]
  : AxisIn<[0, ...S0], Axis> extends infer N extends number
    ? StackT<S0, R, S0> extends infer M extends Shape ? Insert<M, N, Ss["length"]> : StackT<S0, R, S0>
  : AxisErr<"stack", Axis, S0>
  : Ss extends readonly [] ? "stack: needs at least one tensor"
  : number[];

/** The shape of stacking equal shapes along a new axis `axis`. */
export function stackShape(shapes: readonly (readonly number[])[], axis: number): number[] {
  if (shapes.length === 0) fail("stack: needs at least one tensor");
  const first = shapes[0], n = normAxis("stack", axis, first, first.length + 1);
  const other = shapes.find((s) => s.join() !== first.join());
  if (other) fail(`stack: shapes ${fmtShape(first)} and ${fmtShape(other)} differ`);
  return [...first.slice(0, n), shapes.length, ...first.slice(n)];
}

// ---- indexing: indexSelect, gather, embedding ---------------------------------------------------------
// indexSelect sets the axis to the index count (`SetAxis`, see narrow); gather's result is its
// index's shape, of the input's rank; an embedding weight is [vocab, dim] and appends dim.

/** S with S[Axis] replaced by N, the number of indices selected. */
export type IndexSelect<S extends Shape, Axis extends number, N extends number> = SetAxis<
  S,
  NormAxis<S, Axis, "indexSelect">,
  N
>;

/** torch.gather: the index's shape I, which must have the rank of S. */
export type Gather<S extends Shape, Axis extends number, I extends Shape> =
  NormAxis<S, Axis, "gather"> extends infer A extends string ? A
    : number extends S["length"] | I["length"] ? [...I]
    : I["length"] extends S["length"] ? [...I]
    : `gather: index shape ${Fmt<I>} must have the same rank as shape ${Fmt<S>}`;

/** Checks the index of `op` (gather, scatterAdd) has the rank of `shape`; returns the normalized axis. */
export function gatherCheck(op: string, shape: Shape, axis: number, index: Shape): number {
  const n = normAxis(op, axis, shape);
  if (index.length !== shape.length) {
    fail(`${op}: index shape ${fmtShape(index)} must have the same rank as shape ${fmtShape(shape)}`);
  }
  if (index.some((k, d) => d !== n && k > shape[d])) {
    fail(`${op}: index shape ${fmtShape(index)} exceeds shape ${fmtShape(shape)} outside axis ${n}`);
  }
  return n;
}

/** Looking indices of shape I up in a [vocab, dim] weight W gives [...I, dim]. */
export type EmbeddingLookup<W extends Shape, I extends Shape> = number extends W["length"]
  ? number extends I["length"] ? number[] : [...I, number]
  : W extends readonly [unknown, infer D extends number] ? number extends I["length"] ? number[] : [...I, D]
  : `embedding: weight must be [vocab, dim], got ${Fmt<W>}`;

/** crossEntropy: targets T are the logits L without their last (class) axis, dim for dim. */
export type CrossEntropy<L extends Shape, T extends Shape> = number extends L["length"] | T["length"] ? []
  : Merge<Init<L>, T, -1> extends false ? `crossEntropy: logits ${Fmt<L>} do not match targets ${Fmt<T>}`
  : [];

/** Checks an embedding weight is [vocab, dim]. */
export function embeddingCheck(weight: readonly number[]): void {
  if (weight.length !== 2) fail(`embedding: weight must be [vocab, dim], got ${fmtShape(weight)}`);
}

// ---- nested data --------------------------------------------------------------------------------------
// The shape of nested array literals, for building tensors from data (type level only).

/** @internal */
type NestedShape<T, Acc extends number[]> = 0 extends 1 & T ? number[] // `any` data: unknown rank
  : [T] extends [never] ? Acc // [] has elements of type never
  : [T] extends [readonly unknown[]] ? NestedShape<T[number], [...Acc, T["length"]]>
  : [T] extends [ArrayLike<number>] ? [...Acc, number] // typed arrays
  : Acc;
/** The shape of nested array data: `[[1, 2], [3, 4]]` → [2, 2], `number` → [], `number[][]` → [number, number]. */
export type FromNested<T> = NestedShape<T, []>;
