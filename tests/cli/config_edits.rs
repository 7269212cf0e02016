//! Config edits through the real binary (SPEC safety rule 7 and "Details that
//! scripts and tests rely on"): `enable-scim`, `disable-scim` and `set` on the
//! fixtures and on hand-made variants of them (CRLF, inline comment, other
//! spellings of false, quotes, UTF-8 BOM, a key that is missing, duplicated
//! or only present as key-like text in a comment, block scalar or nested
//! mapping).
//!
//! A successful edit exits 0, changes exactly the one expected value (whole
//! files compared byte for byte), keeps the file's mode and owner and every
//! other file of the install, and comes after a snapshot with the right
//! reason whose archive holds the original bytes. A refused edit exits 5
//! (`--json`: code 5 and a kind), leaves the install byte-identical and writes
//! no snapshot. "Nothing to do" and `--dry-run` write nothing at all. Also:
//! the SCIM wiring warning and the next steps in order.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::{Run, TestEnv, assert_same_tree};

const CUR: &[u8] = include_bytes!("../../fixtures/config.yml");
const OLD: &[u8] = include_bytes!("../../fixtures/config-2022.6.yml");
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// The three lines Setup writes for `enable_scim` in the current fixture.
const SCIM_BLOCK: &str = "# \n# Enable SCIM\nenable_scim: false\n";
/// What `--add-missing` appends.
const APPENDED: &str = "# \n# Enable SCIM\nenable_scim: true\n";
const CSP: &str = "nginx_header_content_security_policy";
/// The owner config.yml is given before an edit when the tests run as root.
const OWNER: (u32, u32) = (1000, 1001);
/// The mtime config.yml is given before a run, so that a rewrite shows.
const OLD_MTIME: u64 = 1_700_000_000;

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("config text is UTF-8")
}

/// `src` with its one occurrence of `from` replaced by `to`.
#[track_caller]
fn swap(src: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(text(src).matches(from).count(), 1, "{from:?} must occur exactly once");
    text(src).replacen(from, to, 1).into_bytes()
}

/// `src` with every `\n` turned into `\r\n`.
fn crlf(src: &[u8]) -> Vec<u8> {
    text(src).replace('\n', "\r\n").into_bytes()
}

/// `CUR` without its `enable_scim` key and the comment lines above it.
fn cur_without_scim() -> Vec<u8> {
    swap(CUR, SCIM_BLOCK, "")
}

/// Asserts two files are byte-identical, showing the first line that differs.
#[track_caller]
fn same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let g: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').collect();
    let w: Vec<&[u8]> = want.split_inclusive(|&b| b == b'\n').collect();
    let at = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
    let show = |l: Option<&&[u8]>| l.map(|l| String::from_utf8_lossy(l).escape_debug().to_string());
    panic!(
        "{what}: bytes differ ({} vs {} bytes, {} vs {} lines); first difference at line {}:\n got: {:?}\nwant: {:?}",
        got.len(),
        want.len(),
        g.len(),
        w.len(),
        at + 1,
        show(g.get(at)),
        show(w.get(at)),
    );
}

/// A generated install whose config.yml holds `config`, with mode 0640, an
/// owner other than the runner's when root, and an mtime in the past.
fn env_with(config: &[u8]) -> TestEnv {
    let env = TestEnv::new();
    env.set_config(config);
    let path = env.config_path();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod config.yml");
    if bwguard::files::is_root() {
        std::os::unix::fs::chown(&path, Some(OWNER.0), Some(OWNER.1)).expect("chown config.yml");
    }
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(OLD_MTIME)))
        .expect("set mtime of config.yml");
    env
}

/// Everything about config.yml that an edit may or may not touch.
#[derive(Debug, PartialEq, Eq)]
struct FileState {
    bytes: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    mtime: (i64, i64),
}

fn file_state(env: &TestEnv) -> FileState {
    let m = fs::metadata(env.config_path()).expect("stat config.yml");
    FileState {
        bytes: env.config(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        ino: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
    }
}

/// `args` followed by `--json`.
fn with_json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().copied().chain(["--json"]).collect()
}

/// The snapshots `list --json` shows, newest first.
fn listed(env: &TestEnv) -> Vec<Value> {
    let r = env.run(&["list", "--json"]);
    r.ok();
    r.json()["snapshots"].as_array().expect("list --json has a snapshots array").clone()
}

/// Asserts that the store holds no snapshot: it is absent, or `list` shows
/// nothing and no snapshot directory (complete or not) is in it.
#[track_caller]
fn assert_no_snapshot(env: &TestEnv) {
    if !env.store.exists() {
        return;
    }
    assert_eq!(listed(env), Vec::<Value>::new(), "list shows a snapshot");
    let dirs: Vec<String> = fs::read_dir(&env.store)
        .expect("read the store")
        .map(|e| e.expect("store entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(dirs.is_empty(), "the store holds directories: {dirs:?}");
}

/// config.yml as archived in snapshot `id`, read with GNU tar.
fn archived_config(env: &TestEnv, id: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(env.snap_dir(id).join("data.tar.gz"))
        .arg("bwdata/config.yml")
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Runs the edit `args` (with `--json`) on an install whose config.yml is
/// `original` and checks everything a successful edit promises: exit 0,
/// config.yml equal to `expected`, mode and owner kept, nothing else in the
/// install changed, one snapshot with `reason` whose archive holds
/// `original`. Returns the install and the run's JSON document.
#[track_caller]
fn assert_edit(original: &[u8], args: &[&str], expected: &[u8], reason: &str) -> (TestEnv, Value) {
    let env = env_with(original);
    let tree = env.tree();
    let before = file_state(&env);
    let r = env.run(&with_json(args));
    r.ok();
    let doc = r.json();
    assert_eq!(doc["changed"], true, "{doc}");

    let after = file_state(&env);
    same_bytes(&after.bytes, expected, &format!("config.yml after `{}`", args.join(" ")));
    assert_eq!(after.mode, 0o640, "mode of config.yml");
    assert_eq!((after.uid, after.gid), (before.uid, before.gid), "owner of config.yml");

    // Nothing else in the install changed, and no temporary file is left.
    let mut tree_after = env.tree();
    let mut tree_before = tree;
    assert!(tree_before.remove("bwdata/config.yml").is_some());
    assert!(tree_after.remove("bwdata/config.yml").is_some());
    assert_same_tree(&tree_before, &tree_after);

    // One snapshot, taken first: it holds the original bytes.
    let snaps = listed(&env);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["reason"], reason);
    assert_eq!(snaps[0]["id"], doc["snapshot"], "the JSON names the snapshot taken");
    let id = snaps[0]["id"].as_str().expect("snapshot id");
    same_bytes(&archived_config(&env, id), original, "config.yml in the snapshot");
    (env, doc)
}

/// `enable-scim` on `CUR` with `enable_scim: false` written as `from` turns
/// that into `enable_scim: true` and nothing else.
#[track_caller]
fn assert_enables(from: &str) {
    let original = swap(CUR, "enable_scim: false\n", &format!("enable_scim: {from}\n"));
    let expected = swap(CUR, "enable_scim: false\n", "enable_scim: true\n");
    let (_env, doc) = assert_edit(&original, &["enable-scim"], &expected, "before enable-scim");
    assert_eq!(doc["value"], "true", "{from}");
}

/// Runs `args` on an install whose config.yml is `config`, plain and with
/// `--json`, and checks the refusal: exit 5 both times, a JSON error with
/// code 5 and `kind` whose message names config.yml, the install
/// byte-identical (config.yml's mtime and inode too) and no snapshot.
/// Returns the plain run and the JSON error object.
#[track_caller]
fn assert_refused(config: &[u8], args: &[&str], kind: &str) -> (Run, Value) {
    let env = env_with(config);
    let tree = env.tree();
    let before = file_state(&env);

    let plain = env.run(args);
    plain.code(5);
    let r = env.run(&with_json(args));
    r.code(5);
    let err = r.json()["error"].clone();
    assert_eq!(err["code"], 5, "{err}");
    assert_eq!(err["kind"], kind, "{err}");
    let message = err["message"].as_str().expect("error message");
    assert!(message.contains("config.yml"), "the message names the file: {message}");
    assert!(err["hint"].is_string(), "a hint: {err}");

    let after = file_state(&env);
    same_bytes(&after.bytes, config, "config.yml after a refusal");
    assert_eq!(after, before);
    assert_same_tree(&tree, &env.tree());
    assert_no_snapshot(&env);
    (plain, err)
}

// ---- successful edits ----

#[test]
fn enable_scim_on_the_current_fixture_changes_one_value_after_a_snapshot() {
    let expected = swap(CUR, "\nenable_scim: false\n", "\nenable_scim: true\n");
    let (env, doc) = assert_edit(CUR, &["enable-scim"], &expected, "before enable-scim");
    let line = text(CUR).lines().position(|l| l == "enable_scim: false").unwrap() + 1;
    assert_eq!(
        (&doc["key"], &doc["old"], &doc["value"], &doc["line"]),
        (&Value::from("enable_scim"), &Value::from("false"), &Value::from("true"), &Value::from(line))
    );
    let cd = format!("cd {}", env.install.display());
    assert_eq!(
        doc["next_steps"],
        serde_json::json!([format!("{cd} && ./bitwarden.sh rebuild && ./bitwarden.sh update")])
    );
    let id = doc["snapshot"].as_str().unwrap();
    let store = format!("--store {}", env.store.display());
    assert_eq!(
        doc["undo"],
        serde_json::json!([
            format!("{} {store} rollback {id} --only config", crate::support::BIN),
            format!(
                "{cd} && ./bitwarden.sh stop && {} {store} rollback {id} --yes && ./bitwarden.sh start",
                crate::support::BIN
            )
        ])
    );
    assert_eq!(doc["warnings"], serde_json::json!([]));

    // The snapshot records the state before, and verifies in depth.
    let snaps = listed(&env);
    assert_eq!(snaps[0]["bitwarden"]["enable_scim"], false);
    let id = doc["snapshot"].as_str().unwrap();
    env.run(&["verify", id, "--deep"]).ok();

    // Rolling the config back restores the original bytes, mode and owner.
    let edited = file_state(&env);
    env.run(&["rollback", id, "--only", "config", "--yes"]).ok();
    let back = file_state(&env);
    same_bytes(&back.bytes, CUR, "config.yml after rollback --only config");
    assert_eq!((back.mode, back.uid, back.gid), (edited.mode, edited.uid, edited.gid));
}

#[test]
fn enable_scim_keeps_crlf_line_endings_everywhere() {
    let expected = crlf(&swap(CUR, "enable_scim: false\n", "enable_scim: true\n"));
    assert!(!text(&expected).replace("\r\n", "").contains('\n'));
    assert_edit(&crlf(CUR), &["enable-scim"], &expected, "before enable-scim");
}

#[test]
fn enable_scim_keeps_an_inline_comment() {
    let original =
        swap(CUR, "enable_scim: false\n", "enable_scim: false # keep off until SCIM is licensed\n");
    let expected = swap(CUR, "enable_scim: false\n", "enable_scim: true # keep off until SCIM is licensed\n");
    assert_edit(&original, &["enable-scim"], &expected, "before enable-scim");
}

#[test]
fn enable_scim_writes_canonical_true_over_capitalised_false() {
    assert_enables("False");
}

#[test]
fn enable_scim_writes_canonical_true_over_no() {
    assert_enables("no");
}

#[test]
fn enable_scim_writes_canonical_true_over_double_quoted_false() {
    assert_enables("\"false\"");
}

#[test]
fn enable_scim_writes_canonical_true_over_single_quoted_false() {
    assert_enables("'false'");
}

#[test]
fn enable_scim_keeps_a_utf8_bom() {
    let original = [BOM, CUR].concat();
    let expected = [BOM, &swap(CUR, "enable_scim: false\n", "enable_scim: true\n")].concat();
    assert_edit(&original, &["enable-scim"], &expected, "before enable-scim");
}

#[test]
fn enable_scim_on_a_bom_crlf_file_with_quoted_value_and_comment() {
    let with = |v: &str| [BOM, &crlf(&swap(CUR, "enable_scim: false\n", v))].concat();
    let original = with("enable_scim: 'No'   # off for now\n");
    let expected = with("enable_scim: true   # off for now\n");
    assert_edit(&original, &["enable-scim"], &expected, "before enable-scim");
}

#[test]
fn add_missing_appends_three_lines_to_a_2022_6_file() {
    let expected = [OLD, APPENDED.as_bytes()].concat();
    let (_env, doc) = assert_edit(OLD, &["enable-scim", "--add-missing"], &expected, "before enable-scim");
    assert_eq!(doc["old"], Value::Null, "{doc}");
    assert_eq!(doc["line"], text(&expected).lines().count(), "{doc}");
    // The removed keys are left as they were.
    let after = text(&expected);
    assert!(after.contains("\ncompose_version: \n"));
    assert!(after.contains("\ncaptcha: false\n"));
}

#[test]
fn add_missing_appends_crlf_lines_to_a_crlf_2022_6_file() {
    let expected = [crlf(OLD), crlf(APPENDED.as_bytes())].concat();
    assert!(expected.ends_with(b"# \r\n# Enable SCIM\r\nenable_scim: true\r\n"));
    assert_edit(&crlf(OLD), &["enable-scim", "--add-missing"], &expected, "before enable-scim");
}

#[test]
fn add_missing_ignores_key_text_in_a_block_scalar_and_appends_the_real_key() {
    let original =
        swap(&cur_without_scim(), &format!("{CSP}: \n"), &format!("{CSP}: |\n  enable_scim: true\n"));
    let expected = [original.as_slice(), APPENDED.as_bytes()].concat();
    assert_edit(&original, &["enable-scim", "--add-missing"], &expected, "before enable-scim");
}

#[test]
fn add_missing_on_a_file_that_has_the_key_only_edits_it() {
    let expected = swap(CUR, "enable_scim: false\n", "enable_scim: true\n");
    assert_edit(CUR, &["enable-scim", "--add-missing"], &expected, "before enable-scim");
}

#[test]
fn disable_scim_flips_an_enabled_file_back() {
    let enabled = swap(CUR, "enable_scim: false\n", "enable_scim: true\n");
    let (env, doc) = assert_edit(&enabled, &["disable-scim"], CUR, "before disable-scim");
    assert_eq!((&doc["old"], &doc["value"]), (&Value::from("true"), &Value::from("false")));
    assert_eq!(listed(&env)[0]["bitwarden"]["enable_scim"], true);
}

#[test]
fn set_http_port_changes_only_that_line() {
    let expected = swap(CUR, "\nhttp_port: 80\n", "\nhttp_port: 8080\n");
    assert_edit(CUR, &["set", "http_port", "8080"], &expected, "before set http_port");
}

#[test]
fn set_ssl_versions_fills_an_empty_value() {
    let expected = swap(CUR, "\nssl_versions: \n", "\nssl_versions: TLSv1.2\n");
    assert_edit(CUR, &["set", "ssl_versions", "TLSv1.2"], &expected, "before set ssl_versions");
}

#[test]
fn set_url_changes_only_that_line() {
    let expected = swap(CUR, "\nurl: https://bitwarden.example.com\n", "\nurl: https://vault.example.org\n");
    assert_edit(CUR, &["set", "url", "https://vault.example.org"], &expected, "before set url");
}

#[test]
fn enable_scim_keeps_trailing_spaces_and_the_spacing_after_the_colon() {
    for (from, to) in [
        ("enable_scim: false   \n", "enable_scim: true   \n"),
        ("enable_scim:   false\n", "enable_scim:   true\n"),
        ("enable_scim: false\t# tab before comment\n", "enable_scim: true\t# tab before comment\n"),
    ] {
        let original = swap(CUR, "enable_scim: false\n", from);
        let expected = swap(CUR, "enable_scim: false\n", to);
        assert_edit(&original, &["enable-scim"], &expected, "before enable-scim");
    }
}

#[test]
fn enable_scim_fills_an_empty_value() {
    let original = swap(CUR, "enable_scim: false\n", "enable_scim: \n");
    let expected = swap(CUR, "enable_scim: false\n", "enable_scim: true\n");
    assert_edit(&original, &["enable-scim"], &expected, "before enable-scim");
}

#[test]
fn add_missing_keeps_the_bom_of_a_2022_6_file() {
    let original = [BOM, OLD].concat();
    let expected = [BOM, OLD, APPENDED.as_bytes()].concat();
    assert_edit(&original, &["enable-scim", "--add-missing"], &expected, "before enable-scim");
}

#[test]
fn set_enable_scim_writes_the_canonical_value_and_names_the_key_in_the_reason() {
    let expected = swap(CUR, "enable_scim: false\n", "enable_scim: true\n");
    assert_edit(CUR, &["set", "enable_scim", "Yes"], &expected, "before set enable_scim");
}

#[test]
fn set_to_an_empty_value_keeps_the_trailing_space() {
    let expected = swap(CUR, "\nhttps_port: 443\n", "\nhttps_port: \n");
    assert_edit(CUR, &["set", "https_port", ""], &expected, "before set https_port");
}

// ---- refusals: exit 5, nothing changed, no snapshot ----

#[test]
fn a_duplicate_enable_scim_key_is_refused() {
    let original = [CUR, APPENDED.as_bytes()].concat();
    let first = text(CUR).lines().position(|l| l == "enable_scim: false").unwrap() + 1;
    let second = text(&original).lines().count();
    let (plain, err) = assert_refused(&original, &["enable-scim"], "duplicate-key");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("enable_scim"), "{message}");
    assert!(message.contains(&format!("{first}, {second}")), "names both lines: {message}");
    plain.says("more than once");
}

#[test]
fn a_duplicate_of_another_key_is_refused_too() {
    let original = swap(
        CUR,
        "\nurl: https://bitwarden.example.com\n",
        "\nurl: https://bitwarden.example.com\nurl: https://other.example.com\n",
    );
    let (_, err) = assert_refused(&original, &["enable-scim"], "duplicate-key");
    assert!(err["message"].as_str().unwrap().contains("`url`"), "{err}");
}

#[test]
fn key_only_in_a_comment_is_missing() {
    let original = swap(CUR, "\nenable_scim: false\n", "\n# enable_scim: false\n");
    let (plain, err) = assert_refused(&original, &["enable-scim"], "missing-key");
    let hint = err["hint"].as_str().unwrap();
    assert!(hint.contains("./bitwarden.sh update") && hint.contains("--add-missing"), "{hint}");
    plain.says("./bitwarden.sh update");
}

#[test]
fn key_text_inside_a_block_scalar_is_not_the_key() {
    let original =
        swap(&cur_without_scim(), &format!("{CSP}: \n"), &format!("{CSP}: |\n  enable_scim: true\n"));
    assert_refused(&original, &["enable-scim"], "missing-key");
}

#[test]
fn key_inside_a_nested_mapping_is_not_the_key() {
    let original = swap(&cur_without_scim(), "\nreal_ips: \n", "\nreal_ips:\n  enable_scim: true\n");
    assert_refused(&original, &["enable-scim"], "missing-key");
}

#[test]
fn a_2022_6_file_without_add_missing_is_refused_with_the_update_hint() {
    let (plain, err) = assert_refused(OLD, &["enable-scim"], "missing-key");
    let hint = err["hint"].as_str().unwrap();
    assert!(hint.contains("./bitwarden.sh update"), "{hint}");
    assert!(hint.contains("--add-missing"), "{hint}");
    plain.says("enable_scim").says("./bitwarden.sh update").says("--add-missing");
}

#[test]
fn an_unknown_key_is_refused_with_a_suggestion() {
    let (plain, err) = assert_refused(CUR, &["set", "enable_scm", "true"], "unknown-key");
    assert!(err["message"].as_str().unwrap().contains("enable_scm"), "{err}");
    assert!(err["hint"].as_str().unwrap().contains("enable_scim"), "{err}");
    plain.says("did you mean `enable_scim`?");
}

#[test]
fn setting_a_removed_key_is_refused() {
    for key in ["captcha", "compose_version"] {
        let (_, err) = assert_refused(OLD, &["set", key, "true"], "unknown-key");
        assert!(err["hint"].as_str().unwrap().contains(&format!("removed `{key}`")), "{err}");
    }
}

#[test]
fn a_value_of_the_wrong_type_is_refused() {
    for (key, value) in [("ssl", "maybe"), ("http_port", "70000"), ("http_port", "eighty")] {
        let (plain, err) = assert_refused(CUR, &["set", key, value], "wrong-type");
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(key) && message.contains(value), "{message}");
        plain.says(&format!("give `{key}` "));
    }
}

#[test]
fn unparsable_yaml_is_refused() {
    for original in [
        swap(CUR, "\nurl: https://bitwarden.example.com\n", "\nurl: [https://bitwarden.example.com\n"),
        swap(CUR, "\nurl: https://bitwarden.example.com\n", "\nurl: \"https://bitwarden.example.com\n"),
        swap(CUR, "\nssl: true\n", "\nssl: true\n\tssl_versions: x\n"),
    ] {
        assert_refused(&original, &["enable-scim"], "unparsable");
    }
}

#[test]
fn a_value_that_is_not_one_line_is_refused() {
    let original = swap(CUR, &format!("{CSP}: \n"), &format!("{CSP}: |\n  default-src 'self'\n"));
    assert_refused(&original, &["set", CSP, "default-src 'none'"], "not-one-line");
}

#[test]
fn a_file_that_is_not_utf8_is_refused() {
    let original =
        swap(CUR, "\nurl: https://bitwarden.example.com\n", "\nurl: https://bitwarden.\u{e9}xample.com\n");
    let latin1: Vec<u8> = text(&original).chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    assert_refused(&latin1, &["enable-scim"], "not-utf8");
}

#[test]
fn a_symlinked_config_yml_is_refused_and_left_alone() {
    let env = env_with(CUR);
    let target = env.dir.path().join("elsewhere.yml");
    fs::write(&target, CUR).unwrap();
    fs::remove_file(env.config_path()).unwrap();
    std::os::unix::fs::symlink(&target, env.config_path()).unwrap();
    let tree = env.tree();
    let r = env.run(&["enable-scim", "--json"]);
    r.code(5);
    assert_eq!(r.json()["error"]["code"], 5);
    assert!(fs::symlink_metadata(env.config_path()).unwrap().file_type().is_symlink());
    same_bytes(&fs::read(&target).unwrap(), CUR, "the link's target");
    assert_same_tree(&tree, &env.tree());
    assert_no_snapshot(&env);
}

// ---- nothing to do, dry run ----

#[test]
fn already_enabled_is_nothing_to_do_and_writes_nothing() {
    for value in ["true", "True", "\"true\""] {
        let original = swap(CUR, "enable_scim: false\n", &format!("enable_scim: {value}\n"));
        let env = env_with(&original);
        let tree = env.tree();
        let before = file_state(&env);
        env.run(&["enable-scim"]).ok().says("nothing to do");
        let r = env.run(&["enable-scim", "--json"]);
        r.ok();
        let doc = r.json();
        assert_eq!(
            (&doc["changed"], &doc["snapshot"]),
            (&Value::Bool(false), &Value::Null),
            "{value}: {doc}"
        );
        assert_eq!(file_state(&env), before, "{value}: config.yml was rewritten");
        assert_same_tree(&tree, &env.tree());
        assert_no_snapshot(&env);
    }
}

#[test]
fn set_to_the_current_value_is_nothing_to_do() {
    for args in [&["set", "http_port", "0080"][..], &["set", "ssl_versions", ""], &["disable-scim"]] {
        let env = env_with(CUR);
        let before = file_state(&env);
        env.run(args).ok().says("nothing to do");
        assert_eq!(file_state(&env), before, "{args:?}: config.yml was rewritten");
        assert_no_snapshot(&env);
    }
}

#[test]
fn dry_run_changes_nothing_and_takes_no_snapshot() {
    for (original, args) in [
        (CUR, &["enable-scim", "--dry-run"][..]),
        (CUR, &["set", "http_port", "8080", "--dry-run"]),
        (OLD, &["enable-scim", "--add-missing", "--dry-run"]),
    ] {
        let env = env_with(original);
        let tree = env.tree();
        let before = file_state(&env);
        env.run(args).ok().says("would");
        let r = env.run(&with_json(args));
        r.ok();
        assert_eq!(r.json()["dry_run"], true, "{args:?}");
        assert_eq!(file_state(&env), before, "{args:?}: config.yml was rewritten");
        assert_same_tree(&tree, &env.tree());
        assert_no_snapshot(&env);
    }
}

// ---- what it says ----

#[test]
fn enable_scim_warns_when_generated_config_is_off_and_lists_next_steps_in_order() {
    for flag in ["generate_compose_config", "generate_nginx_config"] {
        let original = swap(CUR, &format!("\n{flag}: true\n"), &format!("\n{flag}: false\n"));
        let expected = swap(&original, "enable_scim: false\n", "enable_scim: true\n");
        let env = env_with(&original);
        let r = env.run(&["enable-scim"]);
        r.ok();
        same_bytes(&env.config(), &expected, flag);
        assert!(r.stderr.contains("warning:") && r.stderr.contains(flag), "{flag}: stderr:\n{}", r.stderr);
        assert!(r.stderr.contains("SCIM will not be wired"), "{flag}: stderr:\n{}", r.stderr);
        let rebuild = r.stderr.find("./bitwarden.sh rebuild").expect("rebuild step");
        let update = r.stderr.find("./bitwarden.sh update").expect("update step");
        assert!(rebuild < update, "rebuild comes before update:\n{}", r.stderr);
    }
    // With the generated files on there is nothing to warn about.
    let env = env_with(CUR);
    let r = env.run(&["enable-scim"]);
    r.ok();
    assert!(!r.stderr.contains("will not be wired"), "stderr:\n{}", r.stderr);
    let rebuild = r.stderr.find("./bitwarden.sh rebuild").expect("rebuild step");
    let update = r.stderr.find("./bitwarden.sh update").expect("update step");
    assert!(rebuild < update, "rebuild comes before update:\n{}", r.stderr);
}

#[test]
fn the_scim_warning_is_on_stderr_in_json_mode_too() {
    let original = swap(CUR, "\ngenerate_compose_config: true\n", "\ngenerate_compose_config: false\n");
    let env = env_with(&original);
    let r = env.run(&["enable-scim", "--json"]);
    r.ok();
    let doc = r.json();
    assert_eq!(doc["warnings"].as_array().map(Vec::len), Some(1), "{doc}");
    assert!(r.stderr.contains("generate_compose_config"), "stderr:\n{}", r.stderr);
}

#[test]
fn disable_scim_on_a_file_without_the_key_is_nothing_to_do() {
    // Setup reads a missing enable_scim as false: SCIM is already off.
    let env = env_with(OLD);
    let before = file_state(&env);
    env.run(&["disable-scim"]).ok().says("nothing to do");
    assert_eq!(file_state(&env), before);
    assert_no_snapshot(&env);
}

#[test]
fn an_empty_url_is_refused() {
    // Setup marks url "(Required)".
    let (_, err) = assert_refused(CUR, &["set", "url", ""], "wrong-type");
    assert!(err["message"].as_str().unwrap().contains("url"));
}
