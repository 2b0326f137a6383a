// The agent's side of the end-to-end call test, in real headless Chromium (Debian's
// `chromium`, driven by playwright-core; no browser is downloaded). The Rust test
// (tests/e2e/desktop.rs) starts the gateway and SIPp and reads this script's output:
// lines `STEP <name> <json>`; anything going wrong exits non-zero with the reason.
//
// usage: node agent_call.mjs <http base> <agent> <password> <fake mic wav> <artifacts dir>
//        [hangup | transfer:<agent> | queue:<queue> | warm:<agent>]  (how the call ends
//        for this agent: hang up, blind transfer to an agent or a queue, or consult
//        then complete; default hangup)
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launchAgent, openPage, logIn, reconnect, step } from "./desk.mjs";

const [base, agent, password, wav, artifacts, how = "hangup"] = process.argv.slice(2);

mkdirSync(artifacts, { recursive: true });

const browser = await launchAgent(wav);
let page;
try {
  page = await openPage(browser, 1280, 800);
  page.on("response", async r => {
    if (r.status() >= 400 && !r.url().endsWith("favicon.ico")) {
      console.log(`http ${r.status()} ${r.request().method()} ${r.url()}: ${await r.text().catch(() => "")}`);
    }
  });

  // 2. Log in and set Available.
  await logIn(page, base, agent, password);

  // 4. The page rings with the screen-pop: the customer's name and what was entered.
  const answer = page.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 60000 });
  const pop = page.locator("#screen-pop");
  await pop.locator(".customer-name").waitFor({ timeout: 10000 });
  const offer = page.locator(".offer");
  const ringing = await page.evaluate(() => window.omnigate.ring !== null);
  step("offered", {
    name: await pop.locator(".customer-name").innerText(),
    offer: await offer.innerText(),
    person: await offer.locator(".person").innerText(),
    tier: await offer.locator(".tier").evaluate(b => ({ text: b.textContent, class: b.className, visible: !b.hidden,
      background: getComputedStyle(b).backgroundColor })),
    internal_open: await offer.locator(".internal").evaluate(d => d.open),
    focused: await page.evaluate(() => document.activeElement && document.activeElement.textContent),
    title: await page.title(),
    pop: await pop.innerText(),
    ringing,
  });
  await page.screenshot({ path: `${artifacts}/step4-offer.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  const ringingOverflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  await page.screenshot({ path: `${artifacts}/ringing-390.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  // Answer from the keyboard (Alt+A), as the page's shortcut list says.
  await page.keyboard.press("Alt+KeyA");

  // 5. Audio both ways: the browser's getStats shows RTP from the caller.
  await page.locator(".call .state", { hasText: "connected" }).waitFor({ timeout: 20000 });
  const stats = async () => page.evaluate(async () => {
    const w = [...window.omnigate.work.values()].find(w => w.pc);
    if (!w) return null;
    const r = await w.pc.getStats();
    const out = { inbound: 0, outbound: 0, audioLevel: 0, codec: "" };
    r.forEach(s => {
      // Every inbound audio stream of the call: a source that changes its SSRC (the
      // caller's keys, then its voice) is a second stream of the same audio.
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.inbound += s.packetsReceived || 0;
        out.inboundLost = (out.inboundLost || 0) + (s.packetsLost || 0);
        out.inboundLastAt = Math.max(out.inboundLastAt || 0, s.lastPacketReceivedTimestamp || 0);
        out.totalAudioEnergy = (out.totalAudioEnergy || 0) + (s.totalAudioEnergy || 0);
        out.inboundStreams = (out.inboundStreams || 0) + 1;
        // The audio's own codec (the card's video section, inactive, lists VP8 too).
        const c = r.get(s.codecId);
        if (c) out.codec = c.mimeType;
      }
      if (s.type === "transport") {
        out.dtls = s.dtlsState;
        const pair = r.get(s.selectedCandidatePairId);
        if (pair) {
          const l = r.get(pair.localCandidateId), rm = r.get(pair.remoteCandidateId);
          out.pair = `${l && l.address}:${l && l.port} -> ${rm && rm.address}:${rm && rm.port}`;
          out.pairBytes = [pair.bytesSent, pair.bytesReceived];
        }
      }
      if (s.type === "outbound-rtp" && s.kind === "audio") out.outbound = s.packetsSent;
    });
    return out;
  });
  // Waited for as an event, bounded generously: the caller's stream starts a second
  // after its last IVR key, and a loaded machine may start it late.
  const mediaFrom = Date.now();
  let s = await stats();
  for (let i = 0; i < 300 && !(s && s.inbound > 150 && s.outbound > 150); i++) {
    await page.waitForTimeout(100);
    s = await stats();
  }
  if (s) s.waitedMs = Date.now() - mediaFrom;
  step("media", s);
  await page.waitForTimeout(1500);
  step("talked", await stats());

  // Hold and resume (re-INVITE to the caller, music on hold), then DTMF from the pad.
  await page.getByRole("button", { name: "Hold" }).click();
  await page.locator(".call .state", { hasText: "on hold" }).waitFor();
  await page.waitForTimeout(1500);
  await page.getByRole("button", { name: "Hold" }).click();
  await page.locator(".call .state", { hasText: "connected" }).waitFor();
  await page.getByRole("button", { name: "Dial 5" }).click();
  await page.waitForTimeout(1500);
  const heldAndResumed = await stats();
  heldAndResumed.holds = await page.locator(".call .hold-count").innerText();
  heldAndResumed.timer = await page.locator(".call .timer").innerText();
  heldAndResumed.ringing_overflow = ringingOverflow;
  await page.screenshot({ path: `${artifacts}/connected-1280.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  heldAndResumed.connected_overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  await page.screenshot({ path: `${artifacts}/connected-390.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  step("held and resumed", heldAndResumed);

  // The agent WebSocket drops while the caller is on hold: the page reconnects and
  // shows the call as the gateway has it (on hold, the second hold).
  await page.getByRole("button", { name: "Hold" }).click();
  await page.locator(".call .state", { hasText: "on hold" }).waitFor();
  await reconnect(page);
  const reconnected = {
    state: await page.locator(".call .state").innerText(),
    holds: await page.locator(".call .hold-count").innerText(),
    pressed: await page.getByRole("button", { name: "Hold" }).getAttribute("aria-pressed"),
    cards: await page.locator(".call").count(),
  };
  await page.getByRole("button", { name: "Hold" }).click();
  await page.locator(".call .state", { hasText: "connected" }).waitFor();
  step("reconnected on hold", reconnected);

  // 6. Hang up (or transfer); the wrap-up form replaces the call controls.
  if (how.startsWith("transfer:") || how.startsWith("queue:") || how.startsWith("warm:")) {
    // The test brings the other agent in, then says go (a line on stdin).
    step("ready to transfer");
    await new Promise(r => process.stdin.once("data", r));
    const to = how.slice(how.indexOf(":") + 1);
    // The pickers list who is there, with their presence now (not free text): opening
    // one asks the gateway again.
    await page.getByLabel("Transfer target").focus();
    await page.getByLabel("Transfer target").locator("option", { hasText: `${how.startsWith("queue:") ? "alice" : to} — Available` })
      .waitFor({ state: "attached" });
    step("choices", {
      transfer: await page.getByLabel("Transfer target").locator("option").allInnerTexts(),
      consult: await page.getByLabel("Agent to consult").locator("option").allInnerTexts(),
    });
    if (how.startsWith("warm:")) {
      await page.getByLabel("Agent to consult").selectOption(`agent:${to}`);
      await page.getByRole("button", { name: "Consult", exact: true }).click();
      await page.locator(".call .state", { hasText: "consult connected" }).waitFor({ timeout: 15000 });
      await page.waitForTimeout(1000);
      // A reconnect mid-consult shows the consult as it is.
      await reconnect(page);
      step("consulted", {
        state: await page.locator(".call .state").innerText(),
        complete: await page.getByRole("button", { name: "Complete transfer" }).isEnabled(),
        cancel: await page.getByRole("button", { name: "Cancel consult" }).isEnabled(),
      });
      await page.getByRole("button", { name: "Complete transfer" }).click();
    } else {
      await page.getByLabel("Transfer target").selectOption(`${how.startsWith("queue:") ? "queue" : "agent"}:${to}`);
      await page.getByRole("button", { name: "Transfer", exact: true }).click();
    }
  } else {
    // Hang up from the keyboard (Alt+H).
    await page.keyboard.press("Alt+KeyH");
  }
  await page.getByRole("button", { name: "Finish wrap-up" }).waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${artifacts}/step6-wrap-up.png`, fullPage: true });
  // Wrap-up reads as such, and nothing on the ended call acts; a reconnect keeps it.
  const wrapState = async () => ({
    badge: await page.locator("#presence-now").innerText(),
    menu: await page.getByLabel("Presence").inputValue(),
    live: await page.locator(".call button:not([disabled])").evaluateAll(b =>
      b.filter(x => !x.closest(".wrap-up")).map(x => x.getAttribute("aria-label") || x.textContent)),
    forms: await page.locator(".wrap-up").count(),
  });
  if (how === "hangup") await page.locator("#presence-now", { hasText: "Wrap-up" }).waitFor();
  const wrap = await wrapState();
  await page.setViewportSize({ width: 390, height: 844 });
  wrap.overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  await page.screenshot({ path: `${artifacts}/wrap-up-390.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await reconnect(page);
  wrap.after_reconnect = await wrapState();
  step("wrap-up", wrap);
  await page.getByLabel("Disposition").selectOption("Resolved");
  await page.getByLabel("Note").fill("Asked about her invoice");
  await page.getByRole("button", { name: "Finish wrap-up" }).click();
  await page.getByRole("button", { name: "Finish wrap-up" }).waitFor({ state: "detached" });
  step("wrapped up");
} catch (e) {
  const said = page ? await page.locator(".stats").allInnerTexts().catch(() => []) : [];
  await fail(e, { browser, page, artifacts, said: said.join(" | ") });
}
await browser.close();
