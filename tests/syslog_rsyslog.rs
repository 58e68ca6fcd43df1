//! The syslog sink against a real rsyslogd (Debian package) on loopback: UDP, TCP with LF and
//! octet-counted framing, TLS with and without client certificates, receiver outages, and an
//! untrusted receiver certificate. Each test starts its own rsyslogd (see
//! `tests/support/rsyslog.rs`); install it with `scripts/setup-rsyslog.sh`.

#[path = "support/rsyslog.rs"]
mod rsyslog;
#[path = "support/rsyslog_certs.rs"]
mod rsyslog_certs;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use siem_forwarder::model::ack::{self, AckReceiver};
use siem_forwarder::model::{Batch, DeliveryStatus, LogRecords, RecordsBuilder, ShardKey};
use siem_forwarder::sinks::syslog::SyslogSinkConfig;
use siem_forwarder::sinks::{Sink, SinkBatch, SinkError};
use siem_forwarder::telemetry::metrics::SinkLabels;
use siem_forwarder::telemetry::{health, metrics, HealthState};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use rsyslog::{Inputs, Rsyslog, ServerTls};

/// 2024-03-05T07:08:09Z.
const MARCH_5: u32 = 1_709_622_489;
/// How long rsyslogd stays down in the outage tests.
const OUTAGE: Duration = Duration::from_secs(30);
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(20);

/// A sink running in a task, fed through its channel.
struct RunningSink {
    name: String,
    input: mpsc::Sender<SinkBatch>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), SinkError>>,
    sequence: u64,
}

impl RunningSink {
    /// Builds and runs a syslog sink `name` sending to `127.0.0.1:port`, with the further
    /// keys of `settings` (TOML).
    fn start(name: &str, port: u16, settings: &str) -> RunningSink {
        let toml = format!("name = \"{name}\"\naddress = \"127.0.0.1:{port}\"\n{settings}");
        let config: SyslogSinkConfig = toml::from_str(&toml).expect("sink config parses");
        let sink = config.build("syslog-test").expect("sink builds");
        let name = sink.name().to_owned();
        let (input, receiver) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(sink).run(receiver, shutdown.clone()));
        RunningSink {
            name,
            input,
            shutdown,
            task,
            sequence: 0,
        }
    }

    /// Hands `records` to the sink as one batch and returns its ack receiver.
    async fn send(&mut self, records: LogRecords) -> AckReceiver {
        let (token, receiver) = ack::channel();
        let batch = Batch {
            shard: ShardKey {
                logstore: "audit".into(),
                shard: 0,
            },
            sequence: self.sequence,
            cursor: format!("cursor-{}", self.sequence),
            next_cursor: format!("cursor-{}", self.sequence + 1),
            records,
        };
        self.sequence += 1;
        self.input
            .send(SinkBatch {
                batch: Arc::new(batch),
                ack: token,
            })
            .await
            .expect("the sink is running");
        receiver
    }

    /// Sends `records` as one batch, checks that it is acknowledged, and waits until
    /// `rsyslog` wrote at least `count` messages, which it returns.
    async fn deliver(
        &mut self,
        records: LogRecords,
        rsyslog: &Rsyslog,
        count: usize,
    ) -> Vec<Value> {
        assert_delivered(self.send(records).await).await;
        rsyslog
            .wait_for(OUTPUT_TIMEOUT, |messages| messages.len() >= count)
            .await
    }

    fn health(&self) -> Option<HealthState> {
        health().get(&format!("sink:{}", self.name))
    }

    /// Waits until the sink's health satisfies `wanted`.
    async fn wait_for_health(&self, wanted: impl Fn(&HealthState) -> bool) -> HealthState {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(state) = self.health().filter(|state| wanted(state)) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "health of {} stayed {:?}",
                self.name,
                self.health()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the sink stops on shutdown")
            .expect("the sink task did not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

/// A private rsyslogd with only a TCP input.
fn tcp_receiver() -> Rsyslog {
    Rsyslog::start(Inputs {
        tcp: true,
        ..Inputs::default()
    })
}

/// A private rsyslogd with only a TLS input, using the server certificate of `pki`.
fn tls_receiver(pki: &rsyslog_certs::TestPki, require_client_cert: bool) -> Rsyslog {
    Rsyslog::start(Inputs {
        tls: Some(ServerTls {
            ca_file: pki.ca_file.clone(),
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
            require_client_cert,
        }),
        ..Inputs::default()
    })
}

async fn assert_delivered(receiver: AckReceiver) {
    let outcome = tokio::time::timeout(ACK_TIMEOUT, receiver)
        .await
        .expect("the batch was settled in time");
    assert_eq!(outcome, DeliveryStatus::Delivered);
}

fn text<'a>(message: &'a Value, key: &str) -> &'a str {
    message[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {message}"))
}

/// Checks the parts of a message as rsyslog parsed them (`pri`, `msgid`, `msg`, ...).
fn assert_parts(message: &Value, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(text(message, key), *value, "{key} of {message}");
    }
}

/// Two audit logs with unicode, quotes, SD specials and an embedded newline.
fn audit_pair() -> LogRecords {
    RecordsBuilder::new()
        .group("audit", "10.0.0.1", &[("region", "cn-hangzhou")])
        .log(
            MARCH_5,
            Some(123_456_789),
            &[
                ("level", "ERROR"),
                ("action", "LOGIN"),
                ("user", "bo\"b]\\"),
                ("message", "héllo 世界\nsecond line"),
            ],
        )
        .log(
            MARCH_5 + 1,
            None,
            &[
                ("level", "warn"),
                ("action", "LOGOUT"),
                ("user", "alice"),
                ("message", "ascii only"),
            ],
        )
        .build()
}

/// `count` numbered logs starting at `first`; the number is the MSGID in the outage tests.
fn numbered(first: usize, count: usize) -> LogRecords {
    let mut builder = RecordsBuilder::new().group("audit", "10.0.0.2", &[]);
    for number in first..first + count {
        let seq = number.to_string();
        builder = builder.log(
            MARCH_5,
            None,
            &[("seq", seq.as_str()), ("event", "{\"detail\":\"é\\nx\"}")],
        );
    }
    builder.build()
}

fn msgids(messages: &[Value]) -> BTreeSet<usize> {
    messages
        .iter()
        .filter_map(|message| message["msgid"].as_str()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_octet_counting_delivers_rfc5424_with_structured_data() {
    let rsyslog = tcp_receiver();
    let mut sink = RunningSink::start(
        "rsyslog-tcp-octet",
        rsyslog.tcp_port.unwrap(),
        r#"
        protocol = "tcp"
        framing = "octet-counting"
        format = "rfc5424"
        facility = "local4"
        severity_field = "level"
        app_name = "forwarder-test"
        procid = "4211"
        msgid_field = "action"
        timezone = "+08:00"
        body = "sd"
        message_field = "message"
        "#,
    );
    let messages = sink.deliver(audit_pair(), &rsyslog, 2).await;
    assert_eq!(messages.len(), 2);
    let first = &messages[0];
    assert_parts(
        first,
        &[
            ("version", "1"),
            ("pri", "163"), // local4 (20) * 8 + err (3)
            ("timestamp", "2024-03-05T15:08:09.123456+08:00"),
            ("hostname", "10.0.0.1"),
            ("app_name", "forwarder-test"),
            ("procid", "4211"),
            ("msgid", "LOGIN"),
            (
                "structured_data",
                "[sls@32473 __time__=\"1709622489\" __time_ns_part__=\"123456789\" \
                 __topic__=\"audit\" __source__=\"10.0.0.1\" __tag__:region=\"cn-hangzhou\" \
                 level=\"ERROR\" action=\"LOGIN\" user=\"bo\\\"b\\]\\\\\" \
                 message=\"héllo 世界\nsecond line\"]",
            ),
            ("msg", "héllo 世界\nsecond line"),
        ],
    );
    // rsyslog is lenient; the bytes on the wire must also satisfy a strict RFC 5424 parser.
    let strict = syslog_rfc5424::parse_message(text(first, "raw")).expect("strict rfc 5424");
    assert_eq!(
        strict
            .sd
            .find_tuple("sls@32473", "user")
            .map(String::as_str),
        Some("bo\"b]\\")
    );
    assert_eq!(strict.timestamp_nanos, Some(123_456_000));
    assert_eq!(strict.msg, "héllo 世界\nsecond line");
    assert_parts(
        &messages[1],
        &[
            ("pri", "164"), // local4 * 8 + warning (4)
            ("timestamp", "2024-03-05T15:08:10.000000+08:00"),
            ("msgid", "LOGOUT"),
            ("msg", "ascii only"),
        ],
    );
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_lf_framing_escapes_newlines_in_kv_bodies() {
    let rsyslog = tcp_receiver();
    let mut sink = RunningSink::start(
        "rsyslog-tcp-lf",
        rsyslog.tcp_port.unwrap(),
        r#"
        framing = "lf"
        hostname_field = ""
        hostname = "web01.example.com"
        msgid = "AUDIT"
        time_precision = "millis"
        "#,
    );
    let messages = sink.deliver(audit_pair(), &rsyslog, 2).await;
    assert_eq!(messages.len(), 2, "one line per message, never split");
    assert_parts(
        &messages[0],
        &[
            ("pri", "14"), // user.info
            ("timestamp", "2024-03-05T07:08:09.123Z"),
            ("hostname", "web01.example.com"),
            ("app_name", "siem-forwarder"),
            ("procid", "-"),
            ("msgid", "AUDIT"),
            ("structured_data", "-"),
            (
                "msg",
                "__time__=1709622489||__time_ns_part__=123456789||__topic__=audit||\
                 __source__=10.0.0.1||__tag__:region=cn-hangzhou||level=ERROR||action=LOGIN||\
                 user=bo\"b]\\\\||message=héllo 世界\\nsecond line",
            ),
        ],
    );
    assert!(text(&messages[1], "msg").ends_with("||message=ascii only"));
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sends_one_datagram_per_message_and_truncates_long_ones() {
    let rsyslog = Rsyslog::start(Inputs {
        udp: true,
        ..Inputs::default()
    });
    let mut sink = RunningSink::start(
        "rsyslog-udp",
        rsyslog.udp_port.unwrap(),
        "protocol = \"udp\"\nbody = \"json\"\nmax_datagram = 600",
    );
    let long = "é".repeat(1000);
    let records = RecordsBuilder::new()
        .group("audit", "10.0.0.3", &[])
        .log(MARCH_5, None, &[("message", "short one\nwith a newline")])
        .log(MARCH_5, None, &[("message", long.as_str())])
        .build();
    let messages = sink.deliver(records, &rsyslog, 2).await;
    let short = messages
        .iter()
        .find(|m| text(m, "msg").contains("short one"))
        .expect("the short message arrived");
    let body: Value = serde_json::from_str(text(short, "msg")).expect("json body");
    assert_eq!(body["message"], "short one\nwith a newline");
    assert_eq!(body["__source__"], "10.0.0.3");
    assert_eq!(text(short, "hostname"), "10.0.0.3");
    let cut = messages
        .iter()
        .find(|m| text(m, "msg").contains('é'))
        .expect("the long message arrived");
    let raw = text(cut, "raw");
    assert!(raw.len() <= 600 && raw.len() >= 599, "{} bytes", raw.len());
    assert!(raw.ends_with('é'), "cut on a character boundary");
    let truncated = metrics()
        .sink_truncated_messages
        .get_or_create(&SinkLabels::new("rsyslog-udp"))
        .get();
    assert_eq!(truncated, 1);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc3164_cef_and_leef_over_tcp_reach_rsyslog_verbatim() {
    let rsyslog = tcp_receiver();
    let port = rsyslog.tcp_port.unwrap();
    let mut cef = RunningSink::start(
        "rsyslog-cef",
        port,
        r#"
        format = "cef"
        facility = "local0"
        severity_field = "level"
        timezone = "+08:00"
        cef = { event_class_id_field = "action", severity = "7", extensions = { suser = "user", msg = "message", act = "action" } }
        "#,
    );
    let mut leef = RunningSink::start(
        "rsyslog-leef",
        port,
        r#"
        format = "leef"
        leef = { event_id_field = "action", attributes = { usrName = "user", msg = "message" } }
        "#,
    );
    let mut bsd = RunningSink::start(
        "rsyslog-rfc3164",
        port,
        "format = \"rfc3164\"\nprocid = \"4211\"\nrfc3164_max_length = 1024",
    );
    let records = || {
        RecordsBuilder::new()
            .group("audit", "10.0.0.1", &[])
            .log(
                MARCH_5,
                Some(123_000_000),
                &[
                    ("level", "ERROR"),
                    ("action", "LOGIN"),
                    ("user", "bo|b"),
                    ("message", "a=b\nc^d"),
                ],
            )
            .build()
    };
    assert_delivered(cef.send(records()).await).await;
    assert_delivered(leef.send(records()).await).await;
    assert_delivered(bsd.send(records()).await).await;
    let messages = rsyslog
        .wait_for(OUTPUT_TIMEOUT, |messages| messages.len() >= 3)
        .await;
    let bsd_message = messages
        .iter()
        .find(|m| text(m, "raw").contains("siem-forwarder[4211]"))
        .expect("the rfc3164 message arrived");
    assert_parts(
        bsd_message,
        &[
            ("version", "0"),
            ("hostname", "10.0.0.1"),
            ("app_name", "siem-forwarder"),
            ("procid", "4211"),
        ],
    );
    // RFC 3164 has no year or zone: rsyslog fills in its own.
    assert!(text(bsd_message, "timestamp").contains("-03-05T07:08:09"));
    let raws: BTreeSet<&str> = messages.iter().map(|m| text(m, "raw")).collect();
    let expected: BTreeSet<&str> = [
        "<131>Mar  5 15:08:09 10.0.0.1 CEF:0|Alibaba Cloud|Log Service|1.0|LOGIN|log|7|rt=1709622489123 act=LOGIN msg=a\\=b\\nc^d suser=bo|b",
        "<14>Mar  5 07:08:09 10.0.0.1 LEEF:2.0|Alibaba Cloud|Log Service|1.0|LOGIN|^|msg=a=b c d^usrName=bo|b^devTime=1709622489123",
        "<14>Mar  5 07:08:09 10.0.0.1 siem-forwarder[4211]: __time__=1709622489||__time_ns_part__=123000000||\
         __topic__=audit||__source__=10.0.0.1||level=ERROR||action=LOGIN||user=bo\\|b||message=a=b\nc^d",
    ]
    .into_iter()
    .collect();
    assert_eq!(raws, expected);
    cef.stop().await;
    leef.stop().await;
    bsd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_delivers() {
    let certs = tempfile::tempdir().unwrap();
    let pki = rsyslog_certs::generate(certs.path(), "mtls");
    let rsyslog = tls_receiver(&pki, true);
    let mut sink = RunningSink::start(
        "rsyslog-mtls",
        rsyslog.tls_port.unwrap(),
        &format!(
            r#"
        protocol = "tls"
        format = "rfc5424"
        body = "sd"
        message_field = "message"
        msgid_field = "action"
        tls = {{ ca_file = "{ca}", cert_file = "{cert}", key_file = "{key}", server_name = "localhost" }}
        "#,
            ca = pki.ca_file.display(),
            cert = pki.client_cert.display(),
            key = pki.client_key.display(),
        ),
    );
    let messages = sink.deliver(audit_pair(), &rsyslog, 2).await;
    assert_parts(
        &messages[0],
        &[
            ("input", "tls"),
            ("msgid", "LOGIN"),
            ("msg", "héllo 世界\nsecond line"),
        ],
    );
    assert!(text(&messages[0], "structured_data").contains(" user=\"bo\\\"b\\]\\\\\" "));
    assert_eq!(text(&messages[1], "msg"), "ascii only");
    // The sink settles the batch just before it records its health.
    sink.wait_for_health(|state| *state == HealthState::Healthy)
        .await;
    sink.stop().await;
}

/// Connects to `rsyslog`'s TLS input trusting `ca` (without a client certificate) and
/// checks that the batch is refused: health goes red with a reason containing every one of
/// `reason_parts`, no ack is settled, and rsyslog wrote nothing.
async fn assert_tls_refused(
    rsyslog: Rsyslog,
    name: &str,
    ca: &std::path::Path,
    reason_parts: &[&str],
) {
    let mut sink = RunningSink::start(
        name,
        rsyslog.tls_port.unwrap(),
        &format!(
            "protocol = \"tls\"\nretry_initial = \"100ms\"\nretry_max = \"500ms\"\n\
             tls = {{ ca_file = \"{}\" }}",
            ca.display()
        ),
    );
    let mut receiver = sink.send(audit_pair()).await;
    let state = sink
        .wait_for_health(|state| matches!(state, HealthState::Unhealthy(_)))
        .await;
    let HealthState::Unhealthy(reason) = state else {
        unreachable!()
    };
    for part in reason_parts {
        assert!(reason.contains(part), "{reason}");
    }
    assert_eq!(receiver.try_outcome(), None, "nothing may be acked");
    sink.stop().await;
    assert!(matches!(receiver.await, DeliveryStatus::Failed(_)));
    assert!(rsyslog.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_receiver_with_an_untrusted_certificate_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let receiver_pki = rsyslog_certs::generate(certs.path(), "receiver");
    let other_pki = rsyslog_certs::generate(certs.path(), "other");
    let rsyslog = tls_receiver(&receiver_pki, false);
    assert_tls_refused(
        rsyslog,
        "rsyslog-untrusted",
        &other_pki.ca_file,
        &["certificate", "tls handshake"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_receiver_that_rejects_our_client_certificate_gets_no_ack() {
    let certs = tempfile::tempdir().unwrap();
    let pki = rsyslog_certs::generate(certs.path(), "client-auth");
    let rsyslog = tls_receiver(&pki, true);
    // No client certificate: the handshake may complete on our side (TLS 1.3) and the
    // receiver rejects us right after it.
    assert_tls_refused(
        rsyslog,
        "rsyslog-no-client-cert",
        &pki.ca_file,
        &["tls handshake"],
    )
    .await;
}

/// Settings of the outage tests: the log's number is the MSGID, retries are quick.
const OUTAGE_RETRIES: &str = "msgid_field = \"seq\"\nretry_initial = \"200ms\"\nretry_max = \"2s\"";

/// Sends 150 logs, kills rsyslogd, sends 150 more while it is down (their acks must stay
/// pending), restarts it on the same port after [`OUTAGE`], and checks that every log arrived.
async fn outage_loses_nothing(mut rsyslog: Rsyslog, mut sink: RunningSink) {
    let mut before = Vec::new();
    for batch in 0..3 {
        before.push(sink.send(numbered(batch * 50, 50)).await);
    }
    for receiver in before {
        assert_delivered(receiver).await;
    }
    rsyslog
        .wait_for(OUTPUT_TIMEOUT, |messages| msgids(messages).len() == 150)
        .await;

    rsyslog.kill();
    let mut during = Vec::new();
    for batch in 3..6 {
        during.push(sink.send(numbered(batch * 50, 50)).await);
    }
    sink.wait_for_health(|state| matches!(state, HealthState::Unhealthy(_)))
        .await;
    let back_up = Instant::now() + OUTAGE;
    while Instant::now() < back_up {
        for receiver in &mut during {
            assert_eq!(
                receiver.try_outcome(),
                None,
                "a batch was settled while the receiver was down"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    rsyslog.restart();
    for receiver in during {
        assert_delivered(receiver).await;
    }
    assert_delivered(sink.send(numbered(300, 10)).await).await;
    let messages = rsyslog
        .wait_for(OUTPUT_TIMEOUT, |messages| msgids(messages).len() == 310)
        .await;
    assert_eq!(msgids(&messages), (0..310).collect::<BTreeSet<_>>());
    sink.wait_for_health(|state| *state == HealthState::Healthy)
        .await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_receiver_outage_is_retried_until_every_log_arrives() {
    let rsyslog = tcp_receiver();
    let sink = RunningSink::start(
        "rsyslog-tcp-outage",
        rsyslog.tcp_port.unwrap(),
        OUTAGE_RETRIES,
    );
    outage_loses_nothing(rsyslog, sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_receiver_outage_is_retried_until_every_log_arrives() {
    let certs = tempfile::tempdir().unwrap();
    let pki = rsyslog_certs::generate(certs.path(), "outage");
    let rsyslog = tls_receiver(&pki, false);
    let sink = RunningSink::start(
        "rsyslog-tls-outage",
        rsyslog.tls_port.unwrap(),
        &format!(
            "{OUTAGE_RETRIES}\nprotocol = \"tls\"\nbody = \"json\"\ntls = {{ ca_file = \"{}\" }}",
            pki.ca_file.display()
        ),
    );
    outage_loses_nothing(rsyslog, sink).await;
}
