//! The YouTube channels behind a Google grant, from `GET /youtube/v3/channels?mine=true`. A Google
//! account need not have a channel, and a brand account can hold several, so this may find zero or many.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::http::{self, TokenIn};
use super::{ApiCtx, PlatformError, Profile, Profiles, str_at};
use crate::domain::platform::Platform;

const PLATFORM: Platform = Platform::Youtube;
/// `part=snippet` costs 1 quota unit and holds everything shown in the dashboard.
const CHANNELS_PATH: &str = "/youtube/v3/channels?part=snippet&mine=true";

/// One account per channel; the caller decides what zero channels means.
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    let json = http::send_json(ctx.platform, http::get(ctx, CHANNELS_PATH, token, TokenIn::Bearer)).await?;
    map_channels(&json)
}

/// Maps a `youtube#channelListResponse`. Google omits `items` altogether when there is no channel.
pub fn map_channels(json: &Value) -> Result<Profiles, PlatformError> {
    let items = match json.get("items") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            return Err(PlatformError::invalid(
                PLATFORM,
                "`items` of the channel list is not an array",
            ));
        }
    };
    let mut out = Profiles::default();
    if items.is_empty() {
        out.skipped
            .push("this Google account has no YouTube channel".to_string());
    }
    for (index, item) in items.iter().enumerate() {
        out.accounts.push(map_channel(index, item)?);
    }
    Ok(out)
}

/// One channel. `customUrl` is the handle (`@name`): the username is the handle without its `@`,
/// the metadata keeps it as given. The smallest thumbnail is enough for an avatar.
fn map_channel(index: usize, item: &Value) -> Result<Profile, PlatformError> {
    let id = str_at(item, "/id")
        .ok_or_else(|| PlatformError::invalid(PLATFORM, format!("channel {index} of the channel list has no `id`")))?;
    let title = str_at(item, "/snippet/title");
    let custom_url = str_at(item, "/snippet/customUrl");
    let thumbnail = ["default", "medium", "high"]
        .iter()
        .find_map(|size| str_at(item, &format!("/snippet/thumbnails/{size}/url")));
    Ok(Profile {
        metadata: json!({
            "channel_id": id,
            "title": title,
            "custom_url": custom_url,
            "thumbnail_url": thumbnail,
        }),
        external_id: id,
        display_name: title,
        username: custom_url
            .as_deref()
            .map(|handle| handle.strip_prefix('@').unwrap_or(handle).to_string())
            .filter(|handle| !handle.is_empty()),
        avatar_url: thumbnail,
        access_token: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn channel(id: &str, custom_url: &str, thumbnails: Value) -> Value {
        json!({"kind": "youtube#channel", "etag": "e", "id": id,
               "snippet": {"title": "Bakery TV", "description": "", "customUrl": custom_url,
                           "publishedAt": "2012-01-01T00:00:00Z", "thumbnails": thumbnails, "localized": {"title": "Bakery TV"}}})
    }

    #[test]
    fn maps_each_channel() {
        let thumbs = json!({"default": {"url": "https://yt3.ggpht.com/a=s88", "width": 88, "height": 88},
                            "medium": {"url": "https://yt3.ggpht.com/a=s240"}, "high": {"url": "https://yt3.ggpht.com/a=s800"}});
        let json = json!({"kind": "youtube#channelListResponse", "etag": "x",
                          "pageInfo": {"totalResults": 2, "resultsPerPage": 5},
                          "items": [channel("UC_x5XG1OV2P6uZZ5FSM9Ttw", "@bakerytv", thumbs),
                                    channel("UCsecond", "", json!({"high": {"url": "https://yt3.ggpht.com/b=s800"}}))]});
        let profiles = map_channels(&json).unwrap();
        assert!(profiles.skipped.is_empty());
        let first = &profiles.accounts[0];
        assert_eq!(first.external_id, "UC_x5XG1OV2P6uZZ5FSM9Ttw");
        assert_eq!(first.display_name.as_deref(), Some("Bakery TV"));
        assert_eq!(first.username.as_deref(), Some("bakerytv"));
        assert_eq!(first.avatar_url.as_deref(), Some("https://yt3.ggpht.com/a=s88"));
        assert_eq!(
            first.metadata,
            json!({"channel_id": "UC_x5XG1OV2P6uZZ5FSM9Ttw", "title": "Bakery TV", "custom_url": "@bakerytv",
                   "thumbnail_url": "https://yt3.ggpht.com/a=s88"})
        );
        // No handle, and only a large thumbnail.
        let second = &profiles.accounts[1];
        assert_eq!(second.username, None);
        assert_eq!(second.metadata["custom_url"], Value::Null);
        assert_eq!(second.avatar_url.as_deref(), Some("https://yt3.ggpht.com/b=s800"));
    }

    #[test]
    fn no_channel_is_a_note_not_an_error() {
        for json in [
            json!({"kind": "youtube#channelListResponse", "pageInfo": {"totalResults": 0, "resultsPerPage": 5}}),
            json!({"items": []}),
        ] {
            let profiles = map_channels(&json).unwrap();
            assert!(profiles.accounts.is_empty());
            assert_eq!(profiles.skipped, vec!["this Google account has no YouTube channel"]);
        }
    }

    #[test]
    fn broken_shapes_are_invalid() {
        assert!(map_channels(&json!({"items": {"id": "UC"}})).is_err());
        let err = map_channels(&json!({"items": [{"snippet": {"title": "no id"}}]})).unwrap_err();
        assert!(
            matches!(err, PlatformError::Invalid { platform: Platform::Youtube, ref message }
            if message.contains("`id`"))
        );
        let handle_only_at = map_channels(&json!({"items": [channel("UC1", "@", json!({}))]})).unwrap();
        assert_eq!(handle_only_at.accounts[0].username, None);
        assert_eq!(handle_only_at.accounts[0].avatar_url, None);
    }
}
