//! The snapshot engine: archives, gzip members, read-back, device reads,
//! the store and its lock, manifests, scope, verification and restore.

pub mod archive;
pub mod beneath;
pub mod device;
pub mod gz;
pub mod lock;
pub mod manifest;
pub mod progress;
pub mod readback;
pub mod recompress;
pub mod restore;
pub mod rollback;
pub mod room;
pub mod scope;
pub mod session;
pub mod snapshot;
pub mod store;
pub mod trust;
pub mod verify;
