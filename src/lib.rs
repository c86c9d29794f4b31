//! nikara: an event-sourced hub that connects social accounts, keeps their tokens alive, publishes
//! scheduled posts exactly once and turns engagement into analytics.
//!
//! Architecture map (see README.md for the picture):
//! - [`store`]: the event log, the single source of truth (embedded SQLite or KurrentDB).
//! - [`domain`]: ids, versioned events, pure `decide`/`apply` per aggregate.
//! - [`app`]: runs commands (load, decide, append at the revision read).
//! - [`projections`]: fold the log into read models (`readmodels.db`), checkpointed, rebuildable.
//! - [`api`]: HTTP (poem-openapi), bearer JWT [`auth`], errors mapped in one place.
//! - [`config`], [`crypto`], [`secrets`], [`metrics`]: the ground everything stands on.
//!
//! [`run`] starts everything on a listener and stops it when the token is cancelled; tests and
//! the load test use [`start`] to get a hub on `127.0.0.1:0`.

pub mod analytics;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod engagement;
pub mod engine;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
pub mod oauth;
pub mod platforms;
pub mod projections;
pub mod secrets;
pub mod startup;
pub mod store;
pub mod ui;

pub use startup::{Hub, Running, run, start};
