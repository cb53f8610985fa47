//! The one error type of the HTTP API and the extractors that use it.
//!
//! Every error, including a rejected query string, an unknown route and a
//! wrong method, leaves the server as the same stable JSON body:
//!
//! ```json
//! {"error": {"code": "bad_request", "message": "..."}}
//! ```
//!
//! Internal details (paths, Parquet errors, panics in blocking tasks) are
//! logged with `tracing` and never returned: a 500 only says
//! "internal error".

use std::path::PathBuf;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use overreach_model::table::TableError;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong: a bad parameter value, an unknown
    /// parameter, a malformed path segment.
    #[error("{0}")]
    BadRequest(String),
    /// The route exists but the thing asked for does not.
    #[error("{0}")]
    NotFound(String),
    /// No route matches the path.
    #[error("no route for {path}")]
    NoRoute { path: String },
    #[error("method {method} not allowed for {path}")]
    MethodNotAllowed { method: String, path: String },
    /// `run.json` does not exist yet: `overreach analyze` has not run.
    #[error(
        "no analysis results in {}: run `overreach analyze --data {}` first",
        .data_dir.join("analytics").display(),
        .data_dir.display()
    )]
    NotAnalyzed { data_dir: PathBuf },
    /// `run.json` exists but could not be read or parsed.
    #[error("reading {path}: {source}")]
    RunInfo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    RunInfoJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// An analytics table is missing or unreadable while `run.json` exists.
    #[error("loading analytics table: {0}")]
    Table(#[from] TableError),
    /// The blocking task that loads tables panicked or was cancelled.
    #[error("loading task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ApiError {
    /// The stable machine-readable code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) | ApiError::NoRoute { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotAnalyzed { .. } => "not_analyzed",
            ApiError::RunInfo { .. }
            | ApiError::RunInfoJson { .. }
            | ApiError::Table(_)
            | ApiError::Task(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAnalyzed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RunInfo { .. }
            | ApiError::RunInfoJson { .. }
            | ApiError::Table(_)
            | ApiError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn is_internal(&self) -> bool {
        self.status().is_server_error() && !matches!(self, ApiError::NotAnalyzed { .. })
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = if self.is_internal() {
            tracing::error!(error = %self, "request failed");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        (self.status(), Json(body)).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        if rejection.status().is_server_error() {
            // A route/extractor mismatch is our bug, not the caller's.
            tracing::error!(error = %rejection.body_text(), "path extraction failed");
        }
        ApiError::BadRequest(rejection.body_text())
    }
}

/// [`Query`] whose rejection is an [`ApiError`], so a malformed or unknown
/// parameter gets the same JSON body as every other error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// [`Path`] whose rejection is an [`ApiError`].
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let err = ApiError::RunInfo {
            path: PathBuf::from("/secret/place/run.json"),
            source: std::io::Error::other("disk on fire"),
        };
        assert_eq!(err.code(), "internal");
        assert!(err.is_internal());
        let not_analyzed = ApiError::NotAnalyzed {
            data_dir: PathBuf::from("/d"),
        };
        assert!(!not_analyzed.is_internal());
        assert_eq!(
            not_analyzed.to_string(),
            "no analysis results in /d/analytics: run `overreach analyze --data /d` first"
        );
    }
}
