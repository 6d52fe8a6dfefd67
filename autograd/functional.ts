// deno-lint-ignore-file no-explicit-any
// (`any` here is on implementation signatures behind typed overloads, and on casts to shape types the
// compiler computes but cannot relate to the runtime shape: the typed surface is the overloads.)
/**
 * Functional autodiff over records of tensors (JAX-style), and gradcheck by central differences.
 */
import { fromArray, getBackend, noGrad, setBackend, type Shape, type Tensor } from "../tensor/mod.ts";
import { checkNumber, raise } from "../tensor/check.ts";

/** Gradients with the same keys and shapes as the parameters. */
export type Grads<P extends Record<string, Tensor<any>>> = {
  [K in keyof P]: P[K] extends Tensor<infer S> ? Tensor<S> : never;
};

/** `r` with `f` applied to each of its tensors. */
const mapRecord = (r: Record<string, Tensor<any>>, f: (t: Tensor<any>) => Tensor<any>) =>
  Object.fromEntries(Object.entries(r).map(([k, t]) => [k, f(t)]));

/** `f` → a function returning `f`'s scalar value and its gradients with respect to every tensor of
 * the record (the inputs themselves are not modified and need not require grad). */
export function valueAndGrad<P extends Record<string, Tensor<any>>>(
  f: (params: P) => Tensor<any>,
): (params: P) => { value: Tensor<[]>; grads: Grads<P> } {
  return (params) => {
    const leaves = mapRecord(params, (t) => t.detach().requiresGrad_()) as P, value = f(leaves);
    if (value.size !== 1) {
      raise(`valueAndGrad: the function must return one number, got shape [${value.shape.join(", ")}]`);
    }
    value.backward();
    const grads = mapRecord(leaves, (t) => t.grad ?? t.mul(0)) as Grads<P>;
    return { value: value.detach().reshape([]) as Tensor<[]>, grads };
  };
}

/** `f` → a function returning only the gradients (see `valueAndGrad`). */
export function grad<P extends Record<string, Tensor<any>>>(
  f: (params: P) => Tensor<any>,
): (params: P) => Grads<P> {
  const vg = valueAndGrad(f);
  return (p) => vg(p).grads;
}

/** Check `f`'s analytic gradients against central differences, in f64 on the CPU backend.
 * A non-scalar output is reduced with fixed random weights. Throws with the worst element when a
 * gradient is off by more than `atol + rtol·|numeric|`; resolves to the largest error seen. */
export async function gradcheck(
  f: (...xs: Tensor<any>[]) => Tensor<any>,
  inputs: Tensor<any>[],
  opts: { eps?: number; atol?: number; rtol?: number } = {},
): Promise<number> {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3 } = opts, prev = getBackend().name;
  checkNumber("gradcheck: eps", eps, "> 0", (v) => v > 0);
  checkNumber("gradcheck: atol", atol, "≥ 0", (x) => x >= 0);
  checkNumber("gradcheck: rtol", rtol, "≥ 0", (x) => x >= 0);
  await setBackend("cpu");
  try {
    const vals = await Promise.all(inputs.map(async (x) => Float64Array.from(await x.data())));
    // Inputs as f64 tensors; integer and bool inputs keep their dtype (and get no gradient).
    const dtypes = inputs.map((x) => x.dtype === "i32" || x.dtype === "bool" ? x.dtype : "f64");
    const make = (v: Float64Array[]) =>
      v.map((d, i) => fromArray(d, inputs[i].shape as Shape, "f64").cast(dtypes[i]));
    let weights: Tensor<any> | null = null;
    const weight = (_: unknown, i: number) => Math.sin(i * 1.7 + 0.3) + 1.1;
    const scalar = (xs: Tensor<any>[]) => {
      const y = f(...xs);
      weights ??= fromArray(Array.from({ length: y.size }, weight), y.shape, "f64");
      return y.cast("f64").mul(weights).sum();
    };
    const xs = make(vals).map((x) => (x.dtype === "f64" ? x.requiresGrad_() : x));
    scalar(xs).backward();
    let worst = 0;
    for (let i = 0; i < xs.length; i++) {
      if (!xs[i].requiresGrad) continue;
      const analytic = xs[i].grad ? await xs[i].grad!.data() : new Float64Array(vals[i].length);
      for (let j = 0; j < vals[i].length; j++) {
        // f at the inputs with element j of input i moved by d.
        const at = (d: number) =>
          noGrad(() => scalar(make(vals.map((a, k) => (k === i ? a.with(j, a[j] + d) : a)))).item());
        const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
        const err = Math.abs(analytic[j] - numeric);
        worst = Math.max(worst, err);
        if (err > atol + rtol * Math.abs(numeric)) {
          raise(`gradcheck: input ${i} element ${j}: analytic ${analytic[j]} vs numeric ${numeric}`);
        }
      }
    }
    return worst;
  } finally {
    await setBackend(prev);
  }
}
