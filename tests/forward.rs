//! The Fluentd forward protocol against the real server: every carrier mode
//! built byte by byte, acks only once durable, the handshake, protocol
//! breaks and every limit; then the real client libraries (`tests/clients/`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Server;

/// A hand-written msgpack encoder, so that each test says exactly which bytes go out.
mod mp {
    pub fn array(len: usize) -> Vec<u8> {
        match len {
            0..=15 => vec![0x90 | len as u8],
            16..=0xffff => [vec![0xdc], (len as u16).to_be_bytes().to_vec()].concat(),
            _ => [vec![0xdd], (len as u32).to_be_bytes().to_vec()].concat(),
        }
    }

    pub fn map(len: usize) -> Vec<u8> {
        match len {
            0..=15 => vec![0x80 | len as u8],
            _ => [vec![0xde], (len as u16).to_be_bytes().to_vec()].concat(),
        }
    }

    pub fn str(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let header = match bytes.len() {
            0..=31 => vec![0xa0 | bytes.len() as u8],
            32..=0xff => vec![0xd9, bytes.len() as u8],
            0x100..=0xffff => [vec![0xda], (bytes.len() as u16).to_be_bytes().to_vec()].concat(),
            _ => [vec![0xdb], (bytes.len() as u32).to_be_bytes().to_vec()].concat(),
        };
        [header, bytes.to_vec()].concat()
    }

    /// Always str32, as Fluentd's out_forward packs its entries.
    pub fn str32(bytes: &[u8]) -> Vec<u8> {
        [vec![0xdb], (bytes.len() as u32).to_be_bytes().to_vec(), bytes.to_vec()].concat()
    }

    pub fn bin(bytes: &[u8]) -> Vec<u8> {
        [vec![0xc6], (bytes.len() as u32).to_be_bytes().to_vec(), bytes.to_vec()].concat()
    }

    pub fn uint(value: u64) -> Vec<u8> {
        [vec![0xcf], value.to_be_bytes().to_vec()].concat()
    }

    /// EventTime as fixext8 (`D7 00`).
    pub fn event_time(seconds: u32, nanos: u32) -> Vec<u8> {
        [vec![0xd7, 0x00], seconds.to_be_bytes().to_vec(), nanos.to_be_bytes().to_vec()].concat()
    }

    /// EventTime as ext8 (`C7 08 00`), which some senders use.
    pub fn event_time_ext8(seconds: u32, nanos: u32) -> Vec<u8> {
        [vec![0xc7, 0x08, 0x00], seconds.to_be_bytes().to_vec(), nanos.to_be_bytes().to_vec()].concat()
    }

    pub fn record(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = map(pairs.len());
        for (key, value) in pairs {
            out.extend(str(key));
            out.extend(str(value));
        }
        out
    }

    pub fn options(pairs: &[(&str, &str)]) -> Vec<u8> {
        record(pairs)
    }

    pub fn entry(time: Vec<u8>, record: Vec<u8>) -> Vec<u8> {
        [array(2), time, record].concat()
    }
}

/// 2026-11-20T10:00:00Z.
const T0: u32 = 1_795_168_800;

fn start(extra: &[&str]) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--forward", "127.0.0.1:0", "--commit-interval-ms", "50"];
    args.extend_from_slice(extra);
    let server = Server::start(&dir.path().join("data"), &args);
    let forward = server.forward.clone().expect("the server prints its forward address");
    (dir, server, forward)
}

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Reads the ack of `chunk`, byte for byte: `{"ack": chunk}`.
fn read_ack(stream: &mut impl Read, chunk: &str) {
    let expected = [mp::map(1), mp::str("ack"), mp::str(chunk)].concat();
    let mut got = vec![0u8; expected.len()];
    stream.read_exact(&mut got).unwrap_or_else(|error| panic!("no ack for {chunk}: {error}"));
    assert_eq!(got, expected, "ack for {chunk}");
}

/// Whether the server closes the connection within `limit` (EOF or reset).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut byte = [0u8; 64];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => {
                return !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn messages(answer: &Value) -> Vec<String> {
    let mut found: Vec<String> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["event"]["message"].as_str().unwrap_or("").to_owned())
        .collect();
    found.sort();
    found
}

#[test]
fn message_and_forward_modes_with_every_time_shape_are_stored_and_acked() {
    let (_dir, server, address) = start(&[]);
    let mut stream = connect(&address);
    // Message mode: integer time, fixext8 and ext8 EventTime, then with a chunk.
    stream
        .write_all(
            &[mp::array(3), mp::str("app.web"), mp::uint(u64::from(T0)), mp::record(&[("log", "m-int")])]
                .concat(),
        )
        .unwrap();
    stream
        .write_all(
            &[
                mp::array(3),
                mp::str("app.web"),
                mp::event_time(T0, 123_456_789),
                mp::record(&[("message", "m-fixext")]),
            ]
            .concat(),
        )
        .unwrap();
    stream
        .write_all(
            &[mp::array(3), mp::str("app.web"), mp::event_time_ext8(T0, 5), mp::record(&[("log", "m-ext8")])]
                .concat(),
        )
        .unwrap();
    // A heartbeat is ignored.
    stream.write_all(&[0xc0]).unwrap();
    stream
        .write_all(
            &[
                mp::array(4),
                mp::str("app.web"),
                mp::uint(u64::from(T0)),
                mp::record(&[("log", "m-chunk")]),
                mp::options(&[("chunk", "c-message")]),
            ]
            .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "c-message");
    // Forward mode: [time, record] and Fluent Bit 5's [[time, metadata], record] in one message.
    let fluent_bit_entry =
        [mp::array(2), mp::array(2), mp::event_time(T0, 7), mp::map(0), mp::record(&[("log", "f-metadata")])]
            .concat();
    let plain_entry = mp::entry(mp::event_time(T0, 8), mp::record(&[("log", "f-plain")]));
    stream
        .write_all(
            &[
                mp::array(3),
                mp::str("bit.node"),
                mp::array(2),
                fluent_bit_entry,
                plain_entry,
                mp::options(&[("chunk", "c-forward"), ("size", "2")]),
            ]
            .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "c-forward");

    let answer = server.search_until("event.dataset:\"app.web\"", 4, Duration::from_secs(10));
    assert_eq!(messages(&answer), ["m-chunk", "m-ext8", "m-fixext", "m-int"]);
    let fixext =
        answer["hits"].as_array().unwrap().iter().find(|hit| hit["event"]["message"] == "m-fixext").unwrap();
    assert_eq!(fixext["@timestamp"], "2026-11-20T10:00:00.123456789Z");
    assert_eq!(fixext["original"]["message"], "m-fixext");
    let answer = server.search_until("event.dataset:\"bit.node\"", 2, Duration::from_secs(10));
    assert_eq!(messages(&answer), ["f-metadata", "f-plain"]);
    server.stop();
}

#[test]
fn packed_forward_as_bin_str_gzip_and_zstd_is_stored_and_acked() {
    let (_dir, server, address) = start(&[]);
    let mut stream = connect(&address);
    let entries = |name: &str| -> Vec<u8> {
        (0..3)
            .flat_map(|i| mp::entry(mp::event_time(T0, i), mp::record(&[("log", &format!("{name}-{i}"))])))
            .collect()
    };
    // Fluent Bit / fluent-logger: bin entries.
    stream
        .write_all(
            &[mp::array(3), mp::str("p.bin"), mp::bin(&entries("bin")), mp::options(&[("chunk", "c1")])]
                .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "c1");
    // Fluentd out_forward: str32 entries with compressed: text.
    stream
        .write_all(
            &[
                mp::array(3),
                mp::str("p.text"),
                mp::str32(&entries("text")),
                mp::options(&[("chunk", "c2"), ("compressed", "text")]),
            ]
            .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "c2");
    // Gzip in two members back to back, sent in str32 as Fluentd does.
    let gzip = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let all = entries("gzip");
    let split = mp::entry(mp::event_time(T0, 0), mp::record(&[("log", "gzip-0")])).len();
    let members = [gzip(&all[..split]), gzip(&all[split..])].concat();
    stream
        .write_all(
            &[
                mp::array(3),
                mp::str("p.gzip"),
                mp::str32(&members),
                mp::options(&[("chunk", "c3"), ("compressed", "gzip")]),
            ]
            .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "c3");
    // Zstd, as Fluentd 1.19 sends it.
    let zstd = zstd::encode_all(&entries("zstd")[..], 3).unwrap();
    stream
        .write_all(
            &[
                mp::array(3),
                mp::str("p.zstd"),
                mp::str32(&zstd),
                mp::options(&[("chunk", "c4"), ("compressed", "zstd")]),
            ]
            .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "c4");
    // Three messages of 4,000 entries in one write: more than one batch's
    // worth (10,000 events) waits in the buffer, and every message is acked.
    let big: Vec<u8> = (0..4000)
        .flat_map(|i| mp::entry(mp::uint(u64::from(T0)), mp::record(&[("log", &format!("big-{i}"))])))
        .collect();
    let burst: Vec<u8> = (0..3)
        .flat_map(|n| {
            [mp::array(3), mp::str("p.big"), mp::bin(&big), mp::options(&[("chunk", &format!("big-{n}"))])]
                .concat()
        })
        .collect();
    stream.write_all(&burst).unwrap();
    for n in 0..3 {
        read_ack(&mut stream, &format!("big-{n}"));
    }
    let answer = server.search_until("event.dataset:\"p.big\"", 12_000, Duration::from_secs(30));
    assert_eq!(answer["total"], 12_000);
    for name in ["bin", "text", "gzip", "zstd"] {
        let answer = server.search_until(&format!("event.dataset:\"p.{name}\""), 3, Duration::from_secs(10));
        assert_eq!(messages(&answer), [0, 1, 2].map(|i| format!("{name}-{i}")), "{name}");
    }
    server.stop();
}

#[test]
fn audit_and_falco_records_are_normalized_by_their_own_normalizers() {
    let (_dir, server, address) = start(&[]);
    let mut stream = connect(&address);
    let audit =
        serde_json::to_vec(&crate::support::audit_event("fwd-audit-1", "get", "secrets", None, "mallory"))
            .unwrap();
    let falco = serde_json::json!({"output": "shell in container", "priority": "Warning", "rule": "Terminal shell in container", "time": "2026-11-20T10:00:00.000000001Z", "output_fields": {"proc.name": "bash"}});
    // Records as msgpack maps, converted from JSON the way a sender would.
    let to_msgpack = |json: &[u8]| {
        let value: Value = serde_json::from_slice(json).unwrap();
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &json_to_msgpack(&value)).unwrap();
        out
    };
    let entries = [
        mp::entry(mp::uint(u64::from(T0)), to_msgpack(&audit)),
        mp::entry(mp::uint(u64::from(T0)), to_msgpack(&serde_json::to_vec(&falco).unwrap())),
    ]
    .concat();
    stream
        .write_all(
            &[mp::array(3), mp::str("kube.audit"), mp::array(2), entries, mp::options(&[("chunk", "c")])]
                .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "c");
    let answer = server.search_until("event.dataset:k8s.audit user.name:mallory", 1, Duration::from_secs(10));
    assert_eq!(answer["hits"][0]["original"]["auditID"], "fwd-audit-1");
    let answer = server.search_until("event.dataset:falco process.name:bash", 1, Duration::from_secs(10));
    assert_eq!(answer["hits"][0]["event"]["rule.name"], "Terminal shell in container", "{answer}");
    server.stop();
}

fn json_to_msgpack(value: &Value) -> rmpv::Value {
    match value {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(flag) => rmpv::Value::Boolean(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => rmpv::Value::from(integer),
            None => rmpv::Value::F64(number.as_f64().unwrap()),
        },
        Value::String(text) => rmpv::Value::from(text.as_str()),
        Value::Array(items) => rmpv::Value::Array(items.iter().map(json_to_msgpack).collect()),
        Value::Object(object) => rmpv::Value::Map(
            object
                .iter()
                .map(|(key, value)| (rmpv::Value::from(key.as_str()), json_to_msgpack(value)))
                .collect(),
        ),
    }
}

#[test]
fn an_ack_means_durable_even_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A long commit interval: the events are in the log, not yet in the index, when the ack arrives.
    let server = Server::start(&data, &["--forward", "127.0.0.1:0", "--commit-interval-ms", "60000"]);
    let mut stream = connect(server.forward.as_ref().unwrap());
    let entries: Vec<u8> = (0..50)
        .flat_map(|i| mp::entry(mp::uint(u64::from(T0) + i), mp::record(&[("log", &format!("durable-{i}"))])))
        .collect();
    stream
        .write_all(
            &[mp::array(3), mp::str("crash.test"), mp::bin(&entries), mp::options(&[("chunk", "durable")])]
                .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "durable");
    server.kill_hard();
    let server = Server::start(&data, &["--commit-interval-ms", "50"]);
    let answer = server.search_until("event.dataset:\"crash.test\"", 50, Duration::from_secs(10));
    assert_eq!(answer["total"], 50, "every acknowledged event survives the crash");
    server.stop();
}

#[test]
fn protocol_breaks_close_the_connection_and_keep_the_good_events_before() {
    let (_dir, server, address) = start(&["--forward-message-timeout", "1s"]);
    // A good message, then a byte that is not msgpack.
    let mut stream = connect(&address);
    stream
        .write_all(
            &[
                mp::array(3),
                mp::str("bad.one"),
                mp::uint(u64::from(T0)),
                mp::record(&[("log", "before-garbage")]),
            ]
            .concat(),
        )
        .unwrap();
    stream.write_all(&[0xc1, 0x00]).unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)), "garbage closes the connection");
    // Packed entries cut short: the complete ones are kept, no ack.
    let mut stream = connect(&address);
    let mut entries: Vec<u8> = (0..2)
        .flat_map(|i| mp::entry(mp::uint(u64::from(T0)), mp::record(&[("log", &format!("packed-{i}"))])))
        .collect();
    let cut = mp::entry(mp::uint(u64::from(T0)), mp::record(&[("log", "never")]));
    entries.extend(&cut[..cut.len() - 3]);
    stream
        .write_all(
            &[mp::array(3), mp::str("bad.one"), mp::bin(&entries), mp::options(&[("chunk", "cut")])].concat(),
        )
        .unwrap();
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)),
        "cut entries close the connection without an ack"
    );
    // Not a forward message (a map, an array of one), and a record that is not a map.
    for bad in [mp::record(&[("a", "b")]), [mp::array(1), mp::str("x")].concat()] {
        let mut stream = connect(&address);
        stream.write_all(&bad).unwrap();
        assert!(closed_within(&mut stream, Duration::from_secs(5)));
    }
    let mut stream = connect(&address);
    let entries = [
        mp::entry(mp::uint(u64::from(T0)), mp::str("not a map")),
        mp::entry(mp::uint(u64::from(T0)), mp::record(&[("log", "next-to-a-bad-entry")])),
    ]
    .concat();
    stream
        .write_all(
            &[mp::array(3), mp::str("bad.one"), mp::array(2), entries, mp::options(&[("chunk", "mixed")])]
                .concat(),
        )
        .unwrap();
    read_ack(&mut stream, "mixed");
    // Half a message, then silence: closed after the message timeout, no hang.
    let mut stream = connect(&address);
    let whole =
        [mp::array(3), mp::str("bad.one"), mp::uint(u64::from(T0)), mp::record(&[("log", "half")])].concat();
    stream.write_all(&whole[..whole.len() / 2]).unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(10)), "a half-sent message times out");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after about a second");
    // Half a message, then the client closes: nothing is stored from it.
    let mut stream = connect(&address);
    stream.write_all(&whole[..whole.len() - 1]).unwrap();
    drop(stream);

    let answer = server.search_until("event.dataset:\"bad.one\"", 4, Duration::from_secs(10));
    assert_eq!(messages(&answer), ["before-garbage", "next-to-a-bad-entry", "packed-0", "packed-1"]);
    let log = server.stop();
    assert!(log.contains("forward client broke the protocol"), "{log}");
    assert!(log.contains("forward message not completed in time"), "{log}");
}

#[test]
fn every_limit_is_enforced() {
    let (_dir, server, address) = start(&[
        "--forward-max-message-bytes",
        "4096",
        "--forward-max-decompressed-bytes",
        "65536",
        "--forward-max-entries",
        "10",
        "--forward-max-connections",
        "2",
    ]);
    // A declared length past the message limit is refused before its bytes arrive.
    let mut stream = connect(&address);
    stream.write_all(&[mp::array(3), mp::str("lim"), vec![0xc6, 0x00, 0x10, 0x00, 0x00]].concat()).unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)), "too large");
    // A gzip bomb: 1 MiB of zeros in a few hundred bytes.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 4096);
    let mut stream = connect(&address);
    stream
        .write_all(
            &[mp::array(3), mp::str("lim"), mp::bin(&bomb), mp::options(&[("compressed", "gzip")])].concat(),
        )
        .unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)), "gzip bomb");
    // A zstd bomb.
    let bomb = zstd::encode_all(&vec![0u8; 1 << 20][..], 19).unwrap();
    let mut stream = connect(&address);
    stream
        .write_all(
            &[mp::array(3), mp::str("lim"), mp::bin(&bomb), mp::options(&[("compressed", "zstd")])].concat(),
        )
        .unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)), "zstd bomb");
    // Eleven entries, in forward and in packed mode.
    let entries: Vec<u8> = (0..11)
        .flat_map(|_| mp::entry(mp::uint(u64::from(T0)), mp::record(&[("log", "too-many")])))
        .collect();
    let mut stream = connect(&address);
    stream.write_all(&[mp::array(2), mp::str("lim"), mp::array(11), entries.clone()].concat()).unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)), "too many entries, forward");
    let mut stream = connect(&address);
    stream.write_all(&[mp::array(2), mp::str("lim"), mp::bin(&entries)].concat()).unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)), "too many entries, packed");
    // Ten entries are fine.
    let ten: Vec<u8> =
        (0..10).flat_map(|_| mp::entry(mp::uint(u64::from(T0)), mp::record(&[("log", "ten")]))).collect();
    let mut first = connect(&address);
    first
        .write_all(&[mp::array(3), mp::str("lim"), mp::bin(&ten), mp::options(&[("chunk", "ten")])].concat())
        .unwrap();
    read_ack(&mut first, "ten");
    // Two connections are open at most: a third is closed at once.
    let mut second = connect(&address);
    // An empty message with a chunk: its ack proves the server holds the second connection.
    second
        .write_all(
            &[mp::array(3), mp::str("lim"), mp::array(0), mp::options(&[("chunk", "second")])].concat(),
        )
        .unwrap();
    read_ack(&mut second, "second");
    let mut third = connect(&address);
    assert!(closed_within(&mut third, Duration::from_secs(5)), "connection limit");
    let answer = server.search_until("event.dataset:lim", 10, Duration::from_secs(10));
    assert_eq!(answer["total"], 10, "only the message within the limits is stored");
    let (_, metrics) = server.get("/metrics");
    for line in [
        "vigil_forward_refused_total{reason=\"too_large\"} 3",
        "vigil_forward_refused_total{reason=\"too_many_entries\"} 2",
        "vigil_forward_refused_total{reason=\"too_many_connections\"} 1",
        "vigil_forward_events_total{result=\"accepted\"} 10",
        "vigil_forward_acks_total 2",
    ] {
        assert!(metrics.lines().any(|metric| metric == line), "{line} in:\n{metrics}");
    }
    let log = server.stop();
    for reason in ["too_large", "too_many_entries", "too many forward connections"] {
        assert!(log.contains(reason), "{reason} is logged: {log}");
    }
}

/// The client side of the handshake; answers the PONG.
fn handshake(stream: &mut (impl Read + Write), shared_key: &str, hostname: &str) -> rmpv::Value {
    use sha2::Digest;
    let helo = rmpv::decode::read_value(stream).unwrap();
    assert_eq!(helo[0].as_str(), Some("HELO"));
    let options = helo[1].as_map().unwrap();
    let nonce =
        options.iter().find(|(key, _)| key.as_str() == Some("nonce")).unwrap().1.as_slice().unwrap().to_vec();
    let salt = b"0123456789abcdef0123456789abcdef";
    let hex = |parts: &[&[u8]]| -> String {
        let mut hasher = sha2::Sha512::new();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
    };
    let digest = hex(&[salt, hostname.as_bytes(), &nonce, shared_key.as_bytes()]);
    let ping = rmpv::Value::Array(vec![
        "PING".into(),
        hostname.into(),
        rmpv::Value::from(std::str::from_utf8(salt).unwrap()),
        digest.into(),
        "".into(),
        hex(&[]).into(),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &ping).unwrap();
    stream.write_all(&bytes).unwrap();
    let pong = rmpv::decode::read_value(stream).unwrap();
    if pong[1].as_bool() == Some(true) {
        let expected = hex(&[salt, b"vigil-test", &nonce, shared_key.as_bytes()]);
        assert_eq!(pong[4].as_str(), Some(expected.as_str()), "the server proves it knows the key");
    }
    pong
}

#[test]
fn the_shared_key_handshake_admits_the_right_key_and_disconnects_others() {
    let (_dir, server, address) =
        start(&["--forward-shared-key", "s3cr3t", "--forward-self-hostname", "vigil-test"]);
    let mut good = connect(&address);
    let pong = handshake(&mut good, "s3cr3t", "node-a");
    assert_eq!(pong[1].as_bool(), Some(true), "{pong}");
    good.write_all(
        &[
            mp::array(4),
            mp::str("auth.ok"),
            mp::uint(u64::from(T0)),
            mp::record(&[("log", "admitted")]),
            mp::options(&[("chunk", "a")]),
        ]
        .concat(),
    )
    .unwrap();
    read_ack(&mut good, "a");

    let mut bad = connect(&address);
    let pong = handshake(&mut bad, "wrong", "node-b");
    assert_eq!(pong[1].as_bool(), Some(false));
    assert_eq!(pong[2].as_str(), Some("shared key mismatch"));
    assert!(closed_within(&mut bad, Duration::from_secs(5)));

    // A client that ignores HELO and sends data at once (Python fluent-logger) is refused loudly.
    let mut rude = connect(&address);
    rude.write_all(
        &[mp::array(3), mp::str("auth.rude"), mp::uint(u64::from(T0)), mp::record(&[("log", "refused")])]
            .concat(),
    )
    .unwrap();
    assert!(closed_within(&mut rude, Duration::from_secs(5)));

    let answer = server.search_until("event.dataset:auth.*", 1, Duration::from_secs(10));
    assert_eq!(messages(&answer), ["admitted"]);
    let log = server.stop();
    assert!(log.contains("forward client failed authentication"), "{log}");
    assert!(log.contains("shared key mismatch"), "{log}");
    assert!(log.contains("sent data before authenticating"), "{log}");
}

/// Forward over TLS: a CA, a server certificate for 127.0.0.1 and a client
/// certificate, made fresh for each test with rcgen, and a rustls client.
mod tls {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    use super::*;

    pub struct Pki {
        pub ca: PathBuf,
        pub cert: PathBuf,
        pub key: PathBuf,
        pub client_cert: PathBuf,
        pub client_key: PathBuf,
    }

    pub fn pki(dir: &Path) -> Pki {
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Vigil test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (cert, key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client_cert, client_key) = leaf(vec!["fluent-bit.node-a".into()]);
        Pki {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", cert),
            key: write("key.pem", key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client-key.pem", client_key),
        }
    }

    pub type Stream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    /// A TLS connection trusting `pki.ca`, presenting the client certificate when asked to.
    pub fn connect(address: &str, pki: &Pki, client_certificate: bool) -> Stream {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&pki.ca).unwrap()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if client_certificate {
            let chain = vec![CertificateDer::from_pem_file(&pki.client_cert).unwrap()];
            let key = PrivateKeyDer::from_pem_file(&pki.client_key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        rustls::StreamOwned::new(connection, super::connect(address))
    }

    fn message(tag: &str, log: &str, chunk: &str) -> Vec<u8> {
        let entry = mp::entry(mp::event_time(T0, 1), mp::record(&[("log", log)]));
        [mp::array(3), mp::str(tag), mp::bin(&entry), mp::options(&[("chunk", chunk)])].concat()
    }

    #[test]
    fn over_tls_events_are_acked_and_plain_tcp_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
        let (_data, server, address) = start(&[
            "--forward-tls-cert",
            cert,
            "--forward-tls-key",
            key,
            "--forward-shared-key",
            "k",
            "--forward-self-hostname",
            "vigil-test",
        ]);
        let mut stream = connect(&address, &pki, false);
        // The shared-key handshake runs inside TLS, as with Fluentd's secure forward.
        let pong = handshake(&mut stream, "k", "node-a");
        assert_eq!(pong[1].as_bool(), Some(true), "{pong}");
        stream.write_all(&message("tls.ok", "sealed", "t1")).unwrap();
        read_ack(&mut stream, "t1");

        // A TCP health check (connect, close) is not a refusal.
        drop(TcpStream::connect(&address).unwrap());
        // A client that speaks plain forward to a TLS port gets nothing in and is closed.
        let mut plain = super::connect(&address);
        plain.write_all(&message("tls.plain", "in the clear", "p1")).unwrap();
        assert!(closed_within(&mut plain, Duration::from_secs(5)));

        let answer = server.search_until("event.dataset:tls.*", 1, Duration::from_secs(10));
        assert_eq!(messages(&answer), ["sealed"]);
        let (_, metrics) = server.get("/metrics");
        assert!(metrics.contains(r#"{reason="tls"} 1"#), "{metrics}");
        let log = server.stop();
        assert!(log.contains("forward TLS handshake failed"), "{log}");
    }

    #[test]
    fn with_a_client_ca_only_clients_with_a_signed_certificate_get_in() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let paths = [&pki.cert, &pki.key, &pki.ca].map(|path| path.to_str().unwrap());
        let (_data, server, address) = start(&[
            "--forward-tls-cert",
            paths[0],
            "--forward-tls-key",
            paths[1],
            "--forward-tls-client-ca",
            paths[2],
        ]);
        let mut signed = connect(&address, &pki, true);
        signed.write_all(&message("mtls.ok", "with a certificate", "m1")).unwrap();
        read_ack(&mut signed, "m1");

        let mut anonymous = connect(&address, &pki, false);
        let sent = anonymous.write_all(&message("mtls.anonymous", "without", "m2"));
        let mut byte = [0u8; 1];
        let answered = sent.is_ok() && matches!(anonymous.read(&mut byte), Ok(count) if count > 0);
        assert!(!answered, "a client without a certificate must not be answered");

        let answer = server.search_until("event.dataset:mtls.*", 1, Duration::from_secs(10));
        assert_eq!(messages(&answer), ["with a certificate"]);
        server.stop();
    }

    #[test]
    fn bad_tls_files_stop_the_server_at_start_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        // The key of another certificate.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--http", "127.0.0.1:0", "--forward", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--forward-tls-cert")
            .arg(&pki.cert)
            .arg("--forward-tls-key")
            .arg(&pki.client_key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("client-key.pem") && stderr.contains("does not fit"), "{stderr}");
    }
}

/// The real clients, installed by `.ci/run` into `.ci/venv` and `.ci/node_modules`.
mod clients {
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn python() -> Option<PathBuf> {
        let python = root().join(".ci/venv/bin/python");
        let installed = python.exists()
            && Command::new(&python)
                .args(["-c", "import fluent.sender"])
                .output()
                .is_ok_and(|out| out.status.success());
        installed.then_some(python)
    }

    fn node_modules() -> Option<PathBuf> {
        let modules = root().join(".ci/node_modules");
        let installed = modules.join("@fluent-org/logger/package.json").exists()
            && Command::new("node").arg("--version").output().is_ok_and(|out| out.status.success());
        installed.then_some(modules)
    }

    fn split(address: &str) -> (&str, &str) {
        address.rsplit_once(':').unwrap()
    }

    fn run(command: &mut Command, what: &str) {
        let output = command.output().unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
        assert!(
            output.status.success(),
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn python_fluent_logger_sends_in_message_mode() {
        let Some(python) = python() else {
            eprintln!(
                "SKIPPED python_fluent_logger_sends_in_message_mode: fluent-logger is not installed in .ci/venv (run .ci/run)"
            );
            return;
        };
        let (_dir, server, address) = start(&[]);
        let (host, port) = split(&address);
        let script = root().join("tests/clients/fluent_logger.py");
        run(Command::new(python).arg(script).args([host, port, "py", "20"]), "fluent_logger.py");
        let answer = server.search_until("event.dataset:py.py", 20, Duration::from_secs(10));
        let mut expected: Vec<String> = (0..20).map(|i| format!("python-{i}")).collect();
        expected.sort();
        assert_eq!(messages(&answer), expected);
        server.stop();
    }

    fn node_sends_in_every_mode(extra: &[&str], shared_key: Option<&str>, tls_ca: Option<&std::path::Path>) {
        let Some(modules) = node_modules() else {
            eprintln!("SKIPPED @fluent-org/logger tests: not installed in .ci/node_modules (run .ci/run)");
            return;
        };
        let (_dir, server, address) = start(extra);
        let (host, port) = split(&address);
        let script = root().join("tests/clients/fluent_org_logger.js");
        let modes = ["Message", "Forward", "PackedForward", "CompressedPackedForward"];
        for mode in modes {
            let mut command = Command::new("node");
            command.env("NODE_PATH", &modules).arg(&script).args([host, port, "node", mode, "25"]);
            if let Some(ca) = tls_ca {
                command.env("VIGIL_TLS_CA", ca);
            }
            command.args(shared_key);
            run(&mut command, mode);
        }
        let answer = server.search_until("event.dataset:node.node", 100, Duration::from_secs(10));
        let mut expected: Vec<String> =
            modes.iter().flat_map(|mode| (0..25).map(move |i| format!("{mode}-{i}"))).collect();
        expected.sort();
        assert_eq!(messages(&answer), expected);
        let odd = answer["hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|hit| hit["event"]["message"] == "Forward-3")
            .unwrap();
        assert_eq!(odd["@timestamp"], "2026-11-20T10:00:00.000000003Z", "EventTime keeps its nanoseconds");
        server.stop();
    }

    #[test]
    fn fluent_org_logger_sends_in_every_mode_with_acks() {
        node_sends_in_every_mode(&[], None, None);
    }

    #[test]
    fn fluent_org_logger_passes_the_shared_key_handshake() {
        node_sends_in_every_mode(&["--forward-shared-key", "s3cr3t"], Some("s3cr3t"), None);
    }

    #[test]
    fn fluent_org_logger_sends_over_tls_with_the_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let pki = super::tls::pki(dir.path());
        let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
        let flags = ["--forward-tls-cert", cert, "--forward-tls-key", key, "--forward-shared-key", "s3cr3t"];
        node_sends_in_every_mode(&flags, Some("s3cr3t"), Some(&pki.ca));
    }
}
