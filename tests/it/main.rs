//! End-to-end tests: one binary, a module per area (as ripgrep does).

mod alert_to_action;
mod athena;
mod auto_contain;
mod contain;
mod damaged_input;
mod desired_state;
mod detector_lambda;
mod forensics;
mod install;
mod installer_policy;
mod pipeline;
mod policies;
mod preflight;
mod redrive;
mod stacksets;
mod status;
mod uninstall;
mod verify;
