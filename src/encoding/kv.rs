//! The `key=value` message body: the flattened pairs of a log joined by a separator (`||` by
//! default, as the official SDK's syslog sample does), e.g.
//! `__time__=1709622489||__topic__=audit||user=bob`.
//!
//! So that a reader can always split the body back into pairs, a backslash is written before
//! every `\` and every character of the separator in keys and values, and before `=` in keys.
//! Newlines are kept (the transport framing deals with them).

use super::field::InvalidSetting;
use crate::model::flatten::{flattened, FlatKey, FlatValue, ADDED_KEY_TEXTS, TAG_PREFIX};
use crate::model::LogRecord;

/// The default separator between pairs.
pub const DEFAULT_SEPARATOR: &str = "||";

/// Writes the `key=value` body.
#[derive(Debug, Clone)]
pub struct KvFormat {
    separator: Box<[u8]>,
    escape_in_key: Specials,
    escape_in_value: Specials,
    /// True when no key text that flattening adds (`__time__`, `__tag__:`, ...) holds a
    /// byte to escape, i.e. the separator shares no character with them.
    added_keys_plain: bool,
}

/// The bytes to escape, searched with SIMD (`memchr`) when there are at most three.
#[derive(Debug, Clone, Copy)]
enum Specials {
    Two(u8, u8),
    Three(u8, u8, u8),
    Many([u64; 4]),
}

impl Specials {
    fn of(bytes: &[u8]) -> Self {
        let mut distinct: Vec<u8> = bytes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        match distinct[..] {
            [a] => Specials::Two(a, a),
            [a, b] => Specials::Two(a, b),
            [a, b, c] => Specials::Three(a, b, c),
            _ => {
                let mut bitmap = [0u64; 4];
                for byte in distinct {
                    bitmap[usize::from(byte >> 6)] |= 1 << (byte & 63);
                }
                Specials::Many(bitmap)
            }
        }
    }

    /// Position of the first byte to escape in `haystack`.
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        match *self {
            Specials::Two(a, b) => memchr::memchr2(a, b, haystack),
            Specials::Three(a, b, c) => memchr::memchr3(a, b, c, haystack),
            Specials::Many(bitmap) => haystack
                .iter()
                .position(|&byte| bitmap[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0),
        }
    }

    fn occur_in_none(&self, texts: &[&[u8]]) -> bool {
        texts.iter().all(|text| self.find(text).is_none())
    }
}

/// What one log needs escaped: `None` where a kind of text is known to hold no special byte.
struct Escaping<'a> {
    keys: Option<&'a Specials>,
    values: Option<&'a Specials>,
}

impl KvFormat {
    /// A writer joining pairs with `separator`.
    ///
    /// # Errors
    ///
    /// The separator must be non-empty printable or whitespace ASCII without digits (numbers
    /// such as `__time__` are written unescaped), `=` or `\`.
    pub fn new(separator: &str) -> Result<Self, InvalidSetting> {
        let usable = !separator.is_empty()
            && separator.bytes().all(|b| {
                (b.is_ascii_graphic() || b == b' ' || b == b'\t')
                    && !b.is_ascii_digit()
                    && b != b'='
                    && b != b'\\'
            });
        if !usable {
            return Err(InvalidSetting::new(
                "separator",
                format!("`{separator}` must be non-empty ASCII without digits, `=` or `\\`"),
            ));
        }
        let mut value_specials = separator.as_bytes().to_vec();
        value_specials.push(b'\\');
        let mut key_specials = value_specials.clone();
        key_specials.push(b'=');
        let escape_in_key = Specials::of(&key_specials);
        let added_keys = ADDED_KEY_TEXTS.map(str::as_bytes);
        Ok(Self {
            separator: separator.as_bytes().into(),
            escape_in_key,
            escape_in_value: Specials::of(&value_specials),
            added_keys_plain: escape_in_key.occur_in_none(&added_keys),
        })
    }

    /// Appends the body of `record` to `out`.
    pub fn write(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        let escaping = self.escaping_for(record);
        let mut first = true;
        // `for_each` rather than a `for` loop: the chained iterator folds much faster.
        flattened(record).for_each(|(key, value)| {
            if !first {
                out.extend_from_slice(&self.separator);
            }
            first = false;
            match key {
                FlatKey::Plain(name) => write_text(name, escaping.keys, out),
                FlatKey::Tag(name) => {
                    write_text(TAG_PREFIX, escaping.keys, out);
                    write_text(name, escaping.keys, out);
                }
            }
            out.push(b'=');
            match value {
                FlatValue::Integer(number) | FlatValue::NumericText(number) => {
                    out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
                }
                FlatValue::Text(text) => write_text(text, escaping.values, out),
            }
        });
    }

    /// Special bytes are rare: a few scans over the log's texts (its contents and its
    /// group's tags lie in one stretch of the buffer each) usually show that no key or value
    /// needs the search per field.
    fn escaping_for(&self, record: &LogRecord<'_>) -> Escaping<'_> {
        let texts = [
            record.fields.extent(),
            record.tags.extent(),
            record.topic.as_bytes(),
            record.source.as_bytes(),
        ];
        let keys_plain = self.added_keys_plain && self.escape_in_key.occur_in_none(&texts);
        // The key specials include the value specials, so plain keys imply plain values.
        let values_plain = keys_plain || self.escape_in_value.occur_in_none(&texts);
        Escaping {
            keys: (!keys_plain).then_some(&self.escape_in_key),
            values: (!values_plain).then_some(&self.escape_in_value),
        }
    }
}

impl Default for KvFormat {
    fn default() -> Self {
        Self::new(DEFAULT_SEPARATOR).expect("the default separator is valid")
    }
}

fn write_text(text: &str, specials: Option<&Specials>, out: &mut Vec<u8>) {
    let Some(specials) = specials else {
        out.extend_from_slice(text.as_bytes());
        return;
    };
    let mut rest = text.as_bytes();
    while let Some(position) = specials.find(rest) {
        out.extend_from_slice(&rest[..position]);
        out.push(b'\\');
        out.push(rest[position]);
        rest = &rest[position + 1..];
    }
    out.extend_from_slice(rest);
}

/// Splits a body written with `separator` back into unescaped pairs (the inverse of
/// [`KvFormat::write`]); used by tests and by tools that read the body.
pub fn parse(body: &str, separator: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut key = String::new();
    let mut value = String::new();
    let mut in_value = false;
    let mut rest = body;
    while let Some(character) = rest.chars().next() {
        if rest.starts_with(separator) {
            pairs.push((std::mem::take(&mut key), std::mem::take(&mut value)));
            in_value = false;
            rest = &rest[separator.len()..];
            continue;
        }
        rest = &rest[character.len_utf8()..];
        let target = if in_value { &mut value } else { &mut key };
        match character {
            '\\' => {
                if let Some(escaped) = rest.chars().next() {
                    target.push(escaped);
                    rest = &rest[escaped.len_utf8()..];
                }
            }
            '=' if !in_value => in_value = true,
            other => target.push(other),
        }
    }
    if !body.is_empty() {
        pairs.push((key, value));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;

    #[test]
    fn joins_flattened_pairs_with_the_separator() {
        let records = RecordsBuilder::new()
            .group("audit", "10.0.0.1", &[("region", "cn")])
            .log(1_709_622_489, None, &[("user", "bob"), ("action", "login")])
            .build();
        let mut out = Vec::new();
        KvFormat::default().write(&records.get(0).unwrap(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "__time__=1709622489||__topic__=audit||__source__=10.0.0.1||__tag__:region=cn||user=bob||action=login"
        );
    }

    #[test]
    fn escapes_separator_backslash_and_key_equals_and_parses_back() {
        let fields = [("a=b", "x||y"), ("p|q", "c:\\tmp=1\nz"), ("", "")];
        let records = RecordsBuilder::new().log(5, None, &fields).build();
        let format = KvFormat::default();
        let mut out = Vec::new();
        format.write(&records.get(0).unwrap(), &mut out);
        let body = String::from_utf8(out).unwrap();
        assert!(body.contains("a\\=b=x\\|\\|y"), "{body}");
        let parsed = parse(&body, DEFAULT_SEPARATOR);
        let expected: Vec<(String, String)> =
            [("__time__", "5"), ("__topic__", ""), ("__source__", "")]
                .into_iter()
                .chain(fields)
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn separators_with_many_special_bytes_round_trip() {
        let fields = [("k=;", "v; x\\y"), ("plain", "a;b c")];
        let records = RecordsBuilder::new().log(1, None, &fields).build();
        let mut out = Vec::new();
        KvFormat::new("; ")
            .unwrap()
            .write(&records.get(0).unwrap(), &mut out);
        let body = String::from_utf8(out).unwrap();
        assert!(
            body.ends_with("; k\\=\\;=v\\;\\ x\\\\y; plain=a\\;b\\ c"),
            "{body}"
        );
        let parsed = parse(&body, "; ");
        assert_eq!(
            parsed[3..],
            [
                ("k=;".to_owned(), "v; x\\y".to_owned()),
                ("plain".to_owned(), "a;b c".to_owned())
            ]
        );
    }

    #[test]
    fn escapes_only_where_needed_when_the_log_is_mostly_plain() {
        let fields = [("url", "/a?b=c"), ("k", "v"), ("pipe", "x|y")];
        let records = RecordsBuilder::new()
            .group("t", "s", &[("tk", "tv")])
            .log(1, None, &fields[..2])
            .log(2, None, &fields)
            .build();
        let format = KvFormat::default();
        let mut equals_only = Vec::new();
        format.write(&records.get(0).unwrap(), &mut equals_only);
        assert_eq!(
            String::from_utf8(equals_only).unwrap(),
            "__time__=1||__topic__=t||__source__=s||__tag__:tk=tv||url=/a?b=c||k=v"
        );
        let mut with_pipe = Vec::new();
        format.write(&records.get(1).unwrap(), &mut with_pipe);
        let body = String::from_utf8(with_pipe).unwrap();
        assert!(body.ends_with("||url=/a?b=c||k=v||pipe=x\\|y"), "{body}");
    }

    #[test]
    fn added_keys_are_escaped_when_they_share_a_character_with_the_separator() {
        let records = RecordsBuilder::new()
            .group("t", "s", &[("tk", "tv")])
            .log(1, None, &[("k", "v")])
            .build();
        let mut out = Vec::new();
        KvFormat::new(":")
            .unwrap()
            .write(&records.get(0).unwrap(), &mut out);
        let body = String::from_utf8(out).unwrap();
        assert_eq!(
            body,
            "__time__=1:__topic__=t:__source__=s:__tag__\\:tk=tv:k=v"
        );
        assert_eq!(
            parse(&body, ":")[3],
            ("__tag__:tk".to_owned(), "tv".to_owned())
        );
    }

    #[test]
    fn rejects_unusable_separators() {
        assert!(KvFormat::new("").is_err());
        assert!(KvFormat::new("=").is_err());
        assert!(KvFormat::new("\\").is_err());
        assert!(KvFormat::new(" ").is_ok());
        assert!(KvFormat::new(";").is_ok());
    }

    #[test]
    fn rejects_separators_with_digits_which_numbers_would_hold_unescaped() {
        for separator in ["1", "0", "a9b", " 2 "] {
            let error = KvFormat::new(separator).unwrap_err();
            assert_eq!(error.key, "separator", "{separator:?}");
            assert!(error.reason.contains("digits"), "{}", error.reason);
        }
    }
}
