//! The HEC answer classifier: the HTTP status, `Retry-After` and the JSON body of a collector
//! answer decide whether a request is taken, retried, paused on, split or cut in halves.
//!
//! The classifier is internal to the Splunk HEC sink, so its source file is compiled in here
//! as it is: one copy of the code, tested where it lives and fuzzed here.
//!
//! Input: the status (two little-endian bytes), the `Retry-After` value (a length byte, then
//! the text), then the body.
//!
//! Properties: no panic; only a 2xx is taken, only a 413 is cut in halves; a capacity warning
//! comes only from HEC codes 24 and 25; the reason names the status; a `Retry-After` of
//! digits is that many seconds.

use std::time::Duration;

use super::input::Input;

#[path = "../../src/sinks/splunk_hec/response.rs"]
#[allow(dead_code)]
mod response;

use response::{classify, parse_retry_after, CapacityWarning, HecReply, Verdict};

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let status = input.u16();
    let retry_after_text = input.text();
    let body = input.rest();

    let retry_after = parse_retry_after(&retry_after_text);
    if let Ok(seconds) = retry_after_text.trim().parse::<u64>() {
        assert_eq!(retry_after, Some(Duration::from_secs(seconds)));
    }

    let reply: Option<HecReply> = serde_json::from_slice(body).ok();
    let code = reply.as_ref().and_then(|reply| reply.code);
    let outcome = classify(status, retry_after, body);
    let reason = match &outcome {
        Verdict::Accepted { ack_id, warning } => {
            assert!((200..300).contains(&status), "status {status} taken");
            assert_eq!(*ack_id, reply.as_ref().and_then(|reply| reply.ack_id));
            match warning {
                Some(CapacityWarning::QueueNearlyFull) => assert_eq!(code, Some(24)),
                Some(CapacityWarning::AckNearlyFull) => assert_eq!(code, Some(25)),
                None => {}
            }
            return;
        }
        Verdict::Retry {
            reason,
            retry_after: kept,
        } => {
            assert_eq!(*kept, retry_after, "Retry-After lost");
            reason
        }
        Verdict::Pause { reason } => reason,
        Verdict::DataError {
            code: data_code,
            reason,
            first_bad,
        } => {
            assert!(code == Some(*data_code) || i64::from(status) == *data_code);
            assert_eq!(
                *first_bad,
                reply.as_ref().and_then(|reply| reply.invalid_event_number)
            );
            reason
        }
        Verdict::TooLarge { reason } => {
            assert_eq!(status, 413, "status {status} cut in halves");
            reason
        }
    };
    assert!(
        reason.starts_with(&format!("http {status}")),
        "reason {reason:?} does not name status {status}"
    );
}
