//! Progress of long byte-moving work (backup, verify, rollback).
//!
//! A counter that the archive code bumps as bytes pass; shown on a terminal
//! only, never with `--no-progress`, `--json` or without a terminal.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes done so far of an expected total.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: u64,
}

impl Progress {
    /// A counter for `total` bytes, not displayed.
    pub fn hidden(total: u64) -> Self {
        Progress { done: AtomicU64::new(0), total }
    }

    /// Counts `n` more bytes done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The expected total.
    pub fn total(&self) -> u64 {
        self.total
    }
}
