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
}

impl<'e> SigmaEvent<'e> {
    pub(crate) fn new(event: &'e Event) -> SigmaEvent<'e> {
        SigmaEvent { event, original: JsonEvent::borrow(&event.original), schema_json: None }
    }
}

impl SigmaEventTrait for SigmaEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if let Some(value) = self.event.fields.get(path) {
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
        self.original
            .get_field(path)
            .or_else(|| mixed_lookup(&self.event.original, path).map(EventValue::from))
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

/// Finds a dotted path whose segments are partly nested objects and partly
/// keys that themselves contain dots, as in Falco's
/// `output_fields.proc.name` (object `output_fields`, key `proc.name`). At
/// each level the longest key made of the next segments wins.
pub(crate) fn mixed_lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut current = value;
    let mut position = 0;
    'levels: while position < segments.len() {
        let Value::Object(object) = current else { return None };
        for end in (position + 1..=segments.len()).rev() {
            let key = segments[position..end].join(".");
            if let Some(next) = object.get(&key) {
                current = next;
                position = end;
                continue 'levels;
            }
        }
        return None;
    }
    Some(current)
}
