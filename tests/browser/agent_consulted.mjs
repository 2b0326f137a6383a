// A browser agent consulted on a colleague's call, in real headless Chromium: the
// colleague (Alice, on her desk phone; the Rust test drives her through the API) asks
// Bob to talk before handing Ada's call over. Bob answers in the browser. The offer
// stays an offer while his leg connects: the card appears when the gateway says the
// two agents talk (no work the gateway has not given), survives a reconnect as it is,
// and becomes his call when Alice completes the transfer; he talks to Ada, hangs up
// and wraps up. Output: `STEP <name> <json>` lines (tests/e2e/desktop.rs reads them).
//
// usage: node agent_consulted.mjs <http base> <agent> <password> <fake mic wav> <artifacts dir>
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launchAgent, openPage, logIn, reconnect, step } from "./desk.mjs";

const [base, agent, password, wav, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });

const browser = await launchAgent(wav);
let page;
try {
  page = await openPage(browser, 1280, 800);
  await logIn(page, base, agent, password);

  // What the page holds: cards, offers, work and legs still connecting.
  const desk = () => page.evaluate(() => ({
    cards: document.querySelectorAll("#work-list .call").length,
    offers: document.querySelectorAll("#offer-list .offer").length,
    work: [...window.omnigate.work.keys()],
    legs: [...window.omnigate.legs.keys()],
  }));
  const inbound = () => page.evaluate(async () => {
    const w = [...window.omnigate.work.values()].find(w => w.pc);
    if (!w) return { inbound: 0, outbound: 0 };
    const out = { inbound: 0, outbound: 0 };
    (await w.pc.getStats()).forEach(s => {
      // Every inbound audio stream (a source changing its SSRC is a second one).
      if (s.type === "inbound-rtp" && s.kind === "audio") out.inbound += s.packetsReceived || 0;
      if (s.type === "outbound-rtp" && s.kind === "audio") out.outbound = s.packetsSent;
    });
    return out;
  });

  // The consult rings: who asks, about whom.
  const offer = page.locator(".offer");
  await page.getByRole("button", { name: "Answer" }).waitFor({ timeout: 60000 });
  const offered = { offer: await offer.innerText(), desk: await desk() };
  await page.getByRole("button", { name: "Answer" }).click();
  // Answered: the leg connects; nothing is work yet.
  const answering = await desk();
  answering.countdown = await offer.locator(".countdown").innerText();
  answering.answer_disabled = await offer.getByRole("button", { name: "Answer" }).isDisabled();
  step("consult offered", { offered, answering });

  await page.locator(".call .state", { hasText: "consult connected" }).waitFor({ timeout: 20000 });
  let s = await inbound();
  for (let i = 0; i < 50 && s.outbound < 50; i++) { await page.waitForTimeout(100); s = await inbound(); }
  const consulted = await desk();
  consulted.from = await page.locator(".call .from").innerText();
  consulted.media = s;
  await page.screenshot({ path: `${artifacts}/consulted-1280.png`, fullPage: true });
  await reconnect(page);
  consulted.after_reconnect = await desk();
  consulted.state_after_reconnect = await page.locator(".call .state").innerText();
  step("consulted", consulted);

  // Alice completes the transfer: the call is Bob's; Ada's voice reaches him.
  await page.locator(".call .state").filter({ hasText: /^connected$/ }).waitFor({ timeout: 20000 });
  const before = (await inbound()).inbound;
  s = await inbound();
  for (let i = 0; i < 100 && s.inbound < before + 100; i++) { await page.waitForTimeout(100); s = await inbound(); }
  const took = await desk();
  took.media = s;
  took.media.before = before;
  took.hangup = await page.getByRole("button", { name: "Hang up" }).isEnabled();
  step("took the call", took);

  await page.keyboard.press("Alt+KeyH");
  await page.getByRole("button", { name: "Finish wrap-up" }).waitFor({ timeout: 10000 });
  await page.getByLabel("Disposition").selectOption("Resolved");
  await page.getByRole("button", { name: "Finish wrap-up" }).click();
  await page.getByRole("button", { name: "Finish wrap-up" }).waitFor({ state: "detached" });
  step("wrapped up", await desk());
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
