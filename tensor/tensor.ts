// deno-lint-ignore-file no-explicit-any
// (`any` here is on implementation signatures behind typed overloads, and on casts to shape types the
// compiler computes but cannot relate to the runtime shape: the typed surface is the overloads.)
/**
 * The Tensor class: every op with its shape rule, its forward and its backward rule together.
 *
 * Forwards build lazy forms (lazy.ts) or call a backend primitive (backend.ts); backwards are
 * closures recorded on the tape (tape.ts) and are written with the same ops, so higher layers
 * never see either.
 */
import { arenas, contiguousStrides, isContig, numel, offsets } from "./backend.ts";
import type { BackendBuffer, ReduceOp, TypedArray, View } from "./backend.ts";
import { checkDType, checkInt, checkNonEmpty, checkShape, sameBackend, typeName } from "./check.ts";
import { CpuBuffer } from "./cpu.ts";
import * as X from "./exp.ts";
import type { DType, Exp } from "./exp.ts";
import * as L from "./lazy.ts";
import * as SH from "./shape.ts";
import type {
  Broadcast,
  Concat,
  Gather,
  Guard,
  IndexSelect,
  MatMul,
  Narrow,
  Narrowed,
  Ok,
  Permute,
  Reduce,
  Reshape,
  Reshaped,
  Shape,
  Soft,
  Split,
  Squeeze,
  Squeezed,
  Sub,
  Transpose,
  Unsqueeze,
  Where,
} from "./shape.ts";
import { isGradEnabled, runBackward, type TapeNode } from "./tape.ts";

/** Nested arrays of numbers (or booleans), as `tensor()` takes and `toArray()` gives. */
export type Nested = number | boolean | readonly Nested[];

/** A broadcasting binary op's typed call, in three overloads: the shape rule (literal dims, and
 * generic dims where every pair is identical or `number`); then, for generic dims the rule cannot
 * compare, an operand that broadcasts into this tensor (`Sub<S>`: a suffix of S, any dims 1) or this
 * tensor into the operand. `Scalar`: what may stand for the operand (`never` for and/or). */
export interface BinaryMethod<S extends Shape, Op extends string, Scalar = number> {
  /** The shape rule. */
  <B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, Op>>,
    o: Tensor<B> | Scalar,
  ): Tensor<Ok<Broadcast<S, B, Op>>>;
  /** An operand that broadcasts into this tensor; or, where the rule cannot decide (a rank-generic S), a
   * scalar or a tensor of this one's shape. */
  <O extends Sub<S>>(o: Tensor<O> | Tensor<S> | Scalar): Tensor<S>;
  /** This tensor broadcast into the operand. */
  <B extends Shape, Me extends Sub<B>>(this: Tensor<Me>, o: Tensor<B>): Tensor<B>;
}

/** A reduction's typed call: over `axis` (`Axis`: what it may be; all axes when omitted), keeping
 * size-1 axes when `keepdim`; `Extra`: further parameters (var's correction). */
export interface ReduceMethod<
  S extends Shape,
  Op extends string,
  Axis extends number | readonly number[] = number | readonly number[],
  Extra extends unknown[] = [],
> {
  <const A extends Axis | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, Op>>,
    axis?: A,
    keepdim?: K,
    ...extra: Extra
  ): Tensor<Ok<Reduce<S, A, K, Op>>>;
}

/** An n-dimensional array with a compile-time shape `S`, living on a backend. Create one with
 * `tensor`, `zeros`, `randn`…; every op returns a new tensor. */
export class Tensor<
  // Covariant by declaration, so `Tensor<[3]>` and `Tensor<[B, T]>` are `Tensor<Shape>`s (an optimizer's
  // parameter list). The compiler cannot prove it: the `this:` guards (`Guard`, `Soft`) and `backward`'s
  // and `assign`'s `Tensor<S>` parameters mention S, and deferred conditionals only relate when identical.
  // Widening S loses no runtime check: with a wider S the guards pass and the shapes are checked at run time.
  // @ts-expect-error: TS2636, the variance annotation is not provable structurally (see above).
  out S extends Shape = Shape,
> extends L.Lazy<S> {
  /** Whether gradients flow to this tensor (set on leaves with `requiresGrad_()`). */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward()`. */
  grad: Tensor<S> | null = null;
  /** @internal The op that made this tensor, on the tape (null for leaves and untracked ops). */
  node: TapeNode<Tensor<any>> | null = null;

  /** Mark this tensor as a leaf that wants gradients (in place; returns this). */
  requiresGrad_(on = true): this {
    if (on && !isFloat(this.dtype)) {
      throw new TypeError(`requiresGrad_: only floating tensors can require grad, got dtype ${this.dtype}`);
    }
    this.requiresGrad = on;
    return this;
  }

  // ---- reading -------------------------------------------------------------------------------

  /** The elements in row-major order (waits for the device). bool reads as Uint8Array. */
  data(): Promise<TypedArray> {
    if (arenas.current) { // thrown now, not as a rejection, so the recording stops here
      throw new Error(
        "compile: the step reads a value (data/item) while recording; a replay cannot branch on data: " +
          "return the tensor from the step and read it afterwards",
      );
    }
    return (async () => {
      if (pending.length) await drainChecks();
      const r = L.contiguousRead(this, "data");
      const out = await r.st.backend.read(r.st.buf, r.view.offset, this.size); // (or the whole buffer)
      return out.length === this.size ? out : out.subarray(r.view.offset, r.view.offset + this.size);
    })();
  }
  /** The single element of a one-element tensor. */
  item(): Promise<number> {
    if (this.size !== 1) {
      const msg = `item: tensor of shape ${SH.fmtShape(this.shape)} has ${this.size} elements, not 1`;
      return Promise.reject(new SH.ShapeError(msg));
    }
    return this.data().then((d) => d[0]); // data() refuses at once while compile records
  }
  /** Nested arrays of the elements. */
  async toArray(): Promise<Nested> {
    return nest(Array.from(await this.data()), this.shape);
  }
  /** A readable printout; values are shown when they are on the host (CPU backend). */
  override toString(): string {
    const head = `Tensor${SH.fmtShape(this.shape)} ${this.dtype}`;
    if (this.disposed) return `${head} (disposed)`;
    const r = L.contiguousRead(this, "toString");
    if (!(r.st.buf instanceof CpuBuffer)) return `${head} on ${r.st.backend.name}`;
    const data = r.st.buf.data.subarray(r.view.offset, r.view.offset + this.size);
    const vals = Array.from(data, (v) => +v.toFixed(4));
    return `${head}\n${JSON.stringify(nest(vals, this.shape))}`;
  }

  // ---- autograd ------------------------------------------------------------------------------

  /** Backpropagate from this tensor: leaves that require grad get `.grad` (accumulated). A
   * non-scalar output needs a seed gradient of its own shape. */
  backward(seed?: Tensor<S>): void {
    const shape = SH.fmtShape(this.shape);
    if (!seed && this.size !== 1) {
      throw new SH.ShapeError(
        `backward: output has shape ${shape}; pass a gradient of that shape or reduce to a scalar first`,
      );
    }
    const got = seed && SH.fmtShape(seed.shape);
    if (got && got !== shape) {
      throw new SH.ShapeError(`backward: gradient shape ${got} differs from output shape ${shape}`);
    }
    if (!this.requiresGrad) {
      throw new Error("backward: this tensor does not require grad (no leaf on its tape requires grad)");
    }
    seed ??= new Tensor(this.shape, { exp: X.cnst(1, this.dtype), reads: [] }); // ones, no memory until used
    runBackward<Tensor<any>>(this, seed, (t) => t.node, (a, b) => a.add(b), (t, g) => {
      if (!t.requiresGrad) return;
      const total = t.grad ? t.grad.add(g) : g.dtype === t.dtype ? g.detach() : g.cast(t.dtype);
      t.grad?.dispose();
      t.grad = L.keep(total.realize());
    });
  }
  /** Clear `.grad`. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }
  /** The same values, cut from the tape. */
  detach(): Tensor<S> {
    return new Tensor(this.shape, this.form("detach"));
  }

  // ---- memory --------------------------------------------------------------------------------

  /** A contiguous copy (or this tensor itself when it already is one). */
  contiguous(): Tensor<S> {
    const f = this.form("contiguous");
    if (L.isLoad(f) && isContig(f.reads[0].view)) return this;
    const t = unary(this, "contiguous", (x) => x, (g) => g);
    L.contiguousRead(t, "contiguous"); // realize() would keep a strided plain read as it is
    return t;
  }
  /** Replace this tensor's value with `v`'s (same shape): how optimizers update parameters. A
   * tensor that is a whole contiguous buffer is written in place (its memory stays put, which
   * compiled steps rely on); a lazy tensor made from the old value and used afterwards throws. The
   * tape is not involved. */
  assign(v: Tensor<S>): this {
    const [from, to] = [SH.fmtShape(v.shape), SH.fmtShape(this.shape)];
    if (from !== to) throw new SH.ShapeError(`assign: shape ${from} differs from ${to}`);
    const src = v.dtype === this.dtype ? v : v.cast(this.dtype), own = wholeRead(this);
    sameBackend("assign", [this, src]);
    if (!own && arenas.current && this.id < arenas.current.since) {
      throw new Error(
        `compile: assign replaced a tensor of shape ${SH.fmtShape(this.shape)} made before the step ` +
          "(it was lazy or a view, so not updated in place): realize() state before compiling",
      );
    }
    let g = src.form("assign");
    // Reads of this memory through another view (x.assign(x.T)) would race the writes: copy first.
    using copy = own && g.reads.some((r) => r.st === own.st && L.viewKey(r) !== L.viewKey(own))
      ? src.contiguous()
      : null;
    if (copy) g = copy.form("assign");
    // Otherwise into new memory, never shared with `v` (so a later in-place write cannot reach it).
    const be = src.backendOf(), into = own ? { buf: own.st.buf, view: own.view } : undefined;
    const buf = be.map(g.exp, L.srcs(g), this.shape, into);
    this.setForm(own ? L.written(this, own) : L.bufferForm(buf, this.shape, be));
    return this;
  }

  // ---- elementwise ---------------------------------------------------------------------------
  // The binary ops are typed by `BinaryMethod` and implemented from the `BINARY` table below the class.

  /** Elementwise sum (broadcasting). */
  declare add: BinaryMethod<S, "add">;
  /** Elementwise difference (broadcasting). */
  declare sub: BinaryMethod<S, "sub">;
  /** Elementwise product (broadcasting). */
  declare mul: BinaryMethod<S, "mul">;
  /** Elementwise true division (integers divide as floats). */
  declare div: BinaryMethod<S, "div">;
  /** Elementwise power; a negative base works with integer exponents. */
  declare pow: BinaryMethod<S, "pow">;
  /** Elementwise maximum; at ties the gradient is split evenly. */
  declare maximum: BinaryMethod<S, "maximum">;
  /** Elementwise minimum; at ties the gradient is split evenly. */
  declare minimum: BinaryMethod<S, "minimum">;
  /** `this < o` as bool. */
  declare lt: BinaryMethod<S, "lt">;
  /** `this <= o` as bool. */
  declare le: BinaryMethod<S, "le">;
  /** `this > o` as bool. */
  declare gt: BinaryMethod<S, "gt">;
  /** `this >= o` as bool. */
  declare ge: BinaryMethod<S, "ge">;
  /** `this == o` as bool. */
  declare eq: BinaryMethod<S, "eq">;
  /** `this != o` as bool. */
  declare ne: BinaryMethod<S, "ne">;
  /** Logical and of bool tensors. */
  declare and: BinaryMethod<S, "and", never>;
  /** Logical or of bool tensors. */
  declare or: BinaryMethod<S, "or", never>;
  /** Logical not of a bool tensor. */
  declare not: () => Tensor<S>;

  // The unary ops (`not` above too) are implemented from the `UNARY` table below the class.
  /** −x. */
  declare neg: () => Tensor<S>;
  /** eˣ. */
  declare exp: () => Tensor<S>;
  /** Natural log (NaN below 0, −∞ at 0, as IEEE). */
  declare log: () => Tensor<S>;
  /** √x. */
  declare sqrt: () => Tensor<S>;
  /** 1/√x. */
  declare rsqrt: () => Tensor<S>;
  /** |x| (gradient 0 at 0). */
  declare abs: () => Tensor<S>;
  /** tanh x. */
  declare tanh: () => Tensor<S>;
  /** 1/(1+e⁻ˣ). */
  declare sigmoid: () => Tensor<S>;
  /** max(x, 0). */
  declare relu: () => Tensor<S>;
  /** GELU, tanh approximation (GPT-2's): ½x(1 + tanh(√(2/π)(x + 0.044715x³))). */
  gelu(): Tensor<S> {
    const C = Math.sqrt(2 / Math.PI), K = 0.044715;
    const x = (isFloat(this.dtype) ? this : this.cast("f32")).detach() as Tensor<any>;
    // ½(1 + tanh u) = σ(2u): one exponential instead of tanh's, computed once and shared with the
    // backward rule (transcendentals dominate elementwise cost on the CPU); lazy when there is no
    // backward, so that what follows fuses with it.
    const u = x.mul(x).mul(x).mul(K).add(x).mul(2 * C).sigmoid();
    const s = isGradEnabled() && this.requiresGrad ? u.realize() : u;
    return record(x.mul(s), [this], (g) => {
      // d/dx x·σ(2u) = σ + x·σ(1 − σ)·2u′, u′ = C(1 + 3Kx²)
      const du = x.mul(x).mul(3 * K).add(1).mul(2 * C);
      return [g.mul(s.add(x.mul(s).mul(s.neg().add(1)).mul(du)))];
    }) as any;
  }
  /** log(1 + eˣ), computed stably as max(x, 0) + log(1 + e^−|x|). */
  declare softplus: () => Tensor<S>;
  /** log σ(x) = −softplus(−x), stable for large |x|. */
  declare logsigmoid: () => Tensor<S>;
  /** Clamp into [min, max] (either may be omitted); gradient passes inside the range. */
  clamp(min?: number, max?: number): Tensor<S> {
    return unary(this, "clamp", (x) => {
      if (min !== undefined) x = X.bin("max", x, X.cnst(min, x.dtype));
      if (max !== undefined) x = X.bin("min", x, X.cnst(max, x.dtype));
      return x;
    }, (g, x) => {
      let m = x.eq(x);
      if (min !== undefined) m = m.and(x.ge(min));
      if (max !== undefined) m = m.and(x.le(max));
      return g.mul(m.cast(g.dtype));
    });
  }
  /** Convert to another dtype (float gradients pass through, others stop). */
  cast(dtype: DType): Tensor<S> {
    if (checkDType("cast", dtype) === this.dtype) return this;
    const grad = isFloat(dtype) && isFloat(this.dtype) ? (g: Tensor<any>) => g.cast(this.dtype) : undefined;
    return unary(this, "cast", (x) => X.cast(x, dtype), grad);
  }
  /** Where `mask` is true, `value`; elsewhere this tensor's element. */
  maskedFill<M extends Shape>(
    this: Tensor<S> & Guard<Where<M, S, S>>,
    mask: Tensor<M>,
    value: number,
  ): Tensor<Ok<Where<M, S, S>>>;
  /** Where `mask` (which broadcasts into this tensor's shape) is true, `value`. */
  maskedFill<M extends Sub<S>>(mask: Tensor<M>, value: number): Tensor<S>;
  maskedFill(this: Tensor<any>, mask: Tensor<any>, value: number): any {
    return where(mask as any, value, this as any) as any;
  }

  // ---- reductions ----------------------------------------------------------------------------
  // Typed by `ReduceMethod` and implemented from the `REDUCE` table below the class.

  /** Sum over `axis` (a number, a list, or all when omitted); `keepdim` keeps size-1 axes. */
  declare sum: ReduceMethod<S, "sum">;
  /** Mean over `axis` (all when omitted). */
  declare mean: ReduceMethod<S, "mean">;
  /** Maximum over `axis`; the gradient is shared evenly among tied maxima. */
  declare max: ReduceMethod<S, "max">;
  /** Minimum over `axis`; the gradient is shared evenly among tied minima. */
  declare min: ReduceMethod<S, "min">;
  /** Index (i32) of the first maximum along one axis (or of the flattened tensor). */
  declare argmax: ReduceMethod<S, "argmax", number>;
  /** Index (i32) of the first minimum along one axis (or of the flattened tensor). */
  declare argmin: ReduceMethod<S, "argmin", number>;
  /** Variance over `axis` with Bessel's `correction` (default 1, like torch.var). */
  declare var: ReduceMethod<S, "var", number | readonly number[], [correction?: number]>;
  /** log Σ eˣ over `axis`, shifted by the maximum so it never overflows. */
  declare logsumexp: ReduceMethod<S, "logsumexp">;

  // ---- composites ----------------------------------------------------------------------------

  /** softmax along `axis` (default last), max-shifted. */
  softmax(axis = -1): Tensor<S> {
    SH.normAxis("softmax", axis, this.shape);
    const x = this.detach() as Tensor<any>;
    const e = x.sub(x.max(axis, true)).exp().realize(); // exp once, read by the sum and the division
    const y: Tensor<any> = e.div(e.sum(axis, true)).realize();
    return record(y, [this], (g) => [y.mul(g.sub(g.mul(y).sum(axis, true)))]) as any;
  }
  /** log-softmax along `axis` (default last): x − logsumexp(x). */
  logSoftmax(axis = -1): Tensor<S> {
    SH.normAxis("logSoftmax", axis, this.shape);
    const x = this.detach() as Tensor<any>;
    const y: Tensor<any> = x.sub(x.logsumexp(axis, true)).realize();
    return record(y, [this], (g) => [g.sub(y.exp().mul(g.sum(axis, true)))]) as any;
  }

  // ---- linear algebra ------------------------------------------------------------------------

  /** Matrix product with torch.matmul rules: vectors, matrices, broadcast batches. */
  matmul<B extends Shape>(this: Tensor<S> & Guard<MatMul<S, B>>, o: Tensor<B>): Tensor<Ok<MatMul<S, B>>> {
    return matmul(this as Tensor<S>, o) as any;
  }

  // ---- views and movement --------------------------------------------------------------------

  /** The same elements in a new shape (one dim may be −1); a view when strides allow. */
  reshape<const T extends readonly number[]>(
    this: Tensor<S> & Soft<Reshape<S, T>, Tensor<S>> & Guard<Reshaped<T>>,
    shape: T,
  ): Tensor<Reshaped<T>>;
  /** The same elements in a new shape with generic dims, such as `[B, T, H, D]` (no −1 among them: the
   * type keeps the shape as written); the element count is checked at run time. */
  reshape<const T extends readonly number[]>(
    this: Tensor<S> & Soft<Reshape<S, T>, Tensor<S>>,
    shape: T,
  ): Tensor<[...T]>;
  reshape(this: Tensor<any>, shape: readonly number[]): any {
    const to = SH.reshapeShape(this.shape, shape);
    return record(new Tensor(to, L.reshapeForm(this, to)), [this], (g) => [g.reshape(this.shape)]);
  }
  /** Reorder axes. */
  permute<const P extends readonly number[]>(
    this: Tensor<S> & Guard<Permute<S, P>>,
    perm: P,
  ): Tensor<Ok<Permute<S, P>>> {
    const p = SH.permuteCheck(this.shape, perm);
    const inv = p.map((_, i) => p.indexOf(i));
    const order = (dims: readonly number[]) => p.map((d) => dims[d]);
    const view = (v: View) => ({ shape: order(v.shape), strides: order(v.strides), offset: v.offset });
    const f = L.moveForm(this.form("permute"), view, (a) => X.idx(inv[a]));
    return record(new Tensor(order(this.shape), f), [this], (g) => [g.permute(inv)]) as any;
  }
  /** Swap two axes (default: the last two). */
  transpose<const D0 extends number = -2, const D1 extends number = -1>(
    this: Tensor<S> & Guard<Transpose<S, D0, D1>>,
    d0?: D0,
    d1?: D1,
  ): Tensor<Ok<Transpose<S, D0, D1>>> {
    const [a, b] = [d0 ?? -2, d1 ?? -1].map((d) => SH.normAxis("transpose", d, this.shape));
    return (this.permute as any)(this.shape.map((_, i) => (i === a ? b : i === b ? a : i)));
  }
  /** Broadcast to a larger shape without copying (stride 0 on broadcast axes). */
  expand<const T extends readonly number[]>(
    this: Tensor<S> & Guard<Broadcast<S, T, "expand">>,
    shape: T,
  ): Tensor<Ok<Broadcast<S, T, "expand">>>;
  /** Broadcast to a larger shape without copying (stride 0 on broadcast axes). */
  expand<const T extends readonly number[], Me extends Sub<T>>(this: Tensor<Me>, shape: T): Tensor<[...T]>;
  expand(this: Tensor<any>, shape: readonly number[]): any {
    const to = SH.broadcastShapes("expand", this.shape, checkShape("expand", shape));
    if (to.join() !== shape.join()) {
      SH.fail(`expand: shapes ${SH.fmtShape(this.shape)} and ${SH.fmtShape(shape)} cannot broadcast`);
    }
    if (to.join() === this.shape.join()) return this;
    return record(new Tensor(to, L.expandForm(this, to)), [this], (g) => [sumTo(g, this.shape)]);
  }
  /** Insert a size-1 axis. */
  unsqueeze<const D extends number>(
    this: Tensor<S> & Guard<Unsqueeze<S, D>>,
    axis: D,
  ): Tensor<Ok<Unsqueeze<S, D>>> {
    const a = SH.unsqueezeAxis(this.shape, axis);
    return (this as Tensor<any>).reshape([...this.shape.slice(0, a), 1, ...this.shape.slice(a)]) as any;
  }
  /** Remove a size-1 axis (or all of them). */
  squeeze<const D extends number | undefined = undefined>(
    this: Tensor<S> & Soft<Squeeze<S, D>, Tensor<S>>,
    axis?: D,
  ): Tensor<Squeezed<S, D>> {
    return (this as Tensor<any>).reshape(SH.squeezeShape(this.shape, axis)) as any;
  }
  /** `length` elements of `axis` starting at `start` (negative counts from the end); a view. */
  narrow<const A extends number, const L extends number>(
    this: Tensor<S> & Soft<Narrow<S, A, L>, Tensor<S>>,
    axis: A,
    start: number,
    length: L,
  ): Tensor<Narrowed<S, A, L>> {
    const a = SH.narrowCheck(this.shape, axis, start, length);
    const s = start < 0 ? start + this.shape[a] : start;
    const to = this.shape.map((n, d) => (d === a ? length : n));
    const view = (v: View) => ({ shape: to, strides: v.strides, offset: v.offset + s * v.strides[a] });
    const idx = (d: number) => (d === a ? X.bin("add", X.idx(d), X.cnst(s, "i32")) : X.idx(d));
    const f = L.moveForm(this.form("narrow"), view, idx);
    return record(new Tensor(to, f), [this], (g) => [padInto(g, this.shape, a, s)]) as any;
  }
  /** Elements `start` (inclusive) to `end` (exclusive, default the end) of `axis`; a view. */
  slice<const A extends number>(axis: A, start: number, end?: number): Tensor<Split<S, A>> {
    const a = SH.normAxis("slice", axis, this.shape), n = this.shape[a];
    const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
    const e = Math.min(Math.max(end === undefined ? n : end < 0 ? end + n : end, s), n);
    return (this as Tensor<any>).narrow(a, s, e - s) as any;
  }
  /** Pieces of `axis` of the given sizes (or equal pieces of size `size`). */
  split<const A extends number = 0>(size: number | number[], axis: A = 0 as A): Tensor<Split<S, A>>[] {
    const a = SH.normAxis("split", axis, this.shape), n = this.shape[a];
    if (typeof size === "number") checkInt("split: size", size);
    const sizes = typeof size === "number"
      ? Array.from({ length: Math.ceil(n / size) }, (_, i) => Math.min(size, n - i * size))
      : size;
    if (sizes.reduce((p, q) => p + q, 0) !== n) {
      throw new SH.ShapeError(
        `split: sizes [${sizes.join(", ")}] do not add up to ${n} (axis ${a} of ${SH.fmtShape(this.shape)})`,
      );
    }
    let at = 0;
    return sizes.map((k) => (this as Tensor<any>).narrow(a, (at += k) - k, k)) as any;
  }
  /** `chunks` nearly equal pieces along `axis`. */
  chunk<const A extends number = 0>(chunks: number, axis: A = 0 as A): Tensor<Split<S, A>>[] {
    checkInt("chunk: chunks", chunks);
    return this.split(Math.ceil(this.shape[SH.normAxis("chunk", axis, this.shape)] / chunks), axis);
  }
  /** torch.gather: out[i] = this[i with i[axis] := index[i]]. */
  gather<const A extends number, I extends Shape>(
    this: Tensor<S> & Guard<Gather<S, A, I>>,
    axis: A,
    index: Tensor<I>,
  ): Tensor<Ok<Gather<S, A, I>>> {
    const x = this as Tensor<S>;
    const a = SH.gatherCheck("gather", x.shape, axis, index.shape);
    sameBackend("gather", [x, index]);
    checkIndex("gather", index, x.shape[a]);
    const buf = x.backendOf().gather(L.realRead(x, "gather"), L.realRead(index, "gather"), a);
    return record(fromBuffer(index.shape, buf, x), [x], (g) => [scatterAdd(index, g, a, x.shape)]) as any;
  }
  /** Rows (or other slices along `axis`) picked by a 1-D i32 index. */
  indexSelect<const A extends number, N extends number>(
    this: Tensor<S> & Guard<IndexSelect<S, A, N>>,
    axis: A,
    index: Tensor<[N]>,
  ): Tensor<Ok<IndexSelect<S, A, N>>> {
    const a = SH.normAxis("indexSelect", axis, this.shape);
    if (index.rank !== 1) {
      throw new SH.ShapeError(`indexSelect: index must be 1-D, got ${SH.fmtShape(index.shape)}`);
    }
    checkIndex("indexSelect", index, this.shape[a]);
    const to = this.shape.map((n, d) => (d === a ? index.size : n));
    // Realized first: an expanded lazy index would be materialized [N, …] wide, losing the broadcast
    // that lets scatterAdd (the backward) sort N entries instead of scanning them per output.
    const idx = index.realize().reshape(to.map((n: number, d: number) => (d === a ? n : 1))).expand(to);
    return (this as Tensor<any>).gather(a, idx) as any;
  }
  /** `this` plus `src` added at `index` along `axis` (torch.scatter_add). */
  scatterAdd<I extends Shape>(axis: number, index: Tensor<I>, src: Tensor<I>): Tensor<S> {
    const a = SH.gatherCheck("scatterAdd", this.shape, axis, index.shape);
    const [is, ss] = [SH.fmtShape(index.shape), SH.fmtShape(src.shape)];
    if (is !== ss) throw new SH.ShapeError(`scatterAdd: index shape ${is} and src shape ${ss} differ`);
    checkIndex("scatterAdd", index, this.shape[a]);
    const out = (this.detach() as Tensor<any>).add(scatterAdd(index, src.detach(), a, this.shape));
    return record<any>(out, [this, src], (g) => [g, g.gather(a, index as Tensor<any>)]);
  }
}

// ---------------------------------------------------------------------------------------------
// The binary ops: IR op, backward rule (float results only), whether the result is always float

const BINARY: Record<string, BinaryRow> = {
  add: ["add", (g) => [g, g]],
  sub: ["sub", (g) => [g, g.neg()]],
  mul: ["mul", (g, a, b) => [g.mul(b), g.mul(a)]],
  div: ["div", (g, a, b) => [g.div(b), g.mul(a).div(b.mul(b)).neg()], true],
  pow: ["pow", (g, a, b, out) => [
    g.mul(b).mul(a.pow(b.sub(1))),
    // d/db a^b = a^b·ln a; defined as 0 where a = 0 so x^y at x=0 has no NaN gradient.
    g.mul(out).mul(where(a.eq(0), 0, a.abs().log())),
  ], true],
  maximum: ["max", (g, a, b) => pick(g, a, b)],
  minimum: ["min", (g, a, b) => pick(g, b, a)],
};
// Comparisons and logic: bool results, no gradient.
for (const op of ["lt", "le", "gt", "ge", "eq", "ne", "and", "or"] as const) BINARY[op] = [op];

// The unary ops: IR expression, backward rule (given g, x and the output), whether the result is
// always float.
const UNARY: Record<string, [(x: Exp) => Exp, UnaryGrad?, boolean?]> = {
  not: [(x) => X.un("not", X.cast(x, "bool"))],
  neg: [(x) => X.un("neg", x), (g) => g.neg()],
  exp: [(x) => X.un("exp", x), (g, _x, y) => g.mul(y), true],
  log: [(x) => X.un("log", x), (g, x) => g.div(x), true],
  sqrt: [(x) => X.un("sqrt", x), (g, _x, y) => g.div(y.mul(2)), true],
  rsqrt: [(x) => X.un("rsqrt", x), (g, x, y) => g.mul(y).div(x).mul(-0.5), true],
  abs: [(x) => X.un("abs", x), (g, x) => g.mul(x.gt(0).cast(g.dtype).sub(x.lt(0).cast(g.dtype)))],
  tanh: [(x) => X.un("tanh", x), (g, _x, y) => g.mul(y.mul(y).neg().add(1)), true],
  sigmoid: [(x) => X.un("sigmoid", x), (g, _x, y) => g.mul(y).mul(y.neg().add(1)), true],
  relu: [(x) => X.un("relu", x), (g, x) => g.mul(x.gt(0).cast(g.dtype))],
  softplus: [softplusExp, (g, x) => g.mul(x.sigmoid()), true],
  logsigmoid: [(x) => X.un("neg", softplusExp(X.un("neg", x))), (g, x) => g.mul(x.neg().sigmoid()), true],
};

// The reductions, each as a function of the tensor and the method's arguments.
const REDUCE: Record<string, (x: Tensor<any>, axis: any, keepdim?: boolean, correction?: number) => any> = {
  sum: (x, axis, keepdim) => reduce(x, "sum", axis, keepdim, (g) => g.expand(x.shape)),
  mean: (x, axis, keepdim) => {
    const n = count(x, "mean", axis); // first, so a bad axis is reported by mean
    return x.sum(axis, keepdim).div(n);
  },
  var: (x, axis, keepdim, correction = 1) => {
    const n = count(x, "var", axis);
    const d = x.sub(x.mean(axis, true));
    return d.mul(d).sum(axis, keepdim).div(Math.max(n - correction, 0));
  },
  logsumexp: (x, axis, keepdim) => {
    const axes = SH.reduceAxes("logsumexp", x.shape, axis);
    const m0 = x.detach().max(axis, true);
    const m = where(m0.abs().lt(Infinity), m0, 0); // an all −∞ row stays −∞, not NaN
    const out = x.sub(m).exp().sum(axis, true).log().add(m);
    return keepdim ? out : out.reshape(dropAxes(x.shape, axes));
  },
};
for (const op of ["max", "min"] as const) REDUCE[op] = (x, axis, keepdim) => extremum(x, op, axis, keepdim);
// argmax/argmin over all axes index the flattened tensor.
for (const op of ["argmax", "argmin"] as const) {
  REDUCE[op] = (x, axis, keepdim) => reduce(axis === undefined ? x.reshape([-1]) : x, op, axis ?? 0, keepdim);
}

/** A method written as a function of the tensor it is called on. */
type MethodFn = (x: Tensor<any>, ...args: any[]) => any;
/** Make each row of an op table a method of Tensor; `method` gives the row's as a `MethodFn`. */
function install<R>(table: Record<string, R>, method: (name: string, row: R) => MethodFn) {
  for (const [name, row] of Object.entries(table)) {
    const fn = method(name, row);
    const value = function (this: Tensor<any>, ...args: any[]) {
      return fn(this, ...args);
    };
    Object.defineProperty(Tensor.prototype, name, { value, writable: true, configurable: true });
  }
}
install(BINARY, (name, row) => (x, o) => binary(x, o, name, row));
install(UNARY, (name, [fn, grad, float]) => (x) => unary(x, name, fn, grad, float));
install(REDUCE, (_, fn) => fn);

// ---------------------------------------------------------------------------------------------
// Op machinery

/** @internal Put `out` on the tape with `inputs` and a backward rule (when any input wants gradients). */
export function record<T extends Tensor<any>>(
  out: T,
  inputs: Tensor<any>[],
  backward: (g: Tensor<any>) => (Tensor<any> | null)[],
): T {
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { inputs, backward: (g) => backward(g).map((x, k) => (inputs[k].requiresGrad ? x : null)) };
  }
  return out;
}

function constTensor(v: number, like: DType): Tensor<[]> {
  const dtype = isFloat(like) ? like : !Number.isInteger(v) ? "f32" : like === "bool" ? "i32" : like;
  return new Tensor([], { exp: X.cnst(v, dtype), reads: [] });
}

const isFloat = (d: DType) => d === "f32" || d === "f64";
function promote(a: DType, b: DType): DType {
  if (a === b) return a === "bool" ? "i32" : a;
  if (a === "f64" || b === "f64") return "f64";
  return a === "f32" || b === "f32" ? "f32" : "i32";
}

type Grads = (g: Tensor<any>, a: Tensor<any>, b: Tensor<any>, out: Tensor<any>) => Tensor<any>[];
type BinaryRow = [X.BinaryOp, Grads?, boolean?];

function binary(a: Tensor<any>, o: Tensor<any> | number, op: string, [bop, grads, float]: BinaryRow): any {
  if (typeof o !== "number" && !(o instanceof Tensor)) {
    throw new TypeError(`${op}: operand must be a tensor or a number, got ${typeName(o)}`);
  }
  const b = typeof o === "number" ? constTensor(o, a.dtype) : o;
  const to = SH.broadcastShapes(op, a.shape, b.shape);
  let dt = promote(a.dtype, b.dtype);
  if (float && !isFloat(dt)) dt = "f32";
  if (op === "and" || op === "or") dt = "bool";
  const out = new Tensor(to, L.fuse([a, b], to, ([x, y]) => X.bin(bop, X.cast(x, dt), X.cast(y, dt)), op));
  if (!grads || !isFloat(out.dtype)) return out;
  // Only inputs that want a gradient get one: summing a broadcast scalar's (x.mul(2)) costs a reduction.
  const ins = [a, b];
  const sum = (gi: Tensor<any>, k: number) => (ins[k].requiresGrad ? sumTo(gi, ins[k].shape) : null);
  return record(out, ins, (g) => grads(g, a, b, out).map(sum));
}

type UnaryGrad = (g: Tensor<any>, x: Tensor<any>, out: Tensor<any>) => Tensor<any>;

function unary(x: Tensor<any>, op: string, fn: (x: Exp) => Exp, grad?: UnaryGrad, float = false): any {
  const dt = float && !isFloat(x.dtype) ? "f32" : x.dtype;
  const out = new Tensor(x.shape, L.fuse([x], x.shape as number[], ([e]) => fn(X.cast(e, dt)), op));
  return grad ? record(out, [x], (g) => [grad(g, x, out)]) : out;
}

/** Gradient routing for maximum/minimum: to the winner, split at ties. */
function pick(g: Tensor<any>, win: Tensor<any>, lose: Tensor<any>): Tensor<any>[] {
  const w = win.gt(lose).cast(g.dtype).add(win.eq(lose).cast(g.dtype).mul(0.5));
  return [g.mul(w), g.mul(w.neg().add(1))];
}

function softplusExp(x: Exp): Exp {
  const c = (v: number) => X.cnst(v, x.dtype);
  const tail = X.un("log", X.bin("add", c(1), X.un("exp", X.un("neg", X.un("abs", x)))));
  return X.bin("add", X.bin("max", x, c(0)), tail);
}

/** How many elements a reduction over `axis` combines into each output. */
const count = (x: Tensor<any>, op: string, axis: number | readonly number[] | undefined) =>
  SH.reduceAxes(op, x.shape, axis).reduce((p, d) => p * x.shape[d], 1);

const dropAxes = (shape: readonly number[], axes: number[]) => shape.filter((_, d) => !axes.includes(d));

/** Sum a broadcast gradient back down to `shape`. */
export function sumTo(g: Tensor<any>, shape: readonly number[]): Tensor<any> {
  if (g.shape.join() === shape.join()) return g;
  const pad = g.rank - shape.length;
  const axes = [...g.shape.keys()].filter((d) => d < pad || (shape[d - pad] === 1 && g.shape[d] !== 1));
  return g.sum(axes, true).reshape(shape);
}

/** A tensor over a fresh contiguous buffer, on `like`'s backend. */
export function fromBuffer<S extends Shape>(shape: S, buf: BackendBuffer, like: Tensor<any>): Tensor<S> {
  return new Tensor(shape, L.bufferForm(buf, shape, like.backendOf()));
}

function reduce(
  x: Tensor<any>,
  op: ReduceOp,
  axis: number | readonly number[] | undefined,
  keepdim: boolean | undefined,
  grad?: (g: Tensor<any>) => Tensor<any>,
): any {
  if (op === "sum" && x.dtype === "bool") x = x.cast("i32"); // counting, like torch
  const axes = SH.reduceAxes(op, x.shape, axis);
  if (op !== "sum") checkNonEmpty(op, x.shape, axes);
  const f = x.form(op);
  const buf = x.backendOf().reduce(op, f.exp, L.srcs(f), x.shape, axes);
  const kept = x.shape.map((n: number, d: number) => (axes.includes(d) ? 1 : n));
  const out = fromBuffer(kept, buf, x);
  const res = keepdim ? out : out.reshape(dropAxes(x.shape, axes) as any);
  return grad ? record(res, [x], (g) => [grad(g.reshape(kept))]) : res;
}

function extremum(x: Tensor<any>, op: "max" | "min", axis: any, keepdim: any): any {
  return reduce(x, op, axis, keepdim, (g) => {
    // Compare stored values with the stored extremum: a lazy x recomputed in higher precision
    // would equal nothing.
    const xr = x.detach().realize();
    const m = reduce(xr, op, axis, true);
    const hit = xr.eq(m).cast(g.dtype);
    return g.mul(hit).div(hit.sum(axis, true));
  });
}

function matmul(a: Tensor<any>, b: Tensor<any>): Tensor<any> {
  const out = SH.matmulShape(a.shape, b.shape);
  sameBackend("matmul", [a, b]);
  // [..., K] @ [K, N] is one big matmul over the flattened rows (its weight gradient then needs no
  // sum over a broadcast batch).
  if (b.rank === 2 && a.rank > 2) return matmul(a.reshape([-1, a.shape.at(-1)] as number[]), b).reshape(out);
  // Vectors become matrices, batches broadcast through zero strides.
  const A = a.rank === 1 ? a.unsqueeze(0) : a, B = b.rank === 1 ? b.unsqueeze(-1) : b;
  const batch = SH.broadcastShapes("matmul", A.shape.slice(0, -2), B.shape.slice(0, -2));
  const Ae = A.expand([...batch, ...A.shape.slice(-2)]), Be = B.expand([...batch, ...B.shape.slice(-2)]);
  const dt = promote(a.dtype, b.dtype);
  const ra = L.realRead(isFloat(Ae.dtype) ? Ae : Ae.cast(dt), "matmul");
  const rb = L.realRead(Be.dtype === dt ? Be : Be.cast(dt), "matmul");
  const buf = a.backendOf().matmul(ra, rb);
  const full = fromBuffer([...batch, A.shape[A.rank - 2], B.shape[B.rank - 1]], buf, a);
  return record(full.reshape(out), [a, b], (g) => {
    const G = g.reshape(full.shape);
    return [
      a.requiresGrad ? sumTo(G.matmul(Be.transpose(-1, -2)), A.shape).reshape(a.shape) : null,
      b.requiresGrad ? sumTo(Ae.transpose(-1, -2).matmul(G), B.shape).reshape(b.shape) : null,
    ];
  });
}

/** Zeros of `shape` with `g` written at `start` along `axis` (narrow's gradient, concat's body). */
function padInto(g: Tensor<any>, shape: readonly number[], axis: number, start: number): Tensor<any> {
  const buf = g.backendOf().map(X.cnst(0, g.dtype), [], shape);
  writeRegion(buf, shape, g, axis, start);
  return fromBuffer(shape, buf, g);
}

function writeRegion(buf: BackendBuffer, shape: Shape, t: Tensor<any>, axis: number, start: number) {
  if (t.size === 0) return;
  const f = t.form("concat");
  const strides = contiguousStrides(shape);
  const view = { shape: t.shape, strides, offset: start * strides[axis] };
  t.backendOf().map(f.exp, L.srcs(f), t.shape, { buf, view });
}

function scatterAdd(index: Tensor<any>, src: Tensor<any>, axis: number, shape: readonly number[]) {
  sameBackend("scatterAdd", [index, src]);
  const [ri, rs] = [L.realRead(index, "scatterAdd"), L.realRead(src, "scatterAdd")];
  return fromBuffer(shape as number[], src.backendOf().scatterAdd(ri, rs, axis, shape), src);
}

// Indices are checked on the host: on the CPU the buffer is the host copy, device uploads keep one
// (create.ts). Indices computed on a device get a small check kernel now, read with the next value
// read back (`data`), which throws naming the op.
const pending: { op: string; n: number; range: Tensor<[2]> }[] = [];
export function checkIndex(op: string, index: Tensor<any>, n: number, ignore?: number) {
  if (index.dtype !== "i32") throw new TypeError(`${op}: index must be i32, got ${index.dtype}`);
  let f = index.form(op);
  if (!L.isLoad(f) && index.backendOf().name === "cpu") f = L.realizeForm(index, op);
  const r = L.isLoad(f) ? f.reads[0] : null;
  const host = r && (r.st.buf instanceof CpuBuffer ? r.st.buf.data : L.hostCopy.get(r.st.buf));
  if (!host) {
    let ok = index.ge(0).and(index.lt(n));
    if (ignore !== undefined) ok = ok.or(index.eq(ignore));
    const bad = where(ok, 0, index), range = concat([bad.min().reshape([1]), bad.max().reshape([1])]);
    return void pending.push({ op, n, range: L.keep(range.realize()) });
  }
  const v = Array.from(offsets(r!.view), (o) => host[o]).find((v) => (v < 0 || v >= n) && v !== ignore);
  if (v !== undefined) throw new RangeError(`${op}: index ${v} is out of range for size ${n}`);
}

/** Read the pending device index checks; throw for the first that failed. */
async function drainChecks(): Promise<void> {
  const list = pending.splice(0);
  const ranges = await Promise.all(list.map((p) => p.range.data().finally(() => p.range.dispose())));
  const k = ranges.findIndex(([lo, hi], i) => lo < 0 || hi >= list[i].n), [lo, hi] = ranges[k] ?? [];
  if (k < 0) return;
  const { op, n } = list[k];
  throw new RangeError(
    `${op}: index ${lo < 0 ? lo : hi} (computed on the device) is out of range for size ${n}`,
  );
}

function nest(vals: number[], shape: readonly number[]): Nested {
  if (shape.length === 0) return vals[0];
  const step = vals.length / shape[0] || 0;
  const row = (i: number) => nest(vals.slice(i * step, (i + 1) * step), shape.slice(1));
  return Array.from({ length: shape[0] }, (_, i) => row(i));
}

// ---------------------------------------------------------------------------------------------
// Functions

/** `t`'s read when it is a whole contiguous buffer, which `assign` writes in place; else null. */
function wholeRead(t: Tensor<any>): L.Read | null {
  const f = t.form("assign"), r = f.reads[0];
  return L.isLoad(f) && isContig(r.view) && r.view.offset === 0 && r.st.buf.size === t.size ? r : null;
}

/** `t.assign(v)` for each `[t, v]` in order, in one launch on a backend with `mapMany` when that
 * gives the same result: every `t` is a distinct whole buffer (written in place) of one shape, and
 * a value reads a `t`'s memory only through `t`'s own view (elementwise, so read before written)
 * and only for a `t` at or after its own pair (the order would not have written it yet). */
export function assignAll(pairs: [Tensor<any>, Tensor<any>][]): void {
  const own = pairs.map(([t]) => wholeRead(t)), be = own[0]?.st.backend;
  const forms = pairs.map(([, v]) => v.form("assignAll"));
  const safe = (r: L.Read, i: number, j = own.findIndex((o) => o?.st === r.st)) =>
    r.st.backend === be && r.version === r.st.version &&
    (j < 0 || (j >= i && L.viewKey(r) === L.viewKey(own[j]!)));
  const fused = pairs.length > 1 && new Set(own.map((o) => o?.st)).size === pairs.length &&
    new Set(pairs.flat().map((t) => `${t.shape}`)).size === 1 &&
    forms.every((f, i) => own[i]?.st.backend === be && f.reads.every((r) => safe(r, i)));
  if (!fused || !be?.mapMany) return pairs.forEach(([t, v]) => t.assign(v));
  // One list of reads: each value's loads move past the reads of the values before it.
  const reads: L.Read[] = [];
  const exps = forms.map((f, i) => {
    const base = reads.push(...f.reads) - f.reads.length;
    const e = X.mapLeaves(f.exp, (l) => (l.op === "load" ? X.load(base + l.i, l.dtype) : l));
    return X.cast(e, pairs[i][0].dtype); // as `assign` casts
  });
  const into = own.map((o) => ({ buf: o!.st.buf, view: o!.view }));
  be.mapMany(exps, L.srcs({ reads }), pairs[0][0].shape, into);
  pairs.forEach(([t], i) => t.setForm(L.written(t, own[i]!)));
}

/** `cond ? a : b` elementwise, broadcasting all three. */
export function where<C extends Shape, A extends Shape = [], B extends Shape = []>(
  cond: Tensor<C> & Guard<Where<C, A, B>>,
  a: Tensor<A> | number,
  b: Tensor<B> | number,
): Tensor<Ok<Where<C, A, B>>> {
  const c = cond as Tensor<C>;
  // Two tensors promote; one sets the dtype; two numbers are f32.
  const dtypes = [a, b].flatMap((v) => (typeof v === "number" ? [] : [v.dtype]));
  let dt = dtypes.length ? dtypes.reduce(promote) : "f32";
  // A fractional scalar beside an integer tensor makes the result float, as in torch.
  if ([a, b].some((v) => typeof v === "number" && !Number.isInteger(v)) && !isFloat(dt)) dt = "f32";
  const [ta, tb] = [a, b].map((v) => (typeof v === "number" ? constTensor(v, dt) : v));
  const to = SH.broadcastShapes("where", SH.broadcastShapes("where", c.shape, ta.shape), tb.shape);
  const body = ([x, y, z]: Exp[]) => X.where(X.cast(x, "bool"), X.cast(y, dt), X.cast(z, dt));
  const out = new Tensor(to, L.fuse([c, ta, tb], to, body, "where"));
  if (!isFloat(dt)) return out as any;
  return record(out, [ta, tb], (g) => {
    const m = (c as Tensor<any>).cast(g.dtype);
    return [
      ta.requiresGrad ? sumTo(g.mul(m), ta.shape) : null,
      tb.requiresGrad ? sumTo(g.mul(m.neg().add(1)), tb.shape) : null,
    ];
  }) as any;
}

/** Join tensors along an existing axis. */
export function concat<const T extends readonly Tensor<any>[], const A extends number = 0>(
  // The guard makes a mismatch a compile error here: the result, Tensor<never>, fits anywhere (Tensor is covariant).
  tensors: T & NoInfer<Guard<Concat<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>>,
  axis: A = 0 as A,
): Tensor<Ok<Concat<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>> {
  const shape = SH.concatShape(tensors.map((t) => t.shape), axis);
  const a = SH.normAxis("concat", axis, tensors[0].shape);
  sameBackend("concat", tensors);
  const dt = tensors.map((t) => t.dtype).reduce(promote);
  const buf = tensors[0].backendOf().alloc(numel(shape), dt);
  let at = 0;
  for (const t of tensors) {
    writeRegion(buf, shape, t.dtype === dt ? t : t.cast(dt), a, at);
    at += t.shape[a];
  }
  const sizes = tensors.map((t) => t.shape[a]);
  return record(fromBuffer(shape, buf, tensors[0]), [...tensors], (g) => g.split(sizes, a)) as any;
}
