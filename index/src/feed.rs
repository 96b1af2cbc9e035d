//! Feeds: how durable batches reach a consumer of the log (the index
//! thread, the rules).
//!
//! While a consumer keeps up, the write-ahead log thread hands it each
//! batch through a bounded queue in memory. When that queue is full the
//! feed *spills*: the log thread stops queueing for it (it never waits for a
//! slow consumer), and the consumer, once it has taken what was queued,
//! reads the batches back from the log's segments until it has caught up
//! with the durable end; then the queue takes over again. So a burst is
//! absorbed by the log on disk, bounded only by [`Backlog`], and memory
//! stays bounded by the queues.
//!
//! The hand-over is decided under one lock: the log thread queues a batch
//! only while the feed is not spilling, and the consumer leaves spilling
//! only when its position equals the durable end and its queue is empty, so
//! every batch reaches the consumer once and in log order.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_schema::Event;

use crate::wal::{self, WalPosition};

/// Events read back from the log per batch while a feed spills.
const SPILL_BATCH_EVENTS: usize = 1_000;

/// A batch that is durable, with the log position just past its last event.
#[derive(Debug, Clone)]
pub struct DurableBatch {
    pub events: Arc<Vec<Event>>,
    pub end: WalPosition,
    /// Each event's JSON as the log holds it, for the index's stored copy
    /// (only on the index's feed).
    pub(crate) stored: Option<Vec<Vec<u8>>>,
}

impl DurableBatch {
    pub fn new(events: Arc<Vec<Event>>, end: WalPosition) -> DurableBatch {
        DurableBatch { events, end, stored: None }
    }
}

#[derive(Debug)]
struct State {
    /// The queue was full: batches from `position` on are read from the log.
    spilling: bool,
    /// The end of the last durable batch offered to this feed.
    durable_end: WalPosition,
    /// The end of the last batch the consumer took.
    position: WalPosition,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Batches read back from the log since the store opened (for metrics).
    spilled_batches: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The log thread's end of a feed.
pub(crate) struct FeedSender {
    sender: SyncSender<DurableBatch>,
    shared: Arc<Shared>,
}

impl FeedSender {
    /// Hands on a batch that is now durable: queued in memory, or left in
    /// the log for the consumer to read back. Never waits.
    pub(crate) fn offer(&self, batch: DurableBatch) {
        let mut state = self.shared.lock();
        state.durable_end = state.durable_end.max(batch.end);
        if state.spilling {
            return;
        }
        match self.sender.try_send(batch) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!("a consumer fell behind; it reads the write-ahead log until it catches up");
                state.spilling = true;
            }
        }
    }
}

/// The consumer's end of a feed: every durable batch after the position it
/// was opened at, once, in log order. It ends when the store shuts down and
/// everything durable has been delivered.
pub struct DurableFeed {
    receiver: Receiver<DurableBatch>,
    shared: Arc<Shared>,
    wal_dir: PathBuf,
    /// Whether batches read back from the log keep their stored JSON.
    keep_stored: bool,
    /// The sender is gone: nothing more will be queued.
    closed: bool,
}

/// Opens a feed whose consumer stands at `position`. When `behind_until` is
/// past it, the feed starts by reading the log up to there (a restart's
/// replay).
pub(crate) fn feed(
    wal_dir: &Path,
    capacity: usize,
    position: WalPosition,
    behind_until: WalPosition,
    keep_stored: bool,
) -> (FeedSender, DurableFeed) {
    let (sender, receiver) = mpsc::sync_channel(capacity);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            spilling: behind_until > position,
            durable_end: behind_until.max(position),
            position,
        }),
        spilled_batches: AtomicU64::new(0),
    });
    (
        FeedSender { sender, shared: shared.clone() },
        DurableFeed { receiver, shared, wal_dir: wal_dir.to_owned(), keep_stored, closed: false },
    )
}

impl DurableFeed {
    /// The next batch, waiting for one; `None` once the store has shut down
    /// and every durable batch was delivered.
    pub fn recv(&mut self) -> Option<DurableBatch> {
        loop {
            match self.recv_timeout(Duration::from_secs(3600)) {
                Ok(batch) => return Some(batch),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The next batch if one is ready now (queued, or in the log while the
    /// feed spills).
    pub fn try_recv(&mut self) -> Option<DurableBatch> {
        self.recv_timeout(Duration::ZERO).ok()
    }

    /// The next batch, waiting at most `timeout` for one.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<DurableBatch, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.closed {
                match self.receiver.try_recv() {
                    Ok(batch) => return Ok(self.took(batch)),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => self.closed = true,
                }
            }
            // The queue is empty. Nothing is queued while the feed spills,
            // so what the log holds past our position is ours to read.
            let (spilling, position, until) = {
                let mut state = self.shared.lock();
                if state.spilling && state.position >= state.durable_end {
                    state.spilling = false;
                    tracing::debug!("a consumer caught up with the write-ahead log");
                }
                (state.spilling, state.position, state.durable_end)
            };
            if spilling {
                match self.read_back(position, until) {
                    Some(batch) => {
                        self.shared.spilled_batches.fetch_add(1, Ordering::Relaxed);
                        return Ok(self.took(batch));
                    }
                    None => continue,
                }
            }
            if self.closed {
                return Err(RecvTimeoutError::Disconnected);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            // Only an empty queue waits here, and a feed spills only when
            // its queue is full, so a spill always wakes this wait.
            match self.receiver.recv_timeout(left) {
                Ok(batch) => return Ok(self.took(batch)),
                Err(RecvTimeoutError::Timeout) => return Err(RecvTimeoutError::Timeout),
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Batches this feed has read back from the log since it opened.
    pub fn spilled_batches(&self) -> u64 {
        self.shared.spilled_batches.load(Ordering::Relaxed)
    }

    fn took(&self, batch: DurableBatch) -> DurableBatch {
        let mut state = self.shared.lock();
        state.position = state.position.max(batch.end);
        batch
    }

    /// Reads up to a batch of events after `from` (not past `until`) from
    /// the log. `None` when nothing could be read: the position then moves
    /// on past what cannot be read, with an error logged.
    fn read_back(&self, from: WalPosition, until: WalPosition) -> Option<DurableBatch> {
        let mut events = Vec::with_capacity(SPILL_BATCH_EVENTS);
        let mut stored = Vec::new();
        let mut end = from;
        let read = wal::read_range(
            &self.wal_dir,
            from,
            until,
            SPILL_BATCH_EVENTS,
            &mut |event, payload, position| {
                events.push(event);
                if self.keep_stored {
                    stored.push(payload);
                }
                end = position;
            },
        );
        if !events.is_empty() {
            if let Err(error) = read {
                // The events before the damage are delivered; the next read
                // meets the damage again and skips it.
                tracing::debug!(%error, "write-ahead log read back stopped early");
            }
            return Some(DurableBatch {
                events: Arc::new(events),
                end,
                stored: self.keep_stored.then_some(stored),
            });
        }
        match read {
            // Only empty segments lay between: nothing was missed.
            Ok(reached) if reached >= until => {}
            outcome => {
                let error = match outcome {
                    Err(error) => error,
                    Ok(reached) => io::Error::other(format!("the log ends at {reached:?}")),
                };
                // Events before `until` are durable and were whole when
                // written; failing to read them is damage, and waiting would
                // only hang the consumer.
                tracing::error!(
                    %error, from = ?from, until = ?until,
                    "cannot read the write-ahead log back; the events in between are skipped"
                );
            }
        }
        let mut state = self.shared.lock();
        state.position = state.position.max(until);
        None
    }
}

impl Iterator for DurableFeed {
    type Item = DurableBatch;

    fn next(&mut self) -> Option<DurableBatch> {
        self.recv()
    }
}

/// The log's backlog: how far the durable end is ahead of the slowest
/// consumer, and the limit past which appends are refused.
#[derive(Debug)]
pub struct Backlog {
    feeds: Vec<(&'static str, Arc<Shared>)>,
    limit: u64,
    segment_bytes: u64,
}

impl Backlog {
    /// `feeds`: each consumer's name and feed.
    pub(crate) fn new(feeds: &[(&'static str, &FeedSender)], limit: u64, segment_bytes: u64) -> Backlog {
        let feeds = feeds.iter().map(|(name, feed)| (*name, feed.shared.clone())).collect();
        Backlog { feeds, limit, segment_bytes }
    }

    /// Per consumer, the batches it has read back from the log because it
    /// fell behind (since the store opened).
    pub fn read_back_batches(&self) -> Vec<(&'static str, u64)> {
        self.feeds.iter().map(|(name, feed)| (*name, feed.spilled_batches.load(Ordering::Relaxed))).collect()
    }

    /// Bytes of the log that the slowest consumer has yet to take. Closed
    /// segments are counted at their nominal size, so the figure is within
    /// one write group of the truth.
    pub fn bytes(&self) -> u64 {
        let mut slowest: Option<WalPosition> = None;
        let mut end = WalPosition::default();
        for (_, feed) in &self.feeds {
            let state = feed.lock();
            slowest = Some(slowest.map_or(state.position, |slowest| slowest.min(state.position)));
            end = end.max(state.durable_end);
        }
        let Some(slowest) = slowest else { return 0 };
        if end <= slowest {
            return 0;
        }
        // A consumer that has taken nothing yet stands before segment 1.
        let (segment, offset) = if slowest.segment == 0 { (1, 0) } else { (slowest.segment, slowest.offset) };
        let segments = end.segment.saturating_sub(segment);
        (segments.saturating_mul(self.segment_bytes) + end.offset).saturating_sub(offset)
    }

    /// Whether appends must wait: the backlog is at its limit.
    pub fn is_full(&self) -> bool {
        self.bytes() >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::Utc;
    use serde_json::json;
    use vigil_schema::EventIdGenerator;

    use super::*;
    use crate::wal::Wal;

    fn batch(ids: &EventIdGenerator, first: u64, count: u64) -> Vec<Event> {
        (first..first + count).map(|n| Event::new(ids.next(), Utc::now(), json!({ "n": n }))).collect()
    }

    /// Writes a batch and offers it, as the log thread does.
    fn write(wal: &mut Wal, senders: &[&FeedSender], events: Vec<Event>) -> WalPosition {
        let stored: Vec<Vec<u8>> = events.iter().map(|event| serde_json::to_vec(event).unwrap()).collect();
        let end = *wal.append_payloads(stored.iter().map(Vec::as_slice)).unwrap().last().unwrap();
        let events = Arc::new(events);
        for sender in senders {
            sender.offer(DurableBatch { events: events.clone(), end, stored: Some(stored.clone()) });
        }
        end
    }

    fn numbers(batches: &[DurableBatch]) -> Vec<u64> {
        batches
            .iter()
            .flat_map(|batch| batch.events.iter())
            .map(|event| event.original["n"].as_u64().unwrap())
            .collect()
    }

    fn drain(feed: &mut DurableFeed) -> Vec<DurableBatch> {
        std::iter::from_fn(|| feed.try_recv()).collect()
    }

    fn open_wal(dir: &Path) -> Wal {
        Wal::open(dir, 2_000).unwrap().0
    }

    #[test]
    fn a_consumer_that_falls_behind_reads_the_rest_from_the_log_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventIdGenerator::new();
        let mut wal = open_wal(dir.path());
        let (sender, mut feed) = feed(dir.path(), 2, WalPosition::default(), WalPosition::default(), true);
        for n in 0..10 {
            write(&mut wal, &[&sender], batch(&ids, n * 7, 7));
        }
        assert!(crate::wal::list_segments(dir.path()).unwrap().len() > 2, "the read back crosses segments");
        let batches = drain(&mut feed);
        assert_eq!(numbers(&batches), (0..70).collect::<Vec<_>>());
        assert!(feed.spilled_batches() > 0);
        for batch in &batches {
            let stored = batch.stored.as_ref().expect("the index's feed keeps the stored JSON");
            let again: Vec<Vec<u8>> =
                batch.events.iter().map(|event| serde_json::to_vec(event).unwrap()).collect();
            assert_eq!(stored, &again);
        }
        assert!(batches.windows(2).all(|pair| pair[0].end < pair[1].end));

        // Caught up: the queue carries the next batches again.
        let spilled = feed.spilled_batches();
        write(&mut wal, &[&sender], batch(&ids, 70, 3));
        assert_eq!(numbers(&drain(&mut feed)), vec![70, 71, 72]);
        assert_eq!(feed.spilled_batches(), spilled);
    }

    #[test]
    fn a_feed_opened_behind_reads_the_log_before_new_batches() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventIdGenerator::new();
        let mut wal = open_wal(dir.path());
        let middle = wal.append(&batch(&ids, 0, 5)).unwrap();
        let end = wal.append(&batch(&ids, 5, 5)).unwrap();
        let (sender, mut feed) = feed(dir.path(), 4, middle, end, false);
        write(&mut wal, &[&sender], batch(&ids, 10, 2));
        let batches = drain(&mut feed);
        assert_eq!(numbers(&batches), (5..12).collect::<Vec<_>>());
        assert!(batches[0].stored.is_none());
    }

    #[test]
    fn a_slow_consumer_gets_every_batch_once_while_the_log_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, mut feed) = feed(dir.path(), 3, WalPosition::default(), WalPosition::default(), false);
        let writer_dir = dir.path().to_owned();
        let writer = std::thread::spawn(move || {
            let ids = EventIdGenerator::new();
            let mut wal = open_wal(&writer_dir);
            for n in 0..300 {
                write(&mut wal, &[&sender], batch(&ids, n * 5, 5));
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        let mut seen = Vec::new();
        while let Some(batch) = feed.recv() {
            seen.push(batch);
            if seen.len() % 7 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        writer.join().unwrap();
        assert_eq!(numbers(&seen), (0..1500).collect::<Vec<_>>());
        assert!(feed.spilled_batches() > 0, "the consumer was slow enough to spill");
    }

    #[test]
    fn the_backlog_is_what_the_slowest_consumer_has_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventIdGenerator::new();
        let mut wal = Wal::open(dir.path(), 1 << 20).unwrap().0;
        let (index, mut index_feed) =
            feed(dir.path(), 8, WalPosition::default(), WalPosition::default(), true);
        let (rules, mut rules_feed) =
            feed(dir.path(), 8, WalPosition::default(), WalPosition::default(), false);
        let backlog = Backlog::new(&[("index", &index), ("rules", &rules)], 1_000, 1 << 20);
        assert_eq!(backlog.bytes(), 0);
        let end = write(&mut wal, &[&index, &rules], batch(&ids, 0, 20));
        assert_eq!(backlog.bytes(), end.offset, "every byte of the first segment");
        assert!(backlog.is_full());
        drain(&mut index_feed);
        assert_eq!(backlog.bytes(), end.offset, "the rules have taken nothing");
        assert_eq!(backlog.read_back_batches(), vec![("index", 0), ("rules", 0)]);
        drain(&mut rules_feed);
        assert_eq!(backlog.bytes(), 0);
        assert!(!backlog.is_full());
    }
}
