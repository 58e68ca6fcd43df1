//! The syslog sink against in-process TCP receivers (no rsyslog needed): a receiver that
//! closes the connection between batches, and shutdown while the receiver is unreachable;
//! hostile receivers that reset a connection mid-batch, stall without reading, or send
//! garbage back. Each must cost no log: the batch is acknowledged only once a receiver read
//! all of it.

use std::time::Duration;

use siem_forwarder::model::ack::AckReceiver;
use siem_forwarder::model::{DeliveryStatus, LogRecords, RecordsBuilder};
use siem_forwarder::sinks::syslog::SyslogSinkConfig;
use siem_forwarder::sinks::{Sink, SinkBatch};
use siem_forwarder::telemetry::{health, HealthState};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

fn start(
    name: &str,
    port: u16,
) -> (
    mpsc::Sender<SinkBatch>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    start_with(name, port, "")
}

/// Starts a sink with extra config lines (e.g. a short `write_timeout`).
fn start_with(
    name: &str,
    port: u16,
    extra: &str,
) -> (
    mpsc::Sender<SinkBatch>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let config: SyslogSinkConfig = toml::from_str(&format!(
        "name = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nmsgid_field = \"id\"\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n{extra}"
    ))
    .expect("config parses");
    let sink = config.build("syslog").expect("sink builds");
    let (input, receiver) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        Box::new(sink)
            .run(receiver, stop)
            .await
            .expect("the sink ends cleanly");
    });
    (input, shutdown, task)
}

fn logs(ids: &[&str]) -> LogRecords {
    let mut builder = RecordsBuilder::new();
    for id in ids {
        builder = builder.log(1_709_622_489, None, &[("id", id)]);
    }
    builder.build()
}

async fn send(input: &mpsc::Sender<SinkBatch>, records: LogRecords) -> AckReceiver {
    let (batch, receiver) = SinkBatch::new("test", 1, 0, records);
    input.send(batch).await.expect("the sink is running");
    receiver
}

/// Reads `count` octet-counted frames and returns the MSGID of each.
async fn read_frames(stream: &mut TcpStream, count: usize) -> Vec<String> {
    let mut buffer = Vec::new();
    let mut msgids = Vec::new();
    let mut chunk = [0u8; 4096];
    while msgids.len() < count {
        let read = tokio::time::timeout(TIMEOUT, stream.read(&mut chunk))
            .await
            .expect("frames arrive in time")
            .expect("read");
        assert!(read > 0, "connection closed after {msgids:?}");
        buffer.extend_from_slice(&chunk[..read]);
        while let Some(space) = buffer.iter().position(|&b| b == b' ') {
            let length: usize = std::str::from_utf8(&buffer[..space])
                .expect("ascii length")
                .parse()
                .expect("octet count");
            if buffer.len() < space + 1 + length {
                break;
            }
            let frame: Vec<u8> = buffer.drain(..space + 1 + length).skip(space + 1).collect();
            let message = String::from_utf8(frame).expect("utf-8 message");
            let msgid = message.split(' ').nth(5).expect("msgid field").to_owned();
            msgids.push(msgid);
        }
    }
    msgids
}

/// Waits until sink `name` reports itself unhealthy for a reason containing `reason`.
async fn wait_until_unhealthy(name: &str, reason: &str) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let key = format!("sink:{name}");
    while !matches!(
        health().get(&key),
        Some(HealthState::Unhealthy(text)) if text.contains(reason)
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reported unhealthy ({reason:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn assert_delivered(receiver: AckReceiver) {
    let status = tokio::time::timeout(TIMEOUT, receiver)
        .await
        .expect("the batch settles in time");
    assert_eq!(status, DeliveryStatus::Delivered);
}

/// Shuts the sink down and waits for it to end.
async fn stop(shutdown: CancellationToken, task: tokio::task::JoinHandle<()>) {
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("the sink stops on shutdown")
        .unwrap();
}

/// A port nobody listens on.
fn unused_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

async fn accept(listener: &TcpListener) -> TcpStream {
    tokio::time::timeout(TIMEOUT, listener.accept())
        .await
        .expect("the sink connects in time")
        .expect("accept")
        .0
}

#[tokio::test]
async fn a_batch_after_the_receiver_closed_goes_to_a_new_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (input, shutdown, task) =
        start("inprocess-reconnect", listener.local_addr().unwrap().port());

    let first = send(&input, logs(&["a1", "a2"])).await;
    let mut connection = accept(&listener).await;
    assert_eq!(read_frames(&mut connection, 2).await, ["a1", "a2"]);
    assert_eq!(first.await, DeliveryStatus::Delivered);

    // The receiver goes away between batches: the next batch must not be written into the
    // dead connection (and acked) but sent on a new one.
    drop(connection);
    let second = send(&input, logs(&["b1", "b2", "b3"])).await;
    let mut reconnected = accept(&listener).await;
    assert_eq!(read_frames(&mut reconnected, 3).await, ["b1", "b2", "b3"]);
    assert_delivered(second).await;

    stop(shutdown, task).await;
}

#[tokio::test]
async fn shutdown_while_the_receiver_is_unreachable_fails_the_batch() {
    let port = unused_port();
    let (input, shutdown, task) = start("inprocess-unreachable", port);
    let mut pending = send(&input, logs(&["c1"])).await;
    wait_until_unhealthy("inprocess-unreachable", "").await;
    assert_eq!(pending.try_outcome(), None, "still retrying, not settled");
    stop(shutdown, task).await;
    assert!(matches!(pending.await, DeliveryStatus::Failed(_)));
}

#[tokio::test]
async fn empty_batches_are_acked_without_connecting() {
    let port = unused_port();
    let (input, shutdown, task) = start("inprocess-empty", port);
    let receiver = send(&input, LogRecords::default()).await;
    assert_delivered(receiver).await;
    stop(shutdown, task).await;
}

#[tokio::test]
async fn healthcheck_connects_without_sending_logs() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config: SyslogSinkConfig =
        toml::from_str(&format!("address = \"127.0.0.1:{port}\"")).unwrap();
    let sink = config.build("syslog-health").unwrap();
    let (checked, accepted) = tokio::join!(sink.healthcheck(), accept(&listener));
    checked.expect("reachable receiver is healthy");
    let mut accepted = accepted;
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, accepted.read_to_end(&mut rest))
        .await
        .expect("the health check closes its connection")
        .unwrap();
    assert!(rest.is_empty(), "no log was sent");

    drop(listener);
    let error = sink.healthcheck().await.unwrap_err().to_string();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}

/// A batch of `count` logs of about 1 KB each, with MSGIDs `{prefix}0`, `{prefix}1`, ...:
/// 20,000 of them are far more than the socket buffers of both ends hold, so a writer
/// blocks until the receiver reads.
fn large_logs(prefix: &str, count: usize) -> LogRecords {
    let value = "x".repeat(1_000);
    let mut builder = RecordsBuilder::new();
    for i in 0..count {
        builder = builder.log(
            1_709_622_489,
            None,
            &[("id", &format!("{prefix}{i}")), ("v", &value)],
        );
    }
    builder.build()
}

/// Reads the whole batch from `connection` and checks it is `large_logs(prefix, count)`.
async fn read_large(connection: &mut TcpStream, prefix: &str, count: usize) {
    let msgids = read_frames(connection, count).await;
    let expected: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    assert!(
        msgids == expected,
        "the batch arrived incomplete or out of order"
    );
}

#[tokio::test]
async fn a_connection_reset_mid_batch_resends_the_whole_batch() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (input, shutdown, task) = start("inprocess-reset", listener.local_addr().unwrap().port());
    let mut pending = send(&input, large_logs("r", 20_000)).await;

    // Read a little of the batch, then reset the connection (RST, not FIN) while the sink
    // is still writing.
    let mut first = accept(&listener).await;
    assert_eq!(read_frames(&mut first, 1).await[0], "r0");
    socket2::SockRef::from(&first)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(first);

    // The sink comes back on a new connection with the whole batch.
    let mut second = accept(&listener).await;
    assert_eq!(
        pending.try_outcome(),
        None,
        "a reset batch is not acknowledged"
    );
    read_large(&mut second, "r", 20_000).await;
    assert_delivered(pending).await;
    stop(shutdown, task).await;
}

#[tokio::test]
async fn a_receiver_that_stops_reading_times_out_and_the_batch_is_resent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (input, shutdown, task) = start_with(
        "inprocess-stall",
        listener.local_addr().unwrap().port(),
        "write_timeout = \"1s\"",
    );
    let mut pending = send(&input, large_logs("s", 20_000)).await;

    // Accept and never read: the write times out and the sink reports it.
    let stalled = accept(&listener).await;
    wait_until_unhealthy("inprocess-stall", "timed out").await;
    assert_eq!(
        pending.try_outcome(),
        None,
        "a stalled batch is not acknowledged"
    );
    drop(stalled);

    // A receiver that reads gets every log of the batch.
    let mut reading = accept(&listener).await;
    read_large(&mut reading, "s", 20_000).await;
    assert_delivered(pending).await;
    stop(shutdown, task).await;
}

#[tokio::test]
async fn garbage_sent_back_by_the_receiver_is_ignored() {
    use tokio::io::AsyncWriteExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (input, shutdown, task) = start("inprocess-garbage", listener.local_addr().unwrap().port());
    let first = send(&input, logs(&["g1"])).await;
    let mut connection = accept(&listener).await;
    assert_eq!(read_frames(&mut connection, 1).await, ["g1"]);
    assert_eq!(first.await, DeliveryStatus::Delivered);

    // Syslog receivers never answer; one that does must not break delivery.
    connection
        .write_all(b"\x00\xffHTTP/1.1 400 Bad Request\r\n\r\n\x1b[2J")
        .await
        .unwrap();
    let second = send(&input, logs(&["g2", "g3"])).await;
    assert_eq!(read_frames(&mut connection, 2).await, ["g2", "g3"]);
    assert_delivered(second).await;
    stop(shutdown, task).await;
}
