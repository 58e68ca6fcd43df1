//! The runtime under faults, with real forwarder processes: a SIEM that is down for 30 s,
//! a log service that answers garbage, one that throttles reads, and a process frozen past
//! the group timeout.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use siem_forwarder::common::shutdown::CancellationToken;
use support::forwarder::{event_id, fast_consumer, Forwarder};
use support::{put_audit_logs, wait_until, TestServer};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

/// A line-framed syslog receiver on a fixed port that can go away and come back.
struct LineReceiver {
    address: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
}

impl LineReceiver {
    async fn start(address: SocketAddr, lines: Arc<Mutex<Vec<String>>>) -> Self {
        let listener = TcpListener::bind(address).await.expect("bind receiver");
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let accept_stop = stop.clone();
        let sink = lines.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => accepted.expect("accept"),
                    () = accept_stop.cancelled() => return,
                };
                let (lines, stop) = (sink.clone(), accept_stop.clone());
                tokio::spawn(async move {
                    let mut reader = tokio::io::BufReader::new(stream).lines();
                    loop {
                        tokio::select! {
                            line = reader.next_line() => match line {
                                Ok(Some(line)) => lines.lock().unwrap().push(line),
                                _ => return,
                            },
                            // Dropping the stream closes the connection, as a crashed SIEM would.
                            () = stop.cancelled() => return,
                        }
                    }
                });
            }
        });
        Self {
            address,
            lines,
            stop,
        }
    }

    fn stop(&self) {
        self.stop.cancel();
    }

    fn event_ids(&self) -> HashSet<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| line.split("event_id=").nth(1))
            .map(|rest| rest.split("||").next().unwrap_or(rest).to_owned())
            .collect()
    }
}

fn syslog_sink(address: SocketAddr) -> String {
    format!(
        "\n[[sinks]]\ntype = \"syslog\"\nname = \"siem\"\naddress = \"{address}\"\nprotocol = \"tcp\"\n\
         framing = \"lf\"\nformat = \"rfc5424\"\nretry_max = \"1s\"\n"
    )
}

#[tokio::test]
async fn a_siem_down_for_30_seconds_loses_nothing_and_memory_stays_flat() {
    let server = TestServer::start(&[("audit", 4)]).await;
    let client = server.client();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let receiver = LineReceiver::start("127.0.0.1:0".parse().unwrap(), lines.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let consumer = format!(
        "{}max_inflight_bytes = \"8MiB\"\n",
        fast_consumer("g", "o1")
    );
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &consumer,
        &syslog_sink(receiver.address),
    );

    put_audit_logs(&client, "audit", 10_000, 250, 71).await;
    wait_until(
        "the first 10,000 logs at the SIEM",
        Duration::from_secs(60),
        || {
            let received = receiver.event_ids().len();
            async move { received >= 10_000 }
        },
    )
    .await;

    receiver.stop();
    let outage = Instant::now();
    let mut backlog = 0;
    while backlog < 60_000 {
        put_audit_logs(&client, "audit", 10_000, 500, 72 + backlog as u64).await;
        backlog += 10_000;
    }
    wait_until(
        "the forwarder to notice the outage",
        Duration::from_secs(30),
        || {
            let noticed = forwarder
                .logged_line("component unhealthy", "component", "sink:siem")
                .is_some();
            async move { noticed }
        },
    )
    .await;
    // Batches delivered before the outage was noticed may still be committed (every 500 ms):
    // wait until the checkpoints have stood still for 3 s.
    let mut checkpoints_early = client.get_checkpoints("audit", "g").await.unwrap();
    let mut still_since = Instant::now();
    let settle_deadline = Instant::now() + Duration::from_secs(20);
    while still_since.elapsed() < Duration::from_secs(3) {
        assert!(
            Instant::now() < settle_deadline,
            "checkpoints still moving 20 s into the outage: {checkpoints_early:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let checkpoints = client.get_checkpoints("audit", "g").await.unwrap();
        if checkpoints != checkpoints_early {
            checkpoints_early = checkpoints;
            still_since = Instant::now();
        }
    }
    let rss_early = forwarder.peak_rss_kib();
    let mut rss_samples = vec![];
    while outage.elapsed() < Duration::from_secs(30) {
        rss_samples.push(forwarder.peak_rss_kib());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let checkpoints_late = client.get_checkpoints("audit", "g").await.unwrap();
    let rss_late = forwarder.peak_rss_kib();
    assert_eq!(
        checkpoints_early, checkpoints_late,
        "no checkpoint moved while the SIEM was down"
    );
    assert!(
        rss_late <= rss_early + 24 * 1024,
        "peak RSS grew from {rss_early} KiB to {rss_late} KiB while 60 MB of backlog built up ({rss_samples:?})"
    );
    assert!(forwarder.running(), "the forwarder keeps retrying");
    eprintln!("peak RSS during the outage: {rss_early} KiB after 3 s, {rss_late} KiB after 30 s");

    let _back = LineReceiver::start(receiver.address, lines.clone()).await;
    wait_until(
        "every log at the SIEM after it came back",
        Duration::from_secs(120),
        || {
            let received = receiver.event_ids().len();
            async move { received >= 70_000 }
        },
    )
    .await;
    // The two sinks write each batch independently: the file may still miss the last ones.
    wait_until("every log in the file", Duration::from_secs(30), || {
        let written = forwarder
            .delivered()
            .iter()
            .map(event_id)
            .collect::<HashSet<_>>()
            .len();
        async move { written >= 70_000 }
    })
    .await;
    let file_ids: HashSet<String> = forwarder.delivered().iter().map(event_id).collect();
    assert_eq!(receiver.event_ids(), file_ids, "both sinks got every log");
    let (code, _) = forwarder.terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0));
}

/// Forwards requests to the log service, but answers the first `bad_pulls` PullLogs with
/// garbage of several kinds.
async fn faulty_proxy(upstream: String, bad_pulls: usize) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served_bad = Arc::new(Mutex::new(0usize));
    let counter = served_bad.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (http, upstream, counter) = (http.clone(), upstream.clone(), counter.clone());
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (http, upstream, counter) = (http.clone(), upstream.clone(), counter.clone());
                async move {
                    let is_pull = request
                        .uri()
                        .query()
                        .is_some_and(|q| q.contains("type=log"));
                    let fault = if is_pull {
                        let mut served = counter.lock().unwrap();
                        let fault = (*served < bad_pulls).then_some(*served % 3);
                        if fault.is_some() {
                            *served += 1;
                        }
                        fault
                    } else {
                        None
                    };
                    let reply = match fault {
                        Some(0) => hyper::Response::builder()
                            .header("x-log-count", "1")
                            .header("x-log-bodyrawsize", "4096")
                            .header("x-log-compresstype", "lz4")
                            .header("x-log-cursor", "MTA=")
                            .body(Full::new(Bytes::from_static(
                                b"\xff\x00 definitely not lz4",
                            )))
                            .unwrap(),
                        Some(1) => hyper::Response::builder()
                            .status(418)
                            .body(Full::new(Bytes::from_static(b"<html>I'm a teapot</html>")))
                            .unwrap(),
                        Some(_) => hyper::Response::builder()
                            .body(Full::new(Bytes::from_static(b"ok but no headers")))
                            .unwrap(),
                        None => forward(&http, &upstream, request).await,
                    };
                    Ok::<_, std::convert::Infallible>(reply)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (address, served_bad)
}

async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut headers = parts.headers.clone();
    for hop in ["content-length", "transfer-encoding", "connection"] {
        headers.remove(hop);
    }
    let response = http
        .request(parts.method, format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let mut reply = hyper::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            reply = reply.header(name, value);
        }
    }
    reply
        .body(Full::new(response.bytes().await.unwrap()))
        .unwrap()
}

#[tokio::test]
async fn garbage_from_the_log_service_fails_the_attempt_and_is_retried() {
    let mut server = TestServer::start(&[("audit", 2)]).await;
    put_audit_logs(&server.client(), "audit", 3_000, 250, 81).await;
    let (proxy, served_bad) = faulty_proxy(server.endpoint(), 9).await;
    // The forwarder talks to the proxy instead of the server.
    let real_address = server.address;
    server.address = proxy;
    let dir = tempfile::tempdir().unwrap();
    let mut forwarder =
        Forwarder::spawn(&server, dir.path(), "audit", &fast_consumer("g", "f1"), "");
    server.address = real_address;

    wait_until(
        "every log despite the garbage",
        Duration::from_secs(90),
        || {
            let delivered: HashSet<String> = forwarder.delivered().iter().map(event_id).collect();
            async move { delivered.len() >= 3_000 }
        },
    )
    .await;
    assert_eq!(
        *served_bad.lock().unwrap(),
        9,
        "every kind of garbage was served"
    );
    let failures: Vec<String> = forwarder
        .log_lines()
        .iter()
        .filter(|line| line["message"] == "pull failed; retrying")
        .map(|line| line["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        failures
            .iter()
            .any(|e| e.contains("malformed PullLogs response") && e.contains("lz4")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|e| e.contains("418") && e.contains("teapot")),
        "{failures:?}"
    );
    assert!(
        failures.iter().any(|e| e.contains("missing header")),
        "{failures:?}"
    );
    assert!(forwarder.running(), "never a crash");
    let (code, _) = forwarder.terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_log_service_that_throttles_reads_still_gets_every_log_delivered() {
    // One pull per shard a second, and pulls of at most 2 groups: a shard needs several
    // pulls, and the paced second pull of each second is refused with 403.
    let server = TestServer::start_throttled(&[("audit", 2)], 1).await;
    put_audit_logs(&server.client(), "audit", 2_000, 250, 82).await;
    let dir = tempfile::tempdir().unwrap();
    let consumer = format!("{}max_fetch_groups = 2\n", fast_consumer("g", "f1"));
    let mut forwarder = Forwarder::spawn(&server, dir.path(), "audit", &consumer, "");
    wait_until(
        "every log despite the throttling",
        Duration::from_secs(120),
        || {
            let delivered: HashSet<String> = forwarder.delivered().iter().map(event_id).collect();
            async move { delivered.len() >= 2_000 }
        },
    )
    .await;
    let throttled: Vec<String> = forwarder
        .log_lines()
        .iter()
        .filter(|line| line["message"] == "pulls throttled by the log service; waiting")
        .map(|line| line["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        throttled
            .iter()
            .any(|error| error.contains("403") && error.contains("ShardReadQuotaExceed")),
        "{throttled:?}"
    );
    assert!(forwarder.running(), "never a crash");
    let (code, _) = forwarder.terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0));
}

/// The event ids [`put_audit_logs`] writes with `count` logs in groups of `group_size` and
/// `seed`.
fn audit_log_ids(count: usize, group_size: usize, seed: u64) -> Vec<String> {
    let mut generator = siem_forwarder::producer::generator::AuditLogGenerator::new(seed);
    let mut ids = Vec::new();
    while ids.len() < count {
        let group = generator.group(group_size.min(count - ids.len()), 1_700_000_000);
        for log in group.logs {
            let id = log.contents.iter().find(|(key, _)| key == "event_id");
            ids.push(id.expect("audit logs carry event_id").1.clone());
        }
    }
    ids
}

#[tokio::test]
async fn a_process_frozen_past_the_group_timeout_delivers_nothing_it_pulls_after_waking() {
    const LOGS_PER_WRITE: usize = 40;
    let server = TestServer::start(&[("audit", 4)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut frozen = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "frozen"),
        "",
    );
    let mut taker = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "taker"),
        "",
    );
    wait_until("two shards each", Duration::from_secs(60), || {
        let held = (frozen.assigned().len(), taker.assigned().len());
        async move { held == (2, 2) }
    })
    .await;

    // A steady trickle over all four shards, each write tagged with when it started and ended.
    let writes = Arc::new(Mutex::new(Vec::<(u64, Instant, Instant)>::new()));
    let writing = CancellationToken::new();
    let writer = tokio::spawn({
        let (client, writes, writing) = (server.client(), writes.clone(), writing.clone());
        async move {
            let mut seed = 1_000;
            while !writing.is_cancelled() {
                let started = Instant::now();
                put_audit_logs(&client, "audit", LOGS_PER_WRITE, LOGS_PER_WRITE / 4, seed).await;
                writes.lock().unwrap().push((seed, started, Instant::now()));
                seed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    wait_until(
        "the frozen-to-be process to deliver",
        Duration::from_secs(30),
        || {
            let delivered = frozen.delivered().len();
            async move { delivered > 0 }
        },
    )
    .await;

    frozen.freeze().await;
    let froze = Instant::now();
    wait_until(
        "the other process to take every shard",
        Duration::from_secs(60),
        || {
            let held = taker.assigned().len();
            async move { held == 4 }
        },
    )
    .await;
    // Frozen for 12 s (3 group timeouts), while the other process delivers its shards.
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(froze.elapsed())).await;
    let thawing = Instant::now();
    frozen.thaw().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    writing.cancel();
    writer.await.unwrap();

    let written: Vec<(u64, Instant, Instant)> = writes.lock().unwrap().clone();
    let all_ids: HashSet<String> = written
        .iter()
        .flat_map(|(seed, _, _)| audit_log_ids(LOGS_PER_WRITE, LOGS_PER_WRITE / 4, *seed))
        .collect();
    // Logs written while the process was frozen: it cannot have pulled them before.
    let while_frozen: HashSet<String> = written
        .iter()
        .filter(|(_, started, ended)| *started > froze && *ended < thawing)
        .flat_map(|(seed, _, _)| audit_log_ids(LOGS_PER_WRITE, LOGS_PER_WRITE / 4, *seed))
        .collect();
    assert!(
        while_frozen.len() >= 1_000,
        "{} logs written while frozen",
        while_frozen.len()
    );
    wait_until("every log delivered", Duration::from_secs(120), || {
        let mut delivered: HashSet<String> = frozen.delivered().iter().map(event_id).collect();
        delivered.extend(taker.delivered().iter().map(event_id));
        let complete = all_ids.is_subset(&delivered);
        async move { complete }
    })
    .await;
    // Let the woken process settle (it may have pulled, and be dropping, stale batches).
    wait_until(
        "the woken process to learn that it was evicted",
        Duration::from_secs(60),
        || {
            let evicted = frozen.logged("the log service no longer knows this consumer (it timed out); dropping every shard and joining again")
                || frozen.logged("no successful heartbeat within the group timeout; considering this consumer evicted and releasing its shards");
            async move { evicted }
        },
    )
    .await;
    let from_frozen: Vec<String> = frozen.delivered().iter().map(event_id).collect();
    let from_taker: HashSet<String> = taker.delivered().iter().map(event_id).collect();
    let duplicated: Vec<&String> = from_frozen
        .iter()
        .filter(|id| from_taker.contains(*id))
        .collect();
    let stale: Vec<&&String> = duplicated
        .iter()
        .filter(|id| while_frozen.contains(**id))
        .collect();
    eprintln!(
        "{} logs delivered twice, {} of them written while the process was frozen",
        duplicated.len(),
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "the woken process delivered {} logs it pulled after the group timeout, which the other process had delivered",
        stale.len()
    );
    for forwarder in [&mut frozen, &mut taker] {
        let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
        assert_eq!(code, Some(0));
    }
}
