//! Messages the actors send each other, apart from all of them, so none imports
//! another: the router pushes to a `Recipient<AgentPush>`, an agent that fails tells a
//! `Recipient<Logout>`, the centre reaches a call as a `Recipient<AgentCall>`.

use actix::prelude::*;
use serde::Serialize;

/// What an agent does to their call from the desktop (the call core judges it).
#[derive(Message, Debug)]
#[rtype(result = "Result<serde_json::Value, crate::call::CallError>")]
pub struct AgentCall(pub crate::call::AgentCommand);

/// One of an agent's queues as their status bar shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    pub name: String,
    /// Items waiting (not offered to anyone, not taken).
    pub waiting: usize,
    /// Since when the oldest of them waits (Unix milliseconds).
    pub oldest_since: Option<u64>,
}

/// What the agent is told. Serialised as `{"type": "...", ...}` on their WebSocket.
#[derive(Message, Clone, Debug, Serialize)]
#[rtype(result = "()")]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentPush {
    Offer {
        interaction: String,
        channel: &'static str,
        queue: String,
        from: String,
        customer: Option<i64>,
        conversation: Option<i64>,
        details: serde_json::Value,
        /// 0-9, higher first (the flow's `queue` priority).
        priority: u8,
        /// A VIP (the customer's record or a gold/VIP tier).
        vip: bool,
        expires_in_ms: u64,
        /// A call the desktop would take in the browser (the agent has no desk phone):
        /// the page asks for the microphone when the agent answers.
        browser_call: bool,
    },
    Revoked {
        interaction: String,
        reason: &'static str,
    },
    /// A colleague who has a call asks this agent to talk before handing it over (a
    /// warm transfer). A browser agent answers with a `webrtc_offer`; a desk phone
    /// rings. Ends with `assigned` (the transfer completed) or `ended`.
    Consult {
        interaction: String,
        from: String,
        caller: String,
        customer: Option<i64>,
        details: serde_json::Value,
        browser_call: bool,
    },
    Assigned {
        interaction: String,
        channel: &'static str,
        customer: Option<i64>,
        /// The desktop takes this call in the browser (sends a `webrtc_offer`).
        browser_call: bool,
    },
    /// What is happening on a call the agent has (`consulting`, `consult connected`,
    /// `consult ended`).
    CallState {
        interaction: String,
        state: &'static str,
    },
    /// The caller's phone took video: the desktop sends a new `webrtc_offer` on the
    /// same connection (its camera), answered by a `webrtc_answer`.
    Renegotiate {
        interaction: String,
    },
    /// Our answer to the desktop's `webrtc_offer` when it came later than the offer's
    /// own reply (a renegotiation).
    WebrtcAnswer {
        interaction: String,
        sdp: String,
    },
    /// Video was not added to the call: why.
    VideoRefused {
        interaction: String,
        error: String,
    },
    /// The agent put the caller on hold (`on`) or took them off it.
    Held {
        interaction: String,
        on: bool,
    },
    /// A supervisor is on the agent's call or chat (`listen`, `whisper`, `barge`, or
    /// `took_over` a chat, which then leaves the agent), or no
    /// longer (both null). Listening shows only where `[calls] monitor_notice` is on.
    Monitored {
        interaction: String,
        supervisor: Option<String>,
        /// Their display name.
        name: Option<String>,
        mode: Option<&'static str>,
    },
    /// A supervisor's private note on the agent's chat (never shown to the customer).
    Note {
        interaction: String,
        supervisor: String,
        name: String,
        text: String,
        at: u64,
    },
    /// The work left the agent (ended, or handed on).
    Ended {
        interaction: String,
    },
    Presence {
        presence: &'static str,
        /// When wrap-up ends by itself (Unix ms), for its countdown.
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<u64>,
    },
    Message {
        interaction: String,
        seq: u64,
        from: &'static str,
        name: String,
        text: String,
        at: u64,
    },
    Typing {
        interaction: String,
        on: bool,
    },
    /// A WhatsApp thread's reply window: free-form replies until `until` (Unix ms),
    /// moved by each customer message.
    Window {
        interaction: String,
        until: u64,
    },
    /// Where the agent's message `seq` (through a provider) has got to: `queued`
    /// (with why), `sent`, `delivered`, `read` or `failed` (with why).
    Delivery {
        interaction: String,
        seq: u64,
        status: &'static str,
        error: String,
    },
    /// A chat's messages so far (on assignment).
    Transcript {
        interaction: String,
        messages: Vec<serde_json::Value>,
    },
    /// The customer ended the chat or hung up; the agent wraps up.
    CustomerLeft {
        interaction: String,
    },
    /// The agent's queues as they are now (sent at login and when one changes).
    Queues {
        queues: Vec<QueueStatus>,
    },
    /// The agent verified who the customer is: the work is now theirs.
    Verified {
        interaction: String,
        customer: i64,
    },
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Logout {
    pub agent: String,
    /// Hand the agent's chats back to their queues (their desktop failed).
    pub hand_over: bool,
}
