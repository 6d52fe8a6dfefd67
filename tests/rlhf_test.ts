/**
 * Tests for the RLHF library (rlhf/): the Bradley–Terry reward-model loss, KL-penalised rewards,
 * GAE, whitening, PPO's clipped policy loss and the adaptive KL controller against values worked
 * out by hand; ppoLoss gradients against finite differences; the reward model's read-out at the
 * last real token and its training; RLOO and PPO on a one-token bandit, which should approach the
 * KL-regularised optimum π* ∝ π_ref·exp(r/β); and clear errors from a bad reward function.
 */
import assert from "node:assert/strict";
import {
  AdaptiveKLController,
  type EncodedPair,
  evaluatePolicy,
  fromArray,
  gae,
  GPT,
  type GPTConfig,
  gradcheck,
  klPenalizedRewards,
  noGrad,
  ppoLoss,
  PPOTrainer,
  rewardAccuracy,
  RewardModel,
  rewardModelLoss,
  RLOOTrainer,
  type Tensor,
  trainRewardModel,
  valueLoss,
  whiten,
} from "../mod.ts";
import { assertClose } from "./util.ts";

const m2 = (rows: number[][]): Tensor<[number, number]> =>
  fromArray<[number, number]>(rows.flat(), [rows.length, rows[0].length]);
const v1 = (xs: number[]): Tensor<[number]> => fromArray<[number]>(xs, [xs.length]);

Deno.test("rewardModelLoss: mean of −log σ(r_chosen − r_rejected)", async () => {
  // Margins 1 and −1: ln(1 + e^−1) = 0.3132617, ln(1 + e) = 1.3132617.
  await assertClose(rewardModelLoss(v1([2, 0]), v1([1, 1])), (0.3132617 + 1.3132617) / 2, { atol: 1e-6 });
  await assertClose(rewardModelLoss(v1([3]), v1([3])), Math.LN2, { atol: 1e-6 });
});

Deno.test("klPenalizedRewards: −β·(log π − log π_ref) on completion tokens, score on the last", async () => {
  const r = klPenalizedRewards(
    v1([2, -1]),
    m2([[-1, -0.5, -2, -3], [-1, -1, -1, -1]]),
    m2([[-1.2, -1, -1.5, -0.1], [-1, -1, -1, -1]]),
    m2([[0, 1, 1, 0], [1, 1, 1, 1]]),
    0.1,
  );
  // Row 0: KL terms 0.5 and −0.5 on tokens 1, 2; score 2 on token 2. Row 1: no KL, score on token 3.
  await assertClose(r, [[0, -0.05, 2.05, 0], [0, 0, 0, -1]], { atol: 1e-6 });
});

Deno.test("gae: a 3-token episode with γ = 0.9, λ = 0.8, masked positions ignored", async () => {
  // δ2 = 2 − 1.5 = 0.5; δ1 = 0 + 0.9·1.5 − 1 = 0.35; δ0 = 1 + 0.9·1 − 0.5 = 1.4.
  // A2 = 0.5; A1 = 0.35 + 0.72·0.5 = 0.71; A0 = 1.4 + 0.72·0.71 = 1.9112. Returns = A + V.
  const { advantages, returns } = gae(
    m2([[1, 0, 2, 7], [5, 1, 0, 2]]),
    m2([[0.5, 1, 1.5, 4], [9, 0.5, 1, 1.5]]),
    m2([[1, 1, 1, 0], [0, 1, 1, 1]]),
    { gamma: 0.9, lambda: 0.8 },
  );
  await assertClose(advantages, [[1.9112, 0.71, 0.5, 0], [0, 1.9112, 0.71, 0.5]], { atol: 1e-5 });
  await assertClose(returns, [[2.4112, 1.71, 2, 0], [0, 2.4112, 1.71, 2]], { atol: 1e-5 });
  // Defaults γ = 1, λ = 0.95 on one token: A = r − V.
  await assertClose(gae(m2([[3]]), m2([[1]]), m2([[1]])).advantages, [[2]], { atol: 1e-6 });
});

Deno.test("whiten: masked mean 0 and unbiased variance 1; masked entries are 0", async () => {
  await assertClose(whiten(m2([[1, 2, 3, 100]]), m2([[1, 1, 1, 0]])), [[-1, 0, 1, 0]], { atol: 1e-5 });
  await assertClose(whiten(m2([[1, 2, 3, 100]]), m2([[1, 1, 1, 0]]), { shiftMean: false }), [[1, 2, 3, 0]], {
    atol: 1e-5,
  });
});

Deno.test("ppoLoss: clipped surrogate for ratios inside and outside the range, both signs", async () => {
  // ε = 0.2. Per token: ρ, A → max(−ρA, −clip(ρ)A):
  //   1.1, +1 → −1.1 (inside);   1.5, +1 → −1.2 (clipped);   0.5, −2 → 1.6 (clipped);
  //   1.5, −1 →  1.5 (unclipped: the ratio moved against the advantage);   0.7, +1 → −0.7 (unclipped);
  //   3, +5 → masked out.
  const rho = [1.1, 1.5, 0.5, 1.5, 0.7, 3];
  const old = [-1, -2, -0.5, -1.5, -3, -1];
  const out = ppoLoss({
    logProbs: m2([old.map((o, i) => o + Math.log(rho[i]))]),
    oldLogProbs: m2([old]),
    advantages: m2([[1, 1, -2, -1, 1, 5]]),
    mask: m2([[1, 1, 1, 1, 1, 0]]),
  }, { clip: 0.2 });
  await assertClose(out.loss, (-1.1 - 1.2 + 1.6 + 1.5 - 0.7) / 5, { atol: 1e-5 });
  await assertClose(out.clipFraction, 2 / 5, { atol: 1e-6 });
  const kl = 0.5 * rho.slice(0, 5).reduce((s, r) => s + Math.log(r) ** 2, 0) / 5;
  await assertClose(out.approxKl, kl, { atol: 1e-6 });
  assert.throws(
    () =>
      ppoLoss({ logProbs: m2([[0]]), oldLogProbs: m2([[0]]), advantages: m2([[0]]), mask: m2([[1]]) }, {
        clip: 0,
      }),
    /clip/,
  );
});

Deno.test("ppoLoss and valueLoss: gradients match finite differences", async () => {
  const old = m2([[-1, -2, -0.5, -1.5, -3]]);
  // ρ = e^{±0.05} (inside), e^{0.4} (above), e^{−0.5} (below): no point sits on a clip edge.
  const lp = m2([[-0.95, -1.6, -1.0, -1.55, -2.6]]);
  const adv = m2([[1, 1, -2, -1, 0.5]]), mask = m2([[1, 1, 1, 1, 0]]);
  await gradcheck(
    (l: Tensor<[number, number]>, o: Tensor<[number, number]>, a: Tensor<[number, number]>) =>
      ppoLoss({ logProbs: l, oldLogProbs: o, advantages: a, mask: mask.cast("f64") }).loss,
    [lp, old, adv],
  );
  // V − V_old = 0.1, 0.4, −0.1, 0.3 (masked: 5): inside and outside the clip range, none on its edge.
  await gradcheck(
    (v: Tensor<[number, number]>) =>
      valueLoss({ values: v, oldValues: old.cast("f64"), returns: adv.cast("f64"), mask: mask.cast("f64") }),
    [m2([[-0.9, -1.6, -0.6, -1.2, 2]])],
  );
});

Deno.test("valueLoss: ½·max of the unclipped and clipped squared errors", async () => {
  // V_old = 0, c = 0.2. V = 1, R = 1: clipped V 0.2 → max(0, 0.64) = 0.64. V = 0.1, R = 2: 3.61 both.
  await assertClose(
    valueLoss({ values: m2([[1, 0.1]]), oldValues: m2([[0, 0]]), returns: m2([[1, 2]]), mask: m2([[1, 1]]) }),
    0.5 * (0.64 + 3.61) / 2,
    { atol: 1e-6 },
  );
});

Deno.test("AdaptiveKLController: proportional error clipped to ±20%, scaled by n/horizon", () => {
  const c = new AdaptiveKLController({ initKlCoef: 0.2, target: 6, horizon: 10000 });
  c.update(12, 100); // error +1 → +0.2
  assert.ok(Math.abs(c.value - 0.2 * 1.002) < 1e-12);
  c.update(6 * 0.9, 100); // error −0.1
  assert.ok(Math.abs(c.value - 0.2 * 1.002 * 0.999) < 1e-12);
  assert.throws(() => new AdaptiveKLController({ initKlCoef: 0.1, target: 0, horizon: 1 }), /target/);
});

const TINY: GPTConfig = { vocabSize: 6, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16, seed: 1 };

Deno.test("RewardModel: reads the last real token, ignores padding, and learns a preference", async () => {
  const sft = new GPT(TINY);
  const rm = new RewardModel(sft);
  const one = await noGrad(() => rm.score([[1, 2, 3]], 0).data());
  const batch = await noGrad(() => rm.score([[4, 5], [1, 2, 3], [2, 2, 2, 2, 2]], 0).data());
  await assertClose(batch[1], one[0], { atol: 1e-6 });
  assert.throws(() => rm.forward(fromArray<[number, number]>([1, 2], [1, 2], "i32"), [3]), /lengths/);
  // Chosen completions end in 4, rejected in 5.
  const pairs: EncodedPair[] = Array.from({ length: 12 }, (_, i) => ({
    prompt: [1 + (i % 3)],
    chosen: [2 + (i % 2), 4],
    rejected: [2 + ((i + 1) % 2), 5],
  }));
  const { losses, heldOutAccuracy } = await trainRewardModel(rm, pairs.slice(0, 8), pairs.slice(8), {
    steps: 30,
    batchSize: 4,
    lr: 1e-2,
    padId: 0,
  });
  assert.ok(losses[losses.length - 1] < 0.2, `final loss ${losses[losses.length - 1]}`);
  assert.equal(heldOutAccuracy, 1);
  assert.equal(await rewardAccuracy(rm, pairs, 0), 1);
  // The SFT model itself is untouched: the reward model trains a copy.
  const [name, p] = sft.namedParameters()[0];
  assert.notDeepEqual(await p.data(), await rm.trunk.stateDict()[name].data());
});

// ---- the one-token bandit -----------------------------------------------------------------------

const REWARDS = [0, 1, 0.2, -0.5, 1.5, 0];
const BANDIT: GPTConfig = { vocabSize: 6, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 8, seed: 3 };
const decode = (ids: number[]) => ids.join(",");
const score = (completion: string) => REWARDS[Number(completion)];

/** π(· | [0]) of a model, as numbers. */
async function nextTokenProbs(model: GPT): Promise<number[]> {
  return Array.from(
    await noGrad(() => model.forward(fromArray<[number, number]>([0], [1, 1], "i32")).softmax(-1).data()),
  );
}

/** π* ∝ π_ref·exp(r/β). */
function optimum(ref: number[], beta: number): number[] {
  const w = ref.map((p, a) => p * Math.exp(REWARDS[a] / beta));
  const z = w.reduce((s, x) => s + x, 0);
  return w.map((x) => x / z);
}

const tv = (a: number[], b: number[]) => a.reduce((s, x, i) => s + Math.abs(x - b[i]), 0) / 2;

Deno.test("bandit: RLOO approaches π* ∝ π_ref·exp(r/β)", async () => {
  // At π* every action's KL-penalised reward r − β·log(π*/π_ref) equals β·log Z, so the
  // leave-one-out advantages vanish there and RLOO settles on π* without noise.
  const beta = 1;
  const policy = new GPT(BANDIT);
  const trainer = new RLOOTrainer({
    policy,
    reward: score,
    decode,
    prompts: [[0]],
    config: { steps: 150, batchSize: 1, k: 64, lr: 3e-2, maxNewTokens: 1, padId: 0, klCoef: beta, epochs: 1 },
  });
  const ref = await nextTokenProbs(trainer.reference), start = await nextTokenProbs(policy);
  const star = optimum(ref, beta);
  await trainer.train();
  const got = await nextTokenProbs(policy);
  const d0 = tv(start, star), d1 = tv(got, star);
  console.log(`RLOO bandit: TV(π, π*) ${d0.toFixed(3)} → ${d1.toFixed(3)}`);
  assert.ok(d1 < 0.06 && d1 < d0 / 4, `TV(π, π*) ${d0} → ${d1}; π = ${got}, π* = ${star}`);
});

Deno.test("bandit: PPO approaches π* ∝ π_ref·exp(r/β); metrics are finite; adaptive β moves", async () => {
  // Looser than RLOO: whitening divides by the batch's advantage spread, which shrinks near π*, so
  // PPO keeps stepping around the optimum.
  const beta = 1;
  const policy = new GPT(BANDIT);
  const trainer = new PPOTrainer({
    policy,
    reward: score,
    decode,
    prompts: [[0]],
    config: { steps: 80, batchSize: 64, lr: 1e-2, maxNewTokens: 1, padId: 0, klCoef: beta, minibatches: 2 },
  });
  const ref = await nextTokenProbs(trainer.reference), start = await nextTokenProbs(policy);
  const star = optimum(ref, beta);
  let last = null as null | Record<string, number>;
  await trainer.train((m) => (last = { ...m }));
  for (const [k, v] of Object.entries(last!)) assert.ok(Number.isFinite(v), `${k} = ${v}`);
  const got = await nextTokenProbs(policy);
  const d0 = tv(start, star), d1 = tv(got, star);
  console.log(`PPO bandit: TV(π, π*) ${d0.toFixed(3)} → ${d1.toFixed(3)}`);
  assert.ok(d1 < 0.08 && d1 < d0 / 3, `TV(π, π*) ${d0} → ${d1}; π = ${got}, π* = ${star}`);

  const adaptive = new PPOTrainer({
    policy: new GPT(BANDIT),
    reward: score,
    decode,
    prompts: [[0]],
    config: {
      steps: 1,
      batchSize: 8,
      lr: 1e-2,
      maxNewTokens: 1,
      padId: 0,
      klCoef: 0.1,
      adaptiveKl: { target: 6, horizon: 100 },
    },
  });
  await adaptive.step();
  assert.ok(adaptive.klCoef < 0.1, "KL far below target lowers β");
});

Deno.test("RL trainers: a reward function that returns NaN or throws stops with the sample named", async () => {
  const base = {
    prompts: [[0]],
    decode,
    config: { steps: 1, batchSize: 2, lr: 1e-2, maxNewTokens: 1, padId: 0 },
  };
  await assert.rejects(
    () => new PPOTrainer({ ...base, policy: new GPT(BANDIT), reward: () => NaN }).step(),
    /reward function on sample 0 \(prompt "0", completion "\d"\) returned NaN, not a finite number/,
  );
  await assert.rejects(
    () =>
      new RLOOTrainer({
        ...base,
        policy: new GPT(BANDIT),
        reward: (c) => {
          if (c) throw new Error("boom");
          return 0;
        },
      }).step(),
    /RLOOTrainer: reward function on sample 0 .* threw: boom/,
  );
  assert.throws(
    () => new PPOTrainer({ ...base, policy: new GPT(BANDIT), reward: score, decode: undefined }),
    /decode/,
  );
  assert.throws(
    () => new PPOTrainer({ ...base, policy: new GPT(BANDIT), reward: score, prompts: [[0, 1, 2, 3]] }),
    /exceeds blockSize/,
  );
  assert.throws(
    () =>
      new RLOOTrainer({ ...base, policy: new GPT(BANDIT), reward: score, config: { ...base.config, k: 1 } }),
    /k must be/,
  );
});

Deno.test("evaluatePolicy: mean true reward and sampled KL; KL is 0 against itself", async () => {
  const policy = new GPT(BANDIT);
  const o = { reward: score, decode, prompts: [[0], [0], [0], [0]], maxNewTokens: 1, padId: 0, seed: 2 };
  const same = await evaluatePolicy({ ...o, policy, reference: policy });
  assert.equal(same.kl, 0);
  assert.ok(same.reward >= -0.5 && same.reward <= 1.5);
  const other = await evaluatePolicy({ ...o, policy, reference: new GPT({ ...BANDIT, seed: 9 }) });
  assert.equal(other.reward, same.reward, "same seed, same policy: same samples");
  assert.ok(Number.isFinite(other.kl) && other.kl !== 0);
  await assert.rejects(
    () => evaluatePolicy({ ...o, policy, reference: policy, reward: () => NaN }),
    /sample 0/,
  );
});
