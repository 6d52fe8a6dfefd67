/**
 * Fused causal attention for WebGPU, in the manner of FlashAttention: a workgroup takes a block of
 * 64 rows of one (batch, head) — query rows for the forward and the backward's dq, key rows for dk
 * and dv — with one thread per row, and walks the other side in tiles staged in workgroup memory,
 * with an online softmax, so the [B, H, T, S] scores and probabilities never reach memory. Key j
 * is hidden from query i when j > past + i or the key mask is 0 there; a hidden score is −1e9,
 * exactly as the composed op (so a row that sees no key averages every value). Each query row keeps
 * [max, sum of exp, Σ dout·out] in a stats buffer for the backward. Without a key mask, tiles past
 * the causal edge are skipped (no row is then hidden from every key).
 *
 * Bindings: Q, K, V, M (the key mask; any buffer when there is none), then per kernel (below).
 * Params: [unused, H, T, S, past, has mask, then offset and 4 strides of Q, K, V, the mask's offset
 * and its 2 strides, dout's offset and 4 strides].
 */
import { type Binding, kernel, p, RO, RW } from "./kernels.ts";

/** Where each view's params start: q, k, v, the mask, dout. */
const [Q, K, V, M, G] = [6, 11, 16, 21, 24];
/** Rows per workgroup. */
export const ATTENTION_ROWS = 64;
/** Row `row`, element `d` of the [B, H, ·, D] view whose params start at `v`, in buffer `buf`. */
const at = (buf: string, v: number, row: string, d: string) =>
  `${buf}[${p(v)} + b * ${p(v + 1)} + h * ${p(v + 2)} + ${row} * ${p(v + 3)} + ${d} * ${p(v + 4)}]`;
/** Elements 4·`d4` … 4·`d4` + 3 of a row as a vec4, zero past D (rows are held as vec4s: a quarter
 * of the dynamic indexing, which software adapters pay for dearly). */
const at4 = (buf: string, v: number, row: string, d4: string) =>
  `vec4<f32>(${
    [0, 1, 2, 3].map((c) => `select(0.0, ${at(buf, v, row, `${d4} * 4 + ${c}`)}, ${d4} * 4 + ${c} < D)`)
  })`;

/** What a kernel's thread does: `init`, `stage`, `step` and `done` (see `attentionKernel`). */
type Parts = Record<"init" | "step" | "done", string> & { stage: (y: string) => string };

/**
 * A kernel over blocks of rows along axis `n` (T: query rows; S: key rows), `D` and the scale baked
 * in. The thread's row is `x` (`on` when it exists) of batch `b`, head `h`; the other side comes in
 * tiles of `KT` rows from `first` to `last` (exclusive; workgroup-uniform), `stage` copying tile row
 * `y` (its vec4 `d`) into workgroup memory and `step` using it after a barrier.
 */
function attentionKernel(D: number, over: "query" | "key", extra: Binding[], parts: Parts): string {
  const KT = Math.max(1, Math.min(16, Math.floor(4000 / (2 * D) - 1)));
  const [n, m] = over === "query" ? [p(2), p(3)] : [p(3), p(2)];
  // Query blocks need keys 0 .. past + last row; key blocks need queries from first key − past on.
  const range = over === "query"
    ? `let first = 0;\n  let last = select(${m}, min(${m}, ${p(4)} + x0 + ${ATTENTION_ROWS}), ${p(5)} == 0);`
    : `let first = select(0, max(0, x0 - ${p(4)}) / ${KT} * ${KT}, ${p(5)} == 0);\n  let last = ${m};`;
  const decls = `const D = ${D};
const D4 = ${Math.ceil(D / 4)};
const KT = ${KT};
const SCALE = ${Math.fround(1 / Math.sqrt(D))};
var<workgroup> s0: array<vec4<f32>, ${KT * Math.ceil(D / 4)}>;
var<workgroup> s1: array<vec4<f32>, ${KT * Math.ceil(D / 4)}>;
var<workgroup> s2: array<f32, ${3 * KT}>;
fn seen(b: i32, i: i32, j: i32) -> bool {
  return j <= ${p(4)} + i && (${p(5)} == 0 || B3[${p(M)} + b * ${p(M + 1)} + j * ${p(M + 2)}] != 0u);
}
`;
  const body = `  let blocks = (${n} + ${ATTENTION_ROWS - 1}) / ${ATTENTION_ROWS};
  let w = i32(wg);
  let h = w / blocks % ${p(1)};
  let b = w / blocks / ${p(1)};
  let x0 = w % blocks * ${ATTENTION_ROWS};
  let x = x0 + i32(lid);
  let on = x < ${n};
  let r = (w / blocks * ${n} + x) * D;
${parts.init}
  ${range}
  for (var t0 = first; t0 < last; t0 += KT) {
    workgroupBarrier();
    for (var e = i32(lid); e < KT * D4; e += ${ATTENTION_ROWS}) {
      let y = t0 + e / D4;
      let d = e % D4;
      if (y < last) {
${parts.stage("y")}
      }
    }
    workgroupBarrier();
    for (var u = 0; u < KT && t0 + u < last && on; u++) {
      let y = t0 + u;
${parts.step}
    }
  }
  if (on) {
${parts.done}
  }`;
  const bindings = [RO("f32"), RO("f32"), RO("f32"), RO("u32"), ...extra];
  return kernel({ params: G + 5, bindings, body, decls, workgroupSize: ATTENTION_ROWS });
}

/** The loads of the thread's own row of Q (or K, V) and of dout, into private arrays. */
const own = (pairs: [string, string, number][], row: string) =>
  pairs.map(([name]) => `  var ${name}: array<vec4<f32>, D4>;`).join("\n") +
  `\n  for (var d = 0; d < D4 && on; d++) {\n` +
  pairs.map(([name, buf, v]) => `    ${name}[d] = ${at4(buf, v, row, "d")};`).join("\n") + "\n  }";

/** The tile of the forward and of dq: rows of K and V. */
const keysAndValues = (y: string) =>
  `        s0[e] = ${at4("B1", K, y, "d")};\n        s1[e] = ${at4("B2", V, y, "d")};`;

/** Forward: B4 = out [rows, D] (contiguous), B5 = stats [rows, 3]. */
export const attentionForward = (D: number): string =>
  attentionKernel(D, "query", [RW("f32"), RW("f32")], {
    init: `${own([["q", "B0", Q]], "x")}
  var acc: array<vec4<f32>, D4>;
  var m = -3.0e38;
  var l = 0.0;`,
    stage: keysAndValues,
    step: `      let vis = seen(b, x, y);
      // A hidden key adds exp(−1e9 − m) = 0 once any key was seen.
      if (!vis && m > -1e9) { continue; }
      var s = -1e9;
      if (vis) {
        var qk = 0.0;
        for (var d = 0; d < D4; d++) { qk += dot(q[d], s0[u * D4 + d]); }
        s = qk * SCALE;
      }
      let mn = max(m, s);
      let c = exp(m - mn);
      let e = exp(s - mn);
      l = l * c + e;
      m = mn;
      for (var d = 0; d < D4; d++) { acc[d] = acc[d] * c + e * s1[u * D4 + d]; }`,
    done: `    for (var d = 0; d < D; d++) { B4[r + d] = acc[d / 4][d % 4] / l; }
    B5[r / D * 3] = m;
    B5[r / D * 3 + 1] = l;`,
  });

/** Backward over query rows: B4 = dout, B5 = out, B6 = stats (writes Σ dout·out), B7 = dq. */
export const attentionGradQ = (D: number): string =>
  attentionKernel(D, "query", [RO("f32"), RO("f32"), RW("f32"), RW("f32")], {
    init: `${own([["q", "B0", Q], ["g", "B4", G]], "x")}
  var dq: array<vec4<f32>, D4>;
  var dd = 0.0;
  var m = 0.0;
  var l = 1.0;
  if (on) {
    for (var d = 0; d < D; d++) { dd += g[d / 4][d % 4] * B5[r + d]; }
    B6[r / D * 3 + 2] = dd;
    m = B6[r / D * 3];
    l = B6[r / D * 3 + 1];
  }`,
    stage: keysAndValues,
    // A row that sees no key has constant scores: no gradient reaches q (or k).
    step: `      if (!seen(b, x, y) || m <= -1e9) { continue; }
      var qk = 0.0;
      var dp = 0.0;
      for (var d = 0; d < D4; d++) {
        qk += dot(q[d], s0[u * D4 + d]);
        dp += dot(g[d], s1[u * D4 + d]);
      }
      let ds = exp(qk * SCALE - m) / l * (dp - dd) * SCALE;
      for (var d = 0; d < D4; d++) { dq[d] += ds * s0[u * D4 + d]; }`,
    done: `    for (var d = 0; d < D; d++) { B7[r + d] = dq[d / 4][d % 4]; }`,
  });

/** Backward over key rows (after `attentionGradQ`): B4 = dout, B5 = stats, B6 = dk, B7 = dv. */
export const attentionGradKV = (D: number): string =>
  attentionKernel(D, "key", [RO("f32"), RO("f32"), RW("f32"), RW("f32")], {
    init: `${own([["k", "B1", K], ["v", "B2", V]], "x")}
  var dk: array<vec4<f32>, D4>;
  var dv: array<vec4<f32>, D4>;
  let rows = w / blocks * ${p(2)};`,
    stage: (y) =>
      `        s0[e] = ${at4("B0", Q, y, "d")};\n        s1[e] = ${at4("B4", G, y, "d")};
        if (d == 0) { for (var c = 0; c < 3; c++) { s2[(${y} - t0) * 3 + c] = B5[(rows + ${y}) * 3 + c]; } }`,
    step: `      let vis = seen(b, y, x);
      let st = u * 3;
      if (!vis && s2[st] > -1e9) { continue; }
      var qk = 0.0;
      var dp = 0.0;
      for (var d = 0; d < D4; d++) {
        qk += dot(s0[u * D4 + d], k[d]);
        dp += dot(s1[u * D4 + d], v[d]);
      }
      let pr = exp(select(-1e9, qk * SCALE, vis) - s2[st]) / s2[st + 1];
      let ds = select(0.0, pr * (dp - s2[st + 2]) * SCALE, vis);
      for (var d = 0; d < D4; d++) {
        dv[d] += pr * s1[u * D4 + d];
        dk[d] += ds * s0[u * D4 + d];
      }`,
    done: `    for (var d = 0; d < D; d++) {
      B6[r + d] = dk[d / 4][d % 4];
      B7[r + d] = dv[d / 4][d % 4];
    }`,
  });
