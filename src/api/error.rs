//! The one place errors become HTTP. Bodies are `{"error": {"code", "message"}}` with a stable
//! snake_case code; 5xx bodies say nothing internal, the log carries the cause chain.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::app::AppError;
use crate::store::StoreError;

#[derive(Debug, Clone, Object)]
pub struct FieldProblem {
    /// The request field, e.g. `text`, `media_urls[0]`, `options.subreddit`, `account_ids[1]`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// Stable, snake_case, safe to branch on.
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// Field-level problems of a 422 `validation_failed`.
    #[oai(skip_serializing_if_is_none)]
    pub fields: Option<Vec<FieldProblem>>,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                fields: None,
            },
        })
    }

    /// A 422 body listing every field problem.
    pub fn fields(message: impl Into<String>, fields: Vec<FieldProblem>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: ErrorDetail {
                code: "validation_failed".into(),
                message: message.into(),
                fields: Some(fields),
            },
        })
    }
}

/// Errors any operation may answer.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No such resource for this user.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource changed concurrently, or the request conflicts with its state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is too large.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request is well-formed but invalid.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Something failed on our side; the log has the details.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl ApiError {
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(ErrorBody::new(code, message))
    }
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(ErrorBody::new("not_found", format!("{what} not found")))
    }
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable(ErrorBody::new(code, message))
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized(ErrorBody::new("unauthorized", message), "Bearer".into())
    }
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        ApiError::Conflict(ErrorBody::new(code, message))
    }
    pub fn internal() -> Self {
        ApiError::Internal(ErrorBody::new("internal", "internal error; see the server log"))
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Store(StoreError::WrongExpectedVersion { .. }) => ApiError::Conflict(ErrorBody::new(
                "conflict",
                "the resource was changed concurrently; retry",
            )),
            AppError::Store(StoreError::TooLarge { size, limit }) => ApiError::PayloadTooLarge(ErrorBody::new(
                "payload_too_large",
                format!("event of {size} bytes exceeds {limit}"),
            )),
            AppError::Store(StoreError::Closed) => {
                ApiError::Unavailable(ErrorBody::new("shutting_down", "the server is shutting down"))
            }
            AppError::Rejected(reason) => ApiError::unprocessable("invalid", reason.to_string()),
            other => {
                tracing::error!(error = ?other, "request failed");
                ApiError::internal()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Turns every error that escapes an endpoint (unmatched routes, payload parse failures, missing
/// credentials, …) into the contract's JSON body; responses that already are JSON pass through.
#[derive(Debug, Clone, Copy)]
pub struct JsonErrors;

impl<E: Endpoint> Middleware<E> for JsonErrors {
    type Output = JsonErrorsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        JsonErrorsEndpoint(ep)
    }
}

#[derive(Debug)]
pub struct JsonErrorsEndpoint<E>(E);

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Builds an error response in the contract's shape.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

impl<E: Endpoint> Endpoint for JsonErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match self.0.call(req).await {
            Ok(out) => {
                let resp = out.into_response();
                if resp.status() == StatusCode::UNAUTHORIZED && !resp.headers().contains_key(header::WWW_AUTHENTICATE) {
                    let mut resp = resp;
                    resp.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return Ok(resp);
                }
                Ok(resp)
            }
            Err(err) => {
                let status = err.status();
                let message = err.to_string();
                let resp = err.into_response();
                let is_json = resp
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json"));
                if is_json {
                    return Ok(resp);
                }
                if status.is_server_error() {
                    tracing::error!(%status, error = %message, "request failed");
                    return Ok(error_response(status, "internal", "internal error; see the server log"));
                }
                let message = if message.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    message
                };
                Ok(error_response(status, code_for(status), &message))
            }
        }
    }
}
