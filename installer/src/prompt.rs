//! Asking a person before a destructive change: the one place commands show what they will
//! change and read `yes` from the terminal.

use std::io::{BufRead, Write};

/// Shows `what` on stderr and asks for `yes` on the terminal; anything else is a no.
pub fn confirm(what: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(err, "{what}\nType `yes` to continue: ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}
