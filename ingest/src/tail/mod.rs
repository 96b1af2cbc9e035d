//! File tailing (`vigil serve --tail GLOB`): container log files (CRI and
//! docker `json-file`, detected per file, CRI partial lines joined), the
//! API server's audit log, or any text file.
//!
//! Every `poll_interval` the globs are expanded again (new files are picked
//! up), each file is read from where it was left, and complete lines become
//! events. A file is followed by its identity (device and inode): rotation by
//! rename is seen as a new file at the path, and the old one is read to its
//! end through the handle still open on it; truncation (copytruncate) is
//! seen as a file shorter than the position, read again from the start.
//!
//! Offsets are checkpointed in a file (written atomically) only after the
//! events before them are durable, and never past a CRI partial line whose
//! end has not arrived, so that a restart neither loses nor repeats a line.

pub mod format;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use vigil_schema::{Event, EventSink, SinkErrorKind, fields};

use self::format::{Format, detect, kubernetes_from_path, parse_cri};
use crate::container::{self, RecordContext};
use crate::k8s_audit;

/// The dataset of lines from files that are neither container logs nor audit logs.
pub const DATASET: &str = "file";

/// How the tailer runs.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub globs: Vec<String>,
    pub poll_interval: Duration,
    /// Where offsets are kept between runs.
    pub checkpoint_path: PathBuf,
    /// Longest line; longer ones are skipped and counted.
    pub max_line_bytes: usize,
    /// Most bytes read from one file per poll.
    pub read_chunk_bytes: usize,
    pub audit: k8s_audit::Context,
}

impl TailOptions {
    pub fn new(globs: Vec<String>, checkpoint_path: PathBuf) -> TailOptions {
        TailOptions {
            globs,
            poll_interval: Duration::from_millis(250),
            checkpoint_path,
            max_line_bytes: 1024 * 1024,
            read_chunk_bytes: 4 * 1024 * 1024,
            audit: k8s_audit::Context::default(),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TailStats {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub files: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoints {
    files: Vec<Checkpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    path: String,
    dev: u64,
    ino: u64,
    offset: u64,
    /// The file's first bytes when the offset was saved: a file truncated
    /// and written again keeps its inode, not its first bytes.
    #[serde(default)]
    head: Vec<u8>,
}

/// How many first bytes identify a file's content.
const HEAD_BYTES: usize = 256;

struct Partial {
    /// Where the first part of the line starts: the checkpoint never passes it.
    start: u64,
    time: String,
    text: String,
}

struct Tracked {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes consumed: every complete line before it has been processed.
    offset: u64,
    /// Bytes read after `offset` that do not end a line yet.
    pending: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    format: Option<Format>,
    partials: HashMap<String, Partial>,
    kubernetes: Option<Value>,
    /// The first bytes seen (up to `HEAD_BYTES`).
    head: Vec<u8>,
}

impl Tracked {
    fn open(path: &str, offset: u64, saved_head: &[u8]) -> std::io::Result<Tracked> {
        let mut file = File::open(path)?;
        let metadata = file.metadata()?;
        let head = read_head(&file);
        let same_content = head.len() >= saved_head.len() && head[..saved_head.len()] == *saved_head;
        let offset = if offset <= metadata.len() && same_content { offset } else { 0 };
        file.seek(SeekFrom::Start(offset))?;
        Ok(Tracked {
            file,
            dev: metadata.dev(),
            ino: metadata.ino(),
            offset,
            pending: Vec::new(),
            skipping: false,
            format: None,
            partials: HashMap::new(),
            kubernetes: kubernetes_from_path(path),
            head,
        })
    }

    /// Whether the file's content is no longer the one followed: its first
    /// bytes changed (truncated and written again), or it is shorter than
    /// what was read.
    fn replaced(&mut self, length: u64) -> bool {
        if length < self.offset + self.pending.len() as u64 {
            return true;
        }
        let now = read_head(&self.file);
        let known = self.head.len().min(now.len());
        if now[..known] != self.head[..known] {
            return true;
        }
        if now.len() > self.head.len() {
            self.head = now;
        }
        false
    }

    /// The offset a restart may resume from.
    fn safe_offset(&self) -> u64 {
        self.partials.values().map(|partial| partial.start).min().unwrap_or(self.offset).min(self.offset)
    }
}

/// Tails files until `shutdown` turns true.
pub async fn run(
    options: TailOptions,
    sink: Arc<dyn EventSink>,
    stats: Arc<TailStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let poll_interval = options.poll_interval;
    let mut tailer = Some(Tailer::new(options, stats.clone()));
    loop {
        let Some(mut current) = tailer.take() else { return };
        // Reading files blocks: do it off the async workers.
        let polled = tokio::task::spawn_blocking(move || {
            let batch = current.poll();
            (current, batch)
        })
        .await;
        let (mut current, mut batch) = match polled {
            Ok(polled) => polled,
            Err(error) => {
                tracing::error!(%error, "the tailer failed; tailing stops");
                return;
            }
        };
        // Ids are given here, in arrival order, from the store's generator.
        for event in &mut batch {
            event.assign_id(sink.ids().next());
        }
        if batch.is_empty() {
            current.save_checkpoints_if_changed();
        } else if submit(sink.as_ref(), &stats, batch, &mut shutdown).await {
            current.save_checkpoints();
        }
        tailer = Some(current);
        tokio::select! {
            () = tokio::time::sleep(poll_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn submit(
    sink: &dyn EventSink,
    stats: &TailStats,
    batch: Vec<Event>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let count = batch.len() as u64;
    let batch = Arc::new(batch);
    loop {
        match sink.submit(Arc::clone(&batch)).await {
            Ok(_) => {
                stats.accepted.fetch_add(count, Ordering::Relaxed);
                return true;
            }
            // Files wait: nothing is lost by reading them later.
            Err(error) if error.kind() == SinkErrorKind::Overloaded => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = shutdown.changed() => return false,
                }
            }
            Err(error) => {
                tracing::error!(%error, "tailed lines not stored; they will be read again after a restart");
                return false;
            }
        }
    }
}

/// The tailer's state: the files followed and their offsets. [`run`]
/// drives it; [`Tailer::poll`] is one round (also used by the benchmarks).
pub struct Tailer {
    options: TailOptions,
    stats: Arc<TailStats>,
    files: BTreeMap<String, Tracked>,
    saved: HashMap<String, Checkpoint>,
    dirty: bool,
}

impl Tailer {
    pub fn new(options: TailOptions, stats: Arc<TailStats>) -> Tailer {
        let saved: HashMap<String, Checkpoint> = std::fs::read(&options.checkpoint_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Checkpoints>(&bytes).ok())
            .map(|checkpoints| {
                checkpoints
                    .files
                    .into_iter()
                    .map(|checkpoint| (checkpoint.path.clone(), checkpoint))
                    .collect()
            })
            .unwrap_or_default();
        Tailer { options, stats, files: BTreeMap::new(), saved, dirty: false }
    }

    /// One round: follow every file and return the events of the new lines
    /// (their ids are placeholders until [`run`] hands them on).
    pub fn poll(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let mut present: Vec<String> = Vec::new();
        for pattern in &self.options.globs {
            match glob::glob(pattern) {
                Ok(paths) => present.extend(
                    paths
                        .flatten()
                        .filter(|path| path.is_file())
                        .map(|path| path.to_string_lossy().into_owned()),
                ),
                Err(error) => tracing::warn!(%pattern, %error, "invalid tail glob"),
            }
        }
        present.sort();
        present.dedup();
        // Files gone from the globs: read what is left, then let them go.
        let gone: Vec<String> = self.files.keys().filter(|path| !present.contains(path)).cloned().collect();
        for path in gone {
            if let Some(mut tracked) = self.files.remove(&path) {
                self.read(&path, &mut tracked, &mut events, usize::MAX);
                flush_partials(&path, &mut tracked, &self.options, &self.stats, &mut events);
                self.dirty = true;
            }
        }
        for path in present {
            let Ok(metadata) = std::fs::metadata(&path) else { continue };
            let identity = (metadata.dev(), metadata.ino());
            match self.files.remove(&path) {
                None => {
                    let saved = self.saved.get(&path).filter(|saved| (saved.dev, saved.ino) == identity);
                    let (start, head) =
                        saved.map_or((0, &[][..]), |saved| (saved.offset, saved.head.as_slice()));
                    match Tracked::open(&path, start, head) {
                        Ok(tracked) => {
                            self.stats.files.fetch_add(1, Ordering::Relaxed);
                            self.files.insert(path.clone(), tracked);
                        }
                        Err(error) => {
                            tracing::warn!(%path, %error, "cannot open a tailed file");
                            continue;
                        }
                    }
                }
                Some(mut tracked) if (tracked.dev, tracked.ino) != identity => {
                    // Rotated by rename: finish the old file (which may have
                    // been truncated and written again first), then start the new one.
                    let old_length = tracked.file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
                    if tracked.replaced(old_length) {
                        reset_to_start(&mut tracked, &self.stats);
                    }
                    self.read(&path, &mut tracked, &mut events, usize::MAX);
                    flush_partials(&path, &mut tracked, &self.options, &self.stats, &mut events);
                    self.stats.rotations.fetch_add(1, Ordering::Relaxed);
                    match Tracked::open(&path, 0, &[]) {
                        Ok(fresh) => {
                            self.files.insert(path.clone(), fresh);
                        }
                        Err(error) => tracing::warn!(%path, %error, "cannot open a rotated file"),
                    }
                }
                Some(mut tracked) => {
                    if tracked.replaced(metadata.len()) {
                        // Truncated in place: read again from the start.
                        reset_to_start(&mut tracked, &self.stats);
                    }
                    self.files.insert(path.clone(), tracked);
                }
            }
            if let Some(mut tracked) = self.files.remove(&path) {
                let chunk = self.options.read_chunk_bytes;
                self.read(&path, &mut tracked, &mut events, chunk);
                self.files.insert(path, tracked);
            }
        }
        if !events.is_empty() {
            self.dirty = true;
        }
        events
    }

    /// Reads up to `budget` bytes and turns the complete lines into events.
    fn read(&self, path: &str, tracked: &mut Tracked, events: &mut Vec<Event>, budget: usize) {
        let mut buffer = vec![0u8; 256 * 1024];
        let mut read_so_far = 0usize;
        while read_so_far < budget {
            let count = match tracked.file.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!(%path, %error, "cannot read a tailed file");
                    break;
                }
            };
            read_so_far += count;
            self.stats.bytes.fetch_add(count as u64, Ordering::Relaxed);
            // The complete lines are taken in place, and what they used up
            // is removed once per read (not once per line: that moved the
            // rest of the buffer for every line).
            let mut pending = std::mem::take(&mut tracked.pending);
            pending.extend_from_slice(&buffer[..count]);
            let mut start = 0;
            while let Some(found) = pending[start..].iter().position(|byte| *byte == b'\n') {
                let end = start + found + 1;
                let line = &pending[start..end - 1];
                start = end;
                let line_start = tracked.offset;
                tracked.offset += (line.len() + 1) as u64;
                if std::mem::take(&mut tracked.skipping) {
                    continue;
                }
                let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
                self.stats.lines.fetch_add(1, Ordering::Relaxed);
                line_to_events(path, tracked, &text, line_start, &self.options, &self.stats, events);
            }
            pending.drain(..start);
            tracked.pending = pending;
            if tracked.pending.len() > self.options.max_line_bytes {
                tracing::warn!(%path, limit = self.options.max_line_bytes, "skipping a line over the limit");
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracked.offset += tracked.pending.len() as u64;
                tracked.pending.clear();
                tracked.skipping = true;
            }
        }
    }

    fn save_checkpoints(&mut self) {
        let files: Vec<Checkpoint> = self
            .files
            .iter()
            .map(|(path, tracked)| Checkpoint {
                path: path.clone(),
                dev: tracked.dev,
                ino: tracked.ino,
                offset: tracked.safe_offset(),
                head: tracked.head.clone(),
            })
            .collect();
        let path = &self.options.checkpoint_path;
        let temporary = path.with_extension("tmp");
        let written = serde_json::to_vec(&Checkpoints { files: files.clone() })
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let mut file = File::create(&temporary)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, path));
        match written {
            Ok(()) => {
                self.saved =
                    files.into_iter().map(|checkpoint| (checkpoint.path.clone(), checkpoint)).collect();
                self.dirty = false;
            }
            Err(error) => tracing::error!(%error, path = %path.display(), "cannot save tail offsets"),
        }
    }

    /// After a round without events, offsets moved only past lines that
    /// made none (blank, refused, or parts of a line still open): saving
    /// them loses nothing.
    fn save_checkpoints_if_changed(&mut self) {
        let changed = self.dirty
            || self.files.iter().any(|(path, tracked)| {
                self.saved
                    .get(path)
                    .is_none_or(|saved| saved.offset != tracked.safe_offset() || saved.ino != tracked.ino)
            });
        if changed {
            self.save_checkpoints();
        }
    }
}

/// Follows a file again from its start (it was truncated).
fn reset_to_start(tracked: &mut Tracked, stats: &TailStats) {
    stats.truncations.fetch_add(1, Ordering::Relaxed);
    if tracked.file.seek(SeekFrom::Start(0)).is_ok() {
        tracked.offset = 0;
        tracked.pending.clear();
        tracked.partials.clear();
        tracked.skipping = false;
        tracked.head = read_head(&tracked.file);
    }
}

/// The first bytes of a file (up to `HEAD_BYTES`), read without moving its position.
fn read_head(file: &File) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; HEAD_BYTES];
    let mut filled = 0;
    while filled < HEAD_BYTES {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(count) => filled += count,
        }
    }
    head.truncate(filled);
    head
}

/// Turns one complete line into events (none for a CRI partial line).
fn line_to_events(
    path: &str,
    tracked: &mut Tracked,
    line: &str,
    line_start: u64,
    options: &TailOptions,
    stats: &TailStats,
    events: &mut Vec<Event>,
) {
    // Blank lines, and the runs of NUL bytes a crash leaves in a log file, carry nothing.
    if line.trim_matches(|c: char| c == '\0' || c.is_whitespace()).is_empty() {
        return;
    }
    let format = *tracked.format.get_or_insert_with(|| detect(line));
    let record = match format {
        Format::Cri => match parse_cri(line) {
            Some(cri) if !cri.full => {
                let partial = tracked.partials.entry(cri.stream.to_owned()).or_insert_with(|| Partial {
                    start: line_start,
                    time: cri.time.to_owned(),
                    text: String::new(),
                });
                partial.text.push_str(cri.message);
                return;
            }
            Some(cri) => {
                let (time, text) = match tracked.partials.remove(cri.stream) {
                    Some(partial) => (partial.time, partial.text + cri.message),
                    None => (cri.time.to_owned(), cri.message.to_owned()),
                };
                json!({"time": time, "stream": cri.stream, "log": text})
            }
            None => json!({"log": line}),
        },
        Format::Json => match serde_json::from_str::<Value>(line) {
            Ok(value @ Value::Object(_)) => value,
            _ => json!({"log": line}),
        },
        Format::SyslogFile => {
            if let Some(message) = format::parse_syslog_file_line(line) {
                let mut event = crate::syslog::normalize(
                    vigil_schema::EventId::from_u128(0),
                    Utc::now(),
                    line,
                    message,
                    None,
                );
                // A file line has no priority: drop what the stand-in one gave.
                for name in [
                    fields::LOG_SYSLOG_PRIORITY,
                    fields::LOG_SYSLOG_FACILITY_CODE,
                    fields::LOG_SYSLOG_FACILITY_NAME,
                    fields::LOG_SYSLOG_SEVERITY_CODE,
                    fields::LOG_SYSLOG_SEVERITY_NAME,
                    fields::EVENT_SEVERITY,
                    fields::LOG_LEVEL,
                ] {
                    event.fields.remove(name);
                }
                if let Value::Object(original) = &mut event.original {
                    original.insert("priority".into(), Value::Null);
                }
                event.set(fields::LOG_FILE_PATH, path);
                events.push(event);
                return;
            }
            json!({"log": line})
        }
        Format::Plain => json!({"log": line}),
    };
    events.extend(to_event(path, tracked.kubernetes.as_ref(), record, options, stats));
}

/// Emits what CRI partial lines a file ended with (rotation, deletion).
fn flush_partials(
    path: &str,
    tracked: &mut Tracked,
    options: &TailOptions,
    stats: &TailStats,
    events: &mut Vec<Event>,
) {
    let partials: Vec<(String, Partial)> = tracked.partials.drain().collect();
    for (stream, partial) in partials {
        let record = json!({"time": partial.time, "stream": stream, "log": partial.text});
        events.extend(to_event(path, tracked.kubernetes.as_ref(), record, options, stats));
    }
}

fn to_event(
    path: &str,
    kubernetes: Option<&Value>,
    mut record: Value,
    options: &TailOptions,
    stats: &TailStats,
) -> Option<Event> {
    if let (Some(kubernetes), Value::Object(object)) = (kubernetes, &mut record)
        && !object.contains_key("kubernetes")
    {
        object.insert("kubernetes".into(), kubernetes.clone());
    }
    let context = RecordContext { dataset: Some(DATASET), time: None, audit: Some(&options.audit) };
    let now = Utc::now();
    if let Err(reason) = options.audit.limits.check(&record) {
        tracing::debug!(%path, %reason, "tailed line refused");
        stats.rejected.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    // The id is given when the batch is handed on (see `run`).
    match container::normalize_record(vigil_schema::EventId::from_u128(0), now, record, &context) {
        Ok(mut event) => {
            event.set(fields::LOG_FILE_PATH, path);
            Some(event)
        }
        Err(error) => {
            tracing::debug!(%path, %error, "tailed line refused");
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Where the tailer keeps its offsets inside a data directory.
pub fn checkpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tail-offsets.json")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn options(dir: &Path) -> TailOptions {
        TailOptions::new(vec![format!("{}/*.log", dir.display())], dir.join("offsets.json"))
    }

    fn messages(events: &[Event]) -> Vec<String> {
        events.iter().map(|event| event.get_str(fields::MESSAGE).unwrap_or("").to_owned()).collect()
    }

    /// A small deterministic generator for the model test.
    struct Random(u64);

    impl Random {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    #[test]
    fn cri_partial_lines_are_joined_per_stream_and_the_kubelet_name_gives_the_pod() {
        let dir = tempfile::tempdir().unwrap();
        let id = "a".repeat(64);
        let containers = dir.path().join("containers");
        std::fs::create_dir(&containers).unwrap();
        let path = containers.join(format!("web-0_shop_web-{id}.log"));
        std::fs::write(
            &path,
            "2025-02-03T08:15:01Z stdout P hello \n2025-02-03T08:15:01Z stderr F oops\n2025-02-03T08:15:02Z stdout F world\n",
        )
        .unwrap();
        let mut tailer = Tailer::new(options(&containers), Arc::new(TailStats::default()));
        let events = tailer.poll();
        assert_eq!(messages(&events), ["oops", "hello world"]);
        assert_eq!(events[1].get_str(fields::K8S_POD_NAME), Some("web-0"));
        assert_eq!(events[1].get_str(fields::K8S_NAMESPACE), Some("shop"));
        assert_eq!(events[1].get_str(fields::CONTAINER_ID), Some(id.as_str()));
        assert_eq!(events[1].dataset(), "k8s.container");
        assert_eq!(
            events[1].timestamp.to_rfc3339(),
            "2025-02-03T08:15:01+00:00",
            "the time of the first part"
        );
    }

    #[test]
    fn audit_log_lines_are_audit_events() {
        let dir = tempfile::tempdir().unwrap();
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","verb":"get","stage":"ResponseComplete","requestReceivedTimestamp":"2025-02-03T08:15:01Z"}"#;
        std::fs::write(dir.path().join("audit.log"), format!("{line}\n")).unwrap();
        let mut tailer = Tailer::new(options(dir.path()), Arc::new(TailStats::default()));
        let events = tailer.poll();
        assert_eq!(events[0].dataset(), "k8s.audit");
        assert!(events[0].get_str(fields::LOG_FILE_PATH).unwrap().ends_with("audit.log"));
    }

    /// Random appends, partial writes, rotations by rename, truncations and
    /// restarts against a trivial model: every line written is read once,
    /// in order (truncation happens only after the lines before it were read,
    /// as with copytruncate).
    #[test]
    fn model_nothing_lost_or_doubled_through_rotation_truncation_and_restart() {
        for seed in [7u64, 1234, 98765, 424242] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("app.log");
            std::fs::write(&path, "").unwrap();
            let mut random = Random(seed);
            let mut written: Vec<String> = Vec::new();
            let mut read: Vec<String> = Vec::new();
            let mut tailer = Tailer::new(options(dir.path()), Arc::new(TailStats::default()));
            // A line written in two parts: (the whole line, the part not written yet).
            let mut unfinished: Option<(String, String)> = None;
            let finish = |unfinished: &mut Option<(String, String)>, written: &mut Vec<String>| {
                if let Some((line, rest)) = unfinished.take() {
                    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                    file.write_all(format!("{rest}\n").as_bytes()).unwrap();
                    written.push(line);
                }
            };
            let mut rotations = 0;
            for step in 0..200 {
                match random.below(10) {
                    0..=5 => {
                        finish(&mut unfinished, &mut written);
                        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                        let count = random.below(4) + 1;
                        for n in 0..count {
                            let line = format!("line {step}.{n} of {seed}");
                            if n + 1 == count && random.below(3) == 0 {
                                // Half of the last line now, the rest later.
                                let (head, rest) = line.split_at(line.len() / 2);
                                file.write_all(head.as_bytes()).unwrap();
                                unfinished = Some((line.clone(), rest.to_owned()));
                            } else {
                                file.write_all(format!("{line}\n").as_bytes()).unwrap();
                                written.push(line);
                            }
                        }
                    }
                    6 => {
                        read.extend(messages(&tailer.poll()));
                        tailer.save_checkpoints();
                    }
                    7 => {
                        finish(&mut unfinished, &mut written);
                        // Rotate by rename; the old file's last lines are read through its handle.
                        rotations += 1;
                        std::fs::rename(&path, dir.path().join(format!("app.log.{rotations}"))).unwrap();
                        std::fs::write(&path, "").unwrap();
                        read.extend(messages(&tailer.poll()));
                        tailer.save_checkpoints();
                    }
                    8 => {
                        finish(&mut unfinished, &mut written);
                        read.extend(messages(&tailer.poll()));
                        tailer.save_checkpoints();
                        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
                    }
                    _ => {
                        // Restart from the saved offsets (a half-written line included).
                        read.extend(messages(&tailer.poll()));
                        tailer.save_checkpoints();
                        tailer = Tailer::new(options(dir.path()), Arc::new(TailStats::default()));
                        // The tailer reads at once when it starts.
                        read.extend(messages(&tailer.poll()));
                        tailer.save_checkpoints();
                    }
                }
            }
            finish(&mut unfinished, &mut written);
            read.extend(messages(&tailer.poll()));
            assert_eq!(read, written, "seed {seed}");
        }
    }

    #[test]
    fn syslog_files_are_read_as_syslog_and_every_line_of_the_public_sample_parses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("syslog.log"), "Jan  6 13:57:19 host-a kernel: [    0.000000] Linux version 5.10\nJan  6 13:57:20 host-a systemd[1]: Started Journal.\n").unwrap();
        let mut tailer = Tailer::new(options(dir.path()), Arc::new(TailStats::default()));
        let events = tailer.poll();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].dataset(), "syslog");
        assert_eq!(events[1].get_str(fields::PROCESS_NAME), Some("systemd"));
        assert_eq!(events[1].get_str(fields::HOST_NAME), Some("host-a"));
        assert_eq!(events[1].get_str(fields::MESSAGE), Some("Started Journal."));
        assert_eq!(events[1].get(fields::LOG_SYSLOG_SEVERITY_NAME), None, "a file line has no priority");

        let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/external/samples/microk8s-audit-immudb/syslog");
        let Ok(text) = std::fs::read_to_string(&sample) else {
            eprintln!("SKIPPED the public syslog sample: {} is absent", sample.display());
            return;
        };
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim_matches(|c: char| c == '\0' || c.is_whitespace()).is_empty())
            .collect();
        let unparsed: Vec<&&str> =
            lines.iter().filter(|line| format::parse_syslog_file_line(line).is_none()).collect();
        assert!(
            unparsed.is_empty(),
            "{} of {} lines do not parse, e.g. {:?}",
            unparsed.len(),
            lines.len(),
            unparsed.first()
        );
    }
}
