//! A real S3 server for the off-site tests: a Garage cluster of three nodes
//! on loopback ports, replication factor 3, one bucket and one key. Garage
//! installs with `cargo install garage --locked` (`.ci/run` does it). Each
//! test starts its own cluster in a temporary directory; dropping it kills
//! the nodes.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The access key id the tests import (Garage's `GK` + 24 hex digits).
pub const KEY_ID: &str = "GK5b1e2c3d4e5f60718293a4b5";
/// Its secret (64 hex digits).
pub const SECRET: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
/// The bucket.
pub const BUCKET: &str = "bwguard-test";
/// The region Garage signs with.
pub const REGION: &str = "garage";

/// One node.
struct Node {
    config: PathBuf,
    s3_port: u16,
    child: Option<Child>,
}

/// A running three-node cluster.
pub struct Garage {
    /// Holds the nodes' data; removed on drop.
    _dir: TempDir,
    nodes: Vec<Node>,
}

/// True when `garage` can run; panics under CI when it cannot.
pub fn available() -> bool {
    let found = Command::new("garage").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "garage is missing: install it with `cargo install garage --locked`"
        );
        eprintln!("skipped: garage is missing (cargo install garage --locked); CI fails instead");
    }
    found
}

/// A free loopback port (closed again before Garage binds it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Garage {
    /// Starts three nodes, joins them, applies a layout with all three in
    /// one zone, imports the key and creates the bucket; returns once the
    /// S3 API answers.
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let rpc_secret: String = (0..32).map(|i| format!("{:02x}", (i * 37 + 11) % 256)).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let (s3, rpc) = (free_port(), free_port());
            let base = dir.path().join(format!("node{i}"));
            fs::create_dir_all(&base).unwrap();
            let config = base.join("garage.toml");
            fs::write(
                &config,
                format!(
                    "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                     replication_factor = 3\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{rpc_secret}\"\n\n\
                     [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n",
                    meta = base.join("meta").display(),
                    data = base.join("data").display(),
                ),
            )
            .unwrap();
            nodes.push(Node { config, s3_port: s3, child: None });
        }
        let mut g = Garage { _dir: dir, nodes };
        for i in 0..3 {
            g.spawn(i);
        }
        let ids: Vec<String> = (0..3).map(|i| g.wait_for_id(i)).collect();
        for id in &ids[1..] {
            g.cli(0, &["node", "connect", id]);
        }
        for id in &ids {
            let short = &id[..16];
            g.cli(0, &["layout", "assign", "-z", "dc1", "-c", "1G", short]);
        }
        g.cli(0, &["layout", "apply", "--version", "1"]);
        g.cli(0, &["key", "import", "--yes", "-n", "bwguard-test", KEY_ID, SECRET]);
        g.cli(0, &["bucket", "create", BUCKET]);
        g.cli(0, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "bwguard-test"]);
        g.wait_for_s3();
        g
    }

    /// Starts node `i`, its log in its directory.
    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = fs::File::create(node.config.with_file_name("log")).unwrap();
        let child = Command::new("garage")
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Runs a `garage` admin command against node `i`, asserting success.
    /// A freshly joined cluster refuses some commands until the layout has
    /// spread (on a loaded machine, for a few seconds): they are retried
    /// for 30 s, and a retry that finds its work done counts as success.
    fn cli(&self, i: usize, args: &[&str]) -> String {
        let start = Instant::now();
        let mut first_failed = false;
        loop {
            let out =
                Command::new("garage").arg("-c").arg(&self.nodes[i].config).args(args).output().unwrap();
            let said =
                format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if out.status.success() || (first_failed && said.to_ascii_lowercase().contains("already")) {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            first_failed = true;
            assert!(start.elapsed() < Duration::from_secs(30), "garage {args:?}: {said}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The full id (`hex@addr`) of node `i`, once it answers.
    fn wait_for_id(&self, i: usize) -> String {
        let start = Instant::now();
        loop {
            let out = Command::new("garage")
                .arg("-c")
                .arg(&self.nodes[i].config)
                .args(["node", "id", "-q"])
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && id.contains('@') {
                return id;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "garage node {i} did not start: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the bucket can be listed through the S3 API.
    fn wait_for_s3(&self) {
        let client = self.client("");
        let start = Instant::now();
        while let Err(e) = client.list("") {
            assert!(start.elapsed() < Duration::from_secs(30), "S3 API not ready: {e}\n{}", self.log(0));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Node `i`'s log.
    pub fn log(&self, i: usize) -> String {
        fs::read_to_string(self.nodes[i].config.with_file_name("log")).unwrap_or_default()
    }

    /// The S3 endpoint of node 0, which the tests talk to.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.nodes[0].s3_port)
    }

    /// The S3 port of node 0.
    pub fn s3_port(&self) -> u16 {
        self.nodes[0].s3_port
    }

    /// A client of the bucket under `prefix`, for tests that tamper with objects.
    pub fn client(&self, prefix: &str) -> bwguard::offsite::s3::Client {
        let ep = bwguard::offsite::s3::Endpoint {
            url: self.endpoint(),
            region: REGION.into(),
            bucket: BUCKET.into(),
            path_style: true,
        };
        bwguard::offsite::s3::Client::new(&ep, prefix, rusty_s3::Credentials::new(KEY_ID, SECRET)).unwrap()
    }

    /// Stops node `i` (SIGKILL, as a crashed host would).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

/// A TCP proxy to `127.0.0.1:port` that cuts each connection once it has
/// passed `cut_after` bytes from the server: a network that drops mid-download.
/// Returns the proxy's port; its threads live until the test process ends.
pub fn cutting_proxy(port: u16, cut_after: u64) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", port)) else { continue };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut c_in, &mut s_out));
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let _ = std::io::copy(&mut std::io::Read::take(&mut server, cut_after), &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    proxy
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}
