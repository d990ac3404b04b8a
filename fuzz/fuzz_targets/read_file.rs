//! Fuzzes a log file's bytes through the forensics reading layer: decoding (plain, gzip,
//! multi-member, damaged), record framing and recovery, record checks and the scan fold, whole
//! and fed in pieces. Any panic is a bug.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run read_file -- -max_total_time=60` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ctguard_forensics::fuzzing::read_file(data);
});
