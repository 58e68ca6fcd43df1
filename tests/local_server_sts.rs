//! Temporary credentials of the local log service (`--sts-role`): the ECS instance metadata
//! service and STS `AssumeRoleWithOIDC` hand them out on the server's address, the log service
//! accepts requests signed with them (signature v1 and v4, `x-acs-security-token` signed) until
//! they expire and then answers 401 `SecurityTokenExpired`, and `put` writes with them.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::auth::Signing;
use siem_forwarder::source::{cursor, ApiErrorCode, ClientError};
use support::{
    client_for, metadata_credentials, Temporary, TestServer, AK_ID, AK_SECRET, PROJECT, REGION,
};
use tokio::process::Command;

const ROLE: &str = "ForwarderRole";
const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";
/// Generous bound for anything that should happen "soon" on a busy machine.
const SOON: Duration = Duration::from_secs(60);

fn v4() -> Signing {
    Signing::V4 {
        region: REGION.into(),
    }
}

/// `method url` with `headers`: the status and the body.
async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The API error of a failed call.
fn api_error(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, ApiErrorCode) {
    match result {
        Err(ClientError::Api(error)) => (error.status, error.code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn instance_metadata_hands_out_fresh_credentials_with_and_without_a_session_token() {
    let server = TestServer::start_with_sts(&[("audit", 2)], ROLE, Duration::from_secs(600)).await;
    let endpoint = server.endpoint();
    let ttl = ("X-aliyun-ecs-metadata-token-ttl-seconds", "21600");
    let (status, token) = call("PUT", &format!("{endpoint}/latest/api/token"), &[ttl], "").await;
    assert_eq!(status, 200, "{token}");
    let session = ("X-aliyun-ecs-metadata-token", token.as_str());

    let (status, role) = call(
        "GET",
        &format!("{endpoint}{CREDENTIALS_PATH}"),
        &[session],
        "",
    )
    .await;
    assert_eq!((status, role.as_str()), (200, ROLE));
    let url = format!("{endpoint}{CREDENTIALS_PATH}{ROLE}");
    let (status, body) = call("GET", &url, &[session], "").await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["Code"], "Success");
    let expiration = chrono::DateTime::parse_from_rfc3339(answer["Expiration"].as_str().unwrap())
        .expect("Expiration is an RFC 3339 UTC time");
    let lifetime = expiration.timestamp() - chrono::Utc::now().timestamp();
    assert!((590..=600).contains(&lifetime), "{lifetime} s");
    let with_token = Temporary::from_json(&answer);
    assert!(with_token.id.starts_with("STS."), "{}", with_token.id);

    let without_token = metadata_credentials(&endpoint, ROLE).await;
    assert_ne!(
        with_token.id, without_token.id,
        "fresh credentials on each call"
    );

    let forged = (
        "X-aliyun-ecs-metadata-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    assert_eq!(call("GET", &url, &[forged], "").await.0, 401);
    let other_role = format!("{endpoint}{CREDENTIALS_PATH}OtherRole");
    assert_eq!(call("GET", &other_role, &[], "").await.0, 404);
    let no_ttl = call("PUT", &format!("{endpoint}/latest/api/token"), &[], "").await;
    assert_eq!(no_ttl.0, 400, "{}", no_ttl.1);

    for temporary in [with_token, without_token] {
        let client = temporary.client(&endpoint, Signing::V1);
        let shards = client
            .list_shards("audit")
            .await
            .expect("list with temporary keys");
        assert_eq!(shards.len(), 2);
        let group = AuditLogGenerator::new(1).group(5, 1_700_000_000);
        client
            .put_logs("audit", PutTarget::LoadBalanced, &group)
            .await
            .expect("put with temporary keys");
    }
}

#[tokio::test]
async fn assume_role_with_oidc_answers_as_the_official_providers_call_it() {
    let server = TestServer::start_with_sts(&[("audit", 1)], ROLE, Duration::from_secs(600)).await;
    let endpoint = server.endpoint();
    let common = "Action=AssumeRoleWithOIDC&Version=2015-04-01&Format=JSON&Timestamp=2026-12-02T07%3A00%3A00Z";
    let role_arn = "acs:ram::1234567890:role/forwarderrole";
    let provider = "acs:ram::1234567890:oidc-provider/ack-rrsa";
    let form = format!(
        "RoleArn={}&OIDCProviderArn={}&OIDCToken=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QifQ.c2ln&RoleSessionName=pod-1&DurationSeconds=3600",
        urlencode(role_arn),
        urlencode(provider)
    );
    let form_type = ("content-type", "application/x-www-form-urlencoded");

    // The Go provider: the call in the query, the parameters in a form body.
    let (status, body) = call(
        "POST",
        &format!("{endpoint}/?{common}"),
        &[form_type],
        &form,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(answer["RequestId"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(
        answer["AssumedRoleUser"]["Arn"],
        format!("{role_arn}/pod-1")
    );
    let from_form = Temporary::from_json(&answer["Credentials"]);

    // The Python provider: everything in the query string.
    let (status, body) = call("GET", &format!("{endpoint}/?{common}&{form}"), &[], "").await;
    assert_eq!(status, 200, "{body}");
    let from_query =
        Temporary::from_json(&serde_json::from_str::<Value>(&body).unwrap()["Credentials"]);
    assert_ne!(from_form.id, from_query.id);

    for temporary in [&from_form, &from_query] {
        for signing in [Signing::V1, v4()] {
            temporary
                .client(&endpoint, signing)
                .list_shards("audit")
                .await
                .expect("the assumed role's credentials sign requests");
        }
    }

    let without_token = form.replace(
        "OIDCToken=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QifQ.c2ln&",
        "",
    );
    let (status, body) = call(
        "POST",
        &format!("{endpoint}/?{common}"),
        &[form_type],
        &without_token,
    )
    .await;
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, error["Code"].as_str()),
        (401, Some("AuthenticationFail.OIDCToken.Invalid")),
        "{body}"
    );
    assert!(
        error["RequestId"].is_string() && error["Message"].is_string(),
        "{body}"
    );
    let other_role = form.replace("forwarderrole", "other");
    let (status, body) = call(
        "POST",
        &format!("{endpoint}/?{common}"),
        &[form_type],
        &other_role,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("EntityNotExist.Role"), "{body}");
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn temporary_keys_need_their_own_security_token() {
    let server = TestServer::start_with_sts(&[("audit", 1)], ROLE, Duration::from_secs(600)).await;
    let endpoint = server.endpoint();
    let mine = metadata_credentials(&endpoint, ROLE).await;
    let other = metadata_credentials(&endpoint, ROLE).await;
    for signing in [Signing::V1, v4()] {
        let foreign = mine.client_with_token(&endpoint, signing.clone(), Some(&other.token));
        assert_eq!(
            api_error(foreign.list_shards("audit").await),
            (401, ApiErrorCode::Unauthorized),
            "another key's token"
        );
        let missing = mine.client_with_token(&endpoint, signing.clone(), None);
        assert_eq!(
            api_error(missing.list_shards("audit").await),
            (401, ApiErrorCode::Unauthorized),
            "no token"
        );
        mine.client(&endpoint, signing)
            .list_shards("audit")
            .await
            .expect("its own token");
    }
    server
        .client()
        .list_shards("audit")
        .await
        .expect("the long-term key");
}

#[tokio::test]
async fn temporary_keys_are_refused_after_expiry_while_the_long_term_key_works() {
    let server = TestServer::start_with_sts(&[("audit", 1)], ROLE, Duration::from_secs(2)).await;
    let endpoint = server.endpoint();
    let temporary = metadata_credentials(&endpoint, ROLE).await;
    let deadline = Instant::now() + SOON;
    for signing in [Signing::V1, v4()] {
        let client = temporary.client(&endpoint, signing);
        let refused = loop {
            match client.list_shards("audit").await {
                Err(error) => break error,
                Ok(_) => {
                    assert!(
                        Instant::now() < deadline,
                        "still accepted {SOON:?} after a 2 s lifetime"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(
            api_error(Err::<(), _>(refused)),
            (401, ApiErrorCode::SecurityTokenExpired)
        );
    }
    server
        .client()
        .list_shards("audit")
        .await
        .expect("the long-term key");
}

#[tokio::test]
async fn without_a_role_nothing_is_handed_out_and_sts_keys_are_unknown() {
    let server = TestServer::start(&[("audit", 1)]).await;
    let endpoint = server.endpoint();
    let (status, _) = call(
        "GET",
        &format!("{endpoint}{CREDENTIALS_PATH}{ROLE}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 401, "the log service refuses the unsigned request");
    let stranger = Temporary {
        id: "STS.0000000000000000".into(),
        secret: "secret".into(),
        token: "token".into(),
    };
    assert_eq!(
        api_error(
            stranger
                .client(&endpoint, Signing::V1)
                .list_shards("audit")
                .await
        ),
        (401, ApiErrorCode::InvalidAccessKeyId)
    );
}

/// A `local-server` process with `--sts-role`, on a free loopback port: its endpoint.
async fn spawn_local_server(data: &Path) -> (tokio::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(["local-server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--project", PROJECT, "--logstore", "audit:2"])
        .args(["--access-key-id", AK_ID, "--access-key-secret", AK_SECRET])
        .args(["--sts-role", ROLE, "--sts-ttl", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let endpoint = support::local_server_endpoint(&mut child).await;
    (child, endpoint)
}

/// `put --generate 10` to `endpoint` with `args` and `env` (the AccessKey variables of the
/// test's own environment removed): the exit status and stderr.
async fn put(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"));
    command
        .args(["put", "--endpoint", endpoint, "--project", PROJECT])
        .args(["--logstore", "audit", "--generate", "10"])
        .args(args);
    for name in [
        "SLS_AK_ID",
        "SLS_AK_KEY",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
    ] {
        command.env_remove(name);
    }
    let output = tokio::time::timeout(SOON, command.envs(env.iter().copied()).output())
        .await
        .expect("put finishes")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn put_writes_with_temporary_credentials_from_flags_or_the_environment() {
    let data = tempfile::tempdir().unwrap();
    let (_server, endpoint) = spawn_local_server(data.path()).await;
    let temporary = metadata_credentials(&endpoint, ROLE).await;

    let flags = [
        "--access-key-id",
        &temporary.id,
        "--access-key-secret",
        &temporary.secret,
        "--security-token",
        &temporary.token,
    ];
    let (ok, stderr) = put(&endpoint, &flags, &[]).await;
    assert!(ok, "put --security-token: {stderr}");

    // ALIBABA_CLOUD_* come before SLS_AK_*, which here name the long-term id with a wrong secret.
    let env = [
        ("SLS_AK_ID", AK_ID),
        ("SLS_AK_KEY", "wrong-secret"),
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", temporary.id.as_str()),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", temporary.secret.as_str()),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", temporary.token.as_str()),
    ];
    let (ok, stderr) = put(&endpoint, &[], &env).await;
    assert!(ok, "put with ALIBABA_CLOUD_* credentials: {stderr}");

    let (ok, stderr) = put(&endpoint, &flags[..4], &[]).await;
    assert!(
        !ok && stderr.contains("Unauthorized"),
        "put without the token: {stderr}"
    );

    let client = client_for(&endpoint, PROJECT, AK_SECRET);
    let mut groups = 0;
    for shard in [0, 1] {
        let end = client
            .get_cursor("audit", shard, CursorFrom::End)
            .await
            .unwrap();
        groups += cursor::decode(&end).unwrap();
    }
    assert_eq!(groups, 2, "one group of 10 logs from each successful put");
}

#[tokio::test]
async fn put_signs_v4_for_the_servers_region_with_temporary_credentials() {
    let data = tempfile::tempdir().unwrap();
    let (_server, endpoint) = spawn_local_server(data.path()).await;
    let temporary = metadata_credentials(&endpoint, ROLE).await;
    let flags = |region: &'static str| {
        [
            "--access-key-id",
            temporary.id.as_str(),
            "--access-key-secret",
            temporary.secret.as_str(),
            "--security-token",
            temporary.token.as_str(),
            "--signature-version",
            "v4",
            "--region",
            region,
        ]
    };
    let (ok, stderr) = put(&endpoint, &flags(REGION), &[]).await;
    assert!(ok, "put signed v4 for the server's region: {stderr}");
    let (ok, stderr) = put(&endpoint, &flags("cn-shanghai"), &[]).await;
    assert!(
        !ok && stderr.contains("401"),
        "a v4 signature scoped to another region is refused: {stderr}"
    );
    let (ok, stderr) = put(&endpoint, &["--signature-version", "v5"], &[]).await;
    assert!(!ok && stderr.contains("use v1 or v4"), "{stderr}");
}
