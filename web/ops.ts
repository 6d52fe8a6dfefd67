/**
 * Differential op tests for a browser tab (web/ops.html): each case runs on the CPU backend (the
 * oracle) and on WebGPU from the same host arrays, and the values and input gradients must agree
 * (rtol 1e-3, atol 1e-4; NaN matches NaN, ±Infinity must match exactly). The tally goes into the
 * page and into `globalThis.opsResult`, which tests/browser_test.ts reads over DevTools.
 * @module
 */
/// <reference lib="dom" />
import {
  attention,
  crossEntropy,
  embedding,
  fromArray,
  full,
  getBackend,
  GPT,
  layerNorm,
  rng,
  scope,
  setBackend,
  type Shape,
  type Tensor,
  where,
} from "../mod.ts";

/** What the page reports. */
export interface OpsResult {
  /** Whether `navigator.gpu.requestAdapter()` gave an adapter. */
  adapter: boolean;
  /** The WebGPU backend's description of the adapter. */
  info: string;
  /** Cases that agreed. */
  passed: number;
  /** Cases that disagreed or threw, with why. */
  failed: { name: string; error: string }[];
}

type T = Tensor<Shape>;
/** A case: builds its inputs with `input` and returns the tensors to compare; when an input asks
 * for its gradient, the last one is a scalar to backpropagate from. */
type Case = (input: (data: number[], shape: Shape, grad?: boolean) => T) => T[] | Promise<T[]>;

/** Host data: seeded normals, with NaN and ±Infinity sprinkled in when `special`. */
function data(n: number, seed: number, special = false): number[] {
  const r = rng(seed);
  const out = Array.from({ length: n }, () => (r() + r() + r() - 1.5) * 2);
  if (special) [out[0], out[1], out[2], out[3]] = [NaN, Infinity, -Infinity, 0];
  return out;
}

/** Runs `c` on the current backend; the outputs and the gradients of the inputs made with grad. */
async function outputs(c: Case): Promise<Float32Array[]> {
  const leaves: T[] = [];
  const input = (d: number[], shape: Shape, grad = false): T => {
    const t = fromArray(d, shape);
    if (grad) leaves.push(t.requiresGrad_());
    return t;
  };
  return await scope(async () => {
    const outs = await c(input);
    // Gradient cases end with a scalar to backpropagate from.
    if (leaves.length) outs[outs.length - 1].backward();
    const arrays: Float32Array[] = [];
    for (const o of outs) arrays.push(Float32Array.from(await o.data()));
    for (const l of leaves) arrays.push(Float32Array.from(await l.grad!.data()));
    return arrays;
  });
}

/** Why `got` differs from `want`, or "" when they agree. */
function compare(want: Float32Array[], got: Float32Array[]): string {
  if (want.length !== got.length) return `${got.length} outputs, expected ${want.length}`;
  const bad: string[] = [];
  for (let k = 0; k < want.length; k++) {
    if (want[k].length !== got[k].length) return `output ${k}: length ${got[k].length} ≠ ${want[k].length}`;
    for (let i = 0; i < want[k].length; i++) {
      const w = want[k][i], g = got[k][i];
      const ok = Number.isNaN(w)
        ? Number.isNaN(g)
        : Number.isFinite(w)
        ? Math.abs(g - w) <= 1e-4 + 1e-3 * Math.abs(w)
        : g === w;
      if (!ok) bad.push(`output ${k}[${i}]: webgpu ${g}, cpu ${w}`);
    }
  }
  return bad.slice(0, 4).join("; ") + (bad.length > 4 ? `; … ${bad.length} in all` : "");
}

const CASES: Record<string, Case> = {
  "add, mul, sub, div with NaN and ±Infinity": (x) => {
    const a = x(data(24, 1, true), [4, 6]), b = x(data(24, 2), [4, 6]);
    return [a.add(b), a.mul(b), a.sub(b), a.div(b), a.div(0), a.mul(-2).add(1)];
  },
  "exp, log, sqrt, tanh, sigmoid, relu, abs, pow with NaN and ±Infinity": (x) => {
    const a = x(data(16, 3, true), [16]);
    const p = x(data(16, 18).map(Math.abs), [16]);
    return [
      a.exp(),
      a.log(),
      a.sqrt(),
      a.rsqrt(),
      a.tanh(),
      a.sigmoid(),
      a.relu(),
      a.abs(),
      a.pow(2),
      p.pow(0.5),
    ];
  },
  "comparisons, maximum, minimum, where with NaN": (x) => {
    const a = x(data(12, 4, true), [12]), b = x(data(12, 5, true).reverse(), [12]);
    const f = (t: T) => t.cast("f32");
    return [f(a.lt(b)), f(a.eq(b)), f(a.ne(b)), a.maximum(b), a.minimum(b), where(a.gt(0), a, b)];
  },
  "constants: ±Infinity, NaN, overflowing exp, log of 0, 0 − 1 as bool": () => {
    const c = (v: number) => full([3], v);
    return [c(Infinity), c(-Infinity), c(NaN), c(100).exp(), c(0).log(), c(-1).sqrt(), c(3e38).mul(10)];
  },
  "unary gradients": (x) => {
    const a = x(data(20, 6), [4, 5], true);
    return [a.exp().add(a.tanh()).add(a.sigmoid()).mul(a.relu()).sum()];
  },
  "sum, mean, max, min, argmax over axes": (x) => {
    const a = x(data(3 * 5 * 7, 7), [3, 5, 7], true);
    return [a.sum(1), a.mean(-1), a.max(0), a.min(2), a.argmax(1).cast("f32"), a.sum(), a.max(1).sum()];
  },
  "a long reduction": (x) => [x(data(70000, 8), [70000]).sum(), x(data(70000, 9), [70, 1000]).max(1)],
  "matmul, small and batched": (x) => {
    const a = x(data(3 * 5, 10), [3, 5], true), b = x(data(5 * 4, 11), [5, 4], true);
    const c = x(data(2 * 6 * 8, 12), [2, 6, 8], true), d = x(data(2 * 8 * 3, 13), [2, 8, 3], true);
    return [a.matmul(b), c.matmul(d), a.matmul(b).sum().add(c.matmul(d).mul(c.matmul(d)).sum())];
  },
  "matmul 96×80 · 80×72": (x) => {
    const a = x(data(96 * 80, 14), [96, 80], true), b = x(data(80 * 72, 15), [80, 72], true);
    return [a.matmul(b).tanh().sum()];
  },
  "softmax, logSoftmax": (x) => {
    const a = x(data(4 * 9, 16), [4, 9], true);
    return [a.softmax(), a.logSoftmax(0), a.softmax().mul(a).sum()];
  },
  "embedding, gather": (x) => {
    const w = x(data(10 * 4, 17), [10, 4], true);
    const ids = fromArray([3, 0, 9, 3, 7, 1], [2, 3], "i32");
    const e = embedding(w, ids);
    const g = w.gather(1, fromArray([0, 3, 1, 2, 2, 0, 1, 1, 0, 3], [10, 1], "i32"));
    return [e, g, e.sum().add(g.mul(g).sum())];
  },
  "attention (fused on WebGPU), key mask": (x) => {
    const [q, k, v] = [18, 19, 20].map((s) => x(data(2 * 2 * 6 * 5, s), [2, 2, 6, 5], true));
    const keyMask = fromArray([0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1], [2, 6], "bool");
    const o = attention(q as Tensor<[2, 2, 6, 5]>, k as Tensor<[2, 2, 6, 5]>, v as Tensor<[2, 2, 6, 5]>, {
      keyMask,
    });
    return [o, o.mul(o).sum()];
  },
  "layerNorm (fused on WebGPU), D = 5 and 70, transposed, without weight and bias": (x) => {
    const a = x(data(3 * 5, 21), [3, 5], true), w = x(data(5, 22), [5], true), b = x(data(5, 23), [5], true);
    const t = x(data(70 * 4, 24), [70, 4], true).transpose(0, 1);
    const y = layerNorm(a, w, b), z = layerNorm(t, undefined, undefined, 0.1);
    return [y, z, y.mul(y).sum().add(z.mul(z.exp()).sum())];
  },
  "GPT forward and backward": () => {
    const m = new GPT({ vocabSize: 17, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, seed: 3 });
    const shape: [2, 8] = [2, 8];
    const ids = fromArray(Array.from({ length: 16 }, (_, i) => (i * 7) % 17), shape, "i32");
    const y = fromArray(Array.from({ length: 16 }, (_, i) => (i * 5 + 1) % 17), shape, "i32");
    const loss = crossEntropy(m.forward(ids), y);
    loss.backward();
    const grads = m.parameters().map((p) => p.grad!.reshape([-1]) as T);
    return [loss, grads[0], grads[3], grads[grads.length - 1]];
  },
};

/** Runs every case on cpu then webgpu; the tally. */
export async function runOps(log: (line: string) => void): Promise<OpsResult> {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null) ?? null;
  const result: OpsResult = { adapter: !!adapter, info: "", passed: 0, failed: [] };
  if (!adapter) {
    log("no WebGPU adapter: nothing to compare");
    return result;
  }
  await setBackend("webgpu");
  result.info = getBackend().info;
  log(`webgpu: ${result.info}`);
  for (const [name, c] of Object.entries(CASES)) {
    let error: string;
    try {
      await setBackend("cpu");
      const want = await outputs(c);
      await setBackend("webgpu");
      error = compare(want, await outputs(c));
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    if (error) result.failed.push({ name, error });
    else result.passed++;
    log(`${error ? "FAIL" : "ok  "} ${name}${error ? `: ${error}` : ""}`);
  }
  await setBackend("cpu");
  return result;
}

// The page: run on load, print each line, then publish the tally for tests/browser_test.ts.
if (typeof document !== "undefined") {
  const out = document.getElementById("log")!;
  const log = (line: string) => void (out.textContent += line + "\n");
  const done = runOps(log).then((r) => {
    const summary = `${r.passed} passed, ${r.failed.length} failed${r.adapter ? "" : " (no WebGPU adapter)"}`;
    document.getElementById("summary")!.textContent = summary;
    return r;
  });
  (globalThis as { opsResult?: Promise<OpsResult> }).opsResult = done;
}
