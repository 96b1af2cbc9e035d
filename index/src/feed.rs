//! Feeds: how durable batches reach a consumer of the log (the index
//! thread, the rules).
//!
//! The write-ahead log thread hands each durable batch to a consumer
//! through a bounded queue in memory, and never waits for it: when the
//! queue is full, the batch is left in the log. The consumer notices the
//! gap (the next queued batch starts past where it stands, or the queue is
//! empty while the log's durable end is ahead) and reads the missing
//! batches back from the log's segments, in order, before going on with
//! the queue. So a burst is absorbed by the log on disk, bounded by
//! [`Backlog`], memory stays bounded by the queues, and only what did not
//! fit in memory is read (and parsed) again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_schema::Event;

use crate::wal::{self, WalPosition};

/// Events read back from the log per batch.
const READ_BACK_EVENTS: usize = 1_000;
/// How long a consumer waits before reading the log again after an I/O error.
const READ_BACK_RETRY: Duration = Duration::from_secs(1);

/// A batch that is durable, with the log position just past its last event.
#[derive(Debug, Clone)]
pub struct DurableBatch {
    pub events: Arc<Vec<Event>>,
    pub end: WalPosition,
    /// Where its first record starts in the log.
    pub(crate) start: WalPosition,
    /// Each event's JSON as the log holds it, for the index's stored copy
    /// (only on the index's feed).
    pub(crate) stored: Option<Vec<Vec<u8>>>,
}

#[derive(Debug)]
struct Shared {
    /// The end of the last durable batch offered to this feed.
    durable_end: Mutex<WalPosition>,
    /// The end of the last batch the consumer took.
    position: Mutex<WalPosition>,
    /// How far the consumer is done with the log (the index committed, the
    /// rules recorded): it must keep what follows.
    released: Mutex<WalPosition>,
    /// Batches read back from the log since the store opened (for metrics).
    read_back: AtomicU64,
    /// The consumer dropped its end: the log need not wait for it.
    detached: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The log thread's end of a feed.
pub(crate) struct FeedSender {
    sender: SyncSender<DurableBatch>,
    shared: Arc<Shared>,
}

impl FeedSender {
    /// Hands on a batch that is now durable: queued in memory if there is
    /// room, else left in the log for the consumer to read back. Never waits.
    pub(crate) fn offer(&self, batch: DurableBatch) {
        {
            let mut durable_end = lock(&self.shared.durable_end);
            *durable_end = (*durable_end).max(batch.end);
        }
        // A full queue leaves the batch in the log; a gone consumer has
        // nothing to be told.
        let _ = self.sender.try_send(batch);
    }
}

/// The consumer's end of a feed: every durable batch after the position it
/// was opened at, once, in log order. It ends when the store shuts down and
/// everything durable has been delivered.
pub struct DurableFeed {
    receiver: Receiver<DurableBatch>,
    shared: Arc<Shared>,
    wal_dir: PathBuf,
    /// The end of the last batch delivered.
    position: WalPosition,
    /// A queued batch waiting behind a gap that is being read back.
    pending: Option<DurableBatch>,
    /// Whether batches read back from the log keep their stored JSON.
    keep_stored: bool,
    /// The sender is gone: nothing more will be queued.
    closed: bool,
}

/// Opens a feed whose consumer stands at `position`. When `durable_end` is
/// past it, the feed starts by reading the log up to there (a restart's
/// replay).
pub(crate) fn feed(
    wal_dir: &Path,
    capacity: usize,
    position: WalPosition,
    durable_end: WalPosition,
    keep_stored: bool,
) -> (FeedSender, DurableFeed) {
    // A queue of at least one batch: a full queue is what tells a waiting
    // consumer to look at the log.
    let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
    let shared = Arc::new(Shared {
        durable_end: Mutex::new(durable_end.max(position)),
        position: Mutex::new(position),
        released: Mutex::new(position),
        read_back: AtomicU64::new(0),
        detached: AtomicBool::new(false),
    });
    let feed = DurableFeed {
        receiver,
        shared: shared.clone(),
        wal_dir: wal_dir.to_owned(),
        position,
        pending: None,
        keep_stored,
        closed: false,
    };
    (FeedSender { sender, shared }, feed)
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

    /// The next batch if one is ready now (queued, or left in the log).
    pub fn try_recv(&mut self) -> Option<DurableBatch> {
        self.recv_timeout(Duration::ZERO).ok()
    }

    /// The next batch, waiting at most `timeout` for one.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<DurableBatch, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            let next = match self.pending.take() {
                Some(batch) => Some(batch),
                None if self.closed => None,
                None => match self.receiver.try_recv() {
                    Ok(batch) => Some(batch),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        self.closed = true;
                        None
                    }
                },
            };
            let until = match next {
                Some(batch) => {
                    if batch.end <= self.position {
                        // Already read back from the log.
                        continue;
                    }
                    if batch.start == self.position {
                        return Ok(self.took(batch));
                    }
                    // Batches before this one were left in the log: read
                    // them first. Or it was partly read back already (the
                    // queue was empty when the rest was read): the log has
                    // the rest of it.
                    if batch.start > self.position {
                        let start = batch.start;
                        self.pending = Some(batch);
                        start
                    } else {
                        batch.end
                    }
                }
                None => {
                    // The queue is empty: batches at the end may have been
                    // left in the log.
                    let durable_end = *lock(&self.shared.durable_end);
                    if durable_end <= self.position {
                        if self.closed {
                            return Err(RecvTimeoutError::Disconnected);
                        }
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(RecvTimeoutError::Timeout);
                        }
                        // Only an empty queue waits here, and a batch is left
                        // in the log only when the queue is full, so no batch
                        // is missed meanwhile.
                        match self.receiver.recv_timeout(left) {
                            Ok(batch) => self.pending = Some(batch),
                            Err(RecvTimeoutError::Timeout) => return Err(RecvTimeoutError::Timeout),
                            Err(RecvTimeoutError::Disconnected) => self.closed = true,
                        }
                        continue;
                    }
                    durable_end
                }
            };
            match self.read_back(until) {
                ReadBack::Batch(read) => return Ok(read),
                ReadBack::Moved => {}
                ReadBack::Failed if self.wait_to_retry(deadline) => return Err(RecvTimeoutError::Timeout),
                ReadBack::Failed => {}
            }
        }
    }

    /// Batches this feed has read back from the log since it opened.
    pub fn read_back_batches(&self) -> u64 {
        self.shared.read_back.load(Ordering::Relaxed)
    }

    fn took(&mut self, batch: DurableBatch) -> DurableBatch {
        self.advance(batch.end);
        batch
    }

    fn advance(&mut self, to: WalPosition) {
        self.position = self.position.max(to);
        *lock(&self.shared.position) = self.position;
    }

    /// Reads up to a batch of events after the position (not past `until`)
    /// from the log.
    fn read_back(&mut self, until: WalPosition) -> ReadBack {
        let from = self.position;
        let mut events = Vec::with_capacity(READ_BACK_EVENTS);
        let mut stored = Vec::new();
        let mut end = from;
        let keep_stored = self.keep_stored;
        let read =
            wal::read_range(&self.wal_dir, from, until, READ_BACK_EVENTS, &mut |event, payload, position| {
                events.push(event);
                if keep_stored {
                    stored.push(payload);
                }
                end = position;
            });
        if !events.is_empty() {
            // Events before a failure are delivered; the next read meets
            // the failure again.
            self.shared.read_back.fetch_add(1, Ordering::Relaxed);
            let batch = DurableBatch {
                events: Arc::new(events),
                end,
                start: from,
                stored: keep_stored.then_some(stored),
            };
            return ReadBack::Batch(self.took(batch));
        }
        match read {
            // Only the ends of segments lay between: nothing was missed.
            Ok(reached) if reached >= until => self.advance(until),
            Ok(reached) => {
                tracing::error!(
                    from = ?from, until = ?until, reached = ?reached,
                    "the write-ahead log ends before what was acknowledged; the events in between are skipped"
                );
                self.advance(until);
            }
            // The files are there but could not be read now (too many open
            // files, an I/O error): try again rather than skip. (Damaged
            // records are skipped by the reading itself.)
            Err(error) => {
                tracing::warn!(%error, from = ?from, "cannot read the write-ahead log back; trying again");
                return ReadBack::Failed;
            }
        }
        ReadBack::Moved
    }

    /// Waits before reading the log again after a failure; true when the
    /// deadline has passed.
    fn wait_to_retry(&self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(READ_BACK_RETRY));
        Instant::now() >= deadline
    }
}

/// What reading the log back gave.
enum ReadBack {
    Batch(DurableBatch),
    /// Nothing to deliver; the position moved past what cannot be read.
    Moved,
    /// Reading failed; the position is unchanged.
    Failed,
}

/// Where a record starts, from the position just past it and its bytes.
pub(crate) fn record_start(end: WalPosition, payload: &[u8]) -> WalPosition {
    WalPosition { segment: end.segment, offset: end.offset - wal::HEADER_BYTES - payload.len() as u64 }
}

/// A consumer that is gone (dropped its feed, or its thread panicked) no
/// longer holds the log back: ingest is not refused for its sake.
impl Drop for DurableFeed {
    fn drop(&mut self) {
        self.shared.detached.store(true, Ordering::Relaxed);
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
    /// `feeds`: each consumer's name, feed, and where it needs the log from
    /// (the index, from its oldest checkpoint even while it replays).
    pub(crate) fn new(
        feeds: &[(&'static str, &FeedSender, WalPosition)],
        limit: u64,
        segment_bytes: u64,
    ) -> Backlog {
        let feeds = feeds
            .iter()
            .map(|(name, feed, needed_from)| {
                *lock(&feed.shared.released) = *needed_from;
                (*name, feed.shared.clone())
            })
            .collect();
        Backlog { feeds, limit, segment_bytes }
    }

    /// Per consumer, the batches it has read back from the log because it
    /// fell behind (since the store opened).
    pub fn read_back_batches(&self) -> Vec<(&'static str, u64)> {
        self.feeds.iter().map(|(name, feed)| (*name, feed.read_back.load(Ordering::Relaxed))).collect()
    }

    /// Notes that a consumer is done with the log up to `to`.
    pub(crate) fn release(&self, consumer: &str, to: WalPosition) {
        for (_, feed) in self.feeds.iter().filter(|(name, _)| *name == consumer) {
            let mut released = lock(&feed.released);
            *released = (*released).max(to);
        }
    }

    /// Where the log must be kept from: the least position a consumer that
    /// is still there is not done with. `None` when no consumer is left.
    pub(crate) fn kept_from(&self) -> Option<WalPosition> {
        self.live().map(|feed| *lock(&feed.released)).min()
    }

    fn live(&self) -> impl Iterator<Item = &Arc<Shared>> {
        self.feeds.iter().filter(|(_, feed)| !feed.detached.load(Ordering::Relaxed)).map(|(_, feed)| feed)
    }

    /// Bytes of the log kept for its consumers: from where the slowest is
    /// done with it (taken and committed, or recorded) to the durable end.
    /// This is what the log holds on disk, and what the limit bounds. Closed
    /// segments are counted at their nominal size, so the figure is within
    /// one write group of the truth.
    pub fn bytes(&self) -> u64 {
        let Some(slowest) = self.kept_from() else { return 0 };
        let end = self.live().map(|feed| *lock(&feed.durable_end)).max().unwrap_or_default();
        if end <= slowest {
            return 0;
        }
        // A consumer that has taken nothing yet stands before segment 1.
        let (segment, offset) = if slowest.segment == 0 { (1, 0) } else { (slowest.segment, slowest.offset) };
        let segments = end.segment.saturating_sub(segment);
        segments.saturating_mul(self.segment_bytes).saturating_add(end.offset).saturating_sub(offset)
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
        let batch = append(wal, events);
        for sender in senders {
            sender.offer(batch.clone());
        }
        batch.end
    }

    fn append(wal: &mut Wal, events: Vec<Event>) -> DurableBatch {
        let stored: Vec<Vec<u8>> =
            events.iter().map(|event| vigil_schema::record::encode(event).unwrap()).collect();
        let positions = wal.append_payloads(stored.iter().map(Vec::as_slice)).unwrap();
        let (start, end) = (record_start(positions[0], &stored[0]), *positions.last().unwrap());
        DurableBatch { events: Arc::new(events), end, start, stored: Some(stored) }
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
        assert!(feed.read_back_batches() > 0);
        for batch in &batches {
            let stored = batch.stored.as_ref().expect("the index's feed keeps the stored records");
            let again: Vec<Vec<u8>> =
                batch.events.iter().map(|event| vigil_schema::record::encode(event).unwrap()).collect();
            assert_eq!(stored, &again);
        }
        assert!(batches.windows(2).all(|pair| pair[0].end < pair[1].end));

        // Caught up: the queue carries the next batches again.
        let read_back = feed.read_back_batches();
        write(&mut wal, &[&sender], batch(&ids, 70, 3));
        assert_eq!(numbers(&drain(&mut feed)), vec![70, 71, 72]);
        assert_eq!(feed.read_back_batches(), read_back);
    }

    #[test]
    fn a_batch_left_in_the_log_between_queued_ones_is_read_back_in_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventIdGenerator::new();
        let mut wal = Wal::open(dir.path(), 1 << 20).unwrap().0;
        let (sender, mut feed) = feed(dir.path(), 2, WalPosition::default(), WalPosition::default(), false);
        write(&mut wal, &[&sender], batch(&ids, 0, 3));
        write(&mut wal, &[&sender], batch(&ids, 3, 3));
        write(&mut wal, &[&sender], batch(&ids, 6, 3)); // the queue is full: left in the log
        assert_eq!(numbers(&[feed.try_recv().unwrap()]), vec![0, 1, 2]);
        write(&mut wal, &[&sender], batch(&ids, 9, 3)); // queued behind the gap
        let rest = drain(&mut feed);
        assert_eq!(rest.len(), 3);
        assert_eq!(numbers(&rest), (3..12).collect::<Vec<_>>());
        assert_eq!(feed.read_back_batches(), 1, "only the batch that did not fit is read again");
    }

    #[test]
    fn a_batch_queued_while_it_was_being_read_back_is_delivered_once() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventIdGenerator::new();
        let mut wal = Wal::open(dir.path(), 1 << 20).unwrap().0;
        let (sender, mut feed) = feed(dir.path(), 1, WalPosition::default(), WalPosition::default(), false);
        write(&mut wal, &[&sender], batch(&ids, 0, 3));
        let large = append(&mut wal, batch(&ids, 3, READ_BACK_EVENTS as u64 + 500));
        sender.offer(large.clone()); // the queue is full: left in the log
        assert_eq!(numbers(&[feed.try_recv().unwrap()]), vec![0, 1, 2]);
        let first = feed.try_recv().unwrap();
        assert_eq!(first.events.len(), READ_BACK_EVENTS, "read back in part");
        // The log thread's queueing of the same batch, late.
        sender.sender.try_send(large).unwrap();
        let rest = drain(&mut feed);
        let all: Vec<u64> = numbers(&[first]).into_iter().chain(numbers(&rest)).collect();
        assert_eq!(all, (3..3 + READ_BACK_EVENTS as u64 + 500).collect::<Vec<_>>());
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
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = std::thread::spawn({
            let written = written.clone();
            move || {
                let ids = EventIdGenerator::new();
                let mut wal = open_wal(&writer_dir);
                for n in 0..300 {
                    write(&mut wal, &[&sender], batch(&ids, n * 5, 5));
                    written.fetch_add(1, Ordering::SeqCst);
                    if n % 50 == 0 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        });
        // The consumer starts behind (more batches than its queue holds are
        // written first), then reads while the writer goes on, however fast
        // either runs.
        while written.load(Ordering::SeqCst) < 20 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut seen = Vec::new();
        while let Some(batch) = feed.recv() {
            seen.push(batch);
            if seen.len() % 7 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        writer.join().unwrap();
        assert_eq!(numbers(&seen), (0..1500).collect::<Vec<_>>());
        assert!(feed.read_back_batches() > 0, "the consumer was slow enough to read back");
    }

    #[test]
    fn the_backlog_is_what_the_slowest_consumer_is_not_done_with() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventIdGenerator::new();
        let mut wal = Wal::open(dir.path(), 1 << 20).unwrap().0;
        let start = WalPosition::default();
        let (index, mut index_feed) = feed(dir.path(), 8, start, start, true);
        let (rules, mut rules_feed) = feed(dir.path(), 8, start, start, false);
        let backlog = Backlog::new(&[("index", &index, start), ("rules", &rules, start)], 1_000, 1 << 20);
        assert_eq!(backlog.bytes(), 0);
        let end = write(&mut wal, &[&index, &rules], batch(&ids, 0, 20));
        assert_eq!(backlog.bytes(), end.offset, "every byte of the first segment");
        assert!(backlog.is_full());
        drain(&mut index_feed);
        drain(&mut rules_feed);
        assert_eq!(backlog.bytes(), end.offset, "taken is not done: nothing is committed or recorded");
        backlog.release("index", end);
        assert_eq!(backlog.bytes(), end.offset, "the rules have recorded nothing");
        assert_eq!(backlog.read_back_batches(), vec![("index", 0), ("rules", 0)]);
        backlog.release("rules", end);
        assert_eq!(backlog.bytes(), 0);
        assert_eq!(backlog.kept_from(), Some(end));
        assert!(!backlog.is_full());

        // A consumer that is gone holds nothing back.
        let end = write(&mut wal, &[&index, &rules], batch(&ids, 20, 20));
        drain(&mut index_feed);
        backlog.release("index", end);
        assert!(backlog.bytes() > 0);
        drop(rules_feed);
        assert_eq!(backlog.bytes(), 0, "up to {end:?}, the index has it all");
        assert_eq!(backlog.kept_from(), Some(end));
    }

    #[test]
    fn a_damaged_record_read_back_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventIdGenerator::new();
        let mut wal = Wal::open(dir.path(), 1_000).unwrap().0;
        // A queue of 0 is taken as 1; everything after the first batch is read back.
        let (sender, mut feed) = feed(dir.path(), 0, WalPosition::default(), WalPosition::default(), false);
        let mut ends = Vec::new();
        for n in 0..9 {
            ends.push(write(&mut wal, &[&sender], batch(&ids, n * 4, 4)));
        }
        let segments = crate::wal::list_segments(dir.path()).unwrap();
        assert!(segments.len() >= 3, "{segments:?}");
        // Flip a byte in the first record of the second segment.
        let damaged = segments[1];
        let path = dir.path().join(format!("{damaged:020}.wal"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let delivered = numbers(&drain(&mut feed));
        // A segment holds whole batches: the damaged record is the first
        // event of the first batch there.
        let first_batch = ends.iter().position(|end| end.segment == damaged).unwrap() as u64;
        let expected: Vec<u64> = (0..36).filter(|n| *n != first_batch * 4).collect();
        assert_eq!(delivered, expected, "every event but the damaged one is read, in order");
    }
}
