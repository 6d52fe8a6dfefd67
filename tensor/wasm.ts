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
const lanes = (
  a: number[],
  T: typeof Float32Array | typeof Int32Array,
) => [...new Uint8Array(T.from(a).buffer)];
/** Instructions with an immediate, written `name:n`; `i4:` and `f4:` are v128 constants of four
 * i32 or f32 lanes (one value is splat). */
// deno-fmt-ignore
const IMM: Record<string, (a: number[]) => number[]> = {
  get: ([n]) => get(n), set: ([n]) => set(n), tee: ([n]) => tee(n), call: ([n]) => [0x10, n], br: ([n]) => [0x0c, n],
  br_if: ([n]) => [0x0d, n], i32: ([n]) => i32(n), "f.lane": ([n]) => simd(0x1f, n), "d.lane": ([n]) => simd(0x21, n),
  i4: (a) => simd(0x0c, ...lanes(a.length === 4 ? a : [a[0], a[0], a[0], a[0]], Int32Array)),
  f4: (a) => simd(0x0c, ...lanes(a.length === 4 ? a : [a[0], a[0], a[0], a[0]], Float32Array)),
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

/** Rows and columns of C per tile, held in registers: 4 × 8 = eight v128 accumulators. */
const MR = 4, NR = 8;
/** Cache blocks, in rows of A and steps of k (tuned on a 2-core Zen 3: 64 × 256 f32 = 64 KiB). */
const MC = 64, KC = 256;

/**
 * tile(ap, bp, cp, k, lda, ldc): adds A·B over k steps into one 4×8 block of C (byte addresses and
 * strides). Per k: two v128 loads of B, and per row one splat of A times both, into 8 accumulators.
 * Locals: 0-5 params, 6-8 pointers to A rows 1-3, 9-16 accumulators (row r, half h at 9 + 2r + h),
 * 17-18 the B vectors, 19 the splat of A.
 */
function tile(fma: boolean): number[] {
  const [ap, bp, cp, k, lda, ldc, acc, b, a] = [0, 1, 2, 3, 4, 5, 9, 17, 19];
  const row = [ap, 6, 7, 8]; // locals pointing into A's rows
  const code: number[] = [];
  for (let r = 1; r < MR; r++) code.push(...ops(get(row[r - 1]), get(lda), ADD, set(row[r])));
  for (let r = 0; r < MR; r++) { // start from C (row r at cp + r·ldc): blocks of k accumulate
    const c = ops(get(cp), get(ldc), i32(r), MUL, ADD);
    code.push(...ops(c, load(0), set(acc + 2 * r), c, load(16), set(acc + 2 * r + 1)));
  }
  const body = ops(get(bp), load(0), set(b), get(bp), load(16), set(b + 1), bump(bp, i32(4 * NR)));
  for (let r = 0; r < MR; r++) {
    body.push(...ops(get(row[r]), splat(0), set(a), bump(row[r], i32(4))));
    for (let h = 0; h < 2; h++) {
      const c = acc + 2 * r + h;
      body.push(
        ...(fma ? ops(get(a), get(b + h), get(c), MADD) : ops(get(c), get(a), get(b + h), FMUL, FADD)),
        ...set(c),
      );
    }
  }
  code.push(...loop(k, body));
  for (let r = 0; r < MR; r++) {
    code.push(...ops(get(cp), get(acc + 2 * r), store(0), get(cp), get(acc + 2 * r + 1), store(16)));
    code.push(...bump(cp, get(ldc)));
  }
  return ops(vec([[3, I32], [11, V128]]), code, [0x0b]);
}

/**
 * mm(ap, bp, cp, mp, np, k, K): tile over mp row panels × np column panels, k steps each, column
 * panel outer (its B panel stays in L1 across row panels). A rows and B panels are K floats long.
 * Callers ensure mp, np, k ≥ 1. Locals: 0-6 params, 7 lda, 8 ldc, 9 i, 10 pa, 11 pc.
 */
function mm(): number[] {
  const [ap, bp, cp, mp, np, k, K, lda, ldc, i, pa, pc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const call = ops(get(pa), get(bp), get(pc), get(k), get(lda), get(ldc), [0x10, 0]); // call tile
  const inner = ops(call, bump(pa, ops(get(lda), i32(MR), MUL)), bump(pc, ops(get(ldc), i32(MR), MUL)));
  const outer = ops(get(mp), set(i), get(ap), set(pa), get(cp), set(pc), loop(i, inner));
  outer.push(...bump(bp, ops(get(K), i32(4 * NR), MUL)), ...bump(cp, i32(4 * NR)));
  const code = ops(get(K), i32(4), MUL, set(lda), get(np), i32(4 * NR), MUL, set(ldc), loop(np, outer));
  return ops(vec([[5, I32]]), code, [0x0b]);
}

/** A function: its parameter and result types, and its body (locals, code, 0x0b). */
export interface Func {
  params: number[];
  results: number[];
  body: number[];
}

/** A module of `funcs` importing memory "m"."m" and exporting the last function as "f". */
export function moduleBytes(funcs: Func[]): Uint8Array<ArrayBuffer> {
  const type = (
    f: Func,
  ): number[] => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))];
  const body = (b: number[]): number[] => [...uleb(b.length), ...b];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // "\0asm", version 1
    ...section(1, vec(funcs.map(type))), // function i has type i
    ...section(2, vec([[...name("m"), ...name("m"), 0x02, 0x00, 1]])), // import memory, min 1 page
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec([[...name("f"), 0x00, ...uleb(funcs.length - 1)]])),
    ...section(10, vec(funcs.map((f) => body(f.body)))),
  ]);
}

/** The memory all kernels share (inputs are copied in, results out), or null without WebAssembly. */
let memory: WebAssembly.Memory | null | undefined;
let f32view: Float32Array = new Float32Array(0);

/** Compile `funcs` against the shared memory; the exported function, or null when WebAssembly (or
 * an instruction used) is unavailable. */
export function instantiate(funcs: Func[]): ((...args: number[]) => void) | null {
  try {
    memory ??= new WebAssembly.Memory({ initial: 1 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes(funcs)), { m: { m: memory } });
    return inst.exports.f as (...args: number[]) => void;
  } catch {
    return null;
  }
}

/** An f32 view of the shared memory, grown to at least `bytes`; null when it cannot grow. */
export function heap(bytes: number): Float32Array | null {
  if (!memory) return null;
  if (bytes > memory.buffer.byteLength) {
    try {
      memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
    } catch {
      return null; // past wasm32's 4 GiB, or out of memory
    }
  }
  if (f32view.buffer !== memory.buffer) f32view = new Float32Array(memory.buffer); // growing detaches
  return f32view;
}

const I32S = [I32, I32, I32, I32, I32, I32, I32];
/** mm(ap, bp, cp, mp, np, k, K): with relaxed SIMD's FMA when it validates, else mul + add. */
let mmKernel: ((...args: number[]) => void) | null | undefined;
const mmFuncs = (fma: boolean): Func[] => [
  { params: I32S.slice(1), results: [], body: tile(fma) },
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
  // Cache blocking: MC rows × KC steps of A stay in L2 while each KC × 8 panel of B sits in L1.
  for (let k0 = 0; k0 < K; k0 += KC) {
    for (let i0 = 0; i0 < mp; i0 += MC / MR) {
      const [ap, bp, cp] = [4 * (ao + i0 * MR * K + k0), 4 * (bo + k0 * NR), 4 * (co + i0 * MR * Np)];
      mmKernel(ap, bp, cp, Math.min(MC / MR, mp - i0), np, Math.min(KC, K - k0), K);
    }
  }
  if (N === Np) out.set(h.subarray(co, co + M * N), outOffset);
  else {
    for (let i = 0; i < M; i++) {
      for (let j = 0, src = co + i * Np, dst = outOffset + i * N; j < N; j++) out[dst + j] = h[src + j];
    }
  }
  return true;
}
