// Listening from a desk phone, in Chromium: Sue logs in on the console, clicks "Listen
// on phone" on the live call (the gateway rings her desk phone, which the test answers
// with SIPp and its own RTP socket), changes mode with the console's buttons and
// leaves. The test drives the steps (a line on stdin) and checks what each phone hears.
// Usage: node monitor_phone.mjs BASE ARTIFACTS
import { createInterface } from "node:readline";
import { consoleLogIn, launch, person, step, fail } from "./desk.mjs";

const [base, artifacts] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const go = async () => { await lines.next(); };

const browser = await launch();
let sue;
try {
  sue = await person(browser);
  await consoleLogIn(sue, base, "sue", "demo-sue");
  step("console");

  // The call Alice has: listened to on Sue's desk phone (no microphone asked for).
  const phone = sue.getByRole("button", { name: "Listen on phone" }).first();
  await phone.waitFor({ timeout: 60000 });
  const title = await phone.getAttribute("title");
  await phone.click();
  await sue.locator("#monitor:not([hidden])").waitFor();
  step("listen", {
    text: await sue.locator("#monitor-text").innerText(),
    title,
    pc: await sue.evaluate(() => window.omnigateSupervisor.monitor.pc !== null),
  });

  for (const mode of ["whisper", "barge"]) {
    await go();
    await sue.locator(`#monitor button[data-mode="${mode}"]`).click();
    await sue.locator(`#monitor button[data-mode="${mode}"][aria-pressed="true"]`).waitFor();
    step(mode, { text: await sue.locator("#monitor-text").innerText() });
  }
  await sue.screenshot({ path: `${artifacts}/monitor-phone-console.png`, fullPage: true });

  await go();
  await sue.getByRole("button", { name: "Leave" }).click();
  await sue.locator("#monitor").waitFor({ state: "hidden" });
  step("left");
  await browser.close();
} catch (e) {
  await fail(e, { browser, page: sue, artifacts });
}
