//! Stream framing of syslog messages (RFC 6587): octet counting (`LEN SP MSG`, mandatory over
//! TLS per RFC 5425) or a trailing LF, in which case LF inside the message is written as the
//! two characters `\n` so that a message is never split. UDP sends one message per datagram
//! and needs no framing.

use serde::Deserialize;

/// How messages are delimited on a TCP or TLS stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// `MSG-LEN SP SYSLOG-MSG`, the length in bytes (the default).
    #[default]
    OctetCounting,
    /// `SYSLOG-MSG LF`, with embedded LF escaped as `\n`.
    Lf,
}

/// Room left for the length of an octet-counted message encoded in place: messages of
/// 1,000 to 9,999 bytes (the common size of audit logs) need no move.
const LENGTH_DIGITS_GUESS: usize = 4;

impl Framing {
    /// Appends `message` to `out` with this framing.
    pub fn frame(self, message: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::OctetCounting => {
                out.extend_from_slice(itoa::Buffer::new().format(message.len()).as_bytes());
                out.push(b' ');
                out.extend_from_slice(message);
            }
            Framing::Lf => {
                write_escaping_lf(message, out);
                out.push(b'\n');
            }
        }
    }

    /// Appends the message `encode` writes, framed, to `out`: the same bytes as encoding into
    /// a buffer of its own and calling [`Framing::frame`], without copying the message through
    /// that buffer. The message is written in place after room for its length (moved only when
    /// its length has another number of digits than guessed); with LF framing it is copied once
    /// more only when it holds an LF.
    pub fn encode_framed(self, out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = out.len();
        match self {
            Framing::OctetCounting => {
                let message_start = start + LENGTH_DIGITS_GUESS + 1;
                out.resize(message_start, b' ');
                encode(out);
                let length = out.len() - message_start;
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(length).as_bytes();
                let fitted_start = start + digits.len() + 1;
                if fitted_start > message_start {
                    out.resize(fitted_start + length, 0);
                }
                if fitted_start != message_start {
                    out.copy_within(message_start..message_start + length, fitted_start);
                    out.truncate(fitted_start + length);
                }
                out[start..start + digits.len()].copy_from_slice(digits);
                out[start + digits.len()] = b' ';
            }
            Framing::Lf => {
                encode(out);
                if memchr::memchr(b'\n', &out[start..]).is_some() {
                    let message = out.split_off(start);
                    write_escaping_lf(&message, out);
                }
                out.push(b'\n');
            }
        }
    }
}

/// Writes `message` with every LF as the two characters `\n`.
fn write_escaping_lf(message: &[u8], out: &mut Vec<u8>) {
    let mut rest = message;
    while let Some(position) = memchr::memchr(b'\n', rest) {
        out.extend_from_slice(&rest[..position]);
        out.extend_from_slice(b"\\n");
        rest = &rest[position + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "<165>1 2024-03-05T07:08:09.123456Z web01.example.com payapi 4211 AUDIT [login@32473 user=\"a\\\"b\" path=\"C:\\\\tmp\" note=\"x\\]y\"] user login ok";

    #[test]
    fn octet_counting_prefixes_the_byte_length_without_trailer() {
        assert_eq!(EXAMPLE.len(), 137);
        let mut out = Vec::new();
        Framing::OctetCounting.frame(EXAMPLE.as_bytes(), &mut out);
        assert_eq!(out, format!("137 {EXAMPLE}").into_bytes());
        let mut unicode = Vec::new();
        Framing::OctetCounting.frame("é\n".as_bytes(), &mut unicode);
        assert_eq!(unicode, "3 é\n".as_bytes());
    }

    #[test]
    fn lf_framing_never_leaves_a_bare_lf_inside_the_message() {
        let mut out = Vec::new();
        Framing::Lf.frame(b"line1\nline2\n", &mut out);
        assert_eq!(out, b"line1\\nline2\\n\n");
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn encoding_in_place_fits_lengths_of_every_digit_count() {
        for length in [0, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 100_000] {
            let message = vec![b'x'; length];
            let mut expected = b"12 ab".to_vec();
            Framing::OctetCounting.frame(&message, &mut expected);
            let mut actual = b"12 ab".to_vec();
            Framing::OctetCounting
                .encode_framed(&mut actual, |out| out.extend_from_slice(&message));
            assert_eq!(actual, expected, "{length}");
        }
    }

    proptest::proptest! {
        #[test]
        fn encoding_in_place_matches_framing_a_separate_message(
            before in proptest::collection::vec(proptest::num::u8::ANY, 0..20),
            message in proptest::collection::vec(proptest::prop_oneof![proptest::num::u8::ANY, proptest::strategy::Just(b'\n')], 0..12_000),
        ) {
            for framing in [Framing::OctetCounting, Framing::Lf] {
                let mut expected = before.clone();
                framing.frame(&message, &mut expected);
                let mut actual = before.clone();
                framing.encode_framed(&mut actual, |out| out.extend_from_slice(&message));
                proptest::prop_assert_eq!(&actual, &expected, "{:?}", framing);
            }
        }
    }
}
