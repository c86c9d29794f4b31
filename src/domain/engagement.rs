//! Engagement events: raw verified webhook deliveries (`webhook-{platform}`) and metric snapshots
//! (`post-{id}`). Deliveries are stored raw and normalised by projections, so a better normaliser
//! can re-read history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::DomainEvent;
use crate::platforms::metrics::Metrics;

/// Namespace of delivery ids (UUIDv5 of platform + body digest): a platform's retry of the same
/// delivery has the same id, so the store's idempotency absorbs it.
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x6e696b61_7261_4477_8000_776562686f6f);

/// The event id of a delivery.
pub fn delivery_id(platform: &str, body: &[u8]) -> Uuid {
    let digest = Sha256::digest(body);
    let mut key = Vec::with_capacity(platform.len() + 1 + digest.len());
    key.extend_from_slice(platform.as_bytes());
    key.push(0);
    key.extend_from_slice(&digest);
    Uuid::new_v5(&DELIVERY_NAMESPACE, &key)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EngagementEvent {
    /// A delivery whose signature verified, stored as received.
    WebhookDeliveryReceived {
        /// `meta` or `x`.
        platform: String,
        received_at: DateTime<Utc>,
        /// Selected headers (content type, signature, user agent).
        headers: Vec<(String, String)>,
        /// The body exactly as received (UTF-8; JSON from both platforms).
        body: String,
    },
    /// The platform's metrics of a published post at one moment.
    EngagementSnapshotTaken {
        post_id: String,
        user_id: String,
        account_id: String,
        platform: String,
        platform_post_id: String,
        taken_at: DateTime<Utc>,
        metrics: Metrics,
    },
}

impl DomainEvent for EngagementEvent {
    const TYPES: &'static [&'static str] = &["WebhookDeliveryReceived", "EngagementSnapshotTaken"];

    fn event_type(&self) -> &'static str {
        match self {
            EngagementEvent::WebhookDeliveryReceived { .. } => "WebhookDeliveryReceived",
            EngagementEvent::EngagementSnapshotTaken { .. } => "EngagementSnapshotTaken",
        }
    }
}
