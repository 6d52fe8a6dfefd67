import assert from "node:assert/strict";
import { formatDuration, progress } from "../train/progress.ts";

function setup(tty: boolean) {
  const out: string[] = [], clock = { t: 1000 };
  const p = (total: number) =>
    progress("train", total, { tty, write: (s) => out.push(s), now: () => clock.t });
  return { out, clock, p };
}

Deno.test("formatDuration", () => {
  assert.deepEqual([0, 42.4, 59.6, 187, 3723].map(formatDuration), ["0s", "42s", "1:00", "3:07", "1:02:03"]);
});

Deno.test("non-TTY: a line per 10% passed, then the final line", () => {
  const { out, clock, p } = setup(false);
  const bar = p(100);
  for (let i = 0; i < 100; i++) {
    clock.t += 50; // 20 it/s
    bar.tick(1, `loss ${i}`);
  }
  assert.equal(out.length, 9);
  assert.equal(out[0], "train 10/100 (10%) 20 it/s ETA 5s loss 9\n");
  assert.equal(out[4], "train 50/100 (50%) 20 it/s ETA 3s loss 49\n"); // 2.5 s rounds to 3
  assert.equal(out[8], "train 90/100 (90%) 20 it/s ETA 1s loss 89\n");
  bar.done("ok");
  assert.equal(out[9], "train 100/100 (100%) 20 it/s in 5s ok\n");
  bar.done();
  bar.tick();
  assert.equal(out.length, 10);
});

Deno.test("non-TTY: big ticks print once; a slow rate keeps two digits", () => {
  const { out, clock, p } = setup(false);
  const bar = p(10);
  clock.t += 100_000;
  bar.tick(5);
  assert.deepEqual(out, ["train 5/10 (50%) 0.050 it/s ETA 1:40\n"]);
  bar.tick(4);
  bar.tick(1); // reaching 100% prints nothing until done()
  assert.equal(out.length, 2);
  bar.done();
  assert.equal(out.length, 3);
});

Deno.test("TTY: redraws in place, throttled, with bar, rate and ETA", () => {
  const { out, clock, p } = setup(true);
  const bar = p(4);
  bar.tick(); // elapsed 0: no rate yet
  assert.deepEqual(out, ["\rtrain [█████░░░░░░░░░░░░░░░] 1/4\x1b[K"]);
  clock.t += 50;
  bar.tick(); // within 100 ms of the last draw: skipped
  assert.equal(out.length, 1);
  clock.t += 450;
  bar.tick(1, "loss 0.5");
  assert.equal(out[1], "\rtrain [███████████████░░░░░] 3/4 6.0 it/s ETA 0s loss 0.5\x1b[K");
  clock.t += 1500;
  bar.tick();
  bar.done();
  assert.equal(out.at(-1), "\rtrain [████████████████████] 4/4 2.0 it/s in 2s\x1b[K\n");
});

Deno.test("total 0 and default options do not throw", () => {
  const { out, p } = setup(false);
  p(0).done();
  assert.deepEqual(out, ["train 0/0 (100%) in 0s\n"]);
  const quiet = progress("x", 1, { write: () => {} }); // tty from Deno.stdout.isTerminal()
  quiet.tick();
  quiet.done();
});
