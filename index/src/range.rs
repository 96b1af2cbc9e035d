//! Ranges on number and address fields. Each segment picks its way: the
//! inverted index when few distinct values, held by few documents, fall in
//! the range (a rare status class, a /24: a handful of postings lists, which
//! skip straight to the documents an intersection asks for); the fast column
//! when many values do (a /8 over every address: one scan beats a union of
//! thousands of lists), or when most documents match (`[200 TO 299]`: an
//! intersection led by a rarer term checks each of its documents' values
//! in the column, where a union of postings would walk them all).

use std::ops::Bound;

use tantivy::query::{
    EnableScoring, Explanation, InvertedIndexRangeQuery, Query, RangeQuery, Scorer, Weight,
};
use tantivy::schema::Field;
use tantivy::{DocId, Score, SegmentReader, Term};

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

impl NumericRangeWeight {
    /// The postings when the segment holds few values in range, on few
    /// documents; else the column.
    fn pick(&self, reader: &SegmentReader) -> tantivy::Result<&dyn Weight> {
        let index = reader.inverted_index(self.field)?;
        let mut range = index.terms().range();
        range = match &self.lower {
            Bound::Included(bytes) => range.ge(bytes),
            Bound::Excluded(bytes) => range.gt(bytes),
            Bound::Unbounded => range,
        };
        range = match &self.upper {
            Bound::Included(bytes) => range.le(bytes),
            Bound::Excluded(bytes) => range.lt(bytes),
            Bound::Unbounded => range,
        };
        let mut terms = range.into_stream()?;
        let (mut count, mut documents) = (0, 0u64);
        while terms.advance() {
            count += 1;
            documents += u64::from(terms.value().doc_freq);
            if count > MAX_POSTINGS_TERMS {
                return Ok(self.column.as_ref());
            }
        }
        if documents * DENSE_ONE_IN > u64::from(reader.max_doc()) {
            return Ok(self.column.as_ref());
        }
        Ok(self.postings.as_ref())
    }
}

impl Weight for NumericRangeWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        self.pick(reader)?.scorer(reader, boost)
    }

    fn scorer_danger(
        &self,
        reader: &SegmentReader,
        target: DocId,
        boost: Score,
    ) -> tantivy::Result<(tantivy::SeekDangerResult, Box<dyn Scorer>)> {
        self.pick(reader)?.scorer_danger(reader, target, boost)
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.pick(reader)?.explain(reader, doc)
    }

    fn count(&self, reader: &SegmentReader) -> tantivy::Result<u32> {
        self.pick(reader)?.count(reader)
    }
}
