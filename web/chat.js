// The customer web chat (an ES module, no build step, no CDN). Before a chat: the
// business's name, its privacy notice and whether anyone is there (GET /chat/status).
// After it: a rating (POST /chat/rating, with the chat's token) and a new chat.
// Reconnects keep everything: the chat id, its token and the last message seen live
// in sessionStorage; messages not yet acknowledged are sent again with the same id
// (the server stores each id once).
const S = sessionStorage;
let ws = null, lastSeq = +(S.getItem("og.last") || 0), closed = false, retry = 500;
let ended = null; // the chat that just closed: {chat, token}, to rate it
const pending = new Map(JSON.parse(S.getItem("og.pending") || "[]"));
const $ = (id) => document.getElementById(id);
const savePending = () => S.setItem("og.pending", JSON.stringify([...pending]));

function line(from, text, cls) {
  const d = document.createElement("div");
  d.className = "m " + from + (cls ? " " + cls : "");
  d.textContent = text;
  $("log").appendChild(d);
  $("log").scrollTop = $("log").scrollHeight;
  return d;
}

function show() {
  $("start").hidden = true;
  $("hint").hidden = true;
  $("log").style.display = "block";
  $("send").style.display = "flex";
}

// Who we are, the privacy notice, and whether an agent is there.
async function about() {
  let s;
  try { s = await (await fetch("/chat/status")).json(); } catch { return; }
  if (s.business_name) {
    $("business").textContent = s.business_name;
    document.title = `Chat with ${s.business_name}`;
  }
  $("privacy-notice").textContent = s.privacy_notice || "";
  if (s.privacy_url) { $("privacy-link").href = s.privacy_url; $("privacy-link").hidden = false; }
  let hint = "";
  if (s.open === false) hint = "The chat is closed at the moment.";
  else if (s.agents_available > 0 && !s.waiting) hint = "An agent is available now.";
  else if (s.agents_online > 0) hint = `Our agents are busy${s.waiting ? ` (${s.waiting} waiting)` : ""}; we will answer as soon as one is free.`;
  else if (s.agents_online === 0) hint = "No agent is online right now; write to us and we will answer as soon as we can.";
  $("hint").textContent = hint;
}

function chatEnded() {
  closed = true;
  line("system", "The chat has ended.");
  $("send").style.display = "none";
  $("typing").textContent = "";
  ended = { chat: S.getItem("og.chat"), token: S.getItem("og.token") };
  S.clear();
  $("after").hidden = false;
  $("rate").hidden = !ended.chat;
  $("rated").hidden = true;
}

function connect(first) {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chat/ws");
  ws.onopen = () => {
    retry = 500;
    $("status").textContent = "";
    ws.send(JSON.stringify(first()));
  };
  ws.onmessage = (e) => {
    const f = JSON.parse(e.data);
    switch (f.type) {
      case "welcome":
        S.setItem("og.chat", f.chat); S.setItem("og.token", f.token); show(); break;
      case "state":
        show();
        for (const [id, text] of pending) ws.send(JSON.stringify({type: "message", id, text}));
        break;
      case "message":
        if (f.seq <= lastSeq) break;
        lastSeq = f.seq; S.setItem("og.last", lastSeq);
        line(f.from, (f.from === "agent" || f.from === "bot" ? f.name + ": " : "") + f.text);
        break;
      case "ack": {
        pending.delete(f.id); savePending();
        const p = document.querySelector('[data-id="' + f.id + '"]');
        if (p) p.remove();
        break;
      }
      case "typing": $("typing").textContent = f.on ? "The agent is typing…" : ""; break;
      case "closed": chatEnded(); break;
      case "error":
        if (f.id) break; // kept pending; sent again on reconnect
        $("error").textContent = f.reason;
        $("status").textContent = S.getItem("og.chat") ? f.reason : "";
        if (/ended|wrong token/.test(f.reason)) { closed = true; S.clear(); }
        break;
    }
  };
  ws.onclose = () => {
    if (closed) return;
    // A refused start (a bad address, too many chats) is final: its reason stays on
    // the form, which can be sent again; only a chat that exists is reconnected to.
    if (!S.getItem("og.chat")) { ws = null; return; }
    $("status").textContent = "reconnecting…";
    setTimeout(() => connect(resumeFrame), retry);
    retry = Math.min(retry * 2, 10000);
  };
}

const resumeFrame = () => ({type: "resume", chat: S.getItem("og.chat"), token: S.getItem("og.token"), after: lastSeq});

$("start").onsubmit = (e) => {
  e.preventDefault();
  connect(() => ({type: "start", name: $("name").value, address: $("address").value}));
};
let typingSent = false, typingTimer = null;
$("text").oninput = () => {
  if (!typingSent && ws && ws.readyState === 1) { ws.send(JSON.stringify({type: "typing", on: true})); typingSent = true; }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { if (ws && ws.readyState === 1) ws.send(JSON.stringify({type: "typing", on: false})); typingSent = false; }, 1500);
};
$("send").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  pending.set(id, text); savePending();
  line("customer", text, "pending").dataset.id = id;
  $("text").value = "";
  if (ws && ws.readyState === 1) ws.send(JSON.stringify({type: "message", id, text}));
};
$("leave").onclick = () => { if (ws && ws.readyState === 1) ws.send(JSON.stringify({type: "leave"})); };
$("rate").onsubmit = async (e) => {
  e.preventDefault();
  $("rate-error").textContent = "";
  const form = new FormData($("rate"));
  const body = { chat: ended.chat, token: ended.token, score: +form.get("score"), comment: $("comment").value };
  // The two further questions only when answered.
  for (const k of ["nps", "ces"]) if (form.get(k)) body[k] = +form.get(k);
  try {
    const r = await fetch("/chat/rating", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
    $("rate").hidden = true;
    $("rated").hidden = false;
  } catch (err) { $("rate-error").textContent = err.message; }
};
$("again").onclick = () => {
  // A new chat from a clean page state (the old one is over).
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  closed = false; lastSeq = 0; retry = 500; ended = null;
  pending.clear();
  $("log").replaceChildren();
  $("log").style.display = "none";
  $("after").hidden = true;
  $("rate").reset();
  $("error").textContent = "";
  $("status").textContent = "";
  $("start").hidden = false;
  $("hint").hidden = false;
  about();
  $("name").focus();
};
about();
if (S.getItem("og.chat")) connect(resumeFrame);
