//! A mailbox's fetcher (the driver: [`super::sync`] decides, this moves bytes). One
//! task per mailbox: connect (TLS, STARTTLS or, to a loopback host, plain), log in,
//! select the folder, import what is new (headers first: the Message-ID and size
//! decide whether the body is downloaded), then wait with IDLE (re-issued every 25
//! minutes) or poll; on any failure the mailbox shows as failing with the reason and
//! the task connects again after a back-off. Nothing here blocks the rest of the node.

use super::sync::{self, Action, Known, Mark, Start};

/// Bodies downloaded in one command: at most this many messages, and this many
/// bytes together (a larger message goes alone).
const BATCH: usize = 32;
const BATCH_BYTES: u64 = 16 << 20;
/// Headers read in one command (what is new is listed by UID first).
const HEADER_WINDOW: usize = 1000;
use crate::config::{AfterImport, ChannelConfig, MailboxConfig, Security};
use futures_util::{FutureExt, StreamExt};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How a mailbox is doing, for `/metrics` and the admin API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    pub up: bool,
    /// Why it is failing (empty when up).
    pub error: String,
    /// When a message was last imported (Unix s).
    pub last_import: Option<u64>,
    pub imported: u64,
    pub quarantined: u64,
    /// Whether the server takes IDLE (else the folder is polled).
    pub idle: bool,
}

/// Every mailbox's status by name.
pub type Statuses = Arc<Mutex<std::collections::BTreeMap<String, Status>>>;

/// What importing one message came to, as the fetcher needs it.
#[derive(Debug)]
pub enum Import {
    /// On a case (or on record already, or an automatic message noted).
    Done,
    /// It cannot be read or placed, whatever happens: quarantined at once.
    Unusable(String),
    /// It failed this time (the store, a fault): tried again, up to the mailbox's
    /// attempts, then quarantined.
    Failed(String),
    /// The node cannot take it now (all its lines busy): tried again shortly, with no
    /// try counted.
    Later(String),
}

/// What the fetcher hands each message to (the centre).
pub trait Importer: Send + Sync + 'static {
    fn import<'a>(
        &'a self,
        account: &'a Arc<ChannelConfig>,
        raw: Vec<u8>,
    ) -> Pin<Box<dyn std::future::Future<Output = Import> + Send + 'a>>;
    fn store(&self) -> &crate::store::Store;
    /// Changes when an erasure leaves mail to delete on the servers.
    fn purges(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// A connection, plain or TLS.
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

type Session = async_imap::Session<Conn>;

/// Connecting and each command wait at most this long.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

async fn timed<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(IO_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {} s", IO_TIMEOUT.as_secs())),
    }
}

/// A TLS client checking the server against the web's roots (webpki-roots).
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

async fn tls(host: &str, tcp: TcpStream) -> Result<Conn, String> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host}: {e}"))?;
    let s = timed("TLS", tls_connector()?.connect(name, tcp)).await?;
    Ok(Conn::Tls(Box::new(s)))
}

/// Connects and logs in.
async fn open(m: &MailboxConfig) -> Result<(Session, bool), String> {
    let (host, port) = crate::config::host_port(&m.imap)?;
    let tcp = timed("connect", TcpStream::connect((host.as_str(), port))).await?;
    let conn = match m.imap_security {
        Security::Tls => tls(&host, tcp).await?,
        _ => Conn::Plain(tcp),
    };
    let mut client = async_imap::Client::new(conn);
    timed("greeting", client.read_response())
        .await?
        .ok_or("the server closed the connection before its greeting")?;
    if m.imap_security == Security::Starttls {
        timed(
            "STARTTLS",
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await?;
        let Conn::Plain(tcp) = client.into_inner() else {
            return Err("STARTTLS on a TLS connection".into());
        };
        client = async_imap::Client::new(tls(&host, tcp).await?);
    }
    let mut session =
        match tokio::time::timeout(IO_TIMEOUT, client.login(&m.username, &m.password)).await {
            Ok(Ok(s)) => s,
            Ok(Err((e, _))) => return Err(format!("login refused: {e}")),
            Err(_) => return Err("login: no answer".into()),
        };
    let idle = timed("CAPABILITY", session.capabilities())
        .await?
        .has_str("IDLE");
    Ok((session, idle))
}

/// Runs a mailbox's fetcher for ever (until the node stops).
pub async fn run(account: Arc<ChannelConfig>, importer: Arc<dyn Importer>, statuses: Statuses) {
    let Some(m) = account.mailbox.clone() else {
        return;
    };
    let mut failures = 0u32;
    loop {
        let err = session(&m, &account, &*importer, &statuses, &mut failures).await;
        failures += 1;
        tracing::warn!(mailbox = %m.name, error = %err, failures, "mailbox failing");
        set(&statuses, &m.name, |s| {
            s.up = false;
            s.error = err.clone();
        });
        tokio::time::sleep(sync::reconnect_after(failures)).await;
    }
}

fn set(statuses: &Statuses, name: &str, f: impl FnOnce(&mut Status)) {
    let mut all = statuses.lock().unwrap_or_else(|e| e.into_inner());
    f(all.entry(name.to_string()).or_default());
}

/// One connection's life: returns why it ended.
async fn session(
    m: &MailboxConfig,
    account: &Arc<ChannelConfig>,
    importer: &dyn Importer,
    statuses: &Statuses,
    failures: &mut u32,
) -> String {
    let (mut s, idle) = match open(m).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let selected = match timed("SELECT", s.select(&m.folder)).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Some(uidvalidity) = selected.uid_validity else {
        return format!("{}: the server gave no UIDVALIDITY", m.folder);
    };
    set(statuses, &m.name, |st| {
        st.up = true;
        st.error.clear();
        st.idle = idle;
    });
    tracing::info!(mailbox = %m.name, folder = %m.folder, idle, "mailbox connected");
    let mut purges = importer.purges();
    loop {
        purges.borrow_and_update();
        if let Err(e) = purge(m, importer.store(), &mut s, uidvalidity).await {
            return e;
        }
        let again = match import_new(m, account, importer, statuses, &mut s, uidvalidity).await {
            Ok(again) => again,
            Err(e) => return e,
        };
        *failures = 0;
        if again {
            // A message is waiting to be tried again: soon, not at the next mail.
            tokio::time::sleep(sync::RETRY_SOON.min(Duration::from_secs(m.poll_secs))).await;
            if let Err(e) = timed("NOOP", s.noop()).await {
                return e;
            }
        } else if idle {
            let mut h = s.idle();
            if let Err(e) = timed("IDLE", h.init()).await {
                return e;
            }
            // Woken by news; or re-issued every IDLE_RENEW however chatty the server's
            // keep-alives; or, after IDLE_SILENCE without a word (not even a
            // keep-alive), DONE tells whether the connection still lives.
            // An erasure's mail to delete from the server wakes it too.
            let (wait, _stop) = h.wait_with_timeout(sync::IDLE_SILENCE);
            tokio::select! {
                r = tokio::time::timeout(sync::IDLE_RENEW, wait) => {
                    if let Ok(Err(e)) = r {
                        return format!("IDLE: {e}");
                    }
                }
                _ = woken(&mut purges) => {}
            }
            s = match timed("DONE", h.done()).await {
                Ok(s) => s,
                Err(e) => return e,
            };
        } else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(m.poll_secs)) => {}
                _ = woken(&mut purges) => {}
            }
            if let Err(e) = timed("NOOP", s.noop()).await {
                return e;
            }
        }
    }
}

/// Returns when `w` changes (never, once its sender is gone).
async fn woken(w: &mut tokio::sync::watch::Receiver<u64>) {
    if w.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Erased mail looked for in one pass.
const PURGE_BATCH: i64 = 200;

/// Deletes from the server the mail of erased customers (the store's list for this
/// mailbox): from the folder it is fetched from and, when imported mail is moved,
/// from that folder too. A message goes only when its Message-ID is exactly an erased
/// one (or, without one, its UID is the one recorded in this `UIDVALIDITY`). Leaves
/// the fetched folder selected.
async fn purge(
    m: &MailboxConfig,
    store: &crate::store::Store,
    s: &mut Session,
    uidvalidity: u32,
) -> Result<(), String> {
    let db = |e: crate::store::StoreError| format!("the store: {e}");
    loop {
        let ids = store.mail_purges(&m.name, PURGE_BATCH).await.map_err(db)?;
        if ids.is_empty() {
            return Ok(());
        }
        let mut deleted = purge_folder(s, &ids, Some(uidvalidity)).await?;
        let mut complete = true;
        if let AfterImport::Move(folder) = m.after() {
            match timed("SELECT", s.select(&folder)).await {
                Ok(_) => deleted += purge_folder(s, &ids, None).await?,
                // Nothing was ever moved there.
                Err(e) if e.to_ascii_uppercase().contains("NONEXISTENT") => {}
                Err(e) => {
                    tracing::warn!(mailbox = %m.name, error = %e, "erased mail not looked for in the folder imported mail is moved to; tried again later");
                    complete = false;
                }
            }
            let again = timed("SELECT", s.select(&m.folder)).await?;
            if again.uid_validity != Some(uidvalidity) {
                return Err(format!("{}: UIDVALIDITY changed", m.folder));
            }
        }
        tracing::info!(mailbox = %m.name, looked_for = ids.len(), deleted, "erased customers' mail deleted from the server");
        if !complete {
            return Ok(());
        }
        store.mail_purged(&m.name, &ids).await.map_err(db)?;
    }
}

/// Deletes `ids` from the selected folder (`uidvalidity`: the fetched folder's, where
/// a message without a Message-ID is known by its UID); how many went.
async fn purge_folder(
    s: &mut Session,
    ids: &[String],
    uidvalidity: Option<u32>,
) -> Result<usize, String> {
    let mut doomed: Vec<u32> = Vec::new();
    for id in ids {
        let (candidates, exact): (Vec<u32>, Option<&str>) =
            match uidvalidity.and_then(|v| sync::synthetic_uid(id, v)) {
                Some(uid) => (vec![uid], None),
                None => {
                    let Some(q) = sync::search_by_id(id) else {
                        continue;
                    };
                    let found = timed("SEARCH", s.uid_search(q)).await?;
                    (found.into_iter().collect(), Some(id.as_str()))
                }
            };
        if candidates.is_empty() {
            continue;
        }
        let mut candidates = candidates;
        candidates.sort_unstable();
        for (uid, _, got) in fetch_headers(s, &candidates).await? {
            if got.as_deref() == exact {
                doomed.push(uid);
            }
        }
    }
    doomed.sort_unstable();
    doomed.dedup();
    if !doomed.is_empty() {
        delete(s, &uid_set(&doomed)).await?;
    }
    Ok(doomed.len())
}

/// Drains a command's responses, failing on the first error.
async fn drain<S: futures_util::Stream<Item = Result<T, async_imap::error::Error>> + Unpin, T>(
    mut st: S,
) -> Result<(), String> {
    while let Some(r) = st.next().await {
        r.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Flags `set` deleted and expunges exactly those (UIDPLUS).
async fn delete(s: &mut Session, set: &str) -> Result<(), String> {
    let st = timed("STORE", s.uid_store(set, "+FLAGS.SILENT (\\Deleted)")).await?;
    timed("STORE", drain(Box::pin(st))).await?;
    let st = timed("EXPUNGE", s.uid_expunge(set)).await?;
    timed("EXPUNGE", drain(Box::pin(st))).await
}

/// The id a header gives, without brackets.
fn header_id(header: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse_headers(header)?
        .message_id()
        .map(super::parse::bare_id)
        .filter(|s| !s.is_empty())
}

/// Imports what arrived since the mark; whether a message was left to try again
/// soon (it and those after it).
async fn import_new(
    m: &MailboxConfig,
    account: &Arc<ChannelConfig>,
    importer: &dyn Importer,
    statuses: &Statuses,
    s: &mut Session,
    uidvalidity: u32,
) -> Result<bool, String> {
    let store = importer.store();
    let db = |e: crate::store::StoreError| format!("the store: {e}");
    let mark = store.mail_mark(&m.name).await.map_err(db)?.map(|k| Mark {
        uidvalidity: k.uidvalidity as u32,
        last_uid: k.last_uid as u32,
    });
    let start = sync::start(mark, uidvalidity);
    let from = match start {
        Start::After(n) => n + 1,
        Start::Resync => {
            tracing::warn!(mailbox = %m.name, "UIDVALIDITY changed: every message looked at again, those on record skipped");
            1
        }
    };
    // What is new, by UID (4 bytes a message however full the folder), then its
    // headers a window at a time: the ids and sizes.
    let mut uids: Vec<u32> = timed("SEARCH", s.uid_search(format!("UID {from}:*")))
        .await?
        .into_iter()
        // `n:*` names the last message even when its UID is below n.
        .filter(|u| *u >= from)
        .collect();
    uids.sort_unstable();
    let mut last = match start {
        Start::After(n) => n,
        Start::Resync => 0,
    };
    for window in uids.chunks(HEADER_WINDOW) {
        let new = fetch_headers(s, window).await?;
        let mut rest = &new[..];
        while !rest.is_empty() {
            let n = sync::batch(rest.iter().map(|x| x.1), BATCH, BATCH_BYTES);
            let (batch, after) = rest.split_at(n);
            rest = after;
            // What to do with each, from the record.
            let mut plan = Vec::with_capacity(batch.len());
            for (uid, size, id) in batch {
                let known = match id {
                    Some(id) => match store.email(&m.name, id).await.map_err(db)? {
                        None => Known::New,
                        Some(r) => match r.status.as_str() {
                            "failing" => Known::Failed(r.tries as u32),
                            // Handed to its thread when the node stopped: again (the
                            // thread counts it once).
                            "importing" => Known::New,
                            "quarantined" => Known::Quarantined,
                            "erased" => Known::Tombstone,
                            _ => Known::Imported,
                        },
                    },
                    None => Known::New,
                };
                let key = id
                    .clone()
                    .unwrap_or_else(|| sync::synthetic_key(uidvalidity, *uid));
                plan.push((
                    *uid,
                    key,
                    sync::on_header(*size, &known, m.max_bytes, m.import_attempts),
                ));
            }
            // The bodies wanted, in one command.
            let wanted: Vec<u32> = plan
                .iter()
                .filter(|p| p.2 == Action::Fetch)
                .map(|p| p.0)
                .collect();
            let mut bodies = fetch_bodies(s, &wanted).await?;
            let mut settled: Vec<u32> = Vec::new();
            let mut stop = false;
            for (uid, key, action) in plan {
                match action {
                    Action::Skip(why) => {
                        tracing::debug!(mailbox = %m.name, uid, why, "message skipped");
                    }
                    Action::Settle(why) => {
                        tracing::debug!(mailbox = %m.name, uid, why, "message skipped");
                        settled.push(uid);
                    }
                    Action::Quarantine(reason) => {
                        quarantine(m, store, statuses, &key, &reason, None).await?;
                    }
                    Action::Fetch => {
                        // Gone from the folder since its header was read (another client
                        // moved it): nothing to import.
                        let Some(raw) = bodies.remove(&uid) else {
                            tracing::info!(mailbox = %m.name, uid, "message gone before its body was fetched");
                            last = uid;
                            continue;
                        };
                        // A fault while importing one message (a panic) is that message's
                        // failure, counted towards its quarantine, never the fetcher's end.
                        let imported =
                            std::panic::AssertUnwindSafe(importer.import(account, raw.clone()))
                                .catch_unwind()
                                .await
                                .unwrap_or_else(|_| {
                                    Import::Failed(
                                        "a fault in the gateway while importing it".into(),
                                    )
                                });
                        match imported {
                            Import::Done => {
                                set(statuses, &m.name, |st| {
                                    st.imported += 1;
                                    st.last_import = Some(crate::clock::unix_secs());
                                });
                                settled.push(uid);
                            }
                            Import::Unusable(reason) => {
                                quarantine(m, store, statuses, &key, &reason, Some(&raw)).await?;
                            }
                            Import::Later(reason) => {
                                tracing::info!(mailbox = %m.name, uid, reason = %reason, "message left for later");
                                stop = true;
                            }
                            Import::Failed(reason) => {
                                let tries = store
                                    .email_failed(&m.name, &key, &reason)
                                    .await
                                    .map_err(db)?;
                                tracing::warn!(mailbox = %m.name, uid, tries, error = %reason, "message not imported");
                                if sync::after_failure(tries, m.import_attempts) {
                                    quarantine(
                                        m,
                                        store,
                                        statuses,
                                        &key,
                                        &format!("failed to import {tries} times: {reason}"),
                                        Some(&raw),
                                    )
                                    .await?;
                                } else {
                                    stop = true;
                                }
                            }
                        }
                    }
                }
                if stop {
                    // This message is tried again next round, before anything after it.
                    break;
                }
                last = uid;
            }
            after_import(m, s, &settled).await?;
            store
                .set_mail_mark(
                    &m.name,
                    crate::store::MailMark {
                        uidvalidity: uidvalidity as i64,
                        last_uid: last as i64,
                    },
                )
                .await
                .map_err(db)?;
            if stop {
                return Ok(true);
            }
        }
    }
    if matches!(start, Start::Resync) && last == 0 {
        // An empty folder after a change: the new UIDVALIDITY is the mark.
        store
            .set_mail_mark(
                &m.name,
                crate::store::MailMark {
                    uidvalidity: uidvalidity as i64,
                    last_uid: 0,
                },
            )
            .await
            .map_err(db)?;
    }
    Ok(false)
}

async fn quarantine(
    m: &MailboxConfig,
    store: &crate::store::Store,
    statuses: &Statuses,
    key: &str,
    reason: &str,
    raw: Option<&[u8]>,
) -> Result<(), String> {
    tracing::warn!(mailbox = %m.name, message = %key, reason, "message quarantined");
    store
        .quarantine_email(&m.name, key, reason, raw)
        .await
        .map_err(|e| format!("the store: {e}"))?;
    set(statuses, &m.name, |st| st.quarantined += 1);
    Ok(())
}

/// The UID, size and Message-ID of each of `uids` (those gone are missing), in UID
/// order.
async fn fetch_headers(
    s: &mut Session,
    uids: &[u32],
) -> Result<Vec<(u32, u64, Option<String>)>, String> {
    let mut new = Vec::with_capacity(uids.len());
    if uids.is_empty() {
        return Ok(new);
    }
    let mut fetches = timed(
        "FETCH",
        s.uid_fetch(
            uid_set(uids),
            "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
        ),
    )
    .await?;
    while let Some(f) = timed("FETCH", async { fetches.next().await.transpose() }).await? {
        if let Some(uid) = f.uid.filter(|u| uids.binary_search(u).is_ok()) {
            new.push((
                uid,
                f.size.unwrap_or(0) as u64,
                f.header().and_then(header_id),
            ));
        }
    }
    new.sort_by_key(|n| n.0);
    Ok(new)
}

/// The bodies of `uids`, in one command (those gone from the folder are missing).
async fn fetch_bodies(
    s: &mut Session,
    uids: &[u32],
) -> Result<std::collections::HashMap<u32, Vec<u8>>, String> {
    let mut out = std::collections::HashMap::new();
    if uids.is_empty() {
        return Ok(out);
    }
    let set = uid_set(uids);
    let mut fetches = timed("FETCH", s.uid_fetch(set, "(UID BODY.PEEK[])")).await?;
    while let Some(f) = timed("FETCH", async { fetches.next().await.transpose() }).await? {
        if let (Some(uid), Some(body)) = (f.uid, f.body()) {
            if uids.contains(&uid) {
                out.insert(uid, body.to_vec());
            }
        }
    }
    Ok(out)
}

/// `1,2,5` for an IMAP command.
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Applies the mailbox's after-import policy to `uids` (imported, or on record).
async fn after_import(m: &MailboxConfig, s: &mut Session, uids: &[u32]) -> Result<(), String> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    match m.after() {
        AfterImport::Keep => Ok(()),
        AfterImport::Seen => {
            let st = timed("STORE", s.uid_store(set.clone(), "+FLAGS.SILENT (\\Seen)")).await?;
            timed("STORE", drain(Box::pin(st))).await
        }
        AfterImport::Move(folder) => {
            match timed("MOVE", s.uid_mv(set.clone(), &folder)).await {
                // The folder does not exist yet (RFC 3501 TRYCREATE): made once, then moved.
                Err(e) if e.to_ascii_uppercase().contains("TRYCREATE") => {
                    timed("CREATE", s.create(&folder)).await?;
                    timed("MOVE", s.uid_mv(set.clone(), &folder)).await
                }
                r => r,
            }
        }
        AfterImport::Delete => delete(s, &set).await,
    }
}
