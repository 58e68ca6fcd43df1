//! `siem-forwarder top` against a running forwarder and the group: plain text when stdout
//! is not a terminal, and the interactive view in a real terminal (tmux), sorted with `s`
//! and left with `q`, restoring the terminal.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::forwarder::{fast_consumer, Forwarder};
use support::{poll_until, put_audit_logs, wait_until, TestServer, AK_ID, AK_SECRET, PROJECT};

const BIN: &str = env!("CARGO_BIN_EXE_siem-forwarder");

/// A configuration naming the group and its logstore, for `--config`.
fn group_config(server: &TestServer, dir: &Path) -> String {
    let path = dir.join("group.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nendpoint = \"{}\"\nproject = \"{PROJECT}\"\nlogstores = [\"audit\"]\n\
             access_key_id = \"{AK_ID}\"\naccess_key_secret = \"{AK_SECRET}\"\n\
             [consumer]\ngroup = \"g\"\n[[sinks]]\ntype = \"null\"\n",
            server.endpoint()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A forwarder with a telemetry endpoint that delivered every log written.
async fn running_forwarder(server: &TestServer, dir: &Path) -> (Forwarder, String) {
    put_audit_logs(&server.client(), "audit", 400, 100, 5).await;
    let telemetry = "\n[telemetry]\nlisten = \"127.0.0.1:0\"\n";
    let forwarder = Forwarder::spawn(
        server,
        dir,
        "audit",
        &fast_consumer("g", "top-a"),
        telemetry,
    );
    let url = forwarder.telemetry_url().await;
    wait_until("the logs to be delivered", Duration::from_secs(60), || {
        let delivered = forwarder.delivered().len();
        async move { delivered == 400 }
    })
    .await;
    (forwarder, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_prints_plain_frames_when_stdout_is_not_a_terminal() {
    let server = TestServer::start(&[("audit", 2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut forwarder, url) = running_forwarder(&server, dir.path()).await;
    let config = group_config(&server, dir.path());
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(BIN)
            .args(["top", "--url", &url, "--config", &config])
            .args(["--interval", "1", "--frames", "2", "--sort", "shard"])
            .output(),
    )
    .await
    .expect("top stops after two frames")
    .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no terminal control codes:\n{text}"
    );
    assert_eq!(
        text.matches("shards (sorted by shard)").count(),
        2,
        "{text}"
    );
    let shard_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("audit "))
        .collect();
    assert_eq!(shard_lines.len(), 4, "two shards, two frames:\n{text}");
    assert!(
        shard_lines.iter().all(|line| line.contains("top-a")),
        "{text}"
    );
    assert!(
        text.contains("PROCESS") && text.contains("file-0"),
        "{text}"
    );
    forwarder.terminate(Duration::from_secs(30)).await;
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let output = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux runs (scripts/setup-tmux.sh installs it)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_runs_in_a_terminal_sorts_and_quits_cleanly() {
    let server = TestServer::start(&[("audit", 2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut forwarder, url) = running_forwarder(&server, dir.path()).await;
    let socket = format!("siem-forwarder-top-{}", std::process::id());
    let command = format!("{BIN} top --url {url} --interval 1");
    tmux(
        &socket,
        &[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "160",
            "-y",
            "40",
            &command,
        ],
    );
    tmux(
        &socket,
        &["set-option", "-t", "top", "remain-on-exit", "on"],
    );
    let capture =
        |socket: String| async move { tmux(&socket, &["capture-pane", "-p", "-t", "top"]) };
    let shown = poll_until(Duration::from_secs(30), || {
        let socket = socket.clone();
        async move {
            let screen = capture(socket).await;
            screen.contains("sorted by lag")
                && screen.contains("top-a")
                && screen.contains("file-0")
        }
    })
    .await;
    let screen = capture(socket.clone()).await;
    assert!(shown, "the view shows the shards and the sink:\n{screen}");
    tmux(&socket, &["send-keys", "-t", "top", "s"]);
    let sorted = poll_until(Duration::from_secs(10), || {
        let socket = socket.clone();
        async move { capture(socket).await.contains("sorted by rate") }
    })
    .await;
    assert!(
        sorted,
        "`s` changes the order:\n{}",
        capture(socket.clone()).await
    );
    tmux(&socket, &["send-keys", "-t", "top", "q"]);
    let exited = poll_until(Duration::from_secs(10), || {
        let socket = socket.clone();
        async move {
            tmux(
                &socket,
                &["display-message", "-p", "-t", "top", "#{pane_dead}"],
            )
            .trim()
                == "1"
        }
    })
    .await;
    let status = tmux(
        &socket,
        &["display-message", "-p", "-t", "top", "#{pane_dead_status}"],
    );
    let after = capture(socket.clone()).await;
    tmux(&socket, &["kill-server"]);
    assert!(exited, "`q` quits");
    assert_eq!(status.trim(), "0", "exit status");
    assert!(
        !after.contains("sorted by"),
        "the terminal's own screen is back (the alternate screen was left):\n{after}"
    );
    forwarder.terminate(Duration::from_secs(30)).await;
}
