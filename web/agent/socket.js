// The agent WebSocket: the token in the first frame (not the URL: access logs keep
// URLs), the whole state first, then every change. On a drop it reconnects with
// back-off (1 s doubling to 30 s, with jitter) and gets the whole state again.
import { app } from "./state.js";

let backoff = 1000;

export function connect(onPush) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/agent/ws`);
  app.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: app.token }));
  ws.onmessage = ev => {
    const m = JSON.parse(ev.data);
    onPush(m);
    if (m.type === "state") {
      backoff = 1000;
      app.stateFrom = ws; // the page shows what this socket said (tests wait on it)
    }
  };
  ws.onclose = () => {
    if (app.ws !== ws) return;
    const wait = backoff * (0.8 + Math.random() * 0.4);
    backoff = Math.min(backoff * 2, 30000);
    setTimeout(() => app.token && app.ws === ws && connect(onPush), wait);
  };
}

export function disconnect() {
  if (!app.ws) return;
  app.ws.onclose = null;
  app.ws.close();
  app.ws = null;
}

export function send(m) {
  if (app.ws && app.ws.readyState === WebSocket.OPEN) app.ws.send(JSON.stringify(m));
}
