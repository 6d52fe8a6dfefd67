/**
 * The WebGPU kernel builders: whole WGSL kernels (map, reduce, scatter-add, matmul) around element
 * expressions that render/wgsl.ts renders. Shapes, strides and offsets are not baked in: they live
 * in a uniform array `P` of i32 whose layout each builder documents, so one pipeline serves every
 * shape of the same rank and expression.
 */
import type { ReduceOp } from "../backend.ts";
import { PRELUDE } from "../render/wgsl.ts";

/** A storage binding of a kernel: its element type and whether the kernel writes it. */
export interface Binding {
  /** The WGSL element type. */
  type: string;
  /** Whether the kernel writes it (`read_write`; else `read`). */
  write: boolean;
}

/** A storage binding the kernel only reads. */
export const RO = (type: string): Binding => ({ type, write: false });
/** A storage binding the kernel writes. */
export const RW = (type: string): Binding => ({ type, write: true });

/** The parameter `P[i]` as a WGSL expression (i32). */
export const p = (i: number): string => `P[${i >> 2}][${i & 3}]`;

/** The parts of a kernel that `kernel` assembles. */
export interface KernelParts {
  /** How many i32 params the uniform array `P` holds. */
  params: number;
  /** The storage buffers, bound as `B0`, `B1`, … */
  bindings: Binding[];
  /** The statements of `main`. */
  body: string;
  /** Threads per workgroup (default 256). */
  workgroupSize?: number;
  /** Module-scope declarations after the prelude: workgroup arrays, helper functions. */
  decls?: string;
}

/** A whole kernel: uniform params at binding 0, storage buffers `B0..` at 1.., the renderer's
 * prelude, and `main` with a 1-D linear workgroup id `wg` (folded over x/y so no dimension exceeds
 * 65,535) and `lid`. */
export function kernel({ params, bindings, body, workgroupSize = 256, decls = "" }: KernelParts): string {
  const storage = bindings.map((b, i) =>
    `@group(0) @binding(${i + 1}) var<storage, ${b.write ? "read_write" : "read"}> B${i}: array<${b.type}>;`
  );
  return `@group(0) @binding(0) var<uniform> P: array<vec4<i32>, ${Math.max(1, Math.ceil(params / 4))}>;
${storage.join("\n")}
${PRELUDE}${decls}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.y * nwg.x + wid.x;
${body}
}
`;
}

/** Statements that split linear index `lin` (u32) into `i{d}` (i32) for dims `from..to` whose
 * sizes are params `P[shapeAt + d]`. */
export function unravel(lin: string, from: number, to: number, shapeAt: number): string {
  if (from >= to) return "";
  let s = `  var q${from} = ${lin};\n`;
  for (let d = to - 1; d > from; d--) {
    const n = `u32(${p(shapeAt + d)})`;
    s += `  let i${d} = i32(q${from} % ${n}); q${from} = q${from} / ${n};\n`;
  }
  return s + `  let i${from} = i32(q${from});\n`;
}

/** Σ i{d}·stride over dims `from..to`, strides at params `stridesAt + d`. */
export function dot(from: number, to: number, stridesAt: number): string {
  return Array.from({ length: to - from }, (_, k) => ` + i${from + k} * ${p(stridesAt + from + k)}`).join("");
}

/** `line(i, j)` for every i of `rows` and j of `cols`, joined: the statements of a register block. */
export const block = (rows: number[], cols: number[], line: (i: number, j: number) => string): string =>
  rows.flatMap((i) => cols.map((j) => line(i, j))).join("");

/** Where view `k` starts in the params of the map and reduce kernels over a rank-`rank` shape:
 * [n, nReduced, shape[rank], then per view: offset, strides[rank]]. */
export const viewAt = (rank: number, k: number): number => 2 + rank + k * (rank + 1);

/** The start of a kernel with one thread per element of a rank-`rank` shape: `o` is the thread's
 * linear index (threads past `P[0]` return) and `i{d}` its coordinates (sizes at `P[2 + d]`). */
const element = (rank: number): string =>
  `  let o = wg * 256u + lid;\n  if (o >= u32(${p(0)})) { return; }\n${unravel("o", 0, rank, 2)}`;

/** What `mapKernel` builds. */
export interface MapKernel {
  /** The element expression of each output, with `load k` rendered as `B{slot}[o{k}]`. */
  values: string[];
  /** How many inputs the values read (views 0..inputs-1). */
  inputs: number;
  /** The storage bindings; the outputs are the last, in order. */
  bindings: Binding[];
  /** Rank of the shape (after merging dims). */
  rank: number;
  /** Params after the output's view, for `value` to read (default 0). */
  extraParams?: number;
}

/**
 * The strided map: one thread per element, each input read through its own view and each output
 * written through its view, every value computed before the first store (so an output may be read
 * in place). Params: [n, 1, shape[rank], then per input and then per output: offset,
 * strides[rank]] (see `viewAt`), then `extraParams`.
 */
export function mapKernel({ values, inputs, bindings, rank, extraParams = 0 }: MapKernel): string {
  const at = (k: number) => `${p(viewAt(rank, k))}${dot(0, rank, viewAt(rank, k) + 1)}`;
  const first = bindings.length - values.length;
  const body = element(rank) +
    [...Array(inputs).keys()].map((k) => `  let o${k} = ${at(k)};\n`).join("") +
    values.map((v, j) => `  let v${j} = ${v};\n`).join("") +
    values.map((_, j) => `  B${first + j}[${at(inputs + j)}] = v${j};\n`).join("");
  return kernel({ params: viewAt(rank, inputs + values.length) + extraParams, bindings, body });
}

/** What `reduceKernel` builds. */
export interface ReduceKernel extends Omit<MapKernel, "extraParams" | "values"> {
  /** The element expression, with `load k` rendered as `B{slot}[o{k}]`. */
  value: string;
  /** The reduction. */
  op: ReduceOp;
  /** How many leading dims index outputs; the rest are reduced. */
  outer: number;
  /** Threads per output: a power of two up to 256 (`threadsPer`). */
  threads: number;
  /** The accumulator's WGSL type. */
  acc: string;
  /** The accumulator's start value (WGSL). */
  init: string;
  /** For argmax/argmin in two passes: "out" writes (value bits as i32, index) pairs, "in" reads
   * them as the single input. */
  pairs?: "" | "in" | "out";
}

/**
 * The strided reduce over a shape whose first `outer` dims index outputs and the rest are reduced.
 * Each output gets `threads` threads that stride over its reduced elements, then combine in a
 * workgroup-shared tree. Params: [nSlots, nReduced, shape[rank], per input: offset,
 * strides[rank]] (see `viewAt`), then [C, L]: each output's reduced range is split into C chunks
 * of L elements, one result each (slot `o * C + c`). With `pairs` "out" the one output buffer
 * holds (value bits, index) pairs, so index bits never pass through f32.
 */
export function reduceKernel(
  { op, value, inputs, bindings, rank, outer, threads: T, acc, init, pairs = "" }: ReduceKernel,
): string {
  const view = (k: number) => viewAt(rank, k);
  const ins = [...Array(inputs).keys()];
  const out = `B${bindings.length - 1}`;
  const arg = op === "argmax" || op === "argmin";
  const cmp = op === "max" || op === "argmax" ? ">" : "<", nan = acc === "f32" ? " || nan_(v)" : "";
  const step = op === "sum"
    ? "acc = acc + v;"
    : arg
    ? `if (v ${cmp} acc) { acc = v; ai = ${pairs === "in" ? "B0[o0 + 1]" : "i32(r)"}; }`
    : `if (v ${cmp} acc${nan}) { acc = v; }`;
  const combine = op === "sum"
    ? "sv[lid] = sv[lid] + sv[lid + s];"
    : arg
    ? `let w = sv[lid + s]; let wi = si[lid + s];
      if (w ${cmp} sv[lid] || (w == sv[lid] && wi < si[lid])) { sv[lid] = w; si[lid] = wi; }`
    : `let w = sv[lid + s]; if (w ${cmp} sv[lid]${nan.replace("v", "w")}) { sv[lid] = w; }`;
  const tree = T === 1 ? "" : `  sv[lid] = acc; si[lid] = ai;
  workgroupBarrier();
  for (var s = ${T / 2}u; s > 0u; s = s >> 1u) {
    if (lane < s) { ${combine} }
    workgroupBarrier();
  }
  acc = sv[lid]; ai = si[lid];
`;
  const [C, L] = [`u32(${p(view(inputs))})`, `u32(${p(view(inputs) + 1)})`];
  const write = pairs === "out"
    ? `${out}[2u * g] = bitcast<i32>(acc); ${out}[2u * g + 1u] = ai;`
    : `${out}[g] = ${arg ? "ai" : "acc"};`;
  const body = `  let lane = lid % ${T}u;
  let g = wg * ${256 / T}u + lid / ${T}u;
  let o = g / ${C};
  let r0 = g % ${C} * ${L};
  let r1 = min(r0 + ${L}, u32(${p(1)}));
  var acc: ${acc} = ${init};
  var ai = 0i;
  if (g < u32(${p(0)})) {
${unravel("o", 0, outer, 2)}${
    ins.map((k) => `  let b${k} = ${p(view(k))}${dot(0, outer, view(k) + 1)};\n`).join("")
  }
  for (var r = r0 + lane; r < r1; r += ${T}u) {
${unravel("r", outer, rank, 2)}${
    ins.map((k) => `  let o${k} = b${k}${dot(outer, rank, view(k) + 1)};\n`).join("")
  }  let v = ${pairs === "in" ? `bitcast<${acc}>(${value})` : value};
  ${step}
  }
  }
${tree}  if (lane == 0u && g < u32(${p(0)})) { ${write} }`;
  const decls = T === 1 ? "" : `var<workgroup> sv: array<${acc}, 256>;\nvar<workgroup> si: array<i32, 256>;`;
  return kernel({ params: view(inputs) + 2, bindings, body, decls });
}

/** Threads per output for a reduction of `n` elements. */
export const threadsPer = (n: number): number => n >= 2048 ? 256 : n >= 256 ? 64 : n >= 32 ? 8 : 1;

/**
 * scatter-add over a contiguous rank-`rank` output: each output element sums, in index order
 * (deterministic, equal to the CPU's order), the src values of the index entries along `axis` that
 * share its other coordinates and hit it. By default it loops over all those entries; when `sorted`,
 * B0 is instead `SORT_PACK`'s keys sorted (the index is the same across the other axes) and it
 * binary-searches its own. Bindings: index (i32; sorted: u32 keys), src, out. Params: [n, 0,
 * outShape[rank], indexShape[rank], index offset, strides[rank], src offset, strides[rank]], then
 * when sorted the keys' entry bits and count.
 */
export function scatterKernel(rank: number, axis: number, type: string, sorted = false): string {
  const [ish, iv, sv] = [2 + rank, 2 + 2 * rank, 3 + 3 * rank];
  const others = [...Array(rank).keys()].filter((d) => d !== axis);
  const inside = others.map((d) => `i${d} < ${p(ish + d)}`).join(" && ") || "true";
  const off = (v: number) => p(v) + others.map((d) => ` + i${d} * ${p(v + 1 + d)}`).join("");
  const [bits, count, step] = [`u32(${p(sv + 1 + rank)})`, `u32(${p(sv + 2 + rank)})`, p(sv + 1 + axis)];
  const loop = sorted
    ? `var lo = 0u;
    var hi = ${count};
    while (lo < hi) {
      let m = (lo + hi) / 2u;
      if (B0[m] >> ${bits} < u32(i${axis})) { lo = m + 1u; } else { hi = m; }
    }
    for (var k = lo; k < ${count} && B0[k] >> ${bits} == u32(i${axis}); k++) {
      acc += B1[bs + i32(B0[k] & ((1u << ${bits}) - 1u)) * ${step}];`
    : `let bi = ${off(iv)};
    for (var t = 0i; t < ${p(ish + axis)}; t++) {
      if (B0[bi + t * ${p(iv + 1 + axis)}] == i${axis}) { acc += B1[bs + t * ${step}]; }`;
  const body = `${element(rank)}  var acc = ${type}(0);
  if (${inside}) {
    let bs = ${off(sv)};
    ${loop}
    }
  }
  B2[o] = acc;`;
  const bindings = [RO(sorted ? "u32" : "i32"), RO(type), RW(type)];
  return kernel({ params: sv + (sorted ? 3 : 1) + rank, bindings, body });
}

/** scatterAdd's device sort, step 1: keys K[e] = target << bits | e for the index entries e < N
 * (B0 read at offset + e·stride) whose target lies in [0, n), and u32 max (sorted last) for the rest
 * up to the power of two `size`. Params: [size, N, offset, stride, n, bits]. */
export const SORT_PACK: string = kernel({
  params: 6,
  bindings: [RO("i32"), RW("u32")],
  body: `  let e = i32(wg * 256u + lid);
  if (e >= ${p(0)}) { return; }
  var key = -1;
  if (e < ${p(1)}) { key = B0[${p(2)} + e * ${p(3)}]; }
  B1[e] = select(0xffffffffu, (u32(key) << u32(${p(5)})) | u32(e), key >= 0 && key < ${p(4)});`,
});

/** Step 2, one pass of a bitonic sort of the keys (log²(size) passes in all; keys are distinct, so
 * the order is deterministic): compare-exchange at distance P[1] within blocks of P[0]. Params:
 * [block, distance, size]. */
export const SORT_STEP: string = kernel({
  params: 3,
  bindings: [RW("u32")],
  body: `  let i = wg * 256u + lid;
  let l = i ^ u32(${p(1)});
  if (i >= u32(${p(2)}) || l <= i) { return; }
  let a = B0[i];
  let b = B0[l];
  if ((a > b) == ((i & u32(${p(0)})) == 0u)) {
    B0[i] = b;
    B0[l] = a;
  }`,
});

/** The bindings of both matmul kernels: A and B (vec4<f32>, read), C (f32, written). */
export const MATMUL_BINDINGS: Binding[] = [RO("vec4<f32>"), RO("vec4<f32>"), RW("f32")];

/** A register block of `matmulVec4Kernel`: each thread computes `tm` rows × `tb` vec4 columns of C,
 * and a workgroup is `wx` × `wy` threads. */
export interface Vec4Block {
  /** Rows of C per thread. */
  tm: number;
  /** vec4 columns of C per thread. */
  tb: number;
  /** Threads per workgroup along columns. */
  wx: number;
  /** Threads per workgroup along rows. */
  wy: number;
}

/**
 * Batched matmul, register-blocked, for CPU adapters (GPUs use tiled.ts): a thread keeps a
 * `tm`×(4·`tb`) block of C and loads A as vec4 along K and B as vec4 along N (on CPU adapters every
 * storage load costs ~25 cycles, measured, so with 16×16 blocks each loaded float feeds 16 FMAs).
 * No workgroup memory: its barriers were slower than the loads they save on llvmpipe. Needs packed
 * operands: A [batch, M, Kp], B [batch, Kp, Np] with Kp, Np multiples of 4 (zero padded). `nb`
 * batch dims. Bindings: A, B (vec4), C (f32, contiguous [batch, M, N]). Params: [M, Kp, N, Np,
 * batchShape[nb], A batch strides[nb], B batch strides[nb], A offset, B offset] (in floats; offsets
 * and strides multiples of 4).
 */
export function matmulVec4Kernel(nb: number, { tm, tb, wx, wy }: Vec4Block): string {
  const rows = [...Array(tm).keys()], cols = [...Array(tb).keys()];
  let body = `  let lx = i32(lid % ${wx}u); let ly = i32(lid / ${wx}u);
  let m0 = (i32(wid.y) * ${wy} + ly) * ${tm}; let c0 = (i32(wid.x) * ${wx} + lx) * ${tb};
  let M = ${p(0)}; let K4 = ${p(1)} / 4; let N = ${p(2)}; let N4 = ${p(3)} / 4;
${unravel("wid.z", 0, nb, 4)}  let ab = (${p(4 + 3 * nb)}${dot(0, nb, 4 + nb)}) / 4;
  let bb = (${p(5 + 3 * nb)}${dot(0, nb, 4 + 2 * nb)}) / 4;
`;
  body += rows.map((i) => `  let a${i} = ab + min(m0 + ${i}, M - 1) * K4;\n`).join("");
  body += cols.map((j) => `  let b${j} = bb + min(c0 + ${j}, N4 - 1);\n`).join("");
  body += block(rows, cols, (i, j) => `  var c${i}_${j} = vec4<f32>();\n`);
  body += "  for (var k = 0; k < K4; k++) {\n";
  body += rows.map((i) => `    let x${i} = B0[a${i} + k];\n`).join("");
  for (let u = 0; u < 4; u++) {
    body += `    {\n      let r = (4 * k + ${u}) * N4;\n`;
    body += cols.map((j) => `      let y${j} = B1[b${j} + r];\n`).join("");
    body += block(rows, cols, (i, j) => `      c${i}_${j} = fma(vec4(x${i}[${u}]), y${j}, c${i}_${j});\n`);
    body += "    }\n";
  }
  body += "  }\n  let cb = i32(wid.z) * M * N;\n";
  const store = (i: number, j: number) =>
    `  if (m0 + ${i} < M) { for (var q = 0; q < 4; q++) { let n = (c0 + ${j}) * 4 + q;
    if (n < N) { B2[cb + (m0 + ${i}) * N + n] = c${i}_${j}[q]; } } }\n`;
  body += block(rows, cols, store);
  return kernel({ params: 6 + 3 * nb, bindings: MATMUL_BINDINGS, body, workgroupSize: wx * wy });
}
