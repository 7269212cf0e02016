//! The test bed on a real Docker daemon: one `dockerd` for the whole run
//! (no bridge, no iptables; its socket owned by root and a group of the
//! bed's own, 0660, as `/var/run/docker.sock` with its `docker` group), one
//! busybox root filesystem imported as every Bitwarden image, a user in
//! that group who owns installs as Bitwarden's guide says, and [`Site`]: a
//! generated install driven by the stand-in scripts of `tests/standin/`
//! (see its README) with every container `network_mode: none`. Nothing
//! leaves the machine.
//!
//! The tests run when `BWGUARD_DOCKER_TESTS=1` or `CI` is set (they take
//! minutes), as root. When Docker cannot be started they say so and are
//! skipped, or fail under `CI`. A watcher process removes the daemon, its
//! containers and files, the user and the group when the tests end.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bwguard::sample::SampleOptions;

use crate::support::{Bwguard, TestEnv};

/// The group that may use the bed's Docker socket.
pub const GROUP: &str = "bwguard-docker";
/// The user who owns user-owned installs, in [`GROUP`].
pub const USER: &str = "bwguard-bw";
/// The Bitwarden version the stand-in's bitwarden.sh pins.
pub const VERSION: &str = "2026.8.0";
/// The version `updateself` brings.
pub const NEXT: &str = "2026.9.0";
/// The images of the stand-in's compose file and of Setup.
const IMAGES: [&str; 8] = ["setup", "mssql", "web", "admin", "api", "identity", "nginx", "scim"];

/// The running daemon.
pub struct Bed {
    /// Everything of the bed: socket, daemon data, root filesystem.
    pub root: PathBuf,
    /// `unix://…` of the daemon's socket.
    pub host: String,
    /// The root filesystem every image is made from.
    pub rootfs: PathBuf,
    /// The docker client on PATH.
    pub docker: PathBuf,
    /// [`USER`]'s uid and gid.
    pub uid: u32,
    pub gid: u32,
}

/// The bed, started on first use; `None` (after saying why) when the
/// tests are not asked for or Docker cannot start outside CI.
pub fn bed() -> Option<&'static Bed> {
    static BED: OnceLock<Result<Bed, String>> = OnceLock::new();
    match BED.get_or_init(start) {
        Ok(b) => Some(b),
        Err(why) if std::env::var_os("CI").is_some() => panic!("the Docker test bed cannot start: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

fn sh(script: &str) -> Output {
    Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).output().unwrap()
}

fn which(program: &str) -> Option<PathBuf> {
    let out = sh(&format!("command -v {program}"));
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn start() -> Result<Bed, String> {
    if std::env::var_os("BWGUARD_DOCKER_TESTS").is_none() && std::env::var_os("CI").is_none() {
        return Err("the tests on a real Docker daemon take minutes: set BWGUARD_DOCKER_TESTS=1".into());
    }
    if !bwguard::files::is_root() {
        return Err("the Docker test bed needs root".into());
    }
    for program in ["dockerd", "docker", "docker-compose", "busybox", "setpriv", "useradd", "groupadd"] {
        which(program).ok_or_else(|| format!("{program} is not installed"))?;
    }
    let docker = which("docker").unwrap_or_default();
    let made = sh(&format!(
        "getent group {GROUP} >/dev/null || groupadd {GROUP}; \
         id -u {USER} >/dev/null 2>&1 || useradd -m -U -G {GROUP} -s /bin/sh {USER}; \
         usermod -aG {GROUP} {USER}"
    ));
    if !made.status.success() {
        return Err(format!("cannot create {USER} and {GROUP}: {}", String::from_utf8_lossy(&made.stderr)));
    }
    let id = |flag: &str| -> u32 {
        String::from_utf8_lossy(&sh(&format!("id {flag} {USER}")).stdout).trim().parse().unwrap()
    };
    let (uid, gid) = (id("-u"), id("-g"));
    let root = std::env::temp_dir().join(format!("bwguard-docker-bed-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let rootfs = root.join("rootfs.tar");
    build_rootfs(&root.join("rootfs"), &rootfs)?;
    let host = format!("unix://{}", root.join("docker.sock").display());
    // The watcher outlives this process: when it is gone, the daemon, its
    // files, the user and the group go too.
    let watcher = format!(
        "dockerd --bridge=none --iptables=false --ip6tables=false --host {host} --group {GROUP} \
           --data-root {r}/data --exec-root {r}/exec --pidfile {r}/docker.pid > {r}/dockerd.log 2>&1 &
         d=$!
         while kill -0 {pid} 2>/dev/null && kill -0 $d 2>/dev/null; do sleep 1; done
         ids=$(DOCKER_HOST={host} docker ps -aq); [ -n \"$ids\" ] && DOCKER_HOST={host} docker rm -f $ids >/dev/null
         kill $d 2>/dev/null; wait $d
         rm -rf {r}
         userdel -r {USER} 2>/dev/null; groupdel {GROUP} 2>/dev/null",
        r = root.display(),
        pid = std::process::id(),
    );
    crate::support::spawn_detached(&watcher).map_err(|e| format!("cannot start dockerd: {e}"))?;
    let bed = Bed { root, host, rootfs, docker, uid, gid };
    let t = Instant::now();
    while !bed.docker(&["version"]).status.success() {
        if t.elapsed() > Duration::from_secs(60) {
            let log = fs::read_to_string(bed.root.join("dockerd.log")).unwrap_or_default();
            return Err(format!("dockerd did not answer within 60 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bed.images(VERSION);
    let probe = bed.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &format!("ghcr.io/bitwarden/setup:{VERSION}"),
        "/bin/sh",
        "-c",
        "true",
    ]);
    if !probe.status.success() {
        return Err(format!(
            "a container of the bed's image does not run (is busybox static? apt-get install busybox-static): {}",
            String::from_utf8_lossy(&probe.stderr)
        ));
    }
    Ok(bed)
}

/// A root filesystem: static busybox with its applets, a user database, the
/// stand-in Setup at /app/Setup and the services' entrypoints.
fn build_rootfs(dir: &Path, tar: &Path) -> Result<(), String> {
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin");
    for d in ["bin", "app", "entrypoints", "etc", "tmp"] {
        fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    fs::copy(which("busybox").unwrap_or_default(), dir.join("bin/busybox")).map_err(|e| e.to_string())?;
    let applets = sh("busybox --list").stdout;
    for a in String::from_utf8_lossy(&applets).lines().filter(|a| *a != "busybox") {
        symlink("busybox", dir.join("bin").join(a)).map_err(|e| e.to_string())?;
    }
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        .map_err(|e| e.to_string())?;
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").map_err(|e| e.to_string())?;
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).map_err(|e| e.to_string())?;
    let copy = |from: &str, to: &str| -> Result<(), String> {
        fs::copy(standin.join(from), dir.join(to)).map_err(|e| format!("{from}: {e}"))?;
        fs::set_permissions(dir.join(to), fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
    };
    copy("setup.sh", "app/Setup")?;
    copy("engine.sh", "entrypoints/engine.sh")?;
    copy("nginx.sh", "entrypoints/nginx.sh")?;
    copy("service.sh", "entrypoints/service.sh")?;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/config.yml");
    fs::copy(fixture, dir.join("app/config.yml.template")).map_err(|e| e.to_string())?;
    let out = sh(&format!("tar -C {} -cf {} .", dir.display(), tar.display()));
    out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

impl Bed {
    /// Runs the docker client against the bed's daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(&self.docker)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Imports the images of `version` that the daemon lacks (a pull from
    /// the registry, or the image prune of an earlier update, removed them).
    pub fn images(&self, version: &str) {
        for i in IMAGES {
            let tag = format!("ghcr.io/bitwarden/{i}:{version}");
            if !self.docker(&["image", "inspect", &tag]).status.success() {
                let out = self.docker(&[
                    "import",
                    "--change",
                    "LABEL com.bitwarden.product=bitwarden",
                    self.rootfs.to_str().unwrap(),
                    &tag,
                ]);
                assert!(out.status.success(), "import {tag}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

/// Who owns a site's install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// root, as some admins install it (bitwarden.sh then asks whether to go on).
    Root,
    /// [`USER`], in the Docker group, as Bitwarden's guide says.
    User,
}

/// One stand-in install, brought up as its owner would: `./bitwarden.sh
/// rebuild` and `start`. One at a time, because container names are fixed.
pub struct Site {
    pub env: TestEnv,
    /// The stand-in's own directory: faults, calls.log, the "registry".
    pub standin: PathBuf,
    pub owner: Owner,
    pub bed: &'static Bed,
    /// `docker compose` v2 of this version over docker-compose, or v1.
    pub compose: Option<&'static str>,
    _one: MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

impl Site {
    /// A running install owned by `owner`, its data directory `bwdata`.
    pub fn new(owner: Owner) -> Option<Site> {
        Self::build(owner, "bwdata", None)
    }

    /// A running install with options: the data directory's name, and the
    /// compose the stand-in's `docker compose` plugin behaves as.
    pub fn build(owner: Owner, data_name: &str, compose: Option<&'static str>) -> Option<Site> {
        let sample =
            SampleOptions { vault_kib: Some(512), backups: 1, small_system_dbs: true, ..Default::default() };
        Self::build_with(owner, data_name, compose, &sample)
    }

    /// [`Site::build`] of a generated install of the given size.
    pub fn build_with(
        owner: Owner,
        data_name: &str,
        compose: Option<&'static str>,
        sample: &SampleOptions,
    ) -> Option<Site> {
        let bed = bed()?;
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        bed.images(VERSION);
        let env = TestEnv::with(sample);
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        if data_name != "bwdata" {
            fs::rename(env.install.join("bwdata"), env.install.join(data_name)).unwrap();
        }
        let data = env.install.join(data_name);
        let standin_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin");
        let install_file = |from: &str, to: &Path| {
            fs::copy(standin_src.join(from), to).unwrap();
            fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
        };
        install_file("bitwarden.sh", &env.install.join("bitwarden.sh"));
        install_file("run.sh", &data.join("scripts/run.sh"));
        let (uid, gid) = match owner {
            Owner::Root => (65534, 65534),
            Owner::User => (bed.uid, bed.gid),
        };
        fs::write(data.join("env/uid.env"), format!("LOCAL_UID={uid}\nLOCAL_GID={gid}\n")).unwrap();
        let standin = env.dir.path().join("standin");
        for d in ["registry", "bin"] {
            fs::create_dir_all(standin.join(d)).unwrap();
        }
        fs::write(standin.join("calls.log"), "").unwrap();
        fs::write(standin.join("faults"), "").unwrap();
        install_file("run.sh", &standin.join("registry/run.sh"));
        let next = fs::read_to_string(standin_src.join("bitwarden.sh")).unwrap().replace(VERSION, NEXT);
        fs::write(standin.join("registry/bitwarden.sh.next"), next).unwrap();
        symlink(&bed.rootfs, standin.join("registry/rootfs.tar")).unwrap();
        install_file("curl", &standin.join("bin/curl"));
        if compose.is_some() {
            install_file("docker", &standin.join("bin/docker"));
        }
        sh(&format!("chmod -R a+rwX {}", standin.display()));
        let site = Site { env, standin, owner, bed, compose, _one: one };
        if owner == Owner::User {
            sh(&format!("chown -R {uid}:{gid} {}", site.env.install.display()));
        }
        for arg in ["rebuild", "start"] {
            let out = site.script(arg);
            assert!(out.status.success(), "./bitwarden.sh {arg}: {}", text(&out));
        }
        site.wait_running();
        fs::write(site.standin.join("calls.log"), "").unwrap();
        Some(site)
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        let name = if self.env.install.join("bwdata").exists() { "bwdata" } else { ".bwdata" };
        self.env.install.join(name)
    }

    /// The environment every run gets: the bed's daemon, the stand-in's
    /// programs first on PATH, its directory.
    fn environment(&self) -> Vec<(&'static str, String)> {
        let path =
            format!("{}:{}", self.standin.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let mut env = vec![
            ("DOCKER_HOST", self.bed.host.clone()),
            ("PATH", path),
            ("STANDIN_DIR", self.standin.display().to_string()),
            ("STANDIN_DB_PAUSE", "0".into()),
            ("STANDIN_REAL_DOCKER", self.bed.docker.display().to_string()),
        ];
        if let Some(c) = self.compose {
            env.push(("STANDIN_COMPOSE", c.into()));
        }
        env
    }

    /// bwguard, run as root, against this install and its store.
    pub fn bwguard(&self, args: &[&str]) -> Bwguard {
        self.environment().into_iter().fold(self.env.bwguard(args), |b, (k, v)| b.env(k, v))
    }

    /// `./bitwarden.sh ARG`, run from the install directory as its owner
    /// (with the owner's groups; a root install answers the question `y`).
    pub fn script(&self, arg: &str) -> Output {
        let mut c = match self.owner {
            Owner::Root => Command::new("./bitwarden.sh"),
            Owner::User => {
                let mut c = Command::new("setpriv");
                c.args([&format!("--reuid={USER}"), &format!("--regid={USER}"), "--init-groups", "--"]);
                c.arg("./bitwarden.sh");
                c
            }
        };
        c.arg(arg);
        if !self.data().ends_with("bwdata") {
            c.arg(self.data());
        }
        for (k, v) in self.environment() {
            c.env(k, v);
        }
        let mut child = c
            .current_dir(&self.env.install)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(b"y\n");
        child.wait_with_output().unwrap()
    }

    /// A shell command line, run as root from elsewhere than the install
    /// with the site's environment (for the commands bwguard prints). On a
    /// root install, bitwarden.sh's question is answered `y`, as the admin
    /// at the terminal would.
    pub fn shell(&self, line: &str) -> Output {
        let mut c = Command::new("sh");
        c.arg("-c").arg(line).current_dir(self.env.dir.path());
        for (k, v) in self.environment() {
            c.env(k, v);
        }
        let mut child =
            c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(b"y\ny\ny\ny\n");
        child.wait_with_output().unwrap()
    }

    /// Adds a fault (see tests/standin/README.md).
    pub fn fault(&self, line: &str) {
        let path = self.standin.join("faults");
        let mut all = fs::read_to_string(&path).unwrap();
        all.push_str(line);
        all.push('\n');
        fs::write(path, all).unwrap();
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        fs::write(self.standin.join("faults"), "").unwrap();
    }

    /// Forgets the calls so far: faults count calls from here (`update:1`
    /// is the next update).
    pub fn reset_calls(&self) {
        fs::write(self.standin.join("calls.log"), "").unwrap();
    }

    /// The calls of bitwarden.sh and of Setup, in order, one line each.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.standin.join("calls.log")).unwrap().lines().map(String::from).collect()
    }

    /// Every container: name → state (`running`, `restarting`, `exited`…).
    pub fn containers(&self) -> BTreeMap<String, String> {
        let out = self.bed.docker(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(n, s)| (n.to_string(), s.to_string())))
            .collect()
    }

    /// How often Docker restarted container `name`.
    fn restarts(&self, name: &str) -> u64 {
        let out = self.bed.docker(&["inspect", "--format", "{{.RestartCount}}", name]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(u64::MAX)
    }

    /// Waits until the containers of docker-compose.yml all run and nginx
    /// has not restarted for three seconds; panics after a minute.
    #[track_caller]
    pub fn wait_running(&self) {
        let compose = fs::read_to_string(self.data().join("docker/docker-compose.yml")).unwrap();
        let wanted = bwguard::install::facts::compose_containers(&compose);
        let t = Instant::now();
        loop {
            let have = self.containers();
            let running = wanted.iter().all(|c| have.get(c).is_some_and(|s| s == "running"));
            if running {
                let before = self.restarts("bitwarden-nginx");
                std::thread::sleep(Duration::from_secs(3));
                if self.restarts("bitwarden-nginx") == before
                    && self.containers().get("bitwarden-nginx").is_some_and(|s| s == "running")
                {
                    return;
                }
            }
            assert!(t.elapsed() < Duration::from_secs(60), "not running after a minute: {have:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Asserts that Bitwarden runs: every container of docker-compose.yml
    /// runs and nginx is not restarting.
    #[track_caller]
    pub fn assert_running(&self) {
        self.wait_running();
    }

    /// The install, byte for byte, without what a running Bitwarden keeps
    /// writing: logs/, and the log file SQL Server writes while it runs.
    pub fn tree(&self) -> BTreeMap<String, String> {
        let data = self.data();
        let name = data.file_name().unwrap().to_string_lossy().into_owned();
        let mut t = self.env.tree();
        t.retain(|k, _| !k.starts_with(&format!("{name}/logs")));
        if let Some(v) = t.get_mut(&format!("{name}/mssql/data/vault_log.ldf")) {
            *v = "the engine's log".into();
        }
        t
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // The next site starts from no container.
        let out = self.bed.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            self.bed.docker(&args);
        }
        // And from no volume (a docker-volume install's database).
        let out = self.bed.docker(&["volume", "ls", "-q"]);
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        if !names.is_empty() {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(names.iter().map(String::as_str));
            self.bed.docker(&args);
        }
    }
}

/// A command's output, for messages.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
