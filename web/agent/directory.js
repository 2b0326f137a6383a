// The transfer and consult pickers: the other agents with their presence now and the
// queues with what waits, from the gateway's directory (never free text). Refreshed
// when a picker is opened and every few seconds while a call is up. And the channels
// a card may write to the customer on (SMS, WhatsApp to their phone, e-mail to their
// address: those with an account or a mailbox).
import { app } from "./state.js";
import { $, $$, el } from "./dom.js";
import { api } from "./api.js";
import { PRESENCE } from "./status.js";

let last = null;

async function load() {
  try { last = await api("GET", "/api/agent/directory"); } catch { return; }
  for (const n of $$("#work-list .call:not(.ended)")) fill(n);
  for (const n of $$("#work-list .text-form")) fillTexts(n.closest("article"));
}

const TEXT_BY = { sms: "SMS", whatsapp: "WhatsApp", email: "e-mail" };

// Threads that already are on the customer's phone (or the business's own channel).
const PROVIDER = new Set(["whatsapp", "sms", "api"]);

// A card's "Text the customer" (a call's, a web chat's): shown once the customer is
// known (their phone is on record, not typed) and some channel has an account.
function fillTexts(n) {
  const form = n && $(".text-form", n);
  if (!form || !last) return;
  const w = app.work.get(n.dataset.interaction);
  if (!w || PROVIDER.has(w.data.channel)) { form.hidden = true; return; }
  const select = $(".text-channel", form), chosen = select.value;
  // Not on the card's own channel (an e-mail card answers by e-mail already).
  select.replaceChildren(...(last.texts || []).filter(c => c !== w.data.channel).map(c => el("option", { value: c, textContent: TEXT_BY[c] || c })));
  if (chosen) select.value = chosen;
  form.hidden = n.classList.contains("ended") || !(w && w.data.customer && select.options.length);
}

/// Shows or hides a card's "Text the customer" (on a new card, or once the customer
/// is verified).
export function texting(n) {
  if (last) fillTexts(n); else load();
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
