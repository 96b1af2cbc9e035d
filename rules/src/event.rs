//! Vigil's [`Event`] seen through rsigma's event trait: a rule's field name
//! is looked up first among the schema's fields (`user.name`), then in the
//! original event by its dotted path (`objectRef.resource`), so rules written
//! for either work. Keywords search every string of both.

use std::borrow::Cow;

use rsigma_eval::event::{Event as SigmaEventTrait, EventValue, JsonEvent};
use serde_json::Value;
use vigil_schema::Event;

pub(crate) struct SigmaEvent<'e> {
    event: &'e Event,
    original: JsonEvent<'e>,
    schema_json: Option<Value>,
    /// Whether the original has a top-level key with a dot in it: only then
    /// can a dotted name be a flat key there.
    dotted_top_keys: bool,
}

impl<'e> SigmaEvent<'e> {
    pub(crate) fn new(event: &'e Event) -> SigmaEvent<'e> {
        let dotted_top_keys = match &event.original {
            Value::Object(object) => object.keys().any(|key| key.contains('.')),
            _ => false,
        };
        SigmaEvent { event, original: JsonEvent::borrow(&event.original), schema_json: None, dotted_top_keys }
    }
}

impl SigmaEventTrait for SigmaEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if may_be_schema_field(path)
            && let Some(value) = self.event.fields.get(path)
        {
            return Some(EventValue::from(value));
        }
        match path {
            vigil_schema::fields::TIMESTAMP => {
                return Some(EventValue::Str(Cow::Owned(vigil_schema::format_timestamp(
                    self.event.timestamp,
                ))));
            }
            vigil_schema::fields::EVENT_ID => {
                return Some(EventValue::Str(Cow::Owned(self.event.id.to_string())));
            }
            _ => {}
        }
        match object_walk(&self.event.original, path, self.dotted_top_keys) {
            Walk::Found(value) => Some(EventValue::from(value)),
            Walk::Absent => mixed_lookup(&self.event.original, path).map(EventValue::from),
            // Lists (any element matches) are rsigma's to walk.
            Walk::ThroughList => self
                .original
                .get_field(path)
                .or_else(|| mixed_lookup(&self.event.original, path).map(EventValue::from)),
        }
    }

    fn any_string_value(&self, predicate: &dyn Fn(&str) -> bool) -> bool {
        self.event.fields.values().any(|value| any_string(value, predicate))
            || self.original.any_string_value(predicate)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut values = Vec::new();
        for value in self.event.fields.values() {
            collect_strings(value, &mut values);
        }
        values.extend(self.original.all_string_values());
        values
    }

    fn to_json(&self) -> Value {
        match &self.schema_json {
            Some(json) => json.clone(),
            None => {
                let mut object = match self.event.to_schema_json() {
                    Value::Object(object) => object,
                    _ => serde_json::Map::new(),
                };
                object.insert("original".into(), self.event.original.clone());
                Value::Object(object)
            }
        }
    }
}

fn any_string(value: &Value, predicate: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::String(text) => predicate(text),
        Value::Array(items) => items.iter().any(|item| any_string(item, predicate)),
        Value::Object(object) => object.values().any(|item| any_string(item, predicate)),
        _ => false,
    }
}

fn collect_strings<'v>(value: &'v Value, out: &mut Vec<Cow<'v, str>>) {
    match value {
        Value::String(text) => out.push(Cow::Borrowed(text)),
        Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        Value::Object(object) => object.values().for_each(|item| collect_strings(item, out)),
        _ => {}
    }
}

/// Whether a name can be a schema field, judged by its first segment: most
/// rule fields are the original's (`objectRef.resource`, `verb`), and
/// skipping the schema lookup for them is a large part of matching speed.
/// A test checks the list against the schema's fields.
fn may_be_schema_field(path: &str) -> bool {
    let first = path.split('.').next().unwrap_or(path);
    matches!(
        first,
        "@timestamp"
            | "container"
            | "event"
            | "file"
            | "host"
            | "http"
            | "kubernetes"
            | "labels"
            | "log"
            | "message"
            | "network"
            | "orchestrator"
            | "process"
            | "rule"
            | "source"
            | "tags"
            | "url"
            | "user"
            | "user_agent"
    )
}

#[cfg(test)]
#[test]
fn every_schema_field_passes_the_schema_name_check() {
    for (name, _) in vigil_schema::fields::ALL {
        assert!(may_be_schema_field(name), "{name}");
    }
    assert!(may_be_schema_field("labels.app") && may_be_schema_field("kubernetes.labels.app"));
    assert!(!may_be_schema_field("objectRef.resource") && !may_be_schema_field("verb"));
}

/// What a walk through nested objects found.
enum Walk<'v> {
    /// A scalar at the end of the path.
    Found(&'v Value),
    /// No such key in an object on the way.
    Absent,
    /// A list on the way or at the end: left to the general lookup.
    ThroughList,
}

/// The fast path of a field lookup, with the general lookup's semantics
/// (a flat key with dots first, then nested objects) for the common case
/// of objects all the way down to a scalar; it allocates nothing.
fn object_walk<'v>(value: &'v Value, path: &str, dotted_top_keys: bool) -> Walk<'v> {
    let Value::Object(top) = value else { return Walk::ThroughList };
    let flat = if dotted_top_keys || !path.contains('.') { top.get(path) } else { None };
    if let Some(flat) = flat {
        return match flat {
            Value::Array(_) | Value::Object(_) => Walk::ThroughList,
            scalar => Walk::Found(scalar),
        };
    }
    let mut current = value;
    for segment in path.split('.') {
        match current {
            Value::Object(object) => match object.get(segment) {
                Some(next) => current = next,
                None => return Walk::Absent,
            },
            Value::Array(_) => return Walk::ThroughList,
            _ => return Walk::Absent,
        }
    }
    match current {
        Value::Array(_) | Value::Object(_) => Walk::ThroughList,
        scalar => Walk::Found(scalar),
    }
}

/// Finds a dotted path whose segments are partly nested objects and partly
/// keys that themselves contain dots, as in Falco's
/// `output_fields.proc.name` (object `output_fields`, key `proc.name`). At
/// each level the longest key made of the next segments wins.
pub(crate) fn mixed_lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    // A path without a dot was already looked up as a plain key.
    if !path.contains('.') {
        return None;
    }
    let mut current = value;
    let mut rest = path;
    'levels: while !rest.is_empty() {
        let Value::Object(object) = current else { return None };
        // Candidate keys end at the end of `rest` or before one of its dots,
        // longest first; they borrow from the path, so nothing is allocated.
        let mut end = rest.len();
        loop {
            if let Some(next) = object.get(&rest[..end]) {
                current = next;
                rest = rest.get(end + 1..).unwrap_or("");
                continue 'levels;
            }
            match rest[..end].rfind('.') {
                Some(dot) => end = dot,
                None => return None,
            }
        }
    }
    Some(current)
}
