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
    },
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
}

/// The value of a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermValue {
    /// An unquoted word.
    Word(String),
    /// A `"quoted phrase"`, with its escapes resolved.
    Phrase(String),
}

impl TermValue {
    pub fn text(&self) -> &str {
        match self {
            TermValue::Word(text) | TermValue::Phrase(text) => text,
        }
    }
}

impl fmt::Display for TermValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TermValue::Word(word) => f.write_str(word),
            TermValue::Phrase(phrase) => {
                f.write_str("\"")?;
                for c in phrase.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
        }
    }
}

impl fmt::Display for Query {
    /// Prints the query in a canonical form that parses back to the same tree:
    /// every compound is parenthesized.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::All => Ok(()),
            Query::Term { field: Some(field), value } => write!(f, "{field}:{value}"),
            Query::Term { field: None, value } => write!(f, "{value}"),
            Query::And(parts) => write_joined(f, parts, " AND "),
            Query::Or(parts) => write_joined(f, parts, " OR "),
            Query::Not(inner) => write!(f, "NOT {inner}"),
        }
    }
}

fn write_joined(f: &mut fmt::Formatter<'_>, parts: &[Query], separator: &str) -> fmt::Result {
    f.write_str("(")?;
    for (position, part) in parts.iter().enumerate() {
        if position > 0 {
            f.write_str(separator)?;
        }
        write!(f, "{part}")?;
    }
    f.write_str(")")
}
