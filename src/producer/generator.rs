//! Synthetic, realistic audit logs shaped like ActionTrail events: a nested JSON `event`
//! field plus the flat fields SIEM rules key on (user, source IP, action, result, region).
//! Used by `put --generate`, the quickstart and the benchmark.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::source::protobuf::{Log, LogGroup};

/// The topic ActionTrail uses for audit events.
pub const AUDIT_TOPIC: &str = "actiontrail_audit_event";

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];
const REGIONS: &[&str] = &[
    "cn-hangzhou",
    "cn-shanghai",
    "cn-beijing",
    "cn-shenzhen",
    "ap-southeast-1",
    "eu-central-1",
];
const ACTIONS: &[(&str, &str)] = &[
    ("ecs", "StartInstance"),
    ("ecs", "StopInstance"),
    ("ecs", "DescribeInstances"),
    ("ram", "CreateAccessKey"),
    ("ram", "AttachPolicyToUser"),
    ("oss", "PutBucketAcl"),
    ("oss", "GetObject"),
    ("rds", "ModifySecurityIps"),
    ("sts", "AssumeRole"),
    ("vpc", "AuthorizeSecurityGroup"),
];
const AGENTS: &[&str] = &[
    "AlibabaCloud (Linux 5.15.0; x86_64) Java/1.8.0_372 tea-util/0.2.21 TeaDSL/1",
    "aliyun-cli/3.0.190 (linux; amd64) Go/1.21.5",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Terraform/1.6.6 terraform-provider-alicloud/1.214.0",
];

/// Produces audit logs deterministically from a seed.
#[derive(Debug)]
pub struct AuditLogGenerator {
    rng: StdRng,
    sequence: u64,
}

impl AuditLogGenerator {
    /// A generator; the same seed gives the same logs.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            sequence: 0,
        }
    }

    /// One audit log at `time` (Unix seconds), about 1 KB of key/value text.
    pub fn log(&mut self, time: u32) -> Log {
        self.sequence += 1;
        let rng = &mut self.rng;
        let user = USERS[rng.gen_range(0..USERS.len())];
        let region = REGIONS[rng.gen_range(0..REGIONS.len())];
        let (service, action) = ACTIONS[rng.gen_range(0..ACTIONS.len())];
        let agent = AGENTS[rng.gen_range(0..AGENTS.len())];
        let source_ip = format!(
            "{}.{}.{}.{}",
            rng.gen_range(1..224),
            rng.gen_range(0..256),
            rng.gen_range(0..256),
            rng.gen_range(1..255)
        );
        let failed = rng.gen_bool(0.08);
        let event_id = format!(
            "{:08X}-{:04X}-{:04X}-{:012X}",
            rng.gen::<u32>(),
            rng.gen::<u16>(),
            rng.gen::<u16>(),
            self.sequence
        );
        let request_id = format!("{:016X}{:016X}", rng.gen::<u64>(), self.sequence);
        let nanos = rng.gen_range(0..1_000_000_000u32);
        let event_time = chrono::DateTime::from_timestamp(i64::from(time), nanos)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut event = json!({
            "eventId": event_id,
            "eventVersion": 1,
            "eventSource": format!("{service}.aliyuncs.com"),
            "eventName": action,
            "eventType": "ApiCall",
            "eventTime": event_time,
            "acsRegion": region,
            "sourceIpAddress": source_ip,
            "userAgent": agent,
            "requestId": request_id,
            "serviceName": service.to_uppercase(),
            "apiVersion": "2014-05-26",
            "userIdentity": {
                "type": "ram-user",
                "principalId": format!("2{:015}", rng.gen_range(0..10u64.pow(15))),
                "accountId": "1234567890123456",
                "userName": user,
                "accessKeyId": format!("LTAI5t{:016X}", rng.gen::<u64>()),
                "sessionContext": {"attributes": {"mfaAuthenticated": "false", "creationDate": event_time}}
            },
            "requestParameters": {
                "RegionId": region,
                "InstanceId": format!("i-bp1{:017x}", rng.gen::<u64>() >> 4),
                "ClientToken": format!("{:032x}", rng.gen::<u128>()),
                "AcceptLanguage": "en-US"
            },
            "additionalEventData": {"loginAccount": format!("{user}@1234567890123456.onaliyun.com"), "isMfaChecked": "false"}
        });
        if failed {
            event["errorCode"] = json!("Forbidden.RAM");
            event["errorMessage"] = json!("User not authorized to operate on the specified resource, or this API does not support RAM.");
        }
        Log {
            time,
            time_ns: Some(nanos),
            contents: vec![
                ("event".into(), event.to_string()),
                ("user".into(), user.into()),
                ("source_ip".into(), source_ip),
                ("action".into(), format!("{service}:{action}")),
                (
                    "result".into(),
                    if failed { "failure" } else { "success" }.into(),
                ),
                ("region".into(), region.into()),
                ("event_id".into(), event_id),
            ],
        }
    }

    /// A log group of `count` audit logs stamped `time`, with ActionTrail's topic and tags.
    pub fn group(&mut self, count: usize, time: u32) -> LogGroup {
        LogGroup {
            logs: (0..count).map(|_| self.log(time)).collect(),
            topic: Some(AUDIT_TOPIC.to_owned()),
            source: Some("actiontrail.aliyuncs.com".to_owned()),
            tags: vec![("__receive_time__".to_owned(), time.to_string())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_about_a_kilobyte_with_nested_json() {
        let mut generator = AuditLogGenerator::new(7);
        let log = generator.log(1_700_000_000);
        let size: usize = log.contents.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!((700..1600).contains(&size), "size {size}");
        let event: serde_json::Value = serde_json::from_str(&log.contents[0].1).unwrap();
        assert!(event["userIdentity"]["userName"].is_string());
        assert_eq!(
            AuditLogGenerator::new(7).log(1_700_000_000),
            log,
            "deterministic"
        );
    }
}
