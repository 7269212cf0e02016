//! One module per command. Each runs: lock → backup first if it changes
//! anything → plan → show → apply, and returns its JSON document.

pub mod backup;
pub mod demo;
pub mod diff;
pub mod edit;
pub mod list;
pub mod rollback;
pub mod status;
pub mod verify;

use std::io::BufRead;

use crate::context::{Ctx, Install};
use crate::error::{Error, Result};
use crate::lock::StoreLock;
use crate::restore;
use crate::store::Store;

/// Starts a writing run: takes the store lock, then finishes or undoes an
/// interrupted rollback and removes incomplete snapshots, saying so.
pub fn begin_write(ctx: &mut Ctx, install: &Install, command: &str) -> Result<(StoreLock, Store)> {
    let lock = StoreLock::acquire(&install.store, command, ctx.now)?;
    let store = Store::new(&install.store);
    if let Some(said) = restore::recover(install, &store)? {
        ctx.out.warn(said);
    }
    for id in store.remove_incomplete()? {
        ctx.out.warn(format!("removed incomplete snapshot {id} left by an interrupted run"));
    }
    Ok((lock, store))
}

/// Asks a yes/no question on the terminal; `--yes` answers yes. Without a
/// terminal and without `--yes` the run is refused (exit 5).
pub fn confirm(ctx: &mut Ctx, question: &str) -> Result<bool> {
    if ctx.global.yes {
        return Ok(true);
    }
    if !ctx.interactive {
        return Err(Error::refused(
            format!("this needs confirmation and there is no terminal to ask: {question}"),
            "pass --yes to confirm",
        ));
    }
    let _ = write!(ctx.out.err(), "{question} [y/N] ");
    let _ = ctx.out.err().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io("cannot read answer from", "stdin", e))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Bytes in human units (binary prefixes).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// A duration in human units, e.g. `3h 5m` or `2d 4h`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3 * 3600 + 5 * 60), "3h 5m");
        assert_eq!(human_age(2 * 86400 + 4 * 3600), "2d 4h");
    }
}
