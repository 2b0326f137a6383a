// The agent's side of the video call test, in real headless Chromium with its fake
// camera (a moving test picture) and a WAV as the microphone. The Rust test
// (tests/e2e/video.rs) starts the gateway and a baresip video phone that calls in;
// this script answers as the agent, turns the camera on, and reports what the
// browser decodes: lines `STEP <name> <json>`; anything going wrong exits non-zero.
//
// usage: node agent_video.mjs <http base> <agent> <password> <fake mic wav> <artifacts dir>
//        [hold | hold,transfer:<agent> | answer | add-video]  (after the picture: hold
//        and resume, then hang up or blind-transfer to an agent; or just hang up; or,
//        for an audio call, add video first; default hold)
import { mkdirSync } from "node:fs";
import process from "node:process";
import { fail, launchAgent, openPage, logIn, picture, step } from "./desk.mjs";

const [base, agent, password, wav, artifacts, how = "hold"] = process.argv.slice(2);

mkdirSync(artifacts, { recursive: true });

// The test's go-aheads (lines on stdin), kept until asked for: one may come while the
// page is still busy with the step before.
const lines = [], waiting = [];
process.stdin.setEncoding("utf8");
process.stdin.on("data", d => {
  for (const l of d.split("\n").filter(Boolean)) (waiting.shift() || (x => lines.push(x)))(l);
});
const goAhead = () => new Promise(r => lines.length ? r(lines.shift()) : waiting.push(r));

const browser = await launchAgent(wav);
let page;
try {
  page = await openPage(browser, 1280, 800);

  await logIn(page, base, agent, password);
  const answer = page.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 60000 });
  step("offered", { channel: await page.locator("#offer-list .offer .channel").first().innerText() });
  await answer.click();
  await page.locator(".call .state", { hasText: "connected" }).waitFor({ timeout: 20000 });
  const cam = page.getByRole("button", { name: "Camera" });
  if (how === "add-video") {
    // An audio call: no camera, until the agent adds video and the phone takes it.
    const add = page.getByRole("button", { name: "Add video" });
    await add.waitFor({ timeout: 10000 });
    step("audio", { camera: await cam.isVisible(), stats: await page.locator(".call .stats").innerText() });
    await goAhead();
    await add.click();
  }
  // The gateway took video: the card offers the camera.
  await cam.waitFor({ timeout: 10000 });
  await cam.click();

  // What the browser decodes and sends, and whether the caller's picture is a picture:
  // its colour spread over a grid of samples (black or one flat colour is ~0).
  const video = async () => {
    const out = await page.evaluate(async () => {
      const w = [...window.omnigate.work.values()].find(w => w.pc);
      if (!w) return null;
      const r = await w.pc.getStats();
      const out = { decoded: 0, keyframes: 0, sent: 0, pli_sent: 0, pli_received: 0 };
      r.forEach(s => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
          out.decoded += s.framesDecoded || 0;
          out.keyframes += s.keyFramesDecoded || 0;
          out.pli_sent += s.pliCount || 0;
          const c = r.get(s.codecId);
          if (c) out.codec_in = c.mimeType;
        }
        if (s.type === "outbound-rtp" && s.kind === "video") {
          out.sent += s.framesEncoded || 0;
          out.pli_received += s.pliCount || 0;
          const c = r.get(s.codecId);
          if (c) out.codec_out = c.mimeType;
        }
      });
      out.shown = !document.querySelector(".call .videos").hidden;
      out.local = document.querySelector(".call .local-video").videoWidth;
      out.stats = document.querySelector(".call .stats").textContent;
      return out;
    });
    const p = await picture(page, ".call .remote-video");
    return out && p && Object.assign(out, { width: p.width, height: p.height, mean: p.mean, spread: p.spread });
  };
  const waitFrames = async (name, more) => {
    const t0 = Date.now();
    let v = await video();
    const from = v ? v.decoded : 0;
    for (let i = 0; i < 300 && !(v && v.width > 0 && v.decoded > from + more && v.sent > 20); i++) {
      await page.waitForTimeout(100);
      v = await video();
    }
    if (!v) throw new Error(`${name}: no call or no picture after ${Date.now() - t0} ms`);
    v.waited_ms = Date.now() - t0;
    step(name, v);
    return v;
  };
  await waitFrames("video", how === "add-video" ? 5 : 30);
  await page.screenshot({ path: `${artifacts}/video-call-${agent}.png`, fullPage: true });

  // Hold and resume (re-INVITEs to the caller): the picture comes back.
  if (how.startsWith("hold")) {
    step("holding");
    await page.getByRole("button", { name: "Hold" }).click();
    await page.locator(".call .state", { hasText: "on hold" }).waitFor();
    await goAhead();
    await page.getByRole("button", { name: "Hold" }).click();
    await page.locator(".call .state", { hasText: "connected" }).waitFor();
    await waitFrames("resumed", 30);
    await page.screenshot({ path: `${artifacts}/video-resumed.png`, fullPage: true });
  }
  await goAhead();
  const transfer = how.split(",").find(x => x.startsWith("transfer:"));
  if (transfer) {
    const to = transfer.slice("transfer:".length);
    await page.getByLabel("Transfer target").focus();
    await page.getByLabel("Transfer target").locator("option", { hasText: `${to} — Available` })
      .waitFor({ state: "attached" });
    await page.getByLabel("Transfer target").selectOption(`agent:${to}`);
    await page.getByRole("button", { name: "Transfer", exact: true }).click();
  } else {
    await page.keyboard.press("Alt+KeyH");
  }
  await page.getByRole("button", { name: "Finish wrap-up" }).waitFor({ timeout: 10000 });
  step(transfer ? "transferred" : "hung up");
} catch (e) {
  const said = page ? await page.locator(".stats").allInnerTexts().catch(() => []) : [];
  await fail(e, { browser, page, artifacts, said: said.join(" | ") });
}
await browser.close();
process.stdin.destroy();
