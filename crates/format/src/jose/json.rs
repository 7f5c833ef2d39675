//! Canonical JSON output: object members sorted by key (byte order),
//! compact, strings escaped as serde_json does. This is what jansson's
//! `JSON_SORT_KEYS | JSON_COMPACT` gives for the ASCII data JOSE carries,
//! and it is what tangd answers on `/rec` and what clevis writes into a
//! JWE header. We sort explicitly rather than rely on serde_json's map
//! order, which a `preserve_order` feature anywhere in the build would
//! silently change.

use serde_json::Value;

/// Writes `value` with sorted keys and no whitespace.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// A JSON string literal for `s`.
pub fn string(s: &str) -> String {
    // Serialising a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&string(k));
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        Value::String(s) => out.push_str(&string(s)),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_compact() {
        let v: Value = serde_json::from_str(
            r#"{"z": 1, "a": {"y": [true, null, "x"], "b": "q\"/"}, "B": 2.5}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"B":2.5,"a":{"b":"q\"/","y":[true,null,"x"]},"z":1}"#
        );
    }
}
