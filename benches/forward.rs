//! The forward protocol into durable storage: PackedForward chunks of 1,000
//! container-log records (as Fluent Bit's `kubernetes` filter ships them),
//! acks required, over 4 connections each waiting for its ack before the next
//! chunk (as Fluentd's flush threads do), into the real store (write-ahead log
//! with fsync per batch, tantivy index behind it). Each iteration is timed
//! from the first chunk sent to the last ack and the store's shutdown, i.e.
//! until every event is durable *and* committed to the index, so the figure
//! is the sustained rate, not a burst absorbed by the queues. A second bench
//! measures the forward path alone (scan, decode, normalize). Run with
//! `cargo bench --bench forward`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_index::{Store, StoreOptions, WalPosition};
use vigil_ingest::forward::frame::{self, FrameLimits, Scanner};
use vigil_ingest::forward::{ForwardMetrics, ForwardOptions, ForwardServer, normalize_entry};
use vigil_schema::{Event, EventIdGenerator};

/// The allocator of the `vigil` binary, so the store runs as it does in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS_PER_CHUNK: usize = 1_000;
const CONNECTIONS: usize = 4;
const CHUNKS_PER_CONNECTION: usize = 25;
const EVENTS: usize = EVENTS_PER_CHUNK * CONNECTIONS * CHUNKS_PER_CONNECTION;

/// The time of the bench's events: now, as a shipper's live events are
/// (a partition of today gets the store's full writer; past ones a small one).
fn base_seconds() -> u32 {
    chrono::Utc::now().timestamp() as u32
}

/// One container-log record of about 700 bytes, as msgpack.
fn record(n: usize, seconds: u32) -> rmpv::Value {
    let text = |s: &str| rmpv::Value::from(s);
    let map = |pairs: Vec<(&str, rmpv::Value)>| {
        rmpv::Value::Map(pairs.into_iter().map(|(key, value)| (text(key), value)).collect())
    };
    map(vec![
        (
            "time",
            rmpv::Value::from(
                chrono::DateTime::from_timestamp(i64::from(seconds), n as u32)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
        ),
        ("stream", text("stdout")),
        ("_p", text("F")),
        (
            "log",
            rmpv::Value::from(format!(
                "10.244.1.{} - - \"GET /api/orders/{n} HTTP/1.1\" 200 512 \"-\" \"kube-probe/1.31\"",
                n % 250
            )),
        ),
        (
            "kubernetes",
            map(vec![
                ("pod_name", rmpv::Value::from(format!("web-{}", n % 40))),
                ("namespace_name", text("shop")),
                ("pod_id", text("0b7c2f1e-6a1d-4b2e-9c3f-1d2e3f4a5b6c")),
                (
                    "labels",
                    map(vec![
                        ("app.kubernetes.io/name", text("web")),
                        ("pod-template-hash", text("7d9f8c6b5")),
                    ]),
                ),
                ("annotations", map(vec![("kubectl.kubernetes.io/default-container", text("web"))])),
                ("host", text("node-a")),
                ("pod_ip", text("10.244.1.17")),
                ("container_name", text("web")),
                ("docker_id", text("3f1e5c0d9b8a7f6e5d4c3b2a19081726354a5b6c7d8e9f0a1b2c3d4e5f607182")),
                ("container_hash", text("registry.example/web@sha256:1c4f0e")),
                ("container_image", text("registry.example/web:1.4.2")),
            ]),
        ),
    ])
}

/// A PackedForward message of `EVENTS_PER_CHUNK` entries with EventTimes, bin entries and a chunk id.
fn chunk_message(connection: usize) -> (Vec<u8>, Vec<u8>) {
    let seconds = base_seconds();
    let mut entries = Vec::new();
    for n in 0..EVENTS_PER_CHUNK {
        let time = [seconds.to_be_bytes(), (n as u32).to_be_bytes()].concat();
        let entry = rmpv::Value::Array(vec![rmpv::Value::Ext(0, time), record(n, seconds)]);
        rmpv::encode::write_value(&mut entries, &entry).unwrap();
    }
    let chunk = format!("bench-chunk-{connection}");
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("kube.var.log.containers"),
        rmpv::Value::Binary(entries),
        rmpv::Value::Map(vec![
            ("size".into(), rmpv::Value::from(EVENTS_PER_CHUNK)),
            ("chunk".into(), rmpv::Value::from(chunk.as_str())),
        ]),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &message).unwrap();
    let mut ack = Vec::new();
    let ack_value = rmpv::Value::Map(vec![("ack".into(), rmpv::Value::from(chunk.as_str()))]);
    rmpv::encode::write_value(&mut ack, &ack_value).unwrap();
    (bytes, ack)
}

fn forward_into_the_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(EVENTS as u64));
    let messages: Vec<(Vec<u8>, Vec<u8>)> = (0..CONNECTIONS).map(chunk_message).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    group.bench_function("packed_forward_1000_event_chunks_acked_100000_container_logs", |b| {
        b.iter_with_setup(
            || {
                let dir = tempfile::tempdir().unwrap();
                let options = StoreOptions {
                    commit_interval: Duration::from_millis(1000),
                    ..StoreOptions::new(dir.path())
                };
                let (store, durable) = Store::open(&options, WalPosition::default()).unwrap();
                let drain = std::thread::spawn(move || {
                    durable.into_iter().map(|batch| batch.events.len()).sum::<usize>()
                });
                let store = Arc::new(store);
                let sink = store.clone();
                let server = runtime.block_on(async {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    ForwardServer::start(
                        listener,
                        ForwardOptions {
                            limits: Default::default(),
                            auth: None,
                            tls: None,
                            audit_context: Default::default(),
                        },
                        sink,
                        Arc::new(ForwardMetrics::default()),
                    )
                    .unwrap()
                });
                (dir, store, drain, server)
            },
            |(dir, store, drain, server)| {
                let address = server.local_addr();
                let senders: Vec<_> = messages
                    .iter()
                    .cloned()
                    .map(|(message, ack)| {
                        std::thread::spawn(move || {
                            let mut stream = TcpStream::connect(address).unwrap();
                            stream.set_nodelay(true).unwrap();
                            let mut answer = vec![0u8; ack.len()];
                            for _ in 0..CHUNKS_PER_CONNECTION {
                                stream.write_all(&message).unwrap();
                                stream.read_exact(&mut answer).unwrap();
                                assert_eq!(answer, ack);
                            }
                        })
                    })
                    .collect();
                for sender in senders {
                    sender.join().unwrap();
                }
                runtime.block_on(server.shutdown(Duration::from_secs(5)));
                store.shutdown();
                drop(store);
                assert_eq!(drain.join().unwrap(), EVENTS);
                dir
            },
        )
    });
    group.finish();
}

/// The forward path's own cost, without storage: scanning, decoding and
/// normalizing one 1,000-entry PackedForward message.
fn decode_and_normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    let (message, _) = chunk_message(0);
    group.throughput(Throughput::Elements(EVENTS_PER_CHUNK as u64));
    let ids = EventIdGenerator::new();
    let limits = FrameLimits { max_decompressed_bytes: 1 << 30, max_entries: 1 << 20 };
    group.bench_function("decode_normalize_1000_container_logs", |b| {
        b.iter(|| {
            let length = Scanner::default().scan(&message, message.len()).unwrap().unwrap();
            let value = frame::decode_value(&message[..length]).unwrap();
            let frame = frame::decode_frame(value, limits, chrono::Utc::now()).unwrap().unwrap();
            let now = chrono::Utc::now();
            let events: Vec<Event> = frame
                .entries
                .into_iter()
                .map(|entry| {
                    normalize_entry(ids.next(), now, &frame.tag, entry, &Default::default()).unwrap()
                })
                .collect();
            assert_eq!(events.len(), EVENTS_PER_CHUNK);
            events
        })
    });
    group.finish();
}

criterion_group!(benches, decode_and_normalize, forward_into_the_store);
criterion_main!(benches);
