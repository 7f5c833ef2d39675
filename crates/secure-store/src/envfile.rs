//! Environment variables in and out: reading `NAME=value` pairs from the
//! process environment or a dotenv file, and writing decrypted values back
//! as dotenv lines that survive a round trip through `set -a; . file`.
//!
//! The dotenv dialect read here is the common one: blank lines and `#`
//! comments, an optional `export ` prefix, values bare, in single quotes
//! (literal) or in double quotes (with `\n`, `\"`, `\\` and `\$` escapes).

use std::ffi::OsString;

/// A malformed dotenv line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct DotenvError {
    pub line: usize,
    pub reason: &'static str,
}

/// Parses a dotenv file into ordered `(name, value)` pairs.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason| DotenvError {
            line: i + 1,
            reason,
        };
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (name, value) = line.split_once('=').ok_or(err("expected NAME=value"))?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err("invalid variable name"));
        }
        out.push((name.to_owned(), unquote(value.trim()).map_err(err)?));
    }
    Ok(out)
}

fn unquote(value: &str) -> Result<String, &'static str> {
    if let Some(inner) = value.strip_prefix('\'') {
        return inner
            .strip_suffix('\'')
            .map(str::to_owned)
            .ok_or("unterminated single quote");
    }
    let Some(inner) = value.strip_prefix('"') else {
        // Bare value: an unquoted ` #` starts a comment.
        let end = value.find(" #").unwrap_or(value.len());
        return Ok(value[..end].trim_end().to_owned());
    };
    let inner = inner.strip_suffix('"').ok_or("unterminated double quote")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
            Some(c) => {
                out.push('\\');
                out.push(c);
            }
            None => return Err("dangling backslash"),
        }
    }
    Ok(out)
}

/// Renders one `NAME=value` line. Values made only of characters that need
/// no quoting stay bare (the common case: API keys, URLs); anything else is
/// double-quoted with escapes so that the line parses back to the same value.
pub fn render_line(name: &str, value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/+@%^=~".contains(c));
    if bare {
        return format!("{name}={value}");
    }
    let mut out = format!("{name}=\"");
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' | '\\' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `ENCRYPTED_*` variables among `vars`, as `(NAME without prefix,
/// value)`. Variables whose name or value is not UTF-8 cannot be ours and
/// are ignored.
pub fn encrypted_vars(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(String, String)> {
    let prefix = ssformat::env::ENCRYPTED_PREFIX;
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_owned(), v)))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_dialect() {
        let text = "# c\n\nexport A=1\nB = 'x y'\nC=\"a\\nb\\\"c\"\nD=bare # comment\nE=\n";
        let vars = parse_dotenv(text).unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x y".into()),
                ("C".into(), "a\nb\"c".into()),
                ("D".into(), "bare".into()),
                ("E".into(), "".into()),
            ]
        );
    }

    #[test]
    fn reports_the_bad_line() {
        assert_eq!(
            parse_dotenv("A=1\nnot a pair\n").unwrap_err(),
            DotenvError {
                line: 2,
                reason: "expected NAME=value"
            }
        );
        assert_eq!(parse_dotenv("A=\"open\n").unwrap_err().line, 1);
        assert_eq!(
            parse_dotenv("A B=1\n").unwrap_err().reason,
            "invalid variable name"
        );
    }

    #[test]
    fn rendered_lines_parse_back() {
        for value in [
            "plain-key_1.2",
            "",
            "two words",
            "line\nbreak",
            "q\"uo$te`\\",
            "ünï",
        ] {
            let line = render_line("X", value);
            assert_eq!(
                parse_dotenv(&line).unwrap(),
                vec![("X".into(), value.into())],
                "{line}"
            );
        }
    }

    #[test]
    fn picks_encrypted_vars_only() {
        let vars = [
            ("ENCRYPTED_B", "2"),
            ("PATH", "/bin"),
            ("ENCRYPTED_", "x"),
            ("ENCRYPTED_A", "1"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        assert_eq!(
            encrypted_vars(vars),
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
    }
}
