//! The unmodified official Python SDK (`aliyun-log-python-sdk`) against the local server:
//! its plain API calls, and two `ConsumerWorker` processes sharing one consumer group, with
//! signature v1 and with signature v4, and a group shared by two forwarders and an SDK consumer
//! as `status --config` reports it.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::auth::Signing;
use support::{
    metadata_credentials, poll_until, put_audit_logs, sdk_proxy_env, sdk_python, wait_until,
    Temporary, TestServer, AK_ID, AK_SECRET, PROJECT, REGION,
};
use tokio::process::Command;

fn script(name: &str) -> String {
    support::repo_root()
        .join("tests/python")
        .join(name)
        .display()
        .to_string()
}

/// Signs with the SDK's signature v4 for `region` (the scripts default to v1).
fn v4_args(region: &str) -> [&str; 4] {
    ["--auth-version", "v4", "--region", region]
}

async fn run_sdk_client(server: &TestServer, logstore: &str, args: &[&str]) -> Value {
    let output = sdk_client_output(server, logstore, args).await;
    assert!(
        output.status.success(),
        "sdk_client.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json from sdk_client.py")
}

async fn sdk_client_output(
    server: &TestServer,
    logstore: &str,
    args: &[&str],
) -> std::process::Output {
    let credentials = ["--access-key-id", AK_ID, "--access-key-secret", AK_SECRET];
    sdk_client_output_as(server, logstore, args, &credentials).await
}

/// Runs `sdk_client.py` signing with `credentials` (its `--access-key-*` and
/// `--security-token` arguments).
async fn sdk_client_output_as(
    server: &TestServer,
    logstore: &str,
    args: &[&str],
    credentials: &[&str],
) -> std::process::Output {
    let (endpoint, env) = sdk_proxy_env(server);
    Command::new(sdk_python())
        .arg(script("sdk_client.py"))
        .args(args)
        .args([
            "--endpoint",
            &endpoint,
            "--project",
            PROJECT,
            "--logstore",
            logstore,
        ])
        .args(credentials)
        .envs(env)
        .output()
        .await
        .expect("run python")
}

#[tokio::test]
async fn python_sdk_puts_lists_seeks_and_pulls() {
    let server = TestServer::start(&[("sdk", 2)]).await;
    let result = run_sdk_client(&server, "sdk", &["basic"]).await;
    assert_basic_result(&result);
}

#[tokio::test]
async fn python_sdk_with_signature_v4_puts_lists_seeks_and_pulls() {
    let server = TestServer::start(&[("sdk", 2)]).await;
    let mut args = vec!["basic"];
    args.extend(v4_args(REGION));
    let result = run_sdk_client(&server, "sdk", &args).await;
    assert_basic_result(&result);

    // The same SDK signing for another region is refused, and writes nothing.
    let mut args = vec!["basic"];
    args.extend(v4_args("cn-shanghai"));
    let output = sdk_client_output(&server, "sdk", &args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("Unauthorized"),
        "a v4 signature for another region must be refused: {stderr}"
    );
    let client = server.client();
    for shard in [0, 1] {
        let end = client
            .get_cursor("sdk", shard, CursorFrom::End)
            .await
            .unwrap();
        assert_eq!(
            end, "MQ==",
            "shard {shard} holds only the first run's group"
        );
    }
}

/// The SDK's `sdk_client.py` arguments signing with temporary credentials.
fn temporary_args(temporary: &Temporary) -> [&str; 6] {
    [
        "--access-key-id",
        &temporary.id,
        "--access-key-secret",
        &temporary.secret,
        "--security-token",
        &temporary.token,
    ]
}

#[tokio::test]
async fn python_sdk_with_temporary_credentials_works_until_they_expire() {
    const ROLE: &str = "ForwarderRole";
    const TTL: Duration = Duration::from_secs(15);
    let server = TestServer::start_with_sts(&[("sdk", 2), ("sdk4", 2)], ROLE, TTL).await;
    let endpoint = server.endpoint();
    // Taken first, used once they have expired.
    let expiring = metadata_credentials(&endpoint, ROLE).await;

    // Fresh credentials for each run, so a slow run stays well within their lifetime.
    let v1 = metadata_credentials(&endpoint, ROLE).await;
    let output = sdk_client_output_as(&server, "sdk", &["basic"], &temporary_args(&v1)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "v1 with a security token: {stderr}"
    );
    assert_basic_result(&serde_json::from_slice(&output.stdout).unwrap());

    let v4 = metadata_credentials(&endpoint, ROLE).await;
    let mut args = vec!["basic"];
    args.extend(v4_args(REGION));
    let output = sdk_client_output_as(&server, "sdk4", &args, &temporary_args(&v4)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "v4 with a security token: {stderr}"
    );
    assert_basic_result(&serde_json::from_slice(&output.stdout).unwrap());

    let probe = expiring.client(&endpoint, Signing::V1);
    wait_until(
        "the first credentials to expire",
        TTL + Duration::from_secs(60),
        || {
            let probe = &probe;
            async move { probe.list_shards("sdk").await.is_err() }
        },
    )
    .await;
    for (logstore, extra) in [("sdk", &[][..]), ("sdk4", &v4_args(REGION)[..])] {
        let mut args = vec!["basic"];
        args.extend(extra);
        let output =
            sdk_client_output_as(&server, logstore, &args, &temporary_args(&expiring)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("SecurityTokenExpired"),
            "{logstore}: expired credentials must be refused: {stderr}"
        );
    }
    let client = server.client();
    for logstore in ["sdk", "sdk4"] {
        for shard in [0, 1] {
            let end = client
                .get_cursor(logstore, shard, CursorFrom::End)
                .await
                .unwrap();
            assert_eq!(
                end, "MQ==",
                "{logstore}/{shard}: nothing written after expiry"
            );
        }
    }
}

/// What `sdk_client.py basic` reports after two puts of five logs to a 2-shard logstore.
fn assert_basic_result(result: &Value) {
    assert_eq!(result["shards"], serde_json::json!([0, 1]));
    let logs = result["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 10, "two put_logs calls of five logs each");
    let shards_used: BTreeSet<u64> = logs
        .iter()
        .map(|log| log["__shard__"].as_u64().unwrap())
        .collect();
    assert_eq!(
        shards_used.len(),
        2,
        "load-balanced puts spread over both shards"
    );
    for log in logs {
        assert_eq!(log["__topic__"], "sdk-topic");
        assert_eq!(log["__source__"], "10.1.2.3");
        assert_eq!(log["__tag__:origin"], "python");
        assert_eq!(log["text"], "héllo \"sdk\"");
        let index: u64 = log["index"].as_str().unwrap().parse().unwrap();
        assert_eq!(log["__time__"].as_u64().unwrap(), 1_700_000_000 + index);
    }
    for (shard, cursors) in result["cursors"].as_object().unwrap() {
        assert_eq!(cursors["begin"], "MA==", "shard {shard}");
        assert_eq!(cursors["end"], "MQ==", "one group per shard");
        assert_eq!(cursors["after_pull"], cursors["end"], "shard {shard}");
        assert_eq!(
            cursors["time_before"], cursors["begin"],
            "a time before the data is the begin"
        );
        assert_eq!(
            cursors["time_future"], cursors["end"],
            "a time after the data is the end"
        );
    }
}

/// Reads the group's checkpoints with the SDK (`args`: the `checkpoints` command of
/// `sdk_client.py`) and checks there are `shards` of them, each at its shard's end.
async fn assert_checkpoints_at_the_end(server: &TestServer, args: &[&str], shards: usize) {
    let client = server.client();
    let checkpoints = run_sdk_client(server, "audit", args).await;
    let checkpoints = checkpoints["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), shards);
    for checkpoint in checkpoints {
        let shard = checkpoint["shard"].as_u64().unwrap() as u32;
        let end = client
            .get_cursor("audit", shard, CursorFrom::End)
            .await
            .unwrap();
        assert_eq!(
            checkpoint["checkpoint"],
            end.as_str(),
            "shard {shard} checkpoint is at the end"
        );
    }
}

/// `text` up to its last newline: without a line another process is still writing.
fn complete_lines(mut text: String) -> String {
    text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
    text
}

/// One Python consumer process and the files it writes.
struct Consumer {
    name: String,
    output: std::path::PathBuf,
    events: std::path::PathBuf,
    child: tokio::process::Child,
}

impl Consumer {
    /// Starts consumer `name`; `extra` is appended to its command line (e.g. [`v4_args`]).
    fn spawn(
        server: &TestServer,
        dir: &Path,
        (logstore, group, name): (&str, &str, &str),
        extra: &[&str],
    ) -> Self {
        let (endpoint, env) = sdk_proxy_env(server);
        let output = dir.join(format!("{name}.jsonl"));
        let events = dir.join(format!("{name}.events"));
        let child = Command::new(sdk_python())
            .arg(script("sdk_consumer.py"))
            .args([
                "--endpoint",
                &endpoint,
                "--project",
                PROJECT,
                "--logstore",
                logstore,
            ])
            .args(["--group", group, "--consumer", name])
            .args(["--access-key-id", AK_ID, "--access-key-secret", AK_SECRET])
            .arg("--output")
            .arg(&output)
            .arg("--events")
            .arg(&events)
            .args(extra)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).expect("stderr file"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python consumer");
        Self {
            name: name.to_owned(),
            output,
            events,
            child,
        }
    }

    /// Shards whose worker is initialised and not shut down.
    fn holding(&self) -> BTreeSet<u32> {
        let text = complete_lines(std::fs::read_to_string(&self.events).unwrap_or_default());
        let mut held = BTreeSet::new();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("init", shard)) => held.insert(shard.parse().unwrap()),
                Some(("shutdown", shard)) => held.remove(&shard.parse().unwrap()),
                _ => false,
            };
        }
        held
    }

    /// The logs written so far. A batch reaches the file in several writes, so a line still
    /// being written is skipped.
    fn logs(&self) -> Vec<Value> {
        complete_lines(std::fs::read_to_string(&self.output).unwrap_or_default())
            .lines()
            .map(|line| serde_json::from_str(line).expect("consumer output is json"))
            .collect()
    }

    async fn stop(&mut self) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY-free: kill(2) via the command line keeps the test free of libc bindings.
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 60s", self.name))
            .unwrap();
        assert!(exit.success(), "{} exited with {exit}", self.name);
    }
}

#[tokio::test]
async fn python_consumer_workers_split_shards_and_consume_each_log_once() {
    const LOGS: usize = 20_000;
    let server = TestServer::start(&[("audit", 4)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut consumers = [
        Consumer::spawn(&server, dir.path(), ("audit", "sdk-group", "c1"), &[]),
        Consumer::spawn(&server, dir.path(), ("audit", "sdk-group", "c2"), &[]),
    ];

    let settled = poll_until(Duration::from_secs(60), || {
        let held: Vec<BTreeSet<u32>> = consumers.iter().map(Consumer::holding).collect();
        async move { held.iter().all(|shards| shards.len() == 2) && held[0].is_disjoint(&held[1]) }
    })
    .await;
    if !settled {
        for name in ["c1", "c2"] {
            let stderr = std::fs::read_to_string(dir.path().join(format!("{name}.stderr")))
                .unwrap_or_default();
            let events = std::fs::read_to_string(dir.path().join(format!("{name}.events")))
                .unwrap_or_default();
            eprintln!("--- {name} events:\n{events}\n--- {name} stderr:\n{stderr}");
        }
        panic!("the two consumers did not settle on two shards each within 60s");
    }

    let client = server.client();
    let shards = client.list_shards("audit").await.unwrap();
    let mut generator = AuditLogGenerator::new(1);
    for batch in 0..LOGS / 500 {
        let shard = &shards[batch % shards.len()];
        let group = generator.group(500, 1_700_000_000);
        client
            .put_logs(
                "audit",
                PutTarget::HashKey(&shard.inclusive_begin_key),
                &group,
            )
            .await
            .unwrap();
    }

    wait_until("all logs to be consumed", Duration::from_secs(120), || {
        let total: usize = consumers.iter().map(|c| c.logs().len()).sum();
        async move { total >= LOGS }
    })
    .await;
    let held: Vec<BTreeSet<u32>> = consumers.iter().map(Consumer::holding).collect();
    for consumer in &mut consumers {
        consumer.stop().await;
    }

    let mut seen = HashSet::new();
    let mut shards_by_consumer: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for consumer in &consumers {
        for log in consumer.logs() {
            assert!(
                seen.insert(log["event_id"].as_str().unwrap().to_owned()),
                "log consumed twice: {log}"
            );
            shards_by_consumer
                .entry(consumer.name.clone())
                .or_default()
                .insert(log["__shard__"].as_u64().unwrap());
        }
    }
    assert_eq!(seen.len(), LOGS, "every log consumed exactly once");
    for (index, consumer) in consumers.iter().enumerate() {
        let consumed: BTreeSet<u32> = shards_by_consumer[&consumer.name]
            .iter()
            .map(|s| *s as u32)
            .collect();
        assert_eq!(
            consumed, held[index],
            "{} consumed exactly the shards it held",
            consumer.name
        );
    }

    assert_checkpoints_at_the_end(&server, &["checkpoints", "--group", "sdk-group"], 4).await;
}

#[tokio::test]
async fn a_python_consumer_with_signature_v4_consumes_and_commits() {
    const LOGS: usize = 2_000;
    let server = TestServer::start(&[("audit", 2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut consumer = Consumer::spawn(
        &server,
        dir.path(),
        ("audit", "v4-group", "c1"),
        &v4_args(REGION),
    );
    let settled = poll_until(Duration::from_secs(60), || {
        let held = consumer.holding();
        async move { held.len() == 2 }
    })
    .await;
    if !settled {
        let stderr = std::fs::read_to_string(dir.path().join("c1.stderr")).unwrap_or_default();
        panic!("the v4 consumer did not take both shards within 60s:\n{stderr}");
    }

    let client = server.client();
    let mut generator = AuditLogGenerator::new(2);
    for _ in 0..LOGS / 500 {
        client
            .put_logs(
                "audit",
                PutTarget::LoadBalanced,
                &generator.group(500, 1_700_000_000),
            )
            .await
            .unwrap();
    }
    wait_until("all logs to be consumed", Duration::from_secs(120), || {
        let total = consumer.logs().len();
        async move { total >= LOGS }
    })
    .await;
    consumer.stop().await;

    let ids: HashSet<String> = consumer
        .logs()
        .iter()
        .map(|log| log["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        (ids.len(), consumer.logs().len()),
        (LOGS, LOGS),
        "every log consumed exactly once"
    );
    let mut args = vec!["checkpoints", "--group", "v4-group"];
    args.extend(v4_args(REGION));
    assert_checkpoints_at_the_end(&server, &args, 2).await;
}

/// Runs `siem-forwarder status --config CONFIG --json` and parses its document.
async fn group_status(config: &Path) -> Value {
    let config = config.display().to_string();
    let text = support::forwarder_status(&["--json", "--config", &config]).await;
    serde_json::from_str(&text).expect("status --json prints JSON")
}

/// The owner (checkpoint writer) and log-group lag of every shard of the only logstore.
fn owners_and_lags(document: &Value) -> BTreeMap<u32, (String, u64)> {
    document["logstores"][0]["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|shard| {
            (
                shard["shard"].as_u64().unwrap() as u32,
                (
                    shard["consumer"].as_str().unwrap_or("").to_owned(),
                    shard["lag_log_groups"].as_u64().expect("lag in log groups"),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_view_names_two_forwarders_and_a_python_sdk_consumer() {
    use support::forwarder::{consumer_with_timeout, Forwarder};
    const GROUP: &str = "mixed";
    let server = TestServer::start(&[("audit", 6)]).await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    // The SDK consumer's group timeout is three heartbeats of 2 s; the forwarders use the same.
    let mut python = Consumer::spawn(&server, dir.path(), ("audit", GROUP, "py-1"), &[]);
    wait_until(
        "the SDK consumer to hold every shard",
        Duration::from_secs(60),
        || {
            let held = python.holding().len();
            async move { held == 6 }
        },
    )
    .await;
    let mut forwarders = ["fwd-a", "fwd-b"].map(|name| {
        Forwarder::spawn(
            &server,
            dir.path(),
            "audit",
            &consumer_with_timeout(GROUP, name, 6),
            "",
        )
    });
    wait_until(
        "the three consumers to hold two shards each",
        Duration::from_secs(90),
        || {
            let held = [
                python.holding(),
                forwarders[0].assigned(),
                forwarders[1].assigned(),
            ];
            async move {
                held.iter().all(|shards| shards.len() == 2)
                    && held.iter().flatten().collect::<BTreeSet<_>>().len() == 6
            }
        },
    )
    .await;
    // Two log groups of ten logs on each shard.
    put_audit_logs(&client, "audit", 120, 10, 1).await;
    wait_until("every log to be delivered", Duration::from_secs(90), || {
        let total = python.logs().len()
            + forwarders
                .iter()
                .map(|f| f.delivered().len())
                .sum::<usize>();
        async move { total >= 120 }
    })
    .await;
    let expected: BTreeMap<u32, String> = [
        ("py-1", python.holding()),
        ("fwd-a", forwarders[0].assigned()),
        ("fwd-b", forwarders[1].assigned()),
    ]
    .into_iter()
    .flat_map(|(name, shards)| {
        shards
            .into_iter()
            .map(move |shard| (shard, name.to_owned()))
    })
    .collect();
    assert_eq!(expected.len(), 6, "shards did not move meanwhile");

    let config = dir.path().join("status.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nendpoint = \"{}\"\nproject = \"{PROJECT}\"\nlogstores = [\"audit\"]\n\
             access_key_id = \"{AK_ID}\"\naccess_key_secret = \"{AK_SECRET}\"\n\
             [consumer]\ngroup = \"{GROUP}\"\n[[sinks]]\ntype = \"null\"\n",
            server.endpoint()
        ),
    )
    .unwrap();
    let seen = support::shared(BTreeMap::new());
    wait_until(
        "every shard checkpointed at its end by its owner",
        Duration::from_secs(60),
        || {
            let config = config.clone();
            let seen = seen.clone();
            async move {
                let view = owners_and_lags(&group_status(&config).await);
                let done = view.values().all(|(_, lag)| *lag == 0);
                *seen.lock().unwrap() = view;
                done
            }
        },
    )
    .await;
    let view = seen.lock().unwrap().clone();
    let owners: BTreeMap<u32, String> = view
        .iter()
        .map(|(shard, (owner, _))| (*shard, owner.clone()))
        .collect();
    assert_eq!(owners, expected, "the view names each shard's holder");

    // Once every consumer stopped, what is written next is exactly the group's lag.
    for forwarder in &mut forwarders {
        forwarder.terminate(Duration::from_secs(30)).await;
    }
    python.stop().await;
    put_audit_logs(&client, "audit", 60, 10, 2).await;
    let after = group_status(&config).await;
    for (shard, (owner, lag)) in owners_and_lags(&after) {
        assert_eq!(lag, 1, "one new log group on shard {shard}");
        assert_eq!(owner, expected[&shard], "the last owner stays on record");
    }
    assert_eq!(after["logstores"][0]["summary"]["backlog_log_groups"], 6);
    assert_eq!(after["logstores"][0]["summary"]["consumers"], 3);
}
