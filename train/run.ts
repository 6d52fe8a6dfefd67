/**
 * A run's output folder and its metric log: every logged step goes to metrics.jsonl and, per
 * "stage metric" name, into the curves that the report draws.
 * @module
 */

/** The output folder of one train.ts run and what it has logged. */
export class Run {
  /** One JSON line per logged step, for metrics.jsonl. */
  readonly lines: string[] = [];
  /** (step, value) points per "stage metric", e.g. "dpo loss" or "dpo-eval eval_loss". */
  readonly curves: Record<string, [number, number][]> = {};

  /** A run writing into `dir` (created if missing). */
  constructor(readonly dir: string) {
    Deno.mkdirSync(dir, { recursive: true });
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

  /** Records one step's metrics `m` (which include `step`) under `stage`. */
  log(stage: string, m: Record<string, number>): void {
    this.lines.push(JSON.stringify({ stage, ...m }));
    for (const [k, v] of Object.entries(m)) {
      if (k !== "step") (this.curves[`${stage} ${k}`] ??= []).push([m.step, v]);
    }
  }

  /** Writes metrics.jsonl. */
  async writeMetrics(): Promise<void> {
    await Deno.writeTextFile(this.path("metrics.jsonl"), this.lines.join("\n") + "\n");
  }
}
