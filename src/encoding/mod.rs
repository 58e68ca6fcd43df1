//! Pure, synchronous encoders that turn a [`LogRecord`] into bytes in a caller's buffer.
//! Framing (octet counting, newline) is kept apart from formatting; [`config`] chooses the
//! encoder from a format and its settings.

use crate::model::LogRecord;

/// Formats one log into `out` (appending; the caller clears or frames it).
pub trait Encoder: Send + Sync {
    /// Appends the encoded form of `record` to `out`.
    fn encode(&self, record: &LogRecord<'_>, out: &mut Vec<u8>);
}

pub mod hec;
pub mod json;

pub mod cef;
pub mod config;
pub mod field;
pub mod formats;
pub mod framing;
pub mod header;
pub mod kv;
pub mod leef;
pub mod rfc3164;
pub mod rfc5424;
pub mod severity;
pub mod text;
pub mod timestamp;
