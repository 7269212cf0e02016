//! Synthetic self-hosted Bitwarden installs for the demo, the tests and the benchmark.
//!
//! Owns the layout of a generated install: `DEST/bitwarden.sh` and `DEST/bwdata/` with
//! `config.yml`, `env/`, `docker/` (the compose file, global.env, mssql.env), `nginx/`, `web/`,
//! `letsencrypt/`, `scripts/`, `core/`, `identity/`, `logs/` and `mssql/`: everything Setup writes,
//! shaped like a standard Docker install (a port of `bench/make-bwdata.py`).
//!
//! Invariants:
//! - Output is a pure function of [`SampleOptions`]: one seeded PRNG drives every byte, so
//!   the same options give the same tree, byte for byte. `sparse_tail` changes only how the
//!   trailing zeros of each `.mdf` are stored, never the file contents.
//! - SQL Server files are whole 8 KiB pages drawn from a pool of 4000 distinct pages (55%
//!   encrypted-string rows, 30% index, 8% random, 7% zero among used pages), so they
//!   compress like a real vault database: gzip's 32 KiB window never sees the repeats.
//! - Modes: `env/*` secrets, the data-protection key and `identity.pfx` are 0600, files in
//!   `mssql/data` are 0640, `bitwarden.sh` and `run.sh` 0755, everything else 0644,
//!   whatever the umask. `vault_FULL_LATESTLN.BAK` is a relative symlink to the newest `.BAK`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;

const PAGE: usize = 8192;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// Transaction logs are written in 64 KiB virtual-log blocks.
const LOG_BLOCK: u64 = 64 * KIB;
const BUF: usize = 1 << 20;
static ZEROS: [u8; BUF] = [0; BUF];
const CONFIG_YML: &[u8] = include_bytes!("../fixtures/config.yml");
const VERSION: &str = "2026.8.0";
/// (name, MiB) of the system databases, as in a fresh install.
const SYSTEM_DBS: [(&str, u64); 4] =
    [("master.mdf", 4), ("model.mdf", 8), ("msdbdata.mdf", 14), ("tempdb.mdf", 8)];
const SYSTEM_LOGS: [(&str, u64); 4] =
    [("mastlog.ldf", 2), ("modellog.ldf", 8), ("msdblog.ldf", 1), ("templog.ldf", 8)];
/// Pool sizes per page kind: data, index, random.
const POOL: [usize; 3] = [2400, 1200, 400];

/// Options for a generated install.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// Size of `vault.mdf` in MiB (default 256); `.BAK` files are 60% of it, the log a quarter.
    pub vault_mb: u64,
    /// Size of `vault.mdf` in KiB, overriding `vault_mb` when `Some` (for tiny test installs).
    pub vault_kib: Option<u64>,
    /// Number of nightly `vault_FULL_*.BAK` files (default 2).
    pub backups: u32,
    /// PRNG seed (default 1); the same seed gives the same bytes.
    pub seed: u64,
    /// Leave the trailing unused part of each `.mdf` as a hole instead of written zeros.
    pub sparse_tail: bool,
    /// Make the system databases (master/model/msdb/tempdb) 1/16 of their size, for fast tests.
    pub small_system_dbs: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            vault_mb: 256,
            vault_kib: None,
            backups: 2,
            seed: 1,
            sparse_tail: false,
            small_system_dbs: false,
        }
    }
}

/// Writes a sample install into `dest` (created if missing; must be empty or absent):
/// `dest/bitwarden.sh` and `dest/bwdata/...`.
///
/// Returns the total size in bytes of the regular files created (holes left by
/// `sparse_tail` count, as in `ls -l`). Database sizes are rounded down to whole 8 KiB pages
/// (at least one). Errors name the path that failed.
pub fn generate(dest: &Path, opts: &SampleOptions) -> io::Result<u64> {
    prepare_dest(dest)?;
    let mut rng = Rng::new(opts.seed);
    let pool = Pool::new(&mut rng);
    let mut g = Generator { rng, pool, total: 0 };
    let bw = dest.join("bwdata");
    let sh = format!(
        "#!/usr/bin/env bash\nset -e\nCOREVERSION=\"{VERSION}\"\nWEBVERSION=\"{VERSION}\"\n\
         KEYCONNECTORVERSION=\"2025.11.0\"\necho \"bitwarden.sh $1\"\n"
    );
    g.put(&dest.join("bitwarden.sh"), sh.as_bytes(), 0o755)?;
    g.put(&bw.join("config.yml"), CONFIG_YML, 0o644)?;
    g.put(&bw.join("scripts/run.sh"), b"#!/usr/bin/env bash\nset -e\n# run.sh\n", 0o755)?;
    let pw = base64(&g.rng.bytes(24));
    let global = format!(
        "globalSettings__baseServiceUri__vault=https://bitwarden.example.com\n\
         globalSettings__sqlServer__connectionString=\"Data Source=tcp:mssql,1433;\
         Initial Catalog=vault;Persist Security Info=False;User ID=sa;Password={pw};\
         Multiple Active Result Sets=False;Connect Timeout=30;Encrypt=True;\
         Trust Server Certificate=True\"\nglobalSettings__installation__id={}\n",
        hyphenated(g.rng.uuid())
    );
    g.put(&bw.join("env/global.override.env"), global.as_bytes(), 0o600)?;
    let mssql_env = format!("SA_PASSWORD={pw}\nDATABASE=vault\n");
    g.put(&bw.join("env/mssql.override.env"), mssql_env.as_bytes(), 0o600)?;
    g.put(&bw.join("env/uid.env"), b"LOCAL_UID=1000\nLOCAL_GID=1000\n", 0o644)?;
    g.put(&bw.join("docker/docker-compose.yml"), compose().as_bytes(), 0o644)?;
    let global_env = "ASPNETCORE_ENVIRONMENT=Production\nglobalSettings__selfHosted=true\n\
                      globalSettings__baseServiceUri__vault=https://bitwarden.example.com\n\
                      globalSettings__pushRelayBaseUri=https://push.bitwarden.com\n";
    g.put(&bw.join("docker/global.env"), global_env.as_bytes(), 0o600)?;
    g.put(&bw.join("docker/mssql.env"), b"ACCEPT_EULA=Y\nMSSQL_PID=Express\n", 0o600)?;
    g.put(&bw.join("nginx/default.conf"), NGINX_CONF.as_bytes(), 0o644)?;
    let app_id = "{\"trustedFacets\":[{\"version\":{\"major\":1,\"minor\":0},\
                  \"ids\":[\"https://bitwarden.example.com\",\"ios:bundle-id:com.8bit.bitwarden\"]}]}\n";
    g.put(&bw.join("web/app-id.json"), app_id.as_bytes(), 0o644)?;
    let le = bw.join("letsencrypt");
    fs::create_dir_all(&le).map_err(|e| at(&le, e))?;
    let key_path = bw.join(format!("core/aspnet-dataprotection/key-{}.xml", hyphenated(g.rng.uuid())));
    let key = format!("<key>{}</key>\n", base64(&g.rng.bytes(64)));
    g.put(&key_path, key.as_bytes(), 0o600)?;
    let pfx = base64(&g.rng.bytes(2400));
    g.put(&bw.join("identity/identity.pfx"), pfx.as_bytes(), 0o600)?;
    g.put(&bw.join("core/attachments/README"), b"attachments\n", 0o644)?;
    let (data, backups) = (bw.join("mssql/data"), bw.join("mssql/backups"));
    for dir in [bw.join("logs/mssql"), data.clone(), backups.clone()] {
        fs::create_dir_all(&dir).map_err(|e| at(&dir, e))?;
    }

    let sparse = opts.sparse_tail;
    let shrink = if opts.small_system_dbs { 16 } else { 1 };
    for (name, mb) in SYSTEM_DBS {
        g.write_db(&data.join(name), mb * MIB / shrink, 30, sparse, 0o640)?;
    }
    for (name, mb) in SYSTEM_LOGS {
        g.write_log(&data.join(name), mb * MIB / shrink)?;
    }
    let sizes = Sizes::of(opts);
    g.write_db(&data.join("vault.mdf"), sizes.vault, 60, sparse, 0o640)?;
    g.write_log(&data.join("vault_log.ldf"), sizes.log)?;
    let mut latest = None;
    for k in 1..=opts.backups {
        let name = format!("vault_FULL_202611{k:02}_000000.BAK");
        g.write_db(&backups.join(&name), sizes.bak, 100, sparse, 0o644)?;
        latest = Some(name);
    }
    if let Some(name) = latest {
        let link = backups.join("vault_FULL_LATESTLN.BAK");
        symlink(&name, &link).map_err(|e| at(&link, e))?;
    }
    Ok(g.total)
}

/// nginx/default.conf as Setup writes it for a default install (SCIM off):
/// the routes to web, api, identity and admin.
const NGINX_CONF: &str =
    "# Generated by Setup. Do not make changes to this file: they are overwritten on update.
server {
  listen 8080 default_server;
  location / { proxy_pass http://web:5000/; }
  location /api/ { proxy_pass http://api:5000/; }
  location /identity { proxy_pass http://identity:5000; }
  location /admin { proxy_pass http://admin:5000; }
}
";

/// docker/docker-compose.yml as Setup writes it: each service's image,
/// container name and restart policy.
fn compose() -> String {
    let mut s = String::from("services:\n");
    for name in ["mssql", "web", "admin", "api", "identity", "nginx"] {
        s.push_str(&format!(
            "  {name}:\n    image: ghcr.io/bitwarden/{name}:{VERSION}\n    container_name: bitwarden-{name}\n    restart: always\n"
        ));
    }
    s
}

/// Byte sizes of the vault files asked for by the options (before rounding to pages).
#[derive(Debug, PartialEq)]
struct Sizes {
    vault: u64,
    log: u64,
    bak: u64,
}

impl Sizes {
    fn of(opts: &SampleOptions) -> Self {
        let (n, unit) = opts.vault_kib.map_or((opts.vault_mb, MIB), |kib| (kib, KIB));
        Sizes {
            vault: n.saturating_mul(unit),
            log: (n / 4).max(1).saturating_mul(unit),
            bak: (n.saturating_mul(6) / 10).saturating_mul(unit),
        }
    }
}

fn prepare_dest(dest: &Path) -> io::Result<()> {
    if dest.exists() && fs::read_dir(dest).map_err(|e| at(dest, e))?.next().is_some() {
        let msg = format!("{}: destination is not empty", dest.display());
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, msg));
    }
    fs::create_dir_all(dest).map_err(|e| at(dest, e))
}

/// Prefixes an I/O error with the path it concerns, keeping its kind.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Creates a new file with exactly `mode` (the umask is overridden).
fn create(path: &Path, mode: u32) -> io::Result<File> {
    let file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(file)
}

fn write_zeros(out: &mut impl Write, mut len: u64) -> io::Result<()> {
    while len > 0 {
        let n = len.min(BUF as u64);
        out.write_all(&ZEROS[..n as usize])?;
        len -= n;
    }
    Ok(())
}

struct Generator {
    rng: Rng,
    pool: Pool,
    total: u64,
}

impl Generator {
    fn put(&mut self, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
        let write = || {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            create(path, mode)?.write_all(contents)
        };
        write().map_err(|e| at(path, e))?;
        self.total += contents.len() as u64;
        Ok(())
    }

    /// A data file of `size` bytes whose first `used * 1.1` pages are drawn from the pool with
    /// `used` (in percent) the share of non-zero pages; the rest is zeros, or a hole if `sparse`.
    fn write_db(&mut self, path: &Path, size: u64, used: u64, sparse: bool, mode: u32) -> io::Result<()> {
        let pages = (size / PAGE as u64).max(1);
        let head = (pages * used * 11).div_ceil(1000).min(pages);
        let len = pages * PAGE as u64;
        let mut write = || {
            let mut out = BufWriter::with_capacity(BUF, create(path, mode)?);
            for _ in 0..head {
                out.write_all(self.pool.draw(&mut self.rng, used as f64 / 100.0))?;
            }
            if sparse {
                out.into_inner().map_err(io::IntoInnerError::into_error)?.set_len(len)
            } else {
                write_zeros(&mut out, len - head * PAGE as u64)?;
                out.flush()
            }
        };
        write().map_err(|e| at(path, e))?;
        self.total += len;
        Ok(())
    }

    /// A log of `size` bytes: the first fifth of its 64 KiB blocks hold six pool pages each.
    fn write_log(&mut self, path: &Path, size: u64) -> io::Result<()> {
        let mut write = || {
            let mut out = BufWriter::with_capacity(BUF, create(path, 0o640)?);
            let active = size / LOG_BLOCK / 5;
            for _ in 0..active {
                for _ in 0..6 {
                    out.write_all(self.pool.draw(&mut self.rng, 1.0))?;
                }
                write_zeros(&mut out, LOG_BLOCK - 6 * PAGE as u64)?;
            }
            write_zeros(&mut out, size - active * LOG_BLOCK)?;
            out.flush()
        };
        write().map_err(|e| at(path, e))?;
        self.total += size;
        Ok(())
    }
}

/// The distinct pages that database files are made of, kinds in `POOL` order. Page `i` is
/// built on first use from its own PRNG stream, so tiny installs stay cheap and every page is
/// the same whatever the drawing order.
struct Pool {
    seed: u64,
    pages: Vec<Option<Box<[u8]>>>,
}

impl Pool {
    fn new(rng: &mut Rng) -> Self {
        Pool { seed: rng.next_u64(), pages: vec![None; POOL.iter().sum()] }
    }

    fn page(&mut self, i: usize) -> &[u8] {
        let kind = usize::from(i >= POOL[0]) + usize::from(i >= POOL[0] + POOL[1]);
        let seed = self.seed ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        self.pages[i].get_or_insert_with(|| make_page(&mut Rng::new(seed), kind))
    }

    /// One page: zero with probability `1 - used`, else data 55%, index 30%, random 8%, zero 7%.
    fn draw(&mut self, rng: &mut Rng, used: f64) -> &[u8] {
        let r = rng.unit();
        let r = if r < used { r / used } else { 1.0 };
        let kind = [0.55, 0.85, 0.93].iter().position(|&bound| r < bound);
        let Some(kind) = kind else { return &ZEROS[..PAGE] };
        let first: usize = POOL[..kind].iter().sum();
        self.page(first + rng.below(POOL[kind]))
    }
}

/// One page of `kind` (0 data, 1 index, 2 random): a 96-byte header, then rows, zero-padded.
fn make_page(rng: &mut Rng, kind: usize) -> Box<[u8]> {
    let mut out = Vec::with_capacity(2 * PAGE);
    let mut header = [0u8; 96];
    rng.fill(&mut header[4..]);
    header[..2].copy_from_slice(&[1, if kind == 1 { 2 } else { 1 }]);
    out.extend_from_slice(&header);
    match kind {
        0 => {
            while out.len() < PAGE - 300 {
                let cipher_len = [32, 48, 64, 96, 160][rng.below(5)];
                let cipher = rng.bytes(cipher_len);
                let (iv, mac) = (rng.bytes(16), rng.bytes(32));
                let text = format!("2.{}|{}|{}", base64(&iv), base64(&cipher), base64(&mac));
                out.extend_from_slice(&0x30u16.to_le_bytes());
                out.extend_from_slice(&(text.len() as u16).to_le_bytes());
                out.extend_from_slice(&rng.uuid());
                out.extend(text.bytes().flat_map(|b| [b, 0]));
            }
        }
        1 => {
            while out.len() < PAGE - 32 {
                out.push(6);
                out.extend_from_slice(&rng.uuid());
                out.extend_from_slice(&(rng.next_u64() as u32 & 0xF_FFFF).to_le_bytes());
                out.extend_from_slice(&1u16.to_le_bytes());
            }
        }
        _ => out.extend_from_slice(&rng.bytes(PAGE)),
    }
    out.resize(PAGE, 0);
    out.into_boxed_slice()
}

/// xoshiro256** seeded through splitmix64.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([splitmix(), splitmix(), splitmix(), splitmix()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n) (multiply-shift; the bias is negligible for small n).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }

    fn uuid(&mut self) -> [u8; 16] {
        let mut u = [0; 16];
        self.fill(&mut u);
        u
    }
}

/// Standard base64 (RFC 4648, with padding).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = b(0) << 16 | b(1) << 8 | b(2);
        for i in 0..4 {
            let c = if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] } else { b'=' };
            out.push(char::from(c));
        }
    }
    out
}

/// 8-4-4-4-12 lowercase hex, like Python's `str(uuid.UUID(...))`.
fn hyphenated(u: [u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    use super::*;

    fn small(seed: u64) -> SampleOptions {
        SampleOptions { vault_kib: Some(640), seed, small_system_dbs: true, ..Default::default() }
    }

    fn make(opts: &SampleOptions) -> (tempfile::TempDir, PathBuf, u64) {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("install");
        let total = generate(&dest, opts).unwrap();
        (tmp, dest, total)
    }

    /// Regular files under `root` by relative path, with their contents.
    fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    stack.push(path);
                } else if meta.is_file() {
                    let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(rel, fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn tree_has_expected_files_and_modes() {
        let (_tmp, dest, _) = make(&small(1));
        let names: Vec<String> = files(&dest).into_keys().collect();
        let prefix = "bwdata/core/aspnet-dataprotection/key-";
        let key = names.iter().find(|n| n.starts_with(prefix));
        assert!(key.is_some_and(|k| k.ends_with(".xml") && k.len() == prefix.len() + 40), "{names:?}");
        let mut expected = vec![
            "bitwarden.sh",
            "bwdata/config.yml",
            "bwdata/core/attachments/README",
            "bwdata/docker/docker-compose.yml",
            "bwdata/docker/global.env",
            "bwdata/docker/mssql.env",
            "bwdata/env/global.override.env",
            "bwdata/env/mssql.override.env",
            "bwdata/env/uid.env",
            "bwdata/identity/identity.pfx",
            "bwdata/mssql/backups/vault_FULL_20261101_000000.BAK",
            "bwdata/mssql/backups/vault_FULL_20261102_000000.BAK",
            "bwdata/nginx/default.conf",
            "bwdata/scripts/run.sh",
            "bwdata/web/app-id.json",
        ];
        let db = ["master.mdf", "model.mdf", "msdbdata.mdf", "tempdb.mdf", "vault.mdf"];
        let logs = ["mastlog.ldf", "modellog.ldf", "msdblog.ldf", "templog.ldf", "vault_log.ldf"];
        let data: Vec<String> = db.iter().chain(&logs).map(|n| format!("bwdata/mssql/data/{n}")).collect();
        expected.extend(data.iter().map(String::as_str));
        expected.extend(key.map(String::as_str));
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert!(dest.join("bwdata/logs/mssql").is_dir() && dest.join("bwdata/letsencrypt").is_dir());
        // The generated files agree: every nginx route has its service.
        let install = crate::install::Install::resolve(None, None, &dest).unwrap();
        assert!(crate::install::facts::generated_files_disagree(&install).is_empty());

        let bw = dest.join("bwdata");
        for f in [
            "env/global.override.env",
            "env/mssql.override.env",
            "identity/identity.pfx",
            "docker/global.env",
        ] {
            assert_eq!(mode(&bw.join(f)), 0o600, "{f}");
        }
        for f in &data {
            assert_eq!(mode(&dest.join(f)), 0o640, "{f}");
        }
        assert_eq!(mode(&dest.join("bitwarden.sh")), 0o755);
        assert_eq!(mode(&bw.join("scripts/run.sh")), 0o755);
        assert_eq!(mode(&bw.join("config.yml")), 0o644);

        let sh = fs::read_to_string(dest.join("bitwarden.sh")).unwrap();
        assert!(sh.contains("\nCOREVERSION=\"2026.8.0\"\nWEBVERSION=\"2026.8.0\"\n"), "{sh}");
        assert_eq!(fs::read(bw.join("config.yml")).unwrap(), CONFIG_YML);
        let global = fs::read_to_string(bw.join("env/global.override.env")).unwrap();
        let mssql = fs::read_to_string(bw.join("env/mssql.override.env")).unwrap();
        let pw = mssql.strip_prefix("SA_PASSWORD=").and_then(|s| s.split('\n').next()).unwrap();
        assert_eq!(pw.len(), 32);
        assert!(global.contains(&format!(";Password={pw};")), "{global}");
    }

    #[test]
    fn latest_symlink_names_newest_backup() {
        let (_tmp, dest, _) = make(&SampleOptions { backups: 3, ..small(1) });
        let link = dest.join("bwdata/mssql/backups/vault_FULL_LATESTLN.BAK");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("vault_FULL_20261103_000000.BAK"));
        assert!(fs::metadata(&link).unwrap().is_file());

        let (_tmp, dest, _) = make(&SampleOptions { backups: 0, ..small(1) });
        let backups = dest.join("bwdata/mssql/backups");
        assert_eq!(fs::read_dir(backups).unwrap().count(), 0);
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let (_a, one, _) = make(&small(7));
        let (_b, two, _) = make(&small(7));
        let (_c, other, _) = make(&small(8));
        let (one, two, other) = (files(&one), files(&two), files(&other));
        assert_eq!(one, two);
        for f in ["bwdata/mssql/data/vault.mdf", "bwdata/env/global.override.env"] {
            assert_ne!(one[f], other[f], "{f}");
        }
    }

    #[test]
    fn sizes_follow_options() {
        let (_tmp, dest, total) = make(&small(1));
        let all = files(&dest);
        let len = |f: &str| all[&format!("bwdata/mssql/data/{f}")].len() as u64;
        assert_eq!(len("vault.mdf"), 640 * KIB);
        assert_eq!(len("vault_log.ldf"), 160 * KIB);
        assert_eq!(len("master.mdf"), 256 * KIB);
        assert_eq!(len("msdbdata.mdf"), 14 * MIB / 16);
        assert_eq!(len("msdblog.ldf"), 64 * KIB);
        let bak = &all["bwdata/mssql/backups/vault_FULL_20261101_000000.BAK"];
        assert_eq!(bak.len(), 384 * KIB as usize);
        assert_eq!(total, all.values().map(|v| v.len() as u64).sum::<u64>());

        let defaults = Sizes::of(&SampleOptions::default());
        assert_eq!(defaults, Sizes { vault: 256 * MIB, log: 64 * MIB, bak: 153 * MIB });
        let tiny = Sizes::of(&SampleOptions { vault_mb: 1, ..Default::default() });
        assert_eq!(tiny, Sizes { vault: MIB, log: MIB, bak: 0 });
    }

    #[test]
    fn sparse_tail_leaves_holes_without_changing_bytes() {
        let (_a, dense, _) = make(&small(3));
        let (_b, sparse, _) = make(&SampleOptions { sparse_tail: true, ..small(3) });
        assert_eq!(files(&dense), files(&sparse));
        for f in ["vault.mdf", "model.mdf"] {
            let holey = fs::metadata(sparse.join("bwdata/mssql/data").join(f)).unwrap();
            assert!(holey.blocks() * 512 < holey.len(), "{f}: {} blocks", holey.blocks());
            let full = fs::metadata(dense.join("bwdata/mssql/data").join(f)).unwrap();
            assert!(full.blocks() * 512 >= full.len(), "{f}: {} blocks", full.blocks());
        }
    }

    #[test]
    fn refuses_non_empty_dest() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("x"), "x").unwrap();
        let err = generate(tmp.path(), &small(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn pool_pages_are_distinct_and_shaped() {
        let mut pool = Pool::new(&mut Rng::new(1));
        let pages: Vec<Vec<u8>> = (0..4000).map(|i| pool.page(i).to_vec()).collect();
        assert!(pages.iter().all(|p| p.len() == PAGE));
        assert_eq!(pages.iter().collect::<std::collections::HashSet<_>>().len(), 4000);
        assert_eq!(pages[0][..2], [1, 1]);
        assert_eq!((&pages[0][96..98], &pages[0][116..120]), (&[0x30, 0][..], &b"2\0.\0"[..]));
        assert_eq!(pages[2400][..2], [1, 2]);
        assert_eq!(pages[2400][96], 6);
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (raw, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
        assert_eq!(hyphenated([0xab; 16]), "abababab-abab-abab-abab-abababababab");
    }
}
