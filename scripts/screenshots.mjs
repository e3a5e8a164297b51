// Screenshots of every page of AND Explorer for the docs: run by scripts/screenshots.sh against a running app.
// env: BASE_URL (http://127.0.0.1:PORT), OUT_DIR (where the PNGs go), USER_DATA_DIR (a fresh folder),
// NEURON (model/layer/neuron for the Neuron page; its model is also the one queried by sound), UPLOAD_CLIP (an
// audio file for Query by sound), PER_LAYER (its neurons per layer, default 2),
// ONLY (optional: comma-separated shot names to take, e.g. "by_sound,compare").
// Each page is shown 1400 px wide and as tall as its content (Streamlit scrolls inside the page, so the viewport
// is grown to the content's height), once the script has finished and every chart, image and player is drawn.
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const base = process.env.BASE_URL;
const out = path.resolve(process.env.OUT_DIR || "docs/screenshots");
const [nModel, nLayer, nIndex] = (process.env.NEURON || "yamnet-frozen/block13.pointwise/944").split("/");
const clipFile = path.resolve(process.env.UPLOAD_CLIP || "data/demo/audio/crackling_fire/crackling_fire_05.ogg");
const only = (process.env.ONLY || "").split(",").filter(Boolean);
const T = 180000;
const WIDTH = 1400;
const MAX_HEIGHT = 6000; // taller pages are cut into parts at section headings
const MAX_BYTES = 1.5e6; // larger PNGs are written as JPEG (quality 80) instead
const taken = {};

const want = (name) => !only.length || only.includes(name);
const t0 = Date.now();
const log = (msg) => console.error(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${msg}`);

async function settled(page) {
  // the script has finished, nothing is stale or spinning, every chart has its marks and every image is loaded
  await page.waitForFunction(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
    if (document.querySelector('[data-stale="true"], [data-testid="stSpinner"], [data-testid="stSkeleton"]')) return false;
    const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
    if (!charts.every((c) => c.querySelector("svg.marks .mark-group, canvas.marks"))) return false;
    return [...document.querySelectorAll("img")].every((im) => im.complete && im.naturalWidth > 0);
  }, null, { timeout: T, polling: 500 });
  await page.waitForTimeout(1500); // last layout pass (charts resize once after their first draw)
}

async function contentHeight(page) {
  return await page.evaluate(() => {
    const main = document.querySelector('[data-testid="stMain"]') || document.scrollingElement;
    const block = main.querySelector('[data-testid="stMainBlockContainer"]') || main;
    return Math.ceil(Math.max(block.scrollHeight + block.getBoundingClientRect().top, main.scrollHeight));
  });
}

async function write(page, name, clip) {
  // one PNG (or JPEG if the PNG is too large) of ``clip`` ({x, y, width, height}) of the grown viewport
  let file = path.join(out, `${name}.png`);
  await page.screenshot({ path: file, clip });
  if (fs.statSync(file).size > MAX_BYTES) {
    fs.unlinkSync(file);
    file = path.join(out, `${name}.jpg`);
    await page.screenshot({ path: file, clip, type: "jpeg", quality: 80 });
  }
  taken[name] = { file: path.relative(process.cwd(), file), height: Math.round(clip.height),
                  bytes: fs.statSync(file).size };
}

async function shoot(page, name, cuts = []) {
  // grow the viewport to the content, then one image, or, when taller than MAX_HEIGHT, one per part: the parts
  // start at the headings of ``cuts`` ([[heading, suffix of the image's name], ...], in page order), without
  // ``cuts`` at the last section heading before every MAX_HEIGHT px (name_2, name_3, ...)
  log(`${name}: ready, waiting until drawn`);
  await settled(page);
  const h = await contentHeight(page);
  await page.setViewportSize({ width: WIDTH, height: h });
  await settled(page);
  const full = await contentHeight(page);
  if (full !== h) await page.setViewportSize({ width: WIDTH, height: full });
  await page.waitForTimeout(800);
  const parts = [[0, name]];
  if (full > MAX_HEIGHT) {
    for (const [heading, suffix] of cuts) {
      const box = await page.getByRole("heading", { name: heading }).first().boundingBox();
      parts.push([Math.floor(box.y - 16), `${name}_${suffix}`]);
    }
  }
  if (full > MAX_HEIGHT && !cuts.length) { // cut at the last section heading before each MAX_HEIGHT
    const tops = await page.locator('[data-testid="stMain"] h2, [data-testid="stMain"] h3')
      .evaluateAll((hs) => hs.map((h) => Math.floor(h.getBoundingClientRect().top - 16)));
    for (let start = 0, n = 2; full - start > MAX_HEIGHT; n++) {
      const cut = Math.max(...tops.filter((y) => y > start + MAX_HEIGHT / 2 && y <= start + MAX_HEIGHT));
      if (!Number.isFinite(cut)) break;
      parts.push([cut, `${name}_${n}`]);
      start = cut;
    }
  }
  for (const [i, [y, part]] of parts.entries()) {
    const end = i + 1 < parts.length ? parts[i + 1][0] : full;
    await write(page, part, { x: 0, y, width: WIDTH, height: end - y });
  }
  await page.setViewportSize({ width: WIDTH, height: 1000 });
}

async function open(page, url, ready) {
  await page.setViewportSize({ width: WIDTH, height: 1000 });
  await page.goto(`${base}/${url}`, { waitUntil: "domcontentloaded" });
  await ready();
}

const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: WIDTH, height: 1000 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(T);
  fs.mkdirSync(out, { recursive: true });

  if (want("overview")) {
    await open(page, "overview", () => page.getByText("Last-layer accuracy").first().waitFor());
    await shoot(page, "overview");
  }
  if (want("neuron")) {
    const q = new URLSearchParams({ model: nModel, layer: nLayer, neuron: nIndex });
    await open(page, `neuron?${q}`, () => page.getByText(`${nModel} / ${nLayer} / neuron ${nIndex}`).waitFor());
    await page.getByText("Calibrated summary S_h^c").first().waitFor();
    const toggle = page.getByText("measure it on the held-out clips (runs the model)");
    await page.getByText(/^measure it on the held-out clips|^Unavailable for/).first().waitFor();
    if (await toggle.count()) { // a model whose classes are the probing labels: measure the effect
      await toggle.click();
      await page.locator('[data-testid="stVegaLiteChart"]').filter({ hasText: "change of each class's logit" })
        .waitFor({ timeout: T });
    }
    await page.getByText("play the quantile clips here", { exact: true }).click(); // their players, on demand
    await page.locator('[data-testid="stMarkdownContainer"]').filter({ hasText: /^quantile 0.20 %/ }).first()
      .waitFor({ timeout: T });
    await shoot(page, "neuron", [["Activation density", "lower"], ["top-K clips (highest activation)", "clips"]]);
  }
  if (want("concepts")) {
    await open(page, "concepts", () => page.getByText("Interpretability clusters").first().waitFor());
    await shoot(page, "concepts");
  }
  if (want("pruning")) {
    await open(page, "pruning", () => page.locator('[data-testid="stMetric"]').filter({ hasText: "neurons pruned" })
      .waitFor());
    await shoot(page, "pruning");
  }
  if (want("by_sound")) {
    await open(page, "by_sound", () => page.getByText("nothing is kept on disk").waitFor());
    // the Neuron page's model, 2 neurons per layer (3, the default, makes a page of ~10,000 px)
    await page.locator('[data-testid="stSelectbox"]').filter({ hasText: "model" }).first().click();
    await page.getByRole("option", { name: nModel, exact: true }).click();
    await settled(page);
    const perLayer = page.getByLabel("neurons per layer");
    await perLayer.fill(process.env.PER_LAYER || "2");
    await perLayer.press("Enter");
    await settled(page);
    await page.locator('[data-testid="stFileUploader"] input[type="file"]').setInputFiles(clipFile);
    await page.getByText(/^percentile \d/).first().waitFor({ timeout: 300000 });
    await shoot(page, "by_sound");
  }
  if (want("compare")) {
    await open(page, "compare", () => page.getByRole("heading", { name: "Compare two models" }).waitFor());
    await page.getByText(/Neurons matched by activation correlation|a comparison needs two models/).first().waitFor();
    await shoot(page, "compare");
  }
  if (want("human_eval")) {
    await open(page, "human_eval", () => page.getByLabel("Your rater name").waitFor());
    const rater = page.getByLabel("Your rater name");
    await rater.fill("docs-rater");
    await rater.press("Enter");
    await page.getByText("Description 3:").waitFor();
    for (const [i, score] of [[1, "4"], [2, "2"], [3, "5"]]) {
      await page.getByRole("radiogroup", { name: `rating for description ${i}` }).getByText(score, { exact: true })
        .click();
    }
    await page.getByLabel("In your own words").fill("crackling sounds recorded outdoors");
    await shoot(page, "human_eval");
    await page.getByRole("button", { name: "Save ratings" }).click();
    await page.getByText("Saved. Here is the next neuron.").waitFor().catch(() => {});
    await page.getByRole("tab", { name: "Results (Table 3)" }).click();
    await page.getByText("Ratings vs automatic scores").waitFor({ timeout: 300000 });
    await page.locator('[data-testid="stDataFrame"]').first().waitFor({ timeout: 300000 });
    await shoot(page, "human_eval_results");
  }
  console.log(JSON.stringify(taken));
} catch (err) {
  const page = context.pages()[0];
  const at = path.join(os.tmpdir(), "screenshots-error.png"); // what the page showed when it failed
  if (page) await page.screenshot({ path: at }).catch(() => {});
  console.log(JSON.stringify({ ...taken, error: String(err), error_screenshot: at }));
  process.exitCode = 1;
} finally {
  await context.close();
}
