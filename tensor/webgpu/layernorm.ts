/**
 * Fused LayerNorm for WebGPU: three kernels where the composed op takes eight or more. The forward
 * and the backward's dx each give a workgroup of 64 threads to a row of x [rows, D]: the threads
 * stride over the row and add their partial sums in a tree in workgroup memory (`total`). The
 * forward keeps each row's mean and 1/σ (the stats, [rows, 2]); the backward recomputes x̂ from x
 * and the stats rather than keeping a [rows, D] x̂. The weight and bias gradients, sums over rows,
 * give a workgroup to a column instead, its threads striding over the rows (pairwise sums, so the
 * rounding stays near the composed op's).
 *
 * Every operand is contiguous (the frontend makes it so). Bindings: B0 = x, B1 = weight, B2 = bias,
 * B3 = g (the output's gradient; an absent input is bound as x and never read), then the backward's
 * stats and outputs, or the forward's y and stats. Params: [rows, D, then the offsets of x, the
 * weight, the bias and g, then eps's f32 bits].
 */
import { kernel, p } from "./kernels.ts";

/** x and g at row `r`, column `d`; the weight (B1) and the bias (B2) at `d`, 1 and 0 when absent. */
const [X, G] = [[0, 2], [3, 5]].map(([b, at]) => `B${b}[${p(at)} + r * ${p(1)} + d]`);
const affine = (b: 1 | 2, on: boolean) => on ? `B${b}[${p(b + 2)} + d]` : b === 1 ? "1f" : "0f";
/** x̂ at row `r`, column `d`, from x and the row's mean and 1/σ in the stats (B4). */
const XHAT = `(${X} - B4[2 * r]) * B4[2 * r + 1]`;

// The workgroup's sum of `v`: a tree in workgroup memory, after a barrier so that no thread overwrites
// red[0] before every thread has loaded the last sum. Every thread must call it.
const TOTAL = `var<workgroup> red: array<vec2<f32>, 64>;
fn total(v: vec2<f32>, lid: u32) -> vec2<f32> {
  workgroupBarrier();
  red[lid] = v;
  for (var s = 32u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) { red[lid] += red[lid + s]; }
  }
  return workgroupUniformLoad(&red[0]);
}`;

/** A kernel whose workgroup of 64 threads takes row `r` (`i` = "r": two outputs after the inputs) or
 * column `d` (`i` = "d": three) of the [rows, D] operands; in `body`, `EACH` loops the threads over the
 * other index and `total(s, lid)` sums the vec2 `s` over the workgroup. */
const lnKernel = (i: "r" | "d") => (body: string): string => {
  const [n, j, m] = i === "r" ? [p(0), "d", p(1)] : [p(1), "r", p(0)];
  const bindings = [...Array(i === "r" ? 6 : 7).keys()].map((k) => ({ type: "f32", write: k >= 4 }));
  body = `  let ${i} = i32(wg);\n  if (${i} >= ${n}) { return; }\n  var s = vec2<f32>();\n${body}`;
  body = body.replaceAll("EACH", `for (var ${j} = i32(lid); ${j} < ${m}; ${j} += 64)`);
  return kernel({ params: 7, bindings, body, decls: TOTAL, workgroupSize: 64 });
};

/** Forward: B4 = y [rows, D], B5 = the stats. Two passes (the mean, then squares about it), as the
 * composed op: no cancellation. */
export const layerNormForward = (w: boolean, b: boolean): string =>
  lnKernel("r")(`  EACH { s.x += ${X}; }
  let mu = total(s, lid).x / f32(${p(1)});
  EACH { let c = ${X} - mu; s.y += c * c; }
  let rstd = 1f / sqrt_(total(s, lid).y / f32(${p(1)}) + bitcast<f32>(${p(6)}));
  EACH { B4[r * ${p(1)} + d] = (${X} - mu) * rstd * ${affine(1, w)} + ${affine(2, b)}; }
  if (lid == 0u) { B5[2 * r] = mu; B5[2 * r + 1] = rstd; }`);

/** Backward, B4 = the stats, B5 = dx [rows, D] = (gw − mean(gw) − x̂·mean(gw·x̂))·rstd with gw = g·w. */
export const layerNormGradX = (w: boolean): string =>
  lnKernel("r")(`  let st = vec2(B4[2 * r], B4[2 * r + 1]);
  EACH { let gw = ${G} * ${affine(1, w)}; s += vec2(gw, gw * (${X} - st.x) * st.y); }
  let m = total(s, lid) / f32(${p(1)});
  EACH { B5[r * ${p(1)} + d] = (${G} * ${affine(1, w)} - m.x - (${X} - st.x) * st.y * m.y) * st.y; }`);

/** Backward, B4 = the stats, B5 = the weight's gradient Σ g·x̂ and B6 = the bias's Σ g (over rows). */
export const LAYER_NORM_GRAD_WB: string = lnKernel("d")(`  EACH { s += vec2(${G} * ${XHAT}, ${G}); }
  s = total(s, lid);
  if (lid == 0u) { B5[d] = s.x; B6[d] = s.y; }`);
