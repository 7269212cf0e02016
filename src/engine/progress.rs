//! Progress of long byte-moving work (backup, verify, rollback).
//!
//! A counter that the archive code bumps as bytes pass, drawn as a bar with
//! rate and time left on a terminal only: never with `--no-progress`,
//! `--json`, or when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bytes done so far of an expected total.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A counter for `total` bytes, not displayed.
    pub fn hidden(total: u64) -> Self {
        Progress { bar: ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()) }
    }

    /// A counter for `total` bytes, drawn on stderr when `visible`.
    pub fn new(label: &str, total: u64, visible: bool) -> Self {
        if !visible {
            return Self::hidden(total);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:<10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        Progress { bar }
    }

    /// Counts `n` more bytes done.
    pub fn add(&self, n: u64) {
        self.bar.inc(n);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
