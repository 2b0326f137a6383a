// What the browser scripts share: Chromium (Debian's, driven by playwright-core) and
// the agent desktop's log-in.
import { chromium } from "playwright-core";

export const step = (name, data = {}) => console.log(`STEP ${name} ${JSON.stringify(data)}`);

/// Headless Chromium with `extra` flags.
export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", ...extra],
  });
}

/// Chromium for an agent in a call: fake camera and microphone (`wav`), media allowed
/// without a prompt or a gesture, loopback ICE.
export function launchAgent(wav) {
  return launch([
    "--disable-quic", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-audio-capture=${wav}`,
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
  ]);
}

/// A page of its own in `browser` (`width` × `height`), its console and errors in the
/// script's output.
export async function openPage(browser, width, height) {
  const page = await (await browser.newContext({ viewport: { width, height } })).newPage();
  page.on("console", m => console.log(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", e => console.log(`pageerror: ${e.message}`));
  return page;
}

/// A person of their own (a context, 1280 × 800, `init` run in each page before the
/// page's scripts), their console, errors and failed requests in the script's output.
export async function person(browser, init, arg) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  if (init) await ctx.addInitScript(init, arg);
  const page = await ctx.newPage();
  page.on("console", m => console.log(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", e => console.log(`pageerror: ${e.message}`));
  page.on("response", async r => {
    if (r.status() >= 400 && !r.url().endsWith("favicon.ico")) {
      console.log(`http ${r.status()} ${r.request().method()} ${r.url()}: ${await r.text().catch(() => "")}`);
    }
  });
  return page;
}

/// What the <video> at `selector` in `page` shows: its size, the frames it decoded,
/// and whether it is a picture: the mean and the colour spread over a grid of samples
/// (per colour channel: black or one flat colour is ~0; pure red, green and blue
/// stripes differ though they are equally bright). Null when there is no such video.
export const picture = (page, selector) => page.evaluate(sel => {
  const v = document.querySelector(sel);
  if (!v) return null;
  const out = { width: v.videoWidth, height: v.videoHeight, frames: v.getVideoPlaybackQuality().totalVideoFrames };
  if (v.videoWidth) {
    const c = document.createElement("canvas");
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const sum = [0, 0, 0], sum2 = [0, 0, 0];
    let n = 0;
    for (let i = 0; i < d.length; i += 4 * 61) {
      for (let ch = 0; ch < 3; ch++) { sum[ch] += d[i + ch]; sum2[ch] += d[i + ch] ** 2; }
      n++;
    }
    out.mean = Math.round((sum[0] + sum[1] + sum[2]) / 3 / n);
    out.spread = Math.round(Math.max(...[0, 1, 2].map(ch => Math.sqrt(Math.max(0, sum2[ch] / n - (sum[ch] / n) ** 2)))));
  }
  return out;
}, selector);

/// Logs `agent` in on the desktop at `base` and sets them Available.
export async function logIn(page, base, agent, password) {
  await page.goto(`${base}/agent`);
  await page.getByLabel("Name").fill(agent);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText(agent, { exact: true }).waitFor();
  await page.getByLabel("Presence").selectOption("available");
  await page.locator("#presence-now", { hasText: "available" }).waitFor();
  step("available");
}

/// Logs supervisor `name` in on the console at `base` and waits for their queues.
export async function consoleLogIn(page, base, name, password) {
  await page.goto(`${base}/supervisor`);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#tiles .tile").first().waitFor();
}

/// Reports a failed script: the error (and `said`, what the page showed), a screenshot
/// of `page` in `artifacts`, then closes the browser and exits non-zero.
export async function fail(e, { browser, page, artifacts, said = "" }) {
  console.log(`FAILED ${e.stack || e}${said ? `\npage says: ${said}` : ""}`);
  if (page) await page.screenshot({ path: `${artifacts}/failure.png`, fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
}

// Drops the page's agent WebSocket and waits until a new one has brought the whole
// state and the page has applied it.
export async function reconnect(page) {
  await page.evaluate(() => new Promise(ok => {
    const app = window.omnigate, old = app.ws;
    old.close();
    const t = setInterval(() => {
      if (app.ws !== old && app.stateFrom === app.ws) { clearInterval(t); ok(); }
    }, 50);
  }));
}
