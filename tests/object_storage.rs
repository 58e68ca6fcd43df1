//! The `object_storage` sink in a running forwarder process against a real S3-compatible server
//! (moto), read back with boto3 and Python's gzip: every log archived exactly once under names
//! made of the shard's cursor range, checkpoints only past stored objects, a missing bucket
//! holding everything back until it exists, and a crash never putting different logs under a
//! name already written.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use siem_forwarder::source::cursor;
use support::archive_world::{
    archive_sink, archive_sink_sealed, archived_ids, checkpoints_at, name_parts, shard_ends, World,
    BUCKET,
};
use support::forwarder::{fast_consumer, Forwarder};
use support::s3::StoredObject;
use support::{http_get, poll_until, wait_until};

#[tokio::test]
async fn archives_every_log_once_named_by_cursor_range_and_checkpoints_after_storing() {
    const LOGS: usize = 3_000;
    let World {
        s3,
        server,
        client,
        ends,
        dir,
    } = World::start(true, 2, LOGS, 100, 7).await;
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &archive_sink(&s3, ""),
    );
    wait_until(
        "checkpoints at the end of both shards",
        Duration::from_secs(60),
        || checkpoints_at(&client, "g", &ends),
    )
    .await;
    let objects = s3.objects(BUCKET).await;
    // Every log exactly once: the same set the file sink delivered, no duplicates.
    let archived = archived_ids(&objects);
    assert_eq!(archived.values().sum::<usize>(), LOGS, "each log once");
    let delivered: BTreeSet<String> = forwarder
        .delivered()
        .iter()
        .map(support::forwarder::event_id)
        .collect();
    assert_eq!(archived.keys().cloned().collect::<BTreeSet<_>>(), delivered);
    // The flattened form: integer __time__, then topic and source, then the contents.
    let first: &Value = &objects[0].logs[0];
    assert!(first["__time__"].is_u64(), "{first}");
    assert!(
        first["__topic__"].is_string() && first["__source__"].is_string(),
        "{first}"
    );
    // Names tile each shard's cursor range without gaps, from 0 to the checkpoint.
    let mut ranges: BTreeMap<u32, Vec<(i64, i64, usize)>> = BTreeMap::new();
    for object in &objects {
        assert_eq!(object.content_type, "application/gzip", "{}", object.key);
        let (shard, begin, end) = name_parts(&object.key);
        ranges
            .entry(shard)
            .or_default()
            .push((begin, end, object.logs.len()));
    }
    for (shard, mut spans) in ranges {
        spans.sort_unstable();
        let mut next = 0;
        for (begin, end, logs) in &spans {
            assert_eq!(*begin, next, "shard {shard}: ranges tile {spans:?}");
            assert!(
                *logs <= 500 + 1_000,
                "max_events seals after the batch that reaches it"
            );
            next = *end;
        }
        let checkpoint = cursor::decode(&ends[shard as usize]).unwrap();
        assert_eq!(
            next, checkpoint,
            "shard {shard}: the checkpoint is the last object's end"
        );
    }
    check_archive_telemetry(&forwarder, &objects).await;
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

/// The value of the series `series` (name and labels) in a Prometheus text `page`.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Once everything is stored: `/metrics` counts the objects, their bytes and why they were
/// sealed, and shows nothing held; `/status` lists them among the finished uploads.
async fn check_archive_telemetry(forwarder: &Forwarder, objects: &[StoredObject]) {
    let url = forwarder.telemetry_url().await;
    let stored = objects.len() as f64;
    let page = poll_until_page(&format!("{url}/metrics"), |page| {
        metric(page, "siem_forwarder_archive_open_files{sink=\"archive\"}") == Some(0.0)
            && metric(
                page,
                "siem_forwarder_archive_objects_total{sink=\"archive\",format=\"json\"}",
            ) == Some(stored)
    })
    .await;
    assert_eq!(
        metric(
            &page,
            "siem_forwarder_archive_objects_total{sink=\"archive\",format=\"json\"}"
        ),
        Some(stored),
        "{page}"
    );
    let seals: f64 = [
        "size",
        "events",
        "age",
        "consumer_limit",
        "memory",
        "gap",
        "stop",
        "drain",
        "release",
    ]
    .iter()
    .filter_map(|reason| {
        metric(
            &page,
            &format!("siem_forwarder_archive_seals_total{{sink=\"archive\",reason=\"{reason}\"}}"),
        )
    })
    .sum();
    assert_eq!(
        seals, stored,
        "every stored object was sealed once:\n{page}"
    );
    let uncompressed = metric(
        &page,
        "siem_forwarder_archive_uncompressed_bytes_total{sink=\"archive\"}",
    )
    .unwrap();
    let bodies: u64 = objects.iter().map(|object| object.size).sum();
    assert!(
        uncompressed > bodies as f64,
        "gzip shrinks audit JSON: {uncompressed} vs {bodies}"
    );
    assert_eq!(
        metric(
            &page,
            "siem_forwarder_archive_buffered_bytes{sink=\"archive\",kind=\"memory\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &page,
            "siem_forwarder_archive_oldest_unuploaded_seconds{sink=\"archive\"}"
        ),
        Some(0.0)
    );
    let (_, status) = http_get(&format!("{url}/status")).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    let archive = &status["sinks"]["archive"]["archive"];
    assert_eq!(archive["open_files"], serde_json::json!([]), "{archive}");
    assert_eq!(archive["uploading"], serde_json::json!([]), "{archive}");
    let history: BTreeSet<&str> = archive["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finished| finished["key"].as_str().unwrap())
        .collect();
    let keys: BTreeSet<&str> = objects.iter().map(|object| object.key.as_str()).collect();
    assert_eq!(history, keys, "the finished uploads");
}

/// The body of `url` once `ready` holds for it, within a generous deadline.
async fn poll_until_page(url: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = http_get(url).await;
        if ready(&page) || std::time::Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_missing_bucket_holds_every_checkpoint_until_it_exists() {
    const LOGS: usize = 400;
    let World {
        s3,
        server,
        client,
        ends,
        dir,
    } = World::start(false, 1, LOGS, 100, 11).await;
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &archive_sink(&s3, ""),
    );
    let readyz = format!("{}/readyz", forwarder.telemetry_url().await);
    wait_until(
        "the archive to report the missing bucket",
        Duration::from_secs(60),
        || {
            let readyz = readyz.clone();
            async move {
                let (status, body) = http_get(&readyz).await;
                status == 503 && body.contains("sink:archive") && body.contains("NoSuchBucket")
            }
        },
    )
    .await;
    wait_until("a second refused attempt", Duration::from_secs(30), || {
        let refusals = forwarder
            .log_lines()
            .iter()
            .filter(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("the bucket refused the object"))
            })
            .count();
        async move { refusals >= 2 }
    })
    .await;
    // The file sink delivered everything, but nothing is stored: no checkpoint moved.
    let checkpoints = client.get_checkpoints("audit", "g").await.unwrap();
    assert!(
        checkpoints
            .iter()
            .all(|c| c.checkpoint.is_empty() || cursor::decode(&c.checkpoint) == Ok(0)),
        "nothing acknowledged while the bucket is missing: {checkpoints:?}"
    );
    s3.create_bucket(BUCKET).await;
    wait_until(
        "checkpoints at the end once the bucket exists",
        Duration::from_secs(60),
        || checkpoints_at(&client, "g", &ends),
    )
    .await;
    let archived = archived_ids(&s3.objects(BUCKET).await);
    assert_eq!(archived.len(), LOGS);
    assert!(archived.values().all(|count| *count == 1), "each log once");
    assert!(
        poll_until(Duration::from_secs(10), || {
            let readyz = readyz.clone();
            async move { http_get(&readyz).await.0 == 200 }
        })
        .await,
        "healthy again once stored"
    );
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn after_a_crash_a_name_is_only_ever_rewritten_with_the_same_logs() {
    const LOGS: usize = 4_000;
    let World {
        s3,
        server,
        client,
        ends,
        dir,
    } = World::start(true, 2, LOGS, 100, 23).await;
    // Partitions by log time, so the names do not depend on when each process ran.
    let sink = archive_sink(&s3, "partition_time = \"log\"");
    let mut first = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    wait_until("a first object", Duration::from_secs(60), || {
        let s3 = &s3;
        async move { !s3.objects(BUCKET).await.is_empty() }
    })
    .await;
    first.kill().await;
    let before: BTreeMap<String, Vec<Value>> = s3
        .objects(BUCKET)
        .await
        .into_iter()
        .map(|object| (object.key, object.logs))
        .collect();
    let mut second = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n2"),
        &sink,
    );
    wait_until(
        "checkpoints at the end after the restart",
        Duration::from_secs(60),
        || checkpoints_at(&client, "g", &ends),
    )
    .await;
    let after = s3.objects(BUCKET).await;
    for object in &after {
        if let Some(logs) = before.get(&object.key) {
            assert_eq!(
                &object.logs, logs,
                "{} rewritten with other logs",
                object.key
            );
        }
    }
    let archived = archived_ids(&after);
    assert_eq!(archived.len(), LOGS, "every log archived at least once");
    let (code, _) = second.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn csv_objects_hold_the_configured_columns_for_pythons_csv_reader() {
    const LOGS: usize = 300;
    let World {
        s3,
        server,
        client,
        ends,
        dir,
    } = World::start(true, 1, LOGS, 100, 5).await;
    let sink = archive_sink(
        &s3,
        "format = \"csv\"\n\
         columns = [\"__time__\", { key = \"event_id\", name = \"id\" }, \"__topic__\", \"no_such_key\"]\n\
         csv = { delimiter = \";\", quote = \"'\", null_value = \"\\\\N\", header = true }",
    );
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    wait_until("checkpoints at the end", Duration::from_secs(60), || {
        checkpoints_at(&client, "g", &ends)
    })
    .await;
    let delivered: BTreeMap<String, Value> = forwarder
        .delivered()
        .into_iter()
        .map(|log| (support::forwarder::event_id(&log), log))
        .collect();
    let objects = s3.csv_objects(BUCKET, ";", "'").await;
    let mut rows = 0;
    for object in &objects {
        assert!(object.key.ends_with(".csv.gz"), "{}", object.key);
        assert_eq!(
            object.logs[0],
            serde_json::json!(["__time__", "id", "__topic__", "no_such_key"])
        );
        for row in &object.logs[1..] {
            let id = row[1].as_str().unwrap();
            let log = &delivered[id];
            assert_eq!(row[0], log["__time__"].to_string(), "{row}");
            assert_eq!(row[2], log["__topic__"], "{row}");
            assert_eq!(row[3], "\\N", "a missing key is the null value");
            rows += 1;
        }
    }
    assert_eq!(rows, LOGS);
    // DuckDB's own CSV reader agrees: the header names, the values, and the null value as null.
    let duckdb = s3.duckdb_csv(BUCKET, ";", "'", "\\N").await;
    assert_eq!(duckdb.len(), LOGS);
    for row in &duckdb {
        let log = &delivered[row["id"].as_str().unwrap()];
        assert_eq!(row["__time__"], log["__time__"].to_string(), "{row}");
        assert_eq!(row["__topic__"], log["__topic__"], "{row}");
        assert_eq!(row["no_such_key"], Value::Null, "{row}");
    }
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

/// Read back with zstandard (libzstd), python-snappy and lz4 (the C libraries' bindings).
#[tokio::test]
async fn every_compression_reads_back_with_independent_decompressors() {
    const LOGS: usize = 200;
    const COMPRESSIONS: [(&str, &str); 5] = [
        ("zstd", ".json.zst"),
        ("snappy", ".json.snappy"),
        ("snappy_framed", ".json.sz"),
        ("lz4", ".json.lz4"),
        ("none", ".json"),
    ];
    let World {
        s3,
        server,
        client,
        ends,
        dir,
    } = World::start(true, 1, LOGS, 50, 3).await;
    let mut sinks = String::new();
    for (compression, _) in COMPRESSIONS {
        sinks.push_str(&format!(
            "\n[[sinks]]\ntype = \"object_storage\"\nname = \"archive-{compression}\"\n\
             endpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\nmax_age = \"3s\"\n\
             prefix = \"{compression}/\"\ncompression = \"{compression}\"\n",
            s3.endpoint
        ));
    }
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sinks,
    );
    wait_until("checkpoints at the end", Duration::from_secs(60), || {
        checkpoints_at(&client, "g", &ends)
    })
    .await;
    let delivered: Vec<Value> = forwarder.delivered();
    let objects = s3.objects(BUCKET).await;
    for (compression, extension) in COMPRESSIONS {
        let mut logs: Vec<&Value> = objects
            .iter()
            .filter(|object| object.key.starts_with(&format!("{compression}/")))
            .inspect(|object| assert!(object.key.ends_with(extension), "{}", object.key))
            .flat_map(|object| &object.logs)
            .collect();
        logs.sort_by_key(|log| support::forwarder::event_id(log));
        let mut expected: Vec<&Value> = delivered.iter().collect();
        expected.sort_by_key(|log| support::forwarder::event_id(log));
        assert_eq!(
            logs, expected,
            "{compression}: the logs as the file sink wrote them"
        );
    }
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn sigterm_stores_an_open_file_of_many_batches_and_checkpoints_past_it() {
    const LOGS: usize = 2_000;
    // 20 log groups pulled two at a time: 10 batches, all in one file that nothing but the
    // shutdown seals (ten minutes of age, no event limit).
    let World {
        s3,
        server,
        client,
        ends,
        dir,
    } = World::start(true, 1, LOGS, 100, 31).await;
    let consumer = format!("{}max_fetch_groups = 2\n", fast_consumer("g", "n1"));
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &consumer,
        &archive_sink_sealed(&s3, "max_age = \"10m\"", ""),
    );
    wait_until(
        "every log pulled and delivered to the file sink",
        Duration::from_secs(60),
        || {
            let delivered = forwarder.delivered().len();
            async move { delivered == LOGS }
        },
    )
    .await;
    assert!(
        s3.objects(BUCKET).await.is_empty(),
        "more than four batches of a shard stay in one open file"
    );
    let checkpoints = client.get_checkpoints("audit", "g").await.unwrap();
    assert!(
        checkpoints
            .iter()
            .all(|c| c.checkpoint.is_empty() || cursor::decode(&c.checkpoint) == Ok(0)),
        "nothing acknowledged while the file is open: {checkpoints:?}"
    );
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
    let objects = s3.objects(BUCKET).await;
    assert_eq!(objects.len(), 1, "the open file, stored on SIGTERM");
    let (_, begin, end) = name_parts(&objects[0].key);
    assert_eq!(objects[0].logs.len(), LOGS);
    assert_eq!(begin, 0);
    assert_eq!(end, cursor::decode(&ends[0]).unwrap());
    assert!(
        checkpoints_at(&client, "g", &ends).await,
        "the final checkpoint covers the stored file"
    );
}

/// The typed logs of the Parquet test: log `i` has time `1_700_000_000 + i` and values of
/// every type, some of which do not convert (they must read back as null) and, for odd `i`,
/// no `note` at all.
fn typed_log(i: u32) -> siem_forwarder::source::protobuf::Log {
    let status = match i % 7 {
        3 => "n/a".to_owned(),
        5 => format!(" {} ", 400 + i),
        _ => (200 + i).to_string(),
    };
    let bytes = if i % 11 == 0 {
        "12abc".to_owned()
    } else {
        (i64::from(i) * 1_000_000_007).to_string()
    };
    let ratio = if i % 13 == 0 {
        "1,5".to_owned()
    } else {
        format!("{i}.25")
    };
    let latency = if i % 5 == 0 {
        String::new()
    } else {
        format!("{i}.125")
    };
    let ok = ["true", "FALSE", "1", "0", "yes"][i as usize % 5];
    let mut contents = vec![
        ("id".to_owned(), format!("log-{i:04}")),
        ("status".to_owned(), status),
        ("bytes".to_owned(), bytes),
        ("ratio".to_owned(), ratio),
        ("latency".to_owned(), latency),
        ("ok".to_owned(), ok.to_owned()),
    ];
    if i % 2 == 0 {
        contents.push(("note".to_owned(), format!("héllo; \"{i}\", ok")));
    }
    siem_forwarder::source::protobuf::Log {
        time: 1_700_000_000 + i,
        time_ns: None,
        contents,
    }
}

/// What pyarrow must read for `typed_log(i)`: the value converted, or null when it does not
/// convert or is missing.
fn typed_row(i: u32) -> Value {
    let status = match i % 7 {
        3 => Value::Null,
        5 => (400 + i).into(),
        _ => (200 + i).into(),
    };
    let bytes = if i % 11 == 0 {
        Value::Null
    } else {
        (i64::from(i) * 1_000_000_007).into()
    };
    let ratio = if i % 13 == 0 {
        Value::Null
    } else {
        (f64::from(i) + 0.25).into()
    };
    let latency = if i % 5 == 0 {
        Value::Null
    } else {
        (f64::from(i) + 0.125).into()
    };
    let ok = [Some(true), Some(false), Some(true), Some(false), None][i as usize % 5];
    let note = (i % 2 == 0).then(|| format!("héllo; \"{i}\", ok"));
    serde_json::json!({
        "id": format!("log-{i:04}"),
        "time": 1_700_000_000 + i,
        "status": status,
        "bytes": bytes,
        "ratio": ratio,
        "latency": latency,
        "ok": ok,
        "note": note,
    })
}

/// Read back with pyarrow (the Arrow C++ Parquet reader) and DuckDB (its own reader).
#[tokio::test]
async fn parquet_objects_have_the_configured_typed_schema_for_pyarrow_and_duckdb() {
    const LOGS: u32 = 240;
    let World {
        s3,
        server,
        client,
        dir,
        ..
    } = World::start(true, 1, 0, 100, 1).await;
    for first in (0..LOGS).step_by(40) {
        let group = siem_forwarder::source::protobuf::LogGroup {
            logs: (first..first + 40).map(typed_log).collect(),
            topic: Some("typed".into()),
            ..Default::default()
        };
        client
            .put_logs(
                "audit",
                siem_forwarder::source::api::put_logs::PutTarget::LoadBalanced,
                &group,
            )
            .await
            .unwrap();
    }
    let ends = shard_ends(&client, 1).await;
    let sink = archive_sink(
        &s3,
        "format = \"parquet\"\n\
         columns = [\"id\", { key = \"__time__\", name = \"time\", type = \"int64\" }, \
                    { key = \"status\", type = \"int32\" }, { key = \"bytes\", type = \"int64\" }, \
                    { key = \"ratio\", type = \"float\" }, { key = \"latency\", type = \"double\" }, \
                    { key = \"ok\", type = \"boolean\" }, { key = \"note\", type = \"string\" }]",
    );
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        &sink,
    );
    wait_until("checkpoints at the end", Duration::from_secs(60), || {
        checkpoints_at(&client, "g", &ends)
    })
    .await;
    let read = s3.parquet(BUCKET).await;
    let objects = read["objects"].as_array().unwrap();
    assert!(!objects.is_empty());
    let mut rows = Vec::new();
    for object in objects {
        let key = object["key"].as_str().unwrap();
        assert!(
            key.starts_with("audit/") && key.ends_with(".parquet"),
            "{key}"
        );
        assert_eq!(object["content_type"], "application/vnd.apache.parquet");
        assert_eq!(
            object["schema"],
            serde_json::json!([
                ["id", "string", true],
                ["time", "int64", true],
                ["status", "int32", true],
                ["bytes", "int64", true],
                ["ratio", "float", true],
                ["latency", "double", true],
                ["ok", "bool", true],
                ["note", "string", true],
            ]),
            "{key}"
        );
        assert_eq!(object["codecs"], serde_json::json!(["SNAPPY"]), "{key}");
        assert_eq!(
            object["created_by"],
            format!("siem-forwarder {}", env!("CARGO_PKG_VERSION"))
        );
        rows.extend(object["rows"].as_array().unwrap().iter().cloned());
    }
    rows.sort_by_key(|row| row["id"].as_str().unwrap().to_owned());
    let expected: Vec<Value> = (0..LOGS).map(typed_row).collect();
    assert_eq!(rows.len(), expected.len(), "each log once");
    for (row, expected) in rows.iter().zip(&expected) {
        assert_eq!(row, expected);
    }
    assert_eq!(read["duckdb_count"], LOGS, "DuckDB counts every log");
    // Failed conversions are counted per column; a missing key (note) is not a failure.
    let url = forwarder.telemetry_url().await;
    let (_, page) = http_get(&format!("{url}/metrics")).await;
    let failed = |every: u32, at: u32| (0..LOGS).filter(|i| i % every == at).count() as f64;
    for (column, expected) in [
        ("status", failed(7, 3)),
        ("bytes", failed(11, 0)),
        ("ratio", failed(13, 0)),
        ("latency", failed(5, 0)),
        ("ok", failed(5, 4)),
    ] {
        let series = format!(
            "siem_forwarder_archive_conversion_nulls_total{{sink=\"archive\",column=\"{column}\"}}"
        );
        assert_eq!(metric(&page, &series), Some(expected), "{series}\n{page}");
    }
    assert_eq!(
        metric(
            &page,
            "siem_forwarder_archive_conversion_nulls_total{sink=\"archive\",column=\"note\"}"
        )
        .unwrap_or(0.0),
        0.0
    );
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
}
