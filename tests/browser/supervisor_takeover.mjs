// A supervisor takes a web chat over, in Chromium: Ann answers it on the agent
// desktop; Sam, her supervisor, opens it on the console (a second context) and takes it
// over: Ann's card tells her so and goes to its wrap-up; the chat is Sam's to write in
// and to end. The test plays the customer on the chat's WebSocket and drives the steps
// (a line on stdin); each step reports what both pages show.
// Usage: node supervisor_takeover.mjs BASE ARTIFACTS
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

  const answer = ann.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 30000 });
  await answer.click();
  const card = ann.locator("article.chat");
  await card.locator(".messages li.customer").first().waitFor({ timeout: 10000 });
  step("answered");

  const samLog = () => sam.locator("#chat-log li").evaluateAll(ls => ls.map(l => ({ cls: l.className, text: l.textContent })));
  const banner = () => card.locator(".monitored").evaluate(p => (p.hidden ? "" : p.textContent));
  const shown = sel => sam.locator(sel).evaluate(b => !b.hidden);

  const row = sam.locator("#work tbody tr", { hasText: "ann" });
  await row.getByRole("button", { name: "Open" }).click();
  await sam.locator("#chat-log li", { hasText: "My invoice is wrong" }).waitFor({ timeout: 10000 });

  // Sam takes it over: Ann is told and her card goes to its wrap-up; the floor says
  // whose it is.
  await sam.getByRole("button", { name: "Take over" }).click();
  await card.locator(".monitored:not([hidden])").waitFor({ timeout: 10000 });
  await ann.locator("article.chat.ended").waitFor({ timeout: 10000 });
  await sam.getByRole("button", { name: "End chat" }).waitFor({ timeout: 10000 });
  await sam.locator("#work tbody tr", { hasText: "sam (supervisor)" }).waitFor({ timeout: 10000 });
  step("taken", {
    banner: await banner(),
    sam: await samLog(),
    take_shown: await shown("#chat-take"),
    note_shown: await shown("#chat-note"),
    row: await sam.locator("#work tbody tr", { hasText: "sam (supervisor)" }).textContent(),
  });

  await go();
  await sam.getByLabel("Your text").fill("I will put the refund through myself");
  await sam.getByRole("button", { name: "Write to customer" }).click();
  await sam.locator("#chat-log li.agent", { hasText: "refund through myself" }).waitFor({ timeout: 10000 });
  step("wrote", { sam: await samLog() });

  // The customer answers: Sam reads it live.
  await go();
  await sam.locator("#chat-log li", { hasText: "Thank you, Sam" }).waitFor({ timeout: 10000 });
  await sam.screenshot({ path: `${artifacts}/takeover-console.png`, fullPage: true });
  await ann.screenshot({ path: `${artifacts}/takeover-agent.png`, fullPage: true });

  await sam.getByRole("button", { name: "End chat" }).click();
  await sam.locator("#chat-log li", { hasText: "The chat was closed (supervisor)" }).waitFor({ timeout: 10000 });
  step("ended", { sam: await samLog(), form_hidden: await sam.locator("#chat-form").evaluate(f => f.hidden) });
  await browser.close();
} catch (e) {
  await fail(e, { browser, page: sam, artifacts });
}
