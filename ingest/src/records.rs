//! Bodies of shipped records: Fluentd `out_http` and Fluent Bit `http`
//! output (`json` arrays, `json_lines`/NDJSON), Falco's `http_output` and
//! Falcosidekick's webhook, and the Elasticsearch `_bulk` API (NDJSON
//! action / document pairs) that Fluent Bit's `es` output, Vector and
//! Filebeat speak. Every item is normalized on its own; a bad item is a
//! [`Rejection`] and its neighbours are kept.

use chrono::{DateTime, Utc};
use serde_json::Value;
use vigil_schema::{Event, EventIdGenerator};

use crate::container::{self, RecordContext};
use crate::k8s_audit::{Decoded, split_lines};
use crate::limits::RecordLimits;
use crate::{Rejection, falco};

/// One JSON item of a body, with where it was.
pub struct Item {
    pub index: usize,
    pub line: Option<usize>,
    pub value: Result<Value, String>,
}

/// The JSON items of a body: the elements of a JSON array, one JSON value,
/// or one value per non-empty line.
pub fn json_items(body: &[u8]) -> Vec<Item> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    let body = &body[start..];
    if body.is_empty() {
        return Vec::new();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, value)| Item { index, line: None, value: Ok(value) })
            .collect(),
        Ok(value) => vec![Item { index: 0, line: Some(1), value: Ok(value) }],
        Err(whole_error) => {
            let lines = split_lines(body);
            if lines.len() <= 1 {
                return vec![Item {
                    index: 0,
                    line: Some(1),
                    value: Err(format!("invalid JSON: {whole_error}")),
                }];
            }
            lines
                .into_iter()
                .enumerate()
                .map(|(index, (line, text))| Item {
                    index,
                    line: Some(line),
                    value: serde_json::from_slice(text).map_err(|error| format!("invalid JSON: {error}")),
                })
                .collect()
        }
    }
}

/// Log records (Fluentd `out_http`, Fluent Bit `http`): container logs when
/// they carry Kubernetes metadata, else records of `context.dataset`.
pub fn decode_logs(
    body: &[u8],
    ids: &EventIdGenerator,
    ingested: DateTime<Utc>,
    context: &RecordContext<'_>,
    limits: &RecordLimits,
) -> Decoded {
    decode_with(body, |value| {
        limits.check(&value)?;
        container::normalize_record(ids.next(), ingested, value, context).map_err(|error| error.to_string())
    })
}

/// Log records as msgpack: Fluent Bit's `http` output with `format msgpack`
/// (its chunk: `[[time, metadata], record]` or `[time, record]` arrays one
/// after another) and Fluentd's `msgpack` formatter (record maps one after
/// another). The entry time is used when the record has none.
pub fn decode_msgpack_logs(
    body: &[u8],
    ids: &EventIdGenerator,
    ingested: DateTime<Utc>,
    context: &RecordContext<'_>,
    limits: &RecordLimits,
) -> Decoded {
    let mut decoded = Decoded::default();
    let mut cursor = std::io::Cursor::new(body);
    let mut index = 0;
    while (cursor.position() as usize) < body.len() {
        let at = cursor.position();
        let value = match rmpv::decode::read_value(&mut cursor) {
            Ok(value) => value,
            Err(error) => {
                decoded.rejected.push(Rejection {
                    index,
                    line: None,
                    reason: format!(
                        "invalid msgpack at byte {at}: {error}; the rest of the body cannot be read"
                    ),
                });
                break;
            }
        };
        let entry = match value {
            rmpv::Value::Map(_) => Ok((None, crate::forward::frame::to_json(value))),
            rmpv::Value::Array(_) => crate::forward::frame::entry_from_value(value, ingested)
                .map(|entry| (Some(entry.time), entry.record)),
            other => Err(format!(
                "expected a record or [time, record], found {}",
                crate::forward::frame::type_name(&other)
            )),
        };
        let result = entry.and_then(|(time, record)| {
            limits.check(&record)?;
            let context = RecordContext { time: time.or(context.time), ..context.clone() };
            container::normalize_record(ids.next(), ingested, record, &context)
                .map_err(|error| error.to_string())
        });
        match result {
            Ok(event) => decoded.events.push(event),
            Err(reason) => decoded.rejected.push(Rejection { index, line: None, reason }),
        }
        index += 1;
    }
    decoded
}

/// Falco alerts: one JSON object per request (`http_output`, Falcosidekick)
/// or one per line.
pub fn decode_falco(body: &[u8], ids: &EventIdGenerator, limits: &RecordLimits) -> Decoded {
    decode_with(body, |value| match value {
        Value::Object(_) => {
            limits.check(&value)?;
            falco::normalize(ids.next(), value).map_err(|error| error.to_string())
        }
        _ => Err("expected a Falco alert as a JSON object (set json_output: true in falco.yaml)".to_owned()),
    })
}

fn decode_with(body: &[u8], mut normalize: impl FnMut(Value) -> Result<Event, String>) -> Decoded {
    let mut decoded = Decoded::default();
    for item in json_items(body) {
        match item.value.and_then(&mut normalize) {
            Ok(event) => decoded.events.push(event),
            Err(reason) => decoded.rejected.push(Rejection { index: item.index, line: item.line, reason }),
        }
    }
    decoded
}

/// What became of one `_bulk` action.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkOutcome {
    /// The document became `events[n]`.
    Accepted(usize),
    /// Refused, with the reason (answered with status 400).
    Refused(String),
}

/// One `_bulk` action: its verb (`index`, `create`...), index, and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkItem {
    pub action: String,
    pub index: String,
    pub outcome: BulkOutcome,
}

/// A decoded `_bulk` body.
#[derive(Debug, Default)]
pub struct BulkDecoded {
    pub events: Vec<Event>,
    pub items: Vec<BulkItem>,
}

/// Decodes an Elasticsearch `_bulk` body: an action line, then (for `index`
/// and `create`) a document line. The index names the dataset; documents are
/// normalized like log records. `delete` and `update` are refused per item.
pub fn decode_bulk(
    body: &[u8],
    ids: &EventIdGenerator,
    ingested: DateTime<Utc>,
    default_index: Option<&str>,
    audit: &crate::k8s_audit::Context,
) -> Result<BulkDecoded, String> {
    let mut decoded = BulkDecoded::default();
    let mut lines = split_lines(body).into_iter();
    while let Some((line, text)) = lines.next() {
        let action: Value = serde_json::from_slice(text).map_err(|error| {
            format!("line {line}: the action is not JSON ({error}); the rest of the body cannot be read")
        })?;
        let Some((verb, meta)) = action.as_object().and_then(|object| object.iter().next()) else {
            return Err(format!("line {line}: expected an action such as {{\"index\": {{}}}}"));
        };
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .unwrap_or(container::DEFAULT_DATASET)
            .to_owned();
        let verb = verb.clone();
        match verb.as_str() {
            "index" | "create" => {
                let Some((document_line, document)) = lines.next() else {
                    decoded.items.push(BulkItem {
                        action: verb,
                        index,
                        outcome: BulkOutcome::Refused(format!(
                            "line {line}: the action has no document after it"
                        )),
                    });
                    break;
                };
                let context = RecordContext { dataset: Some(&index), time: None, audit: Some(audit) };
                let outcome = match serde_json::from_slice::<Value>(document) {
                    Ok(value) if let Err(reason) = audit.limits.check(&value) => {
                        BulkOutcome::Refused(format!("line {document_line}: {reason}"))
                    }
                    Ok(value) => match container::normalize_record(ids.next(), ingested, value, &context) {
                        Ok(event) => {
                            decoded.events.push(event);
                            BulkOutcome::Accepted(decoded.events.len() - 1)
                        }
                        Err(error) => BulkOutcome::Refused(format!("line {document_line}: {error}")),
                    },
                    Err(error) => BulkOutcome::Refused(format!(
                        "line {document_line}: the document is not JSON ({error})"
                    )),
                };
                decoded.items.push(BulkItem { action: verb, index, outcome });
            }
            "update" => {
                // An update carries a document line too; skip it with the action.
                lines.next();
                decoded.items.push(BulkItem {
                    action: verb,
                    index,
                    outcome: BulkOutcome::Refused(
                        "Vigil keeps events as they came: update is not supported".into(),
                    ),
                });
            }
            _ => decoded.items.push(BulkItem {
                action: verb.clone(),
                index,
                outcome: BulkOutcome::Refused(format!("{verb} is not supported; send index or create")),
            }),
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn arrays_lines_and_single_objects_are_items() {
        assert_eq!(json_items(br#"[{"a":1},{"a":2}]"#).len(), 2);
        assert_eq!(json_items(b"{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}").len(), 3);
        assert_eq!(json_items(br#"{"a":1}"#).len(), 1);
        let broken = json_items(b"{\"a\":1}\n{oops\n");
        assert!(broken[1].value.is_err());
        assert_eq!(broken[1].line, Some(2));
    }

    #[test]
    fn bulk_bodies_answer_per_item() {
        let body = [
            json!({"index": {"_index": "app"}}).to_string(),
            json!({"log": "hello", "@timestamp": "2025-02-03T08:15:01Z"}).to_string(),
            json!({"create": {}}).to_string(),
            "{broken".to_owned(),
            json!({"delete": {"_index": "app", "_id": "1"}}).to_string(),
        ]
        .join("\n");
        let decoded = decode_bulk(
            body.as_bytes(),
            &EventIdGenerator::new(),
            Utc::now(),
            Some("fluent-bit"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.events[0].dataset(), "app");
        assert_eq!(decoded.items.len(), 3);
        assert_eq!(decoded.items[0].outcome, BulkOutcome::Accepted(0));
        assert!(
            matches!(&decoded.items[1].outcome, BulkOutcome::Refused(reason) if reason.contains("line 4"))
        );
        assert_eq!(decoded.items[1].index, "fluent-bit");
        assert!(
            matches!(&decoded.items[2].outcome, BulkOutcome::Refused(reason) if reason.contains("delete is not supported"))
        );
    }

    #[test]
    fn msgpack_bodies_from_fluent_bit_and_fluentd() {
        use rmpv::Value as Msgpack;
        let record = |message: &str| {
            Msgpack::Map(vec![
                (Msgpack::from("log"), Msgpack::from(message)),
                (
                    Msgpack::from("kubernetes"),
                    Msgpack::Map(vec![(Msgpack::from("pod_name"), Msgpack::from("web-0"))]),
                ),
            ])
        };
        let mut body = Vec::new();
        // Fluent Bit 2.1+: [[time, metadata], record]
        let fluent_bit = Msgpack::Array(vec![
            Msgpack::Array(vec![Msgpack::from(1_763_626_501u64), Msgpack::Map(Vec::new())]),
            record("from fluent bit"),
        ]);
        rmpv::encode::write_value(&mut body, &fluent_bit).unwrap();
        // Fluentd's msgpack formatter: the record alone.
        rmpv::encode::write_value(&mut body, &record("from fluentd")).unwrap();
        rmpv::encode::write_value(&mut body, &Msgpack::from(7)).unwrap();
        body.extend_from_slice(&[0x92, 0x01]);
        let decoded = decode_msgpack_logs(
            &body,
            &EventIdGenerator::new(),
            Utc::now(),
            &RecordContext::default(),
            &RecordLimits::default(),
        );
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.events[0].dataset(), "k8s.container");
        assert_eq!(decoded.events[0].timestamp.timestamp(), 1_763_626_501);
        assert_eq!(decoded.events[1].get_str(vigil_schema::fields::MESSAGE), Some("from fluentd"));
        assert_eq!(decoded.rejected.len(), 2);
        assert!(decoded.rejected[0].reason.contains("expected a record"), "{}", decoded.rejected[0].reason);
        assert!(
            decoded.rejected[1].reason.contains("invalid msgpack at byte"),
            "{}",
            decoded.rejected[1].reason
        );
    }

    #[test]
    fn falco_text_output_is_refused_with_the_fix() {
        let decoded = decode_falco(
            b"08:15:02.000111000: Notice Attach/Exec to pod",
            &EventIdGenerator::new(),
            &RecordLimits::default(),
        );
        assert_eq!(decoded.rejected.len(), 1);
        assert!(decoded.rejected[0].reason.starts_with("invalid JSON"), "{}", decoded.rejected[0].reason);
    }
}
