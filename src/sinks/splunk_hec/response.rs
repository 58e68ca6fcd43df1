//! What a collector answer means for the request: decided by the HEC `code` in the JSON body
//! when there is one, by the HTTP status otherwise (load balancers answer without a body).
//! A 200 is not always code 0: codes 24 and 25 are successes that ask the sender to slow down.
//! Only a HEC data-error code (5, 6, 12, 13, 15) lets events be dead-lettered; a 4xx without
//! one (a proxy's or firewall's answer) pauses the sink and keeps every event.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

/// The JSON body of a collector answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HecReply {
    /// Human-readable status (`Success`, `Invalid token`, ...).
    #[serde(default)]
    pub text: Option<String>,
    /// The HEC status code.
    #[serde(default)]
    pub code: Option<i64>,
    /// Indexer-acknowledgement id of the request, when the token has acknowledgement on.
    #[serde(default, rename = "ackId")]
    pub ack_id: Option<u64>,
    /// Index (0-based) of the first rejected event; the ones before it were indexed.
    #[serde(default, rename = "invalid-event-number")]
    pub invalid_event_number: Option<usize>,
}

/// What to do after a collector answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The request was taken.
    Accepted {
        /// Await this indexer acknowledgement before confirming, when present.
        ack_id: Option<u64>,
        /// A capacity warning that came with the success.
        warning: Option<CapacityWarning>,
    },
    /// Try the same request again after a backoff (busy, server error, network error).
    Retry {
        /// What happened, for logs.
        reason: String,
        /// The server's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The token or configuration is wrong, or something in between refuses the request
    /// without a HEC code: pause, report unhealthy, retry slowly.
    Pause {
        /// What happened, for logs and health.
        reason: String,
    },
    /// Some event is bad data (only a HEC data-error code says so): events before
    /// `first_bad` were indexed.
    DataError {
        /// The HEC code.
        code: i64,
        /// What happened, for logs and the dead-letter file.
        reason: String,
        /// The `invalid-event-number`, when given.
        first_bad: Option<usize>,
    },
    /// 413: the body exceeds the collector's limit.
    TooLarge {
        /// What happened, for logs and the dead-letter file.
        reason: String,
    },
}

/// A success that reports the collector near capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CapacityWarning {
    /// Code 24: the queue is nearly full; send more slowly.
    QueueNearlyFull,
    /// Code 25: the acknowledgement store is nearly full; query acknowledgements sooner.
    AckNearlyFull,
}

/// The answer for logs: `http 400, hec code 6: Invalid data format`.
pub(crate) fn describe(status: u16, reply: &HecReply) -> String {
    match (&reply.text, reply.code) {
        (Some(text), Some(code)) => format!("http {status}, hec code {code}: {text}"),
        (Some(text), None) => format!("http {status}: {text}"),
        (None, Some(code)) => format!("http {status}, hec code {code}"),
        (None, None) => format!("http {status}"),
    }
}

/// Classifies an answer to a data request.
pub(crate) fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
    let reply: HecReply = serde_json::from_slice(body).unwrap_or_default();
    let reason = describe(status, &reply);
    let retry = |reason: String| Verdict::Retry {
        reason,
        retry_after,
    };
    if let Some(code) = reply.code {
        match code {
            0 | 24 | 25 if (200..300).contains(&status) => {
                let warning = match code {
                    24 => Some(CapacityWarning::QueueNearlyFull),
                    25 => Some(CapacityWarning::AckNearlyFull),
                    _ => None,
                };
                return Verdict::Accepted {
                    ack_id: reply.ack_id,
                    warning,
                };
            }
            1 | 2 | 3 | 4 | 7 | 10 | 11 | 14 | 16 | 21 | 22 | 28 => {
                return Verdict::Pause { reason };
            }
            5 | 6 | 12 | 13 | 15 => {
                return Verdict::DataError {
                    code,
                    reason,
                    first_bad: reply.invalid_event_number,
                };
            }
            8 | 9 | 18 | 19 | 20 | 23 | 26 | 27 => return retry(reason),
            _ => {}
        }
    }
    match status {
        200..=299 => Verdict::Accepted {
            ack_id: reply.ack_id,
            warning: None,
        },
        413 => Verdict::TooLarge { reason },
        408 | 429 | 500..=599 => retry(reason),
        // Without a HEC code the answer says nothing about the events (a proxy, load balancer
        // or firewall in between answers this way): hold them and pause, never dead-letter.
        400..=499 => Verdict::Pause {
            reason: format!("{reason} without a HEC code (from a proxy or load balancer?)"),
        },
        _ => Verdict::Pause { reason },
    }
}

/// Reads a `Retry-After` header: delay seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(status: u16, body: &str) -> Verdict {
        classify(status, None, body.as_bytes())
    }

    #[test]
    fn success_codes_are_accepted_with_their_ack_id() {
        assert_eq!(
            verdict(200, r#"{"text":"Success","code":0,"ackId":7}"#),
            Verdict::Accepted {
                ack_id: Some(7),
                warning: None
            }
        );
        assert_eq!(
            verdict(
                200,
                r#"{"text":"HEC queue is approaching its capacity limit","code":24}"#
            ),
            Verdict::Accepted {
                ack_id: None,
                warning: Some(CapacityWarning::QueueNearlyFull)
            }
        );
        assert!(matches!(verdict(204, ""), Verdict::Accepted { .. }));
    }

    #[test]
    fn code_wins_over_status() {
        assert!(matches!(
            verdict(200, r#"{"text":"Server is busy","code":9}"#),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            verdict(
                503,
                r#"{"text":"Server is busy","code":9,"invalid-event-number":0}"#
            ),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn token_and_configuration_errors_pause() {
        for (status, code) in [(403, 1), (401, 2), (401, 3), (403, 4), (400, 7), (400, 10)] {
            let body = format!(r#"{{"text":"x","code":{code}}}"#);
            assert!(
                matches!(verdict(status, &body), Verdict::Pause { .. }),
                "code {code}"
            );
        }
        assert!(matches!(verdict(404, "not found"), Verdict::Pause { .. }));
        assert!(matches!(verdict(415, ""), Verdict::Pause { .. }));
    }

    #[test]
    fn data_errors_carry_the_invalid_event_number() {
        assert_eq!(
            verdict(
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#
            ),
            Verdict::DataError {
                code: 6,
                reason: "http 400, hec code 6: Invalid data format".into(),
                first_bad: Some(3)
            }
        );
        assert!(matches!(
            verdict(400, r#"{"text":"Event field is required","code":12}"#),
            Verdict::DataError {
                code: 12,
                first_bad: None,
                ..
            }
        ));
    }

    #[test]
    fn bodiless_answers_fall_back_to_the_status() {
        assert!(matches!(verdict(502, "<html>"), Verdict::Retry { .. }));
        assert!(matches!(verdict(429, ""), Verdict::Retry { .. }));
        assert!(matches!(verdict(413, ""), Verdict::TooLarge { .. }));
        assert!(matches!(verdict(301, ""), Verdict::Pause { .. }));
    }

    #[test]
    fn a_400_without_a_hec_code_pauses_instead_of_rejecting_data() {
        for body in [
            "",
            "<html><body>Request rejected by the firewall</body></html>",
            r#"{"error":"bad request"}"#,
            r#"{"text":"Bad Request","code":400}"#,
        ] {
            let answer = verdict(400, body);
            assert!(
                matches!(&answer, Verdict::Pause { reason } if reason.contains("without a HEC code")),
                "{body}: {answer:?}"
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
