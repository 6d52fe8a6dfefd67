// compile(): replayed steps equal eager ones bit for bit (MLP, tiny-GPT SFT, DPO; CPU and WebGPU),
// re-recording on new shapes, refusals (reads while recording, replaced state, async steps), constant
// memory over 1,000 replays (compile_memory_test.ts), and assign's in-place contract that compiled
// steps rely on.
import assert from "node:assert/strict";
import { mlp, test } from "./compile_util.ts";
import {
  AdamW,
  compile,
  crossEntropy,
  DPOTrainer,
  type EncodedPair,
  GPT,
  lrAt,
  randn,
  scope,
  type Shape,
  stack,
  type Tensor,
  tensor,
} from "../mod.ts";

const equalData = async (a: Tensor<Shape>[], b: Tensor<Shape>[], what: string) => {
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [await a[i].data(), await b[i].data()];
    assert.ok(x.every((v, k) => Object.is(v, y[k])), `${what}: tensor ${i} differs`);
  }
};

test("an MLP step, 100 times: losses and parameters equal the eager run bit for bit", async () => {
  const eager = mlp(), compiled = mlp(), step = compile(compiled.step);
  const losses: number[][] = [[], []];
  for (let i = 0; i < 100; i++) {
    eager.opt.lr = compiled.opt.lr = lrAt(i, { lr: 0.05, warmup: 10, total: 100, decay: "cosine" });
    const x = randn([8, 12], { seed: 10 + i }), y = randn([8, 3], { seed: 500 + i });
    losses[0].push(await scope(() => eager.step(x, y).item()));
    losses[1].push(await scope(() => step(x, y).item()));
    x.dispose(), y.dispose();
  }
  assert.deepEqual(losses[1], losses[0]);
  assert.ok(losses[0][99] < losses[0][0], "it trains");
  await equalData(compiled.params, eager.params, "parameters");
  step.dispose();
});

test("a tiny-GPT SFT step with AdamW, 100 times, equals the eager run bit for bit", async (b) => {
  const config = { vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, seed: 3 };
  const make = () => {
    const model = new GPT(config), opt = new AdamW(model.namedParameters(), { lr: 1e-2, weightDecay: 0.1 });
    const step = (ids: Tensor<[number, number]>) => {
      const loss = crossEntropy(model.forward(ids.narrow(1, 0, 7)), ids.narrow(1, 1, 7));
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss;
    };
    return { model, step };
  };
  const eager = make(), compiled = make(), step = compile(compiled.step);
  const steps = b === "webgpu" ? 30 : 100; // the software adapter is slow; the CPU does all 100
  for (let i = 0; i < steps; i++) {
    const ids = randn([4, 8], { seed: i }).abs().mul(3).clamp(0, 10).cast("i32");
    const [a, c] = [await scope(() => eager.step(ids).item()), await scope(() => step(ids).item())];
    assert.equal(c, a, `step ${i}`);
    ids.dispose();
  }
  await equalData(compiled.model.parameters(), eager.model.parameters(), "parameters");
});

test("DPOTrainer compiled (default) equals compile: false, metrics and weights, 100 steps", async (b) => {
  const config = { vocabSize: 13, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 8, seed: 5 };
  const r = (n: number, s: number) => Array.from({ length: n }, (_, i) => (i * 7 + s * 3) % 13);
  // Lengths vary, so batches come in a few padded shapes: each is recorded once and replayed.
  const pairs: EncodedPair[] = Array.from({ length: 12 }, (_, i) => ({
    prompt: r(2 + (i % 3), i),
    chosen: r(3 + (i % 5), i + 1),
    rejected: r(2 + (i % 4), i + 2),
  }));
  const run = async (compile: boolean) => {
    const policy = new GPT(config);
    const trainer = new DPOTrainer({
      policy,
      train: pairs,
      config: { steps: 100, batchSize: 3, lr: 1e-2, padId: 0, beta: 0.5, warmup: 5, compile },
    });
    const log = [];
    for (let i = 0; i < (b === "webgpu" ? 25 : 100); i++) {
      const { tokens_per_s: _, ...m } = await trainer.step();
      log.push(m);
    }
    return { log, params: policy.parameters() };
  };
  const [eager, compiled] = [await run(false), await run(true)];
  assert.deepEqual(compiled.log, eager.log);
  await equalData(compiled.params, eager.params, "policy");
});

test("dropout draws a new mask at every replay (hostWrite), as eagerly: a GPT with dropout 0.3", async () => {
  const config = { vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, seed: 4, dropout: 0.3 };
  const make = () => {
    const model = new GPT(config), opt = new AdamW(model.namedParameters(), { lr: 1e-2 });
    return (ids: Tensor<[number, number]>) => {
      const loss = crossEntropy(model.forward(ids.narrow(1, 0, 7)), ids.narrow(1, 1, 7));
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss;
    };
  };
  const eager = make(), step = compile(make());
  const ids = randn([4, 8], { seed: 9 }).abs().mul(3).clamp(0, 10).cast("i32");
  const losses: number[][] = [[], []];
  for (let i = 0; i < 8; i++) {
    losses[0].push(await scope(() => eager(ids).item()));
    losses[1].push(await scope(() => step(ids).item()));
  }
  assert.deepEqual(losses[1], losses[0]);
  step.dispose(), ids.dispose();
});

test("a new input shape records again; a bounded cache drops the oldest and stays exact", async () => {
  const eager = mlp(), compiled = mlp(), step = compile(compiled.step, { cache: 1 });
  for (const n of [4, 4, 4, 6, 6, 6, 4, 4, 4, 6]) {
    const x = randn([n, 12], { seed: n }), y = randn([n, 3], { seed: n + 1 });
    assert.equal(
      await scope(() => step(x, y).item()),
      await scope(() => eager.step(x, y).item()),
      `batch ${n}`,
    );
    x.dispose(), y.dispose();
  }
  await equalData(compiled.params, eager.params, "parameters");
});

Deno.test("compile: on the CPU a replay still refuses an index out of range (the frontend's check does not run)", () => {
  const table = tensor([[1, 2], [3, 4], [5, 6]]).realize();
  const look = compile((ids: Tensor<[number]>) => table.indexSelect(0, ids).sum());
  for (let i = 0; i < 3; i++) look(tensor([0, 2], "i32")); // eager, recorded, replayed
  assert.throws(() => look(tensor([0, 3], "i32")), /gather: index 3 is out of range for size 3/);
  look.dispose(), table.dispose();
});

test("reading a value inside the step is refused while recording", () => {
  const w = tensor([1, 2]).realize();
  const bad = compile((x: Tensor<[2]>) => {
    const s = x.mul(w).sum();
    void s.data(); // data-dependent control flow would start here
    return s;
  });
  bad(tensor([1, 1])); // the first call runs eagerly
  assert.throws(() => bad(tensor([1, 1])), /compile: the step reads a value \(data\/item\) while recording/);
  w.dispose();
});

test("state that cannot be updated in place, and asynchronous steps, are refused", () => {
  let state = tensor([1, 2]).add(1); // lazy: assign cannot write it in place
  const step = compile((x: Tensor<[2]>) => {
    state.assign(state.add(x));
    return state;
  });
  step(tensor([1, 1])); // eager: the first assign gives `state` memory of its own...
  state = tensor([1, 2]).add(1); // ...so make it lazy again before the recording
  assert.throws(
    () => step(tensor([1, 1])),
    /compile: assign replaced a tensor of shape \[2\] made before the step/,
  );
  const async = compile((x: Tensor<[2]>) => Promise.resolve(x) as unknown as Tensor<[2]>);
  async(tensor([1, 1]));
  assert.throws(() => async(tensor([1, 1])), /compile: the step must be synchronous/);
});

test("assign writes in place; a tensor made from the old value then throws; x.assign(x.T) is exact", async () => {
  const x = tensor([[1, 2], [3, 4]]).realize(), old = x.mul(10);
  x.assign(x.add(1));
  assert.deepEqual([...await x.data()], [2, 3, 4, 5]);
  assert.throws(() => old.realize(), /a tensor read memory that a later assign overwrote in place/);
  x.assign(x.transpose(0, 1));
  assert.deepEqual([...await x.data()], [2, 4, 3, 5]);
  const v = stack([x.sum(), x.max()]);
  assert.deepEqual([...await v.data()], [14, 5]);
});
