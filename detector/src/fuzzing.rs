//! The body of the parser fuzz target, shared with a stable-toolchain smoke test so that the
//! same code runs on every `cargo test` even where `cargo fuzz` (nightly) is not available.

use crate::engine::classify;
use crate::event::{AssumeRoleRequest, AssumeRoleResponse, InstanceRequest, Record};
use crate::identity::{classify as classify_origin, Cidr};
use crate::policy::Policy;
use crate::reader::{for_each_record, to_text};

/// Feeds arbitrary bytes through the reader, the parser and the rules. Must never panic.
pub fn exercise(data: &[u8]) {
    let policy = Policy::default();
    let Ok(text) = to_text(data.to_vec()) else { return };
    for_each_record(&text, |r| {
        if let Ok(rec) = Record::parse(&r.json) {
            let _ = classify(&rec, r.source.as_deref(), &policy);
            let _ = rec.request::<AssumeRoleRequest>();
            let _ = rec.response::<AssumeRoleResponse>();
            let _ = rec.request::<InstanceRequest>();
            let _ = classify_origin(rec.source_ip_address.get(), rec.vpc_endpoint_id.get(), None);
        }
    });
    let _ = Policy::from_json(&text);
    let _ = Cidr::parse(&text);
    let _ = crate::time::parse_rfc3339(&text);
    let _ = crate::time::parse_expiration(&text);
}

#[cfg(test)]
mod tests {
    /// Deterministic mutations of real-shaped seeds: byte flips, truncations, splices.
    #[test]
    fn mutated_inputs_never_panic() {
        let seeds: [&[u8]; 4] = [
            br#"{"Records":[{"eventTime":"2024-05-01T10:00:00Z","eventType":"AwsApiCall","sourceIPAddress":"203.0.113.9","userIdentity":{"type":"AssumedRole","accessKeyId":"ASIAAAAAAAAAAAAAAAA2","arn":"arn:aws:sts::1:assumed-role/r/i-0123456789abcdef0","sessionContext":{"attributes":{"creationDate":"2024-05-01T09:00:00Z"}}}}]}"#,
            br#"[{"detail-type":"AWS API Call via CloudTrail","source":"aws.sts","detail":{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","sourceIPAddress":"ec2.amazonaws.com","eventTime":"2024-05-01T10:00:00Z","requestParameters":{"roleArn":"arn:aws:iam::1:role/r","roleSessionName":"i-0123456789abcdef0"},"responseElements":{"credentials":{"accessKeyId":"ASIAB","expiration":"May 1, 2024 6:00:00 PM"}}}}]"#,
            b"{\"eventName\":\"StartInstances\",\"eventSource\":\"ec2.amazonaws.com\",\"eventTime\":\"2024-05-01 10:00:00\",\"requestParameters\":{\"instancesSet\":{\"items\":[{\"instanceId\":\"i-01234567\"}]}}}\n{\"@timestamp\":\"2020-09-14T00:44:20.000Z\"}",
            br#"{"allow_cidrs":["10.0.0.0/8"],"roles":[{"role":"*","cidrs":["::/0"]}]}"#,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seed in seeds {
            super::exercise(seed);
            for _ in 0..3000 {
                let mut v = seed.to_vec();
                for _ in 0..(next() % 8 + 1) {
                    let i = (next() as usize) % v.len().max(1);
                    match next() % 4 {
                        0 => v[i] = next() as u8,
                        1 => v.truncate(i),
                        2 => v.insert(i, b"{}[]\",:\\"[(next() % 8) as usize]),
                        _ => {
                            let j = (next() as usize) % v.len().max(1);
                            let chunk = v[j.min(i)..j.max(i)].to_vec();
                            v.extend_from_slice(&chunk);
                        }
                    }
                    if v.is_empty() {
                        break;
                    }
                }
                super::exercise(&v);
            }
        }
    }
}
