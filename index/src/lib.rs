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
//! let request = SearchRequest { query: query::parse("verb:get")?, from: None, to: None, limit: 10 };
//! let result = store.searcher().search(&request)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod compile;
pub mod doc;
pub mod query;
mod search;
mod store;
mod time;
pub mod wal;

use std::path::{Path, PathBuf};

pub use search::{MAX_LIMIT, SearchRequest, SearchResult, Searcher};
pub use store::{AppendTicket, DurableBatch, Store, StoreOptions};
pub use time::parse_time_bound;
pub use wal::WalPosition;

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
    #[error("{message}")]
    BadQuery { message: String },
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
        if !index_dir.join("meta.json").exists() {
            return Err(StoreError::Io {
                action: "read",
                path: index_dir,
                message: "no index here (has anything been ingested into this data directory?)".into(),
            });
        }
        let index = store::open_index(&index_dir)?;
        Searcher::new(index, doc::DocSchema::new())
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
        event.set(fields::USER_NAME, user);
        event.set(fields::ORCHESTRATOR_RESOURCE_TYPE, resource);
        event.set(fields::HTTP_RESPONSE_STATUS_CODE, 200);
        event.set(fields::SOURCE_IP, "10.1.2.3");
        event.set(fields::MESSAGE, format!("{user} get {resource} in shop"));
        event.set("labels.team", "Payments");
        event
    }

    fn search(searcher: &Searcher, text: &str) -> SearchResult {
        let request = SearchRequest { query: query::parse(text).unwrap(), from: None, to: None, limit: 100 };
        searcher.search(&request).unwrap()
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
    fn appended_events_are_searchable_by_every_kind_of_term_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
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
        ];
        for (text, expected) in cases {
            assert_eq!(search(&searcher, text).total, expected, "{text}");
        }
        let newest_first = search(&searcher, "");
        assert_eq!(newest_first.hits[0].get_str(fields::USER_NAME), Some("carol"));
        let ranged = SearchRequest {
            query: Query::All,
            from: Some(Utc.with_ymd_and_hms(2025, 2, 3, 8, 2, 0).unwrap()),
            to: Some(Utc.with_ymd_and_hms(2025, 2, 3, 8, 5, 0).unwrap()),
            limit: 100,
        };
        assert_eq!(searcher.search(&ranged).unwrap().total, 3, "from is inclusive, to exclusive");
        assert!(searcher.get(first_id).unwrap().is_some());

        store.shutdown();
        drop(store);
        let (store, _durable) = Store::open(&options(dir.path()), WalPosition::default()).unwrap();
        assert_eq!(search(store.searcher(), "").total, 11);
        assert!(store.ids().next() > first_id);
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
            ("user.name:/(/", "user.name: invalid regular expression \"(\""),
            ("@timestamp:>=yesterday", "@timestamp: \"yesterday\" is not a time"),
        ];
        for (text, message) in cases {
            let request =
                SearchRequest { query: query::parse(text).unwrap(), from: None, to: None, limit: 1 };
            let error =
                store.searcher().search(&request).err().unwrap_or_else(|| panic!("{text} should fail"));
            assert_eq!(error.kind(), StoreErrorKind::BadQuery, "{text}");
            assert!(error.to_string().starts_with(message), "{text}: {error}");
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
        };
        let error = store.searcher().search(&request).unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::BadQuery);
        assert_eq!(error.to_string(), "source.ip: \"nowhere\" is not an IP address");
        store.shutdown();
    }

    use crate::query::Query;
}
