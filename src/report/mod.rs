//! What bwguard tells its user.

pub mod human;
pub mod table;
