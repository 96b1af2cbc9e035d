//! The write-ahead log: numbered segment files of length-prefixed,
//! checksummed records, one record per event.
//!
//! ```text
//! wal/00000000000000000001.wal:  [len: u32 LE][crc32: u32 LE][event record (vigil_schema::record)] ...
//! ```
//!
//! An append writes a whole group of batches and fsyncs once (group commit);
//! only then are the batches acknowledged. A write that fails is cut back off
//! the file, so a later append never follows half a record. On open, a torn
//! record at the end of the last segment (a crash in the middle of a write,
//! never acknowledged) is cut off, and appends go to a fresh segment, so that
//! replay only ever reads closed files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_schema::Event;

/// Largest record accepted when reading; a longer length prefix means the
/// file is corrupt.
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;
pub(crate) const HEADER_BYTES: u64 = 8;

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
        fs::create_dir_all(dir)?;
        let segments = list_segments(dir)?;
        let mut end = WalPosition::default();
        if let Some(&last) = segments.last() {
            let path = segment_path(dir, last);
            let valid = valid_length(&path)?;
            let actual = fs::metadata(&path)?.len();
            if valid < actual {
                tracing::warn!(
                    segment = %path.display(), cut_bytes = actual - valid,
                    "cutting a torn record off the end of the write-ahead log (it was never acknowledged)"
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
        for payload in payloads {
            let length = u32::try_from(payload.len())
                .ok()
                .filter(|length| *length <= MAX_RECORD_BYTES)
                .ok_or_else(|| io::Error::other("event too large for the write-ahead log"))?;
            buffer.extend_from_slice(&length.to_le_bytes());
            buffer.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buffer.extend_from_slice(payload);
            positions.push(WalPosition { segment: self.segment, offset: self.len + buffer.len() as u64 });
        }
        let written = self.file.write_all(&buffer).and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // Cut back whatever part of the group reached the file, so the
            // next append starts on a record boundary; if even that fails,
            // the next append starts a new segment (readers stop at the last
            // acknowledged record, and replay skips the unreadable tail).
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
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// The length of the prefix of a segment made of whole, intact records.
fn valid_length(path: &Path) -> io::Result<u64> {
    let mut reader = SegmentReader::open(path, 0)?;
    let mut valid = 0;
    while let Some(record) = reader.next_record() {
        match record {
            Ok((offset, _)) => valid = offset,
            Err(_) => break,
        }
    }
    Ok(valid)
}

/// Reads the records of one segment from an offset.
struct SegmentReader {
    reader: BufReader<File>,
    offset: u64,
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

    /// The next record and the offset just past it; `None` at a clean end.
    fn next_record(&mut self) -> Option<Result<(u64, Vec<u8>), RecordError>> {
        let mut header = [0u8; HEADER_BYTES as usize];
        match read_full(&mut self.reader, &mut header) {
            Ok(0) => return None,
            Ok(n) if n < header.len() => return Some(Err(RecordError::Truncated)),
            Ok(_) => {}
            Err(error) => return Some(Err(RecordError::Io(error))),
        }
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if length > MAX_RECORD_BYTES {
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
        Some(Ok((self.offset, payload)))
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

/// Reads every event after `from` up to `until` (both positions), calling
/// `visit` with each event and the position past it. A damaged record stops
/// the reading of its segment, with an error logged; a whole record (its
/// checksum holds) that is not an event this version reads is skipped
/// alone, with an error logged.
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
        while let Some(record) = reader.next_record() {
            match record {
                Ok((offset, payload)) => match vigil_schema::record::decode(&payload) {
                    Ok(event) => {
                        replayed += 1;
                        visit(event, WalPosition { segment, offset });
                    }
                    Err(error) => {
                        skip_unreadable(segment, offset - payload.len() as u64 - HEADER_BYTES, &error)
                    }
                },
                Err(error) => {
                    tracing::error!(
                        segment = %path.display(), offset = reader.offset, %error,
                        "damaged write-ahead log record: the rest of this segment is skipped"
                    );
                    break;
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

/// Why the log could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading a segment failed: worth trying again.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A record is damaged: the rest of its segment cannot be read.
    #[error("segment {segment} at offset {offset}: {problem}")]
    Damaged { segment: u64, offset: u64, problem: String },
}

/// Reads at most `max_events` events after `from`, none past `until`,
/// calling `visit` with each event, its record's bytes and the position past
/// it; returns the position reached. Unlike [`replay`], it reads while the
/// log is being appended to: `until` must be a durable position, and a
/// damaged record is an error rather than the end of its segment.
pub fn read_range(
    dir: &Path,
    from: WalPosition,
    until: WalPosition,
    max_events: usize,
    visit: &mut dyn FnMut(Event, Vec<u8>, WalPosition),
) -> Result<WalPosition, ReadError> {
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
            Err(error) => return Err(error.into()),
        };
        while let Some(reader) = reader.as_mut()
            && read < max_events
        {
            let damaged = |problem: String| ReadError::Damaged {
                segment: position.segment,
                offset: position.offset,
                problem,
            };
            match reader.next_record() {
                None => break,
                Some(Ok((offset, payload))) => {
                    let next = WalPosition { segment: position.segment, offset };
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
                Some(Err(RecordError::Io(error))) => return Err(error.into()),
                Some(Err(error)) => return Err(damaged(error.to_string())),
            }
        }
        if read >= max_events || position.segment >= until.segment {
            break;
        }
        // This segment is over (the log moved on to a later one): go on to the next.
        match list_segments(dir)?.into_iter().find(|segment| *segment > position.segment) {
            Some(segment) if segment <= until.segment => position = WalPosition { segment, offset: 0 },
            _ => {
                return Err(ReadError::Damaged {
                    segment: position.segment + 1,
                    offset: 0,
                    problem: "no segment holds the rest of the log".into(),
                });
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
