// An agent answers an e-mail in real headless Chromium: the customer's mail rings
// the desktop, the agent answers it, reads it formatted (the gateway's sanitised
// HTML in a sandboxed frame: the hostile parts of the mail run nothing, fetch
// nothing, open nothing), saves its attachment, and replies from the card.
// Output: `STEP <name> <json>` lines (read by tests/e2e/desktop.rs, which delivers
// the mail through a real Dovecot and reads the reply in the customer's mailbox).
//
// usage: node agent_mail.mjs <http base> <agent> <password> <artifacts dir>
import { mkdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { fail, launch, logIn, openPage, step } from "./desk.mjs";

const [base, agent, password, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
let page;
try {
  page = await openPage(browser, 1280, 900);
  let dialogs = 0, popups = 0;
  const away = [];
  page.on("dialog", d => { dialogs++; d.dismiss().catch(() => {}); });
  page.on("popup", () => { popups++; });
  page.context().on("request", r => { if (!r.url().startsWith(base)) away.push(r.url()); });
  await logIn(page, base, agent, password);
  const answer = page.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 30000 });
  const channel = await page.locator(".offer .channel").innerText();
  await answer.click();
  const card = page.locator(".chat");
  await card.waitFor({ timeout: 20000 });
  await card.locator(".messages li").first().waitFor({ timeout: 10000 });
  const frame = card.locator("iframe.mail-html");
  await frame.waitFor({ timeout: 10000 });
  const inside = page.frameLocator("iframe.mail-html");
  await inside.locator("p", { hasText: "Your invoice" }).waitFor({ timeout: 10000 });
  // Give anything hostile a moment to try (timers, image errors, autofocus).
  await page.waitForTimeout(1500);
  const save = card.getByRole("button", { name: /Save invoice\.pdf/ });
  const [file] = await Promise.all([page.waitForEvent("download"), save.click()]);
  const saved = readFileSync(await file.path()).toString("latin1");
  await page.screenshot({ path: `${artifacts}/mail.png`, fullPage: true });
  step("read", {
    channel,
    text: await card.locator(".messages li").first().innerText(),
    html: await inside.locator("body").innerHTML(),
    sandbox: await frame.getAttribute("sandbox"),
    title: await page.title(),
    pwned: await page.evaluate(() => window.pwned === undefined ? null : String(window.pwned)),
    dialogs, popups, away,
    download: { name: file.suggestedFilename(), starts: saved.slice(0, 8) },
  });
  await card.getByLabel("Message").fill("Hello Ada,\nthe invoice is paid.");
  await card.getByRole("button", { name: "Send", exact: true }).click();
  await card.locator(".delivery", { hasText: "sent" }).waitFor({ timeout: 20000 });
  step("replied", { dialogs, popups, away });
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
