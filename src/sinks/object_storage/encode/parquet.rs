//! Parquet objects: one typed, nullable column per configured key, written with the `parquet`
//! crate's low-level writer (no Arrow). Each log's value is converted from its text as
//! Alibaba's OSS shipping does: ASCII whitespace trimmed, integers and floats as Rust parses
//! them, booleans `true`/`false`/`1`/`0` in any case; a missing key is null, and so is a value
//! that does not convert (counted in `archive_conversion_nulls_total{column}`).
//!
//! Values collect per column until the row group reaches `parquet.row_group_bytes`, then the
//! row group is encoded and compressed into the file with the codec; the file's footer is
//! written at seal. Memory is the unwritten row group plus the file written so far.
//!
//! Why no Arrow: on the project's 2-core build machine, `parquet` 58 with its `arrow` feature
//! took 322 CPU-s (6 min wall) and 562 MB of target from nothing; without it (features `snap`,
//! `zstd`, `flate2-zlib-rs` only) 180 CPU-s and 316 MB from nothing, of which the project pays
//! 91 CPU-s on top of its other dependencies: 10 crates new to the build (parquet, thrift, half,
//! ordered-float, integer-encoding, ahash, seq-macro, byteorder, libm, getrandom 0.3), 3 more
//! compiled for it (paste, twox-hash, zerocopy-derive) and 5 rebuilt with more features
//! (num-traits, num-integer, num-bigint, chrono, zerocopy).

use std::io;

use bytes::Bytes;
use parquet::basic::{Compression as Codec, GzipLevel, LogicalType, Repetition, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use prometheus_client::metrics::counter::Counter;

use super::{ColumnText, Compression};
use crate::model::LogRecord;
use crate::telemetry::metrics::{metrics, ColumnLabels};

/// The type of a Parquet column; every column is nullable (OPTIONAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text (BYTE_ARRAY annotated STRING), the value as it is.
    String,
    /// BOOLEAN.
    Boolean,
    /// INT32.
    Int32,
    /// INT64.
    Int64,
    /// FLOAT (32 bits).
    Float,
    /// DOUBLE (64 bits).
    Double,
}

impl ColumnType {
    /// The type called `name`: `string`, `boolean`, `int32`, `int64`, `float` or `double`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "boolean" => Self::Boolean,
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            "float" => Self::Float,
            "double" => Self::Double,
            _ => return None,
        })
    }
}

/// One Parquet column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetColumn {
    /// Flattened key (`__time__`, `__topic__`, `__tag__:NAME`, content keys).
    pub key: String,
    /// The column's name in the schema.
    pub name: String,
    /// Its type.
    pub kind: ColumnType,
}

/// The columns of Parquet objects and when a row group is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetLayout {
    /// The columns, in order.
    pub columns: Vec<ParquetColumn>,
    /// A row group is written once its values reach this many bytes (as counted for
    /// `max_bytes`).
    pub row_group_bytes: u64,
    /// The sink's name, for the conversion-null counters.
    pub sink: String,
}

/// `created_by` in every file's footer.
fn created_by() -> String {
    format!("siem-forwarder {}", env!("CARGO_PKG_VERSION"))
}

/// Parses a boolean: `true`/`false`/`1`/`0`, any case, ASCII whitespace around ignored.
pub fn parse_boolean(text: &str) -> Option<bool> {
    let text = text.trim_ascii();
    if text == "1" || text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text == "0" || text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses a number with Rust's `from_str` after trimming ASCII whitespace.
pub fn parse_number<T: std::str::FromStr>(text: &str) -> Option<T> {
    text.trim_ascii().parse().ok()
}

/// The values of one column in the row group not yet written. Null rows have no value; the
/// definition levels (1 present, 0 null) give one level per row.
enum Values {
    /// Concatenated UTF-8 bytes and the end offset of each value.
    Text {
        data: Vec<u8>,
        ends: Vec<usize>,
    },
    Boolean(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
}

struct ColumnBuffer {
    values: Values,
    levels: Vec<i16>,
    /// Counts this column's values that did not convert.
    nulls: Counter,
}

impl ColumnBuffer {
    fn new(column: &ParquetColumn, sink: &str) -> Self {
        let values = match column.kind {
            ColumnType::String => Values::Text {
                data: Vec::new(),
                ends: Vec::new(),
            },
            ColumnType::Boolean => Values::Boolean(Vec::new()),
            ColumnType::Int32 => Values::Int32(Vec::new()),
            ColumnType::Int64 => Values::Int64(Vec::new()),
            ColumnType::Float => Values::Float(Vec::new()),
            ColumnType::Double => Values::Double(Vec::new()),
        };
        let labels = ColumnLabels {
            sink: sink.to_owned(),
            column: column.name.clone(),
        };
        Self {
            values,
            levels: Vec::new(),
            nulls: metrics()
                .archive_conversion_nulls
                .get_or_create(&labels)
                .clone(),
        }
    }

    /// Adds one row: `text` converted to the column's type. Returns the bytes it counts for
    /// (string length, 4 or 8 for other types, 0 for null) and whether a present value failed
    /// to convert.
    fn push(&mut self, text: Option<&str>) -> (u64, bool) {
        let Some(text) = text else {
            self.levels.push(0);
            return (0, false);
        };
        let size = match &mut self.values {
            Values::Text { data, ends } => {
                data.extend_from_slice(text.as_bytes());
                ends.push(data.len());
                Some(text.len() as u64)
            }
            Values::Boolean(values) => push_parsed(values, parse_boolean(text), 4),
            Values::Int32(values) => push_parsed(values, parse_number(text), 4),
            Values::Int64(values) => push_parsed(values, parse_number(text), 8),
            Values::Float(values) => push_parsed(values, parse_number(text), 4),
            Values::Double(values) => push_parsed(values, parse_number(text), 8),
        };
        self.levels.push(i16::from(size.is_some()));
        (size.unwrap_or(0), size.is_none())
    }

    /// Bytes held by the buffers.
    fn capacity(&self) -> usize {
        let values = match &self.values {
            Values::Text { data, ends } => data.capacity() + ends.capacity() * size_of::<usize>(),
            Values::Boolean(values) => values.capacity(),
            Values::Int32(values) => values.capacity() * 4,
            Values::Int64(values) => values.capacity() * 8,
            Values::Float(values) => values.capacity() * 4,
            Values::Double(values) => values.capacity() * 8,
        };
        values + self.levels.capacity() * size_of::<i16>()
    }

    /// Writes the buffered rows as this column's chunk of a row group and empties the buffers.
    fn write(&mut self, writer: &mut ColumnWriter<'_>) -> Result<(), ParquetError> {
        let levels = Some(self.levels.as_slice());
        match (&mut self.values, writer) {
            (Values::Text { data, ends }, ColumnWriter::ByteArrayColumnWriter(writer)) => {
                let data = Bytes::from(std::mem::take(data));
                let mut start = 0;
                let values: Vec<ByteArray> = ends
                    .drain(..)
                    .map(|end| {
                        let value = ByteArray::from(data.slice(start..end));
                        start = end;
                        value
                    })
                    .collect();
                writer.write_batch(&values, levels, None)?;
            }
            (Values::Boolean(values), ColumnWriter::BoolColumnWriter(writer)) => {
                writer.write_batch(values, levels, None)?;
                values.clear();
            }
            (Values::Int32(values), ColumnWriter::Int32ColumnWriter(writer)) => {
                writer.write_batch(values, levels, None)?;
                values.clear();
            }
            (Values::Int64(values), ColumnWriter::Int64ColumnWriter(writer)) => {
                writer.write_batch(values, levels, None)?;
                values.clear();
            }
            (Values::Float(values), ColumnWriter::FloatColumnWriter(writer)) => {
                writer.write_batch(values, levels, None)?;
                values.clear();
            }
            (Values::Double(values), ColumnWriter::DoubleColumnWriter(writer)) => {
                writer.write_batch(values, levels, None)?;
                values.clear();
            }
            _ => {
                return Err(ParquetError::General(
                    "a column's values do not match its schema type".into(),
                ))
            }
        }
        self.levels.clear();
        Ok(())
    }
}

/// Adds `value` when it converted; its counted size when it did.
fn push_parsed<T>(values: &mut Vec<T>, value: Option<T>, size: u64) -> Option<u64> {
    let value = value?;
    values.push(value);
    Some(size)
}

/// A Parquet file being written.
pub struct ParquetBody {
    writer: SerializedFileWriter<Vec<u8>>,
    layout: ParquetLayout,
    columns: Vec<ColumnBuffer>,
    /// Rows buffered and not yet written as a row group.
    rows: usize,
    /// Counted bytes of the buffered rows.
    buffered: u64,
    /// Counted bytes of every row.
    uncompressed: u64,
    logs: u64,
}

impl ParquetBody {
    /// An empty file of `layout`'s columns, compressed internally with `compression`
    /// (`None`, `Snappy`, `Zstd` or `Gzip`).
    ///
    /// # Errors
    ///
    /// When the codec is not one Parquet offers here, or the writer cannot start.
    pub fn new(layout: ParquetLayout, compression: Compression) -> io::Result<Self> {
        let properties = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_created_by(created_by())
            .set_compression(codec(compression)?)
            .set_dictionary_enabled(true)
            .build();
        let writer = SerializedFileWriter::new(
            Vec::new(),
            schema(&layout.columns).map_err(io::Error::other)?,
            properties.into(),
        )
        .map_err(io::Error::other)?;
        let columns = layout
            .columns
            .iter()
            .map(|column| ColumnBuffer::new(column, &layout.sink))
            .collect();
        Ok(Self {
            writer,
            layout,
            columns,
            rows: 0,
            buffered: 0,
            uncompressed: 0,
            logs: 0,
        })
    }

    /// Adds one row per log; writes the row group once it reaches `row_group_bytes`.
    ///
    /// # Errors
    ///
    /// When the writer fails.
    pub fn append<'a>(&mut self, records: impl Iterator<Item = LogRecord<'a>>) -> io::Result<()> {
        let mut text = ColumnText::default();
        let mut failed = vec![0_u64; self.columns.len()];
        for record in records {
            let value = text.of(&record);
            for ((column, buffer), failed) in self
                .layout
                .columns
                .iter()
                .zip(&mut self.columns)
                .zip(&mut failed)
            {
                let (size, null) = buffer.push(value(&column.key));
                self.buffered += size;
                *failed += u64::from(null);
            }
            self.rows += 1;
            self.logs += 1;
        }
        for (buffer, failed) in self.columns.iter().zip(failed) {
            if failed > 0 {
                buffer.nulls.inc_by(failed);
            }
        }
        if self.buffered >= self.layout.row_group_bytes {
            self.write_row_group().map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one row group.
    fn write_row_group(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for buffer in &mut self.columns {
            let mut column = group
                .next_column()?
                .ok_or_else(|| ParquetError::General("fewer columns than the schema".into()))?;
            buffer.write(column.untyped())?;
            column.close()?;
        }
        group.close()?;
        self.uncompressed += self.buffered;
        self.buffered = 0;
        self.rows = 0;
        Ok(())
    }

    /// Counted bytes of the values (string lengths, 4 per boolean, int32 and float, 8 per
    /// int64 and double; nothing for nulls): what `max_bytes` limits.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed + self.buffered
    }

    /// Logs written.
    pub fn logs(&self) -> u64 {
        self.logs
    }

    /// Bytes held: the file written so far and the buffered row group.
    pub fn memory_bytes(&self) -> u64 {
        let buffers: usize = self.columns.iter().map(ColumnBuffer::capacity).sum();
        (self.writer.inner().capacity() + buffers) as u64
    }

    /// Writes the last row group and the footer; returns the file.
    ///
    /// # Errors
    ///
    /// When the writer fails.
    pub fn finish(mut self) -> io::Result<Bytes> {
        self.write_row_group().map_err(io::Error::other)?;
        let file = self.writer.into_inner().map_err(io::Error::other)?;
        Ok(Bytes::from(file))
    }
}

/// Parquet's codec for the sink's compression.
fn codec(compression: Compression) -> io::Result<Codec> {
    let invalid = |error: ParquetError| io::Error::new(io::ErrorKind::InvalidInput, error);
    Ok(match compression {
        Compression::None => Codec::UNCOMPRESSED,
        Compression::Snappy => Codec::SNAPPY,
        Compression::Zstd(level) => Codec::ZSTD(ZstdLevel::try_new(level).map_err(invalid)?),
        Compression::Gzip(level) => Codec::GZIP(GzipLevel::try_new(level).map_err(invalid)?),
        Compression::SnappyFramed | Compression::Lz4 => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Parquet files are compressed with none, snappy, zstd or gzip",
            ))
        }
    })
}

/// The file's schema: one OPTIONAL field per column.
fn schema(columns: &[ParquetColumn]) -> Result<std::sync::Arc<Type>, ParquetError> {
    use parquet::basic::Type as Physical;
    let fields = columns
        .iter()
        .map(|column| {
            let (physical, logical) = match column.kind {
                ColumnType::String => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                ColumnType::Boolean => (Physical::BOOLEAN, None),
                ColumnType::Int32 => (Physical::INT32, None),
                ColumnType::Int64 => (Physical::INT64, None),
                ColumnType::Float => (Physical::FLOAT, None),
                ColumnType::Double => (Physical::DOUBLE, None),
            };
            Type::primitive_type_builder(&column.name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(std::sync::Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
        .map(std::sync::Arc::new)
}

#[cfg(test)]
mod tests {
    use parquet::basic::Type as Physical;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;
    use crate::model::RecordsBuilder;

    #[test]
    fn booleans_are_true_false_1_0_in_any_case() {
        for (text, expected) in [
            ("true", Some(true)),
            (" TRUE\t", Some(true)),
            ("True", Some(true)),
            ("1", Some(true)),
            ("\n1 ", Some(true)),
            ("false", Some(false)),
            ("FaLsE", Some(false)),
            ("0", Some(false)),
            ("", None),
            ("yes", None),
            ("t", None),
            ("2", None),
            ("1.0", None),
            ("01", None),
            ("tru e", None),
        ] {
            assert_eq!(parse_boolean(text), expected, "{text:?}");
        }
    }

    #[test]
    fn integers_parse_within_their_width_after_trimming() {
        for (text, expected) in [
            ("42", Some(42)),
            (" -7\t", Some(-7)),
            ("+5", Some(5)),
            ("2147483647", Some(i32::MAX)),
            ("-2147483648", Some(i32::MIN)),
            ("2147483648", None),
            ("1.5", None),
            ("1e3", None),
            ("0x10", None),
            ("", None),
            ("   ", None),
            ("12abc", None),
            ("1 000", None),
        ] {
            assert_eq!(parse_number::<i32>(text), expected, "{text:?}");
        }
        assert_eq!(parse_number::<i64>("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_number::<i64>("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_number::<i64>("9223372036854775808"), None);
        assert_eq!(parse_number::<i64>(" 1700000000 "), Some(1_700_000_000));
    }

    #[test]
    fn floats_parse_as_rust_does_after_trimming() {
        assert_eq!(parse_number::<f32>(" 1.5 "), Some(1.5));
        assert_eq!(parse_number::<f32>("-0.25"), Some(-0.25));
        assert_eq!(parse_number::<f32>("1e3"), Some(1000.0));
        assert_eq!(parse_number::<f64>("0.1"), Some(0.1));
        assert_eq!(parse_number::<f64>("-2.5e-3"), Some(-0.0025));
        assert_eq!(parse_number::<f64>("1e308"), Some(1e308));
        // Out of range rounds to infinity, as Rust's parser does; "inf" and "NaN" are numbers.
        assert_eq!(parse_number::<f32>("1e39"), Some(f32::INFINITY));
        assert_eq!(parse_number::<f64>("-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_number::<f64>("NaN").is_some_and(f64::is_nan));
        for bad in ["", "1,5", "abc", "1.5.2", "0x1p3", "--1"] {
            assert_eq!(parse_number::<f64>(bad), None, "{bad:?}");
            assert_eq!(parse_number::<f32>(bad), None, "{bad:?}");
        }
    }

    fn layout(sink: &str, row_group_bytes: u64) -> ParquetLayout {
        let column = |key: &str, name: &str, kind| ParquetColumn {
            key: key.into(),
            name: name.into(),
            kind,
        };
        ParquetLayout {
            columns: vec![
                column("__time__", "time", ColumnType::Int64),
                column("__topic__", "topic", ColumnType::String),
                column("user", "user", ColumnType::String),
                column("ok", "ok", ColumnType::Boolean),
                column("status", "status", ColumnType::Int32),
                column("bytes", "bytes", ColumnType::Int64),
                column("ratio", "ratio", ColumnType::Float),
                column("latency", "latency", ColumnType::Double),
            ],
            row_group_bytes,
            sink: sink.into(),
        }
    }

    fn records() -> crate::model::LogRecords {
        RecordsBuilder::new()
            .group("web", "10.0.0.1", &[])
            .log(
                1_700_000_000,
                None,
                &[
                    ("user", "alice"),
                    ("ok", " TRUE "),
                    ("status", "200"),
                    ("bytes", "9223372036854775807"),
                    ("ratio", "0.5"),
                    ("latency", "1.25"),
                ],
            )
            .log(
                1_700_000_001,
                None,
                &[
                    ("user", ""),
                    ("ok", "maybe"),
                    ("status", "2xx"),
                    ("bytes", "1.5"),
                    ("ratio", "n/a"),
                    ("latency", ""),
                ],
            )
            .log(1_700_000_002, None, &[("ok", "0"), ("status", " -1 ")])
            .build()
    }

    fn nulls(sink: &str, column: &str) -> u64 {
        metrics()
            .archive_conversion_nulls
            .get_or_create(&ColumnLabels {
                sink: sink.into(),
                column: column.into(),
            })
            .get()
    }

    fn rows(file: Bytes) -> Vec<Vec<(String, Field)>> {
        let reader = SerializedFileReader::new(file).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().into_columns())
            .collect()
    }

    #[test]
    fn a_file_reads_back_with_its_schema_values_nulls_and_codec() {
        let sink = "parquet-read-back";
        let mut body = ParquetBody::new(layout(sink, 16 << 20), Compression::Snappy).unwrap();
        let records = records();
        body.append(records.iter()).unwrap();
        assert_eq!(body.logs(), 3);
        // Strings by length; int64 and double 8, int32, boolean and float 4; nulls nothing.
        let first = 8 + 3 + 5 + 4 + 4 + 8 + 4 + 8;
        let second = 8 + 3;
        let third = 8 + 3 + 4 + 4;
        assert_eq!(body.uncompressed_bytes(), first + second + third);
        let file = body.finish().unwrap();

        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let metadata = reader.metadata();
        let created_by = metadata.file_metadata().created_by().unwrap();
        assert_eq!(
            created_by,
            format!("siem-forwarder {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(metadata.file_metadata().version(), 1);
        assert_eq!(metadata.num_row_groups(), 1);
        let schema = metadata.file_metadata().schema_descr();
        let fields: Vec<_> = schema
            .columns()
            .iter()
            .map(|column| {
                let field = column.self_type();
                (
                    field.name().to_owned(),
                    field.get_physical_type(),
                    field.is_optional(),
                    column.logical_type_ref().cloned(),
                )
            })
            .collect();
        let string = Some(LogicalType::String);
        assert_eq!(
            fields,
            [
                ("time".to_owned(), Physical::INT64, true, None),
                (
                    "topic".to_owned(),
                    Physical::BYTE_ARRAY,
                    true,
                    string.clone()
                ),
                ("user".to_owned(), Physical::BYTE_ARRAY, true, string),
                ("ok".to_owned(), Physical::BOOLEAN, true, None),
                ("status".to_owned(), Physical::INT32, true, None),
                ("bytes".to_owned(), Physical::INT64, true, None),
                ("ratio".to_owned(), Physical::FLOAT, true, None),
                ("latency".to_owned(), Physical::DOUBLE, true, None),
            ]
        );
        for column in metadata.row_group(0).columns() {
            assert_eq!(column.compression(), Codec::SNAPPY);
        }

        let rows = rows(file);
        let values: Vec<Vec<Field>> = rows
            .into_iter()
            .map(|row| row.into_iter().map(|(_, value)| value).collect())
            .collect();
        let text = |value: &str| Field::Str(value.into());
        assert_eq!(
            values,
            [
                vec![
                    Field::Long(1_700_000_000),
                    text("web"),
                    text("alice"),
                    Field::Bool(true),
                    Field::Int(200),
                    Field::Long(i64::MAX),
                    Field::Float(0.5),
                    Field::Double(1.25),
                ],
                vec![
                    Field::Long(1_700_000_001),
                    text("web"),
                    text(""),
                    Field::Null,
                    Field::Null,
                    Field::Null,
                    Field::Null,
                    Field::Null,
                ],
                vec![
                    Field::Long(1_700_000_002),
                    text("web"),
                    Field::Null,
                    Field::Bool(false),
                    Field::Int(-1),
                    Field::Null,
                    Field::Null,
                    Field::Null,
                ],
            ]
        );
        // Failed conversions count; missing keys and strings do not.
        for (column, expected) in [
            ("time", 0),
            ("user", 0),
            ("ok", 1),
            ("status", 1),
            ("bytes", 1),
            ("ratio", 1),
            ("latency", 1),
        ] {
            assert_eq!(nulls(sink, column), expected, "{column}");
        }
    }

    #[test]
    fn every_codec_is_the_files_own() {
        for (compression, expected) in [
            (Compression::None, Codec::UNCOMPRESSED),
            (
                Compression::Zstd(3),
                Codec::ZSTD(ZstdLevel::try_new(3).unwrap()),
            ),
            (
                Compression::Gzip(6),
                Codec::GZIP(GzipLevel::try_new(6).unwrap()),
            ),
        ] {
            let mut body =
                ParquetBody::new(layout("parquet-codecs", 16 << 20), compression).unwrap();
            body.append(records().iter()).unwrap();
            let file = body.finish().unwrap();
            assert_eq!(&file[..4], b"PAR1");
            let reader = SerializedFileReader::new(file.clone()).unwrap();
            let chunk = reader.metadata().row_group(0).column(0).compression();
            // The reader does not learn the level from the file.
            assert_eq!(
                std::mem::discriminant(&chunk),
                std::mem::discriminant(&expected),
                "{compression:?}"
            );
            assert_eq!(rows(file).len(), 3);
        }
        assert_eq!(
            ParquetBody::new(layout("parquet-codecs", 1 << 20), Compression::Lz4)
                .err()
                .map(|error| error.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
    }

    #[test]
    fn a_row_group_is_written_at_row_group_bytes_and_memory_counts_the_unwritten_one() {
        let records = records();
        let mut body = ParquetBody::new(layout("parquet-groups", 60), Compression::None).unwrap();
        let empty = body.memory_bytes();
        body.append(records.iter().take(1)).unwrap();
        assert_eq!(body.uncompressed_bytes(), 44);
        assert_eq!(body.writer.flushed_row_groups().len(), 0, "44 < 60 bytes");
        let holding = body.memory_bytes();
        assert!(holding >= empty + 44, "{holding} vs {empty}");
        body.append(records.iter().skip(1)).unwrap();
        assert_eq!(body.writer.flushed_row_groups().len(), 1, "74 >= 60 bytes");
        assert_eq!(body.buffered, 0);
        body.append(records.iter().take(1)).unwrap();
        assert_eq!(body.uncompressed_bytes(), 74 + 44);
        let file = body.finish().unwrap();
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|group| group.num_rows())
            .collect();
        assert_eq!(groups, [3, 1]);
        let users: Vec<Field> = rows(file).into_iter().map(|row| row[2].1.clone()).collect();
        assert_eq!(
            users,
            [
                Field::Str("alice".into()),
                Field::Str(String::new()),
                Field::Null,
                Field::Str("alice".into())
            ]
        );
    }
}
