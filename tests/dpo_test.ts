// deno-lint-ignore-file no-explicit-any
// (tests call ops with deliberately wrong or untyped shapes to reach the runtime checks)
/**
 * Tests for the DPO library (dpo/loss.ts, dpo/trainer.ts): every loss type against its paper's / TRL's
 * formula worked out by hand, gradients, numerical stability, masking in sequenceLogProbs, the
 * concatenated forward, reference handling, the trainer's metrics, and convergence of DPO on a
 * categorical bandit to the closed-form optimum π* ∝ π_ref·exp(r/β).
 */
import assert from "node:assert/strict";
import {
  batchPairs,
  dpoLoss,
  type DPOLossOptions,
  type DPOMetrics,
  DPOTrainer,
  type EncodedPair,
  fromArray,
  frozenCopy,
  GPT,
  type GPTConfig,
  LOSS_TYPES,
  type LossType,
  noGrad,
  pairLogProbs,
  precomputeReference,
  randn,
  rng,
  scope,
  sequenceLogProbs,
  SGD,
  Tensor,
} from "../mod.ts";
import { assertClose } from "./util.ts";

// ---- helpers -----------------------------------------------------------------------------------

/** softplus(x) = ln(1 + eˣ); note −ln σ(x) = softplus(−x) and ln σ(−x) = −softplus(x). */
const sp = (x: number) => Math.log1p(Math.exp(x));
/** σ(x). */
const sg = (x: number) => 1 / (1 + Math.exp(-x));
const LN2 = Math.log(2);

/** A leaf vector [n] that requires grad. */
const leaf = (xs: number[]): Tensor<[number]> => fromArray<[number]>(xs, [xs.length]).requiresGrad_();
const vec = (xs: number[]): Tensor<[number]> => fromArray<[number]>(xs, [xs.length]);
const read = async (t: Tensor<any>) => Array.from(await t.data());
const allFinite = (xs: ArrayLike<number>) => Array.from(xs).every(Number.isFinite);

/** Log-probs as plain numbers → fresh leaf tensors (so every call gets its own gradients). */
interface Lp {
  pc: number[];
  pr: number[];
  rc: number[];
  rr: number[];
  avg?: number[];
}
function inputs(v: Lp) {
  return {
    policyChosen: leaf(v.pc),
    policyRejected: leaf(v.pr),
    referenceChosen: vec(v.rc),
    referenceRejected: vec(v.rr),
    policyChosenAvg: v.avg ? leaf(v.avg) : undefined,
  };
}

const TINY: GPTConfig = { vocabSize: 13, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 16 };

/** A GPT whose weights are pushed well away from the (near-uniform) default init, deterministically,
 * so that log-probs differ between tokens and positions. */
function randomGPT(cfg: GPTConfig = TINY, seed = 7): GPT {
  const m = new GPT({ ...cfg, seed });
  m.namedParameters().forEach(([, p], i) =>
    p.assign(p.add(randn(p.shape, { seed: seed * 1000 + i, std: 0.3 })))
  );
  return m;
}

/** The tensor at a dotted parameter name inside a module (also finds tensors that are no longer
 * parameters because they stopped requiring grad). */
function at(obj: unknown, name: string): Tensor<any> {
  let cur: any = obj;
  for (const k of name.split(".")) cur = cur[k];
  assert.ok(cur instanceof Tensor, `${name} is not a tensor`);
  return cur;
}

/** Right-pads prompt ++ completion sequences to length L; mask marks the completion. */
function padBatch(seqs: [number[], number[]][], L: number, padId: number) {
  const tok: number[] = [], mask: number[] = [];
  for (const [p, c] of seqs) {
    const row = [...p, ...c];
    assert.ok(row.length <= L);
    tok.push(...row, ...Array(L - row.length).fill(padId));
    mask.push(...Array(p.length).fill(0), ...Array(c.length).fill(1), ...Array(L - row.length).fill(0));
  }
  return {
    tokens: fromArray<[number, number]>(tok, [seqs.length, L], "i32"),
    mask: fromArray<[number, number]>(mask, [seqs.length, L]),
  };
}

// ---- 1. policy = reference ---------------------------------------------------------------------

Deno.test("policy equal to reference: sigmoid loss is ln 2 and both rewards are 0", async () => {
  // π = π_ref ⇒ both log-ratios c = r = 0 ⇒ h = 0 ⇒ loss = −ln σ(0) = ln 2 for every pair, whatever β.
  const lp = [-3.5, -0.25, -12];
  for (const beta of [0.1, 1, 5]) {
    const out = dpoLoss({
      policyChosen: leaf(lp),
      policyRejected: leaf([-1, -7, -2]),
      referenceChosen: vec(lp),
      referenceRejected: vec([-1, -7, -2]),
    }, { beta });
    await assertClose(out.loss, LN2);
    await assertClose(out.losses, [LN2, LN2, LN2]);
    await assertClose(out.chosenRewards, [0, 0, 0]); // β·(π − π_ref) = 0
    await assertClose(out.rejectedRewards, [0, 0, 0]);
  }
});

// ---- 2. every loss type against its formula ------------------------------------------------------

// Two pairs, β = 0.5. Log-ratios c = π_c − ref_c, r = π_r − ref_r, h = c − r.
//   pair 0: π_c = −1,   π_r = −3, ref_c = −2, ref_r = −2.5 → c = 1,    r = −0.5, h = 1.5,  βc = 0.5,   βr = −0.25, βh = 0.75
//   pair 1: π_c = −1.5, π_r = −1, ref_c = −1, ref_r = −3   → c = −0.5, r = 2,    h = −2.5, βc = −0.25, βr = 1,     βh = −1.25
// (pair 1 is a "wrong" pair: the policy prefers the rejected completion.)
const KNOWN: Lp = { pc: [-1, -1.5], pr: [-3, -1], rc: [-2, -1], rr: [-2.5, -3], avg: [-0.25, -0.75] };
const BETA = 0.5;

/** Per-pair expected losses, each from the cited formula (TRL DPOTrainer.dpo_loss / CPOTrainer). */
const EXPECTED: { name: string; opts: DPOLossOptions; losses: number[]; rewards?: [number[], number[]] }[] = [
  {
    // DPO (Rafailov et al. 2023): −ln σ(βh) = softplus(−βh).
    // pair 0: softplus(−0.75) = ln(1 + e^−0.75) = ln 1.472367 ≈ 0.386871
    // pair 1: softplus(1.25) = ln(1 + e^1.25) = ln 4.490343 ≈ 1.501929
    name: "sigmoid",
    opts: { lossType: "sigmoid" },
    losses: [sp(-0.75), sp(1.25)],
  },
  {
    // conservative DPO (ε = 0.1): −(1−ε)·ln σ(βh) − ε·ln σ(−βh) = 0.9·softplus(−βh) + 0.1·softplus(βh)
    // pair 0: 0.9·0.386871 + 0.1·1.136871 ≈ 0.461871   (softplus(x) = x + softplus(−x))
    // pair 1: 0.9·1.501929 + 0.1·0.251929 ≈ 1.376929
    name: "sigmoid+labelSmoothing",
    opts: { lossType: "sigmoid", labelSmoothing: 0.1 },
    losses: [0.9 * sp(-0.75) + 0.1 * sp(0.75), 0.9 * sp(1.25) + 0.1 * sp(-1.25)],
  },
  {
    // robust DPO (Chowdhury et al. 2024): (−(1−ε)·ln σ(βh) + ε·ln σ(−βh)) / (1 − 2ε)
    //   = (0.9·softplus(−βh) − 0.1·softplus(βh)) / 0.8
    // pair 0: (0.348184 − 0.113687)/0.8 ≈ 0.293121;  pair 1: (1.351736 − 0.025193)/0.8 ≈ 1.658179
    name: "robust",
    opts: { lossType: "robust", labelSmoothing: 0.1 },
    losses: [(0.9 * sp(-0.75) - 0.1 * sp(0.75)) / 0.8, (0.9 * sp(1.25) - 0.1 * sp(-1.25)) / 0.8],
  },
  {
    // IPO (Azar et al. 2023): (h − 1/(2β))² with 1/(2β) = 1
    // pair 0: (1.5 − 1)² = 0.25;  pair 1: (−2.5 − 1)² = 12.25
    name: "ipo",
    opts: { lossType: "ipo" },
    losses: [0.25, 12.25],
  },
  {
    // SLiC hinge (Zhao et al. 2023): relu(1 − βh)
    // pair 0: relu(1 − 0.75) = 0.25;  pair 1: relu(1 + 1.25) = 2.25
    name: "hinge",
    opts: { lossType: "hinge" },
    losses: [0.25, 2.25],
  },
  {
    // BCO pair (Jung et al. 2024) with δ = 0.2: −ln σ(βc − δ) − ln σ(−(βr − δ)) = softplus(δ − βc) + softplus(βr − δ)
    // pair 0: softplus(−0.3) + softplus(−0.45) = 0.554355 + 0.493249 ≈ 1.047604
    // pair 1: softplus(0.45) + softplus(0.8)  = 0.943249 + 1.171101 ≈ 2.114350
    name: "bco_pair δ=0.2",
    opts: { lossType: "bco_pair", bcoDelta: 0.2 },
    losses: [sp(-0.3) + sp(-0.45), sp(0.45) + sp(0.8)],
  },
  {
    // BCO pair, default δ = mean of all rewards in the batch = (0.5 − 0.25 − 0.25 + 1)/4 = 0.25
    // pair 0: softplus(0.25 − 0.5) + softplus(−0.25 − 0.25) = softplus(−0.25) + softplus(−0.5) ≈ 1.050016
    // pair 1: softplus(0.25 + 0.25) + softplus(1 − 0.25)    = softplus(0.5) + softplus(0.75)   ≈ 2.110948
    name: "bco_pair batch-mean δ",
    opts: { lossType: "bco_pair" },
    losses: [sp(-0.25) + sp(-0.5), sp(0.5) + sp(0.75)],
  },
  {
    // NCA pair (Chen et al. 2024): −ln σ(βc) − ½ ln σ(−βc) − ½ ln σ(−βr)
    //   = softplus(−βc) + ½ softplus(βc) + ½ softplus(βr)
    // pair 0: softplus(−0.5) + ½ softplus(0.5) + ½ softplus(−0.25) = 0.474077 + 0.487039 + 0.287970 ≈ 1.249085
    // pair 1: softplus(0.25) + ½ softplus(−0.25) + ½ softplus(1)   = 0.825939 + 0.287970 + 0.656631 ≈ 1.770540
    name: "nca_pair",
    opts: { lossType: "nca_pair" },
    losses: [sp(-0.5) + 0.5 * sp(0.5) + 0.5 * sp(-0.25), sp(0.25) + 0.5 * sp(-0.25) + 0.5 * sp(1)],
  },
  {
    // SPPO hard (Wu et al. 2024): (c − 1/(2β))² + (r + 1/(2β))² with 1/(2β) = 1
    // pair 0: (1 − 1)² + (−0.5 + 1)² = 0 + 0.25 = 0.25;  pair 1: (−0.5 − 1)² + (2 + 1)² = 2.25 + 9 = 11.25
    name: "sppo_hard",
    opts: { lossType: "sppo_hard" },
    losses: [0.25, 11.25],
  },
  {
    // APO-zero (D'Oosterlinck et al. 2024): (1 − σ(βc)) + σ(βr)
    // pair 0: 1 − σ(0.5) + σ(−0.25) = 1 − 0.622459 + 0.437823 ≈ 0.815364
    // pair 1: 1 − σ(−0.25) + σ(1)   = 1 − 0.437823 + 0.731059 ≈ 1.293235
    name: "apo_zero",
    opts: { lossType: "apo_zero" },
    losses: [1 - sg(0.5) + sg(-0.25), 1 - sg(-0.25) + sg(1)],
  },
  {
    // APO-down: σ(βc) + (1 − σ(β(c − r)))
    // pair 0: σ(0.5) + 1 − σ(0.75)    = 0.622459 + 1 − 0.679179 ≈ 0.943281
    // pair 1: σ(−0.25) + 1 − σ(−1.25) = 0.437823 + 1 − 0.222700 ≈ 1.215123
    name: "apo_down",
    opts: { lossType: "apo_down" },
    losses: [sg(0.5) + 1 - sg(0.75), sg(-0.25) + 1 - sg(-1.25)],
  },
  {
    // SimPO (Meng et al. 2024; TRL CPOTrainer): reference ignored, −ln σ(β(π_c − π_r) − γ), γ = 0.4
    // pair 0: π_c − π_r = 2    → z = 1 − 0.4 = 0.6     → softplus(−0.6) ≈ 0.437488
    // pair 1: π_c − π_r = −0.5 → z = −0.25 − 0.4 = −0.65 → softplus(0.65) ≈ 1.070055
    // rewards are β·π (no reference): chosen [−0.5, −0.75], rejected [−1.5, −0.5]
    name: "simpo γ=0.4",
    opts: { lossType: "simpo", simpoGamma: 0.4 },
    losses: [sp(-0.6), sp(0.65)],
    rewards: [[-0.5, -0.75], [-1.5, -0.5]],
  },
  {
    // SimPO with the default γ = 0.5: z = β(π_c − π_r) − 0.5 → pair 0: 0.5, pair 1: −0.75
    name: "simpo default γ",
    opts: { lossType: "simpo" },
    losses: [sp(-0.5), sp(0.75)],
    rewards: [[-0.5, -0.75], [-1.5, -0.5]],
  },
  {
    // reference-free DPO: the reference log-ratio counts as 0, h = π_c − π_r
    // pair 0: h = 2 → softplus(−1) ≈ 0.313262;  pair 1: h = −0.5 → softplus(0.25) ≈ 0.825939
    name: "sigmoid referenceFree",
    opts: { lossType: "sigmoid", referenceFree: true },
    losses: [sp(-1), sp(0.25)],
    rewards: [[-0.5, -0.75], [-1.5, -0.5]],
  },
];

Deno.test("every loss type gives its formula's value on known log-probs (β = 0.5)", async () => {
  const seen = new Set<LossType>();
  for (const e of EXPECTED) {
    const out = dpoLoss(inputs(KNOWN), { beta: BETA, ...e.opts });
    seen.add(e.opts.lossType!);
    await assertClose(out.losses, e.losses, { msg: `${e.name} losses` });
    await assertClose(out.loss, (e.losses[0] + e.losses[1]) / 2, { msg: `${e.name} mean loss` });
    // Rewards: β·(π − π_ref) = β·[c, r]: chosen [0.5, −0.25], rejected [−0.25, 1] (or β·π without a reference).
    const [wc, wr] = e.rewards ?? [[0.5, -0.25], [-0.25, 1]];
    await assertClose(out.chosenRewards, wc, { msg: `${e.name} chosen rewards` });
    await assertClose(out.rejectedRewards, wr, { msg: `${e.name} rejected rewards` });
    assert.equal(out.loss.requiresGrad, true, `${e.name}: the loss is on the tape`);
    assert.equal(out.chosenRewards.requiresGrad, false, `${e.name}: rewards are detached`);
    assert.equal(out.rejectedRewards.requiresGrad, false, `${e.name}: rewards are detached`);
  }
  assert.deepEqual([...seen].sort(), [...LOSS_TYPES].sort(), "every loss type is covered");
});

Deno.test("sftWeight adds −w·mean(per-token log-prob of chosen) and its gradient", async () => {
  // sigmoid mean loss = (0.386871 + 1.501929)/2 ≈ 0.944400; policyChosenAvg = [−0.25, −0.75], mean −0.5
  // loss = 0.944400 − 0.3·(−0.5) = 0.944400 + 0.15 ≈ 1.094400; per-pair losses are unchanged.
  const x = inputs(KNOWN);
  const out = dpoLoss(x, { beta: BETA, sftWeight: 0.3 });
  const dpo = (sp(-0.75) + sp(1.25)) / 2;
  await assertClose(out.loss, dpo + 0.15);
  await assertClose(out.losses, [sp(-0.75), sp(1.25)]);
  // d loss / d avg_i = −w/B = −0.3/2 = −0.15 for each pair.
  out.loss.backward();
  await assertClose(x.policyChosenAvg!.grad!, [-0.15, -0.15]);
  // sftWeight without the averages is an error; weight 0 needs none.
  assert.throws(
    () => dpoLoss({ ...inputs(KNOWN), policyChosenAvg: undefined }, { sftWeight: 1 }),
    /policyChosenAvg/,
  );
  await assertClose(
    dpoLoss({ ...inputs(KNOWN), policyChosenAvg: undefined }, { beta: BETA, sftWeight: 0 }).loss,
    dpo,
  );
});

Deno.test("bco_pair's batch-mean δ is detached: gradient equals the one with that δ given explicitly", async () => {
  // δ = 0.25 (see above). With δ constant, d/dπ_c [softplus(δ − βc)] / B = −β·σ(δ − βc)/B:
  //   pair 0: −0.5·σ(−0.25)/2 = −0.25·0.437823 ≈ −0.109456;  pair 1: −0.25·σ(0.5) ≈ −0.155615
  const a = inputs(KNOWN), b = inputs(KNOWN);
  dpoLoss(a, { beta: BETA, lossType: "bco_pair" }).loss.backward();
  dpoLoss(b, { beta: BETA, lossType: "bco_pair", bcoDelta: 0.25 }).loss.backward();
  await assertClose(a.policyChosen.grad!, [-0.25 * sg(-0.25), -0.25 * sg(0.5)]);
  await assertClose(a.policyChosen.grad!, await read(b.policyChosen.grad!));
  await assertClose(a.policyRejected.grad!, await read(b.policyRejected.grad!));
});

Deno.test("dpoLoss validates β, ε, the loss type and the reference", () => {
  assert.throws(() => dpoLoss(inputs(KNOWN), { beta: 0 }), RangeError);
  assert.throws(() => dpoLoss(inputs(KNOWN), { labelSmoothing: 0.5 }), RangeError);
  assert.throws(() => dpoLoss(inputs(KNOWN), { lossType: "kto" as LossType }), RangeError);
  assert.throws(
    () => dpoLoss({ policyChosen: leaf([-1]), policyRejected: leaf([-2]) }),
    /reference log-probs are required/,
  );
  // …but reference-free and SimPO need none.
  dpoLoss({ policyChosen: leaf([-1]), policyRejected: leaf([-2]) }, { referenceFree: true });
  dpoLoss({ policyChosen: leaf([-1]), policyRejected: leaf([-2]) }, { lossType: "simpo" });
});

// ---- 3. gradient of the sigmoid loss --------------------------------------------------------------

Deno.test("sigmoid-loss gradient wrt policyChosen is −β·σ(−βΔ)/B and wrt policyRejected its negative", async () => {
  // loss = (1/B)·Σ softplus(−βΔ_i), Δ_i = (π_c − ref_c) − (π_r − ref_r);
  // d/dπ_c softplus(−βΔ) = σ(−βΔ)·(−β) ⇒ −β·σ(−βΔ_i)/B; dΔ/dπ_r = −1 ⇒ +β·σ(−βΔ_i)/B.
  // B = 3, β = 0.5:
  //   pair 0: c = −1 + 2 = 1,      r = −3 + 2.5 = −0.5,  Δ = 1.5
  //   pair 1: c = −2 + 1.5 = −0.5, r = −1 + 1.2 = 0.2,   Δ = −0.7
  //   pair 2: c = −0.5 + 1 = 0.5,  r = −0.7 + 0.4 = −0.3, Δ = 0.8
  // grad π_c = −0.5·σ(−βΔ)/3: σ(−0.75) = 0.320821 → −0.053470; σ(0.35) = 0.586618 → −0.097770;
  //                           σ(−0.4) = 0.401312 → −0.066885
  const v: Lp = { pc: [-1, -2, -0.5], pr: [-3, -1, -0.7], rc: [-2, -1.5, -1], rr: [-2.5, -1.2, -0.4] };
  const deltas = [1.5, -0.7, 0.8];
  const x = inputs(v);
  const out = dpoLoss(x, { beta: 0.5 });
  out.loss.backward();
  const want = deltas.map((d) => (-0.5 * sg(-0.5 * d)) / 3);
  await assertClose(x.policyChosen.grad!, want);
  await assertClose(want, [-0.053470, -0.097770, -0.066885], { atol: 1e-6 }); // the hand numbers above
  await assertClose(x.policyRejected.grad!, want.map((g) => -g));
  await assertClose(out.loss, deltas.reduce((s, d) => s + sp(-0.5 * d), 0) / 3);
});

// ---- 4. swapping chosen and rejected --------------------------------------------------------------

Deno.test("swapping chosen and rejected negates the margin and swaps the rewards", async () => {
  const v: Lp = { pc: [-1, -2, -0.5], pr: [-3, -1, -0.7], rc: [-2, -1.5, -1], rr: [-2.5, -1.2, -0.4] };
  const sw: Lp = { pc: v.pr, pr: v.pc, rc: v.rr, rr: v.rc };
  for (const lossType of LOSS_TYPES) {
    const a = dpoLoss(inputs(v), { beta: 0.5, lossType }), b = dpoLoss(inputs(sw), { beta: 0.5, lossType });
    const ma = await read(a.chosenRewards.sub(a.rejectedRewards));
    const mb = await read(b.chosenRewards.sub(b.rejectedRewards));
    // margin = β·Δ: with the reference β·[1.5, −0.7, 0.8] = [0.75, −0.35, 0.4]; SimPO: β(π_c − π_r) = [1, −0.5, 0.1]
    await assertClose(ma, lossType === "simpo" ? [1, -0.5, 0.1] : [0.75, -0.35, 0.4], { msg: lossType });
    await assertClose(mb, ma.map((m) => -m), { msg: lossType });
    await assertClose(b.chosenRewards, await read(a.rejectedRewards), { msg: lossType });
  }
  // and the sigmoid loss of the swapped pair is softplus(+βΔ) (the label flips): pair 0 softplus(0.75)
  await assertClose(dpoLoss(inputs(sw), { beta: 0.5 }).losses, [sp(0.75), sp(-0.35), sp(0.4)]);
});

// ---- 5. numerical stability -----------------------------------------------------------------------

Deno.test("margins of ±1e4: finite loss and gradients for every loss type", async () => {
  // π_c = [1e4, −1e4], π_r = [−1e4, 1e4], reference 0 ⇒ Δ = [2e4, −2e4], βΔ = ±2000 at β = 0.1.
  const v: Lp = { pc: [1e4, -1e4], pr: [-1e4, 1e4], rc: [0, 0], rr: [0, 0], avg: [-1, -2] };
  const variants: DPOLossOptions[] = [
    ...LOSS_TYPES.map((lossType) => ({ lossType })),
    { lossType: "sigmoid", labelSmoothing: 0.2 },
    { lossType: "robust", labelSmoothing: 0.2 },
    { lossType: "simpo", labelSmoothing: 0.2 },
    { lossType: "sigmoid", referenceFree: true, sftWeight: 1 },
    { lossType: "bco_pair", bcoDelta: 3 },
  ];
  for (const o of variants) {
    const x = inputs(v);
    const out = dpoLoss(x, { beta: 0.1, ...o });
    const tag = JSON.stringify(o);
    assert.ok(allFinite(await out.losses.data()), `${tag}: losses ${await read(out.losses)}`);
    out.loss.backward();
    assert.ok(
      allFinite(await x.policyChosen.grad!.data()),
      `${tag}: grad π_c ${await read(x.policyChosen.grad!)}`,
    );
    assert.ok(allFinite(await x.policyRejected.grad!.data()), `${tag}: grad π_r`);
  }
  // Values: sigmoid losses softplus(∓2000) = [≈0, 2000]; gradient wrt π_c = −β·σ(−βΔ)/2 = [−0.05·σ(−2000), −0.05·σ(2000)]
  // = [0, −0.05] (σ(−2000) underflows to 0 — no NaN from ∞·0).
  const x = inputs(v);
  const out = dpoLoss(x, { beta: 0.1 });
  await assertClose(out.losses, [0, 2000], { atol: 1e-3 });
  out.loss.backward();
  await assertClose(x.policyChosen.grad!, [0, -0.05]);
  // IPO: (h − 5)² = (2e4 − 5)² = 399800025 and (−20005)² = 400200025 (float32: relative tolerance)
  await assertClose(dpoLoss(inputs(v), { beta: 0.1, lossType: "ipo" }).losses, [399800025, 400200025], {
    rtol: 1e-6,
  });
});

Deno.test("sequenceLogProbs: an empty completion gives 0 (sum and average), with finite zero gradients", async () => {
  // Row 0 scores tokens 2 and 3; row 1 has no completion token (mask all zero).
  const V = 5, T = 4;
  const logits = randn<[number, number, number]>([2, T, V], { seed: 3, std: 3 }).requiresGrad_();
  const tokens = fromArray<[number, number]>([1, 4, 2, 0, 3, 3, 1, 2], [2, T], "i32");
  const mask = fromArray<[number, number]>([0, 0, 1, 1, 0, 0, 0, 0], [2, T]);
  const sum = sequenceLogProbs(logits, tokens, mask),
    avg = sequenceLogProbs(logits, tokens, mask, { average: true });
  const [s, a] = [await read(sum), await read(avg)];
  assert.equal(s[1], 0);
  assert.equal(a[1], 0); // average: 0 / max(0, 1) — no 0/0
  // Row 0 by hand from the logits: log softmax(logits[0, 1])[2] + log softmax(logits[0, 2])[0]
  const L = Array.from(await logits.data());
  const logp = (b: number, t: number, v: number) => {
    const row = L.slice((b * T + t) * V, (b * T + t + 1) * V);
    return row[v] - Math.log(row.reduce((z, x) => z + Math.exp(x), 0));
  };
  const want0 = logp(0, 1, 2) + logp(0, 2, 0);
  await assertClose(s[0], want0, { atol: 1e-5 });
  await assertClose(a[0], want0 / 2, { atol: 1e-5 });
  sum.add(avg).sum().backward();
  const g = await read(logits.grad!);
  assert.ok(allFinite(g));
  assert.deepEqual(g.slice(T * V), Array(T * V).fill(0), "row 1 gets no gradient");
  // Sequences of length 1 have nothing to score: 0.
  await assertClose(
    sequenceLogProbs(
      randn<[number, number, number]>([2, 1, V], { seed: 4 }),
      fromArray<[number, number]>([1, 2], [2, 1], "i32"),
      fromArray<[number, number]>([1, 1], [2, 1]),
    ),
    [0, 0],
  );
  // Shape mismatch is an error.
  assert.throws(() => sequenceLogProbs(logits, tokens.narrow(1, 0, 3) as any, mask), /need tokens and mask/);
});

// ---- 6. masking -----------------------------------------------------------------------------------

Deno.test("sequenceLogProbs: uniform logits give −k·ln V whatever the prompt and padding; average −ln V", async () => {
  // log p = 0 − logsumexp(0, …, 0) = −ln V per scored token ⇒ sum −k·ln V, average −ln V.
  // Layouts (prompt P ≥ 1, completion k, right padding pad) in one batch of common length T = 12;
  // the logits are zero only where they score a completion token (positions P−1 … P+k−2) and
  // garbage (±40) everywhere else, and the prompt/pad tokens are random: none of that may count.
  const V = 7, T = 12;
  const layouts: [number, number, number][] = [[1, 1, 10], [1, 11, 0], [3, 4, 5], [6, 2, 4], [8, 4, 0], [
    2,
    3,
    7,
  ]];
  const r = rng(11);
  const logits: number[] = [], tokens: number[] = [], mask: number[] = [];
  for (const [P, k, pad] of layouts) {
    assert.equal(P + k + pad, T);
    for (let t = 0; t < T; t++) {
      const scoring = t >= P - 1 && t <= P + k - 2;
      for (let v = 0; v < V; v++) logits.push(scoring ? 0 : (r() * 2 - 1) * 40);
      tokens.push(Math.floor(r() * V));
      mask.push(t >= P && t < P + k ? 1 : 0);
    }
  }
  const lg = fromArray<[number, number, number]>(logits, [layouts.length, T, V]);
  const tk = fromArray<[number, number]>(tokens, [layouts.length, T], "i32"),
    mk = fromArray<[number, number]>(mask, [layouts.length, T]);
  await assertClose(sequenceLogProbs(lg, tk, mk), layouts.map(([, k]) => -k * Math.log(V)));
  await assertClose(sequenceLogProbs(lg, tk, mk, { average: true }), layouts.map(() => -Math.log(V)));
  // Changing the prompt tokens and the padding tokens changes nothing.
  const tokens2 = tokens.map((x, i) => (mask[i] ? x : (x + 3) % V));
  await assertClose(
    sequenceLogProbs(lg, fromArray<[number, number]>(tokens2, [layouts.length, T], "i32"), mk),
    layouts.map(([, k]) => -k * Math.log(V)),
  );
});

Deno.test("sequenceLogProbs: logits at position t score token t+1", async () => {
  // Logits put a = 6 on the NEXT token (tokens[t+1]) at each position t, 0 elsewhere:
  //   log p(next) = a − ln(eᵃ + V − 1) = 6 − ln(e⁶ + 4) = −ln(1 + 4e⁻⁶) = −ln 1.009915 ≈ −0.009866 (V = 5)
  // If position t scored token t (no shift), each term would be 0 − ln(e⁶ + 4) ≈ −6.009866, since
  // consecutive tokens differ. Completion = positions 2..4 (k = 3) of 6 (one pad position).
  const V = 5, a = 6;
  const tokens = [0, 3, 1, 4, 2, 0];
  const logits: number[] = [];
  for (let t = 0; t < tokens.length; t++) {
    for (let v = 0; v < V; v++) logits.push(t + 1 < tokens.length && v === tokens[t + 1] ? a : 0);
  }
  const lg = fromArray<[number, number, number]>(logits, [1, 6, V]);
  const tk = fromArray<[number, number]>(tokens, [1, 6], "i32"),
    mk = fromArray<[number, number]>([0, 0, 1, 1, 1, 0], [1, 6]);
  const per = a - Math.log(Math.exp(a) + V - 1);
  await assertClose(sequenceLogProbs(lg, tk, mk), [3 * per]); // ≈ −0.029599
  await assertClose([per], [-0.009866], { atol: 1e-6 });
  await assertClose(sequenceLogProbs(lg, tk, mk, { average: true }), [per]);
  // Peaking at the current token instead scores ≈ −6.009866 per position: the shift is what makes the
  // first version near 0.
  const lgSame: number[] = [];
  for (let t = 0; t < tokens.length; t++) for (let v = 0; v < V; v++) lgSame.push(v === tokens[t] ? a : 0);
  await assertClose(sequenceLogProbs(fromArray<[number, number, number]>(lgSame, [1, 6, V]), tk, mk), [
    3 * (0 - Math.log(Math.exp(a) + V - 1)),
  ]);
});

// ---- 7. concatenated vs separate forwards -----------------------------------------------------------

const PAIRS7: EncodedPair[] = [
  { prompt: [1, 2, 3], chosen: [4, 5], rejected: [6, 7, 8, 9, 10] },
  { prompt: [11], chosen: [2, 2, 2, 2, 2, 2], rejected: [3] },
  { prompt: [5, 6, 7, 8, 9, 10], chosen: [12, 1, 0], rejected: [4, 4] },
];

Deno.test("pairLogProbs (one [2B, L] batch) equals separate chosen/rejected forwards and unpadded ones", async () => {
  const model = randomGPT();
  const padId = 0;
  const got = noGrad(() => pairLogProbs(model, PAIRS7, padId));
  const gotAvg = noGrad(() => pairLogProbs(model, PAIRS7, padId, true));
  const sep = (key: "chosen" | "rejected", L: number, pad: number) =>
    noGrad(() => {
      const { tokens, mask } = padBatch(PAIRS7.map((p) => [p.prompt, p[key]]), L, pad);
      return sequenceLogProbs(model.forward(tokens), tokens, mask);
    });
  // Chosen lengths 5, 7, 9 and rejected 8, 2, 8: the joint batch pads everything to L = 9;
  // separately the chosen batch is padded to 9 or 14 and the rejected one to 8 or 16, with other pad ids.
  const chosen = await read(got.chosen), rejected = await read(got.rejected);
  for (const [L, pad] of [[9, 0], [14, 12]]) await assertClose(sep("chosen", L, pad), chosen, { atol: 1e-5 });
  for (const [L, pad] of [[8, 0], [16, 5]]) {
    await assertClose(sep("rejected", L, pad), rejected, { atol: 1e-5 });
  }
  // Each sequence alone, with no padding at all.
  for (let i = 0; i < PAIRS7.length; i++) {
    for (const [key, want] of [["chosen", chosen[i]], ["rejected", rejected[i]]] as const) {
      const p = PAIRS7[i], L = p.prompt.length + p[key].length;
      const one = noGrad(() => {
        const { tokens, mask } = padBatch([[p.prompt, p[key]]], L, 0);
        return sequenceLogProbs(model.forward(tokens), tokens, mask);
      });
      await assertClose(one, [want], { atol: 1e-5, msg: `pair ${i} ${key}` });
    }
  }
  // The random model is far from uniform: log-probs differ from −k·ln 13.
  assert.ok(Math.abs(chosen[1] - -6 * Math.log(13)) > 0.1, `${chosen[1]}`);
  // average: divided by the completion lengths; chosenAvg is the chosen average either way.
  await assertClose(gotAvg.chosen, chosen.map((c, i) => c / PAIRS7[i].chosen.length), { atol: 1e-5 });
  await assertClose(gotAvg.rejected, rejected.map((r, i) => r / PAIRS7[i].rejected.length), { atol: 1e-5 });
  await assertClose(got.chosenAvg, await read(gotAvg.chosen), { atol: 1e-6 });
});

Deno.test("batchPairs: chosen rows first, right padding, mask on completions only", async () => {
  const { tokens, mask, realTokens } = batchPairs(PAIRS7.slice(0, 2), 99);
  // L = max(3+2, 3+5, 1+6, 1+1) = 8
  assert.deepEqual(tokens.shape, [4, 8]);
  assert.deepEqual(Array.from(await tokens.data()), [
    ...[1, 2, 3, 4, 5, 99, 99, 99],
    ...[11, 2, 2, 2, 2, 2, 2, 99],
    ...[1, 2, 3, 6, 7, 8, 9, 10],
    ...[11, 3, 99, 99, 99, 99, 99, 99],
  ]);
  assert.deepEqual(Array.from(await mask.data()), [
    ...[0, 0, 0, 1, 1, 0, 0, 0],
    ...[0, 1, 1, 1, 1, 1, 1, 0],
    ...[0, 0, 0, 1, 1, 1, 1, 1],
    ...[0, 1, 0, 0, 0, 0, 0, 0],
  ]);
  assert.equal(realTokens, 5 + 7 + 8 + 2);
});

Deno.test("pairLogProbs with an empty prompt: the average divides by the tokens actually scored (or it refuses)", async () => {
  // With no prompt, position 0 holds the first completion token and nothing scores it (logits at t score
  // t+1), so sequenceLogProbs sums k − 1 terms and its average divides by k − 1. pairLogProbs' average
  // (and chosenAvg, used for the SFT term) must divide by the same count — or reject empty prompts.
  const model = randomGPT();
  const pairs: EncodedPair[] = [{ prompt: [], chosen: [3, 4, 3], rejected: [5, 6] }];
  let got;
  try {
    got = noGrad(() => pairLogProbs(model, pairs, 0, true));
  } catch (e) {
    assert.match((e as Error).message, /prompt/); // refusing is an acceptable answer
    return;
  }
  const { tokens, mask } = batchPairs(pairs, 0);
  const ref = await read(
    noGrad(() => sequenceLogProbs(model.forward(tokens), tokens, mask, { average: true })),
  );
  await assertClose(got.chosen, [ref[0]], { atol: 1e-5, msg: "chosen average" });
  await assertClose(got.rejected, [ref[1]], { atol: 1e-5, msg: "rejected average" });
  await assertClose(got.chosenAvg, [ref[0]], { atol: 1e-5, msg: "chosenAvg" });
});

// ---- 8. reference handling ------------------------------------------------------------------------

const PAIRS8: EncodedPair[] = [
  { prompt: [1, 2], chosen: [3, 4, 3], rejected: [5, 6] },
  { prompt: [2], chosen: [3, 4, 3, 4], rejected: [5, 6, 5, 6, 5] },
  { prompt: [1, 1, 2], chosen: [3], rejected: [6, 5] },
  { prompt: [2, 2], chosen: [4, 3], rejected: [5] },
  { prompt: [7, 8, 9, 1], chosen: [3, 4], rejected: [6, 6, 6] },
];

async function snapshot(model: GPT, names: string[]): Promise<number[][]> {
  return await Promise.all(names.map(async (n) => Array.from(await at(model, n).data())));
}

Deno.test("frozenCopy: equal weights, no grad, eval mode, unchanged by policy training", async () => {
  const policy = randomGPT(TINY, 3); // perturbed: a fresh GPT of the same config would NOT match it
  const names = policy.namedParameters().map(([n]) => n);
  const before = await snapshot(policy, names);
  const ref = frozenCopy(policy);
  assert.deepEqual(await snapshot(ref, names), before, "same weights");
  for (const n of names) assert.equal(at(ref, n).requiresGrad, false, `${n} requires no grad`);
  assert.equal(ref.namedParameters().length, 0, "no trainable parameters");
  assert.equal(ref.training, false);
  assert.deepEqual(ref.config, policy.config);
  // Train the policy a few steps against this reference.
  const trainer = new DPOTrainer({
    policy,
    reference: ref,
    train: PAIRS8,
    config: { steps: 3, batchSize: 2, lr: 0.05, warmup: 0, padId: 0, beta: 0.5 },
  });
  assert.equal(trainer.reference, ref);
  for (let i = 0; i < 3; i++) await trainer.step();
  const after = await snapshot(policy, names);
  assert.ok(after.some((w, i) => w.some((x, j) => x !== before[i][j])), "the policy moved");
  assert.deepEqual(await snapshot(ref, names), before, "the frozen copy did not");
  for (const n of names) assert.equal(at(ref, n).grad, null, `${n} got no gradient`);
});

Deno.test("DPOTrainer's default reference is a frozen copy of the policy at construction", async () => {
  const policy = randomGPT(TINY, 4);
  const names = policy.namedParameters().map(([n]) => n);
  const before = await snapshot(policy, names);
  const trainer = new DPOTrainer({
    policy,
    train: PAIRS8,
    config: { steps: 2, batchSize: 3, lr: 0.05, warmup: 0, padId: 0 },
  });
  assert.ok(trainer.reference && trainer.reference !== policy);
  await trainer.step();
  await trainer.step();
  assert.deepEqual(await snapshot(trainer.reference!, names), before);
  // Reference-free and SimPO trainers hold no reference.
  for (const config of [{ referenceFree: true }, { lossType: "simpo" as const }]) {
    const t = new DPOTrainer({
      policy,
      train: PAIRS8,
      config: { steps: 1, batchSize: 2, lr: 0, padId: 0, ...config },
    });
    assert.equal(t.reference, null);
  }
});

Deno.test("precomputeReference equals the online reference log-probs (chunked, both modes)", async () => {
  const ref = frozenCopy(randomGPT(TINY, 5));
  for (const average of [false, true]) {
    const online = noGrad(() => pairLogProbs(ref, PAIRS8, 0, average));
    // batchSize 2 ⇒ chunks of 2, 2, 1 pairs, each padded to its own length.
    const [c, r] = await precomputeReference(ref, PAIRS8, 0, 2, average);
    assert.equal(c.length, PAIRS8.length);
    await assertClose(c, await read(online.chosen), { atol: 1e-5, msg: `chosen, average ${average}` });
    await assertClose(r, await read(online.rejected), { atol: 1e-5, msg: `rejected, average ${average}` });
    const [c1] = await precomputeReference(ref, PAIRS8, 0, 16, average); // one chunk
    await assertClose(c1, c, { atol: 1e-5 });
  }
});

Deno.test("DPOTrainer: precomputeRef true and false give the same metrics", async () => {
  const run = async (precomputeRef: boolean) => {
    const t = new DPOTrainer({
      policy: randomGPT(TINY, 6),
      train: PAIRS8,
      config: { steps: 3, batchSize: 2, lr: 0.02, padId: 0, beta: 0.3, seed: 5, precomputeRef },
    });
    const out: DPOMetrics[] = [];
    for (let i = 0; i < 3; i++) out.push(await t.step());
    return out;
  };
  const [a, b] = [await run(true), await run(false)];
  for (let s = 0; s < 3; s++) {
    for (const k of Object.keys(a[s]) as (keyof DPOMetrics)[]) {
      if (k === "tokens_per_s") continue;
      await assertClose(a[s][k], b[s][k], { atol: 1e-5, rtol: 1e-4, msg: `step ${s + 1} ${k}` });
    }
  }
  // Step 1: policy = reference ⇒ loss ln 2 and zero rewards in both modes.
  await assertClose(a[0].loss, LN2, { atol: 1e-6 });
  await assertClose([a[0]["rewards/chosen"], a[0]["rewards/rejected"], a[0]["rewards/margins"]], [0, 0, 0], {
    atol: 1e-6,
  });
  assert.notEqual(a[2]["rewards/margins"], 0);
});

Deno.test("DPOTrainer with IPO works on per-token average log-probs, as TRL does", async () => {
  // TRL divides each completion's summed log-prob by its token count for IPO, for policy and
  // reference alike, then applies (h − 1/(2β))² to those averages. Oracle: sums from pairLogProbs,
  // divided by hand by the completion lengths (every prompt of PAIRS8 is non-empty, so all are scored).
  const beta = 0.25, policy = randomGPT(TINY, 8), reference = frozenCopy(randomGPT(TINY, 9));
  const trainer = new DPOTrainer({
    policy,
    reference,
    train: PAIRS8,
    eval: PAIRS8,
    config: { steps: 1, batchSize: 8, lr: 0.01, padId: 0, beta, lossType: "ipo" },
  });
  const ev = await trainer.evaluate();
  const sums = async (m: GPT) => {
    const { chosen, rejected } = noGrad(() => pairLogProbs(m, PAIRS8, 0));
    return [await read(chosen), await read(rejected)];
  };
  const [[pc, pr], [rc, rr]] = [await sums(policy), await sums(reference)];
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b) / xs.length;
  const ipo = (average: boolean) => {
    const n = (i: number, key: "chosen" | "rejected") => average ? PAIRS8[i][key].length : 1;
    const c = pc.map((x, i) => (x - rc[i]) / n(i, "chosen"));
    const r = pr.map((x, i) => (x - rr[i]) / n(i, "rejected"));
    return { c, r, loss: mean(c.map((ci, i) => (ci - r[i] - 1 / (2 * beta)) ** 2)) };
  };
  const want = ipo(true);
  await assertClose(ev.eval_loss, want.loss, { atol: 1e-4, rtol: 1e-4 });
  await assertClose(ev["eval_rewards/chosen"], beta * mean(want.c), { atol: 1e-5 });
  await assertClose(ev["eval_rewards/rejected"], beta * mean(want.r), { atol: 1e-5 });
  await assertClose(ev["eval_logps/chosen"], mean(pc.map((x, i) => x / PAIRS8[i].chosen.length)), {
    atol: 1e-5,
  });
  // The summed version differs by far more than the tolerance: the check can tell the two apart.
  assert.ok(Math.abs(ipo(false).loss - want.loss) > 0.1, `${ipo(false).loss} vs ${want.loss}`);
  // A training step runs on the same averages: its loss is the same number before the update.
  await assertClose((await trainer.step()).loss, want.loss, { atol: 1e-4, rtol: 1e-4 });
});

// ---- 9. the trainer end to end -------------------------------------------------------------------

const TRL_NAMES = [
  "loss",
  "rewards/chosen",
  "rewards/rejected",
  "rewards/accuracies",
  "rewards/margins",
  "logps/chosen",
  "logps/rejected",
  "grad_norm",
  "learning_rate",
  "tokens_per_s",
];

Deno.test("DPOTrainer learns a fixed preference: accuracies reach 1, loss falls below ln 2; TRL metric names", async () => {
  // Chosen completions are always the pattern 3 4 3, rejected 5 6 5, after varied prompts.
  const cfg: GPTConfig = { vocabSize: 8, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 16 };
  const prompts = [[1, 2], [2, 1], [1], [2, 2, 1], [7], [1, 7, 2]];
  const pairs = prompts.map((prompt) => ({ prompt, chosen: [3, 4, 3], rejected: [5, 6, 5] }));
  const evalPairs = [[2, 7], [7, 7, 1]].map((prompt) => ({ prompt, chosen: [3, 4, 3], rejected: [5, 6, 5] }));
  const trainer = new DPOTrainer({
    policy: new GPT(cfg),
    train: pairs,
    eval: evalPairs,
    config: { steps: 25, batchSize: 4, lr: 1e-2, padId: 0, beta: 0.1, warmup: 2 },
  });
  const log: DPOMetrics[] = [];
  for (let i = 0; i < 25; i++) log.push(await trainer.step());
  assert.equal(trainer.stepCount, 25);
  for (const m of log) {
    assert.deepEqual(Object.keys(m).sort(), ["step", ...TRL_NAMES].sort());
    assert.ok(Object.values(m).every(Number.isFinite), JSON.stringify(m));
  }
  assert.deepEqual(log.map((m) => m.step), Array.from({ length: 25 }, (_, i) => i + 1));
  // Warmup 2: lr = 0.005, 0.01, then 0.01.
  assert.deepEqual(log.slice(0, 4).map((m) => m.learning_rate), [0.005, 0.01, 0.01, 0.01]);
  await assertClose(log[0].loss, LN2, { atol: 1e-6 }); // the policy starts equal to its reference
  const last = log[log.length - 1];
  assert.equal(last["rewards/accuracies"], 1);
  assert.ok(last.loss < LN2 - 0.1, `final loss ${last.loss}`);
  assert.ok(last["rewards/margins"] > 0 && last["rewards/chosen"] > last["rewards/rejected"]);
  await assertClose(last["rewards/margins"], last["rewards/chosen"] - last["rewards/rejected"], {
    atol: 1e-5,
  });
  assert.ok(last["logps/chosen"] > log[0]["logps/chosen"], "chosen got likelier");
  assert.ok(last["logps/rejected"] < log[0]["logps/rejected"], "rejected got less likely");

  // evaluate(): eval_-prefixed names, and the values of a direct computation on the eval pairs.
  const ev = await trainer.evaluate();
  assert.deepEqual(Object.keys(ev).sort(), TRL_NAMES.slice(0, 7).map((n) => `eval_${n}`).sort());
  const direct = noGrad(() => {
    const p = pairLogProbs(trainer.policy, evalPairs, 0), r = pairLogProbs(trainer.reference!, evalPairs, 0);
    return dpoLoss({
      policyChosen: p.chosen,
      policyRejected: p.rejected,
      referenceChosen: r.chosen,
      referenceRejected: r.rejected,
    }, {
      beta: 0.1,
    });
  });
  await assertClose(ev.eval_loss, await read(direct.loss), { atol: 1e-5 });
  await assertClose(ev["eval_rewards/chosen"], await read(direct.chosenRewards.mean()), { atol: 1e-5 });
  await assertClose(ev["eval_rewards/rejected"], await read(direct.rejectedRewards.mean()), { atol: 1e-5 });
  assert.equal(ev["eval_rewards/accuracies"], 1);
  assert.ok(ev.eval_loss < LN2);
  // evaluate() trains nothing and uses no tape: a second call gives the same numbers.
  assert.deepEqual(await trainer.evaluate(), ev);
});

Deno.test("DPOTrainer.run: logs every step, evaluates every evalEvery steps and at the end", async () => {
  const steps: number[] = [], evals: number[] = [];
  const trainer = new DPOTrainer({
    policy: new GPT({ vocabSize: 13, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 8 }),
    train: PAIRS8,
    eval: PAIRS8.slice(0, 3),
    config: { steps: 5, batchSize: 2, lr: 1e-3, padId: 0, evalEvery: 2 },
  });
  await trainer.run((m) => steps.push(m.step), (s, m) => {
    evals.push(s);
    assert.ok(Number.isFinite(m.eval_loss));
  });
  assert.deepEqual(steps, [1, 2, 3, 4, 5]);
  assert.deepEqual(evals, [2, 4, 5]);
});

Deno.test("DPOTrainer: grad_norm is the pre-clip global norm of the loss gradient; the update is clipped", async () => {
  // With batchSize = all pairs, step 1's batch is every pair (shuffled; the mean loss does not depend on
  // the order), so the gradient can be recomputed by hand on an identical copy of the policy.
  const beta = 0.5;
  const twin = randomGPT(TINY, 8), policy = randomGPT(TINY, 8), ref = frozenCopy(twin);
  const x = pairLogProbs(twin, PAIRS8, 0), r = noGrad(() => pairLogProbs(ref, PAIRS8, 0));
  // At π = π_ref the sigmoid gradient is still −β·σ(0)/B·∇(π_c − π_r) = −(β/2B)·∇(π_c − π_r) ≠ 0.
  dpoLoss({
    policyChosen: x.chosen,
    policyRejected: x.rejected,
    referenceChosen: r.chosen,
    referenceRejected: r.rejected,
  }, {
    beta,
  }).loss.backward();
  let sq = 0;
  for (const p of twin.parameters()) for (const g of await p.grad!.data()) sq += g * g;
  const norm = Math.sqrt(sq);
  const maxGradNorm = norm / 4; // force clipping
  const before = await snapshot(policy, policy.namedParameters().map(([n]) => n));
  const t = new DPOTrainer({
    policy,
    train: PAIRS8,
    optimizer: new SGD(policy.parameters(), 0),
    config: { steps: 1, batchSize: PAIRS8.length, lr: 0.1, warmup: 0, padId: 0, beta, maxGradNorm },
  });
  const m = await t.step();
  await assertClose(m.grad_norm, norm, { rtol: 1e-4 });
  await assertClose(m.loss, LN2, { atol: 1e-6 });
  // SGD with lr 0.1: Δp = −0.1·g·(maxGradNorm/norm) = −0.1·g/4 (clipped), for every parameter.
  const names = policy.namedParameters().map(([n]) => n);
  const after = await snapshot(policy, names);
  const grads = await Promise.all(names.map(async (n) => Array.from(await at(twin, n).grad!.data())));
  for (let i = 0; i < names.length; i++) {
    const want = before[i].map((w, j) => w - 0.1 * grads[i][j] * (maxGradNorm / (norm + 1e-6)));
    await assertClose(after[i], want, { atol: 1e-6, rtol: 1e-4, msg: names[i] });
  }
});

Deno.test("DPOTrainer.evaluate runs the policy without dropout (deterministic; policy = reference gives ln 2)", async () => {
  // A policy with dropout 0.3, not yet trained: the reference is its frozen copy (eval mode), so with
  // dropout off in evaluation every pair has log-ratios 0 ⇒ eval_loss = ln 2, rewards 0, accuracy 0
  // (0 > 0 is false), and two evaluations agree exactly (HF/TRL evaluate with model.eval()).
  const policy = randomGPT({ ...TINY, dropout: 0.3 }, 9);
  const trainer = new DPOTrainer({
    policy,
    train: PAIRS8,
    eval: PAIRS8,
    config: { steps: 1, batchSize: 2, lr: 1e-3, padId: 0 },
  });
  const a = await trainer.evaluate(), b = await trainer.evaluate();
  assert.deepEqual(a, b, "evaluate() is deterministic");
  await assertClose(a.eval_loss, LN2, { atol: 1e-6 });
  await assertClose([a["eval_rewards/chosen"], a["eval_rewards/rejected"]], [0, 0], { atol: 1e-6 });
  assert.equal(policy.training, true, "evaluate() leaves the policy in training mode for the next step");
});

// ---- 10. the categorical bandit -------------------------------------------------------------------

Deno.test("categorical bandit: expected sigmoid-DPO loss under Bradley–Terry converges to softmax(log π_ref + r/β)", async () => {
  // K = 5 actions, policy π = softmax(θ) for a leaf θ, reference π_ref = softmax(θ_ref), rewards r.
  // For every unordered pair {a, b}: weight p = σ(r_a − r_b) on the (chosen a, rejected b) loss and 1 − p
  // on (chosen b, rejected a). With u_a = β·log(π(a)/π_ref(a)) the expected loss per pair is
  //   −p·ln σ(u_a − u_b) − (1 − p)·ln σ(u_b − u_a),
  // a logistic loss minimised exactly where σ(u_a − u_b) = p, i.e. u_a − u_b = r_a − r_b for ALL pairs
  // ⇒ β·log(π/π_ref) = r + const ⇒ π* = softmax(log π_ref + r/β). It is convex in θ (u is affine in θ up
  // to a shared log-normaliser that cancels in u_a − u_b), so gradient descent converges.
  const K = 5;
  const thetaRef = [0.3, -0.2, 0.8, 0, -1];
  const rewards = [1, 0.2, -0.5, 1.5, 0];
  const lse = (xs: number[]) => Math.log(xs.reduce((s, x) => s + Math.exp(x), 0));
  const refLogp = thetaRef.map((x) => x - lse(thetaRef));
  const chosen: number[] = [], rejected: number[] = [], weight: number[] = [];
  for (let a = 0; a < K; a++) {
    for (let b = a + 1; b < K; b++) {
      const p = sg(rewards[a] - rewards[b]);
      chosen.push(a, b), rejected.push(b, a), weight.push(p, 1 - p);
    }
  }
  const ci = fromArray<[number]>(chosen, [chosen.length], "i32"),
    ri = fromArray<[number]>(rejected, [rejected.length], "i32");
  const w = fromArray<[number]>(weight, [weight.length]);
  const refC = fromArray<[number]>(chosen.map((a) => refLogp[a]), [chosen.length]);
  const refR = fromArray<[number]>(rejected.map((a) => refLogp[a]), [rejected.length]);

  for (const beta of [1, 0.5]) {
    const theta = fromArray<[number]>([0, 0, 0, 0, 0], [K]).requiresGrad_();
    // The Hessian in θ is β²·Σ_pairs σ'(·)(e_a − e_b)(e_a − e_b)ᵀ ≤ β²·¼·K·I, so a step of 1/(β²·¼·K)·0.8 is safe.
    const lr = 0.8 / (beta * beta * 0.25 * K);
    let lossValue = NaN;
    for (let it = 0; it < 400; it++) {
      lossValue = await scope(async () => {
        const logp = theta.logSoftmax(); // log π
        const out = dpoLoss({
          policyChosen: logp.indexSelect(0, ci),
          policyRejected: logp.indexSelect(0, ri),
          referenceChosen: refC,
          referenceRejected: refR,
        }, { beta });
        const loss = out.losses.mul(w).sum(); // Σ weight·(per-pair loss)
        loss.backward();
        theta.assign(theta.sub(theta.grad!.mul(lr)));
        theta.zeroGrad();
        return (await loss.data())[0];
      });
    }
    const got = Array.from(await theta.softmax().data());
    const star = refLogp.map((l, a) => l + rewards[a] / beta);
    const want = star.map((x) => Math.exp(x - lse(star)));
    await assertClose(got, want, { atol: 1e-3, msg: `β = ${beta}` });
    // Tighter than the brief's 1e-3: float32 gets it to ~1e-5.
    await assertClose(got, want, { atol: 2e-5, msg: `β = ${beta} (tight)` });
    // The minimum value: Σ_pairs binary entropy H(σ(r_a − r_b)).
    let hMin = 0;
    for (let a = 0; a < K; a++) {
      for (let b = a + 1; b < K; b++) {
        const p = sg(rewards[a] - rewards[b]);
        hMin += -p * Math.log(p) - (1 - p) * Math.log(1 - p);
      }
    }
    await assertClose(lossValue, hMin, { atol: 1e-4 });
  }
});

Deno.test("DPOTrainer checkpoints: save every k steps, load continues identically", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/dpo.safetensors`;
  const config = {
    steps: 3,
    batchSize: 2,
    lr: 1e-2,
    padId: 0,
    beta: 0.5,
    seed: 3,
    checkpointPath: path,
    checkpointEvery: 2,
  };
  const a = new DPOTrainer({ policy: randomGPT(), train: PAIRS8, config });
  await a.run();
  assert.equal(a.stepCount, 3);
  const b = new DPOTrainer({ policy: randomGPT(TINY, 99), reference: a.reference, train: PAIRS8, config });
  await b.load(path);
  assert.equal(b.stepCount, 3);
  for (const [name, p] of a.policy.namedParameters()) {
    assert.deepEqual(await read(b.policy.stateDict()[name]), await read(p));
  }
  // Both continue from step 3 with the same optimizer step count.
  const [ma, mb] = [await a.step(), await b.step()];
  assert.ok(Number.isFinite(ma.loss) && ma.step === 4 && mb.step === 4);
  assert.equal(b.optimizer.stateDict().step, a.optimizer.stateDict().step);
  await Deno.remove(dir, { recursive: true });
});
