//! Counters for `GET /metrics`, in Prometheus text format.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the HTTP sources and of notifications.
#[derive(Debug, Default)]
pub struct Metrics {
    pub audit: SourceCounters,
    pub falco: SourceCounters,
    pub logs: SourceCounters,
    pub bulk: SourceCounters,
    /// Filled by the syslog listeners.
    pub syslog: Arc<vigil_ingest::syslog::SourceStats>,
    /// Filled by the file tailer.
    pub tail: Arc<vigil_ingest::tail::TailStats>,
    /// Batches waiting for the write-ahead log.
    pub store_queue: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of the write-ahead log its slowest consumer has yet to take.
    pub wal_backlog: Option<Arc<vigil_index::Backlog>>,
    /// Filled by the notifier, one entry per destination.
    pub notifications: Arc<NotificationCounters>,
    /// Filled by the forward protocol server.
    pub forward: Arc<vigil_ingest::forward::ForwardMetrics>,
}

/// What one ingest source received and what became of it.
#[derive(Debug, Default)]
pub struct SourceCounters {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub refused_too_large: AtomicU64,
    pub refused_unavailable: AtomicU64,
}

/// What happened to the alerts sent to each notification destination.
#[derive(Debug, Default)]
pub struct NotificationCounters {
    pub destinations: Vec<(String, DestinationCounters)>,
}

#[derive(Debug, Default)]
pub struct DestinationCounters {
    /// Delivered (2xx).
    pub sent: AtomicU64,
    /// Given up after every retry, or refused with a 4xx.
    pub failed: AtomicU64,
    /// Not queued: the destination's queue was full.
    pub dropped: AtomicU64,
    /// Attempts after a failed one.
    pub retries: AtomicU64,
    /// Times a send waited for the rate limit.
    pub rate_limited: AtomicU64,
}

impl NotificationCounters {
    pub fn for_destinations(names: &[String]) -> NotificationCounters {
        NotificationCounters {
            destinations: names.iter().map(|name| (name.clone(), DestinationCounters::default())).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&DestinationCounters> {
        self.destinations.iter().find(|(known, _)| known == name).map(|(_, counters)| counters)
    }
}

pub const INGEST_REQUESTS: &str = "vigil_ingest_requests_total";
pub const INGEST_BYTES: &str = "vigil_ingest_bytes_total";
pub const INGEST_EVENTS: &str = "vigil_ingest_events_total";
pub const INGEST_REFUSED: &str = "vigil_ingest_refused_requests_total";
pub const SYSLOG_MESSAGES: &str = "vigil_syslog_messages_total";
pub const TAIL_LINES: &str = "vigil_tail_lines_total";
pub const STORE_QUEUE: &str = "vigil_store_queue_batches";
pub const WAL_BACKLOG: &str = "vigil_wal_backlog_bytes";
pub const INDEX_LAG_EVENTS: &str = "vigil_index_lag_events";
pub const INDEX_LAG_SECONDS: &str = "vigil_index_lag_seconds";
pub const INDEX_COMMITS: &str = "vigil_index_commits_total";
pub const INDEX_COMMIT_SECONDS: &str = "vigil_index_commit_seconds_total";
pub const WAL_READ_BACK: &str = "vigil_wal_read_back_batches_total";
pub const TAIL_ROTATIONS: &str = "vigil_tail_rotations_total";
pub const INDEX_DOCUMENTS: &str = "vigil_index_documents";
pub const INDEX_SEGMENTS: &str = "vigil_index_max_partition_segments";
pub const RULES_LOADED: &str = "vigil_rules_loaded";
pub const NOTIFICATIONS: &str = "vigil_notifications_total";
pub const NOTIFICATION_RETRIES: &str = "vigil_notification_retries_total";
pub const NOTIFICATION_RATE_LIMITED: &str = "vigil_notification_rate_limited_total";
pub const FORWARD_CONNECTIONS: &str = "vigil_forward_connections_total";
pub const FORWARD_BYTES: &str = "vigil_forward_bytes_total";
pub const FORWARD_MESSAGES: &str = "vigil_forward_messages_total";
pub const FORWARD_EVENTS: &str = "vigil_forward_events_total";
pub const FORWARD_ACKS: &str = "vigil_forward_acks_total";
pub const FORWARD_OVERLOADED: &str = "vigil_forward_overloaded_retries_total";
pub const FORWARD_REFUSED: &str = "vigil_forward_refused_total";

impl Metrics {
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn render(
        &self,
        indexed_documents: u64,
        max_partition_segments: usize,
        rules_loaded: usize,
        indexing_lag: Option<vigil_index::Lag>,
        commits: Option<vigil_index::Commits>,
    ) -> String {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        let sources =
            [("k8s-audit", &self.audit), ("falco", &self.falco), ("logs", &self.logs), ("bulk", &self.bulk)];
        let _ = writeln!(
            out,
            "# HELP {INGEST_REQUESTS} Ingest requests received.\n# TYPE {INGEST_REQUESTS} counter"
        );
        for (name, counters) in sources {
            let _ = writeln!(out, "{INGEST_REQUESTS}{{source=\"{name}\"}} {}", read(&counters.requests));
        }
        let _ = writeln!(
            out,
            "# HELP {INGEST_BYTES} Ingest body bytes received, as sent.\n# TYPE {INGEST_BYTES} counter"
        );
        for (name, counters) in sources {
            let _ = writeln!(out, "{INGEST_BYTES}{{source=\"{name}\"}} {}", read(&counters.bytes));
        }
        let syslog = &self.syslog;
        let _ = writeln!(out, "{INGEST_BYTES}{{source=\"syslog\"}} {}", read(&syslog.bytes));
        let _ = writeln!(
            out,
            "# HELP {INGEST_EVENTS} Events received, by outcome.\n# TYPE {INGEST_EVENTS} counter"
        );
        for (name, counters) in sources {
            let _ = writeln!(
                out,
                "{INGEST_EVENTS}{{source=\"{name}\",result=\"accepted\"}} {}",
                read(&counters.accepted)
            );
            let _ = writeln!(
                out,
                "{INGEST_EVENTS}{{source=\"{name}\",result=\"rejected\"}} {}",
                read(&counters.rejected)
            );
        }
        for (result, counter) in
            [("accepted", &syslog.accepted), ("rejected", &syslog.rejected), ("dropped", &syslog.dropped)]
        {
            let _ =
                writeln!(out, "{INGEST_EVENTS}{{source=\"syslog\",result=\"{result}\"}} {}", read(counter));
        }
        for (result, counter) in [("accepted", &self.tail.accepted), ("rejected", &self.tail.rejected)] {
            let _ = writeln!(out, "{INGEST_EVENTS}{{source=\"tail\",result=\"{result}\"}} {}", read(counter));
        }
        let _ = writeln!(
            out,
            "# HELP {SYSLOG_MESSAGES} Syslog messages received.\n# TYPE {SYSLOG_MESSAGES} counter"
        );
        let _ = writeln!(out, "{SYSLOG_MESSAGES} {}", read(&syslog.messages));
        let _ = writeln!(
            out,
            "# HELP {STORE_QUEUE} Batches waiting for the write-ahead log (index.queue_batches at most).\n# TYPE {STORE_QUEUE} gauge"
        );
        let _ = writeln!(out, "{STORE_QUEUE} {}", self.store_queue.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP {WAL_BACKLOG} Bytes of the write-ahead log kept on disk until the index commits them and the rules record them (index.wal_max_backlog_bytes at most).\n# TYPE {WAL_BACKLOG} gauge"
        );
        let _ =
            writeln!(out, "{WAL_BACKLOG} {}", self.wal_backlog.as_ref().map_or(0, |backlog| backlog.bytes()));
        if let Some(backlog) = &self.wal_backlog {
            let _ = writeln!(
                out,
                "# HELP {WAL_READ_BACK} Batches a consumer read back from the write-ahead log because it had fallen behind.\n# TYPE {WAL_READ_BACK} counter"
            );
            for (consumer, batches) in backlog.read_back_batches() {
                let _ = writeln!(out, "{WAL_READ_BACK}{{consumer=\"{consumer}\"}} {batches}");
            }
        }
        if let Some(lag) = indexing_lag {
            let help = "Events acknowledged that searches do not see yet.";
            one_value(&mut out, INDEX_LAG_EVENTS, "gauge", help, lag.events);
            let help = "How long ago the oldest event searches do not see yet was acknowledged.";
            one_value(&mut out, INDEX_LAG_SECONDS, "gauge", help, format_args!("{:.3}", lag.seconds));
        }
        if let Some(commits) = commits {
            let help = "Index commits (one per partition written, every index.commit_interval_ms).";
            one_value(&mut out, INDEX_COMMITS, "counter", help, commits.count);
            let help = "Time the index thread spent committing, taking no new events meanwhile.";
            one_value(
                &mut out,
                INDEX_COMMIT_SECONDS,
                "counter",
                help,
                format_args!("{:.6}", commits.seconds),
            );
        }
        let tail = &self.tail;
        let _ =
            writeln!(out, "# HELP {TAIL_LINES} Lines read from tailed files.\n# TYPE {TAIL_LINES} counter");
        let _ = writeln!(out, "{TAIL_LINES} {}", read(&tail.lines));
        let _ = writeln!(
            out,
            "# HELP {TAIL_ROTATIONS} Tailed files rotated or truncated.\n# TYPE {TAIL_ROTATIONS} counter"
        );
        let _ = writeln!(out, "{TAIL_ROTATIONS}{{kind=\"rename\"}} {}", read(&tail.rotations));
        let _ = writeln!(out, "{TAIL_ROTATIONS}{{kind=\"truncate\"}} {}", read(&tail.truncations));
        let _ = writeln!(
            out,
            "# HELP {INGEST_REFUSED} Ingest requests refused whole, by reason.\n# TYPE {INGEST_REFUSED} counter"
        );
        for (name, counters) in sources {
            let _ = writeln!(
                out,
                "{INGEST_REFUSED}{{source=\"{name}\",reason=\"too_large\"}} {}",
                read(&counters.refused_too_large)
            );
            let _ = writeln!(
                out,
                "{INGEST_REFUSED}{{source=\"{name}\",reason=\"unavailable\"}} {}",
                read(&counters.refused_unavailable)
            );
        }
        let _ = writeln!(
            out,
            "# HELP {INDEX_DOCUMENTS} Events searchable in the index.\n# TYPE {INDEX_DOCUMENTS} gauge"
        );
        let _ = writeln!(out, "{INDEX_DOCUMENTS} {indexed_documents}");
        let help = "The most tantivy segments a search reads in one partition (merging brings them down).";
        one_value(&mut out, INDEX_SEGMENTS, "gauge", help, max_partition_segments);
        let _ = writeln!(out, "# HELP {RULES_LOADED} Detection rules loaded.\n# TYPE {RULES_LOADED} gauge");
        let _ = writeln!(out, "{RULES_LOADED} {rules_loaded}");
        if !self.notifications.destinations.is_empty() {
            let _ = writeln!(
                out,
                "# HELP {NOTIFICATIONS} Alert notifications, by destination and outcome.\n# TYPE {NOTIFICATIONS} counter"
            );
            for (name, counters) in &self.notifications.destinations {
                for (result, counter) in
                    [("sent", &counters.sent), ("failed", &counters.failed), ("dropped", &counters.dropped)]
                {
                    let _ = writeln!(
                        out,
                        "{NOTIFICATIONS}{{destination=\"{name}\",result=\"{result}\"}} {}",
                        read(counter)
                    );
                }
            }
            let _ = writeln!(
                out,
                "# HELP {NOTIFICATION_RETRIES} Notification attempts after a failed one.\n# TYPE {NOTIFICATION_RETRIES} counter"
            );
            for (name, counters) in &self.notifications.destinations {
                let _ = writeln!(
                    out,
                    "{NOTIFICATION_RETRIES}{{destination=\"{name}\"}} {}",
                    read(&counters.retries)
                );
            }
            let _ = writeln!(
                out,
                "# HELP {NOTIFICATION_RATE_LIMITED} Notifications that waited for the rate limit.\n# TYPE {NOTIFICATION_RATE_LIMITED} counter"
            );
            for (name, counters) in &self.notifications.destinations {
                let _ = writeln!(
                    out,
                    "{NOTIFICATION_RATE_LIMITED}{{destination=\"{name}\"}} {}",
                    read(&counters.rate_limited)
                );
            }
        }
        self.render_forward(&mut out);
        out
    }

    /// The forward protocol source's counters.
    fn render_forward(&self, out: &mut String) {
        use vigil_ingest::forward::Reason;
        let forward = &self.forward;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        for (name, help, counter) in [
            (FORWARD_CONNECTIONS, "Forward connections accepted.", &forward.connections),
            (FORWARD_BYTES, "Forward bytes received.", &forward.bytes),
            (FORWARD_MESSAGES, "Forward messages received (heartbeats included).", &forward.messages),
            (FORWARD_ACKS, "Forward chunks acknowledged, each once durable.", &forward.acks),
            (
                FORWARD_OVERLOADED,
                "Forward batches retried because storage was behind.",
                &forward.overloaded_retries,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", read(counter));
        }
        let _ = writeln!(
            out,
            "# HELP {FORWARD_EVENTS} Forward entries, received and made durable.\n# TYPE {FORWARD_EVENTS} counter"
        );
        let _ = writeln!(out, "{FORWARD_EVENTS}{{result=\"received\"}} {}", read(&forward.received));
        let _ = writeln!(out, "{FORWARD_EVENTS}{{result=\"accepted\"}} {}", read(&forward.accepted));
        let _ = writeln!(
            out,
            "# HELP {FORWARD_REFUSED} Forward entries, messages or connections refused, by reason.\n# TYPE {FORWARD_REFUSED} counter"
        );
        for reason in Reason::ALL {
            let _ = writeln!(
                out,
                "{FORWARD_REFUSED}{{reason=\"{}\"}} {}",
                reason.name(),
                forward.rejected(reason)
            );
        }
    }
}

/// Writes a metric that has one value: its help, its type and the value.
fn one_value(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}
