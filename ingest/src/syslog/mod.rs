//! Syslog over UDP and TCP (`vigil serve --syslog ADDR`): RFC 5424 and RFC
//! 3164 messages ([`parse`]), framed on TCP by octet counting (`LEN SP MSG`,
//! where rsyslog counts a trailing newline) or by newlines, one per datagram
//! on UDP. Messages are normalized into `event.dataset: syslog` and handed
//! to the sink in batches.
//!
//! Back-pressure: a TCP connection is not read further until its batch is
//! durable, so a slow store slows the sender. UDP cannot slow its sender: a
//! batch the store refuses for longer than [`SyslogOptions::overload_wait`]
//! is dropped, counted and logged.

pub mod parse;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use vigil_schema::{Event, EventId, EventSink, SinkErrorKind, fields};

pub use parse::{Message, ParseError};

/// The dataset name of syslog messages.
pub const DATASET: &str = "syslog";

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] =
    ["emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"];

/// How the syslog listeners run.
#[derive(Debug, Clone)]
pub struct SyslogOptions {
    /// Longest message accepted; a longer frame closes the TCP connection.
    pub max_message_bytes: usize,
    /// Messages per batch handed to the sink.
    pub batch_events: usize,
    /// How long a UDP batch waits for more messages.
    pub batch_wait: Duration,
    /// How long a half-received TCP frame may wait for the rest.
    pub frame_timeout: Duration,
    /// How long a UDP batch is retried while the store is overloaded.
    pub overload_wait: Duration,
}

impl Default for SyslogOptions {
    fn default() -> SyslogOptions {
        SyslogOptions {
            max_message_bytes: 64 * 1024,
            batch_events: 1000,
            batch_wait: Duration::from_millis(100),
            frame_timeout: Duration::from_secs(30),
            overload_wait: Duration::from_secs(5),
        }
    }
}

/// What a source received and what became of it, for `/metrics`.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// UDP batches the store could not take in time.
    pub dropped: AtomicU64,
    pub connections: AtomicU64,
}

impl SourceStats {
    fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
}

/// Normalizes one parsed message. The original keeps the raw line and its
/// parsed parts.
pub fn normalize(
    id: EventId,
    ingested: DateTime<Utc>,
    raw: &str,
    message: Message,
    peer: Option<IpAddr>,
) -> Event {
    let timestamp = message.timestamp.unwrap_or(ingested);
    let mut event = Event::new(id, timestamp, Value::Null);
    event.set(fields::EVENT_DATASET, DATASET);
    event.set(fields::EVENT_KIND, "event");
    event.set(fields::EVENT_INGESTED, vigil_schema::format_timestamp(id.arrival()));
    event.set(fields::MESSAGE, message.message.as_str());
    event.set(fields::HOST_NAME, message.hostname.as_deref());
    event.set(fields::PROCESS_NAME, message.app_name.as_deref());
    if let Some(pid) = message.proc_id.as_deref().and_then(|pid| pid.parse::<i64>().ok()) {
        event.set(fields::PROCESS_PID, pid);
    }
    event.set(fields::LOG_SYSLOG_MSGID, message.msg_id.as_deref());
    event.set(fields::LOG_SYSLOG_PRIORITY, i64::from(message.priority));
    event.set(fields::LOG_SYSLOG_FACILITY_CODE, i64::from(message.facility()));
    event.set(fields::LOG_SYSLOG_FACILITY_NAME, FACILITIES.get(message.facility() as usize).copied());
    event.set(fields::LOG_SYSLOG_SEVERITY_CODE, i64::from(message.severity()));
    event.set(fields::LOG_SYSLOG_SEVERITY_NAME, SEVERITIES[message.severity() as usize]);
    event.set(fields::EVENT_SEVERITY, i64::from(message.severity()));
    event.set(fields::LOG_LEVEL, SEVERITIES[message.severity() as usize]);
    if let Some(peer) = peer {
        event.set(fields::SOURCE_IP, peer.to_string());
    }
    let mut structured = Map::new();
    for (id, params) in &message.structured_data {
        let params: Map<String, Value> =
            params.iter().map(|(name, value)| (name.clone(), Value::String(value.clone()))).collect();
        structured.insert(id.clone(), Value::Object(params));
    }
    event.original = json!({
        "raw": raw,
        "priority": message.priority,
        "version": message.version,
        "timestamp": message.timestamp.map(vigil_schema::format_timestamp),
        "hostname": message.hostname,
        "app_name": message.app_name,
        "proc_id": message.proc_id,
        "msg_id": message.msg_id,
        "structured_data": structured,
        "message": message.message,
    });
    event
}

/// Parses and normalizes one raw message, counting refusals.
fn to_event(sink: &dyn EventSink, stats: &SourceStats, raw: &[u8], peer: Option<IpAddr>) -> Option<Event> {
    SourceStats::add(&stats.messages, 1);
    SourceStats::add(&stats.bytes, raw.len() as u64);
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r']);
    let now = Utc::now();
    match parse::parse(text, now) {
        Ok(message) => Some(normalize(sink.ids().next(), now, text, message, peer)),
        Err(error) => {
            SourceStats::add(&stats.rejected, 1);
            tracing::debug!(%error, peer = ?peer, "syslog message refused");
            None
        }
    }
}

/// Hands a batch to the sink, waiting out overload; `false` when the store
/// is stopping or failed (the batch is not durable).
async fn submit_patiently(
    sink: &dyn EventSink,
    stats: &SourceStats,
    batch: Vec<Event>,
    give_up_after: Option<Duration>,
) -> bool {
    let started = Instant::now();
    let count = batch.len() as u64;
    let batch = Arc::new(batch);
    loop {
        match sink.submit(Arc::clone(&batch)).await {
            Ok(_) => {
                SourceStats::add(&stats.accepted, count);
                return true;
            }
            Err(error) if error.kind() == SinkErrorKind::Overloaded => {
                if give_up_after.is_some_and(|limit| started.elapsed() >= limit) {
                    SourceStats::add(&stats.dropped, count);
                    tracing::warn!(
                        events = count,
                        "syslog over UDP: the store stayed overloaded; batch dropped and counted"
                    );
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => {
                tracing::error!(%error, events = count, "syslog batch not stored");
                SourceStats::add(&stats.dropped, count);
                return false;
            }
        }
    }
}

/// Accepts TCP connections until `shutdown` turns true.
pub async fn serve_tcp(
    listener: TcpListener,
    sink: Arc<dyn EventSink>,
    options: SyslogOptions,
    stats: Arc<SourceStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    SourceStats::add(&stats.connections, 1);
                    let (sink, options, stats, shutdown) = (sink.clone(), options.clone(), stats.clone(), shutdown.clone());
                    tokio::spawn(async move { serve_connection(stream, peer, sink, options, stats, shutdown).await });
                }
                Err(error) => tracing::warn!(%error, "syslog TCP accept failed"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// The next complete frame in `buffer`: `Ok(Some((frame, consumed)))`,
/// `Ok(None)` when more bytes are needed, `Err` when the stream is broken.
fn next_frame(buffer: &[u8], max: usize) -> Result<Option<(std::ops::Range<usize>, usize)>, String> {
    let start = buffer.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(buffer.len());
    let rest = &buffer[start..];
    if rest.is_empty() {
        return Ok(None);
    }
    if rest[0].is_ascii_digit() {
        // Octet counting: `LEN SP MSG`.
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            return if rest.len() > 10 { Err("octet count without a space".into()) } else { Ok(None) };
        };
        let length: usize =
            std::str::from_utf8(&rest[..space]).ok().and_then(|digits| digits.parse().ok()).ok_or_else(
                || format!("{:?} is not an octet count", String::from_utf8_lossy(&rest[..space])),
            )?;
        if length > max {
            return Err(format!("frame of {length} bytes is over the limit of {max}"));
        }
        let body_start = start + space + 1;
        if buffer.len() < body_start + length {
            return Ok(None);
        }
        return Ok(Some((body_start..body_start + length, body_start + length)));
    }
    match rest.iter().position(|b| *b == b'\n') {
        Some(end) => Ok(Some((start..start + end, start + end + 1))),
        None if rest.len() > max => Err(format!("line longer than the limit of {max} bytes")),
        None => Ok(None),
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    sink: Arc<dyn EventSink>,
    options: SyslogOptions,
    stats: Arc<SourceStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Take every complete frame, then make them durable before reading on.
        let mut batch = Vec::new();
        loop {
            match next_frame(&buffer, options.max_message_bytes) {
                Ok(Some((frame, consumed))) => {
                    if let Some(event) = to_event(sink.as_ref(), &stats, &buffer[frame], Some(peer.ip())) {
                        batch.push(event);
                    }
                    buffer.drain(..consumed);
                    if batch.len() >= options.batch_events {
                        break;
                    }
                }
                Ok(None) => break,
                Err(reason) => {
                    tracing::warn!(%peer, %reason, "closing a syslog connection that broke the framing");
                    if !batch.is_empty() {
                        submit_patiently(sink.as_ref(), &stats, batch, None).await;
                    }
                    return;
                }
            }
        }
        if !batch.is_empty() && !submit_patiently(sink.as_ref(), &stats, batch, None).await {
            return;
        }
        let pending = buffer.iter().any(|b| !b.is_ascii_whitespace());
        let read = tokio::select! {
            read = stream.read(&mut chunk) => read,
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(options.frame_timeout), if pending => {
                tracing::warn!(%peer, "closing a syslog connection whose frame stayed incomplete");
                return;
            }
        };
        match read {
            Ok(0) => {
                // The sender closed: a last unterminated line is still a message.
                if pending && let Some(event) = to_event(sink.as_ref(), &stats, &buffer, Some(peer.ip())) {
                    submit_patiently(sink.as_ref(), &stats, vec![event], None).await;
                }
                return;
            }
            Ok(count) => buffer.extend_from_slice(&chunk[..count]),
            Err(error) => {
                tracing::debug!(%peer, %error, "syslog connection read failed");
                return;
            }
        }
    }
}

/// Receives datagrams until `shutdown` turns true, in batches.
pub async fn serve_udp(
    socket: UdpSocket,
    sink: Arc<dyn EventSink>,
    options: SyslogOptions,
    stats: Arc<SourceStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut datagram = vec![0u8; 65_536];
    let mut batch: Vec<Event> = Vec::new();
    let mut batch_started = Instant::now();
    loop {
        let wait = options.batch_wait.saturating_sub(batch_started.elapsed());
        tokio::select! {
            received = socket.recv_from(&mut datagram) => match received {
                Ok((count, peer)) => {
                    let raw = &datagram[..count.min(options.max_message_bytes)];
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    if let Some(event) = to_event(sink.as_ref(), &stats, raw, Some(peer.ip())) {
                        batch.push(event);
                    }
                }
                Err(error) => tracing::debug!(%error, "syslog UDP receive failed"),
            },
            () = tokio::time::sleep(wait), if !batch.is_empty() => {}
            _ = shutdown.changed() => {
                if !batch.is_empty() {
                    submit_patiently(sink.as_ref(), &stats, std::mem::take(&mut batch), Some(options.overload_wait)).await;
                }
                return;
            }
        }
        if !batch.is_empty()
            && (batch.len() >= options.batch_events || batch_started.elapsed() >= options.batch_wait)
        {
            submit_patiently(sink.as_ref(), &stats, std::mem::take(&mut batch), Some(options.overload_wait))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_by_octet_count_and_by_newline() {
        let stream = b"12 <13>1 - - -\n<13>1 plain line\n  20 <13>1 - - - - - -";
        let (first, used) = next_frame(stream, 1000).unwrap().unwrap();
        assert_eq!(&stream[first], b"<13>1 - - -\n");
        let rest = &stream[used..];
        let (second, used) = next_frame(rest, 1000).unwrap().unwrap();
        assert_eq!(&rest[second], b"<13>1 plain line");
        let rest = &rest[used..];
        assert_eq!(next_frame(rest, 1000).unwrap(), None, "20 bytes announced, 18 there");
        assert!(next_frame(b"99999 <13>", 1000).unwrap_err().contains("over the limit"));
        assert!(next_frame(b"12x <13>", 1000).unwrap_err().contains("not an octet count"));
        assert!(next_frame(&[b'a'; 2000], 1000).unwrap_err().contains("longer than the limit"));
    }

    #[test]
    fn normalized_messages_carry_facility_severity_and_the_raw_line() {
        let raw = "<86>Nov  3 01:02:03 node-a sshd[812]: Accepted publickey for root";
        let message = parse::parse(raw, Utc::now()).unwrap();
        let event = normalize(
            vigil_schema::EventIdGenerator::new().next(),
            Utc::now(),
            raw,
            message,
            Some("10.0.0.9".parse().unwrap()),
        );
        assert_eq!(event.dataset(), DATASET);
        assert_eq!(event.get_str(fields::LOG_SYSLOG_FACILITY_NAME), Some("authpriv"));
        assert_eq!(event.get_str(fields::LOG_SYSLOG_SEVERITY_NAME), Some("informational"));
        assert_eq!(event.get(fields::PROCESS_PID), Some(&json!(812)));
        assert_eq!(event.get_str(fields::HOST_NAME), Some("node-a"));
        assert_eq!(event.original["raw"], raw);
    }
}
