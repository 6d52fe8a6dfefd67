/**
 * The main job: `deno run -A train.ts` trains a small GPT from scratch on review-like sentences,
 * then aligns it to prefer positive sentiment with DPO — a toy of the DPO paper's controlled
 * sentiment generation (Rafailov et al., 2023, §6.1) — and reports reward, KL and accuracy.
 * `--help` lists the options. The stages, top to bottom:
 *
 * 1. SFT: next-token training on sentences from a review grammar (train/sentiment.ts).
 * 2. Preferences: four samples per prompt, the best and worst by a word-valence scorer become a
 *    chosen/rejected pair (prefs.jsonl, TRL's format).
 * 3. DPO against the frozen SFT model, for each β.
 * 4. Evaluation on held-out prompts: mean reward, sampled KL to the reference, fluency (grammatical
 *    samples), preference accuracy; a β sweep also evaluates along each run.
 * 5. Report: summary.json, metrics.jsonl, curves.svg (frontier.svg for a β sweep), a printed summary.
 *
 * `--compare-rlhf` replaces stages 3–5 with DPO against RLHF (reward model, PPO, RLOO) from the same
 * SFT model and pairs: compare.json, frontier.svg and a cost table (train/compare.ts).
 * `--data FILE` replaces stages 1–2 with your own TRL-format preferences: a pretrained folder given
 * by `--init DIR` is aligned with its own tokenizer and written back as a pretrained folder (`dpo/`).
 * Helpers live in train/: flags, the task's data, sampling, the metric log and the report.
 */
import {
  AdamW,
  type BPETokenizer,
  ByteTokenizer,
  clipGradNorm,
  compile,
  crossEntropy,
  type DPOConfig,
  type DPOMetrics,
  DPOTrainer,
  type EncodedPair,
  encodePairs,
  flush,
  fromArray,
  fromPretrained,
  frozenCopy,
  GPT,
  gptConfigFromCheckpoint,
  loadCheckpoint,
  loadPreferenceJsonl,
  lrAt,
  parsePreferenceJsonl,
  type PreferencePair,
  rng,
  savePretrained,
  scope,
  setBackend,
  type Shape,
  stack,
  type Tensor,
  toJsonl,
  type Tokenizer,
  type WordTokenizer,
} from "./mod.ts";
import { progress } from "./train/progress.ts";
import { type Flags, isFolder, parseFlags, usage } from "./train/args.ts";
import { Run } from "./train/run.ts";
import { BLOCK, pairEncoder, pickPrompts, sentimentData, SIZES, type Sizes } from "./train/task.ts";
import { bestAchievableScore, generateCorpus, sentimentScore } from "./train/sentiment.ts";
import { evaluateSamples, preferencePairs } from "./train/sampling.ts";
import {
  type BetaResult,
  type Checkpoint,
  type DataReport,
  type TaskReport,
  writeReport,
} from "./train/report.ts";
import { type CompareInput, compareRlhf } from "./train/compare.ts";

/** Parses the flags, runs the stages, writes the report. */
async function main(argv: string[]): Promise<void> {
  const flags = parseFlags(argv);
  if (!flags) return console.log(usage());
  const backend = await setBackend(flags.backend);
  const run = new Run(flags.out, flags.resume);
  console.log(`backend ${backend.name} (${backend.info}); output in ${run.dir}`);
  const t0 = performance.now();
  if (flags.compareRlhf) {
    // Stages 1–2 as usual, then DPO against RLHF instead of stages 3–5 (train/compare.ts).
    const input = flags.data ? await ownData(flags) : await sentimentPairs(flags, run);
    await compareRlhf(input, flags, run);
    return console.log(`\nfinished in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const report = flags.data ? await ownPreferences(flags, run) : await sentimentDemo(flags, run);
  // 5. Report.
  await writeReport(run, report, flags.options, (performance.now() - t0) / 1000);
}

/** Stages 1–4 on the built-in sentiment task. */
async function sentimentDemo(flags: Flags, run: Run): Promise<TaskReport> {
  const { seed } = flags;
  const { sft: model, tok, train, evalPairs, evalPrompts: evalSet, size } = await sentimentPairs(flags, run);

  // 3–4. DPO per β, each from the SFT model, then evaluation on held-out prompts. The reference is
  // the SFT model for every β, so its samples are drawn once.
  const before = await evaluateSamples(model, model, tok, evalSet, seed + 4);
  const best = bestAchievableScore(generateCorpus(20000, seed + 5));
  const results: BetaResult[] = [];
  for (const beta of flags.betas) {
    const tag = flags.betas.length > 1 ? `-beta${beta}` : "";
    const steps = flags.steps ?? size.dpoSteps;
    // A sweep also samples along the way, so frontier.svg draws each β's path, not one point.
    // Probes are logged, so that a resumed run still draws the whole path.
    const probe = async (step: number, policy: GPT) => {
      const e = await evaluateSamples(policy, model, tok, evalSet, seed + 4);
      run.log(`dpo${tag}-probe`, { step, kl: e.kl, reward: e.reward, fluency: e.fluency });
    };
    const { policy, eval: ev } = await dpo(
      model,
      { beta, steps, padId: tok.pad, tag },
      train,
      evalPairs,
      flags,
      run,
      flags.betas.length > 1 ? probe : undefined,
    );
    const after = await evaluateSamples(policy, model, tok, evalSet, seed + 4);
    const trajectory: Checkpoint[] = [
      { step: 0, kl: 0, reward: before.reward, fluency: before.fluency },
      ...run.logged(`dpo${tag}-probe`).map(({ step, kl, reward, fluency }) =>
        ({ step, kl, reward, fluency }) as Checkpoint
      ),
    ];
    trajectory.push({ step: steps, kl: after.kl, reward: after.reward, fluency: after.fluency });
    results.push({
      beta,
      referenceReward: before.reward,
      policyReward: after.reward,
      kl: after.kl,
      referenceFluency: before.fluency,
      fluency: after.fluency,
      trajectory,
      heldOutAccuracy: ev["eval_rewards/accuracies"],
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

/** Stages 1–2 on the built-in sentiment task: the SFT model and its preference pairs. */
async function sentimentPairs(
  flags: Flags,
  run: Run,
): Promise<CompareInput & { tok: WordTokenizer; size: Sizes }> {
  const { seed } = flags;
  const { size, corpus, tok, trainPrompts, evalPrompts } = sentimentData(seed, flags.quick, flags.tiny);
  // 1. SFT on the corpus (or the finished one, with --resume).
  const { nLayer, nHead, nEmbd } = size;
  const model = new GPT({ vocabSize: tok.vocabSize, blockSize: BLOCK, nLayer, nHead, nEmbd, seed });
  const saved = flags.resume ? await run.loadCheckpoint("sft.safetensors") : null;
  if (saved) {
    loadInto(model, saved.tensors, run.path("sft.safetensors"));
    console.log("SFT: reusing sft.safetensors");
  } else {
    if (flags.init) loadInto(model, (await loadCheckpoint(flags.init)).tensors, flags.init);
    const seqs = corpus.map((s) => tok.encode(s, { bos: true, eos: true }));
    run.rewind(["sft"], 0);
    await sft(model, seqs, size.sftSteps, size.sftBatch, seed, run, flags.compile);
    await run.saveCheckpoint("sft.safetensors", model.stateDict(), {
      tokenizer: JSON.stringify(tok.toJSON()),
      n_head: String(model.config.nHead),
    });
  }

  // 2. Preferences from SFT samples, scored by the sentiment scorer; written in TRL's format.
  let prefs: PreferencePair[];
  if (flags.resume && run.has("prefs.jsonl")) {
    prefs = parsePreferenceJsonl(await Deno.readTextFile(run.path("prefs.jsonl")), "prefs.jsonl").pairs;
  } else {
    prefs = await preferencePairs(model, tok, pickPrompts(trainPrompts, size.prompts, seed + 10), seed + 2);
    await run.writeText("prefs.jsonl", toJsonl(prefs));
  }
  const enc = pairEncoder(tok);
  const train = encodePairs(prefs, enc, BLOCK, undefined, "prefs.jsonl").pairs;
  const evalPrefs = await preferencePairs(
    model,
    tok,
    pickPrompts(evalPrompts, size.evalPrompts, seed + 11),
    seed + 3,
  );
  const evalPairs = encodePairs(evalPrefs, enc, BLOCK, undefined, "held-out pairs").pairs;
  console.log(
    `preferences: ${train.length} training pairs (prefs.jsonl), ${evalPairs.length} held-out pairs`,
  );

  return {
    sft: model,
    tok,
    train,
    evalPairs,
    trainPrompts: pickPrompts(trainPrompts, size.prompts, seed + 10),
    evalPrompts: pickPrompts(evalPrompts, size.evalPrompts, seed + 12),
    scorer: sentimentScore,
    size,
  };
}

/** Stage 1: supervised next-token training (here from scratch) with AdamW and a cosine schedule. */
async function sft(
  model: GPT,
  seqs: number[][],
  steps: number,
  batch: number,
  seed: number,
  run: Run,
  compiled: boolean,
): Promise<void> {
  const opt = new AdamW(model.namedParameters(), { lr: 3e-3, weightDecay: 0.01 });
  const rand = rng(seed + 7);
  const bar = progress("SFT", steps);
  // Forward, backward and update, replayed per batch shape; a non-finite loss or gradient norm skips
  // the update on the device, and the one read after it stops training.
  const update = compile((x: Tensor<[number, number]>, y: Tensor<[number, number]>) => {
    const l = crossEntropy(model.forward(x), y);
    l.backward();
    const norm = clipGradNorm(model.parameters(), 1), check = l.add(norm);
    opt.step(check.sub(check).eq(0));
    opt.zeroGrad();
    return stack([l.detach(), norm]);
  }, { eager: !compiled });
  for (let step = 0; step < steps; step++) {
    opt.lr = lrAt(step, { lr: 3e-3, warmup: 20, total: steps, decay: "cosine", minLr: 3e-4 });
    const rows = Array.from({ length: batch }, () => seqs[Math.floor(rand() * seqs.length)]);
    // Right-pad to the longest row, rounded up to a multiple of 8 (fewer shapes to record); targets are
    // the next tokens, -100 (ignored) past each row's end.
    const longest = Math.max(...rows.map((r) => r.length));
    const T = Math.max(longest, Math.min(Math.ceil(longest / 8) * 8, model.config.blockSize));
    const x = rows.flatMap((r) => [...r, ...Array(T - r.length).fill(0)]);
    const y = rows.flatMap((r) => [...r.slice(1), ...Array(T - r.length + 1).fill(-100)]);
    const [loss, norm] = await scope(() =>
      update(fromArray(x, [batch, T], "i32"), fromArray(y, [batch, T], "i32")).data()
    );
    const bad = !Number.isFinite(loss)
      ? `loss is ${loss}`
      : !Number.isFinite(norm)
      ? `gradient norm is ${norm}`
      : "";
    if (bad) throw new Error(`SFT: ${bad} at step ${step + 1}; stopped before the update`);
    await flush(); // a step's end: queued device work goes out; TENSOR_DEBUG=stats prints here
    run.log("sft", { step: step + 1, loss, learning_rate: opt.lr });
    bar.tick(1, `loss ${loss.toFixed(3)}`);
  }
  bar.done();
}

/**
 * Stage 3: DPO of a copy of `sftModel` against a frozen copy of it. Saves dpo<tag>.safetensors with
 * the optimizer state every 50 steps (continued by --resume); calls `probe` at each held-out
 * evaluation before the last; returns the policy and its last held-out evaluation.
 */
async function dpo(
  sftModel: GPT,
  { beta, steps, padId, tag }: { beta: number; steps: number; padId: number; tag: string },
  train: EncodedPair[],
  evalPairs: EncodedPair[],
  flags: Flags,
  run: Run,
  probe?: (step: number, policy: GPT) => Promise<void>,
): Promise<{ policy: GPT; eval: Record<string, number> }> {
  const policy = new GPT(sftModel.config);
  policy.loadStateDict(sftModel.stateDict());
  const name = `dpo${tag}.safetensors`;
  const config: DPOConfig = {
    beta,
    lossType: flags.loss,
    labelSmoothing: flags.labelSmoothing,
    lr: flags.lr,
    steps,
    batchSize: flags.batchSize,
    precomputeRef: flags.precomputeRef,
    compile: flags.compile,
    padId,
    seed: flags.seed,
    evalEvery: Math.max(10, Math.floor(steps / 4)),
    checkpointEvery: Math.min(50, Math.ceil(steps / 4)),
  };
  const trainer = new DPOTrainer({ policy, reference: frozenCopy(sftModel), train, eval: evalPairs, config });
  const bar = progress(`DPO${tag ? ` β=${beta}` : ""}`, steps);
  let lastEval: Record<string, number> | null = null;
  const evaluate = async () => {
    lastEval = await trainer.evaluate();
    run.log(`dpo${tag}-eval`, { step: trainer.stepCount, ...lastEval });
    if (trainer.stepCount < steps) await probe?.(trainer.stepCount, policy);
  };
  const saved = flags.resume ? await run.loadCheckpoint(name) : null;
  if (saved) {
    loadInto(trainer, saved.tensors, run.path(name), saved.metadata);
    if (saved.metadata.eval) lastEval = JSON.parse(saved.metadata.eval); // a finished run
  }
  // The log keeps what led up to the checkpoint; what came after it is done again.
  if (!lastEval) run.rewind([`dpo${tag}`], trainer.stepCount + 1);
  if (!lastEval) run.rewind([`dpo${tag}-eval`, `dpo${tag}-probe`], trainer.stepCount);
  bar.tick(trainer.stepCount);
  const k = trainer.stepCount;
  if (!lastEval && k > 0 && k < steps && k % config.evalEvery! === 0) await evaluate();
  // trainer.run()'s loop, written out so that the async `probe` can sample at each evaluation.
  while (trainer.stepCount < steps) {
    const m: DPOMetrics = await trainer.step();
    run.log(`dpo${tag}`, m as unknown as Record<string, number>);
    const acc = m["rewards/accuracies"].toFixed(2), margin = m["rewards/margins"].toFixed(2);
    bar.tick(1, `loss ${m.loss.toFixed(3)} acc ${acc} margin ${margin}`);
    if (m.step % config.checkpointEvery! === 0 && m.step < steps) {
      const { tensors, metadata } = trainer.checkpoint();
      await run.saveCheckpoint(name, tensors, metadata);
    }
    if (m.step % config.evalEvery! === 0 && m.step < steps) await evaluate();
  }
  if (!lastEval || trainer.stepCount > k) {
    await evaluate();
    const { tensors, metadata } = trainer.checkpoint();
    await run.saveCheckpoint(name, tensors, { ...metadata, eval: JSON.stringify(lastEval) });
  }
  bar.done();
  return { policy, eval: lastEval! };
}

/**
 * Loads a checkpoint into a model (or a DPO trainer: policy, optimizer state, step, shuffle). A
 * mismatch names the configuration the file was made with, e.g. "made with --quick?".
 */
function loadInto(
  target: GPT | DPOTrainer,
  tensors: Record<string, Tensor<Shape>>,
  file: string,
  metadata: Record<string, string> = {},
): void {
  try {
    if (target instanceof GPT) target.loadStateDict(tensors);
    else target.restore(tensors, metadata, file);
  } catch (e) {
    let made = "";
    try {
      const c = gptConfigFromCheckpoint(tensors, { n_head: "1" }, file);
      const size = Object.entries(SIZES).find(([, s]) => s.nLayer === c.nLayer && s.nEmbd === c.nEmbd)?.[0];
      const hint = size === "full" ? "made without --quick?" : size ? `made with --${size}?` : "another run?";
      made =
        ` (it holds a GPT with ${c.nLayer} layers, width ${c.nEmbd}, vocabulary ${c.vocabSize}: ${hint})`;
    } catch { /* not a GPT checkpoint: the error alone says what is wrong */ }
    throw new Error(`train.ts: ${file} does not fit this configuration${made}: ${(e as Error).message}`);
  }
}

/**
 * `--data`: DPO (stage 3) on your own preferences, a tenth of them held out for evaluation. The model
 * is the `--init` pretrained folder (with its tokenizer), or a byte-level GPT: a new one, or one sized
 * and loaded from the `--init` checkpoint. The aligned policy is written as a pretrained folder, `dpo/`.
 */
async function ownPreferences(flags: Flags, run: Run): Promise<DataReport> {
  const { sft: model, tok, bpe, train, evalPairs, skippedIdentical, truncated } = await ownData(flags);
  const dpoOptions = { beta: flags.beta, steps: flags.steps ?? 100, padId: tok.pad, tag: "" };
  const { policy, eval: ev } = await dpo(model, dpoOptions, train, evalPairs, flags, run);
  await savePretrained(policy, run.path("dpo"), bpe ? { tokenizer: bpe } : {});
  console.log(`aligned model: ${run.path("dpo")}/ (a pretrained folder${bpe ? " with its tokenizer" : ""})`);
  return {
    tokenizer: bpe ? "bpe" : "byte",
    vocabSize: tok.vocabSize,
    modelVocabSize: model.config.vocabSize,
    pairs: train.length,
    skippedIdentical,
    truncated,
    eval: ev,
  };
}

/** `--data`'s model and pairs (a tenth held out); there is no ground-truth scorer. */
async function ownData(
  flags: Flags,
): Promise<CompareInput & { bpe?: BPETokenizer; skippedIdentical: number; truncated: number }> {
  const { pairs, skippedIdentical } = await loadPreferenceJsonl(flags.data);
  const { model, tok, bpe } = await dataModel(flags);
  const enc = pairEncoder(tok);
  const { pairs: all, truncated } = encodePairs(pairs, enc, model.config.blockSize, undefined, flags.data);
  const nEval = Math.floor(all.length / 10);
  console.log(
    `${flags.data}: ${all.length} pairs (${skippedIdentical} identical skipped, ${truncated} truncated ` +
      `to ${model.config.blockSize} tokens), ${nEval} held out`,
  );
  // Prompts as text for sampling: the encoded (perhaps truncated) ones, decoded.
  const prompts = all.map((p) => tok.decode(p.prompt));
  return {
    sft: model,
    tok,
    bpe,
    train: all.slice(nEval),
    evalPairs: all.slice(0, nEval),
    trainPrompts: prompts.slice(nEval),
    evalPrompts: prompts.slice(0, nEval),
    scorer: null,
    skippedIdentical,
    truncated,
  };
}

/**
 * `--data`'s model and tokenizer: the `--init` pretrained folder's model with its BPE tokenizer (or,
 * when it has none, the byte tokenizer), a GPT sized and loaded from an `--init` checkpoint file, or a
 * new byte-level GPT. A tokenizer with ids the model's embedding lacks is refused, naming both sizes.
 */
async function dataModel(flags: Flags): Promise<{ model: GPT; tok: Tokenizer; bpe?: BPETokenizer }> {
  const bytes = new ByteTokenizer();
  if (!flags.init) {
    const config = { vocabSize: bytes.vocabSize, blockSize: 128, nLayer: 2, nHead: 4, nEmbd: 64 };
    return { model: new GPT({ ...config, seed: flags.seed }), tok: bytes };
  }
  const fit = (model: GPT, tok: Tokenizer, what: string, fix: string) => {
    if (tok.vocabSize <= model.config.vocabSize) return;
    model.dispose();
    throw new Error(
      `train.ts: --data cannot be tokenized for ${flags.init}: ${what} has ${tok.vocabSize} ids, ` +
        `the model's vocabulary only ${model.config.vocabSize} (ids ${model.config.vocabSize} and up ` +
        `have no embedding); ${fix}`,
    );
  };
  if (isFolder(flags.init)) {
    let loaded: Awaited<ReturnType<typeof fromPretrained>>;
    try {
      loaded = await fromPretrained(flags.init);
    } catch (e) {
      throw new Error(`train.ts: --init ${flags.init}: ${(e as Error).message}`);
    }
    const { model, tokenizer } = loaded;
    if (tokenizer) {
      fit(model, tokenizer, "its tokenizer", "use the tokenizer the model was trained with");
      console.log(`--init ${flags.init}: BPE tokenizer with ${tokenizer.vocabSize} ids, ${describe(model)}`);
      return { model, tok: tokenizer, bpe: tokenizer };
    }
    fit(
      model,
      bytes,
      "it has no tokenizer files, and the byte tokenizer",
      "add the model's tokenizer.json (or vocab.json + merges.txt) to the folder",
    );
    console.log(`--init ${flags.init}: no tokenizer files, so the byte tokenizer; ${describe(model)}`);
    return { model, tok: bytes };
  }
  const { tensors, metadata } = await loadCheckpoint(flags.init);
  const model = new GPT(gptConfigFromCheckpoint(tensors, metadata, flags.init));
  fit(model, bytes, "the byte tokenizer", "give a pretrained folder with its tokenizer");
  loadInto(model, tensors, flags.init);
  return { model, tok: bytes };
}

/** "GPT with 2 layers, …" for the `--init` line. */
function describe(model: GPT): string {
  const { nLayer, nHead, nEmbd, vocabSize, blockSize } = model.config;
  return `GPT with ${nLayer} layer${
    nLayer === 1 ? "" : "s"
  }, ${nHead} heads, width ${nEmbd}, vocabulary ${vocabSize}, context ${blockSize}`;
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
