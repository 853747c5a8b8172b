// Drive a real headless Chromium through an `alembert export --web` demo page (playwright-core:
// no browser download, the system's Chromium). Writes one JSON object to --out (or stdout):
//   {ready, bench, downloads: [{url, bytes}], external: [urls blocked], console: [errors]}
// Usage: node browser.mjs --url URL [--sentences FILE] [--repeats N] [--warmup N]
//        [--screenshot PNG] [--chromium PATH] [--timeout-ms MS] [--out FILE] --node-modules DIR
// (DIR: where `make web-deps` installed web/package.json, e.g. .cache/web-node/node_modules)
// Every request that is not to 127.0.0.1 is aborted and listed in `external`: the page must not need one.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

function args(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  return out;
}

const opt = args(process.argv.slice(2));
const { chromium } = createRequire(resolve(opt["node-modules"], "..", "package.json"))("playwright-core");
const timeout = parseInt(opt["timeout-ms"] || "120000", 10);
const browser = await chromium.launch({
  executablePath: opt.chromium || process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
const result = { downloads: [], external: [], console: [] };
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 560 }, deviceScaleFactor: 1 });
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:" || url.protocol === "blob:") return route.continue();
    result.external.push(url.href);
    return route.abort();
  });
  page.on("requestfinished", async (req) => {
    const sizes = await req.sizes().catch(() => null);
    result.downloads.push({ url: req.url(), bytes: sizes ? sizes.responseBodySize : null });
  });
  page.on("console", (msg) => { if (msg.type() === "error") result.console.push(msg.text()); });
  page.on("pageerror", (err) => result.console.push(String(err)));
  await page.goto(opt.url, { timeout });
  await page.waitForFunction(() => ["ready", "done", "error"].includes(document.body.dataset.state), null, { timeout });
  const state = await page.evaluate(() => ({ state: document.body.dataset.state, error: document.body.dataset.error || null }));
  if (state.state === "error") throw new Error(`the page failed: ${state.error}`);
  result.ready = await page.evaluate(() => window.alembert.ready);
  if (opt.screenshot) await page.screenshot({ path: opt.screenshot });
  if (opt.sentences) {
    const sentences = JSON.parse(readFileSync(opt.sentences, "utf8"));
    const repeats = parseInt(opt.repeats || "3", 10);
    const warmup = parseInt(opt.warmup || "5", 10);
    result.bench = await page.evaluate(([s, r, w]) => window.alembert.bench(s, { repeats: r, warmup: w }),
      [sentences, repeats, warmup]);
    // the page also wrote them into the DOM; check that copy is the same run
    const dom = await page.evaluate(() => JSON.parse(document.getElementById("results").textContent).rows.length);
    if (dom !== result.bench.rows.length) throw new Error("the page's DOM results differ from the returned ones");
  }
} catch (err) {
  result.error = String(err.message || err).split("\n")[0];
} finally {
  await browser.close();
}
// written synchronously: process.stdout to a pipe is asynchronous and a large result would be cut off
writeFileSync(opt.out || 1, JSON.stringify(result) + "\n");
process.exitCode = result.error ? 1 : 0;
