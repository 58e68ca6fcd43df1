//! Rotating credentials end to end: the real binary consumes a logstore of the local log
//! service, which hands out temporary credentials that live 10 s (`--sts-ttl 10`) and refuses
//! them with 401 `SecurityTokenExpired` afterwards, while a writer puts logs for a minute. With
//! each provider that rotates (`ecs_ram_role`, `oidc_role_arn`, `file`) every log arrives
//! exactly once, no shard is ever released, and nothing fails along the way. The three
//! providers run at the same time in one test, so that the suite pays one minute, not three.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::put_logs::PutTarget;
use support::forwarder::{event_id, fast_consumer, Forwarder};
use support::{wait_until, TestServer};

const ROLE: &str = "ForwarderRole";
const TTL: Duration = Duration::from_secs(10);
const WRITING: Duration = Duration::from_secs(60);
const SHARDS: u32 = 4;
/// Generous bound for the last writes to arrive on a busy machine.
const SOON: Duration = Duration::from_secs(60);

/// Starts a server issuing 10 s credentials and a forwarder configured with the `source`
/// lines `setup` returns for the server's endpoint and a scratch directory (`setup` may leave a
/// task running beside, e.g. one refreshing a file), writes for a minute, and checks what
/// arrived and what the forwarder logged.
async fn forward_for_a_minute<F>(name: &str, setup: impl FnOnce(String, PathBuf) -> F)
where
    F: Future<Output = (String, Option<tokio::task::JoinHandle<()>>)>,
{
    let server = TestServer::start_with_sts(&[("audit", SHARDS)], ROLE, TTL).await;
    let dir = tempfile::tempdir().unwrap();
    let (source, beside) = setup(server.endpoint(), dir.path().to_owned()).await;
    let forwarder = Forwarder::spawn_with_credentials(
        &server,
        dir.path(),
        &["audit"],
        &source,
        &fast_consumer(&format!("g-{name}"), name),
        "",
    );
    let begun = Instant::now();
    wait_until("all shards to be held", SOON, || {
        let held = forwarder.assigned().len();
        async move { held == SHARDS as usize }
    })
    .await;
    eprintln!("{name}: held after {:?}", begun.elapsed());

    // A writer puts a group every 100 ms, round robin over the shards, with the server's
    // static key (the forwarder alone uses temporary credentials).
    let client = server.client();
    let shards = client.list_shards("audit").await.expect("list shards");
    let mut generator = AuditLogGenerator::new(7);
    let mut written = Vec::new();
    let started = Instant::now();
    let mut index = 0;
    while started.elapsed() < WRITING {
        let group = generator.group(10, 1_700_000_000);
        for log in &group.logs {
            let id = log.contents.iter().find(|(key, _)| key == "event_id");
            written.push(id.expect("audit logs carry event_id").1.clone());
        }
        let shard = &shards[index % shards.len()];
        client
            .put_logs(
                "audit",
                PutTarget::HashKey(&shard.inclusive_begin_key),
                &group,
            )
            .await
            .expect("put logs");
        index += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(beside) = beside {
        beside.abort();
    }
    eprintln!(
        "{name}: wrote {} logs in {:?}",
        written.len(),
        started.elapsed()
    );

    wait_until("every log to be delivered", SOON, || {
        let delivered = forwarder.delivered().len();
        let expected = written.len();
        async move { delivered >= expected }
    })
    .await;
    eprintln!("{name}: delivered after {:?}", started.elapsed());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for log in forwarder.delivered() {
        *counts.entry(event_id(&log)).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{name}: delivered twice: {duplicates:?}"
    );
    let missing: Vec<_> = written
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "{name}: {} logs lost", missing.len());
    assert_eq!(counts.len(), written.len(), "{name}: unexpected logs");

    // No shard was released and nothing failed: not one warning or error.
    let assignments = forwarder.assignments();
    let shrunk = assignments
        .iter()
        .skip_while(|(_, shards)| shards.len() < SHARDS as usize)
        .any(|(_, shards)| shards.len() < SHARDS as usize);
    assert!(!shrunk, "{name}: a shard was released: {assignments:?}");
    let lines = forwarder.log_lines();
    let problems: Vec<_> = lines
        .iter()
        .filter(|line| line["level"] == "WARN" || line["level"] == "ERROR")
        .collect();
    assert!(problems.is_empty(), "{name}: {problems:#?}");
    let refreshes = lines
        .iter()
        .filter(|line| line["message"] == "credentials refreshed")
        .count();
    assert!(
        refreshes >= (WRITING.as_secs() / TTL.as_secs()) as usize,
        "{name}: only {refreshes} refreshes in {WRITING:?} of {TTL:?} credentials"
    );
}

async fn ecs_ram_role(
    endpoint: String,
    _: PathBuf,
) -> (String, Option<tokio::task::JoinHandle<()>>) {
    // The role is discovered from the metadata service.
    let source = format!(
        "credentials = {{ provider = \"ecs_ram_role\", metadata_endpoint = \"{endpoint}\" }}"
    );
    (source, None)
}

async fn oidc_role_arn(
    endpoint: String,
    dir: PathBuf,
) -> (String, Option<tokio::task::JoinHandle<()>>) {
    let token = dir.join("oidc-token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.test.token").unwrap();
    let source = format!(
        "credentials = {{ provider = \"oidc_role_arn\", \
         role_arn = \"acs:ram::1234567890:role/{ROLE}\", \
         oidc_provider_arn = \"acs:ram::1234567890:oidc-provider/ack-rrsa\", \
         oidc_token_file = \"{}\", sts_endpoint = \"{endpoint}\" }}",
        token.display()
    );
    (source, None)
}

/// Writes the metadata service's answer to `path` atomically, as a Vault agent does.
async fn write_credentials_file(url: &str, path: &std::path::Path) {
    let body = reqwest::get(url)
        .await
        .expect("the metadata answers")
        .text()
        .await
        .expect("a body");
    let staging = path.with_extension("tmp");
    std::fs::write(&staging, body).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

async fn file(endpoint: String, dir: PathBuf) -> (String, Option<tokio::task::JoinHandle<()>>) {
    let url = format!("{endpoint}/latest/meta-data/ram/security-credentials/{ROLE}");
    let path = dir.join("credentials.json");
    write_credentials_file(&url, &path).await;
    let source = format!(
        "credentials = {{ provider = \"file\", path = \"{}\" }}",
        path.display()
    );
    // Rewritten every 3 s, well within the 10 s the credentials live.
    let refresher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            write_credentials_file(&url, &path).await;
        }
    });
    (source, Some(refresher))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_credentials_never_stop_a_shard() {
    tokio::join!(
        forward_for_a_minute("ecs", ecs_ram_role),
        forward_for_a_minute("oidc", oidc_role_arn),
        forward_for_a_minute("file", file),
    );
}
