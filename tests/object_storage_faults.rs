//! The `object_storage` sink in a running forwarder process when the bucket misbehaves: a
//! fault-injecting proxy (`support/s3_fault_proxy.rs`) between the sink and moto fails,
//! resets, refuses or stalls requests, and moto itself checks SigV4 signatures. Whatever
//! happens, every log ends up stored exactly once, no checkpoint moves past what is stored,
//! the sink's health says what is wrong, memory stays within the sink's budget while the
//! bucket stalls, and a shutdown stores what the sink holds.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use siem_forwarder::source::cursor;
use support::archive_world::{
    archive_sink_at, archived_ids, checkpoints_at, name_parts_with, shard_ends, World, BUCKET,
};
use support::forwarder::{fast_consumer, Forwarder};
use support::s3::{S3Server, StoredObject};
use support::s3_fault_proxy::{Fault, Kind, S3FaultProxy};
use support::{http_get, metric_sum, put_audit_logs_into, wait_until};

/// Seal rules of the tests that only need files sealed soon.
const SEALED_SOON: &str = "max_age = \"3s\"\nmax_events = 500";

/// The archive's `[[sinks]]` entry storing through `proxy` with moto's keys, `seal` rules and
/// `extra` lines.
fn proxied_sink(world: &World, proxy: &S3FaultProxy, seal: &str, extra: &str) -> String {
    let (id, secret) = &world.s3.keys;
    archive_sink_at(&proxy.endpoint(), (id, secret), seal, extra)
}

/// A cursor's position; the empty checkpoint (none yet) is the start.
fn position(cursor: &str) -> i64 {
    if cursor.is_empty() {
        0
    } else {
        cursor::decode(cursor).expect("a checkpoint is a cursor")
    }
}

/// The shard and cursor range in the name of an object.
fn object_range(key: &str) -> (u32, i64, i64) {
    let extension = if key.ends_with(".gz") {
        ".json.gz"
    } else {
        ".json"
    };
    name_parts_with(key, extension)
}

/// How far from the start of `shard` the stored `keys` cover it without a gap.
fn covered<'a>(keys: impl IntoIterator<Item = &'a str>, shard: u32) -> i64 {
    let mut spans: Vec<(i64, i64)> = keys
        .into_iter()
        .map(object_range)
        .filter(|(of, _, _)| *of == shard)
        .map(|(_, begin, end)| (begin, end))
        .collect();
    spans.sort_unstable();
    spans
        .into_iter()
        .take_while({
            let mut next = 0;
            move |(begin, end)| {
                let tiles = *begin <= next;
                next = next.max(*end);
                tiles
            }
        })
        .map(|(_, end)| end)
        .max()
        .unwrap_or(0)
}

/// Fails the test when a checkpoint of group `g` lies past what is stored: first in the log
/// service against the bucket (checkpoints read first: objects only ever come, so whatever a
/// checkpoint covers is listed after it), then in `/status` against the uploads it lists as
/// finished.
async fn assert_checkpoints_within_stored(world: &World, status_url: &str) {
    let checkpoints = world
        .client
        .get_checkpoints("audit", "g")
        .await
        .unwrap_or_default();
    let objects = world.s3.objects(BUCKET).await;
    let keys: Vec<&str> = objects.iter().map(|object| object.key.as_str()).collect();
    for checkpoint in &checkpoints {
        let at = position(&checkpoint.checkpoint);
        let stored = covered(keys.iter().copied(), checkpoint.shard);
        assert!(
            at <= stored,
            "shard {}: checkpoint {at} past the stored objects, which cover up to {stored}: {keys:?}",
            checkpoint.shard
        );
    }
    let (_, status) = http_get(status_url).await;
    let Ok(status) = serde_json::from_str::<Value>(&status) else {
        return;
    };
    let finished: Vec<&str> = status["sinks"]["archive"]["archive"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|upload| upload["key"].as_str())
        .collect();
    for shard in status["shards"].as_array().into_iter().flatten() {
        let number = shard["shard"].as_u64().expect("shard id") as u32;
        let at = position(shard["checkpoint"].as_str().unwrap_or_default());
        let stored = covered(finished.iter().copied(), number);
        assert!(
            at <= stored,
            "/status: shard {number} checkpoint {at} past its finished uploads (up to {stored}): {status}"
        );
    }
}

/// Every log of `objects` once, and the same set the file sink delivered.
fn assert_each_log_once(objects: &[StoredObject], forwarder: &Forwarder, logs: usize) {
    let archived = archived_ids(objects);
    assert_eq!(archived.len(), logs, "every log archived");
    assert!(
        archived.values().all(|count| *count == 1),
        "no log archived twice"
    );
    let delivered: BTreeSet<String> = forwarder
        .delivered()
        .iter()
        .map(support::forwarder::event_id)
        .collect();
    assert_eq!(
        archived.keys().cloned().collect::<BTreeSet<_>>(),
        delivered,
        "the logs the file sink delivered"
    );
}

/// The telemetry page `path` of `forwarder`.
async fn page(forwarder: &Forwarder, path: &str) -> String {
    http_get(&format!("{}{path}", forwarder.telemetry_url().await))
        .await
        .1
}

/// The health transitions of the archive the process logged, oldest first: `false` for each
/// change to unhealthy (with its reason), `true` for each change back to healthy.
fn archive_health_changes(forwarder: &Forwarder) -> Vec<(bool, String)> {
    forwarder
        .log_lines()
        .iter()
        .filter(|line| line["component"] == "sink:archive")
        .filter_map(|line| match line["message"].as_str()? {
            "component unhealthy" => Some((false, line["reason"].as_str()?.to_owned())),
            "component healthy" => Some((true, String::new())),
            _ => None,
        })
        .collect()
}

/// Waits until `/readyz` reports the archive unhealthy for a reason containing `code`.
async fn wait_unhealthy_with(forwarder: &Forwarder, code: &str) {
    let readyz = format!("{}/readyz", forwarder.telemetry_url().await);
    wait_until(
        &format!("/readyz to report the archive unhealthy with {code}"),
        Duration::from_secs(60),
        || {
            let readyz = readyz.clone();
            async move {
                let (status, body) = http_get(&readyz).await;
                status == 503 && body.contains("sink:archive") && body.contains(code)
            }
        },
    )
    .await;
}

/// Waits until `/readyz` answers 200.
async fn wait_ready(forwarder: &Forwarder) {
    let readyz = format!("{}/readyz", forwarder.telemetry_url().await);
    wait_until("/readyz to answer 200", Duration::from_secs(30), || {
        let readyz = readyz.clone();
        async move { http_get(&readyz).await.0 == 200 }
    })
    .await;
}

/// True while no checkpoint of group `g` moved from the start.
async fn no_checkpoint_moved(world: &World, group: &str) -> bool {
    let checkpoints = world
        .client
        .get_checkpoints("audit", group)
        .await
        .unwrap_or_default();
    checkpoints
        .iter()
        .all(|checkpoint| position(&checkpoint.checkpoint) == 0)
}

#[tokio::test]
async fn transient_failures_and_resets_are_retried_and_never_checkpointed_past_the_bucket() {
    const LOGS: usize = 2_000;
    let world = World::start(true, 2, LOGS, 100, 41).await;
    let proxy = S3FaultProxy::start(&world.s3.endpoint).await;
    let faults = [
        Fault::INTERNAL,
        Fault::UNAVAILABLE,
        Fault::SLOW_DOWN,
        Fault::INTERNAL,
        Fault::SLOW_DOWN,
        Fault::Reset,
        Fault::Reset,
    ];
    proxy.fail_next(Kind::PutObject, &faults);
    // No quick retries inside an attempt: every fault reaches the sink.
    let sink = proxied_sink(&world, &proxy, SEALED_SOON, "upload = { max_retries = 0 }");
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    let status_url = format!("{}/status", forwarder.telemetry_url().await);
    wait_until(
        "checkpoints at the end of both shards, never past the stored objects",
        Duration::from_secs(60),
        || {
            let (world, status_url) = (&world, &status_url);
            async move {
                assert_checkpoints_within_stored(world, status_url).await;
                checkpoints_at(&world.client, "g", &world.ends).await
            }
        },
    )
    .await;
    assert_eq!(
        proxy.faults_given(),
        faults.len() as u64,
        "every fault given"
    );
    assert_each_log_once(&world.s3.objects(BUCKET).await, &forwarder, LOGS);
    let changes = archive_health_changes(&forwarder);
    assert!(
        matches!(changes.first(), Some((false, reason)) if reason.contains("storing audit/")),
        "unhealthy after failures in a row: {changes:?}"
    );
    assert!(
        matches!(changes.last(), Some((true, _))),
        "healthy again once stored: {changes:?}"
    );
    wait_ready(&forwarder).await;
    let metrics = page(&forwarder, "/metrics").await;
    let retries = metric_sum(
        &metrics,
        "siem_forwarder_sink_retries_total{sink=\"archive\"}",
    );
    let failures = metric_sum(
        &metrics,
        "siem_forwarder_archive_upload_failures_total{sink=\"archive\",class=\"transient\"}",
    );
    assert_eq!(
        failures,
        faults.len() as f64,
        "every error answer and reset reached the sink as a failed attempt"
    );
    assert_eq!(retries, failures, "each failed attempt retried");
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

/// S3 answers a request that failed after its 200 was sent (a `CompleteMultipartUpload`, a
/// copy) with 200 and an `<Error>` document. A store answered that way, without the `ETag` of
/// a stored object, has not stored it.
/// A forwarder archiving `logs` logs (one shard, sealed by `seal`, with `extra` lines) whose
/// first two `kind` requests are answered 200 with an S3 `<Error>` document: both must count
/// as failed attempts, and every log must be stored once in the end. Returns the proxy for
/// the caller's own counts.
async fn ok_answers_carrying_error_documents(
    kind: Kind,
    logs: usize,
    seal: &str,
    extra: &str,
) -> S3FaultProxy {
    let world = World::start(true, 1, logs, 100, 43).await;
    let proxy = S3FaultProxy::start(&world.s3.endpoint).await;
    proxy.fail_next(
        kind,
        &[
            Fault::OkWithError("InternalError"),
            Fault::OkWithError("SlowDown"),
        ],
    );
    let sink = proxied_sink(&world, &proxy, seal, extra);
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    world
        .wait_checkpoints_at_end("checkpoints at the end", Duration::from_secs(90))
        .await;
    assert_eq!(proxy.faults_given(), 2);
    assert_each_log_once(&world.s3.objects(BUCKET).await, &forwarder, logs);
    let metrics = page(&forwarder, "/metrics").await;
    assert_eq!(
        metric_sum(
            &metrics,
            "siem_forwarder_archive_upload_failures_total{sink=\"archive\",class=\"transient\"}"
        ),
        2.0,
        "both answers counted as failed attempts"
    );
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
    proxy
}

#[tokio::test]
async fn an_ok_answer_carrying_an_error_document_is_a_failure_and_retried() {
    ok_answers_carrying_error_documents(Kind::PutObject, 300, SEALED_SOON, "").await;
}

#[tokio::test]
async fn a_completed_multipart_upload_answered_with_an_error_document_starts_again() {
    // About 6 MiB of JSON lines in one object: two parts of at most 5 MiB. S3 may answer
    // CompleteMultipartUpload 200 with an <Error> body; only a parsed result completes it.
    const LOGS: usize = 5_000;
    let proxy = ok_answers_carrying_error_documents(
        Kind::CompleteMultipart,
        LOGS,
        &format!("max_events = {LOGS}\nmax_age = \"10m\""),
        "compression = \"none\"\nupload = { part_size = \"5MiB\", max_retries = 0 }",
    )
    .await;
    assert_eq!(
        proxy.count(Kind::CreateMultipart),
        3,
        "each failed completion starts a new upload from part 1"
    );
    assert_eq!(proxy.count(Kind::UploadPart), 6, "two parts per attempt");
    assert_eq!(proxy.stored(Kind::CompleteMultipart), 1);
    assert_eq!(
        proxy.count(Kind::PutObject),
        0,
        "larger than a part: never one PUT"
    );
}

#[tokio::test]
async fn a_refusing_bucket_holds_every_checkpoint_and_names_the_code_until_it_accepts() {
    const LOGS: usize = 400;
    let world = World::start(true, 1, LOGS, 100, 47).await;
    let proxy = S3FaultProxy::start(&world.s3.endpoint).await;
    proxy.set_denied(true);
    let sink = proxied_sink(&world, &proxy, SEALED_SOON, "");
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    wait_unhealthy_with(&forwarder, "AccessDenied").await;
    wait_until(
        "every log delivered to the file sink and two refused puts",
        Duration::from_secs(60),
        || {
            let done = forwarder.delivered().len() == LOGS && proxy.count(Kind::PutObject) >= 2;
            async move { done }
        },
    )
    .await;
    assert!(
        no_checkpoint_moved(&world, "g").await,
        "nothing acknowledged while refused"
    );
    assert_eq!(proxy.stored(Kind::PutObject), 0);
    proxy.set_denied(false);
    world
        .wait_checkpoints_at_end(
            "checkpoints at the end once accepted",
            Duration::from_secs(60),
        )
        .await;
    assert_each_log_once(&world.s3.objects(BUCKET).await, &forwarder, LOGS);
    wait_ready(&forwarder).await;
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn moto_checks_signatures_a_wrong_secret_is_refused_by_name_and_the_right_key_stores() {
    const LOGS: usize = 300;
    let world = World::around(S3Server::start_with_auth().await, 1, LOGS, 100, 53).await;
    let (id, secret) = world.s3.keys.clone();
    let wrong = format!("{secret}x");
    let mut refused = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g-wrong", "n1"),
        &archive_sink_at(&world.s3.endpoint, (&id, &wrong), SEALED_SOON, ""),
    );
    wait_unhealthy_with(&refused, "SignatureDoesNotMatch").await;
    assert!(
        world.s3.objects(BUCKET).await.is_empty(),
        "nothing stored with the wrong secret"
    );
    assert!(
        no_checkpoint_moved(&world, "g-wrong").await,
        "nothing acknowledged while refused"
    );
    refused.kill().await;
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n2"),
        &archive_sink_at(&world.s3.endpoint, (&id, &secret), SEALED_SOON, ""),
    );
    world
        .wait_checkpoints_at_end(
            "checkpoints at the end with the right key",
            Duration::from_secs(60),
        )
        .await;
    assert_each_log_once(&world.s3.objects(BUCKET).await, &forwarder, LOGS);
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

/// The sink's memory budget, the smallest allowed.
const BUDGET: u64 = 8 << 20;

/// The archive's budget, in plain JSON (stored bytes are encoded bytes), with files sealed
/// after `max_age`.
fn budgeted_sink(world: &World, proxy: &S3FaultProxy, max_age: &str) -> String {
    proxied_sink(
        world,
        proxy,
        &format!("max_age = \"{max_age}\"\ncompression = \"none\""),
        &format!("buffer = {{ max_memory = \"{}MiB\" }}", BUDGET >> 20),
    )
}

/// `[consumer]` lines pulling at most two groups at a time.
fn small_pulls(group: &str) -> String {
    format!("{}max_fetch_groups = 2\n", fast_consumer(group, "n1"))
}

#[tokio::test]
async fn a_stalled_bucket_bounds_the_archives_memory_and_holds_the_pull() {
    const LOGS: usize = 16_000;
    const SHARDS: u32 = 8;
    // Batches of 500 logs (about 0.7 MB of JSON): what one append may add past the budget.
    const BATCH_SLACK: f64 = (1 << 20) as f64;
    let world = World::start(true, SHARDS, LOGS, 250, 59).await;
    let proxy = S3FaultProxy::start(&world.s3.endpoint).await;
    proxy.stall(&Kind::WRITES);
    let sink = budgeted_sink(&world, &proxy, "3s");
    let consumer = format!("{}max_inflight_bytes = \"4MiB\"\n", small_pulls("g"));
    let mut forwarder =
        Forwarder::spawn(&world.server, world.dir.path(), "audit", &consumer, &sink);
    let metrics_url = format!("{}/metrics", forwarder.telemetry_url().await);
    let sample = || async {
        let page = http_get(&metrics_url).await.1;
        let buffered = metric_sum(
            &page,
            "siem_forwarder_archive_buffered_bytes{sink=\"archive\",kind=\"memory\"}",
        );
        let inflight = metric_sum(&page, "siem_forwarder_inflight_bytes");
        let pulled = metric_sum(&page, "siem_forwarder_pulled_logs_total");
        (buffered, inflight, pulled)
    };
    let most_buffered = std::cell::Cell::new(0.0_f64);
    wait_until(
        "the archive full of stalled objects",
        Duration::from_secs(60),
        || {
            let (sample, proxy, most) = (&sample, &proxy, &most_buffered);
            async move {
                let (buffered, _, _) = sample().await;
                most.set(most.get().max(buffered));
                buffered >= BUDGET as f64 && proxy.held() > 0
            }
        },
    )
    .await;
    // The pull comes to a stop: the in-flight bytes and the pulled logs stay where they are.
    let last = std::cell::Cell::new(sample().await);
    wait_until("the pull to stop", Duration::from_secs(30), || {
        let (sample, last, most) = (&sample, &last, &most_buffered);
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = sample().await;
            most.set(most.get().max(now.0));
            let before = last.replace(now);
            now.1 == before.1 && now.2 == before.2
        }
    })
    .await;
    let (_, held_inflight, held_pulled) = last.get();
    assert!(
        held_pulled < LOGS as f64,
        "the stall holds logs back in the log service: {held_pulled} pulled"
    );
    // Over a further observation window nothing more is pulled or held.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (buffered, inflight, pulled) = sample().await;
        most_buffered.set(most_buffered.get().max(buffered));
        assert!(
            inflight <= held_inflight && pulled == held_pulled,
            "the pull stopped: in flight {inflight} (was {held_inflight}), pulled {pulled} (was {held_pulled})"
        );
    }
    let most_buffered = most_buffered.get();
    assert!(
        held_inflight <= (4 << 20) as f64,
        "in flight within the consumer's budget: {held_inflight}"
    );
    assert!(
        most_buffered <= BUDGET as f64 + BATCH_SLACK,
        "the archive holds at most its budget and one batch: {most_buffered}"
    );
    // The budget, the pulls in flight and the process itself (about 40 MiB here): the 22 MB
    // of logs are not all held.
    let rss_mib = forwarder.peak_rss_kib() / 1024;
    assert!(rss_mib < 96, "peak RSS {rss_mib} MiB while stalled");
    proxy.release();
    world
        .wait_checkpoints_at_end(
            "checkpoints at the end once released",
            Duration::from_secs(60),
        )
        .await;
    assert_each_log_once(&world.s3.objects(BUCKET).await, &forwarder, LOGS);
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

/// A shard's first batch may reach the archive after the shard announced its release: the
/// archive waits on the full bucket, the batch waits in the pipeline. The archive then holds
/// it as the first batch of a new task for the shard, and only the drain token (shutdown
/// started) has it stored before the consumer's drain deadline.
#[tokio::test]
async fn shutdown_stores_a_first_batch_that_reaches_the_archive_after_its_shards_release() {
    const FILLER: usize = 9_000;
    const LATE: usize = 200;
    let world = World::start(true, 2, 0, 250, 61).await;
    put_audit_logs_into(&world.client, "audit", Some(0), FILLER, 250, 61).await;
    let proxy = S3FaultProxy::start(&world.s3.endpoint).await;
    proxy.stall(&Kind::WRITES);
    // Files open for ten minutes: only memory, a release or the drain seals them.
    let sink = budgeted_sink(&world, &proxy, "10m");
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &small_pulls("g"),
        &sink,
    );
    let url = forwarder.telemetry_url().await;
    let metrics_url = format!("{url}/metrics");
    wait_until(
        "the archive full of stalled objects",
        Duration::from_secs(60),
        || {
            let (metrics_url, proxy) = (&metrics_url, &proxy);
            async move {
                let page = http_get(metrics_url).await.1;
                metric_sum(
                    &page,
                    "siem_forwarder_archive_buffered_bytes{sink=\"archive\",kind=\"memory\"}",
                ) >= BUDGET as f64
                    && proxy.held() > 0
            }
        },
    )
    .await;
    // Shard 1 had nothing so far: its first batch (one group) is pulled now and queues behind
    // the full archive.
    put_audit_logs_into(&world.client, "audit", Some(1), LATE, LATE, 67).await;
    wait_until(
        "shard 1's first batch handed on",
        Duration::from_secs(30),
        || {
            let metrics_url = &metrics_url;
            async move {
                let page = http_get(metrics_url).await.1;
                metric_sum(
                    &page,
                    "siem_forwarder_pulled_logs_total{logstore=\"audit\",shard=\"1\"}",
                ) > 0.0
            }
        },
    )
    .await;
    let ends = shard_ends(&world.client, 2).await;
    let status_url = format!("{url}/status");
    let release_once_draining = async {
        wait_until(
            "both shards draining (their releases announced)",
            Duration::from_secs(30),
            || {
                let status_url = &status_url;
                async move {
                    let (_, status) = http_get(status_url).await;
                    let Ok(status) = serde_json::from_str::<Value>(&status) else {
                        return false;
                    };
                    let draining = status["shards"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|shard| shard["phase"] == "draining")
                        .count();
                    draining == 2
                }
            },
        )
        .await;
        proxy.release();
    };
    let ((code, _), ()) = tokio::join!(
        forwarder.terminate(Duration::from_secs(30)),
        release_once_draining
    );
    assert_eq!(code, Some(0));
    assert!(
        !forwarder
            .logged("drain deadline passed; the next owner redelivers the undelivered batches"),
        "every shard drained before its deadline"
    );
    let objects = world.s3.objects(BUCKET).await;
    let by_shard: BTreeMap<u32, usize> = objects.iter().fold(BTreeMap::new(), |mut by, object| {
        *by.entry(object_range(&object.key).0).or_default() += object.logs.len();
        by
    });
    assert_eq!(
        by_shard.get(&1),
        Some(&LATE),
        "shard 1's logs stored: {by_shard:?}"
    );
    assert_each_log_once(&objects, &forwarder, forwarder.delivered().len());
    let checkpoints = world.client.get_checkpoints("audit", "g").await.unwrap();
    let shard1 = checkpoints.iter().find(|c| c.shard == 1).expect("shard 1");
    assert_eq!(
        shard1.checkpoint, ends[1],
        "shard 1 checkpointed past its stored logs: nothing to redeliver"
    );
}
