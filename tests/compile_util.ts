// Shared by the compile tests (and others): a test run on every backend at hand, and a small MLP training step.
import { Linear, setBackend, SGD, type Tensor } from "../mod.ts";

/** The WebGPU adapter, or null where there is none. */
export const adapter: GPUAdapter | null = await navigator.gpu?.requestAdapter().catch(() => null) ?? null;
const BACKENDS = adapter ? ["cpu", "webgpu"] as const : ["cpu"] as const;
if (!adapter) console.log("compile tests on webgpu skipped: no WebGPU adapter");

/** A test named `${prefix}: ${name}` that runs `fn` on each backend (cpu last, so later tests start there). */
export const backendTest =
  (prefix: string) => (name: string, fn: (backend: "cpu" | "webgpu") => void | Promise<void>) => {
    Deno.test({ name: `${prefix}: ${name}`, sanitizeOps: false, sanitizeResources: false }, async () => {
      for (const b of [...BACKENDS].reverse()) {
        await setBackend(b);
        try {
          await fn(b);
        } catch (e) {
          throw new Error(`on ${b}: ${(e as Error).message}`, { cause: e });
        } finally {
          await setBackend("cpu");
        }
      }
    });
  };
/** The compile tests' runner. */
export const test = backendTest("compile");

/** An MLP and an SGD-with-momentum step on it (lr scheduled: it reaches replays by hostWrite). */
export function mlp() {
  const l1 = new Linear(12, 16, { seed: 1 }), l2 = new Linear(16, 3, { seed: 2 });
  const params = [...l1.parameters(), ...l2.parameters()], opt = new SGD(params, 0.05, 0.9);
  const step = (x: Tensor<readonly [number, 12]>, y: Tensor<readonly [number, 3]>) => {
    const d = l2.forward(l1.forward(x).relu()).sub(y), loss = d.mul(d).mean();
    loss.backward();
    opt.step();
    opt.zeroGrad();
    return loss;
  };
  return { params, opt, step };
}
