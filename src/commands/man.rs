//! `man`: the man page, bwguard(1), as roff: every command and flag read
//! from the clap definitions, then what a server's admin looks up without
//! the repository at hand: exit codes and error kinds, environment, files,
//! examples, restoring by hand. One page: it names no other bwguard page.

use std::fmt::Write as _;

use clap::CommandFactory;

use super::Run;
use crate::cli::{Cli, ManArgs};
use crate::context::Ctx;
use crate::error::{Exit, Result, all_kinds};
use crate::report::ManReport;

impl Run for ManArgs {
    type Report = ManReport;

    fn run(&self, ctx: &mut Ctx) -> Result<ManReport> {
        let report = ManReport { man: page() };
        ctx.out.show(&report);
        Ok(report)
    }
}

/// The whole page.
pub fn page() -> String {
    let cli = Cli::command();
    let mut s = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(s, ".TH BWGUARD 1 \"\" \"bwguard {version}\" \"User Commands\"");
    // Names of kinds and flags are never hyphenated across lines.
    s.push_str(".nh\n");
    s.push_str(".SH NAME\nbwguard \\- safe configuration changes, snapshots and rollback for self\\-hosted Bitwarden\n");
    s.push_str(".SH SYNOPSIS\n.B bwguard\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]\n");
    s.push_str(".SH DESCRIPTION\n");
    s.push_str(DESCRIPTION);
    s.push_str(".SH GLOBAL OPTIONS\nAccepted before or after the command name.\n");
    for arg in cli.get_arguments().filter(|a| !a.is_hide_set()) {
        option(&mut s, arg);
    }
    s.push_str(
        ".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nPrint help (of a command: `bwguard COMMAND \\-\\-help`).\n",
    );
    s.push_str(".TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\nPrint the version.\n");
    s.push_str(".SH COMMANDS\n");
    for sub in cli.get_subcommands() {
        command(&mut s, "bwguard", sub);
    }
    exit_status(&mut s);
    s.push_str(REFERENCE);
    s
}

/// One command's subsection: synopsis, description, options; then its own
/// subcommands.
fn command(s: &mut String, parent: &str, cmd: &clap::Command) {
    let name = format!("{parent} {}", cmd.get_name());
    if cmd.has_subcommands() {
        let _ = writeln!(s, ".SS \"{}\"", esc(&format!("{name} COMMAND")));
        s.push_str(&paragraphs(&about(cmd)));
        for sub in cmd.get_subcommands() {
            command(s, &name, sub);
        }
        return;
    }
    let mut synopsis = esc(&name);
    if cmd.get_arguments().any(|a| !a.is_positional() && !a.is_hide_set()) {
        synopsis.push_str(" [\\fIOPTIONS\\fR]");
    }
    for arg in cmd.get_positionals() {
        let value = value_name(arg);
        let value = if arg.is_required_set() { value } else { format!("[{value}]") };
        let _ = write!(synopsis, " \\fI{}\\fR", esc(&value));
    }
    let _ = writeln!(s, ".SS \"{}\"", esc(&name));
    let _ = writeln!(s, ".B {synopsis}");
    s.push_str(".PP\n");
    s.push_str(&paragraphs(&about(cmd)));
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        option(s, arg);
    }
}

/// A command's description: its long about, else its about.
fn about(cmd: &clap::Command) -> String {
    cmd.get_long_about().or(cmd.get_about()).map(|a| a.to_string()).unwrap_or_default()
}

/// One option or argument as a tagged paragraph.
fn option(s: &mut String, arg: &clap::Arg) {
    let takes_value = arg.get_action().takes_values();
    let mut tag = String::new();
    if arg.is_positional() {
        let _ = write!(tag, "\\fI{}\\fR", esc(&value_name(arg)));
    } else {
        if let Some(short) = arg.get_short() {
            let _ = write!(tag, "\\fB\\-{short}\\fR, ");
        }
        if let Some(long) = arg.get_long() {
            let _ = write!(tag, "\\fB\\-\\-{}\\fR", esc(long));
        }
        if takes_value {
            let _ = write!(tag, " \\fI{}\\fR", esc(&value_name(arg)));
        }
    }
    let mut help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if takes_value && !possible.is_empty() {
        let _ = write!(help, " [possible values: {}]", possible.join(", "));
    }
    let defaults: Vec<String> =
        arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
    if !defaults.is_empty() && takes_value {
        let _ = write!(help, " [default: {}]", defaults.join(", "));
    }
    if let Some(env) = arg.get_env() {
        let _ = write!(help, " [env: {}]", env.to_string_lossy());
    }
    let _ = writeln!(s, ".TP\n{tag}\n{}", esc(help.trim()));
}

/// The value's name as the help shows it: `--store PATH`, `ID`.
fn value_name(arg: &clap::Arg) -> String {
    match arg.get_value_names() {
        Some(names) if !names.is_empty() => names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" "),
        _ => arg.get_id().as_str().to_ascii_uppercase(),
    }
}

/// EXIT STATUS, with every error kind of `--json` under its code.
fn exit_status(s: &mut String) {
    s.push_str(".SH EXIT STATUS\n");
    s.push_str(
        "With \\fB\\-\\-json\\fR, a failed run prints {\"error\": {\"code\", \"kind\", \"message\", \
         \"hint\"}}; scripts branch on the code and the kind.\n",
    );
    let codes = [
        (Exit::Ok, "success, including \"nothing to do\" (SCIM already enabled, nothing to prune)"),
        (
            Exit::Failed,
            "an operation failed (an I/O error, a full disk, a step of Bitwarden's procedure) or a confirmation was declined; nothing half\\-done is left",
        ),
        (Exit::Usage, "usage error, or a path or snapshot id that names nothing"),
        (Exit::Integrity, "a snapshot does not match its checksums or is malformed: do not restore from it"),
        (Exit::Busy, "another bwguard run holds the store's lock"),
        (
            Exit::Refused,
            "refused for safety before anything was changed; the message says why and the hint what to do",
        ),
    ];
    let kinds = all_kinds();
    for (code, meaning) in codes {
        let _ = writeln!(s, ".TP\n.B {}\n{meaning}.", code as i32);
        let mut of_code: Vec<&str> = kinds.iter().filter(|(_, c)| *c == code).map(|(k, _)| *k).collect();
        of_code.sort_unstable();
        if !of_code.is_empty() {
            let _ = writeln!(s, "Kinds: {}.", esc(&of_code.join(", ")));
        }
    }
}

/// Text as roff paragraphs: blank lines separate them.
fn paragraphs(text: &str) -> String {
    let mut out = String::new();
    for (i, p) in text.split("\n\n").filter(|p| !p.trim().is_empty()).enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        let joined: Vec<&str> = p.lines().map(str::trim).collect();
        out.push_str(&esc(&joined.join(" ")));
        out.push('\n');
    }
    out
}

/// Escapes text for roff: backslashes, hyphens (so they are not broken or
/// turned into dashes), a leading `.` or `'` (a request otherwise), and
/// characters beyond ASCII (as `\[uXXXX]`); a span in backticks, a command
/// or a flag in the help texts, is set in bold.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut bold = false;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        for c in line.chars() {
            match c {
                '\\' => out.push_str("\\e"),
                '-' => out.push_str("\\-"),
                '`' => {
                    out.push_str(if bold { "\\fR" } else { "\\fB" });
                    bold = !bold;
                }
                c if c.is_ascii() => out.push(c),
                c => {
                    let _ = write!(out, "\\[u{:04X}]", c as u32);
                }
            }
        }
    }
    if bold {
        out.push_str("\\fR");
    }
    out
}

/// The description after the one-line summary.
const DESCRIPTION: &str = r#".PP
Before anything changes, bwguard archives and checksums the database files
(\fIbwdata/mssql\fR) and the settings that belong with them, reads the
archive back from the disk to prove it, and only then edits
\fIbwdata/config.yml\fR or runs Bitwarden's own procedure. \fBrollback\fR
puts a snapshot back byte for byte, staged beside the install and swapped
in by rename. The same snapshots serve nightly backups (\fBschedule\fR,
\fBprune\fR), off\-site copies (\fBpush\fR, \fBpull\fR) and a rollback
after a bad upgrade. Every snapshot can be restored by hand with \fBtar\fR
and \fBsha256sum\fR (see RESTORING BY HAND).
.PP
Run it from the install directory (where \fIbitwarden.sh\fR is) or name
the data directory with \fB\-\-bwdata\fR. It runs as root (the nightly
timer, an admin with sudo) or as the install's owner. Bitwarden's own
script and Docker's client run as the install's owner, with that user's
groups. A snapshot refuses while SQL Server has the database files open,
unless \fB\-\-pause\-db\fR stops only the database container for it or
\fB\-\-live\fR accepts a crash\-consistent copy.
"#;

/// ENVIRONMENT, FILES, EXAMPLES, RESTORING BY HAND, SEE ALSO.
const REFERENCE: &str = r#".SH ENVIRONMENT
.TP
.B BWGUARD_BWDATA
The data directory, as \fB\-\-bwdata\fR.
.TP
.B BWGUARD_STORE
The store, as \fB\-\-store\fR.
.TP
.B NO_COLOR
When set, no colour, even on a terminal.
.TP
.B DOCKER_HOST
The Docker daemon bwguard's Docker client and Bitwarden's script reach
(default \fI/var/run/docker.sock\fR).
.TP
.BR AWS_ACCESS_KEY_ID ", " AWS_SECRET_ACCESS_KEY ", " AWS_SESSION_TOKEN
S3 credentials for \fBremote add\fR, \fBpush\fR and \fBpull\fR, when no
\fB\-\-credentials\-file\fR is given.
.TP
.BR AWS_SHARED_CREDENTIALS_FILE ", " AWS_PROFILE
The shared credentials file (default \fI~/.aws/credentials\fR) and its
profile.
.SH FILES
.TP
.I bwguard\-snapshots/
The default store, beside the data directory. Run as root on an install
that another user owns, the default is \fI/var/lib/bwguard/stores/NAME/\fR
instead (root's, mode 0700): the owner must not be able to change what root
reads and restores. The store, every directory above it and every file in
it must belong to bwguard's user (or, above it, to root) and be writable by
nobody else, or bwguard refuses (exit 5, untrusted\-store).
.TP
.I STORE/ID/
One snapshot, named by its UTC time (\fI20261128T191300Z\fR):
\fIdata.tar.gz\fR (the archive, paths relative to the install directory),
\fISHA256SUMS\fR (every file, \fBsha256sum \-c\fR format),
\fIdata.tar.gz.sha256\fR (the archive's own checksum) and
\fImanifest.json\fR (written last: a directory without it is the leftover
of an interrupted run, removed by the next writing run). An install that
keeps its database in a Docker volume has the volume's files under
\fIdocker\-volume/mssql_data/\fR in the archive.
.TP
.I STORE/lock
The lock every writing run holds; a second run exits 4 naming the holder.
.TP
.I STORE/retention.json
The retention policy \fBschedule install\fR saved, used by
\fBbackup \-\-prune\fR and \fBprune\fR without \fB\-\-keep\-*\fR flags.
.TP
.I STORE/rollback\-journal.json
A rollback in progress; the next writing run finishes or undoes it.
.TP
.I STORE/database\-paused.json
The database container that a \fBbackup \-\-pause\-db\fR stopped; the next
run (or \fBresume\-db\fR) starts it again.
.TP
.I STORE/ID/apply\-journal.json
The steps of an \fBenable\-scim \-\-apply\fR or \fBupgrade\fR run (\fBbwguard log\fR).
.TP
.IR STORE/remotes.json ", " STORE/signing.key
The remotes of \fBremote add\fR, and this host's ed25519 key that signs
every off\-site copy (keep it private; \fBremote list\fR prints its public
half).
.TP
.IR /etc/systemd/system/bwguard\-backup.service ", " bwguard\-backup.timer
The nightly job \fBschedule install\fR writes (\fB\-\-unit\-dir\fR names
another directory); where there is no systemd, \fBschedule print \-\-cron\fR
prints a line for \fI/etc/cron.d/\fR instead.
.TP
.I /usr/share/doc/bwguard/
The user guide, scheduling, off\-site copies, safety rules, the JSON
reference and the changelog, when bwguard was installed from its .deb.
.SH EXAMPLES
Turn on SCIM, the way Bitwarden documents it, checked and journaled; on a
failing step bwguard rolls back and starts Bitwarden again:
.PP
.nf
.RS 4
cd /opt/bitwarden
sudo bwguard enable\-scim \-\-apply \-\-rollback\-on\-failure
.RE
.fi
.PP
Or step by step: only the edit of config.yml, after a snapshot of the stopped
install, and Bitwarden's procedure by hand:
.PP
.nf
.RS 4
\&./bitwarden.sh stop
bwguard enable\-scim
\&./bitwarden.sh rebuild && ./bitwarden.sh start
.RE
.fi
.PP
Nightly backups at 03:00 with the database paused for seconds, a month of
history, copied off the host, and a monitoring check:
.PP
.nf
.RS 4
sudo bwguard schedule install \-\-calendar '*\-*\-* 03:00' \e
    \-\-keep\-daily 7 \-\-keep\-weekly 4 \-\-keep\-monthly 6 \-\-push offsite
bwguard status \-\-max\-age 26h
.RE
.fi
.PP
Upgrade, with the pre\-upgrade snapshot to go back to:
.PP
.nf
.RS 4
sudo bwguard upgrade \-\-rollback\-on\-failure
sudo bwguard rollback ID    # later, by hand, with Bitwarden stopped
.RE
.fi
.SH RESTORING BY HAND
Without bwguard, with the system's tools only:
.PP
.nf
.RS 4
cd /opt/bitwarden/bwguard\-snapshots/20261128T191300Z
sha256sum \-c data.tar.gz.sha256
cd /opt/bitwarden
\&./bitwarden.sh stop
mv bwdata/mssql bwdata/mssql.broken
sudo tar \-\-numeric\-owner \-xpzf bwguard\-snapshots/20261128T191300Z/data.tar.gz
sha256sum \-c bwguard\-snapshots/20261128T191300Z/SHA256SUMS
\&./bitwarden.sh start
.RE
.fi
.PP
\fBtar \-xpzf\fR over an existing tree merges into it: move aside the parts
you restore first, so that files that did not exist at snapshot time do not
linger. Run it as root with \fB\-\-numeric\-owner\fR so owners come back as
recorded. A snapshot of a Docker\-volume install also holds
\fIdocker\-volume/mssql_data/\fR: copy it into the volume's directory
(\fBdocker volume inspect \-\-format '{{.Mountpoint}}' docker_mssql_data\fR)
with Bitwarden stopped. Off\-site copies decrypt with \fBage \-d\fR into the
same four files.
.SH SEE ALSO
.BR tar (1),
.BR sha256sum (1),
.BR systemctl (1);
the documents in \fI/usr/share/doc/bwguard/\fR.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_flag_is_on_the_page() {
        let man = page();
        fn walk(cmd: &clap::Command, name: &str, man: &str) {
            for sub in cmd.get_subcommands() {
                let full = format!("{name} {}", sub.get_name());
                assert!(man.contains(&format!(".SS \"{}", esc(&full))), "no section for {full}");
                for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                    if let Some(long) = arg.get_long() {
                        assert!(man.contains(&format!("\\fB\\-\\-{}\\fR", esc(long))), "{full}: no --{long}");
                    }
                }
                walk(sub, &full, man);
            }
        }
        walk(&Cli::command(), "bwguard", &man);
        for section in ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "RESTORING BY HAND", "SEE ALSO"] {
            assert!(man.contains(&format!(".SH {section}\n")), "no {section}");
        }
        // Every error kind is under its code, and no other bwguard page is named.
        for (kind, _) in all_kinds() {
            assert!(man.contains(&esc(kind)), "kind {kind} is missing");
        }
        assert!(!man.contains("bwguard\\-backup(1)") && !man.contains("(1)\\fR"), "names another page");
    }

    #[test]
    fn roff_requests_and_backslashes_in_text_are_escaped() {
        assert_eq!(
            esc(".hidden\n'quote\nback\\slash --flag"),
            "\\&.hidden\n\\&'quote\nback\\eslash \\-\\-flag"
        );
        assert_eq!(esc("run `bwguard list` \u{2026}"), "run \\fBbwguard list\\fR \\[u2026]");
    }
}
