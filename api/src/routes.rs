//! The JSON handlers under `/v1/`, `/healthz` and `/metrics`, and the
//! response types they return.
//!
//! Response types are the API's own (they borrow the storage rows of
//! `overreach_model::results` and wrap them); handlers only select, filter
//! and serialize what analytics wrote. They never recompute analytics and
//! never write anything.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use overreach_model::results::{BaselineEntry, Finding, IdentitySummary, RunInfo, Suggestion};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiPath, ApiQuery, Result};
use crate::state::AppState;
use crate::FINDING_KINDS;

/// An example of an accepted `since` value, used in error messages and the
/// OpenAPI document.
pub const SINCE_EXAMPLE: &str = "2023-01-27T18:31:00Z";

/// Parameters of endpoints that take none: any parameter is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsParams {
    pub subject: Option<String>,
    pub kind: Option<String>,
    pub since: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsParams {
    pub subject: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyReportParams {
    pub week: Option<String>,
    pub format: Option<String>,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Serialize)]
struct IdentitiesResponse<'a> {
    run: &'a RunInfo,
    identities: &'a [IdentitySummary],
}

#[derive(Serialize)]
struct IdentityResponse<'a> {
    identity: &'a IdentitySummary,
    baseline: &'a [BaselineEntry],
    findings: Vec<&'a Finding>,
    suggestions: Vec<&'a Suggestion>,
}

#[derive(Serialize)]
struct FindingsResponse<'a> {
    findings: Vec<&'a Finding>,
    count: usize,
}

#[derive(Serialize)]
struct RecommendationsResponse<'a> {
    recommendations: Vec<&'a Suggestion>,
    count: usize,
}

/// `GET /healthz`: the process is up. Says nothing about the data.
pub async fn healthz() -> impl IntoResponse {
    Json(Health { status: "ok" })
}

/// `GET /v1/identities`
pub async fn identities(
    State(state): State<AppState>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Result<Response> {
    let snapshot = state.snapshot().await?;
    Ok(Json(IdentitiesResponse {
        run: &snapshot.run,
        identities: &snapshot.identities,
    })
    .into_response())
}

/// `GET /v1/identities/{subject}`; `subject` is percent-encoded.
pub async fn identity(
    State(state): State<AppState>,
    ApiPath(subject): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Result<Response> {
    let snapshot = state.snapshot().await?;
    let identity = snapshot.identity(&subject).ok_or_else(|| {
        ApiError::NotFound(format!("no identity {subject:?} in the last analysis"))
    })?;
    Ok(Json(IdentityResponse {
        identity,
        baseline: snapshot.baseline(&subject),
        findings: snapshot.findings_of(&subject).collect(),
        suggestions: snapshot.suggestions_of(&subject).collect(),
    })
    .into_response())
}

/// `GET /v1/findings?subject=&kind=&since=`
pub async fn findings(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<FindingsParams>,
) -> Result<Response> {
    let filter = FindingFilter::parse(params)?;
    let snapshot = state.snapshot().await?;
    let findings: Vec<&Finding> = snapshot
        .findings
        .iter()
        .filter(|f| filter.matches(f))
        .collect();
    Ok(Json(FindingsResponse {
        count: findings.len(),
        findings,
    })
    .into_response())
}

/// `GET /v1/recommendations?subject=`
pub async fn recommendations(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<RecommendationsParams>,
) -> Result<Response> {
    let subject = non_empty(params.subject);
    let snapshot = state.snapshot().await?;
    let recommendations: Vec<&Suggestion> = snapshot
        .suggestions
        .iter()
        .filter(|s| subject.as_deref().is_none_or(|want| s.subject == want))
        .collect();
    Ok(Json(RecommendationsResponse {
        count: recommendations.len(),
        recommendations,
    })
    .into_response())
}

/// `GET /v1/openapi.json`
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

/// `GET /metrics`: Prometheus text format. Serves the request counters even
/// when the analysis gauges cannot be read.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let gauges = match state.gauges().await {
        Ok(gauges) => gauges,
        Err(e) => {
            tracing::error!(error = %e, "reading analysis gauges for /metrics");
            None
        }
    };
    let body = state.metrics().render(gauges.as_ref());
    ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// `GET /v1/reports/weekly?week=YYYY-Www&format=json|html|md|csv`: the
/// stored weekly report (`overreach report` writes it), by default the
/// latest week stored, as JSON.
pub async fn weekly_report(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<WeeklyReportParams>,
) -> Result<Response> {
    use crate::report::{render, ReportFormat};
    use overreach_model::report::{IsoWeek, WeeklyReport};
    let format = match non_empty(params.format) {
        Some(f) => ReportFormat::parse(&f).map_err(ApiError::BadRequest)?,
        None => ReportFormat::Json,
    };
    let data = state.data().clone();
    let week = non_empty(params.week)
        .map(|w| {
            IsoWeek::parse(&w)
                .map(|w| w.to_string())
                .map_err(|e| ApiError::BadRequest(e.to_string()))
        })
        .transpose()?;
    let report = tokio::task::spawn_blocking(move || -> Result<WeeklyReport> {
        let week = match week {
            Some(week) => week,
            None => latest_stored_week(&data).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no weekly report stored under {}: run `overreach report --data {} --grants ...` first",
                    data.weekly_reports().display(),
                    data.root().display()
                ))
            })?,
        };
        let path = data.weekly_report(&week);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::NotFound(format!(
                    "no weekly report for {week}: run `overreach report --data {} --week {week} --grants ...` first",
                    data.root().display()
                )))
            }
            Err(source) => return Err(ApiError::RunInfo { path, source }),
        };
        serde_json::from_str(&text).map_err(|source| ApiError::RunInfoJson { path, source })
    })
    .await??;
    let body = render(&report, format);
    Ok(([(CONTENT_TYPE, format.content_type())], body).into_response())
}

/// The greatest `YYYY-Www` among the stored reports.
fn latest_stored_week(data: &overreach_model::DataDir) -> Option<String> {
    std::fs::read_dir(data.weekly_reports())
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let week = name.strip_suffix(".json")?;
            overreach_model::report::IsoWeek::parse(week).ok()
        })
        .max()
        .map(|w| w.to_string())
}

/// The validated filter of `/v1/findings`. Empty parameter values mean "no
/// filter", as if the parameter were absent.
#[derive(Debug, Default)]
pub struct FindingFilter {
    pub subject: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

impl FindingFilter {
    pub fn parse(params: FindingsParams) -> Result<Self> {
        let kind = non_empty(params.kind);
        if let Some(kind) = &kind {
            if !FINDING_KINDS.contains(&kind.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown finding kind {kind:?}: expected one of {}",
                    FINDING_KINDS.join(", ")
                )));
            }
        }
        let since = non_empty(params.since)
            .map(|since| {
                DateTime::parse_from_rfc3339(&since)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        ApiError::BadRequest(format!(
                            "invalid `since` {since:?}: {e}; expected an RFC 3339 \
                             timestamp such as {SINCE_EXAMPLE}"
                        ))
                    })
            })
            .transpose()?;
        Ok(Self {
            subject: non_empty(params.subject),
            kind,
            since,
        })
    }

    pub fn matches(&self, finding: &Finding) -> bool {
        self.subject
            .as_deref()
            .is_none_or(|subject| finding.subject == subject)
            && self.kind.as_deref().is_none_or(|kind| finding.kind == kind)
            && self.since.is_none_or(|since| finding.last_seen >= since)
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kind: Option<&str>, since: Option<&str>) -> FindingsParams {
        FindingsParams {
            subject: None,
            kind: kind.map(str::to_owned),
            since: since.map(str::to_owned),
        }
    }

    #[test]
    fn rejects_unknown_kind_naming_the_allowed_ones() {
        let err = FindingFilter::parse(params(Some("bogus"), None)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("new-reach"), "{message}");
        assert!(message.contains("new-identity"), "{message}");
    }

    #[test]
    fn parses_since_with_offset_as_utc() {
        let filter = FindingFilter::parse(params(None, Some("2023-01-27T20:31:00+02:00"))).unwrap();
        assert_eq!(
            filter.since.unwrap().to_rfc3339(),
            "2023-01-27T18:31:00+00:00"
        );
    }

    #[test]
    fn rejects_bad_since_with_an_example() {
        let err = FindingFilter::parse(params(None, Some("yesterday"))).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"yesterday\""), "{message}");
        assert!(message.contains(SINCE_EXAMPLE), "{message}");
    }

    #[test]
    fn empty_values_do_not_filter() {
        let filter = FindingFilter::parse(params(Some(""), Some(""))).unwrap();
        assert!(filter.kind.is_none() && filter.since.is_none());
    }
}
