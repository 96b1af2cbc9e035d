//! [`LiveRules`]: the rule set the server runs, replaced whole on reload.
//!
//! A new set is compiled off to the side; swapping it in only replaces an
//! `Arc` under a lock held for a pointer copy, so matching never waits for a
//! compile. A set that fails to load is refused whole: the running one
//! stays, and the failure is kept for the API and the log.
//!
//! Dropping a large rule set takes a while (all of SigmaHQ: tens of
//! milliseconds), so a replaced set is never dropped under the lock nor by
//! the matching thread: it is retired, and [`LiveRules::collect_retired`]
//! (called by the reloading thread) drops it once nothing else holds it.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::RuleSet;

/// Where a loaded rule set came from, as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RulesOrigin {
    /// Each rules directory with the Git commit it is checked out at, if any.
    pub sources: Vec<SourceRevision>,
    /// RFC 3339 time the running set was loaded.
    pub loaded_at: String,
}

impl RulesOrigin {
    /// The commits of the sources that are Git checkouts, space-separated.
    pub fn commit(&self) -> Option<String> {
        let commits: Vec<&str> = self.sources.iter().filter_map(|source| source.commit.as_deref()).collect();
        (!commits.is_empty()).then(|| commits.join(" "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRevision {
    pub path: String,
    /// `git rev-parse HEAD` of the directory; `None` when it is not a checkout.
    pub commit: Option<String>,
}

/// The last reload that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadFailure {
    /// RFC 3339 time of the attempt.
    pub at: String,
    /// Every error, one `file:line: error: message` per line.
    pub error: String,
}

struct Running {
    rules: Arc<RuleSet>,
    origin: RulesOrigin,
    generation: u64,
    last_failure: Option<ReloadFailure>,
}

/// The running rule set, swappable while events are being matched.
pub struct LiveRules {
    running: RwLock<Running>,
    /// Replaced sets, kept until no batch is matched with them any more.
    retired: std::sync::Mutex<Vec<Arc<RuleSet>>>,
}

/// A consistent view of [`LiveRules`] for the API.
#[derive(Debug, Clone)]
pub struct LiveStatus {
    pub rules: Arc<RuleSet>,
    pub origin: RulesOrigin,
    /// 1 for the set loaded at start, +1 per successful reload.
    pub generation: u64,
    pub last_failure: Option<ReloadFailure>,
}

impl LiveRules {
    pub fn new(rules: Arc<RuleSet>, origin: RulesOrigin) -> LiveRules {
        LiveRules {
            running: RwLock::new(Running { rules, origin, generation: 1, last_failure: None }),
            retired: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The set to match the next batch with.
    pub fn current(&self) -> Arc<RuleSet> {
        self.read().rules.clone()
    }

    /// Puts a newly loaded set in place and forgets the last failure.
    /// The replaced set is retired, not dropped: see [`LiveRules::collect_retired`].
    pub fn replace(&self, rules: Arc<RuleSet>, origin: RulesOrigin) {
        let old = {
            let mut running = self.running.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            running.origin = origin;
            running.generation += 1;
            running.last_failure = None;
            std::mem::replace(&mut running.rules, rules)
        };
        self.retired.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(old);
        self.collect_retired();
    }

    /// Drops the retired sets nothing uses any more, on the caller's thread.
    /// Returns how many are still in use.
    pub fn collect_retired(&self) -> usize {
        let unused: Vec<Arc<RuleSet>> = {
            let mut retired = self.retired.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (unused, in_use) = retired.drain(..).partition(|set| Arc::strong_count(set) == 1);
            *retired = in_use;
            unused
        };
        let still_in_use = self.retired.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len();
        drop(unused);
        still_in_use
    }

    /// Records a refused reload; the running set is kept.
    pub fn refuse(&self, failure: ReloadFailure) {
        let mut running = self.running.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        running.last_failure = Some(failure);
    }

    pub fn status(&self) -> LiveStatus {
        let running = self.read();
        LiveStatus {
            rules: running.rules.clone(),
            origin: running.origin.clone(),
            generation: running.generation,
            last_failure: running.last_failure.clone(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Running> {
        self.running.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuleSource;

    #[test]
    fn a_replaced_set_is_dropped_by_collect_once_unused_never_by_its_last_reader() {
        let live =
            LiveRules::new(Arc::new(RuleSet::load(&[RuleSource::Builtin]).unwrap()), RulesOrigin::default());
        let held_by_a_batch = live.current();
        live.replace(Arc::new(RuleSet::load(&[RuleSource::Builtin]).unwrap()), RulesOrigin::default());
        assert_eq!(live.status().generation, 2);
        // The batch still holds the old set: it stays retired.
        assert_eq!(live.collect_retired(), 1);
        let weak = Arc::downgrade(&held_by_a_batch);
        drop(held_by_a_batch);
        // The batch's drop was not the last one: the set lives until collected.
        assert!(weak.upgrade().is_some());
        assert_eq!(live.collect_retired(), 0);
        assert!(weak.upgrade().is_none());
    }
}
