//! Aggregations over the events a search matches: a histogram of counts per
//! interval, the top values of a field, a distinct count, and the catalogue
//! of fields. Every count is exact: collectors read the fast fields of every
//! matching event, nothing is sampled.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::net::Ipv6Addr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tantivy::collector::{Collector, Count, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::schema::Type;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};
use vigil_schema::fields::FieldKind;

use crate::compile::{Compiler, Target};
use crate::doc::{from_tantivy_time, to_tantivy_time};
use crate::query::Position;
use crate::search::Searcher;
use crate::{SearchRequest, StoreError};

/// Most buckets a histogram may have.
pub const MAX_BUCKETS: i64 = 10_000;
/// The intervals an automatic histogram chooses from.
const NICE_INTERVALS: &[(i64, &str)] = &[
    (1, "1s"),
    (5, "5s"),
    (10, "10s"),
    (30, "30s"),
    (60, "1m"),
    (300, "5m"),
    (600, "10m"),
    (1800, "30m"),
    (3600, "1h"),
    (3 * 3600, "3h"),
    (6 * 3600, "6h"),
    (12 * 3600, "12h"),
    (86_400, "1d"),
    (7 * 86_400, "7d"),
    (30 * 86_400, "30d"),
];
/// About how many buckets an automatic interval aims for.
const TARGET_BUCKETS: i64 = 60;

/// Event counts per interval.
#[derive(Debug, Clone, Serialize)]
pub struct Histogram {
    pub interval: String,
    pub buckets: Vec<Bucket>,
    /// Events matched in all; the sum of the buckets.
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    #[serde(with = "rfc3339")]
    pub start: DateTime<Utc>,
    pub count: u64,
}

mod rfc3339 {
    pub fn serialize<S: serde::Serializer>(
        time: &chrono::DateTime<chrono::Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

/// The most frequent values of a field among the matching events.
#[derive(Debug, Clone, Serialize)]
pub struct TopValues {
    pub field: String,
    pub values: Vec<ValueCount>,
    /// Occurrences of the values not listed.
    pub other: u64,
    /// Matching events without the field.
    pub missing: u64,
    /// Matching events.
    pub total: u64,
    /// How many different values the field has among them.
    pub distinct: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValueCount {
    pub value: serde_json::Value,
    pub count: u64,
}

/// One field of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct FieldInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether top values and distinct counts work on it.
    pub aggregatable: bool,
    pub examples: Vec<String>,
}

/// Reads an interval written as `30s`, `5m`, `1h`, `1d`, `1w`.
pub fn parse_interval(text: &str) -> Result<i64, String> {
    match crate::time::span_seconds(text) {
        Some(seconds) if seconds > 0 => Ok(seconds),
        _ => Err(format!("{text:?} is not an interval like 30s, 5m, 1h, 1d")),
    }
}

fn describe_interval(seconds: i64) -> String {
    for (unit, suffix) in [(7 * 86_400, "w"), (86_400, "d"), (3600, "h"), (60, "m")] {
        if seconds % unit == 0 {
            return format!("{}{suffix}", seconds / unit);
        }
    }
    format!("{seconds}s")
}

impl Searcher {
    /// Counts the matching events per interval. Without `interval`, one is
    /// chosen to give about 60 buckets over the range (or over the matching
    /// events' own span when the range is open).
    pub fn histogram(&self, request: &SearchRequest, interval: Option<i64>) -> Result<Histogram, StoreError> {
        let query = self.compile_request(request)?;
        let snapshot = self.snapshot(request);
        let (from, to) = match (request.from, request.to) {
            (Some(from), Some(to)) => (from, to),
            (from, to) => {
                let (min, max) =
                    snapshot.collect(query.as_ref(), MinMaxTime)?.unwrap_or((Utc::now(), Utc::now()));
                (from.unwrap_or(min), to.unwrap_or(max + Duration::nanoseconds(1)))
            }
        };
        let span_seconds = (to - from).num_seconds().max(1);
        let interval = match interval {
            Some(seconds) => seconds,
            None => automatic_interval(span_seconds),
        };
        let interval_nanos = interval as i128 * 1_000_000_000;
        // As the index holds times: past its ends, at the end, where `to`
        // includes the events held there (`doc::time_bound`).
        let first = floor_div(to_tantivy_time(from).into_timestamp_nanos().into(), interval_nanos);
        let last_nanos = match to.timestamp_nanos_opt() {
            Some(nanos) => i128::from(nanos) - 1,
            None => to_tantivy_time(to).into_timestamp_nanos().into(),
        };
        let last = floor_div(last_nanos, interval_nanos).max(first);
        if last - first + 1 > MAX_BUCKETS as i128 {
            return Err(StoreError::BadQuery {
                at: Position::default(),
                message: format!(
                    "interval: {} gives {} buckets over this range; the most is {MAX_BUCKETS}",
                    describe_interval(interval),
                    last - first + 1
                ),
            });
        }
        let len = (last - first + 1) as usize;
        let counter = BucketCounter {
            first: first as i64,
            len,
            // Past i64 (292 years), `None`: every time the index holds
            // falls in bucket 0, or -1 before 1970.
            interval_nanos: i64::try_from(interval_nanos).ok(),
        };
        let (counts, outside) = snapshot.collect(query.as_ref(), counter)?;
        // Events outside the range cannot match (the range is part of the
        // query), so the buckets hold every matching event; an answer that
        // would not add up is refused rather than given.
        if outside > 0 {
            return Err(StoreError::Index {
                message: format!("{outside} matching events fall outside the histogram's buckets"),
            });
        }
        let mut buckets = Vec::with_capacity(len);
        let mut total = 0;
        for (index, count) in (first..=last).zip(counts) {
            total += count;
            let start_nanos = (index * interval_nanos).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            buckets.push(Bucket { start: DateTime::from_timestamp_nanos(start_nanos), count });
        }
        Ok(Histogram { interval: describe_interval(interval), buckets, total })
    }

    /// The `limit` most frequent values of a field among the matching events.
    pub fn top_values(
        &self,
        request: &SearchRequest,
        field: &str,
        limit: usize,
    ) -> Result<TopValues, StoreError> {
        let source = self.value_source(field)?;
        let query = self.compile_request(request)?;
        let snapshot = self.snapshot(request);
        let (total, (counts, missing)) =
            snapshot.collect(query.as_ref(), (Count, ValueCounter { source }))?;
        let distinct = counts.len() as u64;
        let mut sorted: Vec<(serde_json::Value, u64)> = counts.into_iter().collect();
        // Most frequent first; ties in the values' own order. Only the
        // first `limit` are sorted.
        let order = |a: &(serde_json::Value, u64), b: &(serde_json::Value, u64)| {
            b.1.cmp(&a.1).then_with(|| natural_order(&a.0, &b.0))
        };
        if limit > 0 && sorted.len() > limit {
            sorted.select_nth_unstable_by(limit - 1, order);
        }
        let other = sorted.iter().skip(limit).map(|(_, count)| count).sum();
        sorted.truncate(limit);
        sorted.sort_by(order);
        let values = sorted.into_iter().map(|(value, count)| ValueCount { value, count }).collect();
        Ok(TopValues { field: field.to_owned(), values, other, missing, total: total as u64, distinct })
    }

    /// The fields present in the index, with their type and a few values.
    pub fn field_catalog(&self) -> Result<Vec<FieldInfo>, StoreError> {
        let snapshot = self.snapshot(&SearchRequest::default());
        let mut seen: HashMap<String, FieldInfo> = HashMap::new();
        for segment in snapshot.segment_readers() {
            for metadata in segment.fields_metadata()? {
                let (name, aggregatable, kind) = match catalog_name(&metadata.field_name, metadata.typ) {
                    Some(entry) => entry,
                    None => continue,
                };
                // A schema field no event of this segment has is listed by the
                // schema, not seen: skip it.
                if let Some((_, field)) = self.schema.named_field(&metadata.field_name)
                    && segment.inverted_index(field)?.terms().num_terms() == 0
                {
                    continue;
                }
                if metadata.field_name.starts_with(crate::identifier::HASH_PREFIX)
                    && segment.fast_fields().u64(&metadata.field_name)?.values.num_vals() == 0
                {
                    continue;
                }
                let info = seen.entry(name.clone()).or_insert_with(|| FieldInfo {
                    name: name.clone(),
                    kind,
                    aggregatable,
                    examples: Vec::new(),
                });
                if info.examples.len() < 3
                    && metadata.fast_size.is_some()
                    && let Some(column) = segment.fast_fields().str(&metadata.field_name)?
                {
                    let mut stream = column
                        .dictionary()
                        .stream()
                        .map_err(|error| StoreError::Index { message: error.to_string() })?;
                    while info.examples.len() < 3 && stream.advance() {
                        let example = String::from_utf8_lossy(stream.key()).into_owned();
                        if !info.examples.contains(&example) {
                            info.examples.push(example);
                        }
                    }
                }
            }
        }
        // The original names with a schema twin are fields too, where events
        // of the alias's dataset are indexed: described as the twin they
        // resolve to (in searches and top values), also where the original
        // kept the name for a value its twin did not take.
        let datasets = self.datasets_present(&snapshot)?;
        let aliases = [
            (vigil_schema::fields::K8S_AUDIT_ALIASES, "k8s.audit"),
            (vigil_schema::fields::K8S_CONTAINER_ALIASES, "k8s.container"),
        ];
        let present = aliases.iter().filter(|(_, dataset)| datasets.contains(dataset));
        for (alias, schema_name) in present.flat_map(|(aliases, _)| aliases.iter()) {
            if let Some(twin) = seen.get(*schema_name) {
                let alias_info = FieldInfo { name: (*alias).to_owned(), ..twin.clone() };
                seen.insert((*alias).to_owned(), alias_info);
            }
        }
        let mut fields: Vec<FieldInfo> = seen.into_values().collect();
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(fields)
    }

    /// The audit and container datasets that have events in the snapshot.
    fn datasets_present(&self, snapshot: &crate::search::Snapshot) -> Result<Vec<&'static str>, StoreError> {
        let Some((_, field)) = self.schema.named_field(vigil_schema::fields::EVENT_DATASET) else {
            return Ok(Vec::new());
        };
        let mut present = Vec::new();
        for dataset in ["k8s.audit", "k8s.container"] {
            let term = tantivy::Term::from_field_text(field, dataset);
            for segment in snapshot.segment_readers() {
                let frequency = segment.inverted_index(field)?.doc_freq(&term);
                if frequency.map_err(|error| StoreError::Index { message: error.to_string() })? > 0 {
                    present.push(dataset);
                    break;
                }
            }
        }
        Ok(present)
    }

    /// Where the values of a field are read from, for top values and distinct counts.
    fn value_source(&self, field: &str) -> Result<ValueSource, StoreError> {
        let compiler = Compiler { schema: &self.schema, tokenizers: &self.tokenizers, now: Utc::now() };
        let not_aggregatable =
            |why: &str| StoreError::BadQuery { message: format!("{field}: {why}"), at: Position::default() };
        match compiler.resolve(field) {
            Target::Named { name, .. } if vigil_schema::fields::is_identifier(name) => Err(not_aggregatable(
                "identifies one request, so every value counts once; search it by value instead",
            )),
            Target::Named { kind, name, .. } => match kind {
                FieldKind::Keyword => Ok(ValueSource::Str(name.to_owned())),
                FieldKind::Long => Ok(ValueSource::Long(name.to_owned())),
                FieldKind::Ip => Ok(ValueSource::Ip(name.to_owned())),
                FieldKind::Date => Err(not_aggregatable("is a time; use the histogram")),
                FieldKind::Text => {
                    Err(not_aggregatable("is free text; top values work on keyword, number and IP fields"))
                }
            },
            Target::Json { field: json_field, path } if json_field == self.schema.extra => {
                Ok(ValueSource::Str(format!("_extra.{path}")))
            }
            Target::Id | Target::Timestamp => {
                Err(not_aggregatable("use the histogram for times; ids are unique"))
            }
            Target::Json { .. } => Err(not_aggregatable(
                "is a field of the original event; top values work on the schema's fields (see GET /api/v1/fields)",
            )),
        }
    }
}

/// Maps a tantivy field (or JSON sub-field) to its catalogue name, or skips it.
fn catalog_name(tantivy_name: &str, typ: Type) -> Option<(String, bool, &'static str)> {
    let kind = match typ {
        Type::Str => "keyword",
        Type::I64 | Type::U64 | Type::F64 => "number",
        Type::Date => "date",
        Type::IpAddr => "ip",
        Type::Bool => "boolean",
        _ => return None,
    };
    if let Some(path) = tantivy_name.strip_prefix("_extra.") {
        return Some((path.to_owned(), true, kind));
    }
    if let Some(path) = tantivy_name.strip_prefix("_orig.") {
        return Some((path.to_owned(), false, kind));
    }
    if let Some(name) = tantivy_name.strip_prefix(crate::identifier::HASH_PREFIX) {
        return Some((name.to_owned(), false, "keyword"));
    }
    if tantivy_name.starts_with('_') {
        return if tantivy_name == "_ts" { Some(("@timestamp".into(), false, "date")) } else { None };
    }
    let (aggregatable, kind) = match vigil_schema::fields::kind_of(tantivy_name) {
        _ if vigil_schema::fields::is_identifier(tantivy_name) => (false, kind),
        Some(FieldKind::Text) => (false, "text"),
        Some(FieldKind::Date) => (false, "date"),
        _ => (true, kind),
    };
    Some((tantivy_name.to_owned(), aggregatable, kind))
}

/// The interval that gives about `TARGET_BUCKETS` buckets over a span: a
/// nice one, or past a few years a whole number of 365-day years.
fn automatic_interval(span_seconds: i64) -> i64 {
    const YEAR: i64 = 365 * 86_400;
    NICE_INTERVALS
        .iter()
        .map(|(seconds, _)| *seconds)
        .find(|seconds| span_seconds / seconds <= TARGET_BUCKETS)
        .unwrap_or_else(|| {
            YEAR * ((span_seconds + YEAR * TARGET_BUCKETS - 1) / (YEAR * TARGET_BUCKETS)).max(1)
        })
}

fn floor_div(value: i128, divisor: i128) -> i128 {
    value.div_euclid(divisor)
}

#[derive(Clone)]
enum ValueSource {
    Str(String),
    Long(String),
    Ip(String),
}

/// Counts every value of a field over the matching events.
struct ValueCounter {
    source: ValueSource,
}

/// Distinct strings in a segment up to which their counts are a vector
/// indexed by term ordinal (8 MiB at most), not a map.
const DENSE_ORDINALS: usize = 1 << 20;

enum SegmentValues {
    Str { column: StrColumn, counts: OrdinalCounts },
    Long { column: Column<i64>, counts: FxHashMap<i64, u64> },
    Ip { column: Column<Ipv6Addr>, counts: FxHashMap<Ipv6Addr, u64> },
    Absent,
}

/// Counts per term ordinal of a string column.
enum OrdinalCounts {
    Dense(Vec<u64>),
    Sparse(FxHashMap<u64, u64>),
}

impl OrdinalCounts {
    fn for_terms(terms: usize) -> OrdinalCounts {
        if terms <= DENSE_ORDINALS {
            OrdinalCounts::Dense(vec![0; terms])
        } else {
            OrdinalCounts::Sparse(FxHashMap::default())
        }
    }

    fn add(&mut self, ord: u64) {
        match self {
            OrdinalCounts::Dense(counts) => {
                if let Some(count) = usize::try_from(ord).ok().and_then(|ord| counts.get_mut(ord)) {
                    *count += 1;
                }
            }
            OrdinalCounts::Sparse(counts) => *counts.entry(ord).or_default() += 1,
        }
    }

    fn into_counted(self) -> Vec<(u64, u64)> {
        match self {
            OrdinalCounts::Dense(counts) => counts
                .into_iter()
                .enumerate()
                .filter(|(_, count)| *count > 0)
                .map(|(ord, count)| (ord as u64, count))
                .collect(),
            OrdinalCounts::Sparse(counts) => counts.into_iter().collect(),
        }
    }
}

struct ValueCounterSegment {
    values: SegmentValues,
    missing: u64,
}

impl Collector for ValueCounter {
    type Fruit = (HashMap<serde_json::Value, u64>, u64);
    type Child = ValueCounterSegment;

    fn for_segment(&self, _: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<ValueCounterSegment> {
        let fast = reader.fast_fields();
        let values = match &self.source {
            ValueSource::Str(name) => match fast.str(name)? {
                Some(column) => {
                    let counts = OrdinalCounts::for_terms(column.num_terms());
                    SegmentValues::Str { column, counts }
                }
                None => SegmentValues::Absent,
            },
            ValueSource::Long(name) => match fast.column_opt::<i64>(name)? {
                Some(column) => SegmentValues::Long { column, counts: FxHashMap::default() },
                None => SegmentValues::Absent,
            },
            ValueSource::Ip(name) => match fast.column_opt::<Ipv6Addr>(name)? {
                Some(column) => SegmentValues::Ip { column, counts: FxHashMap::default() },
                None => SegmentValues::Absent,
            },
        };
        Ok(ValueCounterSegment { values, missing: 0 })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<(HashMap<serde_json::Value, u64>, u64)>,
    ) -> tantivy::Result<Self::Fruit> {
        let mut merged: HashMap<serde_json::Value, u64> = HashMap::new();
        let mut missing = 0;
        for (counts, segment_missing) in fruits {
            missing += segment_missing;
            for (value, count) in counts {
                *merged.entry(value).or_default() += count;
            }
        }
        Ok((merged, missing))
    }
}

impl SegmentCollector for ValueCounterSegment {
    type Fruit = (HashMap<serde_json::Value, u64>, u64);

    fn collect(&mut self, doc: DocId, _: Score) {
        let mut any = false;
        match &mut self.values {
            SegmentValues::Str { column, counts } => {
                for ord in column.term_ords(doc) {
                    counts.add(ord);
                    any = true;
                }
            }
            SegmentValues::Long { column, counts } => {
                for value in column.values_for_doc(doc) {
                    *counts.entry(value).or_default() += 1;
                    any = true;
                }
            }
            SegmentValues::Ip { column, counts } => {
                for value in column.values_for_doc(doc) {
                    *counts.entry(value).or_default() += 1;
                    any = true;
                }
            }
            SegmentValues::Absent => {}
        }
        if !any {
            self.missing += 1;
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut out = HashMap::new();
        match self.values {
            SegmentValues::Str { column, counts } => {
                let mut text = String::new();
                for (ord, count) in counts.into_counted() {
                    text.clear();
                    if column.ord_to_str(ord, &mut text).unwrap_or(false) {
                        *out.entry(serde_json::Value::String(text.clone())).or_default() += count;
                    }
                }
            }
            SegmentValues::Long { counts, .. } => {
                for (value, count) in counts {
                    *out.entry(serde_json::Value::from(value)).or_default() += count;
                }
            }
            SegmentValues::Ip { counts, .. } => {
                for (value, count) in counts {
                    let shown = match value.to_ipv4_mapped() {
                        Some(v4) => v4.to_string(),
                        None => value.to_string(),
                    };
                    *out.entry(serde_json::Value::String(shown)).or_default() += count;
                }
            }
            SegmentValues::Absent => {}
        }
        (out, self.missing)
    }
}

/// Counts matching events per bucket of `_ts`: buckets `first ..
/// first + len` of `interval_nanos` each, counted in a vector (no hashing
/// per event), with the events outside them (none, when the query holds
/// the range).
struct BucketCounter {
    first: i64,
    len: usize,
    interval_nanos: Option<i64>,
}

struct BucketCounterSegment {
    column: Option<Column<tantivy::DateTime>>,
    first: i64,
    interval_nanos: Option<i64>,
    counts: Vec<u64>,
    outside: u64,
}

impl Collector for BucketCounter {
    type Fruit = (Vec<u64>, u64);
    type Child = BucketCounterSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<BucketCounterSegment> {
        Ok(BucketCounterSegment {
            column: reader.fast_fields().column_opt::<tantivy::DateTime>("_ts")?,
            first: self.first,
            interval_nanos: self.interval_nanos,
            counts: vec![0; self.len],
            outside: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<(Vec<u64>, u64)>) -> tantivy::Result<(Vec<u64>, u64)> {
        let mut merged = vec![0; self.len];
        let mut outside = 0;
        for (counts, segment_outside) in fruits {
            merged.iter_mut().zip(counts).for_each(|(total, count)| *total += count);
            outside += segment_outside;
        }
        Ok((merged, outside))
    }
}

impl SegmentCollector for BucketCounterSegment {
    type Fruit = (Vec<u64>, u64);

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(time) = self.column.as_ref().and_then(|column| column.first(doc)) {
            let nanos = time.into_timestamp_nanos();
            let bucket = match self.interval_nanos {
                Some(interval) => nanos.div_euclid(interval),
                None => i64::from(nanos < 0).wrapping_neg(),
            } - self.first;
            match usize::try_from(bucket).ok().and_then(|bucket| self.counts.get_mut(bucket)) {
                Some(count) => *count += 1,
                None => self.outside += 1,
            }
        }
    }

    fn harvest(self) -> (Vec<u64>, u64) {
        (self.counts, self.outside)
    }
}

/// The earliest and latest `_ts` of the matching events.
struct MinMaxTime;

struct MinMaxTimeSegment {
    column: Option<Column<tantivy::DateTime>>,
    range: Option<(i64, i64)>,
}

impl Collector for MinMaxTime {
    type Fruit = Option<(DateTime<Utc>, DateTime<Utc>)>;
    type Child = MinMaxTimeSegment;

    fn for_segment(&self, _: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<MinMaxTimeSegment> {
        Ok(MinMaxTimeSegment {
            column: reader.fast_fields().column_opt::<tantivy::DateTime>("_ts")?,
            range: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Option<(i64, i64)>>) -> tantivy::Result<Self::Fruit> {
        let range = fruits.into_iter().flatten().reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        Ok(range.map(|(min, max)| {
            (
                from_tantivy_time(tantivy::DateTime::from_timestamp_nanos(min)),
                from_tantivy_time(tantivy::DateTime::from_timestamp_nanos(max)),
            )
        }))
    }
}

impl SegmentCollector for MinMaxTimeSegment {
    type Fruit = Option<(i64, i64)>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(time) = self.column.as_ref().and_then(|column| column.first(doc)) {
            let nanos = time.into_timestamp_nanos();
            self.range = Some(match self.range {
                None => (nanos, nanos),
                Some((min, max)) => (min.min(nanos), max.max(nanos)),
            });
        }
    }

    fn harvest(self) -> Option<(i64, i64)> {
        self.range
    }
}

/// The order of two values of a field: numbers by value, then addresses
/// by address (`10.0.0.2` before `10.0.0.10`), then other strings by their
/// bytes, then anything else by its JSON: each class whole before the next,
/// so that the order is total.
fn natural_order(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    use serde_json::Value;
    // Each value's class and, for an address, the address: read once.
    let key = |value: &Value| match value {
        Value::Number(_) => (0, None),
        Value::String(text) => match text.parse::<std::net::IpAddr>() {
            Ok(address) => (1, Some(address)),
            Err(_) => (2, None),
        },
        _ => (3, None),
    };
    let ((class_a, address_a), (class_b, address_b)) = (key(a), key(b));
    class_a.cmp(&class_b).then_with(|| match (a, b) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a.as_f64().unwrap_or_default().total_cmp(&b.as_f64().unwrap_or_default()),
        },
        (Value::String(x), Value::String(y)) => address_a.cmp(&address_b).then_with(|| x.cmp(y)),
        _ => a.to_string().cmp(&b.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_values_are_in_their_own_order() {
        use serde_json::json;
        // Addresses before other strings, so that the order is total.
        let mut values = vec![json!("10.0.0.1a"), json!("10.0.0.10"), json!("10.0.0.2"), json!("::1")];
        values.sort_by(natural_order);
        assert_eq!(values, [json!("10.0.0.2"), json!("10.0.0.10"), json!("::1"), json!("10.0.0.1a")]);
        let mut numbers = vec![json!(10), json!(9), json!(-1), json!(2.5)];
        numbers.sort_by(natural_order);
        assert_eq!(numbers, [json!(-1), json!(2.5), json!(9), json!(10)]);
        let mut words = vec![json!("bob"), json!("Alice"), json!("alice")];
        words.sort_by(natural_order);
        assert_eq!(words, [json!("Alice"), json!("alice"), json!("bob")]);
    }

    #[test]
    fn intervals_read_and_print() {
        assert_eq!(parse_interval("90s"), Ok(90));
        assert_eq!(parse_interval("5m"), Ok(300));
        assert_eq!(parse_interval("1d"), Ok(86_400));
        assert!(parse_interval("0m").is_err());
        assert!(parse_interval("5x").is_err());
        assert_eq!(describe_interval(300), "5m");
        assert_eq!(describe_interval(90), "90s");
        assert_eq!(describe_interval(7 * 86_400), "1w");
    }
}
