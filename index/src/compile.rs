//! Compiles a [`Query`] into a tantivy query against the fields of
//! [`DocSchema`].
//!
//! Field names resolve in this order: `event.id` and `@timestamp`; a schema
//! field (`user.name`); a Kubernetes audit name with a schema twin
//! (`objectRef.resource` is `orchestrator.resource.type`); a schema field
//! outside the fixed list (`labels.app`); otherwise a dotted path in the
//! original event. How each kind of value matches each kind of field is in
//! `docs/query-language.md`.

use std::net::{IpAddr, Ipv6Addr};
use std::ops::Bound as TantivyBound;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, FastFieldRangeQuery, InvertedIndexRangeQuery, Occur,
    PhraseQuery, Query as TantivyQuery, RangeQuery, RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DateTime, Term};
use vigil_schema::fields::{self, FieldKind};

use crate::doc::{DocSchema, time_bound, to_ipv6};
use crate::identifier::{IdentifierQuery, Wanted};
use crate::query::{Bound, Position, Query, TermValue};
use crate::range::NumericRangeQuery;

/// A query that is well formed but cannot be run: a value of the wrong type
/// for its field, a construct the field does not support, a bad pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CompileError {
    pub field: String,
    pub message: String,
}

/// A [`CompileError`] and where its term stands in the query's text.
#[derive(Debug)]
pub struct TermError {
    pub error: CompileError,
    pub at: Position,
}

/// Where a field name points.
pub(crate) enum Target<'a> {
    Id,
    Timestamp,
    Named {
        kind: FieldKind,
        field: Field,
        name: &'a str,
    },
    /// A path in a JSON field: the original event, or schema fields outside the fixed list.
    Json {
        field: Field,
        path: &'a str,
    },
}

pub struct Compiler<'a> {
    pub schema: &'a DocSchema,
    pub tokenizers: &'a TokenizerManager,
    /// What relative times in the query (`2h`, `now`) are read against.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Compiler<'_> {
    pub fn compile(&self, query: &Query) -> Result<Box<dyn TantivyQuery>, TermError> {
        let in_term = |at: Position| move |error| TermError { error, at };
        Ok(match query {
            Query::All => Box::new(AllQuery),
            Query::And(parts) => self.boolean(parts, Occur::Must)?,
            Query::Or(parts) => self.boolean(parts, Occur::Should)?,
            Query::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn TantivyQuery>),
                (Occur::MustNot, self.compile(inner)?),
            ])),
            Query::Exists { field, at } => self.exists(field).map_err(in_term(*at))?,
            Query::Term { field: None, value, at } => self.free_text(value).map_err(in_term(*at))?,
            Query::Term { field: Some(name), value, at } => {
                self.field_query(name, value).map_err(in_term(*at))?
            }
        })
    }

    fn boolean(&self, parts: &[Query], occur: Occur) -> Result<Box<dyn TantivyQuery>, TermError> {
        let clauses = parts.iter().map(|part| Ok((occur, self.compile(part)?))).collect::<Result<_, _>>()?;
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    pub(crate) fn resolve<'n>(&self, name: &'n str) -> Target<'n> {
        let schema_name = fields::alias(name).unwrap_or(name);
        if schema_name == fields::EVENT_ID {
            return Target::Id;
        }
        if schema_name == fields::TIMESTAMP {
            return Target::Timestamp;
        }
        if let Some((kind, field)) = self.schema.named_field(schema_name) {
            return Target::Named { kind, field, name: schema_name };
        }
        if fields::kind_of(schema_name).is_some() {
            return Target::Json { field: self.schema.extra, path: schema_name };
        }
        Target::Json { field: self.schema.original, path: name }
    }

    /// Free text: the words of `message` or of any other string of the
    /// original (`_all`, which holds all but the message's own copy).
    fn free_text(&self, value: &TermValue) -> Result<Box<dyn TantivyQuery>, CompileError> {
        let error = |message: &str| CompileError { field: "free text".into(), message: message.into() };
        let message = self.schema.named_field(fields::MESSAGE).map(|(_, field)| field);
        let mut either = Vec::new();
        for field in std::iter::once(self.schema.all).chain(message) {
            let query = match value {
                TermValue::Word(text) | TermValue::Phrase(text) => self.words(field, text, "free text")?,
                TermValue::Wildcard(pattern) => regex(field, "", &wildcard_to_regex(pattern), "free text")?,
                TermValue::Regex(pattern) => regex(field, "", pattern, "free text")?,
                TermValue::Range { .. } => {
                    return Err(error("a range needs a field, as in http.response.status_code:[400 TO 499]"));
                }
            };
            either.push((Occur::Should, query));
        }
        Ok(Box::new(BooleanQuery::new(either)))
    }

    /// A field's query. An alias of an original name (`objectRef.resource`,
    /// `kubernetes.pod_name`, `log`) is its schema twin on the events of the
    /// alias's dataset, or the original path on any event that kept it.
    fn field_query(&self, name: &str, value: &TermValue) -> Result<Box<dyn TantivyQuery>, CompileError> {
        let (twin, dataset) = match audit_time(name)? {
            Some(dataset) => (self.date_query(self.schema.timestamp, name, value), dataset),
            None => match fields::alias_in_dataset(name) {
                Some((_, dataset)) => (self.target_query(self.resolve(name), name, value), dataset),
                None => return self.target_query(self.resolve(name), name, value),
            },
        };
        // A value its twin refuses (not a number, not a time) is an error
        // rather than a search of the original path alone, which the events
        // of the alias's dataset leave out of the index: it would find none
        // of them, silently. So is an identifier's (see `identifier`). But
        // `timestamp`, a common key in any log, is searched as such.
        let twin_only = match self.resolve(name) {
            Target::Named { kind: FieldKind::Long | FieldKind::Ip | FieldKind::Date, .. } => true,
            Target::Named { name: schema_name, .. } => fields::is_identifier(schema_name),
            // The audit name, not the legacy `timestamp` that other logs use.
            _ => name == crate::doc::AUDIT_RECEIVE_TIMES[0],
        };
        let original =
            self.target_query(Target::Json { field: self.schema.original, path: name }, name, value);
        Ok(match (twin, original) {
            (Ok(twin), Ok(original)) => self.scoped_or(twin, dataset, original),
            (Ok(twin), Err(_)) => self.in_dataset(twin, dataset),
            (Err(error), Ok(_)) if twin_only => return Err(error),
            (Err(_), Ok(original)) => original,
            (Err(error), Err(_)) => return Err(error),
        })
    }

    /// `query` on the events of `dataset` only.
    fn in_dataset(&self, query: Box<dyn TantivyQuery>, dataset: &str) -> Box<dyn TantivyQuery> {
        match self.schema.named_field(fields::EVENT_DATASET) {
            Some((_, field)) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Must, term(Term::from_field_text(field, dataset))),
            ])),
            None => query,
        }
    }

    /// `twin` on the events of `dataset`, or `original` on any event.
    fn scoped_or(
        &self,
        twin: Box<dyn TantivyQuery>,
        dataset: &str,
        original: Box<dyn TantivyQuery>,
    ) -> Box<dyn TantivyQuery> {
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, self.in_dataset(twin, dataset)),
            (Occur::Should, original),
        ]))
    }

    fn target_query(
        &self,
        target: Target<'_>,
        name: &str,
        value: &TermValue,
    ) -> Result<Box<dyn TantivyQuery>, CompileError> {
        let error = |message: String| CompileError { field: name.to_owned(), message };
        // `[* TO *]`: any value (tantivy's ranges need a bound).
        if let TermValue::Range { lower: Bound::Unbounded, upper: Bound::Unbounded } = value {
            match target {
                Target::Timestamp => return Ok(Box::new(AllQuery)),
                Target::Named { kind: FieldKind::Long | FieldKind::Ip | FieldKind::Date, name, .. } => {
                    return Ok(Box::new(ExistsQuery::new(name.to_owned(), false)));
                }
                _ => {}
            }
        }
        match target {
            Target::Id => match value {
                TermValue::Word(text) | TermValue::Phrase(text) => {
                    match text.parse::<vigil_schema::EventId>() {
                        Ok(id) => Ok(crate::doc::id_query(self.schema, id)),
                        Err(parse_error) => Err(error(parse_error.to_string())),
                    }
                }
                _ => Err(error("takes one exact event id".into())),
            },
            Target::Timestamp => self.date_query(self.schema.timestamp, name, value),
            Target::Named { field, name: schema_name, .. } if fields::is_identifier(schema_name) => {
                let wanted = match value {
                    TermValue::Word(text) => Wanted::Value { value: text.clone(), exact: false },
                    TermValue::Phrase(text) => Wanted::Value { value: text.clone(), exact: true },
                    TermValue::Wildcard(pattern) if pattern == "*" => Wanted::Any,
                    TermValue::Range { lower: Bound::Unbounded, upper: Bound::Unbounded } => Wanted::Any,
                    _ => {
                        return Err(error(format!(
                            "{schema_name} identifies one request and is found by its whole value; wildcards, patterns and ranges do not apply"
                        )));
                    }
                };
                Ok(self.identifier(schema_name, field, wanted))
            }
            Target::Named { kind, field, name: schema_name } => match kind {
                FieldKind::Keyword => self.keyword_query(field, name, value),
                FieldKind::Text => match value {
                    TermValue::Word(text) | TermValue::Phrase(text) => self.words(field, text, name),
                    TermValue::Wildcard(pattern) => regex(field, "", &wildcard_to_regex(pattern), name),
                    TermValue::Regex(pattern) => regex(field, "", pattern, name),
                    TermValue::Range { .. } => Err(error(format!(
                        "{schema_name} is text; ranges work on keyword, number, time and IP fields"
                    ))),
                },
                FieldKind::Long => match value {
                    TermValue::Word(text) | TermValue::Phrase(text) => {
                        Ok(term(Term::from_field_i64(field, parse_long(name, text)?)))
                    }
                    TermValue::Range { lower, upper } => {
                        let bound = |bound: &Bound| {
                            map_bound(bound, |text| Ok(Term::from_field_i64(field, parse_long(name, text)?)))
                        };
                        Ok(Box::new(NumericRangeQuery::new(field, bound(lower)?, bound(upper)?)))
                    }
                    _ => {
                        Err(error("is a number; use a value or a range such as >=400 or [400 TO 499]".into()))
                    }
                },
                FieldKind::Date => self.date_query(field, name, value),
                FieldKind::Ip => match value {
                    TermValue::Word(text) | TermValue::Phrase(text) => ip_query(field, name, text),
                    TermValue::Range { lower, upper } => {
                        let bound = |bound: &Bound| {
                            map_bound(bound, |text| {
                                Ok(Term::from_field_ip_addr(field, to_ipv6(parse_ip(name, text)?)))
                            })
                        };
                        Ok(Box::new(NumericRangeQuery::new(field, bound(lower)?, bound(upper)?)))
                    }
                    _ => Err(error(
                        "is an IP address; use an address, a CIDR block (10.0.0.0/8) or a range".into(),
                    )),
                },
            },
            Target::Json { field, path } => self.json_query(field, name, path, value),
        }
    }

    /// Keyword fields: whole values; a word ignores case, a quoted value must
    /// match exactly, case included.
    fn keyword_query(
        &self,
        field: Field,
        name: &str,
        value: &TermValue,
    ) -> Result<Box<dyn TantivyQuery>, CompileError> {
        match value {
            TermValue::Word(text) => Ok(term(Term::from_field_text(field, &lower_case(text)))),
            TermValue::Phrase(text) => {
                let exact = Term::from_field_text(field, text);
                Ok(Box::new(BooleanQuery::new(vec![
                    (Occur::Must, term(Term::from_field_text(field, &lower_case(text)))),
                    (
                        Occur::Must,
                        Box::new(FastFieldRangeQuery::new(
                            TantivyBound::Included(exact.clone()),
                            TantivyBound::Included(exact),
                        )),
                    ),
                ])))
            }
            TermValue::Wildcard(pattern) => regex(field, "", &wildcard_to_regex(pattern), name),
            TermValue::Regex(pattern) => regex(field, "", pattern, name),
            TermValue::Range { lower, upper } => {
                if matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded)) {
                    return self.exists(name);
                }
                let bound = |bound: &Bound| {
                    map_bound(bound, |text| Ok(Term::from_field_text(field, &lower_case(text))))
                };
                Ok(Box::new(InvertedIndexRangeQuery::new(bound(lower)?, bound(upper)?)))
            }
        }
    }

    fn date_query(
        &self,
        field: Field,
        name: &str,
        value: &TermValue,
    ) -> Result<Box<dyn TantivyQuery>, CompileError> {
        match value {
            // An exact time matches every event in its second, read from the
            // fast field like ranges (`@timestamp` has no inverted index).
            TermValue::Word(text) | TermValue::Phrase(text) => {
                let time = parse_time(name, text, self.now)?;
                let second = time - chrono::Duration::nanoseconds(time.timestamp_subsec_nanos().into());
                let next = second.checked_add_signed(chrono::Duration::seconds(1)).unwrap_or(second);
                let at = |bound: TantivyBound<DateTime>| bound.map(|time| Term::from_field_date(field, time));
                Ok(Box::new(RangeQuery::new(at(time_bound(second, true)), at(time_bound(next, false)))))
            }
            TermValue::Range { lower, upper } => {
                // An open end is the end of the index's time range: `[* TO *]`
                // is every time there is (tantivy's ranges need a bound).
                let at = |nanos: i64| Term::from_field_date(field, DateTime::from_timestamp_nanos(nanos));
                let bound = |bound: &Bound, end: i64| {
                    let (text, inclusive) = match bound {
                        Bound::Unbounded => return Ok(TantivyBound::Included(at(end))),
                        Bound::Included(text) => (text, true),
                        Bound::Excluded(text) => (text, false),
                    };
                    let time = parse_time(name, text, self.now)?;
                    Ok(time_bound(time, inclusive).map(|time| Term::from_field_date(field, time)))
                };
                Ok(Box::new(RangeQuery::new(bound(lower, i64::MIN)?, bound(upper, i64::MAX)?)))
            }
            _ => Err(CompileError {
                field: name.to_owned(),
                message: "is a time; use a time or a range such as >=2h or [2025-01-01T00:00:00Z TO now]"
                    .into(),
            }),
        }
    }

    /// A path in a JSON field: lower-cased whole values (numbers and booleans
    /// by their text too), wildcards and regular expressions.
    fn json_query(
        &self,
        field: Field,
        name: &str,
        path: &str,
        value: &TermValue,
    ) -> Result<Box<dyn TantivyQuery>, CompileError> {
        let prefix = json_prefix(field, path);
        match value {
            TermValue::Word(text) | TermValue::Phrase(text) => Ok(json_value_query(field, path, text)),
            TermValue::Wildcard(pattern) => regex(field, &prefix, &wildcard_to_regex(pattern), name),
            TermValue::Regex(pattern) => regex(field, &prefix, pattern, name),
            TermValue::Range { .. } => Err(CompileError {
                field: name.to_owned(),
                message: "ranges work on the schema's fields (http.response.status_code, @timestamp, source.ip ...), not on the original event's".into(),
            }),
        }
    }

    /// `_exists_:name`. An alias exists as its twin on the events of its
    /// dataset or as the original path; a prefix of aliases (`kubernetes`,
    /// `objectRef`) exists when the original holds it or one of their twins is set.
    fn exists(&self, name: &str) -> Result<Box<dyn TantivyQuery>, CompileError> {
        let mut either = Vec::new();
        let twin = match audit_time(name)? {
            Some(dataset) => Some((Target::Timestamp, dataset)),
            None => fields::alias_in_dataset(name).map(|(_, dataset)| (self.resolve(name), dataset)),
        };
        match twin {
            Some((twin, dataset)) => {
                either.push(self.in_dataset(self.target_exists(twin), dataset));
                either.push(self.target_exists(Target::Json { field: self.schema.original, path: name }));
            }
            None => either.push(self.target_exists(self.resolve(name))),
        }
        for (schema_name, dataset) in fields::aliases_under(name) {
            either.push(self.in_dataset(self.target_exists(self.resolve(schema_name)), dataset));
        }
        if "kubernetes.labels".strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        {
            // A container record's labels are schema fields (`kubernetes.labels.*`).
            either.push(
                self.target_exists(Target::Json { field: self.schema.extra, path: "kubernetes.labels" }),
            );
        }
        Ok(match either.len() {
            1 => either.swap_remove(0),
            _ => {
                Box::new(BooleanQuery::new(either.into_iter().map(|query| (Occur::Should, query)).collect()))
            }
        })
    }

    fn target_exists(&self, target: Target<'_>) -> Box<dyn TantivyQuery> {
        match target {
            Target::Id | Target::Timestamp => Box::new(AllQuery),
            // Text and identifiers have no column: any term of theirs.
            Target::Named { kind: FieldKind::Text, field, .. } => Box::new(InvertedIndexRangeQuery::new(
                TantivyBound::Included(Term::from_field_text(field, "")),
                TantivyBound::Unbounded,
            )),
            Target::Named { field, name, .. } if fields::is_identifier(name) => {
                self.identifier(name, field, Wanted::Any)
            }
            Target::Named { name: schema_name, .. } => {
                Box::new(ExistsQuery::new(schema_name.to_owned(), false))
            }
            Target::Json { field, path } => {
                // Every term at the path or below it lies between `path\0`
                // (the end-of-path byte) and `path\x02` (past `path\x01...`,
                // its sub-paths), whatever the value's type.
                let path_bytes = json_path_bytes(field, path);
                let bound = |last: u8| {
                    let mut bytes = path_bytes.clone();
                    bytes.push(last);
                    Term::from_field_bytes(field, &bytes)
                };
                Box::new(InvertedIndexRangeQuery::new(
                    TantivyBound::Included(bound(0)),
                    TantivyBound::Excluded(bound(2)),
                ))
            }
        }
    }

    /// An identifier field's query ([`crate::identifier`]).
    fn identifier(&self, name: &str, text: Field, wanted: Wanted) -> Box<dyn TantivyQuery> {
        match fields::IDENTIFIERS.iter().find(|known| **known == name) {
            Some(name) => Box::new(IdentifierQuery { name, text, doc: self.schema.doc, wanted }),
            None => Box::new(EmptyQuery),
        }
    }

    /// Words of a free-text value: one word is a term, several a phrase.
    /// The words of a value in a text field: one, or a phrase. A value with
    /// none (`-`, `""`) is an error: it would match nothing, and make nothing
    /// of a whole AND around it.
    fn words(&self, field: Field, text: &str, name: &str) -> Result<Box<dyn TantivyQuery>, CompileError> {
        let Some(mut analyzer) = self.tokenizers.get("default") else {
            return Ok(Box::new(EmptyQuery));
        };
        let mut terms = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            terms.push((token.position, Term::from_field_text(field, &token.text)));
        }
        Ok(match terms.len() {
            0 => {
                return Err(CompileError {
                    field: name.to_owned(),
                    message: format!("{text:?} has no word to search (letters or digits)"),
                });
            }
            1 => term(terms.swap_remove(0).1),
            _ => Box::new(PhraseQuery::new_with_offset(terms)),
        })
    }
}

/// The bytes of a JSON path in a term, without the end-of-path byte.
fn json_path_bytes(field: Field, path: &str) -> Vec<u8> {
    let term = Term::from_field_json_path(field, path, true);
    let bytes = term.serialized_value_bytes();
    bytes.strip_suffix(&[0u8]).unwrap_or(bytes).to_vec()
}

/// The regex prefix that selects string values at a JSON path.
fn json_prefix(field: Field, path: &str) -> String {
    let mut term = Term::from_field_json_path(field, path, true);
    term.append_type_and_str("");
    escape_bytes(term.serialized_value_bytes())
}

fn escape_bytes(bytes: &[u8]) -> String {
    debug_assert!(!bytes.is_empty());
    let mut out = String::new();
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || byte == b'_' {
            out.push(byte as char);
        } else if byte.is_ascii() {
            out.push_str(&format!("\\x{byte:02x}"));
        } else {
            // Non-ASCII bytes of a UTF-8 path: match them literally.
            out.push_str(&format!("(?-u:\\x{byte:02x})"));
        }
    }
    out
}

/// A case-insensitive regular expression over a field's (lower-cased) terms,
/// after a literal prefix.
fn regex(
    field: Field,
    prefix: &str,
    pattern: &str,
    name: &str,
) -> Result<Box<dyn TantivyQuery>, CompileError> {
    let invalid = |error: tantivy::TantivyError| CompileError {
        field: name.to_owned(),
        message: format!("invalid regular expression {pattern:?}: {error}"),
    };
    // Checked alone first: wrapped, an unbalanced `)` would close the group
    // and change what the rest means.
    if let Some(fault) = regex_fault(pattern) {
        return Err(CompileError {
            field: name.to_owned(),
            message: format!("invalid regular expression /{pattern}/: {fault}"),
        });
    }
    RegexQuery::from_pattern(pattern, field).map_err(invalid)?;
    let full = format!("{prefix}(?i:{pattern})");
    RegexQuery::from_pattern(&full, field)
        .map(|query| Box::new(query) as Box<dyn TantivyQuery>)
        .map_err(invalid)
}

/// What is wrong with a regular expression's syntax, and where in it.
fn regex_fault(pattern: &str) -> Option<String> {
    let (kind, column) = match regex_syntax::Parser::new().parse(pattern).err()? {
        regex_syntax::Error::Parse(error) => (error.kind().to_string(), error.span().start.column),
        regex_syntax::Error::Translate(error) => (error.kind().to_string(), error.span().start.column),
        other => (other.to_string(), 1),
    };
    Some(format!("{kind} (at character {column} of it)"))
}

/// The dataset whose `@timestamp` answers a time of its original that the
/// index leaves out (see `doc::leave_out_of_audit`): an audit event's receive
/// time. Its stage's time is not indexed: asking for it is an error rather
/// than no hits.
fn audit_time(name: &str) -> Result<Option<&'static str>, CompileError> {
    if crate::doc::AUDIT_RECEIVE_TIMES.contains(&name) {
        Ok(Some(vigil_schema::audit::DATASET))
    } else if name == crate::doc::AUDIT_STAGE_TIME {
        Err(CompileError {
            field: name.to_owned(),
            message: "is not indexed; search @timestamp, when the API server received the request".into(),
        })
    } else {
        Ok(None)
    }
}

/// A value lower-cased as the index lower-cases it: one character at a
/// time (`str::to_lowercase` would make a final `Σ` a `ς`, tantivy a `σ`).
pub(crate) fn lower_case(text: &str) -> String {
    crate::identifier::lower_case(text).collect()
}

/// `kube-*` → `kube\x{2d}(?s:.)*`: `*` any characters, `?` one, everything
/// else literal (punctuation and spaces as hexadecimal escapes, which are
/// literal whatever the character: `\<` would be a word boundary).
pub fn wildcard_to_regex(pattern: &str) -> String {
    let mut out = String::new();
    for c in pattern.chars() {
        match c {
            // Any character, a line break too (a log line keeps its newline).
            '*' => out.push_str("(?s:.)*"),
            '?' => out.push_str("(?s:.)"),
            c if c.is_ascii_punctuation() || c.is_whitespace() => {
                out.push_str(&format!("\\x{{{:x}}}", c as u32))
            }
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// A value in a JSON field: the lower-cased string, or the number or boolean
/// when the value reads as one (JSON numbers and booleans are indexed as such).
fn json_value_query(field: Field, path: &str, text: &str) -> Box<dyn TantivyQuery> {
    let at_path = || Term::from_field_json_path(field, path, true);
    let mut string_term = at_path();
    string_term.append_type_and_str(&lower_case(text));
    let mut alternatives: Vec<Box<dyn TantivyQuery>> = vec![term(string_term)];
    // A JSON number is indexed as the first of i64, u64, f64 that holds it.
    if let Ok(number) = text.parse::<i64>() {
        let mut number_term = at_path();
        number_term.append_type_and_fast_value(number);
        alternatives.push(term(number_term));
    }
    if let Ok(unsigned) = text.parse::<u64>() {
        let mut unsigned_term = at_path();
        unsigned_term.append_type_and_fast_value(unsigned);
        alternatives.push(term(unsigned_term));
    }
    if let Ok(float) = text.parse::<f64>()
        && float.is_finite()
    {
        let mut float_term = at_path();
        float_term.append_type_and_fast_value(float);
        alternatives.push(term(float_term));
    }
    // Booleans in any case, like every value of the original.
    let flag = ["false", "true"].iter().position(|word| text.eq_ignore_ascii_case(word));
    if let Some(flag) = flag {
        let mut bool_term = at_path();
        bool_term.append_type_and_fast_value(flag == 1);
        alternatives.push(term(bool_term));
    }
    if alternatives.len() == 1 {
        alternatives.swap_remove(0)
    } else {
        Box::new(BooleanQuery::union(alternatives))
    }
}

fn ip_query(field: Field, name: &str, text: &str) -> Result<Box<dyn TantivyQuery>, CompileError> {
    let Some((address, prefix)) = text.split_once('/') else {
        return Ok(term(Term::from_field_ip_addr(field, to_ipv6(parse_ip(name, text)?))));
    };
    let invalid = || CompileError {
        field: name.to_owned(),
        message: format!("{text:?} is not a CIDR block like 10.0.0.0/8"),
    };
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let prefix: u32 = prefix.parse().map_err(|_| invalid())?;
    let (first, last) = cidr_range(address, prefix).ok_or_else(invalid)?;
    Ok(Box::new(NumericRangeQuery::new(
        field,
        TantivyBound::Included(Term::from_field_ip_addr(field, first)),
        TantivyBound::Included(Term::from_field_ip_addr(field, last)),
    )))
}

/// The first and last addresses of a CIDR block, as IPv6 (IPv4 mapped).
pub fn cidr_range(address: IpAddr, prefix: u32) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let (bits, total) = match address {
        IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    if prefix > total {
        return None;
    }
    let host_bits = total - prefix;
    let host_mask = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
    let first = bits & !host_mask;
    let last = first | host_mask;
    Some((Ipv6Addr::from(first), Ipv6Addr::from(last)))
}

fn map_bound(
    bound: &Bound,
    make: impl Fn(&str) -> Result<Term, CompileError>,
) -> Result<TantivyBound<Term>, CompileError> {
    Ok(match bound {
        Bound::Unbounded => TantivyBound::Unbounded,
        Bound::Included(text) => TantivyBound::Included(make(text)?),
        Bound::Excluded(text) => TantivyBound::Excluded(make(text)?),
    })
}

fn term(term: Term) -> Box<dyn TantivyQuery> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

fn parse_long(field: &str, text: &str) -> Result<i64, CompileError> {
    text.parse().map_err(|_| CompileError {
        field: field.to_owned(),
        message: format!("{text:?} is not a whole number"),
    })
}

fn parse_ip(field: &str, text: &str) -> Result<IpAddr, CompileError> {
    text.parse().map_err(|_| CompileError {
        field: field.to_owned(),
        message: format!("{text:?} is not an IP address"),
    })
}

fn parse_time(
    field: &str,
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, CompileError> {
    crate::time::parse_time_bound(text, now)
        .map_err(|message| CompileError { field: field.to_owned(), message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_anchored_literal_regexes() {
        assert_eq!(wildcard_to_regex("kube-*"), "kube\\x{2d}(?s:.)*");
        assert_eq!(wildcard_to_regex("*Admin?"), "(?s:.)*admin(?s:.)");
        assert_eq!(wildcard_to_regex("a.b <"), "a\\x{2e}b\\x{20}\\x{3c}");
    }

    #[test]
    fn cidr_blocks_cover_their_addresses() {
        let (first, last) = cidr_range("10.1.2.3".parse().unwrap(), 8).unwrap();
        assert_eq!(first, to_ipv6("10.0.0.0".parse().unwrap()));
        assert_eq!(last, to_ipv6("10.255.255.255".parse().unwrap()));
        let (first, last) = cidr_range("2001:db8::1".parse().unwrap(), 32).unwrap();
        assert_eq!(first, "2001:db8::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(last, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse::<Ipv6Addr>().unwrap());
        assert!(cidr_range("10.0.0.0".parse().unwrap(), 33).is_none());
        let (first, last) = cidr_range("0.0.0.0".parse().unwrap(), 0).unwrap();
        assert_eq!(
            (first, last),
            (to_ipv6("0.0.0.0".parse().unwrap()), to_ipv6("255.255.255.255".parse().unwrap()))
        );
    }
}
