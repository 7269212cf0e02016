//! Fuzzes the config editor (SPEC safety rule 7).
//!
//! Input: one flag byte (bit 0: `add_missing`), then `KEY`, a NUL, `VALUE`, a
//! NUL, and the rest is the config.yml bytes. Key and value are read as lossy
//! UTF-8. `plan_set` must return (never panic), and what it returns must pass
//! the same independent judge as `tests/config_props.rs`: a refusal, an
//! `Unchanged` that is true, or a change of exactly that key's value on one
//! line (or three appended lines), read back with yaml-rust2's `YamlLoader`;
//! and making the same edit again on the result changes nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;

mod config_oracle;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let (Some(key), Some(value)) = (parts.next(), parts.next()) else { return };
    let file = parts.next().unwrap_or_default();
    let (key, value) = (String::from_utf8_lossy(key), String::from_utf8_lossy(value));
    let add_missing = flags & 1 == 1;
    let result = bwguard::install::config::plan_set(file, &key, &value, add_missing);
    if let Err(why) = config_oracle::check(file, &key, &value, add_missing, &result) {
        panic!(
            "{why}\nkey {key:?} value {value:?} add_missing {add_missing}\nresult {result:?}\nfile {:?}",
            String::from_utf8_lossy(file)
        );
    }
    // A change that was made holds: making it again changes nothing.
    if let Ok(bwguard::install::config::Edit::Changed { bytes, .. }) = &result {
        let again = bwguard::install::config::plan_set(bytes, &key, &value, false);
        assert!(matches!(again, Ok(bwguard::install::config::Edit::Unchanged { .. })), "not idempotent: {again:?}");
    }
    // Reading alone never panics either.
    let _ = bwguard::install::config::Config::parse(file);
});
