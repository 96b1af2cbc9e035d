//! Vigil's common event schema, shared by every other crate.
//!
//! The principal types:
//! - [`Event`]: one normalized event: its [`EventId`], its time, the schema's
//!   fields under ECS-style dotted names ([`Fields`]) and the `original` event
//!   exactly as the source sent it.
//! - [`EventId`]: unique, sortable by arrival, printed as 26 Crockford base32
//!   characters; made by an [`EventIdGenerator`].
//! - [`EventSink`]: the interface sources hand batches to. A sink answers with a
//!   [`Receipt`] only once the whole batch is durable, or with a [`SinkError`]
//!   whose [`SinkErrorKind`] tells the source whether to slow down or give up.
//! - [`fields`]: the names of the schema's fields, as constants, with the kind of
//!   each (keyword, number, date, text).
//!
//! ```
//! use vigil_schema::{Event, EventIdGenerator, fields};
//! let ids = EventIdGenerator::new();
//! let mut event = Event::new(ids.next(), chrono::Utc::now(), serde_json::json!({"verb": "get"}));
//! event.set(fields::EVENT_DATASET, "k8s.audit");
//! assert_eq!(event.get_str(fields::EVENT_DATASET), Some("k8s.audit"));
//! ```

pub mod audit;
mod field_map;
pub mod fields;
mod id;
pub mod record;
mod sink;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use field_map::{FieldName, Fields, intern};
pub use id::{EventId, EventIdGenerator, ParseEventIdError};
pub use sink::{BoxFuture, EventSink, Receipt, SinkError, SinkErrorKind};

/// One normalized event.
///
/// `fields` never holds `@timestamp` or `event.id`: those live in `timestamp`
/// and `id`, and [`Event::to_schema_json`] puts them back for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "@timestamp", with = "rfc3339_nanos")]
    pub timestamp: DateTime<Utc>,
    pub fields: Fields,
    pub original: Value,
}

impl Event {
    pub fn new(id: EventId, timestamp: DateTime<Utc>, original: Value) -> Event {
        Event { id, timestamp, fields: Fields::new(), original }
    }

    /// Sets a schema field; `Value::Null`, empty strings and empty arrays are
    /// not stored, so that a missing value and an absent field look the same.
    pub fn set(&mut self, name: impl Into<FieldName>, value: impl Into<Value>) {
        let value = value.into();
        let is_empty = match &value {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(items) => items.is_empty(),
            _ => false,
        };
        if !is_empty {
            self.fields.insert(name, value);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// Gives the event its id, assigned on arrival, and the arrival time
    /// (`event.ingested`) that the id holds.
    pub fn assign_id(&mut self, id: EventId) {
        self.id = id;
        self.set(fields::EVENT_INGESTED, format_timestamp(id.arrival()));
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// The dataset this event belongs to (`k8s.audit`, `falco`, ...).
    pub fn dataset(&self) -> &str {
        self.get_str(fields::EVENT_DATASET).unwrap_or("")
    }

    /// The schema's fields as one flat JSON object, with `@timestamp` and
    /// `event.id` included: what the search API shows as `event`.
    pub fn to_schema_json(&self) -> Value {
        let mut object = self.fields.to_map();
        object.insert(fields::TIMESTAMP.to_owned(), Value::String(format_timestamp(self.timestamp)));
        object.insert(fields::EVENT_ID.to_owned(), Value::String(self.id.to_string()));
        Value::Object(object)
    }

    /// Looks a dotted name up in the original event: first as a flat key
    /// (`{"a.b": 1}`), then by walking nested objects (`{"a": {"b": 1}}`).
    pub fn original_field(&self, path: &str) -> Option<&Value> {
        lookup_dotted(&self.original, path)
    }
}

/// Looks a dotted name up in a JSON value: a flat key first, then a walk
/// through nested objects, trying the longest flat key at each level so that
/// keys which themselves contain dots (`output_fields."proc.name"`) resolve.
pub fn lookup_dotted<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let object = value.as_object()?;
    if let Some(found) = object.get(path) {
        return Some(found);
    }
    for (at, _) in path.rmatch_indices('.') {
        let (head, rest) = (&path[..at], &path[at + 1..]);
        if let Some(child) = object.get(head)
            && let Some(found) = lookup_dotted(child, rest)
        {
            return Some(found);
        }
    }
    None
}

/// Whether a key of `value`'s top-level object holds a dot (few events'
/// do): when none does, a dotted name can only start with its first
/// segment there.
pub fn has_dotted_keys(value: &Value) -> bool {
    value.as_object().is_some_and(|object| object.keys().any(|key| key.as_bytes().contains(&b'.')))
}

/// [`lookup_dotted`] over one value, many times: when no key of its
/// top-level object holds a dot (most events), a dotted name can only start
/// with its first segment, and the flat keys it cannot be are not looked up.
pub(crate) struct DottedLookup<'v> {
    value: &'v Value,
    top_keys_with_dots: bool,
}

impl<'v> DottedLookup<'v> {
    pub(crate) fn new(value: &'v Value) -> DottedLookup<'v> {
        DottedLookup { value, top_keys_with_dots: has_dotted_keys(value) }
    }

    /// What [`lookup_dotted`] gives for `path`.
    pub(crate) fn get(&self, path: &str) -> Option<&'v Value> {
        match path.split_once('.') {
            Some((head, rest)) if !self.top_keys_with_dots => {
                lookup_dotted(self.value.as_object()?.get(head)?, rest)
            }
            _ => lookup_dotted(self.value, path),
        }
    }
}

/// Formats a time as the schema writes it: RFC 3339, UTC, nanoseconds.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Reads a time as [`format_timestamp`] writes it, or any RFC 3339 time.
/// A time past year 9999 (an event stamped `9999-12-31T23:59:59-05:00` is
/// one, in UTC) is written with a signed year, `+10000-01-01T04:59:59Z`,
/// which RFC 3339 has no room for: it is read back all the same.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(time) => Ok(time.with_timezone(&Utc)),
        Err(error) => match text.strip_suffix('Z') {
            Some(naive) if naive.starts_with(['+', '-']) => {
                chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f")
                    .map(|time| time.and_utc())
            }
            _ => Err(error),
        },
    }
}

mod rfc3339_nanos {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_timestamp(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_timestamp(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_assigned_id_brings_the_arrival_time() {
        let mut event = Event::new(EventId::from_u128(0), Utc::now(), json!({}));
        let id = EventIdGenerator::new().next();
        event.assign_id(id);
        assert_eq!(event.id, id);
        assert_eq!(event.get_str(fields::EVENT_INGESTED), Some(format_timestamp(id.arrival()).as_str()));
        assert!(Utc::now() - id.arrival() < chrono::Duration::seconds(5));
    }

    #[test]
    fn dotted_lookup_prefers_flat_keys_then_walks_nested_objects() {
        let value = json!({
            "objectRef": {"resource": "pods", "subresource": "exec"},
            "output_fields": {"proc.name": "bash"},
            "a.b": 1,
            "a": {"b": 2}
        });
        assert_eq!(lookup_dotted(&value, "objectRef.resource"), Some(&json!("pods")));
        assert_eq!(lookup_dotted(&value, "output_fields.proc.name"), Some(&json!("bash")));
        assert_eq!(lookup_dotted(&value, "a.b"), Some(&json!(1)));
        assert_eq!(lookup_dotted(&value, "objectRef.name"), None);
        assert_eq!(lookup_dotted(&value, "objectRef.resource.deeper"), None);
    }

    #[test]
    fn every_time_the_schema_writes_reads_back() {
        let times = [
            "9999-12-31T23:59:59-05:00",
            "0000-01-01T00:00:00+01:00",
            "2025-02-03T08:00:00.123456789Z",
            "+262142-12-31T23:59:59.999999999Z",
            "-0005-06-07T08:09:10Z",
        ];
        for text in times {
            let time = parse_timestamp(text).unwrap();
            assert_eq!(parse_timestamp(&format_timestamp(time)).unwrap(), time, "{text}");
        }
        assert_eq!(format_timestamp(parse_timestamp(times[0]).unwrap()), "+10000-01-01T04:59:59.000000000Z");
        for bad in ["", "yesterday", "+10000-01-01", "+10000-13-01T00:00:00Z", "2025-02-03T08:00:00"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dotted_lookup_over_one_value_finds_what_lookup_dotted_finds() {
        let values = [
            json!({"objectRef": {"resource": "pods"}, "annotations": {"authorization.k8s.io/decision": "allow"}, "verb": "get"}),
            json!({"objectRef": {"resource": "pods"}, "objectRef.resource": "flat", "a.b": {"c": 1}, "a": {"b.c": 2}}),
            json!({"output_fields": {"proc.name": "bash", "proc": {"name": "sh"}}, "kubernetes": {"pod_name": "web"}}),
            json!(["not", "an", "object"]),
            json!("text"),
        ];
        let paths = [
            "objectRef.resource",
            "annotations.authorization.k8s.io/decision",
            "verb",
            "a.b.c",
            "a.b",
            "output_fields.proc.name",
            "kubernetes.pod_name",
            "missing.path",
            "objectRef",
            "objectRef.resource.deeper",
            ".",
            "objectRef.",
            ".resource",
        ];
        for value in &values {
            let lookup = DottedLookup::new(value);
            for path in paths {
                assert_eq!(lookup.get(path), lookup_dotted(value, path), "{path} in {value}");
            }
        }
    }

    #[test]
    fn empty_values_are_not_stored() {
        let ids = EventIdGenerator::new();
        let mut event = Event::new(ids.next(), Utc::now(), json!({}));
        event.set("a", "");
        event.set("b", Value::Null);
        event.set("c", Vec::<String>::new());
        event.set("d", 0);
        assert_eq!(event.fields.keys().collect::<Vec<_>>(), vec!["d"]);
    }

    #[test]
    fn event_round_trips_through_json_with_nanoseconds() {
        let ids = EventIdGenerator::new();
        let time =
            DateTime::parse_from_rfc3339("2025-02-03T08:15:01.482113789Z").unwrap().with_timezone(&Utc);
        let mut event = Event::new(ids.next(), time, json!({"verb": "get"}));
        event.set("user.name", "alice");
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.contains("\"@timestamp\":\"2025-02-03T08:15:01.482113789Z\""), "{text}");
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
    }
}
