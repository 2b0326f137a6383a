//! SIP transports: the only code that touches SIP sockets. UDP (with a large receive
//! buffer), TCP and TLS (framed by Content-Length), and WebSocket connections handed
//! in by the HTTP layer (RFC 7118: one SIP message per WebSocket message).
//!
//! Received bytes are parsed here, on the receiving task, so the core only sees
//! `Result<Message, ParseError>`. Stream connections are registered by `ConnId` and by
//! remote address, so responses and later requests reuse them.

use super::addr::{ConnId, Peer, Transport};
use super::message::{frame_stream, Frame, Framing, Limits, Message, ParseError};
use super::transaction::Transmit;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// A message (or a parse failure) received from a peer.
pub struct Inbound {
    pub parsed: Result<Message, ParseError>,
    pub source: Peer,
}

struct Conn {
    tx: mpsc::UnboundedSender<Bytes>,
    transport: Transport,
    addr: SocketAddr,
}

/// Shared handle on every SIP socket.
pub struct Transports {
    udp: Option<Arc<UdpSocket>>,
    conns: Mutex<HashMap<ConnId, Conn>>,
    by_addr: Mutex<HashMap<(Transport, SocketAddr), ConnId>>,
    next_conn: AtomicU64,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
    /// Messages waiting for an outbound connection being opened.
    pending: Mutex<HashMap<(Transport, SocketAddr), Vec<Bytes>>>,
    tls_clients: Mutex<HashMap<SocketAddr, (Arc<rustls::ClientConfig>, String)>>,
}

impl Transports {
    pub fn new(inbound: mpsc::Sender<Inbound>) -> Arc<Transports> {
        Arc::new(Transports {
            udp: None,
            conns: Mutex::new(HashMap::new()),
            by_addr: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            inbound,
            limits: Limits::default(),
            pending: Mutex::new(HashMap::new()),
            tls_clients: Mutex::new(HashMap::new()),
        })
    }

    pub fn with_udp(
        inbound: mpsc::Sender<Inbound>,
        udp: Option<Arc<UdpSocket>>,
    ) -> Arc<Transports> {
        let mut t = Arc::try_unwrap(Self::new(inbound)).ok().unwrap();
        t.udp = udp;
        Arc::new(t)
    }

    pub fn connection_count(&self) -> usize {
        self.conns.lock().unwrap().len()
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
                        .filter(|c| self.conns.lock().unwrap().contains_key(c))
                        .or_else(|| {
                            self.by_addr
                                .lock()
                                .unwrap()
                                .get(&(transport, t.to.addr))
                                .copied()
                        });
                if let Some(id) = id {
                    if let Some(c) = self.conns.lock().unwrap().get(&id) {
                        let _ = c.tx.send(t.data);
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
            let mut p = self.pending.lock().unwrap();
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
                me.pending.lock().unwrap().remove(&(transport, addr));
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
                let (id, tx, rx) = me.register(transport, addr);
                for d in me
                    .pending
                    .lock()
                    .unwrap()
                    .remove(&(transport, addr))
                    .unwrap_or_default()
                {
                    let _ = tx.send(d);
                }
                (id, rx)
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
                        let (id, rx) = start(&me);
                        me.run_stream(tls, id, Transport::Tls, addr, rx).await;
                    }
                    Err(e) => fail(format!("TLS handshake with {name}: {e}")),
                }
            } else {
                let (id, rx) = start(&me);
                me.run_stream(tcp, id, Transport::Tcp, addr, rx).await;
            }
        });
    }

    /// TLS client settings and the name to verify for a destination.
    fn tls_client_for(&self, addr: SocketAddr) -> Option<(Arc<rustls::ClientConfig>, String)> {
        let g = self.tls_clients.lock().unwrap();
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

    /// Registers a stream connection; returns its id and the sender for writes.
    pub fn register(
        &self,
        transport: Transport,
        addr: SocketAddr,
    ) -> (
        ConnId,
        mpsc::UnboundedSender<Bytes>,
        mpsc::UnboundedReceiver<Bytes>,
    ) {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        self.conns.lock().unwrap().insert(
            id,
            Conn {
                tx: tx.clone(),
                transport,
                addr,
            },
        );
        self.by_addr.lock().unwrap().insert((transport, addr), id);
        (id, tx, rx)
    }

    pub fn unregister(&self, id: ConnId) {
        if let Some(c) = self.conns.lock().unwrap().remove(&id) {
            let mut by = self.by_addr.lock().unwrap();
            if by.get(&(c.transport, c.addr)) == Some(&id) {
                by.remove(&(c.transport, c.addr));
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

    /// Reads and writes one TCP or TLS connection until it closes.
    pub async fn run_stream<S>(
        self: &Arc<Self>,
        stream: S,
        id: ConnId,
        transport: Transport,
        addr: SocketAddr,
        mut rx: mpsc::UnboundedReceiver<Bytes>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let source = Peer {
            transport,
            addr,
            conn: Some(id),
        };
        let mut buf = BytesMut::with_capacity(8192);
        'outer: loop {
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            loop {
                match frame_stream(&buf, &self.limits) {
                    Frame::Incomplete => break,
                    Frame::Keepalive { n, ping } => {
                        let _ = buf.split_to(n);
                        if ping {
                            // RFC 5626 4.4.1: answer a double-CRLF ping with one CRLF.
                            if let Some(c) = self.conns.lock().unwrap().get(&id) {
                                let _ = c.tx.send(Bytes::from_static(b"\r\n"));
                            }
                        }
                    }
                    Frame::Message { skip, len } => {
                        let frame = buf.split_to(len).freeze().slice(skip..);
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

/// Accepts TCP connections forever.
pub async fn run_tcp(listener: TcpListener, transports: Arc<Transports>) {
    loop {
        let Ok((s, addr)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let t = transports.clone();
        tokio::spawn(async move {
            let (id, _, rx) = t.register(Transport::Tcp, addr);
            t.run_stream(s, id, Transport::Tcp, addr, rx).await;
        });
    }
}

/// Accepts TLS connections forever.
pub async fn run_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    transports: Arc<Transports>,
) {
    loop {
        let Ok((s, addr)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let t = transports.clone();
        let acc = acceptor.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(std::time::Duration::from_secs(10), acc.accept(s)).await {
                Ok(Ok(tls)) => {
                    let (id, _, rx) = t.register(Transport::Tls, addr);
                    t.run_stream(tls, id, Transport::Tls, addr, rx).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
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
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
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
