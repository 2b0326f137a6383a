// Offers: the person first (name, tier and VIP badges, priority, channel), then why
// they came (what they chose or typed), a countdown, the internals folded away. While
// something rings: the ring tone for calls, the tab title and icon, a browser
// notification when the tab is hidden, an announcement to screen readers, and focus
// on Answer unless the agent is typing.
import { app } from "./state.js";
import { $, el, fromTemplate, ICON } from "./dom.js";
import { act, flash } from "./api.js";
import { screenPop, fillDetails, personOf, splitDetails, tierClass } from "./pop.js";
import { tick } from "./status.js";

export function addOffer(o, onConsultAnswer) {
  if (app.offers.has(o.interaction)) return;
  app.offers.set(o.interaction, o);
  const n = fromTemplate("#offer-tpl");
  n.dataset.interaction = o.interaction;
  const d = o.details || {};
  const consult = o.type === "consult";
  // A call with the caller's camera on is offered as a video call.
  const channel = consult ? "consult" : (o.channel === "voice" && o.details && o.details.video ? "video" : o.channel);
  const person = consult ? `${o.from} about ${o.caller}` : personOf(o);
  $(".icon", n).textContent = ICON[channel] || "•";
  $(".person", n).textContent = person;
  $(".channel", n).textContent = consult ? "warm transfer" : channel;
  $(".from", n).textContent = consult ? "" : (o.from && o.from !== person ? o.from : "");
  $(".queue", n).textContent = consult ? "" : o.queue;
  n.setAttribute("aria-label", `${channel} from ${person}`);
  const tier = d["customer.tier"];
  if (tier) {
    const t = $(".tier", n);
    t.hidden = false;
    t.textContent = tier;
    t.classList.add(tierClass(tier));
  }
  $(".vip", n).hidden = !o.vip;
  if (o.priority !== undefined && o.priority !== 5) {
    $(".priority", n).hidden = false;
    $(".priority", n).textContent = `priority ${o.priority}`;
  }
  const [reason, internal] = splitDetails(d);
  fillDetails($(".reason", n), reason);
  fillDetails($(".internal dl", n), internal);
  $(".internal", n).hidden = !Object.keys(internal).length;
  $(".left", n).dataset.until = Date.now() + (o.expires_in_ms || 30000);
  if (consult) {
    // A colleague asks us to talk before handing the call over: no routing involved.
    $(".answer", n).onclick = () => onConsultAnswer(o);
    $(".reject", n).onclick = () => act(o.interaction, "POST", `/api/agent/work/${o.interaction}/hangup`).catch(() => {});
  } else {
    $(".answer", n).onclick = () => answer(o.interaction);
    $(".reject", n).onclick = () => reject(o.interaction);
  }
  $("#offer-list").append(n);
  tick();
  screenPop(o);
  notify(o, person, channel);
  const busy = document.activeElement && document.activeElement.matches("input, textarea, select");
  if (!busy) $(".answer", n).focus();
}

export function removeOffer(id) {
  app.offers.delete(id);
  const n = $(`#offer-list [data-interaction="${CSS.escape(id)}"]`);
  if (n) n.remove();
  const note = notes.get(id);
  if (note) { note.close(); notes.delete(id); }
}

export async function answer(id) {
  const o = app.offers.get(id);
  // Ask for the microphone while the click still counts as a user gesture (a call
  // answered on the agent's desk phone needs none).
  if (o && o.browser_call && (o.channel === "voice" || o.channel === "video")) {
    try { app.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } }); }
    catch (e) { flash(id, "No microphone: " + e.message); return; }
  }
  await act(id, "POST", `/api/agent/offers/${id}/accept`).catch(() => {});
}

export const reject = id => act(id, "POST", `/api/agent/offers/${id}/reject`).catch(() => {});

// ---------------------------------------------------------------- ringing

const notes = new Map();

function notify(o, person, channel) {
  if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
  const n = new Notification(`Incoming ${channel}`, { body: person, tag: o.interaction });
  n.onclick = () => { window.focus(); n.close(); };
  notes.set(o.interaction, n);
}

/// Asks for notifications once (from a click: browsers want a gesture).
export function askToNotify() {
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission().catch(() => {});
}

const icon = colour => `data:image/svg+xml,${encodeURIComponent(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="${colour}"/></svg>`)}`;
const TITLE = document.title;

export function ringUpdate() {
  const n = app.offers.size;
  document.title = n ? `(${n}) Incoming · ${TITLE}` : TITLE;
  $("#favicon").href = icon(n ? "#e07b00" : "#1d2330");
  const voice = [...app.offers.values()].some(o => o.channel === "voice" || o.channel === "video");
  if (voice) ringStart(); else ringStop();
}

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
  const ring = { ctx, timer: null, on: false };
  const beat = () => {
    ring.on = !ring.on;
    gain.gain.setTargetAtTime(ring.on ? 0.15 : 0, ctx.currentTime, 0.01);
    ring.timer = setTimeout(beat, ring.on ? 2000 : 4000);
  };
  beat();
  app.ring = ring;
}

export function ringStop() {
  if (!app.ring) return;
  clearTimeout(app.ring.timer);
  app.ring.ctx.close();
  app.ring = null;
}
