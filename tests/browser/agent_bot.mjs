// The agent's side of the bot hand-off test, in real headless Chromium: the chat the
// bot handed over is offered with what the bot learned (its summary, the intent and
// the transcript, "Before you: the bot"); the agent answers it, reads the customer's
// next message and replies from the desktop.
//
// usage: node agent_bot.mjs <http base> <agent> <password> <artifacts dir>
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launch, logIn, openPage, step } from "./desk.mjs";

const [base, agent, password, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
let page;
try {
  page = await openPage(browser, 1400, 900);
  await logIn(page, base, agent, password);

  const pop = page.locator("#screen-pop");
  const answer = page.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 30000 });
  const transcript = pop.locator(".bot-transcript");
  await transcript.waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${artifacts}/bot-handoff-offer.png`, fullPage: true });
  step("offered", { pop: await pop.innerText(), transcript: await transcript.locator("pre").innerText() });

  await answer.click();
  // The customer writes once the chat is Bob's; Bob replies.
  const asked = page.locator(".chat .messages li.customer", { hasText: "is it on the way" });
  await asked.waitFor({ timeout: 20000 });
  await page.locator(".chat .say .text").fill("Bob here: it left yesterday.");
  await page.locator(".chat .say").getByRole("button", { name: "Send" }).click();
  await page.locator(".chat .messages li.agent", { hasText: "Bob here" }).waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${artifacts}/bot-handoff-chat.png`, fullPage: true });
  step("replied", {
    messages: await page.locator(".chat .messages").innerText(),
    bot_messages: await page.locator(".chat .messages li.bot").count(),
  });
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
