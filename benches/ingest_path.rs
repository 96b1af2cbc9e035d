//! The per-event work of the ingest path, without I/O: decoding and
//! normalizing an audit webhook body, matching the built-in rules, reading
//! a record back into a tantivy document, and parsing a query. Run with
//! `cargo bench --bench ingest_path`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use vigil_ingest::k8s_audit::{self, Context};
use vigil_rules::{RuleSet, RuleSource};
use vigil_schema::EventIdGenerator;

mod common;
use common::audit_event;

/// The allocator of the `vigil` binary, so per-event costs (allocation
/// heavy) are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn webhook_body(events: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..events).map(audit_event).collect();
    serde_json::to_vec(
        &json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}),
    )
    .unwrap()
}

fn decode_and_normalize(c: &mut Criterion) {
    let body = webhook_body(400);
    let ids = EventIdGenerator::new();
    let context = Context::default();
    let mut group = c.benchmark_group("k8s_audit");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_and_normalize_webhook_body_400_events", |b| {
        b.iter(|| {
            let decoded = k8s_audit::decode_body(black_box(&body), &ids, &context);
            assert_eq!(decoded.events.len(), 400);
            decoded
        })
    });
    group.finish();
}

fn match_builtin_rules(c: &mut Criterion) {
    let rules = RuleSet::load(&[RuleSource::Builtin]).unwrap();
    let ids = EventIdGenerator::new();
    let events: Vec<_> = (0..1000)
        .map(|n| k8s_audit::normalize(ids.next(), audit_event(n), &Context::default()).unwrap())
        .collect();
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("builtin_pack_1000_audit_events", |b| {
        b.iter(|| events.iter().map(|event| rules.evaluate(black_box(event)).len()).sum::<usize>())
    });
    group.finish();
}

/// What the WAL thread does with each event (encode its record), and what
/// the index thread does with each record it reads back from the log:
/// parse it (putting back the fields it copies from its original), make the
/// tantivy document, and drop the event.
fn records_into_documents(c: &mut Criterion) {
    let ids = EventIdGenerator::new();
    let events: Vec<_> = (0..1000)
        .map(|n| k8s_audit::normalize(ids.next(), audit_event(n), &Context::default()).unwrap())
        .collect();
    let records: Vec<Vec<u8>> =
        events.iter().map(|event| vigil_schema::record::encode(event).unwrap()).collect();
    let schema = vigil_index::doc::DocSchema::new();
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(records.len() as u64));
    // What the WAL thread does with each event it is given.
    group.bench_function("encode_1000_audit_events", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|event| vigil_schema::record::encode(black_box(event)).unwrap().len())
                .sum::<usize>()
        })
    });
    group.bench_function("decode_1000_audit_records", |b| {
        b.iter(|| {
            records
                .iter()
                .map(|record| vigil_schema::record::decode(record).unwrap().fields.len())
                .sum::<usize>()
        })
    });
    group.bench_function("decode_into_documents_1000_audit_records", |b| {
        b.iter(|| {
            for record in &records {
                let event = vigil_schema::record::decode(record).unwrap();
                black_box(schema.to_document_with_stored(&event, record, vigil_index::doc::Layout::CURRENT));
            }
        })
    });
    group.finish();
}

fn parse_queries(c: &mut Criterion) {
    let text = r#"user.name:"system:serviceaccount:kube-system:x" AND (objectRef.resource:secrets OR verb:list) -stage:RequestReceived"#;
    c.bench_function("query/parse", |b| b.iter(|| vigil_index::query::parse(black_box(text)).unwrap()));
}

criterion_group!(benches, decode_and_normalize, match_builtin_rules, records_into_documents, parse_queries);
criterion_main!(benches);
