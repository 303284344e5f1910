// Shared by the dashboard's browser scripts: launching Debian's Chromium
// through playwright-core, and small polling helpers.
import { chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/** Polls fn (in Node) until it returns a truthy value or timeout ms pass. */
export async function until(what, fn, timeout = 10000, every = 100) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export function log(...a) {
  console.log(new Date().toISOString().slice(11, 23), ...a);
}
