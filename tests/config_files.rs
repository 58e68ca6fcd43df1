//! The example configurations in `config/` and the `validate` command.
//!
//! Every `config/*.toml` must load with no environment at all (only the `${VAR:-default}`
//! defaults it declares) through the library, build its sinks, and pass
//! `siem-forwarder validate`. Broken configurations must make `validate` fail, naming the file
//! and the offending key, and the line when the error comes from TOML parsing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use siem_forwarder::config::{ForwarderConfig, SinkConfig};
use siem_forwarder::encoding::config::Format;
use siem_forwarder::sinks::splunk_hec::config::HecCompression;
use siem_forwarder::sinks::syslog::Protocol;
use siem_forwarder::source::credentials::config::SourceCredentials;

/// The example files the README, the docs and the deploy recipes point at; a missing one is a
/// broken link.
const DOCUMENTED_EXAMPLES: &[&str] = &[
    "archive-cos.toml",
    "archive-oss.toml",
    "archive-parquet.toml",
    "arcsight-cef-tcp.toml",
    "multi-logstore.toml",
    "multi-sink.toml",
    "qradar-leef-tls.toml",
    "quickstart.toml",
    "splunk-hec.toml",
];

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// Every `*.toml` file of `config/`, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .expect("read config/")
        .map(|entry| entry.expect("config/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

/// Loads an example with an empty environment, as CI and a fresh machine see it.
fn load_example(name: &str) -> ForwarderConfig {
    let path = config_dir().join(name);
    let text = std::fs::read_to_string(&path).expect("read example");
    ForwarderConfig::parse(&text, |_| None)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Runs `siem-forwarder validate --config FILE` with no environment variables.
fn validate_command(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(["validate", "--config"])
        .arg(file)
        .env_clear()
        .output()
        .expect("run siem-forwarder validate")
}

#[test]
fn every_documented_example_exists() {
    let names: Vec<String> = example_files()
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in DOCUMENTED_EXAMPLES {
        assert!(
            names.iter().any(|name| name == expected),
            "config/{expected} is missing (found {names:?})"
        );
    }
}

#[test]
fn every_example_loads_without_environment_and_builds_its_sinks() {
    for path in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let config = ForwarderConfig::parse(&text, |_| None)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let sinks = siem_forwarder::app::build_sinks(&config.sinks)
            .unwrap_or_else(|error| panic!("{}: {error:#}", path.display()));
        assert_eq!(sinks.len(), config.sinks.len(), "{}", path.display());
        assert!(!sinks.is_empty(), "{} has no sink", path.display());
    }
}

#[test]
fn every_example_passes_the_validate_command() {
    for path in example_files() {
        let output = validate_command(&path);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "validate {} failed ({}):\n{stderr}",
            path.display(),
            output.status
        );
        assert!(
            stdout.contains(&format!("{}: ok", path.display())),
            "{stdout}"
        );
    }
}

#[test]
fn cloud_examples_read_every_secret_from_the_environment() {
    for name in DOCUMENTED_EXAMPLES
        .iter()
        .filter(|name| **name != "quickstart.toml")
    {
        let text = std::fs::read_to_string(config_dir().join(name)).unwrap();
        for (key, variable) in [
            ("access_key_id", "SLS_AK_ID"),
            ("access_key_secret", "SLS_AK_KEY"),
        ] {
            assert!(
                text.contains(&format!("{key} = \"${{{variable}:-replace-me}}\"")),
                "{name}: {key} must come from ${variable}"
            );
        }
        if text.contains("type = \"splunk_hec\"") {
            assert!(
                text.contains("token = \"${SPLUNK_HEC_TOKEN:-replace-me}\""),
                "{name}: the HEC token must come from $SPLUNK_HEC_TOKEN"
            );
        }
        let config = load_example(name);
        let source = config.source.resolve(|_| None).unwrap();
        assert_eq!(
            source.endpoint, "https://cn-hangzhou.log.aliyuncs.com",
            "{name}"
        );
        // The environment wins over the placeholder defaults.
        let text = std::fs::read_to_string(config_dir().join(name)).unwrap();
        let config = ForwarderConfig::parse(&text, |variable| {
            (variable == "SLS_AK_KEY").then(|| "real-secret".to_owned())
        })
        .unwrap();
        let source = config.source.resolve(|_| None).unwrap();
        let SourceCredentials::Static(keys) = &source.credentials else {
            panic!("{name}: static keys");
        };
        assert_eq!(keys.access_key_secret.expose(), "real-secret", "{name}");
    }
}

fn hec_sinks(
    config: &ForwarderConfig,
) -> Vec<&siem_forwarder::sinks::splunk_hec::config::SplunkHecSinkConfig> {
    config
        .sinks
        .iter()
        .filter_map(|sink| match sink {
            SinkConfig::SplunkHec(hec) => Some(hec.as_ref()),
            _ => None,
        })
        .collect()
}

fn syslog_sinks(
    config: &ForwarderConfig,
) -> Vec<&siem_forwarder::sinks::syslog::config::SyslogSinkConfig> {
    config
        .sinks
        .iter()
        .filter_map(|sink| match sink {
            SinkConfig::Syslog(syslog) => Some(syslog.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn splunk_example_compresses_and_expands_actiontrail_events() {
    let config = load_example("splunk-hec.toml");
    let [hec] = hec_sinks(&config)[..] else {
        panic!("one splunk_hec sink expected")
    };
    assert_eq!(hec.compression, HecCompression::Gzip);
    assert_eq!(hec.index.as_deref(), Some("alicloud"));
    assert_eq!(hec.sourcetype.as_deref(), Some("alicloud:actiontrail"));
    assert_eq!(
        hec.embed_json.get("actiontrail_audit_event"),
        Some(&vec!["event".to_owned()])
    );
    assert!(!hec.ack, "indexer acknowledgement is documented as opt-in");
}

#[test]
fn qradar_example_sends_leef_over_verified_tls() {
    let config = load_example("qradar-leef-tls.toml");
    let [qradar] = syslog_sinks(&config)[..] else {
        panic!("one syslog sink expected")
    };
    assert_eq!(qradar.protocol, Protocol::Tls);
    assert_eq!(qradar.format, Format::Leef);
    let tls = qradar.tls.as_ref().expect("tls settings are spelled out");
    assert!(tls.verify, "certificate verification must stay on");
    assert_eq!(
        tls.ca_file, None,
        "system trust store, so validate passes anywhere"
    );
}

#[test]
fn arcsight_example_sends_newline_framed_cef_over_tcp() {
    let config = load_example("arcsight-cef-tcp.toml");
    let [arcsight] = syslog_sinks(&config)[..] else {
        panic!("one syslog sink expected")
    };
    assert_eq!(arcsight.protocol, Protocol::Tcp);
    assert_eq!(arcsight.format, Format::Cef);
    assert_eq!(
        arcsight.framing,
        Some(siem_forwarder::encoding::framing::Framing::Lf),
        "ArcSight connectors split TCP streams on newlines"
    );
}

#[test]
fn multi_examples_have_several_logstores_and_several_sinks() {
    let logstores = load_example("multi-logstore.toml")
        .source
        .resolve(|_| None)
        .unwrap()
        .logstores;
    assert!(logstores.len() >= 2, "{logstores:?}");
    let config = load_example("multi-sink.toml");
    assert_eq!(hec_sinks(&config).len(), 1);
    assert_eq!(syslog_sinks(&config).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Broken configurations through the binary.

const SOURCE: &str = "[source]
endpoint = \"https://cn-hangzhou.log.aliyuncs.com\"
project = \"my-project\"
logstores = [\"audit\"]
access_key_id = \"id\"
access_key_secret = \"secret\"
";

/// A broken configuration, and what `validate` must say about it.
struct BrokenCase {
    /// File name, so the test can check the message names it.
    file: &'static str,
    /// The whole configuration.
    text: String,
    /// Strings the error output must contain: the key, and the line when TOML knows it.
    expected: &'static [&'static str],
}

/// Runs `validate` on `case` and checks it fails, naming the file and every expected string.
fn assert_rejected(case: &BrokenCase) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(case.file);
    std::fs::write(&path, &case.text).unwrap();
    let output = validate_command(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}: validate must fail cleanly (not succeed, not panic):\n{stderr}",
        case.file
    );
    assert!(
        stderr.contains(&path.display().to_string()),
        "{}: the error must name the file:\n{stderr}",
        case.file
    );
    for expected in case.expected {
        assert!(
            stderr.contains(expected),
            "{}: the error must mention `{expected}`:\n{stderr}",
            case.file
        );
    }
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    assert_rejected(&BrokenCase {
        file: "unknown-key.toml",
        text: format!(
            "{SOURCE}\n[consumer]\ngroup = \"g\"\nheartbeat_intervall = \"20s\"\n\n[[sinks]]\ntype = \"console\"\n"
        ),
        expected: &["line 10", "heartbeat_intervall"],
    });
}

#[test]
fn bad_duration_is_rejected_with_its_line() {
    assert_rejected(&BrokenCase {
        file: "bad-duration.toml",
        text: format!(
            "{SOURCE}\n[consumer]\ngroup = \"g\"\nfetch_interval = \"1 second\"\n\n[[sinks]]\ntype = \"console\"\n"
        ),
        expected: &["line 10", "fetch_interval", "invalid duration `1 second`"],
    });
}

const HEC_WITHOUT_TOKEN: &str =
    "[[sinks]]\ntype = \"splunk_hec\"\nurl = \"https://splunk.example.com:8088\"\n";

#[test]
fn missing_hec_token_is_rejected() {
    assert_rejected(&BrokenCase {
        file: "hec-without-token.toml",
        text: format!("{SOURCE}\n[consumer]\ngroup = \"g\"\n\n{HEC_WITHOUT_TOKEN}"),
        // TOML points at the `[[sinks]]` table that lacks the key.
        expected: &["line 11", "missing field `token`"],
    });
    assert_rejected(&BrokenCase {
        file: "hec-empty-token.toml",
        text: format!("{SOURCE}\n[consumer]\ngroup = \"g\"\n\n{HEC_WITHOUT_TOKEN}token = \"\"\n"),
        expected: &["line 14", "sinks[0].token", "must not be empty"],
    });
}

fn unset_token_variable() -> BrokenCase {
    BrokenCase {
        file: "hec-unset-token-variable.toml",
        text: format!(
            "{SOURCE}\n[consumer]\ngroup = \"g\"\n\n{HEC_WITHOUT_TOKEN}token = \"${{SPLUNK_HEC_TOKEN}}\"\n"
        ),
        expected: &["line 14", "`SPLUNK_HEC_TOKEN` is not set"],
    }
}

#[test]
fn unset_token_variable_is_rejected_with_its_line() {
    assert_rejected(&unset_token_variable());
}

#[test]
fn unset_token_variable_names_the_key() {
    let mut case = unset_token_variable();
    // `token` also occurs in `SPLUNK_HEC_TOKEN`; the key must appear on its own.
    case.expected = &["line 14", "SPLUNK_HEC_TOKEN", "sinks[0].token:"];
    assert_rejected(&case);
}

fn missing_ca_file() -> BrokenCase {
    BrokenCase {
        file: "missing-ca-file.toml",
        text: format!(
            "{SOURCE}\n[consumer]\ngroup = \"g\"\n\n[[sinks]]\ntype = \"syslog\"\naddress = \"qradar.example.com:6514\"\n\
             protocol = \"tls\"\ntls = {{ ca_file = \"/nonexistent/qradar-ca.pem\" }}\n"
        ),
        expected: &["sinks[0]", "tls", "/nonexistent/qradar-ca.pem", "No such file"],
    }
}

#[test]
fn unreadable_tls_file_is_rejected_naming_the_path() {
    assert_rejected(&missing_ca_file());
}

#[test]
fn unreadable_tls_file_names_the_key() {
    let mut case = missing_ca_file();
    case.expected = &[
        "line 15",
        "sinks[0].tls.ca_file",
        "/nonexistent/qradar-ca.pem",
    ];
    assert_rejected(&case);
}

/// The `[[sinks]]` entry of an archive, with extra lines.
fn archive(extra: &str) -> String {
    format!(
        "[[sinks]]\ntype = \"object_storage\"\nprovider = \"aws\"\nregion = \"us-east-1\"\nbucket = \"archive\"\n\
         access_key_id = \"id\"\nsecret_access_key = \"secret\"\n{extra}\n"
    )
}

#[test]
fn archive_examples_store_in_their_own_group_with_secrets_from_the_environment() {
    for name in ["archive-oss.toml", "archive-cos.toml"] {
        let config = load_example(name);
        assert!(
            config
                .sinks
                .iter()
                .all(|sink| matches!(sink, SinkConfig::ObjectStorage(_))),
            "{name}: only the archive in its group"
        );
        assert!(
            config.warnings().is_empty(),
            "{name}: {:?}",
            config.warnings()
        );
        let text = std::fs::read_to_string(config_dir().join(name)).unwrap();
        assert!(
            text.contains("secret_access_key = \"${"),
            "{name}: the bucket secret comes from the environment"
        );
        let output = validate_command(&config_dir().join(name));
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("warning"),
            "{name}"
        );
    }
}

#[test]
fn validate_warns_when_an_archive_shares_its_group_with_a_siem_sink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.toml");
    std::fs::write(
        &path,
        format!(
            "{SOURCE}\n[consumer]\ngroup = \"g\"\nmax_inflight_batches = 8\n\n{}\n\
             [[sinks]]\ntype = \"syslog\"\nname = \"qradar\"\naddress = \"127.0.0.1:514\"\n",
            archive("")
        ),
    )
    .unwrap();
    let output = validate_command(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a warning, not a refusal:\n{stderr}"
    );
    assert!(
        stderr.contains("warning: sinks[0] (object_storage-0): the archive shares consumer group `g` with qradar"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: consumer.max_inflight_batches: 8"),
        "{stderr}"
    );
}

#[test]
fn an_archive_of_several_logstores_needs_the_logstore_in_its_prefix() {
    let source = SOURCE.replace("[\"audit\"]", "[\"audit\", \"access\"]");
    assert_rejected(&BrokenCase {
        file: "archive-prefix.toml",
        text: format!(
            "{source}\n[consumer]\ngroup = \"g\"\n\n{}",
            archive("prefix = \"archive/\"")
        ),
        expected: &[
            "sinks[0].prefix",
            "must contain {logstore} when source.logstores has 2 logstores",
        ],
    });
}
