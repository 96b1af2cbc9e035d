//! Spreading one search's work over the machine's cores: its segments
//! while it collects, its hits while it reads them from the doc store.
//!
//! A search is one request on one thread of the blocking pool; splitting
//! it shortens its latency when the cores are idle (an analyst's search at
//! rest) and costs a thread spawn or two when they are not. Small work
//! stays on the calling thread.

use std::num::NonZeroUsize;

/// Threads one search may use at most.
const MAX_THREADS: usize = 4;

/// How many threads to use for `work` units, when one thread is worth
/// `per_thread` of them.
pub(crate) fn threads_for(work: u64, per_thread: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get).min(MAX_THREADS);
    usize::try_from(work / per_thread.max(1)).unwrap_or(usize::MAX).clamp(1, cores)
}

/// Runs `work` on each group on a thread of its own (the first on the
/// calling thread) and returns the results in the groups' order.
pub(crate) fn map<G: Send, R: Send>(groups: Vec<G>, work: impl Fn(G) -> R + Sync) -> Vec<R> {
    let mut groups = groups.into_iter();
    let Some(first) = groups.next() else { return Vec::new() };
    std::thread::scope(|scope| {
        let work = &work;
        let others: Vec<_> = groups.map(|group| scope.spawn(move || work(group))).collect();
        let mut results = vec![work(first)];
        for other in others {
            match other.join() {
                Ok(result) => results.push(result),
                // The work's own panic, passed on as it would have been inline.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

/// Deals items into `threads` groups of about equal cost, largest first,
/// each to the group with the least so far; each item keeps its index.
pub(crate) fn deal_by_cost<T>(
    items: Vec<T>,
    threads: usize,
    cost: impl Fn(&T) -> u64,
) -> Vec<Vec<(usize, T)>> {
    let mut indexed: Vec<(usize, T)> = items.into_iter().enumerate().collect();
    indexed.sort_by_key(|(_, item)| std::cmp::Reverse(cost(item)));
    let mut groups: Vec<(u64, Vec<(usize, T)>)> = (0..threads.max(1)).map(|_| (0, Vec::new())).collect();
    for (index, item) in indexed {
        let item_cost = cost(&item);
        if let Some(lightest) = groups.iter_mut().min_by_key(|(load, _)| *load) {
            lightest.0 += item_cost;
            lightest.1.push((index, item));
        }
    }
    groups.into_iter().map(|(_, group)| group).filter(|group| !group.is_empty()).collect()
}

/// Puts results computed out of order, each with its item's index, back in
/// order.
pub(crate) fn in_order<R>(parts: Vec<Vec<(usize, R)>>, len: usize) -> Vec<R> {
    let mut slots: Vec<Option<R>> = (0..len).map(|_| None).collect();
    for (index, result) in parts.into_iter().flatten() {
        slots[index] = Some(result);
    }
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dealt_by_cost_comes_back_in_order() {
        let items: Vec<u64> = vec![5, 100, 1, 40, 60, 2, 7];
        let groups = deal_by_cost(items.clone(), 3, |item| *item);
        assert_eq!(groups.len(), 3);
        // The largest item is alone against the rest.
        let loads: Vec<u64> = groups.iter().map(|group| group.iter().map(|(_, item)| item).sum()).collect();
        assert!(loads.contains(&100), "{loads:?}");
        let doubled = map(groups, |group| group.into_iter().map(|(index, item)| (index, item * 2)).collect());
        assert_eq!(in_order(doubled, items.len()), items.iter().map(|item| item * 2).collect::<Vec<_>>());
    }

    #[test]
    fn small_work_stays_on_one_thread_and_nothing_is_no_work() {
        assert_eq!(threads_for(10, 1_000), 1);
        assert!(threads_for(u64::MAX, 1) <= MAX_THREADS);
        assert!(map(Vec::<u8>::new(), |_| 1).is_empty());
        assert!(deal_by_cost(Vec::<u64>::new(), 2, |item| *item).is_empty());
    }
}
