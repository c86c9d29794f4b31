//! The Reddit user behind a grant, from `GET /api/v1/me`. Reddit's JSON carries HTML-escaped URLs
//! (`&amp;` between query parameters), which break the signed image links unless decoded.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::http::{self, TokenIn};
use super::{ApiCtx, PlatformError, Profile, Profiles, str_at};
use crate::domain::platform::Platform;

const PLATFORM: Platform = Platform::Reddit;
const ME_PATH: &str = "/api/v1/me";

/// The user as one account. Reddit requires its User-Agent format, which [`http::get`] sends.
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    let json = http::send_json(ctx.platform, http::get(ctx, ME_PATH, token, TokenIn::Bearer)).await?;
    Ok(Profiles {
        accounts: vec![map_me(&json)?],
        skipped: Vec::new(),
    })
}

/// Maps `{"id","name","icon_img","snoovatar_img",…}`. The avatar is the Snoovatar when the user
/// made one (Reddit sends `""` otherwise), else the profile icon. `fullname` (`t2_{id}`) is how
/// Reddit's other endpoints name a user.
pub fn map_me(json: &Value) -> Result<Profile, PlatformError> {
    let id = str_at(json, "/id").ok_or_else(|| PlatformError::invalid(PLATFORM, "`/api/v1/me` has no `id`"))?;
    let name = str_at(json, "/name");
    let icon = str_at(json, "/icon_img").map(|s| decode_entities(&s));
    let snoovatar = str_at(json, "/snoovatar_img").map(|s| decode_entities(&s));
    Ok(Profile {
        metadata: json!({
            "id": id,
            "name": name,
            "fullname": format!("t2_{id}"),
            "icon_img": icon,
            "snoovatar_img": snoovatar,
        }),
        avatar_url: snoovatar.or(icon),
        external_id: id,
        display_name: name.clone(),
        username: name,
        access_token: None,
    })
}

/// Decodes the five entities Reddit's escaping produces, in one pass so that `&amp;lt;` becomes
/// `&lt;` (not `<`). Anything else, including a bare `&`, is kept as is.
pub fn decode_entities(s: &str) -> String {
    const ENTITIES: [(&str, char); 6] = [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&#39;", '\''),
        ("&#x27;", '\''),
    ];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match ENTITIES.iter().find(|(entity, _)| tail.starts_with(entity)) {
            Some((entity, ch)) => {
                out.push(*ch);
                rest = &tail[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ICON: &str = "https://styles.redditmedia.com/t5_2qh1i/styles/profileIcon_snoo.png?width=256&amp;height=256&amp;crop=256:256,smart&amp;s=abc";

    #[test]
    fn maps_me_preferring_the_snoovatar() {
        let json = json!({"id": "1w72", "name": "spez", "icon_img": ICON, "is_employee": true,
                          "snoovatar_img": "https://i.redd.it/snoovatar/avatars/abc.png?a=1&amp;b=2", "total_karma": 1});
        let p = map_me(&json).unwrap();
        assert_eq!(p.external_id, "1w72");
        assert_eq!(p.username.as_deref(), Some("spez"));
        assert_eq!(p.display_name.as_deref(), Some("spez"));
        assert_eq!(
            p.avatar_url.as_deref(),
            Some("https://i.redd.it/snoovatar/avatars/abc.png?a=1&b=2")
        );
        assert_eq!(
            p.metadata,
            json!({"id": "1w72", "name": "spez", "fullname": "t2_1w72",
                   "icon_img": "https://styles.redditmedia.com/t5_2qh1i/styles/profileIcon_snoo.png?width=256&height=256&crop=256:256,smart&s=abc",
                   "snoovatar_img": "https://i.redd.it/snoovatar/avatars/abc.png?a=1&b=2"})
        );
    }

    #[test]
    fn empty_snoovatar_falls_back_to_the_decoded_icon() {
        let p = map_me(&json!({"id": "abc", "name": "someone", "icon_img": ICON, "snoovatar_img": ""})).unwrap();
        assert_eq!(p.avatar_url, p.metadata["icon_img"].as_str().map(str::to_string));
        assert!(!p.avatar_url.unwrap().contains("&amp;"));
        assert_eq!(p.metadata["snoovatar_img"], Value::Null);
        let bare = map_me(&json!({"id": "abc"})).unwrap();
        assert_eq!(bare.avatar_url, None);
        assert!(matches!(
            map_me(&json!({"name": "no id"})),
            Err(PlatformError::Invalid { .. })
        ));
    }

    #[test]
    fn decodes_entities_once() {
        assert_eq!(decode_entities("a&amp;b&lt;c&gt;d&quot;e&#39;f&#x27;"), "a&b<c>d\"e'f'");
        assert_eq!(decode_entities("&amp;lt;"), "&lt;");
        assert_eq!(decode_entities("fish & chips &unknown; &"), "fish & chips &unknown; &");
        assert_eq!(decode_entities("é&amp;ü"), "é&ü");
        assert_eq!(decode_entities(""), "");
    }
}
