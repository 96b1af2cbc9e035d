//! [`LiveRules`]: the rule set the server runs, replaced whole on reload.
//!
//! A new set is compiled off to the side; swapping it in only replaces an
//! `Arc` under a lock held for a pointer copy, so matching never waits for a
//! compile. A set that fails to load is refused whole: the running one
//! stays, and the failure is kept for the API and the log.

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
        LiveRules { running: RwLock::new(Running { rules, origin, generation: 1, last_failure: None }) }
    }

    /// The set to match the next batch with.
    pub fn current(&self) -> Arc<RuleSet> {
        self.read().rules.clone()
    }

    /// Puts a newly loaded set in place and forgets the last failure.
    pub fn replace(&self, rules: Arc<RuleSet>, origin: RulesOrigin) {
        let mut running = self.running.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        running.rules = rules;
        running.origin = origin;
        running.generation += 1;
        running.last_failure = None;
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
