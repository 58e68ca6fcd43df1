//! Cursors: standard base64 (with padding) of the decimal text of a signed 64-bit position.
//! `MA==` is position 0; after a batch of `n` groups from position `p` the cursor is `p + n`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Encodes a position as a cursor.
pub fn encode(position: i64) -> String {
    STANDARD.encode(position.to_string())
}

/// Decodes a cursor into its position.
///
/// # Errors
///
/// Returns [`InvalidCursor`] when the text is not base64 of a decimal integer.
pub fn decode(cursor: &str) -> Result<i64, InvalidCursor> {
    let bytes = STANDARD.decode(cursor.trim()).map_err(|_| InvalidCursor)?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(InvalidCursor)
}

/// A cursor that is not base64 of a decimal position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(encode(0), "MA==");
        assert_eq!(encode(3), "Mw==");
        assert_eq!(
            decode("MTczNzY2OTAzNjAxNzIxODQ1NA==").unwrap(),
            1_737_669_036_017_218_454
        );
        assert_eq!(decode("not-base64!"), Err(InvalidCursor));
        assert_eq!(decode("YWJj"), Err(InvalidCursor)); // "abc"
    }
}
