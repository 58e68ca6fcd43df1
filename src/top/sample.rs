//! One round of reads for `top`: every process's `/status` and `/metrics`, and the group view.

use crate::group_status::{GroupStatus, GroupView};

/// Where `top` reads from.
#[derive(Debug, Default)]
pub struct Sources {
    /// Telemetry endpoints of running forwarders, e.g. `http://127.0.0.1:9300`.
    pub urls: Vec<String>,
    /// The group, read from the log service.
    pub group: Option<GroupView>,
}

/// What one process answered.
#[derive(Debug, Clone, Default)]
pub struct ProcessSample {
    /// Its telemetry endpoint.
    pub url: String,
    /// `/status`, when it answered.
    pub status: Option<serde_json::Value>,
    /// `/metrics`, when it answered.
    pub metrics: Option<String>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// One round of reads.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// One entry per `--url`.
    pub processes: Vec<ProcessSample>,
    /// The group view, or why it could not be read.
    pub group: Option<Result<GroupStatus, String>>,
}

impl Sources {
    /// Reads every source once.
    pub async fn sample(&self, http: &reqwest::Client) -> Sample {
        let processes =
            futures::future::join_all(self.urls.iter().map(|url| read_process(http, url))).await;
        let group = match &self.group {
            Some(view) => Some(
                view.read()
                    .await
                    .map_err(|error| format!("{:#}", anyhow::Error::from(error))),
            ),
            None => None,
        };
        Sample { processes, group }
    }
}

async fn read_process(http: &reqwest::Client, url: &str) -> ProcessSample {
    let base = url.trim_end_matches('/');
    let get = |path: &'static str| async move {
        let response = http.get(format!("{base}{path}")).send().await?;
        response.error_for_status()?.text().await
    };
    let (status, metrics) = futures::join!(get("/status"), get("/metrics"));
    let mut sample = ProcessSample {
        url: url.to_owned(),
        ..ProcessSample::default()
    };
    match (status, metrics) {
        (Ok(status), Ok(metrics)) => {
            sample.status = serde_json::from_str(&status).ok();
            sample.metrics = Some(metrics);
        }
        (Err(error), _) | (_, Err(error)) => {
            sample.error = Some(format!("cannot read {base}: {error}"));
        }
    }
    sample
}
