/**
 * TENSOR_DEBUG on every backend: a tiny script runs in a subprocess with TENSOR_DEBUG=kernels (each
 * newly compiled kernel's source is printed: JavaScript on the CPU, WGSL on WebGPU) and with
 * TENSOR_DEBUG=stats (one line of counts at each flush).
 *
 * Without a WebGPU adapter the WebGPU cases are skipped with a printed reason, unless
 * REQUIRE_WEBGPU=1.
 */
import assert from "node:assert/strict";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const required = Deno.env.get("REQUIRE_WEBGPU") === "1";
if (!adapter) console.log("debug tests on webgpu skipped: no WebGPU adapter (requestAdapter() gave null)");
Deno.test({
  name: "debug: adapter available when REQUIRE_WEBGPU=1",
  ignore: !required,
  fn: () => assert.ok(adapter, "REQUIRE_WEBGPU=1 but navigator.gpu.requestAdapter() gave null"),
});

// One fused elementwise chain into a reduction, read back, then a flush (a training step's end).
const SCRIPT = `
import { flush, fromArray, setBackend } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
await setBackend(Deno.args[0]);
const x = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
const y = x.mul(2).add(1).tanh();
console.log("sum", Array.from(await y.mul(y).sum(1).data()).join(" "));
await flush();
`;

/** Run the script on `backend` with TENSOR_DEBUG=`debug`; its stdout (and exit status checked). */
async function run(backend: string, debug: string): Promise<string> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, SCRIPT);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", file, backend],
      env: { TENSOR_DEBUG: debug, XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
    assert.match(text, /^sum 2\.98\d* (3|2\.99\d*)$/m); // Σ tanh(2x + 1)² per row: the script ran
    return text;
  } finally {
    await Deno.remove(file);
  }
}

/** Code that marks a compiled kernel's source on each backend. */
const SOURCE = {
  cpu:
    /^\/\/ ---- cpu kernel: reduce-sum [^\n]*\n[^]*for \(let i0 = 0; i0 < n0; i0\+\+\) \{[^]*acc\[o1\] \+= /m,
  webgpu: /^\/\/ ---- webgpu kernel: reduce-sum [^\n]*\n[^]*@compute @workgroup_size\(\d+\)\nfn main\(/m,
};

for (const backend of ["cpu", "webgpu"] as const) {
  const opts = { ignore: backend === "webgpu" && !adapter, sanitizeOps: false, sanitizeResources: false };

  Deno.test({
    name: `debug: TENSOR_DEBUG=kernels prints each new ${backend} kernel's source`,
    ...opts,
    fn: async () => {
      const text = await run(backend, "kernels");
      assert.match(text, SOURCE[backend]);
      assert.doesNotMatch(text, /flush:/); // stats only when asked
    },
  });

  Deno.test({
    name: `debug: TENSOR_DEBUG=stats prints counts at each ${backend} flush`,
    ...opts,
    fn: async () => {
      const text = await run(backend, "stats");
      const m = text.match(
        new RegExp(
          `^\\[${backend}\\] flush: (\\d+) kernels compiled, (\\d+) launches, (\\d+) submits, ` +
            `(\\d+) bytes allocated, (\\d+) bytes pooled, (\\d+) µs$`,
          "m",
        ),
      );
      assert.ok(m, `no stats line in:\n${text}`);
      const [compiled, launches, submits, allocated] = m.slice(1, 5).map(Number);
      assert.equal(compiled, 1, "one fused kernel: the chain into the sum");
      assert.equal(launches, 1);
      assert.equal(submits, backend === "cpu" ? 0 : 1, "webgpu: the kernel and the read's copy, one submit");
      assert.ok(allocated >= 6 * 4, `allocated ${allocated}: at least the 6-float input`);
      assert.doesNotMatch(text, /---- \w+ kernel/); // sources only when asked
    },
  });
}
