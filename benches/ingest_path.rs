//! The per-event work of the ingest path, without I/O: decoding and
//! normalizing an audit webhook body, matching the built-in rules, and
//! parsing a query. Run with `cargo bench --bench ingest_path`.

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use vigil_ingest::k8s_audit::{self, Context};
use vigil_rules::{RuleSet, RuleSource};
use vigil_schema::EventIdGenerator;

/// An audit event of about 1 KB, as a Request-level ResponseComplete.
fn audit_event(n: usize) -> Value {
    let verb = ["get", "list", "create", "patch"][n % 4];
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": format!("6c3b1f0e-1d2a-4b5c-9e8f-{n:012}"), "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/team-{}/pods/worker-{n}", n % 17), "verb": verb,
        "user": {"username": format!("system:serviceaccount:team-{}:builder", n % 17), "uid": "2d0c7e5a-0f4b-4d7e-8a57-3b1f6c9e2a10",
                 "groups": ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]},
        "sourceIPs": ["10.12.4.7"], "userAgent": "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller",
        "objectRef": {"resource": "pods", "namespace": format!("team-{}", n % 17), "name": format!("worker-{n}"), "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestObject": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": format!("worker-{n}"), "labels": {"app": "worker", "tier": "batch"}},
                          "spec": {"containers": [{"name": "main", "image": "registry.example/worker:1.4.2", "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}]}},
        "requestReceivedTimestamp": "2026-11-20T10:00:00.123456Z", "stageTimestamp": "2026-11-20T10:00:00.130001Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"builder/team\" of Role \"builder\" to ServiceAccount \"builder/team\""}
    })
}

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
            let decoded = k8s_audit::decode_body(black_box(&body), &ids, Utc::now(), &context);
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
        .map(|n| k8s_audit::normalize(ids.next(), Utc::now(), audit_event(n), &Context::default()).unwrap())
        .collect();
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("builtin_pack_1000_audit_events", |b| {
        b.iter(|| events.iter().map(|event| rules.evaluate(black_box(event)).len()).sum::<usize>())
    });
    group.finish();
}

fn parse_queries(c: &mut Criterion) {
    let text = r#"user.name:"system:serviceaccount:kube-system:x" AND (objectRef.resource:secrets OR verb:list) -stage:RequestReceived"#;
    c.bench_function("query/parse", |b| b.iter(|| vigil_index::query::parse(black_box(text)).unwrap()));
}

criterion_group!(benches, decode_and_normalize, match_builtin_rules, parse_queries);
criterion_main!(benches);
