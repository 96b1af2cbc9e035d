//! A set of a segment's documents, a bit per document: an eighth of a byte
//! per document where a list takes four bytes per member, and membership
//! and "the next member from here" in a word or a few.

use tantivy::{DocId, DocSet, SeekDangerResult, TERMINATED};

pub(crate) struct DocBits {
    words: Vec<u64>,
    max_doc: DocId,
    len: u32,
}

impl DocBits {
    /// No document of a segment of `max_doc` documents.
    pub(crate) fn empty(max_doc: DocId) -> DocBits {
        DocBits { words: vec![0; max_doc.div_ceil(64) as usize], max_doc, len: 0 }
    }

    /// Every document of a segment of `max_doc` documents.
    pub(crate) fn full(max_doc: DocId) -> DocBits {
        let mut words = vec![u64::MAX; max_doc.div_ceil(64) as usize];
        if let Some(last) = words.last_mut()
            && !max_doc.is_multiple_of(64)
        {
            *last = (1 << (max_doc % 64)) - 1;
        }
        DocBits { words, max_doc, len: max_doc }
    }

    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    pub(crate) fn insert(&mut self, doc: DocId) {
        let word = &mut self.words[(doc / 64) as usize];
        let bit = 1 << (doc % 64);
        self.len += u32::from(*word & bit == 0);
        *word |= bit;
    }

    pub(crate) fn remove(&mut self, doc: DocId) {
        let word = &mut self.words[(doc / 64) as usize];
        let bit = 1 << (doc % 64);
        self.len -= u32::from(*word & bit != 0);
        *word &= !bit;
    }

    pub(crate) fn contains(&self, doc: DocId) -> bool {
        doc < self.max_doc && self.words[(doc / 64) as usize] & (1 << (doc % 64)) != 0
    }

    /// The first member at or after `from`, or [`TERMINATED`].
    pub(crate) fn next_from(&self, from: DocId) -> DocId {
        if from >= self.max_doc {
            return TERMINATED;
        }
        let mut index = (from / 64) as usize;
        let mut word = self.words[index] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return index as DocId * 64 + word.trailing_zeros();
            }
            index += 1;
            match self.words.get(index) {
                Some(&next) => word = next,
                None => return TERMINATED,
            }
        }
    }

    /// Calls `f` with each member in `[start, end)`, in order.
    pub(crate) fn for_each_in(&self, start: DocId, end: DocId, mut f: impl FnMut(DocId)) {
        let end = end.min(self.max_doc);
        if start >= end {
            return;
        }
        for index in start / 64..=(end - 1) / 64 {
            let base = index * 64;
            let mut word = self.words[index as usize];
            if base < start {
                word &= u64::MAX << (start - base);
            }
            if end - base < 64 {
                word &= (1 << (end - base)) - 1;
            }
            while word != 0 {
                f(base + word.trailing_zeros());
                word &= word - 1;
            }
        }
    }

    /// The members as a document set.
    pub(crate) fn into_doc_set(self) -> BitsDocSet {
        let doc = self.next_from(0);
        BitsDocSet { bits: self, doc }
    }
}

/// [`DocBits`] walked as a tantivy document set. Its `seek_danger` answers
/// from the target's bit alone, so an intersection led by another set pays
/// a bit test per document it asks about.
pub(crate) struct BitsDocSet {
    bits: DocBits,
    doc: DocId,
}

impl DocSet for BitsDocSet {
    fn advance(&mut self) -> DocId {
        self.doc = match self.doc {
            TERMINATED => TERMINATED,
            doc => self.bits.next_from(doc + 1),
        };
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if target > self.doc {
            self.doc = self.bits.next_from(target);
        }
        self.doc
    }

    fn seek_danger(&mut self, target: DocId) -> SeekDangerResult {
        if self.bits.contains(target) {
            self.doc = target;
            SeekDangerResult::Found
        } else if target >= self.bits.max_doc {
            SeekDangerResult::SeekLowerBound(TERMINATED)
        } else {
            // Any bound up to the next member will do: the next document.
            SeekDangerResult::SeekLowerBound(target + 1)
        }
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.bits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members: every third document of 300, and 64, 127, 128, 299.
    fn sample() -> (DocBits, Vec<DocId>) {
        let mut members: Vec<DocId> = (0..300).filter(|doc| doc % 3 == 0).collect();
        members.extend([64, 127, 128, 299]);
        members.sort_unstable();
        members.dedup();
        let mut bits = DocBits::empty(300);
        members.iter().for_each(|&doc| bits.insert(doc));
        (bits, members)
    }

    #[test]
    fn members_are_found_by_range_and_from_any_document_across_word_boundaries() {
        let (bits, members) = sample();
        assert_eq!(bits.len() as usize, members.len());
        for (start, end) in
            [(0, 300), (0, 64), (63, 65), (64, 128), (5, 6), (100, 100), (130, 299), (250, 400)]
        {
            let mut found = Vec::new();
            bits.for_each_in(start, end, |doc| found.push(doc));
            let expected: Vec<DocId> =
                members.iter().copied().filter(|doc| (start..end).contains(doc)).collect();
            assert_eq!(found, expected, "[{start}, {end})");
        }
        for from in 0..310 {
            let expected = members.iter().copied().find(|&doc| doc >= from).unwrap_or(TERMINATED);
            assert_eq!(bits.next_from(from), expected, "from {from}");
            assert_eq!(bits.contains(from), members.contains(&from), "{from}");
        }
    }

    #[test]
    fn a_full_set_less_some_documents_walks_and_seeks_like_their_list() {
        for max_doc in [1, 63, 64, 65, 200] {
            let mut bits = DocBits::full(max_doc);
            let removed: Vec<DocId> =
                (0..max_doc).filter(|doc| doc % 7 == 3 || *doc == max_doc - 1).collect();
            removed.iter().for_each(|&doc| bits.remove(doc));
            bits.remove(0);
            bits.remove(0);
            let members: Vec<DocId> = (1..max_doc).filter(|doc| !removed.contains(doc)).collect();
            assert_eq!(bits.len() as usize, members.len(), "{max_doc}");
            let mut walked = Vec::new();
            let mut set = bits.into_doc_set();
            while set.doc() != TERMINATED {
                walked.push(set.doc());
                set.advance();
            }
            assert_eq!(walked, members, "{max_doc}");
            assert_eq!(set.advance(), TERMINATED);
        }
        let (bits, members) = sample();
        let mut set = bits.into_doc_set();
        for target in [0, 1, 64, 65, 126, 200, 299] {
            let expected = members.iter().copied().find(|&doc| doc >= target).unwrap_or(TERMINATED);
            assert_eq!(set.seek(target), expected, "seek {target}");
        }
        assert_eq!(set.seek(TERMINATED), TERMINATED);
        let (bits, members) = sample();
        let mut set = bits.into_doc_set();
        for target in (0..310).step_by(5) {
            match set.seek_danger(target) {
                SeekDangerResult::Found => assert!(members.contains(&target) && set.doc() == target),
                SeekDangerResult::SeekLowerBound(bound) => {
                    let next = members.iter().copied().find(|&doc| doc >= target).unwrap_or(TERMINATED);
                    assert!(
                        !members.contains(&target) && bound > target && bound <= next,
                        "{target}: {bound}"
                    );
                }
            }
        }
    }
}
