// omnigate agent desktop. Plain JavaScript, no build step, no CDN: the gateway serves
// this file. State comes over the agent WebSocket (/api/agent/ws): the whole state
// first, then every change. Calls are answered in the browser over WebRTC: the page
// sends its offer over the same WebSocket and the gateway answers (G.711, DTLS-SRTP).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) e.append(k);
  return e;
};

const app = {
  token: sessionStorage.getItem("omnigate.token"),
  agent: sessionStorage.getItem("omnigate.agent"),
  ws: null,
  offers: new Map(),   // interaction -> offer JSON
  work: new Map(),     // interaction -> { data, node, pc, stream }
  ring: null,
  popFor: null,
  queues: [],          // the agent's queues: { name, waiting, oldest_since }
  presenceSince: null, // ms
};
window.omnigate = app; // for tests and the curious

async function api(method, path, body) {
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

// ---------------------------------------------------------------- ring tone

function ringStart() {
  if (app.ring) return;
  const ctx = new AudioContext();
  const gain = ctx.createGain();
  gain.gain.value = 0;
  gain.connect(ctx.destination);
  for (const f of [440, 480]) {
    const o = ctx.createOscillator();
    o.frequency.value = f;
    o.connect(gain);
    o.start();
  }
  // 2 s on, 4 s off (the North American ring cadence).
  let on = false;
  const tick = () => { on = !on; gain.gain.setTargetAtTime(on ? 0.15 : 0, ctx.currentTime, 0.01); };
  tick();
  const timer = setInterval(tick, 3000);
  app.ring = { ctx, timer };
}

function ringStop() {
  if (!app.ring) return;
  clearInterval(app.ring.timer);
  app.ring.ctx.close();
  app.ring = null;
}

function ringUpdate() {
  const voice = [...app.offers.values()].some(o => o.channel === "voice" || o.channel === "video");
  if (voice) ringStart(); else ringStop();
}

// ---------------------------------------------------------------- login

async function login(ev) {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    const r = await api("POST", "/api/agent/login", {
      name: $("#login-name").value, password: $("#login-password").value,
    });
    app.token = r.token;
    app.agent = r.agent;
    sessionStorage.setItem("omnigate.token", r.token);
    sessionStorage.setItem("omnigate.agent", r.agent);
    connect();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
}

function showDesk(on) {
  $("#login").hidden = on;
  $("#desk").hidden = !on;
  $("#me").hidden = !on;
  $("#agent-name").textContent = app.agent || "";
}

function loggedOut() {
  sessionStorage.removeItem("omnigate.token");
  app.token = null;
  if (app.ws) { app.ws.onclose = null; app.ws.close(); app.ws = null; }
  for (const id of [...app.work.keys()]) closeCall(id);
  app.offers.clear();
  app.work.clear();
  $("#offer-list").replaceChildren();
  $("#work-list").replaceChildren();
  ringStop();
  showDesk(false);
}

function connect() {
  showDesk(true);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  // The token goes in the first frame, not the URL (access logs keep URLs).
  const ws = new WebSocket(`${proto}//${location.host}/api/agent/ws`);
  app.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({type: "auth", token: app.token}));
  ws.onmessage = ev => onPush(JSON.parse(ev.data));
  ws.onclose = () => {
    if (app.ws !== ws) return;
    // The gateway keeps our state: reconnect and get all of it again.
    setTimeout(() => app.token && connect(), 1000);
  };
}

// ---------------------------------------------------------------- pushes

function onPush(m) {
  switch (m.type) {
    case "state":
      // The gateway's desk is the truth: after a reconnect, offers and work are as it
      // says (a consult we are on is work, with its progress).
      setPresence(m.presence);
      app.presenceSince = m.presence_since;
      app.queues = m.queues || [];
      renderStatus();
      app.offers.clear();
      $("#offer-list").replaceChildren();
      for (const o of m.offers) if (!app.work.has(o.interaction)) addOffer(o);
      for (const w of m.work) {
        if (!app.work.has(w.interaction)) addWork(w);
        else for (const x of w.messages || []) chatMessage(Object.assign({ interaction: w.interaction }, x));
        if (w.call_state) callState({ interaction: w.interaction, state: w.call_state });
      }
      break;
    case "presence": setPresence(m.presence); app.presenceSince = Date.now(); renderStatus(); break;
    case "queues": app.queues = m.queues; renderStatus(); break;
    case "offer": addOffer(m); break;
    case "revoked": removeOffer(m.interaction); break;
    case "assigned": {
      // The offer had who is calling and what they entered; the assignment adds the rest.
      const w = Object.assign({}, app.offers.get(m.interaction) || {}, m);
      removeOffer(m.interaction);
      const had = app.work.get(m.interaction);
      if (had && had.data.consult) {
        // A warm transfer completed: the call we were consulted on is ours now.
        had.data.consult = false;
        $(".state", had.node).textContent = "connected";
      } else addWork(w);
      break;
    }
    case "consult": addOffer(Object.assign({ channel: "voice", queue: "consult", expires_in_ms: 30000 }, m)); break;
    case "call_state": callState(m); break;
    case "ended": workEnded(m.interaction, false); break;
    case "customer_left": workEnded(m.interaction, true); break;
    case "verified": verified(m.interaction, m.customer); break;
    case "message": chatMessage(m); break;
    case "transcript": for (const x of m.messages) chatMessage(Object.assign({ interaction: m.interaction }, x)); break;
    case "typing": { const w = app.work.get(m.interaction); if (w) $(".typing", w.node).hidden = !m.on; break; }
    case "webrtc_answer": webrtcAnswer(m); break;
    case "error": console.warn("gateway:", m.error); flash(m.interaction, m.error); break;
    case "logged_out": loggedOut(); break;
  }
  $("#no-offers").hidden = app.offers.size > 0;
  $("#no-work").hidden = app.work.size > 0;
  ringUpdate();
}

// Presence as people read it; the menu and the badge always say the same.
const PRESENCE = { available: "Available", busy: "Busy", away: "Away", wrap_up: "Wrap-up", offline: "Offline" };

function setPresence(p) {
  $("#presence-now").textContent = PRESENCE[p] || p;
  $("#presence-now").dataset.presence = p;
  if ([...$("#presence").options].some(o => o.value === p)) $("#presence").value = p;
}

// m:ss (h:mm:ss past an hour).
function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0"), ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}

// The status bar: time in the current presence; each queue's waiting work and how
// long the oldest has waited (work waiting shows even while the agent is busy).
function renderStatus() {
  $("#presence-time").textContent = app.presenceSince ? age(Date.now() - app.presenceSince) : "";
  $("#queues").replaceChildren(...app.queues.map(q => {
    const s = el("span", { className: "queue-stat" + (q.waiting ? " waiting" : ""),
      textContent: `${q.name}: ${q.waiting} waiting` + (q.oldest_since ? `, oldest ${age(Date.now() - q.oldest_since)}` : "") });
    s.dataset.queue = q.name;
    s.dataset.waiting = q.waiting;
    return s;
  }));
}
setInterval(() => { if (app.token) renderStatus(); }, 1000);

function flash(id, text) {
  console.warn(id, text);
  const w = id && app.work.get(id);
  const box = w && $(".notice", w.node);
  if (box) box.textContent = text;
}

// ---------------------------------------------------------------- offers + screen-pop

function addOffer(o) {
  if (app.offers.has(o.interaction)) return;
  app.offers.set(o.interaction, o);
  const n = $("#offer-tpl").content.firstElementChild.cloneNode(true);
  n.dataset.interaction = o.interaction;
  $(".channel", n).textContent = o.channel;
  $(".from", n).textContent = o.from;
  $(".queue", n).textContent = o.queue;
  $(".expires", n).textContent = `answer within ${Math.round(o.expires_in_ms / 1000)} s`;
  fillIvr($(".ivr", n), o.details);
  if (o.type === "consult") {
    // A colleague asks us to talk before handing the call over: no routing involved.
    $(".channel", n).textContent = "consult";
    $(".from", n).textContent = `${o.from} about ${o.caller}`;
    $(".queue", n).textContent = "warm transfer";
    $(".answer", n).onclick = () => {
      removeOffer(o.interaction);
      addWork({ interaction: o.interaction, channel: "voice", from: `${o.from} (consult about ${o.caller})`,
        customer: o.customer, details: o.details, browser_call: o.browser_call, consult: true });
      onPush({ type: "noop" });
    };
    $(".reject", n).onclick = () => api("POST", `/api/agent/work/${o.interaction}/hangup`).catch(e => alert(e.message));
  } else {
    $(".answer", n).onclick = () => answer(o.interaction);
    $(".reject", n).onclick = () => api("POST", `/api/agent/offers/${o.interaction}/reject`).catch(e => alert(e.message));
  }
  $("#offer-list").append(n);
  screenPop(o);
}

function fillIvr(dl, details) {
  dl.replaceChildren();
  for (const [k, v] of Object.entries(details || {})) {
    if (k.startsWith("customer.") || k === "verified") continue;
    dl.append(el("dt", { textContent: k }), el("dd", { textContent: v }));
  }
}

function removeOffer(id) {
  app.offers.delete(id);
  const n = $(`#offer-list [data-interaction="${id}"]`);
  if (n) n.remove();
}

async function answer(id) {
  const o = app.offers.get(id);
  // Ask for the microphone while the click still counts as a user gesture.
  if (o && o.channel === "voice") {
    try { app.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } }); }
    catch (e) { alert("No microphone: " + e.message); return; }
  }
  try { await api("POST", `/api/agent/offers/${id}/accept`); }
  catch (e) { alert(e.message); }
}

async function screenPop(w) {
  const box = $("#screen-pop");
  app.popFor = w.interaction;
  // Only the latest screen-pop fills the box (an earlier one may still be loading).
  const gen = app.popGen = (app.popGen || 0) + 1;
  const head = el("div", { className: "pop" },
    el("h3", { textContent: `${w.channel || "call"} from ${w.from || "a customer"}` }));
  const ivr = el("dl", { className: "ivr" });
  fillIvr(ivr, w.details);
  const typed = w.details && w.details.verified !== undefined;
  if (ivr.childElementCount) head.append(el("h4", { textContent: typed ? "What they typed" : "Entered in the IVR" }), ivr);
  box.replaceChildren(head);
  if (w.details && w.details.verified === false) {
    // A chat's name and address are only what the customer typed.
    const warn = el("div", { className: "unverified", role: "note" },
      el("strong", { className: "badge", textContent: "Unverified" }),
      el("span", { textContent: " They typed this name and address; check who they are before discussing an account." }));
    if (app.work.has(w.interaction)) {
      warn.append(el("button", { className: "verify", type: "button", textContent: "Identity verified",
        onclick: () => api("POST", `/api/agent/work/${w.interaction}/verify`)
          .then(r => verified(w.interaction, r.customer)).catch(e => flash(w.interaction, e.message)) }));
    }
    box.append(warn);
    return;
  }
  if (!w.customer) { box.append(el("p", { className: "empty", textContent: "Unknown caller." })); return; }
  let v;
  try { v = await api("GET", `/api/agent/customers/${w.customer}`); }
  catch (e) { box.append(el("p", { textContent: e.message })); return; }
  if (app.popGen !== gen) return;
  const c = v.customer;
  const card = el("div", { className: "card" },
    el("h3", { className: "customer-name", textContent: c.name || "(no name)" }));
  const facts = el("dl", { className: "ivr" });
  for (const [k, val] of Object.entries(c)) {
    if (["id", "name", "identities", "open_conversation"].includes(k) || val === null || val === "") continue;
    facts.append(el("dt", { textContent: k }), el("dd", { textContent: String(val) }));
  }
  card.append(facts);
  card.append(el("p", { textContent: "Reach: " + (c.identities || []).map(i => `${i.kind} ${i.value}`).join(", ") }));
  if (c.open_conversation) card.append(el("p", { textContent: `Open case #${c.open_conversation}` }));
  const recent = el("ol", { className: "timeline", "aria-label": "Last interactions" });
  for (const i of (v.interactions || []).slice(0, 8)) {
    const when = i.started_at ? new Date(i.started_at).toLocaleString() : ""; // Unix ms
    recent.append(el("li", { textContent: `${when} · ${i.kind} · ${i.queue || ""} · ${i.agent || "no agent"} · ${i.outcome || (i.ended_at ? "ended" : "ongoing")}${i.disposition ? " · " + i.disposition : ""}` }));
  }
  const notes = el("ul", { className: "notes", "aria-label": "Notes" });
  const tl = el("ol", { className: "timeline", "aria-label": "Case timeline" });
  for (const t of v.timeline || []) {
    if (t.kind === "note") notes.append(el("li", { textContent: `${t.data.agent}: ${t.data.text}` }));
    tl.append(el("li", { textContent: `${t.kind}${t.data && t.data.agent ? " · " + t.data.agent : ""}` }));
  }
  box.append(card, el("h4", { textContent: "Last interactions" }), recent);
  if (notes.childElementCount) box.append(el("h4", { textContent: "Notes" }), notes);
  box.append(el("h4", { textContent: "Timeline of the open case" }), tl);
}

// ---------------------------------------------------------------- work: calls and chats

function addWork(w) {
  if (app.work.has(w.interaction)) return;
  const entry = { data: w, node: null, pc: null };
  app.work.set(w.interaction, entry);
  const voice = w.channel === "voice" || w.channel === "video";
  const n = $(voice ? "#call-tpl" : "#chat-tpl").content.firstElementChild.cloneNode(true);
  n.dataset.interaction = w.interaction;
  entry.node = n;
  $(".from", n).textContent = w.from || "customer";
  if (voice) wireCall(entry); else wireChat(entry);
  $("#work-list").append(n);
  // A chat's messages so far (the desk keeps those that came before the assignment).
  for (const x of w.messages || []) chatMessage(Object.assign({ interaction: w.interaction }, x));
  screenPop(w);
  if (voice && w.browser_call) startCall(entry);
  else if (voice) $(".state", n).textContent = "on your phone";
}

function wireCall(entry) {
  const id = entry.data.interaction, n = entry.node;
  $(".hangup", n).onclick = () => api("POST", `/api/agent/work/${id}/hangup`).catch(e => flash(id, e.message));
  $(".hold", n).onclick = async () => {
    const on = $(".hold", n).getAttribute("aria-pressed") !== "true";
    try {
      await api("POST", `/api/agent/work/${id}/hold`, { on });
      $(".hold", n).setAttribute("aria-pressed", String(on));
      $(".hold", n).textContent = on ? "Resume" : "Hold";
      $(".state", n).textContent = on ? "on hold" : "connected";
    } catch (e) { flash(id, e.message); }
  };
  // Hold's accessible name must stay findable: "Resume" is announced as pressed Hold.
  $(".hold", n).setAttribute("aria-label", "Hold");
  $(".mute", n).onclick = () => {
    const on = $(".mute", n).getAttribute("aria-pressed") !== "true";
    for (const t of (entry.stream ? entry.stream.getAudioTracks() : [])) t.enabled = !on;
    $(".mute", n).setAttribute("aria-pressed", String(on));
  };
  $(".transfer-form", n).onsubmit = async ev => {
    ev.preventDefault();
    const kind = $(".transfer-kind", n).value, to = $(".transfer-to", n).value.trim();
    if (!to) return;
    try { await api("POST", `/api/agent/work/${id}/transfer`, { [kind]: to }); }
    catch (e) { flash(id, e.message); }
  };
  $(".consult-form", n).onsubmit = async ev => {
    ev.preventDefault();
    const to = $(".consult-to", n).value.trim();
    if (!to) return;
    try { await api("POST", `/api/agent/work/${id}/consult`, { agent: to }); }
    catch (e) { flash(id, e.message); }
  };
  $(".complete", n).onclick = () => api("POST", `/api/agent/work/${id}/complete`).catch(e => flash(id, e.message));
  $(".cancel-consult", n).onclick = () => api("POST", `/api/agent/work/${id}/cancel_consult`).catch(e => flash(id, e.message));
  const pad = $(".dialpad", n);
  for (const d of "123456789*0#") {
    pad.append(el("button", {
      type: "button", textContent: d, ariaLabel: `Dial ${d}`,
      onclick: () => api("POST", `/api/agent/work/${id}/dtmf`, { digits: d }).catch(e => flash(id, e.message)),
    }));
  }
}

// A warm transfer's progress on a call we have.
function callState(m) {
  const w = app.work.get(m.interaction);
  if (!w) return;
  $(".state", w.node).textContent = m.state;
  // Consulted on a colleague's call: they decide; our buttons stay as they are.
  if (w.data.consult) return;
  $(".complete", w.node).disabled = m.state !== "consult connected";
  $(".cancel-consult", w.node).disabled = m.state === "consult ended";
  $(".consult", w.node).disabled = m.state !== "consult ended";
}

async function startCall(entry) {
  const id = entry.data.interaction, n = entry.node;
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  entry.pc = pc;
  try {
    entry.stream = app.mic || await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    app.mic = null;
  } catch (e) { flash(id, "No microphone: " + e.message); return; }
  for (const t of entry.stream.getAudioTracks()) pc.addTrack(t, entry.stream);
  pc.ontrack = ev => { $(".remote", n).srcObject = ev.streams[0] || new MediaStream([ev.track]); };
  pc.onconnectionstatechange = () => {
    const s = pc.connectionState;
    if (s === "connected") $(".state", n).textContent = "connected";
    else if (s === "failed") $(".state", n).textContent = "media failed";
  };
  await pc.setLocalDescription(await pc.createOffer());
  // The gateway is ICE-lite and answers at once: send the offer with its candidates.
  await new Promise(r => {
    if (pc.iceGatheringState === "complete") return r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
    setTimeout(r, 1500);
  });
  app.ws.send(JSON.stringify({ type: "webrtc_offer", interaction: id, sdp: pc.localDescription.sdp }));
  entry.statsTimer = setInterval(() => showStats(entry), 1000);
}

async function webrtcAnswer(m) {
  const entry = app.work.get(m.interaction);
  if (!entry || !entry.pc) return;
  await entry.pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
}

async function showStats(entry) {
  if (!entry.pc) return;
  const r = await entry.pc.getStats();
  let inb = 0, out = 0;
  r.forEach(s => {
    if (s.type === "inbound-rtp" && s.kind === "audio") inb = s.packetsReceived;
    if (s.type === "outbound-rtp" && s.kind === "audio") out = s.packetsSent;
  });
  $(".stats", entry.node).textContent = `audio packets in ${inb}, out ${out}`;
}

function closeCall(id) {
  const entry = app.work.get(id);
  if (!entry) return;
  clearInterval(entry.statsTimer);
  if (entry.pc) { entry.pc.close(); entry.pc = null; }
  if (entry.stream) for (const t of entry.stream.getTracks()) t.stop();
}

function wireChat(entry) {
  const id = entry.data.interaction, n = entry.node;
  $(".say", n).onsubmit = async ev => {
    ev.preventDefault();
    const t = $(".text", n).value.trim();
    if (!t) return;
    try { await api("POST", `/api/agent/work/${id}/messages`, { text: t }); $(".text", n).value = ""; }
    catch (e) { alert(e.message); }
  };
  $(".end", n).onclick = () => api("POST", `/api/agent/work/${id}/end`).catch(e => alert(e.message));
}

function chatMessage(m) {
  const w = app.work.get(m.interaction);
  if (!w || !$(".messages", w.node)) return;
  const list = $(".messages", w.node);
  if (m.seq && list.querySelector(`[data-seq="${m.seq}"]`)) return;
  const li = el("li", { className: m.from, textContent: `${m.name || m.from}: ${m.text}` });
  if (m.seq) li.dataset.seq = m.seq;
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

// The call or chat ended: the agent wraps up (disposition, resolved, note).
// The agent verified a chat's identity: the screen-pop shows the customer's record.
function verified(id, customer) {
  const w = app.work.get(id);
  if (!w || !customer || w.data.customer === customer) return;
  w.data.customer = customer;
  w.data.details = Object.assign({}, w.data.details, { verified: true });
  if (w.node) $(".from", w.node).textContent = w.data.from || "customer";
  screenPop(w.data);
}

function workEnded(id, customerLeft) {
  const entry = app.work.get(id);
  if (!entry) { removeOffer(id); return; }
  if (entry.wrapping) return;
  closeCall(id);
  if (entry.data.consult) {
    // We were only consulted: nothing of ours to wrap up.
    entry.node.remove();
    app.work.delete(id);
    return;
  }
  entry.wrapping = true;
  const n = entry.node;
  const st = $(".state", n);
  if (st) st.textContent = customerLeft ? "caller hung up" : "ended";
  // Nothing on the card acts any more: only the wrap-up form does.
  for (const c of n.querySelectorAll("button, input, select")) c.disabled = true;
  const f = $("#wrap-tpl").content.firstElementChild.cloneNode(true);
  f.onsubmit = async ev => {
    ev.preventDefault();
    try {
      const note = $(".note", f).value.trim();
      if (note) await api("POST", `/api/agent/work/${id}/notes`, { text: note });
      await api("POST", `/api/agent/work/${id}/wrap_up`, {
        disposition: $(".disposition", f).value, resolved: $(".resolved", f).checked,
      });
      n.remove();
      app.work.delete(id);
      $("#no-work").hidden = app.work.size > 0;
      if (entry.data.customer) screenPop(entry.data);
    } catch (e) { alert(e.message); }
  };
  n.append(f);
}

// ---------------------------------------------------------------- start

$("#login-form").onsubmit = login;
$("#presence").onchange = ev => api("PUT", "/api/agent/presence", { presence: ev.target.value }).catch(e => alert(e.message));
$("#logout").onclick = async () => { try { await api("POST", "/api/agent/logout"); } catch { } loggedOut(); };
if (app.token) connect(); else showDesk(false);
