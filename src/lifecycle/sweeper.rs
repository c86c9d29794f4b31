//! The refresh sweeper: every interval, refresh tokens expiring within the margin, re-exchange Meta
//! tokens within 7 days of expiry, warn about tokens nothing can renew, and resolve refresh claims
//! that never recorded an outcome.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::refresh::{self, META_RENEWAL_WINDOW, Mode, Outcome};
use crate::app::App;
use crate::domain::account::REFRESH_CLAIM_TTL;
use crate::projections::accounts;

/// Refreshes run at most this many at a time per sweep.
const CONCURRENCY: usize = 4;

/// One pass. Answers how many accounts were refreshed.
pub async fn sweep_once(app: &App) -> usize {
    let now = Utc::now();
    let margin = chrono::Duration::from_std(app.config.refresh_margin).unwrap_or(chrono::Duration::minutes(5));
    let rows = match app
        .models
        .read(move |c| accounts::due_for_sweep(c, now, margin, META_RENEWAL_WINDOW, REFRESH_CLAIM_TTL))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "sweeper cannot read accounts");
            return 0;
        }
    };
    futures::stream::iter(rows)
        .map(|row| async move {
            match refresh::refresh(app, &row.id, Mode::IfDue(margin)).await {
                Ok(Outcome::Refreshed) => 1,
                Ok(_) => 0,
                // Recorded on the account already (and mailed where it needs the user).
                Err(e) => {
                    tracing::info!(account = %row.id, error = %e, "sweeper refresh did not succeed");
                    0
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .fold(0, |a, b| async move { a + b })
        .await
}

/// Runs [`sweep_once`] every `interval` until shutdown.
pub async fn run(app: Arc<App>, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let n = sweep_once(&app).await;
        if n > 0 {
            tracing::info!(refreshed = n, "sweeper pass");
        }
    }
}
