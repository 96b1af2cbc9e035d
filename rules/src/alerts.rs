//! Alerts: what a rule match becomes, grouped so that people can work them.
//!
//! One active (open or acknowledged) alert per (rule, group); a later match
//! of the same rule on the same group raises its count and adds its event.
//! The group is the entity the match is about: the values of the rule's
//! `vigil-group-by` fields, by default the acting user and the object
//! ([`crate::DEFAULT_GROUP_BY`]). After an alert is closed, matches within the
//! rule's suppression window (`vigil-suppress`) of its last match are added
//! to it without reopening it. A match is recorded once per (rule, event),
//! and once per (rule, audit request): the up to three audit events of one
//! API request (one per stage) raise one alert, not three.
//!
//! Each alert keeps why it fired (the selections, fields and values of its
//! first match), the Git commit of the rules, its status, assignee and
//! comments; [`AlertStore::update`] changes them.

use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use vigil_schema::{Event, fields};

use crate::ruleset::{DEFAULT_GROUP_BY, MatchedField, RuleMatch};

/// The status of an alert in the analyst's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Closed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<AlertStatus> {
        match text {
            "open" => Some(AlertStatus::Open),
            "acknowledged" => Some(AlertStatus::Acknowledged),
            "closed" => Some(AlertStatus::Closed),
            _ => None,
        }
    }
}

/// The rule an alert came from, as the alert shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRule {
    pub id: String,
    pub title: String,
    pub level: String,
    pub tags: Vec<String>,
}

/// One alert, in the shape `GET /api/v1/alerts` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub rule: AlertRule,
    pub status: AlertStatus,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub group: String,
    /// The events that raised it, newest first (at most
    /// [`SqliteAlertStore::EVENT_IDS_SHOWN`]).
    pub event_ids: Vec<String>,
    pub assignee: Option<String>,
    /// The rule's author (the DRL licence of SigmaHQ rules asks to keep it).
    pub author: Option<String>,
    /// The Git commit of the rules that raised it, when they are a checkout.
    pub rules_commit: Option<String>,
    /// Why it fired: the matched selections, fields and values of its first match.
    pub why: Why,
    /// Matches added after it was closed, within the rule's suppression window.
    pub suppressed: u64,
    /// The comments, oldest first; only in [`AlertStore::get`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<Comment>>,
}

/// Why an alert fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Why {
    pub selections: Vec<String>,
    pub fields: Vec<WhyField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WhyField {
    pub selection: Option<String>,
    pub field: String,
    pub value: serde_json::Value,
}

/// A note on an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub author: String,
    pub text: String,
    /// RFC 3339.
    pub at: String,
}

/// A change to an alert: any of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertUpdate {
    pub status: Option<AlertStatus>,
    /// `Some(None)` removes the assignee.
    pub assignee: Option<Option<String>>,
    pub comment: Option<NewComment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub author: String,
    pub text: String,
}

/// What a batch of matches is recorded with.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    /// The consumer's position, stored in the same transaction.
    pub checkpoint: &'a str,
    /// The Git commit of the rules that matched.
    pub rules_commit: Option<&'a str>,
}

/// The alert store failed, or was asked for something that is not there.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert store: {0}")]
    Storage(String),
    #[error("no alert {0}")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
}

/// What kind of failure an [`AlertError`] is, for the web crate to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertErrorKind {
    Storage,
    NotFound,
    Invalid,
}

impl AlertError {
    pub fn kind(&self) -> AlertErrorKind {
        match self {
            AlertError::Storage(_) => AlertErrorKind::Storage,
            AlertError::NotFound(_) => AlertErrorKind::NotFound,
            AlertError::Invalid(_) => AlertErrorKind::Invalid,
        }
    }
}

impl From<rusqlite::Error> for AlertError {
    fn from(error: rusqlite::Error) -> AlertError {
        AlertError::Storage(error.to_string())
    }
}

/// Where alert state lives. SQLite now; a shared database later.
pub trait AlertStore: Send + Sync {
    /// Records matches and the consumer checkpoint they bring us to, atomically.
    fn record(
        &self,
        matches: &[(RuleMatch, &Event)],
        context: RecordContext<'_>,
    ) -> Result<RecordOutcome, AlertError>;
    /// The checkpoint of the last [`AlertStore::record`].
    fn checkpoint(&self) -> Result<Option<String>, AlertError>;
    /// Alerts, most recently seen first.
    fn list(&self, status: Option<AlertStatus>, limit: usize) -> Result<Vec<Alert>, AlertError>;
    /// One alert with its comments.
    fn get(&self, id: i64) -> Result<Alert, AlertError>;
    /// Changes an alert's status or assignee, or adds a comment; returns it.
    fn update(&self, id: i64, update: &AlertUpdate) -> Result<Alert, AlertError>;
}

/// What a call to [`AlertStore::record`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    pub new_alerts: usize,
    pub updated_alerts: usize,
    /// Matches already recorded (a replay, or another stage of one request).
    pub duplicates: usize,
    /// Matches added to a closed alert within the rule's suppression window.
    pub suppressed: usize,
    /// The alerts this call opened, to notify about.
    pub new_alert_ids: Vec<i64>,
}

/// The key under which a rule's match on an audit event marks its request
/// as seen, so that the request's other stages do not count again: the
/// time the API server received the request (the same in every stage),
/// then the audit id. Keys in time order are written next to each other:
/// a commit rewrites a few pages of the table, where random ids made it
/// rewrite one page per match. Events without that time (legacy captures)
/// are keyed by the id alone, as every event was before 2026-11-24.
pub(crate) fn request_key(event: &Event) -> Option<String> {
    let audit_id = event.get_str(fields::K8S_AUDIT_ID)?;
    let received = event.original.get("requestReceivedTimestamp").and_then(serde_json::Value::as_str);
    Some(match received {
        Some(received) => format!("audit:{received}:{audit_id}"),
        None => format!("audit:{audit_id}"),
    })
}

/// Alert state in an embedded SQLite database.
pub struct SqliteAlertStore {
    connection: Mutex<Connection>,
}

impl SqliteAlertStore {
    pub const EVENT_IDS_SHOWN: usize = 100;

    pub fn open(path: &Path) -> Result<SqliteAlertStore, AlertError> {
        // SQLite opens its file lazily: any step may be the first to fail.
        SqliteAlertStore::open_at(path).map_err(|error| match error {
            AlertError::Storage(message) => {
                AlertError::Storage(format!("cannot open {}: {message}", path.display()))
            }
            other => other,
        })
    }

    fn open_at(path: &Path) -> Result<SqliteAlertStore, AlertError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             -- Checkpoint every 10,000 pages of log (40 MB), not SQLite's 1,000:
             -- the pages the rules rewrite again and again (the open alerts'
             -- index, the newest keys) are copied into the database once per
             -- checkpoint; a tenth of the checkpoints took 5 % off the rules
             -- thread's CPU.
             PRAGMA wal_autocheckpoint = 10000;
             CREATE TABLE IF NOT EXISTS alerts (
                 id INTEGER PRIMARY KEY,
                 rule_id TEXT NOT NULL,
                 rule_title TEXT NOT NULL,
                 rule_level TEXT NOT NULL,
                 rule_tags TEXT NOT NULL,
                 grp TEXT NOT NULL,
                 status TEXT NOT NULL,
                 first_seen TEXT NOT NULL,
                 last_seen TEXT NOT NULL,
                 count INTEGER NOT NULL
             );
             DROP INDEX IF EXISTS alerts_open;
             CREATE UNIQUE INDEX IF NOT EXISTS alerts_active ON alerts (rule_id, grp) WHERE status != 'closed';
             CREATE INDEX IF NOT EXISTS alerts_last_seen ON alerts (last_seen);
             -- Tables that are their key: stored once, in the key's order
             -- (a rowid table would keep a second copy in its key's index).
             -- Databases created before keep their rowid tables.
             CREATE TABLE IF NOT EXISTS alert_events (
                 alert_id INTEGER NOT NULL,
                 event_id TEXT NOT NULL,
                 PRIMARY KEY (alert_id, event_id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS seen (rule_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (rule_id, key)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS alert_comments (
                 id INTEGER PRIMARY KEY,
                 alert_id INTEGER NOT NULL,
                 author TEXT NOT NULL,
                 text TEXT NOT NULL,
                 at TEXT NOT NULL
             );",
        )?;
        // Columns added after the first release: added to older databases.
        let existing: Vec<String> = connection
            .prepare("SELECT name FROM pragma_table_info('alerts')")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for (column, definition) in [
            ("assignee", "TEXT"),
            ("author", "TEXT"),
            ("rules_commit", "TEXT"),
            ("why", "TEXT NOT NULL DEFAULT '{}'"),
            ("suppressed", "INTEGER NOT NULL DEFAULT 0"),
            ("closed_at", "TEXT"),
        ] {
            if !existing.iter().any(|name| name == column) {
                connection.execute_batch(&format!("ALTER TABLE alerts ADD COLUMN {column} {definition}"))?;
            }
        }
        Ok(SqliteAlertStore { connection: Mutex::new(connection) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The entity an alert groups on: `field=value` for each grouping field
/// the event has, space-separated.
fn group_of(group_by: &[String], event: &Event) -> String {
    let mut parts = Vec::new();
    let mut add = |name: &str| {
        if let Some(value) = field_text(event, name) {
            parts.push(format!("{name}={value}"));
        }
    };
    if group_by.is_empty() {
        DEFAULT_GROUP_BY.iter().for_each(|name| add(name));
    } else {
        group_by.iter().for_each(|name| add(name));
    }
    parts.join(" ")
}

/// A field's value as text: a schema field, else a path in the original.
fn field_text(event: &Event, name: &str) -> Option<String> {
    let value = event.fields.get(name).or_else(|| crate::event::mixed_lookup(&event.original, name))?;
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn why_of(found: &RuleMatch) -> Why {
    let hidden = |name: &str| name.starts_with("__filter_");
    Why {
        selections: found.selections.iter().filter(|name| !hidden(name)).cloned().collect(),
        fields: found
            .fields
            .iter()
            .filter(|field| !field.selection.as_deref().is_some_and(hidden))
            .map(|MatchedField { selection, field, value }| WhyField {
                selection: selection.clone(),
                field: field.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

const ALERT_COLUMNS: &str =
    "id, rule_id, rule_title, rule_level, rule_tags, grp, status, first_seen, last_seen, count,
     assignee, author, rules_commit, why, suppressed";

fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let tags: String = row.get(4)?;
    let status: String = row.get(6)?;
    let why: String = row.get(13)?;
    Ok(Alert {
        id: row.get(0)?,
        rule: AlertRule {
            id: row.get(1)?,
            title: row.get(2)?,
            level: row.get(3)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
        },
        group: row.get(5)?,
        status: AlertStatus::parse(&status).unwrap_or(AlertStatus::Open),
        first_seen: row.get(7)?,
        last_seen: row.get(8)?,
        count: row.get::<_, i64>(9)? as u64,
        event_ids: Vec::new(),
        assignee: row.get(10)?,
        author: row.get(11)?,
        rules_commit: row.get(12)?,
        why: serde_json::from_str(&why).unwrap_or_default(),
        suppressed: row.get::<_, i64>(14)? as u64,
        comments: None,
    })
}

fn event_ids_of(connection: &Connection, alert: &mut Alert) -> Result<(), AlertError> {
    let mut events = connection.prepare_cached(
        "SELECT event_id FROM alert_events WHERE alert_id = ?1 ORDER BY event_id DESC LIMIT ?2",
    )?;
    alert.event_ids = events
        .query_map(params![alert.id, SqliteAlertStore::EVENT_IDS_SHOWN as i64], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(())
}

fn seconds_between(earlier: &str, later: &str) -> Option<i64> {
    let parse = |text: &str| vigil_schema::parse_timestamp(text).ok();
    Some((parse(later)? - parse(earlier)?).num_seconds())
}

impl AlertStore for SqliteAlertStore {
    fn record(
        &self,
        matches: &[(RuleMatch, &Event)],
        context: RecordContext<'_>,
    ) -> Result<RecordOutcome, AlertError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let mut outcome = RecordOutcome::default();
        for (found, event) in matches {
            let rule = &found.rule;
            let event_id = event.id.to_string();
            // A match is marked seen once: under its request's key when it
            // has one (the same event again has the same key, and so has
            // another stage of its request), else under the event's id.
            let key = request_key(event);
            let first_time = transaction
                .prepare_cached("INSERT OR IGNORE INTO seen (rule_id, key) VALUES (?1, ?2)")?
                .execute(params![rule.id, key.as_deref().unwrap_or(&event_id)])?
                == 1;
            if !first_time {
                outcome.duplicates += 1;
                continue;
            }
            let seen_at = vigil_schema::format_timestamp(event.timestamp);
            let group = group_of(&rule.group_by, event);
            let active: Option<(i64, String, String)> = transaction.prepare_cached("SELECT id, first_seen, last_seen FROM alerts WHERE rule_id = ?1 AND grp = ?2 AND status != 'closed'")?.query_row(params![rule.id, group],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let suppressing: Option<(i64, String)> = match (&active, rule.suppress_seconds) {
                (None, Some(window)) => transaction.prepare_cached("SELECT id, last_seen FROM alerts WHERE rule_id = ?1 AND grp = ?2 AND status = 'closed'
                         ORDER BY last_seen DESC LIMIT 1")?.query_row(params![rule.id, group],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?
                    .filter(|(_, last_seen): &(i64, String)| {
                        seconds_between(last_seen, &seen_at).is_some_and(|gap| gap <= window as i64)
                    }),
                _ => None,
            };
            let alert_id = if let Some((id, first_seen, last_seen)) = active {
                transaction
                    .prepare_cached(
                        "UPDATE alerts SET count = count + 1, first_seen = ?2, last_seen = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, earlier(&first_seen, &seen_at), later(&last_seen, &seen_at)])?;
                outcome.updated_alerts += 1;
                id
            } else if let Some((id, last_seen)) = suppressing {
                transaction.prepare_cached("UPDATE alerts SET count = count + 1, suppressed = suppressed + 1, last_seen = ?2 WHERE id = ?1")?.execute(params![id, later(&last_seen, &seen_at)],
                )?;
                outcome.suppressed += 1;
                id
            } else {
                transaction.prepare_cached("INSERT INTO alerts (rule_id, rule_title, rule_level, rule_tags, grp, status, first_seen, last_seen, count,
                                         author, rules_commit, why)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?6, 1, ?7, ?8, ?9)")?.execute(params![
                        rule.id,
                        rule.title,
                        rule.level,
                        serde_json::to_string(&rule.tags).unwrap_or_default(),
                        group,
                        seen_at,
                        rule.author,
                        context.rules_commit,
                        serde_json::to_string(&why_of(found)).unwrap_or_default(),
                    ],
                )?;
                outcome.new_alerts += 1;
                let id = transaction.last_insert_rowid();
                outcome.new_alert_ids.push(id);
                id
            };
            transaction
                .prepare_cached("INSERT OR IGNORE INTO alert_events (alert_id, event_id) VALUES (?1, ?2)")?
                .execute(params![alert_id, event_id])?;
        }
        transaction.prepare_cached("INSERT INTO meta (key, value) VALUES ('checkpoint', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1")?.execute(params![context.checkpoint],
        )?;
        transaction.commit()?;
        Ok(outcome)
    }

    fn checkpoint(&self) -> Result<Option<String>, AlertError> {
        let connection = self.lock();
        Ok(connection
            .query_row("SELECT value FROM meta WHERE key = 'checkpoint'", [], |row| row.get(0))
            .optional()?)
    }

    fn list(&self, status: Option<AlertStatus>, limit: usize) -> Result<Vec<Alert>, AlertError> {
        let connection = self.lock();
        let mut statement = connection.prepare(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE (?1 IS NULL OR status = ?1) ORDER BY last_seen DESC, id DESC LIMIT ?2"
        ))?;
        let rows =
            statement.query_map(params![status.map(AlertStatus::as_str), limit as i64], alert_from_row)?;
        let mut alerts = rows.collect::<Result<Vec<_>, _>>()?;
        for alert in &mut alerts {
            event_ids_of(&connection, alert)?;
        }
        Ok(alerts)
    }

    fn get(&self, id: i64) -> Result<Alert, AlertError> {
        let connection = self.lock();
        let mut alert = connection
            .query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                params![id],
                alert_from_row,
            )
            .optional()?
            .ok_or(AlertError::NotFound(id))?;
        event_ids_of(&connection, &mut alert)?;
        let mut comments = connection
            .prepare("SELECT author, text, at FROM alert_comments WHERE alert_id = ?1 ORDER BY id")?;
        alert.comments = Some(
            comments
                .query_map(params![id], |row| {
                    Ok(Comment { author: row.get(0)?, text: row.get(1)?, at: row.get(2)? })
                })?
                .collect::<Result<_, _>>()?,
        );
        Ok(alert)
    }

    fn update(&self, id: i64, update: &AlertUpdate) -> Result<Alert, AlertError> {
        if let Some(comment) = &update.comment
            && (comment.author.trim().is_empty() || comment.text.trim().is_empty())
        {
            return Err(AlertError::Invalid("a comment needs a non-empty author and text".into()));
        }
        {
            let mut connection = self.lock();
            let transaction = connection.transaction()?;
            let current: Option<(String, String, String)> = transaction
                .query_row("SELECT status, rule_id, grp FROM alerts WHERE id = ?1", params![id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            let Some((status, rule_id, group)) = current else { return Err(AlertError::NotFound(id)) };
            let now = vigil_schema::format_timestamp(Utc::now());
            if let Some(new_status) = update.status
                && new_status.as_str() != status
            {
                if status == "closed" {
                    // Reopening: only one active alert per rule and group.
                    let other: Option<i64> = transaction
                        .query_row(
                            "SELECT id FROM alerts WHERE rule_id = ?1 AND grp = ?2 AND status != 'closed'",
                            params![rule_id, group],
                            |row| row.get(0),
                        )
                        .optional()?;
                    if let Some(other) = other {
                        return Err(AlertError::Invalid(format!(
                            "alert {other} is already active for this rule and group; work that one"
                        )));
                    }
                }
                let closed_at = (new_status == AlertStatus::Closed).then_some(now.as_str());
                transaction.execute(
                    "UPDATE alerts SET status = ?2, closed_at = ?3 WHERE id = ?1",
                    params![id, new_status.as_str(), closed_at],
                )?;
            }
            if let Some(assignee) = &update.assignee {
                let assignee = assignee.as_deref().map(str::trim).filter(|name| !name.is_empty());
                transaction
                    .execute("UPDATE alerts SET assignee = ?2 WHERE id = ?1", params![id, assignee])?;
            }
            if let Some(comment) = &update.comment {
                transaction.execute(
                    "INSERT INTO alert_comments (alert_id, author, text, at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, comment.author.trim(), comment.text, now],
                )?;
            }
            transaction.commit()?;
        }
        self.get(id)
    }
}

fn earlier(a: &str, b: &str) -> String {
    min_time(a, b, true)
}

fn later(a: &str, b: &str) -> String {
    min_time(a, b, false)
}

fn min_time(a: &str, b: &str, want_earlier: bool) -> String {
    // Times as the schema writes them: a year past 9999 has a sign, and
    // text order is not time order.
    let parse = |text: &str| vigil_schema::parse_timestamp(text).ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) if (x <= y) == want_earlier => a.to_owned(),
        (Some(_), Some(_)) => b.to_owned(),
        _ => b.to_owned(),
    }
}

#[cfg(test)]
mod time_order_tests {
    use super::{earlier, later, seconds_between};

    /// A time past year 9999 (an event stamped in 9999 west of Greenwich)
    /// is written with a signed year, which sorts before digits as text.
    #[test]
    fn alert_times_are_compared_as_times_not_text() {
        let now = "2025-02-03T08:00:00.000000000Z";
        let far = "+10000-01-01T04:59:59.000000000Z";
        assert_eq!(earlier(far, now), now);
        assert_eq!(later(now, far), far);
        assert_eq!(later(far, now), far);
        assert_eq!(seconds_between(now, "2025-02-03T08:01:30.000000000Z"), Some(90));
        assert!(seconds_between(now, far).is_some_and(|gap| gap > 0));
    }
}

#[cfg(test)]
mod store_tests {
    use super::SqliteAlertStore;

    #[test]
    fn an_alert_store_that_cannot_be_opened_says_where() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the database file should be.
        let path = dir.path().join("alerts.db");
        std::fs::create_dir(&path).unwrap();
        let error = SqliteAlertStore::open(&path).err().expect("a directory is no database").to_string();
        assert!(error.starts_with(&format!("alert store: cannot open {}: ", path.display())), "{error}");
    }

    #[test]
    fn the_alert_store_is_durable_per_commit_and_checkpoints_in_large_steps() {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteAlertStore::open(&directory.path().join("alerts.db")).unwrap();
        let connection = store.lock();
        let pragma = |name: &str| -> String {
            connection
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, rusqlite::types::Value>(0))
                .map(|value| format!("{value:?}"))
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
        assert_eq!(
            pragma("synchronous"),
            "Integer(2)",
            "FULL: a commit is on disk before the log is released"
        );
        assert_eq!(pragma("wal_autocheckpoint"), "Integer(10000)");
    }
}
