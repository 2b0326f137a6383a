// A WebRTC SIP softphone, JsSIP in real headless Chromium, registers over the gateway's
// SIP WebSocket transport and calls the demo IVR: the gateway answers its DTLS-SRTP
// offer with a browser leg. The fake microphone plays a WAV; the page's getStats shows
// the IVR's prompts arriving. JsSIP is bundled for the page by esbuild (no CDN).
//
// usage: node jssip_call.mjs <http base> <ws url> <user> <password> <number> <wav> <artifacts>
// Lines `STEP <name> <json>` report progress; anything wrong exits non-zero.
import { mkdirSync } from "node:fs";
import process from "node:process";
import { buildSync } from "esbuild";
import { fail, launch, step } from "./desk.mjs";

const [base, wsUrl, user, password, number, wav, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const host = new URL(base).hostname;
const jssip = buildSync({
  entryPoints: ["node_modules/jssip/lib/JsSIP.js"], bundle: true, format: "iife",
  globalName: "JsSIP", platform: "browser", write: false, logLevel: "error",
}).outputFiles[0].text;

const browser = await launch([
  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
  `--use-file-for-fake-audio-capture=${wav}`, "--autoplay-policy=no-user-gesture-required",
  "--allow-loopback-in-peer-connection",
]);
let page;
try {
  // The gateway's own page as the origin (the SIP WebSocket checks Origin); the
  // softphone's script is added to it, so its CSP is bypassed for this test page.
  const ctx = await browser.newContext({ bypassCSP: true });
  page = await ctx.newPage();
  page.on("console", m => console.log(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", e => console.log(`pageerror: ${e.message}`));
  await page.goto(`${base}/`);
  await page.addScriptTag({ content: jssip });
  await page.evaluate(async ({ wsUrl, user, password, host }) => {
    const ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(wsUrl)],
      uri: `sip:${user}@${host}`, password, register: true, session_timers: false,
    });
    window.ua = ua;
    await new Promise((ok, fail) => {
      ua.on("registered", ok);
      ua.on("registrationFailed", e => fail(new Error(`registration failed: ${e.cause}`)));
      ua.start();
    });
  }, { wsUrl, user, password, host });
  step("registered");

  await page.evaluate(({ number, host }) => new Promise((ok, fail) => {
    const s = window.ua.call(`sip:${number}@${host}`, {
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [] },
    });
    window.session = s;
    s.on("failed", e => fail(new Error(`call failed: ${e.cause} ${e.message ? e.message.status_code + " " + e.message.reason_phrase : ""}`)));
    s.on("confirmed", ok);
  }), { number, host });
  // Play what arrives, as a softphone does (Chromium measures audio energy on playout).
  await page.evaluate(() => {
    const pc = window.session.connection;
    const audio = new Audio();
    audio.srcObject = new MediaStream(pc.getReceivers().map(r => r.track));
    return audio.play();
  });
  step("answered");

  // The IVR's prompts reach the page; the fake microphone's audio is sent.
  const stats = () => page.evaluate(async () => {
    const r = await window.session.connection.getStats();
    const out = { inbound: 0, outbound: 0, energy: 0, codec: "", dtls: "" };
    r.forEach(s => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.inbound = s.packetsReceived;
        out.energy = s.totalAudioEnergy || 0;
        const c = r.get(s.codecId);
        if (c) out.codec = c.mimeType;
      }
      if (s.type === "outbound-rtp" && s.kind === "audio") out.outbound = s.packetsSent;
      if (s.type === "transport") out.dtls = s.dtlsState;
    });
    return out;
  });
  let st = await stats();
  for (let i = 0; i < 100 && !(st.inbound > 100 && st.energy > 0); i++) {
    await page.waitForTimeout(100);
    st = await stats();
  }
  step("audio", st);

  // A key press (SIP INFO, JsSIP's default) walks the menu: 1 is sales.
  await page.evaluate(() => window.session.sendDTMF("1", { transportType: "INFO" }));
  step("pressed", {});
  // Wait for the gateway's word (the test's stdin) before hanging up.
  await new Promise(ok => process.stdin.once("data", ok));
  const before = await stats();
  await page.evaluate(() => new Promise(ok => {
    window.session.on("ended", ok);
    window.session.terminate();
  }));
  step("hung up", before);
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
await browser.close();
process.exit(0);
