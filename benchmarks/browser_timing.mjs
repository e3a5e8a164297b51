// Page timings in a real Chromium for benchmarks/bench_browser.py (which starts the apps and reads our output).
// env: VISITS (JSON list of {name, base, server_pid, path, expect: {audio, images, charts, text, chart_title},
//      steps?: [{prefix, kind, arg, expect, act}]}), PLAYWRIGHT_DIR (folder of the playwright-core package:
//      tests/browser/node_modules/playwright-core).
// Each visit opens a new tab in one browser context (as a person opening a link: the HTTP cache is shared, the
// page's JavaScript is loaded and run anew; env PROFILE_DIR: the context is a persistent profile in that folder, as
// a person's browser, with its compiled-code cache on disk; else an in-memory context), navigates to base + path
// and records, in ms since navigation start (performance.now() of the tab):
//   main     = the page's first data element is visible (MAIN below, per page);
//   complete = Streamlit idle (script state "notRunning", no stale element, no skeleton) and everything drawn:
//              every chart drawn (plotly or Vega-Lite), every image decoded, every audio player ready to play
//              (readyState >= 3, HAVE_FUTURE_DATA), every visible dataframe's canvas laid out (one in a closed
//              expander is not drawn until it is opened), and the page's expected players / images / charts / text
//              present.
// Then each of the visit's steps acts in the same tab and is timed the same way from its action (keys prefixed
// with the step's prefix): act {fill: label, value} types value into the box labelled so and presses Enter (a
// rater name; the next neuron's number), {upload: file} gives the page's file uploader a file, {click: text}
// clicks that text (a toggle), {download: button name} clicks that button and times the download it starts
// (main: the browser receives the file's response, complete: the whole file saved). Steps "" and "rerun_" are the
// original rows: their error is the visit's ``error`` and the counts after them are the unprefixed ones; a later
// step's error / missing / counts carry its prefix and end the visit's steps.
// cpu_browser_s / cpu_server_s: CPU seconds the browser's processes / the app server used from navigation start to
// complete (a step: its own), read from /proc: what the visit costs independently of other jobs on the machine.
// Prints one JSON line per visit; a visit that times out says which parts were not ready.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(`${process.env.PLAYWRIGHT_DIR}/package.json`);
const { chromium } = require("playwright-core");
const visits = JSON.parse(process.env.VISITS);
const TIMEOUT = +(process.env.TIMEOUT_MS || 120000);
const TICKS = 100; // USER_HZ of Linux /proc/<pid>/stat

// page -> a function (run in the tab) that is true once the page's first data element is visible
const MAIN = {
  overview: () => !!document.querySelector('[data-testid="stMetricValue"]'),
  neuron: (n) => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
    .some((e) => e.innerText.startsWith("S_h: summary") && !e.closest('[data-stale="true"]')) &&
    [...document.querySelectorAll('[data-testid="stHeading"] h3')]
      .some((h) => (n === null || h.innerText.endsWith(`neuron ${n}`)) && !h.closest('[data-stale="true"]')),
  // Concepts: its adjective counts (apps since 2026-11-30), or the adjective chart drawn (apps before)
  concepts: () => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
    .some((e) => e.innerText.includes("distinct adjectives in the calibrated summaries")) ||
    !!document.querySelector('.js-plotly-plot .main-svg, [data-testid="stVegaLiteChart"] .mark-group'),
  pruning: () => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .some((e) => e.innerText.includes("neurons pruned")) ||
    [...document.querySelectorAll('[data-testid="stAlert"]')].some((e) => e.innerText.includes("unavailable")),
  human_eval: () => !!document.querySelector('input[aria-label="Your rater name"]'),
  rated: () => document.body.innerText.includes("Description 1:"),
  // Query by sound: the file uploader (and the hint under it); with a clip: its first ranked neuron, or why not
  by_sound: () => !!document.querySelector('[data-testid="stFileUploader"] input[type="file"]') &&
    document.body.innerText.includes("nothing is kept on disk"),
  sound_result: () => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
    .some((e) => /^percentile \d/.test(e.innerText) && !e.closest('[data-stale="true"]')) ||
    [...document.querySelectorAll('[data-testid="stAlert"]')]
      .some((e) => /cannot be used|unavailable/.test(e.innerText) && !e.closest('[data-stale="true"]')),
  // Compare models: its partner count (apps since 2026-11-30) or the partner heatmap drawn, or why there is
  // nothing to compare / no matching
  compare: () => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .some((e) => e.innerText.includes("with a partner in")) ||
    [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .some((c) => c.querySelector("svg.marks .mark-group, canvas.marks")) ||
    [...document.querySelectorAll('[data-testid="stAlert"]')]
      .some((e) => /comparison needs two models|No neuron matching/.test(e.innerText)),
  // the Neuron page's Effect on the output, switched on: its metrics, or why it is unavailable
  effect: () => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .some((e) => e.innerText.includes("predictions changed") && !e.closest('[data-stale="true"]')) ||
    [...document.querySelectorAll('[data-testid="stAlert"]')].some((e) => e.innerText.startsWith("Unavailable")),
};

// the live views (they run a model): their main element may be the reason they cannot run
const LIVE = new Set(["sound_result", "effect"]);
function unavailable() {
  // the first current alert saying a live view cannot run (its first 100 characters), or null; run in the tab
  const a = [...document.querySelectorAll('[data-testid="stAlert"]')]
    .find((e) => /unavailable|cannot be used/i.test(e.innerText) && !e.closest('[data-stale="true"]'));
  return a ? a.innerText.trim().slice(0, 100) : null;
}

// what is not ready yet (empty when the page is complete), run in the tab
function missing(expect) {
  const out = [];
  const app = document.querySelector('[data-testid="stApp"]');
  const state = app && app.getAttribute("data-test-script-state");
  if (state !== "notRunning") out.push(`script ${state}`);
  if (document.querySelector('[data-stale="true"]')) out.push("stale elements");
  if (document.querySelector('[data-testid="stSkeleton"]')) out.push("skeleton");
  const audio = [...document.querySelectorAll("audio")];
  const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
  if (audio.length < (expect.audio || 0)) out.push(`${audio.length}/${expect.audio} players`);
  if (images.length < (expect.images || 0)) out.push(`${images.length}/${expect.images} images`);
  const charts = document.querySelectorAll('.js-plotly-plot, [data-testid="stVegaLiteChart"]').length;
  if (charts < (expect.charts || 0)) out.push(`${charts}/${expect.charts} charts`);
  if (expect.text && !document.body.innerText.includes(expect.text)) out.push(`no "${expect.text}"`);
  if (expect.chart_title && ![...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .some((c) => c.textContent.includes(expect.chart_title))) out.push(`no chart "${expect.chart_title}"`);
  const notReady = audio.filter((a) => a.readyState < 3).length;
  if (notReady) out.push(`${notReady} players not ready`);
  const undecoded = images.filter((i) => !(i.complete && i.naturalWidth > 0)).length;
  if (undecoded) out.push(`${undecoded} images not decoded`);
  const plotly = [...document.querySelectorAll(".js-plotly-plot")];
  const vega = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const unplotted = plotly.filter((p) => !(p._fullLayout && p.querySelector(".main-svg"))).length +
    vega.filter((v) => !v.querySelector("svg.marks .mark-group, canvas.marks")).length;
  if (unplotted) out.push(`${unplotted} charts not drawn`);
  const frames = [...document.querySelectorAll('[data-testid="stDataFrame"]')].filter((f) => f.checkVisibility());
  const undrawn = frames.filter((f) => !f.querySelector("canvas")).length;
  if (undrawn) out.push(`${undrawn} dataframes not drawn`);
  return out;
}

function counts() {
  return {
    audio: document.querySelectorAll("audio").length,
    images: document.querySelectorAll('[data-testid="stImage"] img').length,
    charts: document.querySelectorAll('.js-plotly-plot, [data-testid="stVegaLiteChart"]').length,
    http_kb: Math.round(performance.getEntriesByType("resource")
      .filter((r) => r.name.includes("/media/") || r.name.includes("/app/static/"))
      .reduce((s, r) => s + (r.encodedBodySize || 0), 0) / 1024),
  };
}

function procs() {
  // pid -> [ppid, CPU ticks of the process and its waited-for children]
  const table = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      table.set(+d, [+f[1], +f[11] + +f[12] + +f[13] + +f[14]]);
    } catch {} // exited meanwhile
  }
  return table;
}

function cpu(rootPid) {
  // CPU seconds of rootPid and all its descendants, now
  const table = procs();
  let ticks = 0;
  for (const [pid, [, t]] of table) {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = (table.get(p) || [1])[0], hops++) {
      if (p === rootPid) { ticks += t; break; }
    }
  }
  return ticks / TICKS;
}

async function until(page, fn, arg) {
  // polled every animation frame: returns the tab's clock at the first frame where fn (a function or its
  // source) holds
  const expr = `(${fn.toString()})(${JSON.stringify(arg ?? null)}) ? performance.now() : false`;
  const h = await page.waitForFunction(expr, null, { polling: "raf", timeout: TIMEOUT });
  return Math.round(await h.jsonValue());
}

async function download(page, v, name, prefix, out) {
  // click the button ``name`` -> main: the download's response arrived, complete: the file saved (ms after the
  // click), its size and the CPU both sides used meanwhile
  const c0 = [cpu(process.pid), cpu(v.server_pid)];
  const t0 = await page.evaluate(() => performance.now());
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: TIMEOUT }),
                                  page.getByRole("button", { name }).click()]);
  out[`${prefix}main_ms`] = Math.round(await page.evaluate(() => performance.now()) - t0);
  const file = await dl.path();
  out[`${prefix}complete_ms`] = Math.round(await page.evaluate(() => performance.now()) - t0);
  out[`${prefix}file_kb`] = Math.round(fs.statSync(file).size / 1024);
  out[`${prefix}cpu_browser_s`] = +(cpu(process.pid) - c0[0]).toFixed(2);
  out[`${prefix}cpu_server_s`] = +(cpu(v.server_pid) - c0[1]).toFixed(2);
}

async function step(page, v, s, out) {
  // one step of a visit (see the header), timed into out with its prefix
  const a = s.act;
  if (a.download) return download(page, v, a.download, s.prefix, out);
  let act;
  if (a.fill !== undefined) {
    const box = page.getByLabel(new RegExp(a.fill));
    await box.fill(String(a.value));
    act = async () => { const t = await page.evaluate(() => performance.now()); await box.press("Enter");
                        return Math.round(t); };
  } else if (a.upload) {
    const input = page.locator('[data-testid="stFileUploader"] input[type="file"]');
    act = async () => { const t = await page.evaluate(() => performance.now()); await input.setInputFiles(a.upload);
                        return Math.round(t); };
  } else {
    const target = page.getByText(a.click, { exact: true });
    await target.waitFor({ timeout: TIMEOUT });
    act = async () => { const t = await page.evaluate(() => performance.now()); await target.click();
                        return Math.round(t); };
  }
  await timed(page, v, act, s.kind, s.arg ?? null, s.expect || {}, s.prefix, out);
}

async function timed(page, v, act, kind, arg, expect, prefix, out) {
  // run act() (a navigation or an input) -> main / complete in ms of the tab's clock after act's start (navigation:
  // its start), and the CPU both sides used meanwhile
  const c0 = [cpu(process.pid), cpu(v.server_pid)];
  const t0 = await act();
  out[`${prefix}main_ms`] = (await until(page, MAIN[kind], arg)) - t0;
  if (LIVE.has(kind)) { // a live view that says why it cannot run is complete once idle: nothing else will come
    const why = await page.evaluate(unavailable);
    if (why) { out[`${prefix}unavailable`] = why; expect = {}; }
  }
  try {
    out[`${prefix}complete_ms`] = (await until(page, `(e) => (${missing.toString()})(e).length === 0`, expect)) - t0;
  } catch (err) {
    out[`${LEGACY.has(prefix) ? "" : prefix}missing`] = await page.evaluate(`(${missing.toString()})(${JSON.stringify(expect)})`).catch(() => []);
    throw err;
  }
  out[`${prefix}cpu_browser_s`] = +(cpu(process.pid) - c0[0]).toFixed(2);
  out[`${prefix}cpu_server_s`] = +(cpu(v.server_pid) - c0[1]).toFixed(2);
}

const launch = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
};
const viewport = { width: 1400, height: 1000 };
const browser = process.env.PROFILE_DIR
  ? await chromium.launchPersistentContext(process.env.PROFILE_DIR, { ...launch, viewport })
  : await chromium.launch(launch);
const context = process.env.PROFILE_DIR ? browser : await browser.newContext({ viewport });
const LEGACY = new Set(["", "rerun_"]); // the original rows' keys: unprefixed error / missing / counts

try {
  for (const v of visits) {
    const page = await context.newPage();
    let wsKb = 0;
    page.on("websocket", (ws) => ws.on("framereceived", (f) => { wsKb += (f.payload?.length || 0) / 1024; }));
    const kind = v.path.split("?")[0].replace("/", "") || "overview";
    const out = { name: v.name, app: v.app, path: v.path };
    const snapshot = async (prefix) => {
      const got = { ...(await page.evaluate(counts)), ws_kb: Math.round(wsKb) };
      for (const [k, x] of Object.entries(got)) out[`${LEGACY.has(prefix) ? "" : prefix}${k}`] = x;
    };
    const go = async () => { await page.goto(`${v.base}${v.path}`, { waitUntil: "commit", timeout: TIMEOUT }); return 0; };
    const steps = [{ prefix: "", nav: true }, ...(v.steps || [])];
    for (const s of steps) {
      try {
        if (s.nav) await timed(page, v, go, kind, v.expect?.neuron ?? null, v.expect || {}, "", out);
        else await step(page, v, s, out);
        await snapshot(s.prefix);
      } catch (err) {
        out[LEGACY.has(s.prefix) ? "error" : `${s.prefix}error`] = String(err).split("\n")[0];
        if (LEGACY.has(s.prefix)) Object.assign(out, await page.evaluate(counts).catch(() => ({})));
        for (const later of steps.slice(steps.indexOf(s) + 1)) {
          if (!LEGACY.has(later.prefix)) out[`${later.prefix}error`] = `not run: step "${s.prefix}" failed`;
        }
        break;
      }
    }
    console.log(JSON.stringify(out));
    await page.close();
  }
} finally {
  await browser.close();
}
