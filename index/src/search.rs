//! Reading the index: searches and single events.

use chrono::{DateTime, Utc};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query as TantivyQuery, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{Index, IndexReader, Order, ReloadPolicy, TantivyDocument, Term};
use vigil_schema::{Event, EventId};

use crate::compile::{CompileError, Compiler};
use crate::doc::{DocSchema, to_tantivy_time};
use crate::query::Query;
use crate::{StoreError, StoreErrorKind};

/// The largest `limit` a search accepts.
pub const MAX_LIMIT: usize = 10_000;

/// A search: a parsed query, an optional time range (`from` inclusive, `to`
/// exclusive) and how many hits to return.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// The hits of a search, newest first, and how many events matched in all.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub total: u64,
    pub hits: Vec<Event>,
}

/// A handle for reading the index; cheap to clone, safe to share.
#[derive(Clone)]
pub struct Searcher {
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub(crate) schema: DocSchema,
}

impl Searcher {
    pub(crate) fn new(index: Index, schema: DocSchema) -> Result<Searcher, StoreError> {
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Searcher { index, reader, schema })
    }

    /// Searches the index. Blocking: call it from a blocking thread.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        let query = self.compile(request)?;
        let searcher = self.reader.searcher();
        let limit = request.limit.min(MAX_LIMIT);
        let top =
            TopDocs::with_limit(limit.max(1)).order_by_fast_field::<tantivy::DateTime>("_ts", Order::Desc);
        let (total, top_docs) = searcher.search(&query, &(Count, top))?;
        let mut hits = Vec::with_capacity(top_docs.len().min(limit));
        for (_, address) in top_docs.into_iter().take(limit) {
            let document: TantivyDocument = searcher.doc(address)?;
            hits.push(self.decode(&document)?);
        }
        Ok(SearchResult { total: total as u64, hits })
    }

    /// The event with this id, if the index has it.
    pub fn get(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let searcher = self.reader.searcher();
        let query =
            TermQuery::new(Term::from_field_text(self.schema.id, &id.to_string()), IndexRecordOption::Basic);
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        match top.first() {
            Some((_, address)) => Ok(Some(self.decode(&searcher.doc(*address)?)?)),
            None => Ok(None),
        }
    }

    /// How many events the index holds.
    pub fn count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The largest event id in the index (to keep ids increasing across restarts).
    pub fn max_id(&self) -> Result<Option<EventId>, StoreError> {
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(1).order_by_fast_field::<u64>("_arrival", Order::Desc);
        let found = searcher.search(&tantivy::query::AllQuery, &top)?;
        match found.first() {
            Some((_, address)) => Ok(Some(self.decode(&searcher.doc(*address)?)?.id)),
            None => Ok(None),
        }
    }

    pub(crate) fn reload(&self) -> Result<(), StoreError> {
        self.reader.reload()?;
        Ok(())
    }

    fn compile(&self, request: &SearchRequest) -> Result<Box<dyn TantivyQuery>, StoreError> {
        let compiler = Compiler { schema: &self.schema, tokenizers: self.index.tokenizers() };
        let query = compiler.compile(&request.query).map_err(|CompileError { field, message }| {
            StoreError::BadQuery { message: format!("{field}: {message}") }
        })?;
        if request.from.is_none() && request.to.is_none() {
            return Ok(query);
        }
        let bound = |time: Option<DateTime<Utc>>, inclusive: bool| match time {
            None => std::ops::Bound::Unbounded,
            Some(time) => {
                let term = Term::from_field_date_for_search(self.schema.timestamp, to_tantivy_time(time));
                if inclusive { std::ops::Bound::Included(term) } else { std::ops::Bound::Excluded(term) }
            }
        };
        let range = RangeQuery::new(bound(request.from, true), bound(request.to, false));
        Ok(Box::new(BooleanQuery::new(vec![(Occur::Must, query), (Occur::Must, Box::new(range))])))
    }

    fn decode(&self, document: &TantivyDocument) -> Result<Event, StoreError> {
        let bytes =
            document.get_first(self.schema.doc).and_then(|value| value.as_bytes()).unwrap_or_default();
        serde_json::from_slice(bytes)
            .map_err(|error| StoreError::Corrupt { message: format!("stored event: {error}") })
    }
}

impl StoreErrorKind {
    pub fn is_client_error(self) -> bool {
        matches!(self, StoreErrorKind::BadQuery)
    }
}
