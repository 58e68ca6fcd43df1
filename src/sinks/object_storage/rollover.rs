//! The open files of one shard: routing each batch's logs to the file of their partition,
//! splitting the batch's ack across the files that hold its logs, and deciding when a file is
//! sealed (size, events, age, the consumer's per-shard batch limit, a cursor gap, stop).
//! Synchronous; time comes in as arguments, so the rules are tested under a paused clock.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::encode::{Compression, Format, ObjectBody};
use super::key::{KeyTemplate, ObjectId};
use super::spool::Body;
use crate::model::ack::AckToken;
use crate::model::batch::{Batch, ShardKey};

/// When files are sealed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Encoded bytes before compression.
    pub max_bytes: u64,
    /// Time since the file was opened.
    pub max_age: Duration,
    /// Logs per file; 0 for no limit.
    pub max_events: u64,
    /// Unacknowledged batches of one shard held in open files: the consumer pulls no more
    /// from a shard while this many of its batches wait, so its files are sealed then.
    pub max_batches: usize,
}

/// Which time a log's partition is rendered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTime {
    /// When its file was opened (one file per shard).
    Receive,
    /// The log's own `__time__` (one file per shard and partition).
    Log,
}

/// Everything needed to route, encode and name.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Object names.
    pub keys: KeyTemplate,
    /// Partition by open time or log time.
    pub partition_time: PartitionTime,
    /// How each log is written.
    pub format: Format,
    /// Body compression.
    pub compression: Compression,
    /// Seal rules.
    pub limits: Limits,
}

/// Why a file was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SealReason {
    /// `max_bytes` reached.
    Size,
    /// `max_events` reached.
    Events,
    /// `max_age` reached.
    Age,
    /// The shard's unacknowledged batches reached the consumer's limit.
    ConsumerLimit,
    /// The sink's memory budget was reached.
    Memory,
    /// A batch did not start where the previous one ended (a redelivery).
    Gap,
    /// The input ended.
    Stop,
    /// Shutdown started: everything open is stored before the consumer's drain deadline.
    Drain,
    /// The consumer started releasing the shard (handed to another consumer).
    Release,
}

impl SealReason {
    /// The reason's name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Events => "events",
            Self::Age => "age",
            Self::ConsumerLimit => "consumer_limit",
            Self::Memory => "memory",
            Self::Gap => "gap",
            Self::Stop => "stop",
            Self::Drain => "drain",
            Self::Release => "release",
        }
    }
}

/// A finished object waiting for upload; its acks settle once it is stored.
#[derive(Debug)]
pub struct SealedObject {
    /// Object name.
    pub key: String,
    /// Compressed body, in memory or spooled to disk.
    pub body: Body,
    /// Logs in it.
    pub logs: u64,
    /// Encoded bytes before compression.
    pub uncompressed: u64,
    /// Why it was sealed.
    pub reason: SealReason,
    /// When its file was opened: the age of its oldest unstored log.
    pub opened_at: Instant,
    /// One part of the ack of every batch with logs in it.
    pub acks: Vec<AckToken>,
    /// The shard its logs come from.
    pub shard: ShardKey,
    /// Cursor of its first log group.
    pub begin_cursor: String,
    /// Cursor after its last log group.
    pub end_cursor: String,
    /// The id in its name.
    pub id: ObjectId,
}

/// An open file as `/status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpenFileStatus {
    /// `logstore/shard`.
    pub shard: String,
    /// Rendered partition.
    pub partition: String,
    /// Logs in it.
    pub logs: u64,
    /// Encoded bytes before compression.
    pub uncompressed_bytes: u64,
    /// Seconds since it was opened.
    pub age_s: f64,
}

/// One open file.
#[derive(Debug)]
struct OpenFile {
    opened_at: Instant,
    opened_wall: SystemTime,
    /// Cursor of the first batch in it.
    begin_cursor: String,
    body: ObjectBody,
    acks: Vec<AckToken>,
}

/// The open files of one shard, by partition.
#[derive(Debug)]
pub struct ShardFiles {
    shard: ShardKey,
    /// Cursor after the last batch seen: every open file's range ends here.
    end_cursor: String,
    /// Batches appended since the shard's files were last all sealed.
    batches: usize,
    files: BTreeMap<String, OpenFile>,
}

impl ShardFiles {
    /// No open files for `shard`.
    pub fn new(shard: ShardKey) -> Self {
        Self {
            shard,
            end_cursor: String::new(),
            batches: 0,
            files: BTreeMap::new(),
        }
    }

    /// True when no file is open.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The open files as `/status` shows them, at `now`.
    pub fn open_files(&self, now: Instant) -> impl Iterator<Item = OpenFileStatus> + '_ {
        self.files
            .iter()
            .map(move |(partition, file)| OpenFileStatus {
                shard: self.shard.to_string(),
                partition: partition.clone(),
                logs: file.body.logs(),
                uncompressed_bytes: file.body.uncompressed_bytes(),
                age_s: now.duration_since(file.opened_at).as_secs_f64(),
            })
    }

    /// When the oldest open file was opened.
    pub fn oldest(&self) -> Option<Instant> {
        self.files.values().map(|file| file.opened_at).min()
    }

    /// Memory held by the open files.
    pub fn memory_bytes(&self) -> u64 {
        self.files
            .values()
            .map(|file| file.body.memory_bytes())
            .sum()
    }

    /// Appends `batch` and returns the files this sealed. `now`/`wall` are the monotonic and
    /// the wall-clock time.
    ///
    /// # Errors
    ///
    /// When a compressor fails.
    pub fn append(
        &mut self,
        layout: &Layout,
        batch: &Batch,
        ack: AckToken,
        now: Instant,
        wall: SystemTime,
    ) -> io::Result<Vec<SealedObject>> {
        let mut sealed = Vec::new();
        if !self.files.is_empty() && batch.cursor != self.end_cursor {
            sealed.extend(self.seal_all(layout, SealReason::Gap)?);
        }
        if self.files.is_empty() {
            self.batches = 0;
        }
        let routes = self.routes(layout, batch, wall);
        let mut parts = ack.split(routes.len()).into_iter();
        for (partition, indices) in routes {
            let file = match self.files.entry(partition) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => entry.insert(OpenFile {
                    opened_at: now,
                    opened_wall: wall,
                    begin_cursor: batch.cursor.clone(),
                    body: ObjectBody::new(&layout.format, layout.compression)?,
                    acks: Vec::new(),
                }),
            };
            file.body
                .append(indices.iter().filter_map(|&index| batch.records.get(index)))?;
            file.acks.extend(parts.next());
        }
        self.end_cursor.clone_from(&batch.next_cursor);
        self.batches += 1;
        if self.batches >= layout.limits.max_batches {
            sealed.extend(self.seal_all(layout, SealReason::ConsumerLimit)?);
        } else {
            sealed.extend(self.seal_due(layout, now)?);
        }
        Ok(sealed)
    }

    /// The partition of every log of `batch`, each with the indices of its logs.
    fn routes(
        &self,
        layout: &Layout,
        batch: &Batch,
        wall: SystemTime,
    ) -> Vec<(String, Vec<usize>)> {
        let all = || (0..batch.records.len()).collect::<Vec<_>>();
        if batch.records.is_empty() {
            return Vec::new();
        }
        match layout.partition_time {
            PartitionTime::Receive => {
                let partition = match self.files.keys().next() {
                    Some(open) => open.clone(),
                    None => layout.keys.partition(DateTime::<Utc>::from(wall)),
                };
                vec![(partition, all())]
            }
            PartitionTime::Log => {
                let mut routes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                let mut last: Option<(u32, String)> = None;
                for (index, record) in batch.records.iter().enumerate() {
                    let partition = match &last {
                        Some((time, partition)) if *time == record.time => partition.clone(),
                        _ => {
                            let at = DateTime::<Utc>::from_timestamp(i64::from(record.time), 0)
                                .unwrap_or_default();
                            let partition = layout.keys.partition(at);
                            last = Some((record.time, partition.clone()));
                            partition
                        }
                    };
                    routes.entry(partition).or_default().push(index);
                }
                routes.into_iter().collect()
            }
        }
    }

    /// Seals the files whose size, event count or age limit is reached.
    ///
    /// # Errors
    ///
    /// When a compressor fails.
    pub fn seal_due(&mut self, layout: &Layout, now: Instant) -> io::Result<Vec<SealedObject>> {
        let due: Vec<(String, SealReason)> = self
            .files
            .iter()
            .filter_map(|(partition, file)| {
                seal_reason(file, &layout.limits, now).map(|reason| (partition.clone(), reason))
            })
            .collect();
        due.into_iter()
            .map(|(partition, reason)| self.seal(layout, &partition, reason))
            .collect()
    }

    /// True when some file's age limit is reached at `now`.
    pub fn age_due(&self, limits: &Limits, now: Instant) -> bool {
        self.files
            .values()
            .any(|file| now.duration_since(file.opened_at) >= limits.max_age)
    }

    /// Seals every open file.
    ///
    /// # Errors
    ///
    /// When a compressor fails.
    pub fn seal_all(
        &mut self,
        layout: &Layout,
        reason: SealReason,
    ) -> io::Result<Vec<SealedObject>> {
        let partitions: Vec<String> = self.files.keys().cloned().collect();
        partitions
            .iter()
            .map(|partition| self.seal(layout, partition, reason))
            .collect()
    }

    fn seal(
        &mut self,
        layout: &Layout,
        partition: &str,
        reason: SealReason,
    ) -> io::Result<SealedObject> {
        let file = self.files.remove(partition).expect("sealing an open file");
        if self.files.is_empty() {
            self.batches = 0;
        }
        let id = ObjectId::from_cursors(&file.begin_cursor, &self.end_cursor, file.opened_wall);
        let (logs, uncompressed) = (file.body.logs(), file.body.uncompressed_bytes());
        Ok(SealedObject {
            key: layout.keys.key(&self.shard, partition, &id),
            body: Body::Memory(file.body.finish()?),
            logs,
            uncompressed,
            reason,
            opened_at: file.opened_at,
            acks: file.acks,
            shard: self.shard.clone(),
            begin_cursor: file.begin_cursor,
            end_cursor: self.end_cursor.clone(),
            id,
        })
    }
}

/// Why `file` should be sealed at `now`, if it should.
fn seal_reason(file: &OpenFile, limits: &Limits, now: Instant) -> Option<SealReason> {
    if file.body.uncompressed_bytes() >= limits.max_bytes {
        Some(SealReason::Size)
    } else if limits.max_events > 0 && file.body.logs() >= limits.max_events {
        Some(SealReason::Events)
    } else if now.duration_since(file.opened_at) >= limits.max_age {
        Some(SealReason::Age)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;
    use crate::model::ack::{self, AckReceiver, DeliveryStatus};
    use crate::model::RecordsBuilder;
    use crate::source::cursor;

    fn layout(partition_time: PartitionTime, limits: Limits) -> Layout {
        Layout {
            keys: KeyTemplate {
                prefix: "{logstore}/".into(),
                partition: "%Y%m%d%H".into(),
                timezone: FixedOffset::east_opt(0).unwrap(),
                extension: ".json".into(),
            },
            partition_time,
            format: Format::Json,
            compression: Compression::None,
            limits,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(300),
            max_events: 0,
            max_batches: 4,
        }
    }

    /// A batch of `times.len()` logs in `times.len()` groups from position `begin`.
    fn batch(begin: i64, times: &[u32]) -> (Batch, AckToken, AckReceiver) {
        let mut builder = RecordsBuilder::new();
        for (index, time) in times.iter().enumerate() {
            builder = builder
                .group("", "", &[])
                .log(*time, None, &[("n", &index.to_string())]);
        }
        let (token, receiver) = ack::channel();
        let batch = Batch {
            shard: shard(),
            sequence: 0,
            cursor: cursor::encode(begin),
            next_cursor: cursor::encode(begin + times.len() as i64),
            records: builder.build(),
            budget: None,
        };
        (batch, token, receiver)
    }

    fn shard() -> ShardKey {
        ShardKey {
            logstore: "audit".into(),
            shard: 2,
        }
    }

    const WALL: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn wall() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(WALL)
    }

    fn deliver(objects: Vec<SealedObject>) {
        for object in objects {
            object.acks.into_iter().for_each(AckToken::delivered);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn age_seals_after_max_age_and_not_before() {
        let layout = layout(PartitionTime::Receive, limits());
        let mut files = ShardFiles::new(shard());
        let (batch, token, mut receiver) = batch(10, &[WALL as u32; 3]);
        assert!(files
            .append(&layout, &batch, token, Instant::now(), wall())
            .unwrap()
            .is_empty());
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(!files.age_due(&layout.limits, Instant::now()));
        assert!(files.seal_due(&layout, Instant::now()).unwrap().is_empty());
        assert_eq!(receiver.try_outcome(), None, "held until stored");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(files.age_due(&layout.limits, Instant::now()));
        let sealed = files.seal_due(&layout, Instant::now()).unwrap();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].reason, SealReason::Age);
        assert_eq!(sealed[0].key, "audit/2026010100_2_10_13.json");
        assert_eq!(sealed[0].logs, 3);
        deliver(sealed);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert!(files.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn size_events_and_consumer_limit_seal_with_their_reason() {
        let mut tight = limits();
        tight.max_events = 5;
        let layout_events = layout(PartitionTime::Receive, tight);
        let mut files = ShardFiles::new(shard());
        let (first, token, _first) = batch(0, &[WALL as u32; 3]);
        assert!(files
            .append(&layout_events, &first, token, Instant::now(), wall())
            .unwrap()
            .is_empty());
        let (second, token, _second) = batch(3, &[WALL as u32; 3]);
        let sealed = files
            .append(&layout_events, &second, token, Instant::now(), wall())
            .unwrap();
        assert_eq!(sealed[0].reason, SealReason::Events);
        assert_eq!(sealed[0].logs, 6, "a batch is never split by a limit");
        assert!(sealed[0].key.ends_with("_2_0_6.json"));

        let mut small = limits();
        small.max_bytes = 10;
        let (third, token, _third) = batch(6, &[WALL as u32]);
        let sealed = files
            .append(
                &layout(PartitionTime::Receive, small),
                &third,
                token,
                Instant::now(),
                wall(),
            )
            .unwrap();
        assert_eq!(sealed[0].reason, SealReason::Size);

        let layout = layout(PartitionTime::Receive, limits());
        let mut reasons = Vec::new();
        for index in 0..4 {
            let (next, token, _receiver) = batch(7 + index, &[WALL as u32]);
            reasons.extend(
                files
                    .append(&layout, &next, token, Instant::now(), wall())
                    .unwrap()
                    .into_iter()
                    .map(|object| (object.reason, object.key)),
            );
        }
        assert_eq!(
            reasons,
            [(
                SealReason::ConsumerLimit,
                "audit/2026010100_2_7_11.json".to_owned()
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cursor_gap_seals_before_the_redelivered_batch() {
        let layout = layout(PartitionTime::Receive, limits());
        let mut files = ShardFiles::new(shard());
        let (first, token, _first) = batch(0, &[WALL as u32; 2]);
        files
            .append(&layout, &first, token, Instant::now(), wall())
            .unwrap();
        let (again, token, _again) = batch(0, &[WALL as u32; 2]);
        let sealed = files
            .append(&layout, &again, token, Instant::now(), wall())
            .unwrap();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].reason, SealReason::Gap);
        assert!(sealed[0].key.ends_with("_2_0_2.json"));
        let rest = files.seal_all(&layout, SealReason::Stop).unwrap();
        assert_eq!(rest[0].key, sealed[0].key, "same logs, same name");
    }

    #[tokio::test(start_paused = true)]
    async fn log_time_routes_each_log_and_splits_the_ack() {
        let layout = layout(PartitionTime::Log, limits());
        let mut files = ShardFiles::new(shard());
        let hour = 3600;
        let times = [WALL as u32, (WALL + hour) as u32, WALL as u32];
        let (first, token, mut receiver) = batch(40, &times);
        files
            .append(&layout, &first, token, Instant::now(), wall())
            .unwrap();
        let mut sealed = files.seal_all(&layout, SealReason::Stop).unwrap();
        sealed.sort_by(|a, b| a.key.cmp(&b.key));
        let summary: Vec<_> = sealed.iter().map(|o| (o.key.as_str(), o.logs)).collect();
        assert_eq!(
            summary,
            [
                ("audit/2026010100_2_40_43.json", 2),
                ("audit/2026010101_2_40_43.json", 1)
            ]
        );
        let last = sealed.pop().unwrap();
        deliver(sealed);
        assert_eq!(receiver.try_outcome(), None, "one file still unstored");
        deliver(vec![last]);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
    }

    #[tokio::test]
    async fn an_empty_batch_is_acknowledged_at_once() {
        let layout = layout(PartitionTime::Receive, limits());
        let mut files = ShardFiles::new(shard());
        let (empty, token, receiver) = batch(5, &[]);
        assert!(files
            .append(&layout, &empty, token, Instant::now(), wall())
            .unwrap()
            .is_empty());
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
    }
}
