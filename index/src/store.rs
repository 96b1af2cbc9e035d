//! The store: the write-ahead log thread, the index writer thread, and the
//! channel of durable batches that feeds the rules.
//!
//! ```text
//! append() ──[wal queue: queue_batches]──► WAL thread: write group, fsync, ack
//!                                             │
//!                       ┌─[index queue: queue_batches]─┴─[durable queue: queue_batches]─┐
//!                       ▼                                                               ▼
//!            index thread: add, commit every commit_interval              consumer (rules, in the binary)
//!            with the WAL position as the commit payload                  reports its position back
//! ```
//!
//! On open, the index thread replays the log past the index's last commit,
//! and the durable queue gets the log past the consumer's last position, so
//! after a crash every acknowledged event is indexed and matched exactly once.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexWriter, TantivyError};
use tokio::sync::oneshot;
use vigil_schema::{Event, EventIdGenerator};

use crate::doc::DocSchema;
use crate::search::Searcher;
use crate::wal::{self, Wal, WalPosition};
use crate::{StoreError, lock_error};

/// How the store runs.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    /// How often the index commits, so that events become searchable.
    pub commit_interval: Duration,
    /// Capacity, in batches, of each queue between the stages.
    pub queue_batches: usize,
    /// Size at which the write-ahead log starts a new segment.
    pub wal_segment_bytes: u64,
    /// Memory the index writer may use before it flushes a segment.
    pub writer_heap_bytes: usize,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            data_dir: data_dir.into(),
            commit_interval: Duration::from_secs(1),
            queue_batches: 64,
            wal_segment_bytes: 64 * 1024 * 1024,
            writer_heap_bytes: 128 * 1024 * 1024,
        }
    }
}

/// A batch that is durable, for the consumer, with the log position past it.
#[derive(Debug, Clone)]
pub struct DurableBatch {
    pub events: Arc<Vec<Event>>,
    pub end: WalPosition,
}

/// What the store answers an append with, once the batch is durable.
pub type AppendTicket = oneshot::Receiver<Result<WalPosition, StoreError>>;

enum WalMsg {
    Append { events: Vec<Event>, reply: oneshot::Sender<Result<WalPosition, StoreError>> },
}

enum IndexMsg {
    Batch(Arc<Vec<Event>>, WalPosition),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CommitPayload {
    wal: WalPosition,
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
    /// returned receiver replays the log from there before new batches.
    pub fn open(
        options: &StoreOptions,
        consumer_from: WalPosition,
    ) -> Result<(Store, Receiver<DurableBatch>), StoreError> {
        let data_dir = &options.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::io("create", data_dir, source))?;
        let index = open_index(&data_dir.join("index"))?;
        let writer: IndexWriter =
            index.writer(options.writer_heap_bytes.max(15_000_000)).map_err(|error| match error {
                TantivyError::LockFailure(..) => lock_error(data_dir),
                other => StoreError::from(other),
            })?;
        let schema = DocSchema::new();
        let searcher = Searcher::new(index.clone(), schema.clone())?;

        let index_checkpoint = read_checkpoint(&index)?;
        let wal_dir = data_dir.join("wal");
        let (wal, replay_until) = Wal::open(&wal_dir, options.wal_segment_bytes)
            .map_err(|source| StoreError::io("open the write-ahead log in", &wal_dir, source))?;

        let ids = Arc::new(EventIdGenerator::new());
        if let Some(max) = searcher.max_id()? {
            ids.advance_past(max);
        }
        let (wal_sender, wal_receiver) = mpsc::sync_channel(options.queue_batches);
        let (index_sender, index_receiver) = mpsc::sync_channel(options.queue_batches);
        let (durable_sender, durable_receiver) = mpsc::sync_channel(options.queue_batches);
        let consumer_position = Arc::new(Mutex::new(consumer_from));
        let index_position = Arc::new(Mutex::new(index_checkpoint));
        let replayed = Arc::new(Signal::default());

        let replay = Replay {
            wal_dir: wal_dir.clone(),
            index_from: index_checkpoint,
            consumer_from,
            until: replay_until,
        };
        let index_thread = IndexThread {
            writer,
            schema,
            searcher: searcher.clone(),
            receiver: index_receiver,
            commit_interval: options.commit_interval,
            wal_dir: wal_dir.clone(),
            consumer_position: consumer_position.clone(),
            index_position: index_position.clone(),
            ids: ids.clone(),
            replayed: replayed.clone(),
        };
        let replay_sender = durable_sender.clone();
        let index_handle = std::thread::Builder::new()
            .name("vigil-index".into())
            .spawn(move || index_thread.run(replay, replay_sender))
            .map_err(|source| StoreError::io("start the index thread for", &wal_dir, source))?;
        let wal_handle = std::thread::Builder::new()
            .name("vigil-wal".into())
            .spawn(move || run_wal(wal, wal_receiver, index_sender, durable_sender))
            .map_err(|source| StoreError::io("start the write-ahead log thread for", &wal_dir, source))?;

        let store = Store {
            wal_sender: Mutex::new(Some(wal_sender)),
            threads: Mutex::new(vec![wal_handle, index_handle]),
            searcher,
            ids,
            consumer_position,
            index_position,
            replayed,
        };
        Ok((store, durable_receiver))
    }

    /// Waits until the write-ahead log written before this open is indexed
    /// and committed (searchable). The consumer of the durable batches must
    /// be running, since the replay feeds it too.
    pub fn wait_until_replayed(&self) {
        self.replayed.wait();
    }

    /// The id generator events for this store must take their ids from.
    pub fn ids(&self) -> &EventIdGenerator {
        &self.ids
    }

    pub fn searcher(&self) -> &Searcher {
        &self.searcher
    }

    /// Queues a batch for the write-ahead log. Fails at once with
    /// `Overloaded` when the queue is full (the caller answers 503), never
    /// blocks; the ticket resolves once the batch is durable.
    pub fn append(&self, events: Vec<Event>) -> Result<AppendTicket, StoreError> {
        let (reply, ticket) = oneshot::channel();
        let guard = self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(sender) = guard.as_ref() else { return Err(StoreError::ShuttingDown) };
        match sender.try_send(WalMsg::Append { events, reply }) {
            Ok(()) => Ok(ticket),
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::ShuttingDown),
        }
    }

    /// Appends a batch and waits until it is durable, waiting for room in
    /// the queue instead of failing (for offline imports).
    pub fn append_blocking(&self, events: Vec<Event>) -> Result<WalPosition, StoreError> {
        let (reply, ticket) = oneshot::channel();
        let sender = {
            let guard = self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            guard.as_ref().cloned().ok_or(StoreError::ShuttingDown)?
        };
        sender.send(WalMsg::Append { events, reply }).map_err(|_| StoreError::ShuttingDown)?;
        ticket.blocking_recv().map_err(|_| StoreError::ShuttingDown)?
    }

    /// Records that the consumer has finished with everything up to `position`
    /// (and made its own results durable), so the log before it may go.
    pub fn mark_consumed(&self, position: WalPosition) {
        let mut consumed = self.consumer_position.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *consumed = (*consumed).max(position);
    }

    /// Where the index's last commit stands in the log.
    pub fn index_position(&self) -> WalPosition {
        *self.index_position.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops accepting, writes out what was accepted, commits the index and
    /// waits for the threads. The durable-batch receiver sees its end once
    /// the last batch is delivered.
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

impl Drop for Store {
    fn drop(&mut self) {
        self.wal_sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    }
}

pub(crate) fn open_index(path: &Path) -> Result<Index, StoreError> {
    std::fs::create_dir_all(path).map_err(|source| StoreError::io("create", path, source))?;
    let directory =
        MmapDirectory::open(path).map_err(|error| StoreError::Corrupt { message: error.to_string() })?;
    let schema = DocSchema::new();
    let index = Index::open_or_create(directory, schema.schema.clone())?;
    DocSchema::register_tokenizers(index.tokenizers());
    Ok(index)
}

fn read_checkpoint(index: &Index) -> Result<WalPosition, StoreError> {
    let metas = index.load_metas()?;
    match metas.payload {
        None => Ok(WalPosition::default()),
        Some(payload) => {
            serde_json::from_str::<CommitPayload>(&payload).map(|payload| payload.wal).map_err(|error| {
                StoreError::Corrupt { message: format!("index commit payload {payload:?}: {error}") }
            })
        }
    }
}

/// The write-ahead log thread: takes every append waiting in the queue,
/// writes them as one group with one fsync, then answers each and hands the
/// batches on.
fn run_wal(
    mut wal: Wal,
    receiver: Receiver<WalMsg>,
    index_sender: SyncSender<IndexMsg>,
    durable_sender: SyncSender<DurableBatch>,
) {
    const MAX_GROUP: usize = 256;
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let written = wal.append(group.iter().flat_map(|WalMsg::Append { events, .. }| events.iter()));
        match written {
            Ok(end) => {
                for WalMsg::Append { events, reply } in group {
                    let events = Arc::new(events);
                    // The receiver may have given up (client gone); the
                    // batch is durable and indexed regardless.
                    let _ = reply.send(Ok(end));
                    if index_sender.send(IndexMsg::Batch(events.clone(), end)).is_err() {
                        tracing::error!("index thread is gone; durable events will be indexed on restart");
                    }
                    let _ = durable_sender.send(DurableBatch { events, end });
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

struct Replay {
    wal_dir: PathBuf,
    index_from: WalPosition,
    consumer_from: WalPosition,
    until: WalPosition,
}

struct IndexThread {
    writer: IndexWriter,
    schema: DocSchema,
    searcher: Searcher,
    receiver: Receiver<IndexMsg>,
    commit_interval: Duration,
    wal_dir: PathBuf,
    consumer_position: Arc<Mutex<WalPosition>>,
    index_position: Arc<Mutex<WalPosition>>,
    ids: Arc<EventIdGenerator>,
    replayed: Arc<Signal>,
}

impl IndexThread {
    fn run(mut self, replay: Replay, durable_sender: SyncSender<DurableBatch>) {
        let mut indexed_to = replay.index_from;
        self.replay(&replay, &durable_sender, &mut indexed_to);
        drop(durable_sender);
        self.replayed.set();
        let mut committed_to = indexed_to;
        let mut last_commit = Instant::now();
        loop {
            let wait = self.commit_interval.saturating_sub(last_commit.elapsed());
            match self.receiver.recv_timeout(wait) {
                Ok(IndexMsg::Batch(events, end)) => {
                    for event in events.iter() {
                        self.add(event);
                    }
                    indexed_to = end;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_commit.elapsed() >= self.commit_interval {
                if indexed_to != committed_to {
                    self.commit(indexed_to);
                    committed_to = indexed_to;
                }
                last_commit = Instant::now();
            }
        }
        if indexed_to != committed_to {
            self.commit(indexed_to);
        }
        if let Err(error) = self.writer.wait_merging_threads() {
            tracing::warn!(%error, "index merge did not finish cleanly");
        }
    }

    fn replay(
        &mut self,
        replay: &Replay,
        durable_sender: &SyncSender<DurableBatch>,
        indexed_to: &mut WalPosition,
    ) {
        let from = replay.index_from.min(replay.consumer_from);
        if from >= replay.until {
            return;
        }
        let started = Instant::now();
        let mut pending: Vec<Event> = Vec::new();
        let mut reindexed = 0u64;
        let result = wal::replay(&replay.wal_dir, from, replay.until, &mut |event, position| {
            self.ids.advance_past(event.id);
            if position > replay.index_from {
                self.add(&event);
                reindexed += 1;
                *indexed_to = position;
            }
            if position > replay.consumer_from {
                pending.push(event);
                if pending.len() >= 1000 {
                    let events = Arc::new(std::mem::take(&mut pending));
                    let _ = durable_sender.send(DurableBatch { events, end: position });
                }
            }
        });
        if !pending.is_empty() {
            let _ = durable_sender.send(DurableBatch { events: Arc::new(pending), end: replay.until });
        }
        match result {
            Ok(read) => {
                tracing::info!(
                    read,
                    reindexed,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "replayed the write-ahead log"
                )
            }
            Err(error) => tracing::error!(%error, "cannot replay the write-ahead log"),
        }
        if *indexed_to != replay.index_from {
            self.commit(*indexed_to);
        }
    }

    fn add(&mut self, event: &Event) {
        if let Err(error) = self.writer.add_document(self.schema.to_document(event)) {
            tracing::error!(%error, event_id = %event.id, "cannot index an event");
        }
    }

    fn commit(&mut self, position: WalPosition) {
        let payload = serde_json::to_string(&CommitPayload { wal: position }).unwrap_or_default();
        let committed = self.writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&payload);
            prepared.commit()
        });
        match committed {
            Ok(_) => {
                *self.index_position.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = position;
                if let Err(error) = self.searcher.reload() {
                    tracing::warn!(%error, "cannot reload the index reader");
                }
                let consumed =
                    *self.consumer_position.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match Wal::delete_before(&self.wal_dir, position.min(consumed)) {
                    Ok(0) => {}
                    Ok(deleted) => tracing::debug!(deleted, "deleted write-ahead log segments"),
                    Err(error) => tracing::warn!(%error, "cannot delete old write-ahead log segments"),
                }
            }
            Err(error) => {
                tracing::error!(%error, "index commit failed; the write-ahead log keeps the events")
            }
        }
    }
}
