//! Vigil's query language: an AST that knows nothing of tantivy, and its
//! parser.
//!
//! ```text
//! user.name:alice AND (verb:get OR verb:list) NOT "kube-system"
//! ```
//!
//! - `field:value` and `field:"quoted phrase"`: a field of the schema, or a
//!   dotted name in the original event (`objectRef.resource:secrets`).
//! - free text, a bare word or a `"quoted phrase"`: searched in `message` and
//!   every string of the event.
//! - `AND`, `OR`, `NOT` (upper case), `-term`, parentheses; words side by side
//!   are ANDed. `AND` binds tighter than `OR`.
//! - wildcards, ranges, CIDR blocks, `_exists_:field`, `/regular expressions/`
//!   (docs/query-language.md).
//!
//! [`Query`] prints back to text that parses to the same tree. Its terms
//! keep their [`Position`], so that errors found when a query is compiled
//! point at the term, as the parser's do.

mod ast;
mod parser;

pub use ast::{Bound, Position, Query, TermValue};
pub use parser::{QueryError, parse};
