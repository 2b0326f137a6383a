// A WhatsApp message on the agent desktop, in real headless Chromium: the page rings
// with the customer (her record: the provider vouches for her number), the agent
// answers, reads her message, replies, and sees the reply's delivery move from sent
// to read as the provider reports it; a photo the customer sends opens from the card;
// a thread whose reply window has closed offers
// the account's templates, and one is sent. Output: `STEP <name> <json>` lines (read by
// tests/e2e/desktop.rs, which plays Meta: signed webhooks and a fake Graph API).
//
// usage: node agent_whatsapp.mjs <http base> <agent> <password> <artifacts dir>
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launch, logIn, openPage, step } from "./desk.mjs";

const [base, agent, password, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
let page;
try {
  page = await openPage(browser, 1280, 800);
  await logIn(page, base, agent, password);

  const answer = page.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 30000 });
  const pop = page.locator("#screen-pop");
  await pop.locator(".customer-name").waitFor({ timeout: 10000 });
  const offer = page.locator(".offer");
  step("offered", {
    person: await offer.locator(".person").innerText(),
    channel: await offer.locator(".channel").innerText(),
    icon: await offer.locator(".icon").innerText(),
    name: await pop.locator(".customer-name").innerText(),
  });
  await answer.click();
  const card = page.locator(".chat");
  await card.locator(".messages li").first().waitFor({ timeout: 10000 });
  step("answered", {
    badge: await card.locator(".state").innerText(),
    messages: await card.locator(".messages li").allInnerTexts(),
    window: await card.locator(".window").innerText(),
  });
  await card.getByLabel("Message").fill("It ships today.");
  await card.getByRole("button", { name: "Send", exact: true }).click();
  await card.locator('.delivery[data-status="sent"]').waitFor({ timeout: 20000 });
  step("sent", { delivery: await card.locator(".delivery").innerText() });
  // The test reports Meta's statuses now.
  await card.locator('.delivery[data-status="read"]').waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${artifacts}/whatsapp-read.png`, fullPage: true });
  step("read", {
    delivery: await card.locator(".delivery").innerText(),
    messages: await card.locator(".messages li").allInnerTexts(),
  });
  // Ada's photo: opened from the card, downloaded through the gateway.
  const open = card.getByRole("button", { name: "Open image" });
  await open.waitFor({ timeout: 20000 });
  const [file] = await Promise.all([page.waitForEvent("download", { timeout: 20000 }), open.click()]);
  const stream = await file.createReadStream();
  let content = "";
  for await (const chunk of stream) content += chunk.toString();
  step("media", { button: await open.innerText(), name: file.suggestedFilename(), content });
  // A message Meta delivered a day late: the window is closed; the card offers the
  // account's templates, and one goes with its parameter.
  await answer.waitFor({ timeout: 30000 });
  await answer.click();
  const late = page.locator(".chat", { hasText: "Still there?" });
  const picker = late.getByRole("form", { name: "Templates" });
  await picker.waitFor({ timeout: 10000 });
  step("late", {
    window: await late.locator(".window").innerText(),
    typed: await page.locator("#screen-pop").innerText(),
    templates: await picker.getByLabel("Template").locator("option").allInnerTexts(),
  });
  await picker.getByLabel("Parameter 1").fill("order 1234");
  await picker.getByRole("button", { name: "Send template" }).click();
  await late.locator('.delivery[data-status="sent"]').waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${artifacts}/whatsapp-template.png`, fullPage: true });
  step("template", { messages: await late.locator(".messages li").allInnerTexts() });
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
