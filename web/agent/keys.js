// Keyboard shortcuts (Alt + a letter, so typing never triggers one); `?` outside a
// field shows them. The page lists them in the same dialog.
import { app } from "./state.js";
import { $, $$ } from "./dom.js";
import { reject } from "./offers.js";

const firstOffer = () => [...app.offers.values()][0];
// The call the agent is on: the first call card still live.
const liveCall = () => $$("#work-list .call").find(n => !n.classList.contains("ended"));
const click = b => { if (b && !b.disabled) b.click(); };
const onCall = sel => click(liveCall() && $(sel, liveCall()));

export const SHORTCUTS = [
  ["KeyA", "Answer the first offer", () => { const o = firstOffer(); if (o) click($(`#offer-list [data-interaction="${CSS.escape(o.interaction)}"] .answer`)); }],
  ["KeyR", "Reject the first offer", () => { const o = firstOffer(); if (o) reject(o.interaction); }],
  ["KeyH", "Hang up", () => onCall(".hangup")],
  ["KeyO", "Hold or resume", () => onCall(".hold")],
  ["KeyM", "Mute or unmute", () => onCall(".mute")],
  ["KeyT", "Transfer: go to the target", () => { const c = liveCall(); if (c) $(".transfer-to", c).focus(); }],
  ["KeyN", "Next chat: go to its message box", () => {
    const boxes = $$("#work-list .chat:not(.ended) .text");
    if (!boxes.length) return;
    const i = boxes.indexOf(document.activeElement);
    boxes[(i + 1) % boxes.length].focus();
  }],
];

export function installKeys() {
  const help = $("#shortcuts");
  const rows = $("#shortcut-list");
  for (const [code, what] of SHORTCUTS) {
    const k = document.createElement("kbd");
    k.textContent = `Alt+${code.slice(3)}`;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.append(k);
    dd.textContent = what;
    rows.append(dt, dd);
  }
  $("#show-shortcuts").onclick = () => help.showModal();
  $("#close-shortcuts").onclick = () => help.close();
  document.addEventListener("keydown", ev => {
    if (!app.token) return;
    const inField = ev.target.matches && ev.target.matches("input, textarea, select");
    if (ev.key === "?" && !inField && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      if (help.open) help.close(); else help.showModal();
      return;
    }
    if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const s = SHORTCUTS.find(([code]) => code === ev.code);
    if (!s) return;
    ev.preventDefault();
    s[2]();
  });
}
