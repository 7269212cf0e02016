//! Progress of long byte-moving work (backup, verify, rollback).
//!
//! A counter that the archive code bumps as bytes pass, drawn as a bar with
//! rate and time left on a terminal only: never with `--no-progress`,
//! `--json`, or when stderr is not a terminal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// When work that reads its sources must give up: a deadline (the
/// database's downtime limit) or a flag a signal handler sets.
#[derive(Debug, Clone, Default)]
pub struct Abort {
    /// Give up once this instant has passed.
    pub deadline: Option<Instant>,
    /// Give up once this is set.
    pub flag: Option<Arc<AtomicBool>>,
}

impl Abort {
    /// Why the work must stop now, if it must.
    pub fn reason(&self) -> Option<&'static str> {
        if self.flag.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
            Some("interrupted by a signal")
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some("the database's downtime limit passed")
        } else {
            None
        }
    }
}

/// Bytes done so far of an expected total.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    abort: Abort,
}

impl Progress {
    /// A counter for `total` bytes, not displayed.
    pub fn hidden(total: u64) -> Self {
        Progress {
            bar: ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()),
            abort: Abort::default(),
        }
    }

    /// The same counter, giving up as `abort` says.
    pub fn with_abort(mut self, abort: Abort) -> Self {
        self.abort = abort;
        self
    }

    /// Why the work must stop now, if it must (see [`Abort`]).
    pub fn must_stop(&self) -> Option<&'static str> {
        self.abort.reason()
    }

    /// A counter for `total` bytes, drawn on stderr when `visible`.
    pub fn new(label: &str, total: u64, visible: bool) -> Self {
        if !visible {
            return Self::hidden(total);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            // The bar takes what the terminal's width leaves: one line at 80 columns.
            "{msg} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        Progress { bar, abort: Abort::default() }
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
