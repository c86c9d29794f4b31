//! Engagement sync: polls the metrics of published posts on a decaying schedule (every 15 minutes on
//! day one, hourly for a week, daily until day 30), batched per account, within per-platform
//! budgets, and appends `EngagementSnapshotTaken` to each post's stream.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::domain::account::{Account, AccountCommand};
use crate::domain::engagement::EngagementEvent;
use crate::domain::platform::Platform;
use crate::domain::{Aggregate, DomainEvent};
use crate::platforms::PlatformError;
use crate::platforms::metrics::{self, MetricsRequest};
use crate::projections::engagement::{self as model, SyncDue};
use crate::store::{ExpectedVersion, Metadata};

/// When a post is due for a snapshot, by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub first_day_every: Duration,
    pub first_week_every: Duration,
    pub later_every: Duration,
    /// Posts older than this are no longer synced.
    pub stop_after: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            first_day_every: Duration::minutes(15),
            first_week_every: Duration::hours(1),
            later_every: Duration::days(1),
            stop_after: Duration::days(30),
        }
    }
}

impl Schedule {
    /// Due when never synced, or when the last snapshot is older than the interval for its age.
    pub fn is_due(&self, now: DateTime<Utc>, published: DateTime<Utc>, last: Option<DateTime<Utc>>) -> bool {
        let age = now - published;
        if age > self.stop_after {
            return false;
        }
        let every = if age <= Duration::days(1) {
            self.first_day_every
        } else if age <= Duration::days(7) {
            self.first_week_every
        } else {
            self.later_every
        };
        last.is_none_or(|l| now - l >= every)
    }
}

/// Calls per platform per minute the sync may spend (a share of each platform's limits, leaving
/// room for publishing).
pub fn default_budget(p: Platform) -> u32 {
    match p {
        Platform::X => 60,
        Platform::Linkedin => 30,
        Platform::Reddit => 30,
        Platform::Facebook | Platform::Instagram => 120,
        Platform::Tiktok => 60,
        // YouTube's quota is 10,000 units a day; a videos.list costs 1.
        Platform::Youtube => 30,
    }
}

/// One platform's minute: when it started, calls spent, and a pause the platform asked for.
type Window = (DateTime<Utc>, u32, Option<DateTime<Utc>>);

/// Per-platform budgets and rate-limit pauses.
#[derive(Debug, Default)]
pub struct Budgets {
    inner: Mutex<HashMap<Platform, Window>>,
}

impl Budgets {
    /// Takes one call from the platform's budget for this minute, unless paused or spent.
    pub fn take(&self, p: Platform, per_minute: u32, now: DateTime<Utc>) -> bool {
        let Ok(mut m) = self.inner.lock() else { return false };
        let entry = m.entry(p).or_insert((now, 0, None));
        if entry.2.is_some_and(|until| now < until) {
            return false;
        }
        if now - entry.0 >= Duration::minutes(1) {
            *entry = (now, 0, None);
        }
        if entry.1 >= per_minute {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// The platform said to slow down.
    pub fn pause(&self, p: Platform, until: DateTime<Utc>) {
        if let Ok(mut m) = self.inner.lock() {
            let e = m.entry(p).or_insert((until, 0, None));
            e.2 = Some(until);
        }
    }
}

/// One pass: snapshots for due posts. Answers how many snapshots were taken.
pub async fn sync_once(app: &App, schedule: &Schedule, budgets: &Budgets) -> usize {
    let now = Utc::now();
    let sched = *schedule;
    let due = match app.models.read(move |c| model::due_for_sync(c, now, &sched, 500)).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "sync cannot read due posts");
            return 0;
        }
    };
    let mut by_account: BTreeMap<String, Vec<SyncDue>> = BTreeMap::new();
    for d in due {
        by_account.entry(d.account_id.clone()).or_default().push(d);
    }
    let mut taken = 0;
    for (account_id, posts) in by_account {
        taken += sync_account(app, &account_id, posts, budgets).await;
    }
    taken
}

async fn sync_account(app: &App, account_id: &str, posts: Vec<SyncDue>, budgets: &Budgets) -> usize {
    let stream = format!("account-{account_id}");
    let Ok((account, _)) = app.load::<Account>(&stream).await else {
        return 0;
    };
    let (Some(platform), Some(profile)) = (account.platform, account.profile.clone()) else {
        return 0;
    };
    if !account.connected || account.health != crate::domain::account::Health::Active {
        return 0;
    }
    let Some(provider) = app.registry.get(platform) else {
        return 0;
    };
    let per_minute = app
        .config
        .extra(&format!("sync_budget_{}", platform.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default_budget(platform));
    if !budgets.take(platform, per_minute, Utc::now()) {
        return 0;
    }
    let margin = Duration::minutes(5);
    let token = match crate::lifecycle::refresh::access_token(app, account_id, margin).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(account = account_id, error = %e, "sync skipped: no usable token");
            return 0;
        }
    };
    let reqs: Vec<MetricsRequest<'_>> = posts
        .iter()
        .map(|p| MetricsRequest {
            platform_post_id: &p.platform_post_id,
            external_id: &profile.external_id,
            metadata: &profile.metadata,
        })
        .collect();
    let results = match metrics::fetch(&provider.api(&app.http), &token, &reqs).await {
        Ok(r) => r,
        Err(PlatformError::RateLimited { retry_after_s, .. }) => {
            let wait = Duration::seconds(retry_after_s.unwrap_or(60) as i64);
            budgets.pause(platform, Utc::now() + wait);
            return 0;
        }
        Err(e) => {
            tracing::warn!(account = account_id, %platform, error = %e, "metrics sync failed");
            return 0;
        }
    };
    let now = Utc::now();
    let mut taken = 0;
    for (post, result) in posts.iter().zip(results) {
        let m = match result {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(post = %post.post_id, error = %e, "no metrics for this post");
                continue;
            }
        };
        let event = EngagementEvent::EngagementSnapshotTaken {
            post_id: post.post_id.clone(),
            user_id: post.user_id.clone(),
            account_id: post.account_id.clone(),
            platform: post.platform.clone(),
            platform_post_id: post.platform_post_id.clone(),
            taken_at: now,
            metrics: m,
        };
        let meta = Metadata {
            user_id: Some(post.user_id.clone()),
            ..Metadata::now()
        };
        let Ok(new) = event.to_new_event(meta) else { continue };
        match app
            .store
            .append(&format!("post-{}", post.post_id), ExpectedVersion::Any, vec![new])
            .await
        {
            Ok(_) => taken += 1,
            Err(e) => tracing::error!(error = %e, "cannot store a snapshot"),
        }
    }
    if taken > 0 {
        let meta = Metadata {
            user_id: account.user_id.clone(),
            ..Metadata::now()
        };
        let cmd = AccountCommand::RecordSync { at: now };
        if let Ok(events) = account.decide(&cmd, now)
            && let Ok(new) = events
                .iter()
                .map(|e| e.to_new_event(meta.clone()))
                .collect::<Result<Vec<_>, _>>()
            && !new.is_empty()
        {
            let _ = app.store.append(&stream, ExpectedVersion::Any, new).await;
        }
    }
    taken
}

/// Runs [`sync_once`] every `interval` until shutdown.
pub async fn run(app: Arc<App>, interval: std::time::Duration, schedule: Schedule, shutdown: CancellationToken) {
    let budgets = Budgets::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let n = sync_once(&app, &schedule, &budgets).await;
        if n > 0 {
            tracing::info!(snapshots = n, "engagement sync pass");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_decays_with_age() {
        let s = Schedule::default();
        let now = Utc::now();
        let day_one = now - Duration::hours(3);
        assert!(s.is_due(now, day_one, None));
        assert!(!s.is_due(now, day_one, Some(now - Duration::minutes(10))));
        assert!(s.is_due(now, day_one, Some(now - Duration::minutes(16))));
        let day_three = now - Duration::days(3);
        assert!(!s.is_due(now, day_three, Some(now - Duration::minutes(50))));
        assert!(s.is_due(now, day_three, Some(now - Duration::minutes(61))));
        let day_ten = now - Duration::days(10);
        assert!(!s.is_due(now, day_ten, Some(now - Duration::hours(20))));
        assert!(s.is_due(now, day_ten, Some(now - Duration::hours(25))));
        assert!(!s.is_due(now, now - Duration::days(31), None));
    }

    #[test]
    fn budgets_cap_calls_per_minute_and_honour_pauses() {
        let b = Budgets::default();
        let now = Utc::now();
        assert!(b.take(Platform::X, 2, now));
        assert!(b.take(Platform::X, 2, now));
        assert!(!b.take(Platform::X, 2, now));
        assert!(b.take(Platform::X, 2, now + Duration::seconds(61)));
        b.pause(Platform::Reddit, now + Duration::seconds(30));
        assert!(!b.take(Platform::Reddit, 10, now));
        assert!(b.take(Platform::Reddit, 10, now + Duration::seconds(31)));
    }
}
