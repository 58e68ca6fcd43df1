//! Hostile configuration values through the real binary.
//!
//! Every bad value must make `siem-forwarder validate` exit 1 (not succeed, not panic) with an
//! error naming the file, the key and the line; a few also go through `run`, which must refuse
//! them the same way. Values at the edge of every range must be accepted. Nothing here needs
//! the network: the source endpoint is a closed loopback port.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use siem_forwarder::config::{ForwarderConfig, SinkConfig};

/// The section a case changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Source,
    Consumer,
    Transform,
    Telemetry,
    /// The `[[sinks]]` entry, a syslog sink.
    Syslog,
    /// The `[[sinks]]` entry replaced by a file sink.
    File,
}

const SOURCE: &[&str] = &[
    "endpoint = \"http://127.0.0.1:9\"",
    "project = \"my-project\"",
    "logstores = [\"audit\"]",
    "access_key_id = \"id\"",
    "access_key_secret = \"secret\"",
];
const CONSUMER: &[&str] = &["group = \"g\""];
const SYSLOG: &[&str] = &["type = \"syslog\"", "address = \"siem.example.com:514\""];
const FILE: &[&str] = &["type = \"file\"", "path = \"out.jsonl\""];

/// `base` with `lines` appended, each replacing a base line that sets the same key.
fn with_overrides(base: &[&str], lines: &str) -> Vec<String> {
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
    let mut out: Vec<String> = base
        .iter()
        .filter(|line| !lines.lines().any(|changed| key(changed) == key(line)))
        .map(ToString::to_string)
        .collect();
    out.extend(lines.lines().map(ToString::to_string));
    out
}

/// A valid configuration with `lines` set in `section`, and the 1-based line of the last
/// of them (the one a case's error is about).
fn config(section: Section, lines: &str) -> (String, usize) {
    let sink = if section == Section::File {
        (Section::File, "[[sinks]]", FILE)
    } else {
        (Section::Syslog, "[[sinks]]", SYSLOG)
    };
    let parts = [
        (Section::Source, "[source]", SOURCE),
        (Section::Consumer, "[consumer]", CONSUMER),
        (Section::Transform, "[transform]", &[][..]),
        (Section::Telemetry, "[telemetry]", &[][..]),
        sink,
    ];
    let mut text: Vec<String> = Vec::new();
    let mut last_changed = 0;
    for (part, header, base) in parts {
        text.push(header.to_owned());
        if part == section {
            let body = with_overrides(base, lines);
            last_changed = text.len() + body.len();
            text.extend(body);
        } else {
            text.extend(base.iter().map(ToString::to_string));
        }
        text.push(String::new());
    }
    (text.join("\n"), last_changed)
}

/// A bad value: where it goes, and the key the error must name.
struct Bad {
    section: Section,
    lines: &'static str,
    key: &'static str,
}

const fn bad(section: Section, lines: &'static str, key: &'static str) -> Bad {
    Bad {
        section,
        lines,
        key,
    }
}

use Section::{Consumer, File, Source, Syslog, Telemetry, Transform};

const BAD_VALUES: &[Bad] = &[
    // [consumer]
    bad(
        Consumer,
        "checkpoint_interval = \"0s\"",
        "consumer.checkpoint_interval",
    ),
    bad(
        Consumer,
        "checkpoint_interval = \"1h\"",
        "consumer.checkpoint_interval",
    ),
    bad(
        Consumer,
        "heartbeat_interval = \"99999999999999999999s\"",
        "consumer.heartbeat_interval",
    ),
    bad(
        Consumer,
        "heartbeat_interval = \"0s\"",
        "consumer.heartbeat_interval",
    ),
    bad(
        Consumer,
        "heartbeat_interval = \"-1s\"",
        "consumer.heartbeat_interval",
    ),
    bad(
        Consumer,
        "heartbeat_interval = \"NaN\"",
        "consumer.heartbeat_interval",
    ),
    bad(
        Consumer,
        "heartbeat_interval = -5",
        "consumer.heartbeat_interval",
    ),
    bad(
        Consumer,
        "heartbeat_interval = 18446744073709551615",
        "consumer.heartbeat_interval",
    ),
    bad(
        Consumer,
        "fetch_interval = \"0s\"",
        "consumer.fetch_interval",
    ),
    bad(
        Consumer,
        "fetch_interval = \"1000000000s\"",
        "consumer.fetch_interval",
    ),
    bad(Consumer, "group_timeout = \"0s\"", "consumer.group_timeout"),
    bad(
        Consumer,
        "group_timeout = \"30s\"",
        "consumer.group_timeout",
    ),
    bad(
        Consumer,
        "group_timeout = \"1000h\"",
        "consumer.group_timeout",
    ),
    bad(Consumer, "drain_timeout = \"0s\"", "consumer.drain_timeout"),
    bad(Consumer, "drain_timeout = \"2h\"", "consumer.drain_timeout"),
    bad(
        Consumer,
        "max_inflight_bytes = 0",
        "consumer.max_inflight_bytes",
    ),
    bad(
        Consumer,
        "max_inflight_bytes = \"1KiB\"",
        "consumer.max_inflight_bytes",
    ),
    bad(
        Consumer,
        "max_inflight_bytes = \"99999999999999999999999GiB\"",
        "consumer.max_inflight_bytes",
    ),
    bad(
        Consumer,
        "max_inflight_bytes = \"8GiB\"",
        "consumer.max_inflight_bytes",
    ),
    bad(
        Consumer,
        "max_inflight_batches = 0",
        "consumer.max_inflight_batches",
    ),
    bad(
        Consumer,
        "max_inflight_batches = 100000",
        "consumer.max_inflight_batches",
    ),
    bad(
        Consumer,
        "max_fetch_groups = 0",
        "consumer.max_fetch_groups",
    ),
    bad(
        Consumer,
        "max_fetch_groups = 5000",
        "consumer.max_fetch_groups",
    ),
    bad(Consumer, "group = \"\"", "consumer.group"),
    bad(Consumer, "group = \"a/b\"", "consumer.group"),
    bad(Consumer, "name = \"bad name\"", "consumer.name"),
    bad(
        Consumer,
        "start = \"1900-01-01T00:00:00Z\"",
        "consumer.start",
    ),
    // [source]
    bad(Source, "project = \"My-Project\"", "source.project"),
    bad(Source, "project = \"projé\"", "source.project"),
    bad(Source, "project = \"ab\"", "source.project"),
    bad(Source, "project = \"my.project\"", "source.project"),
    bad(
        Source,
        "logstores = [\"audit\", \"audit\"]",
        "source.logstores",
    ),
    bad(Source, "logstores = [\"ab\"]", "source.logstores"),
    bad(Source, "logstores = [\"../../x\"]", "source.logstores"),
    bad(Source, "logstores = []", "source.logstores"),
    bad(
        Source,
        "signature_version = \"v5\"",
        "source.signature_version",
    ),
    bad(Source, "region = \"Bad Region\"", "source.region"),
    bad(
        Source,
        "security_token = \"token\\n\"",
        "source.security_token",
    ),
    bad(
        Source,
        "security_token = \"tøken\"",
        "source.security_token",
    ),
    bad(
        Source,
        "access_key_id = \"id with space\"",
        "source.access_key_id",
    ),
    bad(
        Source,
        "access_key_secret = \"secret\\u0007\"",
        "source.access_key_secret",
    ),
    bad(
        Source,
        "endpoint = \"ftp://example.com\"",
        "source.endpoint",
    ),
    bad(
        Source,
        "endpoint = \"https://example.com/path\"",
        "source.endpoint",
    ),
    bad(Source, "endpoint = \"not a url\"", "source.endpoint"),
    bad(
        Source,
        "endpoint = \"local\"\nlocal = { shards = 0 }",
        "source.local.shards",
    ),
    bad(
        Source,
        "endpoint = \"local\"\nlocal = { generate = 99999999 }",
        "source.local.generate",
    ),
    // [source.credentials]
    bad(
        Source,
        "credentials = { provider = \"environment\" }",
        "source.credentials",
    ),
    bad(
        Source,
        "access_key_id = \"\"\naccess_key_secret = \"\"\ncredentials = { provider = \"vault\" }",
        "source.credentials",
    ),
    bad(
        Source,
        "access_key_id = \"\"\naccess_key_secret = \"\"\n\
         credentials = { provider = \"ecs_ram_role\", role_name = \"../admin\" }",
        "source.credentials.role_name",
    ),
    bad(
        Source,
        "access_key_id = \"\"\naccess_key_secret = \"\"\n\
         credentials = { provider = \"ecs_ram_role\", metadata_endpoint = \"ftp://x\" }",
        "source.credentials.metadata_endpoint",
    ),
    bad(
        Source,
        "access_key_id = \"\"\naccess_key_secret = \"\"\n\
         credentials = { provider = \"oidc_role_arn\", oidc_token_file = \"/t\" }",
        "source.credentials.role_arn",
    ),
    bad(
        Source,
        "access_key_id = \"\"\naccess_key_secret = \"\"\n\
         credentials = { provider = \"oidc_role_arn\", role_arn = \"acs:ram::1:role/r\", \
         oidc_provider_arn = \"acs:ram::1:oidc-provider/p\", oidc_token_file = \"/t\", \
         duration_seconds = 60 }",
        "source.credentials.duration_seconds",
    ),
    bad(
        Source,
        "access_key_id = \"\"\naccess_key_secret = \"\"\n\
         credentials = { provider = \"file\", path = \"\" }",
        "source.credentials.path",
    ),
    bad(
        Source,
        "access_key_id = \"\"\naccess_key_secret = \"\"\n\
         credentials = { provider = \"static\", access_key_id = \"i\", \
         access_key_secret = \"s\", security_token = \"to ken\" }",
        "source.credentials.security_token",
    ),
    bad(
        Source,
        "endpoint = \"local\"\naccess_key_id = \"\"\naccess_key_secret = \"\"\n\
         credentials = { provider = \"environment\" }",
        "source.credentials.provider",
    ),
    // [[sinks]] type = "syslog"
    bad(
        Syslog,
        "connect_timeout = \"0s\"",
        "sinks[0].connect_timeout",
    ),
    bad(Syslog, "write_timeout = \"0s\"", "sinks[0].write_timeout"),
    bad(
        Syslog,
        "write_timeout = \"99999999999999999999s\"",
        "sinks[0].write_timeout",
    ),
    bad(Syslog, "retry_initial = \"0s\"", "sinks[0].retry_initial"),
    bad(
        Syslog,
        "retry_initial = \"10s\"\nretry_max = \"1s\"",
        "sinks[0].retry_max",
    ),
    bad(Syslog, "retry_max = \"2h\"", "sinks[0].retry_max"),
    bad(Syslog, "address = \"nohost\"", "sinks[0].address"),
    bad(Syslog, "address = \"host:0\"", "sinks[0].address"),
    bad(Syslog, "address = \"bad host:514\"", "sinks[0].address"),
    bad(
        Syslog,
        "protocol = \"udp\"\nmax_datagram = \"1MiB\"",
        "sinks[0].max_datagram",
    ),
    bad(
        Syslog,
        "format = \"rfc3164\"\nrfc3164_max_length = 0",
        "sinks[0].rfc3164_max_length",
    ),
    bad(Syslog, "name = \"\"", "sinks[0].name"),
    // [[sinks]] type = "file"
    bad(File, "path = \"\"", "sinks[0].path"),
    bad(
        File,
        "path = \"/nonexistent-directory/out.jsonl\"",
        "sinks[0].path",
    ),
    bad(File, "path = \"/\"", "sinks[0].path"),
    // [transform], [telemetry]
    bad(Transform, "drop = [\"level = 1\"]", "transform.drop"),
    bad(Transform, "rename = { a = \"\" }", "transform.rename"),
    bad(Telemetry, "listen = \"not-an-address\"", "telemetry.listen"),
    bad(
        Telemetry,
        "listen = \"127.0.0.1:99999\"",
        "telemetry.listen",
    ),
];

/// Runs the binary with `args` and `config` written to a file, with only `env` set; kills it
/// and fails after a deadline (a refused configuration must exit at once).
fn run_binary(args: &[&str], config: &str, env: &[(&str, &str)]) -> (PathBuf, Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.keep().join("hostile.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(args)
        .arg(&path)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run siem-forwarder");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{args:?} did not exit within 60 s on:\n{config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    (path, output)
}

/// Checks that `args` refuse `config`: exit 1, no panic, and the error names the file, the
/// key and, when given, the line.
fn assert_refused(args: &[&str], config: &str, key: &str, line: Option<usize>) -> String {
    let (path, output) = run_binary(args, config, &[("HOSTILE_VALUE", HOSTILE_VALUE)]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let context = format!("{args:?} {key}:\n{config}\n---\n{stderr}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "must fail cleanly: {context}"
    );
    assert!(!stderr.contains("panicked"), "must not panic: {context}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "must name the file: {context}"
    );
    assert!(stderr.contains(key), "must name `{key}`: {context}");
    if let Some(line) = line {
        assert!(
            stderr.contains(&format!("line {line}:")),
            "must name line {line}: {context}"
        );
    }
    stderr
}

/// A value meant to break out of its TOML string.
const HOSTILE_VALUE: &str = "x\"\n[consumer]\ngroup = \"other\\";

#[test]
fn validate_refuses_every_bad_value_naming_key_and_line() {
    assert!(BAD_VALUES.len() >= 40);
    for case in BAD_VALUES {
        let (text, line) = config(case.section, case.lines);
        assert_refused(&["validate", "--config"], &text, case.key, Some(line));
    }
}

#[test]
fn run_refuses_bad_values_and_exits_cleanly() {
    for key in [
        "consumer.checkpoint_interval",
        "consumer.heartbeat_interval",
        "consumer.fetch_interval",
        "source.security_token",
        "source.logstores",
        "sinks[0].connect_timeout",
    ] {
        let case = BAD_VALUES.iter().find(|case| case.key == key).unwrap();
        let (text, line) = config(case.section, case.lines);
        assert_refused(&["run", "--config"], &text, case.key, Some(line));
    }
}

#[test]
fn environment_values_stay_inside_their_string_and_are_not_echoed() {
    // Unset variables in comments do not matter; an unset one in a value names its key.
    let (text, _) = config(Consumer, "# name = \"${UNSET_VARIABLE}\"");
    let (_, output) = run_binary(&["validate", "--config"], &text, &[]);
    assert!(output.status.success(), "{output:?}");
    let (text, line) = config(Consumer, "name = \"${UNSET_VARIABLE}\"");
    assert_refused(
        &["validate", "--config"],
        &text,
        "consumer.name",
        Some(line),
    );
    // A value with quotes and newlines stays the consumer name (then refused as a name), and
    // is not repeated in the error.
    let (text, line) = config(Consumer, "name = \"${HOSTILE_VALUE}\"");
    let stderr = assert_refused(
        &["validate", "--config"],
        &text,
        "consumer.name",
        Some(line),
    );
    assert!(!stderr.contains("other"), "{stderr}");
    // Through the library: the value arrives intact.
    let (text, _) = config(Syslog, "hostname = \"${HOSTILE_VALUE}\"");
    let config = ForwarderConfig::parse(&text, |name| {
        (name == "HOSTILE_VALUE").then(|| HOSTILE_VALUE.to_owned())
    })
    .unwrap();
    let SinkConfig::Syslog(syslog) = &config.sinks[0] else {
        panic!("a syslog sink")
    };
    assert_eq!(syslog.hostname, HOSTILE_VALUE);
    assert_eq!(config.consumer.group, "g");
}

#[test]
fn values_at_the_edges_of_their_ranges_are_accepted() {
    let long_logstore = format!("logstores = [\"{}\"]", "a".repeat(63));
    let good: &[(Section, &str)] = &[
        (Consumer, "checkpoint_interval = \"100ms\"\nfetch_interval = \"100ms\"\nheartbeat_interval = \"100ms\""),
        (Consumer, "checkpoint_interval = \"10m\"\nfetch_interval = \"5m\"\ndrain_timeout = \"30m\""),
        (Consumer, "heartbeat_interval = \"5m\"\ngroup_timeout = \"10m\""),
        (Consumer, "heartbeat_interval = \"1s\"\ngroup_timeout = \"2s\"\ndrain_timeout = \"1s\""),
        (Consumer, "max_inflight_bytes = \"1MiB\"\nmax_inflight_batches = 1\nmax_fetch_groups = 1"),
        (Consumer, "max_inflight_bytes = \"4GiB\"\nmax_inflight_batches = 64\nmax_fetch_groups = 1000"),
        (Consumer, "start = \"1970-01-01T00:00:00Z\"\nname = \"host-1.example:42\""),
        (Source, "project = \"abc\"\nlogstores = [\"a_b\", \"a-b\"]"),
        (Source, &long_logstore),
        (Source, "endpoint = \"https://cn-hangzhou.log.aliyuncs.com/\"\nsecurity_token = \"CAIS+/=token\""),
        (Source, "endpoint = \"local\"\nlocal = { shards = 256, generate = 0 }"),
        (Source, "access_key_id = \"\"\naccess_key_secret = \"\"\ncredentials = { provider = \"oidc_role_arn\", role_arn = \"acs:ram::1:role/r\", oidc_provider_arn = \"acs:ram::1:oidc-provider/p\", oidc_token_file = \"/t\", duration_seconds = 43200, role_session_name = \"ab\" }"),
        (Source, "access_key_id = \"\"\naccess_key_secret = \"\"\ncredentials = { provider = \"ecs_ram_role\", role_name = \"a\", metadata_endpoint = \"100.100.100.200:80\" }"),
        (Syslog, "connect_timeout = \"100ms\"\nwrite_timeout = \"1s\"\nretry_initial = \"10ms\"\nretry_max = \"10ms\""),
        (Syslog, "connect_timeout = \"5m\"\nwrite_timeout = \"10m\"\nretry_initial = \"5m\"\nretry_max = \"1h\""),
        (Syslog, "protocol = \"udp\"\nmax_datagram = 480"),
        (Syslog, "format = \"rfc3164\"\nrfc3164_max_length = 64\nhostname = \"a \\\"quoted\\\" name\""),
        (Telemetry, "listen = \"127.0.0.1:0\""),
    ];
    for (section, lines) in good {
        let (text, _) = config(*section, lines);
        let (_, output) = run_binary(&["validate", "--config"], &text, &[]);
        assert!(
            output.status.success(),
            "{lines} must be accepted:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
