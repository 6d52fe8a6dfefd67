/**
 * Does a pretrained folder written here load in PyTorch? Runs the library's forward on a few tokens,
 * then bench/pytorch_load.py (Debian's python3-torch at /usr/bin/python3), which loads the folder as
 * Hugging Face's GPT2LMHeadModel reads it and compares logits. Not part of CI (needs PyTorch).
 *
 *   deno run -A bench/pytorch_load.ts DIR     (e.g. runs/<run>/dpo, written by train.ts --init … --data …)
 */
import { fromArray, fromPretrained } from "../mod.ts";

const dir = Deno.args[0];
if (!dir) throw new Error("usage: deno run -A bench/pytorch_load.ts DIR");
const { model } = await fromPretrained(dir);
const tokens = Array.from(
  { length: Math.min(16, model.config.blockSize) },
  (_, i) => (i * 31 + 7) % model.config.vocabSize,
);
const logits = await model.forward(fromArray(tokens, [1, tokens.length], "i32")).toArray() as number[][][];
const expected = await Deno.makeTempFile({ suffix: ".json" });
await Deno.writeTextFile(expected, JSON.stringify({ tokens, logits: logits[0] }));
const out = await new Deno.Command("/usr/bin/python3", {
  args: [new URL("./pytorch_load.py", import.meta.url).pathname, dir, expected],
}).output();
await Deno.remove(expected);
console.log(new TextDecoder().decode(out.stdout).trim() + new TextDecoder().decode(out.stderr).trim());
Deno.exit(out.code);
