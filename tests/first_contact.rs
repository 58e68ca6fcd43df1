//! What a new user sees when the first run fails: the cause said once, with what to check,
//! and log lines without colour codes when stderr is not a terminal.

mod support;

use std::time::Duration;

use support::{TestServer, AK_ID, PROJECT};

/// Runs `siem-forwarder ARGS` with `config_text` as its configuration; returns the exit
/// success and stderr.
async fn run_with(args: &[&str], config_text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forwarder.toml");
    std::fs::write(&config, config_text).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .output(),
    )
    .await
    .expect("the process exits")
    .expect("the process runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn config(server: &TestServer, secret: &str) -> String {
    format!(
        "[source]\nendpoint = \"{}\"\nproject = \"{PROJECT}\"\nlogstores = [\"audit\"]\n\
         access_key_id = \"{AK_ID}\"\naccess_key_secret = \"{secret}\"\n\
         [consumer]\ngroup = \"g\"\n[[sinks]]\ntype = \"null\"\n",
        server.endpoint()
    )
}

#[tokio::test]
async fn a_wrong_secret_is_reported_once_with_what_to_check() {
    let server = TestServer::start(&[("audit", 1)]).await;
    let (ok, stderr) = run_with(&["run"], &config(&server, "not-the-secret")).await;
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.matches("SignatureNotMatch").count(),
        1,
        "the cause appears once:\n{stderr}"
    );
    let error_line = stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line:\n{stderr}"));
    assert!(
        error_line.contains("cannot join consumer group `g` on logstore `audit`")
            && error_line.contains("401 SignatureNotMatch"),
        "{error_line}"
    );
    assert!(
        !stderr.contains(" ERROR "),
        "no second report as a log line:\n{stderr}"
    );
    let hint = stderr
        .lines()
        .find(|line| line.starts_with("hint: "))
        .unwrap_or_else(|| panic!("a hint:\n{stderr}"));
    assert!(
        hint.contains("access_key_secret") && hint.contains("clock") && hint.contains("endpoint"),
        "{hint}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal:\n{stderr}"
    );
}

#[tokio::test]
async fn with_json_logs_a_failed_run_writes_one_json_error_line_with_the_hint() {
    let server = TestServer::start(&[("audit", 1)]).await;
    let (ok, stderr) = run_with(
        &["--log-format", "json", "run"],
        &config(&server, "not-the-secret"),
    )
    .await;
    assert!(!ok, "{stderr}");
    assert_eq!(stderr.matches("SignatureNotMatch").count(), 1, "{stderr}");
    let errors: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("JSON: {line}")))
        .filter(|line: &serde_json::Value| line["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0]["hint"].as_str().unwrap().contains("clock"),
        "{stderr}"
    );
}

#[tokio::test]
async fn status_names_an_unknown_logstore_and_what_to_check() {
    let server = TestServer::start(&[("audit", 1)]).await;
    let text = config(&server, support::AK_SECRET).replace("[\"audit\"]", "[\"nope\"]");
    let (ok, stderr) = run_with(&["status"], &text).await;
    assert!(!ok, "{stderr}");
    assert_eq!(stderr.matches("LogStoreNotExist").count(), 1, "{stderr}");
    assert!(stderr.contains("logstore `nope`"), "{stderr}");
    assert!(stderr.contains("hint: no such logstore"), "{stderr}");
}

#[tokio::test]
async fn a_process_stopped_before_it_joined_does_not_say_it_left_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forwarder.toml");
    // Port 1 on loopback: nothing listens, so joining is retried until the process stops.
    std::fs::write(
        &config,
        format!(
            "[source]\nendpoint = \"http://127.0.0.1:1\"\nproject = \"{PROJECT}\"\n\
             logstores = [\"audit\"]\naccess_key_id = \"{AK_ID}\"\n\
             access_key_secret = \"secret\"\n[consumer]\ngroup = \"g\"\n\
             [[sinks]]\ntype = \"null\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("forwarder.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    support::wait_until(
        "the first failed attempt to join",
        Duration::from_secs(60),
        || {
            let text = read_log();
            async move { text.contains("cannot join the consumer group yet") }
        },
    )
    .await;
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the process exits on SIGTERM")
        .unwrap();
    let text = read_log();
    assert!(status.success(), "{text}");
    assert!(!text.contains("left consumer group"), "{text}");
    assert!(
        text.contains("stopped before joining the consumer group"),
        "{text}"
    );
}
