// E-mail threads: the formatted message (the gateway's sanitised HTML, in a frame
// that runs nothing: sandboxed, no scripts, the page's policy) and attachments
// (downloads through the gateway, never opened in the page) beside each message.
import { app } from "./state.js";
import { $, el } from "./dom.js";
import { api, download } from "./api.js";

const pending = new Map();

/// Shows the e-mail of thread `id` beside its messages (again after each message:
/// a later call only adds what is new).
export function loadMails(id) {
  clearTimeout(pending.get(id));
  pending.set(id, setTimeout(() => show(id), 50));
}

async function show(id) {
  pending.delete(id);
  const w = app.work.get(id);
  if (!w) return;
  let mails = [];
  try { mails = await api("GET", `/api/agent/work/${encodeURIComponent(id)}/mails`); } catch { return; }
  for (const m of mails) {
    const li = $(`.messages [data-seq="${+m.seq}"]`, w.node);
    if (!li || li.dataset.mail) continue;
    li.dataset.mail = "1";
    if (m.direction === "out" && m.status === "failed") li.append(" ", el("span", { className: "delivery", textContent: `failed: ${m.reason}` }));
    for (const a of m.attachments || []) {
      li.append(" ", el("button", {
        type: "button", className: "attachment", textContent: `Save ${a.name} (${a.size} bytes)`,
        onclick: () => download(id, `/api/agent/work/${encodeURIComponent(id)}/mails/${+m.seq}/attachments/${+a.index}`, a.name),
      }));
    }
    if (m.html) {
      const frame = el("iframe", { className: "mail-html", title: `The e-mail as formatted${m.remote_images ? " (pictures from elsewhere not loaded)" : ""}` });
      // No scripts, forms, pop-ups or same-origin access; pictures from elsewhere stay
      // unloaded (the page's policy allows none).
      frame.setAttribute("sandbox", "");
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.srcdoc = m.html;
      const box = el("details", { className: "mail-view", open: true }, el("summary", { textContent: "Formatted e-mail" }), frame);
      li.append(box);
    }
  }
}
