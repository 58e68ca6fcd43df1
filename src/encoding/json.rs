//! JSON output: string escaping and the flattened-object encoder used by the file sink, the
//! syslog `json` body and the HEC event.

use super::Encoder;
use crate::model::flatten::{flattened, FlatKey, FlatValue};
use crate::model::LogRecord;

/// Writes one flattened JSON object per log: `{"__time__":1700000000,"__topic__":"t",...}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJsonEncoder;

impl Encoder for FlatJsonEncoder {
    fn encode(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        write_flat_object(record, out);
    }
}

/// Appends the flattened form of `record` as a JSON object (see [`crate::model::flatten`]).
pub fn write_flat_object(record: &LogRecord<'_>, out: &mut Vec<u8>) {
    write_flat_object_with(record, out, |_, value, out| write_flat_value(value, out));
}

/// Like [`write_flat_object`], with `write_value` writing each value after its key (e.g. to
/// embed a field that holds JSON text as JSON).
pub fn write_flat_object_with(
    record: &LogRecord<'_>,
    out: &mut Vec<u8>,
    mut write_value: impl FnMut(FlatKey<'_>, FlatValue<'_>, &mut Vec<u8>),
) {
    out.push(b'{');
    // `for_each` rather than a `for` loop: the chained iterator folds much faster.
    flattened(record)
        .enumerate()
        .for_each(|(index, (key, value))| {
            if index > 0 {
                out.push(b',');
            }
            write_flat_key(key, out);
            write_value(key, value, out);
        });
    out.push(b'}');
}

/// Appends a flattened key as an escaped JSON object key followed by `:`.
pub fn write_flat_key(key: FlatKey<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    let key_start = out.len();
    key.write_to(out);
    escape_in_place_from(out, key_start);
    out.extend_from_slice(b"\":");
}

/// Appends a flattened value: integers as JSON numbers, numeric text and text as strings.
pub fn write_flat_value(value: FlatValue<'_>, out: &mut Vec<u8>) {
    match value {
        FlatValue::Integer(number) => {
            out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
        }
        FlatValue::NumericText(number) => {
            out.push(b'"');
            out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
            out.push(b'"');
        }
        FlatValue::Text(text) => write_string(text, out),
    }
}

/// Appends `text` as a quoted JSON string.
pub fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    write_escaped(text, out);
    out.push(b'"');
}

/// Per byte: 0 = copied as is, else the character after the backslash (`u` = `\u00XX`).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `text` escaped for use inside a JSON string (without quotes).
///
/// Eight bytes at a time: one word test finds the bytes to escape (`"`, `\`, control bytes)
/// and each one is handled from a bit mask, so a text dense in quotes (nested JSON) costs a
/// few instructions per escape instead of a branch per byte; the clean bytes between escapes
/// are appended as whole words. The output is the same as escaping byte by byte.
pub fn write_escaped(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight bytes"));
        let mut mask = escape_mask(word);
        if mask == 0 {
            out.extend_from_slice(chunk);
            continue;
        }
        let mut clean_from = 0;
        while mask != 0 {
            let index = (mask.trailing_zeros() / 8) as usize;
            push_word_prefix(word >> (clean_from * 8), index - clean_from, out);
            push_escape(chunk[index], out);
            clean_from = index + 1;
            mask &= mask - 1;
        }
        if clean_from < 8 {
            push_word_prefix(word >> (clean_from * 8), 8 - clean_from, out);
        }
    }
    let rest = words.remainder();
    let mut clean_from = 0;
    for (index, &byte) in rest.iter().enumerate() {
        if ESCAPE[byte as usize] != 0 {
            out.extend_from_slice(&rest[clean_from..index]);
            push_escape(byte, out);
            clean_from = index + 1;
        }
    }
    out.extend_from_slice(&rest[clean_from..]);
}

/// The high bit set in each byte of `word` that needs escaping, and in no other byte.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    // Exact per byte (no carry crosses a byte): a byte's low seven bits plus 0x7f reach the
    // high bit unless they are zero; plus 0x60, unless they are below 0x20.
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x) & HIGH;
    let quotes = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslashes = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    let controls = !(((word & LOW7) + ONES * 0x60) | word) & HIGH;
    quotes | backslashes | controls
}

/// Appends the first `keep` (at most 8) bytes of `word` in memory order: a fixed eight-byte
/// copy and a shorter length are cheaper than a copy of a variable length.
fn push_word_prefix(word: u64, keep: usize, out: &mut Vec<u8>) {
    let length = out.len() + keep;
    out.extend_from_slice(&word.to_le_bytes());
    out.truncate(length);
}

/// Appends the escape of `byte` (one that [`ESCAPE`] marks).
fn push_escape(byte: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[byte as usize] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]),
        escape => out.extend_from_slice(&[b'\\', escape]),
    }
}

/// Escapes, in place, the text appended to `out` since `start` (used for keys written in parts).
fn escape_in_place_from(out: &mut Vec<u8>, start: usize) {
    let needs_escape = out[start..]
        .iter()
        .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\');
    if needs_escape {
        let raw = out.split_off(start);
        write_escaped(&String::from_utf8_lossy(&raw), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;
    use proptest::prelude::*;

    /// Escapes one character at a time, as the output of [`write_escaped`] must read.
    fn escaped_char_by_char(text: &str) -> String {
        let mut escaped = String::new();
        for character in text.chars() {
            match character {
                '"' => escaped.push_str("\\\""),
                '\\' => escaped.push_str("\\\\"),
                '\n' => escaped.push_str("\\n"),
                '\r' => escaped.push_str("\\r"),
                '\t' => escaped.push_str("\\t"),
                control if u32::from(control) < 0x20 => {
                    escaped.push_str(&format!("\\u{:04x}", u32::from(control)))
                }
                other => escaped.push(other),
            }
        }
        escaped
    }

    /// Texts of every length around the eight-byte steps, dense in the bytes that need escaping
    /// (quotes, backslashes, every control byte) among ASCII and multi-byte characters.
    fn texts() -> impl Strategy<Value = String> {
        let character = prop_oneof![
            Just('"'),
            Just('\\'),
            proptest::char::range('\u{0}', '\u{1f}'),
            proptest::char::range('\u{20}', '\u{7f}'),
            any::<char>(),
        ];
        proptest::collection::vec(character, 0..80).prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn escaping_matches_the_char_by_char_escape_and_reads_back(
            prefix in "[a-z]{0,3}",
            text in texts(),
        ) {
            let mut out = prefix.clone().into_bytes();
            write_escaped(&text, &mut out);
            let expected = format!("{prefix}{}", escaped_char_by_char(&text));
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
            let mut quoted = Vec::new();
            write_string(&text, &mut quoted);
            prop_assert_eq!(serde_json::from_slice::<String>(&quoted).unwrap(), text);
        }
    }

    #[test]
    fn every_byte_escapes_as_the_table_says() {
        for byte in 0..=0x7fu8 {
            let text = format!("{0}abcdefg{0}", char::from(byte));
            let mut out = Vec::new();
            write_escaped(&text, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), escaped_char_by_char(&text));
        }
    }

    #[test]
    fn flat_object_is_valid_json_with_integer_time() {
        let records = RecordsBuilder::new()
            .group("t", "10.0.0.1", &[("tk", "tv")])
            .log(
                1_700_000_000,
                Some(123),
                &[("k", "v\"\n\u{1}é"), ("we\"ird", "")],
            )
            .build();
        let mut out = Vec::new();
        FlatJsonEncoder.encode(&records.get(0).unwrap(), &mut out);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "__time__": 1_700_000_000,
                "__time_ns_part__": "123",
                "__topic__": "t",
                "__source__": "10.0.0.1",
                "__tag__:tk": "tv",
                "k": "v\"\n\u{1}é",
                "we\"ird": ""
            })
        );
    }
}
