//! Fuzzes VPC flow logs: a format line, then flow-log text, through the streaming flow reader and
//! NAT attribution with calls at extreme times. Any panic (an overflow included) is a bug.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run flow_logs -- -max_total_time=60` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ctguard_forensics::fuzzing::flow_logs(data);
});
