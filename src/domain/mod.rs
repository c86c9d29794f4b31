//! Pure domain logic: commands are decided over folded state, events are applied without failing.
//! No I/O here; `crate::app` loads streams, calls `decide`, and appends the result.

use chrono::{DateTime, Utc};

pub mod account;
pub mod engagement;
pub mod events;
pub mod ids;
pub mod platform;
pub mod post;
pub mod post_rules;
pub mod user;

pub use events::{DomainEvent, EventError};

/// An event-sourced aggregate: state folded from its stream, and a pure decision function.
pub trait Aggregate: Default + std::fmt::Debug + Send + Sync + 'static {
    type Event: DomainEvent + Send + Sync + std::fmt::Debug;
    type Command: Send + Sync + std::fmt::Debug;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Folds one event into the state. Cannot fail: events are facts.
    fn apply(&mut self, event: &Self::Event);

    /// Decides which events a command produces given the current state and time.
    fn decide(&self, command: &Self::Command, now: DateTime<Utc>) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds a sequence of events into a fresh state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }
}

/// `given(events).when(command).then(events)` for aggregate tests.
#[cfg(test)]
pub mod testing {
    use super::Aggregate;
    use chrono::{DateTime, TimeZone, Utc};

    #[derive(Debug)]
    pub struct Given<A: Aggregate> {
        state: A,
        now: DateTime<Utc>,
    }

    pub fn given<A: Aggregate>(events: Vec<A::Event>) -> Given<A> {
        Given {
            state: A::fold(events.iter()),
            now: Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single().unwrap_or_default(),
        }
    }

    impl<A: Aggregate> Given<A> {
        pub fn at(mut self, now: DateTime<Utc>) -> Self {
            self.now = now;
            self
        }

        pub fn when(self, command: A::Command) -> Result<Vec<A::Event>, A::Error> {
            self.state.decide(&command, self.now)
        }
    }
}
