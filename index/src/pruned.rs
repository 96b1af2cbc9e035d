//! The original event as the `_orig` field indexes it: without the parts
//! the index holds already, read in place.
//!
//! [`Pruned`] is a view of the original that tantivy walks as a JSON value
//! ([`tantivy::schema::Value`]); the nodes left out are named by address.
//! Building it copies nothing, where a pruned copy of each event's original
//! cost a deep clone and its drop.

use serde_json::Value;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf, Value as TantivyValue};

/// Nodes of one original left out of the view, by address (a handful per
/// event: a scan beats a set).
#[derive(Debug)]
pub(crate) struct LeftOut<'v> {
    /// The original.
    root: &'v Value,
    /// Whether a top-level key of the original holds a dot; when none
    /// does (most events), a dotted path starts with its first segment,
    /// and its longer heads are not looked up.
    dotted_keys: bool,
    nodes: Vec<usize>,
    /// Objects on the paths walked, with their depth: an object all of
    /// whose entries are left out is left out too.
    on_paths: Vec<(usize, &'v Value)>,
}

fn address(value: &Value) -> usize {
    value as *const Value as usize
}

impl<'v> LeftOut<'v> {
    /// Nothing left out of `root` yet.
    pub(crate) fn new(root: &'v Value) -> LeftOut<'v> {
        LeftOut {
            root,
            dotted_keys: vigil_schema::has_dotted_keys(root),
            nodes: Vec::new(),
            on_paths: Vec::new(),
        }
    }

    fn contains(&self, value: &Value) -> bool {
        self.nodes.contains(&address(value))
    }

    /// Leaves out the value at a dotted path, where keys may hold dots
    /// themselves (`annotations.authorization.k8s.io/decision`): at each
    /// level the whole rest of the path as a key, else the first head that
    /// is a key, walked into.
    pub(crate) fn path(&mut self, path: &str) {
        let root = self.root;
        match path.split_once('.') {
            Some((head, rest)) if !self.dotted_keys => {
                if let Some(child) = root.get(head) {
                    self.on_paths.push((0, child));
                    self.walk(child, rest, 1);
                }
            }
            _ => self.walk(root, path, 0),
        }
    }

    fn walk(&mut self, value: &'v Value, path: &str, depth: usize) {
        let Value::Object(object) = value else { return };
        if let Some(found) = object.get(path) {
            self.nodes.push(address(found));
            return;
        }
        for (dot, _) in path.match_indices('.') {
            if let Some(child) = object.get(&path[..dot]) {
                self.on_paths.push((depth, child));
                self.walk(child, &path[dot + 1..], depth + 1);
                return;
            }
        }
    }

    /// Leaves out a key of the top-level object.
    pub(crate) fn key(&mut self, key: &str) {
        if let Some(found) = self.root.get(key) {
            self.nodes.push(address(found));
        }
    }

    /// The view of `original` without what was left out. Objects on the
    /// paths walked that are left empty are left out too, deepest first.
    pub(crate) fn view<'a>(&'a mut self) -> Pruned<'a>
    where
        'v: 'a,
    {
        let original = self.root;
        let mut on_paths = std::mem::take(&mut self.on_paths);
        // Deepest first (a stable sort: walk order within a depth).
        on_paths.sort_by_key(|&(depth, _)| std::cmp::Reverse(depth));
        for (_, object) in on_paths {
            let emptied = match object {
                Value::Object(entries) => entries.values().all(|child| self.contains(child)),
                _ => false,
            };
            if emptied && !self.contains(object) {
                self.nodes.push(address(object));
            }
        }
        Pruned { value: original, left_out: self }
    }
}

/// A JSON value less the nodes of a [`LeftOut`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pruned<'a> {
    value: &'a Value,
    left_out: &'a LeftOut<'a>,
}

impl<'a> TantivyValue<'a> for Pruned<'a> {
    type ArrayIter = PrunedItems<'a>;
    type ObjectIter = PrunedEntries<'a>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        match self.value {
            Value::Array(items) => {
                ReferenceValue::Array(PrunedItems { items: items.iter(), left_out: self.left_out })
            }
            Value::Object(entries) => {
                ReferenceValue::Object(PrunedEntries { entries: entries.iter(), left_out: self.left_out })
            }
            // Leaves as tantivy reads a JSON value (numbers, dates in strings).
            leaf => ReferenceValue::Leaf(
                <&Value as TantivyValue>::as_leaf(&leaf).unwrap_or(ReferenceValueLeaf::Null),
            ),
        }
    }
}

pub(crate) struct PrunedItems<'a> {
    items: std::slice::Iter<'a, Value>,
    left_out: &'a LeftOut<'a>,
}

impl<'a> Iterator for PrunedItems<'a> {
    type Item = Pruned<'a>;

    fn next(&mut self) -> Option<Pruned<'a>> {
        self.items.next().map(|value| Pruned { value, left_out: self.left_out })
    }
}

pub(crate) struct PrunedEntries<'a> {
    entries: serde_json::map::Iter<'a>,
    left_out: &'a LeftOut<'a>,
}

impl<'a> Iterator for PrunedEntries<'a> {
    type Item = (&'a str, Pruned<'a>);

    fn next(&mut self) -> Option<(&'a str, Pruned<'a>)> {
        self.entries
            .by_ref()
            .find(|(_, value)| !self.left_out.contains(value))
            .map(|(key, value)| (key.as_str(), Pruned { value, left_out: self.left_out }))
    }
}
