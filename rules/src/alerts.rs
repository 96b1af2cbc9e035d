//! Alerts: what a rule match becomes, grouped so that people can work them.
//!
//! One open alert per (rule, group); a later match of the same rule on the
//! same group raises its count and adds its event. The group is the entity
//! the match is about: `user.name=...`, else `host.name=...`, else empty.
//! A match is recorded once per (rule, event), and once per (rule, audit
//! request): the up to three audit events of one API request (one per stage)
//! raise one alert, not three.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use vigil_schema::{Event, fields};

use crate::ruleset::RuleInfo;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

/// The alert store failed.
#[derive(Debug, thiserror::Error)]
#[error("alert store: {0}")]
pub struct AlertError(String);

impl From<rusqlite::Error> for AlertError {
    fn from(error: rusqlite::Error) -> AlertError {
        AlertError(error.to_string())
    }
}

/// Where alert state lives. SQLite now; a shared database later.
pub trait AlertStore: Send + Sync {
    /// Records matches and the consumer checkpoint they bring us to, atomically.
    fn record(
        &self,
        matches: &[(Arc<RuleInfo>, &Event)],
        checkpoint: &str,
    ) -> Result<RecordOutcome, AlertError>;
    /// The checkpoint of the last [`AlertStore::record`].
    fn checkpoint(&self) -> Result<Option<String>, AlertError>;
    /// Alerts, most recently seen first.
    fn list(&self, status: Option<AlertStatus>, limit: usize) -> Result<Vec<Alert>, AlertError>;
}

/// What a call to [`AlertStore::record`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordOutcome {
    pub new_alerts: usize,
    pub updated_alerts: usize,
    /// Matches already recorded (a replay, or another stage of one request).
    pub duplicates: usize,
}

/// Alert state in an embedded SQLite database.
pub struct SqliteAlertStore {
    connection: Mutex<Connection>,
}

impl SqliteAlertStore {
    pub const EVENT_IDS_SHOWN: usize = 100;

    pub fn open(path: &Path) -> Result<SqliteAlertStore, AlertError> {
        let connection = Connection::open(path)
            .map_err(|error| AlertError(format!("cannot open {}: {error}", path.display())))?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
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
             CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (rule_id, grp) WHERE status = 'open';
             CREATE INDEX IF NOT EXISTS alerts_last_seen ON alerts (last_seen);
             CREATE TABLE IF NOT EXISTS alert_events (
                 alert_id INTEGER NOT NULL,
                 event_id TEXT NOT NULL,
                 PRIMARY KEY (alert_id, event_id)
             );
             CREATE TABLE IF NOT EXISTS seen (rule_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (rule_id, key));
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )?;
        Ok(SqliteAlertStore { connection: Mutex::new(connection) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The entity an alert groups on.
fn group_of(event: &Event) -> String {
    for name in [fields::USER_NAME, fields::HOST_NAME] {
        if let Some(value) = event.get_str(name) {
            return format!("{name}={value}");
        }
    }
    String::new()
}

impl AlertStore for SqliteAlertStore {
    fn record(
        &self,
        matches: &[(Arc<RuleInfo>, &Event)],
        checkpoint: &str,
    ) -> Result<RecordOutcome, AlertError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let mut outcome = RecordOutcome::default();
        for (rule, event) in matches {
            let event_id = event.id.to_string();
            let first_time = transaction.execute(
                "INSERT OR IGNORE INTO seen (rule_id, key) VALUES (?1, ?2)",
                params![rule.id, event_id],
            )? == 1;
            let first_for_request = match event.get_str(fields::K8S_AUDIT_ID) {
                Some(audit_id) => {
                    transaction.execute(
                        "INSERT OR IGNORE INTO seen (rule_id, key) VALUES (?1, ?2)",
                        params![rule.id, format!("audit:{audit_id}")],
                    )? == 1
                }
                None => true,
            };
            if !(first_time && first_for_request) {
                outcome.duplicates += 1;
                continue;
            }
            let seen_at = vigil_schema::format_timestamp(event.timestamp);
            let group = group_of(event);
            let existing: Option<(i64, String, String)> = transaction
                .query_row(
                    "SELECT id, first_seen, last_seen FROM alerts WHERE rule_id = ?1 AND grp = ?2 AND status = 'open'",
                    params![rule.id, group],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let alert_id = match existing {
                Some((id, first_seen, last_seen)) => {
                    transaction.execute(
                        "UPDATE alerts SET count = count + 1, first_seen = ?2, last_seen = ?3 WHERE id = ?1",
                        params![id, earlier(&first_seen, &seen_at), later(&last_seen, &seen_at)],
                    )?;
                    outcome.updated_alerts += 1;
                    id
                }
                None => {
                    transaction.execute(
                        "INSERT INTO alerts (rule_id, rule_title, rule_level, rule_tags, grp, status, first_seen, last_seen, count)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?6, 1)",
                        params![
                            rule.id,
                            rule.title,
                            rule.level,
                            serde_json::to_string(&rule.tags).unwrap_or_default(),
                            group,
                            seen_at
                        ],
                    )?;
                    outcome.new_alerts += 1;
                    transaction.last_insert_rowid()
                }
            };
            transaction.execute(
                "INSERT OR IGNORE INTO alert_events (alert_id, event_id) VALUES (?1, ?2)",
                params![alert_id, event_id],
            )?;
        }
        transaction.execute(
            "INSERT INTO meta (key, value) VALUES ('checkpoint', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
            params![checkpoint],
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
        let mut statement = connection.prepare(
            "SELECT id, rule_id, rule_title, rule_level, rule_tags, grp, status, first_seen, last_seen, count
             FROM alerts WHERE (?1 IS NULL OR status = ?1) ORDER BY last_seen DESC, id DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![status.map(AlertStatus::as_str), limit as i64], |row| {
            let tags: String = row.get(4)?;
            let status: String = row.get(6)?;
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
            })
        })?;
        let mut alerts = rows.collect::<Result<Vec<_>, _>>()?;
        let mut events = connection.prepare(
            "SELECT event_id FROM alert_events WHERE alert_id = ?1 ORDER BY event_id DESC LIMIT ?2",
        )?;
        for alert in &mut alerts {
            alert.event_ids = events
                .query_map(params![alert.id, Self::EVENT_IDS_SHOWN as i64], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
        }
        Ok(alerts)
    }
}

fn earlier(a: &str, b: &str) -> String {
    min_time(a, b, true)
}

fn later(a: &str, b: &str) -> String {
    min_time(a, b, false)
}

fn min_time(a: &str, b: &str, want_earlier: bool) -> String {
    let parse = |text: &str| DateTime::parse_from_rfc3339(text).ok().map(|time| time.with_timezone(&Utc));
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) if (x <= y) == want_earlier => a.to_owned(),
        (Some(_), Some(_)) => b.to_owned(),
        _ => b.to_owned(),
    }
}
