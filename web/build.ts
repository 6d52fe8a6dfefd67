/**
 * `deno task bundle`: the library (mod.ts) and the two pages' modules as browser ES modules in
 * dist/: tensorlab.js, ops.js (web/ops.ts) and demo.js (web/demo.ts).
 * @module
 */

/** Entry points and the files they become under dist/. */
export const ENTRIES: Record<string, string> = {
  "mod.ts": "tensorlab.js",
  "web/ops.ts": "ops.js",
  "web/demo.ts": "demo.js",
};

/** The repository root (this file lives in web/). */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/** Bundles every entry with `deno bundle --platform browser`; throws with its output on failure. */
export async function bundle(outDir = `${ROOT}dist`): Promise<void> {
  await Promise.all(
    Object.entries(ENTRIES).map(async ([entry, file]) => {
      const { success, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--quiet", "--platform", "browser", "-o", `${outDir}/${file}`, `${ROOT}${entry}`],
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!success) throw new Error(`deno bundle ${entry} failed:\n${new TextDecoder().decode(stderr)}`);
    }),
  );
}

if (import.meta.main) {
  await bundle();
  console.log(`dist/: ${Object.values(ENTRIES).join(", ")}`);
}
