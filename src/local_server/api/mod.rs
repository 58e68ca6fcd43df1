//! The SLS API operations the server answers, one file each, mirroring the client's
//! `source::api`: each file holds the handlers of one operation family, as methods on
//! [`LocalServer`] or functions of a [`Logstore`]. The request they get is a [`Call`], already
//! authenticated; [`super::routes`] reads it and picks the handler.

pub(crate) mod checkpoint;
pub(crate) mod consumer_group;
pub(crate) mod cursor;
pub(crate) mod heartbeat;
pub(crate) mod logstores;
pub(crate) mod pull_logs;
pub(crate) mod put_logs;
pub(crate) mod shards;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::Full;
use serde::Deserialize;

use super::state::{Failure, Logstore, Project};
use super::{DeniedAction, LocalServer};
use crate::source::ApiErrorCode;

/// An HTTP response of the server.
pub(crate) type Reply = Response<Full<Bytes>>;

/// What a handler answers: a reply, or the SLS error to answer with.
pub(crate) type HandlerResult = Result<Reply, Failure>;

/// A parsed request, after the body was read and the signature checked.
pub(crate) struct Call {
    /// The HTTP method.
    pub(crate) method: Method,
    /// The non-empty segments of the path.
    pub(crate) segments: Vec<String>,
    /// The percent-decoded query pairs, in order.
    pub(crate) query: Vec<(String, String)>,
    /// The request headers.
    pub(crate) headers: HeaderMap,
    /// The body, matching the digest the signature covers.
    pub(crate) body: Bytes,
    /// The project named by the Host header.
    pub(crate) project: Option<String>,
}

impl Call {
    /// The first value of query parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of query parameter `name`, refused with `ParameterInvalid` when absent.
    pub(crate) fn required(&self, name: &str) -> Result<&str, Failure> {
        self.param(name)
            .ok_or_else(|| invalid(format!("missing query parameter `{name}`")))
    }

    /// The value of header `name`, empty when absent or not text.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON, refused with `PostBodyInvalid` when it does not parse.
    pub(crate) fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Failure::new(
                ApiErrorCode::PostBodyInvalid,
                format!("invalid json body: {error}"),
            )
        })
    }

    /// The project the request addresses.
    pub(crate) fn project(&self, server: &LocalServer) -> Result<Arc<Project>, Failure> {
        let name = self.project.as_deref().ok_or_else(|| {
            Failure::new(
                ApiErrorCode::ProjectNotExist,
                "no project in the Host header (expected PROJECT.HOST)",
            )
        })?;
        server.projects.project(name)
    }
}

impl LocalServer {
    /// Refuses `action` when a RAM policy set with [`LocalServer::deny_actions`] denies it.
    pub(crate) fn permit(
        &self,
        call: &Call,
        action: DeniedAction,
        logstore: &str,
        group: &str,
    ) -> Result<(), Failure> {
        let project = call.project.as_deref().unwrap_or_default();
        let region = &self.config.region;
        self.denials.check(action, region, project, logstore, group)
    }

    /// The logstore `name` of the project the request addresses.
    pub(crate) fn logstore(&self, call: &Call, name: &str) -> Result<Arc<Logstore>, Failure> {
        call.project(self)?.logstore(name)
    }
}

/// A `ParameterInvalid` failure.
pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ApiErrorCode::ParameterInvalid, message)
}

/// A shard id from the path or the query, refused with `ShardNotExist` when not a number.
pub(crate) fn parse_shard(text: &str) -> Result<u32, Failure> {
    text.parse().map_err(|_| {
        Failure::new(
            ApiErrorCode::ShardNotExist,
            format!("shard `{text}` does not exist"),
        )
    })
}

/// A 200 reply with `value` as its JSON body.
pub(crate) fn json_reply(value: &serde_json::Value) -> HandlerResult {
    let mut reply = Response::new(Full::new(Bytes::from(value.to_string())));
    reply
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(reply)
}

/// A 200 reply without a body.
pub(crate) fn empty_reply() -> Reply {
    Response::new(Full::new(Bytes::new()))
}
