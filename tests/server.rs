//! The real server, end to end.

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::support::{Server, audit_event, encode, event_list};

const EXEC_RULE: &str = "6f1d9a30-5c2b-4e57-9a8e-1b7c2d40e001";
const FAST_COMMITS: &[&str] = &["--commit-interval-ms", "100"];

fn ordinary_events() -> Vec<Value> {
    vec![
        audit_event("a-0001", "get", "pods", None, "dana@example.org"),
        audit_event("a-0002", "list", "configmaps", None, "system:serviceaccount:shop:deployer"),
        audit_event("a-0003", "patch", "deployments", None, "dana@example.org"),
        audit_event("a-0004", "delete", "pods", None, "erik@example.org"),
        audit_event("a-0005", "watch", "services", None, "system:kube-scheduler"),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn an_event_list_with_an_exec_is_searchable_within_two_seconds_and_raises_the_exec_alert() {
    let dir = tempfile::tempdir().unwrap();
    // The default commit interval (1 s), to check the freshness promise.
    let server = Server::start(dir.path(), &[]);
    let mut items = ordinary_events();
    items.insert(2, audit_event("a-exec", "create", "pods", Some("exec"), "mallory@example.org"));
    let body = event_list(&items).to_string();
    let (status, answer, _) =
        server.post("/api/v1/ingest/k8s-audit", &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"accepted": 6, "rejected": 0, "errors": []}));
    let answered = Instant::now();

    let all = server.search_until("", 6, Duration::from_secs(5));
    assert_eq!(all["total"], 6, "{all}");
    assert!(answered.elapsed() < Duration::from_secs(2), "searchable only after {:?}", answered.elapsed());
    for item in &items {
        let audit_id = item["auditID"].as_str().unwrap();
        let found =
            server.search_until(&format!("kubernetes.audit.id:{audit_id}"), 1, Duration::from_secs(1));
        assert_eq!(found["total"], 1, "{audit_id}: {found}");
        assert_eq!(found["hits"][0]["original"], *item, "the original is kept whole");
    }
    let exec = server.search_until("objectRef.subresource:exec", 1, Duration::from_secs(1));
    let exec_id = exec["hits"][0]["id"].as_str().unwrap().to_owned();
    let exec_fields = &exec["hits"][0]["event"];
    assert_eq!(exec_fields["user.name"], "mallory@example.org");
    assert_eq!(exec_fields["orchestrator.resource.subresource"], "exec");
    assert_eq!(exec_fields["event.action"], "create");

    let deadline = Instant::now() + Duration::from_secs(2);
    let alerts = loop {
        let (status, alerts) = server.get_json("/api/v1/alerts");
        assert_eq!(status, 200);
        if alerts["alerts"].as_array().is_some_and(|list| !list.is_empty()) || Instant::now() > deadline {
            break alerts;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let list = alerts["alerts"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only the exec is suspicious: {alerts}");
    let alert = &list[0];
    assert_eq!(alert["rule"]["id"], EXEC_RULE);
    assert_eq!(alert["rule"]["title"], "Command Executed In A Pod Container");
    assert_eq!(alert["rule"]["level"], "medium");
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["count"], 1);
    assert_eq!(
        alert["group"],
        "user.name=mallory@example.org orchestrator.namespace=shop orchestrator.resource.type=pods orchestrator.resource.name=web-7d9f"
    );
    assert_eq!(alert["event_ids"], json!([exec_id]));
    for key in ["id", "first_seen", "last_seen"] {
        assert!(!alert[key].is_null(), "{key} in {alert}");
    }

    let (status, event) = server.get_json(&format!("/api/v1/events/{exec_id}"));
    assert_eq!(status, 200);
    assert_eq!(event["original"]["auditID"], "a-exec");
    let (status, _) = server.get_json("/api/v1/events/01M85VM8PT0000000000000000");
    assert_eq!(status, 404);

    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("vigil_ingest_events_total{source=\"k8s-audit\",result=\"accepted\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains("vigil_store_queue_batches 0"), "{metrics}");
    assert!(metrics.contains("vigil_wal_backlog_bytes "), "{metrics}");
    assert!(metrics.contains("vigil_wal_read_back_batches_total{consumer=\"rules\"} "), "{metrics}");
    server.stop();
}

#[test]
fn malformed_events_are_reported_by_position_and_their_neighbours_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    let list = event_list(&[
        audit_event("m-1", "get", "pods", None, "dana"),
        json!({"kind": "Event", "verb": "get"}),
        audit_event("m-2", "get", "pods", None, "dana"),
    ]);
    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[], list.to_string().as_bytes());
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"accepted": 2, "rejected": 1, "errors": [{"index": 1, "reason": "missing auditID"}]})
    );

    let lines = format!(
        "{}\n{{\"kind\": \"Event\", \"auditID\": \n{}\n",
        audit_event("m-3", "get", "pods", None, "dana"),
        audit_event("m-4", "get", "pods", None, "dana")
    );
    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[], lines.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["errors"][0]["index"], 1);
    assert_eq!(answer["errors"][0]["line"], 2);
    assert!(answer["errors"][0]["reason"].as_str().unwrap().starts_with("invalid JSON"), "{answer}");

    // Nothing in the body can ever be accepted: 400, so the sender does not retry.
    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[], b"{\"kind\": \"Pod\"}");
    assert_eq!(status, 400);
    assert_eq!(answer["errors"][0]["reason"], "kind is \"Pod\", expected \"Event\"");
    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[], b"not json at all");
    assert_eq!(status, 400, "{answer}");

    let found = server.search_until("user.name:dana", 4, Duration::from_secs(5));
    assert_eq!(found["total"], 4);
    server.stop();
}

/// The niceness of each of a process's threads named `name`.
#[cfg(target_os = "linux")]
fn thread_nices(pid: u32, name: &str) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            // "TID (comm) state ...": niceness is the 19th field.
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            head.ends_with(&format!("({name}")).then(|| rest.split(' ').nth(16)?.parse::<i32>().ok())?
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn the_rules_run_below_acknowledging_at_the_configured_niceness() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, expected) in [(&[][..], 10), (&["--rules-nice", "3"][..], 3)] {
        let server = Server::start(&dir.path().join("data"), flags);
        assert_eq!(thread_nices(server.pid(), "vigil-rules"), [expected]);
        assert_eq!(thread_nices(server.pid(), "vigil-wal"), [0], "acknowledging keeps its priority");
        server.stop();
    }
}

#[test]
fn a_stalled_body_gets_a_408_and_cannot_hold_up_a_shutdown() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, "version = 1\n[http]\nbody_timeout_ms = 300\nshutdown_grace_ms = 500\n").unwrap();
    let server = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let stall = || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let head = "POST /api/v1/ingest/k8s-audit HTTP/1.1\r\nHost: vigil\r\nContent-Length: 100000\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(b"{\"kind\": \"Event\"").unwrap();
        stream
    };
    let stream = stall();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = stream.take(64 * 1024).read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request body did not arrive within 300 ms (http.body_timeout_ms)"), "{answer}");
    server.stop();

    // A body that trickles in, a byte every 100 ms, with a minute to
    // arrive: a shutdown cuts it off after its grace.
    std::fs::write(&config, "version = 1\n[http]\nbody_timeout_ms = 60000\nshutdown_grace_ms = 500\n")
        .unwrap();
    let server = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"POST /api/v1/ingest/k8s-audit HTTP/1.1\r\nHost: vigil\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let trickle = std::thread::spawn(move || {
        while stream.write_all(b" ").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    let log = server.stop();
    assert!(stopping.elapsed() < Duration::from_secs(5), "stopped after {:?}", stopping.elapsed());
    assert!(log.contains("HTTP requests still running at shutdown are cut off"), "{log}");
    trickle.join().unwrap();
}

#[test]
fn gzip_bodies_are_accepted_and_oversized_bodies_get_a_clear_413() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, "version = 1\n[http]\nmax_body_bytes = 4096\nmax_decoded_bytes = 65536\n")
        .unwrap();
    let server = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);

    let lines: String = (0..20)
        .map(|n| format!("{}\n", audit_event(&format!("g-{n}"), "get", "pods", None, "gus")))
        .collect();
    assert!(lines.len() > 4096, "the plain body is over the limit");
    let compressed = gzip(lines.as_bytes());
    let (status, answer, _) =
        server.post("/api/v1/ingest/k8s-audit", &[("content-encoding", "gzip")], &compressed);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 20);

    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[], lines.as_bytes());
    assert_eq!(status, 413);
    assert_eq!(answer["error"], "request body is larger than the limit of 4096 bytes (http.max_body_bytes)");

    let bomb = gzip(&vec![b' '; 1024 * 1024]);
    assert!(bomb.len() < 4096);
    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[("content-encoding", "gzip")], &bomb);
    assert_eq!(status, 413);
    assert!(answer["error"].as_str().unwrap().contains("http.max_decoded_bytes"), "{answer}");

    let (status, answer, _) = server.post("/api/v1/ingest/k8s-audit", &[("content-encoding", "br")], b"x");
    assert_eq!(status, 415, "{answer}");
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("vigil_ingest_refused_requests_total{source=\"k8s-audit\",reason=\"too_large\"} 2"),
        "{metrics}"
    );
    server.stop();
}

#[test]
fn a_restart_keeps_every_event_searchable_and_every_alert_listed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    let mut items = ordinary_events();
    items.push(audit_event("r-exec", "create", "pods", Some("exec"), "mallory@example.org"));
    let (status, _, _) =
        server.post("/api/v1/ingest/k8s-audit", &[], event_list(&items).to_string().as_bytes());
    assert_eq!(status, 200);
    // Stop right after the answer: shutdown must commit what was accepted.
    server.stop();

    let server = Server::start(dir.path(), FAST_COMMITS);
    let (_, all) = server.get_json("/api/v1/search?q=");
    assert_eq!(all["total"], 6, "{all}");
    let (_, alerts) = server.get_json("/api/v1/alerts");
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 1, "{alerts}");
    assert_eq!(alerts["alerts"][0]["rule"]["id"], EXEC_RULE);

    // New events after the restart get new ids and join the old ones.
    let (status, _, _) = server.post(
        "/api/v1/ingest/k8s-audit",
        &[],
        audit_event("r-late", "get", "pods", None, "x").to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let all = server.search_until("", 7, Duration::from_secs(5));
    let ids: std::collections::HashSet<&str> =
        all["hits"].as_array().unwrap().iter().map(|hit| hit["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 7);
    server.stop();
}

#[test]
fn search_errors_name_the_problem_and_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    let (status, answer) = server.get_json(&format!("/api/v1/search?q={}", encode("verb:get AND")));
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "expected a term after AND at column 13\n  verb:get AND\n              ^");
    let (status, answer) = server.get_json("/api/v1/search?q=&from=yesterday");
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().starts_with("from: \"yesterday\" is not a time"), "{answer}");
    // Found after parsing: the caret is under the term.
    let (status, answer) =
        server.get_json(&format!("/api/v1/search?q={}", encode("verb:get http.response.status_code:ok")));
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        "http.response.status_code: \"ok\" is not a whole number at column 10\n  verb:get http.response.status_code:ok\n           ^"
    );
    let (status, answer) =
        server.get_json(&format!("/api/v1/histogram?q={}", encode("NOT (a OR source.ip:999.1.1.1)")));
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .ends_with(" at column 11\n  NOT (a OR source.ip:999.1.1.1)\n            ^"),
        "{answer}"
    );
    let (status, _) = server.get_json("/api/v1/search?limit=10001");
    assert_eq!(status, 400);
    let (status, _) = server.get_json("/api/v1/fields/user.name/top?limit=10001");
    assert_eq!(status, 400);
    // Parameters of the wrong type are answered in JSON too.
    for path in ["/api/v1/search?limit=-1", "/api/v1/fields/user.name/top?limit=ten", "/api/v1/alerts/abc"] {
        let (status, answer) = server.get_json(path);
        assert_eq!(status, 400, "{path}");
        assert!(answer["error"].as_str().is_some_and(|error| !error.is_empty()), "{path}: {answer}");
    }
    server.stop();
}

#[test]
fn the_web_page_shows_events_and_alerts_and_escapes_what_events_carry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    let hostile = "<script>alert(1)</script>";
    let items = vec![
        audit_event("w-exec", "create", "pods", Some("exec"), hostile),
        audit_event("w-plain", "get", "pods", None, "dana@example.org"),
    ];
    let (status, _, _) =
        server.post("/api/v1/ingest/k8s-audit", &[], event_list(&items).to_string().as_bytes());
    assert_eq!(status, 200);
    let found = server.search_until("", 2, Duration::from_secs(5));
    let exec_id =
        found["hits"].as_array().unwrap().iter().find(|hit| hit["original"]["auditID"] == "w-exec").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();

    let deadline = Instant::now() + Duration::from_secs(2);
    let home = loop {
        let (status, page) = server.get("/");
        assert_eq!(status, 200);
        if page.contains("Command Executed In A Pod Container") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(home.contains("Command Executed In A Pod Container"), "the open alert is listed");
    assert!(home.contains("name=\"q\""), "the page has a query box");
    assert!(home.contains(&format!("href=\"/events/{exec_id}\"")), "events link to their detail");
    assert!(home.contains("&lt;script&gt;") || home.contains("&#60;script&#62;"), "user names are escaped");
    assert!(!home.contains(hostile), "nothing from an event is written raw");

    let (_, searched) = server.get(&format!("/?q={}", encode("user.name:\"dana@example.org\"")));
    assert!(searched.contains("dana@example.org get pods shop/web-7d9f"), "the query box searches");
    assert!(!searched.contains("w-exec"));
    let (_, broken) = server.get(&format!("/?q={}", encode("user.name:(")));
    assert!(broken.contains("Query error") && broken.contains("at column 11"), "{broken}");

    let (status, detail) = server.get(&format!("/events/{exec_id}"));
    assert_eq!(status, 200);
    assert!(
        detail.contains("&quot;auditID&quot;: &quot;w-exec&quot;")
            || detail.contains("&#34;auditID&#34;: &#34;w-exec&#34;"),
        "{detail}"
    );
    assert!(!detail.contains(hostile));
    assert!(detail.contains("orchestrator.resource.subresource"));

    let agent =
        ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build());
    let response = agent.get(&server.url("/")).call().unwrap();
    let policy = response.headers().get("content-security-policy").unwrap().to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    let (status, script) = server.get("/assets/app.js");
    assert_eq!(status, 200);
    assert!(script.contains("querySelectorAll"));
    server.stop();
}

#[test]
fn histograms_top_values_the_field_catalogue_and_cursors_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_COMMITS);
    let mut items = Vec::new();
    for n in 0..30 {
        let mut event = audit_event(
            &format!("h-{n}"),
            if n % 3 == 0 { "list" } else { "get" },
            "secrets",
            None,
            &format!("user{}", n % 4),
        );
        event["requestReceivedTimestamp"] = json!(format!("2026-11-20T10:{:02}:00.000001Z", n));
        event["sourceIPs"] = json!([format!("10.0.{}.9", n % 2)]);
        if n % 5 == 0 {
            event["responseStatus"]["code"] = json!(403);
        }
        items.push(event);
    }
    let (status, _, _) =
        server.post("/api/v1/ingest/k8s-audit", &[], event_list(&items).to_string().as_bytes());
    assert_eq!(status, 200);
    server.search_until("", 30, Duration::from_secs(5));

    let range = "from=2026-11-20T10:00:00Z&to=2026-11-20T10:30:00Z";
    let (status, histogram) = server.get_json(&format!("/api/v1/histogram?q=&{range}&interval=10m"));
    assert_eq!(status, 200, "{histogram}");
    assert_eq!(histogram["interval"], "10m");
    let counts: Vec<u64> =
        histogram["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, vec![10, 10, 10]);
    assert_eq!(histogram["buckets"][1]["start"], "2026-11-20T10:10:00Z");
    let (_, automatic) = server.get_json(&format!("/api/v1/histogram?q=verb:get&{range}"));
    assert_eq!(automatic["interval"], "30s");
    let sum: u64 =
        automatic["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    let (_, searched) = server.get_json(&format!("/api/v1/search?q=verb:get&{range}&limit=0"));
    assert_eq!(sum, searched["total"].as_u64().unwrap(), "buckets add up to the search's total");
    let (status, _) = server.get_json("/api/v1/histogram?interval=soon");
    assert_eq!(status, 400);

    let (status, top) = server.get_json(&format!(
        "/api/v1/fields/source.ip/top?q={}&limit=1",
        encode("http.response.status_code:403")
    ));
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["field"], "source.ip");
    assert_eq!(top["values"], json!([{"value": "10.0.0.9", "count": 3}]), "ties go to the smaller value");
    assert_eq!(top["other"], 3);
    assert_eq!(top["total"], 6);
    let (_, users) = server.get_json("/api/v1/fields/user.username/top?limit=2");
    assert_eq!(users["values"].as_array().unwrap().len(), 2);
    assert_eq!(users["other"], 14);
    let (_, distinct) = server.get_json("/api/v1/fields/user.name/distinct");
    assert_eq!(distinct["distinct"], 4);
    let (status, refused) = server.get_json("/api/v1/fields/requestObject.kind/top");
    assert_eq!(status, 400, "{refused}");

    let (_, catalogue) = server.get_json("/api/v1/fields");
    let names: Vec<&str> =
        catalogue["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    for expected in [
        "user.name",
        "source.ip",
        "objectRef.resource",
        "@timestamp",
        "annotations.authorization.k8s.io/reason",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    for absent in ["process.name", "container.id"] {
        assert!(!names.contains(&absent), "{absent} was never seen: {names:?}");
    }

    // Paging oldest first with a cursor visits every event once, in order.
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let (status, page) =
            server.get_json(&format!("/api/v1/search?q=&order=oldest&limit=7&cursor={cursor}"));
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 30);
        seen.extend(
            page["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|hit| hit["original"]["auditID"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = encode(next),
            None => break,
        }
    }
    assert_eq!(seen, (0..30).map(|n| format!("h-{n}")).collect::<Vec<_>>());
    let (status, _) = server.get_json("/api/v1/search?cursor=nonsense");
    assert_eq!(status, 400);
    server.stop();
}

#[test]
fn searches_and_metrics_say_how_many_acknowledged_events_are_not_searchable_yet() {
    let dir = tempfile::tempdir().unwrap();
    // No commit while the test runs: what was acknowledged stays unsearchable.
    let server = Server::start(dir.path(), &["--commit-interval-ms", "600000"]);
    let body = event_list(&ordinary_events()).to_string();
    let (status, answer, _) =
        server.post("/api/v1/ingest/k8s-audit", &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let (status, found) = server.get_json("/api/v1/search?limit=0");
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 0, "{found}");
    assert_eq!(found["indexing_lag"]["events"], 5, "{found}");
    let seconds = found["indexing_lag"]["seconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&seconds), "{found}");
    for aggregation in
        ["/api/v1/histogram?q=", "/api/v1/fields/user.name/top?q=", "/api/v1/fields/user.name/distinct?q="]
    {
        let (status, answer) = server.get_json(aggregation);
        assert_eq!(status, 200, "{aggregation}: {answer}");
        assert_eq!(answer["indexing_lag"]["events"], 5, "{aggregation}: {answer}");
    }
    let (_, metrics) = server.get("/metrics");
    assert!(metrics.lines().any(|line| line == "vigil_index_lag_events 5"), "{metrics}");
    assert!(metrics.lines().any(|line| line.starts_with("vigil_index_lag_seconds ")), "{metrics}");
    assert!(
        metrics.lines().any(|line| line == "vigil_index_max_partition_segments 0"),
        "nothing committed: {metrics}"
    );
    assert!(metrics.lines().any(|line| line == "vigil_index_commits_total 0"), "{metrics}");
    // The page says so once the lag passes the freshness target (5 s).
    let waited = Instant::now();
    while server.get_json("/api/v1/search?limit=0").1["indexing_lag"]["seconds"].as_f64().unwrap() < 5.0 {
        assert!(waited.elapsed() < Duration::from_secs(10), "the lag does not age");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, page) = server.get("/");
    assert!(page.contains("behind: 5 events acknowledged since are not searchable yet"), "{page}");
    server.stop();

    // Stopping commits; after a restart nothing is pending.
    let server = Server::start(dir.path(), FAST_COMMITS);
    let (_, found) = server.get_json("/api/v1/search?limit=0");
    assert_eq!(found["total"], 5, "{found}");
    assert_eq!(found["indexing_lag"], json!({"events": 0, "seconds": 0.0}), "{found}");
    let (_, partitions) = server.get_json("/api/v1/partitions");
    let segments = partitions["partitions"][0]["segments"].as_u64().unwrap();
    assert!(segments >= 1, "{partitions}");
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.lines().any(|line| line == format!("vigil_index_max_partition_segments {segments}")),
        "one partition: {metrics}"
    );
    // New events are committed: the commits and their time are counted.
    let body = event_list(&[audit_event("a-0006", "get", "pods", None, "dana@example.org")]).to_string();
    let (status, answer, _) =
        server.post("/api/v1/ingest/k8s-audit", &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    server.search_until("", 6, Duration::from_secs(5));
    let (_, metrics) = server.get("/metrics");
    let counter = |name: &str| -> f64 {
        let line = metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' '));
        line.and_then(|value| value.parse().ok()).unwrap_or_else(|| panic!("{name}: {metrics}"))
    };
    assert!(counter("vigil_index_commits_total") >= 1.0, "{metrics}");
    assert!(counter("vigil_index_commit_seconds_total") > 0.0, "{metrics}");
    server.stop();
}
