/**
 * What WebAssembly SIMD can do on this machine right now: a loop of twelve independent f32x4
 * multiply-adds on registers (no loads, no bounds checks), on one thread and on every thread the CPU
 * backend uses. A shared host's speed moves from minute to minute, so the matmul rows report their
 * rate against this peak measured beside them: a fraction that means the same on any machine.
 */
import { asm, I32, instantiate, parallel, threads, V128, vec } from "../tensor/wasm.ts";

const ACC = 12;
/** f(n, dst): n rounds of ACC multiply-adds into ACC accumulators, their sum stored at dst (so the
 * loop is not dead code). With `fma`, relaxed SIMD's fused multiply-add; else a multiply and an add. */
function kernel(fma: boolean) {
  const [n, dst, x, y] = [0, 1, 2 + ACC, 3 + ACC], accs = [...Array(ACC).keys()].map((i) => 2 + i);
  const mac = (a: number) =>
    fma ? `get:${x} get:${y} get:${a} f.madd set:${a}` : `get:${a} get:${x} get:${y} f.mul f.add set:${a}`;
  const code = `f4:0.5 set:${x} f4:0.001 set:${y}
    loop ${accs.map(mac).join(" ")} get:${n} i32:1 i32.sub tee:${n} br_if:0 end
    get:${dst} ${accs.map((a) => `get:${a}`).join(" ")} ${"f.add ".repeat(ACC - 1)} v.store:0`;
  const locals = vec([[ACC + 2, V128]]);
  return instantiate([{ params: [I32, I32], results: [], body: [...locals, ...asm(code), 0x0b] }]);
}

let f: ReturnType<typeof kernel> | undefined;
/** GFLOP/s of the multiply-add loop: the median of five rounds of about `ms` each, on one thread
 * (`one`) and on all of them (`all`). Null without WebAssembly SIMD. */
export function fmaPeak(ms = 10): { one: number; all: number } | null {
  f ??= kernel(true) ?? kernel(false);
  if (!f) return null;
  const n = Math.round(ms * 2e5), flops = n * ACC * 8; // (2e5 rounds ≈ 1 ms at ~20 GFLOP/s)
  const rate = (calls: number[][][]) => {
    const t: number[] = [];
    for (let r = 0; r < 6; r++) {
      const t0 = performance.now();
      parallel(f!, calls);
      t.push(performance.now() - t0);
    }
    return (calls.length * flops) / t.slice(1).sort((a, b) => a - b)[2] / 1e6; // (the first is a warm-up)
  };
  const all = Array.from({ length: threads() }, (_, i) => [[n, 64 * i]]);
  return { one: rate([[[n, 0]]]), all: rate(all) };
}
