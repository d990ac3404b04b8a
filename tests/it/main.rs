//! End-to-end tests: one binary, a module per area (as ripgrep does).

mod athena;
mod contain;
mod damaged_input;
mod desired_state;
mod detector_lambda;
mod forensics;
mod install;
mod pipeline;
mod policies;
mod redrive;
mod verify;
