//! SIP transports: the only code that touches SIP sockets. UDP (with a large receive
//! buffer), TCP and TLS (framed by Content-Length), and WebSocket connections handed
//! in by the HTTP layer (RFC 7118: one SIP message per WebSocket message).
//!
//! Received bytes are parsed here, on the receiving task, so the core only sees
//! `Result<Message, ParseError>`. Stream connections are registered by `ConnId` and by
//! remote address, so responses and later requests reuse them.
//!
//! Every stream connection is bounded (`StreamLimits`): how many there are in all and
//! per address, how long one may stay silent before its first message, in the middle
//! of a message, or at all, and how many bytes may wait to be written to it (a peer
//! that does not read is closed, not buffered for).

use super::addr::{ConnId, Peer, Transport};
use super::message::{frame_stream, Frame, Framing, Limits, Message, ParseError};
use super::transaction::Transmit;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Notify};

/// A message (or a parse failure) received from a peer.
pub struct Inbound {
    pub parsed: Result<Message, ParseError>,
    pub source: Peer,
}

/// Limits on stream connections (TCP, TLS, WebSocket).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_address: usize,
    /// An accepted connection that has sent no complete message by then is closed.
    pub first_message: Duration,
    /// A message begun and not finished by then: the connection is closed.
    pub partial_message: Duration,
    /// Nothing received for this long: closed.
    pub idle: Duration,
    /// Bytes waiting to be written to one connection; beyond, it is closed.
    pub max_queued_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_connections: 4096,
            max_per_address: 256,
            first_message: Duration::from_secs(30),
            partial_message: Duration::from_secs(10),
            // Longer than a registration (an hour by default): a registered phone's
            // connection is not closed under it, a dead one is reclaimed.
            idle: Duration::from_secs(3660),
            max_queued_bytes: 1 << 20,
        }
    }
}

/// The writing end of a connection's bounded queue.
#[derive(Clone)]
pub struct ConnTx {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    close: Arc<Notify>,
    max: usize,
}

impl ConnTx {
    /// Queues bytes for the peer. When the peer does not read (the queue is full) the
    /// connection is closed instead, and false returned.
    pub fn send(&self, b: Bytes) -> bool {
        let n = b.len();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.max || self.tx.try_send(b).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.close.notify_one();
            return false;
        }
        true
    }
}

/// The reading end: the writer task takes from it; `closed` fires when the connection
/// must end (its queue overflowed).
pub struct ConnRx {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    pub close: Arc<Notify>,
}

impl ConnRx {
    /// The next bytes to write; call `written` once they are.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    pub fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }
}

struct Conn {
    tx: ConnTx,
    transport: Transport,
    addr: SocketAddr,
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooMany,
    TooManyFromAddress,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::TooMany => "connection limit reached ([sip] max_connections)",
            Refused::TooManyFromAddress => {
                "per-address connection limit reached ([sip] max_connections_per_address)"
            }
        })
    }
}

/// Shared handle on every SIP socket.
pub struct Transports {
    udp: Option<Arc<UdpSocket>>,
    conns: Mutex<HashMap<ConnId, Conn>>,
    by_addr: Mutex<HashMap<(Transport, SocketAddr), ConnId>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    next_conn: AtomicU64,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
    pub stream_limits: StreamLimits,
    /// Connections refused or closed by the limits (for /metrics).
    pub refused: AtomicU64,
    /// Messages waiting for an outbound connection being opened.
    pending: Mutex<HashMap<(Transport, SocketAddr), Vec<Bytes>>>,
    tls_clients: Mutex<HashMap<SocketAddr, (Arc<rustls::ClientConfig>, String)>>,
}

/// Messages queued for one connection (beside the byte budget).
const CONN_QUEUE: usize = 1024;

impl Transports {
    pub fn new(inbound: mpsc::Sender<Inbound>) -> Arc<Transports> {
        Arc::new(Transports {
            udp: None,
            conns: Mutex::new(HashMap::new()),
            by_addr: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            inbound,
            limits: Limits::default(),
            stream_limits: StreamLimits::default(),
            refused: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            tls_clients: Mutex::new(HashMap::new()),
        })
    }

    pub fn with_udp(
        inbound: mpsc::Sender<Inbound>,
        udp: Option<Arc<UdpSocket>>,
        stream_limits: StreamLimits,
    ) -> Arc<Transports> {
        let mut t = Arc::try_unwrap(Self::new(inbound)).ok().unwrap();
        t.udp = udp;
        t.stream_limits = stream_limits;
        Arc::new(t)
    }

    pub fn connection_count(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Sends one message. Stream transports use the connection it names, else one to the
    /// same address, else (TCP only) a new outbound connection.
    pub fn send(self: &Arc<Self>, t: Transmit) {
        match t.to.transport {
            Transport::Udp => {
                if let Some(u) = &self.udp {
                    if let Err(e) = u.try_send_to(&t.data, t.to.addr) {
                        if e.kind() == std::io::ErrorKind::WouldBlock {
                            let u = u.clone();
                            tokio::spawn(async move {
                                let _ = u.send_to(&t.data, t.to.addr).await;
                            });
                        } else {
                            tracing::debug!(to = %t.to.addr, error = %e, "UDP send failed");
                        }
                    }
                }
            }
            transport => {
                let id =
                    t.to.conn
                        .filter(|c| {
                            self.conns
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .contains_key(c)
                        })
                        .or_else(|| {
                            self.by_addr
                                .lock()
                                .unwrap()
                                .get(&(transport, t.to.addr))
                                .copied()
                        });
                if let Some(id) = id {
                    if let Some(c) = self
                        .conns
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(&id)
                    {
                        if !c.tx.send(t.data) {
                            self.refused.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(to = %t.to, "closing a connection that does not read (its queue is full)");
                        }
                        return;
                    }
                }
                if matches!(transport, Transport::Tcp | Transport::Tls) {
                    self.connect_and_send(transport, t.to.addr, t.data);
                } else {
                    tracing::warn!(to = %t.to, "no connection to send on");
                }
            }
        }
    }

    /// Opens an outbound TCP or TLS connection, queueing what is sent meanwhile (one
    /// connection per destination, however many messages wait for it).
    fn connect_and_send(self: &Arc<Self>, transport: Transport, addr: SocketAddr, data: Bytes) {
        {
            let mut p = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(q) = p.get_mut(&(transport, addr)) {
                q.push(data);
                return;
            }
            p.insert((transport, addr), vec![data]);
        }
        let me = self.clone();
        tokio::spawn(async move {
            let fail = |why: String| {
                tracing::warn!(%addr, %transport, error = %why, "outbound connection failed");
                me.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&(transport, addr));
            };
            let tcp = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return fail(e.to_string()),
                Err(_) => return fail("connect timed out".into()),
            };
            let _ = tcp.set_nodelay(true);
            let start = |me: &Arc<Self>| {
                let (id, tx, rx) = match me.register(transport, addr) {
                    Ok(x) => x,
                    Err(e) => {
                        fail(e.to_string());
                        return None;
                    }
                };
                for d in me
                    .pending
                    .lock()
                    .unwrap()
                    .remove(&(transport, addr))
                    .unwrap_or_default()
                {
                    tx.send(d);
                }
                Some((id, rx))
            };
            if transport == Transport::Tls {
                let Some((cfg, name)) = me.tls_client_for(addr) else {
                    return fail("no TLS client configuration".into());
                };
                let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.clone()) else {
                    return fail(format!("bad TLS server name {name}"));
                };
                match tokio_rustls::TlsConnector::from(cfg)
                    .connect(server_name, tcp)
                    .await
                {
                    Ok(tls) => {
                        if let Some((id, rx)) = start(&me) {
                            me.run_stream(tls, id, Transport::Tls, addr, rx, false)
                                .await;
                        }
                    }
                    Err(e) => fail(format!("TLS handshake with {name}: {e}")),
                }
            } else if let Some((id, rx)) = start(&me) {
                me.run_stream(tcp, id, Transport::Tcp, addr, rx, false)
                    .await;
            }
        });
    }

    /// TLS client settings and the name to verify for a destination.
    fn tls_client_for(&self, addr: SocketAddr) -> Option<(Arc<rustls::ClientConfig>, String)> {
        let g = self
            .tls_clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get(&addr).cloned()
    }

    /// Declares how to reach a TLS destination: the CA bundle (PEM) to trust and the
    /// server name to verify.
    pub fn add_tls_destination(
        &self,
        addr: SocketAddr,
        server_name: &str,
        ca_pem: &std::path::Path,
    ) -> Result<(), String> {
        let pem = std::fs::read(ca_pem).map_err(|e| format!("{}: {e}", ca_pem.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut &pem[..]) {
            let c = c.map_err(|e| format!("{}: {e}", ca_pem.display()))?;
            let _ = roots.add(c);
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificates", ca_pem.display()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        self.tls_clients
            .lock()
            .unwrap()
            .insert(addr, (Arc::new(cfg), server_name.to_string()));
        Ok(())
    }

    /// Registers a stream connection within the limits; returns its id and both ends
    /// of its write queue.
    pub fn register(
        &self,
        transport: Transport,
        addr: SocketAddr,
    ) -> Result<(ConnId, ConnTx, ConnRx), Refused> {
        let lim = self.stream_limits;
        {
            let conns = self
                .conns
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut per_ip = self
                .per_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if conns.len() >= lim.max_connections {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::TooMany);
            }
            let n = per_ip.entry(addr.ip()).or_default();
            if *n >= lim.max_per_address {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::TooManyFromAddress);
            }
            *n += 1;
        }
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        let tx = ConnTx {
            tx,
            queued: queued.clone(),
            close: close.clone(),
            max: lim.max_queued_bytes,
        };
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                id,
                Conn {
                    tx: tx.clone(),
                    transport,
                    addr,
                },
            );
        self.by_addr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((transport, addr), id);
        Ok((id, tx, ConnRx { rx, queued, close }))
    }

    pub fn unregister(&self, id: ConnId) {
        if let Some(c) = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id)
        {
            let mut by = self
                .by_addr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if by.get(&(c.transport, c.addr)) == Some(&id) {
                by.remove(&(c.transport, c.addr));
            }
            let mut per_ip = self
                .per_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = per_ip.get_mut(&c.addr.ip()) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&c.addr.ip());
                }
            }
        }
    }

    /// Delivers a WebSocket message (one SIP message) from connection `id`.
    pub async fn deliver_ws(&self, id: ConnId, addr: SocketAddr, data: Bytes) {
        let source = Peer {
            transport: Transport::Ws,
            addr,
            conn: Some(id),
        };
        let parsed = Message::parse_with(data, Framing::Datagram, &self.limits);
        let _ = self.inbound.send(Inbound { parsed, source }).await;
    }

    /// Reads and writes one TCP or TLS connection until it closes, it breaks a limit
    /// (silent too long, a message left unfinished, a write queue it does not drain),
    /// or it cannot be framed. `accepted`: the peer connected to us (it must speak first).
    pub async fn run_stream<S>(
        self: &Arc<Self>,
        stream: S,
        id: ConnId,
        transport: Transport,
        addr: SocketAddr,
        mut rx: ConnRx,
        accepted: bool,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let close = rx.close.clone();
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
                rx.written(b.len());
            }
        });
        let source = Peer {
            transport,
            addr,
            conn: Some(id),
        };
        let lim = self.stream_limits;
        let opened = tokio::time::Instant::now();
        let mut spoke = !accepted;
        let mut last_read = opened;
        let mut partial_since = opened;
        let mut buf = BytesMut::with_capacity(8192);
        'outer: loop {
            let deadline = if !spoke {
                opened + lim.first_message
            } else if !buf.is_empty() {
                partial_since + lim.partial_message
            } else {
                last_read + lim.idle
            };
            let was_empty = buf.is_empty();
            tokio::select! {
                r = tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)) => match r {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {
                        last_read = tokio::time::Instant::now();
                        if was_empty {
                            partial_since = last_read;
                        }
                    }
                    Err(_) => {
                        let why = if !spoke { "no message" } else if !buf.is_empty() { "an unfinished message" } else { "idle" };
                        tracing::info!(%addr, %transport, why, "closing a silent connection");
                        self.refused.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                },
                _ = close.notified() => {
                    tracing::info!(%addr, %transport, "closing a connection that does not read its answers");
                    break;
                }
            }
            loop {
                match frame_stream(&buf, &self.limits) {
                    Frame::Incomplete => break,
                    Frame::Keepalive { n, ping } => {
                        let _ = buf.split_to(n);
                        if ping {
                            // RFC 5626 4.4.1: answer a double-CRLF ping with one CRLF.
                            if let Some(c) = self
                                .conns
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .get(&id)
                            {
                                c.tx.send(Bytes::from_static(b"\r\n"));
                            }
                        }
                    }
                    Frame::Message { skip, len } => {
                        spoke = true;
                        let frame = buf.split_to(len).freeze().slice(skip..);
                        partial_since = tokio::time::Instant::now();
                        let parsed = Message::parse_with(frame, Framing::Stream, &self.limits);
                        if self.inbound.send(Inbound { parsed, source }).await.is_err() {
                            break 'outer;
                        }
                    }
                    Frame::Invalid(why) => {
                        tracing::info!(%addr, why, "closing stream that cannot be framed");
                        // Answer what can be answered, then close.
                        let parsed = Message::parse_with(
                            buf.split().freeze(),
                            Framing::Datagram,
                            &self.limits,
                        )
                        .and_then(|_| {
                            Err(ParseError {
                                status: 400,
                                reason: why,
                                partial: None,
                            })
                        });
                        let _ = self.inbound.send(Inbound { parsed, source }).await;
                        // Let the core's 400 reach the writer before the close.
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        break 'outer;
                    }
                }
            }
        }
        // Dropping the last sender lets the writer flush what is queued, then end.
        self.unregister(id);
        if tokio::time::timeout(std::time::Duration::from_secs(2), writer)
            .await
            .is_err()
        {
            tracing::debug!(%addr, "writer did not drain in time");
        }
    }
}

/// Binds the UDP socket with a large receive buffer.
pub fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(recv_buffer);
    let _ = s.set_send_buffer_size(recv_buffer);
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// Receives datagrams forever, parsing each.
pub async fn run_udp(sock: Arc<UdpSocket>, inbound: mpsc::Sender<Inbound>) {
    let limits = Limits::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable surfaces here on some systems; keep going.
                tracing::trace!(error = %e, "UDP receive error");
                continue;
            }
        };
        let data = &buf[..n];
        // RFC 5626 keepalive (CRLF) on UDP: ignore.
        if data.iter().all(|&b| b == b'\r' || b == b'\n') {
            continue;
        }
        let parsed = Message::parse_with(Bytes::copy_from_slice(data), Framing::Datagram, &limits);
        if inbound
            .send(Inbound {
                parsed,
                source: Peer::udp(from),
            })
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Waits after an accept error (out of descriptors, most often) instead of spinning:
/// 10 ms doubling to a second, reset by the next success.
struct AcceptBackoff(Duration);

impl AcceptBackoff {
    async fn failed(&mut self, transport: Transport, e: std::io::Error) {
        if self.0.is_zero() {
            tracing::warn!(%transport, error = %e, "cannot accept connections (descriptor limit?); backing off");
        }
        self.0 = (self.0 * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::time::sleep(self.0).await;
    }
}

/// Accepts TCP connections forever.
pub async fn run_tcp(listener: TcpListener, transports: Arc<Transports>) {
    let mut backoff = AcceptBackoff(Duration::ZERO);
    loop {
        let (s, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                backoff.failed(Transport::Tcp, e).await;
                continue;
            }
        };
        backoff.0 = Duration::ZERO;
        let (id, _, rx) = match transports.register(Transport::Tcp, addr) {
            Ok(x) => x,
            Err(why) => {
                tracing::debug!(%addr, %why, "TCP connection refused");
                continue; // dropped: closed at once
            }
        };
        let _ = s.set_nodelay(true);
        let t = transports.clone();
        tokio::spawn(async move {
            t.run_stream(s, id, Transport::Tcp, addr, rx, true).await;
        });
    }
}

/// Accepts TLS connections forever.
pub async fn run_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    transports: Arc<Transports>,
) {
    let mut backoff = AcceptBackoff(Duration::ZERO);
    loop {
        let (s, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                backoff.failed(Transport::Tls, e).await;
                continue;
            }
        };
        backoff.0 = Duration::ZERO;
        // Counted from the accept, so handshakes in progress are bounded too.
        let (id, _, rx) = match transports.register(Transport::Tls, addr) {
            Ok(x) => x,
            Err(why) => {
                tracing::debug!(%addr, %why, "TLS connection refused");
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let t = transports.clone();
        let acc = acceptor.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(std::time::Duration::from_secs(10), acc.accept(s)).await {
                Ok(Ok(tls)) => t.run_stream(tls, id, Transport::Tls, addr, rx, true).await,
                Ok(Err(e)) => {
                    t.unregister(id);
                    tracing::debug!(%addr, error = %e, "TLS handshake failed")
                }
                Err(_) => {
                    t.unregister(id);
                    tracing::debug!(%addr, "TLS handshake timed out")
                }
            }
        });
    }
}

/// Loads the TLS certificate and key, generating a self-signed pair on first start.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
    names: Vec<String>,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    Ok(tokio_rustls::TlsAcceptor::from(tls_server_config(
        cert, key, names,
    )?))
}

/// The rustls server settings for a certificate and key (made self-signed for `names`
/// when missing): SIP over TLS and the HTTPS listener share it.
pub fn tls_server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    names: Vec<String>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    if !cert.exists() || !key.exists() {
        if let Some(d) = cert.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
        std::fs::write(cert, ck.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
        write_private(key, ck.signing_key.serialize_pem().as_bytes())
            .map_err(|e| format!("{}: {e}", key.display()))?;
        tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    }
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).map_err(|e| format!("{}: {e}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_der = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).map_err(|e| format!("{}: {e}", key.display()))?,
    ))
    .map_err(|e| format!("{}: {e}", key.display()))?
    .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(data)
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const OPTIONS: &str = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5;branch=z9hG4bKt\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: t\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn setup(
        lim: StreamLimits,
    ) -> (
        Arc<Transports>,
        mpsc::Receiver<Inbound>,
        tokio::io::DuplexStream,
        ConnId,
        SocketAddr,
    ) {
        let (in_tx, in_rx) = mpsc::channel(16);
        let t = Transports::with_udp(in_tx, None, lim);
        let (client, server) = tokio::io::duplex(4096);
        let addr: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let (id, _, rx) = t.register(Transport::Tcp, addr).unwrap();
        let t2 = t.clone();
        tokio::spawn(async move {
            t2.run_stream(server, id, Transport::Tcp, addr, rx, true)
                .await
        });
        (t, in_rx, client, id, addr)
    }

    async fn closed_after(client: &mut tokio::io::DuplexStream) -> Duration {
        let t0 = tokio::time::Instant::now();
        let mut b = [0u8; 256];
        loop {
            match client.read(&mut b).await {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => {}
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_speaks_is_closed() {
        let (t, _in, mut client, _, _) = setup(StreamLimits::default());
        let took = closed_after(&mut client).await;
        assert_eq!(took.as_secs(), 30);
        tokio::task::yield_now().await;
        assert_eq!(t.connection_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_message_and_then_silence_are_closed() {
        let (_t, mut inbound, mut client, _, _) = setup(StreamLimits::default());
        client.write_all(OPTIONS.as_bytes()).await.unwrap();
        assert!(inbound.recv().await.unwrap().parsed.is_ok());
        // Half a message, then nothing (slowloris): closed 10 s later.
        client.write_all(&OPTIONS.as_bytes()[..40]).await.unwrap();
        assert_eq!(closed_after(&mut client).await.as_secs(), 10);
        // A complete message and silence: closed when idle.
        let lim = StreamLimits {
            idle: Duration::from_secs(100),
            ..Default::default()
        };
        let (_t, mut inbound, mut client, _, _) = setup(lim);
        client.write_all(OPTIONS.as_bytes()).await.unwrap();
        assert!(inbound.recv().await.unwrap().parsed.is_ok());
        assert_eq!(closed_after(&mut client).await.as_secs(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_does_not_read_is_closed_at_the_queue_bound() {
        let lim = StreamLimits {
            max_queued_bytes: 64 << 10,
            ..Default::default()
        };
        let (t, mut inbound, mut client, id, addr) = setup(lim);
        client.write_all(OPTIONS.as_bytes()).await.unwrap();
        inbound.recv().await.unwrap();
        let to = Peer {
            transport: Transport::Tcp,
            addr,
            conn: Some(id),
        };
        // 1 MB of answers to a peer that reads none: the queue stops at its bound and
        // the connection is closed.
        for _ in 0..256 {
            t.send(Transmit {
                to,
                data: Bytes::from(vec![b'x'; 4096]),
            });
            tokio::task::yield_now().await;
        }
        assert_eq!(t.refused.load(Ordering::Relaxed), 1);
        let mut got = 0usize;
        let mut b = vec![0u8; 65536];
        while let Ok(n) = client.read(&mut b).await {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert!(got <= (64 << 10) + 4096 * 2, "{got}");
        assert_eq!(t.connection_count(), 0);
    }

    #[test]
    fn connections_are_capped_in_all_and_per_address() {
        let (in_tx, _in_rx) = mpsc::channel(1);
        let t = Transports::with_udp(
            in_tx,
            None,
            StreamLimits {
                max_connections: 3,
                max_per_address: 2,
                ..Default::default()
            },
        );
        let a = |i: u8, p: u16| SocketAddr::from(([192, 0, 2, i], p));
        let one = t.register(Transport::Tcp, a(1, 1)).unwrap();
        t.register(Transport::Tcp, a(1, 2)).unwrap();
        assert_eq!(
            t.register(Transport::Tcp, a(1, 3)).err(),
            Some(Refused::TooManyFromAddress)
        );
        t.register(Transport::Ws, a(2, 1)).unwrap();
        assert_eq!(
            t.register(Transport::Tcp, a(3, 1)).err(),
            Some(Refused::TooMany)
        );
        t.unregister(one.0);
        t.register(Transport::Tcp, a(1, 3)).unwrap();
        assert_eq!(t.refused.load(Ordering::Relaxed), 2);
    }
}
