//! `${VAR}` and `${VAR:-default}` expansion of the configuration text; `$$` is a literal `$`.

/// Expands variables in `text`.
///
/// # Errors
///
/// The 1-based line and what is wrong when a variable is unset and has no default, or a
/// reference is malformed.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_number = index + 1;
        let mut rest = line;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    (
                        line_number,
                        "unterminated `${` in a variable reference".to_owned(),
                    )
                })?;
                let reference = &body[..end];
                let (name, default) = match reference.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (reference, None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err((line_number, format!("invalid variable name `{name}`")));
                }
                let value = lookup(name)
                    .filter(|value| !value.is_empty() || default.is_none())
                    .or_else(|| default.map(str::to_owned))
                    .ok_or_else(|| (line_number, format!("environment variable `{name}` is not set and has no default (write `${{{name}:-default}}`)")))?;
                out.push_str(&value);
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
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
        assert_eq!(
            expand("cost = \"$$5 and $HOME\"", env).unwrap(),
            "cost = \"$5 and $HOME\""
        );
    }

    #[test]
    fn unset_variables_name_the_line() {
        let (line, error) = expand("a = 1\nb = \"${NOPE}\"\n", env).unwrap_err();
        assert!(line == 2 && error.contains("NOPE"), "{error}");
        assert!(expand("b = \"${OPEN\"", env)
            .unwrap_err()
            .1
            .contains("unterminated"));
    }
}
