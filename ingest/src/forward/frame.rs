//! Framing and decoding of forward-protocol messages.
//!
//! The forward protocol is a stream of msgpack values with no length prefix.
//! [`Scanner`] finds where one value ends without decoding it, resumably, so a
//! frame that arrives in many reads is scanned once, and a declared length
//! beyond the frame limit is refused before its bytes arrive. [`decode_frame`]
//! turns one complete value into a [`Frame`]: the tag, the entries of any of
//! the four carrier modes, and the options.

use std::io::Read;

use chrono::{DateTime, TimeZone, Utc};
use rmpv::Value as Msgpack;
use serde_json::{Map, Value};

use super::Reason;

/// Nesting deeper than this is refused (records are JSON-like documents).
const MAX_DEPTH: usize = 128;

/// Why a frame broke the protocol; the connection is closed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub reason: Reason,
    pub message: String,
}

impl FrameError {
    fn new(reason: Reason, message: impl Into<String>) -> FrameError {
        FrameError { reason, message: message.into() }
    }
}

/// Finds where the next msgpack value ends in a growing buffer.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Bytes of the current value already scanned.
    position: usize,
    /// Values still to be scanned before the current one is complete.
    pending: u64,
}

impl Default for Scanner {
    fn default() -> Scanner {
        Scanner { position: 0, pending: 1 }
    }
}

impl Scanner {
    /// Scans `buffer` (which starts at the current value) from where the last
    /// call stopped. Answers the value's length once it is complete, `None`
    /// while bytes are missing, and an error when the value is not msgpack or
    /// would be longer than `limit` bytes.
    pub fn scan(&mut self, buffer: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
        while self.pending > 0 {
            let Some((header, payload, children)) = self.item_at(buffer)? else {
                return Ok(None);
            };
            let end = (self.position as u64).saturating_add(header).saturating_add(payload);
            if end > limit as u64 {
                return Err(FrameError::new(
                    Reason::TooLarge,
                    format!("message is larger than the limit of {limit} bytes"),
                ));
            }
            if end > buffer.len() as u64 {
                return Ok(None);
            }
            self.position = end as usize;
            self.pending = self.pending - 1 + children;
        }
        let length = self.position;
        *self = Scanner::default();
        Ok(Some(length))
    }

    /// Whether part of a value has been scanned (a frame is half-sent).
    pub fn in_progress(&self) -> bool {
        self.position > 0
    }

    /// The header length, payload length and number of child values of the
    /// item at the current position, or `None` when its header is incomplete.
    fn item_at(&self, buffer: &[u8]) -> Result<Option<(u64, u64, u64)>, FrameError> {
        let at = self.position;
        let Some(&marker) = buffer.get(at) else {
            return Ok(None);
        };
        let length = |size: usize| -> Option<u64> {
            let bytes = buffer.get(at + 1..at + 1 + size)?;
            Some(bytes.iter().fold(0u64, |total, byte| (total << 8) | u64::from(*byte)))
        };
        let item = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Some((1, 0, 0)),
            0x80..=0x8f => Some((1, 0, 2 * u64::from(marker & 0x0f))),
            0x90..=0x9f => Some((1, 0, u64::from(marker & 0x0f))),
            0xa0..=0xbf => Some((1, u64::from(marker & 0x1f), 0)),
            0xc1 => {
                return Err(FrameError::new(
                    Reason::Malformed,
                    format!("byte 0xc1 at offset {at} is not msgpack"),
                ));
            }
            0xc4 | 0xd9 => length(1).map(|len| (2, len, 0)),
            0xc5 | 0xda => length(2).map(|len| (3, len, 0)),
            0xc6 | 0xdb => length(4).map(|len| (5, len, 0)),
            0xc7 => length(1).map(|len| (3, len, 0)),
            0xc8 => length(2).map(|len| (4, len, 0)),
            0xc9 => length(4).map(|len| (6, len, 0)),
            0xca => Some((5, 0, 0)),
            0xcb => Some((9, 0, 0)),
            0xcc | 0xd0 => Some((2, 0, 0)),
            0xcd | 0xd1 => Some((3, 0, 0)),
            0xce | 0xd2 => Some((5, 0, 0)),
            0xcf | 0xd3 => Some((9, 0, 0)),
            0xd4 => Some((3, 0, 0)),
            0xd5 => Some((4, 0, 0)),
            0xd6 => Some((6, 0, 0)),
            0xd7 => Some((10, 0, 0)),
            0xd8 => Some((18, 0, 0)),
            0xdc => length(2).map(|len| (3, 0, len)),
            0xdd => length(4).map(|len| (5, 0, len)),
            0xde => length(2).map(|len| (3, 0, 2 * len)),
            0xdf => length(4).map(|len| (5, 0, 2 * len)),
        };
        Ok(item)
    }
}

/// Decodes one complete msgpack value.
pub fn decode_value(bytes: &[u8]) -> Result<Msgpack, FrameError> {
    let mut reader = bytes;
    rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
        .map_err(|error| FrameError::new(Reason::Malformed, format!("invalid msgpack: {error}")))
}

/// The limits a frame is decoded under.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    pub max_decompressed_bytes: usize,
    pub max_entries: usize,
}

/// One event as the sender sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub time: DateTime<Utc>,
    pub record: Value,
}

/// A decoded request.
#[derive(Debug, Default)]
pub struct Frame {
    pub tag: String,
    pub entries: Vec<Entry>,
    /// Entries refused on their own, with why; their neighbours are kept.
    pub rejected: Vec<(Reason, String)>,
    /// The `chunk` option: answer `{"ack": chunk}` once the entries are durable.
    pub chunk: Option<String>,
    /// Set when the frame broke the protocol part-way (packed entries cut
    /// short): the entries before the break are kept, no ack is sent, and
    /// the connection is closed.
    pub broken: Option<FrameError>,
}

/// Decodes one top-level value: `None` for a heartbeat (`nil`).
pub fn decode_frame(
    value: Msgpack,
    limits: FrameLimits,
    now: DateTime<Utc>,
) -> Result<Option<Frame>, FrameError> {
    let items = match value {
        Msgpack::Nil => return Ok(None),
        Msgpack::Array(items) => items,
        other => {
            return Err(FrameError::new(
                Reason::Malformed,
                format!("expected a forward message (an array), found {}", type_name(&other)),
            ));
        }
    };
    if !(2..=4).contains(&items.len()) {
        return Err(FrameError::new(
            Reason::Malformed,
            format!("a forward message has 2 to 4 elements, found {}", items.len()),
        ));
    }
    let mut items = items.into_iter();
    let tag = match items.next() {
        Some(Msgpack::String(tag)) => {
            tag.into_str().ok_or_else(|| FrameError::new(Reason::Malformed, "tag is not UTF-8"))?
        }
        Some(other) => {
            return Err(FrameError::new(
                Reason::Malformed,
                format!("tag is {}, not a string", type_name(&other)),
            ));
        }
        None => unreachable_frame()?,
    };
    let second = items.next().unwrap_or(Msgpack::Nil);
    let mut frame = Frame { tag, ..Frame::default() };
    match second {
        // Message mode: [tag, time, record, option?].
        time
        @ (Msgpack::Integer(_) | Msgpack::Ext(..) | Msgpack::F32(_) | Msgpack::F64(_) | Msgpack::Nil) => {
            let record = items
                .next()
                .ok_or_else(|| FrameError::new(Reason::Malformed, "message mode without a record"))?;
            let options = Options::read(items.next())?;
            frame.chunk = options.chunk;
            if let Some(signal) = options.signal.filter(|signal| *signal != 0) {
                frame
                    .rejected
                    .push((Reason::UnsupportedSignal, format!("fluent_signal {signal} is not logs")));
                return Ok(Some(frame));
            }
            match entry_from_parts(&time, record, now) {
                Ok(entry) => frame.entries.push(entry),
                Err(message) => frame.rejected.push((Reason::BadEntry, message)),
            }
        }
        // Forward mode: [tag, [[time, record], ...], option?].
        Msgpack::Array(entries) => {
            let options = Options::read(items.next())?;
            frame.chunk = options.chunk;
            check_entry_count(entries.len(), limits)?;
            if let Some(signal) = options.signal.filter(|signal| *signal != 0) {
                frame
                    .rejected
                    .push((Reason::UnsupportedSignal, format!("fluent_signal {signal} is not logs")));
                return Ok(Some(frame));
            }
            for (index, entry) in entries.into_iter().enumerate() {
                match entry_from_value(entry, now) {
                    Ok(entry) => frame.entries.push(entry),
                    Err(message) => {
                        frame.rejected.push((Reason::BadEntry, format!("entry {index}: {message}")))
                    }
                }
            }
        }
        // (Compressed)PackedForward: [tag, bin|str of concatenated entries, option?].
        Msgpack::Binary(bytes) => packed(&mut frame, &bytes, items.next(), limits, now)?,
        Msgpack::String(text) => packed(&mut frame, text.as_bytes(), items.next(), limits, now)?,
        other => {
            return Err(FrameError::new(
                Reason::Malformed,
                format!(
                    "second element is {}, expected a time, an array or packed entries",
                    type_name(&other)
                ),
            ));
        }
    }
    Ok(Some(frame))
}

fn unreachable_frame() -> Result<String, FrameError> {
    Err(FrameError::new(Reason::Malformed, "empty message"))
}

fn check_entry_count(count: usize, limits: FrameLimits) -> Result<(), FrameError> {
    if count > limits.max_entries {
        return Err(FrameError::new(
            Reason::TooManyEntries,
            format!("message has more than the limit of {} entries", limits.max_entries),
        ));
    }
    Ok(())
}

fn packed(
    frame: &mut Frame,
    bytes: &[u8],
    options: Option<Msgpack>,
    limits: FrameLimits,
    now: DateTime<Utc>,
) -> Result<(), FrameError> {
    let options = Options::read(options)?;
    frame.chunk = options.chunk;
    let decompressed;
    let entries: &[u8] = match options.compressed.as_deref() {
        None | Some("text") => bytes,
        Some("gzip") => {
            decompressed =
                crate::body::gunzip(bytes, limits.max_decompressed_bytes).map_err(|error| match error {
                    crate::body::BodyError::TooLarge { limit } => FrameError::new(
                        Reason::TooLarge,
                        format!("decompressed entries are larger than the limit of {limit} bytes"),
                    ),
                    other => FrameError::new(Reason::Malformed, other.to_string()),
                })?;
            &decompressed
        }
        Some("zstd") => {
            decompressed = unzstd(bytes, limits.max_decompressed_bytes)?;
            &decompressed
        }
        Some(other) => {
            return Err(FrameError::new(Reason::Malformed, format!("unsupported compression {other:?}")));
        }
    };
    if let Some(signal) = options.signal.filter(|signal| *signal != 0) {
        frame.rejected.push((Reason::UnsupportedSignal, format!("fluent_signal {signal} is not logs")));
        return Ok(());
    }
    let mut offset = 0;
    let mut index = 0;
    while offset < entries.len() {
        if index >= limits.max_entries {
            return Err(FrameError::new(
                Reason::TooManyEntries,
                format!("message has more than the limit of {} entries", limits.max_entries),
            ));
        }
        let rest = &entries[offset..];
        let length = match Scanner::default().scan(rest, rest.len()) {
            Ok(Some(length)) => length,
            Ok(None) | Err(_) => {
                frame.broken = Some(FrameError::new(
                    Reason::Malformed,
                    format!("packed entry {index} at byte {offset} is cut short or not msgpack"),
                ));
                return Ok(());
            }
        };
        match decode_value(&rest[..length]) {
            Ok(value) => match entry_from_value(value, now) {
                Ok(entry) => frame.entries.push(entry),
                Err(message) => frame.rejected.push((Reason::BadEntry, format!("entry {index}: {message}"))),
            },
            Err(error) => {
                frame.broken =
                    Some(FrameError::new(error.reason, format!("packed entry {index}: {}", error.message)));
                return Ok(());
            }
        }
        offset += length;
        index += 1;
    }
    Ok(())
}

/// Decompresses zstd (several frames allowed), reading at most `limit` bytes of output.
fn unzstd(bytes: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
    let decoder = zstd::stream::read::Decoder::new(bytes)
        .map_err(|error| FrameError::new(Reason::Malformed, format!("invalid zstd: {error}")))?;
    let mut decoded = Vec::new();
    #[allow(clippy::disallowed_methods, reason = "the reader is bounded by take(limit + 1)")]
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|error| FrameError::new(Reason::Malformed, format!("invalid zstd: {error}")))?;
    if decoded.len() > limit {
        return Err(FrameError::new(
            Reason::TooLarge,
            format!("decompressed entries are larger than the limit of {limit} bytes"),
        ));
    }
    Ok(decoded)
}

/// The options map; unknown options are ignored.
#[derive(Debug, Default)]
struct Options {
    chunk: Option<String>,
    compressed: Option<String>,
    signal: Option<i64>,
}

impl Options {
    fn read(value: Option<Msgpack>) -> Result<Options, FrameError> {
        let mut options = Options::default();
        let pairs = match value {
            None | Some(Msgpack::Nil) => return Ok(options),
            Some(Msgpack::Map(pairs)) => pairs,
            Some(other) => {
                return Err(FrameError::new(
                    Reason::Malformed,
                    format!("option is {}, not a map", type_name(&other)),
                ));
            }
        };
        for (key, value) in pairs {
            let Some(key) = text_of(&key) else { continue };
            match key.as_str() {
                "chunk" => {
                    options.chunk =
                        Some(text_of(&value).ok_or_else(|| {
                            FrameError::new(Reason::Malformed, "option chunk is not a string")
                        })?)
                }
                "compressed" => options.compressed = text_of(&value),
                "fluent_signal" => options.signal = value.as_i64(),
                _ => {}
            }
        }
        Ok(options)
    }
}

fn text_of(value: &Msgpack) -> Option<String> {
    match value {
        Msgpack::String(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        Msgpack::Binary(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// An entry `[time, record]` or Fluent Bit's `[[time, metadata], record]`.
pub(crate) fn entry_from_value(value: Msgpack, now: DateTime<Utc>) -> Result<Entry, String> {
    let Msgpack::Array(parts) = value else {
        return Err(format!("expected [time, record], found {}", type_name(&value)));
    };
    let [time, record]: [Msgpack; 2] = parts
        .try_into()
        .map_err(|parts: Vec<Msgpack>| format!("expected [time, record], found {} elements", parts.len()))?;
    let time = match time {
        // Fluent Bit 2.1+: [[time, metadata], record]; the metadata is not kept.
        Msgpack::Array(mut header) if !header.is_empty() => header.swap_remove(0),
        other => other,
    };
    entry_from_parts(&time, record, now)
}

fn entry_from_parts(time: &Msgpack, record: Msgpack, now: DateTime<Utc>) -> Result<Entry, String> {
    let time = event_time(time, now)?;
    if !record.is_map() {
        return Err(format!("record is {}, not a map", type_name(&record)));
    }
    Ok(Entry { time, record: to_json(record) })
}

/// An integer (seconds), an EventTime (ext 0: u32 seconds, u32 nanoseconds,
/// big-endian) or a float; 0 or nil means now, as in Fluentd's `in_forward`.
pub fn event_time(value: &Msgpack, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let out_of_range = || "time is out of range".to_owned();
    match value {
        Msgpack::Nil => Ok(now),
        Msgpack::Integer(integer) => match integer.as_i64() {
            Some(0) => Ok(now),
            Some(seconds) => Utc.timestamp_opt(seconds, 0).single().ok_or_else(out_of_range),
            None => Err(out_of_range()),
        },
        Msgpack::F32(_) | Msgpack::F64(_) => {
            let seconds = value.as_f64().unwrap_or(f64::NAN);
            if !seconds.is_finite() {
                return Err("time is not a finite number".into());
            }
            if seconds == 0.0 {
                return Ok(now);
            }
            let whole = seconds.floor();
            let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
            Utc.timestamp_opt(whole as i64, nanos).single().ok_or_else(out_of_range)
        }
        Msgpack::Ext(0, bytes) if bytes.len() == 8 => {
            let seconds = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let nanos = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            if nanos >= 1_000_000_000 {
                return Err(format!("EventTime has {nanos} nanoseconds"));
            }
            Utc.timestamp_opt(i64::from(seconds), nanos).single().ok_or_else(out_of_range)
        }
        Msgpack::Ext(kind, bytes) => {
            Err(format!("time is ext type {kind} with {} bytes, not an EventTime", bytes.len()))
        }
        other => Err(format!("time is {}, not an integer or EventTime", type_name(other))),
    }
}

/// A msgpack record as JSON: bin as UTF-8 (lossy), EventTime as RFC 3339,
/// other extensions as `{"ext": type, "hex": ...}`, non-finite floats as null.
pub fn to_json(value: Msgpack) -> Value {
    match value {
        Msgpack::Nil => Value::Null,
        Msgpack::Boolean(flag) => Value::Bool(flag),
        Msgpack::Integer(integer) => match (integer.as_i64(), integer.as_u64()) {
            (Some(signed), _) => Value::from(signed),
            (None, Some(unsigned)) => Value::from(unsigned),
            (None, None) => Value::Null,
        },
        Msgpack::F32(float) => {
            serde_json::Number::from_f64(f64::from(float)).map_or(Value::Null, Value::Number)
        }
        Msgpack::F64(float) => serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number),
        Msgpack::String(text) => Value::String(if text.is_str() {
            text.into_str().unwrap_or_default()
        } else {
            String::from_utf8_lossy(text.as_bytes()).into_owned()
        }),
        Msgpack::Binary(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        Msgpack::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Msgpack::Map(pairs) => {
            let mut object = Map::with_capacity(pairs.len());
            for (key, value) in pairs {
                let key = match key {
                    Msgpack::String(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
                    Msgpack::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    other => other.to_string(),
                };
                object.insert(key, to_json(value));
            }
            Value::Object(object)
        }
        Msgpack::Ext(0, bytes) if bytes.len() == 8 => match event_time(&Msgpack::Ext(0, bytes), Utc::now()) {
            Ok(time) => Value::String(vigil_schema::format_timestamp(time)),
            Err(_) => Value::Null,
        },
        Msgpack::Ext(kind, bytes) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            serde_json::json!({"ext": kind, "hex": hex})
        }
    }
}

pub fn type_name(value: &Msgpack) -> &'static str {
    match value {
        Msgpack::Nil => "nil",
        Msgpack::Boolean(_) => "a boolean",
        Msgpack::Integer(_) => "an integer",
        Msgpack::F32(_) | Msgpack::F64(_) => "a float",
        Msgpack::String(_) => "a string",
        Msgpack::Binary(_) => "bin",
        Msgpack::Array(_) => "an array",
        Msgpack::Map(_) => "a map",
        Msgpack::Ext(..) => "an extension",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &Msgpack) -> Vec<u8> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, value).unwrap();
        bytes
    }

    #[test]
    fn the_scanner_resumes_across_reads_and_finds_each_end() {
        let value = Msgpack::Array(vec![
            "tag".into(),
            Msgpack::Binary(vec![7; 300]),
            Msgpack::Map(vec![("chunk".into(), "abc".into())]),
        ]);
        let bytes = encode(&value);
        let mut scanner = Scanner::default();
        for end in 1..bytes.len() {
            assert_eq!(scanner.scan(&bytes[..end], 1 << 20), Ok(None), "incomplete at {end}");
        }
        assert_eq!(scanner.scan(&bytes, 1 << 20), Ok(Some(bytes.len())));
        assert!(!scanner.in_progress());
    }

    #[test]
    fn the_scanner_refuses_a_declared_length_past_the_limit() {
        let header = [0x92, 0xa1, b't', 0xc6, 0xff, 0xff, 0xff, 0xff];
        let error = Scanner::default().scan(&header, 1024).unwrap_err();
        assert_eq!(error.reason, Reason::TooLarge);
    }

    #[test]
    fn times_are_integers_event_times_or_floats() {
        let now = Utc::now();
        let time = |value: Msgpack| event_time(&value, now).unwrap();
        assert_eq!(time(Msgpack::from(1_700_000_000)).timestamp(), 1_700_000_000);
        let event_time_bytes = [0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x2a].to_vec();
        let precise = time(Msgpack::Ext(0, event_time_bytes));
        assert_eq!((precise.timestamp(), precise.timestamp_subsec_nanos()), (1_700_000_000, 42));
        assert_eq!(time(Msgpack::F64(1_700_000_000.5)).timestamp_subsec_millis(), 500);
        assert_eq!(time(Msgpack::from(0)), now);
        assert!(event_time(&Msgpack::Ext(0, vec![0; 8].into_iter().chain([0xff]).collect()), now).is_err());
        assert!(event_time(&Msgpack::from("yesterday"), now).is_err());
    }

    #[test]
    fn bin_keys_and_values_and_event_times_in_records_become_json() {
        let record = Msgpack::Map(vec![
            (Msgpack::Binary(b"log".to_vec()), Msgpack::Binary(b"caf\xc3\xa9 \xff".to_vec())),
            ("at".into(), Msgpack::Ext(0, vec![0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 0])),
            ("nan".into(), Msgpack::F64(f64::NAN)),
        ]);
        let json = to_json(record);
        assert_eq!(json["log"], "café \u{fffd}");
        assert_eq!(json["at"], "2023-11-14T22:13:20.000000000Z");
        assert_eq!(json["nan"], Value::Null);
    }

    #[test]
    fn non_log_signals_are_refused_with_their_reason() {
        let value = Msgpack::Array(vec![
            "metrics".into(),
            Msgpack::Array(vec![Msgpack::Array(vec![Msgpack::from(1), Msgpack::Map(vec![])])]),
            Msgpack::Map(vec![("fluent_signal".into(), Msgpack::from(1))]),
        ]);
        let limits = FrameLimits { max_decompressed_bytes: 1 << 20, max_entries: 10 };
        let frame = decode_frame(value, limits, Utc::now()).unwrap().unwrap();
        assert!(frame.entries.is_empty());
        assert_eq!(frame.rejected[0].0, Reason::UnsupportedSignal);
    }
}
