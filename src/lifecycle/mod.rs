//! Token lifecycle: refresh before expiry, detect revocation, tell the user once.
//!
//! - [`refresh`]: the refresh itself (single flight, claims, classification).
//! - [`sweeper`]: a background pass that refreshes what is due and warns about what cannot be.
//! - [`notifier`]: mails the user once per incident (revoked, needs re-auth, expiring).

pub mod notifier;
pub mod refresh;
pub mod sweeper;
