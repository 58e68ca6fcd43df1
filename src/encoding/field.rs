//! Where an encoder takes a value from: a field of the log (by flattened name, e.g. `user`,
//! `__topic__`, `__tag__:region`) with a static fallback, or a constant. Resolution borrows from
//! the log or the settings, so it never allocates.

use crate::model::LogRecord;

/// A value read from a field when present and non-empty, otherwise a static fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueSource {
    /// Flattened field name to read first.
    pub field: Option<String>,
    /// Value used when the field is unset, missing or empty (may itself be empty).
    pub fallback: String,
}

impl ValueSource {
    /// A constant value.
    pub fn fixed(value: impl Into<String>) -> Self {
        Self {
            field: None,
            fallback: value.into(),
        }
    }

    /// The value for `record`.
    pub fn resolve<'a>(&'a self, record: &LogRecord<'a>) -> &'a str {
        self.field
            .as_deref()
            .and_then(|field| record.lookup(field))
            .filter(|value| !value.is_empty())
            .unwrap_or(&self.fallback)
    }
}

/// One output key of a CEF extension or LEEF attribute list and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedKey {
    /// The output key (`src`, `suser`, `usrName`, ...).
    pub key: String,
    /// The value's origin.
    pub value: MappedValue,
}

/// The origin of a mapped value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappedValue {
    /// A field of the log; the key is left out when the field is missing or empty.
    Field(String),
    /// A constant, e.g. a `cs1Label`.
    Constant(String),
}

impl MappedKey {
    /// The value for `record`, `None` when the key should be left out.
    pub fn resolve<'a>(&'a self, record: &LogRecord<'a>) -> Option<&'a str> {
        match &self.value {
            MappedValue::Field(field) => record.lookup(field).filter(|value| !value.is_empty()),
            MappedValue::Constant(value) => Some(value),
        }
    }
}

/// A setting an encoder cannot work with, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidSetting {
    /// The setting's name as written in the config (e.g. `cef.extensions`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidSetting {
    /// Creates the error.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Deserializes a setting written under its old name `old`, logging that it was renamed to
/// `new` (called only when the old name is present, so the warning names a key the file has).
/// For `#[serde(deserialize_with = ...)]` on the field that keeps the old name accepted.
///
/// # Errors
///
/// The value's own deserialization error.
pub fn renamed_setting<'de, D, T>(deserializer: D, old: &str, new: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    tracing::warn!(
        setting = old,
        replacement = new,
        "deprecated setting `{old}`: renamed to `{new}`, which takes the same value"
    );
    T::deserialize(deserializer)
}

/// The value of a renamed setting: the one under the new name, or the one under the old name
/// (kept accepted), refusing both at once.
///
/// # Errors
///
/// `old` when both names are set.
pub fn renamed_value<T: Default + PartialEq>(
    new_value: T,
    old_value: Option<T>,
    old: &str,
    new: &str,
) -> Result<T, InvalidSetting> {
    match old_value {
        None => Ok(new_value),
        Some(old_value) if new_value == T::default() => Ok(old_value),
        Some(_) => Err(InvalidSetting::new(
            old,
            format!("is the old name of `{new}`; set only `{new}`"),
        )),
    }
}

/// Checks that `key` is one alphanumeric word, as CEF extension and LEEF attribute keys must be.
///
/// # Errors
///
/// Names `setting` and the offending key.
pub fn check_word_key(setting: &str, key: &str) -> Result<(), InvalidSetting> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(InvalidSetting::new(
            setting,
            format!("key `{key}` must be a single alphanumeric word"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;

    #[test]
    fn fields_win_over_fallbacks_unless_empty() {
        let records = RecordsBuilder::new()
            .group("topic", "10.0.0.1", &[("region", "cn")])
            .log(1, None, &[("host", "web01"), ("empty", "")])
            .build();
        let record = records.get(0).unwrap();
        let source = |field: &str| ValueSource {
            field: Some(field.into()),
            fallback: "fb".into(),
        };
        assert_eq!(source("host").resolve(&record), "web01");
        assert_eq!(source("__tag__:region").resolve(&record), "cn");
        assert_eq!(source("empty").resolve(&record), "fb");
        assert_eq!(source("missing").resolve(&record), "fb");
        assert_eq!(ValueSource::fixed("x").resolve(&record), "x");
        let mapped = MappedKey {
            key: "src".into(),
            value: MappedValue::Field("missing".into()),
        };
        assert_eq!(mapped.resolve(&record), None);
    }

    #[test]
    fn word_keys() {
        assert!(check_word_key("cef.extensions", "cs1Label").is_ok());
        let error = check_word_key("cef.extensions", "bad key").unwrap_err();
        assert_eq!(
            error.to_string(),
            "cef.extensions: key `bad key` must be a single alphanumeric word"
        );
    }
}
