// Page timings in a real Chromium for benchmarks/bench_browser.py (which starts the app and reads our output).
// env: BASE_URL (http://127.0.0.1:PORT), VISITS (JSON list of {name, path, expect: {audio, images}, rater?}),
//      PLAYWRIGHT_DIR (folder of the playwright-core package: tests/browser/node_modules/playwright-core).
// Each visit opens a new tab in one browser context (as a person opening links: the HTTP cache is shared),
// navigates to BASE_URL + path and records, in ms since navigation start (performance.now() of the tab):
//   main     = the page's first data element is visible (MAIN below, per page);
//   complete = Streamlit idle (script state "notRunning", no stale element) and everything drawn: every
//              element loaded (no skeleton), plotly chart plotted, every image decoded, every audio player ready to play (readyState >= 3,
//              HAVE_FUTURE_DATA), every dataframe's canvas laid out, and the page's expected players / images
//              present. A visit with ``rater`` then types that rater name and times the rerun the same way.
// Prints one JSON line per visit.
import { createRequire } from "node:module";

const require = createRequire(`${process.env.PLAYWRIGHT_DIR}/package.json`);
const { chromium } = require("playwright-core");
const base = process.env.BASE_URL;
const visits = JSON.parse(process.env.VISITS);
const TIMEOUT = 120000;

// page -> a function (run in the tab) that is true once the page's first data element is visible
const MAIN = {
  overview: () => !!document.querySelector('[data-testid="stMetricValue"]'),
  neuron: () => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
    .some((e) => e.innerText.startsWith("S_h: summary")) &&
    !!document.querySelector('[data-testid="stHeading"] h3'),
  concepts: () => !!document.querySelector('.js-plotly-plot .main-svg'),
  pruning: () => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .some((e) => e.innerText.includes("neurons pruned")) ||
    [...document.querySelectorAll('[data-testid="stAlert"]')].some((e) => e.innerText.includes("unavailable")),
  human_eval: () => !!document.querySelector('input[aria-label="Your rater name"]'),
  rated: () => document.body.innerText.includes("Description 1:"),
};

function complete(expect) {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
  if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]')) return false;
  const audio = [...document.querySelectorAll("audio")];
  const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
  if (audio.length < (expect.audio || 0) || images.length < (expect.images || 0)) return false;
  if (expect.text && !document.body.innerText.includes(expect.text)) return false;
  if (!audio.every((a) => a.readyState >= 3)) return false;
  if (!images.every((i) => i.complete && i.naturalWidth > 0)) return false;
  const plots = [...document.querySelectorAll(".js-plotly-plot")];
  if (!plots.every((p) => p._fullLayout && p.querySelector(".main-svg"))) return false;
  const frames = [...document.querySelectorAll('[data-testid="stDataFrame"]')].filter((f) => f.offsetHeight > 0);
  return frames.every((f) => f.querySelector("canvas"));
}

function counts() {
  return {
    audio: document.querySelectorAll("audio").length,
    images: document.querySelectorAll('[data-testid="stImage"] img').length,
    plots: document.querySelectorAll(".js-plotly-plot").length,
    http_kb: Math.round(performance.getEntriesByType("resource")
      .filter((r) => r.name.includes("/media/") || r.name.includes("/app/static/"))
      .reduce((s, r) => s + (r.encodedBodySize || 0), 0) / 1024),
  };
}

async function until(page, fn, arg) {
  // polled every animation frame: returns the tab's clock at the first frame where fn holds
  const expr = `(${fn.toString()})(${JSON.stringify(arg ?? null)}) ? performance.now() : false`;
  const h = await page.waitForFunction(expr, null, { polling: "raf", timeout: TIMEOUT });
  return Math.round(await h.jsonValue());
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
try {
  for (const v of visits) {
    const page = await context.newPage();
    let wsKb = 0;
    page.on("websocket", (ws) => ws.on("framereceived", (f) => { wsKb += (f.payload?.length || 0) / 1024; }));
    const kind = v.path.split("?")[0].replace("/", "") || "overview";
    const out = { name: v.name, path: v.path };
    try {
      await page.goto(`${base}${v.path}`, { waitUntil: "commit", timeout: TIMEOUT });
      out.main_ms = await until(page, MAIN[kind]);
      out.complete_ms = await until(page, complete, v.expect || {});
      if (v.rater) {
        const box = page.getByLabel("Your rater name");
        await box.fill(v.rater);
        const t0 = await page.evaluate(() => performance.now());
        await box.press("Enter");
        out.rated_main_ms = (await until(page, MAIN.rated)) - Math.round(t0);
        out.rated_complete_ms = (await until(page, complete, v.rated_expect || {})) - Math.round(t0);
      }
      Object.assign(out, await page.evaluate(counts), { ws_kb: Math.round(wsKb) });
    } catch (err) {
      out.error = String(err).split("\n")[0];
      Object.assign(out, await page.evaluate(counts).catch(() => ({})));
    }
    console.log(JSON.stringify(out));
    await page.close();
  }
} finally {
  await browser.close();
}
