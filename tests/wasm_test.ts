// The WebAssembly SIMD matmul against a plain f64 reference, within f32 rounding of Σ|a||b|.
import assert from "node:assert/strict";
import { rng } from "../tensor/mod.ts";
import { heapArray, heapAt, heapFree, matmulF32, type Operand } from "../tensor/wasm.ts";

/** Seeded values in [-1, 1), rounded to f32. */
function random(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => 2 * r() - 1);
}

/** Assert out[off + i*N + j] = Σ_k A[i*K + k]·B[k*N + j] within 1e-5 of Σ_k |A[i*K + k]·B[k*N + j]|. */
function check(
  A: Float32Array,
  B: Float32Array,
  M: number,
  K: number,
  N: number,
  out: Float32Array,
  off = 0,
) {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let [sum, abs] = [0, 0];
      for (let k = 0; k < K; k++) {
        (sum += A[i * K + k] * B[k * N + j]), (abs += Math.abs(A[i * K + k] * B[k * N + j]));
      }
      const got = out[off + i * N + j];
      assert.ok(
        Math.abs(got - sum) <= 1e-5 * abs + 1e-30,
        `[${i}, ${j}] of ${M}×${K}×${N}: ${got} vs ${sum}`,
      );
    }
  }
}

/** Multiply seeded M×K and K×N matrices into a fresh output and check every value. */
function run(M: number, K: number, N: number, seed = M * 1000 + K * 10 + N): void {
  const [A, B, out] = [random(M * K, seed), random(K * N, seed + 1), new Float32Array(M * N)];
  assert.equal(matmulF32([[A, 0, K, 1]], [[B, 0, N, 1]], [M, K, N], out, 0), true);
  check(A, B, M, K, N, out);
}

Deno.test("wasm matmul matches an f64 reference", () => {
  for (const [M, K, N] of [[1, 1, 1], [3, 5, 7], [4, 8, 8], [17, 33, 65], [130, 64, 257]]) run(M, K, N);
});

Deno.test("wasm matmul split across threads by row panels, then by column panels", () => {
  for (const [M, K, N] of [[300, 70, 50], [7, 520, 300]]) run(M, K, N);
});

Deno.test("wasm matmul: several cache blocks of k and rows, then smaller shapes over stale memory", () => {
  for (const [M, K, N] of [[70, 600, 24], [5, 300, 9], [2, 3, 2], [64, 256, 8], [65, 257, 17]]) run(M, K, N);
});

Deno.test("wasm matmul: exact values, output offset, longer inputs, empty shapes", () => {
  // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]], written after 3 untouched cells.
  const out = new Float32Array(7).fill(-1);
  assert.equal(
    matmulF32(
      [[new Float32Array([1, 2, 3, 4, 9]), 0, 2, 1]],
      [[new Float32Array([5, 6, 7, 8]), 0, 2, 1]],
      [2, 2, 2],
      out,
      3,
    ),
    true,
  );
  assert.deepEqual([...out], [-1, -1, -1, 19, 22, 43, 50]);
  // K = 0 gives zeros; M = 0 or N = 0 writes nothing.
  const z = new Float32Array(4).fill(7);
  assert.equal(
    matmulF32([[new Float32Array(0), 0, 0, 1]], [[new Float32Array(0), 0, 2, 1]], [2, 0, 2], z, 0),
    true,
  );
  assert.deepEqual([...z], [0, 0, 0, 0]);
  assert.equal(
    matmulF32([[new Float32Array(0), 0, 3, 1]], [[new Float32Array(6), 0, 2, 1]], [0, 3, 2], z, 0),
    true,
  );
  assert.deepEqual([...z], [0, 0, 0, 0]);
  // Batches: each pair from its place in one array, into its slice of one output; one thread, then
  // pairs split across threads (more than 2²⁰ multiply-adds), then in groups (over 2²⁴ packed floats).
  for (const [nb, M, K, N] of [[3, 17, 16, 17], [64, 64, 32, 64], [9, 1500, 8, 1500]]) {
    const [A, B, o] = [random(nb * M * K, 7), random(nb * K * N, 8), new Float32Array(nb * M * N)];
    const pairs = (X: Float32Array, n: number, ld: number) =>
      Array.from({ length: nb }, (_, p): Operand => [X, p * n, ld, 1]);
    assert.equal(matmulF32(pairs(A, M * K, K), pairs(B, K * N, N), [M, K, N], o, 0), true);
    for (let p = 0; p < nb; p++) {
      check(A.subarray(p * M * K), B.subarray(p * K * N), M, K, N, o.subarray(p * M * N));
    }
  }
});

Deno.test("wasm matmul reads operands through their strides: transposed, offset, broadcast", () => {
  // A = X^T for a row-major K×M X, B = Y^T for a row-major N×K Y (the backward pass's A^T·B and A·B^T),
  // at odd sizes (not multiples of the 5×8 tile), K = 1, a broadcast (stride-0) operand, and one array read
  // as both operands.
  for (const [M, K, N] of [[7, 13, 9], [1, 1, 1], [33, 1, 17], [130, 70, 300], [64, 257, 40]]) {
    const [X, Y, out] = [random(3 + K * M, M + K), random(N * K, N), new Float32Array(M * N)];
    assert.equal(matmulF32([[X, 3, 1, M]], [[Y, 0, 1, K]], [M, K, N], out, 0), true);
    const A = Float32Array.from({ length: M * K }, (_, i) => X[3 + (i % K) * M + Math.floor(i / K)]);
    check(
      A,
      Float32Array.from({ length: K * N }, (_, i) => Y[(i % N) * K + Math.floor(i / N)]),
      M,
      K,
      N,
      out,
    );
    const row = random(K, 5); // every row of A is `row`: stride 0 between rows
    assert.equal(matmulF32([[row, 0, 0, 1]], [[Y, 0, 1, K]], [M, K, N], out, 0), true);
    const Ab = Float32Array.from({ length: M * K }, (_, i) => row[i % K]);
    check(
      Ab,
      Float32Array.from({ length: K * N }, (_, i) => Y[(i % N) * K + Math.floor(i / N)]),
      M,
      K,
      N,
      out,
    );
    // One array as both operands, read at different places: A = X's rows from 3, B = X's first K×N.
    if (K * N > 3 + M * K) continue;
    assert.equal(matmulF32([[X, 3, K, 1]], [[X, 0, N, 1]], [M, K, N], out, 0), true);
    check(X.subarray(3), X, M, K, N, out);
  }
});

Deno.test("wasm heap arrays: a freed place is reused by any length of its size class, not by others", () => {
  const a = heapArray(1000)!, at = heapAt(a); // class 1024 floats (multiples of 128 between 512 and 1023)
  assert.ok(at >= 0 && at % 4 === 0);
  heapFree(a);
  const b = heapArray(990)!; // same class: the same place
  assert.equal(heapAt(b), at);
  assert.equal(b.length, 990);
  const c = heapArray(1000)!; // that place is taken: a new one, not overlapping it or its slack
  assert.ok(heapAt(c) >= at + 1024 + 4 || heapAt(c) + 1024 + 4 <= at);
  heapFree(b), heapFree(c);
  const d = heapArray(1100)!; // class 1280: neither of the freed places
  assert.ok(heapAt(d) !== at && heapAt(d) !== heapAt(c));
  heapFree(d);
});
