//! Reading the index: searches and single events.

use chrono::{DateTime, Utc};
use std::sync::Arc;

use serde::Serialize;
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::{Collector, Count, DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query as TantivyQuery, RangeQuery};
use tantivy::schema::Value as _;
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DocAddress, Order, SegmentReader, TantivyDocument, Term};
use vigil_schema::{Event, EventId};

use crate::by_time::{Ranked, TimeBlocksCache, TopByTime};
use crate::compile::{Compiler, TermError};
use crate::doc::{DocSchema, time_bound};
use crate::lag::{Commits, IndexLag, Lag};
use crate::parallel;
use crate::partition::{Partition, Partitions};
use crate::query::Query;
use crate::{StoreError, StoreErrorKind};

/// The largest `limit` a search accepts.
pub const MAX_LIMIT: usize = 10_000;
/// Documents a collecting helper thread is worth: fewer, and a search's
/// segments are all collected on its own thread. (The crate's tests offer
/// helpers to the smallest searches, so that every search test runs the
/// shared path.)
const DOCUMENTS_PER_HELPER: u64 = if cfg!(test) { 1 } else { 100_000 };
/// Hits a reading helper thread is worth.
const HITS_PER_HELPER: u64 = if cfg!(test) { 1 } else { 32 };
/// Neighbouring hits one thread reads in a row.
const HITS_PER_RUN: usize = if cfg!(test) { 2 } else { 8 };

/// A search: a parsed query, an optional time range (`from` inclusive, `to`
/// exclusive), how many hits to return, in which order, and where the
/// previous page ended.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: usize,
    pub order: SortOrder,
    pub cursor: Option<Cursor>,
    /// What relative times in the query (`2h`, `now`) are read against;
    /// `None`: the time of the search. A cursor carries it, so that every
    /// page of a search reads them alike.
    pub now: Option<DateTime<Utc>>,
}

impl Default for SearchRequest {
    fn default() -> SearchRequest {
        SearchRequest {
            query: Query::All,
            from: None,
            to: None,
            limit: 100,
            order: SortOrder::NewestFirst,
            cursor: None,
            now: None,
        }
    }
}

/// The order of hits: by event time, then by arrival.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// Where a page of hits ended: the last hit's time and id. The next page
/// holds the hits strictly after it in the sort order, so paging neither
/// skips nor repeats a hit while new events arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    time_nanos: i64,
    arrival: u64,
    seq: u64,
    /// The time the first page read relative times against (nanoseconds).
    now_nanos: Option<i64>,
}

impl Cursor {
    fn after(event: &Event, now: DateTime<Utc>) -> Cursor {
        let id = event.id.as_u128();
        Cursor {
            // As the index holds it (times outside 1677-2262 at its ends).
            time_nanos: crate::doc::to_tantivy_time(event.timestamp).into_timestamp_nanos(),
            arrival: (id >> 64) as u64,
            seq: id as u64,
            now_nanos: now.timestamp_nanos_opt(),
        }
    }

    /// The time the search's relative times (`from=2h`, `@timestamp:>=1h`)
    /// were read against on its first page: later pages read them alike.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        self.now_nanos.map(DateTime::from_timestamp_nanos)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:x}.{:x}", self.time_nanos, self.arrival, self.seq)?;
        match self.now_nanos {
            Some(now) => write!(f, ".{now}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Cursor, String> {
        let invalid = || format!("{text:?} is not a cursor from a previous answer's next_cursor");
        let mut parts = text.split('.');
        // Cursors of earlier versions have no fourth part.
        let (Some(time), Some(arrival), Some(seq), now, None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        Ok(Cursor {
            time_nanos: time.parse().map_err(|_| invalid())?,
            arrival: u64::from_str_radix(arrival, 16).map_err(|_| invalid())?,
            seq: u64::from_str_radix(seq, 16).map_err(|_| invalid())?,
            now_nanos: now.map(|now| now.parse().map_err(|_| invalid())).transpose()?,
        })
    }
}

/// One time partition, as `GET /api/v1/partitions` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub events: u64,
    pub bytes: u64,
    /// tantivy segments searched (merging brings them down).
    pub segments: usize,
}

/// The hits of a search, in the requested order, and how many events
/// matched in all (on every page, the same).
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub total: u64,
    pub hits: Vec<Event>,
    /// Present when more hits follow: pass it as the next request's cursor.
    pub next_cursor: Option<Cursor>,
}

/// A handle for reading the index; cheap to clone, safe to share.
#[derive(Clone)]
pub struct Searcher {
    pub(crate) partitions: Arc<Partitions>,
    pub(crate) schema: DocSchema,
    pub(crate) tokenizers: TokenizerManager,
    /// Threads one search may use, its own included.
    threads: usize,
    /// The times of each segment's blocks of documents, for ranking hits.
    time_blocks: Arc<TimeBlocksCache>,
    /// What was acknowledged and is not searchable yet (unknown to a
    /// read-only searcher).
    lag: Option<Arc<IndexLag>>,
}

/// A consistent view of the partitions a request touches: one tantivy
/// searcher per partition, and segment ordinals numbered across all of them
/// so that one collector can run over every segment and its results point
/// back at the right partition.
#[derive(Clone)]
pub(crate) struct Snapshot {
    /// Threads the search may use, its own included.
    threads: usize,
    searchers: Vec<tantivy::Searcher>,
    /// Global segment ordinal → (searcher, local segment ordinal).
    segments: Vec<(usize, u32)>,
}

impl Snapshot {
    fn new(partitions: &[Arc<Partition>], threads: usize) -> Snapshot {
        let searchers: Vec<tantivy::Searcher> =
            partitions.iter().map(|partition| partition.reader.searcher()).collect();
        let mut segments = Vec::new();
        for (which, searcher) in searchers.iter().enumerate() {
            for local in 0..searcher.segment_readers().len() {
                segments.push((which, local as u32));
            }
        }
        Snapshot { threads, searchers, segments }
    }

    /// Runs a collector over every segment of every partition, largest
    /// first, with helper threads joining in when there are many documents.
    pub fn collect<C: Collector + 'static>(
        &self,
        query: &dyn TantivyQuery,
        collector: C,
    ) -> tantivy::Result<C::Fruit> {
        let mut weights = Vec::with_capacity(self.searchers.len());
        for searcher in &self.searchers {
            let scoring = if collector.requires_scoring() {
                EnableScoring::enabled_from_searcher(searcher)
            } else {
                EnableScoring::disabled_from_searcher(searcher)
            };
            weights.push(query.weight(scoring)?);
        }
        let mut order: Vec<u32> = (0..self.segments.len() as u32).collect();
        order.sort_by_key(|&global| std::cmp::Reverse(self.segment(global).max_doc()));
        let documents: u64 = order.iter().map(|&global| u64::from(self.segment(global).max_doc())).sum();
        let helpers = parallel::helpers_for(documents, DOCUMENTS_PER_HELPER, order.len(), self.threads);
        let (snapshot, collector) = (self.clone(), Arc::new(collector));
        let shared = Arc::clone(&collector);
        let mut by_segment = parallel::run(order, helpers, move |&global| {
            let (which, _) = snapshot.segments[global as usize];
            (global, shared.collect_segment(weights[which].as_ref(), global, snapshot.segment(global)))
        });
        // Back in segment order.
        by_segment.sort_by_key(|(global, _)| *global);
        let fruits = by_segment.into_iter().map(|(_, fruit)| fruit).collect::<tantivy::Result<Vec<_>>>()?;
        collector.merge_fruits(fruits)
    }

    fn segment(&self, global: u32) -> &SegmentReader {
        let (which, local) = self.segments[global as usize];
        &self.searchers[which].segment_readers()[local as usize]
    }

    pub fn doc(&self, address: DocAddress) -> tantivy::Result<TantivyDocument> {
        let (which, local) = self.segments[address.segment_ord as usize];
        self.searchers[which].doc(DocAddress { segment_ord: local, doc_id: address.doc_id })
    }

    pub fn segment_readers(&self) -> impl Iterator<Item = &SegmentReader> {
        self.searchers.iter().flat_map(|searcher| searcher.segment_readers().iter())
    }

    pub fn num_docs(&self) -> u64 {
        self.searchers.iter().map(tantivy::Searcher::num_docs).sum()
    }
}

impl Searcher {
    /// A searcher whose searches use up to `threads` threads each (0: as
    /// many as the process may run on, at most four).
    pub(crate) fn new(partitions: Arc<Partitions>, threads: usize, lag: Option<Arc<IndexLag>>) -> Searcher {
        let tokenizers = TokenizerManager::default();
        DocSchema::register_tokenizers(&tokenizers);
        let threads = match threads {
            0 => parallel::default_threads(),
            threads => threads,
        };
        Searcher {
            partitions,
            schema: DocSchema::new(),
            tokenizers,
            threads,
            time_blocks: Arc::default(),
            lag,
        }
    }

    /// The events acknowledged that searches do not see yet, and how long
    /// ago the oldest was acknowledged; `None` for a read-only searcher,
    /// which cannot know.
    pub fn indexing_lag(&self) -> Option<Lag> {
        self.lag.as_ref().map(|lag| lag.now())
    }

    /// The index's commits so far and the time spent in them; `None` for a
    /// read-only searcher.
    pub fn commits(&self) -> Option<Commits> {
        self.lag.as_ref().map(|lag| lag.commits())
    }

    /// A view of the partitions a request's time range overlaps.
    pub(crate) fn snapshot(&self, request: &SearchRequest) -> Snapshot {
        Snapshot::new(&self.partitions.overlapping(request.from, request.to), self.threads)
    }

    /// Searches the index. Blocking: call it from a blocking thread.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        let query = self.compile_request(request)?;
        let snapshot = self.snapshot(request);
        let limit = request.limit.min(MAX_LIMIT);
        if limit == 0 {
            let total = snapshot.collect(query.as_ref(), Count)? as u64;
            return Ok(SearchResult { total, hits: Vec::new(), next_cursor: None });
        }
        // One more than asked, to know whether another page follows. The
        // first page counts and ranks in one pass; later pages count the
        // whole query and rank what follows the cursor.
        let top = TopByTime::new(limit + 1, request.order, Arc::clone(&self.time_blocks));
        let Ranked { total, hits: addresses } = match &request.cursor {
            None => snapshot.collect(query.as_ref(), top)?,
            Some(cursor) => {
                let total = snapshot.collect(query.as_ref(), Count)? as u64;
                let page_query = BooleanQuery::new(vec![
                    (Occur::Must, query),
                    (Occur::Must, self.after_cursor(cursor, request.order)),
                ]);
                Ranked { total, ..snapshot.collect(&page_query, top)? }
            }
        };
        let more = addresses.len() > limit;
        let addresses = addresses.into_iter().take(limit).collect();
        let hits = self.fetch(&snapshot, addresses)?;
        let now = request.now.unwrap_or_else(Utc::now);
        let next_cursor = if more { hits.last().map(|hit| Cursor::after(hit, now)) } else { None };
        Ok(SearchResult { total, hits, next_cursor })
    }

    /// The events strictly after a cursor in the sort order:
    /// (time, arrival, seq) below it for newest first, above it for oldest first.
    fn after_cursor(&self, cursor: &Cursor, order: SortOrder) -> Box<dyn TantivyQuery> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let time = |nanos: i64| {
            Term::from_field_date(self.schema.timestamp, tantivy::DateTime::from_timestamp_nanos(nanos))
        };
        let beyond = |term: Term| -> Box<dyn TantivyQuery> {
            match order {
                SortOrder::NewestFirst => Box::new(RangeQuery::new(Unbounded, Excluded(term))),
                SortOrder::OldestFirst => Box::new(RangeQuery::new(Excluded(term), Unbounded)),
            }
        };
        let equal = |term: Term| -> Box<dyn TantivyQuery> {
            Box::new(RangeQuery::new(Included(term.clone()), Included(term)))
        };
        let arrival = |value: u64| Term::from_field_u64(self.schema.arrival, value);
        let seq = |value: u64| Term::from_field_u64(self.schema.seq, value);
        let same_arrival_later_seq = BooleanQuery::new(vec![
            (Occur::Must, equal(arrival(cursor.arrival))),
            (Occur::Must, beyond(seq(cursor.seq))),
        ]);
        let same_time_later_id = BooleanQuery::new(vec![
            (Occur::Must, equal(time(cursor.time_nanos))),
            (
                Occur::Must,
                Box::new(BooleanQuery::new(vec![
                    (Occur::Should, beyond(arrival(cursor.arrival))),
                    (Occur::Should, Box::new(same_arrival_later_seq)),
                ])),
            ),
        ]);
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, beyond(time(cursor.time_nanos))),
            (Occur::Should, Box::new(same_time_later_id)),
        ]))
    }

    /// The event with this id, if the index has it. (Ids order by arrival,
    /// not event time, so every partition is asked.)
    pub fn get(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let snapshot = Snapshot::new(&self.partitions.all(), self.threads);
        let query = crate::doc::id_query(&self.schema, id);
        let found = snapshot.collect(query.as_ref(), DocSetCollector)?;
        match found.into_iter().next() {
            Some(address) => Ok(Some(decode(self.schema.doc, &snapshot.doc(address)?)?)),
            None => Ok(None),
        }
    }

    /// How many events the index holds.
    pub fn count(&self) -> u64 {
        Snapshot::new(&self.partitions.all(), self.threads).num_docs()
    }

    /// The most tantivy segments a search reads in one partition.
    pub fn max_partition_segments(&self) -> usize {
        let partitions = self.partitions.all();
        partitions
            .iter()
            .map(|partition| partition.reader.searcher().segment_readers().len())
            .max()
            .unwrap_or(0)
    }

    /// The largest event id in the index (to keep ids increasing across restarts).
    pub fn max_id(&self) -> Result<Option<EventId>, StoreError> {
        let snapshot = Snapshot::new(&self.partitions.all(), self.threads);
        let top = TopDocs::with_limit(1).order_by((
            (SortByStaticFastValue::<u64>::for_field("_arrival"), Order::Desc),
            (SortByStaticFastValue::<u64>::for_field("_seq"), Order::Desc),
        ));
        let found = snapshot.collect(&tantivy::query::AllQuery, top)?;
        match found.first() {
            Some((_, address)) => Ok(Some(decode(self.schema.doc, &snapshot.doc(*address)?)?.id)),
            None => Ok(None),
        }
    }

    /// The partitions: their names, spans, sizes and event counts.
    pub fn partitions(&self) -> Vec<PartitionInfo> {
        self.partitions
            .all()
            .iter()
            .map(|partition| {
                let searcher = partition.reader.searcher();
                PartitionInfo {
                    name: partition.name(),
                    start: DateTime::from_timestamp(partition.start, 0).unwrap_or_default(),
                    end: DateTime::from_timestamp(partition.end, 0).unwrap_or_default(),
                    events: searcher.num_docs(),
                    bytes: partition.size_bytes(),
                    segments: searcher.segment_readers().len(),
                }
            })
            .collect()
    }

    pub(crate) fn compile_request(
        &self,
        request: &SearchRequest,
    ) -> Result<Box<dyn TantivyQuery>, StoreError> {
        let now = request.now.unwrap_or_else(Utc::now);
        let compiler = Compiler { schema: &self.schema, tokenizers: &self.tokenizers, now };
        let query = compiler.compile(&request.query).map_err(|TermError { error, at }| {
            StoreError::BadQuery { message: format!("{}: {}", error.field, error.message), at }
        })?;
        if request.from.is_none() && request.to.is_none() {
            return Ok(query);
        }
        let bound = |time: Option<DateTime<Utc>>, inclusive: bool| match time {
            None => std::ops::Bound::Unbounded,
            Some(time) => {
                time_bound(time, inclusive).map(|time| Term::from_field_date(self.schema.timestamp, time))
            }
        };
        let range = RangeQuery::new(bound(request.from, true), bound(request.to, false));
        Ok(Box::new(BooleanQuery::new(vec![(Occur::Must, query), (Occur::Must, Box::new(range))])))
    }

    /// The events at these addresses, in their order, read in runs of
    /// neighbouring addresses (hits in one doc store block are read by one
    /// thread, which decompresses it once), with helper threads joining in
    /// when there are many.
    fn fetch(&self, snapshot: &Snapshot, addresses: Vec<DocAddress>) -> Result<Vec<Event>, StoreError> {
        let count = addresses.len();
        let mut sorted: Vec<(usize, DocAddress)> = addresses.into_iter().enumerate().collect();
        sorted.sort_by_key(|(_, address)| (address.segment_ord, address.doc_id));
        let runs: Vec<Vec<(usize, DocAddress)>> = sorted.chunks(HITS_PER_RUN).map(<[_]>::to_vec).collect();
        let helpers = parallel::helpers_for(count as u64, HITS_PER_HELPER, runs.len(), snapshot.threads);
        let (snapshot, doc_field) = (snapshot.clone(), self.schema.doc);
        let read = parallel::run(runs, helpers, move |run| {
            run.iter()
                .map(|&(index, address)| {
                    let event = snapshot
                        .doc(address)
                        .map_err(StoreError::from)
                        .and_then(|document| decode(doc_field, &document));
                    (index, event)
                })
                .collect::<Vec<_>>()
        });
        let mut events: Vec<(usize, Result<Event, StoreError>)> = read.into_iter().flatten().collect();
        events.sort_by_key(|(index, _)| *index);
        events.into_iter().map(|(_, event)| event).collect()
    }
}

/// The event a stored document holds in its `_doc` field.
fn decode(doc_field: tantivy::schema::Field, document: &TantivyDocument) -> Result<Event, StoreError> {
    let bytes = document.get_first(doc_field).and_then(|value| value.as_bytes()).unwrap_or_default();
    vigil_schema::record::decode(bytes)
        .map_err(|error| StoreError::Corrupt { message: format!("stored event: {error}") })
}

impl StoreErrorKind {
    pub fn is_client_error(self) -> bool {
        matches!(self, StoreErrorKind::BadQuery)
    }
}
