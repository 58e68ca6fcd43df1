//! Log records stored as spans into one shared buffer.
//!
//! A pulled batch is decompressed into one buffer; decoding it records byte spans for every
//! topic, source, tag and content instead of allocating a string per field. [`LogRecords`]
//! owns the buffer and the span tables; [`LogRecord`] is a borrowed view of one log.

use bytes::Bytes;

/// A byte range `[start, start + len)` of the records buffer, always on UTF-8 boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Span {
    /// Creates a span.
    ///
    /// # Panics
    ///
    /// When `start` or `len` does not fit in 32 bits: record buffers are bounded far below
    /// 4 GiB (a pull's decompressed size is capped), so this would be a bug, never data
    /// silently cut.
    pub fn new(start: usize, len: usize) -> Self {
        let narrow = |value: usize| u32::try_from(value).expect("record buffers stay below 4 GiB");
        Self {
            start: narrow(start),
            len: narrow(len),
        }
    }

    /// The span as a range of buffer indices.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// A key/value pair (a log content or a log-group tag) as two spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldSpan {
    /// The key.
    pub key: Span,
    /// The value.
    pub value: Span,
}

/// Per log-group data shared by the logs of that group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupSpans {
    /// `__topic__`, empty when unset.
    pub topic: Span,
    /// `__source__`, empty when unset.
    pub source: Span,
    /// Index range of this group's tags in the tag table.
    pub tags: (u32, u32),
}

/// Per log data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordSpans {
    /// Unix seconds.
    pub time: u32,
    /// Nanosecond part, when the producer set one.
    pub time_ns: Option<u32>,
    /// Index of the log group the log belongs to.
    pub group: u32,
    /// Index range of this log's contents in the field table.
    pub fields: (u32, u32),
}

/// The logs of one batch: a buffer plus span tables. Cheap to share behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct LogRecords {
    buffer: Bytes,
    groups: Vec<GroupSpans>,
    records: Vec<RecordSpans>,
    tags: Vec<FieldSpan>,
    fields: Vec<FieldSpan>,
}

/// One log, borrowed from its [`LogRecords`].
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    /// Unix seconds (`__time__`).
    pub time: u32,
    /// Nanosecond part of the time (`__time_ns_part__`), when set.
    pub time_ns: Option<u32>,
    /// `__topic__` of the log group, empty when unset.
    pub topic: &'a str,
    /// `__source__` of the log group, empty when unset.
    pub source: &'a str,
    /// Tags of the log group (`__tag__:KEY`), in wire order.
    pub tags: Fields<'a>,
    /// The log's contents, in wire order.
    pub fields: Fields<'a>,
}

/// Iterable key/value pairs of a record, borrowed from the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    buffer: &'a [u8],
    spans: &'a [FieldSpan],
}

impl<'a> Fields<'a> {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The pairs in order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&'a str, &'a str)> + ExactSizeIterator + 'a {
        let buffer = self.buffer;
        self.spans
            .iter()
            .map(move |pair| (text(buffer, pair.key), text(buffer, pair.value)))
    }

    /// The value of the last pair named `key` (later pairs win, as in the flattened form).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        // Compare raw key bytes so that only the matching value is turned into text.
        let buffer = self.buffer;
        self.spans
            .iter()
            .rev()
            .find(|pair| &buffer[pair.key.range()] == key.as_bytes())
            .map(|pair| text(buffer, pair.value))
    }

    /// The keys in order (cheaper than [`Fields::iter`] when values are not needed).
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &'a str> + ExactSizeIterator + 'a {
        let buffer = self.buffer;
        self.spans.iter().map(move |pair| text(buffer, pair.key))
    }

    /// The buffer bytes from the first to the last byte of all keys and values. Every key and
    /// value lies inside it, along with whatever lies between them (the wire framing of a
    /// pulled batch), so one scan of it can show that a byte occurs in none of the pairs.
    pub fn extent(&self) -> &'a [u8] {
        let ends = self.spans.iter().flat_map(|pair| [pair.key, pair.value]);
        let start = ends.clone().map(|span| span.start).min().unwrap_or(0);
        let end = ends.map(|span| span.start + span.len).max().unwrap_or(0);
        &self.buffer[start as usize..end.max(start) as usize]
    }
}

impl<'a> IntoIterator for Fields<'a> {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn ExactSizeIterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

fn text(buffer: &[u8], span: Span) -> &str {
    let bytes = &buffer[span.range()];
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: `LogRecords` are only built by `from_parts`, which checks (and if needed
    // repairs) that every span of its buffer is UTF-8, or by `from_parts_with_checked_text`,
    // whose caller guarantees it; the buffer is immutable `Bytes` and every view borrows the
    // `LogRecords` it came from. Checking again on every read cost a tenth of the
    // forwarder's CPU.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

impl<'a> LogRecord<'a> {
    /// Looks a field up by its flattened name: `__topic__`, `__source__`, `__tag__:NAME`, or a
    /// content key (contents win over the reserved names, as in the flattened form).
    pub fn lookup(&self, name: &str) -> Option<&'a str> {
        if let Some(value) = self.fields.get(name) {
            return Some(value);
        }
        match name {
            "__topic__" => Some(self.topic),
            "__source__" => Some(self.source),
            _ => name
                .strip_prefix("__tag__:")
                .and_then(|tag| self.tags.get(tag)),
        }
    }
}

impl LogRecords {
    /// Assembles records from a buffer and span tables built by a decoder. Text that is not
    /// valid UTF-8 has its bad bytes replaced by `?` (in a copy of the buffer, made only
    /// then), so a producer's bad bytes never stop a shard.
    ///
    /// # Errors
    ///
    /// Fails when a span lies outside the buffer or an index range points outside its table,
    /// so a view never panics later.
    pub fn from_parts(
        buffer: Bytes,
        groups: Vec<GroupSpans>,
        records: Vec<RecordSpans>,
        tags: Vec<FieldSpan>,
        fields: Vec<FieldSpan>,
    ) -> Result<Self, InvalidSpans> {
        check_tables(buffer.len(), &groups, &records, &tags, &fields)?;
        let all_text =
            text_spans(&groups, &tags, &fields).all(|span| is_text(&buffer[span.range()]));
        let buffer = if all_text {
            buffer
        } else {
            let mut repaired = buffer.to_vec();
            // Spans given by a caller may overlap, and repairing one can cut a character of
            // another that was already fine: repeat until every span checks. Each pass that
            // finds a bad span turns at least one non-ASCII byte into `?`, so this ends.
            while !text_spans(&groups, &tags, &fields).all(|span| is_text(&repaired[span.range()]))
            {
                for span in text_spans(&groups, &tags, &fields) {
                    replace_invalid_utf8(&mut repaired[span.range()]);
                }
            }
            Bytes::from(repaired)
        };
        // SAFETY: every text span was checked above (after the last repair, when one was
        // needed), and the buffer is not changed again.
        unsafe { Self::from_parts_with_checked_text(buffer, groups, records, tags, fields) }
    }

    /// [`LogRecords::from_parts`] for a decoder that already checked the text with
    /// [`is_text`] while the bytes were in the CPU's cache: a second pass over a pulled batch
    /// of several MiB costs more than the decoding itself. Spans and ranges are still checked.
    ///
    /// # Safety
    ///
    /// Every topic, source, tag key, tag value, field key and field value span must be valid
    /// UTF-8 in `buffer`: views read them without checking again.
    ///
    /// # Errors
    ///
    /// As [`LogRecords::from_parts`].
    pub unsafe fn from_parts_with_checked_text(
        buffer: Bytes,
        groups: Vec<GroupSpans>,
        records: Vec<RecordSpans>,
        tags: Vec<FieldSpan>,
        fields: Vec<FieldSpan>,
    ) -> Result<Self, InvalidSpans> {
        check_tables(buffer.len(), &groups, &records, &tags, &fields)?;
        debug_assert!(text_spans(&groups, &tags, &fields)
            .all(|span| std::str::from_utf8(&buffer[span.range()]).is_ok()));
        Ok(Self {
            buffer,
            groups,
            records,
            tags,
            fields,
        })
    }

    /// Number of logs.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are no logs.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Number of log groups the logs came from.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Size of the underlying buffer in bytes (the raw, uncompressed size of the batch).
    pub fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    /// The log at `index`.
    pub fn get(&self, index: usize) -> Option<LogRecord<'_>> {
        let record = self.records.get(index)?;
        let group = self.groups[record.group as usize];
        let buffer = &self.buffer[..];
        Some(LogRecord {
            time: record.time,
            time_ns: record.time_ns,
            topic: text(buffer, group.topic),
            source: text(buffer, group.source),
            tags: Fields {
                buffer,
                spans: &self.tags[group.tags.0 as usize..group.tags.1 as usize],
            },
            fields: Fields {
                buffer,
                spans: &self.fields[record.fields.0 as usize..record.fields.1 as usize],
            },
        })
    }

    /// All logs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = LogRecord<'_>> + '_ {
        (0..self.records.len()).map(move |index| self.get(index).expect("index in range"))
    }
}

/// Every text span of the tables: topics, sources, and the keys and values of tags and fields.
fn text_spans<'t>(
    groups: &'t [GroupSpans],
    tags: &'t [FieldSpan],
    fields: &'t [FieldSpan],
) -> impl Iterator<Item = Span> + 't {
    groups
        .iter()
        .flat_map(|group| [group.topic, group.source])
        .chain(
            tags.iter()
                .chain(fields)
                .flat_map(|pair| [pair.key, pair.value]),
        )
}

/// Checks that every span lies in a buffer of `buffer_len` bytes and every index range in its
/// table.
fn check_tables(
    buffer_len: usize,
    groups: &[GroupSpans],
    records: &[RecordSpans],
    tags: &[FieldSpan],
    fields: &[FieldSpan],
) -> Result<(), InvalidSpans> {
    let in_bounds = text_spans(groups, tags, fields).all(|span| span.range().end <= buffer_len);
    let ranges_ok = groups
        .iter()
        .all(|g| g.tags.0 <= g.tags.1 && g.tags.1 as usize <= tags.len())
        && records.iter().all(|r| {
            (r.group as usize) < groups.len()
                && r.fields.0 <= r.fields.1
                && r.fields.1 as usize <= fields.len()
        });
    if in_bounds && ranges_ok {
        Ok(())
    } else {
        Err(InvalidSpans)
    }
}

/// True when `bytes` is valid UTF-8. Most log text is ASCII, which is checked first because
/// that is faster than full validation.
pub fn is_text(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// Replaces every byte of an invalid UTF-8 sequence with `?`, keeping the length.
fn replace_invalid_utf8(mut text: &mut [u8]) {
    loop {
        match std::str::from_utf8(text) {
            Ok(_) => return,
            Err(error) => {
                let bad_start = error.valid_up_to();
                let bad_len = error.error_len().unwrap_or(text.len() - bad_start);
                text[bad_start..bad_start + bad_len].fill(b'?');
                text = &mut text[bad_start + bad_len..];
            }
        }
    }
}

/// A span table did not match its buffer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("record spans do not match their buffer")]
pub struct InvalidSpans;

/// Builds [`LogRecords`] from owned strings: for tests, examples, generators and custom sources.
///
/// ```
/// use siem_forwarder::model::RecordsBuilder;
/// let records = RecordsBuilder::new()
///     .group("audit", "10.0.0.1", &[("region", "cn-hangzhou")])
///     .log(1_700_000_000, Some(5), &[("user", "alice"), ("action", "login")])
///     .build();
/// let log = records.get(0).unwrap();
/// assert_eq!(log.fields.get("user"), Some("alice"));
/// assert_eq!(log.lookup("__tag__:region"), Some("cn-hangzhou"));
/// ```
#[derive(Debug, Default)]
pub struct RecordsBuilder {
    buffer: Vec<u8>,
    groups: Vec<GroupSpans>,
    records: Vec<RecordSpans>,
    tags: Vec<FieldSpan>,
    fields: Vec<FieldSpan>,
}

impl RecordsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn push_text(&mut self, text: &str) -> Span {
        let span = Span::new(self.buffer.len(), text.len());
        self.buffer.extend_from_slice(text.as_bytes());
        span
    }

    fn push_pair(&mut self, key: &str, value: &str) -> FieldSpan {
        FieldSpan {
            key: self.push_text(key),
            value: self.push_text(value),
        }
    }

    /// Starts a log group; following [`RecordsBuilder::log`] calls belong to it.
    pub fn group(mut self, topic: &str, source: &str, tags: &[(&str, &str)]) -> Self {
        let topic = self.push_text(topic);
        let source = self.push_text(source);
        let first_tag = self.tags.len() as u32;
        for (key, value) in tags {
            let pair = self.push_pair(key, value);
            self.tags.push(pair);
        }
        self.groups.push(GroupSpans {
            topic,
            source,
            tags: (first_tag, self.tags.len() as u32),
        });
        self
    }

    /// Adds a log to the current group (an empty group is started when there is none).
    pub fn log(mut self, time: u32, time_ns: Option<u32>, fields: &[(&str, &str)]) -> Self {
        if self.groups.is_empty() {
            self = self.group("", "", &[]);
        }
        let first_field = self.fields.len() as u32;
        for (key, value) in fields {
            let pair = self.push_pair(key, value);
            self.fields.push(pair);
        }
        self.records.push(RecordSpans {
            time,
            time_ns,
            group: (self.groups.len() - 1) as u32,
            fields: (first_field, self.fields.len() as u32),
        });
        self
    }

    /// Finishes the records.
    pub fn build(self) -> LogRecords {
        LogRecords::from_parts(
            Bytes::from(self.buffer),
            self.groups,
            self.records,
            self.tags,
            self.fields,
        )
        .expect("spans built from owned strings are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_round_trips_groups_and_logs() {
        let records = RecordsBuilder::new()
            .group("t1", "s1", &[("tk", "tv")])
            .log(10, None, &[("a", "1"), ("b", "2")])
            .log(11, Some(7), &[])
            .group("t2", "", &[])
            .log(12, None, &[("__topic__", "override"), ("é", "ü")])
            .build();
        assert_eq!(records.len(), 3);
        assert_eq!(records.group_count(), 2);
        let first = records.get(0).unwrap();
        assert_eq!(first.topic, "t1");
        assert_eq!(
            first.fields.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2")]
        );
        assert_eq!(first.lookup("__tag__:tk"), Some("tv"));
        let second = records.get(1).unwrap();
        assert_eq!(second.time_ns, Some(7));
        assert!(second.fields.is_empty());
        let third = records.get(2).unwrap();
        assert_eq!(third.lookup("__topic__"), Some("override"));
        assert_eq!(third.lookup("__tag__:tk"), None);
        assert_eq!(third.fields.get("é"), Some("ü"));
    }

    #[test]
    fn extent_covers_every_key_and_value() {
        let records = RecordsBuilder::new()
            .group("t", "s", &[])
            .log(1, None, &[("a", "xy"), ("b|", "z")])
            .log(2, None, &[])
            .build();
        let fields = records.get(0).unwrap().fields;
        assert_eq!(fields.extent(), b"axyb|z");
        assert!(records.get(1).unwrap().fields.extent().is_empty());
    }

    #[test]
    fn overlapping_spans_are_all_valid_text_after_repair() {
        // "é" is C3 A9. The lone A9 is repaired to `?`, which cuts the "é" that the first
        // span holds: that span must be repaired too, never read as broken UTF-8.
        let records = LogRecords::from_parts(
            Bytes::from_static("é".as_bytes()),
            vec![GroupSpans::default()],
            vec![RecordSpans {
                fields: (0, 1),
                ..RecordSpans::default()
            }],
            vec![],
            vec![FieldSpan {
                key: Span::new(0, 2),
                value: Span::new(1, 1),
            }],
        )
        .unwrap();
        let record = records.get(0).unwrap();
        let (key, value) = record.fields.iter().next().unwrap();
        assert!(std::str::from_utf8(key.as_bytes()).is_ok());
        assert_eq!((key, value), ("??", "?"));
    }

    #[test]
    fn spans_outside_the_buffer_are_rejected() {
        let bad = LogRecords::from_parts(
            Bytes::from_static(b"abc"),
            vec![GroupSpans {
                topic: Span::new(2, 5),
                ..GroupSpans::default()
            }],
            vec![],
            vec![],
            vec![],
        );
        assert_eq!(bad.unwrap_err(), InvalidSpans);
    }
}
