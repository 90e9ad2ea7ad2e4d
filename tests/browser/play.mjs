// Plays a Magnetar HLS master playlist in Debian's Chromium with hls.js, then seeks to a far
// segment and plays on: `node tests/browser/play.mjs MASTER_URL [SEEK_TO [PLAY_FOR [START_MS]]]`
// (seconds; START_MS bounds the first phase, start plus PLAY_FOR, default 30 s).
//
// Serves player.html on another origin and drives Chromium (both through chromium.mjs), then
// prints one line `MAGNETAR_BROWSER_RESULT {json}` with what the browser decoded, hls.js's errors
// and every answer Magnetar gave (status, path, size; set MAGNETAR_BROWSER_DUMP=DIR to keep the
// bodies). Asserting is the caller's job (tests/it/browser.rs); this exits 1 only when it could
// not produce a result. Every wait is bounded, and Chromium is closed (or killed) on every path.

import { mkdir, writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { runPage, withTimeout } from "./chromium.mjs";

// Set to a folder to keep every body Magnetar answered, numbered in arrival order.
const DUMP = process.env.MAGNETAR_BROWSER_DUMP;
// Set to a .png path to keep a screenshot of the page after the seek (what a person sees).
const SCREENSHOT = process.env.MAGNETAR_BROWSER_SCREENSHOT;

// What the page does (player.html): play until PLAY_FOR seconds have passed with frames and
// audio decoded, seek to SEEK_TO (a segment not buffered yet: hls.js is told to keep only a
// few seconds ahead) and play on until PLAY_FOR seconds past it.
const OPTIONS = {
  seekTo: Number(process.argv[3] ?? 15),
  playFor: Number(process.argv[4] ?? 0.5),
  startMs: Number(process.argv[5] ?? 30_000),
  seekMs: 20_000 + 1000 * Number(process.argv[4] ?? 0.5),
  hls: { maxBufferLength: 3, maxMaxBufferLength: 6, maxBufferSize: 1_000_000, backBufferLength: 0 },
  keepFrame: Boolean(SCREENSHOT),
};
// The whole run, a backstop under the Rust test's own bound (120 s plus twice PLAY_FOR).
const OVERALL_MS = OPTIONS.startMs + 2 * OPTIONS.seekMs + 30_000;

/** A request's path with the playback token left out. */
const redact = (url) => new URL(url).pathname.replace(/^\/s\/[^/]+\//, "/s/…/");

async function play(master, browser, pageUrl, out) {
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
  await page.goto(pageUrl, { timeout: 15_000 });
  const budget = OPTIONS.startMs + 2 * OPTIONS.seekMs + 5_000;
  out.page = await withTimeout(
    page.evaluate(([url, options]) => window.playAndSeek(url, options), [master, OPTIONS]),
    budget,
    "playAndSeek",
  );
  if (SCREENSHOT) await withTimeout(page.screenshot({ path: SCREENSHOT }), 10_000, "screenshot");
}

async function main() {
  const master = process.argv[2];
  if (!master) throw new Error("usage: node play.mjs MASTER_URL [SEEK_TO [PLAY_FOR]]");
  const started = Date.now();
  const out = { seek_to: OPTIONS.seekTo, play_for: OPTIONS.playFor, requests: [], console: [] };
  const failed = await runPage("./player.html", OVERALL_MS, out, (browser, pageUrl) =>
    play(master, browser, pageUrl, out),
  );
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
