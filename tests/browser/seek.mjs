// Times a seek in hls.js in Debian's Chromium, for the benchmark (benches/stream/seek.rs):
// `node tests/browser/seek.mjs MASTER_URL [SEEK_TO [PLAY_FOR]]` (seconds). The page (seek.html)
// plays the master playlist from the start until PLAY_FOR seconds have played with frames and
// audio decoded, seeks to SEEK_TO and waits until it plays again.
//
// Serves seek.html and hls.js from its own HTTP server on 127.0.0.1:0 (so the playlist is
// fetched cross-origin, as a web player would), drives Chromium with playwright-core, and prints
// one line `MAGNETAR_SEEK_RESULT {json}` with the page's times and hls.js's fragment and error
// events. Judging is the caller's job; this exits 1 only when it could not produce a result.
// Every wait is bounded, and Chromium is closed (or killed) on every path.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.MAGNETAR_CHROMIUM || "/usr/bin/chromium";
// The whole run, a backstop under the benchmark's own bound (120 s).
const OVERALL_MS = 100_000;
const OPTIONS = {
  seekTo: Number(process.argv[3] ?? 2400),
  playFor: Number(process.argv[4] ?? 0.5),
  startMs: 30_000,
  seekMs: 30_000,
  hls: {}, // hls.js's defaults, as a web player would have them
};
let browser = null;
const here = (path) => fileURLToPath(new URL(path, import.meta.url));

/** Serves the page and hls.js on 127.0.0.1 (an origin other than the playlist's). */
async function servePage() {
  const files = {
    "/": ["text/html", await readFile(here("./seek.html"))],
    "/hls.min.js": ["text/javascript", await readFile(here("./node_modules/hls.js/dist/hls.min.js"))],
  };
  const server = createServer((req, res) => {
    const file = files[req.url];
    res.writeHead(file ? 200 : 404, { "content-type": file ? file[0] : "text/plain" });
    res.end(file ? file[1] : "not found");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function run(master, server, out) {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      "--no-sandbox", // root in CI
      "--autoplay-policy=no-user-gesture-required", // play unmuted: audio must be decoded
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  out.browser = `chromium ${browser.version()}`;
  try {
    const page = await browser.newPage();
    page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
    const { port } = server.address();
    await page.goto(`http://127.0.0.1:${port}/`, { timeout: 15_000 });
    const budget = OPTIONS.startMs + OPTIONS.seekMs + 5_000;
    out.page = await withTimeout(
      page.evaluate(([url, options]) => window.seekTimed(url, options), [master, OPTIONS]),
      budget,
      "seekTimed",
    );
  } finally {
    await closeBrowser();
  }
}

async function closeBrowser() {
  const open = browser;
  browser = null;
  await withTimeout(open?.close() ?? Promise.resolve(), 10_000, "closing chromium").catch(() => {
    open.process?.()?.kill("SIGKILL");
  });
}

async function main() {
  const master = process.argv[2];
  if (!master) throw new Error("usage: node seek.mjs MASTER_URL [SEEK_TO [PLAY_FOR]]");
  const out = { seek_to: OPTIONS.seekTo, console: [] };
  const server = await servePage();
  let failed = null;
  try {
    await withTimeout(run(master, server, out), OVERALL_MS, "the browser run");
  } catch (err) {
    failed = err;
    out.driver_error = String(err?.stack ?? err);
    await closeBrowser();
  } finally {
    server.close();
  }
  // Playback tokens are credentials: none in the output.
  const json = JSON.stringify(out).replace(/\/s\/[\w.-]+\//g, "/s/…/");
  console.log(`MAGNETAR_SEEK_RESULT ${json}`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
