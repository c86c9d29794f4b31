//! Bearer JWT as a poem-openapi security scheme: every `/api` operation takes a [`Bearer`].

use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer as BearerToken;

use super::error::error_response;
use crate::app::App;
use crate::auth::Caller;

/// `Authorization: Bearer <JWT>` (HS256, Supabase-compatible claims).
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct Bearer(pub Caller);

async fn check_bearer(req: &Request, token: BearerToken) -> poem::Result<Caller> {
    let app = req
        .data::<Arc<App>>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    match app.jwt.verify(&token.token) {
        Ok(caller) => {
            if let Err(e) = app.observe_caller(&caller).await {
                tracing::warn!(error = %e, "could not record the caller");
            }
            Ok(caller)
        }
        Err(e) => Err(poem::Error::from_response(error_response(
            poem::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            &e.to_string(),
        ))),
    }
}
