//! The store: the write-ahead log thread, the index writer thread, and the
//! channel of durable batches that feeds the rules.
//!
//! ```text
//! append() ──[wal queue: queue_batches]──► WAL thread: write group, fsync, ack
//!                                             │
//!                       ┌─[index feed: feed_batches]──┴──[durable feed: feed_batches]─┐
//!                       ▼                                                             ▼
//!            index thread: add to the event's time partition,           consumer (rules, in the binary)
//!            commit every commit_interval with the WAL position         reports its position back
//!            as each partition's commit payload; retention
//! ```
//!
//! The WAL thread never waits for the index or the rules: a batch that
//! finds a feed's queue full is left in the log, for the consumer to read
//! back (see [`crate::feed`]); a burst piles up on disk, up to
//! `wal_max_backlog_bytes`, past which appends are refused.
//!
//! On open, the index thread replays the log past each partition's last
//! commit, and the durable feed starts by reading the log past the
//! consumer's last position, so after a crash every acknowledged event is
//! indexed and matched exactly once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::IndexWriter;
use tokio::sync::oneshot;
use vigil_schema::{BoxFuture, Event, EventIdGenerator, EventSink, Receipt, SinkError, SinkErrorKind};

use crate::doc::DocSchema;
use crate::feed::{self, Backlog, DurableBatch, DurableFeed, FeedSender};
use crate::lag::IndexLag;
use crate::partition::{Access, Partition, Partitions};
use crate::search::Searcher;
use crate::wal::{self, Wal, WalPosition};
use crate::{StoreError, lock_error};

/// How the store runs.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    /// How often the index commits, so that events become searchable.
    pub commit_interval: Duration,
    /// Capacity, in batches, of the queue in front of the write-ahead log.
    pub queue_batches: usize,
    /// The niceness (0-19) of the index thread and of tantivy's indexing
    /// threads, which it starts: above 0, acknowledging ingest goes first
    /// when the CPU is short, and indexing catches up from the log.
    pub indexing_nice: i32,
    /// The niceness (0-19) of tantivy's merging threads: above
    /// `indexing_nice`, new events become searchable before segments are
    /// merged when the CPU is short.
    pub merging_nice: i32,
    /// zstd level (1-22) of the stored events in partitions created from
    /// now on: higher is smaller and costs more CPU while indexing.
    pub store_compression_level: i32,
    /// Batches each consumer's feed holds in memory; past that, batches
    /// wait in the log and the consumer reads them back.
    pub feed_batches: usize,
    /// How far the log may run ahead of its slowest consumer (the index or
    /// the rules) before appends are refused.
    pub wal_max_backlog_bytes: u64,
    /// Size at which the write-ahead log starts a new segment.
    pub wal_segment_bytes: u64,
    /// Memory each open index writer may use before it flushes a segment.
    pub writer_heap_bytes: usize,
    /// Indexing threads of a full writer (the present's partition, or a
    /// past one written in bulk), each with its share of the heap. One
    /// makes fewer, larger segments, so less is written and merged: on two
    /// cores it costs about 6 % less CPU per event than two.
    pub writer_threads: usize,
    /// Threads one search may use, its own included (0: as many as the
    /// process may run on, at most four; 1: the calling thread alone).
    pub search_threads: usize,
    /// The span of event time each partition holds, in seconds.
    pub partition_span_seconds: i64,
    /// Partitions whose span ended longer ago than this are dropped.
    pub retention_max_age: Option<Duration>,
    /// The oldest partitions are dropped while the index is larger than this
    /// (the partition of the present is always kept).
    pub retention_max_bytes: Option<u64>,
    /// How often retention runs.
    pub retention_check_interval: Duration,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            data_dir: data_dir.into(),
            commit_interval: Duration::from_secs(1),
            queue_batches: 32,
            indexing_nice: 10,
            merging_nice: 19,
            store_compression_level: crate::DEFAULT_STORE_COMPRESSION_LEVEL,
            feed_batches: 8,
            wal_max_backlog_bytes: 8 * 1024 * 1024 * 1024,
            wal_segment_bytes: 64 * 1024 * 1024,
            writer_heap_bytes: 128 * 1024 * 1024,
            writer_threads: 1,
            search_threads: 0,
            partition_span_seconds: 86_400,
            retention_max_age: None,
            retention_max_bytes: None,
            retention_check_interval: Duration::from_secs(60),
        }
    }
}

/// Writers kept open at once; an event for another partition closes (and
/// commits) the least recently used. The partition of the present, and a
/// past one opened for a bulk of events (a backfill, a shipper catching up),
/// get the configured heap and tantivy's indexing threads (past ones up to
/// `MAX_FULL_WRITERS` at once; a small writer that later gets a bulk is
/// reopened full); the others (a trickle of late events) one
/// thread and the minimum heap, so that a batch spread over a few hours or
/// days does not open and close writers all the time, nor take a full heap
/// each.
const MAX_OPEN_WRITERS: usize = 8;
/// Writers with the configured heap at once for past partitions opened in
/// bulk (memory: this many heaps, besides the present's).
const MAX_FULL_WRITERS: usize = 2;
/// Events for one past partition in one batch that make it a bulk.
const BULK_EVENTS: usize = 500;
/// tantivy's smallest heap for one indexing thread.
const SMALL_WRITER_HEAP_BYTES: usize = 15_000_000;

/// What the store answers an append with, once the batch is durable.
pub type AppendTicket = oneshot::Receiver<Result<WalPosition, StoreError>>;

enum WalMsg {
    Append { events: Arc<Vec<Event>>, reply: oneshot::Sender<Result<WalPosition, StoreError>> },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CommitPayload {
    pub wal: WalPosition,
}

/// The event store. Dropping it without [`Store::shutdown`] still commits,
/// but does not wait for the threads.
pub struct Store {
    wal_sender: Mutex<Option<SyncSender<WalMsg>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    searcher: Searcher,
    ids: Arc<EventIdGenerator>,
    consumer_position: Arc<Mutex<WalPosition>>,
    index_position: Arc<Mutex<WalPosition>>,
    replayed: Arc<Signal>,
    /// Batches waiting for the write-ahead log.
    queued: Arc<AtomicUsize>,
    /// How far the log is ahead of its slowest consumer.
    backlog: Arc<Backlog>,
    /// Held for the store's life: one process per data directory.
    _lock: std::fs::File,
}

/// A flag that threads can wait for.
#[derive(Default)]
struct Signal {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Signal {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.changed.notify_all();
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*done {
            done = self.changed.wait(done).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Store {
    /// Opens (or creates) the store under `options.data_dir`. `consumer_from`
    /// is where the consumer of durable batches stopped last time; the
    /// returned feed reads the log from there before new batches.
    pub fn open(
        options: &StoreOptions,
        consumer_from: WalPosition,
    ) -> Result<(Store, DurableFeed), StoreError> {
        let data_dir = &options.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::io("create", data_dir, source))?;
        let lock = lock_data_dir(data_dir)?;
        let partitions = Arc::new(Partitions::open(
            &data_dir.join("index"),
            options.partition_span_seconds,
            Access::ReadWrite { store_level: options.store_compression_level },
        )?);
        let lag = Arc::new(IndexLag::default());
        let searcher = Searcher::new(partitions.clone(), options.search_threads, Some(lag.clone()));
        let mut checkpoints = HashMap::new();
        for partition in partitions.all() {
            checkpoints.insert(partition.start, partition.checkpoint()?);
        }
        // Partitions held when the store last ran that have no commit of
        // their own: their events are in the log from there on, and replay
        // tries them again. (One that has a commit is replayed from it: the
        // hold was never before it.)
        let held_before = read_held(&partitions)?;
        for (start, from) in &held_before {
            checkpoints.entry(*start).or_insert(*from);
        }
        let index_checkpoint = checkpoints.values().copied().min().unwrap_or_default();
        let wal_dir = data_dir.join("wal");
        let (wal, replay_until) = Wal::open(&wal_dir, options.wal_segment_bytes)
            .map_err(|source| StoreError::io("open the write-ahead log in", &wal_dir, source))?;
        let consumer_from = consumer_start(&wal_dir, consumer_from, replay_until);

        let ids = Arc::new(EventIdGenerator::new());
        if let Some(max) = searcher.max_id()? {
            ids.advance_past(max);
        }
        let (wal_sender, wal_receiver) = mpsc::sync_channel(options.queue_batches);
        let (index_sender, index_feed) =
            feed::feed(&wal_dir, options.feed_batches, replay_until, replay_until, true);
        let (durable_sender, durable_feed) =
            feed::feed(&wal_dir, options.feed_batches, consumer_from, replay_until, false);
        let backlog = Arc::new(Backlog::new(
            &[
                // Deleted segments are not kept: from the first there is.
                ("index", &index_sender, consumer_start(&wal_dir, index_checkpoint, replay_until)),
                ("rules", &durable_sender, consumer_from),
            ],
            options.wal_max_backlog_bytes,
            options.wal_segment_bytes,
        ));
        let consumer_position = Arc::new(Mutex::new(consumer_from));
        let index_position = Arc::new(Mutex::new(index_checkpoint));
        let replayed = Arc::new(Signal::default());
        let queued = Arc::new(AtomicUsize::new(0));

        let replay = Replay {
            wal_dir: wal_dir.clone(),
            index_from: index_checkpoint,
            checkpoints,
            until: replay_until,
        };
        let index_thread = IndexThread {
            writers: BTreeMap::new(),
            partitions,
            schema: DocSchema::new(),
            options: options.clone(),
            indexed_to: index_checkpoint,
            held: BTreeMap::new(),
            held_before,
            reread: BTreeSet::new(),
            use_counter: 0,
            feed: index_feed,
            wal_dir: wal_dir.clone(),
            backlog: backlog.clone(),
            index_position: index_position.clone(),
            lag: lag.clone(),
            ids: ids.clone(),
            replayed: replayed.clone(),
        };
        let index_handle = std::thread::Builder::new()
            .name("vigil-index".into())
            .spawn(move || index_thread.run(replay))
            .map_err(|source| StoreError::io("start the index thread for", &wal_dir, source))?;
        let wal_handle = std::thread::Builder::new()
            .name("vigil-wal".into())
            .spawn({
                let wal_thread = WalThread {
                    receiver: wal_receiver,
                    index: index_sender,
                    durable: durable_sender,
                    queued: queued.clone(),
                    lag,
                };
                move || wal_thread.run(wal)
            })
            .map_err(|source| StoreError::io("start the write-ahead log thread for", &wal_dir, source))?;

        let store = Store {
            wal_sender: Mutex::new(Some(wal_sender)),
            threads: Mutex::new(vec![wal_handle, index_handle]),
            searcher,
            ids,
            consumer_position,
            index_position,
            replayed,
            queued,
            backlog,
            _lock: lock,
        };
        Ok((store, durable_feed))
    }

    /// Waits until the write-ahead log written before this open is indexed
    /// and committed (searchable).
    pub fn wait_until_replayed(&self) {
        self.replayed.wait();
    }

    /// Batches waiting for the write-ahead log (a gauge for `/metrics`).
    pub fn queue_depth(&self) -> Arc<AtomicUsize> {
        self.queued.clone()
    }

    /// The log's backlog: bytes kept for its slowest consumer, not yet
    /// committed by the index or recorded by the rules (a gauge for
    /// `/metrics`); appends are refused past `wal_max_backlog_bytes`.
    pub fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// The id generator events for this store must take their ids from.
    pub fn ids(&self) -> &EventIdGenerator {
        &self.ids
    }

    pub fn searcher(&self) -> &Searcher {
        &self.searcher
    }

    /// Queues a batch for the write-ahead log. Fails at once with
    /// `Overloaded` when the queue is full or the log's backlog is at its
    /// limit (the caller answers 503), never blocks; the ticket resolves
    /// once the batch is durable.
    pub fn append(&self, events: impl Into<Arc<Vec<Event>>>) -> Result<AppendTicket, StoreError> {
        if self.backlog.is_full() {
            return Err(StoreError::Overloaded);
        }
        let events = events.into();
        let (reply, ticket) = oneshot::channel();
        let guard = self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(sender) = guard.as_ref() else { return Err(StoreError::ShuttingDown) };
        match sender.try_send(WalMsg::Append { events, reply }) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                Ok(ticket)
            }
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::ShuttingDown),
        }
    }

    /// Appends a batch and waits until it is durable, waiting for room in
    /// the queue and the backlog instead of failing (for offline imports).
    pub fn append_blocking(&self, events: impl Into<Arc<Vec<Event>>>) -> Result<WalPosition, StoreError> {
        while self.backlog.is_full() {
            if self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_none() {
                return Err(StoreError::ShuttingDown);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let events = events.into();
        let (reply, ticket) = oneshot::channel();
        let sender = {
            let guard = self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            guard.as_ref().cloned().ok_or(StoreError::ShuttingDown)?
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        if sender.send(WalMsg::Append { events, reply }).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::ShuttingDown);
        }
        ticket.blocking_recv().map_err(|_| StoreError::ShuttingDown)?
    }

    /// Records that the consumer has finished with everything up to `position`
    /// (and made its own results durable), so the log before it may go.
    pub fn mark_consumed(&self, position: WalPosition) {
        let mut consumed = self.consumer_position.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *consumed = (*consumed).max(position);
        self.backlog.release("rules", *consumed);
    }

    /// Whether [`Store::shutdown`] has begun: nothing more is accepted.
    pub fn is_stopping(&self) -> bool {
        self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_none()
    }

    /// Where the index's last commit stands in the log.
    pub fn index_position(&self) -> WalPosition {
        *self.index_position.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops accepting, writes out what was accepted, commits the index and
    /// waits for the threads. The durable feed ends once the last batch is
    /// delivered.
    pub fn shutdown(&self) {
        self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a store thread panicked during shutdown");
            }
        }
    }
}

/// The store is the sink sources hand their batches to: a batch is answered
/// once it is in the write-ahead log.
impl EventSink for Store {
    fn ids(&self) -> &EventIdGenerator {
        &self.ids
    }

    fn submit(&self, batch: Arc<Vec<Event>>) -> BoxFuture<'static, Result<Receipt, SinkError>> {
        let count = batch.len();
        let ticket = self.append(batch);
        Box::pin(async move {
            match ticket.map_err(StoreError::into_sink_error)?.await {
                Ok(Ok(_)) => Ok(Receipt { durable: count }),
                Ok(Err(error)) => Err(error.into_sink_error()),
                Err(_) => Err(SinkError::new(
                    SinkErrorKind::ShuttingDown,
                    "the store stopped before the batch was written",
                )),
            }
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    }
}

/// Takes the data directory's lock file, so that two processes never write
/// the same store.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join("vigil.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::io("open", &path, source))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(lock_error(data_dir)),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::io("lock", &path, source)),
    }
}

/// The write-ahead log thread: takes every append waiting in the queue,
/// writes them as one group with one fsync, then answers each and hands the
/// batches on to the feeds (which never wait).
struct WalThread {
    receiver: Receiver<WalMsg>,
    index: FeedSender,
    durable: FeedSender,
    queued: Arc<AtomicUsize>,
    lag: Arc<IndexLag>,
}

impl WalThread {
    fn run(self, mut wal: Wal) {
        const MAX_GROUP: usize = 256;
        while let Ok(first) = self.receiver.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match self.receiver.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            self.queued.fetch_sub(group.len(), Ordering::Relaxed);
            // Each event is serialized once: for the log, and as the index's stored copy.
            let mut payloads: Vec<Vec<Vec<u8>>> = Vec::with_capacity(group.len());
            let mut unserializable = None;
            for WalMsg::Append { events, .. } in &group {
                match events.iter().map(vigil_schema::record::encode).collect::<Result<Vec<_>, _>>() {
                    Ok(batch) => payloads.push(batch),
                    Err(error) => unserializable = Some(error.to_string()),
                }
            }
            let written = match unserializable {
                Some(message) => Err(std::io::Error::other(message)),
                None => wal.append_payloads(payloads.iter().flatten().map(Vec::as_slice)),
            };
            match written {
                Ok(positions) => {
                    let end = positions.last().copied().unwrap_or_default();
                    // Noted before any sender hears of it.
                    self.lag.acknowledged(end, positions.len() as u64);
                    let mut positions = positions.into_iter();
                    for (WalMsg::Append { events, reply }, stored) in group.into_iter().zip(payloads) {
                        let batch_positions: Vec<WalPosition> =
                            positions.by_ref().take(events.len()).collect();
                        let (Some(&first), Some(&batch_end)) =
                            (batch_positions.first(), batch_positions.last())
                        else {
                            // An empty batch: nothing to hand on.
                            let _ = reply.send(Ok(end));
                            continue;
                        };
                        // The receiver may have given up (client gone); the
                        // batch is durable and indexed regardless.
                        let _ = reply.send(Ok(batch_end));
                        let start = feed::record_start(first, &stored[0]);
                        self.index.offer(DurableBatch {
                            events: events.clone(),
                            end: batch_end,
                            start,
                            stored: Some(stored),
                        });
                        self.durable.offer(DurableBatch { events, end: batch_end, start, stored: None });
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot write to the write-ahead log; refusing the batches");
                    let message = format!("cannot write to the write-ahead log: {error}");
                    for WalMsg::Append { reply, .. } in group {
                        let _ = reply.send(Err(StoreError::Storage { message: message.clone() }));
                    }
                }
            }
        }
    }
}

/// Where the index writes down its held partitions (see `IndexThread::held`).
fn held_path(partitions: &Partitions) -> PathBuf {
    partitions.root().join("vigil-held")
}

/// Where the index notes the log position up to which it has committed
/// every event, for `vigil search` to tell whether events wait in the log.
fn indexed_path(index_dir: &Path) -> PathBuf {
    index_dir.join("vigil-indexed")
}

/// Notes the index's position, whole or not at all but not synced: a note
/// a crash lost is an older position, and a reader counts from the older
/// one (`Searcher::unindexed_in_log` says "up to").
fn note_indexed(partitions: &Partitions, position: WalPosition) {
    let path = indexed_path(partitions.root());
    let noted = serde_json::to_vec(&position)
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::durable::replace_unsynced(&path, &bytes));
    if let Err(error) = noted {
        tracing::debug!(%error, path = %path.display(), "cannot note the index's position");
    }
}

/// The index's position as last noted, if it was.
pub(crate) fn read_indexed(index_dir: &Path) -> Option<WalPosition> {
    serde_json::from_slice(&std::fs::read(indexed_path(index_dir)).ok()?).ok()
}

fn read_held(partitions: &Partitions) -> Result<BTreeMap<i64, WalPosition>, StoreError> {
    let path = held_path(partitions);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| StoreError::Corrupt { message: format!("{}: {error}", path.display()) }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(StoreError::io("read", &path, source)),
    }
}

/// Where the consumer resumes, within the log as it is. A position before
/// the oldest segment is that segment's start; one past the log's end (the
/// log was reset while the alerts were kept) is the end, with a warning, so
/// that new batches still reach the consumer.
fn consumer_start(wal_dir: &Path, from: WalPosition, until: WalPosition) -> WalPosition {
    if from > until {
        tracing::warn!(
            checkpoint = ?from, log_end = ?until,
            "a checkpoint (the rules' or the index's) is past the end of the write-ahead log (was the log reset?); it resumes at the log's end"
        );
        return until;
    }
    match wal::list_segments(wal_dir) {
        Ok(segments) => match segments.first() {
            Some(&first) if from.segment < first => WalPosition { segment: first, offset: 0 },
            _ => from,
        },
        Err(_) => from,
    }
}

/// Lowers the calling thread's scheduling priority to niceness `nice`;
/// threads it starts afterwards (tantivy's) inherit it. Linux only.
pub fn lower_thread_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::warn!(%error, nice, thread = ?std::thread::current().name(), "cannot lower a thread's priority");
    }
    #[cfg(not(target_os = "linux"))]
    tracing::debug!(nice, "thread priorities are only set on Linux");
}

/// Gives tantivy's merging threads (named `merge_thread_N`; each writer
/// starts its own) the niceness `nice`. tantivy offers no hook where they
/// start, so they are found by name among the process's threads.
fn lower_merging_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
        for task in tasks.filter_map(Result::ok) {
            let merging = std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with("merge_thread"));
            let tid = task.file_name().to_str().and_then(|name| name.parse::<i32>().ok());
            if let (true, Some(tid)) = (merging, tid.and_then(rustix::process::Pid::from_raw))
                && let Err(error) = rustix::process::setpriority_process(Some(tid), nice)
                // A closed writer's thread that has just ended.
                && error != rustix::io::Errno::SRCH
                // This runs before every commit: say it once.
                && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(%error, nice, "cannot lower a merging thread's priority");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::debug!(nice, "thread priorities are only set on Linux");
}

struct Replay {
    wal_dir: PathBuf,
    /// The oldest partition checkpoint (or hold): replay for the index
    /// starts there.
    index_from: WalPosition,
    /// Each partition's checkpoint, by partition start; for a partition held
    /// by the last run that has none, where it was held from.
    checkpoints: HashMap<i64, WalPosition>,
    until: WalPosition,
}

struct OpenWriter {
    writer: IndexWriter,
    partition: Arc<Partition>,
    dirty: bool,
    last_used: u64,
    /// Every event of this partition up to this log position has been added
    /// to the writer: its commit payload.
    covered_to: WalPosition,
    /// The log position its partition's last commit covers, known without
    /// reading the partition's files (which a failure may have made
    /// unreadable): what it lacks after a failure is read again from here.
    committed_to: WalPosition,
    /// Opened with the configured heap and threads (else one thread, the minimum heap).
    full: bool,
    /// The partition covered the present when its writer was opened.
    present: bool,
}

struct IndexThread {
    writers: BTreeMap<i64, OpenWriter>,
    partitions: Arc<Partitions>,
    schema: DocSchema,
    options: StoreOptions,
    /// The log position of the last event added to a writer.
    indexed_to: WalPosition,
    /// Partitions whose events from a log position on are not all in the
    /// index (a partition that could not be opened, a writer whose commit
    /// failed): they are read again from the log, which is kept from there,
    /// until that succeeds. Their new events wait in the log meanwhile.
    held: BTreeMap<i64, WalPosition>,
    /// The holds written down by the last run, kept written down until this
    /// run's replay has gone through them.
    held_before: BTreeMap<i64, WalPosition>,
    /// Held partitions whose events were read again into their writer, not
    /// yet committed: they are written again once that commit succeeds.
    reread: BTreeSet<i64>,
    use_counter: u64,
    feed: DurableFeed,
    wal_dir: PathBuf,
    backlog: Arc<Backlog>,
    index_position: Arc<Mutex<WalPosition>>,
    lag: Arc<IndexLag>,
    ids: Arc<EventIdGenerator>,
    replayed: Arc<Signal>,
}

impl IndexThread {
    fn run(mut self, replay: Replay) {
        lower_thread_priority(self.options.indexing_nice);
        if self.replay(&replay) {
            // The holds written down last time were replayed and committed
            // (or held again): what is written down now is this run's.
            self.held_before.clear();
            self.save_held();
        }
        self.apply_retention();
        self.replayed.set();
        let mut last_commit = Instant::now();
        let mut last_retention = Instant::now();
        loop {
            let wait = self.options.commit_interval.saturating_sub(last_commit.elapsed());
            match self.feed.recv_timeout(wait) {
                Ok(batch) => {
                    let items: Vec<(&Event, Option<&[u8]>)> = match &batch.stored {
                        Some(stored) => batch
                            .events
                            .iter()
                            .zip(stored)
                            .map(|(event, stored)| (event, Some(stored.as_slice())))
                            .collect(),
                        None => batch.events.iter().map(|event| (event, None)).collect(),
                    };
                    self.add_batch(&items, batch.start, batch.end);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_commit.elapsed() >= self.options.commit_interval {
                self.recover_held();
                self.commit_dirty();
                last_commit = Instant::now();
            }
            if last_retention.elapsed() >= self.options.retention_check_interval {
                self.apply_retention();
                last_retention = Instant::now();
            }
        }
        self.commit_dirty();
        for (_, open) in std::mem::take(&mut self.writers) {
            if let Err(error) = open.writer.wait_merging_threads() {
                tracing::warn!(%error, partition = %open.partition.name(), "index merge did not finish cleanly");
            }
        }
    }

    /// Indexes what the log holds past each partition's checkpoint; false
    /// when the log could not be read through.
    fn replay(&mut self, replay: &Replay) -> bool {
        let from = replay.index_from;
        if from >= replay.until {
            return true;
        }
        const CHUNK: usize = 5_000;
        let started = Instant::now();
        let mut to_index: Vec<Event> = Vec::new();
        let mut reindexed = 0u64;
        let mut last_position = from;
        // Where the chunk being gathered starts in the log.
        let mut chunk_start = from;
        let result = wal::replay(&replay.wal_dir, from, replay.until, &mut |event, position| {
            self.ids.advance_past(event.id);
            last_position = position;
            let start = self.partitions.start_for(event.timestamp);
            let checkpoint = replay.checkpoints.get(&start).copied().unwrap_or_default();
            if position > checkpoint {
                to_index.push(event);
                reindexed += 1;
            }
            if to_index.len() >= CHUNK {
                let chunk = std::mem::take(&mut to_index);
                let items: Vec<(&Event, Option<&[u8]>)> = chunk.iter().map(|event| (event, None)).collect();
                self.add_batch(&items, chunk_start, position);
                chunk_start = position;
            }
        });
        let chunk = std::mem::take(&mut to_index);
        let items: Vec<(&Event, Option<&[u8]>)> = chunk.iter().map(|event| (event, None)).collect();
        self.add_batch(&items, chunk_start, last_position.max(self.indexed_to));
        let read_through = match result {
            Ok(read) => {
                tracing::info!(
                    read,
                    reindexed,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "replayed the write-ahead log"
                );
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot replay the write-ahead log");
                false
            }
        };
        self.commit_dirty();
        read_through
    }

    /// Adds the events of the stretch of the log from `from` to `end`,
    /// partition by partition (so that a batch spread over many partitions
    /// opens each writer once), then records that every open writer covers
    /// the log up to `end`. A writer closed on the way commits with what it
    /// covers. The events of a held partition, or of one that cannot be
    /// opened now, are left in the log (it is held from `from`).
    fn add_batch(&mut self, items: &[(&Event, Option<&[u8]>)], from: WalPosition, end: WalPosition) {
        let mut by_partition: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (index, (event, _)) in items.iter().enumerate() {
            by_partition.entry(self.partitions.start_for(event.timestamp)).or_default().push(index);
        }
        for (start, indices) in by_partition {
            if self.held.contains_key(&start) {
                continue;
            }
            let layout = match self.writer_for(start, indices.len()) {
                Ok(open) => open.partition.layout,
                Err(error) => {
                    self.hold(start, from, &error.to_string());
                    continue;
                }
            };
            let documents: Vec<_> = indices
                .iter()
                .map(|&index| match items[index] {
                    (event, Some(stored)) => self.schema.to_document_with_stored(event, stored, layout),
                    (event, None) => self.schema.to_document(event, layout),
                })
                .collect();
            // Opened just above: found in the open writers.
            let Some(open) = self.writers.get_mut(&start) else {
                self.hold(start, from, "its writer closed at once");
                continue;
            };
            if let Err(error) =
                documents.into_iter().try_for_each(|document| open.writer.add_document(document).map(drop))
            {
                // Its indexing thread is gone: what the writer holds is lost.
                self.abandon(start, &error.to_string());
                continue;
            }
            open.dirty = true;
            // All of this partition's events up to `end` are in now; a later
            // eviction in this batch must commit with that.
            open.covered_to = end;
        }
        for open in self.writers.values_mut() {
            open.covered_to = end;
        }
        self.indexed_to = self.indexed_to.max(end);
    }

    /// The open writer of a partition, opening it (and closing the least
    /// recently used one) when needed.
    fn writer_for(&mut self, start: i64, events: usize) -> Result<&mut OpenWriter, StoreError> {
        self.use_counter += 1;
        let bulk_open = self.writers.values().filter(|open| open.full && !open.present).count();
        // A small writer that now gets a bulk (a backfill that started with a
        // trickle) is committed and reopened full.
        if events >= BULK_EVENTS
            && bulk_open < MAX_FULL_WRITERS
            && self.writers.get(&start).is_some_and(|open| !open.full)
            && let Some(mut small) = self.writers.remove(&start)
        {
            if let Err(error) = self.commit_one(&mut small) {
                self.hold(start, small.committed_to, &error.to_string());
                return Err(error);
            }
            drop(small);
        }
        if !self.writers.contains_key(&start) {
            if self.writers.len() >= MAX_OPEN_WRITERS
                && let Some(&oldest) =
                    self.writers.iter().min_by_key(|(_, open)| open.last_used).map(|(start, _)| start)
                && let Some(mut closing) = self.writers.remove(&oldest)
            {
                if let Err(error) = self.commit_one(&mut closing) {
                    self.hold(oldest, closing.committed_to, &error.to_string());
                }
                // Dropping the writer cancels its merges; they resume when
                // the partition is written again.
                drop(closing);
            }
            let partition = self.partitions.get_or_create(start)?;
            let committed_to = partition.checkpoint()?;
            let present = partition.end > chrono::Utc::now().timestamp() - self.partitions.span();
            let full = present || (events >= BULK_EVENTS && bulk_open < MAX_FULL_WRITERS);
            let writer = if full {
                let threads = self.options.writer_threads.max(1);
                partition.index.writer_with_num_threads(
                    threads,
                    self.options.writer_heap_bytes.max(threads * SMALL_WRITER_HEAP_BYTES),
                )?
            } else {
                partition.index.writer_with_num_threads(1, SMALL_WRITER_HEAP_BYTES)?
            };
            // Its merging threads have just started, with the index thread's
            // niceness.
            if self.options.merging_nice > self.options.indexing_nice {
                lower_merging_priority(self.options.merging_nice);
            }
            let covered_to = self.indexed_to;
            self.writers.insert(
                start,
                OpenWriter {
                    writer,
                    partition,
                    dirty: false,
                    last_used: 0,
                    covered_to,
                    committed_to,
                    full,
                    present,
                },
            );
        }
        let open = self
            .writers
            .get_mut(&start)
            .ok_or_else(|| StoreError::Index { message: "writer vanished".into() })?;
        open.last_used = self.use_counter;
        Ok(open)
    }

    /// Commits a writer's new events. On failure the writer is not to be
    /// used again (tantivy leaves it in no known state).
    fn commit_one(&self, open: &mut OpenWriter) -> Result<(), StoreError> {
        if !open.dirty {
            return Ok(());
        }
        let payload = serde_json::to_string(&CommitPayload { wal: open.covered_to }).unwrap_or_default();
        let started = Instant::now();
        let committed = open.writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&payload);
            prepared.commit()
        });
        self.lag.committed(started.elapsed());
        committed?;
        open.dirty = false;
        open.committed_to = open.covered_to;
        if let Err(error) = open.partition.reader.reload() {
            tracing::warn!(%error, "cannot reload an index reader");
        }
        Ok(())
    }

    /// Leaves a partition's events from `from` on in the log, to be read
    /// again once it can be written.
    fn hold(&mut self, start: i64, from: WalPosition, why: &str) {
        self.reread.remove(&start);
        if let Some(open) = self.writers.remove(&start) {
            drop(open);
        }
        // What a partition has committed is not read again (replay may
        // hold it from before its checkpoint).
        let committed = self.partitions.get(start).and_then(|partition| partition.checkpoint().ok());
        let from = committed.map_or(from, |committed| committed.max(from));
        let held = self.held.entry(start).or_insert(from);
        *held = (*held).min(from);
        tracing::error!(
            partition = %crate::partition::partition_name(start), from = ?*held, why,
            "cannot write a partition; its events stay in the write-ahead log and are indexed once it can be written"
        );
        self.save_held();
    }

    /// Writes the held partitions down (a restart replays the log for them
    /// from there), durably; no file when there are none.
    fn save_held(&self) {
        let path = held_path(&self.partitions);
        let mut held = self.held_before.clone();
        for (start, from) in &self.held {
            let earliest = held.entry(*start).or_insert(*from);
            *earliest = (*earliest).min(*from);
        }
        let saved = if held.is_empty() {
            crate::durable::remove(&path)
        } else {
            serde_json::to_vec(&held)
                .map_err(std::io::Error::other)
                .and_then(|bytes| crate::durable::write_atomically(&path, &bytes))
        };
        if let Err(error) = saved {
            tracing::error!(%error, path = %path.display(), "cannot write down the held partitions; a restart now may not index their events");
        }
    }

    /// Drops a partition's writer, whose uncommitted events are lost to
    /// it: they are read again from the log, from its last commit.
    fn abandon(&mut self, start: i64, why: &str) {
        let Some(open) = self.writers.remove(&start) else { return };
        let committed_to = open.committed_to;
        drop(open);
        self.hold(start, committed_to, why);
    }

    /// Reads the events of held partitions again from the log into their
    /// writers; a partition that still cannot be written stays held.
    fn recover_held(&mut self) {
        let held: Vec<(i64, WalPosition)> = self.held.iter().map(|(start, from)| (*start, *from)).collect();
        for (start, from) in held {
            if let Err(error) = self.writer_for(start, 0) {
                tracing::debug!(%error, partition = %crate::partition::partition_name(start), "a held partition still cannot be opened");
                continue;
            }
            let (partitions, schema) = (self.partitions.clone(), &self.schema);
            let Some(open) = self.writers.get_mut(&start) else { continue };
            let layout = open.partition.layout;
            let mut failure = None;
            let mut recovered = 0u64;
            let read = wal::replay(&self.wal_dir, from, self.indexed_to, &mut |event, position| {
                if failure.is_some() || position <= from || partitions.start_for(event.timestamp) != start {
                    return;
                }
                match open.writer.add_document(schema.to_document(&event, layout)) {
                    Ok(_) => recovered += 1,
                    Err(error) => failure = Some(error.to_string()),
                }
            });
            match (read, failure) {
                (Ok(_), None) => {
                    open.dirty = true;
                    open.covered_to = self.indexed_to;
                    self.held.remove(&start);
                    self.save_held();
                    self.reread.insert(start);
                    tracing::debug!(partition = %crate::partition::partition_name(start), recovered, "a held partition's events are read again");
                }
                (Err(error), _) => self.abandon(start, &error.to_string()),
                (_, Some(error)) => self.abandon(start, &error),
            }
        }
    }

    /// Commits every writer with new events, then lets the log go up to what
    /// both the index and the consumer have.
    fn commit_dirty(&mut self) {
        // A writer's merging threads name themselves once they run, which
        // may be after the scan made when the writer opened: look again
        // before commits, which start merges.
        if self.options.merging_nice > self.options.indexing_nice
            && self.writers.values().any(|open| open.dirty)
        {
            lower_merging_priority(self.options.merging_nice);
        }
        let mut writers = std::mem::take(&mut self.writers);
        let mut failed = Vec::new();
        for (start, open) in &mut writers {
            match self.commit_one(open) {
                Err(error) => failed.push((*start, error)),
                Ok(()) if self.reread.remove(start) => {
                    tracing::info!(partition = %crate::partition::partition_name(*start), "a held partition is written again");
                }
                Ok(()) => {}
            }
        }
        self.writers = writers;
        for (start, error) in failed {
            if let Some(open) = self.writers.remove(&start) {
                self.hold(start, open.committed_to, &error.to_string());
            }
        }
        // The log is kept from the first event a held partition lacks.
        let position = self.held.values().fold(self.indexed_to, |position, from| position.min(*from));
        let before = std::mem::replace(
            &mut *self.index_position.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            position,
        );
        if before != position {
            note_indexed(&self.partitions, position);
        }
        self.lag.indexed(position);
        self.backlog.release("index", position);
        // A consumer that is gone (its thread ended) does not hold the log.
        match Wal::delete_before(&self.wal_dir, self.backlog.kept_from().unwrap_or(position)) {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "deleted write-ahead log segments"),
            Err(error) => tracing::warn!(%error, "cannot delete old write-ahead log segments"),
        }
    }

    /// Drops partitions past the maximum age, then the oldest while the
    /// index is over the maximum size (never the partition of the present,
    /// or when there is none, the latest one before it: an event stamped in
    /// the future does not make the present's partition the oldest).
    fn apply_retention(&mut self) {
        let mut doomed: Vec<(i64, &'static str)> = Vec::new();
        let partitions = self.partitions.all();
        let now = chrono::Utc::now().timestamp();
        if let Some(max_age) = self.options.retention_max_age {
            let cutoff = now.saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
            doomed.extend(
                partitions
                    .iter()
                    .filter(|partition| partition.end <= cutoff)
                    .map(|partition| (partition.start, "max_age")),
            );
            // A held partition that was never created: its time is past too.
            let span = self.partitions.span();
            doomed.extend(
                self.held
                    .keys()
                    .filter(|start| {
                        self.partitions.get(**start).is_none() && start.saturating_add(span) <= cutoff
                    })
                    .map(|start| (*start, "max_age")),
            );
        }
        if let Some(max_bytes) = self.options.retention_max_bytes {
            // Oldest first (`all` is in order of start).
            let kept = partitions
                .iter()
                .filter(|partition| partition.start <= now)
                .map(|partition| partition.start)
                .next_back();
            let mut sizes: Vec<(i64, u64)> = partitions
                .iter()
                .filter(|partition| !doomed.iter().any(|(start, _)| *start == partition.start))
                .map(|partition| (partition.start, partition.size_bytes()))
                .collect();
            let mut total: u64 = sizes.iter().map(|(_, bytes)| bytes).sum();
            sizes.retain(|(start, _)| Some(*start) != kept);
            for (start, bytes) in sizes {
                if total <= max_bytes {
                    break;
                }
                doomed.push((start, "max_bytes"));
                total -= bytes;
            }
        }
        for (start, reason) in doomed {
            if let Some(open) = self.writers.remove(&start) {
                drop(open);
            }
            if self.held.remove(&start).is_some() {
                self.save_held();
            }
            match self.partitions.remove(start) {
                Ok(()) => {
                    tracing::info!(partition = %crate::partition::partition_name(start), reason, "retention dropped a partition")
                }
                Err(error) => tracing::error!(%error, "retention cannot drop a partition"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_resumes_within_the_log_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        for segment in [57, 58] {
            std::fs::write(dir.path().join(format!("{segment:020}.wal")), b"").unwrap();
        }
        let at = |segment, offset| WalPosition { segment, offset };
        let end = at(58, 4_000);
        // Never consumed, or consumed up to a segment deleted since: the oldest segment's start.
        assert_eq!(consumer_start(dir.path(), at(0, 0), end), at(57, 0));
        assert_eq!(consumer_start(dir.path(), at(12, 900), end), at(57, 0));
        assert_eq!(consumer_start(dir.path(), at(57, 300), end), at(57, 300));
        // Past the end (the log was reset, the alerts kept): the end.
        assert_eq!(consumer_start(dir.path(), at(90, 10), end), end);
    }
}
