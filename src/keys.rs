//! Key rotation: moving live tokens onto the primary key by appending events.

use chrono::Utc;

use crate::crypto::{CipherError, TokenCipher};
use crate::domain::account::{Account, AccountCommand, AccountError, StoredTokens};
use crate::domain::{Aggregate, DomainEvent};
use crate::store::{Direction, EventStore, ExpectedVersion, Metadata, StoreError, StreamFrom};

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("account {account}: {source}")]
    Cipher { account: String, source: CipherError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Event(#[from] crate::domain::EventError),
    #[error("account {0}: tokens kept changing; run the rotation again")]
    Contended(String),
}

fn reseal(cipher: &TokenCipher, account: &str, t: &StoredTokens) -> Result<StoredTokens, RotateError> {
    let re = |ct: &str, kind: &str| -> Result<String, RotateError> {
        let aad = format!("{account}/{kind}");
        let map = |source| RotateError::Cipher {
            account: account.to_string(),
            source,
        };
        let plain = cipher.decrypt(ct, aad.as_bytes()).map_err(map)?;
        cipher.encrypt(&plain, aad.as_bytes()).map_err(map)
    };
    Ok(StoredTokens {
        access_token: re(&t.access_token, "access")?,
        refresh_token: t.refresh_token.as_deref().map(|r| re(r, "refresh")).transpose()?,
        ..t.clone()
    })
}

/// Re-encrypts one account's tokens under the primary key. Answers whether anything changed.
/// Appends at the revision read; a concurrent token change (a refresh) makes it re-read.
pub async fn rotate_account(
    store: &dyn EventStore,
    cipher: &TokenCipher,
    account_id: &str,
) -> Result<bool, RotateError> {
    let stream = format!("account-{account_id}");
    let primary = cipher.ring().primary_kid();
    for _ in 0..5 {
        let events = store
            .read_stream(&stream, StreamFrom::Start, Direction::Forwards, usize::MAX)
            .await?;
        let mut state = Account::default();
        let mut revision = None;
        for ev in &events {
            if let Some(e) = crate::domain::account::AccountEvent::from_recorded(ev)? {
                state.apply(&e);
            }
            revision = Some(ev.revision);
        }
        let Some(tokens) = state.tokens.clone().filter(|_| state.connected) else {
            return Ok(false);
        };
        let on_primary = |c: &str| TokenCipher::kid_of(c).is_ok_and(|k| k == primary);
        if on_primary(&tokens.access_token) && tokens.refresh_token.as_deref().is_none_or(on_primary) {
            return Ok(false);
        }
        let cmd = AccountCommand::Reencrypt {
            expected_access: tokens.access_token.clone(),
            tokens: reseal(cipher, account_id, &tokens)?,
        };
        let out = match state.decide(&cmd, Utc::now()) {
            Ok(out) => out,
            Err(AccountError::TokensChanged) => continue,
            Err(_) => return Ok(false),
        };
        let meta = Metadata {
            user_id: state.user_id.clone(),
            ..Metadata::now()
        };
        let new = out
            .iter()
            .map(|e| e.to_new_event(meta.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        match store
            .append(&stream, ExpectedVersion::from_current(revision), new)
            .await
        {
            Ok(_) => return Ok(true),
            Err(StoreError::WrongExpectedVersion { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RotateError::Contended(account_id.to_string()))
}
