//! Falco's JSON alerts (`json_output: true`), as its `http_output` and
//! Falcosidekick's webhook send them.
//!
//! [`normalize`] is a pure function; `output_fields` are mapped to the
//! schema's process, container, Kubernetes and file fields.

use chrono::{DateTime, Utc};
use serde_json::Value;
use vigil_schema::{Event, EventId, fields};

use crate::k8s_audit::json_type_name;

/// The dataset name of Falco events.
pub const DATASET: &str = "falco";

/// Why a Falco event could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("time is {0:?}, not an RFC 3339 time")]
    BadTime(String),
}

/// Falco `output_fields` keys and the schema fields they fill.
const OUTPUT_FIELDS: &[(&str, &str)] = &[
    ("proc.name", fields::PROCESS_NAME),
    ("proc.exepath", fields::PROCESS_EXECUTABLE),
    ("proc.cmdline", fields::PROCESS_COMMAND_LINE),
    ("proc.pid", fields::PROCESS_PID),
    ("proc.pname", fields::PROCESS_PARENT_NAME),
    ("container.id", fields::CONTAINER_ID),
    ("container.name", fields::CONTAINER_NAME),
    ("container.image.repository", fields::CONTAINER_IMAGE_NAME),
    ("k8s.ns.name", fields::K8S_NAMESPACE),
    ("k8s.pod.name", fields::K8S_POD_NAME),
    ("fd.name", fields::FILE_PATH),
    ("user.name", fields::USER_NAME),
    ("user.uid", fields::USER_ID),
    ("evt.type", fields::EVENT_ACTION),
];

/// Falco's priority as a syslog severity code (0 emergency ... 7 debug).
fn severity(priority: &str) -> Option<i64> {
    let code = match priority.to_ascii_lowercase().as_str() {
        "emergency" => 0,
        "alert" => 1,
        "critical" => 2,
        "error" => 3,
        "warning" => 4,
        "notice" => 5,
        "informational" | "info" => 6,
        "debug" => 7,
        _ => return None,
    };
    Some(code)
}

/// Normalizes one Falco alert into the schema, keeping it whole as `original`.
pub fn normalize(id: EventId, original: Value) -> Result<Event, NormalizeError> {
    let Value::Object(alert) = &original else {
        return Err(NormalizeError::NotAnObject(json_type_name(&original)));
    };
    let rule = alert.get("rule").and_then(Value::as_str).ok_or(NormalizeError::Missing("rule"))?;
    let time_text = alert.get("time").and_then(Value::as_str).ok_or(NormalizeError::Missing("time"))?;
    let timestamp = DateTime::parse_from_rfc3339(time_text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| NormalizeError::BadTime(time_text.chars().take(64).collect()))?;

    let mut event = Event::new(id, timestamp, Value::Null);
    event.set(fields::EVENT_DATASET, DATASET);
    event.set(fields::EVENT_KIND, "alert");
    event.set(fields::EVENT_INGESTED, vigil_schema::format_timestamp(id.arrival()));
    event.set(fields::RULE_NAME, rule);
    event.set(fields::MESSAGE, alert.get("output").and_then(Value::as_str));
    event.set(fields::HOST_NAME, alert.get("hostname").and_then(Value::as_str));
    if let Some(priority) = alert.get("priority").and_then(Value::as_str) {
        event.set(fields::LOG_LEVEL, priority.to_ascii_lowercase());
        if let Some(code) = severity(priority) {
            event.set(fields::EVENT_SEVERITY, code);
        }
    }
    if let Some(Value::Array(tags)) = alert.get("tags") {
        event.set(fields::TAGS, tags.iter().filter(|tag| tag.is_string()).cloned().collect::<Vec<_>>());
    }
    if let Some(Value::Object(output_fields)) = alert.get("output_fields") {
        for (falco_name, schema_name) in OUTPUT_FIELDS {
            if let Some(value @ (Value::String(_) | Value::Number(_))) = output_fields.get(*falco_name) {
                event.set(*schema_name, value.clone());
            }
        }
        if output_fields.get("k8s.pod.name").is_some_and(Value::is_string) {
            event.set(fields::ORCHESTRATOR_TYPE, "kubernetes");
        }
    }
    event.original = original;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use vigil_schema::EventIdGenerator;

    use super::*;

    #[test]
    fn output_fields_fill_the_schema() {
        let alert = json!({
            "output": "shell in container", "priority": "Warning", "rule": "Terminal shell in container",
            "time": "2024-01-01T00:00:00.123456789Z", "hostname": "node-1", "tags": ["shell", "mitre_execution"],
            "output_fields": {"proc.name": "bash", "proc.pid": 42, "k8s.pod.name": "web-1", "k8s.ns.name": "shop", "fd.name": null}
        });
        let event = normalize(EventIdGenerator::new().next(), alert).unwrap();
        assert_eq!(event.get_str(fields::PROCESS_NAME), Some("bash"));
        assert_eq!(event.get(fields::PROCESS_PID), Some(&json!(42)));
        assert_eq!(event.get(fields::EVENT_SEVERITY), Some(&json!(4)));
        assert_eq!(event.get_str(fields::K8S_POD_NAME), Some("web-1"));
        assert_eq!(event.get(fields::FILE_PATH), None);
        assert_eq!(event.timestamp.timestamp_subsec_nanos(), 123_456_789);
    }

    #[test]
    fn missing_rule_is_named() {
        let error = normalize(EventIdGenerator::new().next(), json!({"time": "x"})).unwrap_err();
        assert_eq!(error.to_string(), "missing rule");
    }
}
