// Small DOM helpers the views share.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/// An element with properties and children (text goes in as text, never as markup).
export function el(tag, props = {}, ...kids) {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) e.append(k);
  return e;
}

/// A template's first element, cloned.
export const fromTemplate = id => $(id).content.firstElementChild.cloneNode(true);

/// m:ss (h:mm:ss past an hour).
export function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0"), ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}

/// A time in the agent's locale and time zone (Unix ms in).
export const when = ms => (ms ? new Date(ms).toLocaleString() : "");
export const clock = ms => (ms ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "");

/// Each channel's icon: a character common fonts have (nothing is fetched), with its
/// name beside it for screen readers.
export const ICON = { voice: "☎", video: "◉", chat: "✎", webchat: "✎", whatsapp: "Ⓦ", sms: "✆", email: "✉", api: "⇆", consult: "⇄" };
