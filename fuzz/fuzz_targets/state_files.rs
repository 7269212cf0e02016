//! Fuzzes what bwguard reads from its store's small state files and from a
//! remote's signature object: bytes another user may have written if the
//! store were not trusted, or that anyone with write access to a bucket
//! did write. Each must end in a value or an error, never a panic:
//!
//! 1. as the lock file: the holder it names is at most one line of at most
//!    512 bytes (as text) with no control character, so a planted lock file
//!    can neither flood nor steer the terminal;
//! 2. as a rollback journal: one that parses and passes `check_units` names
//!    only parts beneath the data directory or bitwarden.sh, never through
//!    `..`;
//! 3. as `manifest.json.sig` for a fixed manifest: with no key trusted it is
//!    never accepted, and a public key that parses prints back to itself.

#![no_main]

use std::path::{Component, Path};

use bwguard::engine::lock::holder;
use bwguard::engine::restore::{Journal, check_units};
use bwguard::offsite::sign::{PublicKey, Trust};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let named = holder(data);
    assert!(!named.chars().any(char::is_control), "control character in {named:?}");
    assert!(named.len() <= 512 * 10, "{} bytes", named.len());

    if let Ok(journal) = Journal::parse(data)
        && check_units("bwdata", &journal.units).is_ok()
    {
        for u in &journal.units {
            let rel = Path::new(&u.rel);
            assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{:?}", u.rel);
            assert!(u.rel == "bitwarden.sh" || u.rel == "bwdata" || u.rel.starts_with("bwdata/"), "{:?}", u.rel);
        }
    }

    assert!(Trust::default().check("r", "20261202T000000Z", b"{}\n", Some(data)).is_err());
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(key) = PublicKey::parse(text)
    {
        assert_eq!(PublicKey::parse(&key.to_string()), Ok(key));
    }
});
