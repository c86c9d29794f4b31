//! The LinkedIn member behind a grant. Apps created since August 2023 read the member through
//! OpenID Connect (`/v2/userinfo`); older apps only hold the retired `r_liteprofile` product
//! (`/v2/me`). Both shapes map to the same metadata, so publishing (which needs the author URN)
//! and the dashboard never care which one answered.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::http::{self, TokenIn};
use super::{ApiCtx, PlatformError, Profile, Profiles, str_at};
use crate::domain::platform::Platform;

const PLATFORM: Platform = Platform::Linkedin;
const USERINFO_PATH: &str = "/v2/userinfo";
/// `displayImage~:playableStreams` expands the picture URN into its renditions.
const LEGACY_ME_PATH: &str =
    "/v2/me?projection=(id,localizedFirstName,localizedLastName,profilePicture(displayImage~:playableStreams))";

/// The member as one account: OIDC first, the legacy profile when OIDC is refused for scope.
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    let account = match http::send_json(ctx.platform, http::get(ctx, USERINFO_PATH, token, TokenIn::Bearer)).await {
        Ok(json) => map_userinfo(&json)?,
        Err(e) if wants_legacy(&e) => {
            let json = http::send_json(ctx.platform, http::get(ctx, LEGACY_ME_PATH, token, TokenIn::Bearer)).await?;
            map_legacy_me(&json)?
        }
        Err(e) => return Err(e),
    };
    Ok(Profiles {
        accounts: vec![account],
        skipped: Vec::new(),
    })
}

/// A 403 from `/v2/userinfo` means the grant lacks `openid profile` (an app on the legacy
/// product), so `/v2/me` may still answer. A 401 is a dead token: retrying elsewhere cannot help.
pub fn wants_legacy(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Api { status: 403, .. })
}

/// Maps the OIDC `/v2/userinfo` shape.
pub fn map_userinfo(json: &Value) -> Result<Profile, PlatformError> {
    let id = str_at(json, "/sub").ok_or_else(|| PlatformError::invalid(PLATFORM, "`/v2/userinfo` has no `sub`"))?;
    let first_name = str_at(json, "/given_name");
    let last_name = str_at(json, "/family_name");
    Ok(profile(Member {
        name: str_at(json, "/name").or_else(|| join_name(first_name.as_deref(), last_name.as_deref())),
        id,
        first_name,
        last_name,
        picture: str_at(json, "/picture"),
        email: str_at(json, "/email"),
        locale: locale(json.get("locale")),
        source: "oidc",
    }))
}

/// Maps the legacy `r_liteprofile` `/v2/me` shape. Its renditions are listed smallest first,
/// so the last one is the largest picture.
pub fn map_legacy_me(json: &Value) -> Result<Profile, PlatformError> {
    let id = str_at(json, "/id").ok_or_else(|| PlatformError::invalid(PLATFORM, "`/v2/me` has no `id`"))?;
    let first_name = str_at(json, "/localizedFirstName");
    let last_name = str_at(json, "/localizedLastName");
    // `~` is written `~0` in a JSON pointer.
    let picture = json
        .pointer("/profilePicture/displayImage~0/elements")
        .and_then(Value::as_array)
        .and_then(|renditions| renditions.last())
        .and_then(|largest| str_at(largest, "/identifiers/0/identifier"));
    Ok(profile(Member {
        name: join_name(first_name.as_deref(), last_name.as_deref()),
        id,
        first_name,
        last_name,
        picture,
        email: None,
        locale: None,
        source: "r_liteprofile",
    }))
}

/// The fields both shapes share.
struct Member {
    id: String,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    picture: Option<String>,
    email: Option<String>,
    locale: Option<String>,
    source: &'static str,
}

fn profile(m: Member) -> Profile {
    Profile {
        metadata: json!({
            "id": m.id,
            "name": m.name,
            "first_name": m.first_name,
            "last_name": m.last_name,
            "picture": m.picture,
            "email": m.email,
            "locale": m.locale,
            "author_urn": format!("urn:li:person:{}", m.id),
            "profile_source": m.source,
        }),
        external_id: m.id,
        display_name: m.name,
        username: None,
        avatar_url: m.picture,
        access_token: None,
    }
}

fn join_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name = [first, last].into_iter().flatten().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

/// LinkedIn documents `locale` as a string (`"en-US"`) but also sends `{"country","language"}`;
/// both become one BCP 47 tag.
fn locale(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        obj @ Value::Object(_) => match (str_at(obj, "/language"), str_at(obj, "/country")) {
            (Some(lang), Some(country)) => Some(format!("{lang}-{country}")),
            (lang, _) => lang,
        },
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_oidc_userinfo() {
        let json = json!({"sub": "782bbtaQ", "name": "John Doe", "given_name": "John", "family_name": "Doe",
                          "picture": "https://media.licdn.com/dms/image/C5F03/profile-displayphoto-shrink_100_100/0/",
                          "locale": "en-US", "email": "doe@email.com", "email_verified": true});
        let p = map_userinfo(&json).unwrap();
        assert_eq!(p.external_id, "782bbtaQ");
        assert_eq!(p.display_name.as_deref(), Some("John Doe"));
        assert_eq!(p.username, None);
        assert!(p.access_token.is_none());
        assert_eq!(
            p.metadata,
            json!({"id": "782bbtaQ", "name": "John Doe", "first_name": "John", "last_name": "Doe",
                   "picture": "https://media.licdn.com/dms/image/C5F03/profile-displayphoto-shrink_100_100/0/",
                   "email": "doe@email.com", "locale": "en-US", "author_urn": "urn:li:person:782bbtaQ",
                   "profile_source": "oidc"})
        );
        assert_eq!(p.avatar_url, p.metadata["picture"].as_str().map(str::to_string));
    }

    #[test]
    fn oidc_without_optional_fields_and_with_object_locale() {
        let json = json!({"sub": "abc", "given_name": "Ada", "locale": {"country": "GB", "language": "en"}});
        let p = map_userinfo(&json).unwrap();
        assert_eq!(p.display_name.as_deref(), Some("Ada"));
        assert_eq!(p.metadata["locale"], "en-GB");
        assert_eq!(p.metadata["email"], Value::Null);
        assert_eq!(p.avatar_url, None);
        assert!(matches!(
            map_userinfo(&json!({"name": "x"})),
            Err(PlatformError::Invalid { .. })
        ));
    }

    #[test]
    fn maps_legacy_liteprofile_to_the_same_fields_with_the_largest_picture() {
        let json = json!({
            "id": "yrZCpj2Z12", "localizedFirstName": "Bob", "localizedLastName": "Smith",
            "profilePicture": {"displayImage": "urn:li:digitalmediaAsset:C4D00", "displayImage~": {"elements": [
                {"identifiers": [{"identifier": "https://media.licdn.com/100_100.jpg", "identifierType": "EXTERNAL_URL"}]},
                {"identifiers": [{"identifier": "https://media.licdn.com/800_800.jpg", "identifierType": "EXTERNAL_URL"}]}
            ]}}
        });
        let legacy = map_legacy_me(&json).unwrap();
        assert_eq!(legacy.display_name.as_deref(), Some("Bob Smith"));
        assert_eq!(
            legacy.avatar_url.as_deref(),
            Some("https://media.licdn.com/800_800.jpg")
        );
        assert_eq!(legacy.metadata["author_urn"], "urn:li:person:yrZCpj2Z12");
        assert_eq!(legacy.metadata["profile_source"], "r_liteprofile");
        let oidc = map_userinfo(&json!({"sub": "s"})).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&legacy.metadata), keys(&oidc.metadata));
        let bare = map_legacy_me(&json!({"id": "z", "localizedLastName": "Solo"})).unwrap();
        assert_eq!(bare.display_name.as_deref(), Some("Solo"));
        assert_eq!(bare.avatar_url, None);
        assert!(map_legacy_me(&json!({"localizedFirstName": "x"})).is_err());
    }

    #[test]
    fn only_a_403_falls_back_to_the_legacy_profile() {
        let api = |status| PlatformError::Api {
            platform: PLATFORM,
            status,
            code: None,
            message: "Not enough permissions to access: userinfo.GET.NO_VERSION".into(),
        };
        assert!(wants_legacy(&api(403)));
        assert!(!wants_legacy(&api(400)));
        assert!(!wants_legacy(&api(500)));
        let dead = PlatformError::Unauthorized {
            platform: PLATFORM,
            status: 401,
            code: Some("65601".into()),
            message: "The token used in the request has been revoked by the user".into(),
        };
        assert!(!wants_legacy(&dead));
    }
}
