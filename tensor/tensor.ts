/**
 * Tensor: typed shape, lazy elementwise form, memory ownership, and every op with its backward
 * rule beside its forward.
 *
 * A tensor's value is a *form*: an expression (exp.ts) over strided reads of buffers. A realized
 * tensor is the trivial form `load 0`. Elementwise ops only build bigger forms, views transform
 * the reads, and the first op that needs memory (a reduction, matmul, gather, read) runs the whole
 * chain as one kernel. That is all the fusion there is.
 */
import {
  type Backend,
  contiguousStrides,
  envVar,
  numel,
  type ReduceOp,
  type TypedArray,
  type View,
} from "./backend.ts";
import { CpuBackend, CpuBuffer, offsets } from "./cpu.ts";
import * as X from "./exp.ts";
import type { DType, Exp } from "./exp.ts";
import * as SH from "./shape.ts";
import type {
  Broadcast,
  Concat,
  EmbeddingLookup,
  FromNested,
  Gather,
  Guard,
  IndexSelect,
  MatMul,
  Narrow,
  Ok,
  Permute,
  Reduce,
  Reshape,
  Shape,
  Squeeze,
  Stack,
  Transpose,
  Unsqueeze,
  Where,
} from "./shape.ts";
import { isGradEnabled, runBackward, type TapeNode } from "./tape.ts";

export type { DType, Shape };

// ---------------------------------------------------------------------------------------------
// Backends and storage

let backend: Backend = new CpuBackend();
const backends = new Map<string, Backend>([["cpu", backend]]);

/** The backend new tensors are created on. */
export function getBackend(): Backend {
  return backend;
}

/** Choose the backend for new tensors: "cpu", "webgpu", or "auto" — WebGPU on a hardware adapter,
 * else the CPU with a one-line notice (a software adapter such as llvmpipe runs this library's
 * workloads slower than the CPU backend's SIMD kernels). With no argument, reads env
 * `TENSOR_BACKEND` (default cpu). */
export async function setBackend(name?: "cpu" | "webgpu" | "auto"): Promise<Backend> {
  name ??= (envVar("TENSOR_BACKEND") as "cpu" | "webgpu" | "auto" | undefined) ?? "cpu";
  if (!["cpu", "webgpu", "auto"].includes(name)) {
    throw new Error(`setBackend: unknown backend "${name}" (expected cpu, webgpu or auto)`);
  }
  if (name !== "cpu" && !backends.has("webgpu")) {
    try {
      const { WebGpuBackend } = await import("./webgpu/backend.ts");
      backends.set("webgpu", await WebGpuBackend.create());
    } catch (e) {
      if (name === "webgpu") throw e;
      console.error(`setBackend: no WebGPU (${(e as Error).message}); using cpu`);
    }
  }
  const gpu = backends.get("webgpu") as (Backend & { software?: boolean }) | undefined;
  if (name === "auto" && gpu?.software) {
    console.error(`setBackend: ${gpu.info} is a software adapter; using cpu`);
  }
  backend = backends.get(name === "auto" ? (gpu && !gpu.software ? "webgpu" : "cpu") : name)!;
  return backend;
}

/** A backend buffer with a reference count: forms share storages, the last release frees. */
class Storage {
  refs = 0;
  constructor(readonly buf: import("./backend.ts").BackendBuffer, readonly backend: Backend) {
    stats.liveBytes += this.bytes;
    stats.liveBuffers++;
    finalizer.register(this, { buf, backend, bytes: this.bytes }, this);
  }
  get bytes(): number {
    return this.buf.size * (this.buf.dtype === "f64" ? 8 : 4);
  }
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs > 0) return;
    finalizer.unregister(this);
    stats.liveBytes -= this.bytes;
    stats.liveBuffers--;
    this.backend.free(this.buf);
  }
}

const stats = { liveBytes: 0, liveBuffers: 0, liveTensors: 0 };
// A safety net for tensors dropped without dispose(): their buffers go back when collected.
const finalizer = new FinalizationRegistry<
  { buf: import("./backend.ts").BackendBuffer; backend: Backend; bytes: number }
>(
  (h) => {
    stats.liveBytes -= h.bytes;
    stats.liveBuffers--;
    h.backend.free(h.buf);
  },
);

// Tensors collected without dispose() stop counting as live.
const tensorFinalizer = new FinalizationRegistry<null>(() => stats.liveTensors--);

/** Memory in use: bytes and buffers held by live tensors, bytes pooled by the backend, and the
 * number of live (undisposed) tensors. */
export function memoryStats(): {
  liveBytes: number;
  liveBuffers: number;
  pooledBytes: number;
  liveTensors: number;
} {
  return { ...stats, pooledBytes: backend.pooledBytes() };
}

/** Submit queued device work (a training step's end). */
export function flush(): Promise<void> {
  return backend.flush();
}

// ---------------------------------------------------------------------------------------------
// Forms

interface Read {
  st: Storage;
  view: View;
}
interface Form {
  exp: Exp;
  reads: Read[];
}

const isLoad = (f: Form) => f.exp.op === "load";
const isContig = (v: View) => {
  const s = contiguousStrides(v.shape);
  return v.shape.every((n, d) => n === 1 || s[d] === v.strides[d]);
};
const hasIdx = (e: Exp): boolean => {
  let found = false;
  X.mapLeaves(e, (l) => ((found ||= l.op === "idx"), l));
  return found;
};

/** Apply a movement to a form: `view` maps each read's view, `axis` maps an `idx` leaf. */
function moveForm(f: Form, view: (v: View) => View, axis: (a: number) => Exp): Form {
  const exp = hasIdx(f.exp) ? X.mapLeaves(f.exp, (l) => (l.op === "idx" ? axis(l.axis) : l)) : f.exp;
  return { exp, reads: f.reads.map((r) => ({ st: r.st, view: view(r.view) })) };
}

/** A view's strides for a new shape without copying (torch's rule), or null when impossible. */
function reshapeView(v: View, shape: number[]): View | null {
  if (numel(v.shape) === 0 || v.shape.length === 0) {
    return { shape, strides: contiguousStrides(shape), offset: v.offset };
  }
  const strides = new Array<number>(shape.length);
  let vi = shape.length - 1, base = v.strides[v.shape.length - 1], tn = 1, vn = 1;
  for (let ti = v.shape.length - 1; ti >= 0; ti--) {
    tn *= v.shape[ti];
    if (ti === 0 || (v.shape[ti - 1] !== 1 && v.strides[ti - 1] !== tn * base)) {
      while (vi >= 0 && (vn < tn || shape[vi] === 1)) {
        strides[vi] = vn * base;
        vn *= shape[vi--];
      }
      if (vn !== tn) return null;
      if (ti > 0) [base, tn, vn] = [v.strides[ti - 1], 1, 1];
    }
  }
  return vi === -1 ? { shape, strides, offset: v.offset } : null;
}

// Fusion stops here: bigger operands are realized before they join a new expression.
const MAX_READS = 4, MAX_NODES = 40;

// ---------------------------------------------------------------------------------------------
// The Tensor class

/** Nested arrays of numbers (or booleans), as `tensor()` takes and `toArray()` gives. */
export type Nested = number | boolean | readonly Nested[];
let construct: <S extends Shape>(shape: S, form: Form, dtype?: DType) => Tensor<S>;
let formOf: (t: Tensor<any>, op: string) => Form;
let setForm: (t: Tensor<any>, f: Form) => void;
let nodeOf: (t: Tensor<any>) => TapeNode<Tensor<any>> | null;
let setNode: (t: Tensor<any>, n: TapeNode<Tensor<any>>) => void;
const scopes: Set<Tensor<any>>[] = [];

/** An n-dimensional array with a compile-time shape `S`, living on a backend. Create one with
 * `tensor`, `zeros`, `randn`…; every op returns a new tensor. */
export class Tensor<S extends Shape = Shape> {
  /** The shape (a typed tuple). */
  readonly shape: S;
  /** Element type. */
  readonly dtype: DType;
  /** Whether gradients flow to this tensor (set on leaves with `requiresGrad_()`). */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward()`. */
  grad: Tensor<S> | null = null;
  #form: Form | null;
  #node: TapeNode<Tensor<any>> | null = null;

  static {
    construct = <S extends Shape>(shape: S, form: Form, dtype?: DType) => new Tensor<S>(shape, form, dtype);
    formOf = (t, op) => {
      if (!t.#form) throw new Error(`${op}: tensor of shape ${SH.fmtShape(t.shape)} was disposed`);
      return t.#form;
    };
    setForm = (t, f) => {
      f.reads.forEach((r) => r.st.retain());
      t.#form?.reads.forEach((r) => r.st.release());
      t.#form = f;
    };
    nodeOf = (t) => t.#node;
    setNode = (t, n) => (t.#node = n);
  }

  private constructor(shape: S, form: Form, dtype?: DType) {
    this.shape = Object.freeze([...shape]) as unknown as S;
    this.dtype = dtype ?? form.exp.dtype;
    if (this.dtype !== form.exp.dtype) form = { ...form, exp: X.cast(form.exp, this.dtype) };
    form.reads.forEach((r) => r.st.retain());
    this.#form = form;
    stats.liveTensors++;
    tensorFinalizer.register(this, null, this);
    scopes[scopes.length - 1]?.add(this);
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }
  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }
  /** Whether `dispose()` has been called. */
  get disposed(): boolean {
    return this.#form === null;
  }

  /** Release this tensor's memory now. Using it afterwards is an error. */
  dispose(): void {
    if (!this.#form) return;
    this.#form.reads.forEach((r) => r.st.release());
    this.#form = null;
    stats.liveTensors--;
    tensorFinalizer.unregister(this);
  }
  /** `using t = …` releases the tensor at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Mark this tensor as a leaf that wants gradients (in place; returns this). */
  requiresGrad_(on = true): this {
    this.requiresGrad = on;
    return this;
  }

  // ---- reading -------------------------------------------------------------------------------

  /** The elements in row-major order (waits for the device). bool reads as Uint8Array. */
  async data(): Promise<TypedArray> {
    const r = contiguousRead(this, "data");
    const out = await r.st.backend.read(r.st.buf);
    return out.length === this.size ? out : out.subarray(r.view.offset, r.view.offset + this.size);
  }
  /** The single element of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new SH.ShapeError(
        `item: tensor of shape ${SH.fmtShape(this.shape)} has ${this.size} elements, not 1`,
      );
    }
    return (await this.data())[0];
  }
  /** Nested arrays of the elements. */
  async toArray(): Promise<Nested> {
    return nest(Array.from(await this.data()), this.shape);
  }
  /** A readable printout; values are shown when they are on the host (CPU backend). */
  toString(): string {
    const head = `Tensor${SH.fmtShape(this.shape)} ${this.dtype}`;
    if (!this.#form) return `${head} (disposed)`;
    const r = contiguousRead(this, "toString");
    if (!(r.st.buf instanceof CpuBuffer)) return `${head} on ${r.st.backend.name}`;
    const vals = Array.from(
      r.st.buf.data.subarray(r.view.offset, r.view.offset + this.size),
      (v) => +v.toFixed(4),
    );
    return `${head}\n${JSON.stringify(nest(vals, this.shape))}`;
  }

  // ---- autograd ------------------------------------------------------------------------------

  /** Backpropagate from this tensor: leaves that require grad get `.grad` (accumulated). A
   * non-scalar output needs a seed gradient of its own shape. */
  backward(seed?: Tensor<S>): void {
    if (!seed && this.size !== 1) {
      throw new SH.ShapeError(
        `backward: output has shape ${
          SH.fmtShape(this.shape)
        }; pass a gradient of that shape or reduce to a scalar first`,
      );
    }
    if (seed && SH.fmtShape(seed.shape) !== SH.fmtShape(this.shape)) {
      throw new SH.ShapeError(
        `backward: gradient shape ${SH.fmtShape(seed.shape)} differs from output shape ${
          SH.fmtShape(this.shape)
        }`,
      );
    }
    if (!this.requiresGrad) {
      throw new Error("backward: this tensor does not require grad (no leaf on its tape requires grad)");
    }
    runBackward<Tensor<any>>(this, seed ?? onesLike(this), nodeOf, (a, b) => a.add(b), (t, g) => {
      if (!t.requiresGrad) return;
      const total = t.grad ? t.grad.add(g) : g.dtype === t.dtype ? g.detach() : g.cast(t.dtype);
      t.grad?.dispose();
      t.grad = keep(total.realize());
    });
  }
  /** Clear `.grad`. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }
  /** The same values, cut from the tape. */
  detach(): Tensor<S> {
    return construct(this.shape, formOf(this, "detach"));
  }

  // ---- memory --------------------------------------------------------------------------------

  /** Compute any pending (fused) work into a buffer now; returns this. */
  realize(): this {
    realizeForm(this);
    return this;
  }
  /** A contiguous copy (or this tensor itself when it already is one). */
  contiguous(): Tensor<S> {
    const f = formOf(this, "contiguous");
    if (isLoad(f) && isContig(f.reads[0].view)) return this;
    return unary(this, "contiguous", (x) => x, (g) => g).realize();
  }
  /** Replace this tensor's value with `v`'s (same shape), in place: how optimizers update
   * parameters. The tape is not involved. */
  assign(v: Tensor<S>): this {
    if (SH.fmtShape(v.shape) !== SH.fmtShape(this.shape)) {
      throw new SH.ShapeError(
        `assign: shape ${SH.fmtShape(v.shape)} differs from ${SH.fmtShape(this.shape)}`,
      );
    }
    const r = contiguousRead(v.dtype === this.dtype ? v : v.cast(this.dtype), "assign");
    setForm(this, { exp: X.load(0, this.dtype), reads: [r] });
    return this;
  }

  // ---- elementwise ---------------------------------------------------------------------------

  /** Elementwise sum (broadcasting). */
  add<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "add">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "add">>> {
    return binary(this, o, "add", (a, b) => X.bin("add", a, b), (g) => [g, g]);
  }
  /** Elementwise difference (broadcasting). */
  sub<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "sub">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "sub">>> {
    return binary(this, o, "sub", (a, b) => X.bin("sub", a, b), (g) => [g, g.neg()]);
  }
  /** Elementwise product (broadcasting). */
  mul<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "mul">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "mul">>> {
    return binary(this, o, "mul", (a, b) => X.bin("mul", a, b), (g, a, b) => [g.mul(b), g.mul(a)]);
  }
  /** Elementwise true division (integers divide as floats). */
  div<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "div">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "div">>> {
    return binary(
      this,
      o,
      "div",
      (a, b) => X.bin("div", a, b),
      (g, a, b) => [g.div(b), g.mul(a).div(b.mul(b)).neg()],
      true,
    );
  }
  /** Elementwise power; a negative base works with integer exponents. */
  pow<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "pow">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "pow">>> {
    return binary(this, o, "pow", (a, b) => X.bin("pow", a, b), (g, a, b, out) => [
      g.mul(b).mul(a.pow(b.sub(1))),
      // d/db a^b = a^b·ln a; defined as 0 where a = 0 so x^y at x=0 has no NaN gradient.
      g.mul(out).mul(where(a.eq(0), 0, a.abs().log())),
    ], true);
  }
  /** Elementwise maximum; at ties the gradient is split evenly. */
  maximum<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "maximum">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "maximum">>> {
    return binary(this, o, "maximum", (a, b) => X.bin("max", a, b), (g, a, b) => pick(g, a, b));
  }
  /** Elementwise minimum; at ties the gradient is split evenly. */
  minimum<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "minimum">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "minimum">>> {
    return binary(this, o, "minimum", (a, b) => X.bin("min", a, b), (g, a, b) => pick(g, b, a));
  }
  /** `this < o` as bool. */
  lt<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "lt">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "lt">>> {
    return binary(this, o, "lt", (a, b) => X.bin("lt", a, b));
  }
  /** `this <= o` as bool. */
  le<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "le">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "le">>> {
    return binary(this, o, "le", (a, b) => X.bin("le", a, b));
  }
  /** `this > o` as bool. */
  gt<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "gt">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "gt">>> {
    return binary(this, o, "gt", (a, b) => X.bin("gt", a, b));
  }
  /** `this >= o` as bool. */
  ge<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "ge">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "ge">>> {
    return binary(this, o, "ge", (a, b) => X.bin("ge", a, b));
  }
  /** `this == o` as bool. */
  eq<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "eq">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "eq">>> {
    return binary(this, o, "eq", (a, b) => X.bin("eq", a, b));
  }
  /** `this != o` as bool. */
  ne<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "ne">>,
    o: Tensor<B> | number,
  ): Tensor<Ok<Broadcast<S, B, "ne">>> {
    return binary(this, o, "ne", (a, b) => X.bin("ne", a, b));
  }
  /** Logical and of bool tensors. */
  and<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "and">>,
    o: Tensor<B>,
  ): Tensor<Ok<Broadcast<S, B, "and">>> {
    return binary(this, o, "and", (a, b) => X.bin("and", a, b));
  }
  /** Logical or of bool tensors. */
  or<B extends Shape = []>(
    this: Tensor<S> & Guard<Broadcast<S, B, "or">>,
    o: Tensor<B>,
  ): Tensor<Ok<Broadcast<S, B, "or">>> {
    return binary(this, o, "or", (a, b) => X.bin("or", a, b));
  }
  /** Logical not of a bool tensor. */
  not(): Tensor<S> {
    return unary(this, "not", (x) => X.un("not", X.cast(x, "bool")));
  }

  /** −x. */
  neg(): Tensor<S> {
    return unary(this, "neg", (x) => X.un("neg", x), (g) => g.neg());
  }
  /** eˣ. */
  exp(): Tensor<S> {
    return unary(this, "exp", (x) => X.un("exp", x), (g, _x, y) => g.mul(y), true);
  }
  /** Natural log (NaN below 0, −∞ at 0, as IEEE). */
  log(): Tensor<S> {
    return unary(this, "log", (x) => X.un("log", x), (g, x) => g.div(x), true);
  }
  /** √x. */
  sqrt(): Tensor<S> {
    return unary(this, "sqrt", (x) => X.un("sqrt", x), (g, _x, y) => g.div(y.mul(2)), true);
  }
  /** 1/√x. */
  rsqrt(): Tensor<S> {
    return unary(this, "rsqrt", (x) => X.un("rsqrt", x), (g, x, y) => g.mul(y).div(x).mul(-0.5), true);
  }
  /** |x| (gradient 0 at 0). */
  abs(): Tensor<S> {
    return unary(
      this,
      "abs",
      (x) => X.un("abs", x),
      (g, x) => g.mul(x.gt(0).cast(g.dtype).sub(x.lt(0).cast(g.dtype))),
    );
  }
  /** tanh x. */
  tanh(): Tensor<S> {
    return unary(this, "tanh", (x) => X.un("tanh", x), (g, _x, y) => g.mul(y.mul(y).neg().add(1)), true);
  }
  /** 1/(1+e⁻ˣ). */
  sigmoid(): Tensor<S> {
    return unary(
      this,
      "sigmoid",
      (x) => X.un("sigmoid", x),
      (g, _x, y) => g.mul(y).mul(y.neg().add(1)),
      true,
    );
  }
  /** max(x, 0). */
  relu(): Tensor<S> {
    return unary(this, "relu", (x) => X.un("relu", x), (g, x) => g.mul(x.gt(0).cast(g.dtype)));
  }
  /** GELU, tanh approximation (GPT-2's): ½x(1 + tanh(√(2/π)(x + 0.044715x³))). */
  gelu(): Tensor<S> {
    const C = Math.sqrt(2 / Math.PI), K = 0.044715;
    const x = (isFloat(this.dtype) ? this : this.cast("f32")).detach() as Tensor<any>;
    // ½(1 + tanh u) = σ(2u): one exponential instead of tanh's, computed once and shared with the
    // backward rule (transcendentals dominate elementwise cost on the CPU).
    const s = x.mul(x).mul(x).mul(K).add(x).mul(2 * C).sigmoid().realize();
    const y = x.mul(s);
    return record(y, [this], (g) => {
      // d/dx x·σ(2u) = σ + x·σ(1 − σ)·2u′, u′ = C(1 + 3Kx²)
      const du = x.mul(x).mul(3 * K).add(1).mul(2 * C);
      return [g.mul(s.add(x.mul(s).mul(s.neg().add(1)).mul(du)))];
    }) as any;
  }
  /** log(1 + eˣ), computed stably as max(x, 0) + log(1 + e^−|x|). */
  softplus(): Tensor<S> {
    return unary(this, "softplus", (x) => softplusExp(x), (g, x) => g.mul(x.sigmoid()), true);
  }
  /** log σ(x) = −softplus(−x), stable for large |x|. */
  logsigmoid(): Tensor<S> {
    return unary(
      this,
      "logsigmoid",
      (x) => X.un("neg", softplusExp(X.un("neg", x))),
      (g, x) => g.mul(x.neg().sigmoid()),
      true,
    );
  }
  /** Clamp into [min, max] (either may be omitted); gradient passes inside the range. */
  clamp(min?: number, max?: number): Tensor<S> {
    const c = (v: number, x: Exp) => X.cnst(v, x.dtype);
    return unary(this, "clamp", (x) => {
      let e = x;
      if (min !== undefined) e = X.bin("max", e, c(min, x));
      if (max !== undefined) e = X.bin("min", e, c(max, x));
      return e;
    }, (g, x) => {
      let m = x.eq(x);
      if (min !== undefined) m = m.and(x.ge(min));
      if (max !== undefined) m = m.and(x.le(max));
      return g.mul(m.cast(g.dtype));
    });
  }
  /** Convert to another dtype (float gradients pass through, others stop). */
  cast(dtype: DType): Tensor<S> {
    if (dtype === this.dtype) return this;
    const float = (d: DType) => d === "f32" || d === "f64";
    return unary(
      this,
      "cast",
      (x) => X.cast(x, dtype),
      float(dtype) && float(this.dtype) ? (g) => g.cast(this.dtype) : undefined,
    );
  }
  /** Where `mask` is true, `value`; elsewhere this tensor's element. */
  maskedFill<M extends Shape>(
    this: Tensor<S> & Guard<Where<M, S, S>>,
    mask: Tensor<M>,
    value: number,
  ): Tensor<Ok<Where<M, S, S>>> {
    return where(mask as any, value, this as any) as any;
  }

  // ---- reductions ----------------------------------------------------------------------------

  /** Sum over `axis` (a number, a list, or all when omitted); `keepdim` keeps size-1 axes. */
  sum<const A extends number | readonly number[] | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "sum">>,
    axis?: A,
    keepdim?: K,
  ): Tensor<Ok<Reduce<S, A, K, "sum">>> {
    const x = this as Tensor<S>;
    return reduce(x, "sum", axis, keepdim, (g) => g.expand(x.shape));
  }
  /** Mean over `axis` (all when omitted). */
  mean<const A extends number | readonly number[] | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "mean">>,
    axis?: A,
    keepdim?: K,
  ): Tensor<Ok<Reduce<S, A, K, "mean">>> {
    const x = this as Tensor<S>;
    const n = SH.reduceAxes("mean", x.shape, axis).reduce((p, d) => p * x.shape[d], 1);
    return (x.sum as any)(axis, keepdim).div(n);
  }
  /** Maximum over `axis`; the gradient is shared evenly among tied maxima. */
  max<const A extends number | readonly number[] | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "max">>,
    axis?: A,
    keepdim?: K,
  ): Tensor<Ok<Reduce<S, A, K, "max">>> {
    return extremum(this as Tensor<S>, "max", axis, keepdim);
  }
  /** Minimum over `axis`; the gradient is shared evenly among tied minima. */
  min<const A extends number | readonly number[] | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "min">>,
    axis?: A,
    keepdim?: K,
  ): Tensor<Ok<Reduce<S, A, K, "min">>> {
    return extremum(this as Tensor<S>, "min", axis, keepdim);
  }
  /** Index (i32) of the first maximum along one axis (or of the flattened tensor). */
  argmax<const A extends number | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "argmax">>,
    axis?: A,
    keepdim?: K,
  ): Tensor<Ok<Reduce<S, A, K, "argmax">>> {
    const x = this as Tensor<S>;
    return reduce(
      axis === undefined ? (x as Tensor<any>).reshape([-1]) : x,
      "argmax",
      axis === undefined ? 0 : axis,
      keepdim,
    ) as any;
  }
  /** Index (i32) of the first minimum along one axis (or of the flattened tensor). */
  argmin<const A extends number | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "argmin">>,
    axis?: A,
    keepdim?: K,
  ): Tensor<Ok<Reduce<S, A, K, "argmin">>> {
    const x = this as Tensor<S>;
    return reduce(
      axis === undefined ? (x as Tensor<any>).reshape([-1]) : x,
      "argmin",
      axis === undefined ? 0 : axis,
      keepdim,
    ) as any;
  }
  /** Variance over `axis` with Bessel's `correction` (default 1, like torch.var). */
  var<const A extends number | readonly number[] | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "var">>,
    axis?: A,
    keepdim?: K,
    correction = 1,
  ): Tensor<Ok<Reduce<S, A, K, "var">>> {
    const x = this as Tensor<any>;
    const n = SH.reduceAxes("var", x.shape, axis).reduce((p, d) => p * x.shape[d], 1);
    const d = x.sub(x.mean(axis as any, true));
    return d.mul(d).sum(axis as any, keepdim as any).div(Math.max(n - correction, 0)) as any;
  }
  /** log Σ eˣ over `axis`, shifted by the maximum so it never overflows. */
  logsumexp<const A extends number | readonly number[] | undefined = undefined, K extends boolean = false>(
    this: Tensor<S> & Guard<Reduce<S, A, K, "logsumexp">>,
    axis?: A,
    keepdim?: K,
  ): Tensor<Ok<Reduce<S, A, K, "logsumexp">>> {
    const x = this as Tensor<any>;
    SH.reduceAxes("logsumexp", x.shape, axis);
    const m0 = x.detach().max(axis as any, true);
    const m = where(m0.abs().lt(Infinity), m0, 0); // an all −∞ row stays −∞, not NaN
    const out = x.sub(m).exp().sum(axis as any, true).log().add(m);
    return (keepdim ? out : out.reshape(dropAxes(x.shape, SH.reduceAxes("logsumexp", x.shape, axis)))) as any;
  }

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
    this: Tensor<S> & Guard<Reshape<S, T>>,
    shape: T,
  ): Tensor<Ok<Reshape<S, T>>> {
    const x = this as Tensor<S>;
    const to = SH.reshapeShape(x.shape, shape);
    let f = formOf(x, "reshape");
    const tryMove = (f: Form) => {
      if (hasIdx(f.exp)) return null;
      const views = f.reads.map((r) => reshapeView(r.view, to));
      return views.every((v) => v)
        ? { exp: f.exp, reads: f.reads.map((r, i) => ({ st: r.st, view: views[i]! })) }
        : null;
    };
    let moved = tryMove(f);
    if (!moved) {
      f = { exp: X.load(0, x.dtype), reads: [contiguousRead(x, "reshape")] };
      moved = tryMove(f)!;
    }
    return record(construct(to, moved), [x], (g) => [g.reshape(x.shape as readonly number[])]) as any;
  }
  /** Reorder axes. */
  permute<const P extends readonly number[]>(
    this: Tensor<S> & Guard<Permute<S, P>>,
    perm: P,
  ): Tensor<Ok<Permute<S, P>>> {
    const x = this as Tensor<S>;
    const p = SH.permuteCheck(x.shape, perm);
    const inv = p.map((_, i) => p.indexOf(i));
    const f = moveForm(formOf(x, "permute"), (v) => ({
      shape: p.map((d) => v.shape[d]),
      strides: p.map((d) => v.strides[d]),
      offset: v.offset,
    }), (a) => X.idx(inv[a]));
    return record(construct(p.map((d) => x.shape[d]), f), [x], (g) => [g.permute(inv)]) as any;
  }
  /** Swap two axes (default: the last two). */
  transpose<const D0 extends number = -2, const D1 extends number = -1>(
    this: Tensor<S> & Guard<Transpose<S, D0, D1>>,
    d0?: D0,
    d1?: D1,
  ): Tensor<Ok<Transpose<S, D0, D1>>> {
    const x = this as Tensor<S>;
    const [a, b] = [SH.normAxis("transpose", d0 ?? -2, x.shape), SH.normAxis("transpose", d1 ?? -1, x.shape)];
    const p = x.shape.map((_, i) => (i === a ? b : i === b ? a : i));
    return (x.permute as any)(p);
  }
  /** Broadcast to a larger shape without copying (stride 0 on broadcast axes). */
  expand<const T extends readonly number[]>(
    this: Tensor<S> & Guard<Broadcast<S, T, "expand">>,
    shape: T,
  ): Tensor<Ok<Broadcast<S, T, "expand">>> {
    const x = this as Tensor<S>;
    const to = SH.broadcastShapes("expand", x.shape, shape);
    if (to.join() !== shape.join()) {
      throw new SH.ShapeError(
        `expand: shapes ${SH.fmtShape(x.shape)} and ${SH.fmtShape(shape)} cannot broadcast`,
      );
    }
    if (to.join() === x.shape.join()) return x as any;
    return record(construct(to, expandForm(x, to)), [x], (g) => [sumTo(g, x.shape)]) as any;
  }
  /** Insert a size-1 axis. */
  unsqueeze<const D extends number>(
    this: Tensor<S> & Guard<Unsqueeze<S, D>>,
    axis: D,
  ): Tensor<Ok<Unsqueeze<S, D>>> {
    const x = this as Tensor<any>;
    const a = SH.unsqueezeAxis(x.shape, axis);
    return x.reshape([...x.shape.slice(0, a), 1, ...x.shape.slice(a)]) as any;
  }
  /** Remove a size-1 axis (or all of them). */
  squeeze<const D extends number | undefined = undefined>(
    this: Tensor<S> & Guard<Squeeze<S, D>>,
    axis?: D,
  ): Tensor<Ok<Squeeze<S, D>>> {
    const x = this as Tensor<any>;
    return x.reshape(SH.squeezeShape(x.shape, axis)) as any;
  }
  /** `length` elements of `axis` starting at `start` (negative counts from the end); a view. */
  narrow<const A extends number, const L extends number>(
    this: Tensor<S> & Guard<Narrow<S, A, L>>,
    axis: A,
    start: number,
    length: L,
  ): Tensor<Ok<Narrow<S, A, L>>> {
    const x = this as Tensor<S>;
    const a = SH.narrowCheck(x.shape, axis, start, length);
    const s = start < 0 ? start + x.shape[a] : start;
    const to = x.shape.map((n, d) => (d === a ? length : n));
    const f = moveForm(formOf(x, "narrow"), (v) => ({
      shape: to,
      strides: v.strides,
      offset: v.offset + s * v.strides[a],
    }), (d) => (d === a ? X.bin("add", X.idx(d), X.cnst(s, "i32")) : X.idx(d)));
    return record(construct(to, f), [x], (g) => [padInto(g, x.shape, a, s)]) as any;
  }
  /** Elements `start` (inclusive) to `end` (exclusive, default the end) of `axis`; a view. */
  slice(axis: number, start: number, end?: number): Tensor<number[]> {
    const a = SH.normAxis("slice", axis, this.shape);
    const n = this.shape[a];
    const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
    const e = Math.min(Math.max(end === undefined ? n : end < 0 ? end + n : end, s), n);
    return (this as Tensor<any>).narrow(a, s, e - s);
  }
  /** Pieces of `axis` of the given sizes (or equal pieces of size `size`). */
  split(size: number | number[], axis = 0): Tensor<number[]>[] {
    const a = SH.normAxis("split", axis, this.shape);
    const n = this.shape[a];
    const sizes = typeof size === "number"
      ? Array.from({ length: Math.ceil(n / size) }, (_, i) => Math.min(size, n - i * size))
      : size;
    if (sizes.reduce((p, q) => p + q, 0) !== n) {
      throw new SH.ShapeError(
        `split: sizes [${sizes.join(", ")}] do not add up to ${n} (axis ${a} of ${SH.fmtShape(this.shape)})`,
      );
    }
    let at = 0;
    return sizes.map((k) => (this as Tensor<any>).narrow(a, (at += k) - k, k));
  }
  /** `chunks` nearly equal pieces along `axis`. */
  chunk(chunks: number, axis = 0): Tensor<number[]>[] {
    return this.split(Math.ceil(this.shape[SH.normAxis("chunk", axis, this.shape)] / chunks), axis);
  }
  /** torch.gather: out[i] = this[i with i[axis] := index[i]]. */
  gather<const A extends number, I extends Shape>(
    this: Tensor<S> & Guard<Gather<S, A, I>>,
    axis: A,
    index: Tensor<I>,
  ): Tensor<Ok<Gather<S, A, I>>> {
    const x = this as Tensor<S>;
    const a = SH.gatherCheck(x.shape, axis, index.shape);
    checkIndex("gather", index, x.shape[a]);
    formOf(x, "gather");
    const buf = x.backendOf().gather(realRead(x, "gather"), realRead(index, "gather"), a);
    return record(fromBuffer(index.shape, buf, x), [x], (g) => [scatterAdd(index, g, a, x.shape)]) as any;
  }
  /** Rows (or other slices along `axis`) picked by a 1-D i32 index. */
  indexSelect<const A extends number, N extends number>(
    this: Tensor<S> & Guard<IndexSelect<S, A, N>>,
    axis: A,
    index: Tensor<[N]>,
  ): Tensor<Ok<IndexSelect<S, A, N>>> {
    const x = this as Tensor<any>;
    const a = SH.normAxis("indexSelect", axis, x.shape);
    if (index.rank !== 1) {
      throw new SH.ShapeError(`indexSelect: index must be 1-D, got ${SH.fmtShape(index.shape)}`);
    }
    checkIndex("indexSelect", index, x.shape[a]);
    const to = x.shape.map((n: number, d: number) => (d === a ? index.size : n));
    const idx = index.reshape(to.map((n: number, d: number) => (d === a ? n : 1))).expand(to);
    return x.gather(a, idx) as any;
  }
  /** `this` plus `src` added at `index` along `axis` (torch.scatter_add). */
  scatterAdd<I extends Shape>(axis: number, index: Tensor<I>, src: Tensor<I>): Tensor<S> {
    const a = SH.gatherCheck(this.shape, axis, index.shape);
    if (SH.fmtShape(index.shape) !== SH.fmtShape(src.shape)) {
      throw new SH.ShapeError(
        `scatterAdd: index shape ${SH.fmtShape(index.shape)} and src shape ${SH.fmtShape(src.shape)} differ`,
      );
    }
    checkIndex("scatterAdd", index, this.shape[a]);
    const s = scatterAdd(index, src.detach(), a, this.shape);
    return record<any>(
      (this.detach() as Tensor<any>).add(s),
      [this, src],
      (g) => [g, g.gather(a, index as Tensor<any>)],
    );
  }

  /** The backend holding this tensor's data. */
  backendOf(): Backend {
    return formOf(this, "backendOf").reads[0]?.st.backend ?? backend;
  }
}

// ---------------------------------------------------------------------------------------------
// Op machinery

/** Put `out` on the tape with `inputs` and a backward rule (when any input wants gradients). */
function record<T extends Tensor<any>>(
  out: T,
  inputs: Tensor<any>[],
  backward: (g: Tensor<any>) => (Tensor<any> | null)[],
): T {
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    setNode(out, { inputs, backward: (g) => backward(g).map((x, k) => (inputs[k].requiresGrad ? x : null)) });
  }
  return out;
}

function constTensor(v: number, like: DType): Tensor<[]> {
  const dtype: DType = like === "f32" || like === "f64"
    ? like
    : Number.isInteger(v)
    ? (like === "bool" ? "i32" : like)
    : "f32";
  return construct([], { exp: X.cnst(v, dtype), reads: [] });
}

/** A form that reads `x` broadcast to `to`. Big lazy forms are realized first so broadcasting
 * never multiplies expensive work. */
function expandForm(x: Tensor<any>, to: number[]): Form {
  let f = formOf(x, "expand");
  if (!isLoad(f) && X.size(f.exp) > 6 && numel(to) > x.size) f = realizeForm(x, "expand");
  const from = x.shape, pad = to.length - from.length;
  return moveForm(f, (v) => ({
    shape: to,
    strides: to.map((n, d) => (d < pad || from[d - pad] !== n ? 0 : v.strides[d - pad])),
    offset: v.offset,
  }), (a) => (from[a] === to[a + pad] ? X.idx(a + pad) : X.cnst(0, "i32")));
}

/** Join operand forms into one expression over the union of their reads (deduplicated). */
function fuse(ops: Tensor<any>[], to: number[], build: (e: Exp[]) => Exp, op = "fuse"): Form {
  const reads: Read[] = [];
  const used = new Set(ops.flatMap((t) => formOf(t, op).reads.map((r) => r.st.backend.name)));
  if (used.size > 1) {
    throw new Error(`tensors live on different backends (${[...used].join(" and ")}); move them to one`);
  }
  const exps = ops.map((t) => {
    let f = formOf(t, op);
    if (!isLoad(f) && (f.reads.length > MAX_READS || X.size(f.exp) > MAX_NODES)) f = realizeForm(t, op);
    f = t.shape.join() === to.join() ? f : expandForm(t, to);
    const slot = f.reads.map((r) => {
      const k = reads.findIndex((q) =>
        q.st === r.st && q.view.offset === r.view.offset && q.view.strides.join() === r.view.strides.join()
      );
      return k >= 0 ? k : reads.push(r) - 1;
    });
    return X.mapLeaves(f.exp, (l) => (l.op === "load" ? X.load(slot[l.i], l.dtype) : l));
  });
  return { exp: build(exps), reads };
}

const isFloat = (d: DType) => d === "f32" || d === "f64";
function promote(a: DType, b: DType): DType {
  if (a === b) return a === "bool" ? "i32" : a;
  if (a === "f64" || b === "f64") return "f64";
  return a === "f32" || b === "f32" ? "f32" : "i32";
}

type Grads = (g: Tensor<any>, a: Tensor<any>, b: Tensor<any>, out: Tensor<any>) => Tensor<any>[];

function binary(
  a: Tensor<any>,
  o: Tensor<any> | number,
  op: string,
  fn: (a: Exp, b: Exp) => Exp,
  grads?: Grads,
  float = false,
): any {
  const b = typeof o === "number" ? constTensor(o, a.dtype) : o;
  const to = SH.broadcastShapes(op, a.shape, b.shape);
  let dt = promote(a.dtype, b.dtype);
  if (float && !isFloat(dt)) dt = "f32";
  if (op === "and" || op === "or") dt = "bool";
  const out = construct(to, fuse([a, b], to, ([x, y]) => fn(X.cast(x, dt), X.cast(y, dt)), op));
  if (!grads || !isFloat(out.dtype)) return out;
  return record(out, [a, b], (g) => grads(g, a, b, out).map((gi, k) => sumTo(gi, [a, b][k].shape)));
}

function unary(
  x: Tensor<any>,
  op: string,
  fn: (x: Exp) => Exp,
  grad?: (g: Tensor<any>, x: Tensor<any>, out: Tensor<any>) => Tensor<any>,
  float = false,
): any {
  const dt = float && !isFloat(x.dtype) ? "f32" : x.dtype;
  const out = construct(x.shape, fuse([x], x.shape as number[], ([e]) => fn(X.cast(e, dt)), op));
  if (!grad) return out;
  return record(out, [x], (g) => [grad(g, x, out)]);
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

const dropAxes = (shape: readonly number[], axes: number[]) => shape.filter((_, d) => !axes.includes(d));

/** Sum a broadcast gradient back down to `shape`. */
function sumTo(g: Tensor<any>, shape: readonly number[]): Tensor<any> {
  if (g.shape.join() === shape.join()) return g;
  const pad = g.rank - shape.length;
  const axes = g.shape.map((n: number, d: number) => (d < pad || (shape[d - pad] === 1 && n !== 1) ? d : -1))
    .filter((d: number) => d >= 0);
  return g.sum(axes, true).reshape(shape);
}

/** Make `t`'s form a plain read of a buffer holding its value. */
function realizeForm(t: Tensor<any>, op = "realize"): Form {
  const f = formOf(t, op);
  return isLoad(f) ? f : materialize(t, f);
}

/** Run `f` into a fresh contiguous buffer and make that `t`'s form. */
function materialize(t: Tensor<any>, f: Form): Form {
  const be = t.backendOf();
  const st = new Storage(be.map(f.exp, f.reads.map((r) => ({ buf: r.st.buf, view: r.view })), t.shape), be);
  const nf = {
    exp: X.load(0, t.dtype),
    reads: [{ st, view: { shape: t.shape, strides: contiguousStrides(t.shape), offset: 0 } }],
  };
  setForm(t, nf);
  return nf;
}

/** A realized read (any strides) for primitives that take buffers. */
function realRead(t: Tensor<any>, op: string): { buf: import("./backend.ts").BackendBuffer; view: View } {
  const r = realizeForm(t, op).reads[0];
  return { buf: r.st.buf, view: r.view };
}

/** A contiguous read of `t` (copies when its view is strided). */
function contiguousRead(t: Tensor<any>, op: string): Read {
  const f = formOf(t, op);
  return isLoad(f) && isContig(f.reads[0].view) ? f.reads[0] : materialize(t, f).reads[0];
}

function fromBuffer<S extends Shape>(
  shape: S,
  buf: import("./backend.ts").BackendBuffer,
  like?: Tensor<any>,
): Tensor<S> {
  const be = like?.backendOf() ?? backend;
  const st = new Storage(buf, be);
  return construct(shape, {
    exp: X.load(0, buf.dtype),
    reads: [{ st, view: { shape, strides: contiguousStrides(shape), offset: 0 } }],
  });
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
  const f = formOf(x, op);
  const be = x.backendOf();
  const buf = be.reduce(op, f.exp, f.reads.map((r) => ({ buf: r.st.buf, view: r.view })), x.shape, axes);
  const kept = x.shape.map((n: number, d: number) => (axes.includes(d) ? 1 : n));
  const out = fromBuffer(kept, buf, x);
  const res = keepdim ? out : out.reshape(dropAxes(x.shape, axes) as any);
  if (!grad) return res;
  return record(res, [x], (g) => [grad(g.reshape(kept))]);
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
  // [..., K] @ [K, N] is one big matmul over the flattened rows (its weight gradient then needs no
  // sum over a broadcast batch).
  if (b.rank === 2 && a.rank > 2) {
    return matmul(a.reshape([-1, a.shape[a.rank - 1]] as number[]), b).reshape(out);
  }
  // Vectors become matrices, batches broadcast through zero strides.
  const A = a.rank === 1 ? a.unsqueeze(0) : a, B = b.rank === 1 ? b.unsqueeze(-1) : b;
  const batch = SH.broadcastShapes("matmul", A.shape.slice(0, -2), B.shape.slice(0, -2));
  const Ae = A.expand([...batch, ...A.shape.slice(-2)]), Be = B.expand([...batch, ...B.shape.slice(-2)]);
  const dt = promote(a.dtype, b.dtype);
  const [ra, rb] = [
    realRead(isFloat(Ae.dtype) ? Ae : Ae.cast(dt), "matmul"),
    realRead(Be.dtype === dt ? Be : Be.cast(dt), "matmul"),
  ];
  const full = fromBuffer(
    [...batch, A.shape[A.rank - 2], B.shape[B.rank - 1]],
    a.backendOf().matmul(ra, rb),
    a,
  );
  const res = full.reshape(out);
  return record(res, [a, b], (g) => {
    const G = g.reshape(full.shape);
    return [
      a.requiresGrad ? sumTo(G.matmul(Be.transpose(-1, -2)), A.shape).reshape(a.shape) : null,
      b.requiresGrad ? sumTo(Ae.transpose(-1, -2).matmul(G), B.shape).reshape(b.shape) : null,
    ];
  });
}

/** Zeros of `shape` with `g` written at `start` along `axis` (narrow's gradient, concat's body). */
function padInto(g: Tensor<any>, shape: readonly number[], axis: number, start: number): Tensor<any> {
  const be = g.backendOf();
  const buf = be.map(X.cnst(0, g.dtype), [], shape);
  writeRegion(buf, shape, g, axis, start);
  return fromBuffer(shape, buf, g);
}

function writeRegion(
  buf: import("./backend.ts").BackendBuffer,
  shape: readonly number[],
  t: Tensor<any>,
  axis: number,
  start: number,
) {
  if (t.size === 0) return;
  const f = formOf(t, "concat");
  const strides = contiguousStrides(shape);
  t.backendOf().map(f.exp, f.reads.map((r) => ({ buf: r.st.buf, view: r.view })), t.shape, {
    buf,
    view: { shape: t.shape, strides, offset: start * strides[axis] },
  });
}

function scatterAdd(
  index: Tensor<any>,
  src: Tensor<any>,
  axis: number,
  shape: readonly number[],
): Tensor<any> {
  const buf = src.backendOf().scatterAdd(
    realRead(index, "scatterAdd"),
    realRead(src, "scatterAdd"),
    axis,
    shape,
  );
  return fromBuffer(shape as number[], buf, src);
}

// Indices uploaded from the host keep a host copy, so bounds are checked without a device read;
// on the CPU the buffer itself is the host copy. Computed indices on a device go unchecked.
const hostIndex = new WeakMap<import("./backend.ts").BackendBuffer, TypedArray>();
function checkIndex(op: string, index: Tensor<any>, n: number, ignore?: number) {
  if (index.dtype !== "i32") throw new TypeError(`${op}: index must be i32, got ${index.dtype}`);
  let f = formOf(index, op);
  if (!isLoad(f) && index.backendOf().name === "cpu") f = realizeForm(index, op);
  if (!isLoad(f)) return;
  const { st, view } = f.reads[0];
  const host = st.buf instanceof CpuBuffer ? st.buf.data : hostIndex.get(st.buf);
  if (!host) return;
  for (const o of offsets(view)) {
    const v = host[o];
    if ((v < 0 || v >= n) && v !== ignore) {
      throw new RangeError(`${op}: index ${v} is out of range for size ${n}`);
    }
  }
}

function nest(vals: number[], shape: readonly number[]): Nested {
  if (shape.length === 0) return vals[0];
  const step = vals.length / shape[0] || 0;
  return Array.from(
    { length: shape[0] },
    (_, i) => nest(vals.slice(i * step, (i + 1) * step), shape.slice(1)),
  );
}

// ---------------------------------------------------------------------------------------------
// Functions

/** `cond ? a : b` elementwise, broadcasting all three. */
export function where<C extends Shape, A extends Shape, B extends Shape>(
  cond: Tensor<C> & Guard<Where<C, A, B>>,
  a: Tensor<A> | number,
  b: Tensor<B> | number,
): Tensor<Ok<Where<C, A, B>>> {
  const c = cond as Tensor<C>;
  let dt = typeof a === "number"
    ? (typeof b === "number" ? "f32" : b.dtype)
    : typeof b === "number"
    ? a.dtype
    : promote(a.dtype, b.dtype);
  // A fractional scalar beside an integer tensor makes the result float, as in torch.
  if ([a, b].some((v) => typeof v === "number" && !Number.isInteger(v)) && !isFloat(dt)) dt = "f32";
  const [ta, tb] = [
    typeof a === "number" ? constTensor(a, dt) : a,
    typeof b === "number" ? constTensor(b, dt) : b,
  ];
  const to = SH.broadcastShapes("where", SH.broadcastShapes("where", c.shape, ta.shape), tb.shape);
  const out = construct(
    to,
    fuse([c, ta, tb], to, ([x, y, z]) => X.where(X.cast(x, "bool"), X.cast(y, dt), X.cast(z, dt)), "where"),
  );
  if (!isFloat(dt)) return out as any;
  return record(out, [ta, tb], (g) => {
    const m = (c as Tensor<any>).cast(g.dtype);
    return [sumTo(g.mul(m), ta.shape), sumTo(g.mul(m.neg().add(1)), tb.shape)];
  }) as any;
}

/** Join tensors along an existing axis. */
export function concat<const T extends readonly Tensor<any>[], const A extends number = 0>(
  tensors: T,
  axis: A = 0 as A,
): Tensor<Ok<Concat<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>> {
  const shape = SH.concatShape(tensors.map((t) => t.shape), axis);
  const a = SH.normAxis("concat", axis, tensors[0].shape);
  const dt = tensors.map((t) => t.dtype).reduce(promote);
  const buf = tensors[0].backendOf().alloc(numel(shape), dt);
  let at = 0;
  for (const t of tensors) {
    writeRegion(buf, shape, t.dtype === dt ? t : t.cast(dt), a, at);
    at += t.shape[a];
  }
  const out = fromBuffer(shape, buf, tensors[0]);
  return record(out, [...tensors], (g) => {
    let s = 0;
    return tensors.map((t) => g.narrow(a, (s += t.shape[a]) - t.shape[a], t.shape[a]));
  }) as any;
}

/** Join same-shaped tensors along a new axis. */
export function stack<const T extends readonly Tensor<any>[], const A extends number = 0>(
  tensors: T,
  axis: A = 0 as A,
): Tensor<Ok<Stack<{ [K in keyof T]: T[K] extends Tensor<infer S> ? S : never }, A>>> {
  SH.stackShape(tensors.map((t) => t.shape), axis);
  const a = SH.unsqueezeAxis(tensors[0].shape, axis);
  return concat(tensors.map((t) => t.unsqueeze(a)), a) as any;
}

/** Embedding lookup: rows of `weight` [V, D] picked by i32 `index` of any shape → [...index, D]. */
export function embedding<W extends Shape, I extends Shape>(
  weight: Tensor<W> & Guard<EmbeddingLookup<W, I>>,
  index: Tensor<I>,
): Tensor<Ok<EmbeddingLookup<W, I>>> {
  const w = weight as Tensor<any>;
  SH.embeddingCheck(w.shape);
  checkIndex("embedding", index, w.shape[0]);
  const flat = (index as Tensor<any>).reshape([-1]) as Tensor<[number]>;
  return w.indexSelect(0, flat).reshape([...index.shape, w.shape[1]] as number[]) as any;
}

/** Mean cross-entropy of `logits` [..., V] against i32 `targets` [...], skipping targets equal to
 * `ignoreIndex` (default −100) and, when given, where `mask` is false. */
export function crossEntropy(
  logits: Tensor<any>,
  targets: Tensor<any>,
  opts: { ignoreIndex?: number; mask?: Tensor<any> } = {},
): Tensor<[]> {
  if (logits.shape.slice(0, -1).join() !== targets.shape.join()) {
    throw new SH.ShapeError(
      `crossEntropy: logits ${SH.fmtShape(logits.shape)} do not match targets ${SH.fmtShape(targets.shape)}`,
    );
  }
  const ignore = opts.ignoreIndex ?? -100;
  checkIndex("crossEntropy", targets, logits.shape[logits.rank - 1], ignore);
  let keepM = targets.ne(ignore);
  if (opts.mask) keepM = keepM.and(opts.mask.cast("bool"));
  const safe = where(keepM, targets, 0).realize();
  const nll = logits.logSoftmax(-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1).neg();
  const w = keepM.cast(logits.dtype);
  return nll.mul(w).sum().div(w.sum().maximum(1));
}

/** Layer normalization over the last axis: (x − mean)/√(var + eps)·weight + bias. */
export function layerNorm<S extends Shape>(
  x: Tensor<S>,
  weight?: Tensor<any>,
  bias?: Tensor<any>,
  eps = 1e-5,
): Tensor<S> {
  const t = x as Tensor<any>;
  const mu = t.mean(-1, true);
  const d = t.sub(mu);
  let y = d.mul(d.mul(d).mean(-1, true).add(eps).rsqrt());
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y as any;
}

/** One-hot rows: [...index] i32 → [...index, n] of dtype (default f32). */
export function oneHot<I extends Shape>(
  index: Tensor<I>,
  n: number,
  dtype: DType = "f32",
): Tensor<[...I, number]> {
  const x = (index as Tensor<any>).unsqueeze(-1);
  const to = [...index.shape, n];
  return construct(
    to,
    fuse([x], to, ([e]) => X.cast(X.bin("eq", e, X.idx(to.length - 1)), dtype), "oneHot"),
  ) as any;
}

/** A bool mask [rows, cols] that is true on and below diagonal `k` (j ≤ i + k). */
export function tril<R extends number, C extends number = R>(rows: R, cols?: C, k = 0): Tensor<[R, C]> {
  const to = [rows, cols ?? rows];
  return construct(to, {
    exp: X.bin("le", X.idx(1), X.bin("add", X.idx(0), X.cnst(k, "i32"))),
    reads: [],
  }) as any;
}

/** A bool mask [rows, cols] that is true on and above diagonal `k` (j ≥ i + k). */
export function triu<R extends number, C extends number = R>(rows: R, cols?: C, k = 0): Tensor<[R, C]> {
  const to = [rows, cols ?? rows];
  return construct(to, {
    exp: X.bin("ge", X.idx(1), X.bin("add", X.idx(0), X.cnst(k, "i32"))),
    reads: [],
  }) as any;
}

// ---- creation --------------------------------------------------------------------------------

function upload<S extends Shape>(data: ArrayLike<number>, shape: S, dtype: DType): Tensor<S> {
  if (dtype === "f64" && backend.name !== "cpu") {
    throw new Error(`${backend.name}: f64 is not supported; use the cpu backend`);
  }
  const buf = backend.upload(data, dtype);
  if (dtype === "i32" && data.length <= 1 << 20) hostIndex.set(buf, Int32Array.from(data));
  return fromBuffer(shape, buf);
}

function flatten(data: Nested, shape: number[], out: number[], depth: number, path: string): boolean {
  // The first leaf fixes the rank: every leaf must sit at that depth, every array above it.
  if (!Array.isArray(data)) {
    if (depth !== shape.length) {
      throw new SH.ShapeError(`tensor: ragged nested array at ${path || "top level"}`);
    }
    if (typeof data !== "number" && typeof data !== "boolean") {
      throw new TypeError(`tensor: element at ${path || "top level"} is not a number`);
    }
    out.push(+data);
    return typeof data === "boolean";
  }
  if (shape.length === depth) {
    if (out.length > 0) throw new SH.ShapeError(`tensor: ragged nested array at ${path || "top level"}`);
    shape.push(data.length);
  } else if (shape[depth] !== data.length) {
    throw new SH.ShapeError(
      `tensor: ragged nested array at ${path || "top level"} (length ${data.length}, expected ${
        shape[depth]
      })`,
    );
  }
  let bool = false;
  data.forEach((d, i) => (bool = flatten(d, shape, out, depth + 1, `${path}[${i}]`) || bool));
  return bool;
}

/** A tensor from nested arrays; the shape is inferred, also at compile time:
 * `tensor([[1, 2], [3, 4]])` is `Tensor<[2, 2]>`. */
export function tensor<const T extends Nested>(data: T, dtype?: DType): Tensor<FromNested<T>> {
  const shape: number[] = [];
  const flat: number[] = [];
  const bool = flatten(data, shape, flat, 0, "");
  return upload(flat, shape, dtype ?? (bool ? "bool" : "f32")) as any;
}

/** A tensor from a flat array and a shape. */
export function fromArray<const S extends Shape>(
  data: ArrayLike<number>,
  shape: S,
  dtype: DType = "f32",
): Tensor<S> {
  if (data.length !== numel(shape)) {
    throw new SH.ShapeError(
      `fromArray: ${data.length} values do not fill shape ${SH.fmtShape(shape)} (${numel(shape)} elements)`,
    );
  }
  return upload(data, shape, dtype);
}

/** A tensor of `shape` filled with `value` (no memory until it is used). */
export function full<const S extends Shape>(shape: S, value: number, dtype: DType = "f32"): Tensor<S> {
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new SH.ShapeError(`full: invalid shape ${SH.fmtShape(shape)}`);
  }
  return construct(shape, { exp: X.cnst(value, dtype), reads: [] });
}
/** Zeros. */
export function zeros<const S extends Shape>(shape: S, dtype: DType = "f32"): Tensor<S> {
  return full(shape, 0, dtype);
}
/** Ones. */
export function ones<const S extends Shape>(shape: S, dtype: DType = "f32"): Tensor<S> {
  return full(shape, 1, dtype);
}
/** Zeros shaped like `t`. */
export function zerosLike<S extends Shape>(t: Tensor<S>): Tensor<S> {
  return full(t.shape, 0, t.dtype);
}
/** Ones shaped like `t`. */
export function onesLike<S extends Shape>(t: Tensor<S>): Tensor<S> {
  return full(t.shape, 1, t.dtype);
}
/** `value` shaped like `t`. */
export function fullLike<S extends Shape>(t: Tensor<S>, value: number): Tensor<S> {
  return full(t.shape, value, t.dtype);
}

/** start, start+step, … below end (`arange(n)` is 0…n−1); i32 when all arguments are integers. */
export function arange(start: number, end?: number, step = 1, dtype?: DType): Tensor<[number]> {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new RangeError("arange: step must not be 0");
  const n = Math.max(0, Math.ceil((end - start) / step));
  const dt = dtype ?? ([start, end, step].every(Number.isInteger) ? "i32" : "f32");
  const i = X.cast(X.idx(0), dt);
  return construct([n], {
    exp: X.bin("add", X.bin("mul", i, X.cnst(step, dt)), X.cnst(start, dt)),
    reads: [],
  });
}

/** A small seedable PRNG (mulberry32): the same seed gives the same tensors on every backend. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let globalRng = rng(0);
/** Seed the generator behind `rand`/`randn` when no seed is given. */
export function manualSeed(seed: number): void {
  globalRng = rng(seed);
}

/** Uniform [0, 1) samples. */
export function rand<const S extends Shape>(
  shape: S,
  opts: { seed?: number; dtype?: DType } = {},
): Tensor<S> {
  const r = opts.seed === undefined ? globalRng : rng(opts.seed);
  return upload(Array.from({ length: numel(shape) }, r), shape, opts.dtype ?? "f32");
}
/** Standard normal samples (Box–Muller). */
export function randn<const S extends Shape>(
  shape: S,
  opts: { seed?: number; dtype?: DType; std?: number } = {},
): Tensor<S> {
  const r = opts.seed === undefined ? globalRng : rng(opts.seed);
  const n = numel(shape), std = opts.std ?? 1;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r(), v = r();
    const m = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return upload(out, shape, opts.dtype ?? "f32");
}
/** Uniform samples shaped like `t`. */
export function randLike<S extends Shape>(t: Tensor<S>, seed?: number): Tensor<S> {
  return rand(t.shape, { seed, dtype: t.dtype });
}
/** Normal samples shaped like `t`. */
export function randnLike<S extends Shape>(t: Tensor<S>, seed?: number): Tensor<S> {
  return randn(t.shape, { seed, dtype: t.dtype });
}

// ---- memory scopes ---------------------------------------------------------------------------

/** Exempt tensors from every enclosing `scope` (parameters, optimizer state). Returns its input. */
export function keep<T>(t: T): T {
  visit(t, (x) => scopes.forEach((s) => s.delete(x)));
  return t;
}

function visit(v: unknown, f: (t: Tensor<any>) => void, seen = new Set<unknown>()): void {
  if (v instanceof Tensor) return f(v);
  if (!v || typeof v !== "object" || seen.has(v)) return;
  seen.add(v);
  for (const x of Array.isArray(v) ? v : v instanceof Map ? v.values() : Object.values(v)) visit(x, f, seen);
}

/** Run `fn`; tensors created inside are disposed at the end, except those in its result (moved to
 * the enclosing scope) and those passed to `keep`. Async functions are awaited first (do not
 * interleave two async scopes). */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Tensor<any>>();
  scopes.push(mine);
  const end = (result: unknown) => {
    scopes.splice(scopes.lastIndexOf(mine), 1);
    visit(result, (t) => {
      if (mine.delete(t)) scopes[scopes.length - 1]?.add(t);
    });
    for (const t of mine) t.dispose();
    return result;
  };
  let out: T;
  try {
    out = fn();
  } catch (e) {
    end(undefined);
    throw e;
  }
  if (out instanceof Promise) return out.then(end, (e) => (end(undefined), Promise.reject(e))) as T;
  return end(out) as T;
}
