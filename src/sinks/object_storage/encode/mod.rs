//! The body of one object: logs as JSON lines in the project's flattened form or as CSV rows,
//! compressed as they are appended, or (with the `parquet` cargo feature) as a Parquet file
//! with typed columns ([`parquet`]). Synchronous (the sink runs it off the async threads).

#[cfg(feature = "parquet")]
pub mod parquet;

use std::io::{self, Write};

use bytes::Bytes;
use flate2::write::GzEncoder;

use crate::encoding::json::write_flat_object;
use crate::model::LogRecord;

/// How each log is written.
#[derive(Debug, Clone)]
pub enum Format {
    /// One flattened JSON object per line.
    Json,
    /// One CSV row per log.
    Csv(CsvLayout),
    /// A Parquet file with typed columns; the compression is the file's internal codec.
    #[cfg(feature = "parquet")]
    Parquet(parquet::ParquetLayout),
}

impl Format {
    /// The format's name in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv(_) => "csv",
            #[cfg(feature = "parquet")]
            Self::Parquet(_) => "parquet",
        }
    }

    /// True when the compression applies to the encoded bytes as a whole (JSON and CSV), false
    /// when it is the format's own (Parquet's per-page codec).
    pub fn compresses_outside(&self) -> bool {
        match self {
            Self::Json | Self::Csv(_) => true,
            #[cfg(feature = "parquet")]
            Self::Parquet(_) => false,
        }
    }
}

/// A log's text for a column key, as CSV and Parquet read it: `__time__` and
/// `__time_ns_part__` from the log's time, any other key by [`LogRecord::lookup`].
#[derive(Default)]
pub(super) struct ColumnText {
    time: itoa::Buffer,
    time_ns: itoa::Buffer,
}

impl ColumnText {
    /// The lookup of `record`'s values by column key (`None` when the log has no such key).
    pub(super) fn of<'s>(
        &'s mut self,
        record: &'s LogRecord<'_>,
    ) -> impl Fn(&str) -> Option<&'s str> + 's {
        let time = self.time.format(record.time);
        let time_ns = record.time_ns.map(|ns| self.time_ns.format(ns));
        move |key| match key {
            "__time__" => Some(time),
            "__time_ns_part__" => time_ns,
            key => record.lookup(key),
        }
    }
}

/// The columns and punctuation of CSV objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLayout {
    /// Flattened keys (`__time__`, `__topic__`, `__tag__:NAME`, content keys) and their
    /// header names, in column order.
    pub columns: Vec<(String, String)>,
    /// Field separator.
    pub delimiter: u8,
    /// Quote character; a quote inside a value is doubled.
    pub quote: u8,
    /// Written when a log has no value for a column.
    pub null_value: String,
    /// Start every object with a row of the column names.
    pub header: bool,
}

impl Format {
    /// The name's ending before the compression's.
    fn extension(&self) -> &'static str {
        match self {
            Self::Json => ".json",
            Self::Csv(_) => ".csv",
            #[cfg(feature = "parquet")]
            Self::Parquet(_) => ".parquet",
        }
    }

    /// The `Content-Type` of uncompressed objects.
    fn content_type(&self) -> &'static str {
        match self {
            Self::Json => "application/x-ndjson",
            Self::Csv(_) => "text/csv",
            #[cfg(feature = "parquet")]
            Self::Parquet(_) => "application/vnd.apache.parquet",
        }
    }
}

/// How an object's body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// One gzip member per object, at this level (0 to 9).
    Gzip(u32),
    /// One zstd frame per object, at this level (1 to 19).
    Zstd(i32),
    /// Snappy's raw block format over the whole object (what Alibaba's OSS shipping writes);
    /// the object is held uncompressed until it is sealed.
    Snappy,
    /// Snappy's framing format, streamed.
    SnappyFramed,
    /// An LZ4 frame.
    Lz4,
}

impl Compression {
    /// The name's ending for objects of `format` (`.json.gz`, `.csv.snappy`, ...; `.parquet`
    /// whatever the codec).
    pub fn extension(self, format: &Format) -> String {
        if !format.compresses_outside() {
            return format.extension().to_owned();
        }
        let compressed = match self {
            Self::None => "",
            Self::Gzip(_) => ".gz",
            Self::Zstd(_) => ".zst",
            Self::Snappy => ".snappy",
            Self::SnappyFramed => ".sz",
            Self::Lz4 => ".lz4",
        };
        format!("{}{compressed}", format.extension())
    }

    /// The `Content-Type` of objects of `format`.
    pub fn content_type(self, format: &Format) -> &'static str {
        if !format.compresses_outside() {
            return format.content_type();
        }
        match self {
            Self::None => format.content_type(),
            Self::Gzip(_) => "application/gzip",
            Self::Zstd(_) => "application/zstd",
            Self::SnappyFramed => "application/x-snappy-framed",
            Self::Snappy | Self::Lz4 => "application/octet-stream",
        }
    }
}

/// Where compressed bytes collect.
enum Output {
    /// Uncompressed bytes (also what raw snappy compresses at the end).
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    SnappyFramed(Box<snap::write::FrameEncoder<Vec<u8>>>),
    Lz4(Box<lz4_flex::frame::FrameEncoder<Vec<u8>>>),
}

impl Output {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(out) => {
                out.extend_from_slice(bytes);
                Ok(())
            }
            Self::Gzip(encoder) => encoder.write_all(bytes),
            Self::Zstd(encoder) => encoder.write_all(bytes),
            Self::SnappyFramed(encoder) => encoder.write_all(bytes),
            Self::Lz4(encoder) => encoder.write_all(bytes),
        }
    }

    /// Bytes held (compressed so far, or the raw bytes waiting for snappy).
    fn capacity(&self) -> usize {
        match self {
            Self::Plain(out) => out.capacity(),
            Self::Gzip(encoder) => encoder.get_ref().capacity(),
            Self::Zstd(encoder) => encoder.get_ref().capacity(),
            Self::SnappyFramed(encoder) => encoder.get_ref().capacity(),
            Self::Lz4(encoder) => encoder.get_ref().capacity(),
        }
    }
}

/// An object being written.
pub struct ObjectBody(Body);

enum Body {
    /// JSON lines or CSV rows through a stream compressor.
    Text(Box<TextBody>),
    /// A Parquet file.
    #[cfg(feature = "parquet")]
    Parquet(Box<parquet::ParquetBody>),
}

impl std::fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBody")
            .field("uncompressed", &self.uncompressed_bytes())
            .field("logs", &self.logs())
            .finish_non_exhaustive()
    }
}

impl ObjectBody {
    /// An empty body (for CSV with a header, the header row).
    ///
    /// # Errors
    ///
    /// When the compressor or the Parquet writer cannot start.
    pub fn new(format: &Format, compression: Compression) -> io::Result<Self> {
        Ok(Self(match format {
            Format::Json | Format::Csv(_) => {
                Body::Text(Box::new(TextBody::new(format, compression)?))
            }
            #[cfg(feature = "parquet")]
            Format::Parquet(layout) => Body::Parquet(Box::new(parquet::ParquetBody::new(
                layout.clone(),
                compression,
            )?)),
        }))
    }

    /// Appends one line (JSON), row (CSV) or row of the row group (Parquet) per log.
    ///
    /// # Errors
    ///
    /// When the compressor or the Parquet writer fails.
    pub fn append<'a>(&mut self, records: impl Iterator<Item = LogRecord<'a>>) -> io::Result<()> {
        match &mut self.0 {
            Body::Text(body) => body.append(records),
            #[cfg(feature = "parquet")]
            Body::Parquet(body) => body.append(records),
        }
    }

    /// Encoded bytes before compression (for Parquet, the values' sizes: see
    /// [`parquet::ParquetBody`]).
    pub fn uncompressed_bytes(&self) -> u64 {
        match &self.0 {
            Body::Text(body) => body.uncompressed,
            #[cfg(feature = "parquet")]
            Body::Parquet(body) => body.uncompressed_bytes(),
        }
    }

    /// Logs written.
    pub fn logs(&self) -> u64 {
        match &self.0 {
            Body::Text(body) => body.logs,
            #[cfg(feature = "parquet")]
            Body::Parquet(body) => body.logs(),
        }
    }

    /// Bytes held in memory: output so far and the encoder's buffers (for Parquet, the row
    /// group not yet written).
    pub fn memory_bytes(&self) -> u64 {
        match &self.0 {
            Body::Text(body) => (body.output.capacity() + body.scratch.capacity()) as u64,
            #[cfg(feature = "parquet")]
            Body::Parquet(body) => body.memory_bytes(),
        }
    }

    /// Ends the compressed stream (or writes the Parquet footer) and returns the whole body.
    ///
    /// # Errors
    ///
    /// When the compressor or the Parquet writer fails.
    pub fn finish(self) -> io::Result<Bytes> {
        match self.0 {
            Body::Text(body) => body.finish(),
            #[cfg(feature = "parquet")]
            Body::Parquet(body) => body.finish(),
        }
    }
}

/// JSON lines go to the compressor whenever this many bytes are waiting: the chunk is still in
/// the CPU's cache when the compressor reads it, and the scratch buffer stays this small however
/// large a batch is (a pulled batch can hold several MiB of lines). The object decompresses to
/// the same lines whatever the chunking; the compressed bytes may differ slightly, as they
/// already did with the batches' sizes.
const SCRATCH_CHUNK: usize = 64 << 10;

/// JSON lines or CSV rows, compressed as they are appended.
struct TextBody {
    /// The CSV layout; JSON lines without one.
    csv: Option<CsvLayout>,
    compression: Compression,
    output: Output,
    /// Encoded bytes before compression.
    uncompressed: u64,
    /// Logs written.
    logs: u64,
    /// Encoded lines before they go to the compressor: a batch's CSV rows, or JSON lines up to
    /// about [`SCRATCH_CHUNK`] bytes.
    scratch: Vec<u8>,
}

impl TextBody {
    fn new(format: &Format, compression: Compression) -> io::Result<Self> {
        let output = match compression {
            Compression::None | Compression::Snappy => Output::Plain(Vec::new()),
            Compression::Gzip(level) => {
                Output::Gzip(GzEncoder::new(Vec::new(), flate2::Compression::new(level)))
            }
            Compression::Zstd(level) => {
                Output::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level)?)
            }
            Compression::SnappyFramed => {
                Output::SnappyFramed(Box::new(snap::write::FrameEncoder::new(Vec::new())))
            }
            Compression::Lz4 => {
                Output::Lz4(Box::new(lz4_flex::frame::FrameEncoder::new(Vec::new())))
            }
        };
        let mut body = Self {
            csv: match format {
                Format::Csv(layout) => Some(layout.clone()),
                _ => None,
            },
            compression,
            output,
            uncompressed: 0,
            logs: 0,
            scratch: Vec::new(),
        };
        if let Some(layout) = body.csv.as_ref().filter(|layout| layout.header) {
            let mut writer = csv_writer(layout, &mut body.scratch);
            writer.write_record(layout.columns.iter().map(|(_, name)| name))?;
            drop(writer);
            body.flush_scratch()?;
        }
        Ok(body)
    }

    fn append<'a>(&mut self, records: impl Iterator<Item = LogRecord<'a>>) -> io::Result<()> {
        match &self.csv {
            Some(layout) => {
                let mut writer = csv_writer(layout, &mut self.scratch);
                let mut text = ColumnText::default();
                for record in records {
                    let value = text.of(&record);
                    writer.write_record(
                        layout
                            .columns
                            .iter()
                            .map(|(key, _)| value(key).unwrap_or(layout.null_value.as_str())),
                    )?;
                    self.logs += 1;
                }
                writer.flush()?;
            }
            None => {
                for record in records {
                    write_flat_object(&record, &mut self.scratch);
                    self.scratch.push(b'\n');
                    self.logs += 1;
                    if self.scratch.len() >= SCRATCH_CHUNK {
                        self.flush_scratch()?;
                    }
                }
            }
        }
        self.flush_scratch()
    }

    /// Moves the encoded lines to the compressor.
    fn flush_scratch(&mut self) -> io::Result<()> {
        self.uncompressed += self.scratch.len() as u64;
        self.output.write_all(&self.scratch)?;
        self.scratch.clear();
        Ok(())
    }

    fn finish(self) -> io::Result<Bytes> {
        let bytes = match self.output {
            Output::Plain(out) if self.compression == Compression::Snappy => {
                snap::raw::Encoder::new().compress_vec(&out)?
            }
            Output::Plain(out) => out,
            Output::Gzip(encoder) => encoder.finish()?,
            Output::Zstd(encoder) => encoder.finish()?,
            Output::SnappyFramed(encoder) => encoder
                .into_inner()
                .map_err(|error| io::Error::other(error.to_string()))?,
            Output::Lz4(encoder) => encoder.finish().map_err(io::Error::other)?,
        };
        Ok(Bytes::from(bytes))
    }
}

/// A CSV writer into `out`: `layout`'s delimiter and quote, quotes only where needed (doubled
/// inside values), rows ended by `\n`.
fn csv_writer<'a>(layout: &CsvLayout, out: &'a mut Vec<u8>) -> csv::Writer<&'a mut Vec<u8>> {
    csv::WriterBuilder::new()
        .delimiter(layout.delimiter)
        .quote(layout.quote)
        .double_quote(true)
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(false)
        .from_writer(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::model::RecordsBuilder;

    fn records() -> crate::model::LogRecords {
        RecordsBuilder::new()
            .group("topic", "10.0.0.1", &[("host", "web-1")])
            .log(1_700_000_000, None, &[("user", "alice"), ("quote", "a\"b")])
            .log(1_700_000_001, Some(5), &[("user", "bob")])
            .build()
    }

    fn body(compression: Compression) -> (Bytes, u64, u64) {
        body_of(&Format::Json, compression)
    }

    fn body_of(format: &Format, compression: Compression) -> (Bytes, u64, u64) {
        let records = records();
        let mut body = ObjectBody::new(format, compression).unwrap();
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

    /// `count` logs of up to about 1 KB each, every one different, and their JSON lines.
    fn large_batch(count: u32) -> (crate::model::LogRecords, String) {
        let mut builder = RecordsBuilder::new().group("topic", "10.0.0.1", &[("host", "web-1")]);
        let mut expected = String::new();
        for index in 0..count {
            let event = format!(
                r#"{{"eventId":"{index:08x}","sourceIpAddress":"10.1.{}.{}","requestParameters":{{"name":"i-{}"}},"pad":"{}"}}"#,
                index % 251,
                index % 13,
                index * 7919,
                "x".repeat((index % 900) as usize)
            );
            builder = builder.log(1_700_000_000 + index, None, &[("event", &event)]);
            let escaped = event.replace('"', "\\\"");
            expected.push_str(&format!(
                r#"{{"__time__":{},"__topic__":"topic","__source__":"10.0.0.1","__tag__:host":"web-1","event":"{escaped}"}}"#,
                1_700_000_000 + index
            ));
            expected.push('\n');
        }
        (builder.build(), expected)
    }

    #[test]
    fn large_batches_read_back_unchanged_compress_as_well_and_hold_little_memory() {
        let (records, expected) = large_batch(3_000);
        assert!(
            expected.len() > 20 * SCRATCH_CHUNK,
            "the batch spans many chunks"
        );
        for compression in [
            Compression::None,
            Compression::Gzip(6),
            Compression::Gzip(1),
        ] {
            let mut body = ObjectBody::new(&Format::Json, compression).unwrap();
            body.append(records.iter().take(1_000)).unwrap();
            body.append(records.iter().skip(1_000)).unwrap();
            assert!(
                compression == Compression::None || body.memory_bytes() < expected.len() as u64 / 4,
                "{compression:?}: {} bytes held for a {} byte batch",
                body.memory_bytes(),
                expected.len()
            );
            assert_eq!(body.uncompressed_bytes(), expected.len() as u64);
            let bytes = body.finish().unwrap();
            let Compression::Gzip(level) = compression else {
                assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
                continue;
            };
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
            assert!(
                text == expected,
                "gzip level {level}: other lines read back"
            );
            let mut whole = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            whole.write_all(expected.as_bytes()).unwrap();
            let whole = whole.finish().unwrap().len();
            assert!(
                bytes.len() <= whole + whole / 200,
                "gzip level {level}: {} bytes stored, {whole} compressed in one write",
                bytes.len()
            );
        }
    }

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

    #[test]
    fn snappy_raw_snappy_framed_and_lz4_round_trip() {
        let (bytes, _, _) = body(Compression::Snappy);
        let raw = snap::raw::Decoder::new().decompress_vec(&bytes).unwrap();
        assert_eq!(raw, EXPECTED.as_bytes(), "one raw block over the object");
        let (bytes, _, _) = body(Compression::SnappyFramed);
        let mut framed = Vec::new();
        snap::read::FrameDecoder::new(&bytes[..])
            .read_to_end(&mut framed)
            .unwrap();
        assert_eq!(framed, EXPECTED.as_bytes());
        let (bytes, _, _) = body(Compression::Lz4);
        let mut lz4 = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&bytes[..])
            .read_to_end(&mut lz4)
            .unwrap();
        assert_eq!(lz4, EXPECTED.as_bytes());
    }

    fn csv_layout(header: bool) -> CsvLayout {
        CsvLayout {
            columns: [
                ("__time__", "time"),
                ("__time_ns_part__", "ns"),
                ("__tag__:host", "host"),
                ("user", "user"),
                ("quote", "quote"),
            ]
            .map(|(key, name)| (key.to_owned(), name.to_owned()))
            .to_vec(),
            delimiter: b';',
            quote: b'\'',
            null_value: "\\N".into(),
            header,
        }
    }

    #[test]
    fn csv_rows_with_header_null_value_and_quoting() {
        let (bytes, uncompressed, logs) =
            body_of(&Format::Csv(csv_layout(true)), Compression::None);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(
            text,
            "time;ns;host;user;quote\n\
             1700000000;\\N;web-1;alice;a\"b\n\
             1700000001;5;web-1;bob;\\N\n\
             1700000000;\\N;web-1;alice;a\"b\n"
        );
        assert_eq!((uncompressed, logs), (text.len() as u64, 3));
        let (bytes, _, _) = body_of(&Format::Csv(csv_layout(false)), Compression::Gzip(6));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.starts_with("1700000000;"), "{text}");
    }

    #[test]
    fn names_and_content_types() {
        let csv = Format::Csv(csv_layout(false));
        assert_eq!(Compression::Gzip(6).extension(&Format::Json), ".json.gz");
        assert_eq!(Compression::Snappy.extension(&csv), ".csv.snappy");
        assert_eq!(Compression::SnappyFramed.extension(&csv), ".csv.sz");
        assert_eq!(Compression::Lz4.extension(&Format::Json), ".json.lz4");
        assert_eq!(Compression::None.extension(&csv), ".csv");
        assert_eq!(Compression::None.content_type(&csv), "text/csv");
        assert_eq!(Compression::Zstd(3).content_type(&csv), "application/zstd");
    }

    proptest::proptest! {
        /// Any values, with delimiters, quotes and line breaks, read back unchanged.
        #[test]
        fn csv_values_round_trip(user in "\\PC{0,12}", quote in "[;'\"\n\r a]{0,8}") {
            let records = RecordsBuilder::new()
                .log(1, None, &[("user", &user), ("quote", &quote)])
                .build();
            let layout = csv_layout(false);
            let mut body = ObjectBody::new(&Format::Csv(layout.clone()), Compression::None).unwrap();
            body.append(records.iter()).unwrap();
            let bytes = body.finish().unwrap();
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(layout.delimiter)
                .quote(layout.quote)
                .has_headers(false)
                .from_reader(&bytes[..]);
            let row = reader.records().next().unwrap().unwrap();
            proptest::prop_assert_eq!(&row[3], user.as_str());
            proptest::prop_assert_eq!(&row[4], quote.as_str());
        }
    }
}
