//! The retention policy `schedule install` saves in the store, for
//! `backup --prune` and `prune` without flags.

use crate::engine::store::Store;
use crate::error::{Error, Failure, Result};
use crate::files;
use crate::schedule::retention::Policy;

/// The file in the store holding the policy `schedule install` saved.
pub const POLICY_FILE: &str = "retention.json";

/// The policy saved in the store, if any.
pub fn saved_policy(store: &Store) -> Result<Option<Policy>> {
    let path = store.root.join(POLICY_FILE);
    match files::read_small(&path, files::SMALL_CAP) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::failed(
                Failure::BadStateFile,
                format!("{} is unreadable: {e}", path.display()),
                "run `bwguard schedule install` with your retention flags again",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", &path, e)),
    }
}

/// Saves `policy` in the store for `backup --prune`.
pub fn save_policy(store: &Store, policy: &Policy) -> Result<()> {
    files::ensure_private_dir(&store.root)?;
    let bytes = serde_json::to_vec_pretty(policy).unwrap_or_default();
    let own = files::Ownership::mine(files::PRIVATE_FILE);
    files::write_atomic(&store.root.join(POLICY_FILE), &bytes, own)
}

/// The error for a prune without flags and without a saved policy.
pub fn no_policy(store: &Store) -> Error {
    Error::failed(
        Failure::NoRetentionPolicy,
        format!(
            "no retention policy given, and none is saved in {}: nothing was pruned",
            store.root.display()
        ),
        "give one (--keep-daily 7 --keep-weekly 4 …), or save one with `bwguard prune --keep-daily 7 --save-policy` \
         (`schedule install` saves its own)",
    )
}
