//! The post aggregate (`post-{id}`): one scheduled post for one account, and every attempt to
//! publish it.
//!
//! At most one post on the platform per scheduled post: an attempt starts with
//! `PublishAttemptStarted` appended at the revision the worker read (the claim: a conflict means
//! another worker has it), and ends with `PostPublished` or `PublishFailed`. A claim without an
//! outcome is never retried blindly: it is reconciled against the platform or marked
//! `outcome_unknown` for a person.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::platform::Platform;
use super::{Aggregate, DomainEvent};

/// How a failed attempt is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// 5xx, timeouts before sending, 429: retried with backoff.
    Transient,
    /// The platform refused the content; its message says why.
    Permanent,
    /// The token was refused even after a refresh, or the account needs reconnecting.
    Auth,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PostEvent {
    PostScheduled {
        user_id: String,
        account_id: String,
        platform: Platform,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default)]
        media_urls: Vec<String>,
        #[serde(default)]
        options: Map<String, Value>,
        scheduled_at: DateTime<Utc>,
    },
    /// The claim. `attempt` counts from 1.
    PublishAttemptStarted {
        attempt_id: Uuid,
        attempt: u32,
        started_at: DateTime<Utc>,
        worker: Uuid,
    },
    PostPublished {
        attempt_id: Uuid,
        platform_post_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        published_at: DateTime<Utc>,
        /// Found on the platform after an interrupted attempt rather than answered by it.
        #[serde(default)]
        reconciled: bool,
    },
    PublishFailed {
        attempt_id: Uuid,
        class: FailureClass,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        message: String,
        /// When the next attempt may start; `None` for a final failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<DateTime<Utc>>,
        /// Waiting for the account to be reconnected (not counted against the retry budget).
        #[serde(default)]
        waiting_for_account: bool,
    },
    /// A claim's outcome could not be established; a person decides.
    PostOutcomeUnknown {
        attempt_id: Uuid,
        message: String,
    },
    /// A person asked for another attempt (after `outcome_unknown` or a final failure).
    PostRetryRequested {
        requested_by: String,
    },
    PostCancelled {
        reason: String,
    },
}

impl DomainEvent for PostEvent {
    const TYPES: &'static [&'static str] = &[
        "PostScheduled",
        "PublishAttemptStarted",
        "PostPublished",
        "PublishFailed",
        "PostOutcomeUnknown",
        "PostRetryRequested",
        "PostCancelled",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            PostEvent::PostScheduled { .. } => "PostScheduled",
            PostEvent::PublishAttemptStarted { .. } => "PublishAttemptStarted",
            PostEvent::PostPublished { .. } => "PostPublished",
            PostEvent::PublishFailed { .. } => "PublishFailed",
            PostEvent::PostOutcomeUnknown { .. } => "PostOutcomeUnknown",
            PostEvent::PostRetryRequested { .. } => "PostRetryRequested",
            PostEvent::PostCancelled { .. } => "PostCancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostStatus {
    #[default]
    Scheduled,
    Publishing,
    Published,
    Failed,
    Cancelled,
    OutcomeUnknown,
}

impl PostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PostStatus::Scheduled => "scheduled",
            PostStatus::Publishing => "publishing",
            PostStatus::Published => "published",
            PostStatus::Failed => "failed",
            PostStatus::Cancelled => "cancelled",
            PostStatus::OutcomeUnknown => "outcome_unknown",
        }
    }
}

/// Retry policy: the first retry within 15 s, then ×4 with jitter, `max_attempts` in all
/// (5 by default: ~15 s, 1 min, 4 min, 16 min ≈ 21 min of backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub factor: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            first_delay: Duration::seconds(12),
            factor: 4,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next` (2, 3, …); `jitter` in [0, 1) adds up to 25 %.
    pub fn delay(&self, next: u32, jitter: f64) -> Duration {
        let exp = next.saturating_sub(2).min(16);
        let base = self.first_delay * self.factor.pow(exp);
        base + Duration::milliseconds((base.num_milliseconds() as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PostCommand {
    Schedule {
        user_id: String,
        account_id: String,
        platform: Platform,
        text: String,
        title: Option<String>,
        media_urls: Vec<String>,
        options: Map<String, Value>,
        scheduled_at: DateTime<Utc>,
    },
    StartAttempt {
        attempt_id: Uuid,
        worker: Uuid,
    },
    RecordPublished {
        attempt_id: Uuid,
        platform_post_id: String,
        url: Option<String>,
        reconciled: bool,
    },
    RecordFailure {
        attempt_id: Uuid,
        class: FailureClass,
        status: Option<u16>,
        message: String,
        /// For transient failures: the platform's own retry time (`Retry-After`), if any.
        retry_after: Option<DateTime<Utc>>,
        /// Keep waiting without spending the retry budget (account not usable yet).
        wait_for_account: bool,
        policy: RetryPolicy,
        jitter: f64,
    },
    MarkOutcomeUnknown {
        attempt_id: Uuid,
        message: String,
    },
    RequestRetry {
        requested_by: String,
    },
    Cancel {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("post not found")]
    NotFound,
    #[error("the post already exists")]
    AlreadyExists,
    #[error("the post is {0} and cannot be cancelled")]
    NotCancellable(&'static str),
    #[error("the post is {0}; only scheduled posts can be published")]
    NotScheduled(&'static str),
    #[error("the post is not due yet")]
    NotDue,
    #[error("this attempt is not the current one")]
    StaleAttempt,
    #[error("the post is {0}; only posts whose outcome is unknown or that failed can be retried")]
    NotRetryable(&'static str),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Post {
    pub exists: bool,
    pub user_id: String,
    pub account_id: String,
    pub platform: Option<Platform>,
    pub text: String,
    pub title: Option<String>,
    pub media_urls: Vec<String>,
    pub options: Map<String, Value>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub status: PostStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts that count against the retry budget (waiting for the account does not).
    pub budget_used: u32,
    /// Attempts granted by people (`retry`) on top of the policy.
    pub budget_extra: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub current_attempt: Option<(Uuid, DateTime<Utc>)>,
    pub platform_post_id: Option<String>,
    pub url: Option<String>,
    pub last_error: Option<String>,
}

impl Post {
    /// When the post may be attempted next.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.next_attempt_at.or(self.scheduled_at)
    }
}

impl Aggregate for Post {
    type Event = PostEvent;
    type Command = PostCommand;
    type Error = PostError;

    fn apply(&mut self, event: &PostEvent) {
        match event {
            PostEvent::PostScheduled {
                user_id,
                account_id,
                platform,
                text,
                title,
                media_urls,
                options,
                scheduled_at,
            } => {
                self.exists = true;
                self.user_id = user_id.clone();
                self.account_id = account_id.clone();
                self.platform = Some(*platform);
                self.text = text.clone();
                self.title = title.clone();
                self.media_urls = media_urls.clone();
                self.options = options.clone();
                self.scheduled_at = Some(*scheduled_at);
                self.status = PostStatus::Scheduled;
            }
            PostEvent::PublishAttemptStarted {
                attempt_id,
                attempt,
                started_at,
                ..
            } => {
                self.status = PostStatus::Publishing;
                self.attempts = *attempt;
                self.budget_used += 1;
                self.current_attempt = Some((*attempt_id, *started_at));
            }
            PostEvent::PostPublished {
                platform_post_id, url, ..
            } => {
                self.status = PostStatus::Published;
                self.platform_post_id = Some(platform_post_id.clone());
                self.url = url.clone();
                self.current_attempt = None;
                self.next_attempt_at = None;
            }
            PostEvent::PublishFailed {
                message,
                retry_at,
                waiting_for_account,
                ..
            } => {
                self.last_error = Some(message.clone());
                self.current_attempt = None;
                if *waiting_for_account {
                    self.budget_used = self.budget_used.saturating_sub(1);
                }
                match retry_at {
                    Some(at) => {
                        self.status = PostStatus::Scheduled;
                        self.next_attempt_at = Some(*at);
                    }
                    None => {
                        self.status = PostStatus::Failed;
                        self.next_attempt_at = None;
                    }
                }
            }
            PostEvent::PostOutcomeUnknown { message, .. } => {
                self.status = PostStatus::OutcomeUnknown;
                self.last_error = Some(message.clone());
                self.current_attempt = None;
            }
            PostEvent::PostRetryRequested { .. } => {
                self.status = PostStatus::Scheduled;
                self.next_attempt_at = None;
                self.scheduled_at = None;
                self.budget_extra = self.budget_used;
            }
            PostEvent::PostCancelled { reason } => {
                self.status = PostStatus::Cancelled;
                self.last_error = Some(reason.clone());
                self.next_attempt_at = None;
            }
        }
    }

    fn decide(&self, command: &PostCommand, now: DateTime<Utc>) -> Result<Vec<PostEvent>, PostError> {
        match command {
            PostCommand::Schedule {
                user_id,
                account_id,
                platform,
                text,
                title,
                media_urls,
                options,
                scheduled_at,
            } => {
                if self.exists {
                    return Err(PostError::AlreadyExists);
                }
                Ok(vec![PostEvent::PostScheduled {
                    user_id: user_id.clone(),
                    account_id: account_id.clone(),
                    platform: *platform,
                    text: text.clone(),
                    title: title.clone(),
                    media_urls: media_urls.clone(),
                    options: options.clone(),
                    scheduled_at: *scheduled_at,
                }])
            }
            PostCommand::StartAttempt { attempt_id, worker } => {
                if !self.exists {
                    return Err(PostError::NotFound);
                }
                if self.status != PostStatus::Scheduled {
                    return Err(PostError::NotScheduled(self.status.as_str()));
                }
                if self.due_at().is_some_and(|d| d > now) {
                    return Err(PostError::NotDue);
                }
                Ok(vec![PostEvent::PublishAttemptStarted {
                    attempt_id: *attempt_id,
                    attempt: self.attempts + 1,
                    started_at: now,
                    worker: *worker,
                }])
            }
            PostCommand::RecordPublished {
                attempt_id,
                platform_post_id,
                url,
                reconciled,
            } => {
                self.check_attempt(*attempt_id)?;
                Ok(vec![PostEvent::PostPublished {
                    attempt_id: *attempt_id,
                    platform_post_id: platform_post_id.clone(),
                    url: url.clone(),
                    published_at: now,
                    reconciled: *reconciled,
                }])
            }
            PostCommand::RecordFailure {
                attempt_id,
                class,
                status,
                message,
                retry_after,
                wait_for_account,
                policy,
                jitter,
            } => {
                self.check_attempt(*attempt_id)?;
                let budget = policy.max_attempts + self.budget_extra;
                let retry_at = match class {
                    _ if *wait_for_account => Some(retry_after.unwrap_or(now + Duration::minutes(1))),
                    FailureClass::Transient if self.budget_used < budget => {
                        let backoff = now + policy.delay(self.attempts + 1, *jitter);
                        Some(retry_after.map_or(backoff, |r| r.max(now)))
                    }
                    _ => None,
                };
                Ok(vec![PostEvent::PublishFailed {
                    attempt_id: *attempt_id,
                    class: *class,
                    status: *status,
                    message: message.clone(),
                    retry_at,
                    waiting_for_account: *wait_for_account,
                }])
            }
            PostCommand::MarkOutcomeUnknown { attempt_id, message } => {
                self.check_attempt(*attempt_id)?;
                Ok(vec![PostEvent::PostOutcomeUnknown {
                    attempt_id: *attempt_id,
                    message: message.clone(),
                }])
            }
            PostCommand::RequestRetry { requested_by } => match self.status {
                PostStatus::OutcomeUnknown | PostStatus::Failed => Ok(vec![PostEvent::PostRetryRequested {
                    requested_by: requested_by.clone(),
                }]),
                other if !self.exists => {
                    let _ = other;
                    Err(PostError::NotFound)
                }
                other => Err(PostError::NotRetryable(other.as_str())),
            },
            PostCommand::Cancel { reason } => match self.status {
                _ if !self.exists => Err(PostError::NotFound),
                PostStatus::Scheduled | PostStatus::OutcomeUnknown | PostStatus::Failed => {
                    Ok(vec![PostEvent::PostCancelled { reason: reason.clone() }])
                }
                PostStatus::Cancelled => Ok(vec![]),
                other => Err(PostError::NotCancellable(other.as_str())),
            },
        }
    }
}

impl Post {
    fn check_attempt(&self, attempt_id: Uuid) -> Result<(), PostError> {
        match self.current_attempt {
            Some((current, _)) if current == attempt_id && self.status == PostStatus::Publishing => Ok(()),
            _ => Err(PostError::StaleAttempt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn scheduled() -> PostEvent {
        PostEvent::PostScheduled {
            user_id: "u".into(),
            account_id: "acc_1".into(),
            platform: Platform::X,
            text: "hello".into(),
            title: None,
            media_urls: vec![],
            options: Map::new(),
            scheduled_at: t0(),
        }
    }

    fn started(id: u128, n: u32) -> PostEvent {
        PostEvent::PublishAttemptStarted {
            attempt_id: Uuid::from_u128(id),
            attempt: n,
            started_at: t0(),
            worker: Uuid::nil(),
        }
    }

    fn failure(id: u128, class: FailureClass) -> PostCommand {
        PostCommand::RecordFailure {
            attempt_id: Uuid::from_u128(id),
            class,
            status: Some(503),
            message: "down".into(),
            retry_after: None,
            wait_for_account: false,
            policy: RetryPolicy::default(),
            jitter: 0.0,
        }
    }

    #[test]
    fn a_due_post_is_claimed_once() {
        let cmd = PostCommand::StartAttempt {
            attempt_id: Uuid::from_u128(1),
            worker: Uuid::nil(),
        };
        let out = given::<Post>(vec![scheduled()])
            .at(t0())
            .when(cmd.clone())
            .expect("claim");
        assert!(matches!(
            out.as_slice(),
            [PostEvent::PublishAttemptStarted { attempt: 1, .. }]
        ));
        // Claimed already: the second worker is refused.
        let again = given::<Post>(vec![scheduled(), started(1, 1)])
            .at(t0())
            .when(cmd.clone());
        assert_eq!(again, Err(PostError::NotScheduled("publishing")));
        // Not due yet.
        let early = given::<Post>(vec![scheduled()])
            .at(t0() - Duration::seconds(1))
            .when(cmd);
        assert_eq!(early, Err(PostError::NotDue));
    }

    #[test]
    fn transient_failures_back_off_then_fail_after_the_budget() {
        let mut history = vec![scheduled()];
        let mut now = t0();
        for n in 1..=5u32 {
            history.push(started(n as u128, n));
            let out = given::<Post>(history.clone())
                .at(now)
                .when(failure(n as u128, FailureClass::Transient))
                .expect("ok");
            let PostEvent::PublishFailed { retry_at, .. } = &out[0] else {
                panic!("{out:?}")
            };
            if n < 5 {
                let at = retry_at.expect("retry");
                if n == 1 {
                    assert!(at - now <= Duration::seconds(15), "first retry within 15 s");
                }
                now = at;
            } else {
                assert_eq!(*retry_at, None, "final after 5 attempts");
            }
            history.extend(out);
        }
        assert_eq!(Post::fold(history.iter()).status, PostStatus::Failed);
        // The whole schedule fits in ~30 minutes even with full jitter.
        let policy = RetryPolicy::default();
        let total: i64 = (2..=5).map(|n| policy.delay(n, 0.999).num_seconds()).sum();
        assert!(total < 30 * 60, "{total}");
    }

    #[test]
    fn retry_after_is_honoured_and_permanent_failures_are_final() {
        let history = vec![scheduled(), started(1, 1)];
        let later = t0() + Duration::seconds(90);
        let cmd = PostCommand::RecordFailure {
            attempt_id: Uuid::from_u128(1),
            class: FailureClass::Transient,
            status: Some(429),
            message: "slow down".into(),
            retry_after: Some(later),
            wait_for_account: false,
            policy: RetryPolicy::default(),
            jitter: 0.5,
        };
        let out = given::<Post>(history.clone()).at(t0()).when(cmd).expect("ok");
        assert!(matches!(&out[0], PostEvent::PublishFailed { retry_at: Some(at), .. } if *at == later));
        let out = given::<Post>(history)
            .at(t0())
            .when(failure(1, FailureClass::Permanent))
            .expect("ok");
        assert!(matches!(&out[0], PostEvent::PublishFailed { retry_at: None, .. }));
    }

    #[test]
    fn outcomes_need_the_current_attempt() {
        let history = vec![scheduled(), started(1, 1)];
        let stale = PostCommand::RecordPublished {
            attempt_id: Uuid::from_u128(2),
            platform_post_id: "9".into(),
            url: None,
            reconciled: false,
        };
        assert_eq!(given::<Post>(history).when(stale), Err(PostError::StaleAttempt));
    }

    #[test]
    fn cancel_only_before_publishing_and_retry_only_when_unknown_or_failed() {
        let cancel = PostCommand::Cancel { reason: "user".into() };
        assert!(given::<Post>(vec![scheduled()]).when(cancel.clone()).is_ok());
        assert_eq!(
            given::<Post>(vec![scheduled(), started(1, 1)]).when(cancel.clone()),
            Err(PostError::NotCancellable("publishing"))
        );
        let cancelled = vec![scheduled(), PostEvent::PostCancelled { reason: "x".into() }];
        assert_eq!(given::<Post>(cancelled).when(cancel), Ok(vec![]), "idempotent");
        let unknown = vec![
            scheduled(),
            started(1, 1),
            PostEvent::PostOutcomeUnknown {
                attempt_id: Uuid::from_u128(1),
                message: "?".into(),
            },
        ];
        let out = given::<Post>(unknown.clone())
            .when(PostCommand::RequestRetry {
                requested_by: "u".into(),
            })
            .expect("retry");
        let mut all = unknown;
        all.extend(out);
        let state = Post::fold(all.iter());
        assert_eq!(state.status, PostStatus::Scheduled);
        assert!(state.due_at().is_none(), "due now");
        assert_eq!(
            given::<Post>(vec![scheduled()]).when(PostCommand::RequestRetry {
                requested_by: "u".into()
            }),
            Err(PostError::NotRetryable("scheduled"))
        );
    }

    #[test]
    fn waiting_for_the_account_does_not_spend_the_budget() {
        let mut history = vec![scheduled()];
        for n in 1..=8u32 {
            history.push(started(n as u128, n));
            let cmd = PostCommand::RecordFailure {
                attempt_id: Uuid::from_u128(n as u128),
                class: FailureClass::Auth,
                status: None,
                message: "account needs reconnecting".into(),
                retry_after: None,
                wait_for_account: true,
                policy: RetryPolicy::default(),
                jitter: 0.0,
            };
            let out = given::<Post>(history.clone()).when(cmd).expect("ok");
            history.extend(out);
        }
        let state = Post::fold(history.iter());
        assert_eq!(state.status, PostStatus::Scheduled);
        assert_eq!(state.budget_used, 0);
    }
}
