//! Log-service API errors: the error codes as an enum (parsed once, so a misspelt comparison
//! cannot creep in) and the error a failed API call returns.

use std::fmt;

use serde::Deserialize;

/// An SLS `errorCode`. Parsing is case-insensitive and accepts the misspellings some servers
/// and SDKs use (`ConsumerNotExsit`, `ShardNotExsit`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApiErrorCode {
    /// The cursor is malformed or outside the shard's range.
    InvalidCursor,
    /// The shard does not exist.
    ShardNotExist,
    /// The logstore has no shard.
    LogStoreWithoutShard,
    /// The consumer is not (or no longer) a member of the group.
    ConsumerNotExist,
    /// The shard is owned by another consumer.
    ConsumerNotMatch,
    /// The consumer group does not exist.
    ConsumerGroupNotExist,
    /// The consumer group already exists.
    ConsumerGroupAlreadyExist,
    /// The project does not exist.
    ProjectNotExist,
    /// The logstore does not exist.
    LogStoreNotExist,
    /// A request parameter is missing or invalid.
    ParameterInvalid,
    /// The request body cannot be parsed.
    PostBodyInvalid,
    /// The request body exceeds the size limit.
    PostBodyTooLarge,
    /// The compression named in `x-log-compresstype` is not supported.
    InvalidCompressType,
    /// A checkpoint is not a valid cursor.
    InvalidShardCheckPoint,
    /// The request signature does not match.
    SignatureNotMatch,
    /// The request carries no valid credentials.
    Unauthorized,
    /// The AccessKey id is unknown.
    InvalidAccessKeyId,
    /// The temporary credentials (STS token) expired: fetch new ones.
    SecurityTokenExpired,
    /// The `Date` is too far from the server's clock.
    RequestTimeExpired,
    /// Read quota of the project exceeded.
    ReadQuotaExceed,
    /// Read quota of one shard exceeded.
    ShardReadQuotaExceed,
    /// Write quota exceeded (project or shard).
    WriteQuotaExceed,
    /// The server failed.
    InternalServerError,
    /// The server did not finish the request in time.
    RequestTimeout,
    /// The server is overloaded.
    ServerBusy,
    /// A heartbeat reported shards for a consumer the group does not know (never joined, or
    /// timed out): the consumer must drop its shards and heartbeat an empty list to rejoin.
    NotExistConsumerWithBody,
    /// Any other code, as sent.
    Other(String),
}

impl ApiErrorCode {
    /// Parses a code as sent by a server.
    pub fn parse(code: &str) -> Self {
        let lower = code.to_ascii_lowercase();
        match lower.as_str() {
            "invalidcursor" => Self::InvalidCursor,
            "shardnotexist" | "shardnotexsit" => Self::ShardNotExist,
            "logstorewithoutshard" => Self::LogStoreWithoutShard,
            "consumernotexist" | "consumernotexsit" => Self::ConsumerNotExist,
            "consumernotmatch" => Self::ConsumerNotMatch,
            "consumergroupnotexist" => Self::ConsumerGroupNotExist,
            "consumergroupalreadyexist" => Self::ConsumerGroupAlreadyExist,
            "projectnotexist" => Self::ProjectNotExist,
            "logstorenotexist" => Self::LogStoreNotExist,
            "parameterinvalid" => Self::ParameterInvalid,
            "postbodyinvalid" => Self::PostBodyInvalid,
            "postbodytoolarge" => Self::PostBodyTooLarge,
            "invalidcompresstype" => Self::InvalidCompressType,
            "invalidshardcheckpoint" => Self::InvalidShardCheckPoint,
            "signaturenotmatch" => Self::SignatureNotMatch,
            "unauthorized" => Self::Unauthorized,
            "securitytokenexpired" | "securitytoken.expired" => Self::SecurityTokenExpired,
            "requesttimeexpired" => Self::RequestTimeExpired,
            "readquotaexceed" => Self::ReadQuotaExceed,
            "shardreadquotaexceed" => Self::ShardReadQuotaExceed,
            "writequotaexceed" | "shardwritequotaexceed" => Self::WriteQuotaExceed,
            "internalservererror" => Self::InternalServerError,
            "requesttimeout" => Self::RequestTimeout,
            "serverbusy" => Self::ServerBusy,
            "notexistconsumerwithbody" => Self::NotExistConsumerWithBody,
            other if other.starts_with("invalidaccesskeyid") => Self::InvalidAccessKeyId,
            other if other.contains("invalidcursor") => Self::InvalidCursor,
            _ => Self::Other(code.to_owned()),
        }
    }

    /// The code as the log service spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidCursor => "InvalidCursor",
            Self::ShardNotExist => "ShardNotExist",
            Self::LogStoreWithoutShard => "LogStoreWithoutShard",
            Self::ConsumerNotExist => "ConsumerNotExist",
            Self::ConsumerNotMatch => "ConsumerNotMatch",
            Self::ConsumerGroupNotExist => "ConsumerGroupNotExist",
            Self::ConsumerGroupAlreadyExist => "ConsumerGroupAlreadyExist",
            Self::ProjectNotExist => "ProjectNotExist",
            Self::LogStoreNotExist => "LogStoreNotExist",
            Self::ParameterInvalid => "ParameterInvalid",
            Self::PostBodyInvalid => "PostBodyInvalid",
            Self::PostBodyTooLarge => "PostBodyTooLarge",
            Self::InvalidCompressType => "InvalidCompressType",
            Self::InvalidShardCheckPoint => "InvalidShardCheckPoint",
            Self::SignatureNotMatch => "SignatureNotMatch",
            Self::Unauthorized => "Unauthorized",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::SecurityTokenExpired => "SecurityTokenExpired",
            Self::RequestTimeExpired => "RequestTimeExpired",
            Self::ReadQuotaExceed => "ReadQuotaExceed",
            Self::ShardReadQuotaExceed => "ShardReadQuotaExceed",
            Self::WriteQuotaExceed => "WriteQuotaExceed",
            Self::InternalServerError => "InternalServerError",
            Self::RequestTimeout => "RequestTimeout",
            Self::ServerBusy => "ServerBusy",
            Self::NotExistConsumerWithBody => "NotExistConsumerWithBody",
            Self::Other(code) => code,
        }
    }

    /// The HTTP status the log service answers with for this code.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::ProjectNotExist
            | Self::LogStoreNotExist
            | Self::ConsumerGroupNotExist
            | Self::ConsumerNotExist => 404,
            Self::SignatureNotMatch
            | Self::Unauthorized
            | Self::InvalidAccessKeyId
            | Self::SecurityTokenExpired => 401,
            Self::ReadQuotaExceed | Self::ShardReadQuotaExceed | Self::WriteQuotaExceed => 403,
            Self::PostBodyTooLarge => 413,
            Self::InternalServerError | Self::RequestTimeout => 500,
            Self::ServerBusy => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every SLS error response.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error code, e.g. `InvalidCursor`.
    #[serde(rename = "errorCode")]
    pub error_code: String,
    /// A human-readable explanation.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

/// A log-service API call that the server answered with an error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("log service error {status} {code}: {message} (request id {request_id})")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Parsed `errorCode`.
    pub code: ApiErrorCode,
    /// `errorMessage`, or the raw body when it was not the SLS error JSON.
    pub message: String,
    /// `x-log-requestid`, or `-`.
    pub request_id: String,
}

impl ApiError {
    /// Builds the error from a response status, body and request id.
    pub fn from_response(status: u16, body: &[u8], request_id: Option<&str>) -> Self {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) => (
                ApiErrorCode::parse(&parsed.error_code),
                parsed.error_message,
            ),
            Err(_) => (
                ApiErrorCode::Other(format!("http-{status}")),
                String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            ),
        };
        Self {
            status,
            code,
            message,
            request_id: request_id.unwrap_or("-").to_owned(),
        }
    }

    /// True for errors worth retrying at once: 5xx, `RequestTimeout`, `ServerBusy` and the
    /// write quota. Read throttling ([`ApiError::is_throttled`]) is not: its caller waits
    /// seconds, not milliseconds. Neither is `RequestTimeExpired` ([`ApiError::is_clock_skew`]),
    /// which repeats until the host clock is fixed.
    pub fn is_retryable(&self) -> bool {
        self.status >= 500
            || matches!(
                self.code,
                ApiErrorCode::WriteQuotaExceed
                    | ApiErrorCode::InternalServerError
                    | ApiErrorCode::RequestTimeout
                    | ApiErrorCode::ServerBusy
            )
    }

    /// True for an HTTP 403: the log service throttles the caller (`ReadQuotaExceed`,
    /// `ShardReadQuotaExceed` and other quota codes). The official consumers wait 5 s on any
    /// 403 from PullLogs.
    pub fn is_throttled(&self) -> bool {
        self.status == 403
    }

    /// True for `RequestTimeExpired`: the request's date is too far from the server's clock.
    pub fn is_clock_skew(&self) -> bool {
        self.code == ApiErrorCode::RequestTimeExpired
    }

    /// What to check, for the errors a new setup usually meets.
    pub fn hint(&self) -> Option<&'static str> {
        match (&self.code, self.status) {
            (ApiErrorCode::RequestTimeExpired, _) => Some(
                "the host clock is more than 15 minutes off the log service's: fix it (NTP)",
            ),
            (ApiErrorCode::InvalidAccessKeyId, _) => Some(
                "the AccessKey id is unknown or disabled: check access_key_id (and, with STS, that the token is current)",
            ),
            (_, 401) => Some(
                "check that access_key_id and access_key_secret are one pair and active, that the host clock is right (NTP), \
                 and that the project lives in the endpoint's region (project and endpoint go together)",
            ),
            (ApiErrorCode::ReadQuotaExceed | ApiErrorCode::ShardReadQuotaExceed | ApiErrorCode::WriteQuotaExceed, _) => None,
            (_, 403) => Some(
                "the AccessKey is not allowed to do this: its RAM policy must allow the log:* actions of the consumer \
                 (ListShards, GetCursorOrData, ListConsumerGroup, CreateConsumerGroup, UpdateConsumerGroup, \
                 ConsumerGroupHeartBeat, GetConsumerGroupCheckPoint, ConsumerGroupUpdateCheckPoint) on the project and logstores",
            ),
            (ApiErrorCode::ProjectNotExist, _) => Some(
                "no such project at this endpoint: check `project`, and that `endpoint` is the project's region",
            ),
            (ApiErrorCode::LogStoreNotExist, _) => Some(
                "no such logstore in the project: check `logstores` (names are case-sensitive)",
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_case_insensitively_with_misspellings() {
        assert_eq!(
            ApiErrorCode::parse("ConsumerNotExsit"),
            ApiErrorCode::ConsumerNotExist
        );
        assert_eq!(
            ApiErrorCode::parse("shardnotexsit"),
            ApiErrorCode::ShardNotExist
        );
        assert_eq!(
            ApiErrorCode::parse("InvalidCursor"),
            ApiErrorCode::InvalidCursor
        );
        assert_eq!(
            ApiErrorCode::parse("ShardReadQuotaExceed"),
            ApiErrorCode::ShardReadQuotaExceed
        );
        assert_eq!(
            ApiErrorCode::parse("NotExistConsumerWithBody").as_str(),
            "NotExistConsumerWithBody"
        );
        assert_eq!(
            ApiErrorCode::parse("Weird"),
            ApiErrorCode::Other("Weird".into())
        );
        assert_eq!(ApiErrorCode::parse("Weird").as_str(), "Weird");
    }

    #[test]
    fn both_spellings_of_an_expired_security_token_are_one_401_code() {
        for spelling in ["SecurityTokenExpired", "SecurityToken.Expired"] {
            let code = ApiErrorCode::parse(spelling);
            assert_eq!(code, ApiErrorCode::SecurityTokenExpired, "{spelling}");
            assert_eq!(code.http_status(), 401);
        }
        assert_eq!(
            ApiErrorCode::SecurityTokenExpired.as_str(),
            "SecurityTokenExpired"
        );
    }

    #[test]
    fn error_body_is_parsed_or_kept_raw() {
        let parsed = ApiError::from_response(
            400,
            br#"{"errorCode":"InvalidCursor","errorMessage":"bad"}"#,
            Some("req-1"),
        );
        assert_eq!(parsed.code, ApiErrorCode::InvalidCursor);
        assert!(!parsed.is_retryable());
        let raw = ApiError::from_response(502, b"<html>bad gateway</html>", None);
        assert_eq!(raw.code, ApiErrorCode::Other("http-502".into()));
        assert!(raw.is_retryable());
        assert!(raw.to_string().contains("bad gateway"));
    }

    fn answered(code: ApiErrorCode) -> ApiError {
        let body = format!(r#"{{"errorCode":"{code}","errorMessage":"m"}}"#);
        ApiError::from_response(code.http_status(), body.as_bytes(), None)
    }

    #[test]
    fn throttling_and_clock_skew_are_not_retried_at_once_but_busy_servers_are() {
        for code in [
            ApiErrorCode::ReadQuotaExceed,
            ApiErrorCode::ShardReadQuotaExceed,
            ApiErrorCode::Other("ProjectQuotaExceed".into()),
        ] {
            let error = ApiError::from_response(
                403,
                format!(r#"{{"errorCode":"{code}","errorMessage":"m"}}"#).as_bytes(),
                None,
            );
            assert!(error.is_throttled(), "{code}");
            assert!(!error.is_retryable(), "{code}");
        }
        let skew = answered(ApiErrorCode::RequestTimeExpired);
        assert!(skew.is_clock_skew());
        assert!(!skew.is_retryable());
        assert!(!skew.is_throttled());
        for code in [
            ApiErrorCode::RequestTimeout,
            ApiErrorCode::ServerBusy,
            ApiErrorCode::InternalServerError,
        ] {
            let error = answered(code.clone());
            assert!(error.is_retryable(), "{code}");
            assert!(!error.is_throttled(), "{code}");
        }
    }
}
