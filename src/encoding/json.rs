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

/// Appends `text` escaped for use inside a JSON string (without quotes).
pub fn write_escaped(text: &str, out: &mut Vec<u8>) {
    // Per byte: 0 = copied as is, else the character after the backslash (`u` = `\u00XX`).
    // A table lookup keeps the scan over the long clean runs tight (no per-byte branch tree).
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[clean_from..index]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(byte >> 4) as usize],
                HEX[(byte & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        clean_from = index + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
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
