//! The seven platforms nikara connects.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Facebook,
    Instagram,
    Linkedin,
    X,
    Tiktok,
    Reddit,
    Youtube,
}

impl Platform {
    pub const ALL: [Platform; 7] = [
        Platform::Facebook,
        Platform::Instagram,
        Platform::Linkedin,
        Platform::X,
        Platform::Tiktok,
        Platform::Reddit,
        Platform::Youtube,
    ];

    /// Lower-case name used in URLs, settings keys and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Facebook => "facebook",
            Platform::Instagram => "instagram",
            Platform::Linkedin => "linkedin",
            Platform::X => "x",
            Platform::Tiktok => "tiktok",
            Platform::Reddit => "reddit",
            Platform::Youtube => "youtube",
        }
    }

    /// Human name for messages and mail.
    pub fn display_name(self) -> &'static str {
        match self {
            Platform::Facebook => "Facebook",
            Platform::Instagram => "Instagram",
            Platform::Linkedin => "LinkedIn",
            Platform::X => "X",
            Platform::Tiktok => "TikTok",
            Platform::Reddit => "Reddit",
            Platform::Youtube => "YouTube",
        }
    }

    /// `NIKARA_{P}` prefix of this platform's settings.
    pub fn env_prefix(self) -> String {
        format!("NIKARA_{}", self.as_str().to_ascii_uppercase())
    }

    /// Platforms whose tokens come from Meta's Facebook Login.
    pub fn is_meta(self) -> bool {
        matches!(self, Platform::Facebook | Platform::Instagram)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform `{0}` (expected one of facebook, instagram, linkedin, x, tiktok, reddit, youtube)")]
pub struct UnknownPlatform(pub String);

impl FromStr for Platform {
    type Err = UnknownPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPlatform(s.chars().take(32).collect()))
    }
}
