// Navigation in a real browser (tests/test_browser_navigation.py): every page's address opens that page, the
// root opens the Overview, and Streamlit's "Page not found" dialog never shows. env: BASE_URL, USER_DATA_DIR.
// Prints one JSON line of findings; exits non-zero on the first failed check.
import { chromium } from "playwright-core";

const base = process.env.BASE_URL;
const found = { visits: [] };
const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function visit(page, path, heading) {
  await page.goto(`${base}${path}`, { waitUntil: "domcontentloaded" });
  await page.getByRole("heading", { name: heading }).waitFor();
  await page.waitForTimeout(1500); // the dialog comes with the page's first script run
  const notFound = await page.getByText("Page not found").count();
  found.visits.push({ path, url: new URL(page.url()).pathname, notFound });
  if (notFound) throw new Error(`"Page not found" after opening ${path}`);
}

try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(60000);
  const overview = "AND Explorer: overview";
  await visit(page, "/overview", overview); // a fresh server's first request
  await visit(page, "/", overview);
  await visit(page, "/overview", overview); // the report: /overview after / said "Page not found"
  await visit(page, "/concepts", "Concepts");
  await page.locator('[data-testid="stSidebarNav"]').getByText("Overview").click();
  await page.getByRole("heading", { name: overview }).waitFor();
  found.clicked = new URL(page.url()).pathname;
  console.log(JSON.stringify(found));
} catch (err) {
  console.log(JSON.stringify({ ...found, error: String(err) }));
  process.exitCode = 1;
} finally {
  await context.close();
}
