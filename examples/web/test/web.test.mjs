// The dashboard page in headless Chromium against a running `state serve --web`:
// sign in, change the layout, reload, the layout is restored; signed in as another
// client, none of it is visible; a change made in one tab appears live in another.
//   node web.test.mjs http://127.0.0.1:PORT TOKEN_A TOKEN_B
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [base, tokenA, tokenB] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic"],
});

after(() => browser.close());

async function signIn(page, token) {
  await page.goto(base + "/");
  await page.fill("#token", token);
  await page.click("#signin-button");
  await page.waitForSelector("#board:not([hidden])");
}

test("a layout saved in the page is restored after a reload, and only for its client", async () => {
  {
    const a = await browser.newContext();
    const page = await a.newPage();
    await signIn(page, tokenA);
    assert.equal(await page.inputValue("#cols"), "3");
    await page.selectOption("#cols", "2");
    await page.waitForSelector("#saved:has-text('Saved.')");
    await page.click("li[data-widget='Power'] button");
    await page.waitForFunction(() => document.querySelector("#widgets li:nth-child(2)")?.dataset.widget === "Power");
    await page.reload();
    await page.waitForSelector("#board:not([hidden])");
    assert.equal(await page.inputValue("#cols"), "2");
    const order = await page.$$eval("#widgets li", (lis) => lis.map((li) => li.dataset.widget));
    assert.deepEqual(order, ["Temperature", "Power", "Humidity", "Doors"]);
    await page.screenshot({ path: process.env.SCREENSHOT || "/tmp/libstate-dashboard.png" });

    const b = await browser.newContext();
    const other = await b.newPage();
    await signIn(other, tokenB);
    assert.equal(await other.inputValue("#cols"), "3");
    const defaults = await other.$$eval("#widgets li", (lis) => lis.map((li) => li.dataset.widget));
    assert.deepEqual(defaults, ["Temperature", "Humidity", "Power", "Doors"]);

    const c = await browser.newContext();
    const bad = await c.newPage();
    await bad.goto(base + "/");
    await bad.fill("#token", "not-a-token");
    await bad.click("#signin-button");
    await bad.waitForSelector("#status:has-text('Sign-in failed')");
    assert.equal(await bad.isHidden("#board"), true);
  }
});

test("a layout changed in one tab appears in a second tab without reloading, not in another client's", async () => {
  const ctx = await browser.newContext();
  const one = await ctx.newPage();
  const two = await ctx.newPage();
  const bobs = await (await browser.newContext()).newPage();
  await signIn(one, tokenA);
  await signIn(two, tokenA);
  await signIn(bobs, tokenB);
  // Each tab has its event stream open, so every later change reaches it.
  for (const p of [one, two, bobs]) await p.waitForSelector("body[data-live='open']");
  const bobsCols = await bobs.inputValue("#cols");
  const next = (await one.inputValue("#cols")) === "4" ? "1" : "4";
  await one.selectOption("#cols", next);
  await one.waitForSelector("#saved:has-text('Saved.')");
  await two.waitForFunction((v) => document.querySelector("#cols").value === v, next);
  await one.selectOption("#theme", "dark");
  await two.waitForFunction(() => document.body.classList.contains("dark"));
  // The other client's tab learned nothing of it (its own stream is still open).
  assert.equal(await bobs.inputValue("#cols"), bobsCols);
  assert.equal(await bobs.evaluate(() => document.body.classList.contains("dark")), false);
  await one.selectOption("#theme", "light");
  await two.waitForFunction(() => !document.body.classList.contains("dark"));
  await ctx.close();
});
