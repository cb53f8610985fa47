//! The built-in page at `/`: one self-contained, server-rendered HTML
//! document over the last analysis (no scripts, no external assets).
//!
//! Every string that comes from data is HTML-escaped with [`escape`], and
//! subjects in links are percent-encoded with [`encode_path_segment`]: the
//! subjects, resources and explanations on this page come from logs that
//! callers control. The page only reads the loaded results; it never
//! recomputes analytics.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use overreach_model::results::{Finding, IdentitySummary, Suggestion};
use overreach_model::DataDir;

use crate::error::{ApiError, Result};
use crate::state::{AppState, Snapshot};

/// At most this many rows per table; the JSON API has all of them.
const IDENTITY_ROWS: usize = 200;
const FINDING_ROWS: usize = 100;
const SUGGESTION_ROWS: usize = 20;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1d232b;background:#fafbfc}
h1{margin:.2rem 0 .4rem;font-size:1.6rem}h2{margin-top:2rem;font-size:1.2rem}
p.meta{color:#4a5563;margin:.2rem 0}
.totals{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.total{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:.5rem 1rem}
.total b{display:block;font-size:1.4rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{border-bottom:1px solid #e6e9ed;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.nw{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.85rem;word-break:break-all}
.sev{display:inline-block;border-radius:4px;padding:0 .4rem;font-size:.8rem;font-weight:600;color:#fff;background:#6b7280}
.sev-critical{background:#7f1d1d}.sev-high{background:#c2410c}.sev-medium{background:#b45309}.sev-low{background:#2563eb}
.note{color:#4a5563;font-size:.85rem}
footer{margin-top:2rem;color:#4a5563;font-size:.85rem}
";

/// `GET /`
pub async fn index(State(state): State<AppState>) -> Result<Response> {
    match state.snapshot().await {
        Ok(snapshot) => Ok(Html(render(&snapshot)).into_response()),
        Err(ApiError::NotAnalyzed { .. }) => {
            Ok(Html(render_not_analyzed(state.data())).into_response())
        }
        Err(e) => Err(e),
    }
}

/// The page over one loaded analysis.
pub fn render(snapshot: &Snapshot) -> String {
    let run = &snapshot.run;
    let mut out = String::with_capacity(16 * 1024);
    open(&mut out);
    let _ = write!(
        out,
        "<p class=\"meta\">Analysis as of <b>{}</b>. Detection window {} to {} ({}), \
         baseline window {} to {} ({}), observation since {} ({}).</p>",
        time(&run.now),
        time(&run.detect_start),
        time(&run.now),
        escape(&run.detect),
        time(&run.baseline_start),
        time(&run.detect_start),
        escape(&run.baseline),
        time(&run.observe_start),
        escape(&run.observe),
    );
    if let Some(grants) = &run.grants_file {
        let _ = write!(
            out,
            "<p class=\"meta\">Grants file: <code>{}</code></p>",
            escape(grants)
        );
    }
    out.push_str("<div class=\"totals\">");
    for (label, value) in [
        ("events", run.events),
        ("identities", run.identities),
        ("findings", run.findings),
        ("suggestions", run.suggestions),
    ] {
        let _ = write!(out, "<div class=\"total\"><b>{value}</b>{label}</div>");
    }
    out.push_str("</div>");

    identities_table(&mut out, &snapshot.identities);
    findings_table(&mut out, &snapshot.findings);
    suggestions_table(&mut out, &snapshot.suggestions);
    close(&mut out);
    out
}

/// The page before any analysis: what to run.
pub fn render_not_analyzed(data: &DataDir) -> String {
    let mut out = String::new();
    open(&mut out);
    let root = data.root().display().to_string();
    let _ = write!(
        out,
        "<p>No analysis results in <code>{}</code> yet.</p>\
         <p>Run <code>overreach analyze --data {}</code>; this page shows the \
         results as soon as the analysis finishes, without a restart.</p>",
        escape(&data.analytics().display().to_string()),
        escape(&root),
    );
    close(&mut out);
    out
}

fn open(out: &mut String) {
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Overreach</title><style>{STYLE}</style></head><body>\
         <h1>Overreach</h1>"
    );
}

fn close(out: &mut String) {
    out.push_str(
        "<footer>JSON API: <a href=\"/v1/identities\">/v1/identities</a>, \
         <a href=\"/v1/findings\">/v1/findings</a>, \
         <a href=\"/v1/recommendations\">/v1/recommendations</a>; \
         <a href=\"/v1/reports/weekly?format=html\">weekly right-sizing report</a> \
         (written by <code>overreach report</code>); \
         <a href=\"/v1/openapi.json\">OpenAPI document</a>; \
         <a href=\"/metrics\">metrics</a>.</footer></body></html>",
    );
}

fn identities_table(out: &mut String, identities: &[IdentitySummary]) {
    out.push_str("<h2>Identities</h2>");
    if identities.is_empty() {
        out.push_str("<p class=\"note\">No identities in this analysis.</p>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Subject</th><th>Kind</th><th>Events</th>\
         <th>Denies</th><th>Findings</th><th>Suggestions</th></tr></thead><tbody>",
    );
    for identity in identities.iter().take(IDENTITY_ROWS) {
        let _ = write!(
            out,
            "<tr><td><a href=\"/v1/identities/{}\"><code>{}</code></a></td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            // Percent-encoding leaves only unreserved ASCII; escaping keeps
            // the attribute safe regardless.
            escape(&encode_path_segment(&identity.subject)),
            escape(&identity.subject),
            escape(&identity.subject_kind),
            identity.events,
            identity.deny_count,
            identity.findings,
            identity.suggestions,
        );
    }
    out.push_str("</tbody></table>");
    shown_note(out, identities.len(), IDENTITY_ROWS, "/v1/identities");
}

fn findings_table(out: &mut String, findings: &[Finding]) {
    out.push_str("<h2>Findings</h2>");
    if findings.is_empty() {
        out.push_str("<p class=\"note\">No findings in the detection window.</p>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Severity</th><th>Score</th><th>Kind</th>\
         <th>Subject</th><th>Last seen</th><th>Explanation</th></tr></thead><tbody>",
    );
    for finding in findings.iter().take(FINDING_ROWS) {
        let _ = write!(
            out,
            "<tr><td><span class=\"sev sev-{}\">{}</span></td><td class=\"num\">{}</td>\
             <td class=\"nw\">{}</td><td><code>{}</code></td><td class=\"nw\">{}</td>\
             <td>{}</td></tr>",
            severity_class(&finding.severity),
            escape(&finding.severity),
            finding.score,
            escape(&finding.kind),
            escape(&finding.subject),
            time(&finding.last_seen),
            escape(&finding.explanation),
        );
    }
    out.push_str("</tbody></table>");
    shown_note(out, findings.len(), FINDING_ROWS, "/v1/findings");
}

fn suggestions_table(out: &mut String, suggestions: &[Suggestion]) {
    out.push_str("<h2>Top suggestions</h2>");
    if suggestions.is_empty() {
        out.push_str("<p class=\"note\">No least-privilege suggestions.</p>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Risk</th><th>Confidence</th><th>Kind</th>\
         <th>Subject</th><th>Grant</th><th>Replace with</th><th>Explanation</th>\
         </tr></thead><tbody>",
    );
    for suggestion in suggestions.iter().take(SUGGESTION_ROWS) {
        let replacement = if suggestion.replacement.is_empty() {
            "(remove)".to_owned()
        } else {
            suggestion
                .replacement
                .iter()
                .map(|r| format!("<code>{}</code>", escape(r)))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = write!(
            out,
            "<tr><td><span class=\"sev sev-{}\">{}</span></td><td class=\"num\">{:.0}%</td>\
             <td class=\"nw\">{}</td><td><code>{}</code></td><td><code>{}</code></td>\
             <td>{}</td><td>{}</td></tr>",
            severity_class(&suggestion.risk),
            escape(&suggestion.risk),
            suggestion.confidence * 100.0,
            escape(&suggestion.kind),
            escape(&suggestion.subject),
            escape(suggestion.grant.as_deref().unwrap_or("")),
            replacement,
            escape(&suggestion.explanation),
        );
    }
    out.push_str("</tbody></table>");
    shown_note(
        out,
        suggestions.len(),
        SUGGESTION_ROWS,
        "/v1/recommendations",
    );
}

fn shown_note(out: &mut String, total: usize, shown: usize, api: &str) {
    if total > shown {
        let _ = write!(
            out,
            "<p class=\"note\">Showing {shown} of {total}; \
             <a href=\"{api}\">{api}</a> has all of them.</p>"
        );
    }
}

/// A CSS class suffix for a severity or risk: only known values, so data
/// never reaches a class attribute.
fn severity_class(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "high" => "high",
        "medium" => "medium",
        "low" => "low",
        _ => "unknown",
    }
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment: every byte but RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`), so `/` and `:` become `%2F`, `%3A`.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn encodes_spiffe_ids_as_one_segment() {
        assert_eq!(
            encode_path_segment("spiffe://cluster.local/ns/a/sa/b"),
            "spiffe%3A%2F%2Fcluster.local%2Fns%2Fa%2Fsa%2Fb"
        );
        assert_eq!(encode_path_segment("ü x"), "%C3%BC%20x");
    }

    #[test]
    fn unknown_severities_get_a_fixed_class() {
        assert_eq!(severity_class("\"><script>"), "unknown");
    }
}
