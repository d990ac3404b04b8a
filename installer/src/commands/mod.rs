//! One module per subcommand. Each receives its parsed `Args` and the global options, does its
//! work through the library, and returns an exit code from [`crate::exit`].

pub mod athena;
pub mod contain;
pub mod docs;
pub mod install;
pub mod keys;
pub mod package;
pub mod redrive;
pub mod scan;
pub mod status;
pub mod template;
pub mod trace;
pub mod uninstall;
pub mod verify;
