//! Tests of reading and editing config.yml, on the fixtures and by case.

use yaml_rust2::Yaml;

use super::edit::verify;
use super::parse::parse_body;
use super::*;

const CUR: &[u8] = include_bytes!("../../../fixtures/config.yml");
const OLD: &[u8] = include_bytes!("../../../fixtures/config-2022.6.yml");

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

fn changed(r: Result<Edit, ConfigError>) -> Vec<u8> {
    match r {
        Ok(Edit::Changed { bytes, .. }) => bytes,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn set(b: &[u8], key: &str, value: &str) -> Vec<u8> {
    changed(plan_set(b, key, value, false))
}

/// `src` with the one occurrence of `from` replaced by `to`.
fn swap(src: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(text(src).matches(from).count(), 1, "{from}");
    text(src).replacen(from, to, 1).into_bytes()
}

fn err(r: Result<Edit, ConfigError>) -> ConfigError {
    r.expect_err("expected a refusal")
}

#[test]
fn enables_scim_on_current_fixture() {
    let r = plan_set(CUR, "enable_scim", "true", false).unwrap();
    let line = text(CUR).lines().position(|l| l.starts_with("enable_scim:")).unwrap() + 1;
    let Edit::Changed { key, old, new, line: l, bytes } = r else { panic!("{r:?}") };
    assert_eq!((key.as_str(), old.as_deref(), new.as_str(), l), ("enable_scim", Some("false"), "true", line));
    assert_eq!(bytes, swap(CUR, "enable_scim: false\n", "enable_scim: true\n"));
    let again = plan_set(&bytes, "enable_scim", "TRUE", false).unwrap();
    assert_eq!(again, Edit::Unchanged { key: "enable_scim".into(), value: "true".into() });
}

#[test]
fn old_fixture_lacks_scim() {
    let e = err(plan_set(OLD, "enable_scim", "true", false));
    assert_eq!(e.kind(), "missing-key");
    assert!(e.hint().unwrap().contains("`./bitwarden.sh update`"));
    let r = plan_set(OLD, "enable_scim", "true", true).unwrap();
    let Edit::Changed { old: None, line, bytes, .. } = r else { panic!("{r:?}") };
    assert_eq!(bytes, [OLD, b"# \n# Enable SCIM\nenable_scim: true\n"].concat());
    assert_eq!(line, text(&bytes).lines().count());
}

#[test]
fn removed_keys_are_left_alone() {
    let out = set(OLD, "ssl", "off");
    assert_eq!(out, swap(OLD, "\nssl: true\n", "\nssl: false\n"));
    assert!(text(&out).contains("\ncompose_version: \n# \n# Configure Nginx for Captcha.\ncaptcha: false\n"));
    let e = err(plan_set(OLD, "captcha", "true", false));
    assert_eq!((e.kind(), e.hint().unwrap().contains("removed `captcha`")), ("unknown-key", true));
    let csp = "nginx_header_content_security_policy";
    let out = set(OLD, csp, "default-src 'none'");
    assert_eq!(Config::parse(&out).unwrap().raw(csp), Some("default-src 'none'"));
    let start = text(OLD).find(csp).unwrap();
    assert_eq!(out[..start], OLD[..start]);
    let tail = text(OLD).find("\n# \n# Communicate").unwrap();
    assert!(out.ends_with(&OLD[tail..]));
}

#[test]
fn crlf_stays_crlf() {
    let crlf = |b: &[u8]| text(b).replace('\n', "\r\n").into_bytes();
    let out = set(&crlf(CUR), "enable_scim", "true");
    assert_eq!(out, crlf(&swap(CUR, "enable_scim: false", "enable_scim: true")));
    let out = changed(plan_set(&crlf(OLD), "enable_scim", "yes", true));
    assert_eq!(out, [crlf(OLD), b"# \r\n# Enable SCIM\r\nenable_scim: true\r\n".to_vec()].concat());
}

#[test]
fn inline_comment_and_bool_forms() {
    let out = set(b"url: x\nenable_scim: false # note\n", "enable_scim", "true");
    assert_eq!(out, b"url: x\nenable_scim: true # note\n");
    for v in ["False", "no", "\"false\"", "'false'", "OFF", "n", "'No'  # c"] {
        let out = set(format!("enable_scim: {v}\n").as_bytes(), "enable_scim", "true");
        let rest = v.find("  #").map_or("", |i| &v[i..]);
        assert_eq!(text(&out), format!("enable_scim: true{rest}\n"), "{v}");
    }
    for v in ["true", "True", "\"true\"", "'yes'", "ON # c"] {
        let r = plan_set(format!("enable_scim: {v}\n").as_bytes(), "enable_scim", "Yes", false);
        assert_eq!(r.unwrap(), Edit::Unchanged { key: "enable_scim".into(), value: "true".into() });
    }
}

#[test]
fn duplicate_keys_are_refused() {
    let src = b"enable_scim: false\nurl: x\nenable_scim: true\n";
    let e = err(plan_set(src, "enable_scim", "true", false));
    assert!(
        matches!(&e, ConfigError::DuplicateKey { key, lines } if key == "enable_scim" && lines == &[1, 3])
    );
    assert_eq!(e.to_string(), "key `enable_scim` appears more than once (lines 1, 3)");
    assert!(matches!(Config::parse(src), Err(ConfigError::DuplicateKey { .. })));
}

#[test]
fn key_text_that_is_not_a_key_does_not_count() {
    let csp = "nginx_header_content_security_policy";
    for src in [
        "url: x\n# enable_scim: true\n".to_string(),
        format!("{csp}: |\n  enable_scim: true\nurl: x\n"),
        "url: \"a\n  enable_scim: true\"\n".to_string(),
        "real_ips:\n  enable_scim: x\n".to_string(),
    ] {
        let e = err(plan_set(src.as_bytes(), "enable_scim", "true", false));
        assert_eq!(e.kind(), "missing-key", "{src}");
        let out = changed(plan_set(src.as_bytes(), "enable_scim", "true", true));
        assert_eq!(text(&out), format!("{src}# \n# Enable SCIM\nenable_scim: true\n"));
    }
    let block = format!("{csp}: |\n  enable_scim: true\nurl: x\n");
    assert_eq!(err(plan_set(block.as_bytes(), csp, "x", false)).kind(), "not-one-line");
    let nested = b"real_ips:\n  enable_scim: x\n";
    assert!(matches!(err(plan_set(nested, "real_ips", "", false)), ConfigError::NotOneLine { line: 1, .. }));
    for src in ["url: a\n  b\n", "url: \"a\n  b\"\n", "url: 'a\n  b'\n", "url: &u x\n", "url:\n  x\n"] {
        assert_eq!(err(plan_set(src.as_bytes(), "url", "y", false)).kind(), "not-one-line", "{src}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_refused() {
    let e = err(plan_set(CUR, "enable_scm", "true", false));
    assert_eq!((e.kind(), e.to_string().contains("`enable_scm`")), ("unknown-key", true));
    assert!(e.hint().unwrap().contains("did you mean `enable_scim`?"));
    assert!(err(plan_set(CUR, "zzz", "1", false)).hint().unwrap().contains("enable_built_in_ms_sql"));
    for (k, v) in [
        ("ssl", "maybe"),
        ("http_port", "70000"),
        ("http_port", "abc"),
        ("http_port", "-1"),
        ("url", "a\nb"),
        ("real_ips", "[a, [b]]"),
        ("real_ips", "10.0.0.1"),
    ] {
        let e = err(plan_set(CUR, k, v, false));
        assert!(matches!(&e, ConfigError::WrongType { key, .. } if key == k), "{k} {v}");
        assert!(e.hint().unwrap().starts_with(&format!("give `{k}` ")));
    }
    let r = plan_set(CUR, "http_port", "0080", false).unwrap();
    assert_eq!(r, Edit::Unchanged { key: "http_port".into(), value: "80".into() });
}

#[test]
fn unreadable_files_are_refused() {
    let e = err(plan_set(b"url: [unclosed\nenable_scim: false\n", "enable_scim", "true", false));
    assert!(matches!(e, ConfigError::Unparsable { line: Some(2), .. }), "{e}");
    assert_eq!(e.kind(), "unparsable");
    for src in [&b""[..], b"# only a comment\n", b"- a\n", b"just text\n", b"---\n"] {
        assert!(matches!(Config::parse(src), Err(ConfigError::NotMapping)), "{src:?}");
    }
    assert!(matches!(Config::parse(b"url: \xff\n"), Err(ConfigError::NotUtf8)));
    assert!(matches!(Config::parse(b"a: 1\n---\nb: 2\n"), Err(ConfigError::Unparsable { .. })));
}

#[test]
fn bom_is_kept() {
    let with_bom = [b"\xEF\xBB\xBF", CUR].concat();
    let out = set(&with_bom, "enable_scim", "true");
    assert_eq!(
        out,
        [b"\xEF\xBB\xBF".to_vec(), swap(CUR, "enable_scim: false", "enable_scim: true")].concat()
    );
    assert_eq!(Config::parse(&with_bom).unwrap().raw("url"), Some("https://bitwarden.example.com"));
}

#[test]
fn empty_values_are_set_and_cleared() {
    let out = set(CUR, "ssl_versions", "TLSv1.2");
    assert_eq!(out, swap(CUR, "ssl_versions: \n", "ssl_versions: TLSv1.2\n"));
    assert_eq!(set(&out, "ssl_versions", ""), CUR);
    assert_eq!(set(b"url: x\nssl_versions:", "ssl_versions", "a"), b"url: x\nssl_versions: a");
    assert_eq!(set(b"ssl_versions: # c\n", "ssl_versions", "a"), b"ssl_versions: a # c\n");
    assert_eq!(set(b"ssl_versions:   # c\n", "ssl_versions", "a"), b"ssl_versions: a  # c\n");
    assert_eq!(set(b"http_port: 80 # c\n", "http_port", ""), b"http_port:  # c\n");
    let key_connector = set(CUR, "enable_key_connector", "on");
    let line = text(&key_connector).lines().find(|l| l.starts_with("enable_key_connector:"));
    assert_eq!(line.unwrap().split_whitespace().nth(1), Some("true"));
}

#[test]
fn text_values_round_trip() {
    let csp = "nginx_header_content_security_policy";
    let v = "default-src 'self'; x: y #z";
    let out = set(CUR, csp, v);
    assert_eq!(out, swap(CUR, &format!("{csp}: \n"), &format!("{csp}: \"{v}\"\n")));
    for v in
        ["true", "123", " lead", "a: b", "# x", "'q'", "\"dq\" \\n", "ünï", "https://h/x?y=1#f", "~", "[a]"]
    {
        let out = set(CUR, csp, v);
        assert_eq!(Config::parse(&out).unwrap().raw(csp), Some(v), "{v}");
        let (pre, post) = text(CUR).split_once(&format!("{csp}: \n")).unwrap();
        assert!(text(&out).starts_with(&format!("{pre}{csp}: ")) && text(&out).ends_with(post));
    }
    assert_eq!(set(b"url: 'it''s'\n", "url", "x"), b"url: x\n");
    assert_eq!(set(b"url: \"a\\\"b\" # c\n", "url", "x"), b"url: x # c\n");
    assert_eq!(set(b"\"url\" : a\n", "url", "b"), b"\"url\" : b\n");
}

#[test]
fn tagged_scalars_read_as_the_loader_reads_them() {
    for v in [
        "!!bool true",
        "!!bool yes",
        "!!int 12",
        "!!int 0x1F",
        "!!int x",
        "!!float 1",
        "!!float 0x1F",
        "!!float .inf",
        "!!float inf",
        "!!null ~",
        "!!null x",
        "!!str 5",
        "!!binary aGk=",
        "!custom 5",
        "!!bool 'x'",
        "[!!bool x, !!int 3, !!str y]",
        "5",
        "'5'",
    ] {
        let doc = format!("k: {v}\n");
        let ours = parse_body(&doc).unwrap().remove(0).value;
        let loaded = yaml_rust2::YamlLoader::load_from_str(&doc).unwrap();
        let theirs = loaded[0].as_hash().unwrap().get(&Yaml::String("k".into())).unwrap();
        assert_eq!(&ours, theirs, "{v}");
    }
}

#[test]
fn lists_are_written_as_flow_sequences() {
    let out = set(CUR, "real_ips", "[10.0.0.0/8, \"172.16.0.0/12\"]");
    assert_eq!(out, swap(CUR, "real_ips: \n", "real_ips: ['10.0.0.0/8', '172.16.0.0/12']\n"));
    let again = plan_set(&out, "real_ips", "['10.0.0.0/8','172.16.0.0/12']", false).unwrap();
    assert!(matches!(again, Edit::Unchanged { .. }));
    let other = set(&out, "real_ips", "['192.168.0.0/16']");
    assert_eq!(other, swap(CUR, "real_ips: \n", "real_ips: ['192.168.0.0/16']\n"));
    assert_eq!(set(&other, "real_ips", ""), CUR);
    // Found by the fuzzer: a tagged item is not the string it holds.
    for v in ["[10.0.0.0,!!bool 1 7/8\"2.16.0.0/12\"]", "[!!int x]", "[!!null a]"] {
        assert_eq!(err(plan_set(CUR, "real_ips", v, false)).kind(), "wrong-type", "{v}");
    }
    assert_eq!(set(CUR, "real_ips", "[!!str 10.0.0.0/8]"), set(CUR, "real_ips", "['10.0.0.0/8']"));
}

#[test]
fn missing_trailing_newline_and_verify_net() {
    let out = changed(plan_set(b"url: x", "enable_scim", "true", true));
    assert_eq!(out, b"url: x\n# \n# Enable SCIM\nenable_scim: true\n");
    let e = err(plan_set(b"url: x\n...\n", "enable_scim", "true", true));
    assert_eq!(e.kind(), "verify-failed");
    let entries = parse_body(text(CUR)).unwrap();
    let tampered = text(CUR).replace("ssl: true", "ssl: false").replace("scim: false", "scim: true");
    let e = verify(&entries, &tampered, "enable_scim", &Yaml::Boolean(true)).unwrap_err();
    assert_eq!(e.to_string(), "the edit did not verify: `ssl` does not read as intended after the edit");
}

#[test]
fn config_reads_fixture() {
    let c = Config::parse(CUR).unwrap();
    assert!(c.keys().eq(KNOWN_KEYS.iter().map(|k| k.name)));
    assert_eq!(c.raw("url"), Some("https://bitwarden.example.com"));
    assert_eq!((c.raw("http_port"), c.raw("ssl_versions"), c.raw("nope")), (Some("80"), Some(""), None));
    assert_eq!((c.bool_value("enable_scim"), c.bool_value("ssl")), (Some(false), Some(true)));
    assert_eq!((c.bool_value("url"), c.has("real_ips"), c.has("captcha")), (None, true, false));
    let old = Config::parse(OLD).unwrap();
    assert_eq!((old.has("enable_scim"), old.raw("captcha")), (false, Some("false")));
    for k in KNOWN_KEYS {
        assert!(text(CUR).contains(&format!("# \n# {}\n", k.description)), "{}", k.name);
        assert_eq!(known_key(k.name), Some(k));
    }
    assert_eq!(KNOWN_KEYS.len(), 21);
    let bools = KNOWN_KEYS.iter().filter(|k| k.ty == KeyType::Bool).count();
    assert_eq!(bools, 9);
}

#[test]
fn regression_fuzz_duplicate_null_keys_are_refused() {
    // Found by the config_edit fuzz target: `~` and an empty key are
    // both null, so YAML sees a duplicate that a string compare misses;
    // a lone CR is a line break.
    let r = plan_set(b"~  : |\n  c\r:", "ssl_versions", "TLSv1.2", true);
    assert!(matches!(r, Err(ConfigError::Unparsable { .. })), "{r:?}");
}
