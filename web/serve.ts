/**
 * `deno task serve`: bundles (web/build.ts), then serves the repository on 127.0.0.1 so that
 * web/index.html (the demo) and web/ops.html (the op tests) load their modules from dist/.
 * tests/browser_test.ts uses `serveRepo` on an ephemeral port.
 * @module
 */
import { bundle, ROOT } from "./build.ts";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  css: "text/css",
  json: "application/json",
};

/** A running server: its address and how to stop it. */
export interface Served {
  /** e.g. `http://127.0.0.1:8000/`. */
  url: string;
  /** Stops the server and waits until it has. */
  close(): Promise<void>;
}

/** Serves the repository's files read-only on 127.0.0.1 (`port` 0 picks a free one). */
export function serveRepo(port = 0): Promise<Served> {
  const { promise, resolve } = Promise.withResolvers<Served>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ port }) => resolve({ url: `http://127.0.0.1:${port}/`, close: () => server.shutdown() }),
  }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path === "/") return Response.redirect(new URL("/web/index.html", req.url), 302);
    // Only paths inside the repository, no dot-files or "..".
    if (path.split("/").some((p) => p.startsWith("."))) return new Response("not found", { status: 404 });
    try {
      const body = await Deno.readFile(`${ROOT}${path.slice(1)}`);
      const type = TYPES[path.split(".").pop() ?? ""] ?? "application/octet-stream";
      return new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return promise;
}

if (import.meta.main) {
  await bundle();
  const port = Number(Deno.args[0] ?? 8000);
  const { url } = await serveRepo(port);
  console.log(`demo: ${url}web/index.html  (quick: ?quick)\nop tests: ${url}web/ops.html`);
}
