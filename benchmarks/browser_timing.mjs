// Page timings in a real Chromium for benchmarks/bench_browser.py (which starts the apps and reads our output).
// env: VISITS (JSON list of {name, base, server_pid, path, expect: {audio, images, text}, rater?, neuron?}),
//      PLAYWRIGHT_DIR (folder of the playwright-core package: tests/browser/node_modules/playwright-core).
// Each visit opens a new tab in one browser context (as a person opening a link: the HTTP cache is shared, the
// page's JavaScript is loaded and run anew), navigates to base + path and records, in ms since navigation start
// (performance.now() of the tab):
//   main     = the page's first data element is visible (MAIN below, per page);
//   complete = Streamlit idle (script state "notRunning", no stale element, no skeleton) and everything drawn:
//              every chart drawn (plotly or Vega-Lite), every image decoded, every audio player ready to play
//              (readyState >= 3, HAVE_FUTURE_DATA), every visible dataframe's canvas laid out (one in a closed
//              expander is not drawn until it is opened), and the page's expected players / images / charts / text
//              present.
// A visit with ``rater`` then types that rater name, one with ``neuron`` types that neuron number into the sidebar
// (a person's next neuron, in the same tab), and times that rerun the same way (rerun_main_ms, rerun_complete_ms).
// cpu_browser_s / cpu_server_s: CPU seconds the browser's processes / the app server used from navigation start to
// complete (rerun: its own), read from /proc: what the visit costs independently of other jobs on the machine.
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
  concepts: () => !!document.querySelector('.js-plotly-plot .main-svg, [data-testid="stVegaLiteChart"] .mark-group'),
  pruning: () => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .some((e) => e.innerText.includes("neurons pruned")) ||
    [...document.querySelectorAll('[data-testid="stAlert"]')].some((e) => e.innerText.includes("unavailable")),
  human_eval: () => !!document.querySelector('input[aria-label="Your rater name"]'),
  rated: () => document.body.innerText.includes("Description 1:"),
};

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

async function timed(page, v, act, kind, arg, expect, prefix, out) {
  // run act() (a navigation or an input) -> main / complete in ms of the tab's clock after act's start (navigation:
  // its start), and the CPU both sides used meanwhile
  const c0 = [cpu(process.pid), cpu(v.server_pid)];
  const t0 = await act();
  out[`${prefix}main_ms`] = (await until(page, MAIN[kind], arg)) - t0;
  try {
    out[`${prefix}complete_ms`] = (await until(page, `(e) => (${missing.toString()})(e).length === 0`, expect)) - t0;
  } catch (err) {
    out.missing = await page.evaluate(`(${missing.toString()})(${JSON.stringify(expect)})`).catch(() => []);
    throw err;
  }
  out[`${prefix}cpu_browser_s`] = +(cpu(process.pid) - c0[0]).toFixed(2);
  out[`${prefix}cpu_server_s`] = +(cpu(v.server_pid) - c0[1]).toFixed(2);
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
    const out = { name: v.name, app: v.app, path: v.path };
    try {
      const go = async () => { await page.goto(`${v.base}${v.path}`, { waitUntil: "commit", timeout: TIMEOUT }); return 0; };
      await timed(page, v, go, kind, v.expect?.neuron ?? null, v.expect || {}, "", out);
      if (v.rater || v.neuron !== undefined) {
        const box = v.rater ? page.getByLabel("Your rater name") : page.getByLabel(/^Neuron \(0\.\./);
        await box.fill(String(v.rater ?? v.neuron));
        const enter = async () => { const t = await page.evaluate(() => performance.now()); await box.press("Enter");
                                    return Math.round(t); };
        await timed(page, v, enter, v.rater ? "rated" : kind, v.rater ? null : v.neuron, v.rerun_expect || {},
                    "rerun_", out);
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
