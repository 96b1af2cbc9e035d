//! Limits on one record (an audit Event, a Falco alert, a log record): its
//! size, its nesting depth and its number of fields. A record over a limit
//! is refused with the limit named; its neighbours are kept.

use serde_json::Value;

/// The limits of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Largest record, in bytes of JSON (estimated from its values for
    /// records that were not on a line of their own).
    pub max_record_bytes: usize,
    /// Deepest nesting of objects and arrays.
    pub max_depth: usize,
    /// Most values (leaves) in one record.
    pub max_fields: usize,
}

impl Default for RecordLimits {
    fn default() -> RecordLimits {
        RecordLimits { max_record_bytes: 1024 * 1024, max_depth: 64, max_fields: 10_000 }
    }
}

impl RecordLimits {
    /// Checks a record; the error names the limit and its configuration key.
    pub fn check(&self, record: &Value) -> Result<(), String> {
        let mut walk = Walk { bytes: 0, fields: 0, deepest: 0 };
        walk.visit(record, 1, self)?;
        if walk.bytes > self.max_record_bytes {
            return Err(format!(
                "record of about {} bytes is over the limit of {} (http.max_record_bytes)",
                walk.bytes, self.max_record_bytes
            ));
        }
        Ok(())
    }
}

struct Walk {
    bytes: usize,
    fields: usize,
    deepest: usize,
}

impl Walk {
    fn visit(&mut self, value: &Value, depth: usize, limits: &RecordLimits) -> Result<(), String> {
        if depth > limits.max_depth {
            return Err(format!("record nests deeper than {} levels (http.max_depth)", limits.max_depth));
        }
        self.deepest = self.deepest.max(depth);
        match value {
            Value::Object(object) => {
                self.bytes += 2;
                for (key, child) in object {
                    self.bytes += key.len() + 4;
                    self.visit(child, depth + 1, limits)?;
                }
            }
            Value::Array(items) => {
                self.bytes += 2;
                for item in items {
                    self.bytes += 1;
                    self.visit(item, depth + 1, limits)?;
                }
            }
            leaf => {
                self.fields += 1;
                if self.fields > limits.max_fields {
                    return Err(format!(
                        "record has more than {} values (http.max_fields)",
                        limits.max_fields
                    ));
                }
                self.bytes += match leaf {
                    Value::String(text) => text.len() + 2,
                    _ => 8,
                };
            }
        }
        // Stop early on a record far over the size limit.
        if self.bytes > limits.max_record_bytes.saturating_mul(2) {
            return Err(format!(
                "record is over the limit of {} bytes (http.max_record_bytes)",
                limits.max_record_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_limit_is_named_when_passed() {
        let limits = RecordLimits { max_record_bytes: 200, max_depth: 4, max_fields: 5 };
        assert!(limits.check(&json!({"a": {"b": [1, 2]}})).is_ok());
        let deep = json!({"a": {"b": {"c": {"d": 1}}}});
        assert!(limits.check(&deep).unwrap_err().contains("http.max_depth"));
        let wide = json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6});
        assert!(limits.check(&wide).unwrap_err().contains("http.max_fields"));
        let big = json!({"a": "x".repeat(500)});
        assert!(limits.check(&big).unwrap_err().contains("http.max_record_bytes"));
    }
}
