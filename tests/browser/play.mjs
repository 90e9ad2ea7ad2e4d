// Plays a Magnetar HLS master playlist in Debian's Chromium with hls.js, then seeks to a far
// segment and plays on: `node tests/browser/play.mjs MASTER_URL [SEEK_TO [PLAY_FOR]]` (seconds).
//
// Serves player.html and hls.js from its own HTTP server on 127.0.0.1:0 (so the playlist is
// fetched cross-origin, as a web player would), drives Chromium with playwright-core, and prints
// one line `MAGNETAR_BROWSER_RESULT {json}` with what the browser decoded, hls.js's error events
// and every answer Magnetar gave (status, path, size; set MAGNETAR_BROWSER_DUMP=DIR to keep the
// bodies). Asserting is the caller's job (tests/it/browser.rs); this exits 1 only when it could
// not produce a result. Every wait is bounded, and Chromium is closed (or killed) on every path.

import { createServer } from "node:http";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.MAGNETAR_CHROMIUM || "/usr/bin/chromium";
// The whole run, a backstop under the Rust test's own bound (120 s).
const OVERALL_MS = 100_000;
// Set to a folder to keep every body Magnetar answered, numbered in arrival order.
const DUMP = process.env.MAGNETAR_BROWSER_DUMP;
let browser = null;
const here = (path) => fileURLToPath(new URL(path, import.meta.url));

// What the page does (player.html): play until PLAY_FOR seconds have passed with frames and
// audio decoded, seek to SEEK_TO (a segment not buffered yet: hls.js is told to keep only a
// few seconds ahead) and play on until PLAY_FOR seconds past it.
const OPTIONS = {
  seekTo: Number(process.argv[3] ?? 15),
  playFor: Number(process.argv[4] ?? 0.5),
  startMs: 30_000,
  seekMs: 20_000,
  hls: { maxBufferLength: 3, maxMaxBufferLength: 6, maxBufferSize: 1_000_000, backBufferLength: 0 },
};

/** Serves the page and hls.js on 127.0.0.1 (an origin other than Magnetar's). */
async function servePage() {
  const files = {
    "/": ["text/html", await readFile(here("./player.html"))],
    "/hls.min.js": ["text/javascript", await readFile(here("./node_modules/hls.js/dist/hls.min.js"))],
  };
  const server = createServer((req, res) => {
    if (req.url === "/favicon.ico") return res.writeHead(204).end();
    const file = files[req.url];
    res.writeHead(file ? 200 : 404, { "content-type": file ? file[0] : "text/plain" });
    res.end(file ? file[1] : "not found");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** A request's path with the playback token left out. */
const redact = (url) => new URL(url).pathname.replace(/^\/s\/[^/]+\//, "/s/…/");

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function play(master, server, out) {
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
    let responses = 0;
    page.on("response", async (r) => {
      if (!r.url().startsWith(new URL(master).origin) || r.request().method() !== "GET") return;
      const n = responses++;
      const body = await r.body().catch(() => null);
      out.requests.push(`${r.status()} ${redact(r.url())} ${body ? body.length : "?"}B`);
      if (DUMP && body) {
        await mkdir(DUMP, { recursive: true });
        await writeFile(`${DUMP}/${String(n).padStart(2, "0")}-${basename(new URL(r.url()).pathname)}`, body);
      }
    });
    page.on("requestfailed", (r) => out.requests.push(`failed ${redact(r.url())}: ${r.failure()?.errorText}`));
    const { port } = server.address();
    await page.goto(`http://127.0.0.1:${port}/`, { timeout: 15_000 });
    const budget = OPTIONS.startMs + 2 * OPTIONS.seekMs + 5_000;
    out.page = await withTimeout(
      page.evaluate(([url, options]) => window.playAndSeek(url, options), [master, OPTIONS]),
      budget,
      "playAndSeek",
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
  if (!master) throw new Error("usage: node play.mjs MASTER_URL [SEEK_TO [PLAY_FOR]]");
  const started = Date.now();
  const out = { seek_to: OPTIONS.seekTo, play_for: OPTIONS.playFor, requests: [], console: [] };
  const server = await servePage();
  let failed = null;
  try {
    await withTimeout(play(master, server, out), OVERALL_MS, "the browser run");
  } catch (err) {
    failed = err;
    out.driver_error = String(err?.stack ?? err);
    await closeBrowser();
  } finally {
    server.close();
  }
  const { errors, ...p } = out.page ?? {};
  const result = {
    frames_before: p.before?.frames ?? 0,
    audio_bytes_before: p.before?.audio_bytes ?? 0,
    time_before: p.before?.time ?? 0,
    width: p.before?.width ?? 0,
    height: p.before?.height ?? 0,
    frames_at_seek: p.at_seek?.frames ?? 0,
    audio_bytes_at_seek: p.at_seek?.audio_bytes ?? 0,
    frames_after_seek: p.after?.frames ?? 0,
    audio_bytes_after_seek: p.after?.audio_bytes ?? 0,
    time_after_seek: p.after?.time ?? 0,
    buffered_before_seek: p.buffered_before ?? [],
    errors: errors ?? [],
    elapsed_ms: Date.now() - started,
    ...out,
    page: p,
  };
  // Playback tokens are credentials: none in the output.
  const json = JSON.stringify(result).replace(/\/s\/[\w.-]+\//g, "/s/…/");
  console.log(`MAGNETAR_BROWSER_RESULT ${json}`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
