/**
 * A run's output folder, crash-safe: every file is written atomically (temp file, then rename), the
 * metric log is appended a line at a time and read back ignoring a torn last line, checkpoints keep
 * the previous one (`<name>.prev`) to fall back on, and temp files left by a killed save are removed
 * when a run starts. Per "stage metric" name, the logged steps also make the curves the report draws.
 * @module
 */
import {
  decodeSafetensors,
  loadSafetensors,
  saveFileAtomic,
  saveSafetensors,
  type Shape,
  type Tensor,
} from "../mod.ts";

/** One logged step: its stage, its step number and its metrics. */
export type LogLine = { stage: string; step: number } & Record<string, number | string>;

/** The output folder of one train.ts run and what it has logged. */
export class Run {
  /** Every logged step, in order (on --resume, starting with those of the earlier run). */
  lines: LogLine[] = [];

  /** A run writing into `dir` (created if missing); `resume` continues the log already there. */
  constructor(readonly dir: string, resume = false) {
    Deno.mkdirSync(dir, { recursive: true });
    for (const e of Deno.readDirSync(dir)) {
      // Files, and folders that an interrupted savePretrained (dpo/) left.
      if ((e.isFile || e.isDirectory) && /\.tmp-[0-9a-f]+$/.test(e.name)) {
        Deno.removeSync(this.path(e.name), { recursive: true });
        console.warn(`removed ${e.name}, left by an interrupted save`);
      }
    }
    if (resume && this.has("metrics.jsonl")) this.lines = readLog(this.path("metrics.jsonl"));
    this.#rewrite();
  }

  /** The path of `name` inside the run's folder. */
  path(name: string): string {
    return `${this.dir}/${name}`;
  }

  /** Whether the run's folder holds a file `name` (for --resume). */
  has(name: string): boolean {
    try {
      return Deno.statSync(this.path(name)).isFile;
    } catch {
      return false;
    }
  }

  /** (step, value) points per "stage metric", e.g. "dpo loss" or "dpo-eval eval_loss". */
  get curves(): Record<string, [number, number][]> {
    const out: Record<string, [number, number][]> = {};
    for (const { stage, ...m } of this.lines) {
      for (const [k, v] of Object.entries(m)) {
        if (k !== "step" && typeof v === "number") (out[`${stage} ${k}`] ??= []).push([m.step, v]);
      }
    }
    return out;
  }

  /** Records one step's metrics `m` (which include `step`) under `stage`, appending it to metrics.jsonl. */
  log(stage: string, m: Record<string, number>): void {
    const line = { stage, ...m } as LogLine;
    this.lines.push(line);
    Deno.writeTextFileSync(this.path("metrics.jsonl"), JSON.stringify(line) + "\n", { append: true });
  }

  /** Forgets what `stages` logged from step `from` on (a stage about to redo those steps). */
  rewind(stages: string[], from: number): void {
    this.lines = this.lines.filter((l) => !(stages.includes(l.stage) && l.step >= from));
    this.#rewrite();
  }

  /** The lines logged under `stage`. */
  logged(stage: string): LogLine[] {
    return this.lines.filter((l) => l.stage === stage);
  }

  /** metrics.jsonl as the log stands (the log is kept up to date line by line; this is for callers
   * that wrote it as a whole). */
  writeMetrics(): Promise<void> {
    this.#rewrite();
    return Promise.resolve();
  }

  /** Writes the text file `name` atomically. */
  async writeText(name: string, text: string): Promise<void> {
    await saveFileAtomic(this.path(name), new TextEncoder().encode(text));
  }

  /**
   * Saves a checkpoint atomically, keeping the one it replaces as `<name>.prev`. `TRAIN_SAVE_DELAY_MS`
   * (for tests/crash_test.ts) pauses between writing the temp file and renaming it into place.
   */
  async saveCheckpoint(
    name: string,
    tensors: Record<string, Tensor<Shape>>,
    metadata: Record<string, string>,
  ): Promise<void> {
    const bytes = await saveSafetensors(tensors, metadata), path = this.path(name);
    const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeFile(tmp, bytes);
    const delay = Number(Deno.env.get("TRAIN_SAVE_DELAY_MS") ?? 0);
    if (delay > 0) {
      console.log(`saving ${name}`);
      await new Promise((r) => setTimeout(r, delay));
    }
    if (this.has(name)) await Deno.rename(path, `${path}.prev`);
    await Deno.rename(tmp, path);
  }

  /**
   * The checkpoint `name`, or, when it is missing or damaged, the previous one (with a notice); null
   * when there is neither.
   */
  async loadCheckpoint(
    name: string,
  ): Promise<{ tensors: Record<string, Tensor<Shape>>; metadata: Record<string, string> } | null> {
    let why = "";
    for (const file of [name, `${name}.prev`]) {
      if (!this.has(file)) {
        why ||= `${name} is missing`;
        continue;
      }
      try {
        const bytes = await Deno.readFile(this.path(file));
        decodeSafetensors(bytes, file); // a damaged file fails here, before any tensor is made
        if (why) console.warn(`${why}; resuming from ${file}`);
        return loadSafetensors(bytes, this.path(file));
      } catch (e) {
        why = `${file} is damaged (${(e as Error).message})`;
      }
    }
    if (this.has(`${name}.prev`) || this.has(name)) {
      throw new Error(`train.ts: ${why}, and no usable previous one`);
    }
    return null;
  }

  #rewrite(): void {
    const text = this.lines.map((l) => JSON.stringify(l) + "\n").join("");
    const tmp = this.path(`metrics.jsonl.tmp-${crypto.randomUUID().slice(0, 8)}`);
    Deno.writeTextFileSync(tmp, text);
    Deno.renameSync(tmp, this.path("metrics.jsonl"));
  }
}

/** Reads a metric log; a torn last line (a write cut short) is dropped with a notice. */
export function readLog(path: string): LogLine[] {
  const rows = Deno.readTextFileSync(path).split("\n");
  const torn = rows.pop(); // "" when the file ends with a whole line
  if (torn) console.warn(`${path}: ignoring a torn last line (${torn.length} bytes)`);
  return rows.map((r, i) => {
    try {
      return JSON.parse(r) as LogLine;
    } catch {
      throw new Error(`${path}:${i + 1}: not a JSON line; the metric log is damaged`);
    }
  });
}
