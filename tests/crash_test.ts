// Crash safety of train.ts: SIGKILL mid-SFT, mid-DPO and during a checkpoint save, then --resume, ends
// with the same weights, summary and metric history as a run that was never interrupted (CPU backend).
import assert from "node:assert/strict";

const script = new URL("../train.ts", import.meta.url).pathname;
const ARGS = ["run", "-A", script, "--tiny", "--backend", "cpu"];

/** Runs train.ts to the end; returns its output. */
async function finish(dir: string, ...extra: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...ARGS, "--out", dir, ...extra],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  return text;
}

/** Starts train.ts and SIGKILLs it once its output has shown `marker` `times` times. */
async function killAt(dir: string, marker: string, times = 1, env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...ARGS, "--out", dir],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let seen = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    seen += chunk;
    if (seen.split(marker).length > times) {
      child.kill("SIGKILL");
      break;
    }
  }
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL", `killed at "${marker}":\n${seen}`);
}

/** What must match an uninterrupted run: the final weights, the summary and the metric history. */
async function outcome(dir: string) {
  const summary = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
  delete summary.seconds;
  delete summary.options.resume;
  delete summary.options.out;
  const metrics = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => {
    const m = JSON.parse(l);
    delete m.tokens_per_s; // a timing
    return m;
  });
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes(".tmp-"));
  return { weights: await Deno.readFile(`${dir}/dpo.safetensors`), summary, metrics, files };
}

Deno.test("train.ts: killed at any point and resumed, a run ends as an uninterrupted one", async () => {
  const root = await Deno.makeTempDir();
  await finish(`${root}/whole`);
  const want = await outcome(`${root}/whole`);
  const cases: [string, string, number, Record<string, string>][] = [
    ["mid-SFT", "SFT 6/12", 1, {}],
    ["mid-DPO", "DPO 5/12", 1, {}],
    // The second DPO checkpoint's temp file is written, the rename not yet done.
    ["during a save", "saving dpo.safetensors", 2, { TRAIN_SAVE_DELAY_MS: "1500" }],
  ];
  for (const [name, marker, times, env] of cases) {
    const dir = `${root}/${name.replaceAll(" ", "-")}`;
    await killAt(dir, marker, times, env);
    const log = await finish(dir, "--resume");
    if (name === "during a save") {
      assert.match(log, /removed dpo\.safetensors\.tmp-\w+, left by an interrupted save/);
    }
    assert.deepEqual(await outcome(dir), want, name);
  }
  // A damaged newest checkpoint: --resume falls back to the previous one, with a notice.
  const dir = `${root}/mid-DPO`;
  const bytes = await Deno.readFile(`${dir}/dpo.safetensors`);
  await Deno.writeFile(`${dir}/dpo.safetensors`, bytes.subarray(0, 8192));
  const log = await finish(dir, "--resume");
  assert.match(log, /dpo\.safetensors is damaged .*; resuming from dpo\.safetensors\.prev/);
  assert.deepEqual(await outcome(dir), want, "damaged newest checkpoint");
  await Deno.remove(root, { recursive: true });
});
