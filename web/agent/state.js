// The desk as the gateway says it is. The server is the only authority: this store is
// fed by its pushes (and the whole state again on every reconnect); views render from
// it. Nothing here invents work.

export const app = {
  token: sessionStorage.getItem("omnigate.token"),
  agent: sessionStorage.getItem("omnigate.agent"),
  ws: null,
  offers: new Map(),    // interaction -> offer JSON
  work: new Map(),      // interaction -> { data, node, pc, stream, wrapping }
  legs: new Map(),      // a consult answered in the browser, its leg connecting: not
                        // work until the gateway says so (interaction -> { data, pc, ... })
  ring: null,           // the ring tone while a call is offered
  mic: null,            // the microphone granted on Answer, for the call's leg
  popFor: null,
  popGen: 0,
  queues: [],           // the agent's queues: { name, waiting, oldest_since }
  presence: "offline",
  presenceSince: null,  // Unix ms
  presenceUntil: null,  // Unix ms: when wrap-up ends by itself
};
window.omnigate = app; // for tests and the curious

export function forget() {
  sessionStorage.removeItem("omnigate.token");
  app.token = null;
}

export function remember(token, agent) {
  app.token = token;
  app.agent = agent;
  sessionStorage.setItem("omnigate.token", token);
  sessionStorage.setItem("omnigate.agent", agent);
}
