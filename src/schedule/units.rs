//! Scheduled backups: the systemd service and timer that `schedule install`
//! writes, and the line that `schedule print --cron` prints instead.
//!
//! Everything here is pure: it renders text from a [`Job`] and checks a
//! calendar expression. Writing the files, `systemctl daemon-reload`,
//! `enable --now`, saving the retention flags for `backup --prune` and
//! `schedule remove` belong to the command that calls this module.
//!
//! The scheduled run is `bwguard --bwdata DIR --store DIR backup --scheduled
//! --prune --quiet --no-progress [--live]`, with bwguard, the data directory and the
//! store all named by absolute path, so the job does not depend on a working
//! directory, `PATH` or the environment. Without `--live` a run that finds the
//! database files open refuses with exit 5, which leaves the unit failed
//! (`systemctl --failed`) instead of silently taking a crash-consistent copy.
//!
//! # The service's sandbox
//!
//! - `ProtectSystem=strict` makes the whole file system read-only, and
//!   `ReadWritePaths=` opens the two places a backup writes: the install
//!   directory (the parent of the data directory: the default store lives
//!   there, and a backup removes leftovers of killed runs inside the data
//!   directory) and the store. A store inside the install directory is not
//!   listed twice. Both carry systemd's `-` prefix: a path that does not exist
//!   is then left read-only instead of failing the unit with the bare status
//!   `226/NAMESPACE`, so bwguard itself reports the missing path, and a store
//!   on a disk that is not mounted cannot be written to the mount point below.
//! - `ProtectHome=read-only` keeps `/home`, `/root` and `/run/user` read-only;
//!   `ReadWritePaths=` reopens an install or store below them. It cannot
//!   reopen one of those three directories itself (systemd keeps the
//!   read-only mount for an identical path), so when the install directory or
//!   the store *is* `/root`, `/home` or `/run/user`, or contains one of them,
//!   `ProtectHome=` is left out and a comment in the unit says why.
//!   `ProtectHome=yes` or `tmpfs` would hide a binary or store under `/home`.
//! - `PrivateTmp=yes` gives the run its own `/tmp` and `/var/tmp`. When
//!   bwguard, the data directory or the store is under either (a trial
//!   install, a test), a private `/tmp` would hide it, so it is left out, with
//!   a comment.
//! - `CapabilityBoundingSet=` keeps what a root backup needs: reading files
//!   owned by the database container's user (`CAP_DAC_READ_SEARCH`,
//!   `CAP_DAC_OVERRIDE`), keeping owners and modes in the store (`CAP_CHOWN`,
//!   `CAP_FOWNER`), and `CAP_SYS_PTRACE`: to tell whether the database is
//!   running, bwguard follows the `/proc/PID/fd` links of other processes,
//!   and the kernel allows that (`PTRACE_MODE_READ`) only for a process of the
//!   same user whose capabilities are a subset of the caller's, or with
//!   `CAP_SYS_PTRACE`. Without it the `fd` directory still lists, but every
//!   link fails with `EACCES`, for `sqlservr` (another user) and for root's
//!   container processes alike. With `User=` set to someone other than root
//!   the bounding set grants nothing; it only limits.
//! - Beyond those, only options that a program copying local files never
//!   notices: `PrivateDevices=`, `ProtectClock=`, `ProtectKernelLogs=`,
//!   `ProtectHostname=` (the host name stays readable), `RestrictNamespaces=`,
//!   `MemoryDenyWriteExecute=`. Left out on purpose: `PrivateNetwork=` and
//!   `RestrictAddressFamilies=` (user lookups may go through NSS over the
//!   network), `SystemCallFilter=` (a missed system call kills the run).
//! - Options that would blind the live-database check are never used:
//!   `ProtectProc=invisible`, `PrivateUsers=`, `PrivatePIDs=`.
//! - `UMask=0077`: the store holds the vault's secrets.
//!
//! # Cron
//!
//! Cron has no seconds, no catch-up after downtime (`Persistent=true`) and no
//! randomized delay, so only the simple calendars are translated, each with
//! systemd's meaning (`weekly` is Monday 00:00, unlike cron's `@weekly`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The service unit's file name.
pub const SERVICE: &str = "bwguard-backup.service";
/// The timer unit's file name.
pub const TIMER: &str = "bwguard-backup.timer";

/// What the scheduled job runs and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Absolute path of the bwguard binary.
    pub bwguard: PathBuf,
    /// Absolute path of the data directory (`bwdata`).
    pub bwdata: PathBuf,
    /// Absolute path of the snapshot store.
    pub store: PathBuf,
    /// A systemd `OnCalendar=` expression, rendered as given (default `daily`).
    pub calendar: String,
    /// The timer's `RandomizedDelaySec=`, e.g. `15min`.
    pub randomized_delay: String,
    /// Pass `--live` to `backup`: accept a crash-consistent copy of a running database.
    pub live: bool,
    /// Run as this user: `User=` in the service, the user field of an `/etc/cron.d` line.
    pub user: Option<String>,
    /// Pass `--push REMOTE` to `backup`: copy each verified snapshot off the host.
    pub push: Option<String>,
    /// Pass `--pause-db` to `backup`, and start the database container
    /// after the run if a killed run left it stopped (`ExecStopPost=`).
    pub pause_db: bool,
    /// The units' `Documentation=`: what documents them on this host (the
    /// man page when `man` finds it), or nothing, so that `systemd-analyze
    /// verify` never looks for a page that is not there.
    pub documentation: Option<String>,
    /// The retention flags the job's `backup --prune` gets on its command
    /// line (`--keep-daily 7 …`); none: the policy saved in the store.
    pub retention: Vec<String>,
}

/// The arguments after the global flags of every scheduled run. `--scheduled`
/// (hidden) records the reason `scheduled` in the manifest.
const BACKUP_ARGS: [&str; 5] = ["backup", "--scheduled", "--prune", "--quiet", "--no-progress"];

/// The first lines of the unit file `name`.
fn unit_header(name: &str) -> String {
    format!(
        "# Generated by bwguard: do not edit, regenerate with `bwguard schedule install`.\n\
         # Local changes belong in a drop-in: `systemctl edit {name}`.\n"
    )
}

/// Directories that `ProtectHome=` covers.
const HOME_DIRS: [&str; 3] = ["/home", "/root", "/run/user"];

/// Directories that `PrivateTmp=` replaces.
const TMP_DIRS: [&str; 2] = ["/tmp", "/var/tmp"];

/// The systemd service `bwguard-backup.service` that takes one scheduled backup.
pub fn render_service(job: &Job) -> String {
    let install = install_dir(&job.bwdata);
    let mut writable = vec![install.to_path_buf()];
    if !job.store.starts_with(install) {
        writable.push(job.store.clone());
    }

    let mut s = unit_header("bwguard-backup.service");
    s.push_str("[Unit]\n");
    s.push_str("Description=bwguard scheduled backup of Bitwarden\n");
    if let Some(doc) = &job.documentation {
        s.push_str(&format!("Documentation={}\n", unit_value(doc)));
    }
    s.push_str("After=docker.service\n");
    s.push_str("\n[Service]\n");
    s.push_str("Type=oneshot\n");
    s.push_str(&exec_start(&command(job)));
    if job.pause_db {
        s.push_str(
            "# Whatever became of the backup (killed, timed out), the database container comes back.\n",
        );
        s.push_str(&exec_start(&resume_command(job)).replacen("ExecStart=", "ExecStopPost=", 1));
    }
    if let Some(user) = &job.user {
        s.push_str(&format!("User={}\n", unit_value(user)));
    }
    s.push_str("SyslogIdentifier=bwguard\n");
    s.push_str("Nice=10\n");
    s.push_str("IOSchedulingClass=idle\n");
    s.push_str("UMask=0077\n");
    s.push_str("\n# Sandbox: everything is read-only but the install directory and the store.\n");
    s.push_str("ProtectSystem=strict\n");
    s.push_str("ReadWritePaths=");
    s.push_str(&writable.iter().map(|p| rw_path_word(p)).collect::<Vec<_>>().join(" "));
    s.push('\n');
    match writable.iter().find(|w| HOME_DIRS.iter().any(|h| Path::new(h).starts_with(w))) {
        None => s.push_str("ProtectHome=read-only\n"),
        Some(w) => s.push_str(&format!(
            "# ProtectHome= is left out: {} must be writable, and ReadWritePaths= cannot reopen it.\n",
            comment_path(w)
        )),
    }
    let in_tmp = [&job.bwguard, &job.bwdata, &job.store]
        .into_iter()
        .find(|p| TMP_DIRS.iter().any(|t| p.starts_with(t)));
    match in_tmp {
        None => s.push_str("PrivateTmp=yes\n"),
        Some(p) => s.push_str(&format!("# PrivateTmp= is left out: it would hide {}.\n", comment_path(p))),
    }
    for line in [
        "NoNewPrivileges=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "SystemCallArchitectures=native",
        "PrivateDevices=yes",
        "ProtectClock=yes",
        "ProtectKernelLogs=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "MemoryDenyWriteExecute=yes",
        "# CAP_SYS_PTRACE lets bwguard see which processes have the database files open.",
    ] {
        s.push_str(line);
        s.push('\n');
    }
    if job.pause_db {
        s.push_str("# CAP_SETUID and CAP_SETGID let it run Docker's client as the install's owner.\n");
        s.push_str(
            "CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_SYS_PTRACE \
             CAP_SETUID CAP_SETGID\n",
        );
    } else {
        s.push_str("CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_SYS_PTRACE\n");
    }
    s
}

/// The systemd timer `bwguard-backup.timer` that starts the service on the calendar.
pub fn render_timer(job: &Job) -> String {
    let mut s = unit_header("bwguard-backup.timer");
    s.push_str("[Unit]\n");
    s.push_str("Description=bwguard scheduled backup of Bitwarden (timer)\n");
    if let Some(doc) = &job.documentation {
        s.push_str(&format!("Documentation={}\n", unit_value(doc)));
    }
    s.push_str("\n[Timer]\n");
    s.push_str(&format!("OnCalendar={}\n", unit_value(&job.calendar)));
    s.push_str("Persistent=true\n");
    s.push_str(&format!("RandomizedDelaySec={}\n", unit_value(&job.randomized_delay)));
    s.push_str("\n[Install]\n");
    s.push_str("WantedBy=timers.target\n");
    s
}

/// A line for `/etc/cron.d` (`with_user_field`: the job's user, or root) or
/// for a user's crontab (without), ending in a newline as cron requires.
/// The calendar must be one of the simple forms `hourly`, `daily`, `weekly`,
/// `monthly`, or `*-*-* HH:MM[:00]` (daily at a time); anything else is an
/// error saying that cron cannot express it and to use the systemd timer.
///
/// # Errors
///
/// A calendar that cron cannot express; a path that is not UTF-8, holds a
/// control character or `\%`; a user name that is empty or holds whitespace.
pub fn render_cron(job: &Job, with_user_field: bool) -> Result<String, String> {
    let mut line = cron_fields(&job.calendar)?;
    if with_user_field {
        let user = job.user.as_deref().unwrap_or("root");
        if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("user {user:?} cannot stand in a cron line"));
        }
        line.push(' ');
        line.push_str(user);
    }
    for word in command(job) {
        line.push(' ');
        line.push_str(&cron_word(word)?);
    }
    if job.pause_db {
        // As the unit's ExecStopPost=: whatever became of the backup, the
        // database container comes back.
        line.push_str(" ;");
        for word in resume_command(job) {
            line.push(' ');
            line.push_str(&cron_word(word)?);
        }
    }
    line.push('\n');
    Ok(line)
}

/// Validates an `OnCalendar=` expression cheaply: not empty, at most 256
/// characters, printable ASCII only (so no newline), and neither `%` nor `\`,
/// which systemd would take for a specifier or an escape and which no
/// calendar uses. The authoritative check is `systemd-analyze calendar EXPR`.
///
/// # Errors
///
/// A message naming the expression and what is wrong with it.
pub fn check_calendar(expr: &str) -> Result<(), String> {
    let hint = "check it with `systemd-analyze calendar`";
    if expr.trim().is_empty() {
        return Err("the calendar expression is empty (e.g. `daily` or `*-*-* 03:30`)".into());
    }
    if expr.len() > 256 {
        return Err(format!("the calendar expression is longer than 256 characters; {hint}"));
    }
    if let Some(c) = expr.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(format!("calendar {expr:?}: character {c:?} is not allowed; {hint}"));
    }
    if let Some(c) = expr.chars().find(|c| matches!(c, '%' | '\\')) {
        return Err(format!("calendar {expr:?}: {c:?} is not part of a calendar expression; {hint}"));
    }
    Ok(())
}

/// The command line of a scheduled run, one OS string per word.
fn command(job: &Job) -> Vec<&OsStr> {
    let mut words = vec![
        job.bwguard.as_os_str(),
        OsStr::new("--bwdata"),
        job.bwdata.as_os_str(),
        OsStr::new("--store"),
        job.store.as_os_str(),
    ];
    words.extend(BACKUP_ARGS.iter().map(OsStr::new));
    if job.live {
        words.push(OsStr::new("--live"));
    }
    if job.pause_db {
        words.push(OsStr::new("--pause-db"));
    }
    if let Some(remote) = &job.push {
        words.push(OsStr::new("--push"));
        words.push(OsStr::new(remote));
    }
    words.extend(job.retention.iter().map(OsStr::new));
    words
}

/// `bwguard --bwdata DIR --store DIR --quiet resume-db`: the unit's
/// `ExecStopPost=`.
fn resume_command(job: &Job) -> Vec<&OsStr> {
    vec![
        job.bwguard.as_os_str(),
        OsStr::new("--bwdata"),
        job.bwdata.as_os_str(),
        OsStr::new("--store"),
        job.store.as_os_str(),
        OsStr::new("--quiet"),
        OsStr::new("resume-db"),
    ]
}

/// The install directory: the data directory's parent (itself if it has none).
fn install_dir(bwdata: &Path) -> &Path {
    bwdata.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(bwdata)
}

/// Bytes that a word may hold without quotes, in a unit file and in a shell.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/._-+,:@=".contains(&b)
}

/// The `ExecStart=` line (with a comment before it when needed) for a
/// command line. systemd refuses an executable whose path holds a quote, a
/// backslash or a control character; such a binary is started through
/// `/bin/sh -c 'exec "$0" "$@"'`, which passes every argument through as is.
fn exec_start(words: &[&OsStr]) -> String {
    let Some((exe, args)) = words.split_first() else { return String::new() };
    let mut line = String::new();
    let args = args.iter().map(|w| exec_word(w, true));
    let words: Vec<String> = if exe.as_bytes().iter().any(|b| b"\"'\\\x7f".contains(b) || *b < b' ') {
        line.push_str(
            "# systemd cannot start a binary whose path holds quotes or backslashes: /bin/sh does.\n",
        );
        let shell = ["/bin/sh", "-c", r#"exec "$0" "$@""#].map(|w| exec_word(OsStr::new(w), true));
        shell.into_iter().chain([exec_word(exe, true)]).chain(args).collect()
    } else {
        [exec_word(exe, false)].into_iter().chain(args).collect()
    };
    line.push_str("ExecStart=");
    line.push_str(&words.join(" "));
    line.push('\n');
    line
}

/// One `ExecStart=` word, per systemd.service(5) "Command lines": quoted in
/// `"…"` unless plain, with C escapes for `\`, `"` and anything unprintable or
/// not UTF-8, and `%%` for a specifier's `%`. In an argument (`variables`)
/// `$` is written `$$`; in the executable's path systemd expands no variables.
fn exec_word(word: &OsStr, variables: bool) -> String {
    let bytes = word.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(|b| is_plain(*b)) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '%' => out.push_str("%%"),
                '$' if variables => out.push_str("$$"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// One `ReadWritePaths=` word with the `-` prefix. That setting unquotes but
/// knows no C escapes, so a path that is not UTF-8 or holds a control
/// character is replaced by its nearest ancestor that can be written down.
fn rw_path_word(path: &Path) -> String {
    let mut p = path;
    let text = loop {
        match p.to_str() {
            Some(t) if !t.chars().any(char::is_control) => break t,
            _ => match p.parent() {
                Some(parent) => p = parent,
                None => break "/",
            },
        }
    };
    let word = format!("-{text}");
    if word.bytes().all(is_plain) {
        return word;
    }
    format!("\"{}\"", word.replace('%', "%%").replace('\\', "\\\\").replace('"', "\\\""))
}

/// A unit file value that is not a path: kept on its one line, `%` as `%%`.
fn unit_value(value: &str) -> String {
    one_line(value).replace('%', "%%")
}

/// Text kept on its one line of a unit file: control characters and a
/// line-continuing final `\` become `?`.
fn one_line(text: &str) -> String {
    let mut out: String = text.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if out.ends_with('\\') {
        out.pop();
        out.push('?');
    }
    out
}

/// A path for a comment line (comments expand no specifiers).
fn comment_path(p: &Path) -> String {
    one_line(&p.to_string_lossy())
}

/// The five time fields of a cron line for a simple calendar, with systemd's meaning.
fn cron_fields(calendar: &str) -> Result<String, String> {
    let refuse = |why: &str| {
        format!(
            "cron cannot express the calendar {calendar:?}{why}: a cron line takes only hourly, daily, \
             weekly, monthly or `*-*-* HH:MM` (daily at a time); use the systemd timer \
             (`bwguard schedule install`) instead"
        )
    };
    let words: Vec<&str> = calendar.split_whitespace().collect();
    let time = match words.as_slice() {
        [one] => match one.to_ascii_lowercase().as_str() {
            "hourly" => return Ok("0 * * * *".into()),
            "daily" => return Ok("0 0 * * *".into()),
            "weekly" => return Ok("0 0 * * 1".into()),
            "monthly" => return Ok("0 0 1 * *".into()),
            _ => *one,
        },
        ["*-*-*", time] => *time,
        _ => return Err(refuse("")),
    };
    let parts: Vec<&str> = time.split(':').collect();
    let number = |s: &str, max: u32| -> Option<u32> {
        if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|n| *n <= max)
    };
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (number(h, 23), number(m, 59), Some(0)),
        [h, m, s] => (number(h, 23), number(m, 59), number(s, 59)),
        _ => return Err(refuse("")),
    };
    match (h, m, sec) {
        (Some(h), Some(m), Some(0)) => Ok(format!("{m} {h} * * *")),
        (Some(_), Some(_), Some(_)) => Err(refuse(" (cron has no seconds)")),
        _ => Err(refuse("")),
    }
}

/// One word of a cron command: single-quoted for `/bin/sh` unless plain,
/// with cron's `%` (which would end the command) escaped as `\%`.
fn cron_word(word: &OsStr) -> Result<String, String> {
    let Some(text) = word.to_str() else {
        return Err(format!(
            "{} is not UTF-8 and cannot stand in a cron line; use the systemd timer",
            word.display()
        ));
    };
    if text.chars().any(char::is_control) || text.contains("\\%") {
        return Err(format!("{text:?} cannot stand in a cron line; use the systemd timer"));
    }
    let quoted = if text.bytes().all(is_plain) && !text.is_empty() {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    };
    Ok(quoted.replace('%', r"\%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The job the golden files are rendered from.
    fn golden_job() -> Job {
        Job {
            bwguard: "/usr/local/bin/bwguard".into(),
            bwdata: "/opt/bitwarden/bwdata".into(),
            store: "/var/backups/bwguard".into(),
            calendar: "daily".into(),
            randomized_delay: "15min".into(),
            live: false,
            push: None,
            user: None,
            pause_db: false,
            documentation: Some("man:bwguard(1)".into()),
            retention: Vec::new(),
        }
    }

    /// Compares with a golden file; `BWGUARD_BLESS=1` rewrites it instead.
    fn golden(name: &str, expected: &str, actual: &str) {
        if std::env::var_os("BWGUARD_BLESS").is_some() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
            std::fs::write(&path, actual).unwrap();
            return;
        }
        assert!(
            expected == actual,
            "tests/golden/{name} differs (BWGUARD_BLESS=1 cargo test rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}"
        );
    }

    #[test]
    fn service_matches_golden() {
        golden(
            "bwguard-backup.service",
            include_str!("../../tests/golden/bwguard-backup.service"),
            &render_service(&golden_job()),
        );
    }

    #[test]
    fn timer_matches_golden() {
        golden(
            "bwguard-backup.timer",
            include_str!("../../tests/golden/bwguard-backup.timer"),
            &render_timer(&golden_job()),
        );
    }

    #[test]
    fn cron_lines_match_golden() {
        let job = golden_job();
        golden(
            "cron.d.line",
            include_str!("../../tests/golden/cron.d.line"),
            &render_cron(&job, true).unwrap(),
        );
        golden(
            "crontab.line",
            include_str!("../../tests/golden/crontab.line"),
            &render_cron(&job, false).unwrap(),
        );
    }

    fn line<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.lines().find_map(|l| l.strip_prefix(key))
    }

    #[test]
    fn paths_with_spaces_and_specials_are_quoted_for_systemd() {
        let job = Job {
            bwguard: "/opt/my tools/bwguard".into(),
            bwdata: "/srv/bit warden/bwdata".into(),
            store: "/srv/100% \"safe\" $HOME\\x".into(),
            ..golden_job()
        };
        let unit = render_service(&job);
        assert_eq!(
            line(&unit, "ExecStart=").unwrap(),
            r#""/opt/my tools/bwguard" --bwdata "/srv/bit warden/bwdata" --store "/srv/100%% \"safe\" $$HOME\\x" backup --scheduled --prune --quiet --no-progress"#
        );
        assert_eq!(
            line(&unit, "ReadWritePaths=").unwrap(),
            r#""-/srv/bit warden" "-/srv/100%% \"safe\" $HOME\\x""#
        );
    }

    #[test]
    fn a_binary_path_systemd_refuses_is_started_through_sh() {
        let job = Job { bwguard: "/opt/it's \"odd\"/bwguard".into(), ..golden_job() };
        let unit = render_service(&job);
        assert_eq!(
            line(&unit, "ExecStart=").unwrap(),
            r#"/bin/sh -c "exec \"$$0\" \"$$@\"" "/opt/it's \"odd\"/bwguard" --bwdata /opt/bitwarden/bwdata --store /var/backups/bwguard backup --scheduled --prune --quiet --no-progress"#
        );
        assert!(unit.contains("# systemd cannot start a binary whose path holds quotes"));
        // '$' stays single in the executable's own path: systemd expands no variables there.
        let job = Job { bwguard: "/opt/$x/bwguard".into(), ..golden_job() };
        assert!(render_service(&job).contains("\nExecStart=\"/opt/$x/bwguard\" --bwdata"));
    }

    #[test]
    fn unprintable_and_non_utf8_paths_are_escaped() {
        use std::os::unix::ffi::OsStringExt;
        let store = std::ffi::OsString::from_vec(b"/srv/st\xffore\n/x".to_vec());
        let job = Job { store: store.into(), ..golden_job() };
        let unit = render_service(&job);
        assert!(unit.contains(r#"--store "/srv/st\xffore\n/x" backup"#), "{unit}");
        // ReadWritePaths= has no escapes: the nearest ancestor that it can name.
        assert_eq!(line(&unit, "ReadWritePaths=").unwrap(), "-/opt/bitwarden -/srv");
        assert_eq!(unit.lines().filter(|l| l.starts_with("ExecStart=")).count(), 1);
        assert!(render_cron(&job, true).is_err());
    }

    #[test]
    fn live_and_user_are_passed_on() {
        let job = Job { live: true, user: Some("backup".into()), ..golden_job() };
        let unit = render_service(&job);
        assert!(
            line(&unit, "ExecStart=")
                .unwrap()
                .ends_with(" backup --scheduled --prune --quiet --no-progress --live")
        );
        assert_eq!(line(&unit, "User=").unwrap(), "backup");
        let cron = render_cron(&job, true).unwrap();
        assert!(cron.starts_with("0 0 * * * backup /usr/local/bin/bwguard "), "{cron}");
        assert!(cron.ends_with(" --no-progress --live\n"), "{cron}");
        assert!(render_cron(&job, false).unwrap().starts_with("0 0 * * * /usr/local/bin/bwguard "));
        assert!(!render_service(&golden_job()).contains("User="));
    }

    #[test]
    fn a_paused_backup_is_followed_by_resume_db_whatever_became_of_it() {
        let paused = Job { pause_db: true, ..golden_job() };
        let unit = render_service(&paused);
        assert!(line(&unit, "ExecStart=").unwrap().ends_with(" --no-progress --pause-db"), "{unit}");
        assert_eq!(
            line(&unit, "ExecStopPost=").unwrap(),
            "/usr/local/bin/bwguard --bwdata /opt/bitwarden/bwdata --store /var/backups/bwguard --quiet resume-db"
        );
        assert!(line(&unit, "CapabilityBoundingSet=").unwrap().ends_with(" CAP_SETUID CAP_SETGID"));
        let cron = render_cron(&paused, true).unwrap();
        assert!(cron.ends_with(" --pause-db ; /usr/local/bin/bwguard --bwdata /opt/bitwarden/bwdata --store /var/backups/bwguard --quiet resume-db\n"), "{cron}");
        assert!(line(&render_service(&golden_job()), "ExecStopPost=").is_none());
        assert!(!render_cron(&golden_job(), true).unwrap().contains("resume-db"));
    }

    #[test]
    fn push_is_passed_on_after_the_backup_flags() {
        let job = Job { push: Some("off site".into()), ..golden_job() };
        let unit = render_service(&job);
        let exec = line(&unit, "ExecStart=").unwrap();
        assert!(exec.ends_with(r#" --no-progress --push "off site""#), "{exec}");
        let cron = render_cron(&job, true).unwrap();
        assert!(cron.ends_with(" --no-progress --push 'off site'\n"), "{cron}");
    }

    #[test]
    fn store_inside_the_install_is_listed_once() {
        let job = Job { store: "/opt/bitwarden/bwguard-snapshots".into(), ..golden_job() };
        assert_eq!(line(&render_service(&job), "ReadWritePaths=").unwrap(), "-/opt/bitwarden");
    }

    #[test]
    fn protect_home_stays_below_home_and_goes_for_home_itself() {
        let below = Job { bwdata: "/home/bw/install/bwdata".into(), ..golden_job() };
        let unit = render_service(&below);
        assert_eq!(line(&unit, "ProtectHome=").unwrap(), "read-only");
        assert_eq!(line(&unit, "ReadWritePaths=").unwrap(), "-/home/bw/install -/var/backups/bwguard");

        for (bwdata, store) in
            [("/root/bwdata", "/var/b"), ("/opt/bitwarden/bwdata", "/home"), ("/bwdata", "/s")]
        {
            let job = Job { bwdata: bwdata.into(), store: store.into(), ..golden_job() };
            let unit = render_service(&job);
            assert!(line(&unit, "ProtectHome=").is_none(), "{unit}");
            assert!(unit.contains("# ProtectHome= is left out: "), "{unit}");
        }
    }

    #[test]
    fn private_tmp_goes_when_something_lives_in_tmp() {
        assert_eq!(line(&render_service(&golden_job()), "PrivateTmp=").unwrap(), "yes");
        for job in [
            Job { bwguard: "/tmp/x/bwguard".into(), ..golden_job() },
            Job { bwdata: "/var/tmp/bw/bwdata".into(), ..golden_job() },
            Job { store: "/tmp/store".into(), ..golden_job() },
        ] {
            let unit = render_service(&job);
            assert!(line(&unit, "PrivateTmp=").is_none(), "{unit}");
            assert!(unit.contains("# PrivateTmp= is left out: it would hide /"), "{unit}");
        }
        // A name that merely begins like /tmp is not under it.
        let job = Job { store: "/tmpfiles/store".into(), ..golden_job() };
        assert_eq!(line(&render_service(&job), "PrivateTmp=").unwrap(), "yes");
    }

    #[test]
    fn timer_values_cannot_add_lines() {
        let job = Job {
            calendar: "daily\nExecStart=/bin/evil".into(),
            randomized_delay: "1%n\\".into(),
            ..golden_job()
        };
        let timer = render_timer(&job);
        assert_eq!(line(&timer, "OnCalendar=").unwrap(), "daily?ExecStart=/bin/evil");
        assert_eq!(line(&timer, "RandomizedDelaySec=").unwrap(), "1%%n?");
        assert_eq!(timer.lines().count(), render_timer(&golden_job()).lines().count());
    }

    #[test]
    fn calendar_is_rendered_as_given() {
        let job =
            Job { calendar: "Mon..Fri *-*-* 03:30".into(), randomized_delay: "1h".into(), ..golden_job() };
        let timer = render_timer(&job);
        assert_eq!(line(&timer, "OnCalendar=").unwrap(), "Mon..Fri *-*-* 03:30");
        assert_eq!(line(&timer, "RandomizedDelaySec=").unwrap(), "1h");
    }

    #[test]
    fn cron_forms() {
        let cron = |calendar: &str| render_cron(&Job { calendar: calendar.into(), ..golden_job() }, false);
        let when =
            |calendar: &str| cron(calendar).map(|l| l.split(" /").next().unwrap_or_default().to_owned());
        assert_eq!(when("hourly").unwrap(), "0 * * * *");
        assert_eq!(when("daily").unwrap(), "0 0 * * *");
        assert_eq!(when("Daily").unwrap(), "0 0 * * *");
        assert_eq!(when("weekly").unwrap(), "0 0 * * 1", "systemd's weekly is Monday");
        assert_eq!(when("monthly").unwrap(), "0 0 1 * *");
        assert_eq!(when("*-*-* 03:30").unwrap(), "30 3 * * *");
        assert_eq!(when("*-*-* 03:30:00").unwrap(), "30 3 * * *");
        assert_eq!(when("*-*-*  23:59 ").unwrap(), "59 23 * * *");
        assert_eq!(when("*-*-* 0:05").unwrap(), "5 0 * * *");
        assert_eq!(when("04:15").unwrap(), "15 4 * * *");
    }

    #[test]
    fn cron_refusals() {
        for calendar in [
            "*-*-* 03:30:15",
            "*-*-* 24:00",
            "*-*-* 03:60",
            "*-*-* 3",
            "*-*-* 03:30:00:00",
            "Mon *-*-* 03:30",
            "*-*-01 03:30",
            "Mon..Fri 03:30",
            "minutely",
            "quarterly",
            "*:0/15",
            "daily UTC",
            "",
        ] {
            let err = render_cron(&Job { calendar: calendar.into(), ..golden_job() }, true).unwrap_err();
            assert!(err.contains("cron cannot express"), "{calendar:?}: {err}");
            assert!(err.contains("systemd timer"), "{calendar:?}: {err}");
        }
        let err = render_cron(&Job { calendar: "*-*-* 03:30:15".into(), ..golden_job() }, false).unwrap_err();
        assert!(err.contains("no seconds"), "{err}");
        let bad_user = Job { user: Some("a b".into()), ..golden_job() };
        assert!(render_cron(&bad_user, true).is_err());
        assert!(render_cron(&bad_user, false).is_ok(), "a user crontab has no user field");
    }

    #[test]
    fn cron_quotes_for_the_shell_and_escapes_percent() {
        let job = Job {
            bwguard: "/opt/my tools/bwguard".into(),
            bwdata: "/srv/it's/bwdata".into(),
            store: "/srv/100%".into(),
            ..golden_job()
        };
        assert_eq!(
            render_cron(&job, false).unwrap(),
            "0 0 * * * '/opt/my tools/bwguard' --bwdata '/srv/it'\\''s/bwdata' --store '/srv/100\\%' \
             backup --scheduled --prune --quiet --no-progress\n"
        );
        let job = Job { store: "/srv/a\\%b".into(), ..golden_job() };
        assert!(render_cron(&job, false).is_err());
    }

    #[test]
    fn calendar_checks() {
        for ok in ["daily", "*-*-* 03:30", "Mon..Fri *-*-* 02:00 Europe/Berlin", "*:0/15"] {
            assert_eq!(check_calendar(ok), Ok(()), "{ok}");
        }
        for bad in ["", "   ", "daily\n", "daily\nExecStart=x", "a\tb", "%H", "a\\", "täglich"] {
            assert!(check_calendar(bad).is_err(), "{bad:?}");
        }
        assert!(check_calendar(&"x".repeat(257)).is_err());
    }
}
