//! `vigil gen`: realistic Kubernetes audit events for load tests and
//! benchmarks, as an API server's audit log (one JSON Event per line).
//!
//! Deterministic for a seed. The mix: control-plane components and service
//! accounts watching and listing, people reading and changing workloads,
//! secrets reads, some denials, a few execs; Request-level bodies on writes.
//! Events average about 1 KB.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::Args;
use serde_json::{Value, json};
use vigil_index::parse_time_bound;

#[derive(Debug, Args)]
pub struct GenArgs {
    /// How many events to write.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Time of the first event: RFC 3339, now, or a span back like 24h.
    #[arg(long, default_value = "24h")]
    start: String,
    /// Event time covered by all the events, e.g. 24h.
    #[arg(long, default_value = "24h")]
    span: String,
    /// Seed of the generator; the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What to generate: Kubernetes audit Events; container-log records as
    /// Fluent Bit's `kubernetes` filter ships them (for `vigil load --path
    /// /api/v1/ingest/logs`); or the lines of a kubelet CRI log file (for `--tail`).
    #[arg(long, value_enum, default_value_t = Kind::Audit)]
    kind: Kind,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Audit,
    Container,
    Cri,
}

/// FNV-1a, 64 bits: a stable stand-in for an identifier derived from a name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// A small, fast, deterministic generator (xorshift64*).
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub(crate) const NAMESPACES: &[&str] =
    &["default", "kube-system", "shop", "payments", "monitoring", "ingress", "ci", "data", "auth", "search"];
pub(crate) const PEOPLE: &[&str] = &[
    "alice@corp.example",
    "bob@corp.example",
    "carol@corp.example",
    "dan@corp.example",
    "erin@corp.example",
];
const COMPONENTS: &[&str] = &[
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:apiserver",
    "system:node:worker-1",
    "system:node:worker-2",
    "system:node:worker-3",
];
const SERVICE_ACCOUNTS: &[&str] = &[
    "deployer",
    "argocd-application-controller",
    "prometheus",
    "fluent-bit",
    "cert-manager",
    "external-dns",
];
pub(crate) const READ_RESOURCES: &[&str] = &[
    "pods",
    "configmaps",
    "services",
    "endpoints",
    "deployments",
    "replicasets",
    "nodes",
    "events",
    "leases",
    "secrets",
];
const WRITE_RESOURCES: &[&str] =
    &["pods", "configmaps", "deployments", "services", "leases", "events", "secrets", "rolebindings"];
const AGENTS: &[&str] = &[
    "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
    "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller",
    "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46",
    "argocd-application-controller/v2.12.4 (linux/amd64)",
    "Go-http-client/2.0",
];

/// One audit event number `n` at time `time`.
pub fn audit_event(random: &mut Random, n: u64, time: DateTime<Utc>) -> Value {
    let namespace = *random.pick(NAMESPACES);
    let roll = random.below(100);
    let (username, groups): (String, Vec<&str>) = if roll < 45 {
        (random.pick(COMPONENTS).to_string(), vec!["system:authenticated"])
    } else if roll < 85 {
        (
            format!("system:serviceaccount:{namespace}:{}", random.pick(SERVICE_ACCOUNTS)),
            vec!["system:serviceaccounts", "system:authenticated"],
        )
    } else {
        (random.pick(PEOPLE).to_string(), vec!["developers", "system:authenticated"])
    };
    let write = random.below(100) < 25;
    let verb = if write {
        *random.pick(&["create", "update", "patch", "delete"])
    } else {
        *random.pick(&["get", "list", "watch"])
    };
    let resource = if write { *random.pick(WRITE_RESOURCES) } else { *random.pick(READ_RESOURCES) };
    let name = format!("{}-{:x}", resource.trim_end_matches('s'), random.below(5000));
    let exec = !write && random.below(1000) < 3;
    let denied = random.below(100) < 4;
    let code = if denied {
        403
    } else if exec {
        101
    } else if verb == "create" {
        201
    } else {
        200
    };
    let request_uri = if exec {
        format!(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec?command=sh&container=main&stdin=true&stdout=true&tty=true"
        )
    } else if verb == "list" || verb == "watch" {
        format!("/api/v1/namespaces/{namespace}/{resource}?limit=500&resourceVersion=0")
    } else {
        format!("/api/v1/namespaces/{namespace}/{resource}/{name}")
    };
    let received = time.to_rfc3339_opts(SecondsFormat::Micros, true);
    let completed = (time + Duration::microseconds(1200 + random.below(9000) as i64))
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut object_ref =
        json!({"resource": if exec { "pods" } else { resource }, "namespace": namespace, "apiVersion": "v1"});
    if verb != "list" && verb != "watch" {
        object_ref["name"] = json!(name);
    }
    if exec {
        object_ref["subresource"] = json!("exec");
    }
    let reason = if denied {
        String::new()
    } else {
        format!(
            "RBAC: allowed by RoleBinding \"{}/{namespace}\" of Role \"{}\" to User \"{username}\"",
            random.pick(SERVICE_ACCOUNTS),
            resource
        )
    };
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": if write { "Request" } else { "Metadata" },
        "auditID": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", random.next() as u32, n as u16, n % 4096, random.below(4096), n),
        "stage": if exec { "ResponseStarted" } else { "ResponseComplete" },
        "requestURI": request_uri,
        "verb": if exec { "create" } else { verb },
        // A user's uid is the same on each of its requests, as in a cluster.
        "user": {"username": username, "uid": format!("{:016x}", fnv1a(username.as_bytes())), "groups": groups},
        "sourceIPs": [format!("10.{}.{}.{}", 10 + random.below(4), random.below(256), 1 + random.below(254))],
        "userAgent": *random.pick(AGENTS),
        "objectRef": object_ref,
        "responseStatus": if denied { json!({"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403}) } else { json!({"metadata": {}, "code": code}) },
        "requestReceivedTimestamp": received,
        "stageTimestamp": completed,
        "annotations": {"authorization.k8s.io/decision": if denied { "forbid" } else { "allow" }, "authorization.k8s.io/reason": reason}
    });
    if write && verb != "delete" {
        event["requestObject"] = json!({
            "kind": "Unknown", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": resource, "team": namespace}},
            "spec": {"replicas": 1 + random.below(5), "image": format!("registry.example/{namespace}/app:1.{}.{}", random.below(20), random.below(10))}
        });
    }
    event
}

const APPS: &[(&str, &str)] = &[
    ("web", "registry.example/shop/web:1.4.2"),
    ("api", "registry.example/shop/api:2.0.1"),
    ("worker", "registry.example/shop/worker:2.0.1"),
    ("payments", "registry.example/pay/payments:0.9.7"),
    ("ingress-nginx", "registry.k8s.io/ingress-nginx/controller:v1.11.2"),
];
const LEVELS: &[&str] = &["debug", "info", "info", "info", "warn", "error"];

/// One container-log record number `n` at time `time`, as Fluent Bit's
/// `kubernetes` filter ships it (about 500 bytes): one line in five is a JSON
/// log line, the others access-log lines.
pub fn container_record(random: &mut Random, n: u64, time: DateTime<Utc>) -> Value {
    let (app, image) = *random.pick(APPS);
    let namespace = *random.pick(NAMESPACES);
    let replica = random.below(6);
    let pod = format!("{app}-7d9f8c6b5-{replica:05}");
    let node = format!("worker-{}", random.below(3) + 1);
    let log = if random.below(5) == 0 {
        json!({
            "level": random.pick(LEVELS),
            "msg": "request handled",
            "order": n,
            "user": random.pick(PEOPLE),
            "duration_ms": random.below(900),
        })
        .to_string()
    } else {
        format!(
            "10.244.{}.{} - - \"GET /api/orders/{n} HTTP/1.1\" {} {} \"-\" \"{}\"\n",
            random.below(4),
            random.below(250),
            [200, 200, 200, 201, 404, 500][random.below(6) as usize],
            random.below(20_000),
            random.pick(AGENTS),
        )
    };
    json!({
        "date": time.timestamp_nanos_opt().unwrap_or_default() as f64 / 1e9,
        "stream": if random.below(10) == 0 { "stderr" } else { "stdout" },
        "_p": "F",
        "log": log,
        "kubernetes": {
            "pod_name": pod,
            "namespace_name": namespace,
            "pod_id": format!("0b7c2f1e-6a1d-4b2e-9c3f-{:012x}", replica * 7919 + app.len() as u64),
            "labels": {"app.kubernetes.io/name": app, "pod-template-hash": "7d9f8c6b5"},
            "host": node,
            "container_name": app,
            "docker_id": format!("{:016x}{:048x}", (replica + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), app.len()),
            "container_image": image,
        },
    })
}

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let start =
        parse_time_bound(&args.start, now).map_err(|message| anyhow::anyhow!("--start: {message}"))?;
    let span =
        vigil_config::parse_duration(&args.span).map_err(|message| anyhow::anyhow!("--span: {message}"))?;
    let step_nanos = (span.as_nanos() / u128::from(args.events.max(1))).max(1) as i64;
    let mut random = Random::new(args.seed);
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, sink);
    for n in 0..args.events {
        // Mostly in order, some late by up to a minute, as real senders are.
        let jitter = if random.below(100) < 5 { -(random.below(60_000_000_000) as i64) } else { 0 };
        let time = start + Duration::nanoseconds(step_nanos.saturating_mul(n as i64).saturating_add(jitter));
        let event = match args.kind {
            Kind::Audit => audit_event(&mut random, n, time),
            Kind::Container => container_record(&mut random, n, time),
            Kind::Cri => {
                // `<time> <stream> F <line>`, as the kubelet writes it.
                let record = container_record(&mut random, n, time);
                let line = record["log"].as_str().unwrap_or_default().trim_end();
                let stamp = time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                write!(out, "{stamp} {} F {line}", record["stream"].as_str().unwrap_or("stdout"))?;
                out.write_all(b"\n")?;
                continue;
            }
        };
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
