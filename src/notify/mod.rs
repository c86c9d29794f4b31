//! Notifications.
pub mod mail;
