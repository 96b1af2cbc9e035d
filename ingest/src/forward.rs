//! The Fluentd forward protocol v1 server (Fluentd `out_forward`, Fluent Bit
//! `forward`, the fluent-logger libraries).
//!
//! [`ForwardServer::start`] listens on TCP and runs one task per connection.
//! A connection reads a stream of msgpack messages ([`frame`]), in any of the
//! four carrier modes, normalizes their entries ([`normalize_entry`]) and
//! hands them to the [`EventSink`]; a `chunk` option is answered with
//! `{"ack": chunk}` only once the sink says the events are durable. While the
//! sink is overloaded the connection stops reading and retries with back-off,
//! so the sender is slowed, never answered falsely. With a shared key, the
//! connection starts with the HELO / PING / PONG handshake ([`handshake`]).
//! A client that breaks the protocol is disconnected with the reason logged;
//! what it sent in good messages before is kept. With [`tls`] configured,
//! every connection is TLS (rustls) and the protocol runs inside it. Every
//! limit is in [`ForwardLimits`]; counters are in [`ForwardMetrics`].

pub mod frame;
pub mod handshake;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use vigil_schema::{Event, EventId, EventSink, SinkErrorKind};

use crate::container::{self, RecordContext};
use crate::k8s_audit;
use frame::{Entry, Frame, FrameError, FrameLimits, Scanner};
pub use handshake::ForwardAuth;

/// Why something sent over the forward protocol was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not msgpack, or not a forward message.
    Malformed,
    /// A message or its decompressed entries passed the size limit.
    TooLarge,
    /// A message had more entries than the limit.
    TooManyEntries,
    /// One entry was not `[time, record]` or its record could not be normalized.
    BadEntry,
    /// Metrics, traces and other non-log signals (Fluent Bit `fluent_signal`).
    UnsupportedSignal,
    /// A message was half-sent and the rest did not arrive in time.
    Timeout,
    /// The client failed the shared-key handshake.
    Authentication,
    /// The connection limit was reached.
    TooManyConnections,
    /// The TLS handshake failed (not TLS, an untrusted client certificate, ...).
    Tls,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Malformed,
        Reason::TooLarge,
        Reason::TooManyEntries,
        Reason::BadEntry,
        Reason::UnsupportedSignal,
        Reason::Timeout,
        Reason::Authentication,
        Reason::TooManyConnections,
        Reason::Tls,
    ];

    /// The label value in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::TooManyEntries => "too_many_entries",
            Reason::BadEntry => "bad_entry",
            Reason::UnsupportedSignal => "unsupported_signal",
            Reason::Timeout => "timeout",
            Reason::Authentication => "authentication",
            Reason::TooManyConnections => "too_many_connections",
            Reason::Tls => "tls",
        }
    }
}

/// Counters of the forward source, for `/metrics`.
#[derive(Debug, Default)]
pub struct ForwardMetrics {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    pub messages: AtomicU64,
    /// Entries received (accepted + rejected entries).
    pub received: AtomicU64,
    /// Entries made durable.
    pub accepted: AtomicU64,
    pub acks: AtomicU64,
    /// Times a batch was retried because storage was overloaded.
    pub overloaded_retries: AtomicU64,
    /// Refusals by [`Reason`]: entries for `BadEntry` and
    /// `UnsupportedSignal`, messages or connections for the others.
    rejected: [AtomicU64; Reason::ALL.len()],
}

impl ForwardMetrics {
    fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    fn reject(&self, reason: Reason, amount: u64) {
        Self::add(&self.rejected[reason as usize], amount);
    }

    pub fn rejected(&self, reason: Reason) -> u64 {
        self.rejected[reason as usize].load(Ordering::Relaxed)
    }
}

/// The forward server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardLimits {
    /// Largest message accepted, as sent.
    pub max_message_bytes: usize,
    /// Largest packed entries accepted once decompressed.
    pub max_decompressed_bytes: usize,
    /// Most entries in one message.
    pub max_entries: usize,
    /// How long the rest of a half-sent message may take.
    pub message_timeout: Duration,
    /// How long a connection may stay silent between messages.
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for ForwardLimits {
    fn default() -> ForwardLimits {
        ForwardLimits {
            max_message_bytes: 64 * 1024 * 1024,
            max_decompressed_bytes: 256 * 1024 * 1024,
            max_entries: 1_000_000,
            message_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_connections: 1024,
        }
    }
}

/// Everything a forward server needs besides its listener and sink.
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    pub limits: ForwardLimits,
    /// The shared-key handshake, when configured.
    pub auth: Option<ForwardAuth>,
    /// TLS, when configured ([`tls::server_config`]): every connection must then be TLS.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub audit_context: k8s_audit::Context,
}

/// Events of one connection submitted together at most.
const MAX_BATCH_EVENTS: usize = 10_000;
/// Back-off while storage is overloaded: from the first to the last delay, doubling.
const OVERLOAD_FIRST_DELAY: Duration = Duration::from_millis(20);
const OVERLOAD_MAX_DELAY: Duration = Duration::from_secs(2);
/// Bytes read from a socket at a time.
const READ_BYTES: usize = 64 * 1024;

/// A running forward server.
pub struct ForwardServer {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ForwardServer {
    /// Starts serving on a bound listener.
    pub fn start(
        listener: TcpListener,
        options: ForwardOptions,
        sink: Arc<dyn EventSink>,
        metrics: Arc<ForwardMetrics>,
    ) -> std::io::Result<ForwardServer> {
        let local_addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let shared = Arc::new(Shared { options, sink, metrics });
        let task = tokio::spawn(accept_loop(listener, shared, stop));
        Ok(ForwardServer { local_addr, shutdown, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets every connection finish the messages it has
    /// read (their events made durable and acknowledged), and waits for them
    /// up to `grace`; connections still busy then are dropped unacknowledged.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!("forward connections did not finish in time; closing them unacknowledged");
            task.abort();
        }
    }
}

struct Shared {
    options: ForwardOptions,
    sink: Arc<dyn EventSink>,
    metrics: Arc<ForwardMetrics>,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(shared.options.limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a forward connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.metrics.reject(Reason::TooManyConnections, 1);
            tracing::warn!(%peer, limit = shared.options.limits.max_connections, "too many forward connections; closing the new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        ForwardMetrics::add(&shared.metrics.connections, 1);
        let (shared, stop) = (shared.clone(), stop.clone());
        connections.spawn(async move {
            match shared.options.tls.clone() {
                None => Connection::new(stream, peer, shared, stop).run().await,
                Some(config) => {
                    let mut stopping = stop.clone();
                    let accepted = tokio::select! {
                        accepted = tls_accept(config, stream, peer, &shared) => accepted,
                        _ = stopping.wait_for(|stopping| *stopping) => None,
                    };
                    if let Some(stream) = accepted {
                        Connection::new(stream, peer, shared, stop).run().await;
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::debug!(open = connections.len(), "forward server stops accepting");
    while connections.join_next().await.is_some() {}
}

/// Runs the server side of a TLS handshake, within the message timeout;
/// `None` (after logging why) when it fails.
async fn tls_accept(
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let timeout = shared.options.limits.message_timeout;
    let error = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => return Some(stream),
        // Connected and closed without a word: a TCP health check, not a client.
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, "forward connection closed before a TLS handshake");
            return None;
        }
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("not completed within {} ms", timeout.as_millis()),
    };
    shared.metrics.reject(Reason::Tls, 1);
    tracing::warn!(%peer, %error, "forward TLS handshake failed; connection closed");
    None
}

/// What became of reading the socket.
enum Read {
    Bytes,
    Closed,
    Stop,
}

struct Connection<S> {
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    buffer: Vec<u8>,
    scanner: Scanner,
}

/// The events and acks of the messages read so far, and why the connection
/// must close, if it must.
#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    acks: Vec<String>,
    fatal: Option<FrameError>,
    /// The batch is full but complete messages remain in the buffer.
    more: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    fn new(stream: S, peer: SocketAddr, shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Connection<S> {
        Connection { stream, peer, shared, stop, buffer: Vec::new(), scanner: Scanner::default() }
    }

    async fn run(mut self) {
        if let Some(auth) = self.shared.options.auth.clone()
            && !self.authenticate(&auth).await
        {
            return;
        }
        loop {
            let pending = self.take_messages();
            if !pending.events.is_empty() && !self.submit(pending.events).await {
                return;
            }
            for chunk in pending.acks {
                if let Err(error) = self.send(&ack(&chunk)).await {
                    tracing::debug!(peer = %self.peer, %error, "cannot send a forward ack");
                    return;
                }
                ForwardMetrics::add(&self.shared.metrics.acks, 1);
            }
            if let Some(error) = pending.fatal {
                self.shared.metrics.reject(error.reason, 1);
                tracing::warn!(peer = %self.peer, reason = error.reason.name(), error = %error.message, "forward client broke the protocol; closing the connection");
                return;
            }
            if pending.more {
                continue;
            }
            match self.read().await {
                Read::Bytes => {}
                Read::Closed | Read::Stop => return,
            }
        }
    }

    /// Reads more bytes; refuses a connection that goes silent in the middle
    /// of a message for longer than the message timeout.
    async fn read(&mut self) -> Read {
        let limits = self.shared.options.limits;
        let half_sent = !self.buffer.is_empty();
        let timeout = if half_sent { limits.message_timeout } else { limits.idle_timeout };
        self.buffer.reserve(READ_BYTES);
        let read = tokio::select! {
            read = tokio::time::timeout(timeout, self.stream.read_buf(&mut self.buffer)) => read,
            _ = self.stop.wait_for(|stopping| *stopping) => {
                if half_sent {
                    tracing::info!(peer = %self.peer, "stopping; a half-sent forward message is dropped unacknowledged");
                }
                return Read::Stop;
            }
        };
        match read {
            Ok(Ok(0)) => {
                if half_sent {
                    self.shared.metrics.reject(Reason::Malformed, 1);
                    tracing::warn!(peer = %self.peer, bytes = self.buffer.len(), "forward connection closed in the middle of a message; the partial message is dropped");
                }
                Read::Closed
            }
            Ok(Ok(count)) => {
                ForwardMetrics::add(&self.shared.metrics.bytes, count as u64);
                Read::Bytes
            }
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "forward connection failed");
                Read::Closed
            }
            Err(_) if half_sent => {
                self.shared.metrics.reject(Reason::Timeout, 1);
                tracing::warn!(peer = %self.peer, bytes = self.buffer.len(), timeout_ms = timeout.as_millis() as u64, "forward message not completed in time; closing the connection");
                Read::Closed
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "idle forward connection closed");
                Read::Closed
            }
        }
    }

    /// Decodes every complete message in the buffer (up to a batch's worth).
    fn take_messages(&mut self) -> Pending {
        let limits = self.shared.options.limits;
        let frame_limits = FrameLimits {
            max_decompressed_bytes: limits.max_decompressed_bytes,
            max_entries: limits.max_entries,
        };
        let mut pending = Pending::default();
        let mut consumed = 0;
        let now = Utc::now();
        loop {
            let rest = &self.buffer[consumed..];
            if rest.is_empty() {
                break;
            }
            if pending.events.len() >= MAX_BATCH_EVENTS {
                pending.more = true;
                break;
            }
            let length = match self.scanner.scan(rest, limits.max_message_bytes) {
                Ok(Some(length)) => length,
                Ok(None) => break,
                Err(error) => {
                    pending.fatal = Some(error);
                    break;
                }
            };
            let bytes = &self.buffer[consumed..consumed + length];
            consumed += length;
            ForwardMetrics::add(&self.shared.metrics.messages, 1);
            let decoded =
                frame::decode_value(bytes).and_then(|value| frame::decode_frame(value, frame_limits, now));
            match decoded {
                Ok(None) => {}
                Ok(Some(frame)) => {
                    let broken = self.collect(frame, &mut pending);
                    if let Some(error) = broken {
                        pending.fatal = Some(error);
                        break;
                    }
                }
                Err(error) => {
                    pending.fatal = Some(error);
                    break;
                }
            }
        }
        self.buffer.drain(..consumed);
        pending
    }

    /// Normalizes a frame's entries into the pending batch; answers the
    /// frame's protocol break, if it has one (its ack is then withheld).
    fn collect(&mut self, frame: Frame, pending: &mut Pending) -> Option<FrameError> {
        let metrics = &self.shared.metrics;
        let ingested = Utc::now();
        let received = frame.entries.len() + frame.rejected.len();
        ForwardMetrics::add(&metrics.received, received as u64);
        for (reason, message) in &frame.rejected {
            metrics.reject(*reason, 1);
            tracing::debug!(peer = %self.peer, tag = %frame.tag, reason = reason.name(), error = %message, "forward entry refused");
        }
        if !frame.rejected.is_empty() {
            let (reason, message) = &frame.rejected[0];
            tracing::warn!(peer = %self.peer, tag = %frame.tag, refused = frame.rejected.len(), reason = reason.name(), first = %message, "forward entries refused; the others are kept");
        }
        let ids = self.shared.sink.ids();
        for entry in frame.entries {
            match normalize_entry(ids.next(), ingested, &frame.tag, entry, &self.shared.options.audit_context)
            {
                Ok(event) => pending.events.push(event),
                Err(message) => {
                    metrics.reject(Reason::BadEntry, 1);
                    tracing::warn!(peer = %self.peer, tag = %frame.tag, error = %message, "forward record not normalized; refused");
                }
            }
        }
        match frame.broken {
            Some(error) => Some(error),
            None => {
                pending.acks.extend(frame.chunk);
                None
            }
        }
    }

    /// Hands a batch to the sink, retrying with back-off (and not reading
    /// the socket meanwhile) while storage is overloaded. False when the
    /// events could not be kept and the connection must close unacknowledged.
    async fn submit(&mut self, events: Vec<Event>) -> bool {
        let count = events.len() as u64;
        let events = Arc::new(events);
        let mut delay = OVERLOAD_FIRST_DELAY;
        loop {
            let error = match self.shared.sink.submit(Arc::clone(&events)).await {
                Ok(_) => {
                    ForwardMetrics::add(&self.shared.metrics.accepted, count);
                    return true;
                }
                Err(error) => error,
            };
            match error.kind() {
                SinkErrorKind::Overloaded => {
                    ForwardMetrics::add(&self.shared.metrics.overloaded_retries, 1);
                    tracing::debug!(peer = %self.peer, delay_ms = delay.as_millis() as u64, "storage overloaded; forward batch waits");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = self.stop.wait_for(|stopping| *stopping) => {
                            tracing::info!(peer = %self.peer, events = count, "stopping while storage is overloaded; the batch is not acknowledged and the sender will resend it");
                            return false;
                        }
                    }
                    delay = (delay * 2).min(OVERLOAD_MAX_DELAY);
                }
                SinkErrorKind::ShuttingDown => {
                    tracing::info!(peer = %self.peer, events = count, "storage is stopping; the forward batch is not acknowledged");
                    return false;
                }
                SinkErrorKind::Storage => {
                    tracing::error!(peer = %self.peer, events = count, %error, "cannot store a forward batch; closing the connection unacknowledged so the sender resends it");
                    return false;
                }
            }
        }
    }

    async fn send(&mut self, value: &rmpv::Value) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, value).map_err(std::io::Error::other)?;
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await
    }

    /// Runs the shared-key handshake; false (after logging why) when the
    /// client is refused.
    async fn authenticate(&mut self, auth: &ForwardAuth) -> bool {
        let handshake = handshake::Handshake::new(auth);
        if let Err(error) = self.send(&handshake.helo()).await {
            tracing::debug!(peer = %self.peer, %error, "cannot send HELO");
            return false;
        }
        let limits = self.shared.options.limits;
        let ping = loop {
            match self.scanner.scan(&self.buffer, limits.max_message_bytes.min(64 * 1024)) {
                Ok(Some(length)) => {
                    let decoded = frame::decode_value(&self.buffer[..length]);
                    self.buffer.drain(..length);
                    match decoded {
                        Ok(value) => break value,
                        Err(error) => break rmpv::Value::from(error.message),
                    }
                }
                Ok(None) => {}
                Err(error) => break rmpv::Value::from(error.message),
            }
            // The handshake must complete within the message timeout.
            let read = tokio::select! {
                read = tokio::time::timeout(limits.message_timeout, self.stream.read_buf(&mut self.buffer)) => read,
                _ = self.stop.wait_for(|stopping| *stopping) => return false,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                    self.shared.metrics.reject(Reason::Authentication, 1);
                    tracing::error!(peer = %self.peer, "forward client did not complete the shared-key handshake; disconnected");
                    return false;
                }
                Ok(Ok(count)) => ForwardMetrics::add(&self.shared.metrics.bytes, count as u64),
            }
        };
        let (pong, outcome) = handshake.answer(auth, &ping);
        let _ = self.send(&pong).await;
        match outcome {
            Ok(client_hostname) => {
                tracing::debug!(peer = %self.peer, client = %client_hostname, "forward client authenticated");
                true
            }
            Err(reason) => {
                self.shared.metrics.reject(Reason::Authentication, 1);
                tracing::error!(peer = %self.peer, %reason, "forward client failed authentication; disconnected (its events are not kept)");
                false
            }
        }
    }
}

fn ack(chunk: &str) -> rmpv::Value {
    rmpv::Value::Map(vec![(rmpv::Value::from("ack"), rmpv::Value::from(chunk))])
}

/// Normalizes one forward entry through the shared record normalizer
/// (`container::normalize_record`): Kubernetes audit Events and Falco
/// alerts go to their own normalizers, records with a `kubernetes` map
/// become container logs, anything else keeps the tag as its dataset. The
/// record's own time wins over the entry's; the limits on one record apply.
pub fn normalize_entry(
    id: EventId,
    ingested: DateTime<Utc>,
    tag: &str,
    entry: Entry,
    audit_context: &k8s_audit::Context,
) -> Result<Event, String> {
    audit_context.limits.check(&entry.record)?;
    let context = RecordContext { dataset: Some(tag), time: Some(entry.time), audit: Some(audit_context) };
    container::normalize_record(id, ingested, entry.record, &context).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Notify;
    use vigil_schema::{BoxFuture, EventIdGenerator, Receipt, SinkError, fields};

    use super::*;

    /// Refuses the first `overloaded` submits, then holds each submit until
    /// `release` is notified.
    struct SlowSink {
        ids: EventIdGenerator,
        overloaded: Mutex<usize>,
        attempts: AtomicU64,
        release: Arc<Notify>,
        stored: Arc<Mutex<Vec<Event>>>,
    }

    impl EventSink for SlowSink {
        fn ids(&self) -> &EventIdGenerator {
            &self.ids
        }

        fn submit(&self, batch: Arc<Vec<Event>>) -> BoxFuture<'static, Result<Receipt, SinkError>> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let mut overloaded = self.overloaded.lock().unwrap();
            if *overloaded > 0 {
                *overloaded -= 1;
                return Box::pin(async { Err(SinkError::new(SinkErrorKind::Overloaded, "queue full")) });
            }
            let (release, stored) = (self.release.clone(), self.stored.clone());
            Box::pin(async move {
                release.notified().await;
                let durable = batch.len();
                stored.lock().unwrap().extend(batch.iter().cloned());
                Ok(Receipt { durable })
            })
        }
    }

    fn message_with_chunk(chunk: &str) -> Vec<u8> {
        let value = rmpv::Value::Array(vec![
            "app".into(),
            rmpv::Value::from(1_700_000_000),
            rmpv::Value::Map(vec![("log".into(), "hello".into())]),
            rmpv::Value::Map(vec![("chunk".into(), chunk.into())]),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &value).unwrap();
        bytes
    }

    #[tokio::test]
    async fn the_ack_waits_for_durability_through_overload() {
        let sink = Arc::new(SlowSink {
            ids: EventIdGenerator::new(),
            overloaded: Mutex::new(2),
            attempts: AtomicU64::new(0),
            release: Arc::new(Notify::new()),
            stored: Arc::new(Mutex::new(Vec::new())),
        });
        let metrics = Arc::new(ForwardMetrics::default());
        let shared = Arc::new(Shared {
            options: ForwardOptions {
                limits: ForwardLimits::default(),
                auth: None,
                tls: None,
                audit_context: k8s_audit::Context::default(),
            },
            sink: sink.clone(),
            metrics: metrics.clone(),
        });
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (_stopping, stop) = watch::channel(false);
        let connection = Connection::new(server, SocketAddr::from(([127, 0, 0, 1], 1)), shared, stop);
        let task = tokio::spawn(connection.run());
        client.write_all(&message_with_chunk("c-1")).await.unwrap();

        // Two refusals, then a submit that is not yet durable: no ack.
        let mut answer = [0u8; 64];
        let early = tokio::time::timeout(Duration::from_millis(300), client.read(&mut answer)).await;
        assert!(early.is_err(), "no ack before the events are durable");
        assert_eq!(sink.attempts.load(Ordering::SeqCst), 3);
        assert_eq!(metrics.overloaded_retries.load(Ordering::Relaxed), 2);
        assert!(sink.stored.lock().unwrap().is_empty());

        sink.release.notify_one();
        let read =
            tokio::time::timeout(Duration::from_secs(5), client.read(&mut answer)).await.unwrap().unwrap();
        let ack = rmpv::decode::read_value(&mut &answer[..read]).unwrap();
        assert_eq!(ack, rmpv::Value::Map(vec![("ack".into(), "c-1".into())]));
        assert_eq!(sink.stored.lock().unwrap().len(), 1);
        assert_eq!(metrics.accepted.load(Ordering::Relaxed), 1);
        drop(client);
        task.await.unwrap();
    }

    #[test]
    fn records_of_no_known_kind_keep_their_tag_and_message_and_container_records_are_container_logs() {
        let time = Utc::now();
        let context = k8s_audit::Context::default();
        let record = serde_json::json!({"log": "GET /healthz 200", "stream": "stdout"});
        let entry = Entry { time, record: record.clone() };
        let event =
            normalize_entry(EventIdGenerator::new().next(), time, "app.web", entry, &context).unwrap();
        assert_eq!(event.get_str(fields::EVENT_DATASET), Some("app.web"));
        assert_eq!(event.get_str(fields::MESSAGE), Some("GET /healthz 200"));
        assert_eq!(event.timestamp, time);
        assert_eq!(event.original, record);
        let container = Entry {
            time,
            record: serde_json::json!({"log": "x", "kubernetes": {"pod_name": "web-0", "namespace_name": "shop"}}),
        };
        let event =
            normalize_entry(EventIdGenerator::new().next(), time, "kube.var.log", container, &context)
                .unwrap();
        assert_eq!(event.dataset(), "k8s.container");
        assert_eq!(event.get_str(fields::K8S_POD_NAME), Some("web-0"));
    }
}
