// omnigate agent desktop. Plain JavaScript modules, no build step, no CDN: the gateway
// serves each file under /agent/. State comes over the agent WebSocket: the whole
// state first, then every change (socket.js); views render from it. Calls are
// answered in the browser over WebRTC: the page sends its offer over the same
// WebSocket and the gateway answers (G.711, DTLS-SRTP).
import { app, forget, remember } from "./state.js";
import { $ } from "./dom.js";
import { api, flash } from "./api.js";
import { connect, disconnect } from "./socket.js";
import { setPresence, renderStatus, serviceLevel } from "./status.js";
import { addOffer, removeOffer, ringUpdate, ringStop, askToNotify } from "./offers.js";
import { addWork, callState, chatMessage, chatNote, closeCall, consultLeg, delivery, dropLeg, held, monitored, typing, verified, webrtcAnswer, windowMoved, workEnded, renegotiate, videoRefused } from "./work.js";
import { hooks } from "./pop.js";
import { installKeys } from "./keys.js";
import { installTabs, showTab, countTabs } from "./tabs.js";

hooks.verified = verified;

// A colleague's consult, answered: in the browser, its leg connects; on a desk phone,
// the phone rings. Either way the offer stays an offer until the gateway says the
// two agents talk (`call_state`): only then is it work on this page.
function answerConsult(o) {
  answering(o);
  if (o.browser_call) consultLeg(o);
}

function answering(o) {
  const n = $(`#offer-list [data-interaction="${CSS.escape(o.interaction)}"]`);
  if (!n) return;
  $(".answer", n).disabled = true;
  $(".countdown", n).textContent = o.browser_call ? "connecting…" : "answer on your phone";
}

// The gateway's word that a consult offered to us is up: the offer becomes work.
function consultUp(m) {
  const o = app.offers.get(m.interaction);
  if (!o || o.type !== "consult") return;
  removeOffer(m.interaction);
  addWork({ interaction: o.interaction, channel: "voice", from: o.from, caller: o.caller, customer: o.customer,
    details: o.details, browser_call: o.browser_call, consult: true, since: Date.now() });
  showTab("work");
}

function onPush(m) {
  switch (m.type) {
    case "state":
      // The gateway's desk is the truth: after a reconnect, offers and work are as it
      // says (a consult we are on is work, with its progress).
      app.queues = m.queues || [];
      setPresence(m.presence, m.presence_since, m.presence_until);
      serviceLevel();
      for (const id of [...app.offers.keys()]) removeOffer(id);
      for (const o of m.offers) if (!app.work.has(o.interaction)) addOffer(o, answerConsult);
      // A consult leg still connecting stays (answering); one the gateway forgot goes.
      for (const id of [...app.legs.keys()]) {
        if (app.offers.has(id)) answering(app.offers.get(id));
        else if (!m.work.some(w => w.interaction === id)) dropLeg(id);
      }
      for (const w of m.work) {
        if (!app.work.has(w.interaction)) addWork(w);
        else {
          for (const x of w.messages || []) chatMessage(Object.assign({ interaction: w.interaction }, x));
          for (const x of w.notes || []) chatNote(Object.assign({ interaction: w.interaction }, x));
          monitored(Object.assign({ interaction: w.interaction, supervisor: null, mode: null }, w.monitored || {}));
          held(w);
        }
        if (w.call_state) callState({ interaction: w.interaction, state: w.call_state });
        if (w.customer_left) workEnded(w.interaction, true);
      }
      break;
    case "presence": setPresence(m.presence, Date.now(), m.until); break;
    case "queues": app.queues = m.queues; renderStatus(); break;
    case "offer": addOffer(m, answerConsult); showTab("offers"); break;
    case "consult": addOffer(Object.assign({ channel: "voice", queue: "consult", expires_in_ms: 30000 }, m), answerConsult); showTab("offers"); break;
    case "revoked": removeOffer(m.interaction); dropLeg(m.interaction); break;
    case "assigned": {
      removeOffer(m.interaction);
      const had = app.work.get(m.interaction);
      if (had && had.data.consult) {
        // A warm transfer completed: the call we were consulted on is ours now.
        had.data.consult = false;
        $(".state", had.node).textContent = "connected";
      } else addWork(m);
      showTab("work");
      break;
    }
    case "call_state": consultUp(m); callState(m); break;
    case "held": held(m); break;
    case "monitored": monitored(m); break;
    case "ended":
      if (app.work.has(m.interaction)) workEnded(m.interaction, false);
      else { removeOffer(m.interaction); dropLeg(m.interaction); }
      serviceLevel();
      break;
    case "customer_left": workEnded(m.interaction, true); break;
    case "verified": verified(m.interaction, m.customer); break;
    case "message": chatMessage(m); break;
    case "note": chatNote(m); break;
    case "transcript": for (const x of m.messages) chatMessage(Object.assign({ interaction: m.interaction }, x)); break;
    case "typing": typing(m); break;
    case "delivery": delivery(m); break;
    case "window": windowMoved(m); break;
    case "webrtc_answer": webrtcAnswer(m); break;
    case "renegotiate": renegotiate(m); break;
    case "video_refused": videoRefused(m); break;
    case "error": flash(m.interaction, m.error); break;
    case "logged_out": loggedOut(); break;
  }
  settle();
}

function settle() {
  $("#no-offers").hidden = app.offers.size > 0;
  $("#no-work").hidden = app.work.size > 0;
  countTabs();
  ringUpdate();
}

// ---------------------------------------------------------------- session

function showDesk(on) {
  $("#login").hidden = on;
  $("#desk").hidden = !on;
  $("#me").hidden = !on;
  $("#agent-name").textContent = app.agent || "";
}

function start() {
  showDesk(true);
  connect(onPush);
}

function loggedOut() {
  forget();
  disconnect();
  for (const id of [...app.work.keys()]) closeCall(id);
  app.offers.clear();
  app.work.clear();
  $("#offer-list").replaceChildren();
  $("#work-list").replaceChildren();
  ringStop();
  settle();
  showDesk(false);
}

$("#login-form").onsubmit = async ev => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  askToNotify();
  try {
    const r = await api("POST", "/api/agent/login", {
      name: $("#login-name").value, password: $("#login-password").value,
    });
    remember(r.token, r.agent);
    start();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
};
$("#presence").onchange = ev => {
  $("#desk-notice").textContent = "";
  api("PUT", "/api/agent/presence", { presence: ev.target.value })
    .catch(e => { $("#desk-notice").textContent = e.message; setPresence(app.presence, app.presenceSince, app.presenceUntil); });
};
$("#logout").onclick = async () => { try { await api("POST", "/api/agent/logout"); } catch { } loggedOut(); };
installKeys();
installTabs();
if (app.token) start(); else showDesk(false);
