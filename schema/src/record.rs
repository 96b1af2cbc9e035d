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
//! Values the normalizer computes from the original (an audit event's
//! `message`, `event.outcome`, `@timestamp`, ...) are left out the same way,
//! named by a second mask, `derived`, over [`DERIVED`], and computed again
//! when the record is read, by the functions that computed them
//! ([`crate::audit`]). On `vigil gen`'s corpus this takes the record from
//! 1,265 to about 1,000 bytes, and about 30 bytes per event off the
//! compressed doc store.
//!
//! A record without these masks (written before they existed) is the event
//! as it was. [`FROM_ORIGINAL`] and [`DERIVED`] are append-only: a record
//! names the fields it left out by their place in them.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::fields::*;
use crate::{DottedLookup, Event, EventId, Fields, audit};

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

/// What a derivation may read of a record: its id, its dataset and its
/// original, nothing else, so that reading the record gives what writing
/// it saw.
pub struct Source<'a> {
    pub id: EventId,
    pub dataset: &'a str,
    pub original: &'a Map<String, Value>,
}

/// Computes a value from a record's [`Source`]; `None` where it does not apply.
pub type Derivation = fn(&Source) -> Option<Value>;

/// The fields (and `@timestamp`) that a record may leave out because the
/// function beside each computes them from the original.
///
/// Append only, as [`FROM_ORIGINAL`]; and a function here may never change
/// what it returns (add a new entry instead).
pub const DERIVED: &[(&str, Derivation)] = &[
    (TIMESTAMP, audit_timestamp),
    (MESSAGE, |source| Some(audit::message(source.audit()?)?.into())),
    (SOURCE_IP, |source| Some(audit::source_ip(source.audit()?)?.into())),
    (NETWORK_FORWARDED_IP, |source| Some(audit::forwarded_ip(source.audit()?)?.into())),
    (EVENT_KIND, |source| source.is_kubernetes().then(|| "event".into())),
    (ORCHESTRATOR_TYPE, |source| source.is_kubernetes().then(|| "kubernetes".into())),
    (EVENT_CATEGORY, |source| source.audit().map(|_| vec!["api"].into())),
    (EVENT_TYPE, |source| Some(vec![audit::event_type(audit::str_at(source.audit()?, &["verb"])?)].into())),
    (EVENT_OUTCOME, |source| {
        let audit = source.audit()?;
        Some(audit::outcome(audit::status_code(audit), audit::decision(audit)).into())
    }),
    (ORCHESTRATOR_API_VERSION, |source| Some(audit::api_version(source.audit()?)?.into())),
    (EVENT_INGESTED, |source| Some(crate::format_timestamp(source.id.arrival()).into())),
];

const _: () = assert!(DERIVED.len() <= 64);

fn audit_timestamp(source: &Source) -> Option<Value> {
    let (_, text) = audit::time_field(source.audit()?)?;
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(crate::format_timestamp(time.with_timezone(&chrono::Utc)).into())
}

impl Source<'_> {
    /// The original, when the record is an audit event's.
    fn audit(&self) -> Option<&Map<String, Value>> {
        (self.dataset == audit::DATASET).then_some(self.original)
    }

    fn is_kubernetes(&self) -> bool {
        self.dataset == audit::DATASET || self.dataset == "k8s.container"
    }
}

/// The record of an event.
pub fn encode(event: &Event) -> serde_json::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(2048);
    serde_json::to_writer(&mut bytes, &Record { event, masks: masks(event) })?;
    Ok(bytes)
}

/// The event of a record, with the fields it left out put back.
pub fn decode(bytes: &[u8]) -> serde_json::Result<Event> {
    let Stored { id, timestamp, mut fields, original, from_original, derived } =
        serde_json::from_slice(bytes)?;
    if from_original >> FROM_ORIGINAL.len() != 0 || derived >> DERIVED.len() != 0 {
        return Err(serde::de::Error::custom(format_args!(
            "the record leaves out fields this version does not know (masks {from_original:#x}, {derived:#x})"
        )));
    }
    // What the record left out, put back in one sort.
    let mut put_back: Vec<(&'static str, Value)> = Vec::with_capacity(FROM_ORIGINAL.len() + DERIVED.len());
    let lookup = DottedLookup::new(&original);
    for (bit, (path, name)) in FROM_ORIGINAL.iter().enumerate() {
        if from_original & (1 << bit) == 0 {
            continue;
        }
        let value = lookup.get(path).ok_or_else(|| {
            serde::de::Error::custom(format_args!("the record copies {name} from {path}, which it lacks"))
        })?;
        put_back.push((name, value.clone()));
    }
    let mut timestamp = timestamp.map(|text| parse_time(&text)).transpose()?;
    if derived != 0 {
        let dataset = fields.get(EVENT_DATASET).and_then(Value::as_str).unwrap_or_default();
        let empty = Map::new();
        let object = original.as_object().unwrap_or(&empty);
        for (bit, (name, derive)) in DERIVED.iter().enumerate() {
            if derived & (1 << bit) == 0 {
                continue;
            }
            let value = derive(&Source { id, dataset, original: object }).ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "the record derives {name}, which its original does not give"
                ))
            })?;
            match (*name, value) {
                (TIMESTAMP, Value::String(text)) => timestamp = Some(parse_time(&text)?),
                (_, value) => put_back.push((name, value)),
            }
        }
    }
    fields.extend(put_back);
    let timestamp = timestamp.ok_or_else(|| serde::de::Error::missing_field("@timestamp"))?;
    Ok(Event { id, timestamp, fields, original })
}

fn parse_time(text: &str) -> serde_json::Result<chrono::DateTime<chrono::Utc>> {
    crate::parse_timestamp(text).map_err(serde::de::Error::custom)
}

/// The masks of an event's record, from one pass over its fields:
/// `from_original`, the fields that hold exactly the value at their path in
/// the original (no two entries of [`FROM_ORIGINAL`] name the same field);
/// `derived`, the values that [`DERIVED`] computes from the original, of
/// those the record does not copy from it already.
fn masks(event: &Event) -> Masks {
    let lookup = DottedLookup::new(&event.original);
    let mut from_original = 0u64;
    // The event's value of each entry of DERIVED (but `@timestamp`, which
    // is not one of its fields).
    let mut held: [Option<&Value>; DERIVED.len()] = [None; DERIVED.len()];
    for (name, value) in &event.fields {
        let slots = slots(name);
        for bit in set_bits(slots.from_original) {
            if lookup.get(FROM_ORIGINAL[bit].0) == Some(value) {
                from_original |= 1 << bit;
            }
        }
        for bit in set_bits(slots.derived) {
            held[bit] = Some(value);
        }
    }
    let empty = Map::new();
    let original = event.original.as_object().unwrap_or(&empty);
    let source = Source { id: event.id, dataset: event.dataset(), original };
    let mut derived = 0u64;
    for (bit, (name, derive)) in DERIVED.iter().enumerate() {
        if slots(name).from_original & from_original != 0 {
            continue;
        }
        // Only what the event holds can be left out: nothing to derive for
        // a field it does not have.
        let held = match *name {
            TIMESTAMP => None,
            _ => match held[bit] {
                Some(held) => Some(held),
                None => continue,
            },
        };
        let Some(value) = derive(&source) else {
            continue;
        };
        let same = match (held, &value) {
            (Some(held), value) => held == value,
            (None, Value::String(text)) => *text == crate::format_timestamp(event.timestamp),
            (None, _) => false,
        };
        if same {
            derived |= 1 << bit;
        }
    }
    Masks { from_original, derived }
}

/// The places of the bits set in a mask, lowest first.
fn set_bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let bit = mask.trailing_zeros() as usize;
        (mask != 0).then(|| {
            mask &= mask - 1;
            bit
        })
    })
}

/// Where a field name sits in [`FROM_ORIGINAL`] and [`DERIVED`]: the bits
/// that name it in each mask (a field may be in both).
#[derive(Clone, Copy, Default)]
struct Slots {
    from_original: u64,
    derived: u64,
}

/// The [`Slots`] of a name; none for a name in neither table. Every field
/// of a record is checked against the masks, so the names are grouped by
/// length, and a name is compared with the few of its length only.
fn slots(name: &str) -> Slots {
    static BY_LENGTH: std::sync::LazyLock<Vec<Vec<(&'static str, Slots)>>> = std::sync::LazyLock::new(|| {
        let names = FROM_ORIGINAL.iter().map(|(_, name)| *name).chain(DERIVED.iter().map(|(name, _)| *name));
        let mut by_length: Vec<Vec<(&'static str, Slots)>> = Vec::new();
        for name in names {
            if by_length.len() <= name.len() {
                by_length.resize(name.len() + 1, Vec::new());
            }
            let same_length = &mut by_length[name.len()];
            if same_length.iter().any(|(known, _)| *known == name) {
                continue;
            }
            let bits = |table: &mut dyn Iterator<Item = &'static str>| {
                table
                    .enumerate()
                    .filter(|(_, entry)| *entry == name)
                    .fold(0u64, |mask, (bit, _)| mask | 1 << bit)
            };
            let slots = Slots {
                from_original: bits(&mut FROM_ORIGINAL.iter().map(|(_, name)| *name)),
                derived: bits(&mut DERIVED.iter().map(|(name, _)| *name)),
            };
            same_length.push((name, slots));
        }
        by_length
    });
    BY_LENGTH
        .get(name.len())
        .and_then(|same_length| same_length.iter().find(|(known, _)| *known == name))
        .map_or_else(Slots::default, |(_, slots)| *slots)
}

#[derive(Clone, Copy)]
struct Masks {
    from_original: u64,
    derived: u64,
}

impl Masks {
    /// Whether the record leaves `name` out.
    fn leaves_out(self, name: &str) -> bool {
        let slots = slots(name);
        slots.from_original & self.from_original != 0 || slots.derived & self.derived != 0
    }
}

struct Record<'a> {
    event: &'a Event,
    masks: Masks,
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (event, masks) = (self.event, self.masks);
        let mut record = serializer.serialize_struct("Record", 6)?;
        record.serialize_field("id", &event.id)?;
        if !masks.leaves_out(TIMESTAMP) {
            record.serialize_field("@timestamp", &crate::format_timestamp(event.timestamp))?;
        }
        record.serialize_field("fields", &Kept { fields: &event.fields, masks })?;
        record.serialize_field("original", &event.original)?;
        if masks.from_original != 0 {
            record.serialize_field("from_original", &masks.from_original)?;
        }
        if masks.derived != 0 {
            record.serialize_field("derived", &masks.derived)?;
        }
        record.end()
    }
}

/// The fields a record keeps: all but those the masks name.
struct Kept<'a> {
    fields: &'a Fields,
    masks: Masks,
}

impl Serialize for Kept<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.fields {
            // `@timestamp` is the record's own key, not one of its fields.
            if name == TIMESTAMP || !self.masks.leaves_out(name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

#[derive(Deserialize)]
struct Stored {
    id: EventId,
    #[serde(rename = "@timestamp", default)]
    timestamp: Option<String>,
    #[serde(default)]
    fields: Fields,
    #[serde(default)]
    original: Value,
    #[serde(default)]
    from_original: u64,
    #[serde(default)]
    derived: u64,
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

    /// An audit event with the values the normalizer derives.
    fn derived_audit_event() -> Event {
        let mut event = audit_event();
        event.original["requestReceivedTimestamp"] = json!("2026-11-24T10:00:00.123456Z");
        event.timestamp = "2026-11-24T10:00:00.123456Z".parse().unwrap();
        event.set(MESSAGE, "carol get secrets prod/db (200)");
        event.set(EVENT_KIND, "event");
        event.set(EVENT_CATEGORY, json!(["api"]));
        event.set(EVENT_TYPE, json!(["access"]));
        event.set(EVENT_OUTCOME, "success");
        event.set(ORCHESTRATOR_TYPE, "kubernetes");
        event.set(EVENT_INGESTED, crate::format_timestamp(event.id.arrival()));
        event
    }

    /// An event's record, and the names of the fields it keeps.
    fn record_of(event: &Event) -> (Vec<u8>, Value, Vec<String>) {
        let bytes = encode(event).unwrap();
        let record: Value = serde_json::from_slice(&bytes).unwrap();
        let kept = record["fields"].as_object().unwrap().keys().cloned().collect();
        (bytes, record, kept)
    }

    #[test]
    fn a_record_leaves_out_the_copies_of_the_original_and_reads_back_whole() {
        let event = audit_event();
        let (bytes, _, kept) = record_of(&event);
        assert_eq!(kept, vec![EVENT_DATASET, ORCHESTRATOR_RESOURCE_NAME]);
        assert_eq!(decode(&bytes).unwrap(), event);
        assert!(bytes.len() < serde_json::to_vec(&event).unwrap().len());
    }

    #[test]
    fn a_record_leaves_out_what_the_normalizer_derives_and_computes_it_again() {
        let event = derived_audit_event();
        let (bytes, record, kept) = record_of(&event);
        assert_eq!(kept, vec![EVENT_DATASET, ORCHESTRATOR_RESOURCE_NAME]);
        assert!(record.get("@timestamp").is_none(), "{record}");
        assert_eq!(decode(&bytes).unwrap(), event);

        // A field that happens to be named `@timestamp` is kept.
        let mut named_like_the_time = derived_audit_event();
        named_like_the_time.fields.insert(TIMESTAMP, json!("a field"));
        assert_eq!(decode(&encode(&named_like_the_time).unwrap()).unwrap(), named_like_the_time);

        // A value that differs from what its function gives is kept as it is.
        let mut changed = derived_audit_event();
        changed.set(MESSAGE, "edited by hand");
        changed.timestamp = Utc::now();
        let record: Value = serde_json::from_slice(&encode(&changed).unwrap()).unwrap();
        assert_eq!(record["fields"][MESSAGE], "edited by hand");
        assert!(record.get("@timestamp").is_some());
        assert_eq!(decode(&encode(&changed).unwrap()).unwrap(), changed);

        // Other datasets derive nothing from an audit-shaped original, only
        // event.ingested from the id.
        let mut falco = derived_audit_event();
        falco.set(EVENT_DATASET, "falco");
        let record: Value = serde_json::from_slice(&encode(&falco).unwrap()).unwrap();
        let ingested = DERIVED.iter().position(|(name, _)| *name == EVENT_INGESTED).unwrap();
        assert!(record["fields"].get(MESSAGE).is_some() && record["derived"] == 1u64 << ingested, "{record}");
        assert_eq!(decode(&encode(&falco).unwrap()).unwrap(), falco);
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

    /// An event stamped at the end of year 9999 west of Greenwich is in
    /// year 10000 in UTC, which RFC 3339 cannot write: its record, left out
    /// time or not, reads back (it used to make the log's reader skip the
    /// rest of its segment).
    #[test]
    fn a_time_past_year_9999_in_utc_reads_back() {
        let received = "9999-12-31T23:59:59-05:00";
        let time = crate::parse_timestamp(received).unwrap();
        let original = json!({"verb": "get", "auditID": "a-1", "requestReceivedTimestamp": received});
        let mut audit = Event::new(EventIdGenerator::new().next(), time, original);
        audit.set(EVENT_DATASET, audit::DATASET);
        let mut other = audit.clone();
        other.set(EVENT_DATASET, "syslog");
        for event in [audit, other] {
            let read = decode(&encode(&event).unwrap()).unwrap();
            assert_eq!(read.timestamp, time);
            assert_eq!(read, event);
        }
    }

    #[test]
    fn records_that_do_not_add_up_are_errors_not_guesses() {
        let refused = |record: &Value, why: &str| {
            let error = decode(&serde_json::to_vec(record).unwrap()).unwrap_err();
            assert!(error.to_string().contains(why), "{error}");
        };
        let (_, mut record, _) = record_of(&audit_event());
        record["original"].as_object_mut().unwrap().remove("verb");
        refused(&record, "event.action from verb");
        record["from_original"] = json!(1u64 << 63);
        refused(&record, "does not know");

        let (_, mut record, _) = record_of(&derived_audit_event());
        record["original"].as_object_mut().unwrap().remove("requestReceivedTimestamp");
        refused(&record, "derives @timestamp");
        record["derived"] = json!(1u64 << 63);
        refused(&record, "does not know");
    }

    #[test]
    fn derivations_only_grow_and_never_change() {
        for (at, (name, _)) in DERIVED.iter().enumerate() {
            assert!(DERIVED[..at].iter().all(|(other, _)| other != name), "{name} twice");
        }
        // Records on disk name derivations by index, and read back through
        // these functions: pin what each gives for one event.
        let mut event = derived_audit_event();
        let arrival = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:00:01.25Z").unwrap();
        event.id = EventId::from_u128((arrival.timestamp_millis() as u128) << 80 | 7);
        let original = event.original.as_object().unwrap();
        let mut original_with_proxy = original.clone();
        original_with_proxy.insert("sourceIPs".into(), json!(["192.0.2.7", "10.0.0.1"]));
        original_with_proxy.insert("objectRef".into(), json!({"apiGroup": "apps", "apiVersion": "v1"}));
        let given: Vec<(&str, Option<Value>)> = DERIVED
            .iter()
            .map(|(name, derive)| {
                let from = if *name == NETWORK_FORWARDED_IP || *name == ORCHESTRATOR_API_VERSION {
                    &original_with_proxy
                } else {
                    original
                };
                (*name, derive(&Source { id: event.id, dataset: "k8s.audit", original: from }))
            })
            .collect();
        assert_eq!(
            given,
            vec![
                (TIMESTAMP, Some(json!("2026-11-24T10:00:00.123456000Z"))),
                (MESSAGE, Some(json!("carol get secrets prod/db (200)"))),
                (SOURCE_IP, Some(json!("10.0.0.1"))),
                (NETWORK_FORWARDED_IP, Some(json!("192.0.2.7"))),
                (EVENT_KIND, Some(json!("event"))),
                (ORCHESTRATOR_TYPE, Some(json!("kubernetes"))),
                (EVENT_CATEGORY, Some(json!(["api"]))),
                (EVENT_TYPE, Some(json!(["access"]))),
                (EVENT_OUTCOME, Some(json!("success"))),
                (ORCHESTRATOR_API_VERSION, Some(json!("apps/v1"))),
                (EVENT_INGESTED, Some(json!("2026-11-24T10:00:01.250000000Z"))),
            ]
        );
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
