#!/usr/bin/env bash
# Everything measured on a lent GPU machine, in one go (see bench/RESULTS.md). From the repo root:
#   bash .gpu/run.sh bash bench/gpu.sh        (after `bash ../shared/gpu/prepare.sh` here)
# Writes into $OUT: bench JSON lines, the WebGPU test results on real hardware, a full train.ts run.
set -u
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} REQUIRE_WEBGPU=1 NO_COLOR=1
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv > "$out/gpu.txt" 2>&1
deno task bench --backend webgpu 2>&1 | tee "$out/bench-webgpu.jsonl"
timeout 240 deno test -A tests/webgpu_backend_test.ts tests/webgpu_ops_test.ts tests/gpt_test.ts > "$out/tests.txt" 2>&1
tail -n 5 "$out/tests.txt"
( time timeout 240 deno run -A train.ts --backend webgpu --out "$out/run" ) > "$out/train.txt" 2>&1
tail -n 20 "$out/train.txt"
cp "$out/run/summary.json" "$out/summary.json" 2>/dev/null || true
