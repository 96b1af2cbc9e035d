//! Rule matching and loading: the built-in pack with SigmaHQ's Kubernetes
//! rules over real audit events, the same with every SigmaHQ rule loaded,
//! loading and compiling the whole SigmaHQ corpus, and the longest pause a
//! reload causes to matching. Run with `cargo bench --bench rules`.
//!
//! The events are the microk8s sample and the rules SigmaHQ's, both outside
//! the repository (`../shared/external`); without them the corpus benches
//! print SKIPPED and the matching benches use generated audit events.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use vigil_ingest::k8s_audit::{self, Context};
use vigil_rules::{LiveRules, RuleOptions, RuleSet, RuleSource, RulesOrigin};
use vigil_schema::{Event, EventIdGenerator};

/// The allocator of the `vigil` binary, so per-event costs (allocation
/// heavy) are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn external(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/external").join(relative);
    if path.exists() {
        Some(path)
    } else {
        println!("SKIPPED: {} is absent", path.display());
        None
    }
}

fn generated_event(n: usize) -> Value {
    let verb = ["get", "list", "update", "watch"][n % 4];
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": format!("a-{n}"),
        "stage": "ResponseComplete", "requestURI": format!("/api/v1/namespaces/team-{}/pods/w-{n}", n % 7),
        "verb": verb,
        "user": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"]},
        "sourceIPs": ["10.0.0.4"], "userAgent": "kube-controller-manager/v1.31.2",
        "objectRef": {"resource": "pods", "namespace": format!("team-{}", n % 7), "name": format!("w-{n}"), "apiVersion": "v1"},
        "responseStatus": {"code": 200}, "requestReceivedTimestamp": "2026-11-20T10:00:00Z",
        "annotations": {"authorization.k8s.io/decision": "allow"}
    })
}

/// Normalized audit events: the microk8s sample's, else generated ones.
fn audit_events() -> Vec<Event> {
    let ids = EventIdGenerator::new();
    let originals: Vec<Value> = match external("samples/microk8s-audit-immudb/k8s.log") {
        Some(path) => std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        None => (0..3000).map(generated_event).collect(),
    };
    originals
        .into_iter()
        .map(|original| k8s_audit::normalize(ids.next(), original, &Context::default()).unwrap())
        .collect()
}

fn kubernetes_sources() -> Vec<RuleSource> {
    let mut sources = vec![RuleSource::Builtin];
    if let Some(path) = external("sigma/kubernetes") {
        sources.push(RuleSource::Path(path));
    }
    sources
}

fn match_events(rules: &RuleSet, events: &[Event]) -> usize {
    events.iter().map(|event| rules.evaluate(black_box(event)).len()).sum()
}

fn matching(c: &mut Criterion) {
    let events = audit_events();
    let kubernetes = RuleSet::load(&kubernetes_sources()).unwrap();
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("builtin_and_sigmahq_kubernetes_over_audit_events", |b| {
        b.iter(|| match_events(&kubernetes, &events))
    });
    if let Some(all) = external("sigma/all-rules") {
        let mut sources = kubernetes_sources();
        sources.push(RuleSource::Path(all));
        let (everything, _) = RuleSet::load_lenient(&sources, &RuleOptions::default());
        group.bench_function("builtin_and_every_sigmahq_rule_over_audit_events", |b| {
            b.iter(|| match_events(&everything, &events))
        });
    }
    group.finish();
}

fn loading(c: &mut Criterion) {
    let Some(all) = external("sigma/all-rules") else { return };
    let sources = vec![RuleSource::Path(all)];
    let mut group = c.benchmark_group("rules_load");
    group.sample_size(10);
    group.bench_function("load_and_compile_every_sigmahq_rule", |b| {
        b.iter(|| {
            let (rules, _) = RuleSet::load_lenient(black_box(&sources), &RuleOptions::default());
            assert!(rules.rules().len() > 3000);
            rules
        })
    });
    group.finish();
}

/// Matching goes on while another thread reloads every SigmaHQ rule; the
/// longest gap between two matched events is the pause a reload causes.
fn reload_pause(c: &mut Criterion) {
    let Some(all) = external("sigma/all-rules") else { return };
    let events = audit_events();
    let mut sources = kubernetes_sources();
    sources.push(RuleSource::Path(all));
    let initial = Arc::new(RuleSet::load(&kubernetes_sources()).unwrap());
    let live = Arc::new(LiveRules::new(initial, RulesOrigin::default()));
    let reloader = {
        let live = live.clone();
        std::thread::spawn(move || {
            for _ in 0..3 {
                let (rules, _) = RuleSet::load_lenient(&sources, &RuleOptions::default());
                live.replace(Arc::new(rules), RulesOrigin::default());
            }
        })
    };
    let mut longest = Duration::ZERO;
    let mut last = Instant::now();
    let mut matched = 0_usize;
    while !reloader.is_finished() {
        for event in &events {
            matched += live.current().evaluate(event).len();
            let now = Instant::now();
            longest = longest.max(now - last);
            last = now;
        }
    }
    reloader.join().unwrap();
    live.collect_retired();
    println!(
        "rules_reload/longest_gap_between_matched_events_during_3_reloads: {longest:?} ({matched} matches)"
    );
    let mut group = c.benchmark_group("rules_reload");
    group.bench_function("swap_in_a_new_rule_set", |b| {
        let replacement = live.current();
        b.iter(|| live.replace(replacement.clone(), RulesOrigin::default()))
    });
    group.finish();
}

criterion_group!(benches, matching, loading, reload_pause);
criterion_main!(benches);
