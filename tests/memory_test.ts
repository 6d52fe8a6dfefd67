// deno-lint-ignore-file no-explicit-any
// (tests call ops with deliberately wrong or untyped shapes to reach the runtime checks)
// Memory ownership: scopes, keep, `using`, dispose errors, and a training loop that does not grow.
import assert from "node:assert/strict";
import { concat, keep, memoryStats, randn, scope, type Tensor, tensor, zeros } from "../mod.ts";
import { wasmMemory } from "../tensor/wasm.ts";
import { assertClose } from "./util.ts";

// Every test here disposes all it creates: a dropped buffer's finalizer would otherwise lower
// liveBytes at some later await and make the before/after comparisons flaky.
const live = () => {
  const { liveTensors, liveBytes, liveBuffers } = memoryStats();
  return { liveTensors, liveBytes, liveBuffers };
};

Deno.test("scope disposes what it created, except the result", async () => {
  const x = tensor([1, 2, 3]);
  const before = live();
  let inner: Tensor<any> | null = null;
  const out = scope(() => {
    inner = x.mul(2).realize();
    const y = inner.add(1).exp().realize();
    return y.sum();
  });
  assert.equal(inner!.disposed, true);
  assert.equal(out.disposed, false);
  assert.equal(x.disposed, false);
  assert.equal(await out.item(), Math.fround(Math.exp(3) + Math.exp(5) + Math.exp(7)));
  const mid = live();
  assert.equal(mid.liveTensors, before.liveTensors + 1);
  out.dispose();
  assert.deepEqual(live(), before);
  x.dispose();
});

Deno.test("scope returns records and arrays of tensors intact", async () => {
  const before = live();
  const { a, list } = scope(() => {
    const t = tensor([1, 2]).add(1);
    return { a: t.mul(2), list: [t, t.neg()], n: 3 };
  });
  await assertClose(a, [4, 6]);
  await assertClose(list[0], [2, 3]);
  await assertClose(list[1], [-2, -3]);
  assert.equal(live().liveTensors, before.liveTensors + 3);
  for (const t of [a, ...list]) t.dispose();
  assert.deepEqual(live(), before);
});

Deno.test("nested scopes move results outwards one level at a time", async () => {
  const before = live();
  let innerTmp: Tensor<any> | null = null;
  let fromInner: Tensor<any> | null = null;
  const outer = scope(() => {
    fromInner = scope(() => {
      innerTmp = tensor([1, 2]).mul(3).realize();
      return innerTmp.add(1).realize();
    });
    assert.equal(innerTmp!.disposed, true);
    assert.equal(fromInner.disposed, false);
    return fromInner.sum();
  });
  assert.equal(fromInner!.disposed, true); // belonged to the outer scope, not returned from it
  assert.equal(await outer.item(), 11);
  outer.dispose();
  assert.deepEqual(live(), before);
});

Deno.test("keep exempts tensors from every enclosing scope", async () => {
  const before = live();
  let kept: Tensor<any> | null = null;
  let dropped: Tensor<any> | null = null;
  scope(() => {
    scope(() => {
      kept = keep(tensor([5, 6]).add(1).realize());
      dropped = tensor([1]).add(1).realize();
    });
  });
  assert.equal(kept!.disposed, false);
  assert.equal(dropped!.disposed, true);
  await assertClose(kept!, [6, 7]);
  const m = keep({ p: tensor([1]), q: [tensor([2])] });
  assert.equal(m.p.disposed, false);
  kept!.dispose();
  m.p.dispose();
  m.q[0].dispose();
  assert.deepEqual(live(), before);
});

Deno.test("a scope that throws still disposes its tensors", () => {
  const before = live();
  let t: Tensor<any> | null = null;
  assert.throws(() =>
    scope(() => {
      t = tensor([1, 2]).exp().realize();
      throw new Error("boom");
    }), /boom/);
  assert.equal(t!.disposed, true);
  assert.deepEqual(live(), before);
});

Deno.test("`using` disposes at the end of the block", async () => {
  const base = tensor([1, 2, 3]);
  const before = live();
  let ref: Tensor<any> | null = null;
  {
    using t = base.add(base).realize();
    ref = t;
    await assertClose(t, [2, 4, 6]);
    assert.equal(live().liveTensors, before.liveTensors + 1);
  }
  assert.equal(ref!.disposed, true);
  assert.deepEqual(live(), before);
  base.dispose();
});

Deno.test("use after dispose throws, saying disposed and naming the op", async () => {
  const t = tensor([[1, 2], [3, 4]]);
  const other = tensor([[1], [1]]);
  t.dispose();
  assert.equal(t.disposed, true);
  t.dispose(); // a second dispose is harmless
  const cases: [string, () => unknown][] = [
    ["add", () => t.add(1)],
    ["mul", () => other.transpose().mul(t)],
    ["exp", () => t.exp()],
    ["sum", () => t.sum()],
    ["max", () => t.max()],
    ["matmul", () => t.matmul(other)],
    ["reshape", () => t.reshape([4])],
    ["permute", () => t.permute([1, 0])],
    ["narrow", () => t.narrow(0, 0, 1)],
    ["gather", () => t.gather(0, tensor([[0, 0]], "i32"))],
    ["concat", () => concat([other, t], 1)],
    ["data", () => t.data()],
    ["detach", () => t.detach()],
  ];
  const problems: string[] = [];
  await scope(async () => {
    for (const [op, fn] of cases) {
      let err: unknown = null;
      try {
        await fn();
      } catch (e) {
        err = e;
      }
      if (!(err instanceof Error)) problems.push(`${op}: nothing thrown`);
      else if (
        !/disposed/.test(err.message) || !err.message.includes(op) || !err.message.includes("[2, 2]")
      ) {
        problems.push(`${op}: "${err.message}"`);
      }
    }
  });
  const s = tensor(1);
  s.dispose();
  await assert.rejects(async () => await s.item(), /(item|data): tensor of shape \[\] was disposed/);
  other.dispose();
  assert.deepEqual(
    problems,
    [],
    `messages should say "disposed", name the op and the shape:\n${problems.join("\n")}`,
  );
});

Deno.test("async scope disposes after the promise settles", async () => {
  const before = live();
  let tmp: Tensor<any> | null = null;
  const out = await scope(async () => {
    tmp = tensor([1, 2]).mul(2).realize();
    const v = await tmp.sum().item();
    assert.equal(tmp.disposed, false);
    return tmp.add(v);
  });
  assert.equal(tmp!.disposed, true);
  await assertClose(out, [8, 10]);
  out.dispose();
  assert.deepEqual(live(), before);
  await assert.rejects(
    scope(async () => {
      tmp = tensor([1]).exp().realize();
      await Promise.resolve();
      throw new Error("async boom");
    }),
    /async boom/,
  );
  assert.equal(tmp!.disposed, true);
  assert.deepEqual(live(), before);
});

Deno.test("views share storage: disposing a view keeps the base alive", async () => {
  const before = live();
  const base = tensor([[1, 2, 3], [4, 5, 6]]);
  const v = base.transpose();
  const bytesWithBoth = live().liveBytes;
  v.dispose();
  assert.equal(live().liveBytes, bytesWithBoth);
  await assertClose(base, [[1, 2, 3], [4, 5, 6]]);
  const n = base.narrow(0, 1, 1);
  base.dispose();
  await assertClose(n, [[4, 5, 6]]); // the view still holds the buffer
  n.dispose();
  assert.deepEqual(live(), before);
});

Deno.test("a 200-step MLP training loop in scope holds memory steady, WebAssembly's too", async () => {
  const before = live();
  const X = keep(randn([128, 4], { seed: 1 })); // hidden 128×16: large enough for the WebAssembly maps
  const Y = keep(scope(() => X.sum(1, true).tanh().realize())); // a learnable target
  const params = keep({
    w1: randn([4, 16], { seed: 2, std: 0.5 }).requiresGrad_(),
    b1: zeros([16]).requiresGrad_(),
    w2: randn([16, 1], { seed: 3, std: 0.5 }).requiresGrad_(),
    b2: zeros([1]).requiresGrad_(),
  });
  const lr = 0.1;
  let first: Tensor<[]> | null = null;
  let at10 = live(), at200 = live(), heap10 = 0;
  // Synchronous steps (no awaits), so no finalizer can run between the two measurements.
  for (let i = 1; i <= 200; i++) {
    const loss = scope(() => {
      const h = X.matmul(params.w1).add(params.b1).relu();
      const pred = h.matmul(params.w2).add(params.b2);
      const loss = pred.sub(Y).pow(2).mean();
      loss.backward();
      for (const p of Object.values(params) as Tensor<any>[]) {
        p.assign(p.sub(p.grad!.mul(lr)));
        p.zeroGrad();
      }
      return loss.detach();
    });
    if (i === 1) first = loss;
    if (i === 10) [at10, heap10] = [live(), wasmMemory().buffer.byteLength];
    if (i === 200) at200 = live();
    if (i > 1 && i < 200) loss.dispose();
    else if (i === 200) {
      const [l0, l1] = [await first!.item(), await loss.item()];
      assert.ok(l1 < l0 * 0.5, `loss did not fall: ${l0} → ${l1}`);
      first!.dispose();
      loss.dispose();
    }
  }
  assert.equal(at200.liveBytes, at10.liveBytes, `liveBytes grew: ${at10.liveBytes} → ${at200.liveBytes}`);
  assert.equal(
    at200.liveTensors,
    at10.liveTensors,
    `liveTensors grew: ${at10.liveTensors} → ${at200.liveTensors}`,
  );
  assert.equal(at200.liveBuffers, at10.liveBuffers);
  assert.equal(wasmMemory().buffer.byteLength, heap10, "the WebAssembly heap grew");
  assert.ok(Object.values(params).every((p) => p.grad === null && !p.disposed));
  assert.deepEqual(params.b2.shape, [1]);
  for (const t of [X, Y, ...Object.values(params)]) t.dispose();
  assert.deepEqual(live(), before);
});
