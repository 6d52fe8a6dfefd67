// compile(): 1,000 replays of a training step hold memory constant. In a file of its own: here no earlier
// test leaves garbage whose finalizers would move bytes between live and pooled mid-loop.
import assert from "node:assert/strict";
import { compile, memoryStats, randn, scope } from "../mod.ts";
import { mlp, test } from "./compile_util.ts";

test("live and pooled bytes stay constant over 1,000 replays", async (b) => {
  const { step } = mlp(), compiled = compile(step);
  const x = randn([8, 12], { seed: 1 }), y = randn([8, 3], { seed: 2 });
  const at: ReturnType<typeof memoryStats>[] = [];
  for (let i = 0; i < (b === "webgpu" ? 300 : 1000); i++) {
    await scope(() => compiled(x, y).item());
    if (i === 9 || i === (b === "webgpu" ? 299 : 999)) at.push(memoryStats());
  }
  assert.deepEqual(at[1], at[0]);
  compiled.dispose(), x.dispose(), y.dispose();
});
