//! The body of one object: logs as JSON lines in the project's flattened form, compressed as
//! they are appended. Pure and synchronous (the sink runs it off the async threads).

use std::io::{self, Write};

use bytes::Bytes;
use flate2::write::GzEncoder;

use crate::encoding::json::write_flat_object;
use crate::model::LogRecord;

/// How an object's body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain JSON lines.
    None,
    /// One gzip member per object, at this level (0 to 9).
    Gzip(u32),
    /// One zstd frame per object, at this level (1 to 19).
    Zstd(i32),
}

impl Compression {
    /// The name's ending for this compression of JSON lines.
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => ".json",
            Self::Gzip(_) => ".json.gz",
            Self::Zstd(_) => ".json.zst",
        }
    }

    /// The object's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::None => "application/x-ndjson",
            Self::Gzip(_) => "application/gzip",
            Self::Zstd(_) => "application/zstd",
        }
    }
}

/// Where compressed bytes collect.
enum Output {
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// An object being written.
pub struct ObjectBody {
    output: Output,
    /// Encoded bytes before compression.
    uncompressed: u64,
    /// Logs written.
    logs: u64,
    /// One batch's encoded lines before they go to the compressor.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBody")
            .field("uncompressed", &self.uncompressed)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

impl ObjectBody {
    /// An empty body.
    ///
    /// # Errors
    ///
    /// When the compressor cannot start.
    pub fn new(compression: Compression) -> io::Result<Self> {
        let output = match compression {
            Compression::None => Output::Plain(Vec::new()),
            Compression::Gzip(level) => {
                Output::Gzip(GzEncoder::new(Vec::new(), flate2::Compression::new(level)))
            }
            Compression::Zstd(level) => {
                Output::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level)?)
            }
        };
        Ok(Self {
            output,
            uncompressed: 0,
            logs: 0,
            scratch: Vec::new(),
        })
    }

    /// Appends one line per log.
    ///
    /// # Errors
    ///
    /// When the compressor fails.
    pub fn append<'a>(&mut self, records: impl Iterator<Item = LogRecord<'a>>) -> io::Result<()> {
        self.scratch.clear();
        for record in records {
            write_flat_object(&record, &mut self.scratch);
            self.scratch.push(b'\n');
            self.logs += 1;
        }
        self.uncompressed += self.scratch.len() as u64;
        match &mut self.output {
            Output::Plain(out) => out.extend_from_slice(&self.scratch),
            Output::Gzip(encoder) => encoder.write_all(&self.scratch)?,
            Output::Zstd(encoder) => encoder.write_all(&self.scratch)?,
        }
        Ok(())
    }

    /// Encoded bytes before compression.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Logs written.
    pub fn logs(&self) -> u64 {
        self.logs
    }

    /// Bytes held in memory: compressed output so far and the scratch buffer.
    pub fn memory_bytes(&self) -> u64 {
        let output = match &self.output {
            Output::Plain(out) => out.capacity(),
            Output::Gzip(encoder) => encoder.get_ref().capacity(),
            Output::Zstd(encoder) => encoder.get_ref().capacity(),
        };
        (output + self.scratch.capacity()) as u64
    }

    /// Ends the compressed stream and returns the whole body.
    ///
    /// # Errors
    ///
    /// When the compressor fails.
    pub fn finish(self) -> io::Result<Bytes> {
        let bytes = match self.output {
            Output::Plain(out) => out,
            Output::Gzip(encoder) => encoder.finish()?,
            Output::Zstd(encoder) => encoder.finish()?,
        };
        Ok(Bytes::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::model::RecordsBuilder;

    fn body(compression: Compression) -> (Bytes, u64, u64) {
        let records = RecordsBuilder::new()
            .group("topic", "10.0.0.1", &[("host", "web-1")])
            .log(1_700_000_000, None, &[("user", "alice"), ("quote", "a\"b")])
            .log(1_700_000_001, Some(5), &[("user", "bob")])
            .build();
        let mut body = ObjectBody::new(compression).unwrap();
        body.append(records.iter()).unwrap();
        body.append(records.iter().take(1)).unwrap();
        let (uncompressed, logs) = (body.uncompressed_bytes(), body.logs());
        (body.finish().unwrap(), uncompressed, logs)
    }

    const EXPECTED: &str = concat!(
        r#"{"__time__":1700000000,"__topic__":"topic","__source__":"10.0.0.1","__tag__:host":"web-1","user":"alice","quote":"a\"b"}"#,
        "\n",
        r#"{"__time__":1700000001,"__time_ns_part__":"5","__topic__":"topic","__source__":"10.0.0.1","__tag__:host":"web-1","user":"bob"}"#,
        "\n",
        r#"{"__time__":1700000000,"__topic__":"topic","__source__":"10.0.0.1","__tag__:host":"web-1","user":"alice","quote":"a\"b"}"#,
        "\n",
    );

    #[test]
    fn plain_json_lines_in_the_flattened_form() {
        let (bytes, uncompressed, logs) = body(Compression::None);
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), EXPECTED);
        assert_eq!((uncompressed, logs), (EXPECTED.len() as u64, 3));
    }

    #[test]
    fn gzip_and_zstd_round_trip() {
        let (bytes, uncompressed, _) = body(Compression::Gzip(6));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, EXPECTED);
        assert_eq!(uncompressed, EXPECTED.len() as u64);
        let (bytes, _, _) = body(Compression::Zstd(3));
        assert_eq!(zstd::decode_all(&bytes[..]).unwrap(), EXPECTED.as_bytes());
    }
}
