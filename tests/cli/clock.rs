//! Clocks that step: snapshots are ordered by the store's sequence, not by
//! the time they claim. The clock is moved for one run by an `LD_PRELOAD`
//! shim that shifts `CLOCK_REALTIME` by `BWGUARD_CLOCK_SHIFT` seconds (as
//! an NTP step or a wrong hardware clock would), built here with the C
//! compiler; without one the tests are skipped, and fail in CI.

use std::path::PathBuf;

use crate::support::{Bwguard, TestEnv, ids_of};

const SHIFT_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift(void) {
    const char *s = getenv("BWGUARD_CLOCK_SHIFT");
    return s ? atol(s) : 0;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += shift();
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (r == 0 && tv) { tv->tv_sec = ts.tv_sec; tv->tv_usec = ts.tv_nsec / 1000; }
    (void)tz;
    return r;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}
"#;

/// The shim, built once per test into `dir`.
struct Clock {
    lib: PathBuf,
    _dir: tempfile::TempDir,
}

impl Clock {
    fn new() -> Option<Clock> {
        let dir = tempfile::tempdir().unwrap();
        match crate::support::c_shim(dir.path(), "shift", SHIFT_SHIM) {
            Ok(lib) => Some(Clock { lib, _dir: dir }),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED: {e}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// `run` with the clock `secs` seconds off.
    fn shifted(&self, run: Bwguard, secs: i64) -> Bwguard {
        run.env("LD_PRELOAD", &self.lib).env("BWGUARD_CLOCK_SHIFT", secs.to_string())
    }
}

const DAY: i64 = 86_400;

#[test]
fn after_the_clock_steps_back_the_snapshot_just_taken_is_the_newest_and_is_kept() {
    let Some(clock) = Clock::new() else { return };
    let env = TestEnv::new();
    let before = env.backup();
    // The clock steps back ten days: the next snapshot's id and time are
    // older than the first one's.
    let r = clock.shifted(env.bwguard(&["backup", "--prune", "--keep-last", "1", "--json"]), -10 * DAY).run();
    r.ok();
    let doc = r.json();
    let just = doc["id"].as_str().unwrap().to_string();
    assert!(just < before, "precondition: the shifted id {just} sorts before {before}");
    assert_eq!(ids_of(&doc["prune"], "kept"), vec![just.clone()], "the snapshot just taken is kept\n{doc}");
    assert_eq!(ids_of(&doc["prune"], "removed"), vec![before.clone()], "{doc}");
    assert_eq!(env.snapshot_ids(), vec![just.clone()]);

    // Another one at the real time: it follows the shifted one, and
    // `latest`, list and a rollback without an id all mean it.
    let third = env.backup();
    assert_eq!(env.snapshot_ids(), vec![third.clone(), just.clone()]);
    let r = env.run(&["rollback", "--dry-run", "--json"]);
    r.ok();
    assert_eq!(r.json()["id"], third.as_str(), "{}", r.stdout);
    let r = env.run(&["verify", "latest", "--json"]);
    r.ok();
    assert_eq!(r.json()["snapshots"][0]["id"], third.as_str());
}

#[test]
fn a_snapshot_dated_in_the_future_does_not_keep_max_age_green() {
    let Some(clock) = Clock::new() else { return };
    let env = TestEnv::new();
    // Taken while the clock ran ten days ahead; now it is right again, and
    // no backup ran since.
    clock.shifted(env.bwguard(&["backup"]), 10 * DAY).run().ok();
    let r = env.run(&["status", "--max-age", "1d", "-q"]);
    r.code(1);
    assert!(r.stdout.starts_with("STALE"), "{}", r.stdout);
    r.stderr_has("in the future");
    // A real backup counts again.
    env.backup();
    let r = env.run(&["status", "--max-age", "1d", "-q"]);
    r.ok();
    assert!(r.stdout.starts_with("OK"), "{}", r.stdout);
}
