// The transfer and consult pickers: the other agents with their presence now and the
// queues with what waits, from the gateway's directory (never free text). Refreshed
// when a picker is opened and every few seconds while a call is up.
import { app } from "./state.js";
import { $, $$, el } from "./dom.js";
import { api } from "./api.js";
import { PRESENCE } from "./status.js";

let last = null;

async function load() {
  try { last = await api("GET", "/api/agent/directory"); } catch { return; }
  for (const n of $$("#work-list .call:not(.ended)")) fill(n);
}

function fill(n) {
  if (!last) return;
  const agents = last.agents.map(a => {
    const o = el("option", { value: `agent:${a.name}`, textContent: `${a.name} — ${PRESENCE[a.presence] || a.presence}` });
    o.disabled = a.presence === "offline";
    return o;
  });
  const queues = last.queues.map(q => el("option", { value: `queue:${q.name}`, textContent: `${q.name} — ${q.waiting} waiting` }));
  replace($(".transfer-to", n), [el("optgroup", { label: "Agents" }, ...agents), el("optgroup", { label: "Queues" }, ...queues)]);
  replace($(".consult-to", n), agents.map(o => o.cloneNode(true)));
}

// New options, the first ("choose…") and the agent's choice kept.
function replace(select, options) {
  const chosen = select.value;
  select.replaceChildren(select.options[0] && select.options[0].value === "" ? select.options[0] : el("option", { value: "" }), ...options);
  select.value = chosen;
}

/// Wires a call card's pickers.
export function pickers(n) {
  fill(n);
  for (const s of [$(".transfer-to", n), $(".consult-to", n)]) s.addEventListener("focus", load);
  load();
}

setInterval(() => { if (app.token && $("#work-list .call:not(.ended)")) load(); }, 5000);
