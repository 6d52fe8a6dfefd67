/**
 * Lazy values and the memory behind them.
 *
 * A tensor's value is a *form*: an expression (exp.ts) over strided reads of reference-counted
 * storages. A realized tensor is the trivial form `load 0`. Elementwise ops only build bigger
 * forms, movement ops transform the reads (even of lazy forms), and the first consumer that needs
 * memory (a reduction, matmul, gather, read) runs the whole chain as one kernel. That is all the
 * fusion there is.
 *
 * Memory: a storage counts the forms that read it and frees its buffer with the last; `dispose`,
 * `scope` and `keep` release tensors early, and finalizers catch the ones dropped.
 */
import { arenas, contiguousStrides, isContig, numel } from "./backend.ts";
import type { Backend, BackendBuffer, Src, View } from "./backend.ts";
import { getBackend } from "./backends.ts";
import { sameBackend } from "./check.ts";
import * as X from "./exp.ts";
import type { DType, Exp } from "./exp.ts";
import { fmtShape, type Shape } from "./shape.ts";

// ---------------------------------------------------------------------------------------------
// Storage

const stats = { liveBytes: 0, liveBuffers: 0, liveTensors: 0, peakBytes: 0 };
// Give a storage's buffer back to its backend (its last release, or its finalizer).
function drop(h: { buf: BackendBuffer; backend: Backend; bytes: number }): void {
  stats.liveBytes -= h.bytes;
  stats.liveBuffers--;
  h.backend.free(h.buf);
}
// A safety net for tensors dropped without dispose(): their buffers go back when collected.
const finalizer = new FinalizationRegistry(drop);
// Tensors collected without dispose() stop counting as live.
const tensorFinalizer = new FinalizationRegistry<null>(() => stats.liveTensors--);

/** A backend buffer with a reference count: forms share storages, the last release frees. */
export class Storage {
  /** Forms reading this storage. */
  refs = 0;
  /** In-place writes so far (`assign`): reads made before one are stale. */
  version = 0;
  constructor(readonly buf: BackendBuffer, readonly backend: Backend) {
    stats.liveBytes += this.bytes;
    stats.liveBuffers++;
    stats.peakBytes = Math.max(stats.peakBytes, stats.liveBytes);
    finalizer.register(this, { buf, backend, bytes: this.bytes }, this);
  }
  /** Bytes held. */
  get bytes(): number {
    return this.buf.size * (this.buf.dtype === "f64" ? 8 : 4);
  }
  /** One more reader. */
  retain(): this {
    this.refs++;
    return this;
  }
  /** One reader fewer; the last frees the buffer. */
  release(): void {
    if (--this.refs > 0) return;
    finalizer.unregister(this);
    drop(this);
  }
}

/** Memory in use: bytes and buffers held by live tensors, bytes pooled by the backend, the number of
 * live (undisposed) tensors, and the most bytes live at once since the start or `resetPeakBytes()`. */
export function memoryStats(): {
  liveBytes: number;
  liveBuffers: number;
  pooledBytes: number;
  liveTensors: number;
  peakBytes: number;
} {
  return { ...stats, pooledBytes: getBackend().pooledBytes() };
}

/** Start `memoryStats().peakBytes` over from the bytes live now (like torch's reset_peak_memory_stats). */
export function resetPeakBytes(): void {
  stats.peakBytes = stats.liveBytes;
}

/** Submit queued device work (a training step's end). */
export function flush(): Promise<void> {
  return getBackend().flush();
}

// Indices uploaded from the host keep a host copy, so bounds are checked without a device read.
/** Host copies of small i32 uploads, by buffer. */
export const hostCopy: WeakMap<BackendBuffer, ArrayLike<number>> = new WeakMap();

// ---------------------------------------------------------------------------------------------
// Forms

/** One input of a form: a storage read through a view. */
export interface Read {
  /** The storage read. */
  st: Storage;
  /** How it is read (its shape is the form's shape). */
  view: View;
  /** The storage's version when this read was made. */
  version: number;
}
/** A lazy value: `exp` evaluated at every index, where `load k` reads `reads[k]`. */
export interface Form {
  /** The element expression. */
  exp: Exp;
  /** The inputs. */
  reads: Read[];
}

/** Whether a form is a plain read of one buffer. */
export const isLoad = (f: Form): boolean => f.exp.op === "load";
/** Where and how a read steps through its buffer. */
export const viewKey = (r: Read): string => `${r.view.offset};${r.view.strides}`;
// Whether an expression reads an index (`idx` leaves key as `#axis`).
const hasIdx = (e: Exp): boolean => X.key(e).includes("#");
/** A form's reads as the backend's sources; a read of memory since overwritten by `assign` throws. */
export const srcs = (f: Pick<Form, "reads">): Src[] =>
  f.reads.map((r) => {
    if (r.version === r.st.version) return { buf: r.st.buf, view: r.view };
    throw new Error(
      `a tensor read memory that a later assign overwrote in place (${r.st.buf.size} elements): ` +
        "realize() it before the assign to keep the old value",
    );
  });

/** The form of a contiguous buffer of `shape`. */
export function bufferForm(buf: BackendBuffer, shape: readonly number[], backend: Backend): Form {
  const view = { shape, strides: contiguousStrides(shape), offset: 0 };
  return { exp: X.load(0, buf.dtype), reads: [{ st: new Storage(buf, backend), view, version: 0 }] };
}

/** Apply a movement to a form: `view` maps each read's view, `axis` maps an `idx` leaf. */
export function moveForm(f: Form, view: (v: View) => View, axis: (a: number) => Exp): Form {
  const exp = hasIdx(f.exp) ? X.mapLeaves(f.exp, (l) => (l.op === "idx" ? axis(l.axis) : l)) : f.exp;
  return { exp, reads: f.reads.map((r) => ({ ...r, view: view(r.view) })) };
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

/** `x`'s value in shape `to` (same element count): a view of the form when strides allow, else
 * a view of a contiguous copy. */
export function reshapeForm(x: Lazy, to: number[]): Form {
  const move = (f: Form) => {
    const views = f.reads.map((r) => reshapeView(r.view, to));
    if (hasIdx(f.exp) || views.includes(null)) return null;
    return { exp: f.exp, reads: f.reads.map((r, i) => ({ ...r, view: views[i]! })) };
  };
  return move(x.form("reshape")) ?? move({ exp: X.load(0, x.dtype), reads: [contiguousRead(x, "reshape")] })!;
}

// ---------------------------------------------------------------------------------------------
// The lazy array: shape, dtype, form and ownership (the Tensor class adds the ops)

const scopes: Set<Lazy>[] = [];
let made = 0; // tensors made so far: compile tells state (made before a recording) from the step's own

/** What every tensor is underneath: a shape, a dtype and a form it owns. See `Tensor`. */
export class Lazy<S extends Shape = Shape> {
  /** The shape (a typed tuple). */
  readonly shape: S;
  /** Element type. */
  readonly dtype: DType;
  /** @internal Order of creation. */
  readonly id: number = made++;
  #form: Form | null;

  /** @internal Made by ops and creation functions. */
  constructor(shape: S, form: Form, dtype?: DType) {
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

  /** @internal The current form; `op` names the caller in the error for a disposed tensor. */
  form(op: string): Form {
    if (!this.#form) throw new Error(`${op}: tensor of shape ${fmtShape(this.shape)} was disposed`);
    return this.#form;
  }
  /** @internal Replace the form (in place; the old reads are released). */
  setForm(f: Form): void {
    f.reads.forEach((r) => r.st.retain());
    this.#form?.reads.forEach((r) => r.st.release());
    this.#form = f;
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

  /** Compute any pending (fused) work into a buffer now; returns this. */
  realize(): this {
    realizeForm(this);
    return this;
  }

  /** The backend holding this tensor's data. */
  backendOf(): Backend {
    return this.form("backendOf").reads[0]?.st.backend ?? getBackend();
  }
}

// ---------------------------------------------------------------------------------------------
// Realizing

/** Make `t`'s form a plain read of a buffer holding its value. */
export function realizeForm(t: Lazy, op = "realize"): Form {
  const f = t.form(op);
  return isLoad(f) ? f : materialize(t, f);
}

/** Run `f` into a fresh contiguous buffer and make that `t`'s form. */
function materialize(t: Lazy, f: Form): Form {
  const be = t.backendOf(), nf = bufferForm(be.map(f.exp, srcs(f), t.shape), t.shape, be);
  t.setForm(nf);
  return nf;
}

/** A realized read (any strides) for primitives that take buffers. */
export function realRead(t: Lazy, op: string): Src {
  return srcs(realizeForm(t, op))[0];
}

/** A contiguous read of `t` (copies when its view is strided). */
export function contiguousRead(t: Lazy, op: string): Read {
  const f = t.form(op);
  return isLoad(f) && isContig(f.reads[0].view) ? f.reads[0] : materialize(t, f).reads[0];
}

/** Overwrite `t`'s memory (made contiguous first) with host numbers `values()` now and, inside a
 * compiled step, again before every replay: how host state that changes per step (an optimizer's
 * step count and learning rate, dropout's draws) reaches a replayed step. Returns `t`. */
export function hostWrite<T extends Lazy>(t: T, values: () => ArrayLike<number>): T {
  const r = contiguousRead(t, "hostWrite"), be = r.st.backend;
  // Memory a recording step made may serve its other launches too: the writes get a constant of their own.
  const own = arenas.current?.owned.has(r.st.buf) ? be.upload(new Float32Array(t.size), t.dtype) : null;
  const write = () => be.write(own ?? r.st.buf, values());
  write();
  arenas.current?.hooks.push(write);
  t.setForm(own ? bufferForm(own, t.shape, be) : written(t, r));
  return t;
}

/** `t`'s form after its memory `r` was written in place: the storage's version moves on, so reads made
 * before the write are stale (`srcs` throws for them) and `t` reads the new value. */
export function written(t: Lazy, r: Read): Form {
  return { exp: X.load(0, t.dtype), reads: [{ ...r, version: ++r.st.version }] };
}

/** @internal How many tensors have been made (ids below it exist now). */
export const tensorsMade = (): number => made;

// ---------------------------------------------------------------------------------------------
// Fusion

// Fusion stops here: bigger operands are realized before they join a new expression. The CPU's
// JavaScript kernels compute in doubles, so there the cap also decides rounding.
const MAX_READS = 4, MAX_NODES = 40;

/** A form that reads `x` broadcast to `to`. Big lazy forms are realized first so broadcasting
 * never multiplies expensive work. */
export function expandForm(x: Lazy, to: readonly number[]): Form {
  let f = x.form("expand");
  if (!isLoad(f) && X.size(f.exp) > 6 && numel(to) > x.size) f = realizeForm(x, "expand");
  const from = x.shape, pad = to.length - from.length;
  const strides = (v: View) => to.map((n, d) => (d < pad || from[d - pad] !== n ? 0 : v.strides[d - pad]));
  const axis = (a: number) => (from[a] === to[a + pad] ? X.idx(a + pad) : X.cnst(0, "i32"));
  return moveForm(f, (v) => ({ shape: to, strides: strides(v), offset: v.offset }), axis);
}

/** Join operand forms (broadcast to `to`) into one expression over the union of their reads. */
export function fuse(ops: Lazy[], to: readonly number[], build: (e: Exp[]) => Exp, op = "fuse"): Form {
  const reads: Read[] = [];
  sameBackend(op, ops);
  const exps = ops.map((t) => {
    let f = t.form(op);
    const cap = f.reads[0]?.st.backend.fuseReads ?? MAX_READS;
    if (!isLoad(f) && (f.reads.length > cap || X.size(f.exp) > MAX_NODES)) f = realizeForm(t, op);
    f = t.shape.join() === to.join() ? f : expandForm(t, to);
    const slot = f.reads.map((r) => {
      const k = reads.findIndex((q) => q.st === r.st && viewKey(q) === viewKey(r));
      return k >= 0 ? k : reads.push(r) - 1;
    });
    return X.mapLeaves(f.exp, (l) => (l.op === "load" ? X.load(slot[l.i], l.dtype) : l));
  });
  return { exp: build(exps), reads };
}

// ---------------------------------------------------------------------------------------------
// Scopes

/** Exempt tensors from every enclosing `scope` (parameters, optimizer state). Returns its input. */
export function keep<T>(t: T): T {
  visit(t, (x) => scopes.forEach((s) => s.delete(x)));
  return t;
}

function visit(v: unknown, f: (t: Lazy) => void, seen = new Set<unknown>()): void {
  if (v instanceof Lazy) return f(v);
  if (!v || typeof v !== "object" || seen.has(v)) return;
  seen.add(v);
  for (const x of Array.isArray(v) ? v : v instanceof Map ? v.values() : Object.values(v)) visit(x, f, seen);
}

/** Run `fn`; tensors created inside are disposed at the end, except those in its result (moved to
 * the enclosing scope) and those passed to `keep`. Async functions are awaited first (do not
 * interleave two async scopes). */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Lazy>();
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
