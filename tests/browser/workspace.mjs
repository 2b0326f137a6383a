// The agent workspace's first-user bugs, in real headless Chromium: a logged-out page
// shows only the log-in; a first login is Away; a refused chat start keeps its reason
// and does not loop; the first message of every chat reaches the agent's pane however
// fast the agent answers (`rounds` chats in a row); wrap-up starts with "Case
// resolved" unticked and leaves nothing on the card that still acts; the pages fit a
// 390 px wide phone.
//
// usage: node workspace.mjs <http base> <agent> <password> <artifacts dir> <rounds>
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launch, step } from "./desk.mjs";

const [base, agent, password, artifacts, rounds = "20"] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
let page;
const overflow = p => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await ctx.newPage();
  page.on("console", m => console.log(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", e => console.log(`pageerror: ${e.message}`));
  // Chromium reports each thing the Content-Security-Policy blocked on the console.
  const blocked = [];
  const watchCsp = p => p.on("console", m => { if (/Content Security Policy/i.test(m.text())) blocked.push(m.text()); });
  watchCsp(page);

  // Logged out: the log-in form and nothing else.
  const resp = await page.goto(`${base}/agent`);
  const csp = resp.headers()["content-security-policy"] || "";
  await page.getByRole("button", { name: "Log in" }).waitFor();
  const visible = async sel => page.locator(sel).isVisible();
  step("logged out", {
    me: await visible("#me"), desk: await visible("#desk"),
    logout: await page.getByRole("button", { name: "Log out" }).isVisible(),
    presence: await page.getByLabel("Presence").isVisible(),
    login: await visible("#login"),
    csp,
  });
  await page.screenshot({ path: `${artifacts}/logged-out-1280.png` });

  // A first login is Away: the agent chooses when work comes.
  await page.getByLabel("Name").fill(agent);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#presence-now[data-presence]").waitFor();
  step("logged in", {
    badge: await page.locator("#presence-now").innerText(),
    menu: await page.getByLabel("Presence").inputValue(),
  });
  await page.getByLabel("Presence").selectOption("available");
  await page.locator("#presence-now", { hasText: "Available" }).waitFor();
  await page.setViewportSize({ width: 390, height: 844 });
  const idleOverflow = await overflow(page);
  await page.screenshot({ path: `${artifacts}/idle-390.png`, fullPage: true });
  // On a phone the columns are tabs: one shows at a time.
  const shown = () => page.locator("#offers, #work, #customer").evaluateAll(s => s.filter(x => x.checkVisibility()).map(x => x.id));
  const tabs = { first: await shown() };
  await page.getByRole("tab", { name: "Customer" }).click();
  tabs.customer = await shown();
  await page.getByRole("tab", { name: /Incoming/ }).click();
  await page.setViewportSize({ width: 1280, height: 800 });
  tabs.wide = await shown();
  // `?` lists the shortcuts; Escape closes the list.
  await page.locator("body").press("?");
  const shortcuts = await page.locator("#shortcuts").evaluate(d => ({ open: d.open, text: d.innerText }));
  await page.keyboard.press("Escape");
  shortcuts.closed = !(await page.locator("#shortcuts").evaluate(d => d.open));
  step("idle", { tabs, shortcuts });

  // A customer types a bad address: the reason stays, nothing loops.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const c0 = await phone.newPage();
  watchCsp(c0);
  await c0.goto(`${base}/chat`);
  // Before a chat: who we are, the privacy notice, and that an agent is there.
  await c0.locator("#hint:not(:empty)").waitFor({ timeout: 5000 });
  const about = {
    business: await c0.locator("#business").innerText(),
    title: await c0.title(),
    privacy: await c0.locator("#privacy").innerText(),
    link: await c0.getByRole("link", { name: "Privacy policy" }).getAttribute("href"),
    hint: await c0.locator("#hint").innerText(),
  };
  await c0.getByLabel("Your name").fill("Someone");
  await c0.getByLabel("E-mail or phone").fill("not an address");
  await c0.getByRole("button", { name: "Start chat" }).click();
  await c0.locator("#error:not(:empty)").waitFor({ timeout: 10000 });
  const refused = await c0.locator("#error").innerText();
  await c0.waitForTimeout(3000);
  step("refused", {
    about,
    error: refused,
    after: await c0.locator("#error").innerText(),
    status: await c0.locator("#status").innerText(),
    form: await c0.getByRole("button", { name: "Start chat" }).isVisible(),
    overflow: await overflow(c0),
  });
  await c0.screenshot({ path: `${artifacts}/chat-refused-390.png`, fullPage: true });
  await phone.close();

  // Chats one after another, each answered the moment it is offered.
  const missing = [];
  let wrap = null, canned = null, rated = null;
  // The status bar counts since midnight UTC: rounds that cross it are split.
  const day0 = new Date().toISOString().slice(0, 10);
  for (let i = 1; i <= +rounds; i++) {
    const cctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const c = await cctx.newPage();
    watchCsp(c);
    await c.goto(`${base}/chat`);
    await c.getByLabel("Your name").fill(`Customer ${i}`);
    await c.getByLabel("E-mail or phone").fill(`customer${i}@example.com`);
    await c.getByRole("button", { name: "Start chat" }).click();
    await c.getByPlaceholder("Type a message").waitFor();
    const first = `first message ${i}`;
    await c.getByPlaceholder("Type a message").fill(first);
    await c.getByRole("button", { name: "Send", exact: true }).click();
    const answer = page.getByRole("button", { name: "Answer" });
    await answer.waitFor({ timeout: 15000 });
    await answer.click();
    const pane = page.locator(".chat .messages");
    try {
      await pane.getByText(first).waitFor({ timeout: 5000 });
    } catch {
      missing.push({ round: i, pane: await pane.allInnerTexts() });
    }
    if (i === 1) {
      // A ready reply, filled for this customer and agent, goes into the box; sent,
      // the customer reads it.
      const pick = page.getByLabel("Canned response");
      await pick.locator("option", { hasText: "Greeting" }).waitFor({ state: "attached" });
      await pick.selectOption({ label: "Greeting" });
      const box = page.locator(".chat .say .text");
      canned = { typed: await box.inputValue(), focused: await box.evaluate(b => b === document.activeElement) };
      await page.locator(".chat .say").getByRole("button", { name: "Send", exact: true }).click();
      await c.getByText(canned.typed).waitFor({ timeout: 5000 });
      canned.received = true;
    }
    await c.getByRole("button", { name: "End chat" }).click();
    await page.getByRole("button", { name: "Finish wrap-up" }).waitFor({ timeout: 10000 });
    if (i === 1) {
      // The customer rates the chat, then can start another.
      await c.getByText("How did we do?").waitFor({ timeout: 5000 });
      await c.screenshot({ path: `${artifacts}/chat-rating-390.png`, fullPage: true });
      await c.getByLabel("5 very good").check();
      await c.getByLabel("How likely are you to recommend us to a friend? (optional)").selectOption("10");
      await c.getByLabel("Anything to add? (optional)").fill("Quick and kind");
      await c.getByRole("button", { name: "Send rating" }).click();
      await c.getByText("Thank you for your rating.").waitFor({ timeout: 5000 });
      await c.getByRole("button", { name: "Start a new chat" }).click();
      rated = { form_again: await c.getByRole("button", { name: "Start chat" }).isVisible(),
        log_cleared: (await c.locator("#log").innerText()) === "", overflow: await overflow(c) };
    }
    if (i === 1) {
      wrap = {
        resolved: await page.getByLabel("Case resolved").isChecked(),
        live: await page.locator(".chat button:not([disabled]), .chat input:not([disabled])")
          .evaluateAll(b => b.filter(x => !x.closest(".wrap-up")).map(x => x.textContent || x.getAttribute("aria-label"))),
      };
      await page.setViewportSize({ width: 390, height: 844 });
      wrap.overflow = await overflow(page);
      await page.screenshot({ path: `${artifacts}/chat-wrap-up-390.png`, fullPage: true });
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.screenshot({ path: `${artifacts}/chat-wrap-up-1280.png`, fullPage: true });
    }
    await page.getByRole("button", { name: "Finish wrap-up" }).click();
    await page.getByRole("button", { name: "Finish wrap-up" }).waitFor({ state: "detached" });
    await cctx.close();
  }
  // The status bar's service level today: every chat was answered at once.
  const crossed = new Date().toISOString().slice(0, 10) !== day0;
  const sl = page.locator('#service-level [data-queue="support"]',
    { hasText: crossed ? /100 % \((\d+)\/\1\)/ : `(${rounds}/${rounds})` });
  // The figure may be up to 10 s old when work ends.
  await sl.waitFor({ timeout: 20000 }).catch(async e => {
    throw new Error(`${e.message}\nthe status bar says: ${await page.locator("#service-level").innerText()}`);
  });
  const serviceLevel = await sl.innerText();
  await page.setViewportSize({ width: 1920, height: 1080 });
  const wide = await overflow(page);
  await page.screenshot({ path: `${artifacts}/idle-1920.png` });
  await page.setViewportSize({ width: 1280, height: 800 });
  step("rounds", { rounds: +rounds, missing, wrap, canned, rated, idle_overflow: idleOverflow, service_level: serviceLevel, wide_overflow: wide });

  // Work waiting in the agent's queue shows in the status bar while they cannot take it.
  await page.getByLabel("Presence").selectOption("away");
  await page.locator("#presence-now", { hasText: "Away" }).waitFor();
  const qctx = await browser.newContext();
  const cq = await qctx.newPage();
  await cq.goto(`${base}/chat`);
  await cq.getByLabel("Your name").fill("Waiting Customer");
  await cq.getByLabel("E-mail or phone").fill("waiting@example.com");
  await cq.getByRole("button", { name: "Start chat" }).click();
  const stat = page.locator('#queues [data-queue="support"][data-waiting="1"]');
  await stat.waitFor({ timeout: 5000 });
  // The oldest wait counts up, once a second, without a new push from the gateway.
  await page.locator('#queues [data-queue="support"]', { hasText: /oldest 0:0[1-9]/ }).waitFor({ timeout: 5000 });
  const waiting = await stat.innerText();
  await page.screenshot({ path: `${artifacts}/queue-waiting-1280.png` });
  await cq.getByRole("button", { name: "End chat" }).click();
  await page.locator('#queues [data-queue="support"][data-waiting="0"]').waitFor({ timeout: 5000 });
  step("queue waiting", { waiting, after: await page.locator('#queues [data-queue="support"]').innerText(),
    offers: await page.locator(".offer").count(), blocked });
  await qctx.close();
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
