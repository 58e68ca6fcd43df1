//! How the `object_storage` sink writes objects, in a running forwarder against a real
//! S3-compatible server (moto), checked with boto3: multipart uploads above
//! `upload.part_size`, provenance metadata, storage class and encryption, `create_only`
//! leaving an object already stored untouched, the disk spool (`buffer.dir`), and the refusals
//! of bad upload settings.

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use siem_forwarder::source::cursor;
use support::archive_world::{
    archive_sink, archive_sink_at, archive_sink_sealed, archived_ids, checkpoints_at, World, BUCKET,
};
use support::forwarder::{event_id, fast_consumer, Forwarder, DRAIN_TIMEOUT_SECS};
use support::s3_fault_proxy::{Kind, S3FaultProxy};
use support::{http_get, metric_sum, wait_until, PROJECT};

/// Seal rules that leave one file open until shutdown: ten minutes of age, no size that the
/// tests reach, no event limit.
const SEALED_AT_SHUTDOWN: &str = "max_age = \"10m\"\nmax_bytes = \"64MiB\"";

/// The test consumer, waiting up to 90 s at shutdown for the file sealed then: time for a
/// 13 MiB upload on a busy machine.
fn patient_consumer() -> String {
    let consumer = fast_consumer("g", "n1").replace(
        &format!("drain_timeout = \"{DRAIN_TIMEOUT_SECS}s\""),
        "drain_timeout = \"90s\"",
    );
    assert!(consumer.contains("drain_timeout = \"90s\""), "{consumer}");
    consumer
}

/// Waits until the forwarder's file sink delivered `logs` logs.
async fn wait_delivered(forwarder: &Forwarder, logs: usize) {
    wait_until(
        "every log pulled and delivered to the file sink",
        Duration::from_secs(120),
        || {
            let delivered = forwarder.delivered().len();
            async move { delivered == logs }
        },
    )
    .await;
}

#[tokio::test]
async fn an_object_larger_than_a_part_is_stored_by_a_multipart_upload_whole() {
    // About 13 MiB of JSON lines in one file: three parts of 5 MiB (the last smaller).
    const LOGS: usize = 11_000;
    let world = World::start(true, 1, LOGS, 200, 41).await;
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &patient_consumer(),
        &archive_sink_sealed(
            &world.s3,
            SEALED_AT_SHUTDOWN,
            "compression = \"none\"\nupload = { part_size = \"5MiB\", part_concurrency = 2 }",
        ),
    );
    wait_delivered(&forwarder, LOGS).await;
    let delivered: BTreeSet<String> = forwarder.delivered().iter().map(event_id).collect();
    let (code, _) = forwarder.terminate(Duration::from_secs(120)).await;
    assert_eq!(code, Some(0));
    let objects = world.s3.objects(BUCKET).await;
    assert_eq!(objects.len(), 1, "one object, stored at shutdown");
    let object = &objects[0];
    assert!(object.key.ends_with(".json"), "{}", object.key);
    assert!(
        (11 << 20..=15 << 20).contains(&object.size),
        "between 11 and 15 MiB: {} bytes",
        object.size
    );
    // Content intact: every log once, as the file sink delivered them.
    let archived: Vec<String> = object.logs.iter().map(event_id).collect();
    assert_eq!(archived.len(), LOGS);
    assert_eq!(archived.into_iter().collect::<BTreeSet<_>>(), delivered);
    // S3 names a multipart object's ETag `"{md5 of the part md5s}-{parts}"`.
    let head = world.s3.head(BUCKET, &object.key).await;
    let etag = head["etag"].as_str().expect("etag");
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "a multipart upload of 3 parts: ETag {etag}"
    );
    // Byte for byte what was sealed, with the metadata of the upload.
    assert_eq!(
        head["metadata"]["content-sha256"], head["body_sha256"],
        "{head}"
    );
    assert_eq!(head["metadata"]["logs"], LOGS.to_string(), "{head}");
    assert!(
        checkpoints_at(&world.client, "g", &world.ends).await,
        "acknowledged once the upload completed"
    );
}

#[tokio::test]
async fn objects_carry_provenance_metadata_storage_class_and_encryption_and_are_verified() {
    const LOGS: usize = 1_200;
    let world = World::start(true, 2, LOGS, 100, 43).await;
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &archive_sink_sealed(
            &world.s3,
            "max_age = \"3s\"\nmax_events = 500",
            "storage_class = \"STANDARD_IA\"\nserver_side_encryption = \"AES256\"\n\
             verify_after_upload = true",
        ),
    );
    world
        .wait_checkpoints_at_end(
            "checkpoints at the end of both shards",
            Duration::from_secs(60),
        )
        .await;
    let objects = world.s3.objects(BUCKET).await;
    assert!(objects.len() >= 2, "{} objects", objects.len());
    let mut logs = 0;
    for object in &objects {
        let head = world.s3.head(BUCKET, &object.key).await;
        let meta = &head["metadata"];
        let text = |name: &str| meta[name].as_str().unwrap_or_default().to_owned();
        let context = format!("{}: {head}", object.key);
        assert_eq!(text("sls-project"), PROJECT, "{context}");
        assert_eq!(text("sls-logstore"), "audit", "{context}");
        assert_eq!(text("sls-consumer-group"), "g", "{context}");
        assert_eq!(text("format"), "json", "{context}");
        assert_eq!(text("compression"), "gzip", "{context}");
        assert!(text("writer").starts_with("siem-forwarder/"), "{context}");
        assert_eq!(text("logs"), object.logs.len().to_string(), "{context}");
        assert_eq!(
            text("content-sha256"),
            head["body_sha256"].as_str().unwrap(),
            "the digest of the body boto3 read back: {context}"
        );
        // The name ends in `_{shard}_{begin}_{end}.json.gz`; the metadata says the same.
        let id: Vec<&str> = object
            .key
            .trim_end_matches(".json.gz")
            .rsplit('_')
            .take(3)
            .collect();
        assert_eq!(text("sls-end-position"), id[0], "{context}");
        assert_eq!(text("sls-begin-position"), id[1], "{context}");
        assert_eq!(text("sls-shard"), id[2], "{context}");
        let positions = |name: &str| cursor::decode(&text(name)).unwrap().to_string();
        assert_eq!(positions("sls-begin-cursor"), id[1], "{context}");
        assert_eq!(positions("sls-end-cursor"), id[0], "{context}");
        assert_eq!(head["storage_class"], "STANDARD_IA", "{context}");
        assert_eq!(head["sse"], "AES256", "{context}");
        logs += object.logs.len();
    }
    assert_eq!(logs, LOGS);
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

/// `body` gzipped.
fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn create_only_leaves_an_object_already_stored_for_the_same_range_untouched() {
    const LOGS: usize = 600;
    let world = World::start(true, 1, LOGS, 100, 47).await;
    // One file of the whole shard, sealed at shutdown, under a partition without time:
    // its name is known before it is written.
    let end = cursor::decode(&world.ends[0]).unwrap();
    let key = format!("audit/archive_0_0_{end}.json.gz");
    world
        .s3
        .put(BUCKET, &key, &gzip(b"{\"marker\":\"earlier\"}\n"))
        .await;
    let before = world.s3.head(BUCKET, &key).await;
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &patient_consumer(),
        &archive_sink_sealed(
            &world.s3,
            SEALED_AT_SHUTDOWN,
            "partition = \"archive\"\ncreate_only = true",
        ),
    );
    wait_delivered(&forwarder, LOGS).await;
    let (code, _) = forwarder.terminate(Duration::from_secs(120)).await;
    assert_eq!(code, Some(0));
    let objects = world.s3.objects(BUCKET).await;
    assert_eq!(
        objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        [key.as_str()]
    );
    assert_eq!(objects[0].logs.len(), 1, "not written a second time");
    assert_eq!(objects[0].logs[0], serde_json::json!({"marker": "earlier"}));
    let after = world.s3.head(BUCKET, &key).await;
    assert_eq!(after["etag"], before["etag"]);
    assert_eq!(after["last_modified"], before["last_modified"]);
    assert!(
        checkpoints_at(&world.client, "g", &world.ends).await,
        "the batches are acknowledged: their logs are archived"
    );
}

#[tokio::test]
async fn virtual_hosted_requests_reach_the_bucket_through_a_resolved_name() {
    const LOGS: usize = 600;
    let world = World::start(true, 1, LOGS, 100, 53).await;
    // `archive.localhost` is in no DNS: only `resolve` makes it reachable.
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &archive_sink_at(
            &format!("http://localhost:{}", world.s3.port()),
            ("test", "test"),
            "max_age = \"3s\"\nmax_events = 200",
            "addressing_style = \"virtual_hosted\"\n\
             resolve = { \"archive.localhost\" = \"127.0.0.1\" }",
        ),
    );
    world
        .wait_checkpoints_at_end(
            "checkpoints at the end of the shard",
            Duration::from_secs(60),
        )
        .await;
    // moto takes the bucket from the Host header (`archive.localhost:PORT`) of requests
    // whose path holds the key alone.
    let log = world.s3.request_log();
    let puts: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("\"PUT /"))
        .collect();
    assert!(
        puts.iter()
            .any(|line| line.contains("\"PUT /audit/") && line.contains("\" 200 ")),
        "virtual-hosted PUTs: {puts:#?}"
    );
    assert!(
        !puts.iter().any(|line| line.contains("\"PUT /archive/")),
        "no path-style PUT: {puts:#?}"
    );
    let objects = world.s3.objects(BUCKET).await;
    let archived: usize = objects.iter().map(|object| object.logs.len()).sum();
    assert_eq!(archived, LOGS, "every log in bucket {BUCKET}");
    assert!(objects
        .iter()
        .all(|object| object.key.starts_with("audit/")));
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

/// The `.part` files in `dir`, with their sizes.
fn spool_files(dir: &std::path::Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "part"))
                .map(|entry| entry.metadata().map_or(0, |meta| meta.len()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `buffer` line of an archive spooling to `dir`.
fn spool_setting(dir: &std::path::Path) -> String {
    format!(
        "buffer = {{ dir = \"{}\", max_disk = \"256MiB\" }}",
        dir.display()
    )
}

#[tokio::test]
async fn a_disk_spool_is_wiped_at_start_and_locked_against_a_second_process() {
    const LOGS: usize = 1_200;
    let world = World::start(true, 1, LOGS, 200, 47).await;
    let spool = world.dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    // Left by a crash: never acknowledged, so its logs are redelivered.
    std::fs::write(spool.join("x.part"), b"half an object").unwrap();
    let sink = archive_sink(&world.s3, &spool_setting(&spool));
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    world
        .wait_checkpoints_at_end("checkpoints at the end", Duration::from_secs(120))
        .await;
    assert!(!spool.join("x.part").exists(), "the stale file is removed");
    let locked = forwarder
        .log_lines()
        .into_iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("spool directory locked"))
        })
        .expect("the spool's start is logged");
    assert_eq!(
        locked["removed"], 1,
        "how many leftovers were deleted: {locked}"
    );
    assert_eq!(
        spool_files(&spool),
        Vec::<u64>::new(),
        "stored objects leave the spool"
    );
    let archived = archived_ids(&world.s3.objects(BUCKET).await);
    assert_eq!(archived.len(), LOGS);
    assert!(archived.values().all(|&times| times == 1), "every log once");
    // A second process on the same directory is refused, naming the lock.
    let mut second = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g2", "n2"),
        &sink,
    );
    wait_until(
        "the second forwarder to exit",
        Duration::from_secs(60),
        || {
            let running = second.running();
            async move { !running }
        },
    )
    .await;
    let stderr = std::fs::read_to_string(&second.log).unwrap();
    let lock = spool.join(".lock");
    assert!(
        stderr.contains("locked by another process")
            && stderr.contains(&lock.display().to_string()),
        "names the lock {}: {stderr}",
        lock.display()
    );
    assert!(forwarder.running(), "the first keeps its spool");
    let (code, _) = forwarder.terminate(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn with_a_disk_spool_objects_waiting_for_a_stalled_bucket_are_on_disk_not_in_memory() {
    const LOGS: usize = 4_000;
    let world = World::start(true, 2, LOGS, 250, 53).await;
    let proxy = S3FaultProxy::start(&world.s3.endpoint).await;
    proxy.stall(&Kind::WRITES);
    let spool = world.dir.path().join("spool");
    let (id, secret) = &world.s3.keys;
    let sink = archive_sink_at(
        &proxy.endpoint(),
        (id, secret),
        "max_age = \"3s\"\nmax_events = 500",
        &spool_setting(&spool),
    );
    let mut forwarder = Forwarder::spawn(
        &world.server,
        world.dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    let metrics_url = format!("{}/metrics", forwarder.telemetry_url().await);
    let buffered = |page: &str, kind: &str| {
        metric_sum(
            page,
            &format!("siem_forwarder_archive_buffered_bytes{{sink=\"archive\",kind=\"{kind}\"}}"),
        )
    };
    // Every log sealed (a shard's pull holds all its logs, so one object each) and held by
    // the stall: the objects wait in the spool, and its bytes are published.
    wait_until(
        "the stalled objects spooled",
        Duration::from_secs(120),
        || {
            let (url, spool) = (&metrics_url, &spool);
            async move {
                let page = http_get(url).await.1;
                let files = spool_files(spool);
                files.len() == 2 && buffered(&page, "disk") == files.iter().sum::<u64>() as f64
            }
        },
    )
    .await;
    let page = http_get(&metrics_url).await.1;
    let (memory, disk) = (buffered(&page, "memory"), buffered(&page, "disk"));
    assert!(proxy.held() > 0, "uploads are stalled");
    assert!(disk >= 100_000.0, "spooled bytes published: {disk}");
    assert!(
        memory < 100_000.0,
        "sealed objects wait on disk, not in memory: memory {memory}, disk {disk}"
    );
    let status = http_get(&metrics_url.replace("/metrics", "/status"))
        .await
        .1;
    assert!(
        status.contains(&format!("\"spooled_bytes\":{disk}")),
        "{status}"
    );
    proxy.release();
    world
        .wait_checkpoints_at_end(
            "checkpoints at the end once released",
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(
        spool_files(&spool),
        Vec::<u64>::new(),
        "stored objects leave the spool"
    );
    let archived = archived_ids(&world.s3.objects(BUCKET).await);
    assert_eq!(archived.len(), LOGS);
    let (code, _) = forwarder.terminate(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0));
}

/// A configuration with an archive sink, with `lines` appended to the sink; and the
/// 1-based line of the last of them.
fn archive_config(lines: &str) -> (String, usize) {
    let text = format!(
        "[source]\nendpoint = \"http://127.0.0.1:9\"\nproject = \"my-project\"\nlogstores = [\"audit\"]\n\
         access_key_id = \"id\"\naccess_key_secret = \"secret\"\n\n[consumer]\ngroup = \"g\"\n\n\
         [[sinks]]\ntype = \"object_storage\"\nendpoint = \"http://127.0.0.1:9\"\n\
         region = \"us-east-1\"\nbucket = \"archive\"\naccess_key_id = \"id\"\n\
         secret_access_key = \"secret\"\n{lines}\n"
    );
    let line = text.lines().count();
    (text, line)
}

/// Runs `siem-forwarder validate` on `config`; fails after a generous deadline.
fn validate(config: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(["validate", "--config"])
        .arg(&path)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run siem-forwarder");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "validate did not exit in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn bad_upload_buffer_and_object_settings_are_refused_naming_key_and_line() {
    for (lines, key) in [
        ("upload = { part_size = \"4MiB\" }", "upload.part_size"),
        ("upload = { part_size = \"1GiB\" }", "upload.part_size"),
        (
            "upload = { part_concurrency = 0 }",
            "upload.part_concurrency",
        ),
        (
            "upload = { part_concurrency = 17 }",
            "upload.part_concurrency",
        ),
        ("buffer = { max_disk = \"1GiB\" }", "buffer.max_disk"),
        (
            "buffer = { dir = \"/tmp/archive-spool\", max_disk = \"100MiB\" }",
            "buffer.max_disk",
        ),
        ("storage_class = \"standard_ia\"", "storage_class"),
        ("storage_class = \"\"", "storage_class"),
        ("kms_key_id = \"alias/archive\"", "kms_key_id"),
        (
            "server_side_encryption = \"AES256\"\nkms_key_id = \"alias/archive\"",
            "kms_key_id",
        ),
        (
            "server_side_encryption = \"aes256\"",
            "server_side_encryption",
        ),
        ("object_metadata = \"yes\"", "object_metadata"),
        ("resolve = { \"archive.local\" = \"not-an-ip\" }", "resolve"),
        (
            "tls = { server_name = \"minio.internal\" }",
            "tls.server_name",
        ),
        ("tls = { ca_file = \"/nonexistent/ca.pem\" }", "tls.ca_file"),
    ] {
        let (config, line) = archive_config(lines);
        let output = validate(&config);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let context = format!("{lines}:\n{stderr}");
        assert_eq!(output.status.code(), Some(1), "{context}");
        assert!(!stderr.contains("panicked"), "{context}");
        assert!(stderr.contains(key), "names {key}: {context}");
        assert!(
            stderr.contains(&format!("line {line}:")),
            "names line {line}: {context}"
        );
    }
    for lines in [
        "upload = { part_size = \"5MiB\", part_concurrency = 1 }",
        "upload = { part_size = \"512MiB\", part_concurrency = 16 }",
        "server_side_encryption = \"aws:kms\"\nkms_key_id = \"alias/archive\"",
        "storage_class = \"GLACIER_IR\"\ncreate_only = true\nverify_after_upload = true\n\
         object_metadata = false",
        "resolve = { \"archive.minio.internal\" = \"10.0.0.5\", \"minio.internal\" = \"::1\" }",
    ] {
        let (config, _) = archive_config(lines);
        let output = validate(&config);
        assert!(
            output.status.success(),
            "{lines}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
