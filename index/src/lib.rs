//! Vigil's store: the write-ahead log, the tantivy index, the query language
//! and search.
//!
//! - [`Store`]: opens a data directory; [`Store::append`] makes a batch
//!   durable in the write-ahead log ([`wal`]) and hands it to the index
//!   thread and to the consumer of [`DurableBatch`]es (the rules).
//! - [`Searcher`]: searches the index ([`SearchRequest`] → [`SearchResult`]),
//!   fetches one event by id; [`Searcher::open_read_only`] reads a data
//!   directory another process may be writing.
//! - [`query`]: the query language's AST and nom parser; the AST knows
//!   nothing of tantivy, [`compile`] turns it into a tantivy query.
//!
//! ```no_run
//! use vigil_index::{Store, StoreOptions, SearchRequest, query};
//! let (store, _durable) = Store::open(&StoreOptions::new("./vigil-data"), Default::default())?;
//! let request = SearchRequest { query: query::parse("verb:get")?, from: None, to: None, limit: 10, ..Default::default() };
//! let result = store.searcher().search(&request)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod aggregate;
mod bits;
mod by_time;
pub mod compile;
pub mod doc;
mod durable;
mod feed;
mod identifier;
mod lag;
mod parallel;
mod partition;
mod pruned;
pub mod query;
mod range;
mod search;
mod store;
mod time;
pub mod wal;

use std::path::{Path, PathBuf};

pub use aggregate::{FieldInfo, Histogram, TopValues, parse_interval};
pub use feed::{Backlog, DurableBatch, DurableFeed};
pub use lag::{Commits, Lag};
pub use search::{Cursor, MAX_LIMIT, PartitionInfo, SearchRequest, SearchResult, Searcher, SortOrder};
pub use store::{AppendTicket, Store, StoreOptions, lower_thread_priority};
pub use time::parse_time_bound;
pub use wal::WalPosition;

/// zstd level of the stored events of new partitions unless configured: on
/// audit events, 6 stores them in about 13 bytes less than 3 for about 5
/// microseconds more CPU each (`docs/performance.md`).
pub const DEFAULT_STORE_COMPRESSION_LEVEL: i32 = 6;

/// What went wrong in the store, with enough to act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path} is in use by another vigil process")]
    Locked { path: PathBuf },
    #[error("cannot {action} {path}: {message}")]
    Io { action: &'static str, path: PathBuf, message: String },
    #[error("index error: {message}")]
    Index { message: String },
    #[error("stored data is damaged: {message}")]
    Corrupt { message: String },
    #[error("storage is behind: the write queue is full, retry later")]
    Overloaded,
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("{message}")]
    Storage { message: String },
    /// The query is wrong; `at` is the term at fault, when there is one
    /// ([`StoreError::in_query`] points at it).
    #[error("{message}")]
    BadQuery { message: String, at: query::Position },
}

impl StoreError {
    /// The query's fault, if it is one, shown under the query's text with
    /// a caret at the term, as the parser's errors are.
    pub fn in_query(self, text: &str) -> StoreError {
        match self {
            StoreError::BadQuery { message, at } => match at.column(text) {
                Some(column) => StoreError::BadQuery {
                    message: query::QueryError::in_term(text, column, message).to_string(),
                    at: query::Position::default(),
                },
                None => StoreError::BadQuery { message, at },
            },
            other => other,
        }
    }
}

/// The broad class of a [`StoreError`], for callers that map errors to
/// answers (HTTP statuses, exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Retry later.
    Overloaded,
    /// The store is stopping.
    ShuttingDown,
    /// The caller's query is wrong.
    BadQuery,
    /// The disk or the data failed.
    Storage,
}

impl StoreError {
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Overloaded => StoreErrorKind::Overloaded,
            StoreError::ShuttingDown => StoreErrorKind::ShuttingDown,
            StoreError::BadQuery { .. } => StoreErrorKind::BadQuery,
            _ => StoreErrorKind::Storage,
        }
    }

    /// The error as the sources' sink interface reports it.
    pub fn into_sink_error(self) -> vigil_schema::SinkError {
        use vigil_schema::SinkErrorKind;
        let kind = match self.kind() {
            StoreErrorKind::Overloaded => SinkErrorKind::Overloaded,
            StoreErrorKind::ShuttingDown => SinkErrorKind::ShuttingDown,
            StoreErrorKind::BadQuery | StoreErrorKind::Storage => SinkErrorKind::Storage,
        };
        vigil_schema::SinkError::new(kind, self.to_string())
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io { action, path: path.to_owned(), message: source.to_string() }
    }
}

impl From<tantivy::TantivyError> for StoreError {
    fn from(error: tantivy::TantivyError) -> StoreError {
        StoreError::Index { message: error.to_string() }
    }
}

pub(crate) fn lock_error(data_dir: &Path) -> StoreError {
    StoreError::Locked { path: data_dir.to_owned() }
}

impl Searcher {
    /// Opens the index of a data directory for reading only; works while a
    /// server writes to it, and sees what it had committed.
    pub fn open_read_only(data_dir: &Path) -> Result<Searcher, StoreError> {
        let index_dir = data_dir.join("index");
        if !index_dir.is_dir() {
            return Err(StoreError::Io {
                action: "read",
                path: index_dir,
                message: "no index here (has anything been ingested into this data directory?)".into(),
            });
        }
        let partitions = partition::Partitions::open(&index_dir, 86_400, partition::Access::ReadOnly)?;
        Ok(Searcher::new(std::sync::Arc::new(partitions), 0, None))
    }

    /// At most how many events of a data directory's write-ahead log this
    /// searcher's index has not committed: those past the position up to
    /// which the index noted it had committed everything, or without a
    /// note, past the oldest partition checkpoint (a server running on it
    /// makes them searchable within its commit interval; a stopped one when
    /// it starts again). Read-only.
    pub fn unindexed_in_log(&self, data_dir: &Path) -> Result<u64, StoreError> {
        let mut from: Option<WalPosition> = None;
        for partition in self.partitions.all() {
            // One that retention deleted since it was opened holds nothing.
            let checkpoint = match partition.checkpoint() {
                Err(_) if !partition.path.exists() => continue,
                checkpoint => checkpoint?,
            };
            from = Some(from.map_or(checkpoint, |from| from.min(checkpoint)));
        }
        let noted = store::read_indexed(&data_dir.join("index"));
        let from = from.max(noted).unwrap_or_default();
        let wal_dir = data_dir.join("wal");
        match wal::count_after(&wal_dir, from) {
            Ok(count) => Ok(count),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(error) => Err(StoreError::Io { action: "read", path: wal_dir, message: error.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use vigil_schema::{Event, fields};

    use super::*;

    fn options(dir: &Path) -> StoreOptions {
        StoreOptions { commit_interval: Duration::from_millis(50), ..StoreOptions::new(dir) }
    }

    fn audit_event(store: &Store, user: &str, resource: &str, minute: u32) -> Event {
        let time = Utc.with_ymd_and_hms(2025, 2, 3, 8, minute, 0).unwrap();
        let mut event = Event::new(
            store.ids().next(),
            time,
            json!({"verb": "get", "objectRef": {"resource": resource, "namespace": "shop"}, "responseStatus": {"code": 200},
                   "annotations": {"authorization.k8s.io/decision": "allow"}}),
        );
        event.set(fields::EVENT_DATASET, "k8s.audit");
        event.set(fields::K8S_AUDIT_ID, format!("audit-{user}-{minute}"));
        event.set(fields::USER_NAME, user);
        event.set(fields::ORCHESTRATOR_RESOURCE_TYPE, resource);
        event.set(fields::HTTP_RESPONSE_STATUS_CODE, 200);
        event.set(fields::SOURCE_IP, "10.1.2.3");
        event.set(fields::MESSAGE, format!("{user} get {resource} in shop"));
        event.set("labels.team", "Payments");
        event
    }

    fn search(searcher: &Searcher, text: &str) -> SearchResult {
        let request = SearchRequest {
            query: query::parse(text).unwrap(),
            from: None,
            to: None,
            limit: 100,
            ..Default::default()
        };
        searcher.search(&request).unwrap()
    }

    /// Each query's number of matches.
    fn assert_totals(searcher: &Searcher, cases: &[(&str, u64)]) {
        for &(text, expected) in cases {
            assert_eq!(search(searcher, text).total, expected, "{text}");
        }
    }

    /// Waits until the log no longer holds `segment` (its first is later).
    fn wait_for_log_past(wal_dir: &Path, segment: u64) {
        let first = || wal::list_segments(wal_dir).unwrap().first().copied().unwrap_or(u64::MAX);
        for _ in 0..200 {
            if first() > segment {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the log still holds segment {segment} (it starts at {})", first());
    }

    fn wait_for_count(searcher: &Searcher, count: u64) {
        for _ in 0..200 {
            if search(searcher, "").total == count {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("index never reached {count} events");
    }

    #[test]
    fn free_text_finds_the_user_verb_and_target_of_an_audit_event_in_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let events: Vec<Event> = ["kube-system", "payments"]
            .iter()
            .map(|namespace| {
                let original = json!({
                    "verb": "get", "responseStatus": {"code": 200},
                    "user": {"username": format!("system:serviceaccount:{namespace}:default")},
                    "objectRef": {"resource": "secrets", "namespace": namespace, "name": "token"}
                });
                let time = Utc.with_ymd_and_hms(2025, 2, 3, 8, 0, 0).unwrap();
                let mut event = Event::new(store.ids().next(), time, original.clone());
                event.set(fields::EVENT_DATASET, "k8s.audit");
                event.set(fields::MESSAGE, vigil_schema::audit::message(original.as_object().unwrap()));
                event
            })
            .collect();
        store.append_blocking(events).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 2);
        assert_totals(
            &searcher,
            &[
                ("serviceaccount", 2),
                ("kube-system", 1),
                ("\"system:serviceaccount:kube-system:default\"", 1),
                ("\"kube-system/token\"", 1),
                ("serviceacc*", 2),
                ("/paym.nts/", 1),
                ("get AND secrets AND token", 2),
                ("\"default get secrets\"", 2),
                ("user.username:\"system:serviceaccount:payments:default\"", 1),
            ],
        );
        store.shutdown();
    }

    #[test]
    fn appended_events_are_searchable_by_every_kind_of_term_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let batch: Vec<Event> = (0..10)
            .map(|n| audit_event(&store, if n % 2 == 0 { "Alice" } else { "bob" }, "secrets", n))
            .collect();
        let first_id = batch[0].id;
        store.append_blocking(batch).unwrap();
        store.append_blocking(vec![audit_event(&store, "carol", "pods", 30)]).unwrap();
        assert_eq!(durable.recv().unwrap().events.len(), 10);
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 11);

        let cases = [
            ("user.name:alice", 5),
            ("user.name:ALICE", 5),
            ("user.username:alice", 5),
            ("objectRef.resource:secrets", 10),
            ("orchestrator.resource.type:secrets AND user.name:bob", 5),
            ("responseStatus.code:200", 11),
            ("http.response.status_code:200", 11),
            ("source.ip:10.1.2.3", 11),
            ("annotations.authorization.k8s.io/decision:allow", 11),
            ("labels.team:payments", 11),
            ("carol", 1),
            ("\"carol get pods\"", 1),
            // Words only in the message (free text reads `message` and `_all`).
            ("\"pods in shop\"", 1),
            ("in", 11),
            ("i?", 11),
            ("message:carol", 1),
            ("NOT secrets", 1),
            ("-user.name:alice -user.name:bob", 1),
            ("alice OR carol", 6),
            ("nobody", 0),
            // Wildcards, regular expressions, exact case.
            ("user.name:ali*", 5),
            ("user.name:*O*", 6),
            ("user.name:b?b", 5),
            ("user.name:\"Alice\"", 5),
            ("user.name:\"alice\"", 0),
            ("user.name:/b.b/", 5),
            ("objectRef.resource:secr*", 10),
            ("objectRef.resource:/SEC.*/", 10),
            ("carol*", 1),
            ("annotations.authorization.k8s.io/decision:al*", 11),
            ("annotations.authorization.k8s.io/decision:/a.+w/", 11),
            ("/car.l/", 1),
            // Ranges on numbers, times, keywords; CIDR.
            ("http.response.status_code:>=200", 11),
            ("http.response.status_code:>200", 0),
            ("http.response.status_code:[201 TO 500]", 0),
            ("http.response.status_code:{199 TO 200]", 11),
            ("responseStatus.code:<=200", 11),
            ("@timestamp:[2025-02-03T08:02:00Z TO 2025-02-03T08:05:00Z}", 3),
            ("@timestamp:>=2025-02-03T08:09:00Z", 2),
            // An exact time matches the events of its second.
            ("@timestamp:\"2025-02-03T08:03:00Z\"", 1),
            ("@timestamp:\"2025-02-03T08:03:00.5Z\"", 1),
            ("@timestamp:\"2025-02-03T08:03:01Z\"", 0),
            ("user.name:[a TO b}", 5),
            ("source.ip:10.0.0.0/8", 11),
            ("source.ip:10.1.2.3/32", 11),
            ("source.ip:192.168.0.0/16", 0),
            ("source.ip:[10.1.2.0 TO 10.1.2.255]", 11),
            // Existence, in the schema and in the original.
            ("_exists_:user.name", 11),
            ("_exists_:message", 11),
            ("_exists_:orchestrator.resource.type", 11),
            ("_exists_:objectRef", 11),
            ("_exists_:responseStatus.code", 11),
            ("_exists_:annotations", 11),
            ("_exists_:objectRef.nothing", 0),
            ("_exists_:labels.team", 11),
            ("_exists_:user.effective.name", 0),
            // An identifier: found by value, no column.
            ("kubernetes.audit.id:audit-carol-30", 1),
            ("auditID:AUDIT-CAROL-30", 1),
            ("_exists_:kubernetes.audit.id", 11),
        ];
        assert_totals(&searcher, &cases);
        let newest_first = search(&searcher, "");
        assert_eq!(newest_first.hits[0].get_str(fields::USER_NAME), Some("carol"));
        let ranged = SearchRequest {
            query: Query::All,
            from: Some(Utc.with_ymd_and_hms(2025, 2, 3, 8, 2, 0).unwrap()),
            to: Some(Utc.with_ymd_and_hms(2025, 2, 3, 8, 5, 0).unwrap()),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(searcher.search(&ranged).unwrap().total, 3, "from is inclusive, to exclusive");
        assert!(searcher.get(first_id).unwrap().is_some());
        let by_id = query::parse(&format!("event.id:{first_id}")).unwrap();
        assert_eq!(searcher.search(&SearchRequest { query: by_id, ..Default::default() }).unwrap().total, 1);
        let lower_case = query::parse(&format!("event.id:{}", first_id.to_string().to_lowercase())).unwrap();
        assert_eq!(
            searcher.search(&SearchRequest { query: lower_case, ..Default::default() }).unwrap().total,
            1
        );

        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        assert_eq!(search(store.searcher(), "").total, 11);
        assert!(store.ids().next() > first_id);
        store.shutdown();
    }

    #[test]
    fn container_records_answer_their_kubernetes_names_through_the_schema_twins() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let time = Utc.with_ymd_and_hms(2025, 2, 3, 8, 0, 0).unwrap();
        let original = json!({"log": "GET /healthz 200\n", "stream": "stdout", "date": 1738569600.0, "kubernetes": {
            "pod_name": "web-0", "namespace_name": "shop", "host": "node-a", "docker_id": "3f1e",
            "container_image": "registry.example/web:1.4", "labels": {"app": "web"},
            "annotations": {"team": "payments"}, "pod_ip": 17}});
        let mut event = Event::new(store.ids().next(), time, original);
        event.set(fields::EVENT_DATASET, "k8s.container");
        event.set(fields::MESSAGE, "GET /healthz 200");
        event.set(fields::K8S_POD_NAME, "web-0");
        event.set(fields::K8S_NAMESPACE, "shop");
        event.set(fields::K8S_NODE_NAME, "node-a");
        event.set(fields::CONTAINER_ID, "3f1e");
        event.set(fields::CONTAINER_IMAGE_NAME, "registry.example/web:1.4");
        event.set("kubernetes.labels.app", "web");
        // A JSON log line: the message is its msg, the line stays in the original.
        let mut json_line = Event::new(
            store.ids().next(),
            time,
            json!({"log": "{\"msg\":\"request failed\",\"err\":\"upstream timeout\"}", "kubernetes": {"pod_name": "api-0"}}),
        );
        json_line.set(fields::EVENT_DATASET, "k8s.container");
        json_line.set(fields::MESSAGE, "request failed");
        json_line.set(fields::K8S_POD_NAME, "api-0");
        // A record of no known kind with a `log`, and a Falco alert and an
        // audit event that have a pod and a message but no such names.
        let mut plain =
            Event::new(store.ids().next(), time, json!({"log": "GET /healthz 200\n", "stream": "stdout"}));
        plain.set(fields::EVENT_DATASET, "app.web");
        plain.set(fields::MESSAGE, "GET /healthz 200");
        let mut falco = Event::new(store.ids().next(), time, json!({"rule": "Terminal shell in container"}));
        falco.set(fields::EVENT_DATASET, "falco");
        falco.set(fields::MESSAGE, "shell in web-0 healthz");
        falco.set(fields::K8S_POD_NAME, "web-0");
        let mut audit = audit_event(&store, "alice", "pods", 1);
        audit.set(fields::EVENT_DATASET, "k8s.audit");
        store.append_blocking(vec![event, json_line, plain, falco, audit]).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 5);
        let cases = [
            // `log` is the message on container logs, the original's value elsewhere.
            ("log:healthz", 1),
            ("log:\"get /healthz\"", 1),
            ("log:*healthz*", 2),
            ("log:*timeout*", 1),
            ("_exists_:log", 3),
            ("healthz", 3),
            // The kubernetes names: the twins on container logs only.
            ("kubernetes.pod_name:web-0", 1),
            ("kubernetes.pod.name:WEB-0", 2),
            ("kubernetes.pod_name:api-0", 1),
            ("kubernetes.namespace_name:shop", 1),
            ("kubernetes.host:node-a", 1),
            ("kubernetes.docker_id:3f1e", 1),
            ("kubernetes.container_image:*web*", 1),
            ("kubernetes.labels.app:web", 1),
            ("kubernetes.annotations.team:payments", 1),
            ("kubernetes.pod_ip:17", 1),
            ("_exists_:kubernetes.pod_name", 2),
            ("_exists_:kubernetes", 2),
            ("_exists_:kubernetes.labels", 1),
            ("stream:stdout AND kubernetes.pod.name:web-0", 1),
            // The audit aliases hold on audit events only.
            ("_exists_:objectRef", 1),
            ("objectRef.resource:pods", 1),
        ];
        assert_totals(&searcher, &cases);
        let catalog = searcher.field_catalog().unwrap();
        for name in ["kubernetes.pod_name", "log", "objectRef.resource"] {
            assert!(catalog.iter().any(|field| field.name == name), "{name} in the catalog");
        }
        store.shutdown();
    }

    #[test]
    fn a_past_partition_that_starts_with_a_trickle_then_gets_a_bulk_keeps_every_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        // 2025: a past partition. A few events open a small writer; a bulk reopens it full.
        store
            .append_blocking(
                (0..10).map(|n| audit_event(&store, "alice", "pods", n % 60)).collect::<Vec<_>>(),
            )
            .unwrap();
        store
            .append_blocking((0..600).map(|n| audit_event(&store, "bob", "pods", n % 60)).collect::<Vec<_>>())
            .unwrap();
        store
            .append_blocking((0..5).map(|n| audit_event(&store, "carol", "pods", n % 60)).collect::<Vec<_>>())
            .unwrap();
        wait_for_count(store.searcher(), 615);
        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        assert_eq!(search(store.searcher(), "").total, 615);
        assert_eq!(search(store.searcher(), "user.name:alice").total, 10);
        store.shutdown();
    }

    #[test]
    fn aggregations_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let mut batch: Vec<Event> = (0..10)
            .map(|n| audit_event(&store, if n % 2 == 0 { "Alice" } else { "bob" }, "secrets", n))
            .collect();
        batch.push(audit_event(&store, "carol", "pods", 30));
        store.append_blocking(batch).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 11);
        let all = |text: &str| SearchRequest {
            query: query::parse(text).unwrap(),
            from: None,
            to: None,
            limit: 0,
            ..Default::default()
        };

        let histogram = searcher.histogram(&all(""), Some(60)).unwrap();
        assert_eq!(histogram.interval, "1m");
        assert_eq!(histogram.buckets.len(), 31);
        assert_eq!(histogram.buckets.iter().map(|bucket| bucket.count).sum::<u64>(), 11);
        assert_eq!(histogram.total, 11);
        assert_eq!(histogram.buckets[0].start, Utc.with_ymd_and_hms(2025, 2, 3, 8, 0, 0).unwrap());
        assert_eq!(histogram.buckets[30].count, 1);
        let automatic = searcher.histogram(&all("user.name:bob"), None).unwrap();
        assert_eq!(automatic.total, 5);
        assert!(automatic.buckets.len() as i64 <= 60, "{}", automatic.buckets.len());
        let ranged = SearchRequest {
            from: Some(Utc.with_ymd_and_hms(2025, 2, 3, 7, 0, 0).unwrap()),
            to: Some(Utc.with_ymd_and_hms(2025, 2, 3, 9, 0, 0).unwrap()),
            ..all("")
        };
        let hourly = searcher.histogram(&ranged, None).unwrap();
        assert_eq!((hourly.interval.as_str(), hourly.buckets.len(), hourly.total), ("5m", 24, 11));
        assert!(searcher.histogram(&ranged, Some(1)).is_ok());
        let too_fine = SearchRequest {
            from: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
            ..ranged.clone()
        };
        assert_eq!(searcher.histogram(&too_fine, Some(1)).unwrap_err().kind(), StoreErrorKind::BadQuery);

        let top = searcher.top_values(&all(""), "user.name", 2).unwrap();
        let shown: Vec<(String, u64)> =
            top.values.iter().map(|v| (v.value.as_str().unwrap().to_owned(), v.count)).collect();
        assert_eq!(shown, vec![("Alice".to_owned(), 5), ("bob".to_owned(), 5)]);
        assert_eq!((top.other, top.missing, top.total, top.distinct), (1, 0, 11, 3));
        let by_alias = searcher.top_values(&all("objectRef.resource:secrets"), "user.username", 10).unwrap();
        assert_eq!(by_alias.total, 10);
        assert_eq!(by_alias.distinct, 2);
        let codes = searcher.top_values(&all(""), "http.response.status_code", 10).unwrap();
        assert_eq!(codes.values[0].value, serde_json::json!(200));
        let ips = searcher.top_values(&all(""), "source.ip", 10).unwrap();
        assert_eq!(ips.values[0].value, serde_json::json!("10.1.2.3"));
        let labels = searcher.top_values(&all(""), "labels.team", 10).unwrap();
        assert_eq!(labels.values[0].value, serde_json::json!("Payments"));
        assert_eq!(labels.values[0].count, 11);
        let missing = searcher.top_values(&all(""), "user.effective.name", 10).unwrap();
        assert_eq!((missing.missing, missing.values.len()), (11, 0));
        assert_eq!(
            searcher.top_values(&all(""), "objectRef.namespace", 10).unwrap().missing,
            11,
            "aliased to the schema"
        );
        assert_eq!(
            searcher.top_values(&all(""), "requestObject.kind", 10).unwrap_err().kind(),
            StoreErrorKind::BadQuery
        );
        assert_eq!(
            searcher.top_values(&all(""), "message", 10).unwrap_err().kind(),
            StoreErrorKind::BadQuery
        );
        assert_eq!(
            searcher.top_values(&all(""), "kubernetes.audit.id", 10).unwrap_err().kind(),
            StoreErrorKind::BadQuery
        );

        let catalog = searcher.field_catalog().unwrap();
        let user = catalog.iter().find(|field| field.name == "user.name").unwrap();
        assert_eq!((user.kind, user.aggregatable), ("keyword", true));
        assert_eq!(user.examples, vec!["Alice", "bob", "carol"]);
        // An audit name with a twin is listed as its twin (and aggregated from it).
        assert!(catalog.iter().any(|field| field.name == "objectRef.resource" && field.aggregatable));
        // No container logs here: their names (`log` for `message`) are not listed.
        assert!(!catalog.iter().any(|field| field.name == "log" || field.name == "kubernetes.pod_name"));
        assert!(catalog.iter().any(|field| field.name == "labels.team" && field.aggregatable));
        // Identifiers are listed (by their hash column), not aggregatable.
        for name in ["kubernetes.audit.id", "auditID"] {
            assert!(catalog.iter().any(|field| field.name == name && !field.aggregatable), "{name}");
        }
        assert!(
            catalog.iter().any(|field| field.name == "http.response.status_code" && field.kind == "number")
        );
        store.shutdown();
    }

    /// Two ids with the same identifier hash.
    fn colliding_ids() -> (String, String) {
        let mut seen = std::collections::HashMap::new();
        for n in 0u64.. {
            let id = format!("id-{n}");
            if let Some(other) = seen.insert(crate::identifier::hash(&id), id.clone()) {
                return (other, id);
            }
        }
        unreachable!()
    }

    #[test]
    fn an_audit_id_is_found_by_its_hash_and_checked_against_the_stored_event() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let (first, second) = colliding_ids();
        let mut events = vec![audit_event(&store, "alice", "pods", 1), audit_event(&store, "bob", "pods", 2)];
        events[0].set(fields::K8S_AUDIT_ID, first.as_str());
        events[1].set(fields::K8S_AUDIT_ID, "Mixed-Case-Id");
        store.append_blocking(events).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 2);
        assert_totals(
            &searcher,
            &[
                (&format!("kubernetes.audit.id:{first}"), 1),
                // Same hash, another id: the stored event says no.
                (&format!("kubernetes.audit.id:{second}"), 0),
                ("kubernetes.audit.id:mixed-case-id", 1),
                ("auditID:MIXED-CASE-ID", 1),
                ("kubernetes.audit.id:\"Mixed-Case-Id\"", 1),
                ("kubernetes.audit.id:\"mixed-case-id\"", 0),
                ("kubernetes.audit.id:mixed-case-id AND user.name:bob", 1),
                ("kubernetes.audit.id:mixed-case-id AND user.name:alice", 0),
                ("_exists_:kubernetes.audit.id", 2),
                ("-_exists_:auditID", 0),
                ("kubernetes.audit.id:*", 2),
                ("auditID:[* TO *]", 2),
            ],
        );
        for pattern in ["kubernetes.audit.id:mixed*", "auditID:/m.*/", "kubernetes.audit.id:[a TO z]"] {
            let request = SearchRequest { query: query::parse(pattern).unwrap(), ..Default::default() };
            let error = searcher.search(&request).unwrap_err();
            assert!(error.to_string().contains("found by its whole value"), "{pattern}: {error}");
        }
        store.shutdown();
    }

    #[test]
    fn the_field_catalog_lists_no_identifier_that_no_event_has() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let time = Utc.with_ymd_and_hms(2025, 2, 3, 8, 0, 0).unwrap();
        let mut event = Event::new(store.ids().next(), time, json!({"rule": "Terminal shell in container"}));
        event.set(fields::EVENT_DATASET, "falco");
        store.append_blocking(vec![event]).unwrap();
        wait_for_count(store.searcher(), 1);
        let catalog = store.searcher().field_catalog().unwrap();
        assert!(catalog.iter().any(|field| field.name == "event.dataset"));
        assert!(!catalog.iter().any(|field| field.name == "kubernetes.audit.id"), "{catalog:?}");
        store.shutdown();
    }

    #[test]
    fn the_field_catalog_describes_an_alias_as_its_twin_even_where_the_original_kept_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        // The first event's namespace is in its twin; the second's stays
        // in the original only (an empty value the schema does not take).
        let mut with_twin = audit_event(&store, "alice", "pods", 1);
        with_twin.set(fields::ORCHESTRATOR_NAMESPACE, "shop");
        let mut kept = audit_event(&store, "bob", "pods", 2);
        kept.original["objectRef"]["namespace"] = json!("");
        store.append_blocking(vec![with_twin, kept]).unwrap();
        wait_for_count(store.searcher(), 2);
        let catalog = store.searcher().field_catalog().unwrap();
        let alias = catalog.iter().find(|field| field.name == "objectRef.namespace").unwrap();
        assert_eq!((alias.kind, alias.aggregatable), ("keyword", true), "{alias:?}");
        assert_eq!(alias.examples, vec!["shop"]);
        let top = store.searcher().top_values(&SearchRequest::default(), "objectRef.namespace", 10).unwrap();
        assert_eq!((top.values.len(), top.missing), (1, 1));
        store.shutdown();
    }

    #[test]
    fn a_partition_written_before_identifier_hashes_still_finds_its_ids_and_takes_new_events() {
        use crate::doc::{DocSchema, Layout};
        let dir = tempfile::tempdir().unwrap();
        // 2025-02-03's partition, as versions before the hash columns made it.
        let legacy = Layout { hashed_identifiers: false };
        let path = dir.path().join("index").join("20250203T000000Z");
        std::fs::create_dir_all(&path).unwrap();
        tantivy::Index::create_in_dir(&path, DocSchema::with_layout(legacy).schema).unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let mut events = vec![audit_event(&store, "alice", "pods", 1), audit_event(&store, "bob", "pods", 2)];
        // The next day: a partition of this version.
        events[1].timestamp += chrono::Duration::days(1);
        for event in &mut events {
            event.set(fields::K8S_AUDIT_ID, "Same-Request");
        }
        store.append_blocking(events).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 2);
        assert_totals(
            &searcher,
            &[
                ("kubernetes.audit.id:same-request", 2),
                ("kubernetes.audit.id:\"Same-Request\"", 2),
                ("kubernetes.audit.id:\"same-request\"", 0),
                ("kubernetes.audit.id:same-request AND user.name:alice", 1),
                ("_exists_:kubernetes.audit.id", 2),
                ("kubernetes.audit.id:other", 0),
            ],
        );
        let layouts: Vec<Layout> =
            store.searcher().partitions.all().iter().map(|partition| partition.layout).collect();
        assert_eq!(layouts, vec![legacy, Layout::CURRENT]);
        store.shutdown();
    }

    #[test]
    fn a_partition_keeps_the_store_compression_level_it_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        let level_of = |store: &Store| {
            let partitions = store.searcher().partitions.all();
            partitions
                .iter()
                .map(|partition| match partition.index.settings().docstore_compression {
                    tantivy::store::Compressor::Zstd(zstd) => zstd.compression_level,
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let options = StoreOptions { store_compression_level: 9, ..options(dir.path()) };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        store.append_blocking(vec![audit_event(&store, "alice", "pods", 1)]).unwrap();
        wait_for_count(store.searcher(), 1);
        assert_eq!(level_of(&store), [Some(9)]);
        store.shutdown();
        drop(store);
        let options = StoreOptions { store_compression_level: 3, ..options };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        let mut later = audit_event(&store, "bob", "pods", 2);
        later.timestamp += chrono::Duration::days(1);
        store.append_blocking(vec![later]).unwrap();
        wait_for_count(store.searcher(), 2);
        assert_eq!(level_of(&store), [Some(9), Some(3)]);
        store.shutdown();
    }

    /// Times outside years 0-9999 (a bad clock, a typo in a replayed
    /// capture) get partitions whose names carry a signed year: they are
    /// found again after a restart, not left out of every search.
    #[test]
    fn events_stamped_before_year_0_or_after_9999_are_kept_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let times = ["+10000-01-01T04:59:59Z", "-0002-11-27T00:00:00Z", "2025-02-03T08:00:00Z"];
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let events: Vec<Event> = times
            .iter()
            .map(|time| {
                let mut event = audit_event(&store, "alice", "pods", 0);
                event.timestamp = vigil_schema::parse_timestamp(time).unwrap();
                event
            })
            .collect();
        store.append_blocking(events).unwrap();
        wait_for_count(store.searcher(), 3);
        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        assert_eq!(store.searcher().partitions.all().len(), 3);
        // Held at the ends of the index's time range (1677 to 2262), on
        // the side they are.
        assert_totals(
            store.searcher(),
            &[
                ("", 3),
                ("user.name:alice", 3),
                ("@timestamp:<=1000-01-01T00:00:00Z", 1),
                ("@timestamp:>=1700-01-01T00:00:00Z", 2),
                ("@timestamp:>=1600-01-01T00:00:00Z", 3),
                ("@timestamp:>=9000-01-01T00:00:00Z", 1),
                // Bounds past an end include what is held there.
                ("@timestamp:<1650-01-01T00:00:00Z", 1),
                ("@timestamp:[2300-01-01T00:00:00Z TO 2301-01-01T00:00:00Z}", 1),
                ("@timestamp:\"9999-12-31T23:59:59Z\"", 1),
                ("@timestamp:\"1600-01-01T00:00:00Z\"", 1),
            ],
        );
        let searcher = store.searcher();
        let between = |from: &str, to: &str| SearchRequest {
            from: Some(vigil_schema::parse_timestamp(from).unwrap()),
            to: Some(vigil_schema::parse_timestamp(to).unwrap()),
            ..Default::default()
        };
        // A search's own range finds them by their partitions.
        for (from, to, expected) in [
            ("9999-12-31T00:00:00Z", "+10000-01-02T00:00:00Z", 1),
            ("2300-01-01T00:00:00Z", "2300-01-02T00:00:00Z", 0),
            ("-0002-11-27T00:00:00Z", "1600-01-02T00:00:00Z", 1),
            ("-0002-11-26T00:00:00Z", "-0002-11-28T00:00:00Z", 1),
            ("1600-01-01T00:00:00Z", "1650-01-02T00:00:00Z", 0),
        ] {
            assert_eq!(searcher.search(&between(from, to)).unwrap().total, expected, "{from} to {to}");
            let histogram = searcher.histogram(&between(from, to), None).unwrap();
            assert_eq!(histogram.total, expected, "{from} to {to}: {histogram:?}");
        }
        // Buckets of any width, and an automatic interval over centuries,
        // add up to the search's total.
        for interval in [None, Some(365 * 86_400), Some(1_000_000 * 7 * 86_400)] {
            let histogram = searcher.histogram(&SearchRequest::default(), interval).unwrap();
            assert_eq!(histogram.total, 3, "{interval:?}: {histogram:?}");
            assert!(
                interval.is_some() || histogram.buckets.len() <= 60,
                "{} buckets",
                histogram.buckets.len()
            );
        }
        // Paging one at a time visits each once, either way.
        for order in [SortOrder::NewestFirst, SortOrder::OldestFirst] {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let request = SearchRequest { limit: 1, order, cursor, ..Default::default() };
                let page = store.searcher().search(&request).unwrap();
                seen.extend(page.hits.iter().map(|hit| hit.id));
                assert!(seen.len() <= 3, "{order:?}: paging does not end");
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(seen.len(), 3, "{order:?}");
        }
        store.shutdown();
    }

    /// The present's writer gets the configured threads, each with at least
    /// tantivy's minimum heap even when the configured heap is smaller.
    #[test]
    fn the_present_is_indexed_with_the_configured_writer_threads() {
        for threads in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let options = StoreOptions {
                writer_threads: threads,
                writer_heap_bytes: 15_000_000,
                ..options(dir.path())
            };
            let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
            for batch in 0..4 {
                let events: Vec<Event> = (0..50)
                    .map(|n| {
                        let mut event = audit_event(&store, &format!("user{batch}"), "pods", 0);
                        event.timestamp = Utc::now() - chrono::Duration::seconds(n);
                        event
                    })
                    .collect();
                store.append_blocking(events).unwrap();
            }
            wait_for_count(store.searcher(), 200);
            assert_totals(
                store.searcher(),
                &[("user.name:user2", 50), ("orchestrator.resource.type:pods", 200)],
            );
            store.shutdown();
        }
    }

    #[test]
    fn paging_with_a_cursor_neither_skips_nor_repeats_while_events_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        // Many events share a time, so order among them comes from arrival.
        let batch: Vec<Event> =
            (0..25).map(|n| audit_event(&store, &format!("u{n}"), "pods", (n % 4) as u32)).collect();
        store.append_blocking(batch).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 25);
        for order in [SortOrder::NewestFirst, SortOrder::OldestFirst] {
            let mut seen: Vec<Event> = Vec::new();
            let mut cursor = None;
            let mut pages = 0;
            loop {
                let request = SearchRequest { limit: 4, order, cursor, ..Default::default() };
                let page = searcher.search(&request).unwrap();
                let expected_total = if order == SortOrder::NewestFirst && pages < 2 { 25 } else { 28 };
                assert_eq!(page.total, expected_total, "{order:?} page {pages}");
                seen.extend(page.hits);
                pages += 1;
                if pages == 2 && order == SortOrder::NewestFirst {
                    // New events arrive between pages, later than every page so far.
                    let late: Vec<Event> =
                        (0..3).map(|n| audit_event(&store, &format!("late{n}"), "pods", 50)).collect();
                    store.append_blocking(late).unwrap();
                    wait_for_count(&searcher, 28);
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next.to_string().parse().unwrap()),
                    None => break,
                }
            }
            let mut ids: Vec<_> = seen.iter().map(|event| event.id).collect();
            let in_order = seen.windows(2).all(|pair| match order {
                SortOrder::NewestFirst => (pair[0].timestamp, pair[0].id) > (pair[1].timestamp, pair[1].id),
                SortOrder::OldestFirst => (pair[0].timestamp, pair[0].id) < (pair[1].timestamp, pair[1].id),
            });
            assert!(in_order, "{order:?}: hits follow the sort order");
            let count = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), count, "{order:?}: no hit repeated");
            assert_eq!(
                count,
                if order == SortOrder::NewestFirst { 25 } else { 28 },
                "{order:?}: none skipped"
            );
        }
        assert!("garbage".parse::<Cursor>().is_err());
        store.shutdown();
    }

    /// Regression: the inverted index keeps times to the second, so ranges
    /// and cursors must use the fast field's nanoseconds.
    #[test]
    fn time_ranges_and_cursors_keep_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let base = Utc.with_ymd_and_hms(2025, 2, 3, 8, 0, 0).unwrap();
        let batch: Vec<Event> = (1..=3)
            .map(|nanos| {
                let mut event = audit_event(&store, "nina", "pods", 0);
                event.timestamp = base + chrono::Duration::nanoseconds(nanos);
                event
            })
            .collect();
        store.append_blocking(batch).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 3);
        let from_second =
            SearchRequest { from: Some(base + chrono::Duration::nanoseconds(2)), ..Default::default() };
        assert_eq!(searcher.search(&from_second).unwrap().total, 2);
        let query = query::parse("@timestamp:>2025-02-03T08:00:00.000000002Z").unwrap();
        assert_eq!(searcher.search(&SearchRequest { query, ..Default::default() }).unwrap().total, 1);
        let then = Utc::now();
        let first_page =
            searcher.search(&SearchRequest { limit: 1, now: Some(then), ..Default::default() }).unwrap();
        let cursor: Cursor = first_page.next_cursor.unwrap().to_string().parse().unwrap();
        assert_eq!(cursor.now(), Some(then), "the cursor carries the first page's now");
        let rest = SearchRequest { limit: 10, cursor: Some(cursor), ..Default::default() };
        assert_eq!(searcher.search(&rest).unwrap().hits.len(), 2);
        store.shutdown();
    }

    fn at(store: &Store, user: &str, time: chrono::DateTime<Utc>) -> Event {
        let mut event = audit_event(store, user, "pods", 0);
        event.timestamp = time;
        event
    }

    #[test]
    fn events_land_in_their_time_partition_however_late_and_searches_open_only_what_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { partition_span_seconds: 3600, ..options(dir.path()) };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        let hour = |h: u32| Utc.with_ymd_and_hms(2025, 2, 3, h, 30, 0).unwrap();
        // Out of order: 10h, 8h, 12h, then a late 8h event in a later batch.
        store
            .append_blocking(vec![
                at(&store, "a", hour(10)),
                at(&store, "b", hour(8)),
                at(&store, "c", hour(12)),
            ])
            .unwrap();
        store.append_blocking(vec![at(&store, "late", hour(8))]).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 4);
        let partitions = searcher.partitions();
        let names: Vec<&str> = partitions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["20250203T080000Z", "20250203T100000Z", "20250203T120000Z"]);
        assert_eq!(partitions.iter().map(|p| p.events).collect::<Vec<_>>(), [2, 1, 1]);
        assert!(partitions.iter().all(|p| p.segments >= 1), "{partitions:?}");
        let morning = SearchRequest { from: Some(hour(8)), to: Some(hour(9)), ..Default::default() };
        assert_eq!(
            searcher.partitions.overlapping(morning.from, morning.to).len(),
            1,
            "only the 8h partition is opened"
        );
        assert_eq!(searcher.search(&morning).unwrap().total, 2, "both 08:30 events, the late one included");
        store.shutdown();
        drop(store);
        // Reopened with another span, the old partitions keep theirs.
        let options = StoreOptions { partition_span_seconds: 86_400, ..options };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        assert_eq!(store.searcher().count(), 4);
        assert_eq!(store.searcher().partitions()[0].end, Utc.with_ymd_and_hms(2025, 2, 3, 9, 0, 0).unwrap());
        store.shutdown();
    }

    #[test]
    fn holds_are_neither_read_before_a_commit_nor_kept_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            wal_segment_bytes: 4096,
            retention_max_age: Some(Duration::from_secs(30 * 86_400)),
            retention_check_interval: Duration::from_millis(50),
            ..options(dir.path())
        };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        for n in 0..5 {
            store.append_blocking(vec![at(&store, &format!("now-{n}"), Utc::now())]).unwrap();
        }
        wait_for_count(store.searcher(), 5);
        let today = store.searcher().partitions.all()[0].start;
        store.shutdown();
        drop(store);
        // A hold written down from the log's start for a partition that has
        // committed since: it is replayed from its commit, not doubled.
        let held = dir.path().join("index").join("vigil-held");
        std::fs::write(&held, format!("{{\"{today}\":{{\"segment\":0,\"offset\":0}}}}")).unwrap();
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        store.wait_until_replayed();
        assert_eq!(store.searcher().count(), 5);
        assert!(!held.exists(), "replayed, nothing is held");

        // A partition that cannot be created, past the maximum age: its
        // hold goes with retention, and the log is let go.
        std::fs::write(dir.path().join("index").join("20200101T000000Z"), "in the way").unwrap();
        let old = store
            .append_blocking(vec![at(&store, "old", Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).unwrap())])
            .unwrap();
        store.mark_consumed(old);
        for n in 0..20 {
            let end = store.append_blocking(vec![at(&store, &format!("later-{n}"), Utc::now())]).unwrap();
            store.mark_consumed(end);
        }
        wait_for_count(store.searcher(), 25);
        wait_for_log_past(&dir.path().join("wal"), old.segment);
        assert!(!held.exists());
        store.shutdown();
    }

    #[test]
    fn a_partition_deletion_that_a_crash_interrupted_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = options(dir.path());
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        store.append_blocking(vec![audit_event(&store, "kept", "pods", 1)]).unwrap();
        wait_for_count(store.searcher(), 1);
        store.shutdown();
        drop(store);
        let index = dir.path().join("index");
        // Retention renames a partition before deleting its files: a crash
        // left half of one, and a partition created but never committed lost
        // its span file's contents.
        let half = index.join("20240101T000000Z.deleted");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("meta.json"), "{}").unwrap();
        let uncommitted = index.join("20240102T000000Z");
        std::fs::create_dir_all(&uncommitted).unwrap();
        std::fs::write(uncommitted.join("vigil-span"), "").unwrap();
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        assert!(!half.exists(), "the interrupted deletion is finished");
        assert_eq!(store.searcher().count(), 1);
        store
            .append_blocking(vec![at(&store, "new", Utc.with_ymd_and_hms(2024, 1, 2, 5, 0, 0).unwrap())])
            .unwrap();
        wait_for_count(store.searcher(), 2);
        assert_eq!(std::fs::read_to_string(uncommitted.join("vigil-span")).unwrap(), "86400\n");
        store.shutdown();
    }

    #[test]
    fn a_partition_that_cannot_be_written_keeps_its_events_in_the_log_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { wal_segment_bytes: 4096, ..options(dir.path()) };
        // A file where the partition of 2020-01-01 would go.
        let blocker = dir.path().join("index").join("20200101T000000Z");
        std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
        std::fs::write(&blocker, "in the way").unwrap();
        let wal_dir = dir.path().join("wal");
        let first_segment = || wal::list_segments(&wal_dir).unwrap().first().copied().unwrap_or(u64::MAX);
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        let old = at(&store, "old", Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).unwrap());
        let held_at = store.append_blocking(vec![old]).unwrap();
        store.mark_consumed(held_at);
        for n in 0..20 {
            let end = store.append_blocking(vec![at(&store, &format!("now-{n}"), Utc::now())]).unwrap();
            store.mark_consumed(end);
        }
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 20);
        std::thread::sleep(Duration::from_millis(300));
        assert!(first_segment() <= held_at.segment, "the log keeps the held event");
        assert_eq!(searcher.count(), 20);

        // Stopped while the partition is held, and started again with it
        // still unwritable: the hold is written down, so its event is not
        // forgotten by the replay.
        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 20);
        std::thread::sleep(Duration::from_millis(300));
        assert!(first_segment() <= held_at.segment, "the log still keeps the held event");

        // Freed while events for it keep coming, some still in the queue
        // when its events are read back: each is indexed once.
        std::fs::remove_file(&blocker).unwrap();
        let old_time = |n: u32| Utc.with_ymd_and_hms(2020, 1, 1, 13, n, 0).unwrap();
        for n in 0..30 {
            let end = store
                .append_blocking(vec![
                    at(&store, &format!("older-{n}"), old_time(n)),
                    at(&store, "later", Utc::now()),
                ])
                .unwrap();
            store.mark_consumed(end);
        }
        wait_for_count(&searcher, 81);
        assert_totals(&searcher, &[("user.name:old", 1), ("user.name:older-*", 30), ("user.name:later", 30)]);
        // The log is let go once the event is committed.
        wait_for_log_past(&wal_dir, held_at.segment);
        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        assert_eq!(store.searcher().count(), 81, "none lost, none doubled");
        assert!(!dir.path().join("index").join("vigil-held").exists(), "nothing is held any more");
        store.shutdown();
    }

    #[test]
    fn a_partition_whose_writer_fails_is_read_again_from_its_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { wal_segment_bytes: 4096, ..options(dir.path()) };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        let searcher = store.searcher().clone();
        let old_time = |n: u32| Utc.with_ymd_and_hms(2020, 1, 1, 13, n, 0).unwrap();
        let append = |name: String, time| {
            let end = store.append_blocking(vec![at(&store, &name, time)]).unwrap();
            store.mark_consumed(end);
            end
        };
        for n in 0..5 {
            append(format!("committed-{n}"), old_time(n));
        }
        wait_for_count(&searcher, 5);

        // The open writer's directory goes away under it: adding or
        // committing fails, and its uncommitted events are lost to it.
        let partition = dir.path().join("index").join("20200101T000000Z");
        let moved = dir.path().join("moved-away");
        std::fs::rename(&partition, &moved).unwrap();
        let first_failed = append("failed-0".into(), old_time(10));
        for n in 1..5 {
            append(format!("failed-{n}"), old_time(10 + n));
            append(format!("now-{n}"), Utc::now());
        }
        let held = dir.path().join("index").join("vigil-held");
        for _ in 0..200 {
            if held.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(held.exists(), "the failed partition is held");
        wait_for_count(&searcher, 9);
        assert!(
            wal::list_segments(&dir.path().join("wal")).unwrap()[0] <= first_failed.segment,
            "the log keeps what the failed writer lost"
        );

        // Back: read again from its last commit, nothing doubled.
        std::fs::rename(&moved, &partition).unwrap();
        wait_for_count(&searcher, 14);
        assert_totals(
            &searcher,
            &[("user.name:committed-*", 5), ("user.name:failed-*", 5), ("user.name:now-*", 4)],
        );
        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        assert_eq!(store.searcher().count(), 14, "none lost, none doubled");
        assert!(!held.exists(), "nothing is held any more");
        store.shutdown();
    }

    #[test]
    fn a_changed_span_writes_into_the_partitions_there_are_and_fits_new_ones_between() {
        let dir = tempfile::tempdir().unwrap();
        let hourly = StoreOptions { partition_span_seconds: 3600, ..options(dir.path()) };
        let time =
            |day: u32, hour: u32, minute: u32| Utc.with_ymd_and_hms(2025, 2, day, hour, minute, 0).unwrap();
        let (store, _durable) = Store::open(&hourly, WalPosition::default()).unwrap();
        // Two commits: the partitions' checkpoints differ.
        store.append_blocking(vec![at(&store, "a", time(3, 8, 30))]).unwrap();
        wait_for_count(store.searcher(), 1);
        store.append_blocking(vec![at(&store, "b", time(3, 10, 30))]).unwrap();
        wait_for_count(store.searcher(), 2);
        store.shutdown();
        drop(store);

        let daily = StoreOptions { partition_span_seconds: 86_400, ..hourly.clone() };
        let (store, _durable) = Store::open(&daily, WalPosition::default()).unwrap();
        assert_eq!(store.searcher().count(), 2, "replay finds each event's partition: none doubled");
        store
            .append_blocking(vec![
                at(&store, "in 8h", time(3, 8, 45)),
                at(&store, "between", time(3, 9, 30)),
                at(&store, "after", time(3, 14, 0)),
                at(&store, "next day", time(4, 1, 0)),
            ])
            .unwrap();
        wait_for_count(store.searcher(), 6);
        let spans: Vec<(String, i64)> = store
            .searcher()
            .partitions()
            .iter()
            .map(|p| (p.name.clone(), (p.end - p.start).num_hours()))
            .collect();
        assert_eq!(
            spans,
            [
                ("20250203T080000Z".to_owned(), 1),
                ("20250203T090000Z".to_owned(), 1),
                ("20250203T100000Z".to_owned(), 1),
                ("20250203T110000Z".to_owned(), 13),
                ("20250204T000000Z".to_owned(), 24),
            ]
        );
        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&hourly, WalPosition::default()).unwrap();
        assert_eq!(store.searcher().count(), 6);
        store.shutdown();
    }

    #[test]
    fn retention_drops_whole_partitions_by_age_and_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            partition_span_seconds: 86_400,
            retention_max_age: Some(Duration::from_secs(30 * 86_400)),
            retention_check_interval: Duration::from_millis(50),
            ..options(dir.path())
        };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        let now = Utc::now();
        let days_ago = |days: i64| now - chrono::Duration::days(days);
        store
            .append_blocking(vec![
                at(&store, "ancient", days_ago(400)),
                at(&store, "old", days_ago(45)),
                at(&store, "recent", days_ago(2)),
                at(&store, "today", now),
                // A sender's clock ahead by a year.
                at(&store, "future", days_ago(-365)),
            ])
            .unwrap();
        let searcher = store.searcher().clone();
        for _ in 0..200 {
            if searcher.partitions().len() == 3 && searcher.count() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let kept: Vec<String> = searcher
            .search(&SearchRequest::default())
            .unwrap()
            .hits
            .iter()
            .map(|e| e.get_str(fields::USER_NAME).unwrap().to_owned())
            .collect();
        assert_eq!(kept, ["future", "today", "recent"]);
        store.shutdown();
        drop(store);

        // An age past what a time can hold drops nothing.
        let ageless =
            StoreOptions { retention_max_age: Some(Duration::from_secs(u64::MAX)), ..options.clone() };
        let (store, _durable) = Store::open(&ageless, WalPosition::default()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(store.searcher().count(), 3);
        store.shutdown();
        drop(store);

        // By size: a limit smaller than one partition keeps only the
        // present's, not the one an event from the future made the newest.
        let options = StoreOptions { retention_max_age: None, retention_max_bytes: Some(1), ..options };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        for _ in 0..200 {
            if store.searcher().partitions().len() == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let kept = store.searcher().search(&SearchRequest::default()).unwrap();
        assert_eq!(
            kept.hits.iter().map(|e| e.get_str(fields::USER_NAME).unwrap()).collect::<Vec<_>>(),
            ["today"]
        );
        store.shutdown();
    }

    #[test]
    fn open_ranges_wildcards_with_any_punctuation_and_any_case_match_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let mut odd = audit_event(&store, "a<b>c", "pods", 1);
        odd.fields.remove(fields::HTTP_RESPONSE_STATUS_CODE);
        odd.fields.remove(fields::SOURCE_IP);
        let greek = audit_event(&store, "ΟΔΟΣ", "pods", 3);
        store.append_blocking(vec![audit_event(&store, "alice", "pods", 2), odd, greek]).unwrap();
        let searcher = store.searcher().clone();
        wait_for_count(&searcher, 3);
        assert_totals(
            &searcher,
            &[
                ("http.response.status_code:[* TO *]", 2),
                ("source.ip:[* TO *]", 2),
                ("@timestamp:[* TO *]", 3),
                ("user.name:[* TO *]", 3),
                ("user.name:*<*", 1),
                ("user.name:a<b>?", 1),
                // A final sigma is lower-cased as the index does it.
                ("user.name:ΟΔΟΣ", 1),
                ("user.name:οδοσ", 1),
                ("user.name:ΟΔΟ*", 1),
                // An audit event's receive time, left out of its indexed
                // original, is answered from @timestamp.
                ("requestReceivedTimestamp:\"2025-02-03T08:02:00Z\"", 1),
                ("requestReceivedTimestamp:>=2025-02-03T08:02:00Z", 2),
                ("_exists_:requestReceivedTimestamp", 3),
                ("requestReceivedTimestamp:[* TO *]", 3),
                // A common key of other logs: searched as such, not refused.
                ("timestamp:2025-02*", 0),
            ],
        );
        store.shutdown();
    }

    #[test]
    fn values_of_the_original_match_whatever_json_type_they_have() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let mut event = audit_event(&store, "alice", "pods", 1);
        event.original["requestObject"] =
            json!({"spec": {"ratio": 0.5, "big": u64::MAX, "hostNetwork": true, "small": 7, "name": "Web"}});
        store.append_blocking(vec![event]).unwrap();
        wait_for_count(store.searcher(), 1);
        assert_totals(
            store.searcher(),
            &[
                ("requestObject.spec.ratio:0.5", 1),
                ("requestObject.spec.ratio:0.25", 0),
                ("requestObject.spec.big:18446744073709551615", 1),
                ("requestObject.spec.hostNetwork:TRUE", 1),
                ("requestObject.spec.hostNetwork:false", 0),
                ("requestObject.spec.small:7", 1),
                ("requestObject.spec.name:WEB", 1),
            ],
        );
        store.shutdown();
    }

    #[test]
    fn constructs_a_field_cannot_take_are_query_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let cases = [
            ("requestObject.kind:[a TO b]", "requestObject.kind: ranges work on the schema's fields"),
            ("http.response.status_code:4*", "http.response.status_code: is a number"),
            ("source.ip:10.0.0.0/33", "source.ip: \"10.0.0.0/33\" is not a CIDR block like 10.0.0.0/8"),
            (
                "user.name:/(/",
                "user.name: invalid regular expression /(/: unclosed group (at character 1 of it)",
            ),
            // Unbalanced, it would close the group it is wrapped in.
            (
                "user.name:/x)|(.*/",
                "user.name: invalid regular expression /x)|(.*/: unopened group (at character 2 of it)",
            ),
            ("@timestamp:>=yesterday", "@timestamp: \"yesterday\" is not a time"),
            ("stageTimestamp:>=2h", "stageTimestamp: is not indexed; search @timestamp"),
            ("verb:get -", "free text: \"-\" has no word to search"),
            ("responseStatus.code:4*", "responseStatus.code: is a number"),
            ("requestReceivedTimestamp:yesterday", "requestReceivedTimestamp: \"yesterday\" is not a time"),
            ("message:\"\"", "message: \"\" has no word to search"),
        ];
        for (text, message) in cases {
            let request = SearchRequest {
                query: query::parse(text).unwrap(),
                from: None,
                to: None,
                limit: 1,
                ..Default::default()
            };
            let error =
                store.searcher().search(&request).err().unwrap_or_else(|| panic!("{text} should fail"));
            assert_eq!(error.kind(), StoreErrorKind::BadQuery, "{text}");
            assert!(error.to_string().starts_with(message), "{text}: {error}");
            // Shown under the query, a caret at the term.
            let shown = error.in_query(text).to_string();
            assert!(shown.contains(" at column ") && shown.contains(&format!("\n  {text}\n")), "{shown}");
        }
        store.shutdown();
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let error = Store::open(&options(dir.path()), WalPosition::default()).err().unwrap();
        assert!(error.to_string().contains("in use by another vigil process"), "{error}");
        store.shutdown();
    }

    #[test]
    fn bad_values_for_typed_fields_are_query_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let request = SearchRequest {
            query: query::parse("source.ip:nowhere").unwrap(),
            from: None,
            to: None,
            limit: 1,
            ..Default::default()
        };
        let error = store.searcher().search(&request).unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::BadQuery);
        assert_eq!(error.to_string(), "source.ip: \"nowhere\" is not an IP address");
        store.shutdown();
    }

    #[test]
    fn the_searcher_tells_how_many_acknowledged_events_are_not_searchable_yet() {
        let dir = tempfile::tempdir().unwrap();
        // No commit until the store stops.
        let options = StoreOptions { commit_interval: Duration::from_secs(3600), ..options(dir.path()) };
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        assert_eq!(store.searcher().indexing_lag(), Some(Lag::default()));
        for minute in 0..3 {
            let batch: Vec<Event> = (0..4).map(|_| audit_event(&store, "alice", "pods", minute)).collect();
            store.append_blocking(batch).unwrap();
        }
        let lag = store.searcher().indexing_lag().unwrap();
        assert_eq!(lag.events, 12, "{lag:?}");
        assert!(lag.seconds >= 0.0 && lag.seconds < 60.0, "{lag:?}");
        assert_eq!(search(store.searcher(), "").total, 0, "nothing is committed yet");
        assert_eq!(store.searcher().commits().map(|commits| commits.count), Some(0));
        store.shutdown();
        assert_eq!(search(store.searcher(), "").total, 12);
        assert_eq!(store.searcher().indexing_lag(), Some(Lag::default()));
        let commits = store.searcher().commits().unwrap();
        assert!(commits.count >= 1 && commits.seconds > 0.0, "{commits:?}");
        let read_only = Searcher::open_read_only(dir.path()).unwrap();
        assert_eq!(read_only.indexing_lag(), None, "a read-only searcher cannot know");
    }

    #[test]
    fn a_reader_beside_the_server_changes_nothing_and_counts_only_what_waits_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        // An old partition committed once, then the present's, many times.
        store
            .append_blocking(vec![at(&store, "old", Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap())])
            .unwrap();
        wait_for_count(store.searcher(), 1);
        for n in 0..5 {
            store.append_blocking(vec![at(&store, &format!("now-{n}"), Utc::now())]).unwrap();
            wait_for_count(store.searcher(), 2 + n);
        }
        std::thread::sleep(Duration::from_millis(200));
        // Retention's rename, caught between it and the deletion.
        let deleting = dir.path().join("index").join("20190101T000000Z.deleted");
        std::fs::create_dir_all(&deleting).unwrap();
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir(dir.path().join("index"))
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing();
        let reader = Searcher::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.count(), 6);
        assert_eq!(reader.unindexed_in_log(dir.path()).unwrap(), 0, "all is committed");
        assert_eq!(listing(), before, "nothing created or deleted");
        store.shutdown();
        assert_eq!(Searcher::open_read_only(dir.path()).unwrap().unindexed_in_log(dir.path()).unwrap(), 0);
    }

    #[test]
    fn a_consumer_that_falls_behind_leaves_the_burst_in_the_log_and_the_backlog_limit_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            feed_batches: 2,
            wal_segment_bytes: 16 * 1024,
            wal_max_backlog_bytes: 64 * 1024,
            ..options(dir.path())
        };
        let (store, mut durable) = Store::open(&options, WalPosition::default()).unwrap();
        // Nobody reads the durable feed: the index goes on regardless, and
        // appends go on until the log holds the backlog limit.
        let mut appended = 0;
        let refused = loop {
            let batch: Vec<Event> =
                (0..20).map(|n| audit_event(&store, "alice", "secrets", n % 60)).collect();
            if appended > 10_000 {
                panic!("the backlog limit never refused an append");
            }
            match store.append(batch) {
                Ok(ticket) => {
                    ticket.blocking_recv().unwrap().unwrap();
                    appended += 20;
                }
                Err(error) => break error,
            }
        };
        assert!(matches!(refused, StoreError::Overloaded), "{refused}");
        assert!(store.backlog().bytes() >= 64 * 1024);
        assert!(appended > 2 * 20, "more than the queues hold was accepted: {appended}");
        wait_for_count(store.searcher(), appended);

        // The consumer reads the burst back from the log, once and in order.
        let mut taken = Vec::new();
        while let Some(batch) = durable.try_recv() {
            taken.extend(batch.events.iter().map(|event| event.id));
            assert!(store.backlog().bytes() > 0, "taken is not recorded");
            store.mark_consumed(batch.end);
        }
        assert_eq!(taken.len() as u64, appended);
        assert!(taken.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(durable.read_back_batches() > 0);
        assert_eq!(store.backlog().bytes(), 0);
        let ticket = store.append(vec![audit_event(&store, "bob", "pods", 1)]).unwrap();
        ticket.blocking_recv().unwrap().unwrap();
        assert_eq!(durable.recv().unwrap().events.len(), 1);
        store.shutdown();
        assert!(durable.recv().is_none(), "the feed ends with the store");
    }

    #[test]
    fn ranges_on_numbers_and_addresses_agree_whether_a_segment_reads_postings_or_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        // 600 distinct addresses and codes: more than a segment reads as
        // postings for the wide ranges, few for the narrow ones.
        let batch: Vec<Event> = (0..600u32)
            .map(|n| {
                let mut event = audit_event(&store, if n % 3 == 0 { "alice" } else { "bob" }, "pods", n % 60);
                event.set(fields::SOURCE_IP, format!("10.0.{}.{}", n / 256, n % 256));
                event.set(fields::HTTP_RESPONSE_STATUS_CODE, 1000 + n);
                event
            })
            .collect();
        store.append_blocking(batch).unwrap();
        // And 600 that share one code and one address: a single value in
        // range, on half the documents, which a segment reads from the column.
        let common: Vec<Event> = (0..600u32)
            .map(|n| {
                let mut event = audit_event(&store, if n % 3 == 0 { "alice" } else { "bob" }, "pods", n % 60);
                event.set(fields::SOURCE_IP, "10.1.0.1");
                event.set(fields::HTTP_RESPONSE_STATUS_CODE, 200);
                event
            })
            .collect();
        store.append_blocking(common).unwrap();
        wait_for_count(store.searcher(), 1200);
        let cases = [
            ("http.response.status_code:[200 TO 299]", 600),
            ("http.response.status_code:[200 TO 299] AND user.name:alice", 200),
            ("source.ip:10.1.0.0/16 AND user.name:bob", 400),
            ("source.ip:10.0.0.0/16", 600),
            ("source.ip:10.0.0.0/16 AND user.name:alice", 200),
            ("source.ip:10.0.1.0/24", 256),
            ("source.ip:10.0.1.0/24 AND user.name:alice", 85),
            ("source.ip:[10.0.0.10 TO 10.0.2.87]", 590),
            ("source.ip:[10.0.0.10 TO 10.0.0.19] AND user.name:alice", 3),
            ("http.response.status_code:>=1000", 600),
            ("http.response.status_code:>1100 AND user.name:alice", 166),
            ("http.response.status_code:[1000 TO 1009]", 10),
            ("http.response.status_code:<1010 AND user.name:bob", 406),
        ];
        assert_totals(store.searcher(), &cases);
        store.shutdown();
    }

    #[test]
    fn a_dense_range_on_one_value_per_event_reads_every_event_but_those_outside() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        // 350 events answered 200, 20 answered 404 (all alice's), 20 500, 10
        // have no status. The 404s came from 192.168.0.1, the others from
        // 10.0.0.0/8, ten of them from 192.168.9.9 as well. (A segment with
        // events lacking a value, or holding two, is not read by what its
        // range leaves out.)
        let batch: Vec<Event> = (0..400u32)
            .map(|n| {
                let mut event = audit_event(&store, if n % 4 == 0 { "alice" } else { "bob" }, "pods", n % 60);
                match (n % 20, n % 40) {
                    (0, _) => event.set(fields::HTTP_RESPONSE_STATUS_CODE, 404),
                    (10, _) => event.set(fields::HTTP_RESPONSE_STATUS_CODE, 500),
                    (_, 5) => {
                        event.fields.remove(fields::HTTP_RESPONSE_STATUS_CODE);
                    }
                    _ => event.set(fields::HTTP_RESPONSE_STATUS_CODE, 200),
                }
                let own = format!("10.0.{}.{}", n / 256, n % 256);
                match (n % 20, n % 40) {
                    (0, _) => event.set(fields::SOURCE_IP, "192.168.0.1"),
                    (_, 25) => event.set(fields::SOURCE_IP, json!([own, "192.168.9.9"])),
                    _ => event.set(fields::SOURCE_IP, own),
                }
                event
            })
            .collect();
        store.append_blocking(batch).unwrap();
        wait_for_count(store.searcher(), 400);
        let cases = [
            ("http.response.status_code:[200 TO 299]", 350),
            ("http.response.status_code:[200 TO 299] AND user.name:alice", 80),
            ("http.response.status_code:>=200", 390),
            ("http.response.status_code:>=200 AND user.name:bob", 290),
            ("http.response.status_code:<=404", 370),
            ("http.response.status_code:<=404 AND user.name:alice", 100),
            ("http.response.status_code:[200 TO 500}", 370),
            ("http.response.status_code:{200 TO 500]", 40),
            ("http.response.status_code:>300", 40),
            ("http.response.status_code:<200", 0),
            ("NOT http.response.status_code:[200 TO 299]", 50),
            ("source.ip:10.0.0.0/8", 380),
            ("source.ip:10.0.0.0/8 AND user.name:alice", 80),
            ("source.ip:192.168.0.0/16", 30),
            ("source.ip:[10.0.0.0 TO 10.0.1.255] AND http.response.status_code:[200 TO 299]", 350),
        ];
        assert_totals(store.searcher(), &cases);
        // One value per event, every event: the same ranges, read by what
        // they leave out.
        let dir = tempfile::tempdir().unwrap();
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        let batch: Vec<Event> = (0..400u32)
            .map(|n| {
                let mut event = audit_event(&store, if n % 4 == 0 { "alice" } else { "bob" }, "pods", n % 60);
                let code = match n % 20 {
                    0 => 404,
                    10 => 500,
                    _ => 200,
                };
                event.set(fields::HTTP_RESPONSE_STATUS_CODE, code);
                event
            })
            .collect();
        store.append_blocking(batch).unwrap();
        wait_for_count(store.searcher(), 400);
        let cases = [
            ("http.response.status_code:[200 TO 299]", 360),
            ("http.response.status_code:[200 TO 299] AND user.name:alice", 80),
            ("http.response.status_code:<=404", 380),
            ("http.response.status_code:[200 TO 500}", 380),
            ("http.response.status_code:{200 TO 500]", 40),
            ("http.response.status_code:>=200", 400),
        ];
        assert_totals(store.searcher(), &cases);
        store.shutdown();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_index_thread_runs_at_the_configured_niceness() {
        let dir = tempfile::tempdir().unwrap();
        // Other tests in this process run stores with the default too.
        let options = options(dir.path());
        assert_eq!(options.indexing_nice, 10);
        let (store, _durable) = Store::open(&options, WalPosition::default()).unwrap();
        store.wait_until_replayed();
        // /proc/self/task/TID/stat: "TID (comm) state ..."; niceness is the 19th field.
        let nices_of = |name: &str| -> Vec<i32> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| {
                    let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
                    let (head, rest) = stat.rsplit_once(") ")?;
                    head.contains(&format!("({name}"))
                        .then(|| rest.split(' ').nth(16)?.parse::<i32>().ok())?
                })
                .collect()
        };
        let index = nices_of("vigil-index");
        assert!(!index.is_empty() && index.iter().all(|nice| *nice == 10), "{index:?}");
        let wal = nices_of("vigil-wal");
        assert!(
            !wal.is_empty() && wal.iter().all(|nice| *nice == 0),
            "acknowledging keeps its priority: {wal:?}"
        );
        // A writer starts tantivy's threads: indexing at the index thread's
        // niceness, merging lower still.
        assert_eq!(options.merging_nice, 19);
        store.append_blocking(vec![audit_event(&store, "alice", "pods", 1)]).unwrap();
        wait_for_count(store.searcher(), 1);
        // (Other tests run writers of their own in this process, some from
        // threads at niceness 0, and lower merging right after a writer starts.)
        let indexing = nices_of("thrd-tantivy");
        assert!(indexing.contains(&10), "{indexing:?}");
        let merging = nices_of("merge_thread");
        assert!(merging.contains(&19), "{merging:?}");
        store.shutdown();
    }

    use crate::query::Query;
    use crate::{Cursor, SortOrder};
}
