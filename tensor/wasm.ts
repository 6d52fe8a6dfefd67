/**
 * WebAssembly for the CPU backend: a tiny binary emitter (no .wasm file, no tools, no permissions:
 * `new WebAssembly.Module(bytes)` is all it takes), the one memory every module imports, and a SIMD
 * matrix multiply (render/wasm.ts renders elementwise kernels with the same emitter). Matmul sums
 * accumulate in f32, unlike the f64 JavaScript kernel; they use relaxed SIMD's fused multiply-add
 * where the host validates it.
 *
 * Inside wasm memory: A as given (row-major; rows are read in place), B packed by JavaScript into
 * panels of 8 columns, k-major (Bp[j/8][k][j%8]: one contiguous 32-byte step per k), and C padded
 * to a multiple of 4 rows and 8 columns (padding is zero; only the valid part of C is copied out).
 * The module exports a function over a block of tiles; JavaScript loops over cache blocks.
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

// The few instructions the kernel uses, as byte arrays; `ops` concatenates them.
export const ops = (...parts: number[][]): number[] => parts.flat();
export const I32 = 0x7f, V128 = 0x7b; // value types
export const get = (i: number): number[] => [0x20, ...uleb(i)]; // local.get
export const set = (i: number): number[] => [0x21, ...uleb(i)]; // local.set
export const tee = (i: number): number[] => [0x22, ...uleb(i)]; // local.tee
export const i32 = (n: number): number[] => [0x41, ...sleb(n)]; // i32.const
export const [ADD, SUB, MUL] = [[0x6a], [0x6b], [0x6c]]; // i32.add, i32.sub, i32.mul
/** `local += value` for i32 locals (pointer bumps). */
export const bump = (l: number, value: number[]): number[] => ops(get(l), value, ADD, set(l));
/** A do-while loop on a counter local: body, then `--n != 0` branches back (callers ensure n ≥ 1).
 * 0x03 0x40 opens a loop with no result; 0x0d 0 is br_if to its head; 0x0b ends it. */
export const loop = (n: number, body: number[]): number[] =>
  ops([0x03, 0x40], body, get(n), i32(1), SUB, tee(n), [0x0d, 0, 0x0b]);
// SIMD ops are 0xfd + LEB opcode; memory ops carry (log2 alignment, offset).
export const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...uleb(op), ...imm];
export const load = (off: number): number[] => simd(0, 4, ...uleb(off)); // v128.load
export const splat = (off: number): number[] => simd(9, 2, ...uleb(off)); // v128.load32_splat
export const store = (off: number): number[] => simd(11, 4, ...uleb(off)); // v128.store
const [FADD, FMUL, MADD] = [simd(0xe4), simd(0xe6), simd(0x105)]; // f32x4.add, .mul, .relaxed_madd

/** Opcodes by name, as a small text assembler writes them (SIMD ones are 0xfd-prefixed; `f.` is
 * f32x4, `d.` f64x2, `i.` i32x4, `v.` v128; memory ops take alignment 4 bytes and offset 0). */
// deno-fmt-ignore
const CODES: Record<string, number[]> = {
  block: [0x02, 0x40], loop: [0x03, 0x40], end: [0x0b], "i32.add": [0x6a], "i32.sub": [0x6b], "i32.mul": [0x6c],
  "i32.ge_s": [0x4e], "f64.add": [0xa0], "f32.min": [0x96], "f32.max": [0x97], "f32.demote": [0xb6],
  "f32.store": [0x38, 2, 0], "v.load": simd(0, 2, 0), "v.load_splat": simd(9, 2, 0), "v.store": simd(11, 2, 0),
  "v.high": simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15), // lanes 2, 3 to 0, 1
  ...Object.fromEntries(Object.entries({
    "f.add": 0xe4, "f.sub": 0xe5, "f.mul": 0xe6, "f.div": 0xe7, "f.min": 0xe8, "f.max": 0xe9, "f.neg": 0xe1,
    "f.abs": 0xe0, "f.sqrt": 0xe3, "f.floor": 0x68, "f.nearest": 0x6a, "f.eq": 0x41, "f.ne": 0x42, "f.lt": 0x43,
    "f.gt": 0x44, "f.le": 0x45, "f.ge": 0x46, "v.not": 0x4d, "v.and": 0x4e, "v.or": 0x50, "v.select": 0x52,
    "i.add": 0xae, "i.sub": 0xb1, "i.shl": 0xab, "i.shr_s": 0xac, "i.shr_u": 0xad, "i.lt_s": 0x39, "i.splat": 0x11,
    "i.trunc_f": 0xf8, "f.convert_i": 0xfa, "d.promote": 0x5f, "d.add": 0xf0,
  }).map(([k, op]) => [k, simd(op)])),
};
/** The `i4:`/`f4:` immediates: a v128 constant of four `T` lanes. */
const v128 = (T: typeof Float32Array | typeof Int32Array) => (a: number[]): number[] =>
  simd(0x0c, ...new Uint8Array(T.from(a.length === 4 ? a : [a[0], a[0], a[0], a[0]]).buffer));
/** Instructions with an immediate, written `name:n`; `i4:` and `f4:` are v128 constants of four
 * i32 or f32 lanes (one value is splat). */
// deno-fmt-ignore
const IMM: Record<string, (a: number[]) => number[]> = {
  get: ([n]) => get(n), set: ([n]) => set(n), tee: ([n]) => tee(n), call: ([n]) => [0x10, n], br: ([n]) => [0x0c, n],
  br_if: ([n]) => [0x0d, n], i32: ([n]) => i32(n), "f.lane": ([n]) => simd(0x1f, n), "d.lane": ([n]) => simd(0x21, n),
  i4: v128(Int32Array), f4: v128(Float32Array),
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

/** Rows and columns of C per tile, held in registers: 6 × 8 = twelve v128 accumulators (with two
 * of B and one of A, 15 of x86-64's 16 vector registers). */
const MR = 6, NR = 8;
/** Cache blocks, in rows of A and steps of k (tuned on a 2-core Zen 3: 96 × 256 f32 = 96 KiB). */
const MC = 16 * MR, KC = 256;

/**
 * tile(ap, bp, cp, k, lda, ldc): adds A·B over k steps into one MR×8 block of C (byte addresses and
 * strides). Per k: two v128 loads of B, and per row one splat of A times both, into 2·MR
 * accumulators. Locals: 0-5 params, then pointers to A rows 1 to MR-1, the accumulators (row r,
 * half h at acc + 2r + h), the two B vectors, the splat of A.
 */
function tile(fma: boolean): number[] {
  const [ap, bp, cp, k, lda, ldc] = [0, 1, 2, 3, 4, 5], acc = 5 + MR, b = acc + 2 * MR, a = b + 2;
  const row = [ap, ...Array.from({ length: MR - 1 }, (_, r) => 6 + r)]; // locals pointing into A's rows
  const code: number[] = [];
  for (let r = 1; r < MR; r++) code.push(...ops(get(row[r - 1]), get(lda), ADD, set(row[r])));
  for (let r = 0; r < MR; r++) { // start from C (row r at cp + r·ldc): blocks of k accumulate
    const c = ops(get(cp), get(ldc), i32(r), MUL, ADD);
    code.push(...ops(c, load(0), set(acc + 2 * r), c, load(16), set(acc + 2 * r + 1)));
  }
  // Accumulator c += a · B half h: one fused multiply-add, or a multiply and an add.
  const mac = (c: number, h: number) =>
    ops(fma ? ops(get(a), get(b + h), get(c), MADD) : ops(get(c), get(a), get(b + h), FMUL, FADD), set(c));
  const body = ops(get(bp), load(0), set(b), get(bp), load(16), set(b + 1), bump(bp, i32(4 * NR)));
  for (let r = 0; r < MR; r++) {
    body.push(...ops(get(row[r]), splat(0), set(a), bump(row[r], i32(4))));
    for (let h = 0; h < 2; h++) body.push(...mac(acc + 2 * r + h, h));
  }
  code.push(...loop(k, body));
  for (let r = 0; r < MR; r++) {
    code.push(...ops(get(cp), get(acc + 2 * r), store(0), get(cp), get(acc + 2 * r + 1), store(16)));
    code.push(...bump(cp, get(ldc)));
  }
  return ops(vec([[MR - 1, I32], [2 * MR + 3, V128]]), code, [0x0b]);
}

/**
 * mm(ap, bp, cp, mp, np, k, K, ldc): tile over mp row panels × np column panels, k steps each,
 * column panel outer (its B panel stays in L1 across row panels). A rows and B panels are K floats
 * long; C rows ldc bytes. Callers ensure mp, np, k ≥ 1. Locals: 0-7 params, 8 lda, 9 i, 10 pa, 11 pc.
 */
function mm(): number[] {
  const [ap, bp, cp, mp, np, k, K, ldc, lda, i, pa, pc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const call = ops(get(pa), get(bp), get(pc), get(k), get(lda), get(ldc), [0x10, 0]); // call tile
  const inner = ops(call, bump(pa, ops(get(lda), i32(MR), MUL)), bump(pc, ops(get(ldc), i32(MR), MUL)));
  const outer = ops(get(mp), set(i), get(ap), set(pa), get(cp), set(pc), loop(i, inner));
  outer.push(...bump(bp, ops(get(K), i32(4 * NR), MUL)), ...bump(cp, i32(4 * NR)));
  const code = ops(get(K), i32(4), MUL, set(lda), loop(np, outer));
  return ops(vec([[4, I32]]), code, [0x0b]);
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

/** A compiled kernel, with its bytes and a number naming it to the workers. */
export type Kernel = ((...args: number[]) => void) & { id: number; bytes: Uint8Array };
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
    const m = wasmMemory(), bytes = moduleBytes(funcs, isShared());
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { m: { m } });
    return Object.assign(inst.exports.f as () => void, { id: kernelCount.n++, bytes });
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
    for (const [id, bytes] of d.mods) {
      fns.set(id, new WebAssembly.Instance(new WebAssembly.Module(bytes), { m: { m: memory } }).exports.f);
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
  pool ??= startPool();
  return pool ? pool.ctl.length + 1 : 1;
}

/** Run kernel `f` on each argument list of `calls[t]` in thread t (0: this one, at most threads()),
 * returning when all are done. */
export function parallel(f: Kernel, calls: number[][][]): void {
  const p = threads() > 1 ? pool! : null, n = p ? calls.length - 1 : 0;
  for (let w = 0; w < n; w++) {
    const msg = { id: f.id, calls: calls[w + 1], mods: [] as [number, Uint8Array][] };
    if (Atomics.compareExchange(p!.ctl, w, 0, 1) !== 0) { // gone: start a new worker
      p!.workers[w] = new Worker(p!.url, { type: "module" });
      p!.sent[w] = new Set();
      Object.assign(msg, { ctl: p!.ctl, me: w, memory });
      Atomics.store(p!.ctl, w, 1);
    }
    if (!p!.sent[w].has(f.id)) msg.mods.push([f.id, f.bytes]), p!.sent[w].add(f.id);
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

/** An f32 view of the shared memory, grown to at least `bytes`; null when it cannot grow. */
export function heap(bytes: number): Float32Array | null {
  if (!memory) return null;
  try {
    if (bytes > memory.buffer.byteLength) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
  } catch {
    return null; // past wasm32's 4 GiB, or out of memory
  }
  if (f32view.buffer !== memory.buffer) f32view = new Float32Array(memory.buffer); // growing detaches
  return f32view;
}

const I32S = [I32, I32, I32, I32, I32, I32, I32, I32];
/** mm(ap, bp, cp, mp, np, k, K, ldc): with relaxed SIMD's FMA when it validates, else mul + add. */
let mmKernel: Kernel | null | undefined;
/** Multiply-adds (M·K·N) from which a matmul is split across threads (measured: smaller ones lose
 * more to the hand-off than they gain). */
const PAR_MIN = 1 << 20;
const mmFuncs = (fma: boolean): Func[] => [
  { params: I32S.slice(2), results: [], body: tile(fma) },
  { params: I32S, results: [], body: mm() },
];

/**
 * C = A·B in f32 with WebAssembly SIMD: writes `out[outOffset + i*N + j] = Σ_k A[i*K + k]·B[k*N + j]`
 * for contiguous row-major A (M×K) and B (K×N). Accumulates in f32 (error ~ K·2⁻²⁴ of Σ|a||b|).
 *
 * @param A M×K row-major, read from index 0.
 * @param B K×N row-major, read from index 0.
 * @param M rows of A and C.
 * @param K columns of A, rows of B.
 * @param N columns of B and C.
 * @param out receives C (M×N row-major) starting at `outOffset`.
 * @param outOffset where C starts in `out`.
 * @returns false (and writes nothing) when WebAssembly SIMD is unavailable or its memory cannot grow
 * enough; the caller then falls back to JavaScript.
 */
export function matmulF32(
  A: Float32Array,
  B: Float32Array,
  M: number,
  K: number,
  N: number,
  out: Float32Array,
  outOffset: number,
): boolean {
  if (mmKernel === undefined) mmKernel = instantiate(mmFuncs(true)) ?? instantiate(mmFuncs(false));
  if (!mmKernel) return false;
  if (M === 0 || N === 0) return true;
  if (K === 0) return (out.fill(0, outOffset, outOffset + M * N), true);
  const mp = Math.ceil(M / MR), np = Math.ceil(N / NR), Mp = mp * MR, Np = np * NR;
  // Element offsets: A as given (padded to Mp rows), packed B, then C (Mp × Np).
  const [ao, bo, co] = [0, Mp * K, Mp * K + K * Np];
  const h = heap(4 * (co + Mp * Np));
  if (!h) return false;
  // Zero the padding (rows of A, columns of B's last panel): it only reaches dropped cells of C, but
  // stale bits there could be NaNs or denormals, which are slow on some CPUs.
  h.set(A.length === M * K ? A : A.subarray(0, M * K), ao);
  h.fill(0, ao + M * K, ao + Mp * K);
  if (N !== Np) h.fill(0, bo + (np - 1) * K * NR, bo + np * K * NR);
  for (let k = 0; k < K; k++) {
    for (let j = 0, src = k * N; j < N; j++) h[bo + ((j >> 3) * K + k) * NR + (j & 7)] = B[src + j];
  }
  h.fill(0, co, co + Mp * Np);
  // Threads take equal runs of row panels (or of column panels, when there are more of those). In
  // each, cache blocking: MC rows × KC steps of A stay in L2 while each KC × 8 panel of B sits in L1.
  const P = mp >= np ? mp : np, T = Math.min(M * K * N >= PAR_MIN ? threads() : 1, P);
  parallel(
    mmKernel,
    Array.from({ length: T }, (_, t) => {
      const [lo, hi] = [Math.floor(t * P / T), Math.floor((t + 1) * P / T)];
      const [r0, r1, c0, c1] = mp >= np ? [lo, hi, 0, np] : [0, mp, lo, hi], calls = [];
      for (let k0 = 0; k0 < K; k0 += KC) {
        for (let i0 = r0; i0 < r1; i0 += MC / MR) {
          const cp = 4 * (co + i0 * MR * Np + c0 * NR), kc = Math.min(KC, K - k0);
          const [ap, bp] = [4 * (ao + i0 * MR * K + k0), 4 * (bo + c0 * K * NR + k0 * NR)];
          calls.push([ap, bp, cp, Math.min(MC / MR, r1 - i0), c1 - c0, kc, K, 4 * Np]);
        }
      }
      return calls;
    }),
  );
  if (N === Np) out.set(h.subarray(co, co + M * N), outOffset);
  else for (let i = 0; i < M; i++) out.set(h.subarray(co + i * Np, co + i * Np + N), outOffset + i * N);
  return true;
}
