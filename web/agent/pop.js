// The screen-pop: who it is (their record, or the unverified name a chat typed), what
// they told the IVR or typed, their last interactions and the open case's timeline,
// with times in the agent's locale and time zone.
import { app } from "./state.js";
import { $, el, when, ICON } from "./dom.js";
import { api, flash } from "./api.js";

/// What the views do when the agent verified a chat (set by main.js).
export const hooks = { verified: () => {} };

/// A tier's badge class (`tier-gold`...).
export const tierClass = t => `tier-${String(t).toLowerCase().replace(/[^a-z0-9-]/g, "")}`;

/// The person an offer or work item is about: the record's name, else who it is from.
export const personOf = w => (w.details && w.details["customer.name"]) || w.from || "a customer";

// Variables about the call's plumbing, not the customer: folded away.
const INTERNAL = new Set(["caller", "caller_name", "called", "trunk", "call_id", "flow", "interaction", "video"]);
// What the card shows itself (a messaging thread's window and templates).
const ON_THE_CARD = new Set(["window_until", "templates"]);

/// What the customer said or chose, and the call's plumbing, apart.
export function splitDetails(details) {
  const reason = {}, internal = {};
  for (const [k, v] of Object.entries(details || {})) {
    if (k.startsWith("customer.") || k === "verified" || k === "bot.transcript" || ON_THE_CARD.has(k)) continue;
    // A video call from the chat "dialled" the chat: plumbing too.
    const plumbing = INTERNAL.has(k) || (k === "dialled" && String(v).startsWith("chat:"));
    (plumbing ? internal : reason)[k] = v;
  }
  return [reason, internal];
}

/// Name/value pairs (one half of `splitDetails`) as a description list.
export function fillDetails(dl, details) {
  dl.replaceChildren();
  for (const [k, v] of Object.entries(details)) dl.append(el("dt", { textContent: k }), el("dd", { textContent: v }));
}

export async function screenPop(w) {
  const box = $("#screen-pop");
  app.popFor = w.interaction;
  // Only the latest screen-pop fills the box (an earlier one may still be loading).
  const gen = ++app.popGen;
  const head = el("div", { className: "pop" },
    el("h3", { textContent: `${ICON[w.channel] || ""} ${w.channel || "call"} from ${w.from || "a customer"}` }));
  const [reason, internal] = splitDetails(w.details);
  const ivr = el("dl", { className: "ivr" });
  fillDetails(ivr, reason);
  const typed = w.details && w.details.verified !== undefined;
  if (ivr.childElementCount) head.append(el("h4", { textContent: typed ? "What they typed" : "Entered in the IVR" }), ivr);
  if (Object.keys(internal).length) {
    const more = el("dl", { className: "ivr" });
    fillDetails(more, internal);
    head.append(el("details", { className: "internal" }, el("summary", { textContent: "Call details" }), more));
  }
  // What the customer and the bot said before the hand-off.
  if (w.details && w.details["bot.transcript"]) {
    head.append(el("details", { className: "bot-transcript", open: true },
      el("summary", { textContent: "Before you: the bot" }),
      el("pre", { textContent: w.details["bot.transcript"] })));
  }
  box.replaceChildren(head);
  if (w.details && w.details.verified === false) {
    // A chat's name and address are only what the customer typed.
    const warn = el("div", { className: "unverified", role: "note" },
      el("strong", { className: "badge", textContent: "Unverified" }),
      el("span", { textContent: " They typed this name and address; check who they are before discussing an account." }));
    if (app.work.has(w.interaction)) {
      warn.append(el("button", {
        className: "verify", type: "button", textContent: "Identity verified",
        onclick: () => api("POST", `/api/agent/work/${w.interaction}/verify`)
          .then(r => hooks.verified(w.interaction, r.customer)).catch(e => flash(w.interaction, e.message)),
      }));
    }
    box.append(warn);
    return;
  }
  if (!w.customer) { box.append(el("p", { className: "empty", textContent: "Unknown caller." })); return; }
  let v;
  try { v = await api("GET", `/api/agent/customers/${w.customer}`); }
  catch (e) { box.append(el("p", { className: "notice", textContent: e.message })); return; }
  if (app.popGen !== gen) return;
  const c = v.customer;
  // Where each detail came from (provenance): a channel, the agent who verified it.
  const origin = (p) => !p || !p.source ? "" : p.source === "agent" && p.actor ? `verified by ${p.actor}` : `from ${p.source}`;
  const card = el("div", { className: "card" }, el("h3", { className: "customer-name", textContent: c.name || "(no name)", title: origin(c.name_source) }));
  if (c.tier) card.append(el("span", { className: `badge tier ${tierClass(c.tier)}`, textContent: c.tier }));
  const facts = el("dl", { className: "ivr" });
  for (const [k, val] of Object.entries(c)) {
    if (["id", "name", "name_source", "identities", "open_conversation"].includes(k) || val === null || val === "") continue;
    facts.append(el("dt", { textContent: k }), el("dd", { textContent: String(val) }));
  }
  card.append(facts);
  card.append(el("p", { className: "reach", textContent: "Reach: " + (c.identities || []).map(i => {
    const o = origin(i);
    return o ? `${i.kind} ${i.value} (${o})` : `${i.kind} ${i.value}`;
  }).join(", ") }));
  if (c.open_conversation) card.append(el("p", { textContent: `Open case #${c.open_conversation}` }));
  const recent = el("ol", { className: "timeline", ariaLabel: "Last interactions" });
  for (const i of (v.interactions || []).slice(0, 8)) {
    const parts = [when(i.started_at), `${ICON[i.kind] || ""} ${i.kind}`, i.queue || "", i.agent || "no agent",
      i.outcome || (i.ended_at ? "ended" : "ongoing")];
    if (i.disposition) parts.push(i.disposition);
    recent.append(el("li", { textContent: parts.join(" · ") }));
  }
  const notes = el("ul", { className: "notes", ariaLabel: "Notes" });
  const tl = el("ol", { className: "timeline", ariaLabel: "Case timeline" });
  // The case's messages on every channel (a WhatsApp thread, an SMS sent on a call)
  // read as what was said, marked with the channel they went on.
  const kindOf = new Map((v.interactions || []).map(i => [i.id, i.kind]));
  for (const t of v.timeline || []) {
    const at = when(t.at), d = t.data || {};
    if (t.kind === "note") notes.append(el("li", { textContent: `${at ? at + " · " : ""}${d.agent}: ${d.text}` }));
    let line = `${t.kind}${d.agent ? " · " + d.agent : ""}`;
    if (t.kind === "message" && typeof d.text === "string") {
      const by = d.from === "customer" ? d.name || c.name || "customer" : d.name || "agent";
      const text = d.text.length > 200 ? d.text.slice(0, 199) + "…" : d.text;
      line = `${ICON[d.channel || kindOf.get(t.interaction)] || "•"} ${by}: ${text}`;
    }
    tl.append(el("li", { className: t.kind, textContent: `${at ? at + " · " : ""}${line}` }));
  }
  box.append(card, el("h4", { textContent: "Last interactions" }), recent);
  if (notes.childElementCount) box.append(el("h4", { textContent: "Notes" }), notes);
  box.append(el("h4", { textContent: "Timeline of the open case" }), tl);
}
