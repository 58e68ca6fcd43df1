//! Body compression as the log service signals it in `x-log-compresstype`: a raw LZ4 block
//! (no frame, no size prefix; the size travels in `x-log-bodyrawsize`), a zstd frame, or
//! zlib-wrapped deflate.

use std::io::{Read, Write};

/// Largest decompressed body accepted, so a bogus `x-log-bodyrawsize` cannot exhaust memory.
pub const MAX_RAW_SIZE: usize = 256 << 20;

/// A compression type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// Raw LZ4 block.
    Lz4,
    /// zstd frame.
    Zstd,
    /// zlib-wrapped deflate.
    Deflate,
}

/// Compression failed or the header named an unknown type.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// Unknown `x-log-compresstype`.
    #[error("unsupported compress type `{0}`")]
    Unsupported(String),
    /// The declared raw size is above [`MAX_RAW_SIZE`].
    #[error("declared raw size {0} exceeds the limit of {MAX_RAW_SIZE} bytes")]
    TooLarge(usize),
    /// The declared raw size is more than the compression type can produce from the body.
    #[error("declared raw size {raw_size} is impossible for a {kind} body of {body_len} bytes")]
    ImplausibleSize {
        /// Compression type.
        kind: &'static str,
        /// The declared raw size.
        raw_size: usize,
        /// The compressed body's length.
        body_len: usize,
    },
    /// The body does not decompress to the declared size.
    #[error("corrupt {kind} body: {reason}")]
    Corrupt {
        /// Compression type.
        kind: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl Compression {
    /// Parses `x-log-compresstype`; empty means uncompressed.
    ///
    /// # Errors
    ///
    /// Returns [`CompressionError::Unsupported`] for unknown names.
    pub fn from_header(value: &str) -> Result<Self, CompressionError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(Self::None),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            "deflate" => Ok(Self::Deflate),
            other => Err(CompressionError::Unsupported(other.to_owned())),
        }
    }

    /// The header value, or `None` for uncompressed.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Lz4 => Some("lz4"),
            Self::Zstd => Some("zstd"),
            Self::Deflate => Some("deflate"),
        }
    }

    /// Compresses `raw`.
    pub fn compress(self, raw: &[u8]) -> Vec<u8> {
        match self {
            Self::None => raw.to_vec(),
            Self::Lz4 => lz4_flex::block::compress(raw),
            Self::Zstd => zstd::bulk::compress(raw, 1).expect("zstd compresses any input"),
            Self::Deflate => {
                let mut encoder =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder
                    .write_all(raw)
                    .expect("writing to a Vec cannot fail");
                encoder.finish().expect("writing to a Vec cannot fail")
            }
        }
    }

    /// The most raw bytes one compressed byte can stand for, where the format has such a
    /// bound: an LZ4 block stretches a match by at most 255 bytes per length byte, deflate
    /// reaches at most 1032:1 (zlib's technical details). zstd has no useful bound, so it is
    /// decompressed as a stream that grows only with the output it really produces.
    fn max_ratio(self) -> Option<usize> {
        match self {
            Self::None => Some(1),
            Self::Lz4 => Some(255),
            Self::Deflate => Some(1032),
            Self::Zstd => None,
        }
    }

    /// Checks a declared raw size before anything is allocated for it: at most
    /// [`MAX_RAW_SIZE`], and no more than `body_len` compressed bytes can expand to.
    ///
    /// # Errors
    ///
    /// [`CompressionError::TooLarge`] or [`CompressionError::ImplausibleSize`].
    pub fn check_raw_size(self, raw_size: usize, body_len: usize) -> Result<(), CompressionError> {
        if raw_size > MAX_RAW_SIZE {
            return Err(CompressionError::TooLarge(raw_size));
        }
        match self.max_ratio() {
            Some(ratio) if raw_size > body_len.saturating_mul(ratio) => {
                Err(CompressionError::ImplausibleSize {
                    kind: self.header_value().unwrap_or("uncompressed"),
                    raw_size,
                    body_len,
                })
            }
            _ => Ok(()),
        }
    }

    /// Decompresses `body` whose uncompressed size is `raw_size`. The declared size is
    /// trusted only as far as the body can back it ([`Compression::check_raw_size`]): a few
    /// bytes claiming hundreds of MiB are refused before anything is allocated.
    ///
    /// # Errors
    ///
    /// Returns [`CompressionError`] when the size is over the limit, more than the body can
    /// hold, or the body is corrupt.
    pub fn decompress(self, body: &[u8], raw_size: usize) -> Result<Vec<u8>, CompressionError> {
        let mut raw = Vec::new();
        self.decompress_into(body, raw_size, &mut raw)?;
        Ok(raw)
    }

    /// [`Compression::decompress`] into `raw`, replacing its contents and reusing its
    /// capacity (a recycled buffer, see [`crate::source::buffers`]).
    ///
    /// # Errors
    ///
    /// As [`Compression::decompress`]; `raw` then holds no meaningful data.
    pub fn decompress_into(
        self,
        body: &[u8],
        raw_size: usize,
        raw: &mut Vec<u8>,
    ) -> Result<(), CompressionError> {
        self.check_raw_size(raw_size, body.len())?;
        let corrupt = |kind, reason: String| CompressionError::Corrupt { kind, reason };
        match self {
            Self::None => {
                raw.clear();
                raw.extend_from_slice(body);
            }
            Self::Lz4 => {
                // The block is decompressed into initialised bytes: a recycled buffer's old
                // contents are overwritten (the size check below ensures all of them), so
                // only the part beyond them is zeroed first.
                if raw.len() < raw_size {
                    raw.resize(raw_size, 0);
                } else {
                    raw.truncate(raw_size);
                }
                let written = lz4_flex::block::decompress_into(body, raw)
                    .map_err(|error| corrupt("lz4", error.to_string()))?;
                raw.truncate(written);
            }
            Self::Zstd => {
                raw.clear();
                let decoder = zstd::stream::read::Decoder::with_buffer(body)
                    .map_err(|error| corrupt("zstd", error.to_string()))?;
                read_at_most(decoder, raw_size, body.len(), raw)
                    .map_err(|error| corrupt("zstd", error.to_string()))?;
            }
            Self::Deflate => {
                raw.clear();
                read_at_most(
                    flate2::read::ZlibDecoder::new(body),
                    raw_size,
                    body.len(),
                    raw,
                )
                .map_err(|error| corrupt("deflate", error.to_string()))?;
            }
        }
        if raw.len() != raw_size && self != Self::None {
            return Err(corrupt(
                self.header_value().unwrap_or("raw"),
                format!("decompressed to {} bytes, expected {raw_size}", raw.len()),
            ));
        }
        Ok(())
    }
}

/// Reads a decoder's output into `raw` up to one byte past `raw_size` (so a longer output
/// shows as a size mismatch), reserving no more up front than a typical ratio of the body's
/// length.
fn read_at_most(
    decoder: impl Read,
    raw_size: usize,
    body_len: usize,
    raw: &mut Vec<u8>,
) -> std::io::Result<()> {
    const TYPICAL_RATIO: usize = 16;
    raw.reserve(raw_size.min(body_len.saturating_mul(TYPICAL_RATIO)));
    decoder.take(raw_size as u64 + 1).read_to_end(raw)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lz4_block_matches_the_spec_vector() {
        let raw: Vec<u8> = (0..46u8).collect();
        let compressed = Compression::Lz4.compress(&raw);
        assert_eq!(compressed.len(), 48);
        assert_eq!(&compressed[..2], &[0xf0, 0x1f]);
        assert_eq!(&compressed[2..], &raw[..]);
    }

    const EVERY_KIND: [Compression; 4] = [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Deflate,
    ];

    #[test]
    fn decompressing_into_a_used_buffer_leaves_nothing_of_its_old_contents() {
        let raw = b"log service block ".repeat(300);
        for kind in EVERY_KIND {
            let body = kind.compress(&raw);
            for old_len in [0, raw.len() - 7, raw.len() * 2] {
                let mut buffer = vec![0xAA; old_len];
                kind.decompress_into(&body, raw.len(), &mut buffer).unwrap();
                assert_eq!(buffer, raw, "{kind:?} over {old_len} old bytes");
            }
        }
    }

    #[test]
    fn every_type_round_trips() {
        let raw = b"hello hello hello hello hello log service".repeat(50);
        for kind in EVERY_KIND {
            let body = kind.compress(&raw);
            assert_eq!(kind.decompress(&body, raw.len()).unwrap(), raw, "{kind:?}");
        }
    }

    #[test]
    fn wrong_sizes_and_garbage_are_errors() {
        let body = Compression::Lz4.compress(b"abcdefabcdefabcdef");
        assert!(Compression::Lz4.decompress(&body, 5).is_err());
        assert!(Compression::Zstd.decompress(b"garbage", 10).is_err());
        assert!(Compression::Deflate.decompress(b"garbage", 10).is_err());
        assert!(matches!(
            Compression::Lz4.decompress(b"", MAX_RAW_SIZE + 1),
            Err(CompressionError::TooLarge(_))
        ));
        assert!(Compression::from_header("snappy").is_err());
    }

    #[test]
    fn a_declared_size_the_body_cannot_back_is_refused_before_allocating() {
        for kind in [Compression::Lz4, Compression::Deflate, Compression::None] {
            assert!(
                matches!(
                    kind.decompress(&[0; 100], 128 << 20),
                    Err(CompressionError::ImplausibleSize { .. })
                ),
                "{kind:?}"
            );
        }
        // zstd has no ratio bound: the output stops at what the body really holds.
        let body = Compression::Zstd.compress(b"abc");
        assert!(Compression::Zstd.decompress(&body, 128 << 20).is_err());
    }

    #[test]
    fn highly_compressible_bodies_still_decompress() {
        let raw = vec![0u8; 8 << 20];
        for kind in [Compression::Lz4, Compression::Zstd, Compression::Deflate] {
            let body = kind.compress(&raw);
            assert_eq!(kind.decompress(&body, raw.len()).unwrap(), raw, "{kind:?}");
        }
        assert_eq!(Compression::from_header("").unwrap(), Compression::None);
    }
}
