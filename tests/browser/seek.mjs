// Times a seek in hls.js in Debian's Chromium, for the benchmark (benches/stream/seek.rs):
// `node tests/browser/seek.mjs MASTER_URL [SEEK_TO [PLAY_FOR]]` (seconds). The page (seek.html)
// plays the master playlist from the start until PLAY_FOR seconds have played with frames and
// audio decoded, seeks to SEEK_TO and waits until it plays again.
//
// Serves seek.html on another origin and drives Chromium (both through chromium.mjs), then
// prints one line `MAGNETAR_SEEK_RESULT {json}` with the page's times and hls.js's fragment and
// error events. Judging is the caller's job; this exits 1 only when it could not produce a
// result.
// Every wait is bounded, and Chromium is closed (or killed) on every path.

import { runPage, withTimeout } from "./chromium.mjs";

// The whole run, a backstop under the benchmark's own bound (120 s).
const OVERALL_MS = 100_000;
const OPTIONS = {
  seekTo: Number(process.argv[3] ?? 2400),
  playFor: Number(process.argv[4] ?? 0.5),
  startMs: 30_000,
  seekMs: 30_000,
  hls: {}, // hls.js's defaults, as a web player would have them
};

async function run(master, browser, pageUrl, out) {
  const page = await browser.newPage();
  page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
  await page.goto(pageUrl, { timeout: 15_000 });
  const budget = OPTIONS.startMs + OPTIONS.seekMs + 5_000;
  out.page = await withTimeout(
    page.evaluate(([url, options]) => window.seekTimed(url, options), [master, OPTIONS]),
    budget,
    "seekTimed",
  );
}

async function main() {
  const master = process.argv[2];
  if (!master) throw new Error("usage: node seek.mjs MASTER_URL [SEEK_TO [PLAY_FOR]]");
  const out = { seek_to: OPTIONS.seekTo, console: [] };
  const failed = await runPage("./seek.html", OVERALL_MS, out, (browser, pageUrl) =>
    run(master, browser, pageUrl, out),
  );
  // Playback tokens are credentials: none in the output.
  const json = JSON.stringify(out).replace(/\/s\/[\w.-]+\//g, "/s/…/");
  console.log(`MAGNETAR_SEEK_RESULT ${json}`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
