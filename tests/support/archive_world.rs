//! The world of the object storage tests: a moto server, an embedded log service filled with
//! generated audit logs, the archive sink's configuration, and reading back what it stored.

use std::collections::BTreeMap;
use std::time::Duration;

use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::Client;

use super::s3::{S3Server, StoredObject};
use super::{put_audit_logs, wait_until, TestServer};

/// The bucket every archive test writes to.
pub const BUCKET: &str = "archive";

/// One test's world: a moto server (with the bucket created when `bucket`), an embedded log
/// service with one logstore `audit` of `shards` shards holding `logs` generated logs in groups
/// of `group_size` (from `seed`), the shards' end cursors and a scratch directory.
pub struct World {
    pub s3: S3Server,
    pub server: TestServer,
    pub client: Client,
    pub ends: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl World {
    pub async fn start(
        bucket: bool,
        shards: u32,
        logs: usize,
        group_size: usize,
        seed: u64,
    ) -> Self {
        let s3 = S3Server::start().await;
        if bucket {
            s3.create_bucket(BUCKET).await;
        }
        Self::around(s3, shards, logs, group_size, seed).await
    }

    /// Waits (`what`, up to `within`) until group `g`'s checkpoint of every shard is its end.
    pub async fn wait_checkpoints_at_end(&self, what: &str, within: Duration) {
        wait_until(what, within, || {
            checkpoints_at(&self.client, "g", &self.ends)
        })
        .await;
    }

    /// Like [`World::start`] around the server `s3` as it is (its buckets already made).
    pub async fn around(
        s3: S3Server,
        shards: u32,
        logs: usize,
        group_size: usize,
        seed: u64,
    ) -> Self {
        let server = TestServer::start(&[("audit", shards)]).await;
        let client = server.client();
        put_audit_logs(&client, "audit", logs, group_size, seed).await;
        let ends = shard_ends(&client, shards).await;
        Self {
            s3,
            server,
            client,
            ends,
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

/// The `[[sinks]]` entry of the archive (files sealed after 3 s or 500 logs), with extra
/// lines.
pub fn archive_sink(s3: &S3Server, extra: &str) -> String {
    archive_sink_sealed(s3, "max_age = \"3s\"\nmax_events = 500", extra)
}

/// The `[[sinks]]` entry of the archive with the seal rules `seal`, and extra lines.
pub fn archive_sink_sealed(s3: &S3Server, seal: &str, extra: &str) -> String {
    let (id, secret) = &s3.keys;
    archive_sink_at(&s3.endpoint, (id, secret), seal, extra)
}

/// Like [`archive_sink_sealed`], storing through `endpoint` (a proxy in front of the server)
/// with the access key `keys` (id, secret).
pub fn archive_sink_at(endpoint: &str, keys: (&str, &str), seal: &str, extra: &str) -> String {
    let (id, secret) = keys;
    format!(
        "\n[[sinks]]\ntype = \"object_storage\"\nname = \"archive\"\nendpoint = \"{endpoint}\"\n\
         region = \"us-east-1\"\nbucket = \"{BUCKET}\"\naccess_key_id = \"{id}\"\n\
         secret_access_key = \"{secret}\"\n{seal}\n\
         retry = {{ initial = \"200ms\", max = \"1s\" }}\n{extra}\n\
         [telemetry]\nlisten = \"127.0.0.1:0\"\n"
    )
}

/// The parts of a name `audit/YYYY/MM/DD/HH/MM_{shard}_{begin}_{end}.json.gz`, checked.
pub fn name_parts(key: &str) -> (u32, i64, i64) {
    name_parts_with(key, ".json.gz")
}

/// Like [`name_parts`] for names ending in `extension`.
pub fn name_parts_with(key: &str, extension: &str) -> (u32, i64, i64) {
    let rest = key
        .strip_prefix("audit/")
        .and_then(|rest| rest.strip_suffix(extension))
        .unwrap_or_else(|| panic!("{key}: prefix audit/ and extension {extension}"));
    let (partition, id) = rest.split_once('_').expect("partition_id");
    let levels: Vec<&str> = partition.split('/').collect();
    assert_eq!(
        levels.iter().map(|level| level.len()).collect::<Vec<_>>(),
        [4, 2, 2, 2, 2],
        "{key}: partition %Y/%m/%d/%H/%M"
    );
    assert!(
        levels
            .iter()
            .all(|level| level.bytes().all(|b| b.is_ascii_digit())),
        "{key}"
    );
    let numbers: Vec<i64> = id
        .split('_')
        .map(|part| part.parse().unwrap_or_else(|_| panic!("{key}: numeric id")))
        .collect();
    let [shard, begin, end] = numbers[..] else {
        panic!("{key}: id is shard_begin_end");
    };
    assert!(begin < end, "{key}: begin < end");
    (shard as u32, begin, end)
}

/// The end cursor of each shard of `audit`.
pub async fn shard_ends(client: &Client, shards: u32) -> Vec<String> {
    futures::future::try_join_all(
        (0..shards).map(|shard| client.get_cursor("audit", shard, CursorFrom::End)),
    )
    .await
    .unwrap()
}

/// True when `group`'s checkpoint of every shard is its end.
pub async fn checkpoints_at(client: &Client, group: &str, ends: &[String]) -> bool {
    let Ok(checkpoints) = client.get_checkpoints("audit", group).await else {
        return false;
    };
    checkpoints.len() == ends.len()
        && checkpoints
            .iter()
            .all(|c| ends.get(c.shard as usize) == Some(&c.checkpoint))
}

/// Each archived log's `event_id`, with how often it was archived.
pub fn archived_ids(objects: &[StoredObject]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for log in objects.iter().flat_map(|object| &object.logs) {
        let id = log["event_id"].as_str().expect("audit logs carry event_id");
        *ids.entry(id.to_owned()).or_insert(0) += 1;
    }
    ids
}
