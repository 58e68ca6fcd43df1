//! Turns JSON lines (one flattened log per line, as `put --file` reads them) into log groups.
//!
//! `__time__` (Unix seconds), `__topic__`, `__source__` and `__tag__:NAME` map to the log
//! group's fields; every other key becomes a content, non-string values as their JSON text.
//! Consecutive lines with the same topic, source and tags share a group.

use serde_json::{Map, Value};

use crate::source::protobuf::{Log, LogGroup};

/// Most logs per group when grouping lines.
pub const MAX_LOGS_PER_GROUP: usize = 1024;

/// A line that is not a JSON object, or has a bad `__time__`.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

type GroupKey = (Option<String>, Option<String>, Vec<(String, String)>);

fn text_of(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

fn split_line(object: Map<String, Value>, default_time: u32) -> Result<(GroupKey, Log), String> {
    let (mut topic, mut source, mut tags) = (None, None, Vec::new());
    let mut log = Log {
        time: default_time,
        time_ns: None,
        contents: Vec::with_capacity(object.len()),
    };
    for (key, value) in object {
        match key.as_str() {
            "__time__" => {
                log.time = match &value {
                    Value::Number(number) => number.as_u64().and_then(|t| u32::try_from(t).ok()),
                    Value::String(text) => text.parse().ok(),
                    _ => None,
                }
                .ok_or("`__time__` must be unix seconds")?;
            }
            "__time_ns_part__" => log.time_ns = text_of(value).parse().ok(),
            "__topic__" => topic = Some(text_of(value)),
            "__source__" => source = Some(text_of(value)),
            _ => match key.strip_prefix("__tag__:") {
                Some(tag) => tags.push((tag.to_owned(), text_of(value))),
                None => log.contents.push((key, text_of(value))),
            },
        }
    }
    Ok(((topic, source, tags), log))
}

/// Parses JSON lines into log groups. Blank lines are skipped. Logs without `__time__` get
/// `default_time`.
///
/// # Errors
///
/// Returns the first [`LineError`].
pub fn log_groups_from_json_lines(
    text: &str,
    default_time: u32,
) -> Result<Vec<LogGroup>, LineError> {
    let mut groups: Vec<(GroupKey, Vec<Log>)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |reason: String| LineError {
            line: index + 1,
            reason,
        };
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(error("expected a JSON object".into())),
            Err(parse) => return Err(error(parse.to_string())),
        };
        let (key, log) = split_line(object, default_time).map_err(error)?;
        match groups.last_mut() {
            Some((last_key, logs)) if *last_key == key && logs.len() < MAX_LOGS_PER_GROUP => {
                logs.push(log)
            }
            _ => groups.push((key, vec![log])),
        }
    }
    Ok(groups
        .into_iter()
        .map(|((topic, source, tags), logs)| LogGroup {
            logs,
            topic,
            source,
            tags,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_keys_map_to_the_group_and_values_to_text() {
        let text = r#"{"__time__":1700000000,"__topic__":"t","__tag__:host":"h","msg":"a","n":5,"o":{"x":1}}
{"__time__":"1700000001","__topic__":"t","__tag__:host":"h","msg":"b"}

{"__topic__":"other","msg":"c"}"#;
        let groups = log_groups_from_json_lines(text, 42).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].topic.as_deref(), Some("t"));
        assert_eq!(groups[0].tags, [("host".to_owned(), "h".to_owned())]);
        assert_eq!(
            groups[0].logs[0].contents[1],
            ("n".to_owned(), "5".to_owned())
        );
        assert_eq!(
            groups[0].logs[0].contents[2],
            ("o".to_owned(), r#"{"x":1}"#.to_owned())
        );
        assert_eq!(groups[0].logs[1].time, 1_700_000_001);
        assert_eq!(groups[1].logs[0].time, 42);
    }

    #[test]
    fn bad_lines_name_their_number() {
        let error = log_groups_from_json_lines("{}\n[1]\n", 0).unwrap_err();
        assert_eq!(error.line, 2);
        let error = log_groups_from_json_lines(r#"{"__time__":"soon"}"#, 0).unwrap_err();
        assert!(error.reason.contains("__time__"));
    }
}
