#!/usr/bin/env bash
# Everything measured on a lent GPU machine, in one go (numbers go to bench/RESULTS.md). Here, once:
#   bash ../shared/gpu/prepare.sh   (Deno + Vulkan loader into .gpu/), and the glvnd loaders into .gl/
#   (see the device README: libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2).
# There, from the repo root, with carry [".gpu", ".gl"]:  bash bench/gpu.sh
set -u
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
if [ -z "${INNER:-}" ]; then
  # NVIDIA's Vulkan driver needs the glvnd loaders beside libvulkan.
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  INNER=1 OUT="$out" exec bash .gpu/run.sh bash bench/gpu.sh
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} REQUIRE_WEBGPU=1 NO_COLOR=1
timeout 80 deno task bench --backend webgpu --runs 3 2>&1 | tee "$out/bench-webgpu.jsonl"
timeout 70 deno test -A tests/webgpu_backend_test.ts tests/webgpu_ops_test.ts tests/gpt_test.ts > "$out/tests.txt" 2>&1
grep -E "passed|FAILED" "$out/tests.txt" | tail -n 3
( time timeout 45 deno run -A train.ts --quick --backend webgpu --out "$out/run" ) > "$out/train.txt" 2>&1
tail -n 12 "$out/train.txt"
