/**
 * WGSL generation: render an `Exp` as a WGSL expression, and build whole kernels (map, reduce,
 * gather, scatter-add, matmul) around it. Shapes, strides and offsets are not baked in: they live
 * in a uniform array `P` of i32 whose layout each builder documents, so one pipeline serves every
 * shape of the same rank and expression. On the device bool is u32 (0/1), so arithmetic on bools
 * wraps exactly like the CPU's Uint8Array once read back.
 */
import type { ReduceOp } from "../backend.ts";
import type { DType, Exp } from "../exp.ts";

/** The WGSL scalar type that stores a dtype. */
export function wgslType(dtype: DType): "f32" | "i32" | "u32" {
  if (dtype === "f64") throw new Error("webgpu: f64 is not supported; use the cpu backend for f64 checks");
  return dtype === "f32" ? "f32" : dtype === "i32" ? "i32" : "u32";
}

const ZERO = { f32: "0f", i32: "0i", u32: "0u" } as const;

/** A WGSL literal for `v` as `dtype`; non-finite and subnormal f32 go through a bitcast. */
export function literal(v: number, dtype: DType): string {
  const t = wgslType(dtype);
  if (t === "u32") return v !== 0 ? "1u" : "0u";
  if (t === "i32") {
    const i = Math.trunc(v) | 0;
    return i === -2147483648 ? "bitcast<i32>(0x80000000u)" : i < 0 ? `(${i}i)` : `${i}i`;
  }
  const f = Math.fround(v);
  if (!Number.isFinite(f) || (f !== 0 && Math.abs(f) < 1.1754943508222875e-38)) {
    const bits = new Uint32Array(new Float32Array([f]).buffer)[0];
    return `bitcast<f32>(0x${bits.toString(16)}u)`;
  }
  let s = String(f);
  for (let p = 1; p <= 9; p++) {
    const t = f.toPrecision(p);
    if (Math.fround(Number(t)) === f) {
      s = t;
      break;
    }
  }
  s = /[.e]/.test(s) ? `${s}f` : `${s}.0f`;
  return f < 0 ? `(${s})` : s;
}

/** Helpers every kernel carries; they make the CPU's JavaScript semantics explicit. The Mesa
 * compilers assume no NaN (x != x, max(NaN, y), NaN != y fold away), so NaN tests use the bits. */
export const HELPERS = `
fn sigmoid_(x: f32) -> f32 { let e = exp(-abs(x)); return select(e / (1f + e), 1f / (1f + e), x >= 0f); }
fn nan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn tanh_(x: f32) -> f32 { return select(tanh(clamp(x, -15f, 15f)), x, nan_(x)); }
fn max_(a: f32, b: f32) -> f32 { return select(select(max(a, b), b, nan_(b)), a, nan_(a)); }
fn min_(a: f32, b: f32) -> f32 { return select(select(min(a, b), b, nan_(b)), a, nan_(a)); }
fn powf_(a: f32, b: f32) -> f32 {
  if (b == 0f) { return 1f; }
  if (b == 2f) { return a * a; }
  if (b == 1f) { return a; }
  if (a == 0f) { return select(0f, bitcast<f32>(0x7f800000u), b < 0f); }
  let r = pow(abs(a), b);
  if (a > 0f) { return r; }
  if (floor(b) != b) { return bitcast<f32>(0x7fc00000u); }
  return select(r, -r, fract(b * 0.5f) != 0f);
}
fn ipow_(a: i32, b: i32) -> i32 {
  if (b < 0) { if (a == 1) { return 1; } if (a == -1) { return select(1, -1, (b & 1) != 0); } return 0; }
  var r = 1i; var x = a; var e = b;
  loop { if (e == 0) { break; } if ((e & 1) != 0) { r = r * x; } x = x * x; e = e >> 1u; }
  return r;
}
fn idiv_(a: i32, b: i32) -> i32 { return select(a / select(b, 1i, b == 0i), 0i, b == 0i); }
fn udiv_(a: u32, b: u32) -> u32 { return select(a / select(b, 1u, b == 0u), 0u, b == 0u); }
`;

const litZero = (e: Exp): boolean =>
  e.op === "const" ? e.v === 0 : e.op === "cast" && e.a.op === "const" && e.a.dtype !== "f32" && !e.a.v;

/** Render `e` as a WGSL expression; `leaf` renders `load` and `idx` nodes. */
export function render(e: Exp, leaf: (e: Exp) => string): string {
  const r = (x: Exp) => render(x, leaf);
  const t = wgslType(e.dtype);
  const nan = (x: Exp, s = r(x)) => (x.dtype === "f32" ? ` || nan_(${s})` : "");
  const truthy = (x: Exp) => `(${r(x)} != ${ZERO[wgslType(x.dtype)]}${nan(x)})`;
  const u = (cond: string) => `select(0u, 1u, ${cond})`;
  // Float-only functions on integer dtypes compute in f32 and convert back, like the CPU's stores.
  const fl = (f: (s: string) => string, x: Exp) => t === "f32" ? f(r(x)) : `${t}(${f(`f32(${r(x)})`)})`;
  switch (e.op) {
    case "load":
    case "idx":
      return leaf(e);
    case "const":
      return literal(e.v, e.dtype);
    case "cast":
      return t === "u32" ? u(truthy(e.a)) : `${t}(${r(e.a)})`;
    case "where":
      return `select(${r(e.b)}, ${r(e.a)}, ${truthy(e.c)})`;
    case "neg":
      return t === "u32" ? `(0u - ${r(e.a)})` : `(-${r(e.a)})`;
    case "exp":
    case "log":
    case "sqrt":
      return fl((s) => `${e.op}(${s})`, e.a);
    case "tanh":
    case "sigmoid":
      return fl((s) => `${e.op}_(${s})`, e.a);
    case "rsqrt":
      return fl((s) => `(1f / sqrt(${s}))`, e.a);
    case "abs":
      return t === "u32" ? r(e.a) : `abs(${r(e.a)})`;
    case "floor":
      return t === "f32" ? `floor(${r(e.a)})` : r(e.a);
    case "relu":
      return t === "f32" ? `max_(${r(e.a)}, 0f)` : `max(${r(e.a)}, ${ZERO[t]})`;
    case "not":
      return `select(1u, 0u, ${truthy(e.a)})`;
  }
  const [a, b] = [r(e.a), r(e.b)];
  switch (e.op) {
    case "add":
      return `(${a} + ${b})`;
    case "sub":
      return `(${a} - ${b})`;
    case "mul":
      return `(${a} * ${b})`;
    case "div":
      // The Mesa adapters fold x / 0.0 (a literal, maybe cast from an int) to 0; x·∞ is IEEE's x/0
      // (+0: the CPU oracle, like `literal`, renders −0 as 0).
      if (t === "f32" && litZero(e.b)) return `(${a} * ${literal(Infinity, "f32")})`;
      return t === "f32" ? `(${a} / ${b})` : t === "i32" ? `idiv_(${a}, ${b})` : `udiv_(${a}, ${b})`;
    case "pow":
      return t === "f32" ? `powf_(${a}, ${b})` : `${t}(ipow_(i32(${a}), i32(${b})))`;
    case "max":
    case "min":
      return `${e.op}${t === "f32" ? "_" : ""}(${a}, ${b})`;
    case "and":
    case "or":
      return u(`${truthy(e.a)} ${e.op === "and" ? "&&" : "||"} ${truthy(e.b)}`);
  }
  const cmp = { lt: "<", le: "<=", gt: ">", ge: ">=", eq: "==", ne: "!=" }[e.op];
  return u(`${a} ${cmp} ${b}${e.op === "ne" ? nan(e.a, a) + nan(e.b, b) : ""}`);
}

/** A storage binding of a kernel: its element type and whether the kernel writes it. */
export interface Binding {
  type: string;
  write: boolean;
  uniform?: boolean; // instead a 64 KiB uniform window at a dynamic offset (the kernel declares it)
}

/** The parameter `P[i]` as a WGSL expression (i32). */
export const p = (i: number): string => `P[${i >> 2}][${i & 3}]`;

/** Wrap a kernel body: uniform params at binding 0, storage buffers `B0..` at 1.., a 1-D linear
 * workgroup id `wg` (folded over x/y so no dimension exceeds 65,535) and `lid`. */
export function kernel(nParams: number, bufs: Binding[], body: string, wgSize = 256, extra = ""): string {
  const decl = bufs.map((b, i) =>
    `@group(0) @binding(${i + 1}) var<storage, ${b.write ? "read_write" : "read"}> B${i}: array<${b.type}>;`
  );
  return `@group(0) @binding(0) var<uniform> P: array<vec4<i32>, ${Math.max(1, Math.ceil(nParams / 4))}>;
${decl.join("\n")}
${HELPERS}${extra}
@compute @workgroup_size(${wgSize})
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
    s += `  let i${d} = i32(q${from} % u32(${p(shapeAt + d)})); q${from} = q${from} / u32(${
      p(shapeAt + d)
    });\n`;
  }
  return s + `  let i${from} = i32(q${from});\n`;
}

/** Σ i{d}·stride over dims `from..to`, strides at params `stridesAt + d`. */
export function dot(from: number, to: number, stridesAt: number): string {
  let s = "";
  for (let d = from; d < to; d++) s += ` + i${d} * ${p(stridesAt + d)}`;
  return s;
}

/**
 * The strided map/reduce kernel over a rank-`rank` shape whose first `outer` dims index outputs
 * and the rest are reduced (none for a map). Params: [nOuter, nInner, shape[rank], then per
 * input k: offset, strides[rank]], then for a map the output's offset and strides[rank].
 * `value` is the element expression with `load k` rendered as `B{slot}[o{k}]` (`nIn` inputs);
 * the output is the last binding. A reduce gives each output `T` threads (a power of two) that
 * stride over the reduced elements and then combine in a workgroup-shared tree; `init` is the
 * accumulator's start value and `acc` its type. A reduce's params end with [C, L]: each output's
 * reduced range is split into C chunks of L elements, one result each (slot `o * C + c`, nOuter
 * counts slots). argmax/argmin with `pairs` "out" write (value bits as i32, index) pairs (one
 * output buffer; index bits never pass through f32); with "in" the single input is such pairs.
 */
export function stridedKernel(
  op: ReduceOp | "map",
  value: string,
  nIn: number,
  bufs: Binding[],
  rank: number,
  outer: number,
  T = 1,
  acc = "f32",
  init = "0f",
  pairs: "" | "in" | "out" = "",
  nExtra = 0,
): string {
  const view = (k: number) => 2 + rank + k * (rank + 1);
  const ins = [...Array(nIn).keys()];
  const out = `B${bufs.length - 1}`;
  if (op === "map") {
    const ov = view(nIn);
    const body = `  let o = wg * 256u + lid;\n  if (o >= u32(${p(0)})) { return; }\n` +
      unravel("o", 0, rank, 2) +
      ins.map((k) => `  let o${k} = ${p(view(k))}${dot(0, rank, view(k) + 1)};\n`).join("") +
      `  ${out}[${p(ov)}${dot(0, rank, ov + 1)}] = ${value};`;
    return kernel(ov + 1 + rank + nExtra, bufs, body);
  }
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
  const [C, L] = [`u32(${p(view(nIn))})`, `u32(${p(view(nIn) + 1)})`];
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
  const shared = T === 1
    ? ""
    : `var<workgroup> sv: array<${acc}, 256>;\nvar<workgroup> si: array<i32, 256>;\n`;
  return kernel(view(nIn) + 2, bufs, body, 256, shared);
}

/** Threads per output for a reduction of `n` elements. */
export function threadsPer(n: number): number {
  return n >= 2048 ? 256 : n >= 256 ? 64 : n >= 32 ? 8 : 1;
}

/**
 * scatter-add over a contiguous rank-`rank` output: each output element loops over the index
 * entries along `axis` that share its other coordinates and sums the src values that hit it, in
 * index order (deterministic, equal to the CPU's order). Bindings: index (i32), src, out.
 * Params: [n, 0, outShape[rank], indexShape[rank], index offset, strides[rank], src offset,
 * strides[rank]].
 */
export function scatterKernel(rank: number, axis: number, type: string): string {
  const [ish, iv, sv] = [2 + rank, 2 + 2 * rank, 3 + 3 * rank];
  const others = [...Array(rank).keys()].filter((d) => d !== axis);
  const inside = others.map((d) => `i${d} < ${p(ish + d)}`).join(" && ") || "true";
  const off = (v: number) => p(v) + others.map((d) => ` + i${d} * ${p(v + 1 + d)}`).join("");
  const body = `  let o = wg * 256u + lid;
  if (o >= u32(${p(0)})) { return; }
${unravel("o", 0, rank, 2)}  var acc = ${type}(0);
  if (${inside}) {
    let bi = ${off(iv)};
    let bs = ${off(sv)};
    for (var t = 0i; t < ${p(ish + axis)}; t++) {
      if (B0[bi + t * ${p(iv + 1 + axis)}] == i${axis}) { acc += B1[bs + t * ${p(sv + 1 + axis)}]; }
    }
  }
  B2[o] = acc;`;
  return kernel(
    sv + 1 + rank,
    [{ type: "i32", write: false }, { type, write: false }, { type, write: true }],
    body,
  );
}

/**
 * Batched matmul, register-blocked: a thread keeps a `tm`×(4·`tb`) block of C and loads A as vec4
 * along K and B as vec4 along N (on CPU adapters every storage load costs ~25 cycles, measured, so
 * with 16×16 blocks each loaded float feeds 16 FMAs). No workgroup memory: its barriers were
 * slower than the loads they save on llvmpipe; real GPUs would gain from a tiled variant. Needs packed operands: A [batch, M, Kp], B [batch, Kp, Np] with Kp, Np
 * multiples of 4 (zero padded). Bindings: A, B (vec4), C (f32, contiguous [batch, M, N]).
 * Params: [M, Kp, N, Np, batchShape[nb], A batch strides[nb], B batch strides[nb], A offset, B offset]
 * (in floats; offsets and strides multiples of 4).
 */
export function matmulVec4Kernel(nb: number, tm: number, tb: number, wx: number, wy: number): string {
  const rows = [...Array(tm).keys()], cols = [...Array(tb).keys()];
  let body = `  let lx = i32(lid % ${wx}u); let ly = i32(lid / ${wx}u);
  let m0 = (i32(wid.y) * ${wy} + ly) * ${tm}; let c0 = (i32(wid.x) * ${wx} + lx) * ${tb};
  let M = ${p(0)}; let K4 = ${p(1)} / 4; let N = ${p(2)}; let N4 = ${p(3)} / 4;
${unravel("wid.z", 0, nb, 4)}  let ab = (${p(4 + 3 * nb)}${dot(0, nb, 4 + nb)}) / 4; let bb = (${
    p(5 + 3 * nb)
  }${dot(0, nb, 4 + 2 * nb)}) / 4;
`;
  body += rows.map((i) => `  let a${i} = ab + min(m0 + ${i}, M - 1) * K4;\n`).join("");
  body += cols.map((j) => `  let b${j} = bb + min(c0 + ${j}, N4 - 1);\n`).join("");
  body += rows.map((i) => cols.map((j) => `  var c${i}_${j} = vec4<f32>();\n`).join("")).join("");
  body += "  for (var k = 0; k < K4; k++) {\n";
  body += rows.map((i) => `    let x${i} = B0[a${i} + k];\n`).join("");
  for (let u = 0; u < 4; u++) {
    body += `    {\n      let r = (4 * k + ${u}) * N4;\n`;
    body += cols.map((j) => `      let y${j} = B1[b${j} + r];\n`).join("");
    body += rows.map((i) =>
      cols.map((j) => `      c${i}_${j} = fma(vec4(x${i}[${u}]), y${j}, c${i}_${j});\n`).join("")
    )
      .join("");
    body += "    }\n";
  }
  body += "  }\n  let cb = i32(wid.z) * M * N;\n";
  body += rows.map((i) =>
    cols.map((j) =>
      `  if (m0 + ${i} < M) { for (var q = 0; q < 4; q++) { let n = (c0 + ${j}) * 4 + q;
    if (n < N) { B2[cb + (m0 + ${i}) * N + n] = c${i}_${j}[q]; } } }\n`
    ).join("")
  ).join("");
  const bufs = [{ type: "vec4<f32>", write: false }, { type: "vec4<f32>", write: false }, {
    type: "f32",
    write: true,
  }];
  return kernel(6 + 3 * nb, bufs, body, wx * wy);
}

/** Matmul for CPU adapters, where a storage load goes lane by lane (~9 ns each on lavapipe) but a
 * uniform load all lanes share is one scalar load: A comes through a uniform binding (64 KiB of rows
 * × Kc ≤ 512), a workgroup (8 lanes, the SIMD width) takes 32 rows (by wid.y), a lane 8 columns (2
 * vec4 of B, packed [Kp, Np]). Bindings: B, C (f32), A. Params: [M, Kc, N, Np/4, first row, B offset
 * (vec4, at the chunk's first k), C offset, accumulate (C += …), chunk length in k]. */
export function panelMatmulKernel(): string {
  const each = (f: (i: number) => string) => [...Array(32).keys()].map(f).join("");
  const acc = each((i) => `  var c${i}_0 = vec4<f32>(); var c${i}_1 = vec4<f32>();\n`);
  const fmas = each((i) =>
    `    let x${i} = vec4(A[(a0 + ${i} * Kc + k) / 4][k % 4]);
    c${i}_0 = fma(x${i}, y0, c${i}_0); c${i}_1 = fma(x${i}, y1, c${i}_1);\n`
  );
  const puts = each((i) => `  if (m0 + ${i} < M) { put_(c${i}_0, c${i}_1, o + ${i} * N, c0 * 4); }\n`);
  const body = `  let M = ${p(0)}; let Kc = ${p(1)}; let N = ${p(2)}; let N4 = ${p(3)}; let kn = ${p(8)};
  let m0 = ${p(4)} + i32(wid.y) * 32; let a0 = i32(wid.y) * 32 * Kc; let c0 = i32(wid.x * 8 + lid) * 2;
  let b0 = ${p(5)} + min(c0, N4 - 1); let b1 = ${p(5)} + min(c0 + 1, N4 - 1);
  let o = ${p(6)} + m0 * N + c0 * 4;
${acc}  for (var k = 0; k < kn; k++) {
    let y0 = B0[b0 + k * N4]; let y1 = B0[b1 + k * N4];
${fmas}  }
${puts}`;
  const put = `@group(0) @binding(3) var<uniform> A: array<vec4<f32>, 4096>;
fn put_(x: vec4<f32>, y: vec4<f32>, o: i32, n: i32) {
  for (var q = 0; q < 8; q++) {
    let v = select(x[q % 4], y[q % 4], q > 3);
    if (n + q < ${p(2)}) { B1[o + q] = v + select(0f, B1[o + q], ${p(7)} != 0); }
  }
}
`;
  return kernel(9, [{ type: "vec4<f32>", write: false }, { type: "f32", write: true }], body, 8, put);
}
