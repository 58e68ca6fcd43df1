//! The protobuf (proto2) wire format of `Log`, `LogGroup` and `LogGroupList`.
//!
//! Encoding goes through owned [`LogGroup`] values (producers: `put`, the generator).
//! Decoding walks the bytes once and records spans into a [`RecordsBuilder`]-like table, so a
//! pulled batch becomes [`LogRecords`] that borrow from the decompressed buffer without a
//! string allocation per field.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use crate::model::record::{is_text, FieldSpan, GroupSpans, LogRecords, RecordSpans, Span};

/// A log to encode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Log {
    /// Unix seconds.
    pub time: u32,
    /// Nanosecond part.
    pub time_ns: Option<u32>,
    /// Key/value contents in order.
    pub contents: Vec<(String, String)>,
}

/// A log group to encode: logs sharing topic, source and tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogGroup {
    /// The logs.
    pub logs: Vec<Log>,
    /// `__topic__`.
    pub topic: Option<String>,
    /// `__source__`.
    pub source: Option<String>,
    /// Tags (`__tag__:KEY`).
    pub tags: Vec<(String, String)>,
}

/// The bytes are not a valid message of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf: {0}")]
pub struct DecodeError(&'static str);

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes a length-delimited field whose body is produced by `body`, patching the length in.
fn put_message_field(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let length_at = out.len();
    out.push(0);
    let start = out.len();
    body(out);
    let length = out.len() - start;
    if length < 0x80 {
        out[length_at] = length as u8;
    } else {
        let mut prefix = Vec::with_capacity(5);
        put_varint(&mut prefix, length as u64);
        out.splice(length_at..length_at + 1, prefix);
    }
}

fn put_pair(out: &mut Vec<u8>, tag: u8, key: &str, value: &str) {
    put_message_field(out, tag, |out| {
        put_bytes_field(out, 0x0a, key.as_bytes());
        put_bytes_field(out, 0x12, value.as_bytes());
    });
}

impl LogGroup {
    /// Appends the `LogGroup` message bytes (a PutLogs body before compression).
    pub fn encode(&self, out: &mut Vec<u8>) {
        for log in &self.logs {
            put_message_field(out, 0x0a, |out| {
                out.push(0x08);
                put_varint(out, log.time.into());
                for (key, value) in &log.contents {
                    put_pair(out, 0x12, key, value);
                }
                if let Some(nanos) = log.time_ns {
                    out.push(0x25);
                    out.extend_from_slice(&nanos.to_le_bytes());
                }
            });
        }
        if let Some(topic) = &self.topic {
            put_bytes_field(out, 0x1a, topic.as_bytes());
        }
        if let Some(source) = &self.source {
            put_bytes_field(out, 0x22, source.as_bytes());
        }
        for (key, value) in &self.tags {
            put_pair(out, 0x32, key, value);
        }
    }

    /// The encoded `LogGroup` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends one `LogGroups` entry of a `LogGroupList` holding already-encoded `LogGroup` bytes.
/// A `LogGroupList` is just these entries back to back, so stored groups can be served as is.
pub fn append_list_entry(out: &mut Vec<u8>, log_group: &[u8]) {
    put_bytes_field(out, 0x0a, log_group);
}

/// Size of the list entry [`append_list_entry`] writes for a group of `group_len` bytes.
pub fn list_entry_len(group_len: usize) -> usize {
    let mut varint_len = 1;
    let mut value = group_len >> 7;
    while value > 0 {
        varint_len += 1;
        value >>= 7;
    }
    1 + varint_len + group_len
}

/// A cursor over protobuf bytes that knows its absolute offset in the whole buffer.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    base: usize,
}

enum Value {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(usize, usize),
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Self {
            bytes,
            position: 0,
            base,
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Tags and most lengths fit in one byte.
        if let Some(&byte) = self.bytes.get(self.position) {
            if byte < 0x80 {
                self.position += 1;
                return Ok(u64::from(byte));
            }
        }
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.position)
                .ok_or(DecodeError("truncated varint"))?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint too long"))
    }

    fn take(&mut self, len: usize) -> Result<usize, DecodeError> {
        let start = self.position;
        let end = start
            .checked_add(len)
            .ok_or(DecodeError("length overflow"))?;
        if end > self.bytes.len() {
            return Err(DecodeError("field runs past the end"));
        }
        self.position = end;
        Ok(start)
    }

    /// The next `(field number, value)`, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value)>, DecodeError> {
        if self.position == self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len =
                    usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
                let start = self.take(len)?;
                Value::Bytes(self.base + start, len)
            }
            5 => {
                let start = self.take(4)?;
                let raw: [u8; 4] = self.bytes[start..start + 4].try_into().expect("4 bytes");
                Value::Fixed32(u32::from_le_bytes(raw))
            }
            _ => return Err(DecodeError("unsupported wire type")),
        };
        Ok(Some((key >> 3, value)))
    }
}

/// Receives the parts of log groups as they are decoded.
trait GroupVisitor {
    fn begin_group(&mut self);
    fn log(&mut self, time: u32, time_ns: Option<u32>, fields: &[FieldSpan]);
    fn end_group(&mut self, topic: Span, source: Span, tags: &[FieldSpan]);
}

fn decode_pair(buffer: &[u8], start: usize, len: usize) -> Result<FieldSpan, DecodeError> {
    let mut reader = Reader::new(&buffer[start..start + len], start);
    let (mut key, mut value) = (None, None);
    while let Some((number, field)) = reader.field()? {
        match (number, field) {
            (1, Value::Bytes(s, l)) => key = Some(Span::new(s, l)),
            (2, Value::Bytes(s, l)) => value = Some(Span::new(s, l)),
            (1 | 2, _) => return Err(DecodeError("key/value is not a string")),
            _ => {}
        }
    }
    match (key, value) {
        (Some(key), Some(value)) => Ok(FieldSpan { key, value }),
        _ => Err(DecodeError("key/value pair misses a required field")),
    }
}

fn decode_log(
    buffer: &[u8],
    start: usize,
    len: usize,
    fields: &mut Vec<FieldSpan>,
) -> Result<(u32, Option<u32>), DecodeError> {
    let mut reader = Reader::new(&buffer[start..start + len], start);
    let (mut time, mut time_ns) = (None, None);
    while let Some((number, field)) = reader.field()? {
        match (number, field) {
            (1, Value::Varint(value)) => {
                time = Some(u32::try_from(value).map_err(|_| DecodeError("log time out of range"))?)
            }
            (2, Value::Bytes(s, l)) => fields.push(decode_pair(buffer, s, l)?),
            (4, Value::Fixed32(value)) => time_ns = Some(value),
            (1 | 2 | 4, _) => return Err(DecodeError("log field has the wrong wire type")),
            _ => {}
        }
    }
    let time = time.ok_or(DecodeError("log misses its time"))?;
    Ok((time, time_ns.filter(|nanos| *nanos != 0)))
}

/// Decodes one `LogGroup` located at `buffer[start..start + len]`.
fn decode_group(
    buffer: &[u8],
    start: usize,
    len: usize,
    visitor: &mut impl GroupVisitor,
    scratch: &mut Vec<FieldSpan>,
) -> Result<(), DecodeError> {
    visitor.begin_group();
    let mut reader = Reader::new(&buffer[start..start + len], start);
    let (mut topic, mut source) = (Span::default(), Span::default());
    let mut tags = Vec::new();
    while let Some((number, field)) = reader.field()? {
        match (number, field) {
            (1, Value::Bytes(s, l)) => {
                scratch.clear();
                let (time, time_ns) = decode_log(buffer, s, l, scratch)?;
                visitor.log(time, time_ns, scratch);
            }
            (3, Value::Bytes(s, l)) => topic = Span::new(s, l),
            (4, Value::Bytes(s, l)) => source = Span::new(s, l),
            (6, Value::Bytes(s, l)) => tags.push(decode_pair(buffer, s, l)?),
            (2 | 5, Value::Bytes(..)) => {}
            (1..=6, _) => return Err(DecodeError("log group field has the wrong wire type")),
            _ => {}
        }
    }
    visitor.end_group(topic, source, &tags);
    Ok(())
}

fn decode_list(buffer: &[u8], visitor: &mut impl GroupVisitor) -> Result<usize, DecodeError> {
    let mut reader = Reader::new(buffer, 0);
    let mut scratch = Vec::new();
    let mut groups = 0;
    while let Some((number, field)) = reader.field()? {
        match (number, field) {
            (1, Value::Bytes(s, l)) => {
                decode_group(buffer, s, l, visitor, &mut scratch)?;
                groups += 1;
            }
            (1, _) => return Err(DecodeError("log group list entry is not a message")),
            _ => {}
        }
    }
    Ok(groups)
}

/// Builds span tables while decoding, checking each log's text while its bytes are in cache.
struct SpanCollector<'b> {
    buffer: &'b [u8],
    groups: Vec<GroupSpans>,
    records: Vec<RecordSpans>,
    tags: Vec<FieldSpan>,
    fields: Vec<FieldSpan>,
    /// False once a span was found that is not valid UTF-8.
    all_text: bool,
}

/// Entries per MiB of decoded buffer in the groups, records, tags and fields tables of the
/// last decoded batch. The next batch's tables are allocated once at that density (an eighth to
/// spare) instead of growing by doubling, which allocates, copies and frees a table of each
/// size on the way to a megabyte: fewer large allocations come and go during a catch-up.
static TABLE_DENSITY: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

/// An empty table with room for `buffer_len` bytes' worth of entries at `density` entries per
/// MiB, but for no more than a quarter of the buffer's size in bytes (the density is the last
/// batch's, perhaps another logstore's; a batch denser than that grows its table as needed).
fn table_for<T>(buffer_len: usize, density: &AtomicUsize) -> Vec<T> {
    let expected = (buffer_len as u64).saturating_mul(density.load(Ordering::Relaxed) as u64) >> 20;
    let capacity = usize::try_from(expected + expected / 8).unwrap_or(usize::MAX);
    Vec::with_capacity(capacity.min(buffer_len / 4 / std::mem::size_of::<T>().max(1)))
}

/// Records the density of the tables just built from `buffer_len` bytes.
fn record_table_density(buffer_len: usize, lengths: [usize; 4]) {
    if buffer_len == 0 {
        return;
    }
    for (density, length) in TABLE_DENSITY.iter().zip(lengths) {
        let per_mib = ((length as u64) << 20).div_ceil(buffer_len as u64);
        density.store(
            usize::try_from(per_mib).unwrap_or(usize::MAX),
            Ordering::Relaxed,
        );
    }
}

impl<'b> SpanCollector<'b> {
    fn new(buffer: &'b [u8]) -> Self {
        let [groups, records, tags, fields] = &TABLE_DENSITY;
        Self {
            buffer,
            groups: table_for(buffer.len(), groups),
            records: table_for(buffer.len(), records),
            tags: table_for(buffer.len(), tags),
            fields: table_for(buffer.len(), fields),
            all_text: true,
        }
    }

    fn check_text(&mut self, spans: impl IntoIterator<Item = Span>) {
        let buffer = self.buffer;
        self.all_text = self.all_text
            && spans
                .into_iter()
                .all(|span| buffer.get(span.range()).is_some_and(is_text));
    }
}

impl GroupVisitor for SpanCollector<'_> {
    fn begin_group(&mut self) {}

    fn log(&mut self, time: u32, time_ns: Option<u32>, fields: &[FieldSpan]) {
        self.check_text(fields.iter().flat_map(|pair| [pair.key, pair.value]));
        let first = self.fields.len() as u32;
        self.fields.extend_from_slice(fields);
        self.records.push(RecordSpans {
            time,
            time_ns,
            group: self.groups.len() as u32,
            fields: (first, self.fields.len() as u32),
        });
    }

    fn end_group(&mut self, topic: Span, source: Span, tags: &[FieldSpan]) {
        let pairs = tags.iter().flat_map(|pair| [pair.key, pair.value]);
        self.check_text([topic, source].into_iter().chain(pairs));
        let first = self.tags.len() as u32;
        self.tags.extend_from_slice(tags);
        self.groups.push(GroupSpans {
            topic,
            source,
            tags: (first, self.tags.len() as u32),
        });
    }
}

/// Counts logs without keeping anything.
#[derive(Default)]
struct LogCounter {
    logs: usize,
}

impl GroupVisitor for LogCounter {
    fn begin_group(&mut self) {}
    fn log(&mut self, _: u32, _: Option<u32>, _: &[FieldSpan]) {
        self.logs += 1;
    }
    fn end_group(&mut self, _: Span, _: Span, _: &[FieldSpan]) {}
}

/// Decodes a `LogGroupList` into records that view `buffer` in place.
///
/// Strings that are not valid UTF-8 have their bad bytes replaced by `?` (see
/// [`LogRecords::from_parts`]), so a producer's bad bytes never stop a shard.
///
/// # Errors
///
/// Returns [`DecodeError`] when the bytes are not a valid `LogGroupList`.
pub fn decode_log_group_list(buffer: Bytes) -> Result<LogRecords, DecodeError> {
    let mut spans = SpanCollector::new(&buffer);
    decode_list(&buffer, &mut spans)?;
    let SpanCollector {
        groups,
        records,
        tags,
        fields,
        all_text,
        ..
    } = spans;
    record_table_density(
        buffer.len(),
        [groups.len(), records.len(), tags.len(), fields.len()],
    );
    let records = if all_text {
        // SAFETY: `SpanCollector` checked every topic, source, tag and field span with
        // `is_text` as it collected them, and these are all the spans of the tables.
        unsafe { LogRecords::from_parts_with_checked_text(buffer, groups, records, tags, fields) }
    } else {
        LogRecords::from_parts(buffer, groups, records, tags, fields)
    };
    records.map_err(|_| DecodeError("inconsistent spans"))
}

/// Checks that `bytes` is one valid `LogGroup` and returns how many logs it holds.
///
/// # Errors
///
/// Returns [`DecodeError`] when the bytes are not a valid `LogGroup`.
pub fn count_logs_in_group(bytes: &[u8]) -> Result<usize, DecodeError> {
    let mut counter = LogCounter::default();
    decode_group(bytes, 0, bytes.len(), &mut counter, &mut Vec::new())?;
    Ok(counter.logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_tables_are_sized_from_the_last_density_within_a_quarter_of_the_buffer() {
        let density = AtomicUsize::new(0);
        assert_eq!(table_for::<FieldSpan>(1 << 20, &density).capacity(), 0);
        density.store(1000, Ordering::Relaxed);
        assert_eq!(table_for::<FieldSpan>(4 << 20, &density).capacity(), 4500);
        density.store(usize::MAX, Ordering::Relaxed);
        let capped = table_for::<FieldSpan>(1 << 20, &density).capacity();
        assert_eq!(capped, (1 << 20) / 4 / std::mem::size_of::<FieldSpan>());
    }

    const SPEC_LIST_HEX: &str = "0a2c0a130880e2cfaa0612060a016b120176257b0000001a01742208\
                                 31302e302e302e3132080a02746b12027476";

    fn hex(text: &str) -> Vec<u8> {
        let clean: String = text.split_whitespace().collect();
        (0..clean.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap())
            .collect()
    }

    fn spec_group() -> LogGroup {
        LogGroup {
            logs: vec![Log {
                time: 1_700_000_000,
                time_ns: Some(123),
                contents: vec![("k".into(), "v".into())],
            }],
            topic: Some("t".into()),
            source: Some("10.0.0.1".into()),
            tags: vec![("tk".into(), "tv".into())],
        }
    }

    #[test]
    fn encodes_the_spec_vector() {
        let mut list = Vec::new();
        append_list_entry(&mut list, &spec_group().to_bytes());
        assert_eq!(list, hex(SPEC_LIST_HEX));
        assert_eq!(list.len(), 46);
        assert_eq!(list_entry_len(44), 46);
    }

    #[test]
    fn decodes_the_spec_vector_into_views() {
        let records = decode_log_group_list(Bytes::from(hex(SPEC_LIST_HEX))).unwrap();
        assert_eq!(records.len(), 1);
        let log = records.get(0).unwrap();
        assert_eq!((log.time, log.time_ns), (1_700_000_000, Some(123)));
        assert_eq!((log.topic, log.source), ("t", "10.0.0.1"));
        assert_eq!(log.tags.iter().collect::<Vec<_>>(), [("tk", "tv")]);
        assert_eq!(log.fields.iter().collect::<Vec<_>>(), [("k", "v")]);
        assert_eq!(count_logs_in_group(&spec_group().to_bytes()), Ok(1));
    }

    #[test]
    fn large_groups_round_trip() {
        let group = LogGroup {
            logs: (0..300)
                .map(|i| Log {
                    time: i,
                    time_ns: None,
                    contents: vec![
                        ("key".into(), "x".repeat(i as usize)),
                        ("é".into(), "ü".into()),
                    ],
                })
                .collect(),
            topic: None,
            source: Some("s".into()),
            tags: vec![],
        };
        let mut list = Vec::new();
        for _ in 0..3 {
            append_list_entry(&mut list, &group.to_bytes());
        }
        assert_eq!(list.len(), 3 * list_entry_len(group.to_bytes().len()));
        let records = decode_log_group_list(Bytes::from(list)).unwrap();
        assert_eq!(records.len(), 900);
        assert_eq!(records.group_count(), 3);
        let log = records.get(299 + 300).unwrap();
        assert_eq!(log.fields.get("key").unwrap().len(), 299);
        assert_eq!(log.fields.get("é"), Some("ü"));
        assert_eq!(log.topic, "");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut group = spec_group().to_bytes();
        let value_at = group
            .windows(3)
            .position(|w| w == [0x12, 0x01, b'v'])
            .unwrap()
            + 2;
        group[value_at] = 0xff;
        let mut list = Vec::new();
        append_list_entry(&mut list, &group);
        let records = decode_log_group_list(Bytes::from(list)).unwrap();
        assert_eq!(records.get(0).unwrap().fields.get("k"), Some("?"));
    }

    #[test]
    fn invalid_utf8_in_group_fields_is_replaced_too() {
        let mut group = LogGroup {
            topic: Some("t~".into()),
            source: Some("s~".into()),
            tags: vec![("tk~".into(), "tv~".into())],
            ..spec_group()
        }
        .to_bytes();
        for byte in group.iter_mut().filter(|byte| **byte == b'~') {
            *byte = 0xfe;
        }
        let mut list = Vec::new();
        append_list_entry(&mut list, &group);
        let records = decode_log_group_list(Bytes::from(list)).unwrap();
        let log = records.get(0).unwrap();
        assert_eq!((log.topic, log.source), ("t?", "s?"));
        assert_eq!(log.tags.iter().collect::<Vec<_>>(), [("tk?", "tv?")]);
        assert_eq!(log.fields.get("k"), Some("v"));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let mut truncated = hex(SPEC_LIST_HEX);
        truncated.truncate(20);
        assert!(decode_log_group_list(Bytes::from(truncated)).is_err());
        assert!(
            count_logs_in_group(b"\x0a\x02\x12\x00").is_err(),
            "log without time"
        );
        assert!(count_logs_in_group(&[0xff; 8]).is_err());
    }
}
