// The supervisor console in Chromium: log in, then report what the page shows at each
// step the test waits on (queue tiles, the agent table, the live interactions); drop
// the WebSocket and see the whole state come back; log out.
// Usage: node supervisor.mjs BASE NAME PASSWORD ARTIFACTS
import { launch, openPage, step, fail } from "./desk.mjs";

const [base, name, password, artifacts] = process.argv.slice(2);
const browser = await launch();
const page = await openPage(browser, 1400, 900);

// What the console shows now.
const shown = () => page.evaluate(() => ({
  tiles: [...document.querySelectorAll("#tiles .tile")].map(t => ({
    queue: t.dataset.queue,
    waiting: t.querySelector(".waiting").textContent,
    sl: t.querySelector(".sl").textContent,
    available: t.querySelector(".available").textContent,
  })),
  agents: [...document.querySelectorAll("#agents tbody tr")].map(r => ({
    agent: r.dataset.agent, cells: [...r.cells].map(c => c.textContent),
  })),
  work: [...document.querySelectorAll("#work tbody tr")].map(r => ({
    interaction: r.dataset.interaction, cells: [...r.cells].map(c => c.textContent),
  })),
  bars: document.querySelectorAll("#volume-chart rect").length,
}));
const waitFor = (what, f) => page.waitForFunction(f, null, { timeout: 20000 }).catch(async e => {
  throw new Error(`${what}: ${e.message}\nshown: ${JSON.stringify(await shown())}`);
});

try {
  await page.goto(`${base}/supervisor`);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await waitFor("the console", () => document.querySelector("#tiles .tile"));
  step("console", await shown());

  await waitFor("an agent logged in", () => document.querySelector("#agents tbody tr"));
  step("agents", await shown());

  await waitFor("a chat waiting", () => [...document.querySelectorAll("#work tbody tr")].some(r => r.cells[3].textContent === "waiting")
    && document.querySelector('#tiles .tile[data-queue="support"] .waiting').textContent === "1");
  step("waiting", await shown());

  await waitFor("the chat with an agent", () => [...document.querySelectorAll("#work tbody tr")].some(r => r.cells[3].textContent === "assigned")
    && document.querySelector('#tiles .tile[data-queue="support"] .sl').textContent.startsWith("100% (1/1)"));
  const before = await shown();
  step("assigned", before);

  // A dropped socket: the page reconnects and gets the whole state again.
  await page.evaluate(() => new Promise(ok => {
    const app = window.omnigateSupervisor, old = app.ws, seen = app.at;
    old.close();
    const t = setInterval(() => { if (app.ws !== old && app.at !== seen) { clearInterval(t); ok(); } }, 50);
  }));
  step("reconnected", await shown());

  await page.screenshot({ path: `${artifacts}/console.png`, fullPage: true });
  await page.getByRole("button", { name: "Log out" }).click();
  await waitFor("the log-in form", () => !document.querySelector("#login").hidden);
  step("logged_out");
  await browser.close();
} catch (e) {
  await fail(e, { browser, page, artifacts });
}
