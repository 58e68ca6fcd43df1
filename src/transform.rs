//! The `[transform]` section: changes applied to every log before it reaches the sinks.
//!
//! In order: drop logs matching a condition, turn JSON text fields into dotted keys (per
//! topic), keep only `include`d / remove `exclude`d contents, `rename` contents, and add
//! static fields. Transformed logs are written into one new buffer per batch.
//!
//! ```toml
//! [transform]
//! drop = ['__topic__ == "heartbeat"', 'level == "DEBUG"']
//! dotted_json = { actiontrail_audit_event = ["event"] }   # event.userIdentity.userName = ...
//! exclude = ["event"]                                       # after expansion
//! rename = { source_ip = "src" }
//! add_fields = { environment = "production" }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::encoding::field::{renamed_setting, renamed_value, InvalidSetting};
use crate::model::{LogRecord, LogRecords, RecordsBuilder};

/// Settings of the `[transform]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Conditions `FIELD == "VALUE"` or `FIELD != "VALUE"`; a log matching any is dropped.
    /// FIELD is a flattened name (`__topic__`, `__source__`, `__tag__:NAME` or a content).
    #[serde(default)]
    pub drop: Vec<String>,
    /// Per topic, contents holding JSON text to replace by dotted keys
    /// (`event` = `{"a":{"b":1}}` becomes `event.a.b` = `1`). Invalid JSON is left as is.
    /// Field names must not be empty.
    #[serde(default)]
    pub dotted_json: BTreeMap<String, Vec<String>>,
    /// The old name of `dotted_json`, still accepted with a deprecation warning; setting both
    /// is an error.
    #[serde(default, deserialize_with = "old_dotted_json")]
    pub expand_json: Option<BTreeMap<String, Vec<String>>>,
    /// When not empty, only these contents are kept. Names must not be empty.
    #[serde(default)]
    pub include: Vec<String>,
    /// Contents to remove. Names must not be empty.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Contents to rename, old name → new name; neither may be empty.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Contents added to every log (after the log's own); names must not be empty.
    #[serde(default)]
    pub add_fields: BTreeMap<String, String>,
}

/// A parsed drop condition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    field: String,
    value: String,
    equal: bool,
}

impl Condition {
    fn parse(text: &str) -> Result<Self, InvalidSetting> {
        let invalid =
            |reason: &str| InvalidSetting::new("transform.drop", format!("`{text}`: {reason}"));
        let (field, operator, value) = ["==", "!="]
            .iter()
            .find_map(|operator| {
                text.split_once(operator)
                    .map(|(field, value)| (field.trim(), *operator, value.trim()))
            })
            .ok_or_else(|| invalid("expected FIELD == \"VALUE\" or FIELD != \"VALUE\""))?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| invalid("the value must be in double quotes"))?;
        if field.is_empty() {
            return Err(invalid("missing field name"));
        }
        Ok(Self {
            field: field.to_owned(),
            value: value.to_owned(),
            equal: operator == "==",
        })
    }

    fn matches(&self, record: &LogRecord<'_>) -> bool {
        let actual = record.lookup(&self.field).unwrap_or("");
        (actual == self.value) == self.equal
    }
}

/// A validated transform.
#[derive(Debug, Clone)]
pub struct Transform {
    config: TransformConfig,
    drop: Vec<Condition>,
}

impl TransformConfig {
    /// True when the section changes nothing.
    pub fn is_noop(&self) -> bool {
        self.drop.is_empty()
            && self.dotted_json.is_empty()
            && self.expand_json.as_ref().is_none_or(BTreeMap::is_empty)
            && self.include.is_empty()
            && self.exclude.is_empty()
            && self.rename.is_empty()
            && self.add_fields.is_empty()
    }

    /// Checks and compiles the section: conditions parse, and no field name is empty.
    ///
    /// # Errors
    ///
    /// The key (`transform.drop`, ...) and the bad entry.
    pub fn build(&self) -> Result<Transform, InvalidSetting> {
        let drop = self
            .drop
            .iter()
            .map(|text| Condition::parse(text))
            .collect::<Result<_, _>>()?;
        let mut config = self.clone();
        config.dotted_json = renamed_value(
            config.dotted_json,
            config.expand_json.take(),
            "transform.expand_json",
            "transform.dotted_json",
        )?;
        let dotted_key = match self.expand_json {
            Some(_) => "expand_json",
            None => "dotted_json",
        };
        let names: [(&str, Vec<&String>); 5] = [
            (dotted_key, config.dotted_json.values().flatten().collect()),
            ("include", self.include.iter().collect()),
            ("exclude", self.exclude.iter().collect()),
            (
                "rename",
                self.rename
                    .iter()
                    .flat_map(|(old, new)| [old, new])
                    .collect(),
            ),
            ("add_fields", self.add_fields.keys().collect()),
        ];
        if let Some((key, _)) = names
            .iter()
            .find(|(_, names)| names.iter().any(|name| name.is_empty()))
        {
            return Err(InvalidSetting::new(
                format!("transform.{key}"),
                "field names must not be empty",
            ));
        }
        Ok(Transform { config, drop })
    }
}

fn old_dotted_json<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, Vec<String>>>, D::Error> {
    renamed_setting(
        deserializer,
        "transform.expand_json",
        "transform.dotted_json",
    )
    .map(Some)
}

/// Appends `value` under dotted keys below `prefix` to `out` (objects by `.`, arrays by
/// index).
fn dotted_keys(prefix: String, value: Value, out: &mut Vec<(Cow<'_, str>, Cow<'_, str>)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                dotted_keys(format!("{prefix}.{key}"), value, out);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.into_iter().enumerate() {
                dotted_keys(format!("{prefix}.{index}"), value, out);
            }
        }
        Value::String(text) => out.push((prefix.into(), text.into())),
        Value::Null => out.push((prefix.into(), "".into())),
        other => out.push((prefix.into(), other.to_string().into())),
    }
}

/// What logs of one log group share: topic, source and tags.
type GroupKey<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

impl Transform {
    /// The transformed copy of `records`.
    pub fn apply(&self, records: &LogRecords) -> LogRecords {
        let config = &self.config;
        let mut builder = RecordsBuilder::new();
        let mut current_group: Option<GroupKey<'_>> = None;
        let mut fields: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
        for record in records.iter() {
            if self.drop.iter().any(|condition| condition.matches(&record)) {
                continue;
            }
            let tags: Vec<(&str, &str)> = record.tags.iter().collect();
            let group = (record.topic, record.source, tags);
            if current_group.as_ref() != Some(&group) {
                builder = builder.group(group.0, group.1, &group.2);
                current_group = Some(group);
            }
            fields.clear();
            let dotted = config.dotted_json.get(record.topic);
            for (key, value) in record.fields.iter() {
                if dotted.is_some_and(|keys| keys.iter().any(|k| k == key)) {
                    if let Ok(parsed @ (Value::Object(_) | Value::Array(_))) =
                        serde_json::from_str::<Value>(value)
                    {
                        dotted_keys(key.to_owned(), parsed, &mut fields);
                        continue;
                    }
                }
                fields.push((key.into(), value.into()));
            }
            fields.retain(|(key, _)| {
                (config.include.is_empty() || config.include.iter().any(|k| k == key))
                    && !config.exclude.iter().any(|k| k == key)
            });
            for (key, _) in fields.iter_mut() {
                if let Some(new) = config.rename.get(key.as_ref()) {
                    *key = Cow::Owned(new.clone());
                }
            }
            fields.extend(
                config
                    .add_fields
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str()))),
            );
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_ref(), v.as_ref()))
                .collect();
            builder = builder.log(record.time, record.time_ns, &pairs);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform(text: &str) -> Transform {
        toml::from_str::<TransformConfig>(text)
            .unwrap()
            .build()
            .unwrap()
    }

    fn sample() -> LogRecords {
        RecordsBuilder::new()
            .group("actiontrail_audit_event", "10.0.0.1", &[("host", "h1")])
            .log(
                1,
                Some(5),
                &[
                    ("event", r#"{"user":{"name":"alice"},"ids":[1,2]}"#),
                    ("level", "INFO"),
                    ("source_ip", "1.2.3.4"),
                ],
            )
            .log(2, None, &[("event", "not json"), ("level", "DEBUG")])
            .group("heartbeat", "10.0.0.2", &[])
            .log(3, None, &[("level", "INFO")])
            .build()
    }

    fn fields(records: &LogRecords, index: usize) -> Vec<(String, String)> {
        records
            .get(index)
            .unwrap()
            .fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn drops_dots_filters_renames_and_adds() {
        let out = transform(
            r#"
            drop = ['__topic__ == "heartbeat"', 'level == "DEBUG"']
            dotted_json = { actiontrail_audit_event = ["event"] }
            rename = { source_ip = "src" }
            exclude = ["level"]
            add_fields = { env = "prod" }
            "#,
        )
        .apply(&sample());
        assert_eq!(out.len(), 1);
        let log = out.get(0).unwrap();
        assert_eq!(
            (log.time, log.time_ns, log.topic, log.source),
            (1, Some(5), "actiontrail_audit_event", "10.0.0.1")
        );
        assert_eq!(log.lookup("__tag__:host"), Some("h1"));
        assert_eq!(
            fields(&out, 0),
            [
                ("event.user.name", "alice"),
                ("event.ids.0", "1"),
                ("event.ids.1", "2"),
                ("src", "1.2.3.4"),
                ("env", "prod")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn include_keeps_only_listed_contents_and_invalid_json_stays() {
        let out = transform(
            "include = [\"event\"]\ndotted_json = { actiontrail_audit_event = [\"event\"] }",
        )
        .apply(&sample());
        assert_eq!(out.len(), 3);
        assert_eq!(
            fields(&out, 1),
            [("event".to_owned(), "not json".to_owned())]
        );
        assert!(fields(&out, 2).is_empty());
        assert_eq!(out.group_count(), 2, "groups are kept");
    }

    #[test]
    fn the_old_name_of_dotted_json_still_works() {
        let dotted = "dotted_json = { actiontrail_audit_event = [\"event\"] }";
        let old = dotted.replace("dotted_json", "expand_json");
        assert!(!toml::from_str::<TransformConfig>(&old).unwrap().is_noop());
        let (new, old) = (
            transform(dotted).apply(&sample()),
            transform(&old).apply(&sample()),
        );
        assert_eq!(fields(&old, 0), fields(&new, 0));
        assert_eq!(fields(&old, 0)[0].0, "event.user.name");
    }

    #[test]
    fn not_equal_conditions_and_bad_conditions() {
        let out = transform("drop = ['level != \"INFO\"']").apply(&sample());
        assert_eq!(out.len(), 2);
        let error = toml::from_str::<TransformConfig>("drop = ['level = 1']")
            .unwrap()
            .build()
            .unwrap_err();
        assert!(
            error.key == "transform.drop" && error.reason.contains("level = 1"),
            "{error}"
        );
        for (text, key) in [
            ("include = [\"\"]", "transform.include"),
            ("exclude = [\"a\", \"\"]", "transform.exclude"),
            ("rename = { a = \"\" }", "transform.rename"),
            ("add_fields = { \"\" = \"x\" }", "transform.add_fields"),
            ("dotted_json = { topic = [\"\"] }", "transform.dotted_json"),
            ("expand_json = { topic = [\"\"] }", "transform.expand_json"),
            (
                "dotted_json = { a = [\"x\"] }\nexpand_json = { b = [\"y\"] }",
                "transform.expand_json",
            ),
        ] {
            let error = toml::from_str::<TransformConfig>(text)
                .unwrap()
                .build()
                .unwrap_err();
            assert_eq!(error.key, key, "{text}");
        }
    }
}
