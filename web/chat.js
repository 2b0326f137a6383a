"use strict";
// Reconnects keep everything: the chat id, its token and the last message seen live
// in sessionStorage; messages not yet acknowledged are sent again with the same id
// (the server stores each id once).
const S = sessionStorage;
let ws = null, lastSeq = +(S.getItem("og.last") || 0), closed = false, retry = 500;
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
  $("start").style.display = "none";
  $("log").style.display = "block";
  $("send").style.display = "flex";
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
        line(f.from, (f.from === "agent" ? f.name + ": " : "") + f.text);
        break;
      case "ack": {
        pending.delete(f.id); savePending();
        const p = document.querySelector('[data-id="' + f.id + '"]');
        if (p) p.remove();
        break;
      }
      case "typing": $("typing").textContent = f.on ? "The agent is typing…" : ""; break;
      case "closed":
        closed = true; line("system", "The chat has ended.");
        $("send").style.display = "none"; S.clear(); break;
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
if (S.getItem("og.chat")) connect(resumeFrame);
