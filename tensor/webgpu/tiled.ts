/**
 * Batched fp32 matmul for real GPUs: shared-memory (workgroup) tiling. Each workgroup of 256
 * threads (16×16) computes a BM×BN tile of C, BM = 16·tm and BN = 16·tn; each thread keeps a
 * tm×tn block in registers. K advances in slabs of BK: the A slab (BM×BK) and B slab (BK×BN) are
 * staged in `var<workgroup>` with coalesced vec4 global loads (1–2 per thread per operand), then
 * every thread reads its operands from workgroup memory: each float of A read from global memory
 * feeds BN FMAs (tn without tiling), each of B BM (tm). The next slab's global loads are issued
 * before the current slab's FMAs (register prefetch), so their latency hides behind arithmetic.
 *
 * Same operands, bindings and params as `matmulVec4Kernel` (packed A [batch, M, Kp] and
 * B [batch, K, Np], vec4 bindings A, B; f32 C contiguous [batch, M, N]), with ONE extra trailing
 * param: the true K. B has only K rows, so rows K..Kp−1 that the padded A columns would multiply
 * belong to the next batch or lie past the data; 0·Inf or 0·NaN there would poison C, so the
 * loads of B rows ≥ K (and A columns ≥ K) are zeroed instead.
 * Params: [M, Kp, N, Np, batchShape[nb], A batch strides[nb], B batch strides[nb], A offset,
 * B offset, K] (floats; offsets and strides multiples of 4).
 */
import { block, dot, kernel, MATMUL_BINDINGS, p, unravel } from "./kernels.ts";

/** A tile of `tiledMatmulKernel`: each thread computes `tm` × `tn` of C (multiples of 4), and
 * K advances in slabs of `bk` (a multiple of 4). */
export interface Tile {
  /** Rows of C per thread. */
  tm: number;
  /** Columns of C per thread. */
  tn: number;
  /** K per slab. */
  bk: number;
}

/** The default tile: 8 rows × 4 columns per thread (a 128×64 tile of C per workgroup), k-slabs of
 * 16. Measured on an H100 (bench/matmul_gpu.ts): the fastest of 64×64, 64×128, 128×64 and 128×128
 * tiles at 2048–8192; 8×8 per thread (128×128) ran 5× slower there (register pressure). */
export const TILED: Readonly<Tile> = { tm: 8, tn: 4, bk: 16 };

/** The WGSL source; bindings A, B (vec4<f32>, read), C (f32, write); `nb` batch dims. Workgroup
 * memory: (16·tm + 16·tn)·bk·4 bytes (12 KiB for the default tile). */
export function tiledMatmulKernel(nb: number, { tm, tn, bk }: Tile = TILED): string {
  if ([tm, tn, bk].some((v) => v % 4 || !v)) throw new Error(`tiled matmul: bad tile ${tm}x${tn}x${bk}`);
  const BM = 16 * tm, BN = 16 * tn, BK = bk, AQ = BM / 4, BQ = BN / 4, KQ = BK / 4;
  const I = [...Array(tm / 4).keys()], J = [...Array(tn / 4).keys()], R = [...Array(tm).keys()];
  // The slabs hold BM·KQ (A) and BK·BQ (B) vec4s; thread t loads those numbered t + 256·l.
  const LA = [...Array(Math.ceil((BM * KQ) / 256)).keys()],
    LB = [...Array(Math.ceil((BK * BQ) / 256)).keys()];
  // Statements `s` for load `l` of a slab of `n` vec4s, skipped by threads past its end.
  const guard = (n: number, l: number, s: string) =>
    256 * (l + 1) > n ? `if (i32(lid) + ${256 * l} < ${n}) { ${s} }` : `{ ${s} }`;
  // Workgroup memory: A slab transposed to k-major (As[k][m]) so a thread's tm rows are vec4 reads;
  // B slab as is (Bs[k][n]). A thread's columns are strided by 64 floats (vec4 tx + 16·j) so the
  // 16 threads of a row read 256 contiguous bytes: no bank conflicts, coalesced stores.
  const decls = `var<workgroup> As: array<vec4<f32>, ${BK * AQ}>;
var<workgroup> Bs: array<vec4<f32>, ${BK * BQ}>;
`;
  let body = `  let tx = i32(lid % 16u); let ty = i32(lid / 16u);
  let M = ${p(0)}; let K4 = ${p(1)} / 4; let N = ${p(2)}; let N4 = ${p(3)} / 4; let K = ${p(6 + 3 * nb)};
${unravel("wid.z", 0, nb, 4)}  let ab = (${p(4 + 3 * nb)}${dot(0, nb, 4 + nb)}) / 4;
  let bb = (${p(5 + 3 * nb)}${dot(0, nb, 4 + 2 * nb)}) / 4;
  let m0 = i32(wid.y) * ${BM}; let n0 = i32(wid.x) * ${BQ};
${block(R, J, (r, j) => `  var c${r}_${j} = vec4<f32>();\n`)}`;
  // Global loads of slab k0 into registers: A vec4 (row ≥ M or k ≥ K: zero), B vec4 (k ≥ K or
  // column ≥ N4: zero); the clamped index keeps the (discarded) read in bounds.
  const load = (k0: string) =>
    LA.map((l) =>
      `    { let i = i32(lid) + ${256 * l}; let m = m0 + i / ${KQ}; let kq = ${k0} / 4 + i % ${KQ};
      xa${l} = select(vec4<f32>(), B0[ab + min(m, M - 1) * K4 + min(kq, K4 - 1)], m < M && 4 * kq < K); }\n`
    ).join("") +
    LB.map((l) =>
      `    { let i = i32(lid) + ${256 * l}; let k = ${k0} + i / ${BQ}; let n = n0 + i % ${BQ};
      xb${l} = select(vec4<f32>(), B1[bb + max(min(k, K - 1), 0) * N4 + min(n, N4 - 1)],
        k < K && n < N4); }\n`
    ).join("");
  // Registers into workgroup memory (A transposed: component u of the vec4 is k = 4·kq + u).
  const stageA = (l: number) =>
    `let i = i32(lid) + ${256 * l}; let m = i / ${KQ}; let k = 4 * (i % ${KQ});
    ${[0, 1, 2, 3].map((u) => `As[(k + ${u}) * ${AQ} + m / 4][m % 4] = xa${l}[${u}];`).join(" ")}`;
  const stage = LA.map((l) => `    ${guard(BM * KQ, l, stageA(l))}\n`).join("") +
    LB.map((l) => `    ${guard(BK * BQ, l, `Bs[i32(lid) + ${256 * l}] = xb${l};`)}\n`).join("");
  // One k of the slab, unrolled (BK of them): tm/4 + tn/4 vec4 reads feed tm·tn FMAs.
  const step = (k: number) =>
    `    {\n${I.map((i) => `      let a${i} = As[${k * AQ} + ty * ${tm / 4} + ${i}];\n`).join("")}${
      J.map((j) => `      let b${j} = Bs[${k * BQ + 16 * j} + tx];\n`).join("")
    }${
      block(R, J, (r, j) => `      c${r}_${j} = fma(vec4(a${r >> 2}[${r & 3}]), b${j}, c${r}_${j});\n`)
    }    }\n`;
  body += [...LA.map((l) => `xa${l}`), ...LB.map((l) => `xb${l}`)].map((x) => `  var ${x}: vec4<f32>;\n`)
    .join("");
  body += `${load("0")}  for (var k0 = 0; k0 < K; k0 += ${BK}) {
    workgroupBarrier(); // everyone is done reading the previous slab
${stage}    workgroupBarrier(); // the slab is complete
    if (k0 + ${BK} < K) {
${load(`(k0 + ${BK})`)}    }
${[...Array(BK).keys()].map(step).join("")}  }
  let cb = i32(wid.z) * M * N;
`;
  // Stores: row m0 + ty·tm + r, columns 4·(n0 + tx + 16·j) + q; guarded for the M and N edges.
  const store = (r: number, j: number) =>
    `      for (var q = 0; q < 4; q++) { let n = 4 * (n0 + tx + ${16 * j}) + q;
        if (n < N) { B2[cb + m * N + n] = c${r}_${j}[q]; } }\n`;
  const row = (r: number) =>
    `  { let m = m0 + ty * ${tm} + ${r};\n    if (m < M) {\n${block([r], J, store)}    } }\n`;
  body += R.map(row).join("");
  return kernel({ params: 7 + 3 * nb, bindings: MATMUL_BINDINGS, body, decls });
}

/** Workgroup grid [x: N tiles, y: M tiles, z: batch] for `tiledMatmulKernel(nb, tile)`. */
export function tiledMatmulGrid(M: number, N: number, batch: number, tile = TILED): [number, number, number] {
  return [Math.ceil(N / (16 * tile.tn)), Math.ceil(M / (16 * tile.tm)), batch];
}
