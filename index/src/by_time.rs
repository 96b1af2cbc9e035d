//! A search's hits in time order: how many events match, and the first
//! `limit` of them, newest or oldest first (ties by arrival).
//!
//! A general top-N collector reads the sort columns of every match and
//! reorders its ranking for most of them: events arrive roughly in time
//! order, so newest first meets each match as the best one yet. For a query
//! matching 200,000 events, that was most of the search.
//!
//! Here a segment's matches are gathered in one pass of the query, a bit
//! per document (the count is their number), and ranked block by block: each segment is cut
//! in blocks of [`BLOCK_DOCS`] documents, whose earliest and latest times
//! are computed once per segment (segments never change; a
//! [`TimeBlocksCache`] keeps them). The blocks are visited best first (the
//! latest newest first, the earliest oldest first), and the visit stops at
//! the first block whose best time cannot beat the last hit kept. Events
//! arrive roughly in time order, so that is after a few blocks.
//!
//! Every document has a time (`_ts`): an event always does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Cardinality, Column};
use tantivy::index::SegmentId;
use tantivy::query::Weight;
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::bits::DocBits;
use crate::search::SortOrder;

/// Documents per block of times.
const BLOCK_DOCS: u32 = if cfg!(test) { 4 } else { 1024 };
/// Segments whose blocks are kept; past this, the record starts over (it
/// holds segments merged away since).
const KEPT_SEGMENTS: usize = 4096;

/// A document's place in the order asked for: greater is better. Newest
/// first, it is (time, arrival, seq); oldest first, their complements.
type Rank = (i64, u64, u64);

/// The earliest and latest time of each block of a segment's documents.
pub(crate) struct TimeBlocks {
    earliest: Vec<i64>,
    latest: Vec<i64>,
    /// The blocks by latest time, latest first.
    newest_first: Vec<u32>,
    /// The blocks by earliest time, earliest first.
    oldest_first: Vec<u32>,
}

impl TimeBlocks {
    fn compute(times: &Column<DateTime>, max_doc: DocId) -> TimeBlocks {
        let blocks = max_doc.div_ceil(BLOCK_DOCS) as usize;
        let mut earliest = Vec::with_capacity(blocks);
        let mut latest = Vec::with_capacity(blocks);
        let mut buffer = vec![DateTime::MIN; BLOCK_DOCS as usize];
        for block in 0..blocks as u32 {
            let start = block * BLOCK_DOCS;
            let end = (start + BLOCK_DOCS).min(max_doc);
            let (mut low, mut high) = (i64::MAX, i64::MIN);
            let mut see = |time: DateTime| {
                let nanos = time.into_timestamp_nanos();
                low = low.min(nanos);
                high = high.max(nanos);
            };
            if times.get_cardinality() == Cardinality::Full {
                let values = &mut buffer[..(end - start) as usize];
                times.values.get_range(u64::from(start), values);
                values.iter().copied().for_each(&mut see);
            } else {
                (start..end).filter_map(|doc| times.first(doc)).for_each(&mut see);
            }
            earliest.push(low);
            latest.push(high);
        }
        let mut newest_first: Vec<u32> = (0..blocks as u32).collect();
        newest_first.sort_unstable_by_key(|&block| Reverse(latest[block as usize]));
        let mut oldest_first: Vec<u32> = (0..blocks as u32).collect();
        oldest_first.sort_unstable_by_key(|&block| earliest[block as usize]);
        TimeBlocks { earliest, latest, newest_first, oldest_first }
    }

    /// The blocks, those that may hold the best documents first.
    fn best_first(&self, order: SortOrder) -> &[u32] {
        match order {
            SortOrder::NewestFirst => &self.newest_first,
            SortOrder::OldestFirst => &self.oldest_first,
        }
    }

    /// The best rank a document of the block may have.
    fn best(&self, block: u32, order: SortOrder) -> i64 {
        match order {
            SortOrder::NewestFirst => self.latest[block as usize],
            SortOrder::OldestFirst => !self.earliest[block as usize],
        }
    }
}

/// The time blocks of every segment searched so far, by segment.
#[derive(Default)]
pub(crate) struct TimeBlocksCache {
    segments: Mutex<HashMap<SegmentId, Arc<TimeBlocks>>>,
}

impl TimeBlocksCache {
    fn get(&self, reader: &SegmentReader, times: &Column<DateTime>) -> Arc<TimeBlocks> {
        let id = reader.segment_id();
        if let Some(found) = self.lock().get(&id) {
            return Arc::clone(found);
        }
        let computed = Arc::new(TimeBlocks::compute(times, reader.max_doc()));
        let mut segments = self.lock();
        if segments.len() >= KEPT_SEGMENTS {
            segments.clear();
        }
        segments.insert(id, Arc::clone(&computed));
        computed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<TimeBlocks>>> {
        self.segments.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a search collects: the number of matches and the addresses of the
/// first `limit`, best first.
pub(crate) struct Ranked {
    pub total: u64,
    pub hits: Vec<DocAddress>,
}

/// The collector: count, and the first `limit` matches in time order.
pub(crate) struct TopByTime {
    limit: usize,
    order: SortOrder,
    blocks: Arc<TimeBlocksCache>,
}

impl TopByTime {
    pub(crate) fn new(limit: usize, order: SortOrder, blocks: Arc<TimeBlocksCache>) -> TopByTime {
        TopByTime { limit, order, blocks }
    }

    fn columns(&self, reader: &SegmentReader) -> tantivy::Result<Columns> {
        let fast = reader.fast_fields();
        Ok(Columns {
            times: fast.date("_ts")?,
            arrival: fast.u64("_arrival")?,
            seq: fast.u64("_seq")?,
            order: self.order,
        })
    }
}

struct Columns {
    times: Column<DateTime>,
    arrival: Column<u64>,
    seq: Column<u64>,
    order: SortOrder,
}

impl Columns {
    /// A document without a time (none has one) would come last.
    fn time_rank(&self, doc: DocId) -> i64 {
        match (self.times.first(doc), self.order) {
            (None, _) => i64::MIN,
            (Some(time), SortOrder::NewestFirst) => time.into_timestamp_nanos(),
            (Some(time), SortOrder::OldestFirst) => !time.into_timestamp_nanos(),
        }
    }

    fn id_rank(&self, doc: DocId) -> (u64, u64) {
        let (arrival, seq) = (self.arrival.first(doc).unwrap_or(0), self.seq.first(doc).unwrap_or(0));
        match self.order {
            SortOrder::NewestFirst => (arrival, seq),
            SortOrder::OldestFirst => (!arrival, !seq),
        }
    }
}

/// The best `limit` documents of a segment seen so far.
struct Ranking {
    limit: usize,
    columns: Columns,
    /// The worst kept on top.
    kept: BinaryHeap<Reverse<(Rank, DocId)>>,
}

impl Ranking {
    fn new(limit: usize, columns: Columns) -> Ranking {
        Ranking { limit, columns, kept: BinaryHeap::with_capacity(limit + 1) }
    }

    /// Whether a document of this time rank may be kept.
    fn may_take(&self, time_rank: i64) -> bool {
        match self.kept.peek() {
            Some(Reverse(((worst, _, _), _))) if self.kept.len() >= self.limit => time_rank >= *worst,
            _ => self.limit > 0,
        }
    }

    fn offer(&mut self, doc: DocId) {
        let time_rank = self.columns.time_rank(doc);
        if !self.may_take(time_rank) {
            return;
        }
        let (arrival, seq) = self.columns.id_rank(doc);
        let rank = (time_rank, arrival, seq);
        if self.kept.len() < self.limit {
            self.kept.push(Reverse((rank, doc)));
        } else if let Some(mut worst) = self.kept.peek_mut()
            && rank > worst.0.0
        {
            *worst = Reverse((rank, doc));
        }
    }

    fn harvest(self, segment: SegmentOrdinal) -> Vec<(Rank, DocAddress)> {
        self.kept.into_iter().map(|Reverse((rank, doc))| (rank, DocAddress::new(segment, doc))).collect()
    }
}

/// One segment's fruit: its count and its best documents.
pub(crate) struct SegmentRanked {
    total: u64,
    hits: Vec<(Rank, DocAddress)>,
}

impl Collector for TopByTime {
    type Fruit = Ranked;
    type Child = RankEvery;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<RankEvery> {
        Ok(RankEvery { segment, ranking: Ranking::new(self.limit, self.columns(reader)?), seen: 0 })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<SegmentRanked>) -> tantivy::Result<Ranked> {
        let total = fruits.iter().map(|fruit| fruit.total).sum();
        let mut hits: Vec<(Rank, DocAddress)> = fruits.into_iter().flat_map(|fruit| fruit.hits).collect();
        hits.sort_unstable_by(|left, right| right.cmp(left));
        hits.truncate(self.limit);
        Ok(Ranked { total, hits: hits.into_iter().map(|(_, address)| address).collect() })
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentRanked> {
        // The matches, in one pass of the query.
        let mut matches = DocBits::empty(reader.max_doc());
        let alive = reader.alive_bitset();
        weight.for_each_no_score(reader, &mut |docs| match alive {
            None => docs.iter().for_each(|&doc| matches.insert(doc)),
            Some(alive) => {
                docs.iter().filter(|&&doc| alive.is_alive(doc)).for_each(|&doc| matches.insert(doc))
            }
        })?;
        let total = u64::from(matches.len());
        let mut ranking = Ranking::new(self.limit, self.columns(reader)?);
        if total <= self.limit as u64 {
            // Every match is a hit.
            matches.for_each_in(0, reader.max_doc(), |doc| ranking.offer(doc));
        } else {
            // The blocks best first, until one cannot beat the last hit kept.
            let blocks = self.blocks.get(reader, &ranking.columns.times);
            for &block in blocks.best_first(self.order) {
                if !ranking.may_take(blocks.best(block, self.order)) {
                    break;
                }
                let start = block * BLOCK_DOCS;
                matches.for_each_in(start, start + BLOCK_DOCS, |doc| ranking.offer(doc));
            }
        }
        Ok(SegmentRanked { total, hits: ranking.harvest(segment) })
    }
}

/// Ranks every match it is given: the collector's part in tantivy's own
/// per-segment loop. (`TopByTime::collect_segment`, which Vigil's searches
/// run, gathers the matches and ranks by blocks instead.)
pub(crate) struct RankEvery {
    segment: SegmentOrdinal,
    ranking: Ranking,
    /// Matches given so far.
    seen: u64,
}

impl SegmentCollector for RankEvery {
    type Fruit = SegmentRanked;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.seen += 1;
        self.ranking.offer(doc);
    }

    fn harvest(self) -> SegmentRanked {
        SegmentRanked { total: self.seen, hits: self.ranking.harvest(self.segment) }
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::DocSetCollector;
    use tantivy::query::{AllQuery, Query, TermQuery};
    use tantivy::schema::{
        DateOptions, DateTimePrecision, IndexRecordOption, NumericOptions, STRING, Schema,
    };
    use tantivy::{Index, IndexWriter, TantivyDocument, Term};

    use super::*;

    /// A small deterministic generator (the test needs no more).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % bound
        }
    }

    /// Segments of events in rough time order (or its reverse, or in runs
    /// out of order), some late, some sharing a time, some deleted; each
    /// tagged with a kind that a few or many share.
    fn index(seed: u64) -> Index {
        let mut builder = Schema::builder();
        let times = DateOptions::default().set_fast().set_precision(DateTimePrecision::Nanoseconds);
        let ts = builder.add_date_field("_ts", times);
        let arrival = builder.add_u64_field("_arrival", NumericOptions::default().set_fast());
        let seq = builder.add_u64_field("_seq", NumericOptions::default().set_fast());
        let kind = builder.add_text_field("kind", STRING);
        let index = Index::create_in_ram(builder.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let mut random = Lcg(seed);
        let mut clock = 1_000_000_000_000i64;
        for segment in 0..1 + random.below(4) {
            // Some segments run backwards; some jump back and forth in
            // runs, as a merge of younger segments before older ones does.
            let step = if random.below(3) == 0 { -1_000 } else { 1_000 };
            for n in 0..random.below(120) {
                if random.below(20) == 0 {
                    clock += (random.below(400) as i64 - 200) * 1_000;
                }
                clock += random.below(3) as i64 * step;
                let time = match random.below(10) {
                    0 => clock - random.below(200_000) as i64,
                    _ => clock,
                };
                let mut document = TantivyDocument::new();
                document.add_date(ts, DateTime::from_timestamp_nanos(time));
                document.add_u64(arrival, segment);
                document.add_u64(seq, random.below(1 << 40) * 1000 + n);
                let kinds = ["rare", "some", "many", "many", "many", "many"];
                document.add_text(kind, kinds[random.below(kinds.len() as u64) as usize]);
                writer.add_document(document).unwrap();
            }
            writer.commit().unwrap();
        }
        if random.below(2) == 0 {
            writer.delete_term(Term::from_field_text(kind, "some"));
            writer.commit().unwrap();
        }
        index
    }

    /// Every match, ranked by reading each one's columns.
    fn reference(index: &Index, query: &dyn Query, limit: usize, order: SortOrder) -> Ranked {
        let searcher = index.reader().unwrap().searcher();
        let mut ranked: Vec<(Rank, DocAddress)> = searcher
            .search(query, &DocSetCollector)
            .unwrap()
            .into_iter()
            .map(|address| {
                let reader = searcher.segment_reader(address.segment_ord);
                let columns = TopByTime::new(limit, order, Arc::default()).columns(reader).unwrap();
                let (arrival, seq) = columns.id_rank(address.doc_id);
                ((columns.time_rank(address.doc_id), arrival, seq), address)
            })
            .collect();
        let total = ranked.len() as u64;
        ranked.sort_unstable_by(|left, right| right.cmp(left));
        Ranked { total, hits: ranked.into_iter().take(limit).map(|(_, address)| address).collect() }
    }

    #[test]
    fn hits_and_counts_agree_with_ranking_every_match() {
        for seed in 0..40 {
            let index = index(seed);
            let searcher = index.reader().unwrap().searcher();
            let kind = index.schema().get_field("kind").unwrap();
            let term = |text: &str| -> Box<dyn Query> {
                Box::new(TermQuery::new(Term::from_field_text(kind, text), IndexRecordOption::Basic))
            };
            let queries: Vec<Box<dyn Query>> =
                vec![Box::new(AllQuery), term("rare"), term("many"), term("none")];
            let cache = Arc::new(TimeBlocksCache::default());
            for query in &queries {
                for order in [SortOrder::NewestFirst, SortOrder::OldestFirst] {
                    for limit in [1, 2, 7, 50, 1000] {
                        let expected = reference(&index, query.as_ref(), limit, order);
                        let collector = TopByTime::new(limit, order, Arc::clone(&cache));
                        let found = searcher.search(query.as_ref(), &collector).unwrap();
                        let case = format!("seed {seed}, {query:?}, {order:?}, limit {limit}");
                        assert_eq!((found.total, &found.hits), (expected.total, &expected.hits), "{case}");
                        // A segment collector given every match ranks them alike.
                        let collector = TopByTime::new(limit, order, Arc::clone(&cache));
                        let mut fruits = Vec::new();
                        for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
                            let mut every = collector.for_segment(ordinal as u32, reader).unwrap();
                            for address in searcher.search(query.as_ref(), &DocSetCollector).unwrap() {
                                if address.segment_ord == ordinal as u32 {
                                    every.collect(address.doc_id, 0.0);
                                }
                            }
                            fruits.push(every.harvest());
                        }
                        let found = collector.merge_fruits(fruits).unwrap();
                        assert_eq!((found.total, found.hits), (expected.total, expected.hits));
                    }
                }
            }
        }
    }
}
