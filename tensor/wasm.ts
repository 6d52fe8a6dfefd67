/**
 * WebAssembly for the CPU backend: a tiny binary emitter (no .wasm file, no tools, no permissions:
 * `new WebAssembly.Module(bytes)` is all it takes), the one memory every module imports, and a SIMD
 * matrix multiply (render/wasm.ts renders elementwise kernels with the same emitter). Matmul sums
 * accumulate in f32, unlike the f64 JavaScript kernel; they use relaxed SIMD's fused multiply-add
 * where the host validates it.
 *
 * Inside wasm memory: A's and B's arrays (where they are when they live there, else their spans copied
 * in), packed by WebAssembly (vector copies or 4×4 transposes where a panel's rows or columns are
 * adjacent) from their strided views into panels of 5 rows of A (Ap[i/5][k][i%5]) and 8 columns of B
 * (Bp[j/8][k][j%8]), one contiguous step per k, zero-padded; then C padded to a multiple of 5 rows and 8
 * columns (only its valid part is copied out). The module exports a function over a block of tiles;
 * JavaScript loops over cache blocks. The CPU backend's f32 buffers live in this memory too (heapArray).
 *
 * @module
 */

/** Unsigned LEB128: sizes, counts, indices, alignments, offsets. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    out.push(n ? b | 0x80 : b);
  } while (n);
  return out;
}

/** Signed LEB128: `i32.const` immediates (so 64 needs two bytes, its 0x40 bit would read as sign). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** A length-prefixed vector: the count, then the items. */
export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
/** A section: its id, its byte size, its bytes. */
const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
/** A name (ASCII here). */
const name = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

export const I32 = 0x7f, V128 = 0x7b; // value types
// SIMD ops are 0xfd + LEB opcode; memory ops carry (log2 alignment, offset).
export const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...uleb(op), ...imm];

/** Opcodes by name, as a small text assembler writes them (SIMD ones are 0xfd-prefixed; `f.` is
 * f32x4, `d.` f64x2, `i.` i32x4, `v.` v128; memory ops take alignment 4 bytes and offset 0). */
// deno-fmt-ignore
const CODES: Record<string, number[]> = {
  block: [0x02, 0x40], loop: [0x03, 0x40], if: [0x04, 0x40], end: [0x0b], "i32.add": [0x6a],
  "i32.sub": [0x6b], "i32.mul": [0x6c], "i32.ge_s": [0x4e], "i32.and": [0x71], "i32.shr_u": [0x76],
  "f64.add": [0xa0], "f32.min": [0x96], "f32.max": [0x97], "f32.demote": [0xb6], "f32.store": [0x38, 2, 0],
  "f32.load": [0x2a, 2, 0], "v.load": simd(0, 2, 0), "v.load_splat": simd(9, 2, 0), "v.store": simd(11, 2, 0),
  "v.high": simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15), // lanes 2, 3 to 0, 1
  ...Object.fromEntries(Object.entries({
    "f.add": 0xe4, "f.sub": 0xe5, "f.mul": 0xe6, "f.div": 0xe7, "f.min": 0xe8, "f.max": 0xe9, "f.pmin": 0xea, "f.pmax": 0xeb, "f.neg": 0xe1,
    "f.abs": 0xe0, "f.sqrt": 0xe3, "f.floor": 0x68, "f.eq": 0x41, "f.ne": 0x42, "f.lt": 0x43,
    "f.gt": 0x44, "f.le": 0x45, "f.ge": 0x46, "v.not": 0x4d, "v.and": 0x4e, "v.or": 0x50, "v.select": 0x52,
    "i.add": 0xae, "i.sub": 0xb1, "i.shl": 0xab, "i.shr_s": 0xac, "i.shr_u": 0xad, "i.lt_s": 0x39, "i.splat": 0x11,
    "f.convert_i": 0xfa, "d.promote": 0x5f, "d.add": 0xf0, "f.madd": 0x105, // relaxed
  }).map(([k, op]) => [k, simd(op)])),
};
/** The `i4:`/`f4:` immediates: a v128 constant of four `T` lanes. */
const v128 = (T: typeof Float32Array | typeof Int32Array) => (a: number[]): number[] =>
  simd(0x0c, ...new Uint8Array(T.from(a.length === 4 ? a : [a[0], a[0], a[0], a[0]]).buffer));
/** i8x16.shuffle of a vector with itself: its lane j in all four. */
const lane = (j: number) => simd(0x0d, ...Array.from({ length: 16 }, (_, i) => 4 * j + (i & 3)));
/** Instructions with an immediate, written `name:n`; `i4:` and `f4:` are v128 constants of four
 * i32 or f32 lanes (one value is splat); `lane:j` is `lane(j)`; `v.shuf:a,b,c,d` takes f32 lanes a-d of
 * two vectors (4-7: the second's); v128 loads and stores with an offset (`v.load:16`) take alignment
 * 16 bytes (load32_splat 4). */
// deno-fmt-ignore
const IMM: Record<string, (a: number[]) => number[]> = {
  get: ([n]) => [0x20, ...uleb(n)], set: ([n]) => [0x21, ...uleb(n)], tee: ([n]) => [0x22, ...uleb(n)],
  i32: ([n]) => [0x41, ...sleb(n)], "f.lane": ([n]) => simd(0x1f, n), "d.lane": ([n]) => simd(0x21, n),
  call: ([n]) => [0x10, n], br: ([n]) => [0x0c, n], br_if: ([n]) => [0x0d, n], lane: ([j]) => lane(j),
  i4: v128(Int32Array), f4: v128(Float32Array), "v.load": ([o]) => simd(0, 4, ...uleb(o)),
  "v.store": ([o]) => simd(11, 4, ...uleb(o)), "v.load_splat": ([o]) => simd(9, 2, ...uleb(o)),
  "f32.store": ([o]) => [0x38, 2, ...uleb(o)],
  "v.shuf": (l) => simd(0x0d, ...l.flatMap((j) => [0, 1, 2, 3].map((b) => 4 * j + b))),
};
/** Assemble whitespace-separated instructions (a tiny WAT): names from CODES, `name:n[,n…]` from
 * IMM, and bare numbers (or Infinity, NaN) as f32x4 constants. */
export function asm(src: string): number[] {
  return src.trim().split(/\s+/).flatMap((t) => {
    const [op, arg] = t.split(":");
    if (arg !== undefined) return IMM[op](arg.split(",").map(Number));
    if (CODES[t]) return CODES[t];
    if (Number.isNaN(Number(t)) && t !== "NaN") throw new Error(`asm: unknown instruction ${t}`);
    return IMM.f4([Number(t)]);
  });
}

/** Rows and columns of C per tile, held in registers: 5 × 8 = ten v128 accumulators, two of B, four
 * rows of A and one of them splat: the 15 vector registers V8 allocates on x86-64. */
const MR = 5, NR = 8;
/** Cache blocks, in rows of A and steps of k (100 × 256 f32 = 100 KiB of packed A in L2). */
const MC = 20 * MR, KC = 256;
/** `local += by` for i32 locals (pointer bumps). */
const bump = (l: number, by: string) => `get:${l} ${by} i32.add set:${l}`;
/** A do-while loop on a counter local: body, then `--n != 0` branches back (callers ensure n ≥ 1). */
const loop = (n: number, body: string) => `loop ${body} get:${n} i32:1 i32.sub tee:${n} br_if:0 end`;

/**
 * tile(ap, bp, cp, k, ldc, add): one MR×8 block of C (byte address cp, rows ldc bytes apart) gets
 * A·B over k steps, added to it if `add` (else it starts from zero). A and B are packed panels: per k,
 * MR floats of A and 8 of B. Deno's V8 bounds-checks every load with a dynamic address, so loads are
 * what to save: per k, two v128 loads of B, one of A's rows 0-3 (each splat by a shuffle) and a
 * load32_splat of row 4, for 2·MR multiply-adds. Locals: 0-5 params, the accumulators (row r, half h
 * at acc + 2r + h), the two B vectors, four rows of A, one splat.
 */
function tile(fma: boolean): Func {
  const [ap, bp, cp, k, ldc, add] = [0, 1, 2, 3, 4, 5], acc = 6, b = acc + 2 * MR;
  const a = b + 2, s = a + 1, k4 = s + 1;
  let code = `get:${add} if`; // if add: load C (else the zero-initialised locals)
  for (let r = 0; r < MR; r++) {
    const c = `get:${cp} get:${ldc} i32:${r} i32.mul i32.add`;
    code += ` ${c} v.load:0 set:${acc + 2 * r} ${c} v.load:16 set:${acc + 2 * r + 1}`;
  }
  // Accumulator c += splat · B vector y: one fused multiply-add, or a multiply and an add.
  const mac = (c: number, y: number) =>
    fma ? `get:${s} get:${y} get:${c} f.madd set:${c}` : `get:${c} get:${s} get:${y} f.mul f.add set:${c}`;
  // Steps u of k, from offsets of the A and B pointers, then the pointers bumped.
  const step = (u: number, oa = 4 * MR * u, ob = 4 * NR * u) => {
    let body = `get:${bp} v.load:${ob} set:${b} get:${bp} v.load:${ob + 16} set:${b + 1}`;
    for (let r = 0; r < MR; r++) {
      const shuffled = r - (r % 4) + 1 < MR; // rows in groups of four from one load; a lone last row splat
      if (shuffled && r % 4 === 0) body += ` get:${ap} v.load:${oa + 4 * r} set:${a}`;
      body += shuffled ? ` get:${a} get:${a} lane:${r % 4}` : ` get:${ap} v.load_splat:${oa + 4 * r}`;
      body += ` set:${s} ${mac(acc + 2 * r, b)} ${mac(acc + 2 * r + 1, b + 1)}`;
    }
    return body;
  };
  const bumps = (U: number) => ` ${bump(ap, `i32:${4 * MR * U}`)} ${bump(bp, `i32:${4 * NR * U}`)}`;
  const steps = (U: number) => [...Array(U).keys()].map((u) => step(u)).join(" ") + bumps(U);
  // k in fours (unrolled: fewer loop and bounds-check instructions per multiply-add), then the rest.
  code += ` end get:${k} i32:2 i32.shr_u tee:${k4} if ${loop(k4, steps(4))} end`;
  code += ` get:${k} i32:3 i32.and tee:${k4} if ${loop(k4, steps(1))} end`;
  for (let r = 0; r < MR; r++) {
    code += ` get:${cp} get:${acc + 2 * r} v.store:0 get:${cp} get:${acc + 2 * r + 1} v.store:16`;
    code += ` ${bump(cp, `get:${ldc}`)}`;
  }
  const locals = vec([[2 * MR + 4, V128], [1, I32]]);
  return { params: I32S.slice(3), results: [], body: [...locals, ...asm(code), 0x0b] };
}

/**
 * mm(ap, bp, cp, mp, np, k, K, ldc, add): tile over mp row panels × np column panels, k steps each,
 * column panel outer (its B panel stays in L1 across row panels). Panels of A and B are K steps long;
 * C rows ldc bytes. Callers ensure mp, np, k ≥ 1. Locals: 0-8 params, 9 i, 10 pa, 11 pc.
 */
function mm(): Func {
  const [ap, bp, cp, mp, np, k, K, ldc, add, i, pa, pc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  // Call tile, then step to the next row panel of A and of C.
  const inner = `get:${pa} get:${bp} get:${pc} get:${k} get:${ldc} get:${add} call:0
    ${bump(pa, `get:${K} i32:${4 * MR} i32.mul`)} ${bump(pc, `get:${ldc} i32:${MR} i32.mul`)}`;
  // Each column panel: all row panels, then step to the next column panel of B and of C.
  const outer = `get:${mp} set:${i} get:${ap} set:${pa} get:${cp} set:${pc} ${loop(i, inner)}
    ${bump(bp, `get:${K} i32:${4 * NR} i32.mul`)} ${bump(cp, `i32:${4 * NR}`)}`;
  return { params: I32S, results: [], body: [...vec([[3, I32]]), ...asm(loop(np, outer)), 0x0b] };
}

/** A function: its parameter and result types, and its body (locals, code, 0x0b). */
export type Func = { params: number[]; results: number[]; body: number[] };

/** A module of `funcs` importing memory "m"."m" (shared, up to 4 GiB, if `shared`) and exporting the
 * last function as "f". */
export function moduleBytes(funcs: Func[], shared = false): Uint8Array<ArrayBuffer> {
  const type = (f: Func) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))];
  const body = (b: number[]): number[] => [...uleb(b.length), ...b];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // "\0asm", version 1
    ...section(1, vec(funcs.map(type))), // function i has type i
    ...section(2, vec([[...name("m"), ...name("m"), 0x02, ...(shared ? [3, 1, ...uleb(PAGES)] : [0, 1])]])),
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec([[...name("f"), 0x00, ...uleb(funcs.length - 1)]])),
    ...section(10, vec(funcs.map((f) => body(f.body)))),
  ]);
}

/** The memory all kernels share (inputs are copied in, results out), or null without WebAssembly:
 * a shared one (its buffer a SharedArrayBuffer, so worker threads run kernels on it too) if the host
 * allows. Its maximum, wasm32's 4 GiB, is only reserved address space. */
let memory: WebAssembly.Memory | undefined;
let f32view: Float32Array = new Float32Array(0);
const PAGES = 65536;

/** A compiled kernel, with its module and a number naming it to the workers. Workers get the module
 * itself, not its bytes: they share its machine code, optimized code included (a fresh compile would
 * run a long first call unoptimized). */
export type Kernel = ((...args: number[]) => void) & { id: number; module: WebAssembly.Module };
const kernelCount = { n: 0 };

/** The memory, made on first use; its size in bytes is `wasmMemory().buffer.byteLength`. */
export function wasmMemory(): WebAssembly.Memory {
  try { // (a browser page that is not cross-origin isolated has no SharedArrayBuffer)
    if (globalThis.SharedArrayBuffer) {
      memory ??= new WebAssembly.Memory({ initial: 1, maximum: PAGES, shared: true });
    }
  } catch { /* not shared, then */ }
  return memory ??= new WebAssembly.Memory({ initial: 1 });
}
/** Whether the memory is shared (its buffer a SharedArrayBuffer). */
const isShared = () => !!globalThis.SharedArrayBuffer && wasmMemory().buffer instanceof SharedArrayBuffer;

/** Compile `funcs` against the shared memory; the exported function, or null when WebAssembly (or
 * an instruction used) is unavailable. */
export function instantiate(funcs: Func[]): Kernel | null {
  try {
    const m = wasmMemory(), module = new WebAssembly.Module(moduleBytes(funcs, isShared()));
    const inst = new WebAssembly.Instance(module, { m: { m } });
    return Object.assign(inst.exports.f as () => void, { id: kernelCount.n++, module });
  } catch {
    return null;
  }
}

/**
 * A worker runs the calls it is sent, then marks its state word 0 (done; 3 if a kernel threw) and
 * wakes the main thread. Idle for IDLE_MS, it marks itself 2 (gone) and closes, so that no worker
 * keeps a process alive or outlives a test; the main thread claims a worker by moving 0 to 1, and
 * starts a new one where it finds 2.
 */
const WORKER = `let ctl, me, memory, timer; const fns = new Map();
onmessage = ({ data: d }) => {
  clearTimeout(timer);
  if (d.ctl) ({ ctl, me, memory } = d);
  let state = 0;
  try {
    for (const [id, mod] of d.mods) {
      fns.set(id, new WebAssembly.Instance(mod, { m: { m: memory } }).exports.f);
    }
    for (const args of d.calls) fns.get(d.id)(...args);
  } catch { state = 3; }
  Atomics.store(ctl, me, state);
  Atomics.notify(ctl, me);
  if (state) close();
  timer = setTimeout(() => Atomics.compareExchange(ctl, me, 0, 2) === 0 && close(), 500);
};`;
type Pool = { ctl: Int32Array; workers: Worker[]; sent: Set<number>[]; url: string };
let pool: Pool | null | undefined;

function startPool(): Pool | null {
  try {
    const n = Math.min(globalThis.navigator?.hardwareConcurrency || 2, 8) - 1;
    if (n < 1) return null;
    if (!isShared()) throw new Error("memory not shared");
    const ctl = new Int32Array(new SharedArrayBuffer(4 * n)).fill(2);
    Atomics.wait(ctl, 0, 0, 0); // throws where this thread may not block (a browser's main thread)
    const url = URL.createObjectURL(new Blob([WORKER], { type: "text/javascript" }));
    return { ctl, workers: [], sent: [], url };
  } catch {
    console.info("tensor: WebAssembly kernels run on one thread (no shared memory, Worker or Atomics.wait)");
    return null;
  }
}

/** Threads kernels may be split across: this one and the workers. */
export function threads(): number {
  if (pool === undefined) pool = startPool(); // (null: tried once, no pool)
  return pool ? pool.ctl.length + 1 : 1;
}

/** Run kernel `f` on each argument list of `calls[t]` in thread t (0: this one, at most threads()),
 * returning when all are done. */
export function parallel(f: Kernel, calls: number[][][]): void {
  const p = threads() > 1 ? pool! : null, n = p ? calls.length - 1 : 0;
  for (let w = 0; w < n; w++) {
    const msg = { id: f.id, calls: calls[w + 1], mods: [] as [number, WebAssembly.Module][] };
    if (Atomics.compareExchange(p!.ctl, w, 0, 1) !== 0) { // gone: start a new worker
      p!.workers[w] = new Worker(p!.url, { type: "module" });
      p!.sent[w] = new Set();
      Object.assign(msg, { ctl: p!.ctl, me: w, memory });
      Atomics.store(p!.ctl, w, 1);
    }
    if (!p!.sent[w].has(f.id)) msg.mods.push([f.id, f.module]), p!.sent[w].add(f.id);
    p!.workers[w].postMessage(msg);
  }
  for (const args of n ? calls[0] : calls.flat()) f(...args);
  let failed = false;
  for (let w = 0; w < n; w++) {
    while (Atomics.load(p!.ctl, w) === 1) Atomics.wait(p!.ctl, w, 1);
    failed ||= p!.ctl[w] === 3;
  }
  if (failed) throw new Error("a WebAssembly kernel failed in a worker");
}

/** Grow the memory to at least `bytes`; false when it cannot (past wasm32's 4 GiB, or out of memory). */
function grow(bytes: number): boolean {
  try {
    const have = memory!.buffer.byteLength;
    if (bytes > have) memory!.grow(Math.ceil((bytes - have) / 65536));
    return true;
  } catch {
    return false;
  }
}

/** An f32 view of the shared memory, grown to at least `bytes`, for a kernel's scratch (below BASE
 * once buffers live above it); null when it cannot grow. */
export function heap(bytes: number): Float32Array | null {
  if (!memory || (bytes > 4 * BASE && top > BASE) || !grow(bytes)) return null;
  if (f32view.buffer !== memory.buffer) f32view = new Float32Array(memory.buffer); // growing detaches
  return f32view;
}

/** The CPU backend's f32 buffers live in the shared memory from float BASE (the first GiB is the
 * kernels' scratch), so kernels read and write them in place. The memory never shrinks, so a freed
 * place is reused by any length of its size class: ever new lengths (a growing KV cache, varying
 * batches) then reuse old places instead of taking new ones. */
const BASE = 1 << 28, spare = new Map<number, number[]>(), ours = new WeakSet<ArrayBufferLike>();
let top = BASE;
/** A length's size class: rounded up to a multiple of a quarter of its power of two (of 4 at least),
 * so at most 25% of a place goes unused. */
function sizeClass(n: number): number {
  const q = Math.max(4, 2 ** Math.floor(Math.log2(n + 1)) / 4);
  return Math.ceil(n / q) * q;
}

/** n floats of the shared memory, 16-byte aligned and followed by 4 floats of slack or more (a kernel's
 * last vector may spill there), or null where the memory is not shared (growing would detach it) or full. */
export function heapArray(n: number): Float32Array | null {
  if (!isShared()) return null;
  const c = sizeClass(n), at = spare.get(c)?.pop() ?? top;
  if (at === top && !grow(4 * (top + c + 8))) return null; // (a packing copy may read 7 floats past)
  if (at === top) top += c + 4;
  ours.add(memory!.buffer);
  return new Float32Array(memory!.buffer, 4 * at, n);
}

/** Give back an array from heapArray, for reuse. */
export function heapFree(a: Float32Array): void {
  const c = sizeClass(a.length);
  if (!spare.has(c)) spare.set(c, []);
  spare.get(c)!.push(a.byteOffset / 4);
}

/** Where `a` starts in the shared memory, in floats; -1 when it is not from heapArray. */
export const heapAt = (a: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number }): number =>
  ours.has(a.buffer) ? a.byteOffset / 4 : -1;

const I32S = [I32, I32, I32, I32, I32, I32, I32, I32, I32];
/** mm(ap, bp, cp, mp, np, k, K, ldc, add): with relaxed SIMD's FMA when it validates, else mul + add. */
let mmKernel: Kernel | null | undefined;
/** Multiply-adds (M·K·N) from which a matmul is split across threads (measured: smaller ones lose
 * more to the hand-off than they gain). */
const PAR_MIN = 1 << 20;
/** Floats of packed pairs a batched call puts in memory at once (64 MiB). */
const GROUP = 1 << 24;

/** A matrix operand: its array, where it starts, and its row and column strides (in elements). */
export type Operand = readonly [data: Float32Array, at: number, row: number, col: number];

/** pack(s, sr, sc, n, C, pad, d): n rows (sr bytes apart) by C columns (sc apart) from byte s, column by
 * column, into d (each column's n floats, then `pad` bytes skipped). Callers ensure n, C ≥ 1. With
 * `rows` (n ≤ 8 adjacent floats per column, `pad` the column's step), each column is two v128 copies
 * (the floats past n are overwritten by the next column, or lie in a region written later). With `cols`
 * (n = cols rows of adjacent floats, C counting runs of four columns), each run is loaded as a vector per
 * row and transposed: four rows by shuffles, the rest lane by lane. */
function pack(rows: boolean, cols = 0): Func {
  const [s, sr, sc, n, C, pad, d, t, r] = [0, 1, 2, 3, 4, 5, 6, 7, 8], x = 9, y = x + 4;
  const one = loop(r, `get:${d} get:${t} f32.load f32.store ${bump(d, "i32:4")} ${bump(t, `get:${sr}`)}`);
  const v = `get:${d} get:${s} v.load:0 v.store:0 get:${d} get:${s} v.load:16 v.store:16`;
  let col = cols ? "" : rows ? v : `get:${s} set:${t} get:${n} set:${r} ${one}`;
  for (let g = 0; g < cols; g += 4) { // rows g to g+3 (or fewer, lane by lane) of the next four columns
    const m = Math.min(4, cols - g), at = (j: number) => 4 * (j * cols + g);
    for (let i = 0; i < m; i++) {
      col += ` get:${s} get:${sr} i32:${g + i} i32.mul i32.add v.load:0 set:${x + i}`;
    }
    for (let j = 0; j < 4 && m < 4; j++) {
      for (let i = 0; i < m; i++) col += ` get:${d} get:${x + i} f.lane:${j} f32.store:${at(j) + 4 * i}`;
    }
    for (let i = 0; i < 4 && m === 4; i++) { // x0 x1 and x2 x3 interleaved, then their halves paired
      const [a, lanes] = [x + (i & 2), i % 2 ? "2,6,3,7" : "0,4,1,5"];
      col += ` get:${a} get:${a + 1} v.shuf:${lanes} set:${y + i}`;
    }
    for (let j = 0; j < 4 && m === 4; j++) {
      const [a, lanes] = [y + (j >> 1), j % 2 ? "2,3,6,7" : "0,1,4,5"];
      col += ` get:${d} get:${a} get:${a + 2} v.shuf:${lanes} v.store:${at(j)}`;
    }
  }
  const code = loop(C, `${col} ${bump(d, `get:${pad}`)} ${bump(s, `get:${sc}`)}`);
  return { params: I32S.slice(2), results: [], body: [...vec([[2, I32], [8, V128]]), ...asm(code), 0x0b] };
}
/** The pack kernels: scalar, rows, cols of MR rows, cols of NR rows. */
let packKernels: (Kernel | null)[] | undefined;

/** Widen `m` to where `ops` read: each array's first and last element read, in order of first use. */
function spans(m: Map<Float32Array, number[]>, ops: Operand[], R: number, C: number): typeof m {
  for (const [d, at, sr, sc] of ops) {
    const [lo, hi] = m.get(d) ?? [Infinity, 0];
    m.set(d, [Math.min(lo, at), Math.max(hi, at + (R - 1) * sr + (C - 1) * sc + 1)]);
  }
  return m;
}

/** Pack the R×C matrix `d` (its element 0 at heap float `from`) into the heap from `to` as
 * panels of P rows, each C steps of P values (row r, column c at to + (r - r % P)·C + c·P + r % P),
 * zeros past row R. */
function panels([, at, sr, sc]: Operand, R: number, C: number, P: number, to: number, from: number) {
  const [scalar, rows, cols] = [0, 1, P === MR ? 2 : 3].map((i) => packKernels![i]!);
  for (let r0 = 0; r0 < R; r0 += P) {
    const n = Math.min(P, R - r0), s = 4 * (from + at + r0 * sr), d = 4 * (to + r0 * C);
    const v = n === P && sr === 1, c4 = n === P && !v && sc === 1 ? C - C % 4 : 0; // c4: by transposes
    if (n < P) f32view.fill(0, d / 4, d / 4 + P * C);
    if (v) rows(s, 4, 4 * sc, n, C, 4 * P, d);
    if (c4) cols(s, 4 * sr, 16, n, c4 / 4, 16 * P, d);
    if (!v && C > c4) scalar(s + 4 * c4 * sc, 4 * sr, 4 * sc, n, C - c4, 4 * (P - n), d + 4 * c4 * P);
  }
}

/**
 * C = A·B in f32 with WebAssembly SIMD, for each of a batch of matrix pairs: writes
 * `out[at + (p*M + i)*N + j] = Σ_k A_p[i, k]·B_p[k, j]` for A_p (M×K) and B_p (K×N) read through their
 * strides (transposed and broadcast views need no copy). Accumulates in f32 (error ~ K·2⁻²⁴ of Σ|a||b|).
 *
 * @param as holds A_p[i, k] at `as[p][0][as[p][1] + i*as[p][2] + k*as[p][3]]`.
 * @param bs holds B_p[k, j] likewise (as many as `as`).
 * @param M rows of A and C; K, columns of A and rows of B; N, columns of B and C.
 * @param out receives the C_p (M×N row-major, one after another) starting at `at`.
 * @returns false when WebAssembly SIMD is unavailable or its memory cannot grow enough; the caller
 * then computes C in JavaScript.
 */
export function matmulF32(
  as: Operand[],
  bs: Operand[],
  [M, K, N]: number[],
  out: Float32Array,
  at: number,
): boolean {
  if (mmKernel === undefined) mmKernel = instantiate([tile(true), mm()]) ?? instantiate([tile(false), mm()]);
  packKernels ??= [pack(false), pack(true), pack(false, MR), pack(false, NR)].map((f) => instantiate([f]));
  if (!mmKernel || !packKernels.every((k) => k)) return false;
  if (M === 0 || N === 0 || !as.length) return true;
  if (K === 0) return (out.fill(0, at, at + as.length * M * N), true);
  const mp = Math.ceil(M / MR), np = Math.ceil(N / NR), Mp = mp * MR, Np = np * NR;
  // Element offsets, per pair (`size` apart): A and B packed into panels (zero-padded), then C (Mp × Np).
  const [bo, co, size] = [Mp * K, Mp * K + K * Np, Mp * K + K * Np + Mp * Np];
  const group = Math.max(1, Math.floor(GROUP / size)); // pairs packed at once
  if (as.length > group) {
    for (let p = 0; p < as.length; p += group) {
      const [a, b] = [as.slice(p, p + group), bs.slice(p, p + group)];
      if (!matmulF32(a, b, [M, K, N], out, at + p * M * N)) return false;
    }
    return true;
  }
  // Where each array's element 0 lies in the memory: arrays already there are read where they are;
  // the others' spans read (once each, shared by the pairs) are copied in after the pairs.
  const src = spans(spans(new Map(), as, M, K), bs, K, N), from = new Map<Float32Array, number>();
  for (const d of src.keys()) if (heapAt(d) >= 0) from.set(d, heapAt(d));
  for (const d of from.keys()) src.delete(d);
  const h = heap(4 * (size * as.length + [...src.values()].reduce((n, [lo, hi]) => n + hi - lo, 8)));
  if (!h) return false;
  let to = size * as.length;
  for (const [d, [lo, hi]] of src) h.set(d.subarray(lo, hi), to), from.set(d, to - lo), to += hi - lo;
  as.forEach((a, p) => panels(a, M, K, MR, p * size, from.get(a[0])!));
  bs.forEach((b, p) => panels([b[0], b[1], b[3], b[2]], N, K, NR, p * size + bo, from.get(b[0])!));
  // Threads take equal runs of pairs, or of one pair's row panels (or column panels, when there are
  // more of those). In each, cache blocking: MC rows × KC steps of A stay in L2 while each KC × 8
  // panel of B sits in L1.
  const P = mp >= np ? mp : np, work = M * K * N * as.length, batched = as.length > 1;
  const T = Math.min(work >= PAR_MIN ? threads() : 1, batched ? as.length : P);
  const block = (q: number, [r0, r1, c0, c1]: number[]) => {
    const run = [], at = q * size;
    for (let k0 = 0; k0 < K; k0 += KC) {
      for (let i0 = r0; i0 < r1; i0 += MC / MR) {
        const cp = 4 * (at + co + i0 * MR * Np + c0 * NR), kc = Math.min(KC, K - k0);
        const [ap, bp] = [4 * (at + i0 * MR * K + k0 * MR), 4 * (at + bo + c0 * K * NR + k0 * NR)];
        run.push([ap, bp, cp, Math.min(MC / MR, r1 - i0), c1 - c0, kc, K, 4 * Np, k0 ? 1 : 0]);
      }
    }
    return run;
  };
  const calls = Array.from({ length: T }, (_, t) => {
    const [lo, hi] = [t, t + 1].map((u) => Math.floor((u * (batched ? as.length : P)) / T));
    if (batched) return Array.from({ length: hi - lo }, (_, q) => block(lo + q, [0, mp, 0, np])).flat();
    return block(0, mp >= np ? [lo, hi, 0, np] : [0, mp, lo, hi]);
  });
  parallel(mmKernel, calls);
  for (let p = 0; p < as.length; p++) {
    const c = p * size + co, o = at + p * M * N;
    if (N === Np) out.set(h.subarray(c, c + M * N), o);
    else for (let i = 0; i < M; i++) out.set(h.subarray(c + i * Np, c + i * Np + N), o + i * N);
  }
  return true;
}
