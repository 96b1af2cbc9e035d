//! The offline commands, run as a user runs them.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{audit_event, event_list, vigil_binary};

fn vigil(args: &[&str]) -> Output {
    Command::new(vigil_binary()).args(args).env("RUST_LOG", "warn").output().expect("run vigil")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn rules_eval_prints_one_json_line_per_match_with_one_based_lines() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let mut secret_read = audit_event("e-3", "get", "secrets", None, "rhea@corp.example");
    secret_read["objectRef"]["name"] = json!("db");
    write_lines(
        &events,
        &[
            audit_event("e-1", "get", "pods", None, "dana").to_string(),
            audit_event("e-2", "create", "pods", Some("exec"), "mallory").to_string(),
            String::new(),
            secret_read.to_string(),
            json!({"output": "shell", "priority": "Warning", "rule": "Terminal shell in container", "time": "2026-11-20T10:00:00Z", "output_fields": {}}).to_string(),
        ],
    );
    let output = vigil(&["rules", "eval", "--builtin", "--events", events.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: Vec<Value> =
        stdout(&output).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(
        printed,
        vec![
            json!({"rule_id": "6f1d9a30-5c2b-4e57-9a8e-1b7c2d40e001", "line": 2}),
            json!({"rule_id": "6f1d9a30-5c2b-4e57-9a8e-1b7c2d40e002", "line": 4}),
        ]
    );

    // A directory of rules, and a bad line reported by number with exit 1.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("shell.yml"),
        "title: Falco Shell\nid: falco-shell\nlevel: high\nlogsource:\n  product: falco\ndetection:\n  selection:\n    rule.name|contains: shell\n  condition: selection\n",
    )
    .unwrap();
    std::fs::write(&events, format!("{}\n{{broken\n", json!({"output": "x", "priority": "Error", "rule": "Terminal shell in container", "time": "2026-11-20T10:00:00Z"}))).unwrap();
    let output =
        vigil(&["rules", "eval", "--rules", rules.to_str().unwrap(), "--events", events.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "{\"line\":1,\"rule_id\":\"falco-shell\"}\n");
    assert!(stderr(&output).contains("events.jsonl:2: invalid JSON"), "{}", stderr(&output));

    let output = vigil(&["rules", "eval", "--events", events.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--rules DIR or --builtin"), "{}", stderr(&output));
}

#[test]
fn rules_validate_passes_good_rules_and_fails_bad_ones_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::create_dir(&good).unwrap();
    std::fs::write(
        good.join("list_secrets.yml"),
        "title: Secrets Listed\nid: s-1\nlevel: low\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: list\n    objectRef.resource: secrets\n  condition: selection\n",
    )
    .unwrap();
    let output = vigil(&["rules", "validate", good.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(stdout(&output).contains("1 rules valid (0 warnings)"));

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("typo.yml"), "title: Typo\nid: t-1\nlogsource:\n  product: kubernetes\ndetection:\n  selection:\n    verb|containz: x\n  condition: selection\n").unwrap();
    let output = vigil(&["rules", "validate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("typo.yml:"), "{text}");
    assert!(text.contains("error"), "{text}");
}

#[test]
fn a_search_on_the_command_line_says_what_waits_in_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No commit while the test runs: the events wait in the log.
    let server = crate::support::Server::start(&data, &["--commit-interval-ms", "600000"]);
    let items: Vec<Value> =
        (0..3).map(|n| audit_event(&format!("w-{n}"), "get", "pods", None, "dana")).collect();
    let body = event_list(&items).to_string();
    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[], body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let search = || vigil(&["search", "--data-dir", data.to_str().unwrap(), "--count", ""]);
    let output = search();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "0\n");
    assert!(
        stderr(&output).contains("up to 3 events in the write-ahead log were not indexed"),
        "{}",
        stderr(&output)
    );
    // Stopping commits them.
    server.stop();
    let output = search();
    assert_eq!(stdout(&output), "3\n");
    assert!(!stderr(&output).contains("write-ahead log"), "{}", stderr(&output));
}

#[test]
fn a_search_pages_past_one_answer_and_stops_quietly_when_its_reader_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("audit.log");
    let total = vigil_index::MAX_LIMIT + 5;
    let lines: Vec<String> = (0..total)
        .map(|n| audit_event(&format!("p-{n}"), "get", "pods", None, "paula").to_string())
        .collect();
    write_lines(&log, &lines);
    let output = vigil(&["ingest", "--data-dir", data.to_str().unwrap(), log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let all = (total + 100).to_string();
    let output = vigil(&["search", "--data-dir", data.to_str().unwrap(), "--json", "--limit", &all, ""]);
    let ids: std::collections::HashSet<String> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), total, "every event once, over two pages");
    let some = (total - 2).to_string();
    let output = vigil(&["search", "--data-dir", data.to_str().unwrap(), "--limit", &some, ""]);
    assert!(
        stdout(&output).ends_with(&format!("{some} of {total} matching events\n")),
        "{}",
        stderr(&output)
    );

    // `| head -1`: the reader goes away; the search ends, exit 0, nothing said.
    let mut child = Command::new(vigil_binary())
        .args(["search", "--data-dir", data.to_str().unwrap(), "--limit", "100", ""])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}: {}", output.status, stderr(&output));
    assert_eq!(stderr(&output), "");
}

#[test]
fn offline_ingest_then_search_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("audit.log");
    write_lines(
        &log,
        &[
            audit_event("i-1", "get", "pods", None, "dana").to_string(),
            audit_event("i-2", "create", "pods", Some("exec"), "mallory").to_string(),
            "{not json".to_owned(),
            event_list(&[
                audit_event("i-3", "list", "secrets", None, "erik"),
                audit_event("i-4", "get", "pods", None, "erik"),
            ])
            .to_string(),
        ],
    );
    let output = vigil(&["ingest", "--data-dir", data.to_str().unwrap(), log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("audit.log:3: invalid JSON"), "{}", stderr(&output));
    assert!(stderr(&output).contains("imported 4 events"), "{}", stderr(&output));

    let output = vigil(&["search", "--data-dir", data.to_str().unwrap(), "--json", "user.name:erik"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("write-ahead log"), "all indexed: {}", stderr(&output));
    let hits: Vec<Value> = stdout(&output).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(hits.len(), 2);
    assert!(
        hits.iter().all(|hit| hit["event"]["user.name"] == "erik" && hit["original"]["auditID"].is_string())
    );

    let output = vigil(&["search", "--data-dir", data.to_str().unwrap(), "objectRef.subresource:exec"]);
    assert!(stdout(&output).contains("mallory create pods/exec shop/web-7d9f (101)"), "{}", stdout(&output));
    assert!(stdout(&output).ends_with("1 of 1 matching events\n"), "{}", stdout(&output));

    let output = vigil(&["search", "--data-dir", data.to_str().unwrap(), "--count", "verb:get OR verb:list"]);
    assert_eq!(stdout(&output), "3\n");
    let output =
        vigil(&["search", "--data-dir", data.to_str().unwrap(), "--top", "user.name", "--limit", "1"]);
    assert_eq!(
        stdout(&output),
        "2  erik\n3 distinct values of user.name in 4 matching events (2 in other values, 0 events without it)\n"
    );
    let output =
        vigil(&["search", "--data-dir", data.to_str().unwrap(), "--json", "--top", "objectRef.resource"]);
    let top: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(top["values"][0], json!({"value": "pods", "count": 3}));
    let output = vigil(&[
        "search",
        "--data-dir",
        data.to_str().unwrap(),
        "--from",
        "2026-11-20T09:00:00Z",
        "--to",
        "2026-11-20T09:30:00Z",
        "--count",
        "",
    ]);
    assert_eq!(stdout(&output), "0\n", "the range ends before the events: {}", stderr(&output));

    let output = vigil(&["search", "--data-dir", data.to_str().unwrap(), "verb:(get"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("at column 6\n  verb:(get\n       ^"), "{}", stderr(&output));
    let output =
        vigil(&["search", "--data-dir", data.to_str().unwrap(), "--count", "verb:get", "user.name:/[a/"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("at column 10\n  verb:get user.name:/[a/\n           ^"),
        "{}",
        stderr(&output)
    );

    // The alerts of an offline import are kept too: a server on the directory lists them.
    let server = crate::support::Server::start(&data, &[]);
    let (_, alerts) = server.get_json("/api/v1/alerts");
    let titles: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| alert["rule"]["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Command Executed In A Pod Container"), "{alerts}");
    assert!(titles.contains(&"Secret Read By A Non-System User"), "{alerts}");
    server.stop();
}

#[test]
fn serve_explains_an_unusable_data_directory_and_a_taken_port() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let inside_a_file = file.join("data");
    let output = vigil(&["serve", "--data-dir", inside_a_file.to_str().unwrap(), "--http", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot create data directory"), "{}", stderr(&output));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = vigil(&[
        "serve",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--http",
        &address,
        "--forward",
        "off",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("cannot listen on {address}")), "{}", stderr(&output));

    for (flag, value, message) in [
        ("--tail-poll-interval-ms", "1", "--tail-poll-interval-ms must be at least 10"),
        ("--retention-check-interval", "soon", "--retention-check-interval: \"soon\" is not a duration"),
        ("--syslog-max-message-bytes", "10", "--syslog-max-message-bytes must be at least 480"),
        ("--search-threads", "65", "--search-threads must be from 0 (automatic) to 64"),
    ] {
        let output = vigil(&["serve", "--data-dir", dir.path().join("data").to_str().unwrap(), flag, value]);
        assert_eq!(output.status.code(), Some(1), "{flag}");
        assert!(stderr(&output).contains(message), "{flag}: {}", stderr(&output));
    }

    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, "version = 1\n[http]\nlisen = \"x\"\n").unwrap();
    let output = vigil(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unknown field `lisen`"), "{}", stderr(&output));
}

#[test]
fn gen_writes_valid_deterministic_audit_events_and_load_measures_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let fixed = ["gen", "--events", "300", "--seed", "7", "--start", "2026-11-01T00:00:00Z", "--span", "1h"];
    let first = vigil(&fixed);
    let again = vigil(&fixed);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(first.stdout == again.stdout, "the same seed and start give the same events");
    let text = stdout(&first);
    assert_eq!(text.lines().count(), 300);
    let average = text.len() / 300;
    assert!((700..1400).contains(&average), "about 1 KB per event, got {average}");
    let log = dir.path().join("audit.log");
    std::fs::write(&log, &first.stdout).unwrap();
    let data = dir.path().join("data");
    let server = crate::support::Server::start(&data, &["--commit-interval-ms", "100"]);
    let output = vigil(&[
        "load",
        "--url",
        &server.base,
        "--events",
        log.to_str().unwrap(),
        "--batch",
        "100",
        "--probes",
        "2",
        "--rate",
        "1000",
        "--probe-every",
        "0.05",
        "--query-runs",
        "2",
        "--data-dir",
        data.to_str().unwrap(),
        "--server-pid",
        &server.pid().to_string(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["events_sent"], 300);
    // Paced at 1,000 events/s: the third batch of 100 went 0.2 s in.
    assert!(report["ingest_seconds"].as_f64().unwrap() >= 0.2, "{report}");
    let during = &report["freshness_during_load"];
    let probes_during = during["probes"].as_u64().unwrap();
    assert!(probes_during >= 1, "{report}");
    assert_eq!(during["not_searchable_within_60s"], 0, "{report}");
    assert!(during["search_ms"]["p99"].as_f64().unwrap() > 0.0, "{report}");
    assert!(during["alert_ms"]["max"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["server_peak_rss_mib"].as_f64().unwrap() > 0.0, "{report}");
    // In clock ticks of 10 ms: a light run may read as no time at all.
    assert!(
        report["server_cpu_us_per_event_until_searchable"].as_f64().is_some_and(|us| us >= 0.0),
        "{report}"
    );
    assert!(report["peak_indexing_lag_seconds"].as_f64().is_some_and(|seconds| seconds >= 0.0), "{report}");
    assert!(report["ingest_events_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["bytes_per_event"].as_f64().unwrap() > 0.0);
    for name in ["selective", "range", "cidr", "histogram_all", "top_user_all"] {
        assert!(report["queries"][name]["p50_ms"].as_f64().is_some(), "{name}: {report}");
        assert!(report["queries"][name]["server_cpu_ms_per_search"].as_f64().is_some_and(|ms| ms >= 0.0));
    }
    let (_, all) = server.get_json("/api/v1/search?limit=0");
    assert_eq!(all["total"], 302 + probes_during, "the 300 events and the probes");
    server.stop();
}

#[test]
fn gen_writes_container_records_and_cri_lines_that_vigil_reads_as_container_logs() {
    let dir = tempfile::tempdir().unwrap();
    let records = vigil(&["gen", "--kind", "container", "--events", "50", "--start", "10m", "--span", "10m"]);
    assert!(records.status.success(), "{}", stderr(&records));
    let body = stdout(&records);
    assert_eq!(body.lines().count(), 50);
    // The kubelet's file name gives the pod; the lines are CRI.
    let containers = dir.path().join("containers");
    std::fs::create_dir(&containers).unwrap();
    let cri = vigil(&["gen", "--kind", "cri", "--events", "50", "--start", "10m", "--span", "10m"]);
    assert!(cri.status.success(), "{}", stderr(&cri));
    std::fs::write(containers.join(format!("web-0_shop_web-{}.log", "a".repeat(64))), &cri.stdout).unwrap();
    let glob = format!("{}/*.log", containers.display());
    let server = crate::support::Server::start(
        &dir.path().join("data"),
        &["--commit-interval-ms", "50", "--tail", &glob],
    );
    let (status, answer, _) = server.post("/api/v1/ingest/logs?dataset=app", &[], body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let all =
        server.search_until("event.dataset:k8s.container AND _exists_:message", 100, Duration::from_secs(10));
    assert_eq!(all["total"], 100);
    let (_, lines) =
        server.get_json("/api/v1/search?limit=0&q=kubernetes.pod.name:web-0%20AND%20_exists_:log.file.path");
    assert_eq!(lines["total"], 50, "every CRI line, with the pod from the file name");
    let (_, records) =
        server.get_json("/api/v1/search?limit=0&q=_exists_:kubernetes.labels.app.kubernetes.io/name");
    assert_eq!(records["total"], 50, "every record, with its pod's labels");
    server.stop();
}
