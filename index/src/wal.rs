//! The write-ahead log: numbered segment files of length-prefixed,
//! checksummed records, one record per event.
//!
//! ```text
//! wal/00000000000000000001.wal:  [len: u32 LE][crc32: u32 LE][event record (vigil_schema::record)] ...
//! ```
//!
//! The checksum covers the record. The length's top bit marks the last
//! record of a write group (logs written before it existed have no marks).
//! A record is a JSON object: its first byte is `{`.
//!
//! An append writes a whole group of batches and fsyncs once (group commit);
//! only then are the batches acknowledged. A write that fails is cut back off
//! the file, so a later append never follows half a record. On open, what
//! follows the last whole group of the last segment (a crash in the middle
//! of a write: never acknowledged) is cut off, and appends go to a fresh
//! segment, so that replay only ever reads closed files.
//!
//! A damaged record among acknowledged ones (a failing disk) costs only
//! itself: readers log it and look for the next whole record after it (a
//! plausible length, a `{`, a checksum that holds), so its neighbours are
//! still read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_schema::Event;

/// Largest record accepted when reading; a longer length prefix means the
/// file is corrupt.
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;
pub(crate) const HEADER_BYTES: u64 = 8;
/// The length's top bit: the last record of a write group.
const GROUP_END: u32 = 1 << 31;

/// A place in the log: just past a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WalPosition {
    pub segment: u64,
    pub offset: u64,
}

/// The writing end of the log.
pub struct Wal {
    dir: PathBuf,
    file: File,
    segment: u64,
    len: u64,
    segment_bytes: u64,
    /// A failed write could not be cut back off the segment: the next
    /// append starts a new one, so positions always match the file.
    roll: bool,
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.wal"))
}

/// The segment numbers present in `dir`, in order.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(number) = name.strip_suffix(".wal").and_then(|stem| stem.parse::<u64>().ok()) {
            segments.push(number);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

impl Wal {
    /// Opens the log in `dir`: repairs a torn tail and starts a new segment.
    /// Returns the log and the position where the records written before
    /// this open end.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Wal, WalPosition)> {
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            // The log's own name must be as durable as its segments'.
            crate::durable::sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        }
        let segments = list_segments(dir)?;
        let mut end = WalPosition::default();
        if let Some(&last) = segments.last() {
            let path = segment_path(dir, last);
            let valid = acknowledged_length(&path)?;
            let actual = fs::metadata(&path)?.len();
            if valid < actual {
                tracing::warn!(
                    segment = %path.display(), cut_bytes = actual - valid,
                    "cutting an unfinished write off the end of the write-ahead log (it was never acknowledged)"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(valid)?;
                file.sync_all()?;
            }
            end = WalPosition { segment: last, offset: valid };
        }
        let segment = segments.last().map_or(1, |last| last + 1);
        let file = create_segment(dir, segment)?;
        Ok((Wal { dir: dir.to_owned(), file, segment, len: 0, segment_bytes, roll: false }, end))
    }

    /// Appends events and makes them durable; returns the position past the last.
    pub fn append<'e>(&mut self, events: impl IntoIterator<Item = &'e Event>) -> io::Result<WalPosition> {
        let payloads: Vec<Vec<u8>> = events
            .into_iter()
            .map(vigil_schema::record::encode)
            .collect::<Result<_, _>>()
            .map_err(io::Error::other)?;
        let positions = self.append_payloads(payloads.iter().map(Vec::as_slice))?;
        Ok(positions.last().copied().unwrap_or(WalPosition { segment: self.segment, offset: self.len }))
    }

    /// Appends events already encoded as records (the store serializes each
    /// event once, for the log and for the index's stored copy), makes them
    /// durable, and returns the position just past each record.
    pub fn append_payloads<'p>(
        &mut self,
        payloads: impl IntoIterator<Item = &'p [u8]>,
    ) -> io::Result<Vec<WalPosition>> {
        if self.len >= self.segment_bytes || self.roll {
            self.file = create_segment(&self.dir, self.segment + 1)?;
            self.segment += 1;
            self.len = 0;
            self.roll = false;
        }
        let mut buffer = Vec::new();
        let mut positions = Vec::new();
        let mut last_header = None;
        for payload in payloads {
            let length = u32::try_from(payload.len())
                .ok()
                .filter(|length| (1..=MAX_RECORD_BYTES).contains(length))
                .ok_or_else(|| io::Error::other("event empty or too large for the write-ahead log"))?;
            last_header = Some(buffer.len());
            buffer.extend_from_slice(&length.to_le_bytes());
            buffer.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buffer.extend_from_slice(payload);
            positions.push(WalPosition { segment: self.segment, offset: self.len + buffer.len() as u64 });
        }
        if let Some(at) = last_header {
            buffer[at + 3] |= (GROUP_END >> 24) as u8;
        }
        let written = self.file.write_all(&buffer).and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // Cut back whatever part of the group reached the file, so the
            // next append starts on a record boundary; if even that fails,
            // the next append starts a new segment. (The refused records
            // that reached the file whole stay readable there: a known
            // limit, for a disk that fails both a write and a truncation.)
            if let Err(cut) = self.file.set_len(self.len).and_then(|()| self.file.sync_data()) {
                tracing::error!(%cut, segment = self.segment, "cannot cut a failed write off the write-ahead log; starting a new segment");
                self.roll = true;
            }
            return Err(error);
        }
        self.len += buffer.len() as u64;
        Ok(positions)
    }

    /// Deletes the segments wholly before `position`.
    pub fn delete_before(dir: &Path, position: WalPosition) -> io::Result<usize> {
        let mut deleted = 0;
        for segment in list_segments(dir)? {
            if segment < position.segment {
                fs::remove_file(segment_path(dir, segment))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

fn create_segment(dir: &Path, segment: u64) -> io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(segment_path(dir, segment))?;
    // The new file's name must be durable too.
    crate::durable::sync_dir(dir)?;
    Ok(file)
}

/// The length of a segment's acknowledged part: up to the end of its last
/// whole write group. A damaged record before that is logged and skipped
/// (its neighbours are kept). In a segment without group marks (written
/// by an earlier version, or whose first group is unfinished), the part
/// before the first damaged record.
fn acknowledged_length(path: &Path) -> io::Result<u64> {
    let mut reader = SegmentReader::open(path, 0)?;
    let mut group_end = None;
    let mut first_damage = None;
    let mut damaged = Vec::new();
    let mut valid = 0;
    while let Some(record) = reader.next_record() {
        match record {
            Ok(record) => {
                valid = record.end;
                if record.group_end {
                    group_end = Some(record.end);
                }
            }
            Err(RecordError::Io(error)) => return Err(error),
            Err(_) => {
                let at = reader.offset;
                first_damage.get_or_insert(at);
                match reader.resync(u64::MAX)? {
                    Some(next) => damaged.push((at, next)),
                    None => break,
                }
            }
        }
    }
    let Some(group_end) = group_end else { return Ok(first_damage.unwrap_or(valid)) };
    for (from, to) in damaged.into_iter().filter(|(from, _)| *from < group_end) {
        tracing::error!(
            segment = %path.display(), from, to,
            "damaged write-ahead log records among acknowledged ones: these bytes are skipped, the records after them are kept"
        );
    }
    Ok(group_end)
}

/// The offset in `bytes` of the first whole record: a plausible length, a
/// payload that starts with `{`, a checksum that holds.
fn find_record(bytes: &[u8]) -> Option<usize> {
    let header = HEADER_BYTES as usize;
    (0..bytes.len().saturating_sub(header)).find(|&at| {
        let word = |from: usize| {
            u32::from_le_bytes([bytes[from], bytes[from + 1], bytes[from + 2], bytes[from + 3]])
        };
        let length = (word(at) & !GROUP_END) as usize;
        let payload = at + header;
        (1..=MAX_RECORD_BYTES as usize).contains(&length)
            && payload + length <= bytes.len()
            && bytes[payload] == b'{'
            && crc32fast::hash(&bytes[payload..payload + length]) == word(at + 4)
    })
}

/// Reads the records of one segment from an offset.
struct SegmentReader {
    reader: BufReader<File>,
    offset: u64,
}

/// A record read back.
struct Record {
    /// The offset just past it.
    end: u64,
    payload: Vec<u8>,
    /// The last record of its write group.
    group_end: bool,
}

/// A record that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("truncated record")]
    Truncated,
    #[error("record fails its checksum")]
    Checksum,
    #[error("record length {0} is implausible")]
    Length(u32),
    #[error(transparent)]
    Io(io::Error),
}

impl SegmentReader {
    fn open(path: &Path, offset: u64) -> io::Result<SegmentReader> {
        let mut file = File::open(path)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
        Ok(SegmentReader { reader: BufReader::with_capacity(1 << 20, file), offset })
    }

    /// The next record; `None` at a clean end. After an error, `offset` is
    /// where the record that failed starts.
    fn next_record(&mut self) -> Option<Result<Record, RecordError>> {
        let mut header = [0u8; HEADER_BYTES as usize];
        match read_full(&mut self.reader, &mut header) {
            Ok(0) => return None,
            Ok(n) if n < header.len() => return Some(Err(RecordError::Truncated)),
            Ok(_) => {}
            Err(error) => return Some(Err(RecordError::Io(error))),
        }
        let marked = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let length = marked & !GROUP_END;
        let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // No record is empty: a run of zeros (a file extended but never
        // written, after a crash) is not a run of records.
        if length == 0 || length > MAX_RECORD_BYTES {
            return Some(Err(RecordError::Length(length)));
        }
        let payload = match read_payload(&mut self.reader, length as usize) {
            Ok(payload) if payload.len() < length as usize => return Some(Err(RecordError::Truncated)),
            Ok(payload) => payload,
            Err(error) => return Some(Err(RecordError::Io(error))),
        };
        if crc32fast::hash(&payload) != checksum {
            return Some(Err(RecordError::Checksum));
        }
        self.offset += HEADER_BYTES + u64::from(length);
        Some(Ok(Record { end: self.offset, payload, group_end: marked & GROUP_END != 0 }))
    }

    /// After a damaged record (at `offset`): moves to the next whole record
    /// before `limit` and returns its offset, or to `limit` (or the end of
    /// the file) and returns `None` when there is none.
    fn resync(&mut self, limit: u64) -> io::Result<Option<u64>> {
        let from = self.offset + 1;
        let limit = limit.min(self.reader.get_ref().metadata()?.len());
        io::Seek::seek(&mut self.reader, io::SeekFrom::Start(from))?;
        let mut rest = Vec::new();
        #[allow(clippy::disallowed_methods, reason = "bounded by take: the rest of one segment at most")]
        (&mut self.reader).take(limit.saturating_sub(from)).read_to_end(&mut rest)?;
        let found = find_record(&rest).map(|at| from + at as u64);
        self.offset = found.unwrap_or(from + rest.len() as u64);
        io::Seek::seek(&mut self.reader, io::SeekFrom::Start(self.offset))?;
        Ok(found)
    }
}

/// Up to `length` bytes, copied from the reader's buffer (a record's bytes
/// are written once, not zeroed first); fewer at the end of the file.
fn read_payload(reader: &mut impl BufRead, length: usize) -> io::Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(length);
    while payload.len() < length {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            break;
        }
        let taken = available.len().min(length - payload.len());
        payload.extend_from_slice(&available[..taken]);
        reader.consume(taken);
    }
    Ok(payload)
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Reads every event after `from` up to `until` (both positions, `until`
/// included; the log may be appended to past it meanwhile), calling
/// `visit` with each event and the position past it. A damaged record is
/// skipped, with an error logged, and reading goes on at the next whole
/// record; so is a whole record (its checksum holds) that is not an event
/// this version reads.
pub fn replay(
    dir: &Path,
    from: WalPosition,
    until: WalPosition,
    visit: &mut dyn FnMut(Event, WalPosition),
) -> io::Result<u64> {
    let mut replayed = 0;
    for segment in list_segments(dir)? {
        if segment < from.segment || segment > until.segment {
            continue;
        }
        let start = if segment == from.segment { from.offset } else { 0 };
        let path = segment_path(dir, segment);
        let mut reader = SegmentReader::open(&path, start)?;
        loop {
            // The log may be appended to meanwhile: nothing past `until`
            // is read (a record being written there would read as damaged).
            if segment == until.segment && reader.offset >= until.offset {
                break;
            }
            let Some(record) = reader.next_record() else { break };
            match record {
                Ok(Record { end, .. }) if (WalPosition { segment, offset: end }) > until => break,
                Ok(Record { end, payload, .. }) => match vigil_schema::record::decode(&payload) {
                    Ok(event) => {
                        replayed += 1;
                        visit(event, WalPosition { segment, offset: end });
                    }
                    Err(error) => skip_unreadable(segment, end - payload.len() as u64 - HEADER_BYTES, &error),
                },
                Err(RecordError::Io(error)) => return Err(error),
                Err(error) => {
                    let at = reader.offset;
                    let next = reader.resync(u64::MAX)?;
                    skip_damaged(segment, at, next, &error);
                    if next.is_none() {
                        break;
                    }
                }
            }
        }
    }
    Ok(replayed)
}

/// Logs a whole record (its checksum holds) that is not an event this
/// version reads, at a segment's offset: it is skipped, its neighbours are
/// not.
fn skip_unreadable(segment: u64, offset: u64, error: &serde_json::Error) {
    tracing::error!(segment, offset, %error, "a write-ahead log record is not an event this version reads; it alone is skipped");
}

/// Logs a damaged record at a segment's offset, and where reading resumes.
fn skip_damaged(segment: u64, offset: u64, resumed_at: Option<u64>, error: &RecordError) {
    match resumed_at {
        Some(resumed_at) => tracing::error!(
            segment, offset, resumed_at, %error,
            "damaged write-ahead log record: its bytes are skipped, the records after them are read"
        ),
        None => tracing::error!(
            segment, offset, %error,
            "damaged write-ahead log record: no whole record follows it in its segment"
        ),
    }
}

/// How many whole records the log holds after `from`, read while it may be
/// written: a record still being written, or a segment deleted meanwhile,
/// ends the count there.
pub fn count_after(dir: &Path, from: WalPosition) -> io::Result<u64> {
    let mut count = 0;
    for segment in list_segments(dir)? {
        if segment < from.segment {
            continue;
        }
        let start = if segment == from.segment { from.offset } else { 0 };
        let mut reader = match SegmentReader::open(&segment_path(dir, segment), start) {
            Ok(reader) => reader,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        while let Some(Ok(_)) = reader.next_record() {
            count += 1;
        }
    }
    Ok(count)
}

/// Reads at most `max_events` events after `from`, none past `until`,
/// calling `visit` with each event, its record's bytes and the position past
/// it; returns the position reached. Unlike [`replay`], it reads while the
/// log is being appended to: `until` must be a durable position. A damaged
/// record is skipped as in [`replay`]; an I/O error is returned (worth
/// trying again).
pub fn read_range(
    dir: &Path,
    from: WalPosition,
    until: WalPosition,
    max_events: usize,
    visit: &mut dyn FnMut(Event, Vec<u8>, WalPosition),
) -> io::Result<WalPosition> {
    let mut position = from;
    let mut read = 0;
    while position < until && read < max_events {
        let path = segment_path(dir, position.segment);
        let mut reader = match File::open(&path) {
            Ok(mut file) => {
                io::Seek::seek(&mut file, io::SeekFrom::Start(position.offset))?;
                Some(SegmentReader {
                    reader: BufReader::with_capacity(256 * 1024, file),
                    offset: position.offset,
                })
            }
            // Segment 0 never exists: it is where a consumer that has read
            // nothing stands.
            Err(error) if error.kind() == io::ErrorKind::NotFound && position.segment == 0 => None,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                tracing::error!(segment = %path.display(), "a write-ahead log segment is missing; its events are skipped");
                None
            }
            Err(error) => return Err(error),
        };
        // What is durable in this segment.
        let limit = if position.segment == until.segment { until.offset } else { u64::MAX };
        while let Some(reader) = reader.as_mut()
            && read < max_events
        {
            match reader.next_record() {
                None => break,
                Some(Ok(Record { end, payload, .. })) => {
                    let next = WalPosition { segment: position.segment, offset: end };
                    if next > until {
                        return Ok(position);
                    }
                    match vigil_schema::record::decode(&payload) {
                        Ok(event) => visit(event, payload, next),
                        Err(error) => skip_unreadable(position.segment, position.offset, &error),
                    }
                    position = next;
                    read += 1;
                }
                Some(Err(RecordError::Io(error))) => return Err(error),
                Some(Err(error)) => {
                    let next = reader.resync(limit)?;
                    skip_damaged(position.segment, position.offset, next, &error);
                    match next {
                        Some(offset) => position.offset = offset,
                        None if position.segment == until.segment => return Ok(until),
                        None => break,
                    }
                }
            }
        }
        if read >= max_events || position.segment >= until.segment {
            break;
        }
        // This segment is over (the log moved on to a later one): go on to the next.
        match list_segments(dir)?.into_iter().find(|segment| *segment > position.segment) {
            Some(segment) if segment <= until.segment => position = WalPosition { segment, offset: 0 },
            _ => {
                tracing::error!(
                    after = position.segment,
                    "no write-ahead log segment holds the rest of the log; the events up to the durable end are skipped"
                );
                return Ok(until);
            }
        }
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use vigil_schema::EventIdGenerator;

    use super::*;

    fn events(count: usize) -> Vec<Event> {
        let ids = EventIdGenerator::new();
        (0..count).map(|n| Event::new(ids.next(), Utc::now(), json!({"n": n}))).collect()
    }

    #[test]
    fn records_after_a_position_are_counted_across_segments_up_to_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 100).unwrap();
        let middle = wal.append(&events(4)).unwrap();
        wal.append(&events(2)).unwrap();
        let end = wal.append(&events(3)).unwrap();
        assert!(list_segments(dir.path()).unwrap().len() > 1, "the count crosses segments");
        assert_eq!(count_after(dir.path(), WalPosition::default()).unwrap(), 9);
        assert_eq!(count_after(dir.path(), middle).unwrap(), 5);
        assert_eq!(count_after(dir.path(), end).unwrap(), 0);
        // Half a record at the end (being written) is not counted.
        let last = segment_path(dir.path(), *list_segments(dir.path()).unwrap().last().unwrap());
        let mut file = OpenOptions::new().append(true).open(last).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        assert_eq!(count_after(dir.path(), middle).unwrap(), 5);
        assert_eq!(
            count_after(&dir.path().join("nowhere"), middle).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    fn read_all(dir: &Path) -> Vec<Event> {
        let mut seen = Vec::new();
        replay(dir, WalPosition::default(), WalPosition { segment: u64::MAX, offset: 0 }, &mut |event, _| {
            seen.push(event)
        })
        .unwrap();
        seen
    }

    #[test]
    fn appended_events_replay_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let written = events(50);
        let (mut wal, _) = Wal::open(dir.path(), 2000).unwrap();
        for chunk in written.chunks(7) {
            wal.append(chunk).unwrap();
        }
        assert!(list_segments(dir.path()).unwrap().len() > 2);
        assert_eq!(read_all(dir.path()), written);
    }

    #[test]
    fn a_torn_tail_is_cut_off_on_open_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let written = events(3);
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let end = wal.append(&written).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), end.segment);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        let (mut wal, reopened_end) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reopened_end, end);
        assert_eq!(fs::metadata(&path).unwrap().len(), end.offset);
        let more = events(2);
        wal.append(&more).unwrap();
        let all = read_all(dir.path());
        assert_eq!(all.len(), 5);
    }

    /// The offsets at which the records of a segment start.
    fn record_starts(path: &Path) -> Vec<usize> {
        let bytes = fs::read(path).unwrap();
        let mut starts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            starts.push(at);
            let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) & !GROUP_END;
            at += HEADER_BYTES as usize + length as usize;
        }
        starts
    }

    fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = fs::read(path).unwrap();
        change(&mut bytes);
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_damaged_record_among_acknowledged_ones_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let written = events(15);
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        for group in written.chunks(5) {
            wal.append(group).unwrap();
        }
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let length = fs::metadata(&path).unwrap().len();
        // A bit flips in the payload of the second record, and the length
        // of the seventh is garbled.
        let starts = record_starts(&path);
        edit(&path, |bytes| {
            bytes[starts[1] + 20] ^= 0x40;
            bytes[starts[6] + 2] ^= 0x7f;
        });
        let (_, end) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(end, WalPosition { segment: 1, offset: length }, "nothing is cut");
        assert_eq!(fs::metadata(&path).unwrap().len(), length);
        let mut expected = written.clone();
        expected.remove(6);
        expected.remove(1);
        assert_eq!(read_all(dir.path()), expected);
        let mut read_back = Vec::new();
        read_range(dir.path(), WalPosition::default(), end, 100, &mut |event, _, _| read_back.push(event))
            .unwrap();
        assert_eq!(read_back, expected);
        // Read back only up to the damaged record: it ends there, without
        // looking past it.
        let mut read_back = Vec::new();
        let just_past = WalPosition { segment: 1, offset: starts[2] as u64 };
        let reached = read_range(dir.path(), WalPosition::default(), just_past, 100, &mut |event, _, _| {
            read_back.push(event)
        })
        .unwrap();
        assert_eq!((reached, read_back), (just_past, vec![written[0].clone()]));
    }

    #[test]
    fn an_unfinished_group_is_cut_even_when_some_of_its_records_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let acknowledged = wal.append(&events(3)).unwrap();
        wal.append(&events(4)).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        // A crash while the second group was written: its second record
        // never reached the disk (zeros), nor did the mark of its end.
        let starts = record_starts(&path);
        edit(&path, |bytes| {
            bytes[starts[4]..starts[5]].fill(0);
            bytes[starts[6] + 3] &= !((GROUP_END >> 24) as u8);
        });
        let (_, end) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(end, acknowledged);
        assert_eq!(fs::metadata(&path).unwrap().len(), acknowledged.offset);
        assert_eq!(read_all(dir.path()).len(), 3);
    }

    #[test]
    fn zeros_after_the_last_group_are_not_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let written = events(2);
        let acknowledged = wal.append(&written).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        edit(&path, |bytes| bytes.extend_from_slice(&[0; 4096]));
        assert_eq!(read_all(dir.path()), written, "zeros read as no record");
        let (_, end) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(end, acknowledged);
        assert_eq!(fs::metadata(&path).unwrap().len(), acknowledged.offset);
    }

    #[test]
    fn a_log_without_group_marks_is_cut_at_its_first_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        wal.append(&events(4)).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        // As an earlier version wrote it, with a damaged third record.
        let starts = record_starts(&path);
        edit(&path, |bytes| {
            bytes[starts[3] + 3] &= !((GROUP_END >> 24) as u8);
            bytes[starts[2] + 20] ^= 0x40;
        });
        let (_, end) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(end, WalPosition { segment: 1, offset: starts[2] as u64 });
        assert_eq!(read_all(dir.path()).len(), 2);
    }

    #[test]
    fn replay_stops_at_its_end_within_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let written = events(6);
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let middle = wal.append(&written[..2]).unwrap();
        wal.append(&written[2..]).unwrap();
        // A record being written after it, as while the log is live.
        let path = segment_path(dir.path(), middle.segment);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        let mut seen = Vec::new();
        replay(dir.path(), WalPosition::default(), middle, &mut |event, _| seen.push(event)).unwrap();
        assert_eq!(seen, written[..2]);
    }

    #[test]
    fn replay_starts_after_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let written = events(10);
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let middle = wal.append(&written[..4]).unwrap();
        let end = wal.append(&written[4..]).unwrap();
        let mut seen = Vec::new();
        replay(dir.path(), middle, end, &mut |event, _| seen.push(event)).unwrap();
        assert_eq!(seen, written[4..]);
    }

    /// A record whose frame is whole but which is not an event (written by
    /// a version with another record format, or by a bug) costs only itself.
    #[test]
    fn a_whole_record_that_is_not_an_event_is_skipped_alone() {
        let dir = tempfile::tempdir().unwrap();
        let written = events(2);
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let records: Vec<Vec<u8>> = vec![
            vigil_schema::record::encode(&written[0]).unwrap(),
            b"{\"not\": \"an event\"}".to_vec(),
            vigil_schema::record::encode(&written[1]).unwrap(),
        ];
        let positions = wal.append_payloads(records.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(read_all(dir.path()), written);
        let mut read_back = Vec::new();
        let end =
            read_range(dir.path(), WalPosition::default(), positions[2], 10, &mut |event, _, position| {
                read_back.push((event, position))
            })
            .unwrap();
        assert_eq!(end, positions[2]);
        assert_eq!(read_back, vec![(written[0].clone(), positions[0]), (written[1].clone(), positions[2])]);
    }

    #[test]
    fn a_flipped_bit_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let end = wal.append(&events(2)).unwrap();
        let path = segment_path(dir.path(), end.segment);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        fs::write(&path, bytes).unwrap();
        assert_eq!(read_all(dir.path()).len(), 1);
    }

    #[test]
    fn a_full_disk_fails_the_append_with_the_os_error() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            eprintln!("SKIPPED a_full_disk_fails_the_append_with_the_os_error: /dev/full is absent");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = OpenOptions::new().append(true).open(full).unwrap();
        let mut wal =
            Wal { dir: dir.path().to_owned(), file, segment: 1, len: 0, segment_bytes: 1 << 20, roll: false };
        let error = wal.append(&events(3)).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(28), "ENOSPC: {error}");
        assert_eq!(wal.len, 0, "nothing counted as written");
    }
}
