//! Wiring of the `run` command and its shutdown order: stop pulling → drain in-flight
//! batches until the deadline → flush checkpoints → release shards → stop the sinks → exit.

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{ForwarderConfig, SinkConfig};
use crate::local_server::{LocalServer, LocalServerConfig, LogstoreSpec, DEFAULT_MAX_BODY_BYTES};
use crate::model::batch::SinkBatch;
use crate::pipeline::{fan_out, SINK_QUEUE};
use crate::producer::generator::AuditLogGenerator;
use crate::sinks::{Sink, SinkContext, RELEASES_QUEUE};
use crate::source::api::cursor::CursorFrom;
use crate::source::api::put_logs::PutTarget;
use crate::source::config::{ResolvedSource, LOCAL_ENDPOINT};
use crate::source::credentials::config::SourceCredentials;
use crate::source::{Client, ClientConfig};
use crate::telemetry::{health, HealthState};

/// Batches between the consumer and the pipeline.
const CONSUMER_QUEUE: usize = 16;

/// How long sinks get to finish after the consumer left the group.
const SINK_STOP_GRACE: Duration = Duration::from_secs(5);

/// Builds the sinks of the configuration outside a running consumer (to check them).
///
/// # Errors
///
/// A sink whose configuration cannot work (e.g. unreadable TLS files), naming it.
pub fn build_sinks(configs: &[SinkConfig]) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    build_sinks_in(configs, &SinkContext::standalone())
}

/// Builds the sinks of the configuration, fed by the consumer `context` describes.
///
/// # Errors
///
/// A sink whose configuration cannot work (e.g. unreadable TLS files), naming it.
pub fn build_sinks_in(
    configs: &[SinkConfig],
    context: &SinkContext,
) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    configs
        .iter()
        .enumerate()
        .map(|(index, config)| {
            config
                .build(index, context)
                .with_context(|| format!("sinks[{index}] ({})", config.name(index)))
        })
        .collect()
}

/// Runs the forwarder until `shutdown`, then drains and leaves the group.
///
/// # Errors
///
/// Start-up failures (bad config, unknown logstore, rejected credentials) and sinks that
/// stopped with an error.
pub async fn run(config: ForwarderConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let source = config
        .source
        .resolve(|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    let (endpoint, _local_server) = if source.endpoint == LOCAL_ENDPOINT {
        let (endpoint, server_stop) = start_local_source(&config, &source).await?;
        (endpoint, Some(server_stop.drop_guard()))
    } else {
        (source.endpoint.clone(), None)
    };
    let _telemetry = match config.telemetry.listen {
        Some(address) => Some(start_telemetry(address).await?.drop_guard()),
        None => None,
    };
    let client = source_client(&source, &endpoint)?;

    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let consumer_config = config
        .consumer
        .clone()
        .with_archive_default(config.has_archive());
    let (releases, _) = broadcast::channel(RELEASES_QUEUE);
    let context = SinkContext {
        project: source.project.clone(),
        logstores: source.logstores.clone(),
        consumer_group: consumer_config.group.clone(),
        max_inflight_batches: consumer_config.inflight_batches(),
        // Shutdown starts the drain: sinks holding batches deliver them while the consumer
        // waits for them.
        drain: shutdown.clone(),
        releases: releases.clone(),
    };
    let sinks = build_sinks_in(&config.sinks, &context)?;
    let sink_stop = CancellationToken::new();
    let mut sink_inputs = Vec::with_capacity(sinks.len());
    let mut sink_tasks = tokio::task::JoinSet::new();
    for sink in sinks {
        let name = sink.name().to_owned();
        let component = format!("sink:{name}");
        match sink.healthcheck().await {
            Ok(()) => tracing::info!(sink = %name, "sink healthcheck passed"),
            Err(error) => {
                tracing::warn!(sink = %name, %error, "sink healthcheck failed; starting anyway and retrying deliveries");
                health().set(&component, HealthState::Unhealthy(error.to_string()));
            }
        }
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        sink_inputs.push(tx);
        let stop = sink_stop.clone();
        let failed = shutdown.clone();
        sink_tasks.spawn(async move {
            let outcome = sink.run(rx, stop).await;
            if let Err(error) = &outcome {
                tracing::error!(sink = %name, %error, "sink stopped with an error; shutting down so nothing is skipped");
                health().set(&component, HealthState::Unhealthy(error.to_string()));
                failed.cancel();
            }
            outcome.map_err(|error| anyhow::anyhow!("sink {name}: {error}"))
        });
    }
    let (batches_tx, batches_rx) = mpsc::channel::<SinkBatch>(CONSUMER_QUEUE);
    let transform = if config.transform.is_noop() {
        None
    } else {
        let transform = config.transform.build().map_err(anyhow::Error::msg)?;
        let apply: crate::pipeline::RecordsTransform =
            std::sync::Arc::new(move |records| transform.apply(records));
        Some(apply)
    };
    let pipeline = tokio::spawn(fan_out(batches_rx, sink_inputs, transform));

    let consumed = crate::consumer::run(
        client,
        &source.logstores,
        consumer_config,
        batches_tx,
        releases,
        shutdown.clone(),
    )
    .await;
    sink_stop.cancel();
    let _ = pipeline.await;
    let mut sink_failure = None;
    let stopped = tokio::time::timeout(SINK_STOP_GRACE, async {
        while let Some(joined) = sink_tasks.join_next().await {
            match joined {
                Ok(Err(error)) => sink_failure = Some(error),
                Err(error) => sink_failure = Some(anyhow::anyhow!("sink task failed: {error}")),
                Ok(Ok(())) => {}
            }
        }
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("sinks did not stop within {SINK_STOP_GRACE:?}");
    }
    consumed?;
    match sink_failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The log-service client of `source`, connecting to `endpoint` (the configured one, or the
/// embedded service's address).
///
/// # Errors
///
/// An endpoint or credential the client cannot use.
pub fn source_client(source: &ResolvedSource, endpoint: &str) -> anyhow::Result<Client> {
    let mut client_config =
        ClientConfig::with_credentials(endpoint, &source.project, source.credentials.cache());
    client_config.signing = source.signing.clone();
    client_config.max_inflight_requests = source.max_inflight_requests;
    Ok(Client::new(client_config)?)
}

/// Starts the telemetry endpoint; it stops when the returned token is cancelled.
async fn start_telemetry(address: std::net::SocketAddr) -> anyhow::Result<CancellationToken> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for telemetry"))?;
    tracing::info!(address = %listener.local_addr()?, "telemetry endpoint listening");
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    tokio::spawn(async move {
        if let Err(error) =
            crate::telemetry::server::serve(listener, async move { server_stop.cancelled().await })
                .await
        {
            tracing::error!(%error, "telemetry endpoint failed");
        }
    });
    Ok(stop)
}

/// Starts the embedded log service on a loopback port, fills empty logstores with generated
/// audit logs when asked, and returns its endpoint and a token that stops it.
async fn start_local_source(
    config: &ForwarderConfig,
    source: &ResolvedSource,
) -> anyhow::Result<(String, CancellationToken)> {
    let local = &config.source.local;
    let SourceCredentials::Static(keys) = &source.credentials else {
        anyhow::bail!("the embedded log service accepts only static keys");
    };
    let server = LocalServer::open(LocalServerConfig {
        data_dir: local.data_dir.clone(),
        access_key_id: keys.access_key_id.clone(),
        access_key_secret: keys.access_key_secret.clone(),
        region: source.local_region.clone(),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        logstores: source
            .logstores
            .iter()
            .map(|logstore| LogstoreSpec {
                project: source.project.clone(),
                logstore: logstore.clone(),
                shards: local.shards,
            })
            .collect(),
    })
    .with_context(|| {
        format!(
            "cannot open the local log service data in {}",
            local.data_dir.display()
        )
    })?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the local log service")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    tokio::spawn(async move {
        if let Err(error) = server
            .run(listener, async move { server_stop.cancelled().await })
            .await
        {
            tracing::error!(%error, "local log service failed");
        }
    });
    tracing::info!(%endpoint, data_dir = %local.data_dir.display(), "embedded local log service started");
    if local.generate > 0 {
        let client = Client::new(ClientConfig::with_credentials(
            &endpoint,
            &source.project,
            source.credentials.cache(),
        ))?;
        for logstore in &source.logstores {
            fill_if_empty(&client, logstore, local.generate).await?;
        }
    }
    Ok((endpoint, stop))
}

async fn fill_if_empty(client: &Client, logstore: &str, count: usize) -> anyhow::Result<()> {
    let shards = client.list_shards(logstore).await?;
    for shard in &shards {
        if client
            .get_cursor(logstore, shard.shard_id, CursorFrom::End)
            .await?
            != crate::source::cursor::encode(0)
        {
            return Ok(());
        }
    }
    let now = crate::common::time::unix_now();
    let mut generator = AuditLogGenerator::new(u64::from(now));
    let per_group = 256;
    let mut written = 0;
    while written < count {
        let size = per_group.min(count - written);
        let shard = &shards[(written / per_group) % shards.len()];
        client
            .put_logs(
                logstore,
                PutTarget::HashKey(&shard.inclusive_begin_key),
                &generator.group(size, now),
            )
            .await?;
        written += size;
    }
    tracing::info!(
        logstore,
        logs = count,
        "generated audit logs in the local log service"
    );
    Ok(())
}
