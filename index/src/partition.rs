//! Time partitions: one tantivy index per span of event time (a day by
//! default), under `index/<start>` (e.g. `index/20250203T000000Z`).
//!
//! An event goes to the partition of its `@timestamp`, however late it
//! arrives. A search opens only the partitions its time range overlaps;
//! retention drops whole partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use tantivy::directory::MmapDirectory;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexReader, IndexSettings, ReloadPolicy};

use crate::doc::{DocSchema, Layout};
use crate::wal::WalPosition;
use crate::{StoreError, store::CommitPayload};

const NAME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// One partition: an index and its reader.
pub(crate) struct Partition {
    /// Start of its span, in seconds since the epoch (inclusive).
    pub start: i64,
    /// End of its span (exclusive).
    pub end: i64,
    pub path: PathBuf,
    pub index: Index,
    pub reader: IndexReader,
    /// What its schema holds (it keeps the one it was created with).
    pub layout: Layout,
}

/// How partitions are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// By the store: created when missing, with stored events at this zstd
    /// level; interrupted deletions finished.
    ReadWrite { store_level: i32 },
    /// By a reader beside a running server (`vigil search`): nothing is
    /// created, written or deleted, and a partition that retention deletes
    /// while it is opened is left out.
    ReadOnly,
}

impl Partition {
    /// Opens or creates a partition. A partition keeps the span it was
    /// created with (in `vigil-span`) and the zstd level of its stored
    /// events (in tantivy's settings), whatever the configuration says later.
    fn open(path: &Path, start: i64, span: i64, access: Access) -> Result<Partition, StoreError> {
        let Access::ReadWrite { store_level } = access else {
            return Partition::open_existing(path, start, span);
        };
        if !path.is_dir() {
            std::fs::create_dir_all(path).map_err(|source| StoreError::io("create", path, source))?;
            // Its name must last as long as the commits made in it.
            if let Some(root) = path.parent() {
                sync_dir(root)?;
            }
        }
        let span_file = path.join("vigil-span");
        // tantivy writes `meta.json` when it creates the index: before, the
        // span file was written but nothing with it. A partition whose index
        // was never created takes the span it is opened with: nothing was
        // written with the one it had.
        let created = path.join("meta.json").exists();
        if !(created && span_file.exists()) {
            crate::durable::write_atomically(&span_file, format!("{span}\n").as_bytes())
                .map_err(|source| StoreError::io("write", &span_file, source))?;
        }
        if created {
            return Partition::open_existing(path, start, span);
        }
        let directory =
            MmapDirectory::open(path).map_err(|error| StoreError::Corrupt { message: error.to_string() })?;
        let settings = IndexSettings {
            // Audit events repeat themselves: zstd over blocks of many events
            // stores them in a tenth of their size. Each hit a search returns
            // decompresses its whole block (the cache holds recent ones), so
            // the block is a trade between bytes and the latency of searches
            // that are not repeated: 64 KiB instead of 256 KiB costs 9 % more
            // bytes and makes such a search's hits about 3 times cheaper.
            // A partition keeps the settings it was created with.
            docstore_compression: Compressor::Zstd(ZstdCompressor { compression_level: Some(store_level) }),
            docstore_blocksize: 64 * 1024,
            ..IndexSettings::default()
        };
        let index =
            Index::builder().schema(DocSchema::new().schema).settings(settings).open_or_create(directory)?;
        Partition::with_index(path, start, span, index)
    }

    /// Opens a partition whose index exists, writing nothing; its span is
    /// the one in `vigil-span`, or `span` without one.
    fn open_existing(path: &Path, start: i64, span: i64) -> Result<Partition, StoreError> {
        let span_file = path.join("vigil-span");
        let span = match std::fs::read_to_string(&span_file) {
            Ok(text) => text.trim().parse::<i64>().ok().filter(|span| *span > 0).ok_or_else(|| {
                StoreError::Corrupt {
                    message: format!("{} holds {text:?}, not a span in seconds", span_file.display()),
                }
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => span,
            Err(source) => return Err(StoreError::io("read", &span_file, source)),
        };
        let directory =
            MmapDirectory::open(path).map_err(|error| StoreError::Corrupt { message: error.to_string() })?;
        // A partition written by an earlier version may differ in a field's
        // options (a column kept or not) and lack the fields added since;
        // the fields it has must be the same, in the same order.
        let index = Index::open(directory)?;
        compatible(&index.schema(), &DocSchema::new().schema)
            .map_err(|why| StoreError::Corrupt { message: format!("{}: {why}", path.display()) })?;
        Partition::with_index(path, start, span, index)
    }

    fn with_index(path: &Path, start: i64, span: i64, index: Index) -> Result<Partition, StoreError> {
        DocSchema::register_tokenizers(index.tokenizers());
        let layout = Layout::of(&index.schema());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Partition { start, end: start + span, path: path.to_owned(), index, reader, layout })
    }

    /// The log position its last commit covers.
    pub fn checkpoint(&self) -> Result<WalPosition, StoreError> {
        let metas = self.index.load_metas()?;
        match metas.payload {
            None => Ok(WalPosition::default()),
            Some(payload) => serde_json::from_str::<CommitPayload>(&payload)
                .map(|payload| payload.wal)
                .map_err(|error| StoreError::Corrupt {
                    message: format!("commit payload of {}: {error}", self.path.display()),
                }),
        }
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        std::fs::read_dir(&self.path)
            .map(|entries| {
                entries.filter_map(|entry| entry.ok()?.metadata().ok()).map(|metadata| metadata.len()).sum()
            })
            .unwrap_or(0)
    }

    pub fn name(&self) -> String {
        partition_name(self.start)
    }
}

/// Makes the names in a directory durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::durable::sync_dir(dir).map_err(|source| StoreError::io("sync", dir, source))
}

/// The suffix of a partition directory being deleted.
const DELETED_SUFFIX: &str = ".deleted";

pub(crate) fn partition_name(start: i64) -> String {
    DateTime::from_timestamp(start, 0).unwrap_or_default().format(NAME_FORMAT).to_string()
}

/// The start of a partition named by [`partition_name`]. A year before 0
/// or after 9999 is written with its sign and as many digits as it takes
/// (`+100000102T000000Z`), which the format cannot read back as one run of
/// digits: the year is split off first, the rest of the name having a fixed
/// length.
fn parse_partition_name(name: &str) -> Option<i64> {
    let time = match name.strip_prefix(['+', '-']) {
        None => NaiveDateTime::parse_from_str(name, NAME_FORMAT).ok()?,
        Some(_) => {
            let (year, rest) = name.split_at_checked(name.len().checked_sub("0102T150405Z".len())?)?;
            NaiveDateTime::parse_from_str(&format!("{year}-{rest}"), "%Y-%m%dT%H%M%SZ").ok()?
        }
    };
    Some(time.and_utc().timestamp())
}

/// Every partition of a data directory, by start.
pub(crate) struct Partitions {
    root: PathBuf,
    span: i64,
    access: Access,
    map: RwLock<BTreeMap<i64, Arc<Partition>>>,
}

impl Partitions {
    /// Opens the partitions under `root` (with `Access::ReadWrite`,
    /// creating `root`).
    pub fn open(root: &Path, span: i64, access: Access) -> Result<Partitions, StoreError> {
        if access != Access::ReadOnly {
            std::fs::create_dir_all(root).map_err(|source| StoreError::io("create", root, source))?;
        }
        let mut map = BTreeMap::new();
        let entries = std::fs::read_dir(root).map_err(|source| StoreError::io("read", root, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::io("read", root, source))?;
            let name = entry.file_name();
            let path = entry.path();
            // A deletion that a crash interrupted (or, read only, that the
            // server is making).
            if name.to_str().is_some_and(|name| name.ends_with(DELETED_SUFFIX)) {
                if access != Access::ReadOnly {
                    std::fs::remove_dir_all(&path)
                        .map_err(|source| StoreError::io("delete partition", &path, source))?;
                }
                continue;
            }
            let Some(start) = name.to_str().and_then(parse_partition_name) else { continue };
            if !path.join("meta.json").exists() {
                continue;
            }
            // A partition keeps the span it was created with.
            let partition = match Partition::open(&path, start, span, access) {
                Ok(partition) => partition,
                // Renamed away by retention while it was being opened.
                Err(_) if access == Access::ReadOnly && !path.join("meta.json").exists() => continue,
                Err(error) => return Err(error),
            };
            map.insert(start, Arc::new(partition));
        }
        Ok(Partitions { root: root.to_owned(), span, access, map: RwLock::new(map) })
    }

    /// The directory the partitions are in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The span of the partitions this store creates, in seconds.
    pub fn span(&self) -> i64 {
        self.span
    }

    /// The start of the partition an event time falls in: the partition
    /// that holds that time, whatever its span; else a new one.
    pub fn start_for(&self, time: DateTime<Utc>) -> i64 {
        let time = time.timestamp();
        let map = self.map.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match holding(&map, time) {
            Some(start) => start,
            None => placement(&map, self.span, time).0,
        }
    }

    pub fn get(&self, start: i64) -> Option<Arc<Partition>> {
        self.map.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&start).cloned()
    }

    pub fn get_or_create(&self, start: i64) -> Result<Arc<Partition>, StoreError> {
        if let Some(existing) = self.get(start) {
            return Ok(existing);
        }
        let span =
            placement(&self.map.read().unwrap_or_else(|poisoned| poisoned.into_inner()), self.span, start).1;
        let path = self.root.join(partition_name(start));
        let partition = Arc::new(Partition::open(&path, start, span, self.access)?);
        let mut map = self.map.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(map.entry(start).or_insert(partition).clone())
    }

    /// Every partition, oldest first.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.map.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect()
    }

    /// The partitions a time range `[from, to)` overlaps, oldest first.
    pub fn overlapping(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Vec<Arc<Partition>> {
        let from = from.map(|time| time.timestamp());
        let to = to.map(|time| time.timestamp() + 1);
        self.all()
            .into_iter()
            .filter(|partition| {
                from.is_none_or(|from| partition.end > from) && to.is_none_or(|to| partition.start < to)
            })
            .collect()
    }

    /// Forgets a partition and deletes its files. It is renamed first (and
    /// the rename made durable), so that a crash meanwhile leaves no half
    /// partition to open: the next start deletes the rest.
    pub fn remove(&self, start: i64) -> Result<(), StoreError> {
        let removed = self.map.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&start);
        if let Some(partition) = removed {
            let mut doomed = partition.path.clone().into_os_string();
            doomed.push(DELETED_SUFFIX);
            let doomed = PathBuf::from(doomed);
            std::fs::rename(&partition.path, &doomed)
                .map_err(|source| StoreError::io("rename partition", &partition.path, source))?;
            sync_dir(&self.root)?;
            match std::fs::remove_dir_all(&doomed) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                removed => removed.map_err(|source| StoreError::io("delete partition", &doomed, source))?,
            }
        }
        Ok(())
    }
}

/// The longest span a partition may have (spans divide a week).
const MAX_SPAN: i64 = 7 * 86_400;

/// The start of the partition that holds `time`, if one does. Versions
/// before 2026-11-25 could create partitions that overlap (a changed span):
/// the latest start that holds it wins, as search finds either.
fn holding(partitions: &BTreeMap<i64, Arc<Partition>>, time: i64) -> Option<i64> {
    partitions
        .range(time.saturating_sub(MAX_SPAN)..=time)
        .rev()
        .find(|(_, partition)| partition.end > time)
        .map(|(start, _)| *start)
}

/// Where a new partition holding `time` goes: `span` seconds aligned on
/// multiples of it, cut short by the partitions around it (written with
/// another span), so that no two partitions overlap. Returns its start and
/// span.
fn placement(partitions: &BTreeMap<i64, Arc<Partition>>, span: i64, time: i64) -> (i64, i64) {
    let aligned = time.div_euclid(span) * span;
    let before = partitions.range(time.saturating_sub(MAX_SPAN)..=time).map(|(_, before)| before.end).max();
    let start = before.map_or(aligned, |end| end.max(aligned));
    let end = aligned.saturating_add(span);
    let end = partitions.range(time.saturating_add(1)..).next().map_or(end, |(next, _)| (*next).min(end));
    (start, end - start)
}

/// Whether a partition's schema has the fields of this version's, by name,
/// order and type (their options may differ), but for the fields added
/// since the first version ([`ADDED_FIELD_PREFIXES`]), which it may lack.
fn compatible(found: &tantivy::schema::Schema, expected: &tantivy::schema::Schema) -> Result<(), String> {
    let found_fields: Vec<_> = found.fields().collect();
    let expected_fields: Vec<_> = expected.fields().collect();
    let lacks_only_added = expected_fields
        .iter()
        .skip(found_fields.len())
        .all(|(_, entry)| ADDED_FIELD_PREFIXES.iter().any(|prefix| entry.name().starts_with(prefix)));
    if found_fields.len() > expected_fields.len() || !lacks_only_added {
        return Err(format!(
            "written by an incompatible version of Vigil ({} fields, this version has {})",
            found_fields.len(),
            expected_fields.len()
        ));
    }
    for ((_, found), (_, expected)) in found_fields.iter().zip(&expected_fields) {
        if found.name() != expected.name()
            || found.field_type().value_type() != expected.field_type().value_type()
        {
            return Err(format!(
                "written by an incompatible version of Vigil (field {} where this version has {})",
                found.name(),
                expected.name()
            ));
        }
    }
    Ok(())
}

/// The fields appended to the schema since the first partitions: the hash
/// columns of identifiers.
const ADDED_FIELD_PREFIXES: &[&str] = &[crate::identifier::HASH_PREFIX];

#[cfg(test)]
mod tests {
    use tantivy::schema::{STORED, STRING, Schema, TEXT};

    use super::{Access, Partition, Partitions, compatible, parse_partition_name, partition_name};

    #[test]
    fn an_event_goes_to_a_partition_that_holds_its_time_even_behind_an_overlapping_one() {
        let dir = tempfile::tempdir().unwrap();
        let day = 1_738_540_800; // 2025-02-03T00:00:00Z
        let time = |hours: i64| chrono::DateTime::from_timestamp(day + hours * 3600, 0).unwrap();
        // As an earlier version left them after the span changed: a day,
        // and an hour inside it.
        for (start, span) in [(day, 86_400), (day + 8 * 3600, 3600)] {
            let partition = Partition::open(
                &dir.path().join(partition_name(start)),
                start,
                span,
                Access::ReadWrite { store_level: 3 },
            )
            .unwrap();
            let mut writer: tantivy::IndexWriter =
                partition.index.writer_with_num_threads(1, 15_000_000).unwrap();
            writer.commit().unwrap();
        }
        let partitions = Partitions::open(dir.path(), 3600, Access::ReadWrite { store_level: 3 }).unwrap();
        assert_eq!(partitions.start_for(time(8)), day + 8 * 3600, "the latest start that holds it");
        assert_eq!(partitions.start_for(time(10)), day, "the day behind the hour");
        assert_eq!(partitions.start_for(time(25)), day + 25 * 3600, "after both: a new hour");
        assert_eq!(partitions.start_for(time(-1)), day - 3600);
    }

    #[test]
    fn every_partition_name_reads_back_as_its_start() {
        let day = 86_400;
        let min = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp().div_euclid(day) * day + day;
        let max = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp().div_euclid(day) * day;
        let year_10000 = 253_402_300_800;
        for start in [
            0,
            1_738_540_800,
            1_738_540_800 + 3600,
            year_10000,
            year_10000 + 86_400,
            -62_201_779_200,
            min,
            max,
        ] {
            let name = partition_name(start);
            assert_eq!(parse_partition_name(&name), Some(start), "{name}");
        }
        assert_eq!(partition_name(year_10000), "+100000101T000000Z");
        for name in ["", "+", "-", "x", "+1234", "20250203", "+10000-01-01T000000Z", "2025020T000000Z"] {
            assert_eq!(parse_partition_name(name), None, "{name}");
        }
    }

    #[test]
    fn a_partition_schema_may_differ_in_options_but_not_in_fields() {
        let mut builder = Schema::builder();
        builder.add_text_field("a", STRING | STORED);
        builder.add_text_field("b", TEXT);
        let expected = builder.build();
        let mut builder = Schema::builder();
        builder.add_text_field("a", STRING);
        builder.add_text_field("b", TEXT | STORED);
        assert_eq!(compatible(&builder.build(), &expected), Ok(()));
        let mut builder = Schema::builder();
        builder.add_text_field("a", STRING);
        builder.add_u64_field("b", STORED);
        assert!(compatible(&builder.build(), &expected).unwrap_err().contains("field b"));
        let mut builder = Schema::builder();
        builder.add_text_field("a", STRING);
        assert!(compatible(&builder.build(), &expected).unwrap_err().contains("1 fields"));
    }

    #[test]
    fn a_partition_may_lack_the_fields_added_since_the_first_version() {
        let mut builder = Schema::builder();
        builder.add_text_field("a", STRING);
        let old = builder.build();
        let mut builder = Schema::builder();
        builder.add_text_field("a", STRING);
        builder.add_u64_field("_hash.a", STORED);
        let expected = builder.build();
        assert_eq!(compatible(&old, &expected), Ok(()));
        assert!(compatible(&expected, &old).is_err(), "a newer version's partition");
        let mut builder = Schema::builder();
        builder.add_text_field("a", STRING);
        builder.add_u64_field("b", STORED);
        assert!(compatible(&old, &builder.build()).is_err(), "b is not an added field");
    }
}
