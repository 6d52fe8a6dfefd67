/**
 * The library in a real browser: bundles (web/build.ts), serves the repository on an ephemeral
 * 127.0.0.1 port, and drives headless Chromium over the DevTools protocol (a local WebSocket) to
 * run web/ops.html (CPU ≡ WebGPU differential op tests inside Chrome) and web/index.html?quick
 * (the demo, to completion). The finished demo's screenshot goes to dist/screenshot.png.
 *
 * Skipped with a printed reason when `chromium` is not installed, unless REQUIRE_WEBGPU=1 (CI,
 * whose .ci/run installs it). Every wait is bounded and the browser is killed at the end.
 */
import assert from "node:assert/strict";
import { bundle, ROOT } from "../web/build.ts";
import { serveRepo } from "../web/serve.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "chromium";
const required = Deno.env.get("REQUIRE_WEBGPU") === "1";
/** Whether `CHROMIUM` runs (spawning a missing program throws synchronously). */
async function installed(): Promise<boolean> {
  try {
    return (await new Deno.Command(CHROMIUM, { args: ["--version"], stdout: "null", stderr: "null" })
      .output())
      .success;
  } catch {
    return false;
  }
}
const present = await installed();
if (!present) console.log(`browser tests skipped: ${CHROMIUM} not found (apt-get install chromium)`);

/** A promise that rejects after `ms` with `what` timed out; `cancel` clears the timer. */
function deadline(ms: number, what: string): { promise: Promise<never>; cancel: () => void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    id = setTimeout(() => reject(new Error(`${what}: timed out after ${ms / 1000} s`)), ms);
  });
  return { promise, cancel: () => clearTimeout(id) };
}

/** `p`, or a rejection after `ms`. */
async function within<V>(p: Promise<V>, ms: number, what: string): Promise<V> {
  const d = deadline(ms, what);
  try {
    return await Promise.race([p, d.promise]);
  } finally {
    d.cancel();
  }
}

/** Headless Chromium with one page, driven over the DevTools protocol. */
class Browser {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** The page's console output and uncaught errors, for failure messages. */
  readonly console: string[] = [];
  private session = "";

  private constructor(private readonly proc: Deno.ChildProcess, private readonly ws: WebSocket) {
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data as string);
      if (m.id !== undefined) {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) p?.reject(new Error(`DevTools: ${m.error.message}`));
        else p?.resolve(m.result);
      } else if (m.method === "Runtime.consoleAPICalled") {
        this.console.push(m.params.args.map((a: { value?: unknown }) => String(a.value)).join(" "));
      } else if (m.method === "Runtime.exceptionThrown") {
        this.console.push(`uncaught: ${m.params.exceptionDetails.exception?.description ?? "error"}`);
      }
    };
  }

  /** Starts Chromium (WebGPU on) and connects to it; `dir` holds its profile. */
  static async launch(dir: string): Promise<Browser> {
    const proc = new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox",
        "--enable-unsafe-webgpu",
        "--remote-debugging-port=0",
        `--user-data-dir=${dir}`,
        "--window-size=1280,1000",
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" to stderr.
      const reader = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      const url = await within(
        (async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) throw new Error(`chromium exited:\n${text}`);
            text += value;
            const m = text.match(/DevTools listening on (ws:\S+)/);
            if (m) return m[1];
          }
        })(),
        30_000,
        "chromium start",
      );
      // Keep draining stderr so the browser never blocks on a full pipe.
      (async () => {
        while (!(await reader.read().catch(() => ({ done: true }))).done);
      })();
      const ws = new WebSocket(url);
      await within(
        new Promise((ok, fail) => (ws.onopen = ok, ws.onerror = fail)),
        10_000,
        "DevTools connect",
      );
      return new Browser(proc, ws);
    } catch (e) {
      proc.kill("SIGKILL");
      await proc.status;
      throw e;
    }
  }

  /** Sends a DevTools command (to the page's session once `open` has attached one). */
  send(method: string, params: Record<string, unknown> = {}, ms = 30_000): Promise<unknown> {
    const id = this.next++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.pending.set(id, { resolve, reject });
    this.ws.send(
      JSON.stringify({ id, method, params, ...(this.session ? { sessionId: this.session } : {}) }),
    );
    return within(promise, ms, method).finally(() => this.pending.delete(id));
  }

  /** Opens `url` in a new page and attaches to it. */
  async open(url: string): Promise<void> {
    this.session = "";
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" }) as {
      targetId: string;
    };
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true }) as {
      sessionId: string;
    };
    this.session = sessionId;
    await this.send("Runtime.enable");
    await this.send("Page.navigate", { url });
  }

  /** The value of `expression` (awaited when a promise), waiting at most `ms`. */
  async evaluate<V>(expression: string, ms: number): Promise<V> {
    const r = await this.send(
      "Runtime.evaluate",
      { expression, awaitPromise: true, returnByValue: true },
      ms,
    ) as {
      result: { value: V };
      exceptionDetails?: { exception?: { description?: string }; text: string };
    };
    if (r.exceptionDetails) {
      throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
    }
    return r.result.value;
  }

  /** Polls `expression` every 250 ms until it is truthy; at most `ms`. */
  async waitFor(expression: string, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!(await this.evaluate<boolean>(`!!(${expression})`, 10_000))) {
      if (Date.now() > end) throw new Error(`waiting for ${expression}: timed out after ${ms / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** A PNG of the whole page, not just the viewport. */
  async screenshot(): Promise<Uint8Array> {
    const { cssContentSize: { width, height } } = await this.send("Page.getLayoutMetrics") as {
      cssContentSize: { width: number; height: number };
    };
    const clip = { x: 0, y: 0, width, height, scale: 1 };
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip,
    }) as {
      data: string;
    };
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  /** Closes the connection and kills the browser. */
  async close(): Promise<void> {
    this.ws.close();
    try {
      this.proc.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.proc.status;
  }
}

/** What web/ops.ts publishes as `opsResult`. */
interface OpsResult {
  adapter: boolean;
  info: string;
  passed: number;
  failed: { name: string; error: string }[];
}

/** What web/demo.ts publishes as `demoResult`. */
interface DemoResult {
  backend: string;
  seconds: number;
  accuracy: number;
  rewardBefore: number;
  rewardAfter: number;
}

Deno.test({
  name: "browser: op tests and the quick demo in headless Chromium",
  ignore: !present && !required,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    assert.ok(present, `REQUIRE_WEBGPU=1 but ${CHROMIUM} is not installed`);
    await within(bundle(), 60_000, "deno bundle");
    const server = await serveRepo();
    const profile = await Deno.makeTempDir({ prefix: "chromium-" });
    const browser = await Browser.launch(profile);
    const why = () => `\npage console:\n${browser.console.slice(-30).join("\n")}`;
    try {
      await t.step("web/ops.html: CPU ≡ WebGPU inside Chrome", async () => {
        await browser.open(`${server.url}web/ops.html`);
        await browser.waitFor("globalThis.opsResult", 20_000).catch((e) => assert.fail(e.message + why()));
        const r = await browser.evaluate<OpsResult>("globalThis.opsResult", 90_000);
        console.log(`in Chrome: ${r.passed} passed, ${r.failed.length} failed on ${r.info}`);
        assert.ok(r.adapter, "Chromium gave no WebGPU adapter" + why());
        assert.deepEqual(r.failed, [], why());
        assert.ok(r.passed >= 10);
      });
      await t.step("web/index.html?quick: the demo runs to completion", async () => {
        await browser.open(`${server.url}web/index.html?quick&run`);
        await browser.waitFor("globalThis.demoResult", 20_000).catch((e) => assert.fail(e.message + why()));
        const r = await browser.evaluate<DemoResult>("globalThis.demoResult", 150_000);
        console.log(
          `demo (${r.backend}): ${r.seconds.toFixed(0)} s, held-out accuracy ${r.accuracy.toFixed(3)}, ` +
            `reward ${r.rewardBefore.toFixed(3)} → ${r.rewardAfter.toFixed(3)}`,
        );
        assert.ok(typeof r.accuracy === "number" && r.accuracy >= 0 && r.accuracy <= 1, why());
        await Deno.writeFile(`${ROOT}dist/screenshot.png`, await browser.screenshot());
      });
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
