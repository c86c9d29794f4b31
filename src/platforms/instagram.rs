//! Instagram business accounts behind a Facebook Login grant. Instagram's Graph API has no "my
//! accounts" call: each account hangs off a Facebook Page, so the user's Pages are listed and each
//! is asked for its linked account. Publishing to Instagram uses that Page's token, so it is stored.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::facebook::{self, Page, is_graph_id};
use super::http::{self, TokenIn};
use super::{ApiCtx, PlatformError, Profile, Profiles, str_at};
use crate::domain::platform::Platform;

const PLATFORM: Platform = Platform::Instagram;

/// One account per Instagram business account linked to a Page the user manages. Pages without
/// one are noted; any failed call fails the whole fetch, so nothing is half-connected.
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    let mut out = Profiles::default();
    let pages = facebook::list_pages(ctx, token, &mut out.skipped).await?;
    if pages.is_empty() {
        out.skipped
            .push("no Facebook Pages are managed by this user, and Instagram accounts are reached through one".into());
    }
    for page in pages {
        let Some(page_token) = page.access_token.clone() else {
            out.skipped.push(format!(
                "Page \"{}\" came without a Page access token, so its Instagram account cannot be reached",
                page.label()
            ));
            continue;
        };
        let path = format!("/{}?fields=instagram_business_account", page.id);
        let linked = http::send_json(ctx.platform, http::get(ctx, &path, &page_token, TokenIn::Query)).await?;
        let Some(ig_id) = map_linked_account(&linked)? else {
            out.skipped
                .push(format!("Page \"{}\" has no Instagram business account", page.label()));
            continue;
        };
        // An account reached through two Pages is still one account.
        if out.accounts.iter().any(|a| a.external_id == ig_id) {
            continue;
        }
        let path = format!("/{ig_id}?fields=id,username,name,profile_picture_url");
        let user = http::send_json(ctx.platform, http::get(ctx, &path, &page_token, TokenIn::Query)).await?;
        out.accounts.push(map_ig_user(&user, &page, page_token)?);
    }
    Ok(out)
}

/// The Instagram user id linked to a Page (`GET /{page-id}?fields=instagram_business_account`),
/// or `None` when the Page has none (Meta then omits the field).
pub fn map_linked_account(json: &Value) -> Result<Option<String>, PlatformError> {
    let Some(linked) = json.get("instagram_business_account").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    str_at(linked, "/id")
        .filter(|id| is_graph_id(id))
        .map(Some)
        .ok_or_else(|| PlatformError::invalid(PLATFORM, "`instagram_business_account` has no usable `id`"))
}

/// Maps `GET /{ig-user-id}?fields=id,username,name,profile_picture_url`, keeping the Page it was
/// reached through (its token publishes; its id and name explain the link in the dashboard).
pub fn map_ig_user(json: &Value, page: &Page, page_token: SecretString) -> Result<Profile, PlatformError> {
    let id = str_at(json, "/id")
        .filter(|id| is_graph_id(id))
        .ok_or_else(|| PlatformError::invalid(PLATFORM, "the Instagram user has no usable `id`"))?;
    let username = str_at(json, "/username");
    let name = str_at(json, "/name");
    let picture = str_at(json, "/profile_picture_url");
    Ok(Profile {
        metadata: json!({
            "ig_user_id": id,
            "username": username,
            "name": name,
            "profile_picture_url": picture,
            "page_id": page.id,
            "page_name": page.name,
        }),
        external_id: id,
        display_name: name.or_else(|| username.clone()),
        username,
        avatar_url: picture,
        access_token: Some(page_token),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn page(name: Option<&str>) -> Page {
        Page {
            id: "134895793791914".into(),
            name: name.map(str::to_string),
            access_token: Some(SecretString::from("EAAPage")),
            picture_url: None,
            tasks: vec![],
        }
    }

    #[test]
    fn finds_the_linked_account_or_none() {
        let linked = json!({"instagram_business_account": {"id": "17841405822304914"}, "id": "134895793791914"});
        assert_eq!(
            map_linked_account(&linked).unwrap().as_deref(),
            Some("17841405822304914")
        );
        assert_eq!(map_linked_account(&json!({"id": "134895793791914"})).unwrap(), None);
        assert_eq!(
            map_linked_account(&json!({"instagram_business_account": null})).unwrap(),
            None
        );
        assert!(map_linked_account(&json!({"instagram_business_account": {}})).is_err());
        assert!(map_linked_account(&json!({"instagram_business_account": {"id": "1?x=y"}})).is_err());
    }

    #[test]
    fn maps_the_instagram_user_with_the_page_token() {
        let user = json!({"id": "17841405822304914", "username": "bakery.ig", "name": "The Bakery",
                          "profile_picture_url": "https://scontent.cdninstagram.com/v/p.jpg?_nc=1&oh=2"});
        let p = map_ig_user(&user, &page(Some("Bakery")), SecretString::from("EAAPage")).unwrap();
        assert_eq!(p.external_id, "17841405822304914");
        assert_eq!(p.username.as_deref(), Some("bakery.ig"));
        assert_eq!(p.display_name.as_deref(), Some("The Bakery"));
        assert_eq!(
            p.avatar_url.as_deref(),
            Some("https://scontent.cdninstagram.com/v/p.jpg?_nc=1&oh=2")
        );
        assert_eq!(p.access_token.unwrap().expose_secret(), "EAAPage");
        assert_eq!(
            p.metadata,
            json!({"ig_user_id": "17841405822304914", "username": "bakery.ig", "name": "The Bakery",
                   "profile_picture_url": "https://scontent.cdninstagram.com/v/p.jpg?_nc=1&oh=2",
                   "page_id": "134895793791914", "page_name": "Bakery"})
        );
    }

    #[test]
    fn display_name_falls_back_to_username_and_id_is_required() {
        let user = json!({"id": "178", "username": "only.handle", "name": ""});
        let p = map_ig_user(&user, &page(None), SecretString::from("t")).unwrap();
        assert_eq!(p.display_name.as_deref(), Some("only.handle"));
        assert_eq!(p.avatar_url, None);
        assert_eq!(p.metadata["page_name"], Value::Null);
        let err = map_ig_user(&json!({"username": "x"}), &page(None), SecretString::from("t")).unwrap_err();
        assert!(
            matches!(err, PlatformError::Invalid { platform: Platform::Instagram, ref message }
            if message.contains("`id`"))
        );
    }
}
