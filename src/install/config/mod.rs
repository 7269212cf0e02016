//! Reading and editing Bitwarden's `bwdata/config.yml` without losing a byte.
//!
//! Owns the keys Bitwarden's Setup knows ([`KNOWN_KEYS`]), how their values
//! are validated and written, and the one edit bwguard makes to the file
//! (safety rule 7, docs/safety.md). Pure: bytes in, bytes out, no I/O.
//!
//! Invariants:
//! - Keys and values are located by the YAML parser's event positions, never
//!   by searching text, so key-like text in comments, block scalars, quoted
//!   strings or nested mappings is never matched.
//! - An edit replaces one value's byte span on its key's line (or appends
//!   three lines for a missing key); every other byte is kept: BOM, comments,
//!   order, trailing spaces, line endings.
//! - The result is parsed again and is only returned when the top-level keys
//!   are the same, in the same order, every other value reads as before and
//!   the edited key reads as the new value.

mod edit;
mod keys;
mod parse;
#[cfg(test)]
mod tests;

pub use edit::{Edit, canonical_value, plan_set};
pub use keys::{ConfigError, KNOWN_KEYS, KeyType, KnownKey, known_key};
pub use parse::Config;
