//! `${VAR}` and `${VAR:-default}` expansion of the configuration text; `$$` is a literal `$`.
//!
//! Variables are expanded only inside TOML strings, never in comments or bare values, and an
//! environment value is escaped for the string it lands in: a value holding `"`, `\` or a
//! newline stays one string value and cannot change the file's structure. Escaping never adds
//! a line, so lines of the expanded text are the file's lines.

use std::borrow::Cow;

/// Where in the TOML text a byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Keys, bare values, punctuation.
    Bare,
    /// From `#` to the end of the line.
    Comment,
    /// `"..."`.
    Basic,
    /// `"""..."""`.
    MultiBasic,
    /// `'...'`.
    Literal,
    /// `'''...'''`.
    MultiLiteral,
}

/// Expands variables in `text`.
///
/// # Errors
///
/// The 1-based line and what is wrong when a variable is unset and has no default, a
/// reference is malformed or outside a string, or a value cannot be written in a
/// single-quoted string. The message never contains a variable's value.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut context = Context::Bare;
    let mut line = 1;
    // Every position below where text is cut holds an ASCII byte, so slices are on char
    // boundaries.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'\n' {
            line += 1;
            if matches!(
                context,
                Context::Comment | Context::Basic | Context::Literal
            ) {
                context = Context::Bare;
            }
            i += 1;
            continue;
        }
        match (context, byte) {
            (Context::Bare, b'#') => context = Context::Comment,
            (Context::Bare, b'"' | b'\'') => {
                let multi = quote_run(&bytes[i..], byte) >= 3;
                context = match (byte, multi) {
                    (b'"', false) => Context::Basic,
                    (b'"', true) => Context::MultiBasic,
                    (_, false) => Context::Literal,
                    (_, true) => Context::MultiLiteral,
                };
                i += if multi { 3 } else { 1 };
                continue;
            }
            (Context::Bare, b'$') if bytes[i..].starts_with(b"${") => {
                return Err((
                    line,
                    "variables are expanded only inside quoted strings: write \"${NAME}\"".into(),
                ));
            }
            (Context::Basic | Context::MultiBasic, b'\\') => {
                // An escape pair; a line-ending backslash leaves the newline to be counted.
                i += if bytes.get(i + 1).is_some_and(|next| *next != b'\n') {
                    2
                } else {
                    1
                };
                continue;
            }
            (Context::Basic, b'"') | (Context::Literal, b'\'') => context = Context::Bare,
            (Context::MultiBasic, b'"') | (Context::MultiLiteral, b'\'') => {
                let run = quote_run(&bytes[i..], byte);
                if run >= 3 {
                    context = Context::Bare;
                }
                i += run;
                continue;
            }
            (
                Context::Basic | Context::MultiBasic | Context::Literal | Context::MultiLiteral,
                b'$',
            ) => {
                if let Some((length, replacement)) =
                    reference(&text[i..], context, &lookup).map_err(|message| (line, message))?
                {
                    out.push_str(&text[copied..i]);
                    out.push_str(&replacement);
                    i += length;
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// How many `quote` bytes `bytes` starts with.
fn quote_run(bytes: &[u8], quote: u8) -> usize {
    bytes.iter().take_while(|byte| **byte == quote).count()
}

/// The reference `text` starts with (at a `$` inside a string): the bytes it spans and its
/// replacement, or `None` for a lone `$`.
fn reference<'a>(
    text: &'a str,
    context: Context,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(usize, Cow<'a, str>)>, String> {
    let after = &text[1..];
    if after.starts_with('$') {
        return Ok(Some((2, Cow::Borrowed("$"))));
    }
    let Some(body) = after.strip_prefix('{') else {
        return Ok(None);
    };
    let line_end = body.find('\n').unwrap_or(body.len());
    let end = body[..line_end]
        .find('}')
        .ok_or("unterminated `${` in a variable reference")?;
    let reference = &body[..end];
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid variable name `{name}`"));
    }
    let length = "${".len() + end + "}".len();
    // A default is part of the file's own string text, so it is kept as written.
    let value = match (lookup(name).filter(|value| !value.is_empty()), default) {
        (Some(value), _) => Cow::Owned(escape(&value, context, name)?),
        (None, Some(default)) => Cow::Borrowed(default),
        (None, None) if lookup(name).is_some() => Cow::Borrowed(""),
        (None, None) => {
            return Err(format!(
                "environment variable `{name}` is not set and has no default (write `${{{name}:-default}}`)"
            ))
        }
    };
    Ok(Some((length, value)))
}

/// `value` written so that it stays inside a string of `context`, on the same line.
fn escape(value: &str, context: Context, name: &str) -> Result<String, String> {
    if matches!(context, Context::Literal | Context::MultiLiteral) {
        if value
            .chars()
            .any(|c| c == '\'' || (c.is_control() && c != '\t'))
        {
            return Err(format!(
                "the value of `{name}` holds a quote or a control character, which a single-quoted string cannot hold: use double quotes"
            ));
        }
        return Ok(value.to_owned());
    }
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push('\t'),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    Ok(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            "HOSTILE" => Some("a\"b\\c\nd = 1\n[x]\u{7}".into()),
            "QUOTE" => Some("it's".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_values_defaults_and_escapes() {
        assert_eq!(expand("t = \"${TOKEN}\"", env).unwrap(), "t = \"abc\"");
        assert_eq!(
            expand("t = \"${MISSING:-x y}\"", env).unwrap(),
            "t = \"x y\""
        );
        assert_eq!(
            expand("t = \"${EMPTY:-fallback}\"", env).unwrap(),
            "t = \"fallback\""
        );
        assert_eq!(expand("t = \"${EMPTY}\"", env).unwrap(), "t = \"\"");
        assert_eq!(
            expand("cost = \"$$5 and $HOME\"", env).unwrap(),
            "cost = \"$5 and $HOME\""
        );
        assert_eq!(expand("t = '${TOKEN}'", env).unwrap(), "t = 'abc'");
        assert_eq!(
            expand("t = \"\"\"\n${TOKEN}\"\"\"\nu = '''${TOKEN}'''", env).unwrap(),
            "t = \"\"\"\nabc\"\"\"\nu = '''abc'''"
        );
    }

    #[test]
    fn comments_are_not_expanded() {
        let text = "# token = \"${UNSET}\"\na = \"x\" # ${UNSET}\nb = \"#${TOKEN}\"\n";
        assert_eq!(
            expand(text, env).unwrap(),
            "# token = \"${UNSET}\"\na = \"x\" # ${UNSET}\nb = \"#abc\"\n"
        );
    }

    #[test]
    fn a_value_cannot_break_out_of_its_string() {
        let text = "[s]\nt = \"${HOSTILE}\"\nu = \"\"\"${HOSTILE}\"\"\"\nafter = 2\n";
        let expanded = expand(text, env).unwrap();
        assert_eq!(expanded.lines().count(), text.lines().count());
        let table: toml::Table = toml::from_str(&expanded).unwrap();
        let section = table["s"].as_table().unwrap();
        assert_eq!(section["t"].as_str(), env("HOSTILE").as_deref());
        assert_eq!(section["u"].as_str(), env("HOSTILE").as_deref());
        assert_eq!(section.len(), 3, "{section:?}");
        // Quotes and escapes around the reference do not confuse the scan.
        let text = "a = \"\\\"${TOKEN}\\\\\" # \"${UNSET}\nb = '\\' # ${UNSET}\n";
        let table: toml::Table = toml::from_str(&expand(text, env).unwrap()).unwrap();
        assert_eq!(table["a"].as_str(), Some("\"abc\\"));
        assert_eq!(table["b"].as_str(), Some("\\"));
    }

    #[test]
    fn unusable_references_name_the_line_without_the_value() {
        let (line, error) = expand("a = 1\nb = \"${NOPE}\"\n", env).unwrap_err();
        assert!(line == 2 && error.contains("NOPE"), "{error}");
        assert!(expand("b = \"${OPEN\"", env)
            .unwrap_err()
            .1
            .contains("unterminated"));
        let (line, error) = expand("a = 1\n\nb = ${TOKEN}\n", env).unwrap_err();
        assert!(line == 3 && error.contains("quoted strings"), "{error}");
        let (line, error) = expand("\nb = '${HOSTILE}'\n", env).unwrap_err();
        assert!(line == 2 && error.contains("double quotes"), "{error}");
        assert!(!error.contains("a\"b"), "{error}");
        assert!(expand("b = '${QUOTE}'", env).is_err());
        assert_eq!(expand("b = \"${QUOTE}\"", env).unwrap(), "b = \"it's\"");
    }
}
