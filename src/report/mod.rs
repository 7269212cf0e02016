//! What bwguard tells its user.

pub mod human;
