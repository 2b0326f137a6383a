// omnigate supervisor console. Plain JavaScript modules, no build step, no CDN: the
// gateway serves each file under /supervisor/. Everything shown comes over one
// WebSocket: the whole floor the supervisor may see (their queues, their agents, the
// work in them, the day's figures), first on every (re)connect and again whenever it
// changes. The server cuts it to the supervisor's scope; the page hides nothing.
import { bars } from "./chart.js";

const $ = (sel, root = document) => root.querySelector(sel);
const app = {
  token: sessionStorage.getItem("omnigate.supervisor.token"),
  name: sessionStorage.getItem("omnigate.supervisor.name"),
  ws: null,
  floor: null,
  at: 0, // when the last floor came (ms)
};
window.omnigateSupervisor = app; // for tests and the curious

function age(s) {
  s = Math.max(0, Math.floor(s));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0"), ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}
const pct = r => (r && r.value !== null && r.value !== undefined ? `${Math.round(r.value * 100)}%` : "–");
const td = (text, cls) => Object.assign(document.createElement("td"), { textContent: text, className: cls || "" });

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: Object.assign({ "Content-Type": "application/json" }, app.token ? { Authorization: "Bearer " + app.token } : {}),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

// ---- rendering ------------------------------------------------------------------------

function renderTiles(f) {
  const byQueue = new Map(((f.today && f.today.queues) || []).map(g => [g.key, g.kpis]));
  const box = $("#tiles");
  box.replaceChildren();
  for (const q of f.queues) {
    const t = $("#tile-tpl").content.firstElementChild.cloneNode(true);
    t.dataset.queue = q.name;
    const k = byQueue.get(q.name);
    const abandoned = k ? Object.values(k.abandoned || {}).reduce((a, b) => a + b, 0) : 0;
    $(".name", t).textContent = q.name;
    $(".waiting", t).textContent = q.waiting;
    $(".oldest", t).textContent = q.oldest_since ? age((Date.now() - q.oldest_since) / 1000) : "–";
    $(".sl", t).textContent = k ? `${pct(k.service_level)} (${k.service_level.num}/${k.service_level.den})` : "–";
    $(".abandoned", t).textContent = abandoned;
    for (const p of ["available", "busy", "wrap_up"]) $("." + p, t).textContent = (q.agents && q.agents[p]) || 0;
    t.classList.toggle("alert", q.waiting > 0 && !(q.agents && q.agents.available));
    box.append(t);
  }
}

function renderAgents(f) {
  const body = $("#agents tbody");
  body.replaceChildren();
  for (const a of f.agents) {
    const tr = document.createElement("tr");
    tr.dataset.agent = a.name;
    const state = td("");
    state.append(Object.assign(document.createElement("span"), { className: "badge " + a.presence, textContent: a.presence.replace("_", "-") }));
    const mix = Object.entries(a.channels || {}).map(([c, n]) => `${c} ${n}`).join(", ");
    tr.append(td(a.display || a.name), td(a.team || ""), state,
      td(age((Date.now() - a.presence_since) / 1000), "num"), td(String(a.work.length), "num"), td(mix));
    body.append(tr);
  }
  $("#no-agents").hidden = f.agents.length > 0;
}

function renderWork(f) {
  const body = $("#work tbody");
  body.replaceChildren();
  for (const w of f.work) {
    const tr = document.createElement("tr");
    tr.dataset.interaction = w.interaction;
    const holder = w.supervisor ? `${w.supervisor} (supervisor)` : w.agent || "";
    tr.append(td(w.channel), td(w.from), td(w.queue), td(w.status.replace("_", " ")), td(holder),
      td(age((Date.now() - w.since) / 1000), "num"));
    const act = td("");
    // A voice call an agent has can be listened to (then whispered to, barged into).
    if (w.channel === "voice" && w.status === "assigned" && w.agent && mon.id !== w.interaction) {
      const b = Object.assign(document.createElement("button"), { type: "button", className: "listen", textContent: "Listen" });
      b.addEventListener("click", () => startMonitor(w.interaction, w.agent));
      act.append(b);
      // Or on the supervisor's desk phone, which the gateway rings.
      if (app.extension) {
        const p = Object.assign(document.createElement("button"), { type: "button", className: "listen-phone", textContent: "Listen on phone" });
        p.title = `Your desk phone (${app.extension}) rings; listen there`;
        p.addEventListener("click", () => startMonitor(w.interaction, w.agent, true));
        act.append(p);
      }
    }
    // A chat or message thread can be followed, noted to its agent, written in.
    if (w.channel !== "voice" && chat.id !== w.interaction) {
      const b = Object.assign(document.createElement("button"), { type: "button", className: "open-chat", textContent: "Open" });
      b.addEventListener("click", () => openChat(w));
      act.append(b);
    }
    tr.append(act);
    body.append(tr);
  }
  $("#no-work").hidden = f.work.length > 0;
  // The chat we follow: ours once we took it over (then we end it, no notes to an agent).
  const followed = chat.id && f.work.find(w => w.interaction === chat.id);
  if (followed) chatOwned(followed.supervisor === app.me);
  // The call we are on ended (it left the floor): our leg goes too.
  if (mon.id && !f.work.some(w => w.interaction === mon.id)) stopMonitor(false);
}

// ---- listen, whisper, barge ---------------------------------------------------------------
// One WebRTC leg per call, always with the microphone: the gateway decides who hears it
// (in listen mode no one), so a mode change is one API call and no renegotiation.

// On the desk phone there is no leg here: the gateway rings the phone.

const mon = { id: null, agent: null, pc: null, stream: null, mode: null, phone: null };
app.monitor = mon;

async function startMonitor(id, agent, phone = false) {
  if (mon.id) await stopMonitor(true);
  $("#monitor-error").textContent = "";
  if (phone) {
    Object.assign(mon, { id, agent, mode: "listen" });
    try {
      const r = await api("POST", `/api/interactions/${encodeURIComponent(id)}/monitor`, { mode: "listen", phone: true });
      mon.phone = r.ringing;
    } catch (e) {
      $("#monitor-error").textContent = e.message;
      return stopMonitor(false);
    }
    return showMonitor();
  }
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  Object.assign(mon, { id, agent, pc, mode: "listen" });
  try {
    mon.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
  } catch (e) {
    $("#monitor-error").textContent = "No microphone: " + e.message;
    return stopMonitor(false);
  }
  for (const t of mon.stream.getAudioTracks()) pc.addTrack(t, mon.stream);
  pc.ontrack = ev => { $("#monitor-audio").srcObject = ev.streams[0] || new MediaStream([ev.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  // The gateway is ICE-lite and answers at once: send the offer with its candidates.
  await new Promise(r => {
    if (pc.iceGatheringState === "complete") return r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
    setTimeout(r, 1500);
  });
  try {
    const r = await api("POST", `/api/interactions/${encodeURIComponent(id)}/monitor`, { mode: "listen", sdp: pc.localDescription.sdp });
    if (mon.pc !== pc) return;
    await pc.setRemoteDescription({ type: "answer", sdp: r.sdp });
  } catch (e) {
    $("#monitor-error").textContent = e.message;
    return stopMonitor(false);
  }
  showMonitor();
}

async function setMode(mode) {
  if (!mon.id || mode === mon.mode) return;
  try {
    const r = await api("PUT", `/api/interactions/${encodeURIComponent(mon.id)}/monitor`, { mode });
    mon.mode = r.mode;
    showMonitor();
  } catch (e) {
    $("#monitor-error").textContent = e.message;
  }
}

async function stopMonitor(tell) {
  const id = mon.id;
  if (mon.pc) mon.pc.close();
  if (mon.stream) for (const t of mon.stream.getTracks()) t.stop();
  Object.assign(mon, { id: null, agent: null, pc: null, stream: null, mode: null, phone: null });
  $("#monitor-audio").srcObject = null;
  $("#monitor").hidden = true;
  if (tell && id) {
    try { await api("DELETE", `/api/interactions/${encodeURIComponent(id)}/monitor`); } catch { }
  }
  if (app.floor) renderWork(app.floor);
}

function showMonitor() {
  $("#monitor").hidden = !mon.id;
  const how = { listen: "Listening to", whisper: "Whispering to", barge: "On the call with" }[mon.mode];
  $("#monitor-text").textContent = `${how} ${mon.agent}` + (mon.phone ? ` on your desk phone (${mon.phone})` : "");
  for (const b of document.querySelectorAll("#monitor .modes button")) b.setAttribute("aria-pressed", String(b.dataset.mode === mon.mode));
  if (app.floor) renderWork(app.floor);
}

for (const b of document.querySelectorAll("#monitor .modes button")) b.addEventListener("click", () => setMode(b.dataset.mode));
$("#monitor-leave").addEventListener("click", () => stopMonitor(true));

// ---- following a chat -------------------------------------------------------------------
// The console's socket carries the chat's new messages and notes once it says `watch`;
// what came before is read from the interaction's timeline (after the watch, so nothing
// falls between the two; what both bring is shown once).

const chat = { id: null, loaded: false, early: [], seen: new Set() };
app.chat = chat;

function chatLine(kind, d) {
  // (The console's own lines, with no number, are never doubled.)
  const key = kind === "note" ? `n${d.at}|${d.supervisor}|${d.text}` : d.seq ? `m${d.seq}` : null;
  if (key && chat.seen.has(key)) return;
  if (key) chat.seen.add(key);
  const li = document.createElement("li");
  li.className = kind === "note" ? "note" : d.from;
  // A note is a supervisor's to the agent, or the agent's own on the interaction.
  const who = kind !== "note" ? (d.name || d.from || "customer")
    : d.supervisor ? `${d.name || d.supervisor} (note to the agent)` : `${d.agent || "agent"} (agent's note)`;
  li.append(Object.assign(document.createElement("span"), { className: "who", textContent: who }), `: ${d.text}`);
  if (d.seq) li.dataset.seq = d.seq;
  const log = $("#chat-log"), later = d.seq && [...log.children].find(x => x.dataset.seq && +x.dataset.seq > +d.seq);
  log.insertBefore(li, later || null);
  log.scrollTop = log.scrollHeight;
}

function chatFrame(m) {
  if (m.interaction !== chat.id) return;
  if (m.type === "watching") return loadChat(m.interaction);
  if (m.type === "watch_refused") { $("#chat-error").textContent = m.error; return; }
  if (!chat.loaded) { chat.early.push(m); return; }
  if (m.type === "message") chatLine("message", m.message);
  else if (m.type === "note") chatLine("note", m.note);
  else if (m.type === "taken_over") {
    chatLine("message", { from: "system", name: "", text: `${m.name} took the chat over.` });
    chatOwned(m.supervisor === app.me);
  } else if (m.type === "closed") {
    chatLine("message", { from: "system", name: "", text: `The chat was closed (${m.by}).` });
    $("#chat-form").hidden = true;
  } else if (m.type === "watch_ended" && !$("#chat-form").hidden) {
    chatLine("message", { from: "system", name: "", text: "No longer followed: the chat left your queues and teams." });
    $("#chat-form").hidden = true;
  }
}

async function loadChat(id) {
  try {
    const i = await api("GET", `/api/interactions/${encodeURIComponent(id)}`);
    if (chat.id !== id) return;
    for (const e of i.timeline || []) {
      if (e.kind === "message") chatLine("message", e.data);
      else if (e.kind === "note") chatLine("note", e.data);
    }
  } catch (e) {
    $("#chat-error").textContent = e.message;
  }
  chat.loaded = true;
  for (const m of chat.early.splice(0)) chatFrame(m);
}

function openChat(w) {
  Object.assign(chat, { id: w.interaction, loaded: false, early: [], seen: new Set() });
  $("#chat-log").replaceChildren();
  $("#chat-error").textContent = "";
  $("#chat-form").hidden = false;
  chatOwned(w.supervisor === app.me);
  $("#chat-title").textContent = `${w.channel} from ${w.from}${w.agent ? ` with ${w.agent}` : ""}`;
  $("#chat-view").hidden = false;
  if (app.ws && app.ws.readyState === WebSocket.OPEN) app.ws.send(JSON.stringify({ type: "watch", interaction: w.interaction }));
  if (app.floor) renderWork(app.floor);
}

function closeChat() {
  if (app.ws && app.ws.readyState === WebSocket.OPEN) app.ws.send(JSON.stringify({ type: "unwatch" }));
  Object.assign(chat, { id: null, loaded: false, early: [], seen: new Set() });
  $("#chat-view").hidden = true;
  if (app.floor) renderWork(app.floor);
}

async function chatSend(path) {
  const box = $("#chat-text"), text = box.value.trim();
  if (!text || !chat.id) return;
  $("#chat-error").textContent = "";
  try {
    await api("POST", `/api/interactions/${encodeURIComponent(chat.id)}/${path}`, { text });
    box.value = "";
  } catch (e) {
    $("#chat-error").textContent = e.message;
  }
}

/// Whether the chat we follow is ours (taken over): End instead of Take over and notes.
function chatOwned(mine) {
  $("#chat-take").hidden = mine;
  $("#chat-note").hidden = mine;
  $("#chat-end").hidden = !mine;
}

async function chatOwn(path) {
  if (!chat.id) return;
  $("#chat-error").textContent = "";
  try {
    await api("POST", `/api/interactions/${encodeURIComponent(chat.id)}/${path}`);
  } catch (e) {
    $("#chat-error").textContent = e.message;
  }
}

$("#chat-take").addEventListener("click", () => chatOwn("takeover"));
$("#chat-end").addEventListener("click", () => chatOwn("close"));
$("#chat-form").addEventListener("submit", ev => { ev.preventDefault(); chatSend("notes"); });
$("#chat-say").addEventListener("click", () => chatSend("messages"));
$("#chat-close").addEventListener("click", closeChat);

function renderCharts(f) {
  // Every hour of the day so far, an hour without contacts at zero.
  const byHour = new Map(((f.today && f.today.hours) || []).map(g => [Number(g.key.slice(11, 13)), g.kpis]));
  const last = Math.max(new Date().getHours(), ...byHour.keys());
  const hours = [];
  for (let h = 0; h <= last; h++) hours.push({ label: String(h).padStart(2, "0"), k: byHour.get(h) });
  const sl = k => (k && k.service_level.value !== null ? k.service_level.value : null);
  bars($("#sl-chart"), hours.map(h => ({ label: h.label, value: sl(h.k) ?? 0, low: sl(h.k) !== null && sl(h.k) < 0.8 })),
    1, v => `${Math.round(v * 100)}%`);
  const most = Math.max(1, ...hours.map(h => (h.k ? h.k.contacts : 0)));
  bars($("#volume-chart"), hours.map(h => ({ label: h.label, value: h.k ? h.k.contacts : 0 })), most, v => String(Math.round(v)));
}

function render() {
  const f = app.floor;
  if (!f) return;
  renderTiles(f);
  renderAgents(f);
  renderWork(f);
  renderCharts(f);
}

// ---- the socket -----------------------------------------------------------------------

let backoff = 1000;

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/supervisor/ws`);
  app.ws = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: "auth", token: app.token, tz: Intl.DateTimeFormat().resolvedOptions().timeZone }));
    // Following a chat: again on the new socket (what was missed is read again).
    if (chat.id) {
      chat.loaded = false;
      ws.send(JSON.stringify({ type: "watch", interaction: chat.id }));
    }
  };
  ws.onmessage = ev => {
    const m = JSON.parse(ev.data);
    if (m.type === "floor") {
      backoff = 1000;
      app.floor = m;
      app.me = m.supervisor;
      app.at = Date.now();
      $("#live").textContent = "live";
      render();
    } else if (["watching", "watch_refused", "watch_ended", "message", "note", "taken_over", "closed"].includes(m.type)) {
      chatFrame(m);
    } else if (m.type === "logged_out" || m.type === "error") {
      loggedOut(m.error || "Your session ended; log in again.");
    }
  };
  ws.onclose = () => {
    if (app.ws !== ws) return;
    $("#live").textContent = "reconnecting…";
    const wait = backoff * (0.8 + Math.random() * 0.4);
    backoff = Math.min(backoff * 2, 30000);
    setTimeout(() => app.token && app.ws === ws && connect(), wait);
  };
}

function disconnect() {
  if (!app.ws) return;
  app.ws.onclose = null;
  app.ws.close();
  app.ws = null;
}

// ---- logging in and out -----------------------------------------------------------------

function loggedIn() {
  $("#login").hidden = true;
  $("#console").hidden = false;
  $("#me").hidden = false;
  $("#who").textContent = app.name;
  connect();
  // Whether they have a desk phone to listen on.
  api("GET", "/api/supervisor/me").then(me => {
    app.extension = me.extension || null;
    if (app.floor) renderWork(app.floor);
  }, () => { });
}

function loggedOut(why) {
  disconnect();
  if (mon.id) stopMonitor(false);
  sessionStorage.removeItem("omnigate.supervisor.token");
  app.token = null;
  app.floor = null;
  $("#console").hidden = true;
  $("#me").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
}

$("#login-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const name = $("#login-name").value.trim();
  try {
    const r = await api("POST", "/api/supervisor/login", { name, password: $("#login-password").value });
    app.token = r.token;
    app.name = r.supervisor;
    sessionStorage.setItem("omnigate.supervisor.token", r.token);
    sessionStorage.setItem("omnigate.supervisor.name", r.supervisor);
    $("#login-password").value = "";
    $("#login-error").textContent = "";
    loggedIn();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});

$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/api/supervisor/logout"); } catch { }
  loggedOut("");
});

// The clocks move between pushes.
setInterval(() => app.floor && render(), 1000);

if (app.token) loggedIn();
