//! Sends an agent's reply (the driver: what it says and its headers are
//! [`super::compose`]'s and [`super::thread`]'s). The message is built once, with a
//! Message-ID of its own that names the thread and the message (`<interaction>.<seq>@
//! <our domain>`), so a retry or a resend after a restart is the same message; it is
//! sent over rustls (TLS or STARTTLS, required) or in the clear to a loopback host
//! only, retried while the server fails, and recorded with its bytes once sent.

use crate::channels::send::SendError;
use crate::config::{ChannelConfig, MailboxConfig, Security};
use crate::store::{NewEmail, Store};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// The name of the store's key that signs plus-address tokens.
pub const TOKEN_KEY: &str = "mail-token";

/// One attempt at handing `raw` to the mailbox's SMTP server for `to`.
pub async fn send_raw(
    m: &MailboxConfig,
    to: &str,
    raw: &[u8],
    timeout: std::time::Duration,
) -> Result<(), SendError> {
    let (host, port) = crate::config::host_port(&m.smtp).map_err(SendError::Refused)?;
    let tls = match m.smtp_security {
        Security::None => Tls::None,
        Security::Tls | Security::Starttls => {
            let p = TlsParameters::new_rustls(host.clone())
                .map_err(|e| SendError::Refused(format!("TLS for {host}: {e}")))?;
            if m.smtp_security == Security::Tls {
                Tls::Wrapper(p)
            } else {
                Tls::Required(p)
            }
        }
    };
    let (user, password) = m.smtp_login();
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .credentials(Credentials::new(user.to_string(), password.to_string()))
            .timeout(Some(timeout))
            .build();
    let envelope = lettre::address::Envelope::new(
        Some(
            m.address
                .parse()
                .map_err(|e| SendError::Refused(format!("from: {e}")))?,
        ),
        vec![to
            .parse()
            .map_err(|e| SendError::Refused(format!("{to:?} is not an e-mail address: {e}")))?],
    )
    .map_err(|e| SendError::Refused(e.to_string()))?;
    match transport.send_raw(&envelope, raw).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Refused(format!(
            "the mail server refused it: {e}"
        ))),
        Err(e) => Err(SendError::Retry(format!("the mail server: {e}"))),
    }
}

/// Our Message-ID for message `seq` of `interaction` (no brackets).
pub fn message_id(interaction: &str, seq: u64, domain: &str) -> String {
    format!("{interaction}.{seq}@{domain}")
}

/// Everything about one reply.
pub struct Outgoing<'a> {
    pub interaction: &'a str,
    pub seq: u64,
    /// The customer's address.
    pub to: &'a str,
    /// The agent's name as the customer sees it.
    pub agent: &'a str,
    pub text: &'a str,
}

/// Sends an agent's reply on an e-mail thread, retried as the account says
/// (`on_retry` hears each failed attempt that will be tried again); the Message-ID,
/// once the server took it and it is on record.
pub async fn reply(
    store: &Store,
    account: &ChannelConfig,
    o: Outgoing<'_>,
    on_retry: &(dyn Fn(u32, &str) + Send + Sync),
) -> Result<String, SendError> {
    let m = account
        .mailbox
        .as_deref()
        .ok_or_else(|| SendError::NotConfigured(format!("{} is not a mailbox", account.name)))?;
    let db = |e: crate::store::StoreError| SendError::Retry(format!("the store: {e}"));
    let key = store.node_key(TOKEN_KEY).await.map_err(db)?;
    let thread = store.interaction_emails(o.interaction).await.map_err(db)?;
    // The customer's latest message (one being imported has no number yet: newest).
    let last_in = thread
        .iter()
        .filter(|e| e.direction == "in")
        .max_by_key(|e| if e.seq == 0 { i64::MAX } else { e.seq });
    let conversation = match thread.iter().find_map(|e| e.conversation) {
        Some(c) => c,
        None => store
            .interaction(o.interaction)
            .await
            .map_err(db)?
            .and_then(|i| i.conversation_id)
            .ok_or_else(|| SendError::Refused("the thread has no case".into()))?,
    };
    let message_id = message_id(o.interaction, o.seq, m.domain());
    let chain: Vec<String> = last_in
        .map(|e| e.refs.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let parent = last_in.map(|e| e.message_id.as_str());
    let references = super::compose::references(&chain, parent);
    let subject = match last_in {
        Some(e) => super::thread::reply_subject(&e.subject, conversation),
        None => super::thread::new_subject(conversation),
    };
    let reply_to =
        super::thread::plus_address(&m.address, &super::thread::token(&key, conversation));
    let from_name = if o.agent.is_empty() {
        String::new()
    } else {
        format!("{} ({})", o.agent, m.name)
    };
    let raw = super::compose::reply(&super::compose::Reply {
        from: &m.address,
        from_name: &from_name,
        reply_to: &reply_to,
        to: o.to,
        subject: &subject,
        message_id: &message_id,
        in_reply_to: parent,
        references: &references,
        text: o.text,
        date: crate::clock::unix_secs(),
    })
    .map_err(|e| SendError::Refused(e.0))?;
    let timeout = std::time::Duration::from_secs(account.send_timeout_secs);
    let mut attempt = 1;
    loop {
        match (
            send_raw(m, o.to, &raw, timeout).await,
            crate::channels::retry_after(attempt, account.send_attempts),
        ) {
            (Err(SendError::Retry(why)), Some(wait)) => {
                tracing::warn!(mailbox = %m.name, attempt, error = %why, "reply not sent; retrying");
                on_retry(attempt, &why);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            (Err(e), _) => return Err(e),
            (Ok(()), _) => break,
        }
    }
    let refs = references.join(" ");
    store
        .add_email(&NewEmail {
            mailbox: &m.name,
            message_id: &message_id,
            interaction: Some(o.interaction),
            conversation: Some(conversation),
            direction: "out",
            seq: o.seq as i64,
            status: "sent",
            sender: &m.address,
            recipients: o.to,
            subject: &subject,
            refs: &refs,
            raw: Some(&raw),
            ..Default::default()
        })
        .await
        .map_err(db)?;
    Ok(message_id)
}
