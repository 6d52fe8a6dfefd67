/**
 * A WebAssembly SIMD matrix multiply for the CPU backend. The module is assembled here at first use
 * by a tiny binary emitter (no .wasm file, no tools, no permissions: `new WebAssembly.Module(bytes)`
 * is all it takes). Sums accumulate in f32, unlike the f64 JavaScript kernel.
 *
 * Inside wasm memory: A as given (row-major; rows are read in place), B packed by JavaScript into
 * panels of 8 columns, k-major (Bp[j/8][k][j%8]: one contiguous 32-byte step per k), and C padded
 * to a multiple of 4 rows and 8 columns (padding is zero; only the valid part of C is copied out).
 * The module exports a function over a block of tiles; JavaScript loops over cache blocks.
 *
 * @module
 */

/** Unsigned LEB128: sizes, counts, indices, alignments, offsets. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    out.push(n ? b | 0x80 : b);
  } while (n);
  return out;
}

/** Signed LEB128: `i32.const` immediates (so 64 needs two bytes, its 0x40 bit would read as sign). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** A length-prefixed vector: the count, then the items. */
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
/** A section: its id, its byte size, its bytes. */
const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
/** A name (ASCII here). */
const name = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

// The few instructions the kernel uses, as byte arrays; `ops` concatenates them.
const ops = (...parts: number[][]): number[] => parts.flat();
const I32 = 0x7f, V128 = 0x7b; // value types
const get = (i: number): number[] => [0x20, ...uleb(i)]; // local.get
const set = (i: number): number[] => [0x21, ...uleb(i)]; // local.set
const tee = (i: number): number[] => [0x22, ...uleb(i)]; // local.tee
const i32 = (n: number): number[] => [0x41, ...sleb(n)]; // i32.const
const [ADD, SUB, MUL] = [[0x6a], [0x6b], [0x6c]]; // i32.add, i32.sub, i32.mul
/** `local += value` for i32 locals (pointer bumps). */
const bump = (l: number, value: number[]): number[] => ops(get(l), value, ADD, set(l));
/** A do-while loop on a counter local: body, then `--n != 0` branches back (callers ensure n ≥ 1).
 * 0x03 0x40 opens a loop with no result; 0x0d 0 is br_if to its head; 0x0b ends it. */
const loop = (n: number, body: number[]): number[] =>
  ops([0x03, 0x40], body, get(n), i32(1), SUB, tee(n), [0x0d, 0, 0x0b]);
// SIMD ops are 0xfd + LEB opcode; memory ops carry (log2 alignment, offset).
const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...uleb(op), ...imm];
const load = (off: number): number[] => simd(0, 4, ...uleb(off)); // v128.load
const splat = (off: number): number[] => simd(9, 2, ...uleb(off)); // v128.load32_splat
const store = (off: number): number[] => simd(11, 4, ...uleb(off)); // v128.store
const [FADD, FMUL] = [simd(0xe4), simd(0xe6)]; // f32x4.add, f32x4.mul

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
function tile(): number[] {
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
      body.push(...ops(get(c), get(a), get(b + h), FMUL, FADD, set(c)));
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

/** The whole module: imports memory "m"."m", defines tile (func 0) and exports mm (func 1). */
function moduleBytes(): Uint8Array<ArrayBuffer> {
  const fn = (params: number): number[] => [0x60, ...vec(new Array(params).fill([I32])), 0];
  const body = (b: number[]): number[] => [...uleb(b.length), ...b];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // "\0asm", version 1
    ...section(1, vec([fn(6), fn(7)])), // types: (6 × i32) → (), (7 × i32) → ()
    ...section(2, vec([[...name("m"), ...name("m"), 0x02, 0x00, 1]])), // import memory, min 1 page
    ...section(3, vec([[0], [1]])), // functions: tile of type 0, mm of type 1
    ...section(7, vec([[...name("mm"), 0x00, 1]])), // export func 1 as "mm"
    ...section(10, vec([body(tile()), body(mm())])),
  ]);
}

type Kernel = {
  mm: (ap: number, bp: number, cp: number, mp: number, np: number, k: number, K: number) => void;
};
/** The compiled kernel, its memory and a cached f32 view of it; null when wasm SIMD is missing. */
let state: { memory: WebAssembly.Memory; kernel: Kernel; heap: Float32Array } | null | undefined;

/** Compile once; null when WebAssembly (or its SIMD) is unavailable. */
function instance(): typeof state {
  if (state !== undefined) return state;
  try {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()), { m: { m: memory } });
    state = { memory, kernel: inst.exports as unknown as Kernel, heap: new Float32Array(memory.buffer) };
  } catch {
    state = null;
  }
  return state;
}

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
  const s = instance();
  if (!s) return false;
  if (M === 0 || N === 0) return true;
  if (K === 0) return (out.fill(0, outOffset, outOffset + M * N), true);
  const mp = Math.ceil(M / MR), np = Math.ceil(N / NR), Mp = mp * MR, Np = np * NR;
  // Element offsets: A as given (padded to Mp rows), packed B, then C (Mp × Np).
  const [ao, bo, co] = [0, Mp * K, Mp * K + K * Np];
  const bytes = 4 * (co + Mp * Np);
  if (bytes > s.memory.buffer.byteLength) {
    try {
      s.memory.grow(Math.ceil((bytes - s.memory.buffer.byteLength) / 65536));
    } catch {
      return false; // past wasm32's 4 GiB, or out of memory
    }
    s.heap = new Float32Array(s.memory.buffer); // growing detaches the old buffer
  }
  const h = s.heap;
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
      s.kernel.mm(ap, bp, cp, Math.min(MC / MR, mp - i0), np, Math.min(KC, K - k0), K);
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
