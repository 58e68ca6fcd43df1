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
                let mut rest = message;
                while let Some(position) = rest.iter().position(|&b| b == b'\n') {
                    out.extend_from_slice(&rest[..position]);
                    out.extend_from_slice(b"\\n");
                    rest = &rest[position + 1..];
                }
                out.extend_from_slice(rest);
                out.push(b'\n');
            }
        }
    }
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
}
