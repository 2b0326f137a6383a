// The status bar (presence and time in it; the agent's queues with what waits and how
// long the oldest has waited) and every timer on the page: an element with
// `data-since` counts up from it, one with `data-until` counts down to it (Unix ms).
import { app } from "./state.js";
import { $, $$, el, age } from "./dom.js";
import { api } from "./api.js";

// Presence as people read it; the menu and the badge always say the same.
export const PRESENCE = { available: "Available", busy: "Busy", away: "Away", wrap_up: "Wrap-up", offline: "Offline" };

export function setPresence(p, since, until) {
  app.presence = p;
  app.presenceSince = since;
  app.presenceUntil = until || null;
  $("#presence-now").textContent = PRESENCE[p] || p;
  $("#presence-now").dataset.presence = p;
  if ([...$("#presence").options].some(o => o.value === p)) $("#presence").value = p;
  $("#presence-time").dataset.since = since || "";
  for (const t of $$(".wrap-until")) setUntil(t, app.presenceUntil);
  renderStatus();
}

function setUntil(node, until) {
  if (until) node.dataset.until = until; else delete node.dataset.until;
  (node.closest(".wrap-ends") || node).hidden = !until;
}

export function renderStatus() {
  $("#queues").replaceChildren(...app.queues.map(q => {
    const s = el("span", { className: "queue-stat" + (q.waiting ? " waiting" : "") });
    s.dataset.queue = q.name;
    s.dataset.waiting = q.waiting;
    s.append(`${q.name}: ${q.waiting} waiting`);
    if (q.oldest_since) {
      const t = el("span");
      t.dataset.since = q.oldest_since;
      s.append(", oldest ", t);
    }
    return s;
  }));
  tick();
}

/// Every timer on the page, from the wall clock (so a late tick is never wrong).
export function tick() {
  const now = Date.now();
  for (const t of $$("[data-since]")) t.textContent = t.dataset.since ? age(now - +t.dataset.since) : "";
  for (const t of $$("[data-until]")) t.textContent = age(+t.dataset.until - now);
  // What appears from a moment on (a closed reply window's template picker).
  for (const t of $$("[data-shows-at]")) t.hidden = +t.dataset.showsAt > now;
}

/// A wrap-up form's countdown (shown while wrap-up ends by itself).
export function wrapCountdown(node) { setUntil(node, app.presenceUntil); }

setInterval(() => { if (app.token) tick(); }, 1000);

/// Service level today (since the agent's midnight) of their queues that show it, by
/// the KPI definition. The gateway reuses a figure for up to 10 s, so a read made when
/// work ends is made again 11 s after the latest such read (by then any figure the
/// gateway gives was read after it).
let again = null;
export async function serviceLevel() {
  clearTimeout(again);
  again = setTimeout(() => { again = null; if (app.token) fetchServiceLevel(); }, 11000);
  return fetchServiceLevel();
}

async function fetchServiceLevel() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  let list;
  try { list = await api("GET", `/api/agent/service_level?since=${midnight.getTime()}`); } catch { return; }
  $("#service-level").replaceChildren(...list.filter(q => q.handled > 0).map(q => {
    const s = el("span", { className: "queue-stat sl", title: `answered within ${q.sla_secs} s today` });
    s.dataset.queue = q.queue;
    s.textContent = `${q.queue} SL ${Math.round(100 * q.in_sla / q.handled)} % (${q.in_sla}/${q.handled})`;
    return s;
  }));
}

setInterval(() => { if (app.token) fetchServiceLevel(); }, 60000);
