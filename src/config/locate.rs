//! Finds the line of a dotted key path (`consumer.group_timeout`, `sinks[2].tls.ca_file`)
//! in the configuration text, so that errors found after parsing can still name a line.

/// The 1-based line where `path` is set, or where its table starts; `None` when the table
/// is not in the text (e.g. a value that came from an environment fallback). The longest
/// table header that prefixes `path` wins: `source.local.shards` is looked up under
/// `[source.local]`, then as `local` under `[source]`.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let segments: Vec<&str> = path.split('.').collect();
    let lines: Vec<&str> = text.lines().collect();
    (1..=segments.len()).rev().find_map(|split| {
        let header = header_line(&lines, &segments[..split].join("."))?;
        let Some(key) = segments.get(split) else {
            return Some(header + 1);
        };
        let section_lines = lines[header + 1..]
            .iter()
            .take_while(|line| !line.trim_start().starts_with('['));
        for (offset, line) in section_lines.enumerate() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix(key) {
                if rest.trim_start().starts_with('=') || rest.starts_with('.') {
                    return Some(header + 2 + offset);
                }
            }
        }
        Some(header + 1)
    })
}

/// The 0-based line of the header of `table`: `[a.b]`, or the `index`-th `[[array]]` for
/// `array[index]`.
fn header_line(lines: &[&str], table: &str) -> Option<usize> {
    match table.split_once('[') {
        Some((array, index)) => {
            let index: usize = index.strip_suffix(']')?.parse().ok()?;
            let header = format!("[[{array}]]");
            lines
                .iter()
                .enumerate()
                .filter(|(_, line)| line.trim() == header)
                .nth(index)
                .map(|(line, _)| line)
        }
        None => {
            let header = format!("[{table}]");
            lines.iter().position(|line| line.trim() == header)
        }
    }
}

/// The dotted key path set on `line` (1-based): the enclosing table, an index for arrays of
/// tables, and the key, e.g. `sinks[1].framing`.
pub fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line.checked_sub(1)?)?.trim();
    let key = current
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_owned())
        .filter(|key| !key.is_empty() && !key.starts_with('['));
    let mut section = None;
    for (index, candidate) in lines[..line].iter().enumerate().rev() {
        let candidate = candidate.trim();
        if let Some(array) = candidate
            .strip_prefix("[[")
            .and_then(|c| c.strip_suffix("]]"))
        {
            let position = lines[..index]
                .iter()
                .filter(|earlier| earlier.trim() == candidate)
                .count();
            section = Some(format!("{array}[{position}]"));
            break;
        }
        if let Some(table) = candidate
            .strip_prefix('[')
            .and_then(|c| c.strip_suffix(']'))
        {
            section = Some(table.to_owned());
            break;
        }
    }
    match (section, key) {
        (Some(section), Some(key)) => Some(format!("{section}.{key}")),
        (None, Some(key)) => Some(key),
        (Some(section), None) => Some(section),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[source]\nendpoint = \"local\"\n\n[consumer]\ngroup = \"g\"\ngroup_timeout = \"1s\"\n\n\
                        [[sinks]]\ntype = \"file\"\n\n[[sinks]]\ntype = \"syslog\"\ntls = { ca_file = \"x\" }\n";

    #[test]
    fn finds_keys_in_tables_and_arrays_of_tables() {
        assert_eq!(line_of(TEXT, "consumer.group_timeout"), Some(6));
        assert_eq!(line_of(TEXT, "consumer.group"), Some(5));
        assert_eq!(line_of(TEXT, "sinks[1].tls.ca_file"), Some(13));
        assert_eq!(
            line_of(TEXT, "sinks[1].address"),
            Some(11),
            "the section when the key is absent"
        );
        assert_eq!(line_of(TEXT, "sinks[5].tls"), None);
        assert_eq!(line_of(TEXT, "transform.drop"), None);
        let nested = "[source]\nendpoint = \"local\"\n\n[source.local]\nshards = 0\n";
        assert_eq!(line_of(nested, "source.local.shards"), Some(5));
        assert_eq!(line_of(nested, "source.endpoint"), Some(2));
        let inline = "[source]\nlocal = { shards = 0 }\n";
        assert_eq!(line_of(inline, "source.local.shards"), Some(2));
    }

    #[test]
    fn keys_at_lines() {
        assert_eq!(
            key_at_line(TEXT, 6).as_deref(),
            Some("consumer.group_timeout")
        );
        assert_eq!(key_at_line(TEXT, 13).as_deref(), Some("sinks[1].tls"));
        assert_eq!(key_at_line(TEXT, 9).as_deref(), Some("sinks[0].type"));
        assert_eq!(key_at_line(TEXT, 1).as_deref(), Some("source"));
    }
}
