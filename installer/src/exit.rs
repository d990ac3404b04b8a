//! Named exit codes, one catalogue for every command.

/// Everything is fine / every target passed.
pub const OK: u8 = 0;
/// The command ran and found something: alerts (`scan`), unhealthy targets (`status`), failed
/// checks (`verify`), idle keys (`keys`).
pub const FINDINGS: u8 = 1;
/// Bad usage, bad input, or a set-up error before any target was touched.
pub const USAGE: u8 = 2;
/// Some targets failed, or (`scan`, `trace`) some input could not be read: files, records or
/// directories; the rest completed (see the results and the summary, which says what was lost).
/// A CI gate must not read this as clean.
pub const PARTIAL: u8 = 3;
/// `install --plan`: the plan has changes (like `terraform plan -detailed-exitcode`'s 2, which
/// ctguard already uses for bad usage).
pub const CHANGES_PENDING: u8 = 4;
/// (`scan`, `trace`) The input held nothing to check: not one CloudTrail or ActionTrail record
/// (a wrong path, a file that is not a log, every file unreadable). Never "clean".
pub const NO_RECORDS: u8 = 5;
/// `uninstall`: something ctguard created is still there. The output names every resource
/// left, per target, and why (a denied deletion, a target that failed or could not be reached,
/// a bucket of ctguard's name that ctguard cannot prove it owns). A re-run resumes.
pub const LEFT_BEHIND: u8 = 6;
