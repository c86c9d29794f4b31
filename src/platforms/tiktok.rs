//! The TikTok user behind a grant, from `GET /v2/user/info/`. TikTok reports errors on HTTP 200
//! (`error.code != "ok"`); [`http::send_json`] classifies those, so every call goes through it.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::http::{self, TokenIn};
use super::{ApiCtx, PlatformError, Profile, Profiles, str_at};
use crate::domain::platform::Platform;

const PLATFORM: Platform = Platform::Tiktok;
/// `username` needs the `user.info.profile` scope on top of `user.info.basic`.
const INFO_PATH: &str = "/v2/user/info/?fields=open_id,union_id,avatar_url,display_name,username";
/// What `user.info.basic` alone may read.
const BASIC_INFO_PATH: &str = "/v2/user/info/?fields=open_id,union_id,avatar_url,display_name";

/// The user as one account. A grant without `user.info.profile` is refused the `username` field
/// with `scope_not_authorized`; the basic fields are then asked again, so such a grant still connects.
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    let json = match http::send_json(ctx.platform, http::get(ctx, INFO_PATH, token, TokenIn::Bearer)).await {
        Err(e) if lacks_profile_scope(&e) => {
            http::send_json(ctx.platform, http::get(ctx, BASIC_INFO_PATH, token, TokenIn::Bearer)).await?
        }
        other => other?,
    };
    Ok(Profiles {
        accounts: vec![map_user_info(&json)?],
        skipped: Vec::new(),
    })
}

/// TikTok's refusal of a field the grant's scopes do not cover.
fn lacks_profile_scope(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Unauthorized { code: Some(code), .. } if code == "scope_not_authorized")
}

/// Maps `{"data":{"user":{"open_id","union_id","avatar_url","display_name","username"}},"error":{…}}`.
/// `open_id` is the id TikTok's other endpoints expect for this app, so it is the external id.
pub fn map_user_info(json: &Value) -> Result<Profile, PlatformError> {
    let open_id = str_at(json, "/data/user/open_id")
        .ok_or_else(|| PlatformError::invalid(PLATFORM, "`/v2/user/info/` has no `data.user.open_id`"))?;
    let union_id = str_at(json, "/data/user/union_id");
    let display_name = str_at(json, "/data/user/display_name");
    let username = str_at(json, "/data/user/username");
    let avatar = str_at(json, "/data/user/avatar_url");
    Ok(Profile {
        metadata: json!({
            "open_id": open_id,
            "union_id": union_id,
            "display_name": display_name,
            "username": username,
            "avatar_url": avatar,
        }),
        external_id: open_id,
        display_name: display_name.or_else(|| username.clone()),
        username,
        avatar_url: avatar,
        access_token: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_user_info() {
        let json = json!({
            "data": {"user": {"open_id": "723f24d7-e717-40f8-a2b6-cb8464cd23b4", "union_id": "c9c60f44-a68e-4f5d-84dd-ce22faeb0ba1",
                              "avatar_url": "https://p19-sign.tiktokcdn-us.com/tos-useast5-avt-0068-tx/b17f0e4b.jpeg?x-expires=1&x-signature=a%3D",
                              "display_name": "Tik Toker", "username": "tiktoker"}},
            "error": {"code": "ok", "message": "", "log_id": "20220829194722CBE87ED59D524E727021"}
        });
        let p = map_user_info(&json).unwrap();
        assert_eq!(p.external_id, "723f24d7-e717-40f8-a2b6-cb8464cd23b4");
        assert_eq!(p.display_name.as_deref(), Some("Tik Toker"));
        assert_eq!(p.username.as_deref(), Some("tiktoker"));
        assert!(p.avatar_url.as_deref().unwrap().ends_with("x-signature=a%3D"));
        assert_eq!(
            p.metadata,
            json!({"open_id": "723f24d7-e717-40f8-a2b6-cb8464cd23b4", "union_id": "c9c60f44-a68e-4f5d-84dd-ce22faeb0ba1",
                   "display_name": "Tik Toker", "username": "tiktoker", "avatar_url": p.avatar_url})
        );
    }

    #[test]
    fn basic_scope_answer_maps_without_username() {
        let json = json!({"data": {"user": {"open_id": "o1", "display_name": "Basic"}}, "error": {"code": "ok"}});
        let p = map_user_info(&json).unwrap();
        assert_eq!(p.username, None);
        assert_eq!(p.metadata["username"], Value::Null);
        assert_eq!(p.metadata["union_id"], Value::Null);
    }

    #[test]
    fn missing_open_id_is_invalid() {
        let err = map_user_info(&json!({"data": {}, "error": {"code": "ok"}})).unwrap_err();
        assert!(
            matches!(err, PlatformError::Invalid { platform: Platform::Tiktok, ref message }
            if message.contains("open_id"))
        );
    }

    #[test]
    fn only_a_scope_refusal_retries_with_basic_fields() {
        let refused = |code: &str| PlatformError::Unauthorized {
            platform: PLATFORM,
            status: 200,
            code: Some(code.into()),
            message: "The user did not authorize the scope required for completing this request.".into(),
        };
        assert!(lacks_profile_scope(&refused("scope_not_authorized")));
        assert!(!lacks_profile_scope(&refused("access_token_invalid")));
    }
}
