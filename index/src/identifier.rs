//! Identifier fields (`kubernetes.audit.id`): one value per request, found
//! by its whole value, never aggregated.
//!
//! A term dictionary of unique ids is the costliest part of an index that
//! holds them: 39 bytes per event for audit ids, where the rest of the
//! event's terms take about 90. So partitions keep a 32-bit hash of each
//! (lower-cased) id in a column instead (`_hash.<field>`, 4 bytes per
//! event), and a search for an id reads the column for the documents with
//! its hash, then reads each of those few documents' stored record to keep
//! only those that hold the id itself. Results stay exact; wildcards,
//! patterns and ranges do not apply to identifiers.
//!
//! Partitions written before (without the column) indexed each id as a
//! term: the same query reads that term's postings there.

use tantivy::query::{ConstScorer, EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption, Value as _};
use tantivy::{DocId, DocSet, Score, SegmentReader, TantivyDocument, Term};

use crate::bits::DocBits;

/// The column of an identifier field's hashes is named with this prefix.
pub const HASH_PREFIX: &str = "_hash.";

/// The name of the hash column of an identifier field.
pub fn hash_field_name(name: &str) -> String {
    format!("{HASH_PREFIX}{name}")
}

/// The hash kept for an identifier: 64-bit FNV-1a over its lower-cased
/// UTF-8, folded to 32 bits. Stored on disk: it may never change.
pub fn hash(value: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for character in lower_case(value) {
        let mut buffer = [0u8; 4];
        for byte in character.encode_utf8(&mut buffer).bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    }
    (hash >> 32) ^ (hash & 0xffff_ffff)
}

/// The characters of a value, lower-cased one by one (as hashed and compared).
pub(crate) fn lower_case(value: &str) -> impl Iterator<Item = char> + '_ {
    value.chars().flat_map(char::to_lowercase)
}

/// What an identifier query matches.
#[derive(Debug, Clone)]
pub(crate) enum Wanted {
    /// This value, case ignored unless `exact`.
    Value { value: String, exact: bool },
    /// Any value.
    Any,
}

/// Events whose identifier field (`name`) holds a value, or any value.
#[derive(Debug, Clone)]
pub(crate) struct IdentifierQuery {
    pub name: &'static str,
    /// The field as earlier partitions indexed it: lower-cased terms.
    pub text: Field,
    /// The record of each event, to check candidates against.
    pub doc: Field,
    pub wanted: Wanted,
}

impl Query for IdentifierQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl IdentifierQuery {
    /// The matching documents of a segment, in order.
    fn matching(&self, reader: &SegmentReader) -> tantivy::Result<Vec<DocId>> {
        let hash_name = hash_field_name(self.name);
        let hashed = reader.schema().get_field(&hash_name).is_ok();
        let candidates = match (&self.wanted, hashed) {
            (Wanted::Any, true) => {
                let mut docs = Vec::new();
                let column = reader.fast_fields().u64(&hash_name)?;
                column.get_docids_for_value_range(0..=u64::MAX, 0..reader.max_doc(), &mut docs);
                docs.retain(|doc| is_alive(reader, *doc));
                return Ok(docs);
            }
            (Wanted::Any, false) => {
                let mut docs = Vec::new();
                let index = reader.inverted_index(self.text)?;
                let mut terms = index.terms().stream()?;
                while let Some((_, info)) = terms.next() {
                    let mut postings = index.read_postings_from_terminfo(info, IndexRecordOption::Basic)?;
                    collect(&mut postings, &mut docs);
                }
                docs.sort_unstable();
                docs.dedup();
                docs.retain(|doc| is_alive(reader, *doc));
                return Ok(docs);
            }
            (Wanted::Value { value, .. }, true) => {
                let mut docs = Vec::new();
                let column = reader.fast_fields().u64(&hash_name)?;
                let hash = hash(value);
                column.get_docids_for_value_range(hash..=hash, 0..reader.max_doc(), &mut docs);
                docs
            }
            (Wanted::Value { value, .. }, false) => {
                let term = Term::from_field_text(self.text, &crate::compile::lower_case(value));
                let mut docs = Vec::new();
                if let Some(mut postings) =
                    reader.inverted_index(self.text)?.read_postings(&term, IndexRecordOption::Basic)?
                {
                    collect(&mut postings, &mut docs);
                }
                docs
            }
        };
        let Wanted::Value { value, exact } = &self.wanted else { return Ok(candidates) };
        if !hashed && !exact {
            return Ok(candidates.into_iter().filter(|doc| is_alive(reader, *doc)).collect());
        }
        // A hash is shared by other values, and terms ignore case: the
        // stored events have the last word.
        let store = reader.get_store_reader(1)?;
        let mut matching = Vec::with_capacity(candidates.len());
        for doc in candidates.into_iter().filter(|doc| is_alive(reader, *doc)) {
            let document: TantivyDocument = store.get(doc)?;
            let bytes = document.get_first(self.doc).and_then(|value| value.as_bytes()).unwrap_or_default();
            let event = vigil_schema::record::decode(bytes)
                .map_err(|error| tantivy::TantivyError::InternalError(format!("stored event: {error}")))?;
            let held = event.fields.get(self.name).and_then(serde_json::Value::as_str).unwrap_or_default();
            let same = if *exact { held == value } else { lower_case(held).eq(lower_case(value)) };
            if same {
                matching.push(doc);
            }
        }
        Ok(matching)
    }
}

fn is_alive(reader: &SegmentReader, doc: DocId) -> bool {
    reader.alive_bitset().is_none_or(|alive| alive.is_alive(doc))
}

fn collect(postings: &mut impl DocSet, docs: &mut Vec<DocId>) {
    let mut doc = postings.doc();
    while doc != tantivy::TERMINATED {
        docs.push(doc);
        doc = postings.advance();
    }
}

impl Weight for IdentifierQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let docs = self.matching(reader)?;
        if docs.is_empty() {
            return Ok(Box::new(EmptyScorer));
        }
        let mut bits = DocBits::empty(reader.max_doc());
        docs.into_iter().for_each(|doc| bits.insert(doc));
        Ok(Box::new(ConstScorer::new(bits.into_doc_set(), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.matching(reader)?.binary_search(&doc).is_err() {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "{doc} does not match {}",
                self.name
            )));
        }
        Ok(Explanation::new("identifier", 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::hash;

    #[test]
    fn the_hash_ignores_case_and_never_changes() {
        assert_eq!(
            hash("5147CBA9-4AE8-4AE8-8B5F-000000094AE8"),
            hash("5147cba9-4ae8-4ae8-8b5f-000000094ae8")
        );
        // Partitions on disk hold these: pinned.
        assert_eq!(hash(""), 0xcbf29ce4 ^ 0x84222325);
        assert_eq!(hash("5147cba9-4ae8-4ae8-8b5f-000000094ae8"), 0x812b_fca5);
        assert_ne!(hash("a"), hash("b"));
    }
}
