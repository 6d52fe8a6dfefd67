/**
 * `deno task bench`: one JSON line per workload and backend. Each time is the median of several
 * runs after a warm-up and includes the read-back that proves the work finished.
 *
 *   deno task bench [--backend cpu,webgpu] [--only name,name] [--runs 5] [--no-compile]
 *
 * Training steps (mlp, gpt-tiny, dpo) and dispatch-overhead run compiled (recorded once, replayed:
 * autograd/compile.ts) unless --no-compile; each row says which.
 *
 * gpt2-small-dpo-step (GPT-2-small shapes, V = 50,257) runs only when named with --only.
 *
 * On the CPU each row also gives `peak_gflops`, WebAssembly SIMD's multiply-add peak on all threads
 * measured beside it (bench/peak.ts): a shared host's speed moves from minute to minute, so compare
 * runs by time × peak, and a matmul by `of_peak`.
 */
import { parseArgs } from "node:util";
import {
  AdamW,
  attention,
  compile,
  concat,
  crossEntropy,
  DPOTrainer,
  embedding,
  type EncodedPair,
  flush,
  getBackend,
  GPT,
  Linear,
  memoryStats,
  randn,
  scope,
  setBackend,
  SGD,
  type Shape,
  type Tensor,
  tensor,
} from "../mod.ts";
import { fmaPeak } from "./peak.ts";

const USAGE = "usage: deno task bench [--backend cpu,webgpu] [--only name,name] [--runs 5] [--no-compile]";
/** The flags, or a one-line error naming the bad one (and the usage) instead of parseArgs' stack trace. */
function flags() {
  try {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        backend: { type: "string", default: "cpu,webgpu" },
        only: { type: "string", default: "" },
        runs: { type: "string", default: "5" },
        "no-compile": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (!(Number(values.runs) >= 1 && Number.isInteger(Number(values.runs)))) {
      throw new Error(`--runs must be a positive integer, got "${values.runs}"`);
    }
    return values;
  } catch (e) {
    console.error(`bench: ${(e as Error).message.split("\n")[0]}\n${USAGE}`);
    Deno.exit(2);
  }
}
const opt = flags();
const RUNS = Number(opt.runs), EAGER = opt["no-compile"];

async function median(fn: () => Promise<unknown>, runs = RUNS): Promise<number> {
  await fn(); // warm-up: compiles kernels, fills pools
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return ts.sort((a, b) => a - b)[Math.floor(ts.length / 2)];
}

/** Run `fn` in a scope and read one element of its result back: the queue runs in order, so that
 * element proves all the work finished, without timing a large copy to the host. */
const readBack = (fn: () => Tensor<Shape>) => () =>
  scope(async () => (await fn().realize().reshape([-1]).narrow(0, 0, 1).data())[0]);

type Result = Record<string, number | string | boolean>;
const workloads: Record<string, () => Promise<Result>> = {
  "matmul-256": () => matmul(256),
  "matmul-1024": () => matmul(1024),
  // The CPU's WebAssembly SIMD multiply-add peak: one thread, and all of the backend's threads.
  "wasm-fma-peak": () => {
    const p = getBackend().name === "cpu" ? fmaPeak(50) : null;
    const res: Result = p ? { gflops: p.all, gflops_1_thread: p.one } : { skipped: "cpu backend only" };
    return Promise.resolve(res);
  },
  // Only on a hardware GPU: the fp32 peak comparison of the WebGPU issue.
  "matmul-4096":
    () => (getBackend().name === "webgpu" && !(getBackend() as { software?: boolean }).software
      ? matmul(4096)
      : Promise.resolve({ skipped: "hardware GPU only" })),
  async "elementwise-fused"() {
    const n = 1 << 22;
    const x = randn([n], { seed: 1 }).realize();
    const chain = (t: Tensor<readonly [number]>, eager: boolean) => {
      for (
        const f of [
          (v: Tensor<readonly [number]>) => v.mul(1.5),
          (v) => v.add(0.5),
          (v) => v.tanh(),
          (v) => v.mul(v),
          (v) => v.sub(0.25),
          (v) => v.relu(),
        ] as ((v: Tensor<readonly [number]>) => Tensor<readonly [number]>)[]
      ) {
        t = f(t);
        if (eager) t.realize();
      }
      return t.sum();
    };
    const fused = await median(readBack(() => chain(x, false)));
    const unfused = await median(readBack(() => chain(x, true)));
    return { ms: fused, unfused_ms: unfused, speedup: unfused / fused, gbps: (n * 4 * 2) / fused / 1e6 };
  },
  async "gelu-exp-chain"() {
    const n = 1 << 22;
    const x = randn([n], { seed: 11 }).realize();
    const ms = await median(readBack(() => x.gelu().mul(1.5).add(0.5).exp().sum()));
    return { ms, ns_per_element: (ms * 1e6) / n };
  },
  async "softmax-4096x1024"() {
    const x = randn([4096, 1024], { seed: 2 }).realize();
    const ms = await median(readBack(() => x.softmax(-1)));
    return { ms, gbps: (4096 * 1024 * 4 * 2) / ms / 1e6 };
  },
  // us_per_op: the host's time per op, a 1,001-op chain's call less a 1-op chain's (the call, the copies
  // in and out; best of 9). On WebGPU the device runs after the call returns: `ms` (median, with the
  // read) includes it.
  async "dispatch-overhead"() {
    const x = randn([64], { seed: 3 }).realize();
    const chain = (n: number) =>
      compile((x: Tensor<Shape>) => {
        for (let i = 0; i < n; i++) x = x.add(1).realize();
        return x;
      }, { eager: EAGER });
    const [one, many] = [chain(1), chain(1001)];
    const host = async (f: (x: Tensor<Shape>) => Tensor<Shape>) => {
      let best = Infinity;
      for (let i = 0; i < 12; i++) {
        await scope(() => {
          const t0 = performance.now(), r = f(x);
          if (i > 2) best = Math.min(best, performance.now() - t0); // after the eager and recording calls
          return r.data();
        });
      }
      return best;
    };
    const us = (await host(many)) - (await host(one));
    return { ms: await median(readBack(() => many(x)), 9), us_per_op: us, compiled: !EAGER };
  },
  async "mlp-step"() {
    const x = randn([256, 512], { seed: 4 }).realize(), y = randn([256, 512], { seed: 5 }).realize();
    const l1 = new Linear(512, 512, { seed: 6 }), l2 = new Linear(512, 512, { seed: 7 });
    const sgd = new SGD([...l1.parameters(), ...l2.parameters()], 1e-3);
    const step = compile((x: Tensor<readonly [256, 512]>, y: Tensor<readonly [256, 512]>) => {
      const d = l2.forward(l1.forward(x).relu()).sub(y);
      const loss = d.mul(d).mean();
      loss.backward();
      sgd.step();
      sgd.zeroGrad();
      return loss;
    }, { eager: EAGER });
    const ms = await median(() => scope(() => step(x, y).item()));
    return { ms, live_bytes: memoryStats().liveBytes, compiled: !EAGER };
  },
  async "gpt-tiny-train-step"() {
    const model = new GPT({ vocabSize: 256, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128 });
    const adam = new AdamW(model.namedParameters(), { lr: 1e-3, weightDecay: 0.1 });
    const ids = randn([16, 64], { seed: 8 }).abs().mul(60).cast("i32").realize();
    const step = compile((ids: Tensor<readonly [16, 64]>) => {
      const loss = crossEntropy(model.forward(ids), ids);
      loss.backward();
      adam.step();
      adam.zeroGrad();
      return loss;
    }, { eager: EAGER });
    const ms = await median(() => scope(() => step(ids).item()));
    return { ms, tokens_per_s: (16 * 64) / (ms / 1000), compiled: !EAGER };
  },
  async "gpt-tiny-dpo-step"() {
    const model = new GPT({ vocabSize: 256, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128 });
    const r = (n: number, s: number) => Array.from({ length: n }, (_, i) => (i * 37 + s * 11) % 256);
    const pairs: EncodedPair[] = Array.from(
      { length: 8 },
      (_, i) => ({ prompt: r(16, i), chosen: r(48, i + 100), rejected: r(48, i + 200) }),
    );
    const trainer = new DPOTrainer({
      policy: model,
      train: pairs,
      config: { steps: 1e9, batchSize: 8, lr: 1e-4, padId: 0, beta: 0.1, compile: !EAGER },
    });
    const ms = await median(() => trainer.step());
    return { ms, tokens_per_s: (16 * 64) / (ms / 1000), compiled: !EAGER };
  },
  // Causal attention forward + backward, q, k, v [8, 4, 256, 32]: the backend's fused kernel where it
  // has one (composed_ms: matmul, where and softmax, forced by an identity on the probabilities).
  async attention(): Promise<Result> {
    const [q, k, v] = [1, 2, 3].map((seed) => randn([8, 4, 256, 32], { seed }).requiresGrad_().realize());
    const run = (probs?: <P>(p: P) => P) =>
      median(readBack(() => {
        attention(q, k, v, { probs }).sum().backward();
        const g = concat([q, k, v].map((t) => t.grad!.reshape([-1])));
        q.grad = k.grad = v.grad = null;
        return g;
      }));
    const ms = await run();
    return getBackend().attention ? { ms, composed_ms: await run((p) => p) } : { ms };
  },
  // The embedding gradient at GPT-2's vocabulary: scatterAdd of 256 lookups into [50,257, 64], with the
  // indices computed on the device (as in a compiled step's inputs), forward + backward.
  async "embedding-grad-50257"() {
    const w = randn([50_257, 64], { seed: 3 }).requiresGrad_().realize();
    const ids = tensor(Array.from({ length: 256 }, (_, k) => (k * 7919) % 50_257), "i32");
    const ms = await median(readBack(() => {
      embedding(w, ids.cast("f32").cast("i32")).sum().backward();
      const g = w.grad!;
      w.grad = null;
      return g;
    }));
    return { ms };
  },
  // Opt-in (slow on a CPU): GPT-2-small shapes, random weights, 2 pairs of 128 tokens, AdamW and a
  // frozen reference. peak_bytes: the most bytes live at once (parameters, AdamW state, reference, the step).
  async "gpt2-small-dpo-step"() {
    const model = new GPT({ vocabSize: 50_257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 });
    const r = (n: number, s: number) =>
      Array.from({ length: n }, (_, i) => (i * 7919 + s * 104_729) % 50_257);
    const pairs: EncodedPair[] = [0, 1].map((i) => ({
      prompt: r(32, i),
      chosen: r(96, i + 2),
      rejected: r(96, i + 4),
    }));
    const trainer = new DPOTrainer({
      policy: model,
      train: pairs,
      config: { steps: 1e9, batchSize: 2, lr: 1e-5, padId: 0, beta: 0.1, compile: !EAGER },
    });
    const ms = await median(() => trainer.step());
    return {
      ms,
      peak_bytes: memoryStats().peakBytes,
      pooled_bytes: memoryStats().pooledBytes,
      tokens_per_s: (4 * 128) / (ms / 1000),
    };
  },
};
/** Rows that run only when named with --only. */
const OPT_IN = new Set(["gpt2-small-dpo-step"]);

/** On the CPU: the multiply-add peak of all its threads, measured just before and just after `fn`
 * (bench/peak.ts), so a time or rate can be read against what this machine did in the same minute
 * (`peak_gflops`; `of_peak` for rows with `gflops`). */
async function besidePeak(fn: () => Promise<Result>): Promise<Result> {
  if (getBackend().name !== "cpu") return fn();
  const before = fmaPeak(), res = await fn(), after = fmaPeak();
  if (!before || !after) return res;
  const peak = (before.all + after.all) / 2;
  return { ...res, peak_gflops: peak, ...(res.gflops ? { of_peak: Number(res.gflops) / peak } : {}) };
}

async function matmul(n: number): Promise<Result> {
  const a = randn([n, n], { seed: 9 }).realize(), b = randn([n, n], { seed: 10 }).realize();
  const ms = await median(readBack(() => a.matmul(b)), n > 512 ? 3 : RUNS);
  return { ms, gflops: (2 * n ** 3) / ms / 1e6 };
}

for (const name of opt.backend.split(",")) {
  try {
    await setBackend(name as "cpu" | "webgpu");
  } catch (e) {
    console.log(JSON.stringify({ name: "setup", backend: name, error: (e as Error).message }));
    continue;
  }
  for (const [w, run] of Object.entries(workloads)) {
    if (opt.only ? !opt.only.split(",").includes(w) : OPT_IN.has(w)) continue;
    try {
      const res = w === "wasm-fma-peak" ? await run() : await besidePeak(run);
      await flush();
      const round = (v: number | string | boolean) => (typeof v === "number" ? +v.toPrecision(4) : v);
      console.log(
        JSON.stringify({
          name: w,
          backend: name,
          adapter: getBackend().info,
          ...Object.fromEntries(Object.entries(res).map(([k, v]) => [k, round(v)])),
        }),
      );
    } catch (e) {
      console.log(JSON.stringify({ name: w, backend: name, error: (e as Error).message }));
    }
  }
}
