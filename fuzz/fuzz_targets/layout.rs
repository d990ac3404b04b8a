//! Fuzzes the directory and file layer: builds a tree from the input (any file names, nesting,
//! gzip, symlinks to `.`/`..`/devices, sockets), then lists and reads it as `scan` and
//! `trace --flow-logs` do, with and without a time range. Any panic or hang is a bug.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run layout -- -max_total_time=60` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ctguard_forensics::fuzzing::layout(data);
});
