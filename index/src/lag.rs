//! How far search is behind what was acknowledged: the events the log has
//! made durable (and their senders were told so) that the index has not yet
//! committed, and how long ago the oldest of them was acknowledged.
//!
//! The log thread notes each group it acknowledges; the index thread notes
//! each commit. Groups acknowledged within [`GRAIN`] of each other share an
//! entry, so the record stays small however long the index is behind, and
//! the figures err by at most that much on the old side.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::wal::WalPosition;

/// Groups acknowledged closer together than this share an entry.
const GRAIN: Duration = Duration::from_millis(100);

/// Acknowledged events that are not searchable yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Lag {
    /// How many.
    pub events: u64,
    /// How long ago the oldest of them was acknowledged, in seconds.
    pub seconds: f64,
}

/// The acknowledged stretches of the log the index has yet to commit, and
/// the time the index thread has spent committing.
#[derive(Debug, Default)]
pub(crate) struct IndexLag {
    inner: Mutex<Inner>,
    commits: AtomicU64,
    commit_nanos: AtomicU64,
}

/// Commits since the store opened, and the time the index thread spent in
/// them (while it commits, it takes no new events).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Commits {
    pub count: u64,
    pub seconds: f64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Oldest first: where a stretch ends, the events acknowledged up to its
    /// end (since the store opened), and when its first group was.
    pending: VecDeque<Stretch>,
    acknowledged: u64,
    indexed: u64,
}

#[derive(Debug)]
struct Stretch {
    end: WalPosition,
    events: u64,
    since: Instant,
}

impl IndexLag {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A group of `events` ending at `end` was acknowledged.
    pub(crate) fn acknowledged(&self, end: WalPosition, events: u64) {
        self.acknowledged_at(end, events, Instant::now());
    }

    fn acknowledged_at(&self, end: WalPosition, events: u64, now: Instant) {
        // A group of empty batches leaves nothing to wait for.
        if events == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.acknowledged += events;
        let acknowledged = inner.acknowledged;
        match inner.pending.back_mut() {
            Some(last) if now.saturating_duration_since(last.since) < GRAIN => {
                last.end = last.end.max(end);
                last.events = acknowledged;
            }
            _ => inner.pending.push_back(Stretch { end, events: acknowledged, since: now }),
        }
    }

    /// The index has committed the log up to `position`.
    pub(crate) fn indexed(&self, position: WalPosition) {
        let mut inner = self.lock();
        while let Some(first) = inner.pending.front()
            && first.end <= position
        {
            inner.indexed = first.events;
            inner.pending.pop_front();
        }
    }

    /// A partition's writer committed, taking `took`.
    pub(crate) fn committed(&self, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn commits(&self) -> Commits {
        Commits {
            count: self.commits.load(Ordering::Relaxed),
            seconds: self.commit_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    /// The lag now.
    pub(crate) fn now(&self) -> Lag {
        self.at(Instant::now())
    }

    fn at(&self, now: Instant) -> Lag {
        let inner = self.lock();
        match inner.pending.front() {
            None => Lag::default(),
            Some(oldest) => Lag {
                events: inner.acknowledged - inner.indexed,
                seconds: now.saturating_duration_since(oldest.since).as_secs_f64(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> WalPosition {
        WalPosition { segment, offset }
    }

    #[test]
    fn the_lag_is_what_was_acknowledged_past_the_last_commit_and_the_age_of_its_oldest() {
        let lag = IndexLag::default();
        let start = Instant::now();
        assert_eq!(lag.at(start), Lag::default());
        lag.acknowledged_at(at(0, 0), 0, start);
        assert_eq!(lag.at(start + Duration::from_secs(3)), Lag::default(), "nothing was acknowledged");
        lag.acknowledged_at(at(1, 100), 10, start);
        lag.acknowledged_at(at(1, 200), 5, start + Duration::from_secs(1));
        lag.acknowledged_at(at(2, 50), 7, start + Duration::from_secs(2));
        assert_eq!(lag.at(start + Duration::from_secs(3)), Lag { events: 22, seconds: 3.0 });
        // A commit inside the second group leaves it pending.
        lag.indexed(at(1, 150));
        assert_eq!(lag.at(start + Duration::from_secs(3)), Lag { events: 12, seconds: 2.0 });
        lag.indexed(at(1, 200));
        assert_eq!(lag.at(start + Duration::from_secs(3)), Lag { events: 7, seconds: 1.0 });
        lag.indexed(at(2, 50));
        assert_eq!(lag.at(start + Duration::from_secs(9)), Lag::default());
    }

    #[test]
    fn groups_close_together_share_an_entry_that_keeps_the_oldest_time() {
        let lag = IndexLag::default();
        let start = Instant::now();
        for n in 0..1_000u64 {
            lag.acknowledged_at(at(1, n + 1), 3, start + Duration::from_millis(n));
        }
        assert_eq!(lag.lock().pending.len(), 10, "one entry per 100 ms");
        assert_eq!(lag.at(start + Duration::from_secs(1)), Lag { events: 3_000, seconds: 1.0 });
        // Committed up to a group inside the last entry: that entry waits
        // for its end, and counts whole.
        lag.indexed(at(1, 950));
        assert_eq!(lag.at(start + Duration::from_secs(1)), Lag { events: 300, seconds: 0.1 });
        lag.indexed(at(1, 1_000));
        assert_eq!(lag.at(start + Duration::from_secs(1)), Lag::default());
    }
}
