//! The caller's own profile: where notifications go.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::error::{ApiError, ApiResult};
use super::security::Bearer;
use crate::app::App;
use crate::domain::user::{User, UserCommand};

#[derive(Tags)]
enum Tag {
    /// The signed-in user.
    Me,
}

#[derive(Debug, Object)]
pub struct Me {
    pub user_id: String,
    /// Where notifications go: the address set here, else the token's `email` claim.
    pub email: Option<String>,
    /// `profile` (set with PUT /api/me), `token` (the JWT's email claim) or null.
    pub email_source: Option<String>,
    pub notifications: bool,
}

#[derive(Debug, Object)]
pub struct UpdateMe {
    /// Notification address; null or empty clears it (the token's claim is used again).
    pub email: Option<String>,
    /// Whether to send notification mail at all.
    #[oai(default = "default_true")]
    pub notifications: bool,
}

fn default_true() -> bool {
    true
}

fn view(user_id: &str, u: &User) -> Me {
    let addr = u.notification_address();
    Me {
        user_id: user_id.to_string(),
        email: addr.map(|(e, _)| e.to_string()),
        email_source: addr.map(|(_, s)| s.to_string()),
        notifications: u.notifications,
    }
}

#[derive(Debug)]
pub struct MeApi;

#[OpenApi]
impl MeApi {
    /// The caller's profile.
    #[oai(path = "/api/me", method = "get", tag = "Tag::Me", operation_id = "get_me")]
    async fn get_me(&self, app: Data<&Arc<App>>, auth: Bearer) -> ApiResult<Json<Me>> {
        let (user, _) = app
            .load::<User>(&auth.0.user_id.stream())
            .await
            .map_err(ApiError::from)?;
        Ok(Json(view(auth.0.user_id.as_str(), &user)))
    }

    /// Sets the notification address and preference.
    #[oai(path = "/api/me", method = "put", tag = "Tag::Me", operation_id = "put_me")]
    async fn put_me(&self, app: Data<&Arc<App>>, auth: Bearer, body: Json<UpdateMe>) -> ApiResult<Json<Me>> {
        let cmd = UserCommand::UpdateProfile {
            email: body.0.email,
            notifications: body.0.notifications,
        };
        let done = app
            .execute::<User>(&auth.0.user_id.stream(), &cmd, App::metadata_for(&auth.0, None))
            .await
            .map_err(|e| match e {
                crate::app::AppError::Rejected(reason) => ApiError::unprocessable("invalid_email", reason.to_string()),
                other => other.into(),
            })?;
        app.settle(done.position).await;
        Ok(Json(view(auth.0.user_id.as_str(), &done.state)))
    }
}
