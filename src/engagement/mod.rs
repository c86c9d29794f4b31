//! Engagement: webhook deliveries normalised into facts, snapshots from the platforms' metrics, and
//! the read models and ClickHouse tables built from them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::platform::Platform;

pub mod clickhouse;
pub mod meta;
pub mod query;
pub mod revocations;
pub mod sync;
pub mod x;

/// What happened, normalised across platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    Like,
    Reaction,
    Comment,
    Reply,
    Share,
    Quote,
    Repost,
    Mention,
    Follow,
}

impl FactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Like => "like",
            FactKind::Reaction => "reaction",
            FactKind::Comment => "comment",
            FactKind::Reply => "reply",
            FactKind::Share => "share",
            FactKind::Quote => "quote",
            FactKind::Repost => "repost",
            FactKind::Mention => "mention",
            FactKind::Follow => "follow",
        }
    }
}

/// One engagement fact from a webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngagementFact {
    pub platform: Platform,
    /// Page id, Instagram business account id, or X `for_user_id`.
    pub account_external_id: String,
    /// The post engaged with (ours); empty for account-level facts (follow, mention without post).
    pub platform_post_id: String,
    pub kind: FactKind,
    /// +1 add/unhide/follow, -1 remove/hide/unfollow, 0 edited.
    pub delta: i32,
    /// The platform's own verb.
    pub verb: String,
    pub reaction_type: Option<String>,
    pub actor_id: Option<String>,
    pub comment_id: Option<String>,
    /// Only when text capture is on (off by default).
    pub text: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Index of the fact within its delivery: (source position, item index) is the dedup key.
    pub item_index: u32,
}

/// An X `user_event.revoke`: the user de-authorised the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    pub platform: Platform,
    pub external_id: String,
    pub message: String,
}

/// A delivery, normalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized {
    pub facts: Vec<EngagementFact>,
    pub revocations: Vec<Revocation>,
    /// Items not understood, kept raw (and counted), never an error.
    pub unknown: Vec<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a {0} webhook envelope")]
    Envelope(&'static str),
}
