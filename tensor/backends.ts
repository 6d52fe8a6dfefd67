/**
 * Which backend new tensors are created on. The CPU backend is always there; WebGPU is loaded on
 * first request, so importing the library needs no GPU and no permissions.
 */
import { type Backend, envVar } from "./backend.ts";
import { CpuBackend } from "./cpu.ts";

let current: Backend = new CpuBackend();
const loaded = new Map<string, Backend>([["cpu", current]]);

/** The backend new tensors are created on. */
export function getBackend(): Backend {
  return current;
}

/** Choose the backend for new tensors: "cpu", "webgpu", or "auto" — WebGPU on a hardware adapter,
 * else the CPU with a one-line notice (a software adapter such as llvmpipe runs this library's
 * workloads slower than the CPU backend's SIMD kernels). With no argument, reads env
 * `TENSOR_BACKEND` (default cpu). */
export async function setBackend(name?: "cpu" | "webgpu" | "auto"): Promise<Backend> {
  name ??= (envVar("TENSOR_BACKEND") as "cpu" | "webgpu" | "auto" | undefined) ?? "cpu";
  if (!["cpu", "webgpu", "auto"].includes(name)) {
    throw new Error(`setBackend: unknown backend "${name}" (expected cpu, webgpu or auto)`);
  }
  if (name !== "cpu" && !loaded.has("webgpu")) {
    try {
      const { WebGpuBackend } = await import("./webgpu/backend.ts");
      loaded.set("webgpu", await WebGpuBackend.create());
    } catch (e) {
      if (name === "webgpu") throw e;
      console.error(`setBackend: no WebGPU (${(e as Error).message}); using cpu`);
    }
  }
  const gpu = loaded.get("webgpu") as (Backend & { software?: boolean }) | undefined;
  if (name === "auto" && gpu?.software) {
    console.error(`setBackend: ${gpu.info} is a software adapter; using cpu`);
  }
  current = loaded.get(name === "auto" ? (gpu && !gpu.software ? "webgpu" : "cpu") : name)!;
  return current;
}
