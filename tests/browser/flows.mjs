// Real-browser flows for AND Explorer, run by tests/test_browser.py against a running app.
// env: BASE_URL (http://127.0.0.1:PORT), USER_DATA_DIR (fresh folder), SCREENSHOT_DIR (optional),
// NEURON (model/layer/neuron to open; default the test fixture's), PRUNE_METHOD (default OCP),
// UPLOAD_CLIP (an audio file for Query by sound; default a demo clip).
// Prints one JSON line of findings; exits non-zero on the first failed check.
import { chromium } from "playwright-core";
import path from "node:path";

const base = process.env.BASE_URL;
const shots = process.env.SCREENSHOT_DIR || "";
const T = 60000;
const found = {};
const [nModel, nLayer, nIndex] = (process.env.NEURON || "tinynet/block1.conv/3").split("/");
const pruneMethod = process.env.PRUNE_METHOD || "OCP";

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

async function shot(page, name) {
  if (!shots) return;
  await page.waitForTimeout(800); // let the charts finish drawing
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function chartsDrawn(page, n) {
  // waits for n Vega-Lite charts with their marks drawn -> the number of charts on the page
  await page.waitForFunction((k) => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .filter((c) => c.querySelector("svg.marks .mark-group, canvas.marks")).length >= k, n, { timeout: T });
  return await page.locator('[data-testid="stVegaLiteChart"]').count();
}

const SVG_IMAGE = 'img[src^="data:image/svg+xml"]'; // a chart drawn as a picture (and_engine/explorer/svg_charts.py)

async function picturesDrawn(page, n) {
  // waits for n SVG chart pictures decoded and laid out -> their titles (text.title), in page order
  await page.waitForFunction((k) => [...document.querySelectorAll('img[src^="data:image/svg+xml"]')]
    .filter((i) => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 200).length >= k, n,
  { timeout: T });
  return await page.locator(SVG_IMAGE).evaluateAll((imgs) => imgs.map((img) => {
    const bytes = Uint8Array.from(atob(img.src.split(",")[1]), (c) => c.charCodeAt(0));
    const doc = new DOMParser().parseFromString(new TextDecoder().decode(bytes), "image/svg+xml");
    return doc.querySelector("text.title")?.textContent ?? "";
  }));
}

function chart(page, title) {
  // the Vega-Lite chart whose (SVG) title contains ``title``
  return page.locator('[data-testid="stVegaLiteChart"]').filter({ hasText: title });
}

// a viewport screenshot with ``text`` at its top (one view of a long page)
async function shotAt(page, text, name) {
  if (!shots) return;
  await page.getByText(text, { exact: true }).first().scrollIntoViewIfNeeded();
  await page.getByText(text, { exact: true }).first().evaluate((e) => e.scrollIntoView({ block: "start" }));
  await page.waitForTimeout(800);
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

async function metric(page, label) {
  const m = page.locator('[data-testid="stMetric"]').filter({ hasText: label });
  return (await m.locator('[data-testid="stMetricValue"]').innerText()).trim();
}

const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 1600 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(T);

  // 1. a fresh server's first request deep-links a neuron: app.py's navigation, the neuron, its audio players
  const q = new URLSearchParams({ model: nModel, layer: nLayer, neuron: nIndex });
  await page.goto(`${base}/neuron?${q}`, { waitUntil: "domcontentloaded" });
  await page.getByText(`${nModel} / ${nLayer} / neuron ${nIndex}`).waitFor();
  const nav = await page.locator('[data-testid="stSidebarNav"]').innerText();
  check(nav.includes("Human evaluation") && !nav.includes("shared"), `app.py's page list, got: ${nav}`);
  await page.locator("audio").nth(9).waitFor({ state: "attached" });
  const audios = page.locator("audio");
  found.audio_players = await audios.count();
  check(found.audio_players === 10, `10 audio players (top-K, bottom-K), found ${found.audio_players}`);
  const src = await audios.first().getAttribute("src");
  const resp = await page.request.get(new URL(src, base).href);
  found.audio_content_type = resp.headers()["content-type"];
  check(resp.ok() && found.audio_content_type.startsWith("audio/"), `audio served (${resp.status()})`);
  // the quantile clips' players on demand: 10 more
  found.quantile_rows = await page.locator("table").filter({ hasText: "quantile" }).locator("tbody tr").count();
  await page.getByText("play the quantile clips here", { exact: true }).click();
  await page.locator("audio").nth(19).waitFor({ state: "attached" });
  found.audio_players_with_quantiles = await audios.count();
  // every clip playable (the browser has decoded enough to play) and its time x frequency image drawn
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll("audio")], im = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return a.length === 20 && a.every((x) => x.readyState >= 3 && x.duration > 4) &&
      im.length === 11 && im.every((x) => x.complete && x.naturalWidth > 0);
  }, null, { timeout: T });
  found.audio_playable = await audios.evaluateAll((a) => a.filter((x) => x.readyState >= 3 && !x.error).length);
  const svgImage = SVG_IMAGE; // the activation histogram, a picture
  found.clip_images = await page.locator(`[data-testid="stImage"] img:not(${svgImage})`).count();
  found.map_images = await page.locator('[data-testid="stImage"]').filter({ hasText: "spectrogram + neuron map" }).count();
  await page.getByText("Calibrated summary S_h^c").waitFor();
  found.neuron_charts = await page.locator('[data-testid="stVegaLiteChart"]').count(); // none: no Vega to load
  // the histogram drawn (decoded, laid out) with a bar per bin and a mark (line + triangle) per top/bottom clip
  const hist = await page.locator(svgImage).evaluate((img) => {
    const doc = new DOMParser().parseFromString(atob(img.src.split(",")[1]), "image/svg+xml");
    return { drawn: img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 300,
             bars: doc.querySelectorAll("rect.bar").length, marks: doc.querySelectorAll("g.mark path").length,
             title: doc.querySelector("text").textContent };
  });
  check(hist.drawn && hist.title === "activation over the probing set", `histogram drawn: ${JSON.stringify(hist)}`);
  found.histogram_bars = hist.bars;
  found.histogram_marks = hist.marks; // a triangle per clip
  // every explanation shows its scores (the S_h line and the table of all explanations)
  found.neuron_scores = await page.getByText(/S_h scores: embedding AUC \d\.\d\d/).first().innerText();
  await page.getByText("Scores: how well each explanation predicts this neuron on other clips").waitFor();
  await shot(page, "neuron");

  // 2. overview
  await page.goto(base, { waitUntil: "domcontentloaded" });
  await page.getByRole("heading", { name: "AND Explorer: overview" }).waitFor();
  await page.getByText("Last-layer accuracy").waitFor();
  // Figures 5 and 6, top-20 adjectives, the score distributions by explanation source per layer and within one
  // layer: pictures, drawn (no Vega to load)
  found.overview_pictures = await picturesDrawn(page, 5);
  found.overview_charts = await page.locator('[data-testid="stVegaLiteChart"]').count();
  found.score_charts = found.overview_pictures.filter((t) => t.includes("AUC")).length;
  await shot(page, "overview");

  // 3. concepts
  await page.goto(`${base}/concepts`, { waitUntil: "domcontentloaded" });
  await page.getByText("Interpretability clusters").waitFor();
  await page.locator('[data-testid="stImage"] img').first().waitFor();
  await shot(page, "concepts");

  // 4. pruning on, then off
  await page.goto(`${base}/pruning`, { waitUntil: "domcontentloaded" });
  await page.locator('[data-testid="stMetric"]').filter({ hasText: "neurons pruned" }).waitFor();
  if (pruneMethod !== "OCP") {
    await page.getByRole("radiogroup", { name: "method" }).getByText(pruneMethod, { exact: true }).click();
    await page.getByText(new RegExp(`after pruning for .* \\(${pruneMethod}\\)`)).first().waitFor();
  }
  found.pruned_on = await metric(page, "neurons pruned");
  found.pruning_charts = await chartsDrawn(page, 2); // Figure 10, the chosen clip's prediction
  check(Number(found.pruned_on) > 0, `neurons pruned with pruning on: ${found.pruned_on}`);
  await shot(page, "pruning");
  await page.getByText("prune the selected neurons").click();
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll('[data-testid="stMetric"]')].find((e) => e.innerText.includes("neurons pruned"));
    return m && m.querySelector('[data-testid="stMetricValue"]').innerText.trim() === "0";
  }, null, { timeout: T });
  found.pruned_off = await metric(page, "neurons pruned");

  // 5. query by sound: upload a clip file, then open a neuron from the result
  await page.goto(`${base}/by_sound`, { waitUntil: "domcontentloaded" });
  await page.getByText("nothing is kept on disk").waitFor();
  const clip = process.env.UPLOAD_CLIP || path.resolve("../../data/demo/audio/crackling_fire/crackling_fire_05.ogg");
  await page.locator('[data-testid="stFileUploader"] input[type="file"]').setInputFiles(clip);
  await page.getByText(/^percentile \d/).first().waitFor({ timeout: 120000 });
  const results = page.locator('[data-testid="stMain"] a[data-testid="stPageLink-NavLink"]');
  await page.waitForFunction(() => !document.querySelector('[data-stale="true"]') && document.querySelector(
    '[data-testid="stApp"]')?.getAttribute("data-test-script-state") === "notRunning", null, { timeout: T });
  // a rerun (the uploader's state settling) may redraw the results: wait for the links to be back, then count
  await results.first().waitFor({ timeout: T }).catch(() => {});
  found.sound_results = await results.count(); // counted once the script has finished drawing every layer
  check(found.sound_results > 0, "query by sound lists neurons with links");
  await shot(page, "by_sound");
  const href = new URL(await results.first().getAttribute("href"), base);
  await results.first().click();
  const want = href.searchParams;
  await page.getByText(`${want.get("model")} / ${want.get("layer")} / neuron ${want.get("neuron")}`).waitFor();
  found.opened_from_sound = `${want.get("model")}/${want.get("layer")}/${want.get("neuron")}`;
  check(new URL(page.url()).searchParams.get("neuron") === want.get("neuron"), `neuron page opened: ${page.url()}`);

  // 6. the neuron page's views beyond the explanation: density, related neurons, effect on the output, quantiles
  await page.getByText("Activation density", { exact: true }).waitFor();
  await shotAt(page, "Activation density", "neuron_density_related");
  await page.getByText("measure it on the held-out clips (runs the model)").click();
  await chart(page, "change of each class's logit").waitFor({ timeout: 120000 });
  found.effect = await metric(page, "predictions changed");
  await shotAt(page, "Effect on the output", "neuron_effect");
  await page.getByText("Clips from every activation quantile", { exact: true }).waitFor();
  await shotAt(page, "Clips from every activation quantile", "neuron_quantiles");

  // 7. compare two models (one model: the page says why there is nothing to compare)
  await page.goto(`${base}/compare`, { waitUntil: "domcontentloaded" });
  await page.getByRole("heading", { name: "Compare two models" }).waitFor();
  await page.getByText(/Neurons matched by activation correlation|a comparison needs two models/).first().waitFor();
  found.compare = await page.getByText("a comparison needs two models").count() ? "one model" : "compared";
  if (found.compare === "compared") await chart(page, "with a partner").waitFor();
  await shot(page, "compare");

  // 8. rate a neuron and see the rating in the results
  await page.goto(`${base}/human_eval`, { waitUntil: "domcontentloaded" });
  const rater = page.getByLabel("Your rater name");
  await rater.fill("browser-rater");
  await rater.press("Enter");
  await page.getByText("Description 3:").waitFor();
  for (const [i, score] of [[1, "4"], [2, "2"], [3, "5"]]) {
    await page.getByRole("radiogroup", { name: `rating for description ${i}` }).getByText(score, { exact: true }).click();
  }
  await page.getByLabel("In your own words").fill("crackling sounds recorded outdoors");
  await shot(page, "human_eval");
  await page.getByRole("button", { name: "Save ratings" }).click();
  await page.getByText("Saved. Here is the next neuron.").waitFor().catch(() => {});
  await page.getByRole("tab", { name: "Results (Table 3)" }).click();
  await page.getByText("1 rater(s), 3 rating(s), 1 written summaries").waitFor({ timeout: 120000 });
  await page.locator('[data-testid="stDataFrame"]').first().waitFor({ timeout: 120000 }); // Table 3 (loads MiniLM)
  await page.getByText("Ratings vs automatic scores").waitFor();
  found.results = true;
  await shot(page, "human_eval_results");
  console.log(JSON.stringify(found));
} catch (err) {
  console.log(JSON.stringify({ ...found, error: String(err) }));
  process.exitCode = 1;
} finally {
  await context.close();
}
