//! Spreading one search's work over the machine's cores: its segments
//! while it collects, its hits while it reads them from the doc store.
//!
//! The calling thread does the work itself, item by item, and a few helper
//! threads join in if the scheduler gives them a core: each item is claimed
//! by one thread, and the caller waits only for the items a helper has
//! claimed, never for a helper that has not started. On idle cores a large
//! search takes about half the time. On cores busy with indexing and
//! merges, searches took about as long with helpers as without (measured
//! against two busy loops at niceness 10: some faster, some slower, all
//! within the scheduler's 4 ms tick).

use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Threads one search uses at most by default, its own included.
const DEFAULT_MAX_THREADS: usize = 4;

/// Helper threads alive in the process at most, over all searches: past
/// it, a search's own thread does its work alone (many analysts searching
/// at once gain nothing from more threads than cores).
fn max_live_helpers() -> usize {
    2 * std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Helper threads alive now.
static LIVE_HELPERS: AtomicUsize = AtomicUsize::new(0);

/// A helper's place in a count of live helpers ([`LIVE_HELPERS`]), given
/// back when it ends.
struct HelperSlot(&'static AtomicUsize);

impl HelperSlot {
    fn take(live: &'static AtomicUsize, limit: usize) -> Option<HelperSlot> {
        let taken =
            live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| (now < limit).then(|| now + 1));
        // Made only once the place is taken: a slot's drop gives one back.
        taken.is_ok().then(|| HelperSlot(live))
    }
}

impl Drop for HelperSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The threads a search uses by default: as many as the process may run
/// on (its CPU quota counts), at most [`DEFAULT_MAX_THREADS`].
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get).min(DEFAULT_MAX_THREADS)
}

/// How many helpers to offer for `work` units, when a helper is worth
/// `per_helper` of them: no more than `threads - 1`, nor `items - 1`.
pub(crate) fn helpers_for(work: u64, per_helper: u64, items: usize, threads: usize) -> usize {
    let worth = usize::try_from(work / per_helper.max(1)).unwrap_or(usize::MAX);
    worth.min(threads.saturating_sub(1)).min(items.saturating_sub(1))
}

struct Shared<T, R, F> {
    items: Vec<T>,
    work: F,
    next: AtomicUsize,
    slots: Mutex<Vec<Option<std::thread::Result<R>>>>,
    done: AtomicUsize,
    finished: Condvar,
}

impl<T, R, F: Fn(&T) -> R> Shared<T, R, F> {
    fn slots(&self) -> MutexGuard<'_, Vec<Option<std::thread::Result<R>>>> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims and does items until none is left.
    fn drain(&self) {
        while self.claim_one() {}
    }

    /// Claims and does one item; false when none was left.
    fn claim_one(&self) -> bool {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = self.items.get(index) else { return false };
        // A panic is the work's own: handed to the caller, which raises it
        // as if the work had run on its thread.
        let result = catch_unwind(AssertUnwindSafe(|| (self.work)(item)));
        self.slots()[index] = Some(result);
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.items.len() {
            // Under the lock: the caller checks `done` under it before it sleeps.
            let _slots = self.slots();
            self.finished.notify_all();
        }
        true
    }
}

/// Runs `work` on every item, on the calling thread with up to `helpers`
/// threads joining in, and returns the results in the items' order.
pub(crate) fn run<T, R, F>(items: Vec<T>, helpers: usize, work: F) -> Vec<R>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(&T) -> R + Send + Sync + 'static,
{
    let count = items.len();
    let shared = Arc::new(Shared {
        items,
        work,
        next: AtomicUsize::new(0),
        slots: Mutex::new((0..count).map(|_| None).collect()),
        done: AtomicUsize::new(0),
        finished: Condvar::new(),
    });
    let limit = max_live_helpers();
    for _ in 0..helpers.min(count.saturating_sub(1)) {
        let Some(slot) = HelperSlot::take(&LIVE_HELPERS, limit) else { break };
        let shared = Arc::clone(&shared);
        // Without a thread, the caller does the work alone.
        let _ = std::thread::Builder::new().name("vigil-search".into()).spawn(move || {
            let _slot = slot;
            shared.drain();
        });
    }
    shared.drain();
    let mut slots = shared.slots();
    while shared.done.load(Ordering::Acquire) < count {
        slots = shared.finished.wait(slots).unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    let taken = std::mem::take(&mut *slots);
    drop(slots);
    taken.into_iter().flatten().map(|result| result.unwrap_or_else(|panic| resume_unwind(panic))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_done_once_and_comes_back_in_order() {
        let items: Vec<u64> = (0..1000).collect();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let doubled = run(items.clone(), 3, move |item| {
            counted.fetch_add(1, Ordering::Relaxed);
            item * 2
        });
        assert_eq!(doubled, items.iter().map(|item| item * 2).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn the_caller_does_not_wait_for_a_helper_that_never_runs() {
        // A helper offered for one item can never claim it before the caller.
        assert_eq!(run(vec![7], 3, |item| item + 1), vec![8]);
        assert!(run(Vec::<u8>::new(), 3, |item| *item).is_empty());
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let outcome = catch_unwind(|| run((0..64).collect::<Vec<u32>>(), 2, |item| assert_ne!(*item, 40)));
        assert!(outcome.is_err());
    }

    #[test]
    fn helpers_alive_at_once_are_bounded_and_their_places_given_back() {
        // A count of its own: the searches of other tests use the global one.
        static LIVE: AtomicUsize = AtomicUsize::new(0);
        let first = HelperSlot::take(&LIVE, 2);
        let second = HelperSlot::take(&LIVE, 2);
        assert!(first.is_some() && second.is_some());
        assert!(HelperSlot::take(&LIVE, 2).is_none(), "past the limit, no helper");
        assert_eq!(LIVE.load(Ordering::Acquire), 2, "a refused place is not given back");
        drop(first);
        let again = HelperSlot::take(&LIVE, 2);
        assert!(again.is_some(), "a place given back is taken again");
        drop((second, again));
        assert_eq!(LIVE.load(Ordering::Acquire), 0);
    }

    #[test]
    fn helpers_are_offered_for_large_work_within_the_thread_limit() {
        assert_eq!(helpers_for(10, 1_000, 50, 4), 0);
        assert_eq!(helpers_for(u64::MAX, 1, 1, 4), 0);
        assert_eq!(helpers_for(u64::MAX, 1, 100, 4), 3);
        assert_eq!(helpers_for(u64::MAX, 1, 100, 1), 0, "one thread: the caller alone");
        assert_eq!(helpers_for(3_000, 1_000, 100, 8), 3);
        assert!((1..=DEFAULT_MAX_THREADS).contains(&default_threads()));
    }
}
