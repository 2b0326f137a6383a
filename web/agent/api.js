// The HTTP API, with one error path: a refusal becomes an Error whose message is the
// gateway's reason, shown inline where it happened (never alert()).
import { app } from "./state.js";
import { $ } from "./dom.js";

export async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: Object.assign(
      { "Content-Type": "application/json" },
      app.token ? { Authorization: "Bearer " + app.token } : {}),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

/// Shows `text` where the agent acted: on the card of `id` when it has one, else in
/// the desk's notice line.
export function flash(id, text) {
  const w = id && app.work.get(id);
  const box = (w && $(".notice", w.node)) || $(`#offer-list [data-interaction="${CSS.escape(id || "")}"] .notice`) || $("#desk-notice");
  if (!box) return;
  box.classList.remove("ok");
  box.textContent = text;
}

/// Good news at `id`'s card (shown as such).
export function flashOk(id, text) {
  flash(id, text);
  const w = id && app.work.get(id);
  const box = w && w.node && $(".notice", w.node);
  if (box) box.classList.add("ok");
}

/// `api(...)`, with a refusal shown at `id`'s card.
export const act = (id, method, path, body) => api(method, path, body).catch(e => { flash(id, e.message); throw e; });

/// A file behind the API (a customer's media), saved through the browser: fetched with
/// the session's token (a plain link cannot carry it), handed over as a download.
export async function download(id, path, name) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + app.token } });
  if (!r.ok) {
    let why = r.statusText;
    try { why = (await r.json()).error || why; } catch { }
    flash(id, why);
    return;
  }
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
