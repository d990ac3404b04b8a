//! Fuzzes everything untrusted input reaches: the log reader (every layout, envelopes), the
//! record parser, and the classification rules. Any panic is a bug.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_event -- -max_total_time=60` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ctguard_detector::fuzzing::exercise(data);
});
