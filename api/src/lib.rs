//! The serving stage of Overreach: a JSON API under `/v1/`, an OpenAPI
//! document, Prometheus metrics and a built-in HTML page over the results
//! that `overreach analyze` wrote into `DIR/analytics/`.
//!
//! This crate only reads. It never recomputes analytics (it serves the
//! tables as analytics wrote them), never writes into the data directory and
//! never talks to Kafka. Results are loaded lazily and reloaded when
//! `run.json`, which analytics writes last, changes.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let state = overreach_api::AppState::new(overreach_model::DataDir::new("data"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! overreach_api::serve(listener, state, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod report;
pub mod routes;
pub mod state;

use std::future::Future;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

pub use error::ApiError;
pub use state::AppState;

/// Every finding kind analytics produces; `/v1/findings?kind=` accepts
/// exactly these.
pub const FINDING_KINDS: &[&str] = &overreach_model::results::FINDING_KINDS;

/// The route templates of [`app`].
pub mod paths {
    pub const PAGE: &str = "/";
    pub const HEALTHZ: &str = "/healthz";
    pub const METRICS: &str = "/metrics";
    pub const OPENAPI: &str = "/v1/openapi.json";
    pub const IDENTITIES: &str = "/v1/identities";
    pub const IDENTITY: &str = "/v1/identities/{subject}";
    pub const FINDINGS: &str = "/v1/findings";
    pub const RECOMMENDATIONS: &str = "/v1/recommendations";
    pub const WEEKLY_REPORT: &str = "/v1/reports/weekly";

    /// The routes the OpenAPI document describes (all but the page).
    pub const DOCUMENTED: &[&str] = &[
        HEALTHZ,
        METRICS,
        OPENAPI,
        IDENTITIES,
        IDENTITY,
        FINDINGS,
        RECOMMENDATIONS,
        WEEKLY_REPORT,
    ];
}

/// Every route, with request metrics and logging, over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(paths::PAGE, get(page::index))
        .route(paths::HEALTHZ, get(routes::healthz))
        .route(paths::METRICS, get(routes::metrics))
        .route(paths::OPENAPI, get(routes::openapi))
        .route(paths::IDENTITIES, get(routes::identities))
        .route(paths::IDENTITY, get(routes::identity))
        .route(paths::FINDINGS, get(routes::findings))
        .route(paths::RECOMMENDATIONS, get(routes::recommendations))
        .route(paths::WEEKLY_REPORT, get(routes::weekly_report))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Serves [`app`] on an already-bound listener until `shutdown` resolves,
/// then finishes the requests in flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data = %state.data().root().display(), "serving");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!(%addr, "server stopped");
    Ok(())
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute {
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// Counts and logs every request by its route template.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| metrics::UNMATCHED_ROUTE.to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    state.metrics().record_request(&route, status);
    tracing::debug!(
        %method,
        route,
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "served request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_every_route() {
        let doc = openapi::document();
        for path in paths::DOCUMENTED {
            assert!(
                doc["paths"].get(*path).is_some(),
                "{path} missing from the OpenAPI document"
            );
        }
        assert_eq!(
            doc["paths"].as_object().map(|p| p.len()),
            Some(paths::DOCUMENTED.len())
        );
    }
}
