// deno-lint-ignore-file no-explicit-any
// (`any` is the element shape of the argument tuple: a compiled function takes tensors of any shape.)
/**
 * `compile(step)`: record a step's kernel launches once and replay them.
 *
 * For each set of input shapes, the first call runs `fn` eagerly (optimizer state and caches get
 * made), the second runs it again while the backend records every launch with its buffers, and
 * later calls copy the inputs into the recorded inputs' memory and replay: no forms, no tape, no IR
 * keys, no allocation; on WebGPU one command encoder and one submit, bind groups made once. The
 * intermediates live in the step's own arena, reused by liveness while recording and never handed
 * to anything else, so replays find their memory untouched.
 *
 * The contract, as with jax.jit or tinygrad's TinyJit: `fn` does the same work on every call. Its
 * tensor arguments are its inputs; tensors made before it are state, updated with `assign` (in
 * place); numbers from the host are constants of the recording unless written with `hostWrite`
 * (optimizers write their step count and learning rate that way). Reading a value inside `fn` is
 * refused while recording: a replay cannot branch on data. Results are bit-identical to eager
 * runs: the same kernels in the same order.
 */
import { Arena, arenas, type Backend } from "../tensor/backend.ts";
import { bufferForm, keep, realRead, scope, tensorsMade } from "../tensor/lazy.ts";
import { load } from "../tensor/exp.ts";
import { getBackend, type Shape, Tensor } from "../tensor/mod.ts";
import { checkInt, typeName } from "../tensor/check.ts";

/** What a compiled step may return: a tensor, a list or a record of them. */
export type StepResult = Tensor<any> | Tensor<any>[] | Record<string, Tensor<any>>;

/** A compiled step: call it like `fn`; `dispose()` frees its recordings. */
export interface Compiled<A extends Tensor<any>[], R extends StepResult> {
  /** Run the step (eagerly, recording, or replaying). */
  (...args: A): R;
  /** Free every recording's memory. */
  dispose(): void;
}

/** Compile options. */
export interface CompileOptions {
  /** Recordings kept (by input shapes and dtypes; least recently used dropped first). Default 4. */
  cache?: number;
  /** Always run eagerly (for comparison, e.g. `--no-compile`). */
  eager?: boolean;
}

interface Recording {
  calls: number;
  be?: Backend;
  arena?: Arena;
  inputs?: Tensor<Shape>[];
  out?: StepResult;
}

function each(r: StepResult, f: (t: Tensor<any>) => Tensor<any>): StepResult {
  if (r instanceof Tensor) return f(r);
  return Array.isArray(r) ? r.map(f) : Object.fromEntries(Object.entries(r).map(([k, t]) => [k, f(t)]));
}

/** A copy of `t` in new memory (results leave the arena, which the next replay overwrites). */
function copy(t: Tensor<any>): Tensor<any> {
  const be = t.backendOf(), buf = be.map(load(0, t.dtype), [realRead(t, "compile")], t.shape);
  return new Tensor(t.shape, bufferForm(buf, t.shape, be));
}

/** Record `fn` once per input shapes and replay it afterwards (see the module comment). */
export function compile<A extends Tensor<any>[], R extends StepResult>(
  fn: (...args: A) => R,
  { cache = 4, eager = false }: CompileOptions = {},
): Compiled<A, R> {
  if (typeof fn !== "function") throw new TypeError(`compile: expected a function, got ${typeName(fn)}`);
  checkInt("compile: cache", cache);
  const recordings = new Map<string, Recording>();
  const drop = (r: Recording) => {
    if (!r.arena) return;
    // Buffers no tensor holds go back now; the outputs' (which `fn` may share) when those are dropped.
    arenas.live.delete(r.arena);
    for (const b of r.arena.spare) r.be!.free(b);
    r.inputs!.forEach((t) => t.dispose());
    r.arena = r.out = undefined;
  };

  const record = (r: Recording, args: A): R => {
    const inputs = r.inputs = args.map((a) => keep(copy(a)));
    r.be = getBackend();
    r.arena = arenas.current = new Arena(tensorsMade());
    arenas.live.add(r.arena);
    try {
      r.out = scope(() => {
        const out = fn(...inputs as A);
        if ((out as unknown) instanceof Promise) throw new Error("compile: the step must be synchronous");
        return each(out, (t) => keep(t.realize()));
      });
    } catch (e) {
      drop(r);
      r.calls = 1; // the next call records again
      throw e;
    } finally {
      arenas.current = null;
    }
    return each(r.out, copy) as R;
  };

  const replay = (r: Recording, args: A): R => {
    for (const write of r.arena!.hooks) write();
    args.forEach((a, i) => r.inputs![i].assign(a));
    r.be!.replay(r.arena!);
    return each(r.out!, copy) as R;
  };

  const run = (...args: A): R => {
    if (arenas.current) return fn(...args); // inside another recording: part of it
    const key = [getBackend().name, ...args.map((a) => `${a.dtype}[${a.shape}]`)].join(" ");
    const r = recordings.get(key) ?? { calls: 0 };
    recordings.delete(key); // most recent last
    recordings.set(key, r);
    const [oldest, o] = recordings.entries().next().value!;
    if (recordings.size > cache) drop(o), recordings.delete(oldest);
    r.calls++;
    if (eager || r.calls === 1) return fn(...args);
    return r.calls === 2 ? record(r, args) : replay(r, args);
  };
  return Object.assign(run, { dispose: () => recordings.forEach(drop) });
}
