//! The PullLogs body path: decompression with a declared raw size, then the `LogGroupList`
//! decoder, then every record, tag and field read back as text.
//!
//! Input: one mode byte. Its low two bits pick the compression (none, lz4, zstd, deflate).
//! With bit 2 set, the rest is a `LogGroupList` that the check compresses itself (so the
//! decoder sees every mutation) and declares at its true size; otherwise four little-endian
//! bytes declare the raw size and the rest is the body as received.

use bytes::Bytes;
use siem_forwarder::model::{LogRecord, LogRecords};
use siem_forwarder::source::compression::Compression;
use siem_forwarder::source::protobuf::decode_log_group_list;

use super::input::Input;

const KINDS: [Compression; 4] = [
    Compression::None,
    Compression::Lz4,
    Compression::Zstd,
    Compression::Deflate,
];

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let kind = KINDS[usize::from(mode & 3)];
    let (body, raw_size) = if mode & 4 != 0 {
        let raw = input.rest();
        let body = kind.compress(raw);
        let round_trip = kind
            .decompress(&body, raw.len())
            .unwrap_or_else(|error| panic!("{kind:?} does not round-trip: {error}"));
        assert_eq!(round_trip, raw, "{kind:?} round trip changed the bytes");
        (body, raw.len())
    } else {
        let raw_size = input.u32() as usize;
        (input.rest().to_vec(), raw_size)
    };
    let Ok(raw) = kind.decompress(&body, raw_size) else {
        return;
    };
    if kind != Compression::None {
        assert_eq!(
            raw.len(),
            raw_size,
            "{kind:?} body accepted at the wrong size"
        );
    }
    if let Ok(records) = decode_log_group_list(Bytes::from(raw)) {
        read_everything(&records);
    }
}

/// Reads every record through each accessor, checking the text the views hand out.
fn read_everything(records: &LogRecords) {
    assert!(records.group_count() <= records.buffer_len().max(1));
    assert_eq!(records.iter().len(), records.len());
    let mut visited = 0;
    for record in records.iter() {
        visited += 1;
        read_record(&record);
    }
    assert_eq!(visited, records.len());
    assert!(records.get(records.len()).is_none());
}

fn read_record(record: &LogRecord<'_>) {
    text(record.topic);
    text(record.source);
    if let Some(nanos) = record.time_ns {
        assert_ne!(nanos, 0, "a zero nanosecond part is reported as absent");
    }
    for fields in [record.tags, record.fields] {
        assert_eq!(fields.iter().len(), fields.len());
        assert_eq!(fields.is_empty(), fields.iter().next().is_none());
        for (key, value) in fields.iter() {
            text(key);
            text(value);
            let last = fields.get(key).expect("a key that is present is found");
            assert!(fields.iter().rev().any(|(k, v)| k == key && v == last));
        }
        assert!(fields.keys().eq(fields.iter().map(|(key, _)| key)));
        let extent = fields.extent();
        for (key, value) in fields.iter() {
            let inside = |part: &str| {
                let (start, end) = (
                    extent.as_ptr() as usize,
                    extent.as_ptr() as usize + extent.len(),
                );
                let at = part.as_ptr() as usize;
                part.is_empty() || (start <= at && at + part.len() <= end)
            };
            assert!(inside(key) && inside(value), "extent misses a pair");
        }
    }
    for (key, value) in record.fields.iter() {
        assert_eq!(record.lookup(key), record.fields.get(key).or(Some(value)));
    }
    assert!(record.lookup("__topic__").is_some());
}

/// Text handed out by a view must be UTF-8: the views skip the check when reading.
fn text(value: &str) {
    assert!(
        std::str::from_utf8(value.as_bytes()).is_ok(),
        "a view handed out invalid UTF-8"
    );
    std::hint::black_box(value.chars().count());
}
