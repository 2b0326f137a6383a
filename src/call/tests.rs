//! Whole calls through the call core on simulated time: the caller, the gateway and a
//! far end are SIP cores on the in-memory network (`sip::simnet`), each call is a
//! [`Session`] running the real dialplan interpreter, and the queue is the real routing
//! engine. What a driver would do (bind sockets, run media, answer a browser) is done
//! here by a small world that answers at once and reports media events after a delay;
//! agents act on their own schedule. After every call the world checks that nothing is
//! left behind: no leg, no media session, no live SIP call, no work in the router, one
//! end record per interaction, the recording closed once.

use super::*;
use crate::dialplan::load_str;
use crate::routing::engine::{
    AgentId, AgentSpec, Channel, ItemId, ItemSpec, QueueId, QueueSpec, Router, RouterEvent,
};
use crate::sip::core::{CoreConfig, CoreEvent};
use crate::sip::simnet::Net;
use crate::sip::trunk::{Cidr, TrunkConfig};
use std::collections::BTreeMap;
use std::time::Instant;

const CALLER: usize = 0;
const GW: usize = 1;
const FAR: usize = 2;

/// What the far end of a transfer or a forwarded call does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FarEnd {
    Answer,
    Refuse(u16),
    Silent,
}

/// What an agent's browser does once the agent has the call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Browser {
    /// Offers its leg; ICE and DTLS connect.
    Connects,
    /// Never offers a leg.
    Never,
}

struct Agent {
    name: String,
    id: AgentId,
    browser: Browser,
}

#[derive(Default, Debug)]
struct Media {
    opened: bool,
    closes: u32,
    legs: BTreeMap<LegId, bool>,
    bridges: Vec<(LegId, LegId)>,
    /// Each mix asked for (who hears whom).
    mixes: Vec<crate::media::session::Hears>,
    unbridges: u32,
    recordings: u32,
    recordings_stopped: u32,
}

struct Call {
    session: Session,
    stopped: bool,
    media: Media,
    stores: Vec<StoreWrite>,
    pushes: Vec<(String, CallPush)>,
    pops: Vec<(&'static str, String)>,
    replies: Vec<Result<serde_json::Value, CallError>>,
    registered: bool,
    item: Option<ItemId>,
    /// Browser legs waiting to connect: media id → agent.
    browsers: Vec<(LegId, String)>,
    /// Video ports bound for the call, and how many were let go unused.
    video_ports: Vec<u16>,
    video_ports_dropped: u32,
}

#[derive(Debug, Clone)]
enum Later {
    Media(usize, MediaInput),
    /// The agent's browser offers its leg on call `usize`.
    Offer(usize, String),
}

struct World {
    net: Net,
    t0: Instant,
    stamp0: Time,
    policy: Arc<Policy>,
    flows: Arc<FlowSet>,
    calls: Vec<Call>,
    by_ref: HashMap<CallRef, usize>,
    timers: Vec<(Instant, usize, u64)>,
    later: Vec<(Instant, Later)>,
    router: Router,
    queue: QueueId,
    agents: Vec<Agent>,
    items: HashMap<ItemId, usize>,
    next_item: u64,
    far: FarEnd,
    next_port: u16,
    seed: u64,
    /// The caller's last call.
    caller_ref: Option<CallRef>,
    /// What the store says when a call's record is made.
    started: crate::call::Started,
    /// The caller's phone answers an offer of video with this SDP (none: its SIP core
    /// answers, declining it).
    video_phone: Option<String>,
}

fn sdp() -> Bytes {
    Bytes::from_static(b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
}

const QUEUE_FLOW: &str = "flow: q\nsteps:\n  q:\n    enqueue: sales\n";
const SURVEY_FLOW: &str = "flow: s\nsteps:\n  q:\n    enqueue: sales\n    agent_hangup: rate\n  rate:\n    survey: {metric: csat, prompt: {silence: 1s}, timeout: 3s, retries: 0}\n  thanks:\n    play: {silence: 500ms}\n";
const NOTICE_FLOW: &str = "flow: n\nsteps:\n  notice:\n    recording_notice: {prompt: {silence: 1s}, version: v7, timeout: 2s}\n  again:\n    record: on\n  q:\n    enqueue: sales\n";
const TRANSFER_FLOW: &str = "flow: t\nsteps:\n  t:\n    transfer: {number: '200', trunk: out}\n    failure: sorry\n  sorry:\n    hangup:\n";

fn flows() -> Arc<FlowSet> {
    let dir = std::env::temp_dir();
    let mut set = FlowSet::default();
    for text in [QUEUE_FLOW, TRANSFER_FLOW, SURVEY_FLOW, NOTICE_FLOW] {
        let f = load_str(
            text,
            &dir.join("sim.yaml"),
            &crate::dialplan::LoadOptions { tts: false },
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        set.flows.insert(f.name.clone(), Arc::new(f));
    }
    Arc::new(set)
}

fn policy(dialplan: bool, forward: bool) -> Policy {
    let mut config = crate::config::DialplanConfig {
        default_flow: Some("q".into()),
        ..Default::default()
    };
    config.routes = vec![
        crate::config::RouteConfig {
            number: Some("300".into()),
            trunk: None,
            flow: "t".into(),
        },
        crate::config::RouteConfig {
            number: Some("400".into()),
            trunk: None,
            flow: "s".into(),
        },
        crate::config::RouteConfig {
            number: Some("500".into()),
            trunk: None,
            flow: "n".into(),
        },
    ];
    Policy {
        answer_after: Duration::from_millis(200),
        hangup_after: None,
        rtp_ip: "127.0.0.3".parse().unwrap(),
        record: true,
        recordings_dir: "/nonexistent".into(),
        welcome: vec![0i16; 800].into(),
        hold_music: vec![0i16; 8000].into(),
        forward_trunk: forward.then(|| "out".to_string()),
        extensions: Arc::new(HashSet::new()),
        phones_trunk: None,
        ring: None,
        browser_calls: true,
        monitor_notice: true,
        dialplan: dialplan.then(|| DialplanPolicy {
            config,
            demo: false,
            voicemail_dir: "/nonexistent".into(),
        }),
    }
}

impl World {
    fn new(policy: Policy, far: FarEnd, agents: &[(&str, Browser)]) -> World {
        let mut net = Net::new(0.0);
        let trunk = |name: &str| TrunkConfig::new(name);
        let caller = net.add(
            "127.0.0.2:5060",
            CoreConfig {
                trunks: vec![TrunkConfig {
                    proxy: Some("127.0.0.3:5060".parse().unwrap()),
                    ..trunk("gw")
                }],
                ..CoreConfig::default()
            },
        );
        let gw = net.add(
            "127.0.0.3:5060",
            CoreConfig {
                trunks: vec![
                    TrunkConfig {
                        inbound_cidrs: vec![Cidr::parse("127.0.0.2").unwrap()],
                        ..trunk("demo")
                    },
                    TrunkConfig {
                        proxy: Some("127.0.0.4:5060".parse().unwrap()),
                        ..trunk("out")
                    },
                ],
                ..CoreConfig::default()
            },
        );
        let far_node = net.add(
            "127.0.0.4:5060",
            CoreConfig {
                trunks: vec![TrunkConfig {
                    inbound_cidrs: vec![Cidr::parse("127.0.0.3").unwrap()],
                    ..trunk("gw")
                }],
                ..CoreConfig::default()
            },
        );
        assert_eq!((caller, gw, far_node), (CALLER, GW, FAR));
        let t0 = net.now;
        let mut router = Router::new(t0);
        let queue = router.add_queue(QueueSpec::new("sales"));
        let mut w = World {
            net,
            t0,
            stamp0: "2026-11-23T15:00:00Z".parse().unwrap(),
            policy: Arc::new(policy),
            flows: flows(),
            calls: vec![],
            by_ref: HashMap::new(),
            timers: vec![],
            later: vec![],
            router,
            queue,
            agents: vec![],
            items: HashMap::new(),
            next_item: 1,
            far,
            next_port: 20000,
            seed: 7,
            caller_ref: None,
            started: Default::default(),
            video_phone: None,
        };
        for (name, browser) in agents {
            w.login(name, *browser);
        }
        w
    }

    fn login(&mut self, name: &str, browser: Browser) {
        let id = AgentId(self.agents.len() as u64 + 1);
        let now = self.net.now;
        self.router
            .login(now, id, AgentSpec::new(vec![self.queue]))
            .unwrap();
        self.router
            .set_presence(now, id, crate::routing::engine::Presence::Available)
            .unwrap();
        self.agents.push(Agent {
            name: name.to_string(),
            id,
            browser,
        });
        self.drain_router();
    }

    fn agent_name(&self, id: AgentId) -> String {
        let a = self.agents.iter().find(|a| a.id == id);
        a.expect("a known agent").name.clone()
    }

    fn agent(&self, name: &str) -> &Agent {
        self.agents.iter().find(|a| a.name == name).unwrap()
    }

    fn stamp(&self) -> Time {
        let d = self.net.now - self.t0;
        self.stamp0 + jiff::SignedDuration::try_from(d).unwrap()
    }

    /// The caller dials `number`; the gateway's session for it.
    fn dial(&mut self, number: &str) -> usize {
        let now = self.net.now;
        let call = self.net.nodes[CALLER].core.new_call();
        self.caller_ref = Some(call);
        self.net.nodes[CALLER]
            .core
            .originate(now, call, number, sdp(), None)
            .unwrap();
        let before = self.calls.len();
        self.run_until(Duration::from_secs(5), |w| w.calls.len() > before);
        before
    }

    fn caller_call(&self) -> CallRef {
        self.caller_ref.expect("the caller dialled")
    }

    fn caller_hangs_up(&mut self) {
        let call = self.caller_call();
        let now = self.net.now;
        self.net.nodes[CALLER].core.hangup(now, call);
    }

    fn caller_ended(&self) -> Option<EndReason> {
        self.net.nodes[CALLER].events.iter().find_map(|e| match e {
            CoreEvent::Ended { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    fn feed(&mut self, i: usize, input: Input) {
        let stamp = self.stamp();
        self.calls[i].session.handle(stamp, input);
        self.pump(i);
    }

    fn pump(&mut self, i: usize) {
        while let Some(o) = self.calls[i].session.poll() {
            self.carry(i, o);
        }
    }

    fn carry(&mut self, i: usize, o: Output) {
        let now = self.net.now;
        match o {
            Output::Sip(c) => {
                let core = &mut self.net.nodes[GW].core;
                match c {
                    SipCommand::Ring(call) => core.ring(now, call),
                    SipCommand::Answer(call, sdp) => core.answer(now, call, sdp),
                    SipCommand::Reject(call, code, why) => core.reject(now, call, code, why),
                    SipCommand::Hangup(call) => core.hangup(now, call),
                    SipCommand::Hold(call, on) => core.hold(now, call, on),
                    SipCommand::PictureFastUpdate(call) => core.picture_fast_update(now, call),
                    SipCommand::AddVideo(call, port, formats) => match &self.video_phone {
                        // The simulated caller's core answers from its own (audio)
                        // SDP, declining video; a video phone's answer is given here.
                        Some(answer) => {
                            let answer = Some(Bytes::from(answer.clone()));
                            self.deliver(call, SipEvent::VideoAnswer(answer))
                        }
                        None => core.add_video(now, call, port, &formats),
                    },
                    SipCommand::Originate { leg, to, sdp } => {
                        let call = self.net.nodes[GW].core.new_call();
                        self.by_ref.insert(call, i);
                        self.feed(i, Input::Placed { leg, call });
                        self.net.nodes[GW].core.place(now, call, &to, sdp);
                    }
                }
            }
            Output::Bind { leg, video } => {
                let p = self.next_port;
                self.next_port += 4;
                let ports = Ports {
                    audio: p,
                    video: video.then_some(p + 2),
                };
                self.feed(
                    i,
                    Input::Bound {
                        leg,
                        ports: Ok(ports),
                    },
                );
            }
            Output::BindVideo { leg } => {
                let port = self.next_port;
                self.next_port += 2;
                self.calls[i].video_ports.push(port);
                self.feed(
                    i,
                    Input::VideoBound {
                        leg,
                        port: Ok(port),
                    },
                );
            }
            Output::DropVideo { .. } => self.calls[i].video_ports_dropped += 1,
            Output::Media(m) => self.media(i, m),
            Output::Timer { id, after } => self.timers.push((now + after, i, id)),
            Output::StartInteraction(_) => {
                self.feed(i, Input::InteractionStarted(Ok(self.started)))
            }
            Output::Store(w) => self.calls[i].stores.push(w),
            Output::Lookup { .. } => self.feed(i, Input::LookupResult(Ok(None))),
            Output::Http(_) => self.feed(i, Input::HttpResult(Err("offline".into()))),
            Output::Speak { id, texts } => self.feed(
                i,
                Input::Spoken {
                    id,
                    speech: vec![None; texts.len()],
                },
            ),
            Output::Hints { .. } => self.feed(
                i,
                Input::RoutingHints {
                    last_agent: None,
                    repeat: false,
                    vip: false,
                },
            ),
            Output::Router(r) => self.route(i, r),
            Output::Push { agent, push } => {
                if let CallPush::Consult {
                    browser_call: true, ..
                } = &push
                {
                    self.agent_takes(i, &agent);
                }
                self.calls[i].pushes.push((agent, push));
            }
            Output::ScreenPop(p) => self.calls[i].pops.push((p.event, p.agent)),
            Output::Register(on) => self.calls[i].registered = on,
            Output::Reply(r) => self.calls[i].replies.push(r),
            Output::Stop => {
                self.calls[i].stopped = true;
                self.feed(i, Input::Stopped);
            }
        }
    }

    fn media(&mut self, i: usize, m: MediaCommand) {
        let now = self.net.now;
        let media = &mut self.calls[i].media;
        match m {
            MediaCommand::AddLeg { id, .. } => {
                media.opened = true;
                media.legs.insert(id, true);
            }
            MediaCommand::AddBrowser { leg, id, .. } => {
                media.opened = true;
                media.legs.insert(id, true);
                let agent = match self.calls[i].session.leg_role(leg) {
                    Some(Role::AgentBrowser(a)) => a,
                    Some(Role::Supervisor(s)) => format!("supervisor {s}"),
                    other => panic!("a browser leg for {other:?}"),
                };
                self.calls[i].browsers.push((id, agent));
                let answer = Ok("v=0 (answer)".to_string());
                self.feed(i, Input::BrowserAnswered { leg, answer });
                // ICE and DTLS take a moment.
                self.later.push((
                    now + Duration::from_millis(150),
                    Later::Media(i, MediaInput::Browser(id, Ok(()))),
                ));
            }
            MediaCommand::Remove(id) => {
                media.legs.insert(id, false);
            }
            MediaCommand::Reanswer { leg, offer, .. } => {
                let answer = Ok(format!("answer to {offer}"));
                self.feed(i, Input::BrowserReanswered { leg, answer });
            }
            MediaCommand::Bridge(a, b) => {
                media.opened = true;
                media.bridges.push((a, b));
            }
            MediaCommand::Mix(hears) => media.mixes.push(hears),
            MediaCommand::Unbridge => media.unbridges += 1,
            MediaCommand::Record(_) => {
                media.opened = true;
                media.recordings += 1;
            }
            MediaCommand::StopRecording => media.recordings_stopped += 1,
            MediaCommand::Play(_, item) => {
                media.opened = true;
                let (id, ms) = match item {
                    Item::Prompt { id, samples, .. } => (id, samples.len() as u64 / 8),
                    Item::Silence { id, samples } | Item::ComfortNoise { id, samples } => {
                        (id, samples as u64 / 8)
                    }
                };
                // Music on hold plays until stopped.
                if id < u64::MAX / 2 {
                    self.later.push((
                        now + Duration::from_millis(ms.max(1)),
                        Later::Media(
                            i,
                            MediaInput::PlayDone {
                                id,
                                interrupted: false,
                            },
                        ),
                    ));
                }
            }
            MediaCommand::Close => {
                media.closes += 1;
                for l in media.legs.values_mut() {
                    *l = false;
                }
                self.later.push((
                    now + Duration::from_millis(10),
                    Later::Media(i, MediaInput::Closed),
                ));
            }
            _ => media.opened = true,
        }
    }

    fn item_of(&self, i: usize) -> Option<ItemId> {
        self.calls[i].item
    }

    fn agent_id(&self, name: &str) -> AgentId {
        self.agent(name).id
    }

    fn route(&mut self, i: usize, r: RouterRequest) {
        let now = self.net.now;
        match r {
            RouterRequest::Enqueue(Enqueue {
                priority,
                skills,
                vip,
                repeat,
                ..
            }) => {
                let item = ItemId(self.next_item);
                self.next_item += 1;
                self.items.insert(item, i);
                self.calls[i].item = Some(item);
                let mut spec = ItemSpec::new(Channel::Voice);
                spec.priority = priority;
                spec.skills = skills;
                spec.vip = vip;
                spec.repeat = repeat;
                let r = self.router.enqueue(now, item, self.queue, spec);
                self.feed(i, Input::Enqueued(r.map_err(|e| e.to_string())));
            }
            RouterRequest::Ended => {
                let Some(item) = self.calls[i].item.take() else {
                    return;
                };
                let assigned = self
                    .agents
                    .iter()
                    .any(|a| self.router.assigned(a.id).contains(&item));
                if assigned {
                    self.router.finish(now, item, None).unwrap();
                } else {
                    let _ = self.router.cancel(now, item);
                }
            }
            RouterRequest::Requeue => {
                if let Some(item) = self.item_of(i) {
                    let _ = self.router.transfer(now, item, self.queue);
                }
            }
            RouterRequest::Position => {
                let p = self.item_of(i).and_then(|item| self.router.position(item));
                self.feed(i, Input::QueuePosition(p));
            }
            RouterRequest::EndConsult { colleague } => {
                if let Some(item) = self.item_of(i) {
                    let to = self.agent_id(&colleague);
                    self.router.end_consult(now, item, to);
                }
            }
            RouterRequest::HandOver { from, to } => {
                let item = self.item_of(i).expect("queued");
                let to_id = self.agent_id(&to);
                match self.router.offer_to(now, item, to_id) {
                    Ok(()) => {
                        self.feed(i, Input::Work(WorkNotice::Transferred { from, to }));
                        self.drain_router();
                    }
                    Err(e) => self.feed(i, Input::HandOverFailed(e.to_string())),
                }
            }
        }
        self.drain_router();
    }

    /// The router's offers are accepted at once; assignments go to the call.
    fn drain_router(&mut self) {
        let now = self.net.now;
        while let Some(ev) = self.router.poll_event() {
            match ev {
                RouterEvent::Offer { item, agent, .. } => {
                    let Some(&i) = self.items.get(&item) else {
                        continue;
                    };
                    let name = self.agent_name(agent);
                    self.feed(i, Input::Work(WorkNotice::Offered { agent: name }));
                    let _ = self.router.accept(now, agent, item);
                }
                RouterEvent::Assigned { item, agent } => {
                    let Some(&i) = self.items.get(&item) else {
                        continue;
                    };
                    let name = self.agent_name(agent);
                    self.feed(
                        i,
                        Input::Work(WorkNotice::Assigned {
                            agent: name.clone(),
                            extension: None,
                        }),
                    );
                    if !matches!(self.calls[i].session.stage(), Stage::Talking { agent, .. } if *agent == name)
                    {
                        self.agent_takes(i, &name);
                    }
                }
                RouterEvent::Overflow { item, to } => {
                    if let Some(&i) = self.items.get(&item) {
                        let to = format!("{to:?}");
                        self.feed(i, Input::Work(WorkNotice::Overflow { to }));
                    }
                }
                RouterEvent::Revoke { .. }
                | RouterEvent::Presence { .. }
                | RouterEvent::Activity { .. } => {}
            }
        }
    }

    /// The agent's desktop takes the call in the browser (if their browser works).
    fn agent_takes(&mut self, i: usize, agent: &str) {
        if self.agent(agent).browser == Browser::Connects {
            let at = self.net.now + Duration::from_millis(50);
            self.later.push((at, Later::Offer(i, agent.to_string())));
        }
    }

    fn act(&mut self, i: usize, cmd: AgentCommand) -> Result<serde_json::Value, CallError> {
        let colleague = match &cmd {
            AgentCommand::Consult { agent, to } => {
                // The API asks the router first (it keeps the colleague for the consult).
                let (Some(item), Some(to_id)) = (
                    self.item_of(i),
                    self.agents.iter().find(|a| a.name == *to).map(|a| a.id),
                ) else {
                    return Err(CallError::Refused(format!("no agent {to}")));
                };
                let now = self.net.now;
                if let Err(e) = self.router.consult(now, item, to_id) {
                    return Err(CallError::Refused(format!("{agent} cannot consult: {e}")));
                }
                Some(Colleague {
                    logged_in: true,
                    account: Some(ColleagueAccount { extension: None }),
                })
            }
            _ => None,
        };
        let consulting = matches!(cmd, AgentCommand::Consult { .. });
        let (to, item) = match &cmd {
            AgentCommand::Consult { to, .. } => (Some(to.clone()), self.item_of(i)),
            _ => (None, None),
        };
        let n = self.calls[i].replies.len();
        self.feed(i, Input::Agent(cmd, colleague));
        let r = self.calls[i]
            .replies
            .get(n)
            .cloned()
            .expect("one reply per command");
        if consulting && r.is_err() {
            if let (Some(to), Some(item)) = (to, item) {
                let id = self.agent_id(&to);
                let now = self.net.now;
                self.router.end_consult(now, item, id);
            }
        }
        self.drain_router();
        r
    }

    /// Delivers what the SIP cores said.
    fn sip_events(&mut self) {
        self.net.flush();
        let now = self.net.now;
        let far: Vec<CoreEvent> = std::mem::take(&mut self.net.nodes[FAR].events);
        for e in far {
            if let CoreEvent::IncomingCall { call, .. } = &e {
                let core = &mut self.net.nodes[FAR].core;
                match self.far {
                    FarEnd::Answer => core.answer(now, *call, sdp()),
                    FarEnd::Refuse(code) => core.reject(now, *call, code, "Refused"),
                    FarEnd::Silent => core.ring(now, *call),
                }
            }
            self.net.nodes[FAR].events.push(e);
        }
        let gw: Vec<CoreEvent> = std::mem::take(&mut self.net.nodes[GW].events);
        for e in gw {
            match e {
                e @ CoreEvent::IncomingCall { .. } => {
                    let (inbound, _) = Inbound::from_event(e).expect("an incoming call");
                    let call = inbound.call;
                    self.seed += 1;
                    let session = Session::inbound(
                        self.policy.clone(),
                        inbound,
                        Some(self.flows.clone()),
                        self.seed,
                    );
                    self.calls.push(Call {
                        session,
                        stopped: false,
                        media: Media::default(),
                        stores: vec![],
                        pushes: vec![],
                        pops: vec![],
                        replies: vec![],
                        registered: false,
                        item: None,
                        browsers: vec![],
                        video_ports: vec![],
                        video_ports_dropped: 0,
                    });
                    let i = self.calls.len() - 1;
                    self.by_ref.insert(call, i);
                    self.feed(i, Input::Start);
                }
                CoreEvent::Established { call, remote_sdp } => {
                    self.deliver(call, SipEvent::Established { remote_sdp })
                }
                CoreEvent::RemoteOffer {
                    call, negotiated, ..
                } => self.deliver(call, SipEvent::RemoteOffer { negotiated }),
                CoreEvent::Progress { call, code } => self.deliver(call, SipEvent::Progress(code)),
                CoreEvent::PictureFastUpdate { call } => {
                    self.deliver(call, SipEvent::PictureFastUpdate)
                }
                CoreEvent::InfoDigit { call, digit } => {
                    self.deliver(call, SipEvent::InfoDigit(digit))
                }
                CoreEvent::Ended { call, reason } => {
                    self.deliver(call, SipEvent::Ended(reason));
                    self.by_ref.remove(&call);
                }
                CoreEvent::VideoAnswer { call, answer } => {
                    self.deliver(call, SipEvent::VideoAnswer(answer))
                }
                CoreEvent::TrunkRegistration { .. } => {}
            }
        }
    }

    fn deliver(&mut self, call: CallRef, ev: SipEvent) {
        if let Some(&i) = self.by_ref.get(&call) {
            if !self.calls[i].stopped {
                self.feed(i, Input::Sip(call, ev));
            }
        }
    }

    /// Runs to the next thing that happens; false when nothing is pending.
    fn step(&mut self) -> bool {
        self.sip_events();
        self.drain_router();
        let next = [
            self.net.next_deadline(),
            self.timers.iter().map(|t| t.0).min(),
            self.later.iter().map(|t| t.0).min(),
            self.router.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(at) = next else { return false };
        self.net.advance_to(at);
        let now = self.net.now;
        self.sip_events();
        let (due, rest): (Vec<_>, Vec<_>) = self.timers.drain(..).partition(|t| t.0 <= now);
        self.timers = rest;
        for (_, i, id) in due {
            if !self.calls[i].stopped {
                self.feed(i, Input::Timer(id));
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.later.drain(..).partition(|t| t.0 <= now);
        self.later = rest;
        for (_, l) in due {
            match l {
                Later::Media(i, m) => {
                    let closing = matches!(m, MediaInput::Closed);
                    if !self.calls[i].stopped && (closing || self.calls[i].media.closes == 0) {
                        self.feed(i, Input::Media(m));
                    }
                }
                Later::Offer(i, agent) => {
                    if !self.calls[i].stopped {
                        let cmd = AgentCommand::Offer {
                            agent,
                            sdp: "v=0 (offer)".into(),
                        };
                        let _ = self.act(i, cmd);
                    }
                }
            }
        }
        if self.router.poll_timeout().is_some_and(|t| t <= now) {
            self.router.handle_timeout(now);
        }
        self.drain_router();
        true
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&World) -> bool) {
        let end = self.net.now + limit;
        while !done(self) {
            assert!(
                self.net.now <= end,
                "not done in {limit:?} of simulated time"
            );
            assert!(self.step(), "nothing pending and not done");
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.net.now + d;
        loop {
            let next = [
                self.net.next_deadline(),
                self.timers.iter().map(|t| t.0).min(),
                self.later.iter().map(|t| t.0).min(),
                self.router.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => break,
            }
        }
        self.net.advance_to(end);
        self.sip_events();
    }

    /// The agent's (latest) browser leg on call `i` fails or closes.
    fn browser_gone(&mut self, i: usize, agent: &str, why: &str) {
        let leg = self.calls[i]
            .browsers
            .iter()
            .rev()
            .find(|(_, a)| a == agent)
            .map(|(l, _)| *l);
        if let Some(l) = leg {
            let m = MediaInput::Browser(l, Err(why.to_string()));
            self.feed(i, Input::Media(m));
        }
    }

    fn stage(&self, i: usize) -> Stage {
        self.calls[i].session.stage().clone()
    }

    fn timeline(&self, i: usize) -> Vec<&'static str> {
        self.calls[i]
            .stores
            .iter()
            .filter_map(|w| match w {
                StoreWrite::Timeline(k, _) => Some(*k),
                _ => None,
            })
            .collect()
    }

    /// Lets every call run out, then checks nothing is left behind.
    fn settle_and_check(&mut self) {
        self.run_until(Duration::from_secs(120), |w| {
            w.calls.iter().all(|c| c.stopped)
                && [CALLER, GW, FAR]
                    .iter()
                    .all(|&n| w.net.nodes[n].core.live_calls() == 0)
        });
        // Transactions wind down; late media notices arrive.
        self.run_for(Duration::from_secs(40));
        for (i, c) in self.calls.iter().enumerate() {
            assert!(c.stopped, "call {i} did not stop: {:?}", c.session.legs());
            assert!(
                c.session.legs().iter().all(|(_, s)| *s == LegState::Ended),
                "call {i} left a leg: {:?}",
                c.session.legs()
            );
            assert!(!c.session.media_open(), "call {i} left its media open");
            assert_eq!(
                c.media.closes,
                u32::from(c.media.opened),
                "call {i}: the media (and its recording) closed once"
            );
            assert!(!c.registered, "call {i} is still reachable by agents");
            if c.session.interaction().is_some() {
                let ends = c
                    .stores
                    .iter()
                    .filter(|w| {
                        matches!(
                            w,
                            StoreWrite::End(_) | StoreWrite::Update { ended: true, .. }
                        )
                    })
                    .count();
                assert_eq!(ends, 1, "call {i}: one end record, not {:?}", c.stores);
            }
        }
        for n in [CALLER, GW, FAR] {
            assert_eq!(
                self.net.nodes[n].core.live_calls(),
                0,
                "node {n} has a call left"
            );
        }
        for a in &self.agents {
            assert!(
                self.router.assigned(a.id).is_empty() && self.router.consults(a.id).is_empty(),
                "{} still has work",
                a.name
            );
        }
        assert_eq!(self.router.waiting_total(), 0, "work left waiting");
    }
}

/// A queued call assigned to Ann, whose browser never connects.
fn offered_to_a_browser_that_never_connects() -> (World, usize) {
    let agents = [("ann", Browser::Never)];
    let mut w = World::new(policy(true, false), FarEnd::Answer, &agents);
    let i = w.dial("100");
    w.run_until(Duration::from_secs(5), |w| {
        matches!(w.stage(i), Stage::Connecting { .. })
    });
    (w, i)
}

/// Ann (whose browser connects), the only agent, talking to a caller who dialled
/// `number`.
fn ann_talking(number: &str) -> (World, usize) {
    let mut w = World::new(
        policy(true, false),
        FarEnd::Answer,
        &[("ann", Browser::Connects)],
    );
    let i = w.dial(number);
    w.run_until(Duration::from_secs(10), |w| talking_to(w, i, "ann"));
    (w, i)
}

fn talking_to(w: &World, i: usize, name: &str) -> bool {
    matches!(w.stage(i), Stage::Talking { agent, .. } if agent == name)
}

#[test]
fn ivr_queue_browser_agent_hold_consult_and_complete() {
    let mut w = World::new(
        policy(true, false),
        FarEnd::Answer,
        &[("ann", Browser::Connects), ("bob", Browser::Connects)],
    );
    let i = w.dial("100");
    w.run_until(Duration::from_secs(10), |w| {
        matches!(w.stage(i), Stage::Talking { .. })
    });
    let Stage::Talking { agent: first, .. } = w.stage(i) else {
        unreachable!()
    };
    let other = if first == "ann" { "bob" } else { "ann" };
    assert!(w.caller_call().0 > 0);
    assert!(
        !w.calls[i].media.bridges.is_empty(),
        "caller bridged to the agent"
    );
    assert!(w.calls[i]
        .stores
        .contains(&StoreWrite::Answered(first.clone())));
    assert!(w.calls[i]
        .pops
        .iter()
        .any(|(e, a)| *e == "call.connected" && *a == first));

    // Hold and resume: the caller's leg is re-INVITEd each time.
    let held = w.act(
        i,
        AgentCommand::Hold {
            agent: first.clone(),
            on: true,
        },
    );
    assert_eq!(held, Ok(serde_json::json!({"held": true})));
    assert!(matches!(w.stage(i), Stage::Held { .. }));
    w.run_for(Duration::from_secs(1));
    let offers = |w: &World| {
        w.net.nodes[CALLER]
            .events
            .iter()
            .filter(|e| matches!(e, CoreEvent::RemoteOffer { .. }))
            .count()
    };
    assert_eq!(offers(&w), 1, "a hold re-INVITE reached the caller");
    assert_eq!(
        w.act(
            i,
            AgentCommand::Hold {
                agent: other.to_string(),
                on: false
            }
        ),
        Err(CallError::NotYours)
    );
    w.act(
        i,
        AgentCommand::Hold {
            agent: first.clone(),
            on: false,
        },
    )
    .unwrap();
    assert!(talking_to(&w, i, &first));
    w.run_for(Duration::from_secs(1));
    assert_eq!(offers(&w), 2);
    // The agent's desktop is told each change (its hold timer and count).
    let holds: Vec<bool> = w.calls[i]
        .pushes
        .iter()
        .filter_map(|(a, p)| match p {
            CallPush::Held(on) if *a == first => Some(*on),
            _ => None,
        })
        .collect();
    assert_eq!(holds, [true, false]);

    // Consult the colleague, then hand the call over.
    let r = w.act(
        i,
        AgentCommand::Consult {
            agent: first.clone(),
            to: other.to_string(),
        },
    );
    assert_eq!(r, Ok(serde_json::json!({"consulting": other})));
    assert_eq!(
        w.act(
            i,
            AgentCommand::Complete {
                agent: first.clone()
            }
        ),
        Err(CallError::Refused(
            "your colleague has not answered yet".into()
        ))
    );
    w.run_until(Duration::from_secs(5), |w| {
        matches!(
            w.stage(i),
            Stage::Consulting {
                connected: true,
                ..
            }
        )
    });
    assert!(w.calls[i]
        .pushes
        .contains(&(first.clone(), CallPush::CallState("consult connected"))));
    let r = w.act(
        i,
        AgentCommand::Complete {
            agent: first.clone(),
        },
    );
    assert_eq!(r, Ok(serde_json::json!({"transferred_to": other})));
    w.run_until(Duration::from_secs(5), |w| talking_to(w, i, other));
    assert!(w.calls[i]
        .stores
        .contains(&StoreWrite::Answered(other.to_string())));
    let tl = w.timeline(i);
    for k in [
        "offered",
        "assigned",
        "connected",
        "held",
        "resumed",
        "consult",
        "transferred",
    ] {
        assert!(tl.contains(&k), "{k} on the timeline: {tl:?}");
    }
    assert_eq!(
        w.act(
            i,
            AgentCommand::Hangup {
                agent: first.clone()
            }
        ),
        Err(CallError::NotYours),
        "the first agent has no say any more"
    );

    w.caller_hangs_up();
    w.settle_and_check();
    let end = w.calls[i].stores.iter().find_map(|s| match s {
        StoreWrite::End(o) => Some(o.clone()),
        _ => None,
    });
    assert_eq!(
        end.as_deref(),
        Some(format!("answered by {other}").as_str())
    );
}

#[test]
fn when_the_agent_hangs_up_first_the_caller_answers_the_flows_survey() {
    let (mut w, i) = ann_talking("400");
    let ann = || "ann".to_string();
    w.act(
        i,
        AgentCommand::Hold {
            agent: ann(),
            on: true,
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    let unbridges = w.calls[i].media.unbridges;
    // Ann hangs up while the caller is on hold.
    w.act(i, AgentCommand::Hangup { agent: ann() }).unwrap();
    // She is free at once (the router's work is done), her part is on record, and
    // the caller is off hold, out of the bridge and back in the flow.
    assert_eq!(w.item_of(i), None, "the router's work ended");
    assert!(w.router.assigned(w.agent_id("ann")).is_empty());
    assert!(w.calls[i]
        .stores
        .contains(&StoreWrite::End("answered by ann".into())));
    assert_eq!(w.stage(i), Stage::None);
    assert!(w.calls[i].media.unbridges > unbridges);
    assert!(!w.calls[i].session.customer().held, "taken off hold");
    assert_eq!(
        w.act(i, AgentCommand::Hangup { agent: ann() }),
        Err(CallError::NotYours),
        "the call is no longer hers"
    );
    w.run_for(Duration::from_millis(1200));
    assert_eq!(w.caller_ended(), None, "the caller is still on the line");
    let leg = w.calls[i].session.customer_media().unwrap();
    w.feed(i, Input::Media(MediaInput::Digit { leg, digit: '4' }));
    assert!(w.calls[i].stores.contains(&StoreWrite::Survey {
        metric: crate::kpi::Metric::Csat,
        score: 4
    }));
    // The thanks, then the flow hangs up.
    w.run_until(Duration::from_secs(5), |w| w.caller_ended().is_some());
    assert_eq!(w.caller_ended(), Some(EndReason::RemoteBye));
    let tl = w.timeline(i);
    assert!(tl.contains(&"hung up"), "{tl:?}");
    w.settle_and_check();
}

#[test]
fn the_recording_notices_key_stops_the_recording_and_keeps_the_withdrawn_consent() {
    let mut w = World::new(policy(true, false), FarEnd::Answer, &[]);
    let i = w.dial("500");
    w.run_until(Duration::from_secs(5), |w| w.calls[i].media.recordings > 0);
    w.run_for(Duration::from_millis(500));
    let leg = w.calls[i].session.customer_media().unwrap();
    w.feed(i, Input::Media(MediaInput::Digit { leg, digit: '9' }));
    assert_eq!(w.calls[i].media.recordings_stopped, 1);
    let consent = w.calls[i]
        .stores
        .iter()
        .find_map(|s| match s {
            StoreWrite::Consent(e) => Some(e.clone()),
            _ => None,
        })
        .expect("the withdrawn consent is written");
    assert_eq!(consent.kind(), "recording:voice");
    assert!(!consent.granted);
    assert_eq!(
        (consent.source.as_str(), consent.actor.as_str()),
        ("ivr", "customer")
    );
    let e = &consent.evidence;
    assert_eq!(e["notice_version"], "v7");
    assert_eq!(e["key"], "9");
    assert_eq!(e["interaction"], w.calls[i].session.interaction().unwrap());
    let offset = e["recording_offset_ms"].as_i64().unwrap();
    assert!((400..=1500).contains(&offset), "{offset}");
    // The flow's `record: on` afterwards does not record her again.
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.calls[i].media.recordings, 1);
    assert!(w.timeline(i).contains(&"recording off"));
    w.caller_hangs_up();
    w.settle_and_check();

    // A caller whose record says they withdrew it is not recorded at all.
    let mut w = World::new(policy(true, false), FarEnd::Answer, &[]);
    w.started.recording_withdrawn = true;
    let i = w.dial("500");
    w.run_for(Duration::from_secs(4));
    assert!(w.calls[i].media.opened, "the call runs");
    assert_eq!(w.calls[i].media.recordings, 0);
    assert!(!w.calls[i]
        .stores
        .iter()
        .any(|s| matches!(s, StoreWrite::Consent(_))));
    w.caller_hangs_up();
    w.settle_and_check();
}

#[test]
fn without_a_survey_step_the_agents_hang_up_ends_the_call() {
    let (mut w, i) = ann_talking("100");
    w.act(
        i,
        AgentCommand::Hangup {
            agent: "ann".into(),
        },
    )
    .unwrap();
    w.run_until(Duration::from_secs(5), |w| w.caller_ended().is_some());
    assert!(!w.calls[i]
        .stores
        .iter()
        .any(|s| matches!(s, StoreWrite::Survey { .. })));
    w.settle_and_check();
}

/// Who hears whom: the last mix asked for (`Err`), or before any, the last bridge.
fn hearing(w: &World, i: usize) -> Result<(LegId, LegId), crate::media::session::Hears> {
    let m = &w.calls[i].media;
    match m.mixes.last() {
        Some(x) => Err(x.clone()),
        None => Ok(*m.bridges.last().expect("bridged")),
    }
}

fn supervise(
    w: &mut World,
    i: usize,
    c: SupervisorCommand,
) -> Result<serde_json::Value, CallError> {
    w.act(i, AgentCommand::Supervise(c))
}

fn monitored(w: &World, i: usize) -> Vec<Option<(String, &'static str)>> {
    w.calls[i]
        .pushes
        .iter()
        .filter_map(|(a, p)| match p {
            // The agent is told the supervisor's display name too.
            CallPush::Monitored(by) if a == "ann" => Some(by.clone().map(|(s, name, mode)| {
                assert_eq!(name, format!("{s} (display)"));
                (s, mode)
            })),
            _ => None,
        })
        .collect()
}

#[test]
fn a_supervisor_listens_whispers_barges_and_leaves_with_one_browser_leg() {
    let (mut w, i) = ann_talking("100");
    let (c, a) = hearing(&w, i).expect("caller and agent bridged");
    let start = |who: &str, mode| SupervisorCommand::Start {
        supervisor: who.into(),
        name: format!("{who} (display)"),
        mode,
        via: MonitorVia::Browser {
            sdp: "v=0 (supervisor's offer)".into(),
        },
    };
    let r = supervise(&mut w, i, start("sue", MonitorMode::Listen));
    assert_eq!(r, Ok(serde_json::json!({"sdp": "v=0 (answer)"})));
    assert_eq!(
        supervise(&mut w, i, start("sofia", MonitorMode::Barge)),
        Err(CallError::Refused("sue is on this call already".into())),
        "one supervisor at a time"
    );
    w.run_for(Duration::from_secs(1));
    let s = w.calls[i]
        .browsers
        .iter()
        .find(|(_, who)| who == "supervisor sue")
        .map(|(id, _)| *id)
        .expect("the supervisor's browser leg");
    let browsers = w.calls[i].browsers.len();
    // Listen: the supervisor hears both; nobody hears the supervisor.
    assert_eq!(hearing(&w, i), Err(MonitorMode::Listen.mix(c, a, s)));
    assert_eq!(
        MonitorMode::Listen.mix(c, a, s),
        vec![(c, vec![a]), (a, vec![c]), (s, vec![c, a])]
    );
    assert_eq!(monitored(&w, i), [Some(("sue".to_string(), "listen"))]);
    // Whisper, then barge: one command each, no new leg.
    for mode in [MonitorMode::Whisper, MonitorMode::Barge] {
        let r = supervise(
            &mut w,
            i,
            SupervisorCommand::Mode {
                supervisor: "sue".into(),
                mode,
            },
        );
        assert_eq!(r, Ok(serde_json::json!({"mode": mode.as_str()})));
        assert_eq!(hearing(&w, i), Err(mode.mix(c, a, s)));
    }
    assert_eq!(w.calls[i].browsers.len(), browsers, "no renegotiation");
    assert_eq!(
        MonitorMode::Whisper.mix(c, a, s)[0],
        (c, vec![a]),
        "the caller never hears a whisper"
    );
    assert_eq!(
        supervise(
            &mut w,
            i,
            SupervisorCommand::Mode {
                supervisor: "sofia".into(),
                mode: MonitorMode::Listen
            }
        ),
        Err(CallError::Refused("you are not on this call".into()))
    );
    // Hold takes the caller out; resuming brings the mix back, not a bare bridge.
    let mixes = w.calls[i].media.mixes.len();
    w.act(
        i,
        AgentCommand::Hold {
            agent: "ann".into(),
            on: true,
        },
    )
    .unwrap();
    w.act(
        i,
        AgentCommand::Hold {
            agent: "ann".into(),
            on: false,
        },
    )
    .unwrap();
    assert_eq!(w.calls[i].media.mixes.len(), mixes + 1);
    assert_eq!(hearing(&w, i), Err(MonitorMode::Barge.mix(c, a, s)));
    // The supervisor leaves: their leg goes, the two are bridged again.
    let bridges = w.calls[i].media.bridges.len();
    let r = supervise(
        &mut w,
        i,
        SupervisorCommand::Stop {
            supervisor: "sue".into(),
        },
    );
    assert_eq!(r, Ok(serde_json::json!({"stopped": true})));
    assert_eq!(w.calls[i].media.bridges.len(), bridges + 1);
    assert_eq!(w.calls[i].media.bridges.last(), Some(&(c, a)));
    assert_eq!(w.calls[i].media.legs.get(&s), Some(&false), "leg removed");
    assert_eq!(
        monitored(&w, i),
        [
            Some(("sue".to_string(), "listen")),
            Some(("sue".to_string(), "whisper")),
            Some(("sue".to_string(), "barge")),
            None
        ]
    );
    // Another supervisor steps in; the caller hangs up on all of them.
    supervise(&mut w, i, start("sofia", MonitorMode::Listen)).unwrap();
    w.run_for(Duration::from_secs(1));
    w.caller_hangs_up();
    w.settle_and_check();
    let notes: Vec<serde_json::Value> = w.calls[i]
        .stores
        .iter()
        .filter_map(|s| match s {
            StoreWrite::Timeline(k, v) if k.starts_with("monitor") => {
                Some(serde_json::json!([k, v]))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        notes,
        [
            serde_json::json!(["monitor started", {"supervisor": "sue", "mode": "listen"}]),
            serde_json::json!(["monitor mode", {"supervisor": "sue", "mode": "whisper"}]),
            serde_json::json!(["monitor mode", {"supervisor": "sue", "mode": "barge"}]),
            serde_json::json!(["monitor stopped", {"supervisor": "sue", "why": "stopped by the supervisor"}]),
            serde_json::json!(["monitor started", {"supervisor": "sofia", "mode": "listen"}]),
            serde_json::json!(["monitor stopped", {"supervisor": "sofia", "why": "the call ended"}]),
        ]
    );
}

/// An erasure ends a live call for everyone: the caller gets a BYE, the agent's and
/// the supervisor's legs go, the media and recording close, the call leaves the
/// registry; a second end finds it over.
#[test]
fn a_call_ended_by_the_privacy_officer_ends_every_leg() {
    let (mut w, i) = ann_talking("100");
    supervise(
        &mut w,
        i,
        SupervisorCommand::Start {
            supervisor: "sue".into(),
            name: "Sue".into(),
            mode: MonitorMode::Listen,
            via: MonitorVia::Browser {
                sdp: "v=0 (supervisor's offer)".into(),
            },
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    let end = || SupervisorCommand::End {
        supervisor: "dora".into(),
        reason: "the customer's data is erased",
    };
    assert_eq!(
        supervise(&mut w, i, end()),
        Ok(serde_json::json!({"ended": true}))
    );
    w.settle_and_check();
    assert_eq!(supervise(&mut w, i, end()), Err(CallError::Over));
    let notes: Vec<&str> = w.calls[i]
        .stores
        .iter()
        .filter_map(|s| match s {
            StoreWrite::Timeline(k, _) => Some(*k),
            _ => None,
        })
        .collect();
    let at = |k: &str| {
        notes
            .iter()
            .position(|n| *n == k)
            .unwrap_or_else(|| panic!("{k}: {notes:?}"))
    };
    assert!(at("ended") < at("monitor stopped"), "{notes:?}");
    assert!(
        !notes.contains(&"caller hung up"),
        "the gateway ended it: {notes:?}"
    );
}

/// A supervisor's desk phone that is not registered: their phone is asked for at
/// once, the ring fails, the monitor ends saying why, and the caller and the agent
/// stay bridged as they were. (Its happy path, a real phone answering, is the e2e
/// `supervisor::a_supervisor_listens_whispers_and_barges_from_their_desk_phone`.)
#[test]
fn a_supervisors_desk_phone_that_cannot_be_reached_ends_the_monitor_and_leaves_the_call() {
    let (mut w, i) = ann_talking("100");
    let bridged = hearing(&w, i).expect("caller and agent bridged");
    let start = SupervisorCommand::Start {
        supervisor: "sue".into(),
        name: "Sue".into(),
        mode: MonitorMode::Listen,
        via: MonitorVia::Phone {
            extension: "1002".into(),
        },
    };
    assert_eq!(
        supervise(&mut w, i, start),
        Ok(serde_json::json!({"ringing": "1002"}))
    );
    w.run_for(Duration::from_secs(5));
    assert_eq!(hearing(&w, i), Ok(bridged), "never mixed");
    assert!(monitored(&w, i).is_empty(), "Ann was never told");
    let stopped: Vec<&serde_json::Value> = w.calls[i]
        .stores
        .iter()
        .filter_map(|s| match s {
            StoreWrite::Timeline(k, v) if k.starts_with("monitor") => Some(v),
            _ => None,
        })
        .collect();
    assert!(
        stopped.is_empty(),
        "not on the call, so no monitor notes: {stopped:?}"
    );
    // Another try may go now (the first one is over).
    assert_eq!(
        supervise(
            &mut w,
            i,
            SupervisorCommand::Mode {
                supervisor: "sue".into(),
                mode: MonitorMode::Barge
            }
        ),
        Err(CallError::Refused("you are not on this call".into()))
    );
    w.caller_hangs_up();
    w.settle_and_check();
}

#[test]
fn listening_is_not_shown_to_the_agent_unless_the_policy_says_so() {
    let mut p = policy(true, false);
    p.monitor_notice = false;
    let mut w = World::new(p, FarEnd::Answer, &[("ann", Browser::Connects)]);
    let i = w.dial("100");
    w.run_until(Duration::from_secs(10), |w| talking_to(w, i, "ann"));
    let start = SupervisorCommand::Start {
        supervisor: "sue".into(),
        name: "sue (display)".into(),
        mode: MonitorMode::Listen,
        via: MonitorVia::Browser { sdp: "v=0".into() },
    };
    supervise(&mut w, i, start).unwrap();
    w.run_for(Duration::from_secs(1));
    supervise(
        &mut w,
        i,
        SupervisorCommand::Mode {
            supervisor: "sue".into(),
            mode: MonitorMode::Whisper,
        },
    )
    .unwrap();
    assert_eq!(
        monitored(&w, i),
        [None, Some(("sue".to_string(), "whisper"))],
        "listening is silent; a whisper is heard, so shown"
    );
}

#[test]
fn a_transfer_whose_target_is_busy_takes_the_flows_failure_branch() {
    let mut w = World::new(policy(true, false), FarEnd::Refuse(486), &[]);
    let i = w.dial("300");
    w.run_until(Duration::from_secs(10), |w| w.caller_ended().is_some());
    // The flow's failure branch hung up; what the designer sees is in the record.
    let vars = w.calls[i].stores.iter().rev().find_map(|s| match s {
        StoreWrite::Update {
            vars,
            ended: true,
            path,
            ..
        } => Some((vars.clone(), path.clone())),
        _ => None,
    });
    let (vars, path) = vars.expect("the interaction ended");
    assert_eq!(vars["transfer.error"], "busy (486)");
    assert_eq!(path, ["t", "sorry"]);
    w.settle_and_check();
}

#[test]
fn a_transfer_that_answers_is_bridged_and_the_flow_is_done() {
    let mut w = World::new(policy(true, false), FarEnd::Answer, &[]);
    let i = w.dial("300");
    w.run_until(Duration::from_secs(10), |w| {
        w.calls[i]
            .session
            .legs()
            .iter()
            .any(|(r, s)| *r == Role::Transfer && *s == LegState::Up)
    });
    w.run_for(Duration::from_secs(1));
    assert!(!w.calls[i].media.bridges.is_empty());
    // The far end hangs up: the caller gets a BYE.
    let far_call = w.net.nodes[FAR]
        .events
        .iter()
        .find_map(|e| match e {
            CoreEvent::IncomingCall { call, .. } => Some(*call),
            _ => None,
        })
        .unwrap();
    let now = w.net.now;
    w.net.nodes[FAR].core.hangup(now, far_call);
    w.run_until(Duration::from_secs(10), |w| w.caller_ended().is_some());
    assert_eq!(w.caller_ended(), Some(EndReason::RemoteBye));
    w.settle_and_check();
}

#[test]
fn an_agent_whose_browser_never_connects_puts_the_caller_back_in_their_place() {
    let (mut w, i) = offered_to_a_browser_that_never_connects();
    // After 20 s the caller goes back to their place and is offered again (to the
    // only agent there is).
    w.run_until(Duration::from_secs(25), |w| {
        w.timeline(i).contains(&"agent missed")
    });
    let assigned = w.timeline(i).iter().filter(|k| **k == "assigned").count();
    assert_eq!(assigned, 2, "{:?}", w.timeline(i));
    assert!(matches!(w.stage(i), Stage::Connecting { agent, .. } if agent == "ann"));
    // Ann steps away; a colleague whose browser works takes it after she misses it
    // again.
    let now = w.net.now;
    let ann = w.agent_id("ann");
    w.router
        .set_presence(now, ann, crate::routing::engine::Presence::Away)
        .unwrap();
    w.login("bob", Browser::Connects);
    w.run_until(Duration::from_secs(25), |w| talking_to(w, i, "bob"));
    assert_eq!(
        w.timeline(i)
            .iter()
            .filter(|k| **k == "agent missed")
            .count(),
        2
    );
    w.caller_hangs_up();
    w.settle_and_check();
}

#[test]
fn the_caller_hanging_up_during_an_offer_a_consult_or_a_hold_leaves_nothing_behind() {
    // During the offer: the agent's browser never connects.
    let (mut w, i) = offered_to_a_browser_that_never_connects();
    w.caller_hangs_up();
    w.settle_and_check();
    assert!(w.calls[i].stores.iter().any(|s| matches!(s, StoreWrite::Update { ended: true, outcome: Some(o), .. } if o == "caller_hangup")));

    // During a consult.
    let mut w = World::new(
        policy(true, false),
        FarEnd::Answer,
        &[("ann", Browser::Connects), ("bob", Browser::Connects)],
    );
    let i = w.dial("100");
    w.run_until(Duration::from_secs(10), |w| {
        matches!(w.stage(i), Stage::Talking { .. })
    });
    let first = w.stage(i).agent().unwrap().to_string();
    let other = if first == "ann" { "bob" } else { "ann" };
    w.act(
        i,
        AgentCommand::Consult {
            agent: first.clone(),
            to: other.into(),
        },
    )
    .unwrap();
    w.run_until(Duration::from_secs(5), |w| {
        matches!(
            w.stage(i),
            Stage::Consulting {
                connected: true,
                ..
            }
        )
    });
    w.caller_hangs_up();
    w.settle_and_check();

    // During a hold.
    let (mut w, i) = ann_talking("100");
    w.act(
        i,
        AgentCommand::Hold {
            agent: "ann".into(),
            on: true,
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(2));
    w.caller_hangs_up();
    w.settle_and_check();
    // The log says the caller left while held (the KPIs' hold abandonment).
    let tl = w.timeline(i);
    let at = |k: &str| tl.iter().position(|x| *x == k);
    assert!(
        at("connected") < at("held") && at("held") < at("caller hung up"),
        "{tl:?}"
    );
    assert!(at("connected").is_some());
    assert_eq!(
        w.act(
            i,
            AgentCommand::Hold {
                agent: "ann".into(),
                on: false
            }
        ),
        Err(CallError::Over)
    );
}

#[test]
fn an_agent_logging_out_mid_call_ends_it_for_the_caller() {
    let (mut w, i) = ann_talking("100");
    // The desktop's socket closes: the browser leg goes, the router forgets her.
    let now = w.net.now;
    let ann = w.agent_id("ann");
    w.router.logout(now, ann).unwrap();
    w.drain_router();
    w.browser_gone(i, "ann", "closed");
    w.run_until(Duration::from_secs(10), |w| w.caller_ended().is_some());
    assert_eq!(w.caller_ended(), Some(EndReason::RemoteBye));
    w.settle_and_check();
    // We ended it, not the caller: no abandon on the log.
    assert!(
        !w.timeline(i).contains(&"caller hung up"),
        "{:?}",
        w.timeline(i)
    );
}

#[test]
fn a_forwarded_call_is_bridged_refused_as_it_came_or_rings_until_the_caller_gives_up() {
    // Answered: the caller is answered and bridged to the far end.
    let mut w = World::new(policy(false, true), FarEnd::Answer, &[]);
    let i = w.dial("5551234");
    w.run_until(Duration::from_secs(10), |w| {
        w.net.nodes[CALLER]
            .events
            .iter()
            .any(|e| matches!(e, CoreEvent::Established { .. }))
    });
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.calls[i].session.mode(), Mode::Forward);
    assert_eq!(w.calls[i].media.bridges.len(), 1);
    assert_eq!(w.calls[i].media.recordings, 1);
    w.caller_hangs_up();
    w.settle_and_check();

    // Refused: busy stays busy.
    let mut w = World::new(policy(false, true), FarEnd::Refuse(486), &[]);
    w.dial("5551234");
    w.run_until(Duration::from_secs(10), |w| w.caller_ended().is_some());
    assert_eq!(w.caller_ended(), Some(EndReason::Failed(486)));
    w.settle_and_check();

    // Never answers: the caller gives up; the far end's INVITE is cancelled.
    let mut w = World::new(policy(false, true), FarEnd::Silent, &[]);
    w.dial("5551234");
    w.run_for(Duration::from_secs(20));
    assert!(w.caller_ended().is_none());
    w.caller_hangs_up();
    w.settle_and_check();
    assert!(w.net.nodes[FAR]
        .events
        .iter()
        .any(|e| matches!(e, CoreEvent::Ended { .. })));
}

/// One thing that may happen during a call, at a moment.
#[derive(Debug, Clone)]
enum Event {
    CallerHangsUp,
    Hold(bool),
    Consult,
    Complete,
    CancelConsult,
    AgentHangsUp,
    /// The browser leg of the agent who has the call (or the colleague) fails.
    BrowserFails(bool),
    Logout,
}

fn any_event() -> impl proptest::strategy::Strategy<Value = Event> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Event::CallerHangsUp),
        any::<bool>().prop_map(Event::Hold),
        Just(Event::Consult),
        Just(Event::Complete),
        Just(Event::CancelConsult),
        Just(Event::AgentHangsUp),
        any::<bool>().prop_map(Event::BrowserFails),
        Just(Event::Logout),
    ]
}

fn apply(w: &mut World, i: usize, e: &Event) {
    let stage = w.stage(i);
    let Some(agent) = stage.agent().map(str::to_string) else {
        if let Event::CallerHangsUp = e {
            w.caller_hangs_up();
        }
        return;
    };
    let other = if agent == "ann" { "bob" } else { "ann" }.to_string();
    let _ = match e {
        Event::CallerHangsUp => {
            w.caller_hangs_up();
            Ok(serde_json::Value::Null)
        }
        Event::Hold(on) => w.act(i, AgentCommand::Hold { agent, on: *on }),
        Event::Consult => w.act(i, AgentCommand::Consult { agent, to: other }),
        Event::Complete => w.act(i, AgentCommand::Complete { agent }),
        Event::CancelConsult => w.act(i, AgentCommand::CancelConsult { agent }),
        Event::AgentHangsUp => w.act(i, AgentCommand::Hangup { agent }),
        Event::BrowserFails(colleague) => {
            let who = if *colleague { other } else { agent };
            w.browser_gone(i, &who, "ice failed");
            Ok(serde_json::Value::Null)
        }
        Event::Logout => {
            let now = w.net.now;
            let id = w.agent_id(&agent);
            let _ = w.router.logout(now, id);
            w.drain_router();
            w.browser_gone(i, &agent, "closed");
            Ok(serde_json::Value::Null)
        }
    };
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 48, ..Default::default() })]

    /// Whatever happens in whatever order (with or without a survey after the agent),
    /// the call ends clean: no leg or media left, one end record, the recording closed once, the router's load back to zero.
    #[test]
    fn any_sequence_of_call_events_agent_commands_and_time_ends_clean(
        ann_connects in proptest::prelude::any::<bool>(),
        survey in proptest::prelude::any::<bool>(),
        events in proptest::collection::vec((0u64..25_000, any_event()), 0..8),
    ) {
        let ann = if ann_connects { Browser::Connects } else { Browser::Never };
        let mut w = World::new(
            policy(true, false),
            FarEnd::Answer,
            &[("ann", ann), ("bob", Browser::Connects)],
        );
        // 400's flow has a survey after the agent: the caller may stay on.
        let i = w.dial(if survey { "400" } else { "100" });
        for (ms, e) in &events {
            w.run_for(Duration::from_millis(*ms));
            if w.caller_ended().is_some() {
                break;
            }
            apply(&mut w, i, e);
        }
        if w.caller_ended().is_none() {
            w.run_for(Duration::from_secs(1));
            w.caller_hangs_up();
        }
        w.settle_and_check();
    }
}

#[test]
fn a_callee_who_withdrew_recording_consent_is_not_recorded_whatever_is_asked() {
    let r = |asked, consent_withdrawn| Recording {
        asked,
        consent_withdrawn,
    };
    assert!(r(None, false).on(true) && !r(None, false).on(false));
    assert!(r(Some(true), false).on(false) && !r(Some(false), false).on(true));
    for asked in [None, Some(true), Some(false)] {
        assert!(!r(asked, true).on(true), "{asked:?}");
    }
}

// ------------------------------------------------------------ a video call from the chat

/// A browser's offer: G.711 audio and a VP8/H.264 camera, BUNDLEd, DTLS-SRTP.
const BROWSER_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=sendrecv\r\n";

/// Our answer to it, as a browser leg writes it (VP8 taken).
const BROWSER_ANSWER: &str = "v=0\r\no=- 5 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\n";

fn escalated(customer: Option<i64>) -> (Session, Time) {
    let esc = Escalation {
        chat: "c0ffee".into(),
        agent: "bob".into(),
        queue: "support".into(),
        customer,
        conversation: customer.map(|c| c * 10),
        name: "Ada Lovelace".into(),
    };
    let mut s = Session::escalated(
        Arc::new(policy(true, false)),
        CallRef(7),
        BROWSER_OFFER.into(),
        "ada@example.com".into(),
        esc,
        1,
    );
    let now = crate::clock::timestamp();
    s.handle(now, Input::Start);
    (s, now)
}

fn drain(s: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| s.poll()).collect()
}

/// Takes the escalated call to the point where the chat's agent is offered it: the
/// record made, the browser leg answered and connected, the enqueue asked for.
fn escalated_and_offered(customer: Option<i64>) -> (Session, Time, Vec<Output>) {
    let (mut s, now) = escalated(customer);
    let out = drain(&mut s);
    assert!(
        matches!(out[0], Output::Sip(SipCommand::Ring(CallRef(7)))),
        "{out:?}"
    );
    let record = out
        .iter()
        .find_map(|o| match o {
            Output::StartInteraction(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a record");
    assert_eq!(
        (record.kind, record.dialled.as_str(), record.flow.as_str()),
        ("video", "chat:c0ffee", "video-call")
    );
    assert_eq!(record.conversation, customer.map(|c| c * 10));
    assert_eq!(
        record.unverified,
        customer.is_none(),
        "an unverified chat's address is not resolved"
    );
    s.handle(now, Input::InteractionStarted(Ok(Started::default())));
    let mut all = drain(&mut s);
    let video = all
        .iter()
        .find_map(|o| match o {
            Output::Media(MediaCommand::AddBrowser { leg: 0, video, .. }) => Some(video.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the customer's browser leg: {all:?}"));
    let names: Vec<&str> = video.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["VP8", "H264"],
        "the camera in what an agent's browser takes"
    );
    s.handle(
        now,
        Input::BrowserAnswered {
            leg: 0,
            answer: Ok(BROWSER_ANSWER.into()),
        },
    );
    let out = drain(&mut s);
    assert!(
        out.iter().any(|o| matches!(o, Output::Sip(SipCommand::Answer(CallRef(7), sdp)) if sdp.as_ref() == BROWSER_ANSWER.as_bytes())),
        "the answer goes to the page: {out:?}"
    );
    all.extend(out);
    s.handle(
        now,
        Input::Sip(
            CallRef(7),
            SipEvent::Established {
                remote_sdp: Bytes::new(),
            },
        ),
    );
    s.handle(now, Input::Media(MediaInput::Browser(0, Ok(()))));
    let out = drain(&mut s);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Media(MediaCommand::Record(_)))),
        "recorded: {out:?}"
    );
    all.extend(out);
    if let Some(c) = customer {
        assert!(
            all.iter()
                .any(|o| matches!(o, Output::Hints { customer } if *customer == c)),
            "{all:?}"
        );
        s.handle(
            now,
            Input::RoutingHints {
                last_agent: None,
                repeat: false,
                vip: false,
            },
        );
        all.extend(drain(&mut s));
    }
    (s, now, all)
}

#[test]
fn a_video_call_from_the_chat_rings_the_chats_agent_alone_as_video() {
    // ...and one whose agent cannot be offered it is refused at once.
    let (mut s, now, _) = escalated_and_offered(None);
    s.handle(
        now,
        Input::Enqueued(Err("agent \"bob\" is not logged in".into())),
    );
    let out = drain(&mut s);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Sip(SipCommand::Reject(CallRef(7), 480, _)))),
        "{out:?}"
    );
    for customer in [Some(4), None] {
        let (_, _, out) = escalated_and_offered(customer);
        let e = out
            .iter()
            .find_map(|o| match o {
                Output::Router(RouterRequest::Enqueue(e)) => Some(e.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("enqueued: {out:?}"));
        assert_eq!(
            e.channel,
            Channel::Voice,
            "it takes the agent as a call does"
        );
        assert!(e.details["video"].is_string(), "offered as video: {e:?}");
        assert_eq!(e.only.as_deref(), Some("bob"));
        assert_eq!((e.queue.as_str(), e.customer), ("support", customer));
        assert_eq!(
            e.details["customer.name"], "Ada Lovelace",
            "the offer names her"
        );
    }
}

#[test]
fn a_video_call_from_the_chat_that_its_agent_declines_ends_at_once() {
    for lapsed in [false, true] {
        let (mut s, now, _) = escalated_and_offered(Some(4));
        s.handle(
            now,
            Input::Work(WorkNotice::Offered {
                agent: "bob".into(),
            }),
        );
        s.handle(
            now,
            Input::Work(WorkNotice::OfferEnded {
                agent: "bob".into(),
                lapsed,
            }),
        );
        let out = drain(&mut s);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Sip(SipCommand::Reject(CallRef(7), 480, _)))),
            "the page hears the agent did not take it: {out:?}"
        );
        s.handle(
            now,
            Input::Sip(CallRef(7), SipEvent::Ended(EndReason::Rejected(480))),
        );
        let out = drain(&mut s);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Router(RouterRequest::Ended))),
            "the router lets the item go: {out:?}"
        );
    }
}

#[test]
fn the_chats_agent_who_answers_gets_the_customers_camera_in_their_browser() {
    let (mut s, now, _) = escalated_and_offered(Some(4));
    s.handle(
        now,
        Input::Work(WorkNotice::Assigned {
            agent: "bob".into(),
            extension: None,
        }),
    );
    drain(&mut s);
    s.handle(
        now,
        Input::Agent(
            AgentCommand::Offer {
                agent: "bob".into(),
                sdp: BROWSER_OFFER.into(),
            },
            None,
        ),
    );
    let out = drain(&mut s);
    let video = out
        .iter()
        .find_map(|o| match o {
            Output::Media(MediaCommand::AddBrowser { leg, video, .. }) if *leg != 0 => {
                Some(video.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("Bob's browser leg: {out:?}"));
    assert_eq!(
        video
            .iter()
            .map(|f| (f.pt, f.name.as_str()))
            .collect::<Vec<_>>(),
        [(96, "VP8")],
        "what the customer's browser agreed to"
    );
}

/// The agent's pushes about video on call `i`.
fn video_pushes(w: &World, i: usize) -> Vec<String> {
    w.calls[i]
        .pushes
        .iter()
        .filter_map(|(a, p)| match p {
            CallPush::Renegotiate => Some(format!("{a}: renegotiate")),
            CallPush::Answer(sdp) => Some(format!("{a}: answer {sdp}")),
            CallPush::VideoRefused(why) => Some(format!("{a}: refused {why}")),
            _ => None,
        })
        .collect()
}

#[test]
fn an_agent_adds_video_the_phone_takes_it_and_the_browser_renegotiates_in_its_codec() {
    let (mut w, i) = ann_talking("100");
    // The caller's phone takes VP8 (of the VP8 and H.264 offered).
    w.video_phone = Some(
        "v=0\r\no=p 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:* nack pli\r\n".into(),
    );
    let ann = || "ann".to_string();
    // Not while the caller holds.
    w.act(
        i,
        AgentCommand::Hold {
            agent: ann(),
            on: true,
        },
    )
    .unwrap();
    let r = w.act(i, AgentCommand::AddVideo { agent: ann() });
    assert_eq!(
        r,
        Err(CallError::Refused("take the caller off hold first".into()))
    );
    w.act(
        i,
        AgentCommand::Hold {
            agent: ann(),
            on: false,
        },
    )
    .unwrap();
    w.run_for(Duration::from_millis(200));
    let r = w.act(i, AgentCommand::AddVideo { agent: ann() }).unwrap();
    assert_eq!(r["adding_video"], true);
    w.run_for(Duration::from_millis(200));
    assert_eq!(video_pushes(&w, i), vec!["ann: renegotiate"]);
    assert_eq!(w.calls[i].video_ports.len(), 1);
    assert_eq!(
        w.calls[i].video_ports_dropped, 0,
        "the port is the call's now"
    );
    // The browser offers again; the media answers; the answer is pushed.
    let r = w
        .act(
            i,
            AgentCommand::Offer {
                agent: ann(),
                sdp: "v=0 (camera)".into(),
            },
        )
        .unwrap();
    assert_eq!(r["renegotiating"], true);
    assert_eq!(
        video_pushes(&w, i),
        vec!["ann: renegotiate", "ann: answer answer to v=0 (camera)"]
    );
    assert!(
        w.timeline(i).contains(&"video added"),
        "{:?}",
        w.timeline(i)
    );
    // Video is on: neither asked again nor offered again.
    let r = w.act(i, AgentCommand::AddVideo { agent: ann() });
    assert_eq!(
        r,
        Err(CallError::Refused("the call has video already".into()))
    );
    let r = w.act(
        i,
        AgentCommand::Offer {
            agent: ann(),
            sdp: "v=0".into(),
        },
    );
    assert!(r.is_err());
    w.caller_hangs_up();
    w.settle_and_check();
}

#[test]
fn a_phone_that_declines_video_leaves_the_call_as_audio_and_the_agent_is_told() {
    let (mut w, i) = ann_talking("100");
    // The simulated caller's SIP core answers the re-INVITE declining video (port 0).
    let r = w
        .act(
            i,
            AgentCommand::AddVideo {
                agent: "ann".into(),
            },
        )
        .unwrap();
    assert_eq!(r["adding_video"], true);
    // Asked twice before the answer: refused.
    let r = w.act(
        i,
        AgentCommand::AddVideo {
            agent: "ann".into(),
        },
    );
    assert_eq!(
        r,
        Err(CallError::Refused("video is being added already".into()))
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        video_pushes(&w, i),
        vec!["ann: refused the caller's phone did not take video"]
    );
    assert_eq!(
        w.calls[i].video_ports_dropped, 1,
        "the unused port is freed"
    );
    assert!(talking_to(&w, i, "ann"), "the call goes on");
    // A stray offer from the browser is no renegotiation.
    let r = w.act(
        i,
        AgentCommand::Offer {
            agent: "ann".into(),
            sdp: "v=0".into(),
        },
    );
    assert!(r.is_err());
    w.caller_hangs_up();
    w.settle_and_check();
}
