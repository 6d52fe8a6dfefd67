// The README's TypeScript examples type-check and run as written (with ./mod.ts pointed at this checkout).
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).filter((b) =>
  b.includes('"./mod.ts"')
);

Deno.test("README has runnable examples", () => assert.ok(blocks.length >= 2));

/** A temp file holding example `code` with ./mod.ts pointed at this checkout. */
async function exampleFile(code: string): Promise<string> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code.replaceAll('"./mod.ts"', JSON.stringify(new URL("mod.ts", root).href)));
  return file;
}

// The examples show compile-time shapes, so they must type-check (one `deno check` for all of them).
Deno.test("README examples type-check", async () => {
  const files = await Promise.all(blocks.map(exampleFile));
  const out = await new Deno.Command(Deno.execPath(), { args: ["check", ...files], stderr: "piped" })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  await Promise.all(files.map((f) => Deno.remove(f)));
});

blocks.forEach((code, i) => {
  Deno.test(`README example ${i + 1} runs`, async () => {
    const file = await exampleFile(code);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /\d/); // it printed numbers
    await Deno.remove(file);
  });
});
