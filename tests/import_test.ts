// The library imports and computes with no permissions at all (a plain `deno run script.ts`).
import assert from "node:assert/strict";

const modUrl = new URL("../mod.ts", import.meta.url).href;

async function runScript(body: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tensor_import_" });
  const path = `${dir}/main.ts`;
  try {
    await Deno.writeTextFile(path, body);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", path],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("mod.ts imports and computes with no permission flags", async () => {
  const r = await runScript(`
import { tensor, getBackend, grad } from ${JSON.stringify(modUrl)};
const a = tensor([[1, 2], [3, 4]]);
const y = a.matmul(tensor([[5, 6], [7, 8]]));
console.log(JSON.stringify(await y.toArray()));
const g = grad(({ w }) => w.mul(w).sum())({ w: tensor([1, -2]) });
console.log(JSON.stringify(Array.from(await g.w.data())));
console.log(getBackend().name);
`);
  assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
  assert.deepEqual(r.stdout.trim().split("\n"), ["[[19,22],[43,50]]", "[2,-4]", "cpu"]);
  assert.doesNotMatch(r.stderr, /Permission|NotCapable|PermissionDenied/);
});

Deno.test("setBackend() with no argument works without --allow-env (defaults to cpu)", async () => {
  const r = await runScript(`
import { setBackend, tensor } from ${JSON.stringify(modUrl)};
const be = await setBackend();
console.log(be.name, await tensor([1, 2]).add(1).sum().item());
`);
  assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
  assert.equal(r.stdout.trim(), "cpu 5");
});
