// Takes the README's screenshots of a running dashboard with live traffic:
// node screenshots.mjs spec.json, spec = {base, out}. Run through
// TestDashboardScreenshots (cmd/peba), which starts the service and feeds it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { launch, log, until } from "./common.mjs";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const browser = await launch();
try {
  for (const v of [
    { name: "desktop", width: 1440, height: 900, scale: 1, fullPage: true },
    { name: "mobile", width: 390, height: 844, scale: 2, fullPage: false },
  ]) {
    const ctx = await browser.newContext({ viewport: { width: v.width, height: v.height }, deviceScaleFactor: v.scale, colorScheme: "dark" });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => log("page error:", e.message));
    await page.goto(spec.base + "/");
    await until("panels and map", () =>
      page.evaluate(() => {
        const s = window.__peba?.stats();
        return s && s.feed === "live" && Object.keys(s.loads).length >= 7 && s.map.drawn > 40 && s.map.inFlight > 25 && s;
      }), 30000);
    // Let the live traffic build up glow and arcs.
    await page.waitForTimeout(spec.settle ?? 6000);
    const s = await page.evaluate(() => window.__peba.stats());
    log(v.name, JSON.stringify(s));
    const file = join(spec.out, `dashboard-${v.name}.png`);
    await page.screenshot({ path: file, fullPage: v.fullPage });
    log("wrote", file);
    await ctx.close();
  }
} finally {
  await browser.close();
}
