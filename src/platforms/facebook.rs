//! Facebook Pages behind a user grant. nikara publishes as a Page, never as the user, so one grant
//! becomes one account per Page, each stored with its own Page access token from `/me/accounts`.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::http::{self, TokenIn};
use super::{ApiCtx, PlatformError, Profile, Profiles, str_at};
use crate::domain::platform::Platform;

/// The Pages the user manages, with the Page token to publish with and what the dashboard shows.
const ACCOUNTS_PATH: &str = "/me/accounts?fields=id,name,access_token,picture{url},tasks&limit=100";
/// At 100 Pages a response, ten responses cover any real user without paging forever.
const MAX_RESPONSES: usize = 10;

/// One Facebook Page the user manages, as `/me/accounts` lists it.
#[derive(Debug, Clone)]
pub struct Page {
    pub id: String,
    pub name: Option<String>,
    /// Absent when the user's tasks on the Page do not grant one.
    pub access_token: Option<SecretString>,
    pub picture_url: Option<String>,
    pub tasks: Vec<String>,
}

impl Page {
    /// How the Page is named in notes to the user: its name, or its id when it has none.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// One response of the `/me/accounts` listing.
#[derive(Debug)]
pub struct PageList {
    pub pages: Vec<Page>,
    /// `paging.next`: absolute URL of the following response (it carries the token itself).
    pub next: Option<String>,
}

/// One account per Page the user manages; the caller decides what zero accounts means.
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    let mut notes = Vec::new();
    let pages = list_pages(ctx, token, &mut notes).await?;
    let mut profiles = map_pages(pages);
    profiles.skipped.extend(notes);
    Ok(profiles)
}

/// Every Page the user manages, following `paging.next` for up to [`MAX_RESPONSES`] responses.
/// Shared with Instagram, whose business accounts are only reachable through these Pages.
pub async fn list_pages(
    ctx: &ApiCtx<'_>,
    user_token: &SecretString,
    notes: &mut Vec<String>,
) -> Result<Vec<Page>, PlatformError> {
    let first = http::send_json(ctx.platform, http::get(ctx, ACCOUNTS_PATH, user_token, TokenIn::Query)).await?;
    let mut list = map_accounts(ctx.platform, &first)?;
    let mut pages: Vec<Page> = Vec::new();
    let mut responses = 1;
    loop {
        for page in list.pages.drain(..) {
            // Cursor paging can repeat an entry when Pages are added meanwhile.
            if !pages.iter().any(|p| p.id == page.id) {
                pages.push(page);
            }
        }
        let Some(next) = list.next.take() else { break };
        if responses >= MAX_RESPONSES {
            notes.push(format!("only the first {} Facebook Pages were read", pages.len()));
            break;
        }
        // The link carries the user token: never send it anywhere but the Graph API we were given.
        if !same_origin(ctx.api_url, &next) {
            return Err(PlatformError::invalid(
                ctx.platform,
                "`paging.next` of `/me/accounts` points outside the Graph API origin",
            ));
        }
        let req = ctx.http.get(&next).header(reqwest::header::USER_AGENT, ctx.user_agent);
        list = map_accounts(ctx.platform, &http::send_json(ctx.platform, req).await?)?;
        responses += 1;
    }
    Ok(pages)
}

/// Maps one `/me/accounts` response. `platform` names who asked (Facebook or Instagram) in errors.
pub fn map_accounts(platform: Platform, json: &Value) -> Result<PageList, PlatformError> {
    let data = json
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| PlatformError::invalid(platform, "`/me/accounts` answered without a `data` array"))?;
    let pages = data
        .iter()
        .enumerate()
        .map(|(i, page)| map_page(platform, i, page))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PageList {
        pages,
        next: str_at(json, "/paging/next"),
    })
}

fn map_page(platform: Platform, index: usize, page: &Value) -> Result<Page, PlatformError> {
    let id = str_at(page, "/id").filter(|id| is_graph_id(id)).ok_or_else(|| {
        PlatformError::invalid(platform, format!("entry {index} of `/me/accounts` has no usable `id`"))
    })?;
    let tasks = page
        .get("tasks")
        .and_then(Value::as_array)
        .map(|tasks| tasks.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Page {
        id,
        name: str_at(page, "/name"),
        access_token: str_at(page, "/access_token").map(SecretString::from),
        picture_url: str_at(page, "/picture/data/url"),
        tasks,
    })
}

/// One Profile per Page that came with a Page token; the others are said, not stored, since
/// nothing could be published to them.
pub fn map_pages(pages: Vec<Page>) -> Profiles {
    let mut out = Profiles::default();
    if pages.is_empty() {
        out.skipped
            .push("no Facebook Pages are managed by this user".to_string());
    }
    for page in pages {
        let Some(token) = page.access_token.clone() else {
            out.skipped.push(format!(
                "Page \"{}\" came without a Page access token, so nothing can be published to it",
                page.label()
            ));
            continue;
        };
        out.accounts.push(Profile {
            metadata: json!({
                "page_id": page.id,
                "name": page.name,
                "tasks": page.tasks,
                "picture_url": page.picture_url,
            }),
            external_id: page.id,
            display_name: page.name,
            username: None,
            avatar_url: page.picture_url,
            access_token: Some(token),
        });
    }
    out
}

/// Graph ids are digits. Ids go into the path of later calls, so anything else is refused rather
/// than letting a response reshape a URL that carries a token.
pub fn is_graph_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `link` has the scheme, host and port of `api_url`.
fn same_origin(api_url: &str, link: &str) -> bool {
    match (url::Url::parse(api_url), url::Url::parse(link)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn sample() -> Value {
        json!({
            "data": [
                {"id": "101", "name": "Bakery", "access_token": "EAAPage1", "tasks": ["ANALYZE", "CREATE_CONTENT", "MANAGE"],
                 "picture": {"data": {"url": "https://scontent.xx.fbcdn.net/p1.jpg"}}},
                {"id": "202", "name": "Read-only Page", "tasks": ["ANALYZE"]},
                {"id": "303", "access_token": "EAAPage3"}
            ],
            "paging": {"cursors": {"before": "MTAx", "after": "MzAz"},
                       "next": "https://graph.facebook.com/v21.0/9/accounts?access_token=EAAUser&after=MzAz"}
        })
    }

    #[test]
    fn maps_each_page_with_its_token_and_skips_pages_without_one() {
        let list = map_accounts(Platform::Facebook, &sample()).unwrap();
        assert_eq!(list.next.as_deref().map(|n| n.contains("after=MzAz")), Some(true));
        let profiles = map_pages(list.pages);
        assert_eq!(profiles.accounts.len(), 2);
        let bakery = &profiles.accounts[0];
        assert_eq!(bakery.external_id, "101");
        assert_eq!(bakery.display_name.as_deref(), Some("Bakery"));
        assert_eq!(bakery.username, None);
        assert_eq!(
            bakery.avatar_url.as_deref(),
            Some("https://scontent.xx.fbcdn.net/p1.jpg")
        );
        assert_eq!(bakery.access_token.as_ref().unwrap().expose_secret(), "EAAPage1");
        assert_eq!(
            bakery.metadata,
            json!({"page_id": "101", "name": "Bakery", "tasks": ["ANALYZE", "CREATE_CONTENT", "MANAGE"],
                   "picture_url": "https://scontent.xx.fbcdn.net/p1.jpg"})
        );
        // A Page without name, picture or tasks still maps, with nulls and an empty task list.
        let bare = &profiles.accounts[1];
        assert_eq!(
            bare.metadata,
            json!({"page_id": "303", "name": null, "tasks": [], "picture_url": null})
        );
        assert_eq!(profiles.skipped.len(), 1);
        assert!(profiles.skipped[0].contains("\"Read-only Page\""));
    }

    #[test]
    fn no_pages_is_a_note_not_an_error() {
        let list = map_accounts(Platform::Facebook, &json!({"data": []})).unwrap();
        assert!(list.next.is_none());
        let profiles = map_pages(list.pages);
        assert!(profiles.accounts.is_empty());
        assert_eq!(profiles.skipped, vec!["no Facebook Pages are managed by this user"]);
    }

    #[test]
    fn unusable_shapes_are_invalid_and_name_the_field() {
        let no_data = map_accounts(Platform::Facebook, &json!({"paging": {}})).unwrap_err();
        assert!(matches!(no_data, PlatformError::Invalid { ref message, .. } if message.contains("`data`")));
        let no_id = map_accounts(Platform::Instagram, &json!({"data": [{"name": "x"}]})).unwrap_err();
        assert!(
            matches!(no_id, PlatformError::Invalid { platform: Platform::Instagram, ref message }
            if message.contains("`id`"))
        );
        let path_id = map_accounts(Platform::Facebook, &json!({"data": [{"id": "1/../me"}]}));
        assert!(path_id.is_err());
    }

    #[test]
    fn paging_links_are_followed_only_on_the_api_origin() {
        let api = "https://graph.facebook.com/v21.0";
        assert!(same_origin(api, "https://graph.facebook.com/v21.0/9/accounts?after=x"));
        assert!(!same_origin(api, "https://evil.example/v21.0/9/accounts"));
        assert!(!same_origin(api, "http://graph.facebook.com/v21.0/9/accounts"));
        assert!(same_origin(
            "http://127.0.0.1:8080/v21.0",
            "http://127.0.0.1:8080/v21.0/me/accounts"
        ));
        assert!(!same_origin("http://127.0.0.1:8080/v21.0", "not a url"));
    }
}
