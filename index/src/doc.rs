//! The tantivy schema of an event partition, and the conversion of a Vigil
//! [`Event`] into a tantivy document.
//!
//! | tantivy field      | holds                                  | indexed as                         |
//! |--------------------|----------------------------------------|------------------------------------|
//! | `_ts`              | `@timestamp`                           | date (ns), fast only               |
//! | `_arrival`, `_seq` | the id's top and bottom 64 bits        | u64, fast (order, and lookup by id) |
//! | `_doc`             | the event's record ([`vigil_schema::record`]) | stored only (zstd doc store)  |
//! | `_all`             | every string of the original, but those the message holds | words, with positions |
//! | `_orig`            | the original event                     | JSON paths, lower-cased exact terms |
//! | `_extra`           | schema fields outside the fixed list   | JSON paths, lower-cased exact terms |
//! | one per schema field (`user.name`, ...) | that field        | by its kind: keyword (lower-cased exact term, fast with the original case), long, ip, date, text |

use std::net::IpAddr;

use rustc_hash::FxHashMap;
use serde_json::Value;
use tantivy::schema::{
    BytesOptions, DateOptions, DateTimePrecision, Field, IndexRecordOption, IpAddrOptions, JsonObjectOptions,
    NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, RemoveLongFilter, TextAnalyzer, TokenizerManager};
use tantivy::{DateTime, TantivyDocument};
use vigil_schema::Event;
use vigil_schema::fields::{self, FieldKind};

use crate::pruned::LeftOut;

/// The tokenizer of keyword fields: the whole value, lower-cased.
pub const KEYWORD_TOKENIZER: &str = "vigil_keyword";
/// Longest keyword term indexed, in bytes; longer values are still stored and
/// found by free text.
const MAX_KEYWORD_BYTES: usize = 4096;

/// The fields of the tantivy schema, resolved once.
#[derive(Clone)]
pub struct DocSchema {
    pub schema: Schema,
    pub timestamp: Field,
    pub arrival: Field,
    pub seq: Field,
    pub doc: Field,
    pub all: Field,
    pub original: Field,
    pub extra: Field,
    /// The schema's own fields, by name, with their kind (looked up for
    /// every field of every event: a fast hash, not SipHash).
    pub named: FxHashMap<&'static str, (FieldKind, Field)>,
    /// The hash column of each identifier field (`_hash.<name>`: see
    /// `identifier.rs`), by name.
    pub hashes: FxHashMap<&'static str, Field>,
}

impl DocSchema {
    /// The schema of the partitions this version creates.
    pub fn new() -> DocSchema {
        DocSchema::with_layout(Layout::CURRENT)
    }

    /// The schema of a partition of this layout (the fields it lacks are
    /// not in it; [`DocSchema::new`]'s other fields are the same).
    pub fn with_layout(layout: Layout) -> DocSchema {
        let mut builder = Schema::builder();
        // No field norms anywhere: hits are ordered by time, never scored.
        let keyword_indexing = TextFieldIndexing::default()
            .set_tokenizer(KEYWORD_TOKENIZER)
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic);
        let words_indexing = TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        // Time is read from the column only (ranges, exact seconds, order,
        // histograms): no inverted index. Partitions written before kept one.
        let timestamp = builder.add_date_field(
            "_ts",
            DateOptions::default().set_fast().set_precision(DateTimePrecision::Nanoseconds),
        );
        let arrival = builder.add_u64_field("_arrival", NumericOptions::default().set_fast());
        let seq = builder.add_u64_field("_seq", NumericOptions::default().set_fast());
        let doc = builder.add_bytes_field("_doc", BytesOptions::default().set_stored());
        let all = builder
            .add_text_field("_all", TextOptions::default().set_indexing_options(words_indexing.clone()));
        let json_options = JsonObjectOptions::default()
            .set_indexing_options(keyword_indexing.clone())
            .set_expand_dots_enabled();
        let original = builder.add_json_field("_orig", json_options.clone());
        let extra = builder.add_json_field("_extra", json_options.set_fast("raw"));
        let mut named = FxHashMap::default();
        for (name, kind) in fields::ALL {
            if *name == fields::TIMESTAMP || *name == fields::EVENT_ID {
                continue;
            }
            let field = match kind {
                // Kept in place for the partitions that indexed it; found by
                // its hash column now.
                FieldKind::Keyword if fields::is_identifier(name) && layout.hashed_identifiers => {
                    builder.add_text_field(name, TextOptions::default())
                }
                FieldKind::Keyword if fields::is_identifier(name) => builder.add_text_field(
                    name,
                    TextOptions::default().set_indexing_options(keyword_indexing.clone()),
                ),
                FieldKind::Keyword => builder.add_text_field(
                    name,
                    TextOptions::default().set_indexing_options(keyword_indexing.clone()).set_fast("raw"),
                ),
                FieldKind::Long => {
                    builder.add_i64_field(name, NumericOptions::default().set_indexed().set_fast())
                }
                FieldKind::Ip => {
                    builder.add_ip_addr_field(name, IpAddrOptions::default().set_indexed().set_fast())
                }
                FieldKind::Date => builder.add_date_field(
                    name,
                    DateOptions::default()
                        .set_indexed()
                        .set_fast()
                        .set_precision(DateTimePrecision::Nanoseconds),
                ),
                FieldKind::Text => builder.add_text_field(
                    name,
                    TextOptions::default().set_indexing_options(words_indexing.clone()),
                ),
            };
            named.insert(*name, (*kind, field));
        }
        // Fields added since the first partitions: appended, so that a
        // partition without them keeps its fields' places.
        let added = if layout.hashed_identifiers { fields::IDENTIFIERS } else { &[] };
        let hashes = added
            .iter()
            .map(|name| {
                let column = NumericOptions::default().set_fast();
                (*name, builder.add_u64_field(&crate::identifier::hash_field_name(name), column))
            })
            .collect();
        let schema = builder.build();
        DocSchema { schema, timestamp, arrival, seq, doc, all, original, extra, named, hashes }
    }

    /// Registers the tokenizers this schema names.
    pub fn register_tokenizers(tokenizers: &TokenizerManager) {
        tokenizers.register(
            KEYWORD_TOKENIZER,
            TextAnalyzer::builder(RawTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_KEYWORD_BYTES))
                .filter(LowerCaser)
                .build(),
        );
    }

    pub fn named_field(&self, name: &str) -> Option<(FieldKind, Field)> {
        // Looked up for every field of every event indexed: a hash, not a scan.
        self.named.get(name).copied()
    }

    /// The tantivy document of an event, for a partition of this layout.
    pub fn to_document(&self, event: &Event, layout: Layout) -> TantivyDocument {
        // Serializing a Value-based struct cannot fail.
        let stored = vigil_schema::record::encode(event).unwrap_or_default();
        self.to_document_with_stored(event, &stored, layout)
    }

    /// The tantivy document of an event whose record is already at hand,
    /// for a partition of this layout.
    pub fn to_document_with_stored(&self, event: &Event, stored: &[u8], layout: Layout) -> TantivyDocument {
        // Room for the record, the original's leaves, the fields and the
        // free text, so that the document is not grown three times.
        let mut document = TantivyDocument::with_capacity(stored.len() * 3 + 1024);
        document.add_date(self.timestamp, to_tantivy_time(event.timestamp));
        document.add_u64(self.arrival, (event.id.as_u128() >> 64) as u64);
        document.add_u64(self.seq, event.id.as_u128() as u64);
        document.add_bytes(self.doc, stored);

        let mut extra = serde_json::Map::new();
        for (name, value) in &event.fields {
            if let Some(hash) = self.hashes.get(name) {
                match (layout.hashed_identifiers, value.as_str(), self.named.get(name)) {
                    (true, Some(text), _) => document.add_u64(*hash, crate::identifier::hash(text)),
                    (false, Some(text), Some((_, field))) => document.add_text(*field, text),
                    _ => {}
                }
                continue;
            }
            match self.named_field(name) {
                Some((kind, field)) => add_typed(&mut document, kind, field, value),
                None => {
                    extra.insert(name.to_owned(), value.clone());
                }
            }
        }
        if !extra.is_empty() {
            document.add_field_value(self.extra, &Value::Object(extra));
        }
        if event.original.is_object() {
            let mut left_out = LeftOut::new(&event.original);
            match event.dataset() {
                "k8s.audit" => leave_out_of_audit(event, &mut left_out),
                "k8s.container" => leave_out_of_container(
                    &event.original,
                    event.get_str(fields::MESSAGE),
                    event.timestamp,
                    &mut left_out,
                ),
                _ => {}
            }
            document.add_field_value(self.original, left_out.view());
        }
        // Free text is `message` (a field of its own, searched with `_all`)
        // and every string of the original, but for identifiers and times.
        // The other schema fields are taken from the original, so their
        // words are there already; the original's copy of the message (a
        // container log's `log`, with its newline) is not indexed again.
        // An audit event's message holds its user, verb and target whole,
        // so their words are found there (phrases too) and not indexed again.
        let message = event.get_str(fields::MESSAGE);
        let in_message = match &event.original {
            Value::Object(audit)
                if event.dataset() == vigil_schema::audit::DATASET
                    && message.is_some_and(|message| vigil_schema::audit::is_message(audit, message)) =>
            {
                vigil_schema::audit::message_parts(audit)
            }
            _ => Vec::new(),
        };
        for_each_free_text(&event.original, &mut |text| {
            // The very strings of the original, not equal ones elsewhere.
            let held = in_message.iter().any(|part| std::ptr::eq(*part, text));
            if !held && message != Some(text.trim_end_matches(['\n', '\r'])) {
                document.add_text(self.all, text);
            }
        });
        document
    }
}

/// What a partition's schema holds, where versions of Vigil differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The identifier fields (all of [`fields::IDENTIFIERS`], added together
    /// on 2026-11-24) are hash columns, else terms of their own field. An
    /// identifier added later needs a flag of its own.
    pub hashed_identifiers: bool,
}

impl Layout {
    /// The layout of the partitions this version creates.
    pub const CURRENT: Layout = Layout { hashed_identifiers: true };

    /// The layout of a partition's schema.
    pub fn of(schema: &Schema) -> Layout {
        let hashed_identifiers = fields::IDENTIFIERS
            .iter()
            .all(|name| schema.get_field(&crate::identifier::hash_field_name(name)).is_ok());
        Layout { hashed_identifiers }
    }
}

impl Default for DocSchema {
    fn default() -> DocSchema {
        DocSchema::new()
    }
}

fn add_typed(document: &mut TantivyDocument, kind: FieldKind, field: Field, value: &Value) {
    if let Value::Array(items) = value {
        for item in items {
            add_typed(document, kind, field, item);
        }
        return;
    }
    match kind {
        FieldKind::Keyword | FieldKind::Text => match value {
            Value::String(text) => document.add_text(field, text),
            Value::Number(_) | Value::Bool(_) => document.add_text(field, value.to_string()),
            _ => {}
        },
        FieldKind::Long => {
            if let Some(number) = value.as_i64().or_else(|| value.as_str().and_then(|text| text.parse().ok()))
            {
                document.add_i64(field, number);
            }
        }
        FieldKind::Ip => {
            if let Some(ip) = value.as_str().and_then(|text| text.parse::<IpAddr>().ok()) {
                document.add_ip_addr(field, to_ipv6(ip));
            }
        }
        FieldKind::Date => {
            if let Some(time) =
                value.as_str().and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            {
                document.add_date(field, to_tantivy_time(time.with_timezone(&chrono::Utc)));
            }
        }
    }
}

/// Keys whose values are identifiers or times: unique per event, useless as
/// free text, and costly in the term dictionary. They stay searchable by
/// field (`kubernetes.audit.id:...`, `@timestamp:...`).
const NOT_FREE_TEXT: &[&str] = &[
    "auditID",
    "uid",
    "resourceVersion",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "timestamp",
    "creationTimestamp",
    "time",
    "@timestamp",
];

/// Calls `visit` with the strings of a JSON value that are worth free-text search.
fn for_each_free_text(value: &Value, visit: &mut dyn FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().for_each(|item| for_each_free_text(item, visit)),
        Value::Object(object) => {
            for (key, item) in object {
                if !NOT_FREE_TEXT.contains(&key.as_str()) {
                    for_each_free_text(item, visit);
                }
            }
        }
        _ => {}
    }
}

/// Leaves out of the original audit event what the index holds already:
/// the paths that have a schema twin (queries on `objectRef.resource` are
/// answered by `orchestrator.resource.type`) and the times (in `@timestamp`).
fn leave_out_of_audit<'v>(event: &'v Event, left_out: &mut LeftOut<'v>) {
    // Only where the twin holds the value: an event whose normalizer did
    // not set it keeps the path searchable here.
    for (path, schema_name) in fields::K8S_AUDIT_ALIASES {
        if event.fields.contains_key(schema_name) {
            left_out.path(path);
        }
    }
    // Unique per event, costly as terms: the receive time is answered from
    // `@timestamp` (see `compile::audit_time`), the stage's time not at all.
    for key in AUDIT_RECEIVE_TIMES.iter().chain([&AUDIT_STAGE_TIME]) {
        left_out.key(key);
    }
}

/// The keys of an audit event's receive time (`@timestamp` holds it; the
/// legacy `timestamp` of `audit.k8s.io/v1beta1` too), left out of its
/// indexed original.
pub(crate) const AUDIT_RECEIVE_TIMES: [&str; 2] = ["requestReceivedTimestamp", "timestamp"];

/// The key of an audit event's stage time, left out of its indexed
/// original and not indexed otherwise.
pub(crate) const AUDIT_STAGE_TIME: &str = "stageTimestamp";

/// Leaves out of the original container-log record what the index holds
/// already: the line (`log`, answered by `message`) when it is the message,
/// the names of the `kubernetes` map that have a schema twin
/// (`kubernetes.pod_name` is answered by `kubernetes.pod.name`), its labels
/// (`kubernetes.labels.*` is a schema name, answered from the event's
/// fields), and the time that became `@timestamp`.
fn leave_out_of_container<'v>(
    original: &'v Value,
    message: Option<&str>,
    timestamp: chrono::DateTime<chrono::Utc>,
    left_out: &mut LeftOut<'v>,
) {
    if let Some(key) = container_time_key(original, timestamp) {
        left_out.key(key);
    }
    for path in container_paths_answered(original, message) {
        left_out.path(path);
    }
}

/// The paths of a container-log record that the schema's fields answer:
/// the names whose twin the normalizer set (it takes only strings, and the
/// line is the message only when it is not a JSON line; anything else stays
/// searchable in the original), and the labels.
fn container_paths_answered<'a>(
    original: &'a Value,
    message: Option<&'a str>,
) -> impl Iterator<Item = &'static str> + 'a {
    let twins = fields::K8S_CONTAINER_ALIASES.iter().filter_map(move |(path, schema_name)| {
        let value = original.pointer(&format!("/{}", path.replace('.', "/"))).and_then(Value::as_str);
        let twin = match *schema_name {
            fields::MESSAGE => value.map(|line| line.trim_end_matches(['\n', '\r'])) == message,
            _ => value.is_some(),
        };
        twin.then_some(*path)
    });
    twins.chain(["kubernetes.labels"])
}

/// The key of a container-log record that became `@timestamp`: the first
/// of the normalizer's time keys, in its order, that holds a time, when
/// that time is the event's.
fn container_time_key(original: &Value, timestamp: chrono::DateTime<chrono::Utc>) -> Option<&'static str> {
    let Value::Object(object) = original else { return None };
    let key = ["time", "@timestamp", "timestamp", "date"].into_iter().find(|key| match object.get(*key) {
        Some(Value::String(text)) => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        Some(Value::Number(number)) => number.as_f64().is_some_and(|seconds| seconds > 0.0),
        _ => false,
    })?;
    let is_timestamp = match object.get(key)? {
        Value::String(text) => chrono::DateTime::parse_from_rfc3339(text).is_ok_and(|time| time == timestamp),
        Value::Number(number) => number.as_f64().is_some_and(|seconds| {
            let nanos = timestamp.timestamp_nanos_opt().unwrap_or_default() as f64;
            (seconds * 1e9 - nanos).abs() < 1_000.0
        }),
        _ => false,
    };
    is_timestamp.then_some(key)
}

/// Calls `visit` with every string leaf of a JSON value.
pub fn for_each_string(value: &Value, visit: &mut dyn FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().for_each(|item| for_each_string(item, visit)),
        Value::Object(object) => object.values().for_each(|item| for_each_string(item, visit)),
        _ => {}
    }
}

pub fn to_ipv6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A time as the index holds it: nanoseconds since the epoch, which reach
/// from 1677 to 2262; a time outside is held at the nearer end.
pub fn to_tantivy_time(time: chrono::DateTime<chrono::Utc>) -> DateTime {
    let nanos = time.timestamp_nanos_opt().unwrap_or(if time.timestamp() < 0 { i64::MIN } else { i64::MAX });
    DateTime::from_timestamp_nanos(nanos)
}

/// A bound of a range of times, as the index holds times. Past either end
/// of its range the index cannot tell times apart: a bound out there is
/// held at that end, and included, so that a range reaching past the end
/// finds every event held there (and with them any other event stamped
/// past it).
pub fn time_bound(time: chrono::DateTime<chrono::Utc>, inclusive: bool) -> std::ops::Bound<DateTime> {
    let held = to_tantivy_time(time);
    if inclusive || time.timestamp_nanos_opt().is_none() {
        std::ops::Bound::Included(held)
    } else {
        std::ops::Bound::Excluded(held)
    }
}

pub fn from_tantivy_time(time: DateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(time.into_timestamp_nanos())
}

/// The query for one event id: its two halves, on the fast fields that
/// hold them (ids are unique; indexing them as terms would cost a term per
/// event).
pub fn id_query(schema: &DocSchema, id: vigil_schema::EventId) -> Box<dyn tantivy::query::Query> {
    use std::ops::Bound::Included;
    use tantivy::Term;
    use tantivy::query::{BooleanQuery, Occur, RangeQuery};
    let exactly = |field: Field, value: u64| -> Box<dyn tantivy::query::Query> {
        let term = Term::from_field_u64(field, value);
        Box::new(RangeQuery::new(Included(term.clone()), Included(term)))
    };
    let bits = id.as_u128();
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, exactly(schema.arrival, (bits >> 64) as u64)),
        (Occur::Must, exactly(schema.seq, bits as u64)),
    ]))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};
    use tantivy::TantivyDocument;
    use tantivy::schema::{JsonObjectOptions, Schema};
    use vigil_schema::{Event, EventIdGenerator, fields};

    use super::{LeftOut, leave_out_of_audit, leave_out_of_container};

    /// The clone-and-remove pruning the view replaced: the reference it must match.
    mod reference {
        use serde_json::Value;
        use vigil_schema::Event;
        use vigil_schema::fields;

        /// The original audit event without what the index holds already: the
        /// paths that have a schema twin (queries on `objectRef.resource` are
        /// answered by `orchestrator.resource.type`) and the times (in `@timestamp`).
        pub(super) fn prune_audit_for_original_index(event: &Event) -> Value {
            let mut pruned = event.original.clone();
            // Only where the twin holds the value: an event whose normalizer did
            // not set it keeps the path searchable here.
            for (path, schema_name) in fields::K8S_AUDIT_ALIASES {
                if event.fields.contains_key(schema_name) {
                    remove_path(&mut pruned, path);
                }
            }
            if let Value::Object(object) = &mut pruned {
                for key in crate::doc::AUDIT_RECEIVE_TIMES.iter().chain([&crate::doc::AUDIT_STAGE_TIME]) {
                    object.remove(*key);
                }
            }
            pruned
        }

        /// The original container-log record without what the index holds
        /// already: the line (`log`, answered by `message`) when it is the message, the names of the
        /// `kubernetes` map that have a schema twin (`kubernetes.pod_name` is
        /// answered by `kubernetes.pod.name`), its labels (`kubernetes.labels.*` is a
        /// schema name, answered from the event's fields), and the time that became
        /// `@timestamp`.
        pub(super) fn prune_container_for_original_index(
            original: &Value,
            message: Option<&str>,
            timestamp: chrono::DateTime<chrono::Utc>,
        ) -> Value {
            let mut pruned = original.clone();
            if let Value::Object(object) = &mut pruned
                && let Some(key) = super::super::container_time_key(original, timestamp)
            {
                object.remove(key);
            }
            for path in super::super::container_paths_answered(original, message) {
                remove_path(&mut pruned, path);
            }
            pruned
        }

        /// Removes a dotted path from a JSON value, where keys may hold dots
        /// themselves (`annotations.authorization.k8s.io/decision`), and the objects
        /// it leaves empty.
        pub(super) fn remove_path(value: &mut Value, path: &str) {
            let Value::Object(object) = value else { return };
            if object.remove(path).is_some() {
                return;
            }
            for (dot, _) in path.match_indices('.') {
                let (head, rest) = (&path[..dot], &path[dot + 1..]);
                if let Some(child) = object.get_mut(head) {
                    remove_path(child, rest);
                    if child.as_object().is_some_and(serde_json::Map::is_empty) {
                        object.remove(head);
                    }
                    return;
                }
            }
        }
    }

    /// `_orig` as tantivy stores it, for a pruned copy and for the view.
    fn as_indexed(original: impl for<'a> Fn(&mut TantivyDocument, tantivy::schema::Field)) -> String {
        let mut builder = Schema::builder();
        let field = builder.add_json_field("_orig", JsonObjectOptions::default().set_stored());
        let schema = builder.build();
        let mut document = TantivyDocument::new();
        original(&mut document, field);
        tantivy::Document::to_json(&document, &schema)
    }

    fn audit(original: Value, twins: &[&'static str]) -> Event {
        let mut event = Event::new(EventIdGenerator::new().next(), Utc::now(), original);
        event.set(fields::EVENT_DATASET, "k8s.audit");
        for twin in twins {
            event.set(*twin, "x");
        }
        event
    }

    #[test]
    fn the_audit_view_indexes_what_the_pruned_copy_did() {
        let all_twins: Vec<&str> = fields::K8S_AUDIT_ALIASES.iter().map(|(_, schema)| *schema).collect();
        let cases = [
            (
                json!({"auditID": "a", "verb": "get", "user": {"username": "u", "groups": ["g"], "extra": {"k": ["v"]}},
                    "objectRef": {"resource": "pods", "namespace": "n", "name": "p", "apiVersion": "v1"},
                    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "r"},
                    "responseStatus": {"code": 200, "metadata": {}}, "sourceIPs": ["10.0.0.1"],
                    "requestReceivedTimestamp": "2026-11-20T10:00:00.000001Z", "stageTimestamp": "2026-11-20T10:00:00.1Z"}),
                all_twins.clone(),
            ),
            // Twins missing: their paths stay.
            (
                json!({"verb": "get", "objectRef": {"resource": "pods", "subresource": "exec"}, "level": "Request"}),
                vec![fields::EVENT_ACTION],
            ),
            // An object emptied by the pruning goes; one emptied before, on a path, too; others stay.
            (
                json!({"objectRef": {}, "annotations": {"authorization.k8s.io/decision": "allow", "team": "a"},
                    "user": {"username": "u"}, "impersonatedUser": {"username": "i"}, "a.b": 1, "other": {}}),
                all_twins.clone(),
            ),
            // A flat key that holds the dots of a path.
            (json!({"objectRef.resource": "pods", "objectRef": {"resource": "nodes"}}), all_twins.clone()),
        ];
        for (original, twins) in cases {
            let event = audit(original, &twins);
            let copied = reference::prune_audit_for_original_index(&event);
            let mut left_out = LeftOut::new(&event.original);
            leave_out_of_audit(&event, &mut left_out);
            let view = left_out.view();
            assert_eq!(
                as_indexed(|document, field| document.add_field_value(field, view)),
                as_indexed(|document, field| document.add_field_value(field, &copied)),
                "{}",
                event.original
            );
        }
    }

    #[test]
    fn the_container_view_indexes_what_the_pruned_copy_did() {
        let timestamp = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        let cases = [
            (
                json!({"time": "2026-11-20T10:00:00Z", "log": "refused\n", "stream": "stderr",
                    "kubernetes": {"namespace_name": "n", "pod_name": "p", "labels": {"app": "a"}, "host": "h"}}),
                Some("refused"),
            ),
            // The line is not the message (a JSON line), the time is not @timestamp, a name is not a string.
            (
                json!({"time": "2026-11-20T11:00:00Z", "log": "{\"a\":1}", "kubernetes": {"pod_name": 7}}),
                Some("other"),
            ),
            (json!({"date": 1763632800.0, "log": "x", "kubernetes": {"labels": {}}}), Some("x")),
            (json!({"log": "x", "kubernetes": {"namespace_name": "n", "pod_name": "p"}}), Some("x")),
        ];
        for (original, message) in cases {
            let copied = reference::prune_container_for_original_index(&original, message, timestamp);
            let mut left_out = LeftOut::new(&original);
            leave_out_of_container(&original, message, timestamp, &mut left_out);
            let view = left_out.view();
            assert_eq!(
                as_indexed(|document, field| document.add_field_value(field, view)),
                as_indexed(|document, field| document.add_field_value(field, &copied)),
                "{original}"
            );
        }
    }

    /// The strings an event gives free text (`_all`).
    fn free_text_of(event: &Event) -> Vec<String> {
        let schema = super::DocSchema::new();
        let document = schema.to_document(event, super::Layout::CURRENT);
        document
            .get_all(schema.all)
            .filter_map(|value| tantivy::schema::Value::as_str(&value).map(str::to_owned))
            .collect()
    }

    #[test]
    fn an_audit_events_message_holds_its_user_verb_and_target_so_free_text_does_not_repeat_them() {
        let original = json!({
            "verb": "get", "requestURI": "/api/v1/namespaces/kube-system/secrets/token",
            "user": {"username": "system:serviceaccount:kube-system:default", "groups": ["system:authenticated"]},
            "objectRef": {"resource": "secrets", "namespace": "kube-system", "name": "token"},
            "userAgent": "kubectl/v1.31.2", "responseStatus": {"code": 200}
        });
        let mut event = Event::new(EventIdGenerator::new().next(), Utc::now(), original.clone());
        event.set(fields::EVENT_DATASET, "k8s.audit");
        let message = vigil_schema::audit::message(original.as_object().unwrap()).unwrap();
        assert_eq!(message, "system:serviceaccount:kube-system:default get secrets kube-system/token (200)");
        event.set(fields::MESSAGE, message);
        let mut texts = free_text_of(&event);
        texts.sort();
        assert_eq!(
            texts,
            ["/api/v1/namespaces/kube-system/secrets/token", "kubectl/v1.31.2", "system:authenticated"]
        );

        // A message that is not the one derived from the original holds
        // nothing for sure: every string is free text.
        event.set(fields::MESSAGE, "something else");
        assert_eq!(free_text_of(&event).len(), 8);
    }

    /// Partitions on disk hold their fields in this order, and a partition
    /// of an earlier version is opened only if its fields are a prefix of
    /// this version's: a new field goes at the end, with its name's prefix
    /// in `partition::ADDED_FIELD_PREFIXES` (and a `Layout` flag if earlier
    /// partitions must be written differently).
    #[test]
    fn the_fields_keep_their_places() {
        let schema = super::DocSchema::new().schema;
        let names: Vec<&str> = schema.fields().map(|(_, entry)| entry.name()).collect();
        let first_version = [
            "_ts",
            "_arrival",
            "_seq",
            "_doc",
            "_all",
            "_orig",
            "_extra",
            "event.ingested",
            "event.dataset",
            "event.kind",
            "event.category",
            "event.action",
            "event.type",
            "event.outcome",
            "event.severity",
            "message",
            "host.name",
            "tags",
            "user.name",
            "user.id",
            "user.group.name",
            "user.effective.name",
            "user.effective.group.name",
            "source.ip",
            "network.forwarded_ip",
            "user_agent.original",
            "orchestrator.type",
            "orchestrator.cluster.name",
            "orchestrator.namespace",
            "orchestrator.resource.type",
            "orchestrator.resource.subresource",
            "orchestrator.resource.name",
            "orchestrator.api_version",
            "url.original",
            "http.response.status_code",
            "kubernetes.audit.id",
            "kubernetes.audit.stage",
            "kubernetes.audit.level",
            "kubernetes.audit.api_group",
            "kubernetes.audit.authorization.decision",
            "kubernetes.audit.authorization.reason",
            "kubernetes.namespace",
            "kubernetes.pod.name",
            "kubernetes.pod.uid",
            "kubernetes.container.name",
            "kubernetes.node.name",
            "container.id",
            "container.name",
            "container.image.name",
            "process.name",
            "process.executable",
            "process.command_line",
            "process.pid",
            "process.parent.name",
            "file.path",
            "log.level",
            "log.file.path",
            "log.syslog.priority",
            "log.syslog.facility.code",
            "log.syslog.facility.name",
            "log.syslog.severity.code",
            "log.syslog.severity.name",
            "log.syslog.msgid",
            "rule.name",
        ];
        let added_since = ["_hash.kubernetes.audit.id"];
        assert_eq!(names, [&first_version[..], &added_since[..]].concat());
        let legacy = super::DocSchema::with_layout(super::Layout { hashed_identifiers: false }).schema;
        let legacy_names: Vec<&str> = legacy.fields().map(|(_, entry)| entry.name()).collect();
        assert_eq!(legacy_names, first_version);
    }
}
