// A supervisor steps into a web chat, in Chromium: Ann answers it on the agent desktop;
// Sam, her supervisor, opens it on the console (a second context) and follows it live,
// sends Ann a private note (whisper), then writes to the customer himself (barge). The
// test plays the customer on the chat's WebSocket and drives the steps (a line on
// stdin); each step reports what both pages show. Last, the chat moves to a queue
// outside Sam's scope and his view stops following it.
// Usage: node supervisor_chat.mjs BASE ARTIFACTS
import { createInterface } from "node:readline";
import { consoleLogIn, launch, logIn, person, step, fail } from "./desk.mjs";

const [base, artifacts] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const go = async () => { await lines.next(); };
const browser = await launch();


let ann, sam;
try {
  ann = await person(browser);
  sam = await person(browser);
  await logIn(ann, base, "ann", "ann-secret");
  await consoleLogIn(sam, base, "sam", "sam-secret");

  // Ann answers the chat.
  const answer = ann.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 30000 });
  await answer.click();
  const card = ann.locator("article.chat");
  await card.locator(".messages li.customer").first().waitFor({ timeout: 10000 });
  step("answered");

  const samLog = () => sam.locator("#chat-log li").evaluateAll(ls => ls.map(l => ({ cls: l.className, text: l.textContent })));
  const annLog = () => card.locator(".messages li").evaluateAll(ls => ls.map(l => ({ cls: l.className, text: l.textContent })));
  const banner = () => card.locator(".monitored").evaluate(p => (p.hidden ? "" : p.textContent));

  // Sam opens it from the live interactions: what was said so far, then live.
  const row = sam.locator("#work tbody tr", { hasText: "ann" });
  await row.getByRole("button", { name: "Open" }).click();
  await sam.locator("#chat-log li", { hasText: "My invoice is wrong" }).waitFor({ timeout: 10000 });
  step("following", { sam: await samLog() });

  await go();
  await sam.locator("#chat-log li", { hasText: "It says 120, not 100" }).waitFor({ timeout: 10000 });
  step("live", { sam: await samLog() });

  // A private note to Ann.
  await sam.getByLabel("Your text").fill("Offer the 20 credit");
  await sam.getByRole("button", { name: "Note to agent" }).click();
  await card.locator(".messages li.note").waitFor({ timeout: 10000 });
  await sam.locator("#chat-log li.note").waitFor({ timeout: 10000 });
  step("noted", { ann: await annLog(), sam: await samLog(), banner: await banner() });

  // Sam writes to the customer.
  await go();
  await sam.getByLabel("Your text").fill("I am Ann's supervisor: the credit is on its way");
  await sam.getByRole("button", { name: "Write to customer" }).click();
  await card.locator(".messages li.agent", { hasText: "credit is on its way" }).waitFor({ timeout: 10000 });
  await card.locator(".monitored:not([hidden])").waitFor({ timeout: 10000 });
  await sam.locator("#chat-log li.agent", { hasText: "credit is on its way" }).waitFor({ timeout: 10000 });
  step("wrote", { ann: await annLog(), sam: await samLog(), banner: await banner() });
  await sam.screenshot({ path: `${artifacts}/chat-console.png`, fullPage: true });
  await ann.screenshot({ path: `${artifacts}/chat-agent.png`, fullPage: true });

  // Ann reloads her page: the note and the banner are still there.
  await ann.reload();
  await card.locator(".messages li.note").waitFor({ timeout: 10000 });
  await card.locator(".monitored:not([hidden])").waitFor({ timeout: 10000 });
  step("reloaded", { ann: await annLog(), banner: await banner() });

  // The chat goes to a queue that is not Sam's (the test moves it): his view says so.
  await go();
  await sam.locator("#chat-log li", { hasText: "No longer followed" }).waitFor({ timeout: 10000 });
  step("left", { sam: await samLog(), form_hidden: await sam.locator("#chat-form").evaluate(f => f.hidden) });
  await browser.close();
} catch (e) {
  await fail(e, { browser, page: sam, artifacts });
}
