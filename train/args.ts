/**
 * train.ts's command line: one table gives each flag's type, default and help line; {@link parseFlags}
 * checks every value before any work starts, so a typo fails in a second, not after SFT.
 * @module
 */
import { parseArgs } from "node:util";
import { LOSS_TYPES, type LossType } from "../mod.ts";

const OPTIONS = {
  data: {
    type: "string",
    default: "",
    help: "align on your own TRL-format preference JSONL (byte tokenizer)",
  },
  init: { type: "string", default: "", help: "start from an HF-GPT-2-named .safetensors checkpoint" },
  beta: { type: "string", default: "0.1", help: "DPO β: strength of the KL anchor to the reference" },
  loss: { type: "string", default: "sigmoid", help: `loss type: ${LOSS_TYPES.join(", ")}` },
  "label-smoothing": { type: "string", default: "0", help: "label noise ε for conservative/robust DPO" },
  lr: { type: "string", default: "0.001", help: "DPO peak learning rate" },
  steps: { type: "string", default: "", help: "DPO steps (default 120, quick 40)" },
  "batch-size": { type: "string", default: "32", help: "preference pairs per DPO step" },
  "precompute-ref": { type: "boolean", default: false, help: "compute reference log-probs once up front" },
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
  /** `--init`: a checkpoint to start from ("" = none). */
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
  /** `--compare-rlhf`. */
  compareRlhf: boolean;
}

/** The `--help` text. */
export function usage(): string {
  const rows = Object.entries(OPTIONS).map(([k, o]) =>
    `  --${(k + (o.type === "string" ? " X" : "")).padEnd(20)} ${o.help}${
      o.default !== "" && o.default !== false ? ` (default ${o.default})` : ""
    }`
  );
  return `usage: deno run -A train.ts [options]\n\n${rows.join("\n")}\n`;
}

/** Parses and checks `argv`; null when `--help` is given. Throws a message naming the bad flag. */
export function parseFlags(argv: string[]): Flags | null {
  let options: Options;
  try {
    const { values } = parseArgs({
      args: argv,
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    });
    options = {
      ...Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, o.default])),
      ...values,
    } as Options;
  } catch (e) {
    throw new Error(`train.ts: ${(e as Error).message.split("\n")[0]} (see --help)`);
  }
  if (options.help) return null;
  const num = (k: keyof Options, ok: (x: number) => boolean = Number.isFinite): number => {
    const x = Number(options[k]);
    if (options[k] === "" || !ok(x)) {
      throw new Error(`train.ts: --${k} must be a valid number, got "${options[k]}"`);
    }
    return x;
  };
  const count = (x: number) => Number.isInteger(x) && x > 0;
  const beta = num("beta", (x) => x > 0);
  const loss = options.loss as LossType;
  if (!LOSS_TYPES.includes(loss)) {
    throw new Error(`train.ts: --loss must be one of ${LOSS_TYPES.join(", ")}, got "${loss}"`);
  }
  const flags: Flags = {
    options,
    data: options.data,
    init: options.init,
    beta,
    betas: options["sweep-beta"] ? options["sweep-beta"].split(",").map(Number) : [beta],
    loss,
    labelSmoothing: num("label-smoothing", (x) => x >= 0 && x < 0.5),
    lr: num("lr", (x) => x > 0),
    steps: options.steps ? num("steps", count) : null,
    batchSize: num("batch-size", count),
    precomputeRef: options["precompute-ref"],
    backend: options.backend as Flags["backend"],
    seed: num("seed"),
    out: options.out || `runs/${new Date().toISOString().replace(/[:.]/g, "-")}`,
    resume: options.resume,
    quick: options.quick,
    compareRlhf: options["compare-rlhf"],
  };
  if (flags.betas.some((b) => !(b > 0))) {
    throw new Error(`train.ts: --sweep-beta must list positive numbers, got "${options["sweep-beta"]}"`);
  }
  if (!["cpu", "webgpu", "auto"].includes(flags.backend)) {
    throw new Error(`train.ts: --backend must be cpu, webgpu or auto, got "${flags.backend}"`);
  }
  if (flags.resume && !options.out) throw new Error("train.ts: --resume needs --out DIR (the run to resume)");
  return flags;
}
