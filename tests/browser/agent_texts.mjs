// An agent on a call texts the customer, in real headless Chromium: the call rings
// with the caller's screen-pop, which shows the WhatsApp thread she had with a
// colleague (her words and his reply, marked WhatsApp); the agent answers on her desk
// phone, and from the call's card sends an SMS, then a WhatsApp message, to the
// caller's phone on record; each lands on the case's timeline in the screen-pop.
// Output: `STEP <name> <json>` lines (read by tests/e2e/desktop.rs, which plays the
// caller with SIPp, Meta with signed webhooks and a fake Graph API, and Twilio).
//
// usage: node agent_texts.mjs <http base> <agent> <password> <artifacts dir>
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launch, logIn, openPage, step } from "./desk.mjs";

const [base, agent, password, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
let page;
try {
  page = await openPage(browser, 1280, 900);
  await logIn(page, base, agent, password);

  const answer = page.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 30000 });
  const pop = page.locator("#screen-pop");
  const timeline = pop.getByRole("list", { name: "Case timeline" });
  await timeline.locator("li.message").first().waitFor({ timeout: 10000 });
  step("offered", {
    name: await pop.locator(".customer-name").innerText(),
    channel: await page.locator(".offer .channel").innerText(),
    recent: await pop.getByRole("list", { name: "Last interactions" }).locator("li").allInnerTexts(),
    timeline: await timeline.locator("li.message").allInnerTexts(),
  });
  await answer.click();
  const card = page.locator(".call");
  await card.waitFor({ timeout: 20000 });
  const form = card.getByRole("form", { name: "Text the customer" });
  await form.waitFor({ timeout: 10000 });
  const options = await form.getByLabel("Text channel").locator("option").allInnerTexts();
  const send = async (channel, text) => {
    await form.getByLabel("Text channel").selectOption(channel);
    await form.getByLabel("Text to send").fill(text);
    await form.getByRole("button", { name: "Send text" }).click();
    // This text's notice (the one before may still say "Text queued").
    const how = channel === "sms" ? "SMS to" : "WhatsApp to";
    await card.locator(".notice", { hasText: `Text queued: ${how}` }).waitFor({ timeout: 10000 });
    const notice = await card.locator(".notice").innerText();
    await timeline.locator("li.message", { hasText: text }).waitFor({ timeout: 10000 });
    return notice;
  };
  const sms = await send("sms", "Your order number is 1234-ABC.");
  step("sms", { call: await card.getAttribute("data-interaction"), options, notice: sms, left: await form.getByLabel("Text to send").inputValue() });
  const whatsapp = await send("whatsapp", "Here is the tracking link: https://t.example/1234");
  await page.screenshot({ path: `${artifacts}/texts.png`, fullPage: true });
  step("whatsapp", { notice: whatsapp, timeline: await timeline.locator("li.message").allInnerTexts() });
  // A text with nothing in it goes nowhere, said on the card.
  await form.getByRole("button", { name: "Send text" }).click();
  await card.locator(".notice", { hasText: "Write the text" }).waitFor({ timeout: 10000 });
  await card.getByRole("button", { name: "Hang up" }).click();
  await page.getByRole("form", { name: "Wrap-up" }).waitFor({ timeout: 20000 });
  step("ended", { hidden: await form.isHidden() });
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
