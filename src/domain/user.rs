//! The user aggregate (`user-{id}`): who the user is to nikara and where notifications go.
//!
//! A user exists from their first authenticated request (identity lives in the JWT issuer). The
//! notification address is the one set with `PUT /api/me`, else the token's `email` claim.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Aggregate, DomainEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    /// First authenticated request of this user.
    UserFirstSeen { email_claim: Option<String> },
    /// The token's `email` claim differs from the one seen before.
    UserEmailClaimChanged { email_claim: Option<String> },
    /// The user set their profile.
    UserProfileUpdated { email: Option<String>, notifications: bool },
    /// A connection went through but passed over some accounts (e.g. a Page without an Instagram
    /// business account); said to the user in the activity log.
    AccountsSkipped {
        platform: crate::domain::platform::Platform,
        notes: Vec<String>,
    },
    /// An OAuth connection attempt failed; kept for the activity log (the redirect only carries a code).
    AccountConnectionFailed {
        platform: crate::domain::platform::Platform,
        code: String,
        message: String,
    },
}

impl DomainEvent for UserEvent {
    const TYPES: &'static [&'static str] = &[
        "UserFirstSeen",
        "UserEmailClaimChanged",
        "UserProfileUpdated",
        "AccountConnectionFailed",
        "AccountsSkipped",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserFirstSeen { .. } => "UserFirstSeen",
            UserEvent::UserEmailClaimChanged { .. } => "UserEmailClaimChanged",
            UserEvent::UserProfileUpdated { .. } => "UserProfileUpdated",
            UserEvent::AccountConnectionFailed { .. } => "AccountConnectionFailed",
            UserEvent::AccountsSkipped { .. } => "AccountsSkipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// An authenticated request arrived with this `email` claim.
    Observe { email_claim: Option<String> },
    /// `PUT /api/me`.
    UpdateProfile { email: Option<String>, notifications: bool },
    /// Record accounts a connection passed over.
    RecordSkipped {
        platform: crate::domain::platform::Platform,
        notes: Vec<String>,
    },
    /// Record why an OAuth connection failed.
    RecordConnectionFailure {
        platform: crate::domain::platform::Platform,
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("`{0}` is not an email address")]
    InvalidEmail(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub seen: bool,
    pub email_claim: Option<String>,
    pub profile_email: Option<String>,
    pub notifications: bool,
    pub profile_set: bool,
}

impl Default for User {
    fn default() -> Self {
        User {
            seen: false,
            email_claim: None,
            profile_email: None,
            notifications: true,
            profile_set: false,
        }
    }
}

impl User {
    /// Where notifications go, and why: the profile address wins over the token claim.
    pub fn notification_address(&self) -> Option<(&str, &'static str)> {
        match (&self.profile_email, &self.email_claim) {
            (Some(e), _) => Some((e, "profile")),
            (None, Some(e)) => Some((e, "token")),
            (None, None) => None,
        }
    }
}

/// A deliberately small check: one `@`, something on both sides, a dot in the domain, no spaces.
/// Deliverability is the mail server's business.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Aggregate for User {
    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserFirstSeen { email_claim } => {
                self.seen = true;
                self.email_claim = email_claim.clone();
            }
            UserEvent::UserEmailClaimChanged { email_claim } => self.email_claim = email_claim.clone(),
            UserEvent::UserProfileUpdated { email, notifications } => {
                self.seen = true;
                self.profile_set = true;
                self.profile_email = email.clone();
                self.notifications = *notifications;
            }
            UserEvent::AccountConnectionFailed { .. } | UserEvent::AccountsSkipped { .. } => self.seen = true,
        }
    }

    fn decide(&self, command: &UserCommand, _now: DateTime<Utc>) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Observe { email_claim } => {
                let claim = email_claim.clone().filter(|e| valid_email(e));
                if !self.seen {
                    Ok(vec![UserEvent::UserFirstSeen { email_claim: claim }])
                } else if claim.is_some() && claim != self.email_claim {
                    Ok(vec![UserEvent::UserEmailClaimChanged { email_claim: claim }])
                } else {
                    Ok(vec![])
                }
            }
            UserCommand::UpdateProfile { email, notifications } => {
                let email = email.as_deref().map(str::trim).filter(|e| !e.is_empty());
                if let Some(e) = email
                    && !valid_email(e)
                {
                    return Err(UserError::InvalidEmail(e.to_string()));
                }
                let email = email.map(str::to_string);
                if self.profile_set && email == self.profile_email && *notifications == self.notifications {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserProfileUpdated {
                    email,
                    notifications: *notifications,
                }])
            }
            UserCommand::RecordSkipped { platform, notes } => Ok(vec![UserEvent::AccountsSkipped {
                platform: *platform,
                notes: notes.clone(),
            }]),
            UserCommand::RecordConnectionFailure {
                platform,
                code,
                message,
            } => Ok(vec![UserEvent::AccountConnectionFailed {
                platform: *platform,
                code: code.clone(),
                message: message.clone(),
            }]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;

    fn seen(email: &str) -> UserEvent {
        UserEvent::UserFirstSeen {
            email_claim: Some(email.into()),
        }
    }

    #[test]
    fn a_new_user_is_first_seen_with_their_claim() {
        let out = given::<User>(vec![]).when(UserCommand::Observe {
            email_claim: Some("a@example.com".into()),
        });
        assert_eq!(out, Ok(vec![seen("a@example.com")]));
    }

    #[test]
    fn seeing_the_same_claim_again_records_nothing() {
        let out = given::<User>(vec![seen("a@example.com")]).when(UserCommand::Observe {
            email_claim: Some("a@example.com".into()),
        });
        assert_eq!(out, Ok(vec![]));
        let out = given::<User>(vec![seen("a@example.com")]).when(UserCommand::Observe { email_claim: None });
        assert_eq!(out, Ok(vec![]), "a token without email does not erase the known one");
    }

    #[test]
    fn a_changed_claim_is_recorded() {
        let out = given::<User>(vec![seen("a@example.com")]).when(UserCommand::Observe {
            email_claim: Some("b@example.com".into()),
        });
        assert_eq!(
            out,
            Ok(vec![UserEvent::UserEmailClaimChanged {
                email_claim: Some("b@example.com".into())
            }])
        );
    }

    #[test]
    fn profile_updates_validate_and_are_idempotent() {
        let cmd = UserCommand::UpdateProfile {
            email: Some("me@example.org".into()),
            notifications: false,
        };
        let events = given::<User>(vec![seen("a@example.com")])
            .when(cmd.clone())
            .expect("valid");
        assert_eq!(
            events,
            vec![UserEvent::UserProfileUpdated {
                email: Some("me@example.org".into()),
                notifications: false
            }]
        );
        let mut history = vec![seen("a@example.com")];
        history.extend(events);
        assert_eq!(given::<User>(history.clone()).when(cmd), Ok(vec![]));
        let state = User::fold(history.iter());
        assert_eq!(state.notification_address(), Some(("me@example.org", "profile")));
        let bad = given::<User>(vec![]).when(UserCommand::UpdateProfile {
            email: Some("not an email".into()),
            notifications: true,
        });
        assert_eq!(bad, Err(UserError::InvalidEmail("not an email".into())));
    }

    #[test]
    fn events_round_trip_through_the_store_format() {
        let ev = UserEvent::UserProfileUpdated {
            email: None,
            notifications: true,
        };
        let new = ev.to_new_event(crate::store::Metadata::now()).expect("encode");
        assert_eq!(new.event_type, "UserProfileUpdated");
        let recorded = crate::store::RecordedEvent {
            id: new.id,
            stream: "user-u".into(),
            revision: 0,
            position: crate::store::Position(1),
            event_type: new.event_type.clone(),
            data: new.data.clone(),
            metadata: new.metadata.clone(),
            recorded_at: Utc::now(),
        };
        assert_eq!(UserEvent::from_recorded(&recorded).expect("decode"), Some(ev));
        let mut future = recorded.clone();
        future.metadata.version = 9;
        assert!(UserEvent::from_recorded(&future).is_err());
        let mut other = recorded;
        other.event_type = "SomethingElse".into();
        assert_eq!(UserEvent::from_recorded(&other).expect("not ours"), None);
    }
}
