// The customer web chat (an ES module, no build step, no CDN). Before a chat: the
// business's name, its privacy notice and whether anyone is there (GET /chat/status).
// After it: a rating (POST /chat/rating, with the chat's token) and a new chat.
// Reconnects keep everything: the chat id, its token and the last message seen live
// in sessionStorage; messages not yet acknowledged are sent again with the same id
// (the server stores each id once).
// A video call with the agent who has the chat: the browser's offer goes on the
// chat's socket (video_offer), the gateway's answer comes back on it (video_answer);
// the call is the gateway's (ICE-lite, DTLS-SRTP), bridged to the agent's browser.
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
      case "closed": chatEnded(); videoEnded("The chat has ended."); break;
      case "video_answer":
        if (call) call.setRemoteDescription({ type: "answer", sdp: f.sdp }).catch(e => videoEnded(e.message));
        $("video-state").textContent = "Calling the agent…";
        break;
      case "video_hold": $("video-state").textContent = f.on ? "The agent put you on hold." : "In a call with the agent."; break;
      case "video_ended": videoEnded(f.reason); break;
      case "video_invite":
        if (call) break;
        $("video").hidden = false;
        $("join").hidden = false;
        $("hangup").hidden = true;
        $("video-state").textContent = `${f.agent} invites you to a video call.`;
        break;
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

// The video call: one at a time; its media is the browser's own connection to the
// gateway, so a reconnecting chat socket does not drop it.
let call = null;
function videoEnded(reason) {
  if (call) { call.getSenders().forEach(s => s.track && s.track.stop()); call.close(); call = null; }
  if (reason && !$("video").hidden) $("video-state").textContent = "Video call ended: " + reason;
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  $("hangup").hidden = true;
  $("video-call").disabled = false;
}
async function startVideo() {
  if (call || !ws || ws.readyState !== 1) return;
  $("join").hidden = true;
  $("video").hidden = false;
  $("hangup").hidden = false;
  $("video-call").disabled = true;
  $("video-state").textContent = "Starting your camera…";
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch (e) {
    videoEnded(`no camera or microphone (${e.message})`);
    return;
  }
  const pc = call = new RTCPeerConnection();
  stream.getTracks().forEach(t => pc.addTrack(t, stream));
  $("local-video").srcObject = stream;
  pc.ontrack = e => { $("remote-video").srcObject = e.streams[0] || new MediaStream([e.track]); };
  pc.onconnectionstatechange = () => {
    if (call !== pc) return;
    if (pc.connectionState === "connected") $("video-state").textContent = "Waiting for the agent to answer…";
    if (pc.connectionState === "failed") { ws.send(JSON.stringify({ type: "video_hangup" })); videoEnded("the connection failed"); }
  };
  $("remote-video").onplaying = () => { if (call === pc) $("video-state").textContent = "In a call with the agent."; };
  await pc.setLocalDescription(await pc.createOffer());
  // The gateway is ICE-lite and answers at once: send the offer with its candidates.
  await new Promise(r => {
    if (pc.iceGatheringState === "complete") return r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
    setTimeout(r, 1500);
  });
  if (call !== pc) return;
  ws.send(JSON.stringify({ type: "video_offer", sdp: pc.localDescription.sdp }));
}
$("video-call").onclick = startVideo;
$("join").onclick = startVideo;
$("hangup").onclick = () => {
  if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "video_hangup" }));
  videoEnded("you hung up");
};

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
