use std::fmt;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Every event (the empty query).
    All,
    /// A value, in one field or (`field: None`) anywhere in the event.
    Term {
        field: Option<String>,
        value: TermValue,
        at: Position,
    },
    /// `_exists_:field`: the field has a value.
    Exists {
        field: String,
        at: Position,
    },
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
}

/// Where a term starts in the text it was parsed from, for the errors found
/// in it later (a value of the wrong type for its field): kept as the
/// length of the text from there to the end, which whoever has the text
/// turns into a column. Not part of the query's meaning: queries that
/// differ only in where their terms stand are equal, and a query built
/// rather than parsed has no positions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Position {
    remaining: Option<usize>,
}

impl Position {
    /// The position of a term with `remaining` bytes of the text from its
    /// start to the end.
    pub(crate) fn before_end(remaining: usize) -> Position {
        Position { remaining: Some(remaining) }
    }

    /// Its 1-based column, in characters, in the text it was parsed from.
    pub fn column(self, text: &str) -> Option<usize> {
        let start = text.len().checked_sub(self.remaining?)?;
        Some(text.get(..start)?.chars().count() + 1)
    }
}

impl PartialEq for Position {
    fn eq(&self, _: &Position) -> bool {
        true
    }
}

impl Eq for Position {}

/// The value of a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermValue {
    /// An unquoted word: matches the whole value, ignoring case.
    Word(String),
    /// A `"quoted phrase"`, with its escapes resolved: matches the whole
    /// value exactly, case included, on keyword fields.
    Phrase(String),
    /// An unquoted word with `*` (any characters) or `?` (one character).
    Wildcard(String),
    /// `/regular expression/`, matched against the whole (lower-cased) value.
    Regex(String),
    /// `[a TO b]`, `{a TO b}`, `>=a`, `<b` ...
    Range { lower: Bound, upper: Bound },
}

/// One end of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Unbounded,
    Included(String),
    Excluded(String),
}

impl TermValue {
    /// The value's text, for the kinds that have one.
    pub fn text(&self) -> Option<&str> {
        match self {
            TermValue::Word(text)
            | TermValue::Phrase(text)
            | TermValue::Wildcard(text)
            | TermValue::Regex(text) => Some(text),
            TermValue::Range { .. } => None,
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str, quote: char) -> fmt::Result {
    write!(f, "{quote}")?;
    for c in text.chars() {
        if c == quote || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    write!(f, "{quote}")
}

/// Whether a range value can be printed bare and read back as itself.
fn is_bare_range_value(text: &str) -> bool {
    !text.is_empty()
        && text != "*"
        && text != "TO"
        && !text.chars().any(|c| c.is_whitespace() || "()[]{}\"\\".contains(c))
}

fn write_range_value(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    if is_bare_range_value(text) { f.write_str(text) } else { write_quoted(f, text, '"') }
}

impl fmt::Display for TermValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TermValue::Word(text) | TermValue::Wildcard(text) => f.write_str(text),
            TermValue::Phrase(text) => write_quoted(f, text, '"'),
            TermValue::Regex(text) => {
                f.write_str("/")?;
                for c in text.chars() {
                    if c == '/' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("/")
            }
            TermValue::Range { lower, upper } => {
                match lower {
                    Bound::Excluded(value) => {
                        f.write_str("{")?;
                        write_range_value(f, value)?;
                    }
                    Bound::Included(value) => {
                        f.write_str("[")?;
                        write_range_value(f, value)?;
                    }
                    Bound::Unbounded => f.write_str("[*")?,
                }
                f.write_str(" TO ")?;
                match upper {
                    Bound::Excluded(value) => {
                        write_range_value(f, value)?;
                        f.write_str("}")
                    }
                    Bound::Included(value) => {
                        write_range_value(f, value)?;
                        f.write_str("]")
                    }
                    Bound::Unbounded => f.write_str("*]"),
                }
            }
        }
    }
}

impl fmt::Display for Query {
    /// Prints the query in a canonical form that parses back to the same
    /// tree, with only the parentheses that tree needs (an OR inside an AND,
    /// a compound under NOT, an operator inside the same one): never deeper
    /// than the query it was parsed from, so never past the nesting limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_under(f, Under::Top)
    }
}

/// What a part of a query is printed under.
#[derive(Clone, Copy, PartialEq)]
enum Under {
    Top,
    And,
    Or,
    Not,
}

impl Query {
    fn write_under(&self, f: &mut fmt::Formatter<'_>, under: Under) -> fmt::Result {
        match self {
            Query::All => Ok(()),
            Query::Term { field: Some(field), value, .. } => write!(f, "{field}:{value}"),
            Query::Term { field: None, value, .. } => write!(f, "{value}"),
            Query::Exists { field, .. } => write!(f, "_exists_:{field}"),
            // AND binds tighter than OR: only AND, NOT and another AND
            // (kept apart as parsed) need it parenthesized.
            Query::And(parts) => {
                write_joined(f, parts, Under::And, under != Under::Top && under != Under::Or)
            }
            Query::Or(parts) => write_joined(f, parts, Under::Or, under != Under::Top),
            Query::Not(inner) => {
                f.write_str("NOT ")?;
                inner.write_under(f, Under::Not)
            }
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    parts: &[Query],
    operator: Under,
    parenthesized: bool,
) -> fmt::Result {
    let separator = if operator == Under::And { " AND " } else { " OR " };
    if parenthesized {
        f.write_str("(")?;
    }
    for (position, part) in parts.iter().enumerate() {
        if position > 0 {
            f.write_str(separator)?;
        }
        part.write_under(f, operator)?;
    }
    if parenthesized {
        f.write_str(")")?;
    }
    Ok(())
}
