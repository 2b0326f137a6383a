// Listen, whisper, barge in Chromium: Bob answers a caller on the agent desktop; Sam,
// his supervisor, steps in from the console in a second context. Each fake microphone
// is a pure tone (Bob 700 Hz, Sam 1150 Hz; the caller, from the test, 450 Hz), so what
// each page hears can be told apart: the levels at the three frequencies of the audio
// each page plays are reported at each step. The test drives the steps (a line on
// stdin) and checks the caller's side on its own RTP socket.
// Usage: node monitor.mjs BASE ARTIFACTS
import { createInterface } from "node:readline";
import { consoleLogIn, launch, logIn, person, step, fail } from "./desk.mjs";

const [base, artifacts] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const go = async () => { await lines.next(); };
const FREQS = { caller: 450, bob: 700, sam: 1150 };

const browser = await launch(["--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
  "--allow-loopback-in-peer-connection", "--disable-quic"]);

// A context whose microphone is a tone of `hz`, and whose pages can measure the tone
// levels of what an <audio> element plays.
function tonePerson(hz) {
  return person(browser, hz => {
    navigator.mediaDevices.getUserMedia = async () => {
      const ac = new AudioContext();
      const o = ac.createOscillator(), g = ac.createGain(), d = ac.createMediaStreamDestination();
      o.frequency.value = hz;
      g.gain.value = 0.25;
      o.connect(g).connect(d);
      o.start();
      return d.stream;
    };
    // Levels (dB) at each frequency of what `el` plays, averaged over `ms`.
    window.toneLevels = async (el, freqs, ms = 600) => {
      if (!el || !el.srcObject) return null; // nothing playing (yet)
      const ac = window.__meter || (window.__meter = new AudioContext());
      await ac.resume();
      if (!el.__analyser || el.__stream !== el.srcObject) {
        const a = ac.createAnalyser();
        a.fftSize = 8192;
        a.smoothingTimeConstant = 0;
        ac.createMediaStreamSource(el.srcObject).connect(a);
        el.__analyser = a;
        el.__stream = el.srcObject;
      }
      const a = el.__analyser, bins = new Float32Array(a.frequencyBinCount), hzPerBin = ac.sampleRate / a.fftSize;
      // A frame of digital silence reads -Infinity dB (a fresh analyser's first ones
      // too): it is left out of the average, and a tone never heard reads -200.
      const sums = Object.fromEntries(Object.keys(freqs).map(k => [k, 0]));
      const counts = Object.fromEntries(Object.keys(freqs).map(k => [k, 0]));
      const end = performance.now() + ms;
      while (performance.now() < end) {
        await new Promise(r => setTimeout(r, 50));
        a.getFloatFrequencyData(bins);
        for (const [k, f] of Object.entries(freqs)) {
          const c = Math.round(f / hzPerBin);
          const v = Math.max(...bins.slice(c - 3, c + 4));
          if (Number.isFinite(v)) {
            sums[k] += v;
            counts[k]++;
          }
        }
      }
      return Object.fromEntries(Object.keys(sums).map(k => [k, counts[k] ? Math.round(sums[k] / counts[k]) : -200]));
    };
  }, hz);
}

let bob, sam;
try {
  bob = await tonePerson(FREQS.bob);
  sam = await tonePerson(FREQS.sam);
  await logIn(bob, base, "bob", "bob-secret");

  await consoleLogIn(sam, base, "sam", "sam-secret");
  step("console");

  // Bob answers the caller; the call's audio plays on his card.
  const answer = bob.getByRole("button", { name: "Answer" });
  await answer.waitFor({ timeout: 60000 });
  await answer.click();
  await bob.locator(".call .state", { hasText: "connected" }).waitFor({ timeout: 20000 });
  // A page whose audio element is being re-rendered has nothing playing for a moment
  // (toneLevels gives null): it is measured again, for up to 2 s. Silence is not null.
  const levels = async (page, sel) => {
    for (let i = 0; ; i++) {
      const l = await page.evaluate(([s, f]) => window.toneLevels(document.querySelector(s), f), [sel, FREQS]);
      if (l || i >= 40) return l;
      await new Promise(r => setTimeout(r, 50));
    }
  };
  const bobHears = () => levels(bob, ".call .remote");
  const samHears = () => levels(sam, "#monitor-audio");
  const banner = () => bob.locator(".call .monitored").evaluate(p => (p.hidden ? "" : p.textContent));
  // Waits until `who` hears `key` (over -50 dB), then reports both pages.
  const until = async (what, who, key) => {
    const t0 = Date.now();
    for (;;) {
      const l = await (who === "sam" ? samHears() : bobHears());
      if (l && l[key] > -50) {
        // What `who` was just heard hearing is reported as is: measuring again may
        // find their audio element being re-rendered (null).
        return {
          bob: who === "bob" ? l : await bobHears(),
          sam: who === "sam" ? l : await samHears(),
          banner: await banner(),
        };
      }
      if (Date.now() - t0 > 15000) throw new Error(`${what}: ${who} does not hear ${key}: ${JSON.stringify(l)}`);
    }
  };
  step("talking", await until("the call", "bob", "caller"));

  // The test first checks who may step in (and that Sam is not on the call yet).
  await go();
  // Sam listens: a Listen button on the live call.
  await sam.getByRole("button", { name: "Listen", exact: true }).first().click();
  await sam.locator("#monitor:not([hidden])").waitFor();
  await sam.waitForFunction(() => window.omnigateSupervisor.monitor.pc && window.omnigateSupervisor.monitor.pc.connectionState === "connected", null, { timeout: 20000 });
  await bob.locator(".call .monitored:not([hidden])").waitFor({ timeout: 10000 });
  step("listen", await until("listening", "sam", "bob"));

  await go();
  await sam.locator("#monitor .modes").getByRole("button", { name: "Whisper" }).click();
  await sam.locator('#monitor button[data-mode="whisper"][aria-pressed="true"]').waitFor();
  step("whisper", await until("whispering", "bob", "sam"));

  await go();
  await sam.locator("#monitor .modes").getByRole("button", { name: "Barge" }).click();
  await sam.locator('#monitor button[data-mode="barge"][aria-pressed="true"]').waitFor();
  step("barge", { pressed: true, ...(await until("barging", "bob", "sam")) });
  await sam.screenshot({ path: `${artifacts}/monitor-console.png`, fullPage: true });
  await bob.screenshot({ path: `${artifacts}/monitor-agent.png`, fullPage: true });

  await go();
  await sam.getByRole("button", { name: "Leave" }).click();
  await sam.locator("#monitor").waitFor({ state: "hidden" });
  await bob.locator(".call .monitored").waitFor({ state: "hidden", timeout: 10000 });
  // What Bob hears is averaged over 600 ms: the first window after Sam left may hold
  // the tail of his voice. Measured until it is gone (within 5 s), then reported.
  let left = await bobHears();
  for (const t0 = Date.now(); left && left.sam >= -70 && Date.now() - t0 < 5000; ) left = await bobHears();
  step("left", { bob: left });

  await go();
  await bob.keyboard.press("Alt+KeyH");
  await bob.getByRole("button", { name: "Finish wrap-up" }).waitFor({ timeout: 10000 });
  step("hung up");
  await browser.close();
} catch (e) {
  await fail(e, { browser, page: sam, artifacts });
}
