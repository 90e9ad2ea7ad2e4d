// What the Chromium drivers share (play.mjs for the test suite, seek.mjs for the benchmark):
// their page served from an HTTP server on 127.0.0.1:0 (an origin other than Magnetar's, as a
// web player's would be), bounded waits, and Debian's Chromium launched through playwright-core
// and closed (or killed) on every path.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.MAGNETAR_CHROMIUM || "/usr/bin/chromium";
const here = (path) => fileURLToPath(new URL(path, import.meta.url));
let browser = null;

/** Rejects when `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Serves `page` (a file next to this one) at `/` and hls.js at `/hls.min.js`. */
async function servePage(page) {
  const files = {
    "/": ["text/html", await readFile(here(page))],
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

async function launch(out) {
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
  return browser;
}

async function closeBrowser() {
  const open = browser;
  browser = null;
  await withTimeout(open?.close() ?? Promise.resolve(), 10_000, "closing chromium").catch(() => {
    open.process?.()?.kill("SIGKILL");
  });
}

/**
 * Serves `page`, launches Chromium and runs `drive(browser, pageUrl)` within `overallMs`;
 * the browser and the server are gone afterwards. Returns the error that ended the run (also
 * in `out.driver_error`), or null.
 */
export async function runPage(page, overallMs, out, drive) {
  const server = await servePage(page);
  const run = async () => {
    const opened = await launch(out);
    try {
      await drive(opened, `http://127.0.0.1:${server.address().port}/`);
    } finally {
      await closeBrowser();
    }
  };
  try {
    await withTimeout(run(), overallMs, "the browser run");
    return null;
  } catch (err) {
    out.driver_error = String(err?.stack ?? err);
    await closeBrowser();
    return err;
  } finally {
    server.close();
  }
}
