//! Compiles a [`Query`] into a tantivy query against the
//! fields of [`DocSchema`].
//!
//! Field names resolve in this order: a schema field (`user.name`), a
//! Kubernetes audit name with a schema twin (`objectRef.resource` is
//! `orchestrator.resource.type`), a schema field outside the fixed list
//! (`labels.app`), and otherwise a dotted path in the original event.
//! Keyword values match whole and case-insensitively.

use std::net::IpAddr;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query as TantivyQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DateTime, Term};
use vigil_schema::fields::{self, FieldKind};

use crate::doc::{DocSchema, to_ipv6, to_tantivy_time};
use crate::query::{Query, TermValue};

/// A query that is well formed but cannot be run (a value of the wrong type
/// for its field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CompileError {
    pub field: String,
    pub message: String,
}

pub struct Compiler<'a> {
    pub schema: &'a DocSchema,
    pub tokenizers: &'a TokenizerManager,
}

impl Compiler<'_> {
    pub fn compile(&self, query: &Query) -> Result<Box<dyn TantivyQuery>, CompileError> {
        Ok(match query {
            Query::All => Box::new(AllQuery),
            Query::And(parts) => {
                let clauses = parts
                    .iter()
                    .map(|part| Ok((Occur::Must, self.compile(part)?)))
                    .collect::<Result<_, _>>()?;
                Box::new(BooleanQuery::new(clauses))
            }
            Query::Or(parts) => {
                let clauses = parts
                    .iter()
                    .map(|part| Ok((Occur::Should, self.compile(part)?)))
                    .collect::<Result<_, _>>()?;
                Box::new(BooleanQuery::new(clauses))
            }
            Query::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn TantivyQuery>),
                (Occur::MustNot, self.compile(inner)?),
            ])),
            Query::Term { field: None, value } => self.text_query(self.schema.all, value.text()),
            Query::Term { field: Some(name), value } => self.field_query(name, value)?,
        })
    }

    fn field_query(&self, name: &str, value: &TermValue) -> Result<Box<dyn TantivyQuery>, CompileError> {
        let text = value.text();
        let schema_name = fields::K8S_AUDIT_ALIASES
            .iter()
            .find(|(original, _)| *original == name)
            .map(|(_, schema)| *schema)
            .unwrap_or(name);
        if schema_name == fields::EVENT_ID {
            return Ok(term(Term::from_field_text(self.schema.id, text)));
        }
        if schema_name == fields::TIMESTAMP {
            let time = parse_time(name, text)?;
            return Ok(term(Term::from_field_date_for_search(self.schema.timestamp, time)));
        }
        let error = |message: String| CompileError { field: name.to_owned(), message };
        if let Some((kind, field)) = self.schema.named_field(schema_name) {
            return Ok(match kind {
                FieldKind::Keyword => term(Term::from_field_text(field, &text.to_lowercase())),
                FieldKind::Text => self.text_query(field, text),
                FieldKind::Long => match text.parse::<i64>() {
                    Ok(number) => term(Term::from_field_i64(field, number)),
                    Err(_) => return Err(error(format!("{text:?} is not a whole number"))),
                },
                FieldKind::Ip => match text.parse::<IpAddr>() {
                    Ok(ip) => term(Term::from_field_ip_addr(field, to_ipv6(ip))),
                    Err(_) => return Err(error(format!("{text:?} is not an IP address"))),
                },
                FieldKind::Date => term(Term::from_field_date_for_search(field, parse_time(name, text)?)),
            });
        }
        let json_field =
            if fields::kind_of(schema_name).is_some() { self.schema.extra } else { self.schema.original };
        Ok(json_query(json_field, schema_name, text))
    }

    /// Words of a free-text value: one word is a term, several a phrase.
    fn text_query(&self, field: Field, text: &str) -> Box<dyn TantivyQuery> {
        let Some(mut analyzer) = self.tokenizers.get("default") else {
            return Box::new(EmptyQuery);
        };
        let mut terms = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            terms.push((token.position, Term::from_field_text(field, &token.text)));
        }
        match terms.len() {
            0 => Box::new(EmptyQuery),
            1 => term(terms.swap_remove(0).1),
            _ => Box::new(PhraseQuery::new_with_offset(terms)),
        }
    }
}

/// A value in a JSON field: the lower-cased string, or the number when the
/// value reads as one (JSON numbers are indexed as numbers).
fn json_query(field: Field, path: &str, text: &str) -> Box<dyn TantivyQuery> {
    let mut string_term = Term::from_field_json_path(field, path, true);
    string_term.append_type_and_str(&text.to_lowercase());
    let mut alternatives: Vec<Box<dyn TantivyQuery>> = vec![term(string_term)];
    if let Ok(number) = text.parse::<i64>() {
        let mut number_term = Term::from_field_json_path(field, path, true);
        number_term.append_type_and_fast_value(number);
        alternatives.push(term(number_term));
        if let Ok(unsigned) = u64::try_from(number) {
            let mut unsigned_term = Term::from_field_json_path(field, path, true);
            unsigned_term.append_type_and_fast_value(unsigned);
            alternatives.push(term(unsigned_term));
        }
    }
    if let Ok(flag) = text.parse::<bool>() {
        let mut bool_term = Term::from_field_json_path(field, path, true);
        bool_term.append_type_and_fast_value(flag);
        alternatives.push(term(bool_term));
    }
    if alternatives.len() == 1 {
        alternatives.swap_remove(0)
    } else {
        Box::new(BooleanQuery::union(alternatives))
    }
}

fn term(term: Term) -> Box<dyn TantivyQuery> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

fn parse_time(field: &str, text: &str) -> Result<DateTime, CompileError> {
    chrono::DateTime::parse_from_rfc3339(text).map(|time| to_tantivy_time(time.to_utc())).map_err(|_| {
        CompileError { field: field.to_owned(), message: format!("{text:?} is not an RFC 3339 time") }
    })
}
