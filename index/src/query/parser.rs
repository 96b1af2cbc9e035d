//! The query parser, built on nom. Each construct is one function; errors
//! carry the position where the parser stood and what it expected there.

use std::fmt;

use nom::bytes::complete::take_while1;
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

use super::ast::{Bound, Position, Query, TermValue};

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
    /// An error found after parsing in the term at `column` of `query` (a
    /// value of the wrong type for its field), shown as the parser's are.
    pub fn in_term(query: &str, column: usize, message: String) -> QueryError {
        QueryError { message, column, query: query.to_owned() }
    }

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
    let at = Position::before_end(input.len());
    if input.starts_with('"') {
        let (rest, phrase) = quoted(input, '"')?;
        return Ok((rest, Query::Term { field: None, value: TermValue::Phrase(phrase), at }));
    }
    if let Some((rest, pattern)) = regex_literal(input) {
        return Ok((rest, Query::Term { field: None, value: TermValue::Regex(pattern), at }));
    }
    for reserved in ["AND", "OR"] {
        if keyword(input, reserved).is_some() {
            return fail(input, format!("expected a term, found {reserved}"));
        }
    }
    if let Ok((after_field, field)) = field_name(input)
        && let Some(value_start) = after_field.strip_prefix(':')
    {
        if field == "_exists_" {
            return match field_name(value_start) {
                Ok((rest, name)) => Ok((rest, Query::Exists { field: name.to_owned(), at })),
                Err(_) => fail(value_start, "expected a field name after '_exists_:'"),
            };
        }
        let (rest, value) = term_value(value_start, field)?;
        return Ok((rest, Query::Term { field: Some(field.to_owned()), value, at }));
    }
    let (rest, word) = bare_word(input)?;
    Ok((rest, Query::Term { field: None, value: word_value(word), at }))
}

/// A `/regular expression/` without spaces, standing alone (followed by a
/// space, a parenthesis, a quote or the end). Anything else that starts with `/` is a bare word, so that paths
/// like `url.original:/api/v1/secrets` need no quoting.
fn regex_literal(input: &str) -> Option<(&str, String)> {
    if !input.starts_with('/') {
        return None;
    }
    let (rest, pattern) = quoted(input, '/').ok()?;
    // A bare word ends at these too, so `/a/(b)` is a regex and a group,
    // as it prints (`/a/ AND b`).
    let stands_alone = rest.is_empty() || rest.starts_with(|c: char| c.is_whitespace() || "()\"".contains(c));
    // No spaces inside (write `\s`): `a / b / c` is three words, not a regex.
    let compact = !pattern.chars().any(char::is_whitespace);
    (stands_alone && compact).then_some((rest, pattern))
}

/// A bare word: a wildcard pattern when it holds `*` or `?`.
fn word_value(word: &str) -> TermValue {
    if word.contains(['*', '?']) {
        TermValue::Wildcard(word.to_owned())
    } else {
        TermValue::Word(word.to_owned())
    }
}

fn term_value<'a>(input: &'a str, field: &str) -> Parsed<'a, TermValue> {
    if input.starts_with('"') {
        let (rest, phrase) = quoted(input, '"')?;
        return Ok((rest, TermValue::Phrase(phrase)));
    }
    if let Some((rest, pattern)) = regex_literal(input) {
        return Ok((rest, TermValue::Regex(pattern)));
    }
    if input.starts_with(['[', '{']) {
        return bracket_range(input);
    }
    for (operator, make) in COMPARISONS {
        if let Some(value_start) = input.strip_prefix(operator) {
            let (rest, value) =
                range_value(value_start, &format!("expected a value after '{field}:{operator}'"))?;
            return match value {
                Some(value) => Ok((rest, make(value))),
                None => fail(value_start, format!("expected a value after '{field}:{operator}', not *")),
            };
        }
    }
    match bare_word(input) {
        Ok((rest, word)) => Ok((rest, word_value(word))),
        Err(_) => fail(input, format!("expected a value after '{field}:'")),
    }
}

type MakeRange = fn(String) -> TermValue;

/// `>=`, `>`, `<=`, `<`, longest first.
const COMPARISONS: [(&str, MakeRange); 4] = [
    (">=", |value| TermValue::Range { lower: Bound::Included(value), upper: Bound::Unbounded }),
    ("<=", |value| TermValue::Range { lower: Bound::Unbounded, upper: Bound::Included(value) }),
    (">", |value| TermValue::Range { lower: Bound::Excluded(value), upper: Bound::Unbounded }),
    ("<", |value| TermValue::Range { lower: Bound::Unbounded, upper: Bound::Excluded(value) }),
];

/// `[a TO b]`, `{a TO b}`, `[a TO b}`, `{a TO b]`, with `*` for an open end.
fn bracket_range(input: &str) -> Parsed<'_, TermValue> {
    let inclusive_lower = input.starts_with('[');
    let after_open = skip_space(&input[1..]);
    let (after_lower, lower) = range_value(after_open, "expected the start of the range")?;
    let before_to = skip_space(after_lower);
    let Some(after_to) = keyword(before_to, "TO") else {
        return fail(before_to, "expected TO in the range");
    };
    let (after_upper, upper) = range_value(skip_space(after_to), "expected the end of the range")?;
    let before_close = skip_space(after_upper);
    let inclusive_upper = if before_close.starts_with(']') {
        true
    } else if before_close.starts_with('}') {
        false
    } else {
        return fail(before_close, "expected ']' or '}' to close the range");
    };
    let bound = |value: Option<String>, inclusive: bool| match value {
        None => Bound::Unbounded,
        Some(value) if inclusive => Bound::Included(value),
        Some(value) => Bound::Excluded(value),
    };
    let value =
        TermValue::Range { lower: bound(lower, inclusive_lower), upper: bound(upper, inclusive_upper) };
    Ok((&before_close[1..], value))
}

/// One end of a range: a quoted or bare value, or `*` (open: `None`).
fn range_value<'a>(input: &'a str, expected: &str) -> Parsed<'a, Option<String>> {
    if input.starts_with('"') {
        let (rest, text) = quoted(input, '"')?;
        return Ok((rest, Some(text)));
    }
    let end = input.find(|c: char| c.is_whitespace() || "()[]{}\"".contains(c)).unwrap_or(input.len());
    if end == 0 {
        return fail(input, expected.to_owned());
    }
    let text = &input[..end];
    Ok((&input[end..], if text == "*" { None } else { Some(text.to_owned()) }))
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

/// A `"quoted phrase"` or `/regex/`, with the delimiter and `\\` escaped by
/// a backslash.
fn quoted(input: &str, delimiter: char) -> Parsed<'_, String> {
    let mut text = String::new();
    let mut chars = input.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            c if c == delimiter => return Ok((&input[at + 1..], text)),
            '\\' => match chars.next() {
                // In a regular expression, only the delimiter is unescaped;
                // `\d`, `\.` and `\\` keep their meaning for the regex engine.
                Some((_, escaped)) if delimiter == '/' && escaped != '/' => {
                    text.push('\\');
                    text.push(escaped);
                }
                Some((_, escaped)) => text.push(escaped),
                None => break,
            },
            other => text.push(other),
        }
    }
    fail(
        input,
        if delimiter == '"' { "unterminated quoted phrase" } else { "unterminated regular expression" },
    )
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
        Query::Term {
            field: field.map(str::to_owned),
            value: TermValue::Word(word.to_owned()),
            at: Position::default(),
        }
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
                    value: TermValue::Phrase("system:serviceaccount:kube-system:x".into()),
                    at: Position::default(),
                },
                Query::Not(Box::new(term(Some("verb"), "get"))),
                Query::Term {
                    field: Some("url.original".into()),
                    value: TermValue::Wildcard("/api/v1?x=1".into()),
                    at: Position::default(),
                },
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
        // Printed no deeper than parsed: a query at the nesting limit, with
        // an AND inside each OR, still reads back.
        let mut deep = "q".to_owned();
        for level in 0..MAX_DEPTH - 1 {
            deep = format!("(a{level} OR b{level} {deep})");
        }
        let query = parse(&deep).unwrap();
        assert_eq!(parse(&query.to_string()).unwrap(), query);
        assert_eq!(parse("a OR b c").unwrap().to_string(), "a OR b AND c");
        assert_eq!(parse("(a OR b) c").unwrap().to_string(), "(a OR b) AND c");
        assert_eq!(parse("a (b c)").unwrap().to_string(), "a AND (b AND c)");
        // A regex before a group or a phrase stands alone, as it prints.
        for text in ["/a/(b)", "/a/\"q\""] {
            let query = parse(text).unwrap();
            assert!(
                matches!(&query, Query::And(parts) if matches!(parts[0], Query::Term { value: TermValue::Regex(_), .. })),
                "{text}"
            );
            assert_eq!(parse(&query.to_string()).unwrap(), query, "{text}");
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

    /// Found by the property test: a slash, a space, and a later slash
    /// must not become a regular expression when printed and read again.
    #[test]
    fn regression_slashes_around_spaces_are_words_not_a_regex() {
        let query = parse("/ _exists_:/*/ ").unwrap();
        assert_eq!(parse(&query.to_string()).unwrap(), query);
        assert_eq!(
            parse("a / b /").unwrap(),
            Query::And(vec![term(None, "a"), term(None, "/"), term(None, "b"), term(None, "/")])
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message().contains("deeper than 64"));
        let nots = "NOT ".repeat(10_000) + "a";
        assert!(parse(&nots).is_err());
    }

    #[test]
    fn ranges_exists_regexes_and_wildcards() {
        let range = |lower: Bound, upper: Bound| TermValue::Range { lower, upper };
        let cases = [
            ("code:>=400", range(Bound::Included("400".into()), Bound::Unbounded)),
            ("code:<500", range(Bound::Unbounded, Bound::Excluded("500".into()))),
            ("code:[400 TO 499]", range(Bound::Included("400".into()), Bound::Included("499".into()))),
            ("code:{400 TO *]", range(Bound::Excluded("400".into()), Bound::Unbounded)),
            (
                "t:[\"2025-01-01T00:00:00Z\" TO now}",
                range(Bound::Included("2025-01-01T00:00:00Z".into()), Bound::Excluded("now".into())),
            ),
            ("name:kube-*", TermValue::Wildcard("kube-*".into())),
            ("name:/kube-.*\\d/", TermValue::Regex("kube-.*\\d".into())),
            ("name:/a\\/b/", TermValue::Regex("a/b".into())),
        ];
        for (text, value) in cases {
            let field = text.split(':').next().unwrap().to_owned();
            assert_eq!(
                parse(text).unwrap(),
                Query::Term { field: Some(field), value, at: Position::default() },
                "{text}"
            );
        }
        assert_eq!(
            parse("_exists_:user.name").unwrap(),
            Query::Exists { field: "user.name".into(), at: Position::default() }
        );
        let errors = [
            ("code:[400 499]", "expected TO in the range", 11),
            ("code:[400 TO 499", "expected ']' or '}' to close the range", 17),
            ("code:>=", "expected a value after 'code:>='", 8),
            ("_exists_:", "expected a field name after '_exists_:'", 10),
        ];
        for (text, message, column) in errors {
            let error = parse(text).unwrap_err();
            assert_eq!((error.message(), error.column()), (message, column), "{text}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::parse;

        /// Text built from the language's own pieces, so that most samples
        /// parse and the round trip is exercised, plus arbitrary characters.
        fn query_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("AND ".to_owned()),
                Just("OR ".to_owned()),
                Just("NOT ".to_owned()),
                Just("(".to_owned()),
                Just(") ".to_owned()),
                Just("-".to_owned()),
                Just("_exists_:".to_owned()),
                "[a-z]{1,6}(\\.[a-z]{1,4})?:".prop_map(|s| s),
                "[a-zA-Z0-9*?/.-]{1,8} ".prop_map(|s| s),
                "\"[a-z \\\\\"]{0,6}\" ".prop_map(|s| s),
                "/[a-z.*\\\\/]{0,5}/ ".prop_map(|s| s),
                "(>=|<=|>|<)[0-9]{1,3} ".prop_map(|s| s),
                "[\\[{][0-9*]{1,3} TO [0-9*]{1,3}[\\]}] ".prop_map(|s| s),
                any::<char>().prop_map(|c| c.to_string()),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn printing_a_parsed_query_and_parsing_it_again_gives_the_same_tree(text in query_text()) {
                if let Ok(query) = parse(&text) {
                    let printed = query.to_string();
                    let again = parse(&printed);
                    prop_assert_eq!(again.as_ref(), Ok(&query), "{:?} printed as {:?}", text, printed);
                }
            }

            #[test]
            fn no_input_panics(text in "\\PC{0,64}") {
                let _ = parse(&text);
            }
        }
    }
}
