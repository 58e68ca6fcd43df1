//! Command-line interface: clap subcommands and their thin glue to the library.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};

use crate::common::shutdown::termination_signal;
use crate::common::units::HumanDuration;
use crate::common::Secret;
use crate::config::ForwarderConfig;
use crate::group_status::GroupView;
use crate::local_server::{
    valid_name, ConnectionLimits, DeniedAction, LocalServer, LocalServerConfig, LogstoreSpec,
    StsConfig, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REGION, MAX_STS_TTL,
};
use crate::producer::generator::AuditLogGenerator;
use crate::producer::json_lines::log_groups_from_json_lines;
use crate::source::api::put_logs::PutTarget;
use crate::source::auth::{SignatureVersion, Signing};
use crate::source::protobuf::LogGroup;
use crate::source::{Client, ClientConfig, ClientError};
use crate::telemetry::logging::{self, LogFormat};
use crate::top::SortKey;

/// Forwards logs from Alibaba Cloud Log Service consumer groups to SIEMs.
#[derive(Debug, Parser)]
#[command(name = "siem-forwarder", version, about)]
pub struct Cli {
    /// Format of the process's own log lines (stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join the consumer group(s) and forward logs until SIGTERM or SIGINT.
    Run(ConfigArgs),
    /// Check a configuration file without connecting anywhere.
    Validate(ConfigArgs),
    /// Show the whole consumer group from the log service (`--config`), or the shards and
    /// components of one running forwarder from its telemetry endpoint (`--url`).
    Status(StatusArgs),
    /// A live view of running forwarders (`--url`, repeatable) and of the whole group
    /// (`--config`): per shard owner, lag and rate; per sink rate, errors and health.
    Top(TopArgs),
    /// Run the embedded SLS-compatible log service.
    LocalServer(LocalServerArgs),
    /// Write logs to a logstore: JSON lines from a file, or generated audit logs.
    Put(PutArgs),
}

/// Options of the commands that read a configuration file.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The TOML configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Base URL of one forwarder's telemetry endpoint, e.g. http://127.0.0.1:9300.
    #[arg(
        long,
        default_value = "http://127.0.0.1:9300",
        conflicts_with = "config"
    )]
    pub url: String,
    /// The forwarders' configuration file: show every shard of the consumer group as the log
    /// service records it (owner, checkpoint, lag), whichever process holds it, with the
    /// credentials `run` uses.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables (with `--watch`, one document per line).
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECONDS until interrupted.
    #[arg(long, value_name = "SECONDS", value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub watch: Option<u64>,
}

/// Options of `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Telemetry endpoint of a running forwarder, e.g. http://127.0.0.1:9300; repeatable.
    /// Default http://127.0.0.1:9300 when neither `--url` nor `--config` is given.
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// The forwarders' configuration file: add every shard of the group as the log service
    /// records it (owners and lags of all processes, unowned shards).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub interval: u64,
    /// Initial order of the shard lines (`s` cycles it in the terminal view).
    #[arg(long, value_enum, default_value_t = SortKey::Lag)]
    pub sort: SortKey,
    /// When stdout is not a terminal: stop after this many frames (default: until
    /// interrupted).
    #[arg(long)]
    pub frames: Option<u64>,
}

/// The AccessKey id used when none is given: fine on loopback, known to everyone.
pub const DEFAULT_ACCESS_KEY_ID: &str = "local";

/// The AccessKey secret used when none is given.
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "local-secret";

/// The AccessKey `local-server` verifies requests against.
#[derive(Debug, Args)]
pub struct AccessKeyArgs {
    /// AccessKey id.
    #[arg(long, env = "SLS_AK_ID", default_value = DEFAULT_ACCESS_KEY_ID)]
    pub access_key_id: String,
    /// AccessKey secret.
    #[arg(
        long,
        env = "SLS_AK_KEY",
        default_value = DEFAULT_ACCESS_KEY_SECRET,
        hide_env_values = true,
        hide_default_value = true,
        value_parser = parse_secret
    )]
    pub access_key_secret: Secret,
}

fn parse_secret(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(text))
}

/// Refuses the well-known default AccessKey secret on an address other hosts can reach.
fn check_listen_credentials(listen: SocketAddr, access_key: &AccessKeyArgs) -> anyhow::Result<()> {
    let default_secret = access_key.access_key_secret.expose() == DEFAULT_ACCESS_KEY_SECRET;
    if default_secret && !listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {listen} with the default access key (`{DEFAULT_ACCESS_KEY_ID}`/`{DEFAULT_ACCESS_KEY_SECRET}`), \
             which anyone can sign with: set --access-key-id and --access-key-secret \
             (or SLS_AK_ID and SLS_AK_KEY), or listen on a loopback address"
        );
    }
    Ok(())
}

/// Options of `local-server`.
#[derive(Debug, Args)]
pub struct LocalServerArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// Directory for shards and checkpoints (created when missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Project that `--logstore` entries belong to.
    #[arg(long, default_value = "siem-demo", value_parser = parse_name)]
    pub project: String,
    /// Logstore to create when missing, as NAME or NAME:SHARDS (default 4 shards). Repeatable.
    #[arg(long = "logstore", value_parser = parse_logstore)]
    pub logstores: Vec<(String, u32)>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Connections served at once; further clients wait until one closes.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// The region this service answers as: requests signed with signature v4 must be scoped
    /// to it (the real service requires the region of its endpoint).
    #[arg(long, default_value = DEFAULT_REGION, value_parser = parse_region)]
    pub region: String,
    /// Time a client has to send a request's headers (idle keep-alive time included)
    /// before its connection is closed, e.g. `60s`.
    #[arg(long, default_value_t = HumanDuration(DEFAULT_HEADER_READ_TIMEOUT))]
    pub header_read_timeout: HumanDuration,
    /// Throttle reads as the real log service does: past N PullLogs calls a second, a shard
    /// answers 403 `ShardReadQuotaExceed`. Unlimited when absent.
    #[arg(long, value_name = "N")]
    pub read_qps_per_shard: Option<NonZeroU32>,
    /// Deny actions as a RAM policy would (401 `Unauthorized`, "denied by sts or ram"), to
    /// try least-privilege credentials: `ListConsumerGroup`, `CreateConsumerGroup`,
    /// `UpdateConsumerGroup`, comma-separated or repeated.
    #[arg(long = "deny-action", value_name = "ACTION", value_delimiter = ',')]
    pub deny_actions: Vec<DeniedAction>,
    /// Hand out temporary credentials for this RAM role on the listen address, as the ECS
    /// instance metadata service (`/latest/meta-data/ram/security-credentials/NAME`) and STS
    /// `AssumeRoleWithOIDC` (at `/`) do, and accept requests signed with them until they
    /// expire. Only with a loopback `--listen`: anyone who reaches the address gets credentials.
    #[arg(long, value_name = "NAME", value_parser = parse_role)]
    pub sts_role: Option<String>,
    /// Lifetime of the temporary credentials, in seconds (an `AssumeRoleWithOIDC` asking for a
    /// shorter `DurationSeconds` gets that).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        requires = "sts_role",
        value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=MAX_STS_TTL.as_secs())
    )]
    pub sts_ttl: u64,
    /// Credentials every request must be signed with. The defaults are refused unless
    /// `--listen` is a loopback address.
    #[command(flatten)]
    pub access_key: AccessKeyArgs,
}

fn parse_logstore(text: &str) -> Result<(String, u32), String> {
    let (name, shards) = match text.split_once(':') {
        Some((name, shards)) => {
            let shards: u32 = shards
                .parse()
                .map_err(|_| format!("`{shards}` is not a shard count"))?;
            (name, shards)
        }
        None => (text, 4),
    };
    if !(1..=256).contains(&shards) {
        return Err("expected NAME or NAME:SHARDS with 1 to 256 shards".into());
    }
    Ok((parse_name(name)?, shards))
}

/// A RAM role name: 1 to 64 letters, digits, `.`, `-` or `_`.
fn parse_role(role: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'));
    if valid {
        Ok(role.to_owned())
    } else {
        Err(format!(
            "invalid role name `{role}`: use 1 to 64 letters, digits, `.`, `-` or `_`"
        ))
    }
}

/// Refuses to hand out temporary credentials on an address other hosts can reach: the
/// metadata and STS endpoints answer anyone who asks.
fn check_listen_sts(listen: SocketAddr, sts_role: Option<&str>) -> anyhow::Result<()> {
    if sts_role.is_some() && !listen.ip().is_loopback() {
        bail!(
            "refusing --sts-role on {listen}: the temporary credentials endpoints answer anyone \
             who reaches them; listen on a loopback address"
        );
    }
    Ok(())
}

/// A region id such as `cn-hangzhou`.
fn parse_region(region: &str) -> Result<String, String> {
    if crate::source::auth::v4::valid_region(region) {
        Ok(region.to_owned())
    } else {
        Err(format!(
            "invalid region `{region}`: use lowercase letters, digits and `-`, e.g. `cn-hangzhou`"
        ))
    }
}

/// A project or logstore name, checked with the server's own rule.
fn parse_name(name: &str) -> Result<String, String> {
    if valid_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "invalid name `{name}`: use 2 to 63 lowercase letters, digits, `-` or `_`"
        ))
    }
}

/// Options of `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Log service endpoint, e.g. http://127.0.0.1:18080 or https://cn-hangzhou.log.aliyuncs.com.
    #[arg(long, env = "SLS_ENDPOINT")]
    pub endpoint: String,
    /// Project.
    #[arg(long, env = "SLS_PROJECT")]
    pub project: String,
    /// Logstore.
    #[arg(long, env = "SLS_LOGSTORE")]
    pub logstore: String,
    /// JSON lines to write (`-` for standard input).
    #[arg(
        long,
        conflicts_with = "generate",
        required_unless_present = "generate"
    )]
    pub file: Option<PathBuf>,
    /// Number of generated audit logs to write, spread over all shards.
    #[arg(long)]
    pub generate: Option<usize>,
    /// Logs per generated log group.
    #[arg(long, default_value_t = 512)]
    pub group_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Signature version, `v1` or `v4` [default: v4 for regions that require it, else v1].
    #[arg(long, value_parser = parse_signature_version)]
    pub signature_version: Option<SignatureVersion>,
    /// Region signature v4 is scoped to [default: derived from a standard endpoint].
    #[arg(long)]
    pub region: Option<String>,
    /// Credentials.
    #[command(flatten)]
    pub credentials: PutCredentialArgs,
}

/// Parses `--signature-version`.
fn parse_signature_version(text: &str) -> Result<SignatureVersion, String> {
    match text {
        "v1" => Ok(SignatureVersion::V1),
        "v4" => Ok(SignatureVersion::V4),
        other => Err(format!(
            "`{other}` is not a signature version: use v1 or v4"
        )),
    }
}

/// Credentials of `put`. Each value comes from its flag, else the Alibaba Cloud variable
/// (`ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET`,
/// `ALIBABA_CLOUD_SECURITY_TOKEN`), else `SLS_AK_ID` / `SLS_AK_KEY`, else the local defaults
/// (no security token).
#[derive(Debug, Args)]
pub struct PutCredentialArgs {
    /// AccessKey id [env: ALIBABA_CLOUD_ACCESS_KEY_ID, then SLS_AK_ID; default: local].
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// AccessKey secret [env: ALIBABA_CLOUD_ACCESS_KEY_SECRET, then SLS_AK_KEY].
    #[arg(long, value_parser = parse_secret)]
    pub access_key_secret: Option<Secret>,
    /// Security token of temporary (STS) credentials [env: ALIBABA_CLOUD_SECURITY_TOKEN].
    #[arg(long, value_parser = parse_secret)]
    pub security_token: Option<Secret>,
}

/// The credentials `put` signs with.
#[derive(Debug)]
struct PutCredentials {
    access_key_id: String,
    access_key_secret: Secret,
    security_token: Option<Secret>,
}

impl PutCredentialArgs {
    /// Fills what the flags leave out from `env` (a variable lookup), as documented on
    /// [`PutCredentialArgs`]; empty variables count as unset.
    fn resolve(self, env: impl Fn(&str) -> Option<String>) -> PutCredentials {
        let lookup = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| env(name).filter(|value| !value.is_empty()))
        };
        PutCredentials {
            access_key_id: self.access_key_id.unwrap_or_else(|| {
                lookup(&["ALIBABA_CLOUD_ACCESS_KEY_ID", "SLS_AK_ID"])
                    .unwrap_or_else(|| DEFAULT_ACCESS_KEY_ID.to_owned())
            }),
            access_key_secret: self.access_key_secret.unwrap_or_else(|| {
                Secret::new(
                    lookup(&["ALIBABA_CLOUD_ACCESS_KEY_SECRET", "SLS_AK_KEY"])
                        .as_deref()
                        .unwrap_or(DEFAULT_ACCESS_KEY_SECRET),
                )
            }),
            security_token: self
                .security_token
                .or_else(|| lookup(&["ALIBABA_CLOUD_SECURITY_TOKEN"]).map(Secret::new)),
        }
    }
}

/// Parses the command line and runs the command.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    // Long-running commands also report a fatal error in their log stream (JSON for log
    // shippers); one-shot commands only print it.
    let long_running = matches!(cli.command, Command::Run(_) | Command::LocalServer(_));
    let outcome = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Validate(args) => validate(args),
        Command::Status(args) => status(args).await,
        Command::Top(args) => top(args).await,
        Command::LocalServer(args) => local_server(args).await,
        Command::Put(args) => put(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report_failure(&error, long_running && cli.log_format == LogFormat::Json);
            ExitCode::FAILURE
        }
    }
}

/// Reports the error a command failed with, once: as one JSON log line when a long-running
/// command writes JSON logs (for log shippers), else as `error: ...` with a `hint: ...` line
/// saying what to check.
fn report_failure(error: &anyhow::Error, as_log_line: bool) {
    let text = render_error(error);
    let hint = hint(error);
    if as_log_line {
        match hint {
            Some(hint) => tracing::error!(hint, "{text}"),
            None => tracing::error!("{text}"),
        }
    } else {
        eprintln!("error: {text}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
    }
}

/// What to check for the first log-service error in `error`'s chain.
fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| {
        if let Some(api) = cause.downcast_ref::<crate::source::ApiError>() {
            return api.hint();
        }
        match cause.downcast_ref::<ClientError>()? {
            ClientError::Api(api) => api.hint(),
            ClientError::Network { .. } => Some(
                "the endpoint cannot be reached: check its URL (e.g. https://cn-hangzhou.log.aliyuncs.com), \
                 DNS, proxy settings (HTTPS_PROXY) and firewalls",
            ),
            _ => None,
        }
    })
}

/// An error and its causes on one line, each said once: a cause whose text an outer message
/// already includes is not repeated.
pub fn render_error(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let config = ForwarderConfig::load(&args.config)?;
    let shutdown = crate::common::shutdown::token_cancelled_on_signal();
    crate::app::run(config, shutdown).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn validate(args: ConfigArgs) -> anyhow::Result<()> {
    let (config, text) = ForwarderConfig::load_with_text(&args.config)?;
    config.check_sinks(&args.config, &text)?;
    for warning in config.warnings() {
        eprintln!("{}: warning: {warning}", args.config.display());
    }
    println!(
        "{}: ok ({} sink(s))",
        args.config.display(),
        config.sinks.len()
    );
    Ok(())
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let view = match &args.config {
        Some(path) => StatusView::Group(Box::new(GroupView::from_config(&ForwarderConfig::load(
            path,
        )?)?)),
        None => StatusView::Process(args.url.clone()),
    };
    let Some(seconds) = args.watch else {
        print!("{}", view.show(args.json).await?);
        return Ok(());
    };
    let clear = !args.json && std::io::stdout().is_terminal();
    let interrupted = termination_signal();
    tokio::pin!(interrupted);
    loop {
        let frame = view
            .show(args.json)
            .await
            .unwrap_or_else(|error| format!("error: {}\n", render_error(&error)));
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        print!("{frame}");
        std::io::stdout().flush()?;
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(seconds)) => {}
            _ = &mut interrupted => return Ok(()),
        }
    }
}

async fn top(args: TopArgs) -> anyhow::Result<()> {
    let mut urls = args.urls;
    if urls.is_empty() && args.config.is_none() {
        urls.push("http://127.0.0.1:9300".to_owned());
    }
    let group = match &args.config {
        Some(path) => Some(GroupView::from_config(&ForwarderConfig::load(path)?)?),
        None => None,
    };
    let sources = crate::top::Sources { urls, group };
    let interval = std::time::Duration::from_secs(args.interval);
    if std::io::stdout().is_terminal() {
        crate::top::tui::run(sources, interval, args.sort).await
    } else {
        crate::top::plain::run(sources, interval, args.sort, args.frames).await
    }
}

/// What `status` shows.
enum StatusView {
    /// The group, from the log service.
    Group(Box<GroupView>),
    /// One process, from its telemetry endpoint.
    Process(String),
}

impl StatusView {
    /// One rendering, as a table or as JSON.
    async fn show(&self, json: bool) -> anyhow::Result<String> {
        match self {
            Self::Group(view) => {
                let status = view.read().await?;
                Ok(if json {
                    format!("{}\n", serde_json::to_string(&status)?)
                } else {
                    crate::group_status::render(&status)
                })
            }
            Self::Process(url) => {
                let status = process_status(url).await?;
                Ok(if json {
                    format!("{status}\n")
                } else {
                    render_status(&status)
                })
            }
        }
    }
}

/// The `/status` JSON of the forwarder at `url`.
async fn process_status(url: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/status", url.trim_end_matches('/'));
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let body = response
        .bytes()
        .await
        .with_context(|| format!("cannot read {url}"))?;
    serde_json::from_slice(&body).with_context(|| format!("{url} did not answer with JSON"))
}

/// Renders `/status` JSON as the tables `status` prints.
pub fn render_status(status: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let ready = status["ready"].as_bool().unwrap_or(false);
    let _ = writeln!(out, "ready: {}", if ready { "yes" } else { "NO" });
    let _ = writeln!(out, "\n{:<24} {:<10} REASON", "COMPONENT", "STATE");
    if let Some(components) = status["components"].as_object() {
        for (name, state) in components {
            let _ = writeln!(
                out,
                "{:<24} {:<10} {}",
                name,
                state["state"].as_str().unwrap_or("?"),
                state["reason"].as_str().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{:<20} {:>5} {:<28} {:<12} {:<28} {:>10} {:>10} {:>8}",
        "LOGSTORE", "SHARD", "CONSUMER", "PHASE", "CHECKPOINT", "DELIVERED", "LOGS/S", "LAG(S)"
    );
    for shard in status["shards"].as_array().into_iter().flatten() {
        let lag = shard["lag_seconds"]
            .as_f64()
            .map_or("-".to_owned(), |lag| format!("{lag:.1}"));
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:<28} {:<12} {:<28} {:>10} {:>10.1} {:>8}",
            shard["logstore"].as_str().unwrap_or("?"),
            shard["shard"].as_u64().unwrap_or(0),
            shard["consumer"].as_str().unwrap_or("?"),
            shard["phase"].as_str().unwrap_or("?"),
            shard["checkpoint"].as_str().unwrap_or(""),
            shard["delivered_logs"].as_u64().unwrap_or(0),
            shard["logs_per_second"].as_f64().unwrap_or(0.0),
            lag
        );
    }
    out
}

async fn local_server(args: LocalServerArgs) -> anyhow::Result<()> {
    check_listen_credentials(args.listen, &args.access_key)?;
    check_listen_sts(args.listen, args.sts_role.as_deref())?;
    let limits = ConnectionLimits {
        max_connections: args.max_connections,
        header_read_timeout: args.header_read_timeout.0,
    };
    let config = LocalServerConfig {
        data_dir: args.data_dir.clone(),
        access_key_id: args.access_key.access_key_id,
        access_key_secret: args.access_key.access_key_secret,
        region: args.region,
        max_body_bytes: args.max_body_bytes,
        logstores: args
            .logstores
            .into_iter()
            .map(|(logstore, shards)| LogstoreSpec {
                project: args.project.clone(),
                logstore,
                shards,
            })
            .collect(),
    };
    let server = LocalServer::open(config)
        .with_context(|| format!("cannot open data directory {}", args.data_dir.display()))?;
    server.limit_reads_per_shard(args.read_qps_per_shard);
    server.deny_actions(&args.deny_actions);
    server.issue_temporary_credentials(args.sts_role.map(|role| StsConfig {
        role,
        ttl: std::time::Duration::from_secs(args.sts_ttl),
    }));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %args.data_dir.display(), "local log service listening");
    println!("listening on {address}");
    server
        .run_with(
            listener,
            async {
                if let Err(error) = termination_signal().await {
                    tracing::error!(%error, "cannot listen for signals");
                }
            },
            limits,
        )
        .await?;
    tracing::info!("local log service stopped");
    Ok(())
}

async fn put(args: PutArgs) -> anyhow::Result<()> {
    let credentials = args.credentials.resolve(|name| std::env::var(name).ok());
    let mut config = ClientConfig::new(
        &args.endpoint,
        &args.project,
        &credentials.access_key_id,
        credentials.access_key_secret,
    );
    config.security_token = credentials.security_token;
    config.signing = Signing::resolve(
        args.signature_version,
        args.region.as_deref(),
        &args.endpoint,
    )?;
    let client = Arc::new(Client::new(config)?);
    let now = crate::common::time::unix_now();
    let batches: Vec<(Option<String>, LogGroup)> = match (&args.file, args.generate) {
        (Some(path), _) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
            };
            let groups = log_groups_from_json_lines(&text, now)
                .with_context(|| format!("in {}", path.display()))?;
            groups.into_iter().map(|group| (None, group)).collect()
        }
        (None, Some(count)) => {
            let shards = client
                .list_shards(&args.logstore)
                .await
                .context("cannot list the logstore's shards")?;
            let keys: Vec<String> = shards
                .iter()
                .filter(|shard| shard.is_readwrite())
                .map(|shard| shard.inclusive_begin_key.clone())
                .collect();
            if keys.is_empty() {
                bail!("logstore {} has no writable shard", args.logstore);
            }
            let mut generator = AuditLogGenerator::new(u64::from(now));
            let group_size = args.group_size.max(1);
            let mut batches = Vec::new();
            let mut remaining = count;
            while remaining > 0 {
                let size = remaining.min(group_size);
                let key = keys[batches.len() % keys.len()].clone();
                batches.push((Some(key), generator.group(size, now)));
                remaining -= size;
            }
            batches
        }
        (None, None) => bail!("give --file or --generate"),
    };
    let logs: usize = batches.iter().map(|(_, group)| group.logs.len()).sum();
    let groups = batches.len();
    futures::stream::iter(batches)
        .map(|(key, group)| {
            let client = client.clone();
            let logstore = args.logstore.clone();
            async move {
                let target = key
                    .as_deref()
                    .map_or(PutTarget::LoadBalanced, PutTarget::HashKey);
                client.put_logs(&logstore, target, &group).await
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await
        .context("put failed")?;
    tracing::info!(logs, groups, logstore = %args.logstore, "logs written");
    println!(
        "wrote {logs} logs in {groups} log groups to {}",
        args.logstore
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_server_args(args: &[&str]) -> Result<LocalServerArgs, clap::Error> {
        let cli = Cli::try_parse_from(
            [
                "siem-forwarder",
                "local-server",
                "--data-dir",
                "/tmp/unused",
            ]
            .iter()
            .chain(args),
        )?;
        match cli.command {
            Command::LocalServer(args) => Ok(args),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn the_default_secret_is_refused_off_loopback() {
        let default = ["--access-key-secret", DEFAULT_ACCESS_KEY_SECRET];
        for listen in ["127.0.0.1:0", "[::1]:0"] {
            let args = local_server_args(&[&["--listen", listen][..], &default].concat()).unwrap();
            assert!(check_listen_credentials(args.listen, &args.access_key).is_ok());
        }
        for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:18080"] {
            let args = local_server_args(&[&["--listen", listen][..], &default].concat()).unwrap();
            let error = check_listen_credentials(args.listen, &args.access_key)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("--access-key-secret") && error.contains("SLS_AK_KEY"),
                "{error}"
            );
        }
        let args = local_server_args(&[
            "--listen",
            "0.0.0.0:0",
            "--access-key-id",
            "ops",
            "--access-key-secret",
            "a-long-random-secret",
        ])
        .unwrap();
        assert!(check_listen_credentials(args.listen, &args.access_key).is_ok());
    }

    #[test]
    fn the_region_defaults_to_cn_hangzhou_and_is_checked() {
        assert_eq!(local_server_args(&[]).unwrap().region, DEFAULT_REGION);
        let args = local_server_args(&["--region", "ap-southeast-1"]).unwrap();
        assert_eq!(args.region, "ap-southeast-1");
        for bad in ["CN-HANGZHOU", "cn/hangzhou", "", "-x"] {
            assert!(local_server_args(&["--region", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let args = local_server_args(&["--access-key-secret", "hunter2-secret"]).unwrap();
        assert_eq!(args.access_key.access_key_secret.expose(), "hunter2-secret");
        assert!(!format!("{args:?}").contains("hunter2-secret"));
    }

    #[test]
    fn names_that_are_not_directory_names_are_refused() {
        for bad in ["../../x", "/abs", "a/b"] {
            assert!(local_server_args(&["--logstore", bad]).is_err(), "{bad}");
            assert!(local_server_args(&["--project", bad]).is_err(), "{bad}");
        }
        let args = local_server_args(&["--logstore", "audit:2", "--project", "demo"]).unwrap();
        assert_eq!(args.logstores, [("audit".to_owned(), 2)]);
    }

    #[test]
    fn temporary_credentials_need_a_valid_role_and_a_bounded_ttl() {
        let args = local_server_args(&[]).unwrap();
        assert_eq!((args.sts_role, args.sts_ttl), (None, 3600));
        let args =
            local_server_args(&["--sts-role", "Forwarder.Role-1", "--sts-ttl", "2"]).unwrap();
        assert_eq!(args.sts_role.as_deref(), Some("Forwarder.Role-1"));
        assert_eq!(args.sts_ttl, 2);
        assert!(
            local_server_args(&["--sts-ttl", "60"]).is_err(),
            "a ttl without a role"
        );
        for bad in [
            &["--sts-role", "a/b"][..],
            &["--sts-role", ""],
            &["--sts-role", "r", "--sts-ttl", "0"],
            &["--sts-role", "r", "--sts-ttl", "43201"],
        ] {
            assert!(local_server_args(bad).is_err(), "{bad:?}");
        }
        assert!(check_listen_sts("127.0.0.1:0".parse().unwrap(), Some("r")).is_ok());
        assert!(check_listen_sts("0.0.0.0:0".parse().unwrap(), None).is_ok());
        let error = check_listen_sts("0.0.0.0:0".parse().unwrap(), Some("r")).unwrap_err();
        assert!(error.to_string().contains("--sts-role"), "{error}");
    }

    fn put_credentials(flags: &[&str], env: &[(&str, &str)]) -> PutCredentials {
        let cli = Cli::try_parse_from(
            [
                "siem-forwarder",
                "put",
                "--endpoint",
                "http://127.0.0.1:1",
                "--project",
                "p",
            ]
            .iter()
            .chain(&["--logstore", "l", "--generate", "1"])
            .chain(flags),
        )
        .unwrap();
        let Command::Put(args) = cli.command else {
            panic!("parsed {:?}", cli.command)
        };
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        args.credentials.resolve(|name| env.get(name).cloned())
    }

    fn exposed(credentials: &PutCredentials) -> (&str, &str, Option<&str>) {
        (
            &credentials.access_key_id,
            credentials.access_key_secret.expose(),
            credentials.security_token.as_ref().map(Secret::expose),
        )
    }

    #[test]
    fn put_credentials_come_from_flags_then_alibaba_cloud_then_sls_variables() {
        let sls = [("SLS_AK_ID", "sls-id"), ("SLS_AK_KEY", "sls-secret")];
        let alibaba = [
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.env"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token"),
        ];
        let defaults = put_credentials(&[], &[]);
        assert_eq!(
            exposed(&defaults),
            (DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, None)
        );
        let from_sls = put_credentials(&[], &sls);
        assert_eq!(exposed(&from_sls), ("sls-id", "sls-secret", None));
        let both = [&sls[..], &alibaba].concat();
        let from_alibaba = put_credentials(&[], &both);
        assert_eq!(
            exposed(&from_alibaba),
            ("STS.env", "env-secret", Some("env-token"))
        );
        let flags = [
            "--access-key-id",
            "STS.flag",
            "--access-key-secret",
            "flag-secret",
            "--security-token",
            "flag-token",
        ];
        let from_flags = put_credentials(&flags, &both);
        assert_eq!(
            exposed(&from_flags),
            ("STS.flag", "flag-secret", Some("flag-token"))
        );
        assert!(
            !format!("{from_flags:?}").contains("flag-token")
                && !format!("{from_flags:?}").contains("flag-secret"),
            "secrets stay out of debug output"
        );
        let empty = put_credentials(
            &[],
            &[("ALIBABA_CLOUD_ACCESS_KEY_ID", ""), ("SLS_AK_ID", "sls-id")],
        );
        assert_eq!(
            empty.access_key_id, "sls-id",
            "an empty variable counts as unset"
        );
    }

    #[test]
    fn local_server_read_throttling_is_off_unless_a_positive_limit_is_given() {
        assert_eq!(local_server_args(&[]).unwrap().read_qps_per_shard, None);
        let args = local_server_args(&["--read-qps-per-shard", "5"]).unwrap();
        assert_eq!(args.read_qps_per_shard, NonZeroU32::new(5));
        assert!(local_server_args(&["--read-qps-per-shard", "0"]).is_err());
    }

    #[test]
    fn local_server_denies_only_the_named_actions() {
        assert!(local_server_args(&[]).unwrap().deny_actions.is_empty());
        let args =
            local_server_args(&["--deny-action", "ListConsumerGroup,log:UpdateConsumerGroup"])
                .unwrap();
        assert_eq!(
            args.deny_actions,
            [
                DeniedAction::ListConsumerGroup,
                DeniedAction::UpdateConsumerGroup
            ]
        );
        assert!(local_server_args(&["--deny-action", "DeleteProject"]).is_err());
    }
}
