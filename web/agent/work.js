// Work: calls (taken in the browser over WebRTC, or on the agent's desk phone) and
// chats, each a card with its timer, and the wrap-up that follows.
import { app } from "./state.js";
import { $, el, fromTemplate, clock, ICON } from "./dom.js";
import { act, api, download, flash, flashOk } from "./api.js";
import { send } from "./socket.js";
import { screenPop, personOf } from "./pop.js";
import { tick, wrapCountdown, serviceLevel } from "./status.js";
import { pickers, texting } from "./directory.js";
import { loadMails } from "./mail.js";
import { kbPanel, kbSuggest } from "./kb.js";

const MIC = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };
const CHANNEL = { whatsapp: "WhatsApp", sms: "SMS", email: "e-mail" };
const isVoice = w => w.channel === "voice" || w.channel === "video";

export function addWork(w) {
  if (app.work.has(w.interaction)) return;
  // A consult this page answered brings its leg (already connecting or connected).
  const leg = app.legs.get(w.interaction);
  app.legs.delete(w.interaction);
  const entry = leg ? Object.assign(leg, { data: Object.assign({}, leg.data, w) }) : { data: w, node: null, pc: null };
  app.work.set(w.interaction, entry);
  const voice = isVoice(w);
  const n = fromTemplate(voice ? "#call-tpl" : "#chat-tpl");
  n.dataset.interaction = w.interaction;
  entry.node = n;
  $(".icon", n).textContent = ICON[w.channel] || "•";
  $(".from", n).textContent = w.consult ? (w.caller ? `${w.from} (consult about ${w.caller})` : w.from) : personOf(w);
  $(".timer", n).dataset.since = w.since || Date.now();
  // An e-mail is answered in paragraphs: the reply box takes several lines.
  if (w.channel === "email") {
    const old = $(".say .text", n);
    old.replaceWith(el("textarea", { className: "text", rows: 5, ariaLabel: "Message", placeholder: "Your reply (sent as an e-mail)" }));
  }
  if (voice) wireCall(entry); else wireChat(entry);
  wireText(entry);
  // An open channel's thread shows the account it came through (the business's own
  // channel: its app, its marketplace inbox).
  if (!voice) $(".state", n).textContent = CHANNEL[w.channel] || (w.channel === "api" && w.details && w.details.account) || "chat";
  if (!voice) replyWindow(entry, w.window_until || (w.details && w.details.window_until));
  $("#work-list").append(n);
  // With several things on, the one the agent turns to shows its customer.
  n.addEventListener("focusin", () => { if (app.popFor !== w.interaction && app.work.has(w.interaction)) screenPop(entry.data); });
  n.addEventListener("pointerdown", () => { if (app.popFor !== w.interaction && app.work.has(w.interaction)) screenPop(entry.data); });
  // A chat's messages so far (the desk keeps those that came before the assignment).
  for (const x of w.messages || []) chatMessage(Object.assign({ interaction: w.interaction }, x));
  // A supervisor's notes so far, and who is on it now (after a reload).
  for (const x of w.notes || []) chatNote(Object.assign({ interaction: w.interaction }, x));
  if (w.monitored) monitored(Object.assign({ interaction: w.interaction }, w.monitored));
  if (w.held_since || w.holds) held(w);
  if (w.customer_left) customerLeft(entry);
  tick();
  screenPop(w);
  if (entry.pc) {
    if (entry.remote) $(".remote", n).srcObject = entry.remote;
    showVideo(entry);
    entry.statsTimer = entry.statsTimer || setInterval(() => showStats(entry), 1000);
  } else if (voice && w.browser_call) startCall(entry);
  else if (voice) $(".state", n).textContent = "on your phone";
}

/// A colleague's consult, answered in the browser: its leg connects now, and the
/// gateway makes it work on the desk (`call_state`) once the two agents can talk.
export function consultLeg(o) {
  if (app.legs.has(o.interaction) || app.work.has(o.interaction)) return;
  const leg = {
    data: { interaction: o.interaction, channel: "voice", from: o.from, caller: o.caller,
      customer: o.customer, details: o.details, browser_call: true, consult: true },
    node: null, pc: null,
  };
  app.legs.set(o.interaction, leg);
  startCall(leg);
}

/// The consult ended or was withdrawn before it became work: its leg goes.
export function dropLeg(id) {
  const leg = app.legs.get(id);
  if (!leg) return;
  app.legs.delete(id);
  stopLeg(leg);
}

/// "Text the customer": an SMS or WhatsApp message to their phone on record from a
/// call or chat card; it lands on their case's timeline (the gateway sends it).
function wireText(entry) {
  const id = entry.data.interaction, form = $(".text-form", entry.node);
  if (!form) return;
  form.onsubmit = async ev => {
    ev.preventDefault();
    const body = $(".text-body", form), select = $(".text-channel", form);
    const text = body.value.trim();
    if (!text || !select.value) return flash(id, "Write the text and choose how it goes.");
    try {
      const r = await act(id, "POST", `/api/agent/work/${id}/messages`, { text, channel: select.value });
      body.value = "";
      flash(id, `Text queued: ${select.selectedOptions[0].textContent} to ${r.to} (${r.account}).`);
      // It is on the case's timeline now: the screen-pop shows it.
      if (app.popFor === id) screenPop(entry.data);
    } catch { }
  };
  texting(entry.node);
}

// ---------------------------------------------------------------- calls

function wireCall(entry) {
  const id = entry.data.interaction, n = entry.node;
  $(".hangup", n).onclick = () => act(id, "POST", `/api/agent/work/${id}/hangup`).catch(() => {});
  $(".hold", n).onclick = async () => {
    const on = $(".hold", n).getAttribute("aria-pressed") !== "true";
    try {
      await act(id, "POST", `/api/agent/work/${id}/hold`, { on });
      showHold(entry, on);
    } catch { }
  };
  // Hold's accessible name must stay findable: "Resume" is announced as pressed Hold.
  $(".hold", n).setAttribute("aria-label", "Hold");
  $(".camera", n).onclick = () => camera(entry);
  // The caller's phone is offered video; when it takes it, the gateway asks this page
  // to renegotiate (see renegotiate()).
  $(".add-video", n).onclick = async () => {
    $(".add-video", n).disabled = true;
    try {
      await act(id, "POST", `/api/agent/work/${id}/video`);
      entry.addingVideo = true;
      flashOk(id, "Asking the caller's phone for video…");
    } catch { $(".add-video", n).disabled = false; }
  };
  $(".mute", n).onclick = () => {
    const on = $(".mute", n).getAttribute("aria-pressed") !== "true";
    for (const t of (entry.stream ? entry.stream.getAudioTracks() : [])) t.enabled = !on;
    $(".mute", n).setAttribute("aria-pressed", String(on));
  };
  pickers(n);
  $(".transfer-form", n).onsubmit = async ev => {
    ev.preventDefault();
    const to = $(".transfer-to", n).value;
    if (!to) return flash(id, "Choose an agent or a queue to transfer to.");
    const [kind, name] = [to.slice(0, to.indexOf(":")), to.slice(to.indexOf(":") + 1)];
    await act(id, "POST", `/api/agent/work/${id}/transfer`, { [kind]: name }).catch(() => {});
  };
  $(".consult-form", n).onsubmit = async ev => {
    ev.preventDefault();
    const to = $(".consult-to", n).value;
    if (!to) return flash(id, "Choose an agent to consult.");
    await act(id, "POST", `/api/agent/work/${id}/consult`, { agent: to.slice("agent:".length) }).catch(() => {});
  };
  $(".complete", n).onclick = () => act(id, "POST", `/api/agent/work/${id}/complete`).catch(() => {});
  $(".cancel-consult", n).onclick = () => act(id, "POST", `/api/agent/work/${id}/cancel_consult`).catch(() => {});
  const pad = $(".dialpad", n);
  for (const d of "123456789*0#") {
    pad.append(el("button", {
      type: "button", textContent: d, ariaLabel: `Dial ${d}`,
      onclick: () => act(id, "POST", `/api/agent/work/${id}/dtmf`, { digits: d }).catch(() => {}),
    }));
  }
}

function showHold(entry, on) {
  const b = $(".hold", entry.node);
  b.setAttribute("aria-pressed", String(on));
  b.textContent = on ? "Resume" : "Hold";
  $(".state", entry.node).textContent = on ? "on hold" : "connected";
}

/// The gateway says the call is on hold (since when, how many times) or not.
export function held(m) {
  const entry = app.work.get(m.interaction);
  if (!entry || !$(".hold", entry.node)) return;
  const on = !!m.held_since;
  showHold(entry, on);
  const info = $(".hold-info", entry.node);
  info.hidden = !m.holds;
  $(".hold-timer", info).dataset.since = m.held_since || "";
  $(".hold-timer", info).hidden = !on;
  $(".hold-count", info).textContent = m.holds === 1 ? "held once" : `held ${m.holds} times`;
  tick();
}

/// A supervisor on our call (as policy lets us know): who and how, or no longer.
export function monitored(m) {
  const entry = app.work.get(m.interaction);
  const p = entry && entry.node && $(".monitored", entry.node);
  if (!p) return;
  const chat = entry.data.channel !== "voice" && entry.data.channel !== "video";
  const how = { listen: "is listening", whisper: "is whispering to you (the caller does not hear)", barge: chat ? "has joined the chat" : "has joined the call", took_over: "has taken over the chat: it is theirs now" };
  p.hidden = !m.supervisor;
  p.textContent = m.supervisor ? `Supervisor ${m.name || m.supervisor} ${how[m.mode] || m.mode}` : "";
}

/// A warm transfer's progress on a call we have.
export function callState(m) {
  const w = app.work.get(m.interaction);
  if (!w || w.wrapping) return;
  w.callState = m.state;
  $(".state", w.node).textContent = m.state;
  // Consulted on a colleague's call: they decide; our buttons stay as they are.
  if (w.data.consult) return;
  $(".complete", w.node).disabled = m.state !== "consult connected";
  $(".cancel-consult", w.node).disabled = m.state === "consult ended";
  $(".consult", w.node).disabled = m.state !== "consult ended";
}

async function startCall(entry) {
  const id = entry.data.interaction;
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  entry.pc = pc;
  try {
    entry.stream = app.mic || await navigator.mediaDevices.getUserMedia(MIC);
    app.mic = null;
  } catch (e) { flash(id, "No microphone: " + e.message); return; }
  if (entry.pc !== pc) { for (const t of entry.stream.getTracks()) t.stop(); return; } // dropped meanwhile
  for (const t of entry.stream.getAudioTracks()) pc.addTrack(t, entry.stream);
  // Video is offered on every call: the gateway takes it when the caller has video
  // (VP8 or H.264, passed through), and declines it otherwise. The camera joins the
  // transceiver when the agent turns it on.
  entry.video = pc.addTransceiver("video", { direction: "sendrecv" });
  // A consult's leg has no card yet: the card takes the sound (and picture) when the
  // gateway makes it work.
  pc.ontrack = ev => {
    if (ev.track.kind === "video") {
      entry.remoteVideo = new MediaStream([ev.track]);
      if (entry.node) showVideo(entry);
      return;
    }
    entry.remote = ev.streams[0] || new MediaStream([ev.track]);
    if (entry.node) $(".remote", entry.node).srcObject = entry.remote;
  };
  pc.onconnectionstatechange = () => {
    const s = pc.connectionState, n = entry.node;
    if (entry.wrapping || !n) return;
    // A consult's progress is the gateway's word (it may come before the media's).
    if (s === "connected") showVideo(entry);
    if (s === "connected") $(".state", n).textContent = entry.data.consult && entry.callState ? entry.callState
      : $(".hold", n).getAttribute("aria-pressed") === "true" ? "on hold" : "connected";
    else if (s === "failed") $(".state", n).textContent = "media failed";
  };
  await pc.setLocalDescription(await pc.createOffer());
  // The gateway is ICE-lite and answers at once: send the offer with its candidates.
  await new Promise(r => {
    if (pc.iceGatheringState === "complete") return r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
    setTimeout(r, 1500);
  });
  if (entry.pc !== pc) return; // dropped meanwhile
  send({ type: "webrtc_offer", interaction: id, sdp: pc.localDescription.sdp });
  if (entry.node) entry.statsTimer = setInterval(() => showStats(entry), 1000);
}

export async function webrtcAnswer(m) {
  const entry = app.work.get(m.interaction) || app.legs.get(m.interaction);
  if (!entry || !entry.pc) return;
  await entry.pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
  // The gateway took video: the call is a video call, and the camera can be offered.
  const video = entry.video && entry.video.currentDirection && entry.video.currentDirection !== "inactive"
    && /m=video [1-9]/.test(m.sdp);
  entry.hasVideo = Boolean(video);
  if (entry.addingVideo && entry.hasVideo) flashOk(m.interaction, "Video is on: turn your camera on when you are ready.");
  entry.addingVideo = false;
  if (entry.node) showVideo(entry);
}

/// The call's video: the caller's picture once the gateway sends it, the camera button
/// when the call has video.
function showVideo(entry) {
  const n = entry.node;
  if (!n || !$(".videos", n)) return;
  $(".camera", n).hidden = !entry.hasVideo;
  if (entry.hasVideo) $(".state", n).dataset.video = "video";
  const remote = $(".remote-video", n);
  if (entry.remoteVideo && remote.srcObject !== entry.remoteVideo) remote.srcObject = entry.remoteVideo;
  $(".videos", n).hidden = !entry.hasVideo;
  // Video can be added to an audio call whose browser leg is up.
  const add = $(".add-video", n);
  if (add) add.hidden = entry.hasVideo || !entry.pc || entry.pc.connectionState !== "connected" || Boolean(entry.data.consult);
}

/// The caller's phone took video: a new offer on the same connection (the camera's
/// transceiver, inactive so far), answered by a `webrtc_answer` push.
export async function renegotiate(m) {
  const entry = app.work.get(m.interaction);
  if (!entry || !entry.pc || entry.pc.signalingState !== "stable") return;
  const pc = entry.pc;
  await pc.setLocalDescription(await pc.createOffer());
  if (entry.pc !== pc) return; // dropped meanwhile
  send({ type: "webrtc_offer", interaction: m.interaction, sdp: pc.localDescription.sdp });
}

/// Video was not added to the call: why.
export function videoRefused(m) {
  const entry = app.work.get(m.interaction);
  if (entry) entry.addingVideo = false;
  if (entry && entry.node && $(".add-video", entry.node)) $(".add-video", entry.node).disabled = false;
  flash(m.interaction, m.error);
}

/// Turns the agent's camera on (into the call's video transceiver; no renegotiation)
/// or off.
async function camera(entry) {
  const n = entry.node, b = $(".camera", n), local = $(".local-video", n);
  const on = b.getAttribute("aria-pressed") !== "true";
  if (!entry.video) return;
  if (on) {
    try { entry.cam = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } }); }
    catch (e) { return flash(entry.data.interaction, "No camera: " + e.message); }
    const [t] = entry.cam.getVideoTracks();
    await entry.video.sender.replaceTrack(t);
    local.srcObject = entry.cam;
  } else {
    await entry.video.sender.replaceTrack(null);
    if (entry.cam) for (const t of entry.cam.getTracks()) t.stop();
    entry.cam = null;
    local.srcObject = null;
  }
  local.hidden = !on;
  b.setAttribute("aria-pressed", String(on));
}

async function showStats(entry) {
  if (!entry.pc || !entry.node) return;
  const r = await entry.pc.getStats();
  let inb = 0, out = 0, frames = null;
  r.forEach(s => {
    if (s.type === "inbound-rtp" && s.kind === "audio") inb = s.packetsReceived;
    if (s.type === "outbound-rtp" && s.kind === "audio") out = s.packetsSent;
    if (s.type === "inbound-rtp" && s.kind === "video") frames = (frames || 0) + (s.framesDecoded || 0);
  });
  $(".stats", entry.node).textContent = `audio packets in ${inb}, out ${out}` + (frames === null ? "" : `; video frames ${frames}`);
}

export function closeCall(id) {
  const entry = app.work.get(id);
  if (entry) stopLeg(entry);
}

function stopLeg(entry) {
  clearInterval(entry.statsTimer);
  if (entry.pc) { entry.pc.close(); entry.pc = null; }
  if (entry.stream) for (const t of entry.stream.getTracks()) t.stop();
  if (entry.cam) for (const t of entry.cam.getTracks()) t.stop();
  entry.cam = null;
}

// ---------------------------------------------------------------- chats

function wireChat(entry) {
  const id = entry.data.interaction, n = entry.node;
  $(".say", n).onsubmit = async ev => {
    ev.preventDefault();
    const t = $(".text", n).value.trim();
    if (!t) return;
    try { await act(id, "POST", `/api/agent/work/${id}/messages`, { text: t }); $(".text", n).value = ""; }
    catch { }
  };
  $(".end", n).onclick = () => act(id, "POST", `/api/agent/work/${id}/end`).catch(() => {});
  // A web chat's customer may be asked to a video call (it rings here when they join).
  const invite = $(".invite-video", n);
  invite.hidden = entry.data.channel !== "webchat";
  invite.onclick = () => act(id, "POST", `/api/agent/work/${id}/video`)
    .then(() => flashOk(id, "Video call invitation sent: it rings here when the customer joins."))
    .catch(() => {});
  loadCanned(entry);
  templatePicker(entry);
  kbPanel(entry);
}

// A WhatsApp thread's approved templates (from the gateway's details): shown once
// the reply window has closed, each with its parameters to fill.
function templatePicker(entry) {
  const id = entry.data.interaction, n = entry.node;
  const list = (entry.data.details && entry.data.details.templates) || [];
  const form = $(".templates", n);
  if (!form || !list.length) return;
  const pick = $(".template", form), params = $(".params", form);
  pick.replaceChildren(...list.map((t, i) => el("option", { value: String(i), textContent: t.language ? `${t.name} (${t.language})` : t.name })));
  const fill = () => {
    const t = list[+pick.value] || list[0];
    params.replaceChildren(...Array.from({ length: t.parameters || 0 }, (_, i) =>
      el("input", { className: "param", ariaLabel: `Parameter ${i + 1}`, placeholder: `{{${i + 1}}}`, autocomplete: "off", required: true })));
  };
  pick.onchange = fill;
  fill();
  form.onsubmit = async ev => {
    ev.preventDefault();
    const t = list[+pick.value] || list[0];
    const parameters = [...params.querySelectorAll("input")].map(x => x.value.trim());
    try {
      await act(id, "POST", `/api/agent/work/${id}/template`, { name: t.name, parameters });
      for (const x of params.querySelectorAll("input")) x.value = "";
    } catch { }
  };
}

// The queue's ready replies, filled by the gateway for this customer and agent; one
// chosen goes into the message box to be read (and edited) before it is sent.
async function loadCanned(entry) {
  const id = entry.data.interaction, n = entry.node;
  let list = [];
  try { list = await api("GET", `/api/agent/work/${id}/canned`); } catch { return; }
  const pick = $(".canned", n);
  pick.replaceChildren(pick.options[0], ...list.map((c, i) => el("option", { value: String(i), textContent: c.title, title: c.text })));
  $(".canned-pick", n).hidden = !list.length;
  pick.onchange = () => {
    const c = list[+pick.value];
    pick.value = "";
    if (!c) return;
    const box = $(".text", n);
    box.value = box.value.trim() ? `${box.value.trimEnd()} ${c.text}` : c.text;
    box.focus();
  };
}

export function chatMessage(m) {
  const w = app.work.get(m.interaction);
  if (!w || !$(".messages", w.node)) return;
  const list = $(".messages", w.node);
  if (m.seq && list.querySelector(`[data-seq="${+m.seq}"]`)) return;
  const li = el("li", { className: m.from === "agent" || m.from === "bot" ? m.from : "customer" },
    el("span", { className: "who", textContent: m.name || m.from }), ": ", m.text);
  if (m.at) li.append(" ", el("time", { className: "at", dateTime: new Date(m.at).toISOString(), textContent: clock(m.at) }));
  // A customer's media (a WhatsApp photo, audio, document) opens through the gateway.
  const media = m.from === "customer" && /\[([^\]]{1,200}) media ([A-Za-z0-9]{1,64})\]/.exec(m.text || "");
  if (media) {
    const [, what, mid] = media;
    li.append(" ", el("button", {
      type: "button", className: "media", textContent: `Open ${what}`,
      onclick: () => download(m.interaction, `/api/agent/work/${encodeURIComponent(m.interaction)}/media/${mid}`, what.includes(".") ? what : `${what}-${mid}`),
    }));
  }
  if (m.seq) li.dataset.seq = m.seq;
  if (m.status) showDelivery(li, m.status, m.error);
  // In order of the gateway's numbering, whatever order they arrive in.
  const later = m.seq && [...list.children].find(x => +x.dataset.seq > +m.seq);
  list.insertBefore(li, later || null);
  list.scrollTop = list.scrollHeight;
  // The customer's newest words: the knowledge base's sure matches are suggested.
  if (m.from === "customer" && !later) kbSuggest(w, m.text);
  // An e-mail's formatted view and attachments, beside its message.
  if (w.data.channel === "email") loadMails(m.interaction);
}

// A supervisor's private note on a chat: for this agent only, never the customer's.
export function chatNote(m) {
  const w = app.work.get(m.interaction);
  if (!w || !$(".messages", w.node)) return;
  const list = $(".messages", w.node);
  const key = `${m.at}|${m.supervisor}|${m.text}`;
  if ([...list.querySelectorAll("li.note")].some(x => x.dataset.key === key)) return;
  const li = el("li", { className: "note" },
    el("span", { className: "who", textContent: `${m.name || m.supervisor} (note to you only)` }), ": ", m.text);
  if (m.at) li.append(" ", el("time", { className: "at", dateTime: new Date(m.at).toISOString(), textContent: clock(m.at) }));
  li.dataset.key = key;
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

// Where a message sent through a provider (WhatsApp) has got to.
const TICKS = { queued: "queued", sent: "✓ sent", delivered: "✓✓ delivered", read: "✓✓ read", failed: "failed" };

const RANK = { queued: 0, sent: 1, delivered: 2, read: 3 };

function showDelivery(li, status, error) {
  let d = li.querySelector(".delivery");
  if (!d) { d = el("span", { className: "delivery" }); li.append(" ", d); }
  // News may arrive out of order (our "sent" after the provider's "delivered"): a
  // message only moves forward, and failed or read is where it stays.
  const old = d.dataset.status;
  const retry = old === "failed" && status === "queued";
  if (old && old !== status && !retry && (!(old in RANK) || old === "read" || (status !== "failed" && !(RANK[status] > RANK[old])))) return;
  d.textContent = TICKS[status] || status;
  d.dataset.status = status;
  d.title = error || "";
  if (error && (status === "failed" || status === "queued")) d.textContent += `: ${error}`;
}

/// A WhatsApp thread's reply window (until, Unix ms): counts down on the card.
function replyWindow(entry, until) {
  const p = entry.node && $(".window", entry.node);
  if (!p || !until) return;
  p.hidden = false;
  $(".window-left", p).dataset.until = until;
  const form = $(".templates", entry.node);
  if (form && $(".template option", form)) form.dataset.showsAt = until;
  tick();
}

/// The gateway moved a thread's reply window (the customer wrote again).
export function windowMoved(m) {
  const w = app.work.get(m.interaction);
  if (w) replyWindow(w, m.until);
}

/// The gateway's news of a message's delivery.
export function delivery(m) {
  const w = app.work.get(m.interaction);
  const li = w && w.node && w.node.querySelector(`.messages [data-seq="${+m.seq}"]`);
  if (li) showDelivery(li, m.status, m.error);
}

export function typing(m) {
  const w = app.work.get(m.interaction);
  if (w && $(".typing", w.node)) $(".typing", w.node).hidden = !m.on;
}

function customerLeft(entry) {
  const left = $(".left-note", entry.node);
  if (left) left.hidden = false;
}

/// The agent verified a chat's identity: the screen-pop shows the customer's record.
export function verified(id, customer) {
  const w = app.work.get(id);
  if (!w || !customer || w.data.customer === customer) return;
  w.data.customer = customer;
  w.data.details = Object.assign({}, w.data.details, { verified: true });
  if (w.node) $(".from", w.node).textContent = w.data.from || "customer";
  if (w.node && $(".canned", w.node)) loadCanned(w);
  if (w.node) texting(w.node);
  screenPop(w.data);
}

// ---------------------------------------------------------------- wrap-up

/// The call or chat ended: the agent wraps up (disposition, resolved, note).
export function workEnded(id, customerGone) {
  const entry = app.work.get(id);
  if (!entry || entry.wrapping) return;
  closeCall(id);
  if (entry.data.consult) {
    // We were only consulted: nothing of ours to wrap up.
    entry.node.remove();
    app.work.delete(id);
    return;
  }
  entry.wrapping = true;
  const n = entry.node;
  n.classList.add("ended");
  // No picture after the call.
  if ($(".videos", n)) $(".videos", n).hidden = true;
  const st = $(".state", n);
  if (st) st.textContent = customerGone ? (isVoice(entry.data) ? "caller hung up" : "customer left") : "ended";
  if (customerGone) customerLeft(entry);
  // The talk timer stops where it ended.
  const t = $(".timer", n);
  tick();
  delete t.dataset.since;
  // Nothing on the card acts any more: only the wrap-up form does.
  for (const c of n.querySelectorAll("button, input, select")) c.disabled = true;
  const texts = $(".text-form", n);
  if (texts) texts.hidden = true;
  const f = fromTemplate("#wrap-tpl");
  wrapCountdown($(".wrap-until", f));
  f.onsubmit = async ev => {
    ev.preventDefault();
    try {
      const note = $(".note", f).value.trim();
      if (note) await act(id, "POST", `/api/agent/work/${id}/notes`, { text: note });
      await act(id, "POST", `/api/agent/work/${id}/wrap_up`, {
        disposition: $(".disposition", f).value, resolved: $(".resolved", f).checked,
      });
      n.remove();
      app.work.delete(id);
      $("#no-work").hidden = app.work.size > 0;
      serviceLevel();
      if (entry.data.customer) screenPop(entry.data);
    } catch { }
  };
  n.append(f);
}
