//! `manifest.json` and the two checksum files of a snapshot: their shapes,
//! rendering and parsing (pure; no I/O).
//!
//! The manifest is written last; its presence is what makes a directory a
//! snapshot. Keys are those of docs/guide.md, "The snapshot format"; fields beyond those
//! (`parts`, `scope`) are additions readers may ignore.

use serde::{Deserialize, Serialize};

/// Version of the snapshot format this build writes and reads.
pub const FORMAT: u32 = 1;
/// File names inside a snapshot directory.
pub const ARCHIVE: &str = "data.tar.gz";
/// Per-file checksums, `sha256sum -c` format, paths relative to the install.
pub const SUMS: &str = "SHA256SUMS";
/// The archive's own checksum line.
pub const ARCHIVE_SUM: &str = "data.tar.gz.sha256";
/// The manifest, written last.
pub const MANIFEST: &str = "manifest.json";

/// A snapshot's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// Snapshot id, e.g. `20261128T191300Z`.
    pub id: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// `bwguard X.Y.Z`.
    pub tool: String,
    /// Host name.
    pub host: String,
    /// Absolute install directory at backup time.
    pub install_dir: String,
    /// Data directory name as found (`bwdata` or `.bwdata`).
    pub data_dir: String,
    /// Why the snapshot was taken (`manual`, `before enable-scim`, …).
    pub reason: String,
    /// The user's note, if any.
    pub note: Option<String>,
    /// Kept from pruning.
    pub pinned: bool,
    /// What was read about Bitwarden at backup time.
    pub bitwarden: BitwardenInfo,
    /// `cold` or `live`.
    pub consistency: String,
    /// How the archive is compressed.
    pub compression: Compression,
    /// The archive file.
    pub archive: ArchiveInfo,
    /// Which scope flags made this snapshot (`default`, `with-attachments`, `full`, `partial`).
    #[serde(default)]
    pub scope: String,
    /// The parts of the install this snapshot covers, present or absent.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// One entry per archive entry, in archive order.
    pub entries: Vec<Entry>,
    /// Files that changed while a live snapshot read them (their archived
    /// bytes may be torn; the checksums are of what was archived).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_while_reading: Vec<String>,
    /// Seconds the sources took to read and archive, the measure of the
    /// next paused snapshot's downtime (absent in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_seconds: Option<f64>,
    /// With `backup --pause-db`: the database container's pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_pause: Option<DatabasePause>,
    /// How the archive was read back from the disk: [`READBACK_WHILE_WRITING`]
    /// or [`READBACK_AFTER_FLUSH`] (absent in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readback: Option<String>,
    /// The store's count of snapshots taken, one more than the highest
    /// sequence in the store when this one was taken: the order that
    /// "newest", `rollback` without an id and pruning follow, whatever the
    /// clock did (absent in older manifests, which count as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// `readback`: each chunk read from the device with direct reads as soon
/// as it was written, where those surely reach the disk (XFS, ext4 without
/// data journaling, encryption or verity).
pub const READBACK_WHILE_WRITING: &str = "while-writing";
/// `readback`: the archive flushed, dropped from the page cache and read
/// back whole, on every other filesystem.
pub const READBACK_AFTER_FLUSH: &str = "after-flush";

/// The `readback` value for an archive whose read-back compared every
/// byte with the device while writing, or not.
pub fn readback_path(from_device: bool) -> String {
    if from_device { READBACK_WHILE_WRITING } else { READBACK_AFTER_FLUSH }.to_string()
}

/// The database container stopped for a cold snapshot while the rest of
/// Bitwarden ran (`backup --pause-db`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DatabasePause {
    /// The container (`bitwarden-mssql`).
    pub container: String,
    /// When bwguard asked Docker to stop it, RFC 3339 UTC.
    pub stopped_at: String,
    /// When the engine was back (running and holding its files), RFC 3339
    /// UTC; absent if it did not come back while bwguard watched.
    pub started_at: Option<String>,
    /// Seconds from the stop to the engine being back.
    pub downtime_seconds: Option<f64>,
}

/// Bitwarden facts recorded in the manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BitwardenInfo {
    /// `COREVERSION` from `bitwarden.sh`.
    pub core_version: Option<String>,
    /// `WEBVERSION` from `bitwarden.sh`.
    pub web_version: Option<String>,
    /// `KEYCONNECTORVERSION` from `bitwarden.sh` (absent in older manifests).
    #[serde(default)]
    pub key_connector_version: Option<String>,
    /// `enable_scim` from config.yml (Setup's reading).
    pub enable_scim: Option<bool>,
    /// `built-in`, `external` or `docker-volume`.
    pub database: String,
    /// Image of each service in `bwdata/docker/docker-compose.yml`.
    #[serde(default)]
    pub images: std::collections::BTreeMap<String, String>,
    /// Bitwarden's installation id (`globalSettings__installation__id` in
    /// `env/global.override.env`): which install the snapshot is of
    /// (absent in older manifests, or where the file has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<String>,
}

/// Compression of the archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Compression {
    /// Always `gzip`.
    pub format: String,
    /// The deflate level used.
    pub level: u32,
}

/// The archive's name, size and digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveInfo {
    /// Always [`ARCHIVE`].
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// A part of the scope: a file or directory restored as one unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    /// Install-relative path, e.g. `bwdata/mssql`.
    pub path: String,
    /// Whether it existed when the snapshot was taken.
    pub present: bool,
}

/// Kind of an archive entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, stored as a link.
    Symlink,
}

/// One archive entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Install-relative, `/`-separated path.
    pub path: String,
    /// File, dir or symlink.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Bytes of content (0 for dirs and symlinks).
    pub size: u64,
    /// Hex SHA-256 of the content (files only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// Link target (symlinks only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// Permission bits (including setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Manifest {
    /// Whether this snapshot is of another Bitwarden installation than
    /// `installation`: both name an installation id, and they differ.
    pub fn of_other_installation(&self, installation: Option<&str>) -> bool {
        matches!((self.bitwarden.installation_id.as_deref(), installation), (Some(a), Some(b)) if a != b)
    }

    /// Total bytes of file content.
    pub fn content_size(&self) -> u64 {
        self.entries.iter().fold(0u64, |acc, e| acc.saturating_add(e.size))
    }

    /// Parses a manifest, refusing formats this build does not know.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("manifest.json is malformed: {e}"))?;
        if m.format != FORMAT {
            return Err(format!("manifest.json has format {}, this bwguard reads {FORMAT}", m.format));
        }
        Ok(m)
    }

    /// The manifest as pretty JSON with a final newline.
    pub fn render(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of `sha256sum` output for `path`, escaped the way GNU
/// `sha256sum` escapes names holding a backslash or a newline.
pub fn sum_line(sha256: &str, path: &str) -> String {
    if path.contains(['\\', '\n', '\r']) {
        let escaped = path.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r");
        format!("\\{sha256}  {escaped}\n")
    } else {
        format!("{sha256}  {path}\n")
    }
}

/// `SHA256SUMS` for the manifest's files, in archive order.
pub fn render_sums(entries: &[Entry]) -> String {
    entries.iter().filter_map(|e| e.sha256.as_ref().map(|h| sum_line(h, &e.path))).collect()
}

/// `data.tar.gz.sha256` for an archive digest.
pub fn render_archive_sum(sha256: &str) -> String {
    sum_line(sha256, ARCHIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_lines_escape_like_gnu_sha256sum() {
        assert_eq!(sum_line("ab", "bwdata/x"), "ab  bwdata/x\n");
        assert_eq!(sum_line("ab", "a\\b\nc"), "\\ab  a\\\\b\\nc\n");
    }

    #[test]
    fn entry_type_serializes_as_spec_names() {
        let j = serde_json::to_string(&EntryType::Symlink).unwrap();
        assert_eq!(j, "\"symlink\"");
    }
}
