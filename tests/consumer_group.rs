//! The consumer-group runtime with real `siem-forwarder run` processes sharing one group on
//! the local server: balancing, crash and clean hand-over, resume, start positions.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::Mutex;

use siem_forwarder::common::time::unix_now;
use siem_forwarder::local_server::DeniedAction;
use siem_forwarder::source::api::cursor::CursorFrom;
use support::forwarder::{
    all_held_since, consumer_with_timeout, event_id, fast_consumer, Forwarder, DRAIN_TIMEOUT_SECS,
};
use support::{put_audit_logs, wait_until, TestServer};

/// The tests of this file start several processes each and check hand-over timings; they
/// run one at a time so that they do not compete for the machine's cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Every delivered log across `forwarders`, counted by event id.
fn delivery_counts(forwarders: &[&Forwarder]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for forwarder in forwarders {
        for log in forwarder.delivered() {
            *counts.entry(event_id(&log)).or_default() += 1;
        }
    }
    counts
}

/// Starts one forwarder per name on the 8-shard logstore `audit`, with a group timeout of
/// `group_timeout_secs`, and waits until every shard is held and each process holds at
/// least two.
async fn balanced_group(
    server: &TestServer,
    dir: &std::path::Path,
    names: &[&str],
    group_timeout_secs: u64,
) -> Vec<Forwarder> {
    let forwarders: Vec<Forwarder> = names
        .iter()
        .map(|name| {
            let consumer = consumer_with_timeout("g", name, group_timeout_secs);
            Forwarder::spawn(server, dir, "audit", &consumer, "")
        })
        .collect();
    wait_until("a balanced group", Duration::from_secs(60), || {
        let held: Vec<usize> = forwarders.iter().map(|f| f.assigned().len()).collect();
        async move { held.iter().sum::<usize>() == 8 && held.iter().all(|n| *n >= 2) }
    })
    .await;
    forwarders
}

async fn wait_for_all(forwarders: &[&Forwarder], expected: usize, timeout: Duration) {
    wait_until(
        &format!("{expected} distinct logs delivered"),
        timeout,
        || {
            let distinct = delivery_counts(forwarders).len();
            async move { distinct >= expected }
        },
    )
    .await;
}

#[tokio::test]
async fn three_processes_balance_eight_shards_and_deliver_everything_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const LOGS: usize = 50_000;
    let server = TestServer::start(&[("audit", 8)]).await;
    put_audit_logs(&server.client(), "audit", LOGS, 500, 11).await;
    let dir = tempfile::tempdir().unwrap();
    let forwarders: Vec<Forwarder> = ["p1", "p2", "p3"]
        .iter()
        .map(|name| Forwarder::spawn(&server, dir.path(), "audit", &fast_consumer("g", name), ""))
        .collect();
    wait_until(
        "each process to hold 2 or 3 shards",
        Duration::from_secs(60),
        || {
            let held: Vec<BTreeSet<u32>> = forwarders.iter().map(Forwarder::assigned).collect();
            async move {
                let all: BTreeSet<u32> = held.iter().flatten().copied().collect();
                held.iter().all(|shards| (2..=3).contains(&shards.len())) && all.len() == 8
            }
        },
    )
    .await;
    // Measured on the processes' own log timestamps: from the last one joining to the last
    // assignment change. Typically 2-4 s (one heartbeat for the first owner to learn of the
    // new members, its drain, one for the new owners to be granted the released shards), but
    // a busy machine stretches each step, so only an order of magnitude is checked.
    let joined = forwarders
        .iter()
        .filter_map(|f| f.logged_at("joining consumer group", true))
        .max()
        .unwrap();
    let balanced = forwarders
        .iter()
        .filter_map(|f| f.logged_at("shard assignment changed", false))
        .max()
        .unwrap();
    let balanced_after = (balanced - joined).to_std().unwrap();
    eprintln!("balanced {balanced_after:?} after the last join");
    assert!(
        balanced_after <= Duration::from_secs(30),
        "balanced {balanced_after:?} after the last join"
    );

    let all: Vec<&Forwarder> = forwarders.iter().collect();
    wait_for_all(&all, LOGS, Duration::from_secs(120)).await;
    let counts = delivery_counts(&all);
    assert_eq!(counts.len(), LOGS);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} logs delivered more than once",
        twice.len()
    );
}

#[tokio::test]
async fn kill_nine_moves_shards_after_the_timeout_and_loses_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(&[("audit", 8)]).await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    // A 10 s group timeout, so that "after the timeout" stands well apart from scheduling
    // delays of a few seconds.
    let mut forwarders = balanced_group(&server, dir.path(), &["k1", "k2", "k3"], 10).await;

    // Mid-stream: logs keep arriving while the victim is killed.
    put_audit_logs(&client, "audit", 20_000, 250, 21).await;
    wait_until(
        "the victim to deliver some logs",
        Duration::from_secs(30),
        || {
            let delivered = forwarders[0].delivered().len();
            async move { delivered > 0 }
        },
    )
    .await;
    let kill_sent = chrono::Utc::now().fixed_offset();
    forwarders[0].kill().await;
    let killed = chrono::Utc::now().fixed_offset();
    put_audit_logs(&client, "audit", 20_000, 250, 22).await;

    let survivors: Vec<&Forwarder> = forwarders[1..].iter().collect();
    wait_until(
        "the survivors to hold every shard",
        Duration::from_secs(60),
        || {
            let held: BTreeSet<u32> = survivors.iter().flat_map(|f| f.assigned()).collect();
            async move { held.len() == 8 }
        },
    )
    .await;
    // Measured on the survivors' own log timestamps, so that neither the writes above nor
    // the polling count. The server moves the shards 10 s after the victim's last heartbeat,
    // which was sent every second: unless the victim was starved for 5 s before the kill,
    // that is 5 s or more after it. Typically 9-10 s.
    let moved = all_held_since(&survivors, 8, kill_sent).expect("the survivors logged it");
    let moved_after_kill = (moved - killed).to_std().unwrap_or_default();
    let moved_after_signal = (moved - kill_sent).to_std().unwrap_or_default();
    eprintln!("shards moved {moved_after_kill:?} after the kill");
    assert!(
        moved_after_kill >= Duration::from_secs(5),
        "shards moved before the 10 s group timeout: {moved_after_kill:?}"
    );
    assert!(
        moved_after_signal <= Duration::from_secs(40),
        "shards moved only after {moved_after_signal:?}"
    );

    let everyone: Vec<&Forwarder> = forwarders.iter().collect();
    wait_for_all(&everyone, 40_000, Duration::from_secs(120)).await;
    let victim_logs: BTreeSet<String> = forwarders[0].delivered().iter().map(event_id).collect();
    let counts = delivery_counts(&everyone);
    assert_eq!(counts.len(), 40_000, "every log delivered at least once");
    for (id, count) in &counts {
        if *count > 1 {
            assert!(
                victim_logs.contains(id),
                "log {id} duplicated although the killed process never delivered it"
            );
        }
    }
    let duplicates = counts.values().filter(|n| **n > 1).count();
    assert!(duplicates <= victim_logs.len());
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_hands_over_at_once_without_duplicates() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(&[("audit", 8)]).await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    // A 30 s group timeout, so that a hand-over at once stands well apart from one after the
    // timeout.
    let mut forwarders = balanced_group(&server, dir.path(), &["t1", "t2", "t3"], 30).await;
    put_audit_logs(&client, "audit", 20_000, 250, 31).await;
    wait_until(
        "the leaver to deliver some logs",
        Duration::from_secs(30),
        || {
            let delivered = forwarders[0].delivered().len();
            async move { delivered > 0 }
        },
    )
    .await;

    let signalled = chrono::Utc::now().fixed_offset();
    let (code, took) = forwarders[0].terminate(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "clean exit");
    // The drain is bounded by the drain timeout; the rest is process start-up of `kill` and
    // the exit itself.
    eprintln!("exited {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(DRAIN_TIMEOUT_SECS + 10),
        "exited {took:?} after SIGTERM, past the {DRAIN_TIMEOUT_SECS} s drain timeout"
    );
    let others: Vec<&Forwarder> = forwarders[1..].iter().collect();
    wait_until(
        "the others to hold every shard",
        Duration::from_secs(60),
        || {
            let held: BTreeSet<u32> = others.iter().flat_map(|f| f.assigned()).collect();
            async move { held.len() == 8 }
        },
    )
    .await;
    // Measured on the processes' own log timestamps. The leaver heartbeats while it drains,
    // so its last regular heartbeat is at most about 1 s before its final one: shards that
    // moved only after the 30 s group timeout would move 29 s or more after the final
    // heartbeat. Typically they move within 1-2 s.
    let released = forwarders[0]
        .logged_at("released shards", false)
        .expect("the final heartbeat released the shards");
    let moved = all_held_since(&others, 8, signalled).expect("the others logged it");
    let moved_after = (moved - released).to_std().unwrap_or_default();
    eprintln!("shards moved {moved_after:?} after the final heartbeat");
    assert!(
        moved_after < Duration::from_secs(15),
        "moved at once, not after the 30 s timeout: {moved_after:?}"
    );

    put_audit_logs(&client, "audit", 10_000, 250, 32).await;
    let everyone: Vec<&Forwarder> = forwarders.iter().collect();
    wait_for_all(&everyone, 30_000, Duration::from_secs(120)).await;
    let counts = delivery_counts(&everyone);
    assert_eq!(counts.len(), 30_000);
    assert!(counts.values().all(|n| *n == 1), "no log delivered twice");
}

/// A process holding many shards keeps its connections to the log service bounded by
/// `source.max_inflight_requests`: against a server that serves 16 connections at once, one
/// process takes 64 shards, delivers every log and commits every shard's end, without
/// waiting for idle connections to be closed (60 s) and without failed commits.
#[tokio::test]
async fn many_shards_in_one_process_stay_within_the_servers_connections() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const SHARDS: u32 = 64;
    const LOGS: usize = 6_400;
    let server = TestServer::start_with_connections(&[("audit", SHARDS)], 16).await;
    let client = server.client();
    put_audit_logs(&client, "audit", LOGS, 50, 61).await;
    let dir = tempfile::tempdir().unwrap();
    let consumer = "group = \"g\"\nname = \"wide\"\nheartbeat_interval = \"2s\"\n\
                    group_timeout = \"10s\"\ncheckpoint_interval = \"500ms\"\n\
                    fetch_interval = \"200ms\"\n";
    let forwarder = Forwarder::spawn_with_source(
        &server,
        dir.path(),
        &["audit"],
        "max_inflight_requests = 8\n",
        consumer,
        "",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    wait_until("every shard held", left(), || {
        let held = forwarder.assigned().len();
        async move { held == SHARDS as usize }
    })
    .await;
    wait_for_all(&[&forwarder], LOGS, left()).await;
    let mut ends = Vec::new();
    for shard in 0..SHARDS {
        let end = client
            .get_cursor("audit", shard, CursorFrom::End)
            .await
            .unwrap();
        ends.push(end);
    }
    wait_until("every shard committed at its end", left(), || {
        let (client, ends) = (&client, &ends);
        async move {
            for (shard, end) in (0..SHARDS).zip(ends) {
                match client.get_checkpoint("audit", "g", shard).await {
                    Ok(Some(stored)) if stored.checkpoint == *end => {}
                    _ => return false,
                }
            }
            true
        }
    })
    .await;
    assert_eq!(delivery_counts(&[&forwarder]).len(), LOGS);
    assert!(
        !forwarder.logged("checkpoint commit failed; will retry"),
        "a commit failed"
    );
}

#[tokio::test]
async fn a_restarted_process_resumes_from_its_checkpoints() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(&[("audit", 4)]).await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    put_audit_logs(&client, "audit", 8_000, 400, 41).await;
    let mut first = Forwarder::spawn(&server, dir.path(), "audit", &fast_consumer("g", "r1"), "");
    wait_for_all(&[&first], 8_000, Duration::from_secs(60)).await;
    let (code, _) = first.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));

    put_audit_logs(&client, "audit", 2_000, 400, 42).await;
    let second = Forwarder::spawn(&server, dir.path(), "audit", &fast_consumer("g", "r2"), "");
    wait_for_all(&[&first, &second], 10_000, Duration::from_secs(60)).await;
    assert_eq!(
        second.delivered().len(),
        2_000,
        "only the logs written after the checkpoints"
    );
    let counts = delivery_counts(&[&first, &second]);
    assert!(counts.values().all(|n| *n == 1));
}

#[tokio::test]
async fn start_positions_apply_only_where_no_checkpoint_exists() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(&[("audit", 2)]).await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    put_audit_logs(&client, "audit", 1_000, 250, 51).await; // 2 groups per shard
                                                            // A later second: the server stamps groups with their receive time in whole seconds.
    let first_written = unix_now();
    wait_until(
        "the clock to pass the first write",
        Duration::from_secs(3),
        || async move { unix_now() > first_written },
    )
    .await;
    let later = chrono::DateTime::from_timestamp(i64::from(unix_now()), 0)
        .unwrap()
        .to_rfc3339();
    put_audit_logs(&client, "audit", 500, 250, 50).await;
    // Shard 0 of group "from-end" already has a checkpoint after its first group.
    client
        .create_consumer_group("audit", "from-end", 4, false)
        .await
        .unwrap();
    client
        .update_checkpoint("audit", "from-end", "someone", 0, "MQ==", true)
        .await
        .unwrap();

    let begin = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("from-begin", "b1"),
        "",
    );
    let time_config = format!("{}start = \"{later}\"\n", fast_consumer("from-time", "m1"));
    let from_time = Forwarder::spawn(&server, dir.path(), "audit", &time_config, "");
    let end_config = format!("{}start = \"end\"\n", fast_consumer("from-end", "e1"));
    let end = Forwarder::spawn(&server, dir.path(), "audit", &end_config, "");
    wait_for_all(&[&begin], 1_500, Duration::from_secs(60)).await;
    let existing: BTreeSet<String> = begin.delivered().iter().map(event_id).collect();
    wait_for_all(&[&from_time], 500, Duration::from_secs(60)).await;
    let second_batch: BTreeSet<String> = begin.delivered()[..].iter().map(event_id).collect();
    let timed: Vec<String> = from_time.delivered().iter().map(event_id).collect();
    assert_eq!(
        timed.len(),
        500,
        "a start time skips what was received before it"
    );
    assert!(timed.iter().all(|id| second_batch.contains(id)));
    wait_until(
        "the end-start consumer to hold both shards",
        Duration::from_secs(30),
        || {
            let held = end.assigned().len();
            async move { held == 2 }
        },
    )
    .await;
    // The checkpointed shard 0 resumes after its first group: its other two groups (500
    // logs) are delivered; shard 1 starts at the end and delivers nothing old.
    wait_until(
        "the checkpointed shard's remaining logs",
        Duration::from_secs(30),
        || {
            let delivered = end.delivered().len();
            async move { delivered >= 500 }
        },
    )
    .await;
    // Shard 1 starts at the end as of when its start cursor is looked up; write the new logs
    // only after that, or they would predate the start.
    wait_until(
        "the end-start consumer to start shard 1",
        Duration::from_secs(30),
        || {
            let started = end.logged_line("shard consuming", "shard", "audit/1");
            async move { started.is_some() }
        },
    )
    .await;
    put_audit_logs(&client, "audit", 500, 250, 52).await;
    wait_until("new logs at the end", Duration::from_secs(30), || {
        let delivered = end.delivered().len();
        async move { delivered >= 1_000 }
    })
    .await;
    let from_end: Vec<String> = end.delivered().iter().map(event_id).collect();
    assert_eq!(from_end.len(), 1_000);
    let old = from_end.iter().filter(|id| existing.contains(*id)).count();
    assert_eq!(
        old, 500,
        "only the checkpointed shard's remainder predates the start"
    );
}

/// Writes `count` audit logs to the shard whose range holds `key`, tagged `phase`.
async fn put_tagged(
    client: &siem_forwarder::source::Client,
    key: &str,
    phase: &str,
    count: usize,
    seed: u64,
) {
    use siem_forwarder::producer::generator::AuditLogGenerator;
    use siem_forwarder::source::api::put_logs::PutTarget;
    let mut generator = AuditLogGenerator::new(seed);
    for _ in 0..count / 250 {
        let mut group = generator.group(250, 1_700_000_000);
        group.tags.push(("phase".into(), phase.into()));
        client
            .put_logs("audit", PutTarget::HashKey(key), &group)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_ordered_group_finishes_parents_before_children_and_releases_them() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(&[("audit", 1)]).await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    put_tagged(
        &client,
        "00000000000000000000000000000000",
        "parent",
        2_000,
        101,
    )
    .await;
    let changed = client
        .split_shard("audit", 0, "80000000000000000000000000000000")
        .await
        .unwrap();
    let shape: Vec<(u32, &str)> = changed
        .iter()
        .map(|s| (s.shard_id, s.status.as_str()))
        .collect();
    assert_eq!(shape, [(0, "readonly"), (1, "readwrite"), (2, "readwrite")]);
    put_tagged(
        &client,
        "00000000000000000000000000000000",
        "child",
        1_000,
        102,
    )
    .await;
    put_tagged(
        &client,
        "c0000000000000000000000000000000",
        "child",
        1_000,
        103,
    )
    .await;

    let ordered_config = format!("{}ordered = true\n", fast_consumer("ordered", "o1"));
    let ordered = Forwarder::spawn(&server, dir.path(), "audit", &ordered_config, "");
    let unordered = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("unordered", "u1"),
        "",
    );
    wait_for_all(&[&ordered], 4_000, Duration::from_secs(60)).await;
    wait_for_all(&[&unordered], 4_000, Duration::from_secs(60)).await;

    let phases: Vec<String> = ordered
        .delivered()
        .iter()
        .map(|log| log["__tag__:phase"].as_str().unwrap().to_owned())
        .collect();
    let first_child = phases.iter().position(|phase| phase == "child").unwrap();
    assert_eq!(
        first_child, 2_000,
        "the ordered group consumed the parent to its end before any child"
    );
    assert!(phases[first_child..].iter().all(|phase| phase == "child"));

    wait_until(
        "the finished parent to be released",
        Duration::from_secs(30),
        || {
            let held = ordered.assigned();
            async move { held == BTreeSet::from([1, 2]) }
        },
    )
    .await;
}

#[tokio::test]
async fn one_process_consumes_several_logstores() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(&[("audit", 2), ("second", 3)]).await;
    let client = server.client();
    put_audit_logs(&client, "audit", 1_000, 250, 111).await;
    put_audit_logs(&client, "second", 1_500, 250, 112).await;
    let dir = tempfile::tempdir().unwrap();
    let forwarder = Forwarder::spawn_with(
        &server,
        dir.path(),
        &["audit", "second"],
        &fast_consumer("g", "s1"),
        "",
    );
    wait_for_all(&[&forwarder], 2_500, Duration::from_secs(60)).await;
    assert_eq!(forwarder.delivered().len(), 2_500, "each log once");
    for logstore in ["audit", "second"] {
        let checkpoints = client.get_checkpoints(logstore, "g").await.unwrap();
        assert!(!checkpoints.is_empty(), "{logstore} has the group");
    }
}

#[tokio::test]
async fn credentials_denied_listing_and_updating_groups_still_join_an_existing_group() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut server = TestServer::start(&[("audit", 2)]).await;
    let client = server.client();
    // An administrator created the group, with another timeout than the forwarder's.
    client
        .create_consumer_group("audit", "g", 60, false)
        .await
        .unwrap();
    server.denied_actions = vec![
        DeniedAction::ListConsumerGroup,
        DeniedAction::UpdateConsumerGroup,
    ];
    server.restart().await;
    put_audit_logs(&client, "audit", 1_000, 250, 31).await;
    let dir = tempfile::tempdir().unwrap();
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "least"),
        "",
    );
    wait_until("every log delivered", Duration::from_secs(60), || {
        let delivered = delivery_counts(&[&forwarder]).len();
        async move { delivered >= 1_000 }
    })
    .await;
    let warning = forwarder
        .logged_line(
            "not allowed to list consumer groups; going on without checking the group's timeout and order",
            "level",
            "WARN",
        )
        .expect("the denial is a warning");
    assert!(
        warning["error"].as_str().is_some_and(
            |error| error.contains("denied by sts or ram, action: log:ListConsumerGroup")
        ),
        "{warning}"
    );
    let (code, _) = forwarder.terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_missing_group_that_may_not_be_created_stops_the_forwarder() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut server = TestServer::start(&[("audit", 2)]).await;
    server.denied_actions = vec![DeniedAction::CreateConsumerGroup];
    server.restart().await;
    let dir = tempfile::tempdir().unwrap();
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "denied"),
        "",
    );
    wait_until("the forwarder to give up", Duration::from_secs(30), || {
        let running = forwarder.running();
        async move { !running }
    })
    .await;
    let log = std::fs::read_to_string(&forwarder.log).unwrap();
    assert!(
        log.contains("cannot join consumer group `g`") && log.contains("log:CreateConsumerGroup"),
        "{log}"
    );
}
