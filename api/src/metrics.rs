//! Every Prometheus metric the API exposes, defined in one place.
//!
//! Counters are kept in memory by the server; gauges are read from the
//! loaded analysis results at scrape time (this module never recomputes
//! them). Output is the Prometheus text exposition format 0.0.4. Label
//! values are bounded: routes are route templates (`/v1/identities/{subject}`),
//! never raw paths, and unmatched requests share one label value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use axum::http::StatusCode;

use crate::FINDING_KINDS;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

struct MetricDef {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

const HTTP_REQUESTS: MetricDef = MetricDef {
    name: "overreach_http_requests_total",
    kind: "counter",
    help: "HTTP requests served, by route template and status code.",
};
const FINDINGS: MetricDef = MetricDef {
    name: "overreach_findings",
    kind: "gauge",
    help: "Findings in the last analysis, by kind.",
};
const IDENTITIES: MetricDef = MetricDef {
    name: "overreach_identities",
    kind: "gauge",
    help: "Identities seen in the last analysis.",
};
const EVENTS: MetricDef = MetricDef {
    name: "overreach_events",
    kind: "gauge",
    help: "Decision events the last analysis covered.",
};
const SUGGESTIONS: MetricDef = MetricDef {
    name: "overreach_suggestions",
    kind: "gauge",
    help: "Least-privilege suggestions in the last analysis.",
};
const ANALYZED: MetricDef = MetricDef {
    name: "overreach_analysis_loaded",
    kind: "gauge",
    help: "1 if analysis results are loaded, 0 if `overreach analyze` has not run yet.",
};

/// The gauges of one loaded analysis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisGauges {
    /// Findings per kind; every kind in [`FINDING_KINDS`] is present.
    pub findings_by_kind: BTreeMap<String, u64>,
    pub identities: u64,
    pub events: i64,
    pub suggestions: u64,
}

impl AnalysisGauges {
    /// Counts findings per kind, with zeros for known kinds that have none.
    pub fn new<'a>(
        finding_kinds: impl IntoIterator<Item = &'a str>,
        identities: usize,
        events: i64,
        suggestions: usize,
    ) -> Self {
        let mut findings_by_kind: BTreeMap<String, u64> = FINDING_KINDS
            .iter()
            .map(|kind| ((*kind).to_owned(), 0))
            .collect();
        for kind in finding_kinds {
            *findings_by_kind.entry(kind.to_owned()).or_default() += 1;
        }
        Self {
            findings_by_kind,
            identities: identities as u64,
            events,
            suggestions: suggestions as u64,
        }
    }
}

/// The server's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (route template, status code) -> requests.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one served request. `route` must be a route template or
    /// [`UNMATCHED_ROUTE`], never a raw path.
    pub fn record_request(&self, route: &str, status: StatusCode) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *requests
            .entry((route.to_owned(), status.as_u16()))
            .or_default() += 1;
    }

    /// The requests counted so far for `route` and `status`.
    pub fn requests(&self, route: &str, status: StatusCode) -> u64 {
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        requests
            .get(&(route.to_owned(), status.as_u16()))
            .copied()
            .unwrap_or(0)
    }

    /// Renders every metric in the text exposition format. `analysis` is
    /// `None` while no analysis results exist; the analysis gauges are then
    /// left out (only `overreach_analysis_loaded 0` is written).
    pub fn render(&self, analysis: Option<&AnalysisGauges>) -> String {
        let mut out = String::new();
        header(&mut out, &HTTP_REQUESTS);
        {
            let requests = self
                .requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for ((route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "{}{{route=\"{}\",status=\"{}\"}} {}",
                    HTTP_REQUESTS.name,
                    escape_label(route),
                    status,
                    count
                );
            }
        }
        header(&mut out, &ANALYZED);
        let _ = writeln!(out, "{} {}", ANALYZED.name, u8::from(analysis.is_some()));
        if let Some(gauges) = analysis {
            header(&mut out, &FINDINGS);
            for (kind, count) in &gauges.findings_by_kind {
                let _ = writeln!(
                    out,
                    "{}{{kind=\"{}\"}} {}",
                    FINDINGS.name,
                    escape_label(kind),
                    count
                );
            }
            sample(&mut out, &IDENTITIES, gauges.identities);
            sample(&mut out, &EVENTS, gauges.events);
            sample(&mut out, &SUGGESTIONS, gauges.suggestions);
        }
        out
    }
}

fn header(out: &mut String, def: &MetricDef) {
    let _ = writeln!(out, "# HELP {} {}", def.name, def.help);
    let _ = writeln!(out, "# TYPE {} {}", def.name, def.kind);
}

fn sample(out: &mut String, def: &MetricDef, value: impl std::fmt::Display) {
    header(out, def);
    let _ = writeln!(out, "{} {}", def.name, value);
}

/// Escapes a label value as the text format requires: `\`, `"` and newline.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let metrics = Metrics::new();
        metrics.record_request("/v1/findings", StatusCode::OK);
        metrics.record_request("/v1/findings", StatusCode::OK);
        metrics.record_request("/v1/findings", StatusCode::BAD_REQUEST);
        let gauges = AnalysisGauges::new(["new-reach", "new-reach"], 3, 42, 1);
        let text = metrics.render(Some(&gauges));
        assert!(text.contains("# TYPE overreach_http_requests_total counter\n"));
        assert!(text
            .contains("overreach_http_requests_total{route=\"/v1/findings\",status=\"200\"} 2\n"));
        assert!(text
            .contains("overreach_http_requests_total{route=\"/v1/findings\",status=\"400\"} 1\n"));
        assert!(text.contains("overreach_findings{kind=\"new-reach\"} 2\n"));
        assert!(text.contains("overreach_findings{kind=\"new-identity\"} 0\n"));
        assert!(text.contains("overreach_identities 3\n"));
        assert!(text.contains("overreach_events 42\n"));
        assert!(text.contains("overreach_suggestions 1\n"));
        assert!(text.contains("overreach_analysis_loaded 1\n"));
    }

    #[test]
    fn leaves_out_analysis_gauges_before_analysis() {
        let text = Metrics::new().render(None);
        assert!(text.contains("overreach_analysis_loaded 0\n"));
        assert!(!text.contains("overreach_events"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
