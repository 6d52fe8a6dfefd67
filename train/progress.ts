/**
 * A small progress reporter: a redrawn bar on a terminal, sparse plain lines in logs and CI.
 * @module
 */

/** Options for {@link progress}; the defaults suit interactive use. */
export interface ProgressOptions {
  /** Redraw one line in place (default: whether stdout is a terminal). */
  tty?: boolean;
  /** Where output goes (default: stdout). */
  write?: (s: string) => void;
  /** Clock in milliseconds (default `performance.now`), injectable for tests. */
  now?: () => number;
}

/** A running progress report. */
export interface Progress {
  /** Records `n` (default 1) more items done; `info` (e.g. "loss 0.53") is shown after the counts. */
  tick(n?: number, info?: string): void;
  /** Prints the final line with the elapsed time; later calls do nothing. */
  done(info?: string): void;
}

function stdoutIsTty(): boolean {
  try {
    return Deno.stdout.isTerminal();
  } catch {
    return false; // not Deno, or stdout closed
  }
}

function writeStdout(s: string): void {
  const bytes = new TextEncoder().encode(s);
  for (let i = 0; i < bytes.length;) i += Deno.stdout.writeSync(bytes.subarray(i));
}

/** Formats seconds as "42s", "3:07" or "1:02:03". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, "0");
  return s < 60 ? `${s}s` : h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * Reports progress through `total` items. On a TTY it redraws a bar with `n/total`, rate and ETA (at most
 * every 100 ms); otherwise it prints a plain line each time another 10% is passed, and one at `done`.
 */
export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const tty = opts.tty ?? stdoutIsTty(), write = opts.write ?? writeStdout;
  const now = opts.now ?? (() => performance.now());
  const start = now();
  let count = 0, lastDraw = -Infinity, decile = 0, finished = false;
  const line = (info?: string) => {
    const secs = (now() - start) / 1000,
      rate = secs > 0 ? count / secs : 0,
      frac = total > 0 ? count / total : 1;
    const parts = [label];
    if (tty) parts.push(`[${"█".repeat(Math.round(20 * Math.min(1, frac))).padEnd(20, "░")}]`);
    parts.push(`${count}/${total}`);
    if (!tty) parts.push(`(${Math.floor(100 * frac)}%)`);
    if (rate > 0) parts.push(`${rate >= 10 ? rate.toFixed(0) : rate.toPrecision(2)} it/s`);
    if (finished) parts.push(`in ${formatDuration(secs)}`);
    else if (rate > 0 && count < total) parts.push(`ETA ${formatDuration((total - count) / rate)}`);
    if (info) parts.push(info);
    return parts.join(" ");
  };
  return {
    tick(n = 1, info) {
      if (finished) return;
      count += n;
      if (tty) {
        if (now() - lastDraw < 100) return; // redrawing faster than the eye is wasted output
        lastDraw = now();
        write(`\r${line(info)}\x1b[K`);
      } else if (count < total && Math.floor((10 * count) / total) > decile) { // 100% is left to done()
        decile = Math.floor((10 * count) / total);
        write(line(info) + "\n");
      }
    },
    done(info) {
      if (finished) return;
      finished = true;
      write(tty ? `\r${line(info)}\x1b[K\n` : line(info) + "\n");
    },
  };
}
