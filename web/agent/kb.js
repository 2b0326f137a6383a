// The knowledge base at the agent's hand: a search box on each text conversation,
// and the articles the gateway's matcher suggests for the customer's last message
// (the same matcher the bot answers with). An article's answer, in the form for the
// conversation's channel, goes into the message box to be read before it is sent.
import { $, el } from "./dom.js";
import { api } from "./api.js";

const CHANNELS = ["webchat", "whatsapp", "sms", "email", "voice"];
const channelOf = c => ({ chat: "webchat", video: "voice" }[c] || (CHANNELS.includes(c) ? c : "webchat"));

async function find(entry, q, suggested) {
  const n = entry.node, list = $(".kb-results", n);
  if (!list || !q.trim()) return;
  const gen = (entry.kbGen = (entry.kbGen || 0) + 1);
  const query = new URLSearchParams({ q: q.slice(0, 1000), channel: channelOf(entry.data.channel), limit: "3" });
  let found;
  try { found = await api("GET", `/api/agent/kb?${query}`); }
  catch (e) { $(".kb-note", n).textContent = e.message; return; }
  if (entry.kbGen !== gen) return; // a later search or message won
  // Suggestions show only sure matches; a search the agent typed shows the best ones.
  const results = suggested ? found.results.filter(r => r.sure) : found.results;
  $(".kb-note", n).textContent = results.length ? (suggested ? "Suggested for the customer's last message:" : "")
    : (suggested ? "" : "No article matches.");
  list.replaceChildren(...results.map(r => el("li", { className: "kb-article" },
    el("strong", { className: "kb-title", textContent: r.question }),
    el("span", { className: "kb-meta", textContent: ` ${r.id} · ${r.language} · ${Math.round(r.confidence * 100)}%${r.handoff ? " · for a person" : ""}` }),
    el("p", { className: "kb-answer", textContent: r.answer }),
    el("button", {
      type: "button", className: "kb-insert", textContent: "Insert",
      onclick: () => {
        const box = $(".text", n);
        box.value = box.value.trim() ? `${box.value.trimEnd()} ${r.answer}` : r.answer;
        box.focus();
      },
    }))));
}

/// Wires the search box of a text conversation's card.
export function kbPanel(entry) {
  const form = $(".kb-search", entry.node);
  if (!form) return;
  form.onsubmit = ev => { ev.preventDefault(); find(entry, $(".kb-q", entry.node).value, false); };
}

/// The customer wrote `text`: the sure matches are suggested.
export function kbSuggest(entry, text) {
  if (entry.node && $(".kb-search", entry.node)) find(entry, text || "", true);
}
