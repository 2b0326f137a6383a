// On a phone the desk's three columns are tabs (wider screens show all three and
// ignore this). Something ringing shows Incoming; taking work shows it.
import { app } from "./state.js";
import { $, $$ } from "./dom.js";

export function showTab(name) {
  $("#desk").dataset.tab = name;
  for (const t of $$("#tabs [role=tab]")) t.setAttribute("aria-selected", String(t.dataset.tab === name));
}

export function countTabs() {
  $('#tabs [data-tab="offers"] .count').textContent = app.offers.size ? `(${app.offers.size})` : "";
  $('#tabs [data-tab="work"] .count').textContent = app.work.size ? `(${app.work.size})` : "";
}

export function installTabs() {
  for (const t of $$("#tabs [role=tab]")) t.onclick = () => showTab(t.dataset.tab);
}
