/**
 * The reference backend: plain typed arrays. Expressions are rendered once into JavaScript loop
 * nests (cached by expression and rank), so the oracle stays readable and is fast enough to train
 * small models. Sums accumulate in f64.
 */
import {
  type Backend,
  type BackendBuffer,
  contiguousStrides,
  hostArray,
  numel,
  type ReduceOp,
  type Src,
  type TypedArray,
  type View,
} from "./backend.ts";
import { type DType, type Exp, key } from "./exp.ts";
import { matmulF32 } from "./wasm.ts";

/** A CPU buffer is a typed array. */
export class CpuBuffer implements BackendBuffer {
  constructor(readonly data: TypedArray, readonly dtype: DType) {}
  /** Elements. */
  get size(): number {
    return this.data.length;
  }
}

// Subtrees that occur more than once in the tree being rendered are computed once into locals
// (the IR is a tree, so e.g. GELU's tanh would otherwise be evaluated twice per element).
let cse: { count: Map<string, number>; name: Map<string, string>; defs: string[] } | null = null;
const kids = (e: Exp): Exp[] =>
  [(e as { c?: Exp }).c, (e as { a?: Exp }).a, (e as { b?: Exp }).b].filter((x): x is Exp => !!x);

/** Render a tree as [local definitions, expression] of JavaScript. */
function render(e: Exp): [string, string] {
  const count = new Map<string, number>();
  const walk = (n: Exp) => {
    const k = key(n);
    count.set(k, (count.get(k) ?? 0) + 1);
    kids(n).forEach(walk);
  };
  walk(e);
  cse = { count, name: new Map(), defs: [] };
  try {
    const expr = js(e);
    return [cse.defs.join(""), expr];
  } finally {
    cse = null;
  }
}

function js(e: Exp): string {
  if (!cse || !kids(e).length || cse.count.get(key(e))! < 2) return jsNode(e);
  const k = key(e);
  let n = cse.name.get(k);
  if (!n) {
    const def = jsNode(e);
    n = `c${cse.defs.length}`;
    cse.defs.push(`const ${n}=${def};`);
    cse.name.set(k, n);
  }
  return n;
}

/** Render one node as a JavaScript expression string. */
function jsNode(e: Exp): string {
  const i32 = (s: string) => (e.dtype === "i32" ? `((${s})|0)` : `(${s})`);
  switch (e.op) {
    case "load":
      return `x${e.i}[o${e.i}]`;
    case "const":
      return Number.isFinite(e.v) ? `(${e.v})` : e.v > 0 ? "Infinity" : e.v < 0 ? "-Infinity" : "NaN";
    case "idx":
      return `i${e.axis}`;
    case "cast":
      if (e.dtype === "bool") return `(${js(e.a)}!==0?1:0)`;
      if (e.dtype === "i32" && e.a.dtype !== "bool" && e.a.dtype !== "i32") {
        return `(Math.trunc(${js(e.a)})|0)`;
      }
      return js(e.a);
    case "where":
      return `(${js(e.c)}?${js(e.a)}:${js(e.b)})`;
    case "neg":
      return i32(`-${js(e.a)}`);
    case "exp":
      return e.dtype === "f64" ? `Math.exp(${js(e.a)})` : `expf(${js(e.a)})`;
    case "log":
    case "sqrt":
    case "abs":
    case "floor":
      return `Math.${e.op}(${js(e.a)})`;
    case "tanh":
      return `tanh(${js(e.a)})`;
    case "rsqrt":
      return `(1/Math.sqrt(${js(e.a)}))`;
    case "sigmoid":
      return e.dtype === "f64" ? `(1/(1+Math.exp(-${js(e.a)})))` : `(1/(1+expf(-${js(e.a)})))`;
    case "relu":
      return `Math.max(${js(e.a)},0)`;
    case "not":
      return `(${js(e.a)}?0:1)`;
  }
  const [a, b] = [js(e.a), js(e.b)];
  switch (e.op) {
    case "add":
      return i32(`${a}+${b}`);
    case "sub":
      return i32(`${a}-${b}`);
    case "mul":
      return e.dtype === "i32" ? `Math.imul(${a},${b})` : `(${a}*${b})`;
    case "div":
      return i32(`${a}/${b}`);
    case "pow":
      return i32(`Math.pow(${a},${b})`);
    case "max":
    case "min":
      return `Math.${e.op}(${a},${b})`;
    case "and":
      return `(${a}&&${b}?1:0)`;
    case "or":
      return `(${a}||${b}?1:0)`;
  }
  const cmp = { lt: "<", le: "<=", gt: ">", ge: ">=", eq: "===", ne: "!==" }[e.op];
  return `(${a}${cmp}${b}?1:0)`;
}

/** A loop nest over `rank` dims that keeps a running offset `o{k}` for each of `n` views
 * (view k reads its strides from `s[k]`, offset from `off[k]`) and runs `body` innermost. */
function loops(rank: number, n: number, body: string): string {
  const views = [...Array(n).keys()];
  // Hoist every stride and size into a local so the loop body touches only numbers.
  let code = views.map((k) => `let o${k}_0=off[${k}];`).join("");
  for (let d = 0; d < rank; d++) {
    code += `const n${d}=shape[${d}];` + views.map((k) => `const s${k}_${d}=s[${k}][${d}];`).join("");
  }
  const close: string[] = [];
  for (let d = 0; d < rank; d++) {
    code += `for(let i${d}=0;i${d}<n${d};i${d}++){`;
    code += views.map((k) => `const o${k}_${d + 1}=o${k}_${d}+i${d}*s${k}_${d};`).join("");
    close.push("}");
  }
  code += views.map((k) => `const o${k}=o${k}_${rank};`).join("");
  return code + body + close.join("");
}

const kernels = new Map<string, (...args: unknown[]) => void>();

/** Compile (once) a loop over `shape` with inputs x0..x{n-1}, output view number n. */
function kernel(tag: string, e: Exp, nInputs: number, rank: number, body: string) {
  const k = `${tag}|${key(e)}|${nInputs}|${rank}`;
  let f = kernels.get(k);
  if (!f) {
    const xs = [...Array(nInputs).keys()].map((i) => `x${i}`).join(",");
    const [defs, v] = render(e);
    const inner = (defs + body.replaceAll("$V", () => v)).replaceAll("$O", `o${nInputs}`);
    // V8's Math.exp takes a slow path where it underflows or overflows (masked attention logits
    // are −1e9); an f32 result there is 0 or ∞ anyway. tanh through exp is twice as fast as Math.tanh.
    const fns = "const expf=(v)=>v<-104?0:v>89?Infinity:Math.exp(v);" +
      "const tanh=(v)=>{const a=Math.abs(v),e=a>20?0:Math.exp(-2*a),t=(1-e)/(1+e);return v<0?-t:t;};";
    const code = fns + `const [${xs}]=xs;` + loops(rank, nInputs + 1, inner);
    f = new Function("out", "acc", "xs", "shape", "s", "off", code) as (...args: unknown[]) => void;
    kernels.set(k, f);
  }
  return f;
}

const data = (b: BackendBuffer): TypedArray => (b as CpuBuffer).data;

/** Offsets of every element of `view` in row-major order. */
export function offsets(view: View): Int32Array {
  const n = numel(view.shape);
  const out = new Int32Array(n);
  const rank = view.shape.length;
  const i = new Array<number>(rank).fill(0);
  let o = view.offset;
  for (let p = 0; p < n; p++) {
    out[p] = o;
    for (let d = rank - 1; d >= 0; d--) {
      i[d]++;
      o += view.strides[d];
      if (i[d] < view.shape[d]) break;
      o -= i[d] * view.strides[d];
      i[d] = 0;
    }
  }
  return out;
}

/** View with `axis` made stride 0 (so offsets skip it). */
const drop = (v: View, axis: number): View => ({
  ...v,
  strides: v.strides.map((s, d) => (d === axis ? 0 : s)),
});

/** The CPU backend. */
export class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  readonly info = "cpu (JavaScript, single thread)";

  // Freed arrays are reused by size and dtype: allocating (and zeroing) fresh ones each step cost
  // more than the kernels that fill them. Every primitive overwrites all of its output.
  #pool = new Map<string, TypedArray[]>();
  #pooled = 0;

  alloc(size: number, dtype: DType): BackendBuffer {
    const hit = this.#pool.get(`${dtype}${size}`)?.pop();
    if (hit) this.#pooled -= hit.byteLength;
    return new CpuBuffer(hit ?? hostArray(dtype, size), dtype);
  }

  upload(src: ArrayLike<number>, dtype: DType): BackendBuffer {
    const buf = hostArray(dtype, src.length);
    buf.set(src);
    return new CpuBuffer(buf, dtype);
  }

  read(buf: BackendBuffer): Promise<TypedArray> {
    return Promise.resolve(data(buf).slice());
  }

  free(buf: BackendBuffer): void {
    const d = data(buf);
    if (this.#pooled + d.byteLength > 256 << 20) return; // let the GC have the rest
    const k = `${buf.dtype}${d.length}`;
    const list = this.#pool.get(k) ?? [];
    list.push(d);
    this.#pool.set(k, list);
    this.#pooled += d.byteLength;
  }

  map(e: Exp, inputs: Src[], shape: readonly number[], into?: Src): BackendBuffer {
    const out = into?.buf ?? this.alloc(numel(shape), e.dtype);
    const ov = into?.view ?? { shape, strides: contiguousStrides(shape), offset: 0 };
    const views = [...inputs.map((x) => x.view), ov];
    kernel("map", e, inputs.length, shape.length, "out[$O]=$V;")(
      data(out),
      null,
      inputs.map((x) => data(x.buf)),
      shape,
      views.map((v) => v.strides),
      views.map((v) => v.offset),
    );
    return out;
  }

  reduce(op: ReduceOp, e: Exp, inputs: Src[], shape: readonly number[], axes: number[]): BackendBuffer {
    const outShape = shape.map((n, d) => (axes.includes(d) ? 1 : n));
    const n = numel(outShape);
    const ostr = contiguousStrides(outShape).map((s, d) => (axes.includes(d) ? 0 : s));
    const arg = op === "argmax" || op === "argmin";
    const init = op === "sum" ? 0 : op === "max" || op === "argmax" ? -Infinity : Infinity;
    const acc = new Float64Array(n).fill(init);
    const out = this.alloc(n, arg ? "i32" : e.dtype);
    if (arg) data(out).fill(0); // index 0 when nothing beats the initial value
    // Position along the reduced axes, for arg reductions (row-major over those axes only).
    let pos = "0";
    let step = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (axes.includes(d)) {
        pos += `+i${d}*${step}`;
        step *= shape[d];
      }
    }
    const body = {
      sum: "acc[$O]+=$V;",
      max: "{const v=$V;if(v>acc[$O]||v!==v)acc[$O]=v;}",
      min: "{const v=$V;if(v<acc[$O]||v!==v)acc[$O]=v;}",
      argmax: `{const v=$V;if(v>acc[$O]){acc[$O]=v;out[$O]=${pos};}}`,
      argmin: `{const v=$V;if(v<acc[$O]){acc[$O]=v;out[$O]=${pos};}}`,
    }[op];
    const views = [...inputs.map((x) => x.view.strides), ostr];
    kernel(`reduce-${op}-${pos}`, e, inputs.length, shape.length, body)(
      data(out),
      acc,
      inputs.map((x) => data(x.buf)),
      shape,
      views,
      [...inputs.map((x) => x.view.offset), 0],
    );
    if (!arg) data(out).set(acc);
    return out;
  }

  matmul(a: Src, b: Src): BackendBuffer {
    const r = a.view.shape.length;
    const [M, K, N] = [a.view.shape[r - 2], a.view.shape[r - 1], b.view.shape[r - 1]];
    const batch = a.view.shape.slice(0, -2);
    const nb = numel(batch);
    const out = this.alloc(nb * M * N, a.buf.dtype);
    const o = data(out);
    const [ad, bd] = [data(a.buf), data(b.buf)];
    // Offsets of each batch's [0,0] element, then pack each operand contiguously for the i-k-j loop.
    const aBase = offsets({ shape: batch, strides: a.view.strides.slice(0, -2), offset: a.view.offset });
    const bBase = offsets({ shape: batch, strides: b.view.strides.slice(0, -2), offset: b.view.offset });
    const [as0, as1] = a.view.strides.slice(-2);
    const [bs0, bs1] = b.view.strides.slice(-2);
    // f32 goes to the WebAssembly SIMD kernel; f64 (the gradcheck oracle) and hosts without SIMD
    // use the plain i-k-j loop over packed operands.
    const f32 = a.buf.dtype === "f32";
    const A = f32 ? new Float32Array(M * K) : new Float64Array(M * K);
    const B = f32 ? new Float32Array(K * N) : new Float64Array(K * N), row = new Float64Array(N);
    // Row-major operands are used in place; others are packed first.
    const pack = (
      d: TypedArray,
      base: number,
      s0: number,
      s1: number,
      R: number,
      C: number,
      to: TypedArray,
    ) => {
      if (s1 === 1 && s0 === C && d.constructor === to.constructor) return d.subarray(base, base + R * C);
      for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) to[r * C + c] = d[base + r * s0 + c * s1];
      return to;
    };
    for (let p = 0; p < nb; p++) {
      const Ap = pack(ad, aBase[p], as0, as1, M, K, A), Bp = pack(bd, bBase[p], bs0, bs1, K, N, B);
      if (f32 && matmulF32(Ap as Float32Array, Bp as Float32Array, M, K, N, o as Float32Array, p * M * N)) {
        continue;
      }
      for (let i = 0; i < M; i++) {
        row.fill(0);
        for (let k = 0; k < K; k++) {
          const aik = Ap[i * K + k];
          for (let j = 0; j < N; j++) row[j] += aik * Bp[k * N + j];
        }
        o.set(row, p * M * N + i * N);
      }
    }
    return out;
  }

  gather(src: Src, index: Src, axis: number): BackendBuffer {
    const base = offsets(drop({ ...src.view, shape: index.view.shape }, axis));
    const io = offsets(index.view);
    const [sd, id] = [data(src.buf), data(index.buf)];
    const out = this.alloc(io.length, src.buf.dtype);
    const o = data(out);
    const st = src.view.strides[axis];
    for (let p = 0; p < io.length; p++) o[p] = sd[base[p] + id[io[p]] * st];
    return out;
  }

  scatterAdd(index: Src, src: Src, axis: number, shape: readonly number[]): BackendBuffer {
    const strides = contiguousStrides(shape);
    const base = offsets(drop({ shape: index.view.shape, strides, offset: 0 }, axis));
    const [io, so] = [offsets(index.view), offsets(src.view)];
    const [sd, id] = [data(src.buf), data(index.buf)];
    const acc = new Float64Array(numel(shape));
    for (let p = 0; p < io.length; p++) acc[base[p] + id[io[p]] * strides[axis]] += sd[so[p]];
    return this.upload(acc, src.buf.dtype);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  pooledBytes(): number {
    return this.#pooled;
  }
}
