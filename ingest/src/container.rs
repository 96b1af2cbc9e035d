//! Container logs (`event.dataset: k8s.container`) and other shipped log
//! records.
//!
//! [`normalize_record`] takes one record as Fluentd or Fluent Bit ship it
//! (after their Kubernetes metadata filters, or straight from `tail`) and
//! gives an [`Event`]: a record with a `kubernetes` map is a container log;
//! an audit Event or a Falco alert inside a log pipeline goes to its own
//! normalizer; anything else keeps its record under the sender's dataset.
//! A `log` line that is a JSON object is parsed: its scalar values become
//! `labels.*`, its `msg`/`message` the message and its `level` the log level.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use vigil_schema::{Event, EventId, fields};

use crate::detect::{Dataset, detect};
use crate::{falco, k8s_audit};

/// The dataset name of container logs.
pub const DATASET: &str = "k8s.container";
/// The dataset of records that say nothing about where they come from.
pub const DEFAULT_DATASET: &str = "logs";
/// The most `labels.*` taken from one JSON log line.
const MAX_JSON_LABELS: usize = 64;

/// Why a record could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("expected a JSON object (a log record), found {0}")]
    NotAnObject(&'static str),
    #[error(transparent)]
    Audit(#[from] k8s_audit::NormalizeError),
    #[error(transparent)]
    Falco(#[from] falco::NormalizeError),
}

/// Where a record came from, when the body does not say.
#[derive(Debug, Clone, Default)]
pub struct RecordContext<'a> {
    /// The dataset asked for (`?dataset=`), or the shipper's tag.
    pub dataset: Option<&'a str>,
    /// The time the shipper gave the record (forward entries carry one).
    pub time: Option<DateTime<Utc>>,
    pub audit: Option<&'a k8s_audit::Context>,
}

/// Normalizes one shipped record.
pub fn normalize_record(
    id: EventId,
    ingested: DateTime<Utc>,
    record: Value,
    context: &RecordContext<'_>,
) -> Result<Event, NormalizeError> {
    match detect(&record) {
        Some(Dataset::K8sAudit) => {
            let default_context = k8s_audit::Context::default();
            let audit_context = context.audit.unwrap_or(&default_context);
            return Ok(k8s_audit::normalize(id, record, audit_context)?);
        }
        Some(Dataset::Falco) => return Ok(falco::normalize(id, record)?),
        None => {}
    }
    let Value::Object(object) = &record else {
        return Err(NormalizeError::NotAnObject(crate::k8s_audit::json_type_name(&record)));
    };
    let time = record_time(object).or(context.time).unwrap_or(ingested);
    let mut event = Event::new(id, time, Value::Null);
    event.set(fields::EVENT_KIND, "event");
    event.set(fields::EVENT_INGESTED, vigil_schema::format_timestamp(id.arrival()));

    let kubernetes = object.get("kubernetes").and_then(Value::as_object);
    let dataset = if kubernetes.is_some() { DATASET } else { context.dataset.unwrap_or(DEFAULT_DATASET) };
    event.set(fields::EVENT_DATASET, dataset);
    if let Some(kubernetes) = kubernetes {
        add_kubernetes(&mut event, kubernetes);
    }
    if let Some(container_id) =
        object.get("docker").and_then(|docker| docker.get("container_id")).and_then(Value::as_str)
    {
        event.set(fields::CONTAINER_ID, container_id);
    }
    if let Some(stream) = object.get("stream").and_then(Value::as_str) {
        event.set("labels.stream", stream);
    }
    if let Some(path) = object.get("file").or_else(|| object.get("path")).and_then(Value::as_str) {
        event.set(fields::LOG_FILE_PATH, path);
    }
    if let Some(host) = object.get("hostname").or_else(|| object.get("host")).and_then(Value::as_str) {
        event.set(fields::HOST_NAME, host);
    }

    let line =
        ["log", "message", "msg", "MESSAGE"].iter().find_map(|key| object.get(*key).and_then(Value::as_str));
    if let Some(line) = line {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parse_json_object(line) {
            Some(parsed) => add_structured_line(&mut event, line, &parsed),
            None => event.set(fields::MESSAGE, line),
        }
    }
    if let Some(level) = object.get("level").or_else(|| object.get("severity")).and_then(Value::as_str) {
        event.set(fields::LOG_LEVEL, level.to_ascii_lowercase());
    }
    event.original = record;
    Ok(event)
}

fn add_kubernetes(event: &mut Event, kubernetes: &Map<String, Value>) {
    let text = |key: &str| kubernetes.get(key).and_then(Value::as_str);
    event.set(fields::ORCHESTRATOR_TYPE, "kubernetes");
    event.set(fields::K8S_NAMESPACE, text("namespace_name"));
    event.set(fields::K8S_POD_NAME, text("pod_name"));
    event.set(fields::K8S_POD_UID, text("pod_id"));
    event.set(fields::K8S_CONTAINER_NAME, text("container_name"));
    event.set(fields::CONTAINER_NAME, text("container_name"));
    event.set(fields::K8S_NODE_NAME, text("host"));
    event.set(fields::HOST_NAME, text("host"));
    event.set(fields::CONTAINER_ID, text("docker_id").or_else(|| text("container_id")));
    event.set(fields::CONTAINER_IMAGE_NAME, text("container_image"));
    if let Some(Value::Object(labels)) = kubernetes.get("labels") {
        for (key, value) in labels {
            if let Some(value) = scalar_text(value) {
                event.set(format!("kubernetes.labels.{key}"), value);
            }
        }
    }
}

/// A JSON log line: its scalars as `labels.*`, its message and level.
fn add_structured_line(event: &mut Event, line: &str, parsed: &Map<String, Value>) {
    let message =
        ["msg", "message", "MESSAGE", "log"].iter().find_map(|key| parsed.get(*key).and_then(Value::as_str));
    event.set(fields::MESSAGE, message.unwrap_or(line));
    if let Some(level) =
        ["level", "severity", "lvl"].iter().find_map(|key| parsed.get(*key).and_then(Value::as_str))
    {
        event.set(fields::LOG_LEVEL, level.to_ascii_lowercase());
    }
    for (key, value) in parsed.iter().take(MAX_JSON_LABELS) {
        if let Some(text) = scalar_text(value) {
            event.set(format!("labels.{key}"), text);
        }
    }
}

fn parse_json_object(line: &str) -> Option<Map<String, Value>> {
    if !line.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str(line) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The record's own time: `time` or `@timestamp` (RFC 3339), or `date`
/// (Fluent Bit's epoch seconds as a float, or RFC 3339).
fn record_time(object: &Map<String, Value>) -> Option<DateTime<Utc>> {
    for key in ["time", "@timestamp", "timestamp", "date"] {
        match object.get(key) {
            Some(Value::String(text)) => {
                if let Ok(time) = DateTime::parse_from_rfc3339(text) {
                    return Some(time.with_timezone(&Utc));
                }
            }
            Some(Value::Number(number)) => {
                if let Some(seconds) = number.as_f64()
                    && seconds.is_finite()
                    && seconds > 0.0
                {
                    let whole = seconds.trunc() as i64;
                    let nanos = ((seconds - seconds.trunc()) * 1e9).round() as u32;
                    return Utc.timestamp_opt(whole, nanos.min(999_999_999)).single();
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use vigil_schema::EventIdGenerator;

    use super::*;

    fn normalize(record: Value, dataset: Option<&str>) -> Event {
        let context = RecordContext { dataset, ..RecordContext::default() };
        normalize_record(EventIdGenerator::new().next(), Utc::now(), record, &context).unwrap()
    }

    #[test]
    fn fluent_bit_kubernetes_records_become_container_logs() {
        let event = normalize(
            json!({"time": "2025-02-03T08:15:01.000000001Z", "stream": "stdout", "_p": "F", "log": "GET /healthz 200\n",
                   "kubernetes": {"pod_name": "web-0", "namespace_name": "shop", "pod_id": "0b7c", "labels": {"app.kubernetes.io/name": "web"},
                                  "host": "node-a", "container_name": "web", "docker_id": "3f1e", "container_image": "registry.example/web:1.4.2"}}),
            Some("kube.var.log"),
        );
        assert_eq!(event.dataset(), DATASET);
        assert_eq!(event.get_str(fields::MESSAGE), Some("GET /healthz 200"));
        assert_eq!(event.get_str(fields::K8S_POD_NAME), Some("web-0"));
        assert_eq!(event.get_str(fields::K8S_NAMESPACE), Some("shop"));
        assert_eq!(event.get_str(fields::CONTAINER_ID), Some("3f1e"));
        assert_eq!(event.get_str("kubernetes.labels.app.kubernetes.io/name"), Some("web"));
        assert_eq!(event.timestamp.timestamp_subsec_nanos(), 1);
    }

    #[test]
    fn json_log_lines_become_labels_and_other_lines_stay_messages() {
        let event = normalize(
            json!({"log": "{\"level\":\"WARN\",\"msg\":\"slow query\",\"ms\":812}\n", "kubernetes": {"pod_name": "db"}}),
            None,
        );
        assert_eq!(event.get_str(fields::MESSAGE), Some("slow query"));
        assert_eq!(event.get_str(fields::LOG_LEVEL), Some("warn"));
        assert_eq!(event.get_str("labels.ms"), Some("812"));
        let plain = normalize(json!({"log": "{not json", "kubernetes": {"pod_name": "db"}}), None);
        assert_eq!(plain.get_str(fields::MESSAGE), Some("{not json"));
    }

    #[test]
    fn other_records_keep_the_senders_dataset_and_times() {
        let event = normalize(json!({"message": "hello", "date": 1738570501.5}), Some("app.logs"));
        assert_eq!(event.dataset(), "app.logs");
        assert_eq!(event.timestamp.timestamp_millis(), 1_738_570_501_500);
        let untagged = normalize(json!({"message": "hello"}), None);
        assert_eq!(untagged.dataset(), DEFAULT_DATASET);
    }

    #[test]
    fn audit_events_and_falco_alerts_in_a_log_pipeline_go_to_their_normalizers() {
        let audit = normalize(
            json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "verb": "get", "stage": "ResponseComplete",
                   "requestReceivedTimestamp": "2025-02-03T08:15:01Z"}),
            Some("kube.audit"),
        );
        assert_eq!(audit.dataset(), "k8s.audit");
        let alert = normalize(
            json!({"rule": "r", "output": "o", "priority": "Error", "time": "2025-02-03T08:15:01Z"}),
            None,
        );
        assert_eq!(alert.dataset(), "falco");
    }
}
