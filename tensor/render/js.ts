/**
 * The JavaScript renderer: an `Exp` as a JavaScript expression, for the CPU backend's generated
 * loops. `TEMPLATES` holds one template per op; `render` walks the tree bottom-up and applies them.
 * Values live in doubles and are rounded by the typed array they are stored in, so only i32
 * arithmetic needs care here (`|0`, `Math.imul`); bools are 0/1.
 */
import { type Exp, key, type Leaf, type Op } from "../exp.ts";

/** Code for one node, given the code of its operands (`src`, in order). */
type Template = (e: Exp, ...src: string[]) => string;

/** Functions the rendered code calls; a kernel defines them once, before its loops. V8's Math.exp
 * takes a slow path where it underflows or overflows (masked attention logits are −1e9), and an
 * f32 result there is 0 or ∞ anyway; tanh through exp is twice as fast as Math.tanh. */
export const PRELUDE = `const expf = (v) => v < -104 ? 0 : v > 89 ? Infinity : Math.exp(v);
const tanh = (v) => { const a = Math.abs(v), e = a > 20 ? 0 : Math.exp(-2 * a), t = (1 - e) / (1 + e); return v < 0 ? -t : t; };
`;

/** A JavaScript literal for `v` (every dtype is a double here). */
export function literal(v: number): string {
  return Number.isFinite(v) ? `(${v})` : v > 0 ? "Infinity" : v < 0 ? "(-Infinity)" : "NaN";
}

/** Truncate to i32 when the node is i32 (JavaScript's +, -, / and pow work in doubles). */
const int = (e: Exp, s: string) => (e.dtype === "i32" ? `((${s})|0)` : `(${s})`);
/** A call of Math.f on the operands (one or two, joined by commas). */
const math = (f: string): Template => (_, ...src) => `Math.${f}(${src})`;
const compare = (op: string): Template => (_, a, b) => `(${a}${op}${b}?1:0)`;

/** Each op's JavaScript. */
const TEMPLATES: Record<Op, Template> = {
  cast: (e, a) => {
    const from = e.src[0].dtype;
    if (e.dtype === "bool") return `(${a}!==0?1:0)`;
    if (e.dtype === "i32" && from !== "bool" && from !== "i32") return `(Math.trunc(${a})|0)`;
    return a; // to f32/f64, or between integers: the store converts
  },
  where: (_, c, a, b) => `(${c}?${a}:${b})`,
  neg: (e, a) => int(e, `-${a}`),
  exp: (e, a) => (e.dtype === "f64" ? `Math.exp(${a})` : `expf(${a})`),
  log: math("log"),
  sqrt: math("sqrt"),
  abs: math("abs"),
  floor: math("floor"),
  tanh: (_, a) => `tanh(${a})`,
  rsqrt: (_, a) => `(1/Math.sqrt(${a}))`,
  sigmoid: (e, a) => (e.dtype === "f64" ? `(1/(1+Math.exp(-${a})))` : `(1/(1+expf(-${a})))`),
  relu: (_, a) => `Math.max(${a},0)`,
  not: (_, a) => `(${a}?0:1)`,
  add: (e, a, b) => int(e, `${a}+${b}`),
  sub: (e, a, b) => int(e, `${a}-${b}`),
  mul: (e, a, b) => (e.dtype === "i32" ? `Math.imul(${a},${b})` : `(${a}*${b})`),
  div: (e, a, b) => int(e, `${a}/${b}`),
  pow: (e, a, b) => int(e, `Math.pow(${a},${b})`),
  max: math("max"),
  min: math("min"),
  and: (_, a, b) => `(${a}&&${b}?1:0)`,
  or: (_, a, b) => `(${a}||${b}?1:0)`,
  lt: compare("<"),
  le: compare("<="),
  gt: compare(">"),
  ge: compare(">="),
  eq: compare("==="),
  ne: compare("!=="),
};

/**
 * Render `e` as JavaScript: `value` is an expression, and `defs` are statements it relies on,
 * `const c0 = …;` for each subtree that occurs more than once (the IR is a tree, so e.g. GELU's
 * tanh would otherwise be evaluated twice per element). `leaf` renders `load` and `idx` nodes.
 */
export function render(e: Exp, leaf: (l: Leaf) => string): { defs: string[]; value: string } {
  const count = new Map<string, number>();
  const tally = (n: Exp) => {
    const k = key(n);
    count.set(k, (count.get(k) ?? 0) + 1);
    n.src.forEach(tally);
  };
  tally(e);
  const names = new Map<string, string>(), defs: string[] = [];
  const walk = (n: Exp): string => {
    if (n.op === "const") return literal(n.v);
    if (n.op === "load" || n.op === "idx") return leaf(n);
    const k = key(n), seen = names.get(k);
    if (seen) return seen;
    const code = TEMPLATES[n.op](n, ...n.src.map(walk));
    if (count.get(k)! < 2) return code;
    const name = `c${defs.length}`;
    defs.push(`const ${name} = ${code};`);
    names.set(k, name);
    return name;
  };
  return { value: walk(e), defs };
}
