//! The ClickHouse sink's decoder: log events → rows of `engagement_events`, `engagement_snapshots`
//! and `posts`.
//!
//! Rows must be the same on every replay, so attribution (which nikara post and account a fact
//! belongs to) is derived from the log alone, never from read models whose state moves: an
//! [`Attribution`] follows account and post events in log order. At startup it is warmed by one scan
//! of the log, then the decoder keeps it current as the sink reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::analytics::{Decoder, EventRow, PostRow, SinkRow, SnapshotRow};
use crate::domain::DomainEvent;
use crate::domain::account::AccountEvent;
use crate::domain::engagement::EngagementEvent;
use crate::domain::post::PostEvent;
use crate::projections::engagement::normalize;
use crate::store::{EventStore, Position, RecordedEvent, StoreResult};

/// Who owns what, as of a point in the log.
#[derive(Debug, Default)]
pub struct Attribution {
    /// post id → (user, account, platform)
    posts: HashMap<String, (String, String, String)>,
    /// (platform, platform post id) → post id
    published: HashMap<(String, String), String>,
    /// (platform, external id) → (account id, user id): the first connection wins.
    accounts: HashMap<(String, String), (String, String)>,
}

impl Attribution {
    /// Learns from account and post events; everything else is ignored.
    pub fn observe(&mut self, ev: &RecordedEvent) {
        if let Some(id) = ev.stream.strip_prefix("account-") {
            if let Ok(Some(AccountEvent::AccountConnected {
                user_id,
                platform,
                profile,
                ..
            })) = AccountEvent::from_recorded(ev)
            {
                self.accounts
                    .entry((platform.as_str().to_string(), profile.external_id))
                    .or_insert((id.to_string(), user_id));
            }
        } else if let Some(id) = ev.stream.strip_prefix("post-") {
            match PostEvent::from_recorded(ev) {
                Ok(Some(PostEvent::PostScheduled {
                    user_id,
                    account_id,
                    platform,
                    ..
                })) => {
                    self.posts
                        .insert(id.to_string(), (user_id, account_id, platform.as_str().to_string()));
                }
                Ok(Some(PostEvent::PostPublished { platform_post_id, .. })) => {
                    if let Some((_, _, platform)) = self.posts.get(id) {
                        self.published
                            .insert((platform.clone(), platform_post_id), id.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    /// Rows for one event (after [`Attribution::observe`] has seen it).
    pub fn decode(&self, ev: &RecordedEvent, capture_text: bool) -> Result<Vec<SinkRow>, String> {
        if let Some(id) = ev.stream.strip_prefix("post-")
            && let Ok(Some(PostEvent::PostPublished {
                platform_post_id,
                published_at,
                ..
            })) = PostEvent::from_recorded(ev)
        {
            let Some((user, account, platform)) = self.posts.get(id) else {
                return Err(format!("post {id} was published but never scheduled"));
            };
            return Ok(vec![SinkRow::Post(PostRow {
                post_id: id.to_string(),
                user_id: user.clone(),
                account_id: account.clone(),
                platform: platform.clone(),
                platform_post_id,
                published_at,
                position: ev.position.0,
            })]);
        }
        let Ok(Some(event)) = EngagementEvent::from_recorded(ev) else {
            return Ok(vec![]);
        };
        match event {
            EngagementEvent::WebhookDeliveryReceived {
                platform,
                body,
                received_at,
                ..
            } => {
                let Some(n) = normalize(&platform, &body, capture_text) else {
                    return Ok(vec![]);
                };
                Ok(n.facts
                    .into_iter()
                    .map(|f| {
                        let p = f.platform.as_str().to_string();
                        let (account_id, user_id) = self
                            .accounts
                            .get(&(p.clone(), f.account_external_id.clone()))
                            .cloned()
                            .unwrap_or_default();
                        let post_id = self
                            .published
                            .get(&(p.clone(), f.platform_post_id.clone()))
                            .cloned()
                            .unwrap_or_default();
                        SinkRow::Event(EventRow {
                            position: ev.position.0,
                            item_index: f.item_index,
                            platform: p,
                            account_external_id: f.account_external_id,
                            account_id,
                            user_id,
                            post_id,
                            platform_post_id: f.platform_post_id,
                            kind: f.kind.as_str().to_string(),
                            delta: f.delta,
                            verb: f.verb,
                            reaction_type: f.reaction_type.unwrap_or_default(),
                            actor_id: f.actor_id.unwrap_or_default(),
                            comment_id: f.comment_id.unwrap_or_default(),
                            text: f.text.unwrap_or_default(),
                            occurred_at: f.occurred_at,
                            received_at,
                        })
                    })
                    .collect())
            }
            EngagementEvent::EngagementSnapshotTaken {
                post_id,
                user_id,
                account_id,
                platform,
                platform_post_id,
                taken_at,
                metrics,
            } => {
                let (reaction_types, reaction_counts) = metrics.reactions.into_iter().unzip();
                Ok(vec![SinkRow::Snapshot(SnapshotRow {
                    post_id,
                    platform,
                    platform_post_id,
                    account_id,
                    user_id,
                    taken_at,
                    likes: metrics.likes,
                    comments: metrics.comments,
                    shares: metrics.shares,
                    views: metrics.views,
                    impressions: metrics.impressions,
                    reaction_types,
                    reaction_counts,
                    source: "sync".into(),
                    position: ev.position.0,
                })])
            }
        }
    }
}

/// Reads the whole log once to learn attribution (account and post events only are kept).
pub async fn warm(store: &Arc<dyn EventStore>) -> StoreResult<Attribution> {
    let mut a = Attribution::default();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for ev in &page {
            a.observe(ev);
        }
        after = last;
    }
    Ok(a)
}

/// The decoder handed to the sink.
pub fn decoder(attribution: Attribution, capture_text: bool) -> Decoder {
    let state = Arc::new(Mutex::new(attribution));
    Arc::new(move |ev: &RecordedEvent| {
        let mut a = state.lock().map_err(|_| "attribution lock poisoned".to_string())?;
        a.observe(ev);
        a.decode(ev, capture_text)
    })
}
