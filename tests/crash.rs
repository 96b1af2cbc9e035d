//! Durability under crashes: events stream in while the server is killed
//! with SIGKILL at random moments; after each restart, every event whose
//! ingest was acknowledged must be searchable exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{Server, audit_event, encode, event_list};

/// A small deterministic generator for the kill times (no dependency needed).
struct XorShift(u64);

impl XorShift {
    fn next_below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Posts batches until told to stop; records the audit ids of acknowledged batches.
fn stream(base: String, round: usize, acknowledged: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    let mut batch = 0;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<String> = (0..100).map(|n| format!("crash-{round}-{batch}-{n}")).collect();
        // Spread over several hours, out of order within each batch, so that
        // more partitions (12) are written at once than writers are kept open (8).
        let items: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let hour = (batch * 7 + round * 3 + n * 5) % 12;
                let mut event = audit_event(id, "get", "pods", None, "streamer");
                event["requestReceivedTimestamp"] =
                    serde_json::json!(format!("2026-11-20T{:02}:15:00.000001Z", 8 + hour));
                event
            })
            .collect();
        let body = event_list(&items).to_string();
        match agent.post(&format!("{base}/api/v1/ingest/k8s-audit")).send(body.as_bytes()) {
            Ok(response) if response.status().as_u16() == 200 => acknowledged.lock().unwrap().extend(ids),
            // Refused (503) or cut off by the kill: not acknowledged.
            _ => {}
        }
        batch += 1;
    }
}

/// Every event in the index, by audit id, counted.
fn all_audit_ids(server: &Server) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut cursor = String::new();
    loop {
        let (status, page) =
            server.get_json(&format!("/api/v1/search?q=&order=oldest&limit=2000&cursor={cursor}"));
        assert_eq!(status, 200, "{page}");
        for hit in page["hits"].as_array().unwrap() {
            *counts.entry(hit["original"]["auditID"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = encode(next),
            None => return counts,
        }
    }
}

#[test]
fn acknowledged_events_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut random = XorShift(seed);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        let server = Server::start(dir.path(), &["--commit-interval-ms", "200", "--partition-span", "1h"]);
        let stop = Arc::new(AtomicBool::new(false));
        let streamer = {
            let (base, acknowledged, stop) = (server.base.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || stream(base, round, acknowledged, stop))
        };
        let alive_for = Duration::from_millis(150 + random.next_below(650));
        std::thread::sleep(alive_for);
        server.kill_hard();
        stop.store(true, Ordering::Relaxed);
        streamer.join().unwrap();
    }

    let server = Server::start(dir.path(), &["--partition-span", "1h"]);
    let started = Instant::now();
    let counts = all_audit_ids(&server);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 100, "the test acknowledged too little to prove anything (seed {seed})");
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !counts.contains_key(*id)).collect();
    let doubled: Vec<(&String, &usize)> = counts.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        lost.is_empty(),
        "seed {seed}: {} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(doubled.is_empty(), "seed {seed}: events indexed twice: {:?}", &doubled[..doubled.len().min(5)]);
    eprintln!(
        "crash test (seed {seed}): {} acknowledged, {} indexed in all, verified in {:?}",
        acknowledged.len(),
        counts.len(),
        started.elapsed()
    );
    server.stop();
}
