//! The HTTP sources for shippers: Falco, Fluentd / Fluent Bit log records,
//! and the Elasticsearch `_bulk` API, through the real server.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::support::{Server, encode};

const FAST_COMMITS: &[&str] = &["--commit-interval-ms", "100"];

fn samples() -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/external/samples");
    if path.exists() { Some(path) } else { None }
}

#[test]
fn falco_alerts_from_http_output_and_falcosidekick_are_searchable_by_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    // Falcosidekick's webhook body: uuid first, custom fields in output_fields.
    let sidekick = json!({
        "uuid": "6f2d0c1e-8a7b-4c5d-9e0f-1a2b3c4d5e6f", "output": "08:15:02.000111000: Warning Shell spawned (proc=bash pod=web-0)",
        "priority": "Warning", "rule": "Terminal shell in container", "time": "2026-11-20T08:15:02.000111000Z",
        "output_fields": {"proc.name": "bash", "k8s.pod.name": "web-0", "k8s.ns.name": "shop", "container.id": "3f1e5c0d9b8a"},
        "source": "syscall", "tags": ["container", "shell"], "hostname": "node-a"
    });
    let (status, answer, _) = server.post(
        "/api/v1/ingest/falco",
        &[("content-type", "application/json; charset=utf-8")],
        sidekick.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let mut expected = 1;
    if let Some(samples) = samples() {
        // Falco's own JSON output, one POST per alert as http_output sends it.
        let alerts =
            std::fs::read_to_string(samples.join("falco-json-output/single_rule_with_cat_write.json"))
                .unwrap();
        for line in alerts.lines().filter(|line| !line.trim().is_empty()) {
            let (status, answer, _) =
                server.post("/api/v1/ingest/falco", &[("content-type", "application/json")], line.as_bytes());
            assert_eq!(status, 200, "{answer}");
            expected += 1;
        }
    } else {
        eprintln!("SKIPPED the Falco sample part: ../shared/external/samples is absent");
    }
    let found = server.search_until("event.dataset:falco", expected, Duration::from_secs(5));
    assert_eq!(found["total"], expected);
    let shell =
        server.search_until("process.name:bash AND kubernetes.pod.name:web-0", 1, Duration::from_secs(2));
    assert_eq!(shell["hits"][0]["event"]["rule.name"], "Terminal shell in container");
    assert_eq!(shell["hits"][0]["event"]["event.severity"], 4);
    assert_eq!(shell["hits"][0]["original"]["uuid"], "6f2d0c1e-8a7b-4c5d-9e0f-1a2b3c4d5e6f");

    // Falco's text output is refused with the fix, as a 4xx (never retried).
    let (status, answer, _) = server.post(
        "/api/v1/ingest/falco",
        &[("content-type", "text/plain")],
        b"08:15:02: Warning Shell spawned",
    );
    assert_eq!(status, 400);
    assert!(answer["errors"][0]["reason"].as_str().unwrap().contains("invalid JSON"), "{answer}");
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains(&format!(
            "vigil_ingest_events_total{{source=\"falco\",result=\"accepted\"}} {expected}"
        )),
        "{metrics}"
    );
    server.stop();
}

#[test]
fn fluent_bit_and_fluentd_log_records_become_container_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);

    // Fluent Bit `http` output, format json: an array with a `date` key.
    let fluent_bit = json!([
        {"date": 1763626501.25, "stream": "stdout", "_p": "F", "log": "GET /healthz 200\n",
         "kubernetes": {"pod_name": "web-0", "namespace_name": "shop", "pod_id": "0b7c2f1e", "labels": {"app": "web"},
                        "host": "node-a", "container_name": "web", "docker_id": "3f1e5c0d", "container_image": "registry.example/web:1.4.2"}},
        {"date": 1763626502.5, "stream": "stderr", "log": "{\"level\":\"error\",\"msg\":\"db timeout\",\"ms\":5012}\n",
         "kubernetes": {"pod_name": "web-0", "namespace_name": "shop", "container_name": "web"}}
    ]);
    let (status, answer, _) = server.post(
        "/api/v1/ingest/logs/kube.var.log.containers",
        &[("content-type", "application/json")],
        fluent_bit.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2);

    // Fluentd `out_http`, NDJSON, gzip, records without Kubernetes metadata.
    let lines = "{\"message\":\"payment accepted\",\"time\":\"2026-11-20T08:15:03Z\"}\n{\"message\":\"payment refused\"}\n";
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(lines.as_bytes()).unwrap();
    let (status, answer, _) = server.post(
        "/api/v1/ingest/logs?dataset=payments.app",
        &[("content-type", "application/x-ndjson"), ("content-encoding", "gzip")],
        &encoder.finish().unwrap(),
    );
    assert_eq!(status, 200, "{answer}");

    let container = server.search_until(
        "event.dataset:k8s.container AND kubernetes.pod.name:web-0",
        2,
        Duration::from_secs(5),
    );
    assert_eq!(container["total"], 2);
    let error = server.search_until("log.level:error AND labels.ms:5012", 1, Duration::from_secs(2));
    assert_eq!(error["hits"][0]["event"]["message"], "db timeout");
    let app = server.search_until("event.dataset:payments.app", 2, Duration::from_secs(2));
    assert_eq!(app["total"], 2);
    let by_label = server.search_until("kubernetes.labels.app:web", 1, Duration::from_secs(2));
    assert_eq!(by_label["total"], 1);

    // Fluent Bit `http` with `format msgpack`: [[time, metadata], record] one after another.
    let mut msgpack = Vec::new();
    let entry = rmpv::Value::Array(vec![
        rmpv::Value::Array(vec![rmpv::Value::from(1_763_626_503u64), rmpv::Value::Map(Vec::new())]),
        rmpv::Value::Map(vec![
            (rmpv::Value::from("log"), rmpv::Value::from("packed line")),
            (
                rmpv::Value::from("kubernetes"),
                rmpv::Value::Map(vec![(rmpv::Value::from("pod_name"), rmpv::Value::from("web-1"))]),
            ),
        ]),
    ]);
    rmpv::encode::write_value(&mut msgpack, &entry).unwrap();
    let (status, answer, _) =
        server.post("/api/v1/ingest/logs", &[("content-type", "application/msgpack")], &msgpack);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    server.search_until("kubernetes.pod.name:web-1 AND \"packed line\"", 1, Duration::from_secs(5));
    let (status, answer, _) = server.post("/api/v1/ingest/logs", &[], b"[1, 2]");
    assert_eq!(status, 400, "{answer}");
    server.stop();
}

#[test]
fn every_fluent_bit_kubernetes_filter_sample_is_accepted_with_its_metadata() {
    let Some(samples) = samples() else {
        eprintln!(
            "SKIPPED every_fluent_bit_kubernetes_filter_sample_is_accepted_with_its_metadata: ../shared/external/samples is absent"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    let mut records = Vec::new();
    for entry in walk(&samples.join("fluent-bit-kubernetes-filter/out")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let Ok(Value::Array(pair)) = serde_json::from_str::<Value>(line) else { continue };
            let [time, Value::Object(record)] = pair.as_slice() else { continue };
            let mut record = record.clone();
            record.insert("date".into(), time.clone());
            records.push(Value::Object(record));
        }
    }
    assert!(records.len() >= 20, "the sample holds enriched records: {}", records.len());
    let with_pod =
        records.iter().filter(|record| record["kubernetes"]["pod_name"].is_string()).count() as u64;
    let (status, answer, _) =
        server.post("/api/v1/ingest/logs/kube", &[], Value::Array(records.clone()).to_string().as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rejected"], 0, "{answer}");
    assert_eq!(answer["accepted"], records.len());
    let found = server.search_until(
        "event.dataset:k8s.container AND _exists_:kubernetes.pod.name AND _exists_:kubernetes.namespace",
        with_pod,
        Duration::from_secs(5),
    );
    assert_eq!(found["total"], with_pod);
    server.stop();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn the_elasticsearch_bulk_api_answers_per_item_as_clients_expect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    // As Fluent Bit's `es` output sends it.
    let body = [
        json!({"create": {"_index": "fluent-bit"}}).to_string(),
        json!({"@timestamp": "2026-11-20T08:15:01.000Z", "log": "started", "kubernetes": {"pod_name": "api-0", "namespace_name": "shop"}}).to_string(),
        json!({"create": {"_index": "fluent-bit"}}).to_string(),
        "{not json".to_owned(),
        json!({"index": {}}).to_string(),
        json!({"message": "from vector", "host": "node-b"}).to_string(),
    ]
    .join("\n")
        + "\n";
    let (status, answer, _) =
        server.post("/vector-logs/_bulk", &[("content-type", "application/x-ndjson")], body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errors"], true);
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["create"]["status"], 201);
    assert_eq!(items[0]["create"]["result"], "created");
    assert!(items[0]["create"]["_id"].as_str().unwrap().len() == 26);
    assert_eq!(items[1]["create"]["status"], 400);
    assert!(items[1]["create"]["error"]["reason"].as_str().unwrap().contains("line 4"), "{answer}");
    assert_eq!(items[2]["index"]["_index"], "vector-logs");
    let id = items[0]["create"]["_id"].as_str().unwrap();
    server.search_until(&format!("event.id:{id}"), 1, Duration::from_secs(5));
    let vector = server.search_until("event.dataset:vector-logs", 1, Duration::from_secs(2));
    assert_eq!(vector["hits"][0]["event"]["host.name"], "node-b");
    let (_, pods) = server.get_json(&format!("/api/v1/search?q={}", encode("kubernetes.pod.name:api-0")));
    assert_eq!(pods["total"], 1);
    let (status, health) = server.get_json("/_cluster/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("green")));
    let (status, _, _) = server.post("/_bulk", &[], b"not an action\n");
    assert_eq!(status, 400);
    server.stop();
}

/// A port free on both TCP and UDP (syslog listens on both).
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn syslog_from_logger_over_udp_and_tcp_in_both_formats_is_searchable() {
    if std::process::Command::new("logger").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED syslog_from_logger_over_udp_and_tcp_in_both_formats_is_searchable: `logger` (util-linux) is not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let server =
        Server::start(dir.path(), &["--commit-interval-ms", "100", "--syslog", &format!("127.0.0.1:{port}")]);
    let logger = |args: &[&str]| {
        let status = std::process::Command::new("logger")
            .args(["--server", "127.0.0.1", "--port", &port])
            .args(args)
            .status()
            .expect("run logger");
        assert!(status.success(), "logger {args:?}");
    };
    logger(&["--tcp", "--rfc5424", "-t", "vigiltest-tcp5424", "hello over tcp"]);
    logger(&["--udp", "--rfc3164", "-t", "vigiltest-udp3164", "hello over udp"]);
    logger(&[
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-p",
        "auth.warning",
        "-t",
        "vigiltest-octet",
        "counted frame",
    ]);
    logger(&[
        "--udp",
        "--rfc5424",
        "--sd-id",
        "zoo@32473",
        "--sd-param",
        "tiger=\"hungry\"",
        "-t",
        "vigiltest-sd",
        "with data",
    ]);

    // A broken line on TCP is refused; the good one after it is kept.
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"not syslog at all\n<13>1 - - vigiltest-raw - - - after the bad one\n",
    )
    .unwrap();
    drop(stream);

    let found = server.search_until("process.name:vigiltest-*", 5, Duration::from_secs(5));
    assert_eq!(found["total"], 5, "{found}");
    let tcp = server.search_until("process.name:vigiltest-tcp5424", 1, Duration::from_secs(1));
    let event = &tcp["hits"][0]["event"];
    assert_eq!(event["event.dataset"], "syslog");
    assert_eq!(event["message"], "hello over tcp");
    assert_eq!(event["log.syslog.facility.name"], "user");
    assert_eq!(event["log.syslog.severity.name"], "notice");
    assert_eq!(event["source.ip"], "127.0.0.1");
    let octet = server.search_until(
        "process.name:vigiltest-octet AND log.syslog.facility.name:auth AND log.syslog.severity.code:4",
        1,
        Duration::from_secs(1),
    );
    assert_eq!(octet["hits"][0]["event"]["message"], "counted frame");
    let structured = server.search_until("process.name:vigiltest-sd", 1, Duration::from_secs(1));
    assert_eq!(structured["hits"][0]["original"]["structured_data"]["zoo@32473"]["tiger"], "hungry");
    let bsd = server.search_until("process.name:vigiltest-udp3164", 1, Duration::from_secs(1));
    assert_eq!(bsd["hits"][0]["event"]["message"], "hello over udp");
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("vigil_ingest_events_total{source=\"syslog\",result=\"rejected\"} 1"),
        "{metrics}"
    );
    server.stop();
}

#[test]
fn record_limits_refuse_one_record_and_keep_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--commit-interval-ms",
            "100",
            "--max-record-bytes",
            "2048",
            "--max-depth",
            "6",
            "--max-fields",
            "40",
        ],
    );
    let wide: serde_json::Map<String, Value> = (0..60).map(|n| (format!("k{n}"), json!(n))).collect();
    let lines = [
        json!({"message": "fine", "kubernetes": {"pod_name": "ok-0"}}).to_string(),
        json!({"message": "deep", "a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}).to_string(),
        Value::Object(wide).to_string(),
        json!({"message": "x".repeat(5000)}).to_string(),
    ]
    .join("\n");
    let (status, answer, _) = server.post("/api/v1/ingest/logs?dataset=limits", &[], lines.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let reasons: Vec<&str> =
        answer["errors"].as_array().unwrap().iter().map(|error| error["reason"].as_str().unwrap()).collect();
    assert!(reasons[0].contains("http.max_depth"), "{reasons:?}");
    assert!(reasons[1].contains("http.max_fields"), "{reasons:?}");
    assert!(reasons[2].contains("http.max_record_bytes"), "{reasons:?}");
    assert_eq!(answer["errors"][2]["line"], 4);

    // The audit endpoint keeps the same limits, per event of an EventList.
    let mut big = crate::support::audit_event("too-big", "create", "configmaps", None, "dana");
    big["requestObject"] = json!({"data": {"blob": "y".repeat(4000)}});
    let small = crate::support::audit_event("small", "get", "pods", None, "dana");
    let (status, answer, _) = server.post(
        "/api/v1/ingest/k8s-audit",
        &[],
        crate::support::event_list(&[big, small]).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["accepted"].as_u64(), answer["errors"][0]["index"].as_u64()), (Some(1), Some(0)));
    server.search_until("user.name:dana OR kubernetes.pod.name:ok-0", 2, Duration::from_secs(5));
    server.stop();
}

#[test]
fn tailed_container_logs_follow_rotation_and_a_restart_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let containers = dir.path().join("containers");
    std::fs::create_dir(&containers).unwrap();
    let id = "b".repeat(64);
    let file = containers.join(format!("api-0_shop_api-{id}.log"));
    let line = |n: usize| format!("2026-11-20T08:15:{:02}.000000001Z stdout F request {n} served\n", n % 60);
    std::fs::write(&file, (0..5).map(line).collect::<String>()).unwrap();
    let glob = format!("{}/*.log", containers.display());
    let data = dir.path().join("data");
    let args = ["--commit-interval-ms", "100", "--tail", glob.as_str()];
    let server = Server::start(&data, &args);
    let found = server.search_until(
        "kubernetes.pod.name:api-0 AND kubernetes.namespace:shop",
        5,
        Duration::from_secs(5),
    );
    assert_eq!(found["total"], 5, "{found}");
    assert_eq!(found["hits"][0]["event"]["container.id"], id.as_str());
    // Received now: the id is given when the tailer hands the lines on.
    let ingested = found["hits"][0]["event"]["event.ingested"].as_str().unwrap();
    let age = chrono::Utc::now() - chrono::DateTime::parse_from_rfc3339(ingested).unwrap().to_utc();
    assert!(age < chrono::Duration::minutes(5), "{ingested}");

    // More lines, a CRI line split in two parts, then rotation by rename.
    let mut appended = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    appended.write_all(format!("{}{}", line(5), line(6)).as_bytes()).unwrap();
    appended
        .write_all(b"2026-11-20T08:16:00Z stdout P first half \n2026-11-20T08:16:00Z stdout F second half\n")
        .unwrap();
    drop(appended);
    std::fs::rename(&file, containers.join("rotated.log.1")).unwrap();
    std::fs::write(&file, (7..9).map(line).collect::<String>()).unwrap();
    server.search_until("kubernetes.pod.name:api-0", 10, Duration::from_secs(5));
    let joined = server.search_until("\"first half second half\"", 1, Duration::from_secs(2));
    assert_eq!(joined["total"], 1);
    server.stop();

    let server = Server::start(&data, &args);
    std::thread::sleep(Duration::from_millis(800));
    let (_, all) =
        server.get_json(&format!("/api/v1/search?limit=0&q={}", encode("kubernetes.pod.name:api-0")));
    assert_eq!(all["total"], 10, "a restart repeats nothing: {all}");

    // Rotation by truncation (copytruncate): the file starts again, shorter.
    std::fs::write(&file, line(20)).unwrap();
    let found = server.search_until("kubernetes.pod.name:api-0", 11, Duration::from_secs(5));
    assert_eq!(found["total"], 11, "{found}");
    let (_, truncated) =
        server.get_json(&format!("/api/v1/search?limit=0&q={}", encode("\"request 20 served\"")));
    assert_eq!(truncated["total"], 1);
    let (_, metrics) = server.get("/metrics");
    assert!(metrics.contains("vigil_tail_lines_total"), "{metrics}");
    server.stop();

    // And nothing again after one more restart.
    let server = Server::start(&data, &args);
    std::thread::sleep(Duration::from_millis(800));
    let (_, all) =
        server.get_json(&format!("/api/v1/search?limit=0&q={}", encode("kubernetes.pod.name:api-0")));
    assert_eq!(all["total"], 11, "{all}");
    server.stop();
}
