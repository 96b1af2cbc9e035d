//! Golden tests of normalization: each `NAME.input.json` under
//! `tests/golden/<dataset>/` beside the normalized event it must give,
//! `NAME.expected.json`; error cases under `<dataset>-err/` beside the error
//! text. Re-bless with `VIGIL_BLESS=1 cargo test golden`; the diff is the review.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use vigil_ingest::k8s_audit;
use vigil_schema::EventId;

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".input.json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no golden inputs in {}", dir.display());
    paths
}

fn check(expected_path: &Path, actual: &str) {
    if std::env::var_os("VIGIL_BLESS").is_some() {
        std::fs::write(expected_path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_else(|_| {
        panic!("missing {}; run with VIGIL_BLESS=1 to create it", expected_path.display())
    });
    assert_eq!(expected, actual, "{} differs (VIGIL_BLESS=1 re-blesses)", expected_path.display());
}

fn normalize(input: Value) -> Result<vigil_schema::Event, k8s_audit::NormalizeError> {
    // Received at noon: `event.ingested` is the time in the id.
    let ingested = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let id = EventId::from_u128((ingested.timestamp_millis() as u128) << 80 | 1);
    let context = k8s_audit::Context { cluster_name: Some("golden".into()), ..Default::default() };
    k8s_audit::normalize(id, input, &context)
}

#[test]
fn k8s_audit_normalization_matches_the_golden_files() {
    for input_path in inputs(&golden_dir("k8s-audit")) {
        let input: Value = serde_json::from_str(&std::fs::read_to_string(&input_path).unwrap()).unwrap();
        let event =
            normalize(input.clone()).unwrap_or_else(|error| panic!("{}: {error}", input_path.display()));
        assert_eq!(event.original, input, "{}: the original is kept whole", input_path.display());
        assert_stored_whole(&event, &input_path.display().to_string());
        assert_derived_left_out(&event, &input_path.display().to_string());
        let shown =
            json!({ "@timestamp": vigil_schema::format_timestamp(event.timestamp), "fields": event.fields });
        let expected_path =
            PathBuf::from(input_path.to_string_lossy().replace(".input.json", ".expected.json"));
        check(&expected_path, &(serde_json::to_string_pretty(&shown).unwrap() + "\n"));
    }
}

#[test]
fn k8s_audit_normalization_errors_match_the_golden_files() {
    for input_path in inputs(&golden_dir("k8s-audit-err")) {
        let input: Value = serde_json::from_str(&std::fs::read_to_string(&input_path).unwrap()).unwrap();
        let error =
            normalize(input).err().unwrap_or_else(|| panic!("{} should be refused", input_path.display()));
        let expected_path =
            PathBuf::from(input_path.to_string_lossy().replace(".input.json", ".expected.txt"));
        check(&expected_path, &format!("{error}\n"));
    }
}

/// An event's record (the WAL's, and the index's stored copy) leaves out
/// the fields that copy the original; reading it must give the event back
/// exactly.
fn assert_stored_whole(event: &vigil_schema::Event, what: &str) {
    let record = vigil_schema::record::encode(event).unwrap();
    assert_eq!(&vigil_schema::record::decode(&record).unwrap(), event, "{what}: the record reads back whole");
}

/// The normalizer and the record's derivations compute the same values: an
/// audit event's record keeps none of the fields `DERIVED` computes.
fn assert_derived_left_out(event: &vigil_schema::Event, what: &str) {
    let record: Value = serde_json::from_slice(&vigil_schema::record::encode(event).unwrap()).unwrap();
    for (name, _) in vigil_schema::record::DERIVED {
        let kept = if *name == "@timestamp" { record.get(*name) } else { record["fields"].get(*name) };
        assert!(
            kept.is_none(),
            "{what}: the record keeps {name}, which the normalizer derived otherwise: {record}"
        );
    }
}

#[test]
fn container_records_read_back_whole_from_their_stored_form() {
    use vigil_ingest::container::{RecordContext, normalize_record};
    let ids = vigil_schema::EventIdGenerator::new();
    let records = [
        // Fluent Bit's kubernetes filter, a plain line (the line is the message).
        json!({"time": "2026-11-20T10:00:00.123456789Z", "stream": "stderr", "log": "connection refused\n",
               "kubernetes": {"namespace_name": "prod", "pod_name": "web-0", "pod_id": "9f1c",
                              "container_name": "web", "host": "node-1", "docker_id": "abc123",
                              "container_image": "nginx:1.27", "labels": {"app": "web"}}}),
        // A JSON log line: its fields are the event's, the line is not the message.
        json!({"log": "{\"level\":\"error\",\"msg\":\"boom\"}", "kubernetes": {"pod_name": "api-1"}}),
        // Names of the kubernetes map that are not strings stay where they are.
        json!({"log": "hello", "kubernetes": {"pod_name": 7, "namespace_name": ["a"]}}),
    ];
    for (number, record) in records.into_iter().enumerate() {
        let event = normalize_record(ids.next(), Utc::now(), record, &RecordContext::default())
            .unwrap_or_else(|error| panic!("record {number}: {error}"));
        assert_stored_whole(&event, &format!("container record {number}"));
        if number == 0 {
            let record: Value =
                serde_json::from_slice(&vigil_schema::record::encode(&event).unwrap()).unwrap();
            assert!(
                record["fields"].get("kubernetes.pod.name").is_none(),
                "the pod name is the original's: {record}"
            );
        }
    }
}

/// Real, public audit logs and Falco alerts in `../shared/external/samples`
/// (when that directory exists) must normalize without a single rejection.
#[test]
fn real_public_samples_normalize_without_rejections() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/external/samples");
    if !samples.exists() {
        eprintln!(
            "SKIPPED real_public_samples_normalize_without_rejections: {} is absent",
            samples.display()
        );
        return;
    }
    let ids = vigil_schema::EventIdGenerator::new();
    let decode = |path: &Path| {
        let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        k8s_audit::decode_body(&bytes, &ids, &k8s_audit::Context::default())
    };
    for (file, events) in [("microk8s-audit-immudb/k8s.log", 2971), ("audit2rbac-demo/demo.log", 37)] {
        let decoded = decode(&samples.join(file));
        assert_eq!(decoded.rejected, vec![], "{file}");
        assert_eq!(decoded.events.len(), events, "{file}");
        decoded.events.iter().for_each(|event| assert_stored_whole(event, file));
    }
    let traces = samples.join("falco-k8saudit-traces/trace_files/k8s_audit");
    let mut accepted = 0;
    let mut refused = Vec::new();
    for entry in std::fs::read_dir(&traces).unwrap() {
        let path = entry.unwrap().path();
        let decoded = decode(&path);
        accepted += decoded.events.len();
        refused.extend(
            decoded
                .rejected
                .into_iter()
                .map(|rejection| (path.file_name().unwrap().to_owned(), rejection.reason)),
        );
    }
    // 51 audit events; the one deliberately invalid object ({"kind": 0}) is refused by name.
    assert_eq!(accepted, 51);
    assert_eq!(refused, vec![("fal_01_003.json".into(), "missing auditID".to_owned())]);

    let falco_alerts =
        std::fs::read_to_string(samples.join("falco-json-output/single_rule_with_cat_write.json")).unwrap();
    for (number, line) in falco_alerts.lines().filter(|line| !line.trim().is_empty()).enumerate() {
        let value: Value = serde_json::from_str(line).unwrap();
        let event = vigil_ingest::falco::normalize(ids.next(), value)
            .unwrap_or_else(|error| panic!("falco alert {}: {error}", number + 1));
        assert_eq!(event.get_str("rule.name"), Some("open_from_cat"));
    }
}
