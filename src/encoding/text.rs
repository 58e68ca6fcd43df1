//! Text helpers shared by the syslog encoders: UTF-8 safe truncation, the printable-ASCII
//! header fields of RFC 5424/3164, and RFC 5424 SD-NAME / PARAM-VALUE escaping.

/// The RFC 5424 NILVALUE.
pub const NIL: &[u8] = b"-";

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a char boundary.
pub fn truncate_str(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The length of the longest prefix of `bytes` of at most `max_bytes` bytes that does not cut
/// a UTF-8 sequence (bytes that are not UTF-8 are treated as single characters).
pub fn utf8_prefix_len(bytes: &[u8], max_bytes: usize) -> usize {
    if bytes.len() <= max_bytes {
        return bytes.len();
    }
    let mut end = max_bytes;
    // Step back over continuation bytes (10xxxxxx) to the start of the cut character.
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    end
}

/// Writes `value` as an RFC 5424 header field (HOSTNAME, APP-NAME, PROCID, MSGID): characters
/// outside printable US-ASCII (33–126) become `_`, at most `max_chars` characters are kept, and
/// an empty value becomes the NILVALUE `-`.
pub fn write_printable_ascii(value: &str, max_chars: usize, out: &mut Vec<u8>) {
    write_sanitized(value, max_chars, out, |byte| (33..=126).contains(&byte));
}

/// Writes `name` as an RFC 5424 SD-NAME (SD-ID or PARAM-NAME): printable US-ASCII except
/// `=`, space, `]` and `"`, at most 32 characters; other characters become `_` and an empty
/// name becomes `_`.
pub fn write_sd_name(name: &str, out: &mut Vec<u8>) {
    write_sd_name_within(name, SD_NAME_MAX, out);
}

/// The SD-NAME length limit, in characters.
pub const SD_NAME_MAX: usize = 32;

/// Like [`write_sd_name`], keeping at most `max_chars` characters (for names written after a
/// fixed prefix).
pub fn write_sd_name_within(name: &str, max_chars: usize, out: &mut Vec<u8>) {
    if name.is_empty() || max_chars == 0 {
        out.push(b'_');
        return;
    }
    write_sanitized(name, max_chars, out, is_sd_name_byte);
}

/// True for bytes allowed in an SD-NAME.
pub fn is_sd_name_byte(byte: u8) -> bool {
    (33..=126).contains(&byte) && !matches!(byte, b'=' | b']' | b'"')
}

/// Writes `value` as an RFC 5424 PARAM-VALUE (without the quotes): `"`, `\` and `]` are
/// escaped with a backslash.
pub fn write_sd_value(value: &str, out: &mut Vec<u8>) {
    let bytes = value.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if matches!(byte, b'"' | b'\\' | b']') {
            out.extend_from_slice(&bytes[clean_from..index]);
            out.push(b'\\');
            clean_from = index;
        }
    }
    out.extend_from_slice(&bytes[clean_from..]);
}

/// Writes `value` keeping bytes for which `allowed` holds, replacing every other character by
/// one `_`, up to `max_chars` characters; writes `-` for an empty value.
fn write_sanitized(value: &str, max_chars: usize, out: &mut Vec<u8>, allowed: fn(u8) -> bool) {
    if value.is_empty() {
        out.extend_from_slice(NIL);
        return;
    }
    // Fast path: already clean and short enough (the common case for host and app names).
    if value.len() <= max_chars && value.bytes().all(allowed) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for character in value.chars().take(max_chars) {
        let byte = u8::try_from(character).ok().filter(|&b| allowed(b));
        out.push(byte.unwrap_or(b'_'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sd_values_escape_quote_backslash_and_bracket() {
        assert_eq!(
            render(|o| write_sd_value("a\"b\\c]d", o)),
            "a\\\"b\\\\c\\]d"
        );
        assert_eq!(render(|o| write_sd_value("plain é", o)), "plain é");
    }

    #[test]
    fn sd_names_are_sanitised() {
        assert_eq!(render(|o| write_sd_name("my id=1", o)), "my_id_1");
        assert_eq!(render(|o| write_sd_name("a]\"é", o)), "a___");
        assert_eq!(render(|o| write_sd_name("", o)), "_");
        assert_eq!(render(|o| write_sd_name(&"n".repeat(40), o)).len(), 32);
    }

    #[test]
    fn header_fields_are_printable_ascii_nil_when_empty_and_truncated_by_chars() {
        assert_eq!(render(|o| write_printable_ascii("", 48, o)), "-");
        assert_eq!(
            render(|o| write_printable_ascii("web 01\té", 48, o)),
            "web_01__"
        );
        let sixty = "a".repeat(60);
        assert_eq!(
            render(|o| write_printable_ascii(&sixty, 48, o)),
            "a".repeat(48)
        );
        assert_eq!(render(|o| write_printable_ascii("ééé", 2, o)), "__");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_str("aé", 2), "a");
        assert_eq!(truncate_str("aé", 3), "aé");
        assert_eq!(utf8_prefix_len("aé€".as_bytes(), 4), 3);
        assert_eq!(utf8_prefix_len("aé€".as_bytes(), 5), 3);
        assert_eq!(utf8_prefix_len("aé€".as_bytes(), 6), 6);
        assert_eq!(utf8_prefix_len(b"abc", 0), 0);
    }
}
