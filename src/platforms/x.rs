//! The X user behind a grant, from `GET /2/users/me`.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::http::{self, TokenIn};
use super::{ApiCtx, PlatformError, Profile, Profiles, str_at};
use crate::domain::platform::Platform;

const PLATFORM: Platform = Platform::X;
/// `public_metrics` costs nothing extra and gives the follower count shown in the dashboard.
const ME_PATH: &str = "/2/users/me?user.fields=profile_image_url,public_metrics";

/// The user as one account; X tokens are the user's own, so no per-account token is stored.
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    let json = http::send_json(ctx.platform, http::get(ctx, ME_PATH, token, TokenIn::Bearer)).await?;
    Ok(Profiles {
        accounts: vec![map_me(&json)?],
        skipped: Vec::new(),
    })
}

/// Maps `{"data":{"id","name","username","profile_image_url","public_metrics"}}`. The avatar URL
/// is kept as X gives it (the `_normal` 48 px rendition). X may answer 200 with only `errors`;
/// their detail then explains the missing `data`.
pub fn map_me(json: &Value) -> Result<Profile, PlatformError> {
    let Some(id) = str_at(json, "/data/id") else {
        let detail = str_at(json, "/errors/0/detail").or_else(|| str_at(json, "/errors/0/message"));
        let message = match detail {
            Some(d) => format!("`/2/users/me` has no `data.id`: {d}"),
            None => "`/2/users/me` has no `data.id`".to_string(),
        };
        return Err(PlatformError::invalid(PLATFORM, message));
    };
    let name = str_at(json, "/data/name");
    let username = str_at(json, "/data/username");
    let image = str_at(json, "/data/profile_image_url");
    let followers = json
        .pointer("/data/public_metrics/followers_count")
        .and_then(Value::as_u64);
    Ok(Profile {
        metadata: json!({
            "id": id,
            "name": name,
            "username": username,
            "profile_image_url": image,
            "followers_count": followers,
        }),
        external_id: id,
        display_name: name,
        username,
        avatar_url: image,
        access_token: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_users_me() {
        let json = json!({"data": {"id": "2244994945", "name": "X Dev", "username": "XDevelopers",
            "profile_image_url": "https://pbs.twimg.com/profile_images/1/abc_normal.jpg",
            "public_metrics": {"followers_count": 583424, "following_count": 2048, "tweet_count": 14052, "listed_count": 1672}}});
        let p = map_me(&json).unwrap();
        assert_eq!(p.external_id, "2244994945");
        assert_eq!(p.display_name.as_deref(), Some("X Dev"));
        assert_eq!(p.username.as_deref(), Some("XDevelopers"));
        assert_eq!(
            p.avatar_url.as_deref(),
            Some("https://pbs.twimg.com/profile_images/1/abc_normal.jpg")
        );
        assert!(p.access_token.is_none());
        assert_eq!(
            p.metadata,
            json!({"id": "2244994945", "name": "X Dev", "username": "XDevelopers",
                   "profile_image_url": "https://pbs.twimg.com/profile_images/1/abc_normal.jpg",
                   "followers_count": 583424})
        );
    }

    #[test]
    fn optional_fields_become_null() {
        let p = map_me(&json!({"data": {"id": "1", "username": "someone"}})).unwrap();
        assert_eq!(p.display_name, None);
        assert_eq!(p.avatar_url, None);
        assert_eq!(p.metadata["followers_count"], Value::Null);
    }

    #[test]
    fn missing_id_is_invalid_and_keeps_the_platform_detail() {
        let json = json!({"errors": [{"title": "Not Found Error", "detail": "Could not find user."}]});
        let err = map_me(&json).unwrap_err();
        assert!(
            matches!(err, PlatformError::Invalid { platform: Platform::X, ref message }
            if message.contains("data.id") && message.contains("Could not find user."))
        );
        assert!(map_me(&json!({"data": {"name": "no id"}})).is_err());
    }
}
