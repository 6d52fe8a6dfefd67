/**
 * The main job: `deno run -A train.ts` trains a small GPT from scratch on review-like sentences,
 * then aligns it to prefer positive sentiment with DPO — a toy of the DPO paper's controlled
 * sentiment generation (Rafailov et al., 2023, §6.1) — and reports reward, KL and accuracy.
 * `--help` lists the options.
 */
import { parseArgs } from "node:util";
import {
  AdamW,
  ByteTokenizer,
  crossEntropy,
  DPOTrainer,
  encodePairs,
  fromArray,
  frozenCopy,
  generate,
  getBackend,
  GPT,
  loadCheckpoint,
  loadPreferenceJsonl,
  lrAt,
  noGrad,
  pairLogProbs,
  parsePreferenceJsonl,
  rng,
  saveCheckpoint,
  scope,
  setBackend,
  toJsonl,
  WordTokenizer,
} from "./mod.ts";
import type { DPOConfig, DPOMetrics, EncodedPair, LossType, PreferencePair } from "./mod.ts";
import { clipGradNorm, LOSS_TYPES } from "./mod.ts";
import { bestAchievableScore, generateCorpus, sentimentScore } from "./dpo/sentiment.ts";
import { grid, lineChart, scatterChart } from "./dpo/svg.ts";
import { progress } from "./dpo/progress.ts";

const OPTIONS = {
  data: {
    type: "string",
    default: "",
    help: "align on your own TRL-format preference JSONL (byte tokenizer)",
  },
  init: { type: "string", default: "", help: "start from an HF-GPT-2-named .safetensors checkpoint" },
  beta: { type: "string", default: "0.1", help: "DPO β: strength of the KL anchor to the reference" },
  loss: { type: "string", default: "sigmoid", help: `loss type: ${LOSS_TYPES.join(", ")}` },
  "label-smoothing": { type: "string", default: "0", help: "label noise ε for conservative/robust DPO" },
  lr: { type: "string", default: "0.001", help: "DPO peak learning rate" },
  steps: { type: "string", default: "", help: "DPO steps (default 120, quick 40)" },
  "batch-size": { type: "string", default: "32", help: "preference pairs per DPO step" },
  "precompute-ref": { type: "boolean", default: false, help: "compute reference log-probs once up front" },
  backend: {
    type: "string",
    default: "auto",
    help: "cpu | webgpu | auto (WebGPU on a hardware GPU, else cpu)",
  },
  seed: { type: "string", default: "0", help: "seed for data, init, sampling" },
  out: { type: "string", default: "", help: "output folder (default runs/<timestamp>)" },
  resume: {
    type: "boolean",
    default: false,
    help: "reuse finished stages and the last DPO checkpoint in --out",
  },
  quick: { type: "boolean", default: false, help: "a small configuration that finishes in about a minute" },
  "sweep-beta": {
    type: "string",
    default: "",
    help: "comma-separated βs: DPO + eval per β, draws frontier.svg",
  },
  help: { type: "boolean", default: false, help: "show this help" },
} as const;

type Args = { [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K]["type"] extends "string" ? string : boolean };

function usage(): string {
  const rows = Object.entries(OPTIONS).map(([k, o]) =>
    `  --${(k + (o.type === "string" ? " X" : "")).padEnd(20)} ${o.help}${
      o.default !== "" && o.default !== false ? ` (default ${o.default})` : ""
    }`
  );
  return `usage: deno run -A train.ts [options]\n\n${rows.join("\n")}\n`;
}

function parse(argv: string[]): Args {
  try {
    const { values } = parseArgs({
      args: argv,
      options: OPTIONS as any,
      strict: true,
      allowPositionals: false,
    });
    return {
      ...Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, o.default])),
      ...values,
    } as Args;
  } catch (e) {
    throw new Error(`train.ts: ${(e as Error).message.split("\n")[0]} (see --help)`);
  }
}

function num(args: Args, k: keyof Args, check: (x: number) => boolean = Number.isFinite): number {
  const x = Number(args[k]);
  if (args[k] === "" || !check(x)) {
    throw new Error(`train.ts: --${k} must be a valid number, got "${args[k]}"`);
  }
  return x;
}

/** Sizes of the built-in task: the default run and `--quick`. */
const SIZES = {
  full: {
    corpus: 4000,
    nLayer: 2,
    nHead: 4,
    nEmbd: 64,
    sftSteps: 400,
    sftBatch: 64,
    prompts: 512,
    dpoSteps: 120,
    evalPrompts: 160,
  },
  quick: {
    corpus: 1000,
    nLayer: 1,
    nHead: 2,
    nEmbd: 32,
    sftSteps: 80,
    sftBatch: 32,
    prompts: 96,
    dpoSteps: 40,
    evalPrompts: 48,
  },
};
const PROMPT_WORDS = 3, BLOCK = 24;

class Run {
  metrics: string[] = [];
  resumeDpo = false;
  curves: Record<string, [number, number][]> = {};
  constructor(readonly dir: string) {}
  log(stage: string, m: Record<string, number>) {
    this.metrics.push(JSON.stringify({ stage, ...m }));
    for (const [k, v] of Object.entries(m)) {
      if (k !== "step") (this.curves[`${stage} ${k}`] ??= []).push([m.step, v]);
    }
  }
  async flushMetrics() {
    await Deno.writeTextFile(`${this.dir}/metrics.jsonl`, this.metrics.join("\n") + "\n");
  }
  exists(name: string) {
    try {
      return Deno.statSync(`${this.dir}/${name}`).isFile;
    } catch {
      return false;
    }
  }
}

/** Supervised fine-tuning (here: pretraining from scratch) on tokenized sentences. */
async function sft(model: GPT, seqs: number[][], steps: number, batch: number, seed: number, run: Run) {
  const opt = new AdamW(model.namedParameters(), { lr: 3e-3, weightDecay: 0.01 });
  const rand = rng(seed + 7);
  const bar = progress("SFT", steps);
  for (let step = 0; step < steps; step++) {
    opt.lr = lrAt(step, { lr: 3e-3, warmup: 20, total: steps, decay: "cosine", minLr: 3e-4 });
    const rows = Array.from({ length: batch }, () => seqs[Math.floor(rand() * seqs.length)]);
    const T = Math.max(...rows.map((r) => r.length));
    const x = rows.flatMap((r) => [...r, ...Array(T - r.length).fill(0)]);
    const y = rows.flatMap((r) => [...r.slice(1), ...Array(T - r.length + 1).fill(-100)]);
    const loss = await scope(async () => {
      const l = crossEntropy(model.forward(fromArray(x, [batch, T], "i32")), fromArray(y, [batch, T], "i32"));
      l.backward();
      clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
      return await l.item();
    });
    if (!Number.isFinite(loss)) throw new Error(`SFT: loss is ${loss} at step ${step + 1}`);
    run.log("sft", { step: step + 1, loss, learning_rate: opt.lr });
    bar.tick(1, `loss ${loss.toFixed(3)}`);
  }
  bar.done();
}

/** Sample completions of `prompts` and return their texts (prompt included) and token ids. */
async function sampleTexts(model: GPT, tok: WordTokenizer, prompts: string[], seed: number) {
  const ids = prompts.map((p) => tok.encode(p, { bos: true }));
  const out = await generate(model, ids, {
    maxNewTokens: BLOCK - PROMPT_WORDS - 1,
    temperature: 1,
    seed,
    eosToken: tok.eos,
  });
  return out.map((o, i) => {
    const end = o.indexOf(tok.eos, ids[i].length);
    const completion = o.slice(ids[i].length, end < 0 ? undefined : end + 1);
    return { prompt: prompts[i], ids: ids[i], completion, text: tok.decode([...ids[i], ...completion]) };
  });
}

/** Preference pairs for `prompts`: 4 samples each, best vs worst by the sentiment scorer. */
async function makePairs(model: GPT, tok: WordTokenizer, prompts: string[], seed: number) {
  const samples = await sampleTexts(model, tok, prompts.flatMap((p) => [p, p, p, p]), seed);
  const pairs: PreferencePair[] = [];
  for (let i = 0; i < samples.length; i += 4) {
    const four = samples.slice(i, i + 4).filter((s) => tok.decode(s.completion)).map((s) => ({
      ...s,
      r: sentimentScore(s.text),
    }));
    four.sort((a, b) => b.r - a.r);
    if (four.length < 2 || four[0].r - four[four.length - 1].r < 0.1) continue;
    const tail = (s: typeof four[0]) => " " + tok.decode(s.completion);
    pairs.push({ prompt: four[0].prompt, chosen: tail(four[0]), rejected: tail(four[four.length - 1]) });
  }
  return pairs;
}

/** Mean reward of samples, and a sampled KL(policy ‖ reference) = E_y~π[log π(y) − log π_ref(y)]. */
async function evaluateSamples(
  policy: GPT,
  reference: GPT,
  tok: WordTokenizer,
  prompts: string[],
  seed: number,
) {
  const samples = await sampleTexts(policy, tok, prompts, seed);
  const reward = samples.reduce((s, x) => s + sentimentScore(x.text), 0) / samples.length;
  const pairs: EncodedPair[] = samples.map((s) => ({
    prompt: s.ids,
    chosen: s.completion.length ? s.completion : [tok.eos],
    rejected: [tok.eos],
  }));
  let kl = 0;
  for (let i = 0; i < pairs.length; i += 64) {
    const chunk = pairs.slice(i, i + 64);
    kl += await scope(() =>
      noGrad(() =>
        pairLogProbs(policy, chunk, tok.pad).chosen.sub(pairLogProbs(reference, chunk, tok.pad).chosen).sum()
          .item()
      )
    );
  }
  return { reward, kl: kl / pairs.length, samples };
}

function dpoConfig(args: Args, beta: number, steps: number, padId: number): DPOConfig {
  const loss = args.loss as LossType;
  if (!LOSS_TYPES.includes(loss)) {
    throw new Error(`train.ts: --loss must be one of ${LOSS_TYPES.join(", ")}, got "${loss}"`);
  }
  return {
    beta,
    lossType: loss,
    labelSmoothing: num(args, "label-smoothing", (x) => x >= 0 && x < 0.5),
    lr: num(args, "lr", (x) => x > 0),
    steps,
    batchSize: num(args, "batch-size", (x) => Number.isInteger(x) && x > 0),
    precomputeRef: args["precompute-ref"],
    padId,
    seed: num(args, "seed"),
    evalEvery: Math.max(10, Math.floor(steps / 4)),
  };
}

/** DPO from `sft` weights; saves dpo[-β].safetensors with optimizer state (for --resume). */
async function dpo(
  sftModel: GPT,
  cfg: DPOConfig,
  train: EncodedPair[],
  evalPairs: EncodedPair[],
  run: Run,
  tag: string,
) {
  const policy = new GPT(sftModel.config);
  policy.loadStateDict(sftModel.stateDict());
  const file = `${run.dir}/dpo${tag}.safetensors`;
  const config = { ...cfg, checkpointPath: file, checkpointEvery: 50 };
  const trainer = new DPOTrainer({ policy, reference: frozenCopy(sftModel), train, eval: evalPairs, config });
  if (run.resumeDpo && run.exists(`dpo${tag}.safetensors`)) await trainer.load(file);
  const bar = progress(`DPO${tag ? ` β=${cfg.beta}` : ""}`, cfg.steps);
  bar.tick(trainer.stepCount);
  let lastEval: Record<string, number> = {};
  await trainer.run((m: DPOMetrics) => {
    run.log(`dpo${tag}`, m as unknown as Record<string, number>);
    bar.tick(
      1,
      `loss ${m.loss.toFixed(3)} acc ${m["rewards/accuracies"].toFixed(2)} margin ${
        m["rewards/margins"].toFixed(2)
      }`,
    );
  }, (step, m) => {
    run.log(`dpo${tag}-eval`, { step, ...m });
    lastEval = m;
  });
  bar.done();
  return { policy, reference: trainer.reference!, eval: lastEval };
}

async function builtinTask(args: Args, run: Run) {
  const size = args.quick ? SIZES.quick : SIZES.full;
  const seed = num(args, "seed");
  const corpus = generateCorpus(size.corpus, seed);
  const tok = WordTokenizer.fromCorpus(corpus.join(" "));
  const words = (s: string) => s.split(" ").slice(0, PROMPT_WORDS).join(" ");
  // Hold out a fifth of the distinct prompts for evaluation.
  const distinct = [...new Set(corpus.map(words))];
  const r = rng(seed + 1);
  const heldOut = new Set(distinct.filter(() => r() < 0.2));
  const trainPrompts = corpus.map(words).filter((p) => !heldOut.has(p));
  const evalPrompts = corpus.map(words).filter((p) => heldOut.has(p));
  const pick = (ps: string[], n: number, s: number) => {
    const g = rng(s); // each draw has its own seed, so a resumed run sees the same prompts
    return Array.from({ length: n }, () => ps[Math.floor(g() * ps.length)]);
  };

  // 1–2. SFT on the corpus.
  const model = new GPT({
    vocabSize: tok.vocabSize,
    blockSize: BLOCK,
    nLayer: size.nLayer,
    nHead: size.nHead,
    nEmbd: size.nEmbd,
    seed,
  });
  if (args.resume && run.exists("sft.safetensors")) {
    model.loadStateDict((await loadCheckpoint(`${run.dir}/sft.safetensors`)).tensors);
    console.log("SFT: reusing sft.safetensors");
  } else {
    if (args.init) await model.loadStateDict((await loadCheckpoint(args.init)).tensors);
    await sft(
      model,
      corpus.map((s) => tok.encode(s, { bos: true, eos: true })),
      size.sftSteps,
      size.sftBatch,
      seed,
      run,
    );
    await saveCheckpoint(`${run.dir}/sft.safetensors`, model.stateDict(), {
      tokenizer: JSON.stringify(tok.toJSON()),
    });
  }

  // 3. Preferences from SFT samples, scored by the sentiment scorer; written in TRL's format.
  let prefs: PreferencePair[];
  if (args.resume && run.exists("prefs.jsonl")) {
    prefs = parsePreferenceJsonl(await Deno.readTextFile(`${run.dir}/prefs.jsonl`), "prefs.jsonl").pairs;
  } else {
    prefs = await makePairs(model, tok, pick(trainPrompts, size.prompts, seed + 10), seed + 2);
    await Deno.writeTextFile(`${run.dir}/prefs.jsonl`, toJsonl(prefs));
  }
  // As in TRL: BOS before prompts, EOS after completions.
  const enc = (s: string, part: "prompt" | "completion") =>
    tok.encode(s, { bos: part === "prompt", eos: part === "completion" });
  const train = encodePairs(prefs, enc, BLOCK).pairs;
  const evalPrefs = await makePairs(model, tok, pick(evalPrompts, size.evalPrompts, seed + 11), seed + 3);
  const evalPairs = encodePairs(evalPrefs, enc, BLOCK).pairs;
  console.log(
    `preferences: ${train.length} training pairs (prefs.jsonl), ${evalPairs.length} held-out pairs`,
  );

  // 4–5. DPO per β, then evaluation on held-out prompts.
  const steps = args.steps ? num(args, "steps", (x) => Number.isInteger(x) && x > 0) : size.dpoSteps;
  const betas = args["sweep-beta"]
    ? args["sweep-beta"].split(",").map((b) => Number(b))
    : [num(args, "beta", (x) => x > 0)];
  if (betas.some((b) => !(b > 0))) {
    throw new Error(`train.ts: --sweep-beta must list positive numbers, got "${args["sweep-beta"]}"`);
  }
  const results = [];
  const best = bestAchievableScore(generateCorpus(20000, seed + 5));
  const evalSet = pick(evalPrompts, size.evalPrompts, seed + 12);
  run.resumeDpo = args.resume;
  for (const beta of betas) {
    const tag = betas.length > 1 ? `-beta${beta}` : "";
    const { policy, reference, eval: ev } = await dpo(
      model,
      dpoConfig(args, beta, steps, tok.pad),
      train,
      evalPairs,
      run,
      tag,
    );
    const before = await evaluateSamples(reference, reference, tok, evalSet, seed + 4);
    const after = await evaluateSamples(policy, reference, tok, evalSet, seed + 4);
    results.push({
      beta,
      referenceReward: before.reward,
      policyReward: after.reward,
      kl: after.kl,
      heldOutAccuracy: ev["eval_rewards/accuracies"],
      // Share of the gap between the reference's mean reward and the best achievable that DPO closed.
      gapClosed: (after.reward - before.reward) / (best - before.reward),
      examples: before.samples.slice(0, 5).map((s, i) => [s.text, after.samples[i].text]),
    });
  }
  return {
    tokenizer: "word",
    vocabSize: tok.vocabSize,
    pairs: train.length,
    evalPairs: evalPairs.length,
    bestAchievableReward: best,
    results,
  };
}

async function customData(args: Args, run: Run) {
  const tok = new ByteTokenizer();
  const { pairs, skippedIdentical } = await loadPreferenceJsonl(args.data);
  let model: GPT;
  if (args.init) {
    const { tensors, metadata } = await loadCheckpoint(args.init);
    const [V, C] = tensors["transformer.wte.weight"]?.shape ?? [];
    if (!V) throw new Error(`train.ts: ${args.init} has no transformer.wte.weight`);
    const nLayer = new Set(
      Object.keys(tensors).map((k) => k.match(/^transformer\.h\.(\d+)\./)?.[1]).filter(Boolean),
    ).size;
    model = new GPT({
      vocabSize: V,
      blockSize: tensors["transformer.wpe.weight"].shape[0],
      nLayer,
      nHead: Number(metadata.n_head ?? Math.max(1, C / 64)),
      nEmbd: C,
    });
    await model.loadStateDict(tensors);
    if (V < tok.vocabSize) {
      throw new Error(`train.ts: ${args.init} has vocab ${V}, the byte tokenizer needs ${tok.vocabSize}`);
    }
  } else {model = new GPT({
      vocabSize: tok.vocabSize,
      blockSize: 128,
      nLayer: 2,
      nHead: 4,
      nEmbd: 64,
      seed: num(args, "seed"),
    });}
  // As in TRL: BOS before prompts, EOS after completions.
  const enc = (s: string, part: "prompt" | "completion") =>
    tok.encode(s, { bos: part === "prompt", eos: part === "completion" });
  const { pairs: all, truncated } = encodePairs(pairs, enc, model.config.blockSize);
  const nEval = Math.floor(all.length / 10);
  console.log(
    `${args.data}: ${all.length} pairs (${skippedIdentical} identical skipped, ${truncated} truncated), ${nEval} held out`,
  );
  const steps = args.steps ? num(args, "steps", (x) => Number.isInteger(x) && x > 0) : 100;
  run.resumeDpo = args.resume;
  const { eval: ev } = await dpo(
    model,
    dpoConfig(args, num(args, "beta", (x) => x > 0), steps, tok.pad),
    all.slice(nEval),
    all.slice(0, nEval),
    run,
    "",
  );
  return { tokenizer: "byte", pairs: all.length - nEval, skippedIdentical, truncated, eval: ev };
}

function drawCurves(run: Run) {
  const series = (keys: string[]) =>
    keys.filter((k) => run.curves[k]).map((k) => ({ name: k, points: run.curves[k] }));
  const stages = [
    ...new Set(
      Object.keys(run.curves).map((k) => k.split(" ")[0]).filter((s) =>
        s.startsWith("dpo") && !s.endsWith("-eval")
      ),
    ),
  ];
  const charts = [
    lineChart({ title: "SFT loss", xLabel: "step", yLabel: "loss", series: series(["sft loss"]) }),
  ];
  for (const m of ["loss", "rewards/accuracies", "rewards/margins"]) {
    charts.push(
      lineChart({
        title: `DPO ${m}`,
        xLabel: "step",
        yLabel: m,
        series: series(stages.flatMap((s) => [`${s} ${m}`, `${s}-eval eval_${m}`])),
      }),
    );
  }
  return grid(charts, 2);
}

if (import.meta.main) {
  try {
    const args = parse(Deno.args);
    if (args.help) {
      console.log(usage());
      Deno.exit(0);
    }
    // Validate every flag before any work starts.
    dpoConfig(args, num(args, "beta", (x) => x > 0), 1, 0);
    if (args.steps) num(args, "steps", (x) => Number.isInteger(x) && x > 0);
    if (!["cpu", "webgpu", "auto"].includes(args.backend)) {
      throw new Error(`train.ts: --backend must be cpu, webgpu or auto, got "${args.backend}"`);
    }
    const backend = await setBackend(args.backend as "cpu" | "webgpu" | "auto");
    const dir = args.out || `runs/${new Date().toISOString().replace(/[:.]/g, "-")}`;
    if (args.resume && !args.out) throw new Error("train.ts: --resume needs --out DIR (the run to resume)");
    await Deno.mkdir(dir, { recursive: true });
    const run = new Run(dir);
    const t0 = performance.now();
    console.log(`backend ${backend.name} (${backend.info}); output in ${dir}`);
    const report = args.data ? await customData(args, run) : await builtinTask(args, run);
    await run.flushMetrics();
    await Deno.writeTextFile(`${dir}/curves.svg`, drawCurves(run));
    const res =
      (report as { results?: { beta: number; kl: number; policyReward: number; referenceReward: number }[] })
        .results;
    if (res && res.length > 1) {
      await Deno.writeTextFile(
        `${dir}/frontier.svg`,
        scatterChart({
          title: "reward vs KL (DPO frontier)",
          xLabel: "KL(policy ‖ reference)",
          yLabel: "mean reward",
          series: [{
            name: "DPO",
            points: res.map((r) => [r.kl, r.policyReward]),
            labels: res.map((r) => `β=${r.beta}`),
          }, { name: "reference", points: [[0, res[0].referenceReward]] }],
        }),
      );
    }
    const summary = {
      ...report,
      seconds: (performance.now() - t0) / 1000,
      options: args,
      deno: Deno.version.deno,
      backend: getBackend().name,
      adapter: getBackend().info,
    };
    await Deno.writeTextFile(`${dir}/summary.json`, JSON.stringify(summary, null, 2));
    printSummary(summary);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}

function printSummary(s: Record<string, any>) {
  console.log(`\nfinished in ${s.seconds.toFixed(0)} s`);
  for (const r of s.results ?? []) {
    console.log(`\nβ = ${r.beta}`);
    console.table({
      "mean reward (reference → policy)": `${r.referenceReward.toFixed(3)} → ${
        r.policyReward.toFixed(3)
      } (best ${s.bestAchievableReward.toFixed(3)})`,
      "share of the gap to the best closed": r.gapClosed.toFixed(3),
      "KL(policy ‖ reference), sampled": r.kl.toFixed(3),
      "held-out preference accuracy": r.heldOutAccuracy.toFixed(3),
    });
    console.log("before → after (same held-out prompt):");
    for (const [a, b] of r.examples) console.log(`  ${a}\n  → ${b}`);
  }
  if (s.eval) console.table(s.eval);
}
