//! Rewrites Vigil applies to parsed Sigma rules before they are compiled:
//! Sigma filters (the pySigma reading: the filter's condition must hold for
//! the rule to match) and a correct `base64offset` expansion, which replaces
//! the one `rsigma-eval` 0.23 computes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;
use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, FieldSpec, FilterRule, LogSource, Modifier, SelectorPattern,
    SigmaRule, SigmaString, SigmaValue,
};

/// Whether a filter applies to a rule: the rule is listed (by id, name or
/// title) or the filter lists none (`rules: any`), and every logsource
/// attribute the filter sets equals the rule's.
pub(crate) fn filter_targets(filter: &FilterRule, rule: &SigmaRule, aliases: &[&str]) -> bool {
    let listed = match &filter.rules {
        rsigma_parser::FilterRuleTarget::Any => true,
        rsigma_parser::FilterRuleTarget::Specific(references) => references.iter().any(|reference| {
            rule.id.as_deref() == Some(reference.as_str())
                || rule.name.as_deref() == Some(reference.as_str())
                || rule.title == *reference
                || aliases.contains(&reference.as_str())
        }),
    };
    listed && filter.logsource.as_ref().is_none_or(|logsource| logsource_within(logsource, &rule.logsource))
}

fn logsource_within(filter: &LogSource, rule: &LogSource) -> bool {
    let attribute_fits = |wanted: &Option<String>, have: &Option<String>| match wanted {
        None => true,
        Some(wanted) => have.as_deref() == Some(wanted.as_str()),
    };
    attribute_fits(&filter.product, &rule.product)
        && attribute_fits(&filter.service, &rule.service)
        && attribute_fits(&filter.category, &rule.category)
}

/// Adds a filter's detections to a rule under `__filter_<n>_<name>` (names
/// starting with `_` are outside `them`, so the rule's own `1 of them` does
/// not see them) and makes each of the rule's conditions
/// `(condition) and (filter condition)`.
pub(crate) fn apply_filter(rule: &mut SigmaRule, filter: &FilterRule, filter_number: usize) {
    let prefix = format!("__filter_{filter_number}_");
    let mut names: Vec<String> = filter.detection.named.keys().cloned().collect();
    names.sort();
    for (name, detection) in &filter.detection.named {
        rule.detection.named.insert(format!("{prefix}{name}"), detection.clone());
    }
    let filter_condition = match filter.detection.conditions.first() {
        Some(condition) => prefix_identifiers(condition, &prefix),
        None => ConditionExpr::And(
            names.iter().map(|name| ConditionExpr::Identifier(format!("{prefix}{name}"))).collect(),
        ),
    };
    for condition in &mut rule.detection.conditions {
        *condition = ConditionExpr::And(vec![condition.clone(), filter_condition.clone()]);
    }
}

fn prefix_identifiers(condition: &ConditionExpr, prefix: &str) -> ConditionExpr {
    match condition {
        ConditionExpr::And(parts) => {
            ConditionExpr::And(parts.iter().map(|part| prefix_identifiers(part, prefix)).collect())
        }
        ConditionExpr::Or(parts) => {
            ConditionExpr::Or(parts.iter().map(|part| prefix_identifiers(part, prefix)).collect())
        }
        ConditionExpr::Not(inner) => ConditionExpr::Not(Box::new(prefix_identifiers(inner, prefix))),
        ConditionExpr::Identifier(name) => ConditionExpr::Identifier(format!("{prefix}{name}")),
        ConditionExpr::Selector { quantifier, pattern } => {
            // `them` inside a filter means the filter's own detections; the
            // engine leaves names starting with `_` (all prefixed names) out
            // of `them`, so they are selected through their prefix instead.
            let pattern = match pattern {
                SelectorPattern::Them => SelectorPattern::Pattern(format!("{prefix}*")),
                SelectorPattern::Pattern(glob) => SelectorPattern::Pattern(format!("{prefix}{glob}")),
            };
            ConditionExpr::Selector { quantifier: quantifier.clone(), pattern }
        }
    }
}

/// Replaces every `base64offset` item of a rule by plain `contains|cased`
/// matches on the three correct offset encodings. `rsigma-eval` 0.23 keeps
/// the last character of an encoding even when it depends on the bytes after
/// the value, so its patterns miss real encodings. Returns an error message
/// for values the rewrite cannot express (wildcards, non-strings).
pub(crate) fn fix_base64offset(rule: &mut SigmaRule) -> Result<(), String> {
    for detection in rule.detection.named.values_mut() {
        fix_detection(detection)?;
    }
    Ok(())
}

fn fix_detection(detection: &mut Detection) -> Result<(), String> {
    match detection {
        Detection::AllOf(items) => {
            let mut rewritten = Vec::with_capacity(items.len());
            for item in items.drain(..) {
                rewritten.extend(fix_item(item)?);
            }
            *items = rewritten;
        }
        Detection::AnyOf(parts) | Detection::And(parts) => {
            for part in parts {
                fix_detection(part)?;
            }
        }
        Detection::ArrayMatch { body, .. } => fix_detection(body)?,
        Detection::Conditional { named, .. } => {
            for part in named.values_mut() {
                fix_detection(part)?;
            }
        }
        Detection::Keywords(_) => {}
    }
    Ok(())
}

fn fix_item(item: DetectionItem) -> Result<Vec<DetectionItem>, String> {
    let Some(position) = item.field.modifiers.iter().position(|modifier| *modifier == Modifier::Base64Offset)
    else {
        return Ok(vec![item]);
    };
    let field_name = item.field.name.clone().unwrap_or_default();
    let encoders = &item.field.modifiers[..position];
    let mut per_value = Vec::with_capacity(item.values.len());
    for value in &item.values {
        let SigmaValue::String(text) = value else {
            return Err(format!("field {field_name:?}: base64offset needs string values"));
        };
        let Some(plain) = text.as_plain() else {
            return Err(format!(
                "field {field_name:?}: base64offset value {:?} has a wildcard",
                text.original
            ));
        };
        let bytes = encode_text(&plain, encoders)?;
        per_value.push(base64_offset_patterns(&bytes));
    }
    let matching_field = FieldSpec::new(item.field.name.clone(), vec![Modifier::Contains, Modifier::Cased]);
    let pattern_values =
        |patterns: Vec<String>| patterns.iter().map(|pattern| SigmaValue::String(literal(pattern))).collect();
    if item.field.modifiers.contains(&Modifier::All) {
        Ok(per_value
            .into_iter()
            .map(|patterns| DetectionItem { field: matching_field.clone(), values: pattern_values(patterns) })
            .collect())
    } else {
        let patterns = per_value.into_iter().flatten().collect();
        Ok(vec![DetectionItem { field: matching_field, values: pattern_values(patterns) }])
    }
}

fn literal(text: &str) -> SigmaString {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    SigmaString::new(&escaped)
}

fn encode_text(text: &str, encoders: &[Modifier]) -> Result<Vec<u8>, String> {
    let utf16 = |big_endian: bool| -> Vec<u8> {
        text.encode_utf16()
            .flat_map(|unit| if big_endian { unit.to_be_bytes() } else { unit.to_le_bytes() })
            .collect()
    };
    match encoders {
        [] => Ok(text.as_bytes().to_vec()),
        [Modifier::Wide] => Ok(utf16(false)),
        [Modifier::Utf16be] => Ok(utf16(true)),
        [Modifier::Utf16] => {
            let mut bytes = vec![0xFF, 0xFE];
            bytes.extend(utf16(false));
            Ok(bytes)
        }
        other => Err(format!("unsupported modifiers before base64offset: {other:?}")),
    }
}

/// The three encodings of `value` at byte offsets 0, 1 and 2 of a base64
/// group, keeping only the characters that depend on `value` alone: the
/// leading ones mixed with the bytes before it and the trailing ones mixed
/// with the bytes after it are cut (as pySigma does).
pub(crate) fn base64_offset_patterns(value: &[u8]) -> Vec<String> {
    const LEADING_CUT: [usize; 3] = [0, 2, 3];
    const TRAILING_CUT: [usize; 3] = [0, 3, 2];
    let mut patterns = Vec::with_capacity(3);
    for offset in 0..3 {
        let mut shifted = vec![b' '; offset];
        shifted.extend_from_slice(value);
        let encoded = BASE64_STANDARD.encode(&shifted);
        let end = encoded.len() - TRAILING_CUT[(value.len() + offset) % 3];
        let start = LEADING_CUT[offset];
        if start < end {
            patterns.push(encoded[start..end].to_owned());
        }
    }
    patterns
}
