// A customer on the web chat escalates to a video call with the agent who has the
// chat (before he verified who she is), both in real headless Chromium (one browser, a context each, the fake camera
// and a WAV as the microphone). The Rust test (tests/e2e/video.rs) starts the gateway
// and checks the store; this script is both people and reports what each browser
// decodes: lines `STEP <name> <json>`; anything going wrong exits non-zero.
//
// usage: node chat_video.mjs <http base> <agent> <password> <fake mic wav> <artifacts dir>
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launchAgent, logIn, openPage, picture, step } from "./desk.mjs";

const [base, agent, password, wav, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });

// Waits until `selector` has decoded `more` frames more than when asked (at most 30 s).
async function frames(page, selector, more) {
  const t0 = Date.now();
  let v = await picture(page, selector);
  const from = v ? v.frames : 0;
  while (!(v && v.width > 0 && v.frames > from + more) && Date.now() - t0 < 30000) {
    await page.waitForTimeout(100);
    v = await picture(page, selector);
  }
  return Object.assign(v || {}, { waited_ms: Date.now() - t0 });
}

const browser = await launchAgent(wav);
let bob, ada;
try {
  bob = await openPage(browser, 1400, 900);
  await logIn(bob, base, agent, password);

  // Ada starts a chat and asks for a video call before anyone has the chat: refused.
  ada = await openPage(browser, 800, 900);
  await ada.goto(`${base}/chat`);
  await ada.getByLabel("Your name").fill("Ada Lovelace");
  await ada.getByLabel("E-mail or phone").fill("ada@example.com");
  await ada.getByRole("button", { name: "Start chat" }).click();
  await ada.getByLabel("Message").fill("Hello, can you see the scratch on my parcel?");
  await ada.getByRole("button", { name: "Send" }).click();
  await ada.getByRole("button", { name: "Video call" }).click();
  await ada.locator("#video-state", { hasText: "Video call ended" }).waitFor({ timeout: 10000 });
  step("too early", { said: await ada.locator("#video-state").innerText() });

  // Bob takes the chat (who she is is not verified yet: only what she typed).
  await bob.getByRole("button", { name: "Answer" }).click({ timeout: 30000 });
  await bob.locator(".chat .say .text").fill("Hi Ada, let's look at it together.");
  await bob.locator(".chat .say").getByRole("button", { name: "Send" }).click();
  await ada.locator(".m.agent", { hasText: "look at it together" }).waitFor({ timeout: 10000 });

  // She starts the video call; it rings on Bob's desk as a video offer.
  await ada.getByRole("button", { name: "Video call" }).click();
  await ada.locator("#video-state", { hasText: "Waiting for the agent" }).waitFor({ timeout: 20000 });
  const offer = bob.locator("#offer-list .offer", { hasText: "video" });
  await offer.waitFor({ timeout: 20000 });
  step("offered", { offer: await offer.innerText() });
  await offer.getByRole("button", { name: "Answer" }).click();
  await bob.locator(".call .state", { hasText: "connected" }).waitFor({ timeout: 20000 });
  await bob.getByRole("button", { name: "Camera" }).click({ timeout: 10000 });

  // Both decode the other's camera.
  const bobSees = await frames(bob, ".call .remote-video", 30);
  const adaSees = await frames(ada, "#remote-video", 30);
  step("video", {
    bob: bobSees, ada: adaSees,
    ada_state: await ada.locator("#video-state").innerText(),
    bob_stats: await bob.locator(".call .stats").innerText(),
  });
  await bob.screenshot({ path: `${artifacts}/chat-video-bob.png`, fullPage: true });
  await ada.screenshot({ path: `${artifacts}/chat-video-ada.png`, fullPage: true });

  // Bob hangs up; the chat goes on.
  await bob.locator(".call").getByRole("button", { name: "Hang up" }).click();
  await ada.locator("#video-state", { hasText: "Video call ended" }).waitFor({ timeout: 10000 });
  await bob.locator(".chat .say .text").fill("Thanks, I have sent a replacement.");
  await bob.locator(".chat .say").getByRole("button", { name: "Send" }).click();
  await ada.locator(".m.agent", { hasText: "replacement" }).waitFor({ timeout: 10000 });
  step("after", { said: await ada.locator("#video-state").innerText(), log: await ada.locator("#log").innerText() });

  // Now Bob verifies who she is: the chat, and the video call made before, are hers.
  const pop = bob.locator("#screen-pop");
  // (his desk shows the call's customer; he turns to the chat)
  await bob.locator(".chat .say .text").click();
  await pop.getByRole("button", { name: "Identity verified" }).click({ timeout: 10000 });
  await pop.locator(".customer-name").waitFor({ timeout: 10000 });
  step("verified", { pop: await pop.innerText() });

  // Bob asks her to a video call from the chat; she joins; it rings him; she hangs up.
  await bob.getByRole("button", { name: "Finish wrap-up" }).click();
  await bob.locator(".chat").getByRole("button", { name: "Video call" }).click();
  await ada.locator("#video-state", { hasText: "invites you to a video call" }).waitFor({ timeout: 10000 });
  const invited = await ada.locator("#video-state").innerText();
  await ada.getByRole("button", { name: "Join the video call" }).click();
  const again = bob.locator("#offer-list .offer", { hasText: "video" });
  await again.getByRole("button", { name: "Answer" }).click({ timeout: 20000 });
  await bob.locator(".call .state", { hasText: "connected" }).waitFor({ timeout: 20000 });
  await bob.getByRole("button", { name: "Camera" }).click({ timeout: 10000 });
  const adaSeesAgain = await frames(ada, "#remote-video", 15);
  await ada.getByRole("button", { name: "Hang up" }).click();
  await bob.locator(".call .state", { hasText: "ended" }).waitFor({ timeout: 10000 });
  step("joined", { invited, ada: adaSeesAgain, said: await ada.locator("#video-state").innerText() });

  // She calls once more at once; Bob, wrapping up, declines: she is told, the chat goes on.
  await ada.getByRole("button", { name: "Video call" }).click();
  const third = bob.locator("#offer-list .offer", { hasText: "video" });
  await third.getByRole("button", { name: "Reject" }).click({ timeout: 20000 });
  await ada.locator("#video-state", { hasText: "could not take" }).waitFor({ timeout: 10000 });
  step("declined", { said: await ada.locator("#video-state").innerText() });
} catch (e) {
  const said = ada ? await ada.locator("#video-state").innerText().catch(() => "") : "";
  await fail(e, { browser, page: bob, artifacts, said });
}
await browser.close();
