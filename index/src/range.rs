//! Ranges on number and address fields. Each segment picks its way: the
//! inverted index when few distinct values, held by few documents, fall in
//! the range (a rare status class, a /24: a handful of postings lists, which
//! skip straight to the documents an intersection asks for); the fast column
//! when many values do (a /8 over every address: one scan beats a union of
//! thousands of lists), or when most documents match (`[200 TO 299]`: an
//! intersection led by a rarer term checks each of its documents' values
//! in the column, where a union of postings would walk them all).
//!
//! A dense range over a column with one value per document (a status code)
//! is better read by what it leaves out: its documents are all but those of
//! the few values outside it. The segment then marks every document, clears
//! those of the outside values' postings, and an intersection checks a bit
//! for each of its documents instead of decoding a column value.

use std::ops::Bound;

use tantivy::columnar::Cardinality;
use tantivy::postings::TermInfo;
use tantivy::query::{
    ConstScorer, EnableScoring, Explanation, InvertedIndexRangeQuery, Query, RangeQuery, Scorer, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::termdict::{TermDictionary, TermStreamer};
use tantivy::{DocId, DocSet, Score, SegmentReader, Term};

use crate::bits::DocBits;

/// Distinct values in range up to which a segment reads their postings.
const MAX_POSTINGS_TERMS: usize = 256;
/// The share of a segment's documents (one in this many) past which a
/// range is dense and read from the column.
const DENSE_ONE_IN: u64 = 8;

/// A range over an indexed, fast number or IP field.
#[derive(Debug, Clone)]
pub(crate) struct NumericRangeQuery {
    field: Field,
    lower: Bound<Term>,
    upper: Bound<Term>,
}

impl NumericRangeQuery {
    pub(crate) fn new(field: Field, lower: Bound<Term>, upper: Bound<Term>) -> NumericRangeQuery {
        NumericRangeQuery { field, lower, upper }
    }
}

impl Query for NumericRangeQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let value = |bound: &Bound<Term>| match bound {
            Bound::Included(term) => Bound::Included(term.serialized_value_bytes().to_vec()),
            Bound::Excluded(term) => Bound::Excluded(term.serialized_value_bytes().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok(Box::new(NumericRangeWeight {
            field: self.field,
            lower: value(&self.lower),
            upper: value(&self.upper),
            postings: InvertedIndexRangeQuery::new(self.lower.clone(), self.upper.clone()).weight(scoring)?,
            column: RangeQuery::new(self.lower.clone(), self.upper.clone()).weight(scoring)?,
        }))
    }
}

struct NumericRangeWeight {
    field: Field,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    postings: Box<dyn Weight>,
    column: Box<dyn Weight>,
}

/// The values between a lower and an upper bound (serialized, as terms).
type ValueRange<'b> = (Bound<&'b [u8]>, Bound<&'b [u8]>);

/// How a segment reads a range: through one of the query's weights (the
/// postings of the values in range, or the column), or as every document
/// but those outside the range.
enum Way<'w> {
    Weight(&'w dyn Weight),
    AllBut(AllBut),
}

impl Way<'_> {
    fn weight(&self) -> &dyn Weight {
        match self {
            Way::Weight(weight) => *weight,
            Way::AllBut(all_but) => all_but,
        }
    }
}

impl NumericRangeWeight {
    /// The postings when the segment holds few values in range, on few
    /// documents; else, when the column has one value per document and
    /// few documents lie outside the range, all documents but those; else
    /// the column.
    fn pick(&self, reader: &SegmentReader) -> tantivy::Result<Way<'_>> {
        let index = reader.inverted_index(self.field)?;
        let terms = index.terms();
        let mut inside = bounded(terms, as_slice(self.lower.as_ref()), as_slice(self.upper.as_ref()))?;
        let (mut count, mut documents) = (0, 0u64);
        while inside.advance() {
            count += 1;
            documents += u64::from(inside.value().doc_freq);
            if count > MAX_POSTINGS_TERMS {
                break;
            }
        }
        if count <= MAX_POSTINGS_TERMS && documents * DENSE_ONE_IN <= u64::from(reader.max_doc()) {
            return Ok(Way::Weight(self.postings.as_ref()));
        }
        Ok(match self.outside(reader, terms)? {
            Some(outside) => Way::AllBut(AllBut { field: self.field, outside }),
            None => Way::Weight(self.column.as_ref()),
        })
    }

    /// The values outside the range, when every document holds exactly one
    /// value of the field and few documents hold those.
    fn outside(
        &self,
        reader: &SegmentReader,
        terms: &TermDictionary,
    ) -> tantivy::Result<Option<Vec<TermInfo>>> {
        let name = reader.schema().get_field_name(self.field);
        let handles = reader.fast_fields().dynamic_column_handles(name)?;
        let [handle] = handles.as_slice() else { return Ok(None) };
        if handle.open()?.get_cardinality() != Cardinality::Full {
            return Ok(None);
        }
        // Below the lower bound, above the upper one.
        let mut ranges = Vec::with_capacity(2);
        if let lower @ (Bound::Included(_) | Bound::Excluded(_)) = self.lower.as_ref() {
            ranges.push((Bound::Unbounded, flip(lower)));
        }
        if let upper @ (Bound::Included(_) | Bound::Excluded(_)) = self.upper.as_ref() {
            ranges.push((flip(upper), Bound::Unbounded));
        }
        few(terms, &ranges, reader)
    }
}

/// The values in these ranges, if there are few, on few documents.
fn few(
    terms: &TermDictionary,
    ranges: &[ValueRange<'_>],
    reader: &SegmentReader,
) -> tantivy::Result<Option<Vec<TermInfo>>> {
    let (mut infos, mut documents) = (Vec::new(), 0u64);
    for &(lower, upper) in ranges {
        let mut stream = bounded(terms, lower, upper)?;
        while stream.advance() {
            infos.push(stream.value().clone());
            documents += u64::from(stream.value().doc_freq);
            if infos.len() > MAX_POSTINGS_TERMS || documents * DENSE_ONE_IN > u64::from(reader.max_doc()) {
                return Ok(None);
            }
        }
    }
    Ok(Some(infos))
}

/// A term stream over the values between two bounds.
fn bounded<'a>(
    terms: &'a TermDictionary,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
) -> std::io::Result<TermStreamer<'a>> {
    let mut range = terms.range();
    range = match lower {
        Bound::Included(bytes) => range.ge(bytes),
        Bound::Excluded(bytes) => range.gt(bytes),
        Bound::Unbounded => range,
    };
    range = match upper {
        Bound::Included(bytes) => range.le(bytes),
        Bound::Excluded(bytes) => range.lt(bytes),
        Bound::Unbounded => range,
    };
    range.into_stream()
}

fn as_slice(bound: Bound<&Vec<u8>>) -> Bound<&[u8]> {
    bound.map(Vec::as_slice)
}

/// The other side of a bound: what lies below a lower bound ends there,
/// what lies above an upper bound starts there.
fn flip(bound: Bound<&Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(bytes) => Bound::Excluded(bytes.as_slice()),
        Bound::Excluded(bytes) => Bound::Included(bytes.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Weight for NumericRangeWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        self.pick(reader)?.weight().scorer(reader, boost)
    }

    fn scorer_danger(
        &self,
        reader: &SegmentReader,
        target: DocId,
        boost: Score,
    ) -> tantivy::Result<(tantivy::SeekDangerResult, Box<dyn Scorer>)> {
        self.pick(reader)?.weight().scorer_danger(reader, target, boost)
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.pick(reader)?.weight().explain(reader, doc)
    }

    fn count(&self, reader: &SegmentReader) -> tantivy::Result<u32> {
        self.pick(reader)?.weight().count(reader)
    }
}

/// Every document of a segment but those of the values outside a range.
struct AllBut {
    field: Field,
    outside: Vec<TermInfo>,
}

impl Weight for AllBut {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let index = reader.inverted_index(self.field)?;
        let mut documents = DocBits::full(reader.max_doc());
        for info in &self.outside {
            let mut postings = index.read_block_postings_from_terminfo(info, IndexRecordOption::Basic)?;
            while !postings.docs().is_empty() {
                postings.docs().iter().for_each(|&doc| documents.remove(doc));
                postings.advance();
            }
        }
        Ok(Box::new(ConstScorer::new(documents.into_doc_set(), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.scorer(reader, 1.0)?.seek(doc) == doc {
            Ok(Explanation::new("in the range (every document but those of the values outside it)", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!("document {doc} is not in the range")))
        }
    }
}
