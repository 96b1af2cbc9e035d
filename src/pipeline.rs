//! The pipeline behind the sink: the store (write-ahead log → index) and the
//! rules consumer (durable batches → matches → alerts), wired together.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::notify::Notifier;
use anyhow::Context as _;
use vigil_index::{DurableFeed, Store, StoreOptions, WalPosition};
use vigil_rules::{AlertStore, Correlator, LiveRules, RecordContext, RuleMatch, SqliteAlertStore};
use vigil_schema::Event;

/// The running store and rules consumer of one data directory.
pub struct Pipeline {
    pub store: Arc<Store>,
    pub alerts: Arc<SqliteAlertStore>,
    consumer: Option<JoinHandle<()>>,
}

impl Pipeline {
    /// `notifier`, when given, is told of every new alert; the rules run at
    /// niceness `rules_nice` (`rules.nice`).
    pub fn open(
        options: &StoreOptions,
        rules_nice: i32,
        rules: Arc<LiveRules>,
        notifier: Option<Arc<Notifier>>,
    ) -> anyhow::Result<Pipeline> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("cannot create data directory {}", options.data_dir.display()))?;
        let alerts = Arc::new(SqliteAlertStore::open(&options.data_dir.join("alerts.db"))?);
        let consumer_from = match alerts.checkpoint()? {
            Some(text) => serde_json::from_str(&text)
                .with_context(|| format!("alert checkpoint {text:?} is damaged"))?,
            None => WalPosition::default(),
        };
        let (store, durable) = Store::open(options, consumer_from)?;
        let store = Arc::new(store);
        let consumer_store = store.clone();
        let consumer_alerts = alerts.clone();
        let consumer = std::thread::Builder::new()
            .name("vigil-rules".into())
            .spawn(move || {
                // Below acknowledging: in a burst the rules read the batches
                // they could not keep up with back from the log, as the index
                // does (`vigil load` over the 2M corpus, 6 connections: 52,700
                // → 60,200 events/s acknowledged, all searchable as soon).
                vigil_index::lower_thread_priority(rules_nice);
                consume(durable, &rules, consumer_alerts.as_ref(), &consumer_store, notifier.as_deref())
            })
            .context("cannot start the rules thread")?;
        // Ready means every event acknowledged before a crash is searchable again.
        store.wait_until_replayed();
        Ok(Pipeline { store, alerts, consumer: Some(consumer) })
    }

    /// Stops accepting, commits what was accepted, and waits for the rules
    /// to finish with every durable batch.
    pub fn shutdown(mut self) {
        self.store.shutdown();
        if let Some(consumer) = self.consumer.take()
            && consumer.join().is_err()
        {
            tracing::error!("the rules thread panicked");
        }
    }
}

/// Durable batches matched and recorded in one transaction at most.
const MAX_BATCHES_PER_RECORD: usize = 16;

/// Matches every durable batch against the rules and records the alerts,
/// together with the log position, so that a restart resumes exactly there.
/// Each group of batches is matched with the rule set running when it arrives.
fn consume(
    mut durable: DurableFeed,
    live: &LiveRules,
    alerts: &dyn AlertStore,
    store: &Store,
    notifier: Option<&Notifier>,
) {
    // Correlation state lives as long as the rule set: a reload starts afresh.
    let mut correlation: Option<(u64, Correlator)> = None;
    while let Some(first) = durable.recv() {
        // The batches already waiting are matched together and recorded in
        // one transaction: one commit (and fsync) per group, not per batch,
        // when the rules fall behind.
        let mut batches = vec![first];
        while batches.len() < MAX_BATCHES_PER_RECORD {
            match durable.try_recv() {
                Some(batch) => batches.push(batch),
                None => break,
            }
        }
        let end = batches.last().map(|batch| batch.end).unwrap_or_default();
        let status = live.status();
        let correlator = match &mut correlation {
            Some((generation, correlator)) if *generation == status.generation => correlator,
            slot => &mut slot.insert((status.generation, status.rules.correlator())).1,
        };
        let mut matches: Vec<(RuleMatch, &Event)> = Vec::new();
        for event in batches.iter().flat_map(|batch| batch.events.iter()) {
            for found in status.rules.evaluate_correlated(correlator, event) {
                matches.push((found, event));
            }
        }
        let checkpoint = serde_json::to_string(&end).unwrap_or_default();
        let rules_commit = status.origin.commit();
        let context = RecordContext { checkpoint: &checkpoint, rules_commit: rules_commit.as_deref() };
        // The matches are recorded before anything after them: a failure is
        // tried again, never skipped (a later group's checkpoint would move
        // past it). Meanwhile the log keeps the batches, and once its backlog
        // is full, ingest answers 503.
        let outcome = loop {
            match alerts.record(&matches, context) {
                Ok(outcome) => break outcome,
                Err(error) if store.is_stopping() => {
                    tracing::error!(%error, "cannot record alerts while stopping; they are matched again on the next start");
                    return;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot record alerts; trying again in {RECORD_RETRY:?}");
                    std::thread::sleep(RECORD_RETRY);
                }
            }
        };
        if outcome.new_alerts > 0 {
            tracing::info!(
                new_alerts = outcome.new_alerts,
                updated = outcome.updated_alerts,
                "alerts raised"
            );
        }
        store.mark_consumed(end);
        if let Some(notifier) = notifier.filter(|notifier| notifier.has_destinations()) {
            for id in &outcome.new_alert_ids {
                match alerts.get(*id) {
                    Ok(alert) => notifier.notify(&alert),
                    Err(error) => tracing::error!(%error, alert = id, "cannot read a new alert to notify"),
                }
            }
        }
    }
}

/// How long the rules consumer waits before recording alerts again after a failure.
const RECORD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Store options from the configuration.
pub fn store_options(config: &vigil_config::Config, data_dir: &Path) -> StoreOptions {
    StoreOptions {
        data_dir: data_dir.to_owned(),
        commit_interval: config.index.commit_interval,
        queue_batches: config.index.queue_batches,
        feed_batches: config.index.feed_batches,
        indexing_nice: config.index.indexing_nice,
        merging_nice: config.index.merging_nice,
        store_compression_level: config.index.store_compression_level,
        wal_segment_bytes: config.index.wal_segment_bytes,
        wal_max_backlog_bytes: config.index.wal_max_backlog_bytes,
        writer_heap_bytes: config.index.writer_heap_bytes,
        writer_threads: config.index.writer_threads,
        search_threads: config.index.search_threads,
        partition_span_seconds: config.index.partition_span.as_secs() as i64,
        retention_max_age: config.retention.max_age,
        retention_max_bytes: config.retention.max_bytes,
        retention_check_interval: config.retention.check_interval,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use serde_json::json;
    use vigil_rules::{
        Alert, AlertError, AlertStatus, AlertUpdate, RecordOutcome, RuleSet, RuleSource, RulesOrigin,
    };

    use super::*;

    /// An alert store whose first recordings fail, like a full disk.
    struct Flaky {
        inner: SqliteAlertStore,
        failures: AtomicUsize,
    }

    impl AlertStore for Flaky {
        fn record(
            &self,
            matches: &[(RuleMatch, &Event)],
            context: RecordContext<'_>,
        ) -> Result<RecordOutcome, AlertError> {
            if self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                .is_ok()
            {
                return Err(AlertError::Storage("database or disk is full".into()));
            }
            self.inner.record(matches, context)
        }
        fn checkpoint(&self) -> Result<Option<String>, AlertError> {
            self.inner.checkpoint()
        }
        fn list(&self, status: Option<AlertStatus>, limit: usize) -> Result<Vec<Alert>, AlertError> {
            self.inner.list(status, limit)
        }
        fn get(&self, id: i64) -> Result<Alert, AlertError> {
            self.inner.get(id)
        }
        fn update(&self, id: i64, update: &AlertUpdate) -> Result<Alert, AlertError> {
            self.inner.update(id, update)
        }
    }

    #[test]
    fn the_configurations_defaults_are_the_stores() {
        let from_config = store_options(&vigil_config::Config::default(), Path::new("d"));
        let store = StoreOptions::new("d");
        assert_eq!(
            (from_config.store_compression_level, from_config.indexing_nice, from_config.merging_nice),
            (store.store_compression_level, store.indexing_nice, store.merging_nice)
        );
        assert_eq!(
            (from_config.feed_batches, from_config.commit_interval),
            (store.feed_batches, store.commit_interval)
        );
        assert_eq!(
            (from_config.writer_threads, from_config.writer_heap_bytes),
            (store.writer_threads, store.writer_heap_bytes)
        );
    }

    #[test]
    fn alerts_that_cannot_be_recorded_are_tried_again_and_never_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (store, durable) = Store::open(&StoreOptions::new(dir.path()), WalPosition::default()).unwrap();
        let store = Arc::new(store);
        let rules =
            LiveRules::new(Arc::new(RuleSet::load(&[RuleSource::Builtin]).unwrap()), RulesOrigin::default());
        let alerts = Arc::new(Flaky {
            inner: SqliteAlertStore::open(Path::new(":memory:")).unwrap(),
            failures: AtomicUsize::new(2),
        });
        let consumer = std::thread::spawn({
            let (store, alerts) = (store.clone(), alerts.clone());
            move || consume(durable, &rules, alerts.as_ref(), &store, None)
        });
        let exec = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": "a-1",
            "stage": "ResponseStarted", "verb": "create",
            "requestURI": "/api/v1/namespaces/shop/pods/web/exec?command=sh",
            "user": {"username": "mallory", "groups": ["system:authenticated"]}, "sourceIPs": ["10.0.0.9"],
            "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "shop", "name": "web"},
            "responseStatus": {"code": 101}, "requestReceivedTimestamp": chrono::Utc::now().to_rfc3339(),
        });
        let event = vigil_ingest::k8s_audit::normalize(
            store.ids().next(),
            exec,
            &vigil_ingest::k8s_audit::Context::default(),
        )
        .unwrap();
        let end = store.append_blocking(vec![event]).unwrap();

        let started = Instant::now();
        while alerts.list(None, 10).unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(20), "the alert was never recorded");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(alerts.failures.load(Ordering::SeqCst), 0, "both failures were met");
        assert_eq!(alerts.checkpoint().unwrap(), Some(serde_json::to_string(&end).unwrap()));
        store.shutdown();
        consumer.join().unwrap();
    }
}
