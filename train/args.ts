/**
 * train.ts's command line: one table gives each flag's type, default and help line; {@link parseFlags}
 * checks every value before any work starts, so a typo fails in a second, not after SFT.
 * @module
 */
import { parseArgs } from "node:util";
import { LOSS_TYPES, type LossType } from "../mod.ts";

/** The loss types whose formula has the label-smoothing ε (dpo/loss.ts); the others refuse the flag. */
const SMOOTHED: readonly LossType[] = ["sigmoid", "robust", "simpo"];

const OPTIONS = {
  data: {
    type: "string",
    default: "",
    help: "align on your own TRL-format preference JSONL (--init's tokenizer, else bytes); writes dpo/",
  },
  init: {
    type: "string",
    default: "",
    help: "start from a pretrained folder (with --data) or an HF-GPT-2-named .safetensors file",
  },
  beta: { type: "string", default: "0.1", help: "DPO β: strength of the KL anchor to the reference" },
  loss: { type: "string", default: "sigmoid", help: `loss type: ${LOSS_TYPES.join(", ")}` },
  "label-smoothing": {
    type: "string",
    default: "0",
    help: `label noise ε for conservative/robust DPO (--loss ${SMOOTHED.join(", ")} only)`,
  },
  lr: { type: "string", default: "0.001", help: "DPO peak learning rate" },
  steps: { type: "string", default: "", help: "DPO steps (default 120, quick 40)" },
  "batch-size": { type: "string", default: "32", help: "preference pairs per DPO step" },
  "precompute-ref": { type: "boolean", default: false, help: "compute reference log-probs once up front" },
  "no-compile": { type: "boolean", default: false, help: "run SFT and DPO steps eagerly, not replayed" },
  backend: {
    type: "string",
    default: "auto",
    help: "cpu | webgpu | auto (WebGPU on a hardware GPU, else cpu)",
  },
  seed: { type: "string", default: "0", help: "seed for data, init, sampling" },
  out: { type: "string", default: "", help: "output folder (default runs/<timestamp>)" },
  resume: {
    type: "boolean",
    default: false,
    help: "reuse finished stages and the last DPO checkpoint in --out",
  },
  quick: { type: "boolean", default: false, help: "a small configuration that finishes in about a minute" },
  tiny: { type: "boolean", default: false, help: "" }, // hidden: a seconds-long run for tests
  "sweep-beta": {
    type: "string",
    default: "",
    help: "comma-separated βs: DPO + eval per β, draws frontier.svg",
  },
  "compare-rlhf": {
    type: "boolean",
    default: false,
    help: "DPO against RLHF (reward model + PPO, RLOO): frontier.svg, compare.json, costs",
  },
  help: { type: "boolean", default: false, help: "show this help" },
} as const;

/** The flags as typed on the command line, defaults filled in (recorded in summary.json). */
export type Options = {
  [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K]["type"] extends "string" ? string : boolean;
};

/** The flags, checked and converted. */
export interface Flags {
  /** The flags as typed. */
  options: Options;
  /** `--data`: a TRL-format preference JSONL file ("" = the built-in sentiment task). */
  data: string;
  /** `--init`: a pretrained folder (`--data` only) or a checkpoint file to start from ("" = none). */
  init: string;
  /** `--beta`, > 0. */
  beta: number;
  /** The βs the built-in task trains with: `--sweep-beta`'s list, else `--beta` alone. */
  betas: number[];
  /** `--loss`. */
  loss: LossType;
  /** `--label-smoothing`, in [0, 0.5). */
  labelSmoothing: number;
  /** `--lr`, > 0. */
  lr: number;
  /** `--steps`, a positive integer; null = the task's default. */
  steps: number | null;
  /** `--batch-size`, a positive integer. */
  batchSize: number;
  /** `--precompute-ref`. */
  precomputeRef: boolean;
  /** Not `--no-compile`: SFT and DPO steps are recorded once per shape and replayed. */
  compile: boolean;
  /** `--backend`. */
  backend: "cpu" | "webgpu" | "auto";
  /** `--seed`. */
  seed: number;
  /** The output folder: `--out`, else runs/<timestamp>. */
  out: string;
  /** `--resume`. */
  resume: boolean;
  /** `--quick`. */
  quick: boolean;
  /** `--tiny` (hidden): a configuration of seconds, for tests. */
  tiny: boolean;
  /** `--compare-rlhf`. */
  compareRlhf: boolean;
}

/** The `--help` text. */
export function usage(): string {
  const rows = Object.entries(OPTIONS).filter(([, o]) => o.help).map(([k, o]) =>
    `  --${(k + (o.type === "string" ? " X" : "")).padEnd(20)} ${o.help}${
      o.default !== "" && o.default !== false ? ` (default ${o.default})` : ""
    }`
  );
  return `usage: deno run -A train.ts [options]\n\n${rows.join("\n")}\n`;
}

/** Ranges of the numeric flags: [description for messages, test, integer only]. */
const RANGES: Record<string, [string, (x: number) => boolean, boolean?]> = {
  beta: ["> 0 and ≤ 100", (x) => x > 0 && x <= 100],
  "sweep-beta": ["> 0 and ≤ 100 (comma-separated)", (x) => x > 0 && x <= 100],
  "label-smoothing": ["≥ 0 and < 0.5", (x) => x >= 0 && x < 0.5],
  lr: ["> 0 and ≤ 1", (x) => x > 0 && x <= 1],
  steps: ["an integer from 1 to 1000000", (x) => x >= 1 && x <= 1e6, true],
  "batch-size": ["an integer from 1 to 65536", (x) => x >= 1 && x <= 65536, true],
  seed: ["an integer from 0 to 4294967295", (x) => x >= 0 && x <= 2 ** 32 - 1, true],
};
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Flag `k`'s value as a number in its range; the message names the flag, the range and the value. */
function num(k: keyof typeof RANGES, raw: string): number {
  const [range, ok, int] = RANGES[k], x = Number(raw);
  if (!DECIMAL.test(raw) || !Number.isFinite(x) || !ok(x) || (int && !Number.isInteger(x))) {
    throw new Error(`train.ts: --${k} must be ${range}, got ${DECIMAL.test(raw) ? raw : `"${raw}"`}`);
  }
  return x;
}

/** The built-in task's finished SFT stage (and its previous copy). */
const SFT_DONE = ["sft.safetensors", "sft.safetensors.prev"];

/** Files whose presence makes a folder a run that --resume can continue. */
const RESUMABLE = /^(metrics\.jsonl|prefs\.jsonl|.*\.safetensors(\.prev)?)$/;

/** Parses and checks `argv`; null when `--help` is given. Throws a message naming the bad flag. */
export function parseFlags(argv: string[]): Flags | null {
  let options: Options;
  let given: Set<string>;
  // "--beta -1": a negative number after a flag that takes a value is that value, not a flag.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1] ?? "";
    if (/^--[^=]+$/.test(a) && /^-[\d.]/.test(next)) args.push(`${a}=${argv[++i]}`);
    else args.push(a);
  }
  try {
    const { values } = parseArgs({
      args,
      // Without defaults, so that `values` holds only the flags given (checked against the mode below).
      options: Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, { type: o.type }])),
      strict: true,
      allowPositionals: false,
    });
    given = new Set(Object.keys(values));
    options = {
      ...Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, o.default])),
      ...values,
    } as Options;
  } catch (e) {
    throw new Error(`train.ts: ${(e as Error).message.split("\n")[0]} (see --help)`);
  }
  if (options.help) return null;
  const beta = num("beta", options.beta);
  const loss = options.loss as LossType;
  if (!LOSS_TYPES.includes(loss)) {
    throw new Error(`train.ts: --loss must be one of ${LOSS_TYPES.join(", ")}, got "${loss}"`);
  }
  const flags: Flags = {
    options,
    data: options.data,
    init: options.init,
    beta,
    betas: options["sweep-beta"] ? options["sweep-beta"].split(",").map((b) => num("sweep-beta", b)) : [beta],
    loss,
    labelSmoothing: num("label-smoothing", options["label-smoothing"]),
    lr: num("lr", options.lr),
    steps: options.steps ? num("steps", options.steps) : null,
    batchSize: num("batch-size", options["batch-size"]),
    precomputeRef: options["precompute-ref"],
    compile: !options["no-compile"],
    backend: options.backend as Flags["backend"],
    seed: num("seed", options.seed),
    out: options.out || `runs/${new Date().toISOString().replace(/[:.]/g, "-")}`,
    resume: options.resume,
    quick: options.quick,
    tiny: options.tiny,
    compareRlhf: options["compare-rlhf"],
  };
  if (!["cpu", "webgpu", "auto"].includes(flags.backend)) {
    throw new Error(`train.ts: --backend must be cpu, webgpu or auto, got "${flags.backend}"`);
  }
  // Flags that the chosen mode would silently ignore are refused.
  const refuse = (flag: string, why: string) => {
    if (given.has(flag)) throw new Error(`train.ts: --${flag} is ignored ${why}; leave it out`);
  };
  if (given.has("sweep-beta")) refuse("beta", "with --sweep-beta (it lists the βs)");
  if (flags.compareRlhf) refuse("beta", "by --compare-rlhf (give βs with --sweep-beta)");
  if (flags.data && !flags.compareRlhf) {
    refuse("quick", "with --data (the model comes from --init or is the default byte-level GPT)");
    refuse("sweep-beta", "with --data (it trains one β: use --beta)");
  }
  if (flags.init && !flags.data && isFolder(flags.init)) {
    throw new Error(
      `train.ts: --init ${flags.init} is a pretrained folder, which needs --data FILE ` +
        "(the built-in task has its own word tokenizer; --init takes a .safetensors file there)",
    );
  }
  if (loss === "simpo") refuse("precompute-ref", "with --loss simpo (SimPO has no reference)");
  if (!SMOOTHED.includes(loss)) {
    refuse("label-smoothing", `with --loss ${loss} (only ${SMOOTHED.join(", ")} use it)`);
  }
  if (flags.resume && !options.out) throw new Error("train.ts: --resume needs --out DIR (the run to resume)");
  if (flags.resume && !resumable(options.out)) {
    throw new Error(
      `train.ts: --resume: ${options.out} holds no run to resume (no metrics.jsonl or checkpoint)`,
    );
  }
  // The built-in task's --init only starts SFT: once the folder holds the SFT model, it would be unused.
  if (flags.resume && !flags.data && flags.init && SFT_DONE.some((f) => isFile(`${options.out}/${f}`))) {
    refuse(
      "init",
      `with --resume here: ${options.out} already holds the SFT model it would start (sft.safetensors)`,
    );
  }
  return flags;
}

/** Whether `path` is a folder (for `--init`: a pretrained model rather than a checkpoint file). */
export function isFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function resumable(dir: string): boolean {
  try {
    return [...Deno.readDirSync(dir)].some((e) => e.isFile && RESUMABLE.test(e.name));
  } catch {
    return false;
  }
}
