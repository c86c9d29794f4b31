//! Hands X's `user_event.revoke` deliveries to the token lifecycle: every connected account of that
//! X user is marked revoked (which mails its owner once). A reactor with its own checkpoint, so a
//! crash between the delivery's append and the revocation delays it but never loses it; marking an
//! already revoked account changes nothing, so replays are harmless.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::domain::DomainEvent;
use crate::domain::engagement::EngagementEvent;
use crate::projections::{accounts, engagement as model};
use crate::store::{Position, RecordedEvent};

/// Checkpoint key.
pub const CHECKPOINT: &str = "x-revocations";

async fn handle(app: &App, ev: &RecordedEvent) {
    let Ok(Some(EngagementEvent::WebhookDeliveryReceived { platform, body, .. })) = EngagementEvent::from_recorded(ev)
    else {
        return;
    };
    let Some(n) = model::normalize(&platform, &body, false) else {
        return;
    };
    for r in n.revocations {
        let (p, ext) = (r.platform.as_str().to_string(), r.external_id.clone());
        let rows = match app.models.read(move |c| accounts::by_external_id(c, &p, &ext)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot look up revoked accounts");
                continue;
            }
        };
        for row in rows {
            let message = format!("{} said: {}", r.platform.display_name(), r.message);
            match crate::lifecycle::refresh::mark_revoked(app, &row.id, &message).await {
                Ok(()) => tracing::info!(account = %row.id, "revoked by the platform's webhook"),
                Err(e) => tracing::warn!(account = %row.id, error = %e, "cannot mark revoked"),
            }
        }
    }
}

/// Follows the log until shutdown.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        let start = app
            .models
            .checkpoint(CHECKPOINT)
            .ok()
            .flatten()
            .unwrap_or(Position::START);
        let mut events = app.store.subscribe_all(start);
        let mut position = start;
        let mut saved = start;
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = app.models.save_checkpoint(CHECKPOINT, position);
                    return;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if position > saved => None,
                n = events.next() => Some(n),
            };
            match next {
                None => {
                    if app.models.save_checkpoint(CHECKPOINT, position).is_ok() {
                        saved = position;
                    }
                }
                Some(Some(Ok(ev))) => {
                    if ev.event_type == "WebhookDeliveryReceived" && ev.stream == "webhook-x" {
                        handle(&app, &ev).await;
                        position = ev.position;
                        if app.models.save_checkpoint(CHECKPOINT, position).is_ok() {
                            saved = position;
                        }
                    } else {
                        position = ev.position;
                    }
                }
                Some(Some(Err(e))) => {
                    tracing::error!(error = %e, "revocation reactor subscription failed; resubscribing");
                    break;
                }
                Some(None) => break,
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
