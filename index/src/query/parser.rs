//! The query parser, built on nom. Each construct is one function; errors
//! carry the position where the parser stood and what it expected there.

use std::fmt;

use nom::bytes::complete::take_while1;
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

use super::ast::{Query, TermValue};

/// How deep parentheses and `NOT`s may nest; deeper queries are refused
/// rather than risking the stack.
pub const MAX_DEPTH: usize = 64;

/// A query that could not be parsed: what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    message: String,
    /// 1-based column, in characters.
    column: usize,
    query: String,
}

impl QueryError {
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for QueryError {
    /// `expected ')' at column 12`, then the query, then a caret under the column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one_line: String = self.query.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        write!(
            f,
            "{} at column {}\n  {one_line}\n  {}^",
            self.message,
            self.column,
            " ".repeat(self.column - 1)
        )
    }
}

impl std::error::Error for QueryError {}

/// The parser's internal error: the input left where it failed, and what it
/// expected there.
#[derive(Debug)]
struct Failure<'a> {
    remaining: &'a str,
    expected: String,
}

impl<'a> ParseError<&'a str> for Failure<'a> {
    fn from_error_kind(remaining: &'a str, kind: ErrorKind) -> Self {
        Failure { remaining, expected: kind.description().to_owned() }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type Parsed<'a, T> = IResult<&'a str, T, Failure<'a>>;

fn fail<T>(remaining: &str, expected: impl Into<String>) -> Parsed<'_, T> {
    Err(nom::Err::Failure(Failure { remaining, expected: expected.into() }))
}

/// Parses a query. The empty query (or only spaces) is [`Query::All`].
pub fn parse(text: &str) -> Result<Query, QueryError> {
    let to_error = |failure: Failure<'_>| {
        let consumed = &text[..text.len() - failure.remaining.len()];
        QueryError { message: failure.expected, column: consumed.chars().count() + 1, query: text.to_owned() }
    };
    let start = skip_space(text);
    if start.is_empty() {
        return Ok(Query::All);
    }
    match or_expr(start, 0) {
        Ok((rest, query)) => {
            let rest = skip_space(rest);
            if rest.is_empty() {
                Ok(query)
            } else if rest.starts_with(')') {
                Err(to_error(Failure { remaining: rest, expected: "unbalanced ')'".into() }))
            } else {
                Err(to_error(Failure {
                    remaining: rest,
                    expected: "expected AND, OR or the end of the query".into(),
                }))
            }
        }
        Err(nom::Err::Error(failure) | nom::Err::Failure(failure)) => Err(to_error(failure)),
        Err(nom::Err::Incomplete(_)) => {
            Err(to_error(Failure { remaining: "", expected: "unexpected end of query".into() }))
        }
    }
}

fn skip_space(input: &str) -> &str {
    input.trim_start()
}

/// `a OR b OR c`
fn or_expr(input: &str, depth: usize) -> Parsed<'_, Query> {
    let (mut input, first) = and_expr(input, depth)?;
    let mut parts = vec![first];
    loop {
        let after_space = skip_space(input);
        let Some(after_keyword) = keyword(after_space, "OR") else { break };
        let operand = skip_space(after_keyword);
        if operand.is_empty() || operand.starts_with(')') {
            return fail(operand, "expected a term after OR");
        }
        let (rest, next) = and_expr(operand, depth)?;
        parts.push(next);
        input = rest;
    }
    Ok((input, if parts.len() == 1 { parts.swap_remove(0) } else { Query::Or(parts) }))
}

/// `a AND b c` (side by side means AND)
fn and_expr(input: &str, depth: usize) -> Parsed<'_, Query> {
    let (mut input, first) = unary(input, depth)?;
    let mut parts = vec![first];
    loop {
        let after_space = skip_space(input);
        if after_space.is_empty() || after_space.starts_with(')') || keyword(after_space, "OR").is_some() {
            break;
        }
        let operand = match keyword(after_space, "AND") {
            Some(after_keyword) => {
                let operand = skip_space(after_keyword);
                if operand.is_empty() || operand.starts_with(')') || keyword(operand, "OR").is_some() {
                    return fail(operand, "expected a term after AND");
                }
                operand
            }
            None => after_space,
        };
        let (rest, next) = unary(operand, depth)?;
        parts.push(next);
        input = rest;
    }
    Ok((input, if parts.len() == 1 { parts.swap_remove(0) } else { Query::And(parts) }))
}

/// `NOT a`, `-a`, or a primary
fn unary(input: &str, depth: usize) -> Parsed<'_, Query> {
    if depth >= MAX_DEPTH {
        return fail(input, format!("query nests deeper than {MAX_DEPTH} levels"));
    }
    if let Some(after_keyword) = keyword(input, "NOT") {
        let operand = skip_space(after_keyword);
        if operand.is_empty() || operand.starts_with(')') {
            return fail(operand, "expected a term after NOT");
        }
        let (rest, inner) = unary(operand, depth + 1)?;
        return Ok((rest, Query::Not(Box::new(inner))));
    }
    if let Some(operand) = input.strip_prefix('-')
        && operand.starts_with(|c: char| !c.is_whitespace() && c != ')')
    {
        let (rest, inner) = unary(operand, depth + 1)?;
        return Ok((rest, Query::Not(Box::new(inner))));
    }
    primary(input, depth)
}

/// `( query )`, `"phrase"`, `field:value` or `word`
fn primary(input: &str, depth: usize) -> Parsed<'_, Query> {
    if let Some(inside) = input.strip_prefix('(') {
        let inside = skip_space(inside);
        if inside.starts_with(')') {
            return fail(inside, "expected a query inside the parentheses");
        }
        if inside.is_empty() {
            return fail(inside, "expected a query and ')'");
        }
        let (rest, query) = or_expr(inside, depth + 1)?;
        let rest = skip_space(rest);
        return match rest.strip_prefix(')') {
            Some(after) => Ok((after, query)),
            None => fail(rest, "expected ')'"),
        };
    }
    if input.starts_with('"') {
        let (rest, phrase) = quoted(input)?;
        return Ok((rest, Query::Term { field: None, value: TermValue::Phrase(phrase) }));
    }
    for reserved in ["AND", "OR"] {
        if keyword(input, reserved).is_some() {
            return fail(input, format!("expected a term, found {reserved}"));
        }
    }
    if let Ok((after_field, field)) = field_name(input)
        && let Some(value_start) = after_field.strip_prefix(':')
    {
        let (rest, value) = term_value(value_start, field)?;
        return Ok((rest, Query::Term { field: Some(field.to_owned()), value }));
    }
    let (rest, word) = bare_word(input)?;
    Ok((rest, Query::Term { field: None, value: TermValue::Word(word.to_owned()) }))
}

fn term_value<'a>(input: &'a str, field: &str) -> Parsed<'a, TermValue> {
    if input.starts_with('"') {
        let (rest, phrase) = quoted(input)?;
        return Ok((rest, TermValue::Phrase(phrase)));
    }
    match bare_word(input) {
        Ok((rest, word)) => Ok((rest, TermValue::Word(word.to_owned()))),
        Err(_) => fail(input, format!("expected a value after '{field}:'")),
    }
}

/// A field name: letters, digits and `_ . @ - /`, not starting with `-`.
fn field_name(input: &str) -> Parsed<'_, &str> {
    let (rest, name) = take_while1(|c: char| c.is_alphanumeric() || "_.@-/".contains(c)).parse(input)?;
    if name.starts_with('-') {
        return Err(nom::Err::Error(Failure { remaining: input, expected: "a field name".into() }));
    }
    Ok((rest, name))
}

/// Anything up to a space, a parenthesis or a quote.
fn bare_word(input: &str) -> Parsed<'_, &str> {
    take_while1(|c: char| !c.is_whitespace() && !"()\"".contains(c)).parse(input).map_err(
        |_: nom::Err<Failure<'_>>| {
            nom::Err::Failure(Failure { remaining: input, expected: "expected a term".into() })
        },
    )
}

/// A `"quoted phrase"` with `\"` and `\\` escapes.
fn quoted(input: &str) -> Parsed<'_, String> {
    let mut text = String::new();
    let mut chars = input.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((&input[at + 1..], text)),
            '\\' => match chars.next() {
                Some((_, escaped)) => text.push(escaped),
                None => break,
            },
            other => text.push(other),
        }
    }
    fail(input, "unterminated quoted phrase")
}

/// The rest of the input after `word` when `word` is a whole token there
/// (followed by a space, a parenthesis, a quote or the end).
fn keyword<'a>(input: &'a str, word: &str) -> Option<&'a str> {
    let rest = input.strip_prefix(word)?;
    let whole = rest.is_empty() || rest.starts_with(|c: char| c.is_whitespace() || "()\"".contains(c));
    whole.then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(field: Option<&str>, word: &str) -> Query {
        Query::Term { field: field.map(str::to_owned), value: TermValue::Word(word.to_owned()) }
    }

    #[test]
    fn precedence_and_implicit_and() {
        let query = parse("a b OR c AND NOT d").unwrap();
        assert_eq!(
            query,
            Query::Or(vec![
                Query::And(vec![term(None, "a"), term(None, "b")]),
                Query::And(vec![term(None, "c"), Query::Not(Box::new(term(None, "d")))]),
            ])
        );
    }

    #[test]
    fn fields_phrases_and_negation() {
        let query =
            parse(r#"user.name:"system:serviceaccount:kube-system:x" -verb:get url.original:/api/v1?x=1"#)
                .unwrap();
        assert_eq!(
            query,
            Query::And(vec![
                Query::Term {
                    field: Some("user.name".into()),
                    value: TermValue::Phrase("system:serviceaccount:kube-system:x".into())
                },
                Query::Not(Box::new(term(Some("verb"), "get"))),
                term(Some("url.original"), "/api/v1?x=1"),
            ])
        );
    }

    #[test]
    fn empty_query_is_all() {
        assert_eq!(parse("  ").unwrap(), Query::All);
    }

    #[test]
    fn printing_and_parsing_again_gives_the_same_tree() {
        for text in [
            "a",
            "a b c",
            "(a OR b) c",
            "NOT (a OR -b)",
            r#"f:"x \" y" g:1"#,
            "objectRef.resource:secrets AND (verb:get OR verb:list)",
        ] {
            let query = parse(text).unwrap();
            let printed = query.to_string();
            assert_eq!(parse(&printed).unwrap(), query, "{text} printed as {printed}");
        }
    }

    #[test]
    fn errors_name_the_problem_and_the_column() {
        let cases = [
            ("user.name:(alice", "expected a value after 'user.name:'", 11),
            ("(a OR b", "expected ')'", 8),
            ("a OR", "expected a term after OR", 5),
            ("a AND", "expected a term after AND", 6),
            ("a )", "unbalanced ')'", 3),
            ("\"open", "unterminated quoted phrase", 1),
            ("OR a", "expected a term, found OR", 1),
            ("()", "expected a query inside the parentheses", 2),
        ];
        for (text, message, column) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!((error.message(), error.column()), (message, column), "{text}");
        }
        let shown = parse("a AND").unwrap_err().to_string();
        assert_eq!(shown, "expected a term after AND at column 6\n  a AND\n       ^");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message().contains("deeper than 64"));
        let nots = "NOT ".repeat(10_000) + "a";
        assert!(parse(&nots).is_err());
    }
}
