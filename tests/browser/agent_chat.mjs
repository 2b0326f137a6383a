// The agent's side of the chat screen-pop test, in real headless Chromium (see
// agent_call.mjs for the set-up). A chat's name and address are only what the customer
// typed: the screen-pop says "Unverified" and shows no record until the agent presses
// "Identity verified"; then the customer's card appears. Then the knowledge base: an
// article suggested for the customer's question, inserted and sent; a search.
//
// usage: node agent_chat.mjs <http base> <agent> <password> <artifacts dir>
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
  await pop.locator(".unverified .badge").waitFor({ timeout: 10000 });
  step("offered", {
    pop: await pop.innerText(),
    records: await pop.locator(".customer-name").count(),
    // Nothing to verify before the chat is the agent's.
    verify_buttons: await pop.getByRole("button", { name: "Identity verified" }).count(),
  });
  await answer.click();
  const verify = pop.getByRole("button", { name: "Identity verified" });
  await verify.waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${artifacts}/chat-unverified.png`, fullPage: true });
  await verify.click();
  await pop.locator(".customer-name").waitFor({ timeout: 10000 });
  step("verified", {
    name: await pop.locator(".customer-name").innerText(),
    pop: await pop.innerText(),
    badges: await pop.locator(".unverified").count(),
  });

  // The customer asks where her parcel is (the test writes it): the knowledge base's
  // article is suggested; Bob inserts its answer and sends it.
  const suggested = page.locator(".chat .kb-results .kb-article").first();
  await suggested.waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${artifacts}/chat-kb-suggested.png`, fullPage: true });
  const note = await page.locator(".chat .kb-note").innerText();
  await suggested.getByRole("button", { name: "Insert" }).click();
  const box = page.locator(".chat .say .text");
  const inserted = await box.inputValue();
  await page.locator(".chat .say").getByRole("button", { name: "Send" }).click();
  step("suggested", { note, article: await suggested.innerText(), inserted });

  // He searches the knowledge base himself.
  await page.getByLabel("Search the knowledge base").fill("when do you open on saturday");
  await page.getByLabel("Search the knowledge base").press("Enter");
  await page.locator(".chat .kb-results .kb-title", { hasText: "saturday" }).first().waitFor({ timeout: 10000 });
  step("searched", { articles: await page.locator(".chat .kb-results").innerText() });
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
