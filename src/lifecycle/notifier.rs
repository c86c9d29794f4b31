//! Tells the user, once per incident, that an account needs them.
//!
//! A reactor follows the log from its checkpoint. For each `AccountRevoked`, `AccountNeedsReauth`
//! or `AccountExpiring` it works on the stream `notification-{incident}`:
//! `NotificationClaimed` (appended at the revision read: one hub wins), then the mail, then
//! `NotificationSent` (or `NotificationSkipped` / `NotificationFailed`). The checkpoint only moves
//! past an incident once the stream is settled, so a crash or an SMTP outage delays a mail but never
//! loses it, and a replay of the log finds the incident settled and sends nothing. A claim is
//! renewed before every retry and expires after [`CLAIM_TTL`], so a crashed claimant's incident is
//! taken over. The one window for a second mail is a crash after the SMTP server accepted the
//! message and before `NotificationSent` was appended; the outbox transport overwrites its file
//! for the same incident, so there it is exactly once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::App;
use crate::domain::account::{Account, AccountEvent, Health};
use crate::domain::user::User;
use crate::domain::{DomainEvent, ids::UserId};
use crate::notify::mail::{Mail, MailError};
use crate::store::{Direction, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, StoreError, StreamFrom};

/// Checkpoint key of the reactor.
pub const CHECKPOINT: &str = "notifier";
/// A claim older than this is considered abandoned.
pub const CLAIM_TTL: chrono::Duration = chrono::Duration::minutes(2);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum NotificationEvent {
    NotificationClaimed {
        instance: Uuid,
        at: DateTime<Utc>,
    },
    NotificationSent {
        account_id: String,
        kind: String,
        to: String,
    },
    NotificationSkipped {
        account_id: String,
        reason: String,
    },
    NotificationFailed {
        account_id: String,
        reason: String,
    },
}

impl DomainEvent for NotificationEvent {
    const TYPES: &'static [&'static str] = &[
        "NotificationClaimed",
        "NotificationSent",
        "NotificationSkipped",
        "NotificationFailed",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            NotificationEvent::NotificationClaimed { .. } => "NotificationClaimed",
            NotificationEvent::NotificationSent { .. } => "NotificationSent",
            NotificationEvent::NotificationSkipped { .. } => "NotificationSkipped",
            NotificationEvent::NotificationFailed { .. } => "NotificationFailed",
        }
    }
}

/// An incident worth a mail.
#[derive(Debug, Clone)]
struct Incident {
    id: Uuid,
    account_id: String,
    kind: &'static str,
    message: String,
    expires_at: Option<DateTime<Utc>>,
}

fn incident_of(ev: &RecordedEvent) -> Option<Incident> {
    let account_id = ev.stream.strip_prefix("account-")?.to_string();
    let event = AccountEvent::from_recorded(ev).ok()??;
    let (id, kind, message, expires_at) = match event {
        AccountEvent::AccountRevoked { incident, message } => (incident, "revoked", message, None),
        AccountEvent::AccountNeedsReauth { incident, message } => (incident, "needs_reauth", message, None),
        AccountEvent::AccountExpiring {
            incident,
            expires_at,
            message,
        } => (incident, "expiring", message, Some(expires_at)),
        _ => return None,
    };
    Some(Incident {
        id,
        account_id,
        kind,
        message,
        expires_at,
    })
}

/// Settled: the stream ends in a terminal event. Otherwise the current revision and the last claim.
enum StreamState {
    Settled,
    Open {
        revision: Option<u64>,
        claim: Option<(Uuid, DateTime<Utc>)>,
    },
}

async fn stream_state(app: &App, stream: &str) -> Result<StreamState, StoreError> {
    let events = app
        .store
        .read_stream(stream, StreamFrom::Start, Direction::Forwards, 1000)
        .await?;
    let mut claim = None;
    for ev in &events {
        match NotificationEvent::from_recorded(ev) {
            Ok(Some(NotificationEvent::NotificationClaimed { instance, at })) => claim = Some((instance, at)),
            Ok(Some(_)) => return Ok(StreamState::Settled),
            _ => {}
        }
    }
    Ok(StreamState::Open {
        revision: events.last().map(|e| e.revision),
        claim,
    })
}

async fn append(
    app: &App,
    stream: &str,
    expected: ExpectedVersion,
    event: NotificationEvent,
    user: Option<&str>,
) -> Result<bool, StoreError> {
    let meta = Metadata {
        user_id: user.map(str::to_string),
        ..Metadata::now()
    };
    let new: NewEvent = event
        .to_new_event(meta)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match app.store.append(stream, expected, vec![new]).await {
        Ok(_) => Ok(true),
        Err(StoreError::WrongExpectedVersion { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What to say, or why not to say anything.
async fn compose(app: &App, inc: &Incident) -> Result<Result<Mail, String>, crate::app::AppError> {
    let (account, _) = app.load::<Account>(&format!("account-{}", inc.account_id)).await?;
    if !account.connected {
        return Ok(Err("the account was disconnected".into()));
    }
    let resolved = match inc.kind {
        "expiring" => {
            account.tokens.as_ref().and_then(|t| t.expires_at) != inc.expires_at || account.health != Health::Active
        }
        _ => account.health == Health::Active,
    };
    if resolved {
        return Ok(Err("the account was reconnected or renewed since".into()));
    }
    let Some(user_id) = account.user_id.clone() else {
        return Ok(Err("the account has no owner".into()));
    };
    let user = UserId::parse(&user_id).map_err(|e| crate::app::AppError::Rejected(Box::new(e)))?;
    let (profile, _) = app.load::<User>(&user.stream()).await?;
    if !profile.notifications {
        return Ok(Err("the user turned notifications off".into()));
    }
    let Some((to, _)) = profile.notification_address() else {
        return Ok(Err(
            "the user has no email address (no JWT email claim, none set with PUT /api/me)".into(),
        ));
    };
    let platform = account.platform.map_or("the platform", |p| p.display_name());
    let name = account
        .profile
        .as_ref()
        .and_then(|p| p.username.as_ref().map(|u| format!("@{u}")).or(p.display_name.clone()))
        .unwrap_or_else(|| inc.account_id.clone());
    let link = format!(
        "{}/?reconnect={}",
        app.config.public_url.as_str().trim_end_matches('/'),
        inc.account_id
    );
    let (subject, lead) = match inc.kind {
        "expiring" => (
            format!("Your {platform} account {name} expires soon"),
            format!(
                "nikara will lose access to your {platform} account {name} on {}.",
                inc.expires_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default()
            ),
        ),
        "revoked" => (
            format!("Reconnect your {platform} account {name}"),
            format!("{platform} revoked nikara's access to your account {name}."),
        ),
        _ => (
            format!("Reconnect your {platform} account {name}"),
            format!("nikara can no longer use your {platform} account {name}."),
        ),
    };
    let text = format!(
        "Hello,\n\n{lead}\n\nReason: {}\n\nPosts scheduled for this account wait until you reconnect it:\n{link}\n\n-- nikara\n",
        inc.message
    );
    Ok(Ok(Mail {
        id: format!("{}-{}", inc.kind, inc.id),
        to: to.to_string(),
        subject,
        text,
    }))
}

/// Settles one incident; returns when it is settled or on shutdown (`false`).
async fn handle(app: &App, instance: Uuid, inc: &Incident, user: Option<&str>, shutdown: &CancellationToken) -> bool {
    let stream = format!("notification-{}", inc.id);
    let mut backoff = Duration::from_millis(200);
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let wait = |d: Duration| async move {
            tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = tokio::time::sleep(d) => true,
            }
        };
        let (revision, claim) = match stream_state(app, &stream).await {
            Ok(StreamState::Settled) => return true,
            Ok(StreamState::Open { revision, claim }) => (revision, claim),
            Err(e) => {
                tracing::warn!(error = %e, "notifier cannot read its stream; retrying");
                if !wait(backoff).await {
                    return false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        let now = Utc::now();
        if let Some((owner, at)) = claim
            && owner != instance
            && now - at < CLAIM_TTL
        {
            // Another hub is on it; look again later.
            if !wait(Duration::from_secs(2)).await {
                return false;
            }
            continue;
        }
        let claimed = append(
            app,
            &stream,
            ExpectedVersion::from_current(revision),
            NotificationEvent::NotificationClaimed { instance, at: now },
            user,
        )
        .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "notifier cannot claim; retrying");
                if !wait(backoff).await {
                    return false;
                }
                continue;
            }
        }
        let next = revision.map_or(0, |r| r + 1);
        let terminal = match compose(app, inc).await {
            Err(e) => {
                tracing::warn!(error = %e, "notifier cannot compose; retrying");
                if !wait(backoff).await {
                    return false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
            Ok(Err(reason)) => NotificationEvent::NotificationSkipped {
                account_id: inc.account_id.clone(),
                reason,
            },
            Ok(Ok(mail)) => match app.mailer.send(&mail).await {
                Ok(()) => {
                    tracing::info!(incident = %inc.id, kind = inc.kind, via = %app.mailer.describe(), "notification sent");
                    NotificationEvent::NotificationSent {
                        account_id: inc.account_id.clone(),
                        kind: inc.kind.to_string(),
                        to: mail.to.clone(),
                    }
                }
                Err(MailError::Permanent(reason)) => {
                    tracing::error!(incident = %inc.id, %reason, "notification mail rejected");
                    NotificationEvent::NotificationFailed {
                        account_id: inc.account_id.clone(),
                        reason,
                    }
                }
                Err(e) => {
                    tracing::warn!(incident = %inc.id, error = %e, ?backoff, "mail transport down; will retry");
                    if !wait(backoff).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    // Loop: re-read, renew the claim (appending a fresh one), send again.
                    continue;
                }
            },
        };
        match append(app, &stream, ExpectedVersion::Revision(next), terminal, user).await {
            Ok(true) => return true,
            // Someone took the claim over meanwhile: re-read and follow what they did.
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(error = %e, "notifier cannot record the outcome; retrying");
                if !wait(backoff).await {
                    return false;
                }
            }
        }
    }
}

/// Follows the log and settles incidents until shutdown.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let instance = Uuid::new_v4();
    let mut backoff = Duration::from_millis(200);
    loop {
        let start = match app.models.checkpoint(CHECKPOINT) {
            Ok(p) => p.unwrap_or(Position::START),
            Err(e) => {
                tracing::error!(error = %e, "notifier cannot read its checkpoint");
                Position::START
            }
        };
        let mut events = app.store.subscribe_all(start);
        let mut last_saved = start;
        let mut position = start;
        let mut since_save = std::time::Instant::now();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = app.models.save_checkpoint(CHECKPOINT, position);
                    return;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if position > last_saved => None,
                n = events.next() => Some(n),
            };
            match next {
                None => {}
                Some(None) => break,
                Some(Some(Err(e))) => {
                    tracing::error!(error = %e, "notifier subscription failed; resubscribing");
                    break;
                }
                Some(Some(Ok(ev))) => {
                    if let Some(inc) = incident_of(&ev) {
                        if !handle(&app, instance, &inc, ev.metadata.user_id.as_deref(), &shutdown).await {
                            let _ = app.models.save_checkpoint(CHECKPOINT, position);
                            return;
                        }
                        position = ev.position;
                        let _ = app.models.save_checkpoint(CHECKPOINT, position);
                        last_saved = position;
                        continue;
                    }
                    position = ev.position;
                }
            }
            if position > last_saved && since_save.elapsed() >= Duration::from_secs(1) {
                if app.models.save_checkpoint(CHECKPOINT, position).is_ok() {
                    last_saved = position;
                }
                since_save = std::time::Instant::now();
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
