//! Rule fixtures: a file `NAME.tests.yaml` beside the rule file `NAME.yml`
//! lists events the file's rules must match and events they must not.
//!
//! ```yaml
//! base: {kind: Event, apiVersion: audit.k8s.io/v1, stage: ResponseComplete, ...}
//! match:
//!   - name: kubectl exec into a pod
//!     event: {kind: Event, apiVersion: audit.k8s.io/v1, verb: create, ...}
//! no_match:
//!   - name: reading pod logs
//!     event: {...}
//! ```
//!
//! Events are written as their source sends them (an audit Event, a Falco
//! alert); the caller normalizes them, so this crate does not depend on the
//! normalizers.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{Diagnostic, Severity};

/// The fixtures of one rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureFile {
    /// The fixture file itself.
    pub path: PathBuf,
    /// The rule file it tests.
    pub rule_file: PathBuf,
    pub cases: Vec<FixtureCase>,
}

/// Events and what the rules of the file must do with them.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureCase {
    pub name: String,
    pub expect: Expectation,
    /// One event (`event:`), or a sequence fed in order (`events:`), for
    /// correlations.
    pub events: Vec<Value>,
    /// The line of the case in the fixture file.
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// Every rule of the file must match (one of the events).
    Match,
    /// No rule of the file may match any of the events.
    NoMatch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixtures {
    /// Merged under every case's event (objects key by key, recursively), so
    /// cases only write what differs; `null` in a case removes the key.
    #[serde(default)]
    base: Option<Value>,
    #[serde(default, rename = "match")]
    must_match: Vec<RawCase>,
    #[serde(default)]
    no_match: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    event: Option<Value>,
    events: Option<Vec<Value>>,
}

/// The fixture file of a rule file, if it has one: `NAME.tests.yaml` (or
/// `.tests.yml`) beside `NAME.yml` / `NAME.yaml`.
pub fn fixture_path_for(rule_file: &Path) -> Option<PathBuf> {
    let stem = rule_file.file_stem()?.to_str()?;
    ["yaml", "yml"]
        .into_iter()
        .map(|extension| rule_file.with_file_name(format!("{stem}.tests.{extension}")))
        .find(|candidate| candidate.is_file())
}

/// Reads a fixture file; a malformed one is a located error.
pub fn read_fixtures(path: &Path, rule_file: &Path) -> Result<FixtureFile, Diagnostic> {
    let located = |line: usize, message: String| Diagnostic {
        origin: path.display().to_string(),
        line,
        severity: Severity::Error,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|error| located(0, format!("cannot read: {error}")))?;
    let raw: RawFixtures = serde_yaml::from_str(&text).map_err(|error| {
        let line = error.location().map_or(1, |location| location.line());
        located(line, format!("not a fixture file: {error}"))
    })?;
    let mut cases = Vec::new();
    for (expect, raw_cases) in [(Expectation::Match, raw.must_match), (Expectation::NoMatch, raw.no_match)] {
        for case in raw_cases {
            let originals = match (case.event, case.events) {
                (Some(event), None) => vec![event],
                (None, Some(events)) if !events.is_empty() => events,
                _ => {
                    return Err(located(
                        1,
                        format!("case {:?}: give either `event:` or a non-empty `events:`", case.name),
                    ));
                }
            };
            let events = originals
                .into_iter()
                .map(|original| {
                    let mut event = raw.base.clone().unwrap_or(Value::Null);
                    merge(&mut event, original);
                    event
                })
                .collect();
            cases.push(FixtureCase { name: case.name, expect, events, line: 0 });
        }
    }
    // Cases are listed in file order per section; give each its line.
    let lines = case_lines(&text);
    let next_line = |section: Expectation, taken: &mut usize| {
        let found =
            lines.iter().filter(|(kind, _)| *kind == section).nth(*taken).map_or(1, |(_, line)| *line);
        *taken += 1;
        found
    };
    let (mut matches_taken, mut no_matches_taken) = (0, 0);
    for case in &mut cases {
        let taken =
            if case.expect == Expectation::Match { &mut matches_taken } else { &mut no_matches_taken };
        case.line = next_line(case.expect, taken);
    }
    if cases.is_empty() {
        return Err(located(1, "no cases: give `match:` and/or `no_match:` lists".into()));
    }
    Ok(FixtureFile { path: path.to_owned(), rule_file: rule_file.to_owned(), cases })
}

fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                if value.is_null() {
                    base.remove(&key);
                } else {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The line of each case (`- name:` at the indentation of the section's
/// first item, so that `- name:` lines inside events are not counted), with
/// the section it is in.
fn case_lines(text: &str) -> Vec<(Expectation, usize)> {
    let mut section = None;
    let mut item_indent = None;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.starts_with("match:") {
            (section, item_indent) = (Some(Expectation::Match), None);
        } else if line.starts_with("no_match:") {
            (section, item_indent) = (Some(Expectation::NoMatch), None);
        } else if !line.starts_with([' ', '-', '#']) && !line.trim().is_empty() {
            (section, item_indent) = (None, None);
        } else if let Some(kind) = section {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if trimmed.starts_with("- name:") && item_indent.is_none_or(|expected| expected == indent) {
                item_indent = Some(indent);
                lines.push((kind, number + 1));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_get_their_own_lines_not_those_of_lists_inside_events() {
        let text = "base:\n  kind: Event\nmatch:\n  - name: first\n    event:\n      spec:\n        containers:\n        - name: app\n  - name: second\n    event: {}\nno_match:\n- name: third\n  event: {}\n";
        assert_eq!(
            case_lines(text),
            vec![(Expectation::Match, 4), (Expectation::Match, 9), (Expectation::NoMatch, 12)]
        );
    }
}
