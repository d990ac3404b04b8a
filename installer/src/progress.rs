//! Consumers of [`DeployEvent`]s: an indicatif bar per phase on a terminal, plain lines when
//! stderr is not a terminal or under CI. Also the byte-count bar that `scan` and `trace` feed
//! through the forensics library's per-file callback. Progress always goes to
//! stderr; results go to stdout (so `ctguard install --json | jq` stays clean).
//!
//! The environment is probed once in the command and handed to the pure [`resolve`], which is
//! unit-tested below (nextest's `reporter/displayer/config.rs` does the same).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use ctguard_deploy::deploy::{DeployEvent, Phase, Reporter};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One indicatif bar per phase, redrawn in place.
    Bar,
    /// One line per event: for logs and CI, where redrawing is noise.
    Lines,
}

/// A bar only on an interactive terminal outside CI (CI terminals are often fake TTYs whose
/// logs keep every redraw).
pub fn resolve(is_tty: bool, is_ci: bool) -> Mode {
    if is_tty && !is_ci {
        Mode::Bar
    } else {
        Mode::Lines
    }
}

/// True under the usual CI markers.
pub fn is_ci() -> bool {
    ["CI", "GITHUB_ACTIONS", "BUILDKITE", "GITLAB_CI", "CODEBUILD_BUILD_ID"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "false"))
}

/// The reporter for `mode`.
pub fn reporter(mode: Mode) -> Box<dyn Reporter> {
    match mode {
        Mode::Bar => Box::new(BarReporter::default()),
        Mode::Lines => Box::new(LineReporter),
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Observe => "observe",
        Phase::Artifacts => "artifacts",
        Phase::Stacks => "stacks",
        Phase::AutoDeploy => "auto-deploy",
        Phase::Leftovers => "leftovers",
    }
}

/// One line for an event (shared by both renderers; `None` for events not worth a line).
pub fn line(e: &DeployEvent) -> Option<String> {
    Some(match e {
        DeployEvent::PhaseStarted { phase, targets } => {
            format!("== {} ({targets} targets)", phase_name(*phase))
        }
        DeployEvent::StepStarted { target, what, action } => format!("{target} {what}: {action}"),
        DeployEvent::StackStatus { target, stack, status, reason } => match reason {
            Some(r) if !r.is_empty() => format!("{target} {stack}: {status} ({r})"),
            _ => format!("{target} {stack}: {status}"),
        },
        DeployEvent::TargetFinished { target, phase, ok, changes, message } => match (ok, message) {
            (true, _) => format!("{target} {} done ({changes} changes)", phase_name(*phase)),
            (false, Some(m)) => format!("{target} {} FAILED: {m}", phase_name(*phase)),
            (false, None) => format!("{target} {} FAILED", phase_name(*phase)),
        },
        DeployEvent::Warning { message } => format!("warning: {message}"),
    })
}

/// Plain lines on stderr.
pub struct LineReporter;

impl Reporter for LineReporter {
    fn report(&self, e: &DeployEvent) {
        if let Some(l) = line(e) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{l}");
        }
    }
}

/// A bar per phase; failures and warnings are printed above the bar and stay.
#[derive(Default)]
pub struct BarReporter {
    bar: Mutex<Option<ProgressBar>>,
}

impl Reporter for BarReporter {
    fn report(&self, e: &DeployEvent) {
        let mut guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            DeployEvent::PhaseStarted { phase, targets } => {
                if let Some(b) = guard.take() {
                    b.finish();
                }
                let b = ProgressBar::with_draw_target(Some(*targets as u64), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template("{prefix:>11} [{bar:30}] {pos}/{len} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                b.set_style(style);
                b.set_prefix(phase_name(*phase));
                b.enable_steady_tick(Duration::from_millis(120));
                *guard = Some(b);
            }
            DeployEvent::TargetFinished { ok, .. } => {
                if let Some(b) = guard.as_ref() {
                    b.inc(1);
                    if !ok {
                        if let Some(l) = line(e) {
                            b.println(l);
                        }
                    }
                }
            }
            DeployEvent::Warning { .. } => {
                if let Some(l) = line(e) {
                    match guard.as_ref() {
                        Some(b) => b.println(l),
                        None => eprintln!("{l}"),
                    }
                }
            }
            other => {
                if let (Some(b), Some(l)) = (guard.as_ref(), line(other)) {
                    b.set_message(l);
                }
            }
        }
    }
}

impl Drop for BarReporter {
    fn drop(&mut self) {
        if let Some(b) = self.bar.get_mut().ok().and_then(Option::take) {
            b.finish_and_clear();
        }
    }
}

/// A byte-count progress bar on stderr, drawn only when stderr is a terminal; otherwise a no-op,
/// so piped and CI output stays clean.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `total` bytes over `files` files, labelled `what`.
    pub fn bytes(total: u64, files: usize, what: &str) -> Progress {
        Progress::resolve(std::io::stderr().is_terminal(), total, files, what)
    }

    /// Decides whether to draw (pure apart from building the bar; unit-tested).
    fn resolve(is_tty: bool, total: u64, files: usize, what: &str) -> Progress {
        // A handful of small files finishes before a bar is worth drawing.
        if !is_tty || files < 8 {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        // The bar takes what the terminal leaves, so the line fits 80 columns.
        let style = ProgressStyle::with_template(
            "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(format!("{what} {files} files"));
        Progress(Some(bar))
    }

    /// A callback advancing the bar by one file's size.
    pub fn callback(&self) -> impl FnMut(u64) + Send + 'static {
        let bar = self.0.clone();
        move |n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }

    pub fn is_drawn(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ctguard_deploy::targets::Target;

    #[test]
    fn bar_only_on_a_real_terminal_outside_ci() {
        assert_eq!(resolve(true, false), Mode::Bar);
        assert_eq!(resolve(true, true), Mode::Lines);
        assert_eq!(resolve(false, false), Mode::Lines);
        assert_eq!(resolve(false, true), Mode::Lines);
    }

    #[test]
    fn lines_name_target_stack_and_status() {
        let t = Target::new("111111111111", "us-east-1");
        let e = DeployEvent::StackStatus {
            target: t.clone(),
            stack: "ctguard-region".into(),
            status: "CREATE_FAILED".into(),
            reason: Some("Role exists".into()),
        };
        assert_eq!(line(&e).unwrap(), "111111111111/us-east-1 ctguard-region: CREATE_FAILED (Role exists)");
        let e = DeployEvent::TargetFinished {
            target: t,
            phase: Phase::Stacks,
            ok: false,
            changes: 0,
            message: Some("boom".into()),
        };
        assert_eq!(line(&e).unwrap(), "111111111111/us-east-1 stacks FAILED: boom");
    }

    #[test]
    fn byte_bar_only_on_a_terminal_and_for_real_work() {
        assert!(!Progress::resolve(false, 1 << 30, 1000, "x").is_drawn());
        assert!(!Progress::resolve(true, 10, 2, "x").is_drawn());
        let p = Progress::resolve(true, 1 << 30, 1000, "x");
        assert!(p.is_drawn());
        p.finish();
    }
}
