//! Kubernetes audit events (`audit.k8s.io/v1`).
//!
//! [`decode_body`] accepts the three shapes a real API server produces: an
//! `EventList` (the audit webhook backend's body), a single `Event`, or
//! newline-delimited Events (the audit log backend's file). Every item is
//! normalized on its own: a malformed item is reported as a [`Rejection`] with
//! its index and reason, and its neighbours are kept.
//!
//! [`normalize`] is a pure function from an audit Event to a Vigil
//! [`Event`]; the mapping is documented in `docs/schema.md`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use vigil_schema::audit::{self, str_at, strings_at};
use vigil_schema::{Event, EventId, EventIdGenerator, fields};

use crate::Rejection;
use crate::records::{Item, json_items};

/// The dataset name of Kubernetes audit events.
pub const DATASET: &str = audit::DATASET;

/// What the deployment knows that the event does not carry.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The cluster the events come from (`orchestrator.cluster.name`).
    pub cluster_name: Option<String>,
    /// Limits on one event (and on one record of the other HTTP sources).
    pub limits: crate::limits::RecordLimits,
}

/// The events of one body, and the items that were refused.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejection>,
}

/// Decodes and normalizes a body holding an `EventList`, an `Event`, a JSON
/// array of Events, or newline-delimited Events.
pub fn decode_body(body: &[u8], ids: &EventIdGenerator, context: &Context) -> Decoded {
    let mut decoded = Decoded::default();
    for item in split_items(body) {
        let result = item.value.and_then(|value| {
            context.limits.check(&value)?;
            normalize(ids.next(), value, context).map_err(|err| err.to_string())
        });
        match result {
            Ok(event) => decoded.events.push(event),
            Err(reason) => decoded.rejected.push(Rejection { index: item.index, line: item.line, reason }),
        }
    }
    decoded
}

/// Splits a body into its items with [`records::json_items`] (one JSON
/// value, an array's elements, or one value per line), then opens an
/// `EventList` into its `items`.
fn split_items(body: &[u8]) -> Vec<Item> {
    let mut items = json_items(body);
    let is_event_list = |item: &Item| {
        item.value.as_ref().is_ok_and(|value| value.get("kind").and_then(Value::as_str) == Some("EventList"))
    };
    if items.len() != 1 || !is_event_list(&items[0]) {
        return items;
    }
    let Ok(Value::Object(mut list)) = items.remove(0).value else { return Vec::new() };
    match list.remove("items") {
        Some(Value::Array(events)) => events
            .into_iter()
            .enumerate()
            .map(|(index, value)| Item { index, line: None, value: Ok(value) })
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => vec![Item { index: 0, line: None, value: Err("EventList items is not an array".into()) }],
    }
}

/// The non-empty lines of a body with their 1-based line numbers.
pub fn split_lines(body: &[u8]) -> Vec<(usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(at, line)| (at + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| line.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// Why an audit event could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("kind is {0:?}, expected \"Event\"")]
    WrongKind(String),
    #[error("apiVersion is {0:?}, expected audit.k8s.io/v1")]
    WrongApiVersion(String),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field} is {value:?}, not an RFC 3339 time")]
    BadTime { field: &'static str, value: String },
}

/// Normalizes one audit Event into the schema, keeping it whole as `original`.
pub fn normalize(id: EventId, original: Value, context: &Context) -> Result<Event, NormalizeError> {
    let Value::Object(audit) = &original else {
        return Err(NormalizeError::NotAnObject(json_type_name(&original)));
    };
    if let Some(kind) = audit.get("kind").and_then(Value::as_str)
        && kind != "Event"
    {
        return Err(NormalizeError::WrongKind(kind.to_owned()));
    }
    if let Some(api_version) = audit.get("apiVersion").and_then(Value::as_str)
        && !api_version.starts_with("audit.k8s.io/")
    {
        return Err(NormalizeError::WrongApiVersion(api_version.to_owned()));
    }
    let audit_id = str_at(audit, &["auditID"]).ok_or(NormalizeError::Missing("auditID"))?;
    let verb = str_at(audit, &["verb"]).ok_or(NormalizeError::Missing("verb"))?;
    let timestamp = event_time(audit)?;

    let mut event = Event::new(id, timestamp, Value::Null);
    event.set(fields::EVENT_DATASET, DATASET);
    event.set(fields::EVENT_KIND, "event");
    event.set(fields::EVENT_CATEGORY, vec!["api"]);
    event.set(fields::EVENT_TYPE, vec![audit::event_type(verb)]);
    event.set(fields::EVENT_ACTION, verb);
    event.set(fields::EVENT_INGESTED, vigil_schema::format_timestamp(id.arrival()));
    event.set(fields::ORCHESTRATOR_TYPE, "kubernetes");
    if let Some(cluster) = &context.cluster_name {
        event.set(fields::ORCHESTRATOR_CLUSTER_NAME, cluster.as_str());
    }

    event.set(fields::K8S_AUDIT_ID, audit_id);
    event.set(fields::K8S_AUDIT_STAGE, str_at(audit, &["stage"]));
    event.set(fields::K8S_AUDIT_LEVEL, str_at(audit, &["level"]));

    // Who.
    event.set(fields::USER_NAME, str_at(audit, &["user", "username"]));
    event.set(fields::USER_ID, str_at(audit, &["user", "uid"]));
    event.set(fields::USER_GROUP_NAME, strings_at(audit, &["user", "groups"]));
    event.set(fields::USER_EFFECTIVE_NAME, str_at(audit, &["impersonatedUser", "username"]));
    event.set(fields::USER_EFFECTIVE_GROUP_NAME, strings_at(audit, &["impersonatedUser", "groups"]));

    // From where.
    event.set(fields::SOURCE_IP, audit::source_ip(audit));
    event.set(fields::NETWORK_FORWARDED_IP, audit::forwarded_ip(audit));
    event.set(fields::USER_AGENT_ORIGINAL, str_at(audit, &["userAgent"]));

    // What.
    event.set(fields::ORCHESTRATOR_RESOURCE_TYPE, str_at(audit, &["objectRef", "resource"]));
    event.set(fields::ORCHESTRATOR_RESOURCE_SUBRESOURCE, str_at(audit, &["objectRef", "subresource"]));
    event.set(fields::ORCHESTRATOR_NAMESPACE, str_at(audit, &["objectRef", "namespace"]));
    event.set(fields::ORCHESTRATOR_RESOURCE_NAME, str_at(audit, &["objectRef", "name"]));
    event.set(fields::ORCHESTRATOR_API_VERSION, audit::api_version(audit));
    event.set(fields::K8S_AUDIT_API_GROUP, str_at(audit, &["objectRef", "apiGroup"]));
    event.set(fields::URL_ORIGINAL, str_at(audit, &["requestURI"]));

    // With what result.
    let status_code = audit::status_code(audit);
    if let Some(code) = status_code {
        event.set(fields::HTTP_RESPONSE_STATUS_CODE, code);
    }
    let decision = audit::decision(audit);
    event.set(fields::K8S_AUTHZ_DECISION, decision);
    event.set(fields::K8S_AUTHZ_REASON, str_at(audit, &["annotations", "authorization.k8s.io/reason"]));
    event.set(fields::EVENT_OUTCOME, audit::outcome(status_code, decision));
    event.set(fields::MESSAGE, audit::message(audit));

    event.original = original;
    Ok(event)
}

/// The time of the request: when the API server received it, falling back to
/// the legacy `timestamp` and then to the stage's time.
fn event_time(audit: &Map<String, Value>) -> Result<DateTime<Utc>, NormalizeError> {
    let (field, text) = audit::time_field(audit)
        .ok_or(NormalizeError::Missing("time (requestReceivedTimestamp, timestamp or stageTimestamp)"))?;
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| NormalizeError::BadTime { field, value: text.chars().take(64).collect() })
}

pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(extra: Value) -> Value {
        let mut base = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": "a1", "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/default/pods",
            "verb": "list", "user": {"username": "alice"},
            "requestReceivedTimestamp": "2025-02-03T08:15:01.482113Z"
        });
        for (key, value) in extra.as_object().unwrap() {
            base[key] = value.clone();
        }
        base
    }

    fn decode(body: &str) -> Decoded {
        decode_body(body.as_bytes(), &EventIdGenerator::new(), &Context::default())
    }

    #[test]
    fn event_list_single_event_and_lines_are_all_accepted() {
        let one = event(json!({})).to_string();
        let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [event(json!({})), event(json!({}))]});
        assert_eq!(decode(&list.to_string()).events.len(), 2);
        assert_eq!(decode(&one).events.len(), 1);
        assert_eq!(decode(&format!("{one}\n\n{one}\r\n{one}\n")).events.len(), 3);
        assert_eq!(decode(&format!("[{one},{one}]")).events.len(), 2);
        assert_eq!(decode("  \n").events.len(), 0);
    }

    #[test]
    fn a_bad_item_is_reported_with_its_index_and_the_others_are_kept() {
        let list = json!({"kind": "EventList", "items": [event(json!({})), {"kind": "Event", "verb": "get"}, 7, event(json!({}))]});
        let decoded = decode(&list.to_string());
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.rejected.len(), 2);
        assert_eq!(decoded.rejected[0].index, 1);
        assert_eq!(decoded.rejected[0].reason, "missing auditID");
        assert_eq!(decoded.rejected[1].index, 2);
        assert_eq!(decoded.rejected[1].reason, "expected a JSON object, found a number");
    }

    #[test]
    fn a_bad_line_is_reported_with_its_line_number() {
        let one = event(json!({})).to_string();
        let decoded = decode(&format!("{one}\n\n{{\"kind\": \"Ev\n{one}\n"));
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].index, 1);
        assert_eq!(decoded.rejected[0].line, Some(3));
        assert!(decoded.rejected[0].reason.starts_with("invalid JSON: "), "{}", decoded.rejected[0].reason);
    }

    #[test]
    fn wrong_kinds_versions_and_times_are_named() {
        let cases = [
            (json!({"kind": "Pod"}), "kind is \"Pod\", expected \"Event\""),
            (json!({"apiVersion": "v1"}), "apiVersion is \"v1\", expected audit.k8s.io/v1"),
            (
                json!({"requestReceivedTimestamp": "yesterday"}),
                "requestReceivedTimestamp is \"yesterday\", not an RFC 3339 time",
            ),
        ];
        for (extra, reason) in cases {
            let decoded = decode(&event(extra).to_string());
            assert_eq!(decoded.rejected[0].reason, reason);
        }
    }

    #[test]
    fn legacy_events_fall_back_to_timestamp() {
        let mut legacy =
            event(json!({"timestamp": "2018-10-26T09:00:00Z", "apiVersion": "audit.k8s.io/v1beta1"}));
        legacy.as_object_mut().unwrap().remove("requestReceivedTimestamp");
        let decoded = decode(&legacy.to_string());
        assert_eq!(decoded.events[0].timestamp.to_rfc3339(), "2018-10-26T09:00:00+00:00");
    }

    #[test]
    fn outcome_follows_the_code_and_the_decision() {
        assert_eq!(audit::outcome(Some(200), Some("allow")), "success");
        assert_eq!(audit::outcome(Some(101), None), "success");
        assert_eq!(audit::outcome(Some(403), Some("forbid")), "failure");
        assert_eq!(audit::outcome(None, Some("forbid")), "failure");
        assert_eq!(audit::outcome(None, None), "unknown");
    }
}
