/**
 * The demo page (web/index.html): train.ts's sentiment task live in a tab. SFT of a tiny GPT on the
 * review grammar, preference pairs from its samples, DPO against the SFT model at the chosen β, and
 * an evaluation on held-out prompts, with a progress bar per stage, curves drawn as they come, and
 * held-out samples before and after. `?quick` uses the quick sizes, `?run` starts at once and
 * `?backend=cpu|webgpu|auto` picks the backend; the finished run is `globalThis.demoResult`.
 * @module
 */
/// <reference lib="dom" />
import {
  AdamW,
  clipGradNorm,
  crossEntropy,
  DPOTrainer,
  encodePairs,
  fromArray,
  frozenCopy,
  GPT,
  lrAt,
  rng,
  scope,
  setBackend,
} from "../mod.ts";
import { lineChart, type Series } from "../train/svg.ts";
import { BLOCK, pairEncoder, pickPrompts, sentimentData } from "../train/task.ts";
import { evaluateSamples, preferencePairs } from "../train/sampling.ts";

/** What a finished run reports (read by tests/browser_test.ts). */
export interface DemoResult {
  /** The backend's name and adapter. */
  backend: string;
  /** Wall time of the run. */
  seconds: number;
  /** Held-out preference accuracy of the DPO policy (its implicit reward ranks chosen first). */
  accuracy: number;
  /** Mean sentiment reward of held-out samples from the SFT model. */
  rewardBefore: number;
  /** The same from the DPO policy. */
  rewardAfter: number;
}

const $ = <E extends HTMLElement>(id: string) => document.getElementById(id) as E;
const params = new URLSearchParams(location.search);
const quick = params.has("quick");
const STAGES = ["sft", "prefs", "dpo", "eval"] as const;

/** Sets a stage's bar to `done` of `total` with a note. */
function progress(stage: (typeof STAGES)[number], done: number, total: number, note = ""): void {
  $<HTMLProgressElement>(`${stage}-bar`).value = total ? done / total : 0;
  $(`${stage}-note`).textContent = note || `${done} / ${total}`;
}

/** Lets the tab repaint between steps. */
const repaint = () => new Promise((r) => setTimeout(r, 0));

/** Draws a chart into the element `id`. */
function chart(id: string, title: string, yLabel: string, series: Series[]): void {
  $(id).innerHTML = lineChart({ title, xLabel: "step", yLabel, series, width: 400, height: 240 });
}

/** One whole run at `beta`; updates the page as it goes. */
async function run(beta: number): Promise<DemoResult> {
  const t0 = performance.now();
  for (const s of STAGES) progress(s, 0, 1, "waiting");
  for (const id of ["sft-chart", "dpo-loss", "dpo-acc", "dpo-margin", "samples"]) $(id).innerHTML = "";
  const backend = await setBackend((params.get("backend") ?? "auto") as "cpu" | "webgpu" | "auto");
  $("backend").textContent = backend.info;
  const seed = 0;
  const { size, corpus, tok, trainPrompts, evalPrompts } = sentimentData(seed, quick);

  // 1. SFT: next-token training on the grammar's sentences (train.ts's recipe).
  const model = new GPT({ ...size, vocabSize: tok.vocabSize, blockSize: BLOCK, seed });
  const seqs = corpus.map((s) => tok.encode(s, { bos: true, eos: true }));
  const opt = new AdamW(model.namedParameters(), { lr: 3e-3, weightDecay: 0.01 });
  const rand = rng(seed + 7);
  const sftLoss: [number, number][] = [];
  for (let step = 0; step < size.sftSteps; step++) {
    opt.lr = lrAt(step, { lr: 3e-3, warmup: 20, total: size.sftSteps, decay: "cosine", minLr: 3e-4 });
    const rows = Array.from({ length: size.sftBatch }, () => seqs[Math.floor(rand() * seqs.length)]);
    // Right-padded rows; targets are the next tokens, -100 (ignored) past each row's end.
    const T = Math.max(...rows.map((r) => r.length));
    const x = rows.flatMap((r) => [...r, ...Array(T - r.length).fill(0)]);
    const y = rows.flatMap((r) => [...r.slice(1), ...Array(T - r.length + 1).fill(-100)]);
    const loss = await scope(async () => {
      const shape: [number, number] = [rows.length, T];
      const l = crossEntropy(model.forward(fromArray(x, shape, "i32")), fromArray(y, shape, "i32"));
      l.backward();
      clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
      return await l.item();
    });
    sftLoss.push([step + 1, loss]);
    progress("sft", step + 1, size.sftSteps, `step ${step + 1} / ${size.sftSteps}, loss ${loss.toFixed(3)}`);
    chart("sft-chart", "SFT loss", "cross-entropy", [{ name: "loss", points: sftLoss }]);
    await repaint();
  }

  // 2. Preference pairs: best and worst of four samples per prompt by the sentiment scorer.
  progress("prefs", 0, 2, "sampling training pairs");
  await repaint();
  const enc = pairEncoder(tok);
  const prefs = await preferencePairs(
    model,
    tok,
    pickPrompts(trainPrompts, size.prompts, seed + 10),
    seed + 2,
  );
  const train = encodePairs(prefs, enc, BLOCK).pairs;
  progress("prefs", 1, 2, `${train.length} training pairs; sampling held-out pairs`);
  await repaint();
  const evalPrefs = await preferencePairs(
    model,
    tok,
    pickPrompts(evalPrompts, size.evalPrompts, seed + 11),
    seed + 3,
  );
  const evalPairs = encodePairs(evalPrefs, enc, BLOCK).pairs;
  progress("prefs", 2, 2, `${train.length} training pairs, ${evalPairs.length} held-out pairs`);
  await repaint();

  // 3. DPO of a copy of the SFT model against a frozen copy.
  const policy = new GPT(model.config);
  policy.loadStateDict(model.stateDict());
  const steps = size.dpoSteps;
  const trainer = new DPOTrainer({
    policy,
    reference: frozenCopy(model),
    train,
    eval: evalPairs,
    config: { beta, steps, lr: 1e-3, batchSize: 32, padId: tok.pad, seed },
  });
  const curves = {
    loss: [] as [number, number][],
    acc: [] as [number, number][],
    margin: [] as [number, number][],
  };
  while (trainer.stepCount < steps) {
    const m = await trainer.step();
    curves.loss.push([m.step, m.loss]);
    curves.acc.push([m.step, m["rewards/accuracies"]]);
    curves.margin.push([m.step, m["rewards/margins"]]);
    progress("dpo", m.step, steps, `step ${m.step} / ${steps}, loss ${m.loss.toFixed(3)}`);
    chart("dpo-loss", "DPO loss", "loss", [{ name: "loss", points: curves.loss }]);
    chart("dpo-acc", "preference accuracy", "accuracy", [{ name: "train batch", points: curves.acc }]);
    chart("dpo-margin", "reward margin", "chosen − rejected", [{ name: "margin", points: curves.margin }]);
    await repaint();
  }

  // 4. Evaluation on held-out prompts: preference accuracy, and samples before and after.
  progress("eval", 0, 3, "held-out preference accuracy");
  await repaint();
  const accuracy = (await trainer.evaluate())["eval_rewards/accuracies"];
  const prompts = pickPrompts(evalPrompts, size.evalPrompts, seed + 12);
  progress("eval", 1, 3, "sampling the SFT model");
  await repaint();
  const before = await evaluateSamples(model, model, tok, prompts, seed + 4);
  progress("eval", 2, 3, "sampling the DPO policy");
  await repaint();
  const after = await evaluateSamples(policy, model, tok, prompts, seed + 4);
  const result: DemoResult = {
    backend: backend.info,
    seconds: (performance.now() - t0) / 1000,
    accuracy,
    rewardBefore: before.reward,
    rewardAfter: after.reward,
  };
  progress("eval", 3, 3, `held-out accuracy ${accuracy.toFixed(2)}, in ${result.seconds.toFixed(0)} s`);
  showSamples(before.samples.map((s) => s.text), after.samples.map((s) => s.text), result);
  return result;
}

/** The held-out samples side by side, with the mean rewards. */
function showSamples(before: string[], after: string[], r: DemoResult): void {
  const table = document.createElement("table");
  const row = (cells: string[], tag: "th" | "td") => {
    const tr = table.insertRow();
    for (const c of cells) tr.appendChild(document.createElement(tag)).textContent = c;
  };
  row([`before DPO (mean reward ${r.rewardBefore.toFixed(3)})`, `after (${r.rewardAfter.toFixed(3)})`], "th");
  for (let i = 0; i < Math.min(8, before.length); i++) row([before[i], after[i]], "td");
  $("samples").replaceChildren(table);
}

// Wiring: the β slider's label, the run button, `?run`.
const slider = $<HTMLInputElement>("beta"), button = $<HTMLButtonElement>("run");
const betaOf = () => 10 ** Number(slider.value); // the slider is log10 β
const showBeta = () => void ($("beta-value").textContent = betaOf().toPrecision(2));
slider.oninput = showBeta;
showBeta();
$("mode").textContent = quick ? "quick sizes" : "full sizes (add ?quick for a short run)";
$("backend").textContent = "chosen on run (?backend=cpu|webgpu|auto; auto takes WebGPU on a hardware GPU)";
// The adapter, whichever backend runs: "auto" keeps a software adapter (SwiftShader) off.
navigator.gpu?.requestAdapter().then((a) => {
  const i = a?.info;
  $("adapter").textContent = i ? [i.vendor, i.architecture, i.description].filter(Boolean).join(" ") : "none";
}, () => ($("adapter").textContent = "none"));
const start = () => {
  button.disabled = true;
  const done = run(betaOf()).catch((e) => {
    $("error").textContent = e instanceof Error ? e.message : String(e);
    throw e;
  }).finally(() => (button.disabled = false));
  (globalThis as { demoResult?: Promise<DemoResult> }).demoResult = done;
};
button.onclick = start;
if (params.has("run")) start();
