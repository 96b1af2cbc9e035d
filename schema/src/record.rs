//! The stored form of an event: the write-ahead log's record, which is also
//! the index's stored copy.
//!
//! It is the event's JSON (`id`, `@timestamp`, `fields`, `original`), less
//! the schema fields that are a plain copy of a value of the original
//! (`user.name` of an audit event is its `user.username`). Those are named
//! by a bit mask, `from_original`, over [`FROM_ORIGINAL`], and put back
//! from the original when the record is read. On audit events this takes
//! two fifths off the record (2,154 → 1,265 bytes on `vigil gen`'s corpus)
//! and about 70 bytes per event off the compressed doc store.
//!
//! A record without `from_original` (written before it existed) is the
//! event as it was. [`FROM_ORIGINAL`] is append-only: a record names its
//! derived fields by their place in it.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::fields::*;
use crate::{Event, EventId, Fields, lookup_dotted};

/// The schema fields that a record may leave out because they copy a value
/// of the original, each with its path in the original. Every alias of
/// [`K8S_AUDIT_ALIASES`] and [`K8S_CONTAINER_ALIASES`] is here.
///
/// Append only: stored records name these by their index, so an entry may
/// never move, change or go.
pub const FROM_ORIGINAL: &[(&str, &str)] = &[
    ("verb", EVENT_ACTION),
    ("user.username", USER_NAME),
    ("user.uid", USER_ID),
    ("user.groups", USER_GROUP_NAME),
    ("impersonatedUser.username", USER_EFFECTIVE_NAME),
    ("userAgent", USER_AGENT_ORIGINAL),
    ("objectRef.resource", ORCHESTRATOR_RESOURCE_TYPE),
    ("objectRef.subresource", ORCHESTRATOR_RESOURCE_SUBRESOURCE),
    ("objectRef.namespace", ORCHESTRATOR_NAMESPACE),
    ("objectRef.name", ORCHESTRATOR_RESOURCE_NAME),
    ("objectRef.apiVersion", ORCHESTRATOR_API_VERSION),
    ("objectRef.apiGroup", K8S_AUDIT_API_GROUP),
    ("requestURI", URL_ORIGINAL),
    ("responseStatus.code", HTTP_RESPONSE_STATUS_CODE),
    ("auditID", K8S_AUDIT_ID),
    ("stage", K8S_AUDIT_STAGE),
    ("level", K8S_AUDIT_LEVEL),
    ("annotations.authorization.k8s.io/decision", K8S_AUTHZ_DECISION),
    ("annotations.authorization.k8s.io/reason", K8S_AUTHZ_REASON),
    ("log", MESSAGE),
    ("kubernetes.namespace_name", K8S_NAMESPACE),
    ("kubernetes.pod_name", K8S_POD_NAME),
    ("kubernetes.pod_id", K8S_POD_UID),
    ("kubernetes.container_name", K8S_CONTAINER_NAME),
    ("kubernetes.host", K8S_NODE_NAME),
    ("kubernetes.docker_id", CONTAINER_ID),
    ("kubernetes.container_image", CONTAINER_IMAGE_NAME),
];

/// The mask is a `u64`.
const _: () = assert!(FROM_ORIGINAL.len() <= 64);

/// The record of an event.
pub fn encode(event: &Event) -> serde_json::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(2048);
    serde_json::to_writer(&mut bytes, &Record { event, from_original: from_original(event) })?;
    Ok(bytes)
}

/// The event of a record, with the fields it left out put back.
pub fn decode(bytes: &[u8]) -> serde_json::Result<Event> {
    let Stored { id, timestamp, mut fields, original, from_original } = serde_json::from_slice(bytes)?;
    if from_original >> FROM_ORIGINAL.len() != 0 {
        return Err(serde::de::Error::custom(format_args!(
            "the record copies fields this version does not know (mask {from_original:#x})"
        )));
    }
    for (bit, (path, name)) in FROM_ORIGINAL.iter().enumerate() {
        if from_original & (1 << bit) == 0 {
            continue;
        }
        let value = lookup_dotted(&original, path).ok_or_else(|| {
            serde::de::Error::custom(format_args!("the record copies {name} from {path}, which it lacks"))
        })?;
        fields.insert((*name).to_owned(), value.clone());
    }
    Ok(Event { id, timestamp, fields, original })
}

/// The bits of the fields that hold exactly the value at their path in the
/// original. (No two entries name the same field.)
fn from_original(event: &Event) -> u64 {
    let mut mask = 0u64;
    for (bit, (path, name)) in FROM_ORIGINAL.iter().enumerate() {
        if let Some(value) = event.fields.get(*name)
            && lookup_dotted(&event.original, path) == Some(value)
        {
            mask |= 1 << bit;
        }
    }
    mask
}

struct Record<'a> {
    event: &'a Event,
    from_original: u64,
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.event;
        let mut record = serializer.serialize_struct("Record", 5)?;
        record.serialize_field("id", &event.id)?;
        record.serialize_field("@timestamp", &crate::format_timestamp(event.timestamp))?;
        record
            .serialize_field("fields", &Kept { fields: &event.fields, from_original: self.from_original })?;
        record.serialize_field("original", &event.original)?;
        if self.from_original != 0 {
            record.serialize_field("from_original", &self.from_original)?;
        }
        record.end()
    }
}

/// The fields a record keeps: all but those named by the mask.
struct Kept<'a> {
    fields: &'a Fields,
    from_original: u64,
}

impl Serialize for Kept<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let derived = |name: &str| {
            FROM_ORIGINAL
                .iter()
                .enumerate()
                .any(|(bit, (_, derived))| *derived == name && self.from_original & (1 << bit) != 0)
        };
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.fields {
            if !derived(name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

#[derive(Deserialize)]
struct Stored {
    id: EventId,
    #[serde(rename = "@timestamp", with = "crate::rfc3339_nanos")]
    timestamp: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    fields: Fields,
    #[serde(default)]
    original: Value,
    #[serde(default)]
    from_original: u64,
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::EventIdGenerator;

    fn audit_event() -> Event {
        let original = json!({
            "auditID": "5147cba9-4ae8-4ae8-8b5f-000000094ae8",
            "verb": "get",
            "user": {"username": "carol", "groups": ["dev", "system:authenticated"]},
            "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db"},
            "responseStatus": {"code": 200},
            "annotations": {"authorization.k8s.io/decision": "allow"},
            "sourceIPs": ["10.0.0.1"]
        });
        let mut event = Event::new(EventIdGenerator::new().next(), Utc::now(), original);
        event.set(EVENT_DATASET, "k8s.audit");
        event.set(EVENT_ACTION, "get");
        event.set(USER_NAME, "carol");
        event.set(USER_GROUP_NAME, json!(["dev", "system:authenticated"]));
        event.set(ORCHESTRATOR_RESOURCE_TYPE, "secrets");
        event.set(ORCHESTRATOR_NAMESPACE, "prod");
        event.set(HTTP_RESPONSE_STATUS_CODE, 200);
        event.set(K8S_AUTHZ_DECISION, "allow");
        event.set(K8S_AUDIT_ID, "5147cba9-4ae8-4ae8-8b5f-000000094ae8");
        event.set(SOURCE_IP, "10.0.0.1");
        // Not a copy: the normalizer changed it.
        event.set(ORCHESTRATOR_RESOURCE_NAME, "DB");
        event
    }

    #[test]
    fn a_record_leaves_out_the_copies_of_the_original_and_reads_back_whole() {
        let event = audit_event();
        let bytes = encode(&event).unwrap();
        let record: Value = serde_json::from_slice(&bytes).unwrap();
        let kept: Vec<&str> = record["fields"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(kept, vec![EVENT_DATASET, ORCHESTRATOR_RESOURCE_NAME, SOURCE_IP]);
        assert_eq!(decode(&bytes).unwrap(), event);
        assert!(bytes.len() < serde_json::to_vec(&event).unwrap().len());
    }

    #[test]
    fn a_record_written_as_the_plain_event_still_reads() {
        let event = audit_event();
        assert_eq!(decode(&serde_json::to_vec(&event).unwrap()).unwrap(), event);
    }

    #[test]
    fn an_event_with_nothing_to_leave_out_is_its_plain_json() {
        let mut event = Event::new(EventIdGenerator::new().next(), Utc::now(), json!({"rule": "x"}));
        event.set(EVENT_DATASET, "falco");
        assert_eq!(encode(&event).unwrap(), serde_json::to_vec(&event).unwrap());
    }

    #[test]
    fn records_that_do_not_add_up_are_errors_not_guesses() {
        let event = audit_event();
        let mut record: Value = serde_json::from_slice(&encode(&event).unwrap()).unwrap();
        record["original"].as_object_mut().unwrap().remove("verb");
        let error = decode(&serde_json::to_vec(&record).unwrap()).unwrap_err();
        assert!(error.to_string().contains("event.action from verb"), "{error}");
        record["from_original"] = json!(1u64 << 63);
        let error = decode(&serde_json::to_vec(&record).unwrap()).unwrap_err();
        assert!(error.to_string().contains("does not know"), "{error}");
    }

    #[test]
    fn every_alias_may_be_left_out_and_the_table_only_grows() {
        for pair in K8S_AUDIT_ALIASES.iter().chain(K8S_CONTAINER_ALIASES) {
            assert!(FROM_ORIGINAL.contains(pair), "{pair:?}: append it to FROM_ORIGINAL");
        }
        for (at, (_, name)) in FROM_ORIGINAL.iter().enumerate() {
            assert!(FROM_ORIGINAL[..at].iter().all(|(_, other)| other != name), "{name} twice");
        }
        // Records on disk name entries by index: the first entries are fixed.
        assert_eq!(FROM_ORIGINAL[0], ("verb", EVENT_ACTION));
        assert_eq!(FROM_ORIGINAL[14], ("auditID", K8S_AUDIT_ID));
        assert_eq!(FROM_ORIGINAL[19], ("log", MESSAGE));
        assert_eq!(FROM_ORIGINAL[26], ("kubernetes.container_image", CONTAINER_IMAGE_NAME));
    }
}
