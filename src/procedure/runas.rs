//! Who runs Bitwarden's script and Docker's client: the install's owner,
//! with that user's supplementary groups (Docker access usually comes from
//! the `docker` group), HOME, USER and LOGNAME, as `su - OWNER` would give.
//! When bwguard is not root it runs them as itself.

use std::path::Path;
use std::process::Command;

use crate::files;

/// The identity commands run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The uid (the install's owner, or bwguard's own).
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// The user's name, when the user database knows the uid.
    pub name: Option<String>,
    /// The user's home directory, from the user database.
    pub home: Option<String>,
    /// Whether bwguard switches to this user (it is root and the owner is not).
    pub switch: bool,
}

impl RunAs {
    /// The owner of `dir` when bwguard runs as root, else bwguard itself.
    pub fn owner_of(dir: &Path) -> std::io::Result<RunAs> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir)?;
        let (uid, gid, switch) = if files::is_root() && meta.uid() != 0 {
            (meta.uid(), meta.gid(), true)
        } else {
            let uid = rustix::process::geteuid().as_raw();
            (uid, rustix::process::getegid().as_raw(), false)
        };
        let entry = passwd_entry(uid);
        Ok(RunAs {
            uid,
            gid: entry.as_ref().map_or(gid, |e| e.gid),
            name: entry.as_ref().map(|e| e.name.clone()),
            home: entry.map(|e| e.home),
            switch,
        })
    }

    /// bwguard's own user.
    pub fn me() -> RunAs {
        let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        let entry = passwd_entry(uid);
        RunAs {
            uid,
            gid: entry.as_ref().map_or(gid, |e| e.gid),
            name: entry.as_ref().map(|e| e.name.clone()),
            home: entry.map(|e| e.home),
            switch: false,
        }
    }

    /// How the user is named in messages: `bitwarden (uid 1001)`.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }

    /// A command running `program` as this user: through `setpriv` with the
    /// user's groups when bwguard switches to it (the groups are cleared for
    /// a uid the user database does not know), with HOME, USER and LOGNAME
    /// set from the user database.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = if self.switch {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.uid)).arg(format!("--regid={}", self.gid));
            c.arg(if self.name.is_some() { "--init-groups" } else { "--clear-groups" });
            c.arg("--").arg(program);
            c
        } else {
            Command::new(program)
        };
        if let Some(name) = &self.name {
            c.env("USER", name).env("LOGNAME", name);
        }
        if let Some(home) = &self.home {
            c.env("HOME", home);
        }
        c
    }
}

/// A user database entry.
#[derive(Debug, Clone)]
struct Passwd {
    name: String,
    gid: u32,
    home: String,
}

/// The user database entry of `uid`, through NSS (`getent`), so LDAP and
/// other sources are asked as well as /etc/passwd.
fn passwd_entry(uid: u32) -> Option<Passwd> {
    let out = Command::new("getent").arg("passwd").arg(uid.to_string()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_passwd(&String::from_utf8_lossy(&out.stdout))
}

/// `name:x:uid:gid:gecos:home:shell` into its name, gid and home.
fn parse_passwd(line: &str) -> Option<Passwd> {
    let f: Vec<&str> = line.trim_end().split(':').collect();
    if f.len() < 7 {
        return None;
    }
    Some(Passwd { name: f[0].to_string(), gid: f[3].parse().ok()?, home: f[5].to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_give_name_gid_and_home() {
        let p = parse_passwd("bitwarden:x:1001:1001:Bitwarden:/home/bitwarden:/bin/bash\n").unwrap();
        assert_eq!((p.name.as_str(), p.gid, p.home.as_str()), ("bitwarden", 1001, "/home/bitwarden"));
        assert!(parse_passwd("broken:x:1").is_none());
    }

    #[test]
    fn root_knows_itself() {
        let me = passwd_entry(rustix::process::geteuid().as_raw());
        assert!(me.is_some_and(|p| !p.name.is_empty()));
    }
}
