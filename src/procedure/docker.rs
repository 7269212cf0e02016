//! What Docker says, asked with its own client as the user who runs
//! bitwarden.sh: whether that user reaches the daemon and has a usable
//! compose, whether the database container stopped, and whether the
//! containers of docker-compose.yml run (none restarting, health checks
//! passing) after a start. bitwarden.sh hides all of these: `stop` exits 0
//! having stopped nothing when the daemon is unreachable, and `start` says
//! nothing of a container that crash-loops.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::runas::RunAs;
use crate::error::{Error, Refusal, Result};
use crate::install::Install;
use crate::install::facts;

/// The database container's name, fixed by Bitwarden's compose file.
pub const DATABASE: &str = "bitwarden-mssql";

/// A compose that bitwarden.sh can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    /// `docker compose` (v2) rather than `docker-compose` (v1).
    pub plugin: bool,
    /// Its version.
    pub version: (u32, u32, u32),
}

impl Compose {
    /// Compose v2.0 to v2.14 fail `ps -q SERVICE` for a service without a
    /// container, so bitwarden.sh's `update` aborts on a stopped install
    /// ("no such service: admin"); fixed in 2.15.
    pub fn fails_update_when_stopped(&self) -> bool {
        self.plugin && self.version >= (2, 0, 0) && self.version < (2, 15, 0)
    }
}

/// The state of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `running`, `restarting`, `exited`, `created`, …
    pub status: String,
    /// How often Docker restarted it.
    pub restarts: u64,
    /// Its health check's status (`healthy`, `starting`, `unhealthy`), if it has one.
    pub health: Option<String>,
}

impl State {
    /// Running, its health check (if any) passing.
    pub fn ok(&self) -> bool {
        self.status == "running" && self.health.as_deref().is_none_or(|h| h == "healthy")
    }
}

/// Docker's client, run as `who`.
pub struct Docker<'a> {
    who: &'a RunAs,
}

impl<'a> Docker<'a> {
    /// The client as `who`.
    pub fn new(who: &'a RunAs) -> Self {
        Docker { who }
    }

    fn run(&self, args: &[&str]) -> std::io::Result<Output> {
        use std::os::unix::process::CommandExt;
        let mut c: Command = self.who.command("docker");
        // Its own process group: a Ctrl-C meant for bwguard must not kill
        // a `docker start` that brings the database back.
        c.args(args).stdin(std::process::Stdio::null()).process_group(0);
        c.output()
    }

    /// Refuses (exit 5) unless the user reaches the daemon and a compose
    /// works for it, naming the fix; returns the compose.
    pub fn preflight(&self) -> Result<Compose> {
        self.reachable()?;
        let who = self.who.describe();
        self.compose().ok_or_else(|| {
            Error::refused(
                Refusal::NoCompose,
                format!("neither `docker compose` nor `docker-compose` works for {who}"),
                "install Docker Compose (`apt-get install docker-compose-plugin`, or docker-compose) and run \
                 the command again; nothing was changed",
            )
        })
    }

    /// Refuses (exit 5) unless the user reaches the daemon, naming the fix.
    pub fn reachable(&self) -> Result<()> {
        let who = self.who.describe();
        let out = self.run(&["version", "--format", "{{.Server.Version}}"]).map_err(|e| {
            Error::refused(
                Refusal::DockerUnreachable,
                format!("cannot run Docker's client `docker` as {who}: {e}"),
                "install Docker (its client `docker` must be on PATH) and run the command again; nothing was changed",
            )
        })?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no answer").trim();
            let hint = if said.to_ascii_lowercase().contains("permission denied") {
                let group = socket_group().unwrap_or_else(|| "docker".into());
                let user = self.who.name.clone().unwrap_or_else(|| self.who.uid.to_string());
                format!(
                    "give {user} access to Docker: `usermod -aG {group} {user}` (its groups are read when a \
                     process starts), then run the command again; nothing was changed"
                )
            } else {
                "start Docker (`systemctl start docker`) and run the command again; nothing was changed"
                    .into()
            };
            return Err(Error::refused(
                Refusal::DockerUnreachable,
                format!("{who} cannot reach the Docker daemon: {said}"),
                hint,
            ));
        }
        Ok(())
    }

    /// The compose bitwarden.sh picks: `docker compose` if it works, else
    /// `docker-compose`.
    pub fn compose(&self) -> Option<Compose> {
        if let Ok(out) = self.run(&["compose", "version"])
            && out.status.success()
        {
            return Some(Compose {
                plugin: true,
                version: version_in(&String::from_utf8_lossy(&out.stdout))?,
            });
        }
        let mut c = self.who.command("docker-compose");
        c.arg("--version").stdin(std::process::Stdio::null());
        let out = c.output().ok().filter(|o| o.status.success())?;
        Some(Compose { plugin: false, version: version_in(&String::from_utf8_lossy(&out.stdout))? })
    }

    /// What `docker ARGS` printed, when it succeeded.
    pub fn query(&self, args: &[&str]) -> Option<String> {
        let out = self.run(args).ok().filter(|o| o.status.success())?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The state of container `name`; `None` when there is no such container.
    pub fn state(&self, name: &str) -> Option<State> {
        let format =
            "{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}";
        let out = self.run(&["inspect", "--format", format, name]).ok().filter(|o| o.status.success())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut f = text.split_whitespace();
        Some(State {
            status: f.next()?.to_string(),
            restarts: f.next()?.parse().ok()?,
            health: f.next().map(str::to_string),
        })
    }

    /// `docker stop --time SECS NAME` (SIGTERM, then SIGKILL after `secs`):
    /// what Docker said when it failed.
    pub fn stop(&self, name: &str, secs: u64) -> std::result::Result<(), String> {
        self.checked(&["stop", "--time", &secs.to_string(), name])
    }

    /// `docker start NAME`: what Docker said when it failed.
    pub fn start(&self, name: &str) -> std::result::Result<(), String> {
        self.checked(&["start", name])
    }

    fn checked(&self, args: &[&str]) -> std::result::Result<(), String> {
        let out = self.run(args).map_err(|e| format!("cannot run `docker {}`: {e}", args.join(" ")))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no answer").trim().to_string();
        Err(format!("`docker {}` failed: {said}", args.join(" ")))
    }

    /// The last line container `name` printed.
    pub fn last_log_line(&self, name: &str) -> Option<String> {
        let out = self.run(&["logs", "--tail", "3", name]).ok()?;
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        text.lines().rfind(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
    }

    /// After a start: waits up to `wait` for every container of the
    /// install's docker-compose.yml to run (health checks passing) and to
    /// stay up without a restart for `settle`; says what it saw.
    pub fn wait_running(
        &self,
        install: &Install,
        wait: Duration,
        settle: Duration,
    ) -> std::result::Result<String, String> {
        let compose = install.data.join("docker/docker-compose.yml");
        let text = crate::files::read_small_text(&compose, crate::files::SMALL_CAP)
            .map_err(|e| format!("{}: {e}", compose.display()))?;
        let containers = facts::compose_containers(&text);
        if containers.is_empty() {
            return Err(format!("{} names no container", compose.display()));
        }
        let t = Instant::now();
        let mut steady_since: Option<(Instant, Vec<u64>)> = None;
        let mut first: Option<Vec<u64>> = None;
        loop {
            let states: Vec<(String, Option<State>)> =
                containers.iter().map(|c| (c.clone(), self.state(c))).collect();
            let all_ok = states.iter().all(|(_, s)| s.as_ref().is_some_and(State::ok));
            let restarts: Vec<u64> =
                states.iter().map(|(_, s)| s.as_ref().map_or(0, |s| s.restarts)).collect();
            // A container Docker restarted three times while we watched is
            // crash-looping: no point waiting for it.
            let first = first.get_or_insert_with(|| restarts.clone());
            if restarts.iter().zip(first.iter()).any(|(now, then)| *now >= then + 3) {
                return Err(self.describe_bad(&states));
            }
            if all_ok {
                match &steady_since {
                    Some((since, before)) if *before == restarts && since.elapsed() >= settle => {
                        return Ok(format!("{} containers run: {}", containers.len(), containers.join(", ")));
                    }
                    Some((_, before)) if *before == restarts => {}
                    _ => steady_since = Some((Instant::now(), restarts)),
                }
            } else {
                steady_since = None;
            }
            if t.elapsed() >= wait {
                return Err(self.describe_bad(&states));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn describe_bad(&self, states: &[(String, Option<State>)]) -> String {
        let bad: Vec<String> = states
            .iter()
            .filter(|(_, s)| !s.as_ref().is_some_and(State::ok) || s.as_ref().is_some_and(|s| s.restarts > 0))
            .map(|(name, s)| match s {
                None => format!("{name} does not exist"),
                Some(s) => {
                    let health = s.health.as_ref().map(|h| format!(", {h}")).unwrap_or_default();
                    let last = self.last_log_line(name).map(|l| format!(": {l}")).unwrap_or_default();
                    format!("{name} is {}{health} after {} restarts{last}", s.status, s.restarts)
                }
            })
            .collect();
        format!("Bitwarden is not running: {}", bad.join("; "))
    }
}

/// The first `X.Y.Z` in a version line (`Docker Compose version v2.14.0`,
/// `docker-compose version 1.29.2, build unknown`).
fn version_in(text: &str) -> Option<(u32, u32, u32)> {
    text.split(|c: char| c.is_whitespace() || c == ',').find_map(|w| {
        let v = facts::parse_version(w)?;
        (w.trim_start_matches('v').contains('.')).then_some(v)
    })
}

/// The group of the Docker socket (DOCKER_HOST's, else /var/run/docker.sock).
fn socket_group() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let host = std::env::var("DOCKER_HOST").ok();
    let path = match host.as_deref().and_then(|h| h.strip_prefix("unix://")) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("/var/run/docker.sock"),
    };
    let gid = std::fs::metadata(path).ok()?.gid();
    let out = Command::new("getent").arg("group").arg(gid.to_string()).output().ok()?;
    String::from_utf8_lossy(&out.stdout).split(':').next().map(str::to_string).filter(|g| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_versions_are_read_from_both_forms() {
        assert_eq!(version_in("Docker Compose version v2.14.0\n"), Some((2, 14, 0)));
        assert_eq!(version_in("docker-compose version 1.29.2, build unknown\n"), Some((1, 29, 2)));
        assert_eq!(version_in("Docker Compose version 2.29.7\n"), Some((2, 29, 7)));
        let c = |plugin, version| Compose { plugin, version };
        assert!(c(true, (2, 14, 0)).fails_update_when_stopped());
        assert!(!c(true, (2, 15, 0)).fails_update_when_stopped());
        assert!(!c(false, (1, 29, 2)).fails_update_when_stopped());
    }
}
