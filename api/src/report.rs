//! Renders the weekly right-sizing report ([`WeeklyReport`]) as one
//! self-contained HTML page, GitHub-flavoured Markdown, CSV or JSON.
//!
//! This is the presentation end of `overreach report` and of
//! `GET /v1/reports/weekly`: pure functions from a report that analytics
//! already computed to text. Nothing here reads files, recomputes a score
//! or re-ranks a suggestion; the only arithmetic is scaling figures to
//! pixels, counting judged identities into histogram buckets and the
//! week-over-week difference of two scores the report carries.
//!
//! Every string in a report (subjects, grants, explanations, policies,
//! diffs) comes from logs and inventories that others control. HTML escapes
//! all of them with [`escape`]; Markdown backslash-escapes them or puts them
//! in code spans and fences longer than any backtick run they contain; CSV
//! quotes them. Colours and CSS classes only ever come from fixed tables
//! here, never from data.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use overreach_model::report::{
    ClosedSuggestion, IdentityRightsizing, RankedSuggestion, WeeklyReport, STATUS_HISTORY_SHORT,
};

use crate::page::escape;

/// The output formats of the weekly report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    /// One self-contained HTML5 page with inline SVG charts.
    Html,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// RFC 4180 CSV, one row per ranked suggestion.
    Csv,
    /// The report itself, pretty-printed.
    Json,
}

impl ReportFormat {
    /// Parses `html`, `md`, `markdown`, `csv` or `json`, ignoring ASCII case.
    pub fn parse(input: &str) -> Result<Self, String> {
        match input.to_ascii_lowercase().as_str() {
            "html" => Ok(Self::Html),
            "md" | "markdown" => Ok(Self::Markdown),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "unknown report format `{input}`: expected html, md, markdown, csv or json"
            )),
        }
    }

    /// The `Content-Type` to serve the rendered report with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }

    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Html => "html",
            Self::Markdown => "md",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

impl std::str::FromStr for ReportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl std::fmt::Display for ReportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Html => "html",
            Self::Markdown => "markdown",
            Self::Csv => "csv",
            Self::Json => "json",
        })
    }
}

/// `report` in `format`.
pub fn render(report: &WeeklyReport, format: ReportFormat) -> String {
    match format {
        ReportFormat::Html => render_html(report),
        ReportFormat::Markdown => render_markdown(report),
        ReportFormat::Csv => render_csv(report),
        ReportFormat::Json => {
            let mut json = serde_json::to_string_pretty(report)
                .expect("a WeeklyReport serializes: string map keys, derived impls only");
            json.push('\n');
            json
        }
    }
}

/// Identities in the granted-vs-used chart.
const CHART_IDENTITIES: usize = 15;
/// Rows of the ranked suggestions table (HTML and Markdown); the CSV and
/// JSON formats hold every suggestion.
const SUGGESTION_ROWS: usize = 200;
/// Suggestions whose policy and diff the Markdown spells out.
const MARKDOWN_POLICIES: usize = 20;
/// Entries of the closed-suggestion and judged-status lists.
const CHANGE_ROWS: usize = 100;
/// Buckets of the creep-score histogram, 10 points wide each.
const CREEP_BUCKETS: usize = 10;

// Chart colours: one fixed palette, never derived from data.
const USED: &str = "#2f855a";
const UNUSED_SENSITIVE: &str = "#c53030";
const UNUSED_OTHER: &str = "#e0a040";
const IN_GRACE: &str = "#edf0f3";
const INK: &str = "#1d232b";
const MUTED: &str = "#4a5563";
/// Histogram bars, from "uses all it holds" to "uses none of it".
const CREEP_COLOURS: [&str; CREEP_BUCKETS] = [
    "#2f855a", "#4f9a4f", "#7aa843", "#a5b23a", "#cbb234", "#e0a040", "#e08a3c", "#d96c36",
    "#cf4e33", "#c53030",
];

// ---------------------------------------------------------------- HTML

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1d232b;background:#fafbfc;line-height:1.4}
h1{margin:.2rem 0 .4rem;font-size:1.6rem}h1 .week{color:#2563eb}
h2{margin-top:2.2rem;font-size:1.2rem;border-bottom:1px solid #dfe3e8;padding-bottom:.2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
p.meta{color:#4a5563;margin:.2rem 0}
nav{margin:.7rem 0;font-size:.85rem}nav a{margin-right:.9rem;color:#2563eb;text-decoration:none}
.cards{display:flex;gap:.8rem;flex-wrap:wrap;margin:1rem 0}
.card{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:.5rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.6rem;font-variant-numeric:tabular-nums}
.card .sub{display:block;color:#4a5563;font-size:.8rem}
.card.alert b{color:#b91c1c}
.delta{font-size:.85rem;font-weight:600;margin-left:.35rem;white-space:nowrap}.worse{color:#b91c1c}.better{color:#15803d}.flat{color:#4a5563}
figure{margin:.5rem 0;background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:.6rem}
svg{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.88rem}
th,td{border-bottom:1px solid #e6e9ed;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.nw{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-size:.85rem;word-break:break-all}
.badge{display:inline-block;border-radius:4px;padding:0 .4rem;font-size:.8rem;font-weight:600;color:#fff;background:#6b7280}
.risk-high{background:#c53030}.risk-medium{background:#b7791f}.risk-low{background:#2563eb}.new{background:#7c3aed}
details{margin-top:.3rem}summary{cursor:pointer;color:#2563eb;font-size:.85rem}
pre{background:#f6f8fa;border:1px solid #e6e9ed;border-radius:4px;padding:.5rem;margin:.3rem 0;overflow:auto;max-height:28rem;font-size:.8rem}
pre .add{color:#166534;background:#e6ffec}pre .del{color:#991b1b;background:#ffebe9}pre .hunk{color:#6d28d9}pre .file{color:#4a5563;font-weight:600}
.note{color:#4a5563;font-size:.85rem}
ul.changes li{margin:.2rem 0}
footer{margin-top:2.5rem;color:#4a5563;font-size:.85rem}
";

/// The report as one self-contained HTML5 page: inline CSS and SVG, no
/// scripts, no external assets.
pub fn render_html(report: &WeeklyReport) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Overreach right-sizing report {}</title><style>{STYLE}</style></head><body>",
        escape(&report.week)
    );
    html_header(&mut out, report);
    html_summary(&mut out, report);
    html_granted_vs_used(&mut out, report);
    html_creep_distribution(&mut out, report);
    html_suggestions_by_risk(&mut out, report);
    html_top_unused_sensitive(&mut out, report);
    html_changes(&mut out, report);
    html_suggestions(&mut out, report);
    html_not_judged(&mut out, report);
    let _ = write!(
        out,
        "<footer>Generated {} by Overreach. The same report renders as Markdown, CSV \
         (every suggestion, one row each) and JSON.</footer></body></html>",
        rfc3339(&report.generated_at)
    );
    out
}

fn html_header(out: &mut String, report: &WeeklyReport) {
    let _ = write!(
        out,
        "<header><h1>Right-sizing report <span class=\"week\">{}</span></h1>\
         <p class=\"meta\">Week of {} to {} (UTC). Observation window <b>{}</b>, {} to {}; \
         grace period <b>{}</b>.</p>",
        escape(&report.week),
        day(&report.week_start),
        last_day(&report.week_end),
        escape(&report.observe),
        day(&report.observe_start),
        window_end(report),
        escape(&report.grace),
    );
    if report.inventory.is_empty() {
        out.push_str("<p class=\"meta\">Inventory: none given.</p>");
    } else {
        let files: Vec<String> = report
            .inventory
            .iter()
            .map(|file| html_code(file))
            .collect();
        let _ = write!(out, "<p class=\"meta\">Inventory: {}</p>", files.join(", "));
    }
    out.push_str(
        "<nav><a href=\"#summary\">Summary</a><a href=\"#granted-vs-used\">Granted vs used</a>\
         <a href=\"#creep-distribution\">Creep scores</a>\
         <a href=\"#suggestions-by-risk\">By risk</a>\
         <a href=\"#top-unused-sensitive\">Unused sensitive</a>\
         <a href=\"#changes\">Changes</a><a href=\"#suggestions\">Suggestions</a>\
         <a href=\"#not-judged\">Not judged</a></nav></header>",
    );
}

fn html_summary(out: &mut String, report: &WeeklyReport) {
    let t = &report.totals;
    out.push_str("<section id=\"summary\"><h2>Headline figures</h2><div class=\"cards\">");
    let not_judged = (t.identities - t.judged).max(0);
    card(
        out,
        false,
        &format!("{} / {}", grouped(t.judged), grouped(t.identities)),
        "identities judged",
        &format!("{} not judged yet", grouped(not_judged)),
    );
    card(
        out,
        false,
        &grouped(t.granted),
        "grants granted",
        &format!("{} in grace", grouped(t.in_grace)),
    );
    card(
        out,
        false,
        &grouped(t.used),
        "grants used",
        &share(t.used, t.granted)
            .map(|p| format!("{p}% of granted"))
            .unwrap_or_default(),
    );
    card(
        out,
        false,
        &grouped(t.unused),
        "grants unused",
        "judged, no call needed them",
    );
    card(
        out,
        t.unused_sensitive > 0,
        &grouped(t.unused_sensitive),
        "unused sensitive",
        "write, delete, escalate, secrets",
    );
    let creep = match t.creep_score {
        Some(score) => format!(
            "{score}{}",
            trend_html(
                trend(t.creep_score, report.changes.creep_score_previous),
                &report.previous_week
            )
        ),
        None => "&#8212;".to_owned(),
    };
    let creep_sub = match (t.creep_score, report.changes.creep_score_previous) {
        (None, _) => "nothing judged this week".to_owned(),
        (Some(_), None) => format!("no score for {}", escape(&report.previous_week)),
        (Some(_), Some(previous)) => format!(
            "unused share of judged grants; {previous} in {}",
            escape(&report.previous_week)
        ),
    };
    // `creep` and `creep_sub` are already HTML.
    let _ = write!(
        out,
        "<div class=\"card\"><b>{creep}</b>estate creep score<span class=\"sub\">{creep_sub}</span></div>"
    );
    card(
        out,
        false,
        &grouped(t.suggestions),
        "suggestions",
        &format!("{} new", grouped(len(&report.changes.new_suggestions))),
    );
    out.push_str("</div></section>");
}

/// One headline figure; every argument is text of ours, escaped anyway.
fn card(out: &mut String, alert: bool, value: &str, label: &str, sub: &str) {
    let class = if alert { "card alert" } else { "card" };
    let _ = write!(
        out,
        "<div class=\"{class}\"><b>{}</b>{}<span class=\"sub\">{}</span></div>",
        escape(value),
        escape(label),
        escape(sub)
    );
}

fn html_granted_vs_used(out: &mut String, report: &WeeklyReport) {
    let rows = top_by_creep(&report.identities);
    out.push_str("<section id=\"granted-vs-used\"><h2>Granted vs used</h2>");
    if rows.is_empty() {
        out.push_str(
            "<p class=\"note\">No identity has been judged yet, so there is nothing to chart.</p>",
        );
    } else {
        let _ = write!(
            out,
            "<p class=\"note\">The {} identities with the highest creep score. Each bar is \
             everything the identity is granted; the coloured part is what right-sizing \
             judged.</p><figure>",
            rows.len()
        );
        granted_vs_used_svg(out, &rows);
        out.push_str("</figure>");
    }
    out.push_str("</section>");
}

/// The chart's segments of one identity, in grants, never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bar {
    used: i64,
    sensitive: i64,
    other: i64,
    /// Granted but not judged (in grace): the rest of the bar.
    rest: i64,
}

impl Bar {
    fn of(identity: &IdentityRightsizing) -> Self {
        let used = identity.used.max(0);
        let sensitive = identity.unused_sensitive.max(0);
        let other = (identity.unused - identity.unused_sensitive).max(0);
        let judged = used + sensitive + other;
        Self {
            used,
            sensitive,
            other,
            rest: (identity.granted.max(0) - judged).max(0),
        }
    }

    fn total(self) -> i64 {
        self.used + self.sensitive + self.other + self.rest
    }
}

const SVG_WIDTH: f64 = 800.0;
const LABEL_RIGHT: f64 = 250.0;
const BAR_X: f64 = 260.0;
const BAR_WIDTH: f64 = 360.0;
const ROW_HEIGHT: f64 = 24.0;
const BAR_HEIGHT: f64 = 16.0;
const LEGEND_HEIGHT: f64 = 30.0;

fn granted_vs_used_svg(out: &mut String, rows: &[&IdentityRightsizing]) {
    let max_total = rows.iter().map(|i| Bar::of(i).total()).max().unwrap_or(0);
    let scale = if max_total > 0 {
        BAR_WIDTH / max_total as f64
    } else {
        0.0
    };
    let height = LEGEND_HEIGHT + ROW_HEIGHT * rows.len() as f64 + 6.0;
    svg_open(
        out,
        height,
        &format!(
            "Granted vs used, top {} identities by creep score",
            rows.len()
        ),
        &format!(
            "Horizontal stacked bars for the {} identities with the highest creep score: \
             grants used, unused sensitive, unused other and in grace",
            rows.len()
        ),
    );
    legend(
        out,
        BAR_X,
        &[
            (USED, "used"),
            (UNUSED_SENSITIVE, "unused, sensitive"),
            (UNUSED_OTHER, "unused, other"),
            (IN_GRACE, "in grace"),
        ],
    );
    for (n, identity) in rows.iter().enumerate() {
        let bar = Bar::of(identity);
        let y = LEGEND_HEIGHT + ROW_HEIGHT * n as f64;
        let text_y = y + BAR_HEIGHT / 2.0 + 4.0;
        let creep = identity.creep_score.unwrap_or(0);
        let _ = write!(
            out,
            "<g><title>{}: {} of {} grants used, {} unused sensitive, {} unused other, \
             {} in grace; creep score {creep}</title>\
             <text x=\"{LABEL_RIGHT}\" y=\"{text_y:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar-granted\" x=\"{BAR_X}\" y=\"{y:.1}\" width=\"{:.1}\" \
             height=\"{BAR_HEIGHT}\" fill=\"{IN_GRACE}\" stroke=\"#cbd2d9\"/>",
            escape(&identity.subject),
            bar.used,
            identity.granted,
            bar.sensitive,
            bar.other,
            bar.rest,
            escape(&shorten(&identity.subject, 36)),
            bar.total() as f64 * scale,
        );
        let mut x = BAR_X;
        for (class, colour, grants) in [
            ("bar-used", USED, bar.used),
            ("bar-unused-sensitive", UNUSED_SENSITIVE, bar.sensitive),
            ("bar-unused-other", UNUSED_OTHER, bar.other),
        ] {
            if grants == 0 {
                continue;
            }
            let width = grants as f64 * scale;
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" \
                 height=\"{BAR_HEIGHT}\" fill=\"{colour}\"/>"
            );
            x += width;
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{text_y:.1}\" fill=\"{MUTED}\">{creep}% \u{b7} {}/{} used</text></g>",
            BAR_X + BAR_WIDTH + 8.0,
            grouped(bar.used),
            grouped(identity.granted),
        );
    }
    out.push_str("</svg>");
}

fn html_creep_distribution(out: &mut String, report: &WeeklyReport) {
    out.push_str("<section id=\"creep-distribution\"><h2>Creep-score distribution</h2>");
    let buckets = creep_buckets(&report.identities);
    let judged: i64 = buckets.iter().sum();
    if judged == 0 {
        out.push_str(
            "<p class=\"note\">No identity has a creep score yet, so there is nothing to chart.</p>",
        );
    } else {
        out.push_str(
            "<p class=\"note\">How many judged identities leave what share of their grants \
             unused (0: uses everything it holds, 100: uses none of it).</p><figure>",
        );
        creep_histogram_svg(out, &buckets);
        out.push_str("</figure>");
    }
    out.push_str("</section>");
}

fn creep_histogram_svg(out: &mut String, buckets: &[i64; CREEP_BUCKETS]) {
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 784.0;
    const TOP: f64 = 24.0;
    const AXIS: f64 = 190.0;
    let max = buckets.iter().copied().max().unwrap_or(0).max(1);
    let slot = (RIGHT - LEFT) / CREEP_BUCKETS as f64;
    let total: i64 = buckets.iter().sum();
    svg_open(
        out,
        240.0,
        "Creep-score distribution",
        &format!(
            "Histogram of the creep scores of {total} judged identities in ten buckets from 0 to 100"
        ),
    );
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{AXIS}\" x2=\"{RIGHT}\" y2=\"{AXIS}\" stroke=\"{MUTED}\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{AXIS}\" stroke=\"{MUTED}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{MUTED}\">{max}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{MUTED}\">0</text>\
         <text transform=\"rotate(-90)\" x=\"{:.1}\" y=\"16\" text-anchor=\"middle\" \
         fill=\"{MUTED}\">identities</text>\
         <text x=\"{:.1}\" y=\"232\" text-anchor=\"middle\" fill=\"{MUTED}\">creep score \
         (% of judged grants unused)</text>",
        LEFT - 6.0,
        TOP + 4.0,
        LEFT - 6.0,
        AXIS,
        -(TOP + AXIS) / 2.0,
        (LEFT + RIGHT) / 2.0,
    );
    for (n, &count) in buckets.iter().enumerate() {
        let (low, high) = bucket_bounds(n);
        let height = count as f64 / max as f64 * (AXIS - TOP);
        let x = LEFT + slot * n as f64 + 6.0;
        let centre = LEFT + slot * (n as f64 + 0.5);
        let _ = write!(
            out,
            "<g><title>{count} identities with a creep score of {low} to {high}</title>\
             <rect class=\"bucket\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" \
             fill=\"{}\"/>\
             <text x=\"{centre:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"{centre:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{MUTED}\">{low}\u{2013}{high}</text></g>",
            AXIS - height,
            slot - 12.0,
            CREEP_COLOURS[n],
            AXIS - height - 4.0,
            if count > 0 { grouped(count) } else { String::new() },
            AXIS + 16.0,
        );
    }
    out.push_str("</svg>");
}

fn html_suggestions_by_risk(out: &mut String, report: &WeeklyReport) {
    out.push_str("<section id=\"suggestions-by-risk\"><h2>Suggestions by risk</h2>");
    let rows = risk_rows(report);
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    if total == 0 {
        out.push_str(
            "<p class=\"note\">No suggestions this week, so there is nothing to chart.</p>",
        );
    } else {
        out.push_str(
            "<p class=\"note\">Risk is what removing the grant would take away: high for write, \
             delete, escalate and secrets, low for reads.</p><figure>",
        );
        risk_svg(out, &rows, total);
        out.push_str("</figure>");
    }
    out.push_str("</section>");
}

fn risk_svg(out: &mut String, rows: &[(&str, i64)], total: i64) {
    const LABEL: f64 = 90.0;
    const X: f64 = 100.0;
    const WIDTH: f64 = 560.0;
    const ROW: f64 = 30.0;
    const HEIGHT: f64 = 20.0;
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let counts: Vec<String> = rows.iter().map(|(risk, n)| format!("{n} {risk}")).collect();
    svg_open(
        out,
        ROW * rows.len() as f64 + 14.0,
        "Suggestions by risk",
        &format!(
            "Bars of this week's {total} suggestions by risk: {}",
            counts.join(", ")
        ),
    );
    for (n, (risk, count)) in rows.iter().enumerate() {
        let y = 8.0 + ROW * n as f64;
        let width = *count as f64 / max as f64 * WIDTH;
        let _ = write!(
            out,
            "<g><title>{count} {risk}-risk suggestions</title>\
             <text x=\"{LABEL}\" y=\"{:.1}\" text-anchor=\"end\">{risk}</text>\
             <rect class=\"risk-bar\" x=\"{X}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{HEIGHT}\" \
             fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\">{} ({}%)</text></g>",
            y + HEIGHT / 2.0 + 4.0,
            risk_colour(risk),
            X + width + 8.0,
            y + HEIGHT / 2.0 + 4.0,
            grouped(*count),
            share(*count, total).unwrap_or(0),
            risk = escape(risk),
        );
    }
    out.push_str("</svg>");
}

fn html_top_unused_sensitive(out: &mut String, report: &WeeklyReport) {
    out.push_str(
        "<section id=\"top-unused-sensitive\"><h2>Top identities by unused sensitive \
         permissions</h2><p class=\"note\">Unused grants whose removal is high risk: what \
         an attacker holding the identity gains and the workload never needs.</p>",
    );
    if report.top_unused_sensitive.is_empty() {
        out.push_str("<p class=\"note\">No identity holds unused sensitive grants.</p></section>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Subject</th><th>Status</th><th>Unused sensitive</th>\
         <th>Unused</th><th>Used / granted</th><th>In grace</th><th>Creep score</th>\
         </tr></thead><tbody>",
    );
    for identity in &report.top_unused_sensitive {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"nw\">{}</td><td class=\"num\"><b>{}</b></td>\
             <td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            escape(&identity.subject),
            escape(&identity.status),
            grouped(identity.unused_sensitive),
            grouped(identity.unused),
            grouped(identity.used),
            grouped(identity.granted),
            grouped(identity.in_grace),
            creep_cell(identity, &report.previous_week),
        );
    }
    out.push_str("</tbody></table></section>");
}

/// An identity's creep score with its change since the previous week.
fn creep_cell(identity: &IdentityRightsizing, previous_week: &str) -> String {
    match identity.creep_score {
        Some(score) => format!(
            "{score}{}",
            trend_html(
                trend(identity.creep_score, identity.creep_score_previous),
                previous_week
            )
        ),
        None => "&#8212;".to_owned(),
    }
}

fn html_changes(out: &mut String, report: &WeeklyReport) {
    let changes = &report.changes;
    let previous = escape(&report.previous_week);
    let _ = write!(
        out,
        "<section id=\"changes\"><h2>What changed since {previous}</h2><ul class=\"changes\">\
         <li><b>{}</b> new suggestions</li><li><b>{}</b> suggestions closed</li>\
         <li>Inventory: <b>{}</b> grants added, <b>{}</b> removed</li>",
        grouped(len(&changes.new_suggestions)),
        grouped(len(&changes.closed_suggestions)),
        grouped(changes.grants_added),
        grouped(changes.grants_removed),
    );
    let creep = match (changes.creep_score_previous, report.totals.creep_score) {
        (Some(before), Some(now)) => format!(
            "{before} \u{2192} {now}{}",
            trend_html(trend(Some(now), Some(before)), &report.previous_week)
        ),
        (None, Some(now)) => format!("{now} (nothing was judged in {previous})"),
        (Some(before), None) => format!("{before} in {previous}, nothing judged this week"),
        (None, None) => "nothing judged in either week".to_owned(),
    };
    let _ = write!(
        out,
        "<li>Estate creep score: {creep}</li><li><b>{}</b> identities changed judged status</li></ul>",
        grouped(len(&changes.newly_judged))
    );

    if !changes.newly_judged.is_empty() {
        out.push_str("<h3>Judged status changed</h3><ul>");
        for subject in changes.newly_judged.iter().take(CHANGE_ROWS) {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                escape(subject),
                judged_change(report, subject)
            );
        }
        out.push_str("</ul>");
        shown_note(out, changes.newly_judged.len(), CHANGE_ROWS, "identities");
    }

    if !changes.closed_suggestions.is_empty() {
        out.push_str(
            "<h3>Closed suggestions</h3><table><thead><tr><th>Kind</th><th>Subject</th>\
             <th>Grant</th><th>Reason</th></tr></thead><tbody>",
        );
        for closed in changes.closed_suggestions.iter().take(CHANGE_ROWS) {
            let _ = write!(
                out,
                "<tr><td class=\"nw\">{}</td><td><code>{}</code></td><td><code>{}</code></td>\
                 <td><b>{}</b> {}</td></tr>",
                escape(&closed.kind),
                escape(&closed.subject),
                escape(closed.grant.as_deref().unwrap_or("")),
                escape(&closed.reason),
                escape(reason_gloss(closed)),
            );
        }
        out.push_str("</tbody></table>");
        shown_note(
            out,
            changes.closed_suggestions.len(),
            CHANGE_ROWS,
            "closed suggestions",
        );
    }
    out.push_str("</section>");
}

fn html_suggestions(out: &mut String, report: &WeeklyReport) {
    out.push_str(
        "<section id=\"suggestions\"><h2>Suggestions, in review order</h2>\
         <p class=\"note\">Ranked by priority: risk weight \u{d7} confidence. Confidence is how \
         sure right-sizing is that the change breaks nothing.</p>",
    );
    if report.suggestions.is_empty() {
        out.push_str("<p class=\"note\">No suggestions this week: nothing to show.</p></section>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>#</th><th>Priority</th><th>Risk</th><th>Confidence</th>\
         <th>Kind</th><th>Subject</th><th>Grant</th><th>Used</th><th>Last use</th>\
         <th>Explanation</th></tr></thead><tbody>",
    );
    for ranked in report.suggestions.iter().take(SUGGESTION_ROWS) {
        suggestion_row(out, ranked);
    }
    out.push_str("</tbody></table>");
    if report.suggestions.len() > SUGGESTION_ROWS {
        let _ = write!(
            out,
            "<p class=\"note\">Showing the first {SUGGESTION_ROWS}; {} more suggestions are not \
             shown here. The CSV and JSON formats of this report hold all {}.</p>",
            grouped(len(&report.suggestions) - SUGGESTION_ROWS as i64),
            grouped(len(&report.suggestions)),
        );
    }
    out.push_str("</section>");
}

fn suggestion_row(out: &mut String, ranked: &RankedSuggestion) {
    let s = &ranked.suggestion;
    let grant = match &s.grant {
        Some(grant) => html_code(grant),
        None => "<span class=\"note\">(whole policy)</span>".to_owned(),
    };
    let replacement = if s.replacement.is_empty() {
        if s.grant.is_some() {
            "<br><span class=\"note\">remove</span>".to_owned()
        } else {
            String::new()
        }
    } else {
        let items: Vec<String> = s.replacement.iter().map(|r| html_code(r)).collect();
        format!(
            "<br><span class=\"note\">replace with</span> {}",
            items.join(", ")
        )
    };
    let last_use = match &s.last_used {
        Some(t) => format!("<span title=\"{}\">{}</span>", rfc3339(t), day(t)),
        None => "never".to_owned(),
    };
    let new = if ranked.new {
        " <span class=\"badge new\">new</span>"
    } else {
        ""
    };
    let _ = write!(
        out,
        "<tr class=\"suggestion\" id=\"suggestion-{rank}\"><td class=\"num\">{rank}</td>\
         <td class=\"num\">{priority}{new}</td>\
         <td><span class=\"badge risk-{}\">{}</span></td><td class=\"num\">{}</td>\
         <td class=\"nw\">{}</td><td><code>{}</code></td><td>{grant}{replacement}</td>\
         <td class=\"num\">{}</td><td class=\"nw\">{last_use}</td><td>{}",
        risk_class(&s.risk),
        escape(&s.risk),
        percent(s.confidence),
        escape(&s.kind),
        escape(&s.subject),
        grouped(s.used_count),
        escape(&s.explanation),
        rank = ranked.rank,
        priority = ranked.priority,
    );
    if !s.sample_event_ids.is_empty() {
        let ids: Vec<String> = s.sample_event_ids.iter().map(|id| html_code(id)).collect();
        let _ = write!(
            out,
            "<br><span class=\"note\">sample events</span> {}",
            ids.join(", ")
        );
    }
    if s.policy.is_some() || s.diff.is_some() {
        out.push_str("<details><summary>policy and diff</summary>");
        if let Some(policy) = &s.policy {
            let _ = write!(out, "<pre class=\"policy\">{}</pre>", escape(policy));
        }
        if let Some(diff) = &s.diff {
            out.push_str("<pre class=\"diff\">");
            diff_html(out, diff);
            out.push_str("</pre>");
        }
        out.push_str("</details>");
    }
    out.push_str("</td></tr>");
}

/// `text`, escaped, as inline code.
fn html_code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

/// A unified diff with each line in a span classed by what it is: file
/// headers (before the first hunk), hunk headers, additions, removals.
fn diff_html(out: &mut String, diff: &str) {
    let mut in_hunk = false;
    for line in diff.lines() {
        let class = if line.starts_with("@@") {
            in_hunk = true;
            Some("hunk")
        } else if !in_hunk && (line.starts_with("+++") || line.starts_with("---")) {
            Some("file")
        } else if line.starts_with('+') {
            Some("add")
        } else if line.starts_with('-') {
            Some("del")
        } else {
            None
        };
        match class {
            Some(class) => {
                let _ = write!(out, "<span class=\"{class}\">{}</span>", escape(line));
            }
            None => out.push_str(&escape(line)),
        }
        out.push('\n');
    }
}

fn html_not_judged(out: &mut String, report: &WeeklyReport) {
    let _ = write!(
        out,
        "<section id=\"not-judged\"><h2>Identities not judged yet</h2>\
         <p class=\"note\">Right-sizing judges an identity only once its stored history \
         covers the {} observation window, and a grant only once it is older than the {} grace \
         period.</p>",
        escape(&report.observe),
        escape(&report.grace)
    );
    let waiting = not_judged(&report.identities);
    if waiting.is_empty() {
        out.push_str("<p class=\"note\">None: every identity has been judged.</p></section>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Subject</th><th>History (days)</th><th>Granted</th>\
         <th>Allowed calls</th><th>Why</th></tr></thead><tbody>",
    );
    for identity in waiting {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&identity.subject),
            identity.history_days,
            grouped(identity.granted),
            grouped(identity.allowed_calls),
            escape(&not_judged_reason(identity)),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn svg_open(out: &mut String, height: f64, title: &str, label: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {SVG_WIDTH} {height}\" \
         width=\"{SVG_WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{}\" \
         font-size=\"12\" fill=\"{INK}\"><title>{}</title>",
        escape(label),
        escape(title)
    );
}

fn legend(out: &mut String, mut x: f64, entries: &[(&str, &str)]) {
    for (colour, label) in entries {
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{colour}\" \
             stroke=\"#cbd2d9\"/><text x=\"{:.1}\" y=\"16\">{}</text>",
            x + 16.0,
            escape(label)
        );
        // Roughly 6.5 px per character at 12 px, plus the swatch and a gap.
        x += 16.0 + label.chars().count() as f64 * 6.5 + 18.0;
    }
}

fn trend_html(trend: Option<Trend>, previous_week: &str) -> String {
    let Some(trend) = trend else {
        return String::new();
    };
    let class = match trend {
        Trend::Up(_) => "worse",
        Trend::Down(_) => "better",
        Trend::Same => "flat",
    };
    format!(
        "<span class=\"delta {class}\" title=\"change since {}\">{}</span>",
        escape(previous_week),
        trend.text()
    )
}

fn shown_note(out: &mut String, total: usize, shown: usize, what: &str) {
    if let Some(note) = shown_text(total, shown, what) {
        let _ = write!(out, "<p class=\"note\">{}</p>", escape(&note));
    }
}

/// A CSS class suffix for a risk: only known values reach an attribute.
fn risk_class(risk: &str) -> &'static str {
    match risk {
        "high" => "high",
        "medium" => "medium",
        "low" => "low",
        _ => "unknown",
    }
}

fn risk_colour(risk: &str) -> &'static str {
    match risk {
        "high" => UNUSED_SENSITIVE,
        "medium" => "#d69e2e",
        "low" => "#2563eb",
        _ => "#6b7280",
    }
}

// ------------------------------------------------------------ Markdown

/// The report as GitHub-flavoured Markdown: the same sections as the HTML
/// page, charts as tables, and the policy and diff of the first
/// [`MARKDOWN_POLICIES`] suggestions in fenced blocks.
pub fn render_markdown(report: &WeeklyReport) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let t = &report.totals;
    let previous = md_text(&report.previous_week);
    let _ = writeln!(
        out,
        "# Right-sizing report {}\n\nWeek of {} to {} (UTC). Observation window **{}**, {} to {}; \
         grace period **{}**.\n",
        md_text(&report.week),
        day(&report.week_start),
        last_day(&report.week_end),
        md_text(&report.observe),
        day(&report.observe_start),
        window_end(report),
        md_text(&report.grace),
    );
    if report.inventory.is_empty() {
        out.push_str("Inventory: none given.\n\n");
    } else {
        let files: Vec<String> = report.inventory.iter().map(|f| code_span(f)).collect();
        let _ = writeln!(out, "Inventory: {}.\n", files.join(", "));
    }

    out.push_str("## Headline figures\n\n| Figure | This week |\n| --- | ---: |\n");
    let creep = match t.creep_score {
        Some(score) => {
            match trend_text(trend(t.creep_score, report.changes.creep_score_previous)) {
                Some(change) => format!("{score} ({change} since {previous})"),
                None => format!("{score} (no score for {previous})"),
            }
        }
        None => "— (nothing judged)".to_owned(),
    };
    for (figure, value) in [
        (
            "Identities judged",
            format!("{} of {}", grouped(t.judged), grouped(t.identities)),
        ),
        ("Grants granted", grouped(t.granted)),
        (
            "Grants used",
            match share(t.used, t.granted) {
                Some(p) => format!("{} ({p}%)", grouped(t.used)),
                None => grouped(t.used),
            },
        ),
        ("Grants unused", grouped(t.unused)),
        ("Unused sensitive grants", grouped(t.unused_sensitive)),
        ("Grants in grace", grouped(t.in_grace)),
        ("Estate creep score", creep),
        (
            "Suggestions",
            format!(
                "{} ({} new)",
                grouped(t.suggestions),
                grouped(len(&report.changes.new_suggestions))
            ),
        ),
    ] {
        let _ = writeln!(out, "| {figure} | {value} |");
    }

    let rows = top_by_creep(&report.identities);
    let _ = writeln!(
        out,
        "\n## Granted vs used\n\nThe {} identities with the highest creep score.\n",
        rows.len()
    );
    if rows.is_empty() {
        out.push_str("No identity has been judged yet, so there is nothing to chart.\n");
    } else {
        out.push_str(
            "| Subject | Creep score | Granted | Used | Unused sensitive | Unused other | In grace |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for identity in rows {
            let bar = Bar::of(identity);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell_code(&identity.subject),
                md_creep(identity),
                grouped(identity.granted),
                grouped(bar.used),
                grouped(bar.sensitive),
                grouped(bar.other),
                grouped(bar.rest),
            );
        }
    }

    out.push_str("\n## Creep-score distribution\n\n");
    let buckets = creep_buckets(&report.identities);
    let max = buckets.iter().copied().max().unwrap_or(0);
    if max == 0 {
        out.push_str("No identity has a creep score yet, so there is nothing to chart.\n");
    } else {
        out.push_str("| Creep score | Identities | |\n| --- | ---: | --- |\n");
        for (n, &count) in buckets.iter().enumerate() {
            let (low, high) = bucket_bounds(n);
            let _ = writeln!(
                out,
                "| {low}–{high} | {} | {} |",
                grouped(count),
                text_bar(count, max)
            );
        }
    }

    out.push_str("\n## Suggestions by risk\n\n");
    let risks = risk_rows(report);
    let total: i64 = risks.iter().map(|(_, n)| n).sum();
    let max = risks.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if total == 0 {
        out.push_str("No suggestions this week, so there is nothing to chart.\n");
    } else {
        out.push_str("| Risk | Suggestions | |\n| --- | ---: | --- |\n");
        for (risk, count) in &risks {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                md_text(risk),
                grouped(*count),
                text_bar(*count, max)
            );
        }
    }

    out.push_str("\n## Top identities by unused sensitive permissions\n\n");
    if report.top_unused_sensitive.is_empty() {
        out.push_str("No identity holds unused sensitive grants.\n");
    } else {
        out.push_str(
            "| Subject | Status | Unused sensitive | Unused | Used / granted | In grace | Creep score |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for identity in &report.top_unused_sensitive {
            let _ = writeln!(
                out,
                "| {} | {} | **{}** | {} | {} / {} | {} | {} |",
                cell_code(&identity.subject),
                md_text(&identity.status),
                grouped(identity.unused_sensitive),
                grouped(identity.unused),
                grouped(identity.used),
                grouped(identity.granted),
                grouped(identity.in_grace),
                md_creep(identity),
            );
        }
    }

    markdown_changes(&mut out, report);
    markdown_suggestions(&mut out, report);

    let _ = writeln!(
        out,
        "\n## Identities not judged yet\n\nRight-sizing judges an identity only once its stored \
         history covers the {} observation window, and a grant only once it is older than the \
         {} grace period.\n",
        md_text(&report.observe),
        md_text(&report.grace)
    );
    let waiting = not_judged(&report.identities);
    if waiting.is_empty() {
        out.push_str("None: every identity has been judged.\n");
    } else {
        out.push_str(
            "| Subject | History (days) | Granted | Allowed calls | Why |\n| --- | ---: | ---: | ---: | --- |\n",
        );
        for identity in waiting {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {} | {} | {} |",
                cell_code(&identity.subject),
                identity.history_days,
                grouped(identity.granted),
                grouped(identity.allowed_calls),
                md_text(&not_judged_reason(identity)),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n---\n\nGenerated {} by Overreach.",
        rfc3339(&report.generated_at)
    );
    out
}

fn markdown_changes(out: &mut String, report: &WeeklyReport) {
    let changes = &report.changes;
    let previous = md_text(&report.previous_week);
    let creep = match (changes.creep_score_previous, report.totals.creep_score) {
        (Some(before), Some(now)) => format!(
            "{before} → {now} ({})",
            trend_text(trend(Some(now), Some(before))).unwrap_or_default()
        ),
        (None, Some(now)) => format!("{now} (nothing was judged in {previous})"),
        (Some(before), None) => format!("{before} in {previous}, nothing judged this week"),
        (None, None) => "nothing judged in either week".to_owned(),
    };
    let _ = writeln!(
        out,
        "\n## What changed since {previous}\n\n\
         - **{}** new suggestions\n\
         - **{}** suggestions closed\n\
         - Inventory: **{}** grants added, **{}** removed\n\
         - Estate creep score: {creep}\n\
         - **{}** identities changed judged status",
        grouped(len(&changes.new_suggestions)),
        grouped(len(&changes.closed_suggestions)),
        grouped(changes.grants_added),
        grouped(changes.grants_removed),
        grouped(len(&changes.newly_judged)),
    );
    if !changes.newly_judged.is_empty() {
        out.push_str("\n### Judged status changed\n\n");
        for subject in changes.newly_judged.iter().take(CHANGE_ROWS) {
            let _ = writeln!(
                out,
                "- {}: {}",
                code_span(subject),
                judged_change(report, subject)
            );
        }
        md_shown_note(out, changes.newly_judged.len(), CHANGE_ROWS, "identities");
    }
    if !changes.closed_suggestions.is_empty() {
        out.push_str(
            "\n### Closed suggestions\n\n| Kind | Subject | Grant | Reason |\n| --- | --- | --- | --- |\n",
        );
        for closed in changes.closed_suggestions.iter().take(CHANGE_ROWS) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | **{}** {} |",
                md_text(&closed.kind),
                cell_code(&closed.subject),
                closed.grant.as_deref().map(cell_code).unwrap_or_default(),
                md_text(&closed.reason),
                md_text(reason_gloss(closed)),
            );
        }
        md_shown_note(
            out,
            changes.closed_suggestions.len(),
            CHANGE_ROWS,
            "closed suggestions",
        );
    }
}

fn markdown_suggestions(out: &mut String, report: &WeeklyReport) {
    out.push_str(
        "\n## Suggestions, in review order\n\nRanked by priority: risk weight × confidence.\n\n",
    );
    if report.suggestions.is_empty() {
        out.push_str("No suggestions this week: nothing to show.\n");
        return;
    }
    out.push_str(
        "| # | Priority | New | Risk | Confidence | Kind | Subject | Grant | Replace with | Used | Last use | Explanation |\n\
         | ---: | ---: | --- | --- | ---: | --- | --- | --- | --- | ---: | --- | --- |\n",
    );
    for ranked in report.suggestions.iter().take(SUGGESTION_ROWS) {
        let s = &ranked.suggestion;
        let replacement = if s.replacement.is_empty() {
            if s.grant.is_some() {
                "(remove)".to_owned()
            } else {
                String::new()
            }
        } else {
            let items: Vec<String> = s.replacement.iter().map(|r| cell_code(r)).collect();
            items.join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            ranked.rank,
            ranked.priority,
            if ranked.new { "new" } else { "" },
            md_text(&s.risk),
            percent(s.confidence),
            md_text(&s.kind),
            cell_code(&s.subject),
            s.grant.as_deref().map(cell_code).unwrap_or_default(),
            replacement,
            grouped(s.used_count),
            s.last_used
                .as_ref()
                .map(day)
                .unwrap_or_else(|| "never".to_owned()),
            md_text(&s.explanation),
        );
    }
    if report.suggestions.len() > SUGGESTION_ROWS {
        let _ = writeln!(
            out,
            "\nShowing the first {SUGGESTION_ROWS}; {} more suggestions are not shown here. \
             The CSV and JSON formats of this report hold all {}.",
            grouped(len(&report.suggestions) - SUGGESTION_ROWS as i64),
            grouped(len(&report.suggestions)),
        );
    }

    let with_policy: Vec<&RankedSuggestion> = report
        .suggestions
        .iter()
        .take(MARKDOWN_POLICIES)
        .filter(|r| r.suggestion.policy.is_some() || r.suggestion.diff.is_some())
        .collect();
    if with_policy.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Policies and diffs of the first {MARKDOWN_POLICIES} suggestions"
    );
    for ranked in with_policy {
        let s = &ranked.suggestion;
        let _ = writeln!(
            out,
            "\n#### {}. {} for {}",
            ranked.rank,
            md_text(&s.kind),
            code_span(&s.subject)
        );
        if let Some(grant) = &s.grant {
            let _ = writeln!(out, "\nGrant: {}", code_span(grant));
        }
        if let Some(policy) = &s.policy {
            out.push_str("\nSuggested policy:\n\n");
            fenced(out, policy_language(policy), policy);
        }
        if let Some(diff) = &s.diff {
            out.push_str("\nDiff from what is granted:\n\n");
            fenced(out, "diff", diff);
        }
    }
}

/// `json` for a policy that is a JSON document (OPA data), else `yaml`.
fn policy_language(policy: &str) -> &'static str {
    match policy.trim_start().chars().next() {
        Some('{' | '[') => "json",
        _ => "yaml",
    }
}

/// A fenced code block whose fence is longer than any backtick run in
/// `body`, so no content can close it early.
fn fenced(out: &mut String, language: &str, body: &str) {
    let fence = "`".repeat(longest_backtick_run(body).max(2) + 1);
    let _ = write!(out, "{fence}{language}\n{body}");
    if !body.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "{fence}");
}

/// Inline code, delimited by more backticks than it contains; line breaks
/// become spaces (a code span cannot hold one).
fn code_span(text: &str) -> String {
    let text = text.replace(['\r', '\n'], " ");
    let ticks = "`".repeat(longest_backtick_run(&text) + 1);
    // A space on each side keeps a leading or trailing backtick apart from
    // the delimiter; CommonMark strips one such space on each side.
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// [`code_span`] for a table cell: GFM splits cells on `|` before it parses
/// code spans, and turns `\|` back into `|` inside them.
fn cell_code(text: &str) -> String {
    code_span(text).replace('|', "\\|")
}

/// Text with every character Markdown (or inline HTML) could read as markup
/// backslash-escaped, and line breaks as `<br>`: safe in a table cell, a
/// list item and a heading alike.
fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

fn md_creep(identity: &IdentityRightsizing) -> String {
    match identity.creep_score {
        Some(score) => match trend_text(trend(identity.creep_score, identity.creep_score_previous))
        {
            Some(change) => format!("{score} ({change})"),
            None => score.to_string(),
        },
        None => "—".to_owned(),
    }
}

fn md_shown_note(out: &mut String, total: usize, shown: usize, what: &str) {
    if let Some(note) = shown_text(total, shown, what) {
        let _ = writeln!(out, "\n{note}");
    }
}

/// A bar of up to 30 block characters, at least one for a non-zero count.
fn text_bar(count: i64, max: i64) -> String {
    if count <= 0 || max <= 0 {
        return String::new();
    }
    let blocks = ((count as f64 / max as f64) * 30.0).round().max(1.0) as usize;
    "█".repeat(blocks)
}

fn longest_backtick_run(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

fn trend_text(trend: Option<Trend>) -> Option<String> {
    trend.map(Trend::text)
}

// ----------------------------------------------------------------- CSV

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 19] = [
    "rank",
    "priority",
    "new",
    "risk",
    "confidence",
    "kind",
    "subject",
    "grant",
    "replacement",
    "used_count",
    "last_used",
    "window_start",
    "window_end",
    "identity_status",
    "identity_granted",
    "identity_used",
    "identity_creep_score",
    "explanation",
    "sample_event_ids",
];

/// Every ranked suggestion as RFC 4180 CSV: a header row ([`CSV_COLUMNS`]),
/// then one row per suggestion in rank order.
///
/// Records end with LF, not RFC 4180's CRLF: every CSV reader in use
/// accepts both, and LF keeps the file diffable. A field containing `,`,
/// `"`, CR or LF is quoted with its quotes doubled; a quoted field may span
/// lines (explanations can). `replacement` and `sample_event_ids` join
/// their values with `"; "`;
/// times are RFC 3339 in UTC, empty when absent; `new` is `true`/`false`;
/// the `identity_*` columns come from the report's entry for the subject
/// and are empty when it has none. Values are written as they are, so a
/// spreadsheet should import the file as text rather than evaluate it.
pub fn render_csv(report: &WeeklyReport) -> String {
    let identities: HashMap<&str, &IdentityRightsizing> = report
        .identities
        .iter()
        .map(|identity| (identity.subject.as_str(), identity))
        .collect();
    let mut out = String::with_capacity(256 * (report.suggestions.len() + 1));
    csv_record(&mut out, &CSV_COLUMNS);
    for ranked in &report.suggestions {
        let s = &ranked.suggestion;
        let identity = identities.get(s.subject.as_str());
        let from_identity = |field: fn(&IdentityRightsizing) -> String| {
            identity.map(|i| field(i)).unwrap_or_default()
        };
        let fields: [String; CSV_COLUMNS.len()] = [
            ranked.rank.to_string(),
            ranked.priority.to_string(),
            ranked.new.to_string(),
            s.risk.clone(),
            s.confidence.to_string(),
            s.kind.clone(),
            s.subject.clone(),
            s.grant.clone().unwrap_or_default(),
            s.replacement.join("; "),
            s.used_count.to_string(),
            s.last_used.as_ref().map(rfc3339).unwrap_or_default(),
            rfc3339(&s.window_start),
            rfc3339(&s.window_end),
            from_identity(|i| i.status.clone()),
            from_identity(|i| i.granted.to_string()),
            from_identity(|i| i.used.to_string()),
            from_identity(|i| i.creep_score.map(|c| c.to_string()).unwrap_or_default()),
            s.explanation.clone(),
            s.sample_event_ids.join("; "),
        ];
        csv_record(&mut out, &fields);
    }
    out
}

fn csv_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

// ------------------------------------------------------------- shared

/// A score's change since the previous week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trend {
    Up(i64),
    Down(i64),
    Same,
}

impl Trend {
    /// `▲ 3`, `▼ 2` or `unchanged`.
    fn text(self) -> String {
        match self {
            Trend::Up(d) => format!("\u{25b2} {d}"),
            Trend::Down(d) => format!("\u{25bc} {d}"),
            Trend::Same => "unchanged".to_owned(),
        }
    }
}

/// What a table left out, when it did.
fn shown_text(total: usize, shown: usize, what: &str) -> Option<String> {
    (total > shown)
        .then(|| format!("Showing {shown} of {total} {what}; the JSON format has all of them."))
}

/// `None` unless both weeks have a score.
fn trend(current: Option<i64>, previous: Option<i64>) -> Option<Trend> {
    let change = current? - previous?;
    Some(match change {
        d if d > 0 => Trend::Up(d),
        d if d < 0 => Trend::Down(-d),
        _ => Trend::Same,
    })
}

/// Up to [`CHART_IDENTITIES`] identities with a creep score, highest first.
/// The sort is stable, so ties keep the order analytics gave them.
fn top_by_creep(identities: &[IdentityRightsizing]) -> Vec<&IdentityRightsizing> {
    let mut scored: Vec<&IdentityRightsizing> = identities
        .iter()
        .filter(|identity| identity.creep_score.is_some())
        .collect();
    scored.sort_by_key(|b| std::cmp::Reverse(b.creep_score));
    scored.truncate(CHART_IDENTITIES);
    scored
}

/// Identities by creep-score bucket: 0-9, 10-19, ..., 90-100.
fn creep_buckets(identities: &[IdentityRightsizing]) -> [i64; CREEP_BUCKETS] {
    let mut buckets = [0; CREEP_BUCKETS];
    for score in identities.iter().filter_map(|i| i.creep_score) {
        buckets[bucket(score)] += 1;
    }
    buckets
}

fn bucket(score: i64) -> usize {
    let last = CREEP_BUCKETS - 1;
    usize::try_from(score.clamp(0, 100) / 10).map_or(last, |b| b.min(last))
}

/// The inclusive score range of a bucket; the last one holds 100 too.
fn bucket_bounds(bucket: usize) -> (usize, usize) {
    let low = bucket * 10;
    let high = if bucket + 1 == CREEP_BUCKETS {
        100
    } else {
        low + 9
    };
    (low, high)
}

/// Suggestions by risk: high, medium and low always, in that order, then
/// any other risk the report names.
fn risk_rows(report: &WeeklyReport) -> Vec<(&str, i64)> {
    let by_risk = &report.totals.by_risk;
    let mut rows: Vec<(&str, i64)> = ["high", "medium", "low"]
        .into_iter()
        .map(|risk| (risk, by_risk.get(risk).copied().unwrap_or(0)))
        .collect();
    rows.extend(
        by_risk
            .iter()
            .filter(|(risk, _)| !matches!(risk.as_str(), "high" | "medium" | "low"))
            .map(|(risk, n)| (risk.as_str(), *n)),
    );
    rows
}

fn not_judged_reason(identity: &IdentityRightsizing) -> String {
    match &identity.note {
        Some(note) => note.clone(),
        None if identity.status == STATUS_HISTORY_SHORT => "history too short".to_owned(),
        None => "every grant is still in its grace period".to_owned(),
    }
}

/// Identities without a creep score: history too short, or every grant
/// still in its grace period.
fn not_judged(identities: &[IdentityRightsizing]) -> Vec<&IdentityRightsizing> {
    identities
        .iter()
        .filter(|identity| identity.creep_score.is_none())
        .collect()
}

/// Which way an identity in `changes.newly_judged` went.
fn judged_change(report: &WeeklyReport, subject: &str) -> &'static str {
    match report.identities.iter().find(|i| i.subject == subject) {
        Some(identity) if identity.status != STATUS_HISTORY_SHORT => "judged for the first time",
        _ => "no longer judged",
    }
}

fn reason_gloss(closed: &ClosedSuggestion) -> &'static str {
    match closed.reason.as_str() {
        "grant-removed" => "the inventory no longer grants it",
        "used" => "the identity has used it since",
        "superseded" => "replaced by a changed suggestion",
        _ => "",
    }
}

/// The tail of `text`, at most `max` characters: the end of a SPIFFE ID
/// (namespace and service account) says more than its trust domain.
fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - max + 1).collect();
    format!("\u{2026}{tail}")
}

/// `part` as a rounded percentage of `whole`, if `whole` is positive.
fn share(part: i64, whole: i64) -> Option<i64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 100.0).round() as i64)
}

fn percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// `12345` as `12,345`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn len<T>(items: &[T]) -> i64 {
    i64::try_from(items.len()).unwrap_or(i64::MAX)
}

fn day(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The last day of a range that ends (exclusive) at `end`.
/// Where the observation window ends: when right-sizing judged (the
/// latest event, for a week not over yet), else the week's last day.
fn window_end(report: &WeeklyReport) -> String {
    match &report.as_of {
        Some(t) => day(t),
        None => last_day(&report.week_end),
    }
}

fn last_day(end: &DateTime<Utc>) -> String {
    day(&(*end - Duration::seconds(1)))
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use overreach_model::report::{
        WeeklyChanges, WeeklyTotals, STATUS_JUDGED, STATUS_PARTLY_IN_GRACE,
    };
    use overreach_model::results::Suggestion;

    use super::*;

    const PAY: &str = "spiffe://prod.example/ns/pay/sa/api";
    const HOSTILE: &str = "spiffe://prod.example/ns/x/sa/<script>alert(1)</script>&\"q\"";
    const HOSTILE_ESCAPED: &str =
        "spiffe://prod.example/ns/x/sa/&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;q&quot;";
    const FRONT: &str = "spiffe://prod.example/ns/web/sa/front";
    const BATCH: &str = "spiffe://prod.example/ns/new/sa/batch";
    const GONE: &str = "spiffe://prod.example/ns/old/sa/gone";
    const EXPLANATION: &str = "No call in 90d needed it, \"so\" remove it,\nthen re-run";

    const SECTIONS: [&str; 8] = [
        "summary",
        "granted-vs-used",
        "creep-distribution",
        "suggestions-by-risk",
        "top-unused-sensitive",
        "changes",
        "suggestions",
        "not-judged",
    ];

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// `[granted, used, unused, unused_sensitive, in_grace]`.
    fn identity(
        subject: &str,
        status: &str,
        grants: [i64; 5],
        creep: Option<i64>,
        previous: Option<i64>,
        history_days: f64,
    ) -> IdentityRightsizing {
        let [granted, used, unused, unused_sensitive, in_grace] = grants;
        IdentityRightsizing {
            subject: subject.to_owned(),
            engine: "rbac".to_owned(),
            status: status.to_owned(),
            granted,
            used,
            unused,
            unused_sensitive,
            in_grace,
            creep_score: creep,
            creep_score_previous: previous,
            allowed_calls: used * 100,
            history_days,
            note: None,
        }
    }

    fn suggestion(rank: i64, subject: &str, kind: &str, risk: &str) -> RankedSuggestion {
        RankedSuggestion {
            rank,
            priority: 100 - rank * 10,
            new: rank == 1,
            suggestion: Suggestion {
                id: format!("s{rank}"),
                kind: kind.to_owned(),
                subject: subject.to_owned(),
                grant: Some("delete secrets/*".to_owned()),
                replacement: Vec::new(),
                used_count: 0,
                last_used: None,
                window_start: at("2026-08-31T00:00:00Z"),
                window_end: at("2026-11-30T00:00:00Z"),
                confidence: 0.95,
                risk: risk.to_owned(),
                explanation: format!("suggestion {rank}"),
                policy: Some("rules:\n- verbs: [get]\n  resources: [pods]\n".to_owned()),
                diff: Some(
                    "--- granted\n+++ suggested\n@@ -1,3 +1,2 @@\n rules:\n-- verbs: [delete]\n+- verbs: [get]\n"
                        .to_owned(),
                ),
                sample_event_ids: vec![format!("audit-{rank}")],
            },
        }
    }

    fn report() -> WeeklyReport {
        let mut first = suggestion(1, PAY, "remove-unused", "high");
        first.suggestion.explanation = EXPLANATION.to_owned();
        let mut second = suggestion(2, HOSTILE, "narrow-wildcard", "medium");
        second.suggestion.grant = Some("get pods|logs".to_owned());
        second.suggestion.replacement = vec!["get pods".to_owned(), "get pods/log".to_owned()];
        second.suggestion.used_count = 12;
        second.suggestion.last_used = Some(at("2026-11-20T10:04:05Z"));
        second.suggestion.confidence = 0.8;
        second.suggestion.policy = Some("{\"allow\": [\"get pods\"]}".to_owned());
        let mut third = suggestion(3, GONE, "minimal-policy", "low");
        third.suggestion.grant = None;
        third.suggestion.confidence = 0.5;
        let pay = identity(
            PAY,
            STATUS_JUDGED,
            [40, 10, 30, 12, 0],
            Some(75),
            Some(70),
            90.0,
        );
        let hostile = identity(
            HOSTILE,
            STATUS_PARTLY_IN_GRACE,
            [20, 15, 4, 1, 1],
            Some(21),
            None,
            90.0,
        );
        WeeklyReport {
            week: "2026-W48".to_owned(),
            week_start: at("2026-11-23T00:00:00Z"),
            week_end: at("2026-11-30T00:00:00Z"),
            previous_week: "2026-W47".to_owned(),
            as_of: Some(at("2026-11-29T23:59:59Z")),
            observe: "90d".to_owned(),
            observe_start: at("2026-08-31T00:00:00Z"),
            grace: "14d".to_owned(),
            inventory: vec!["rbac.yaml".to_owned(), "opa/data.json".to_owned()],
            totals: WeeklyTotals {
                identities: 4,
                judged: 3,
                granted: 78,
                used: 35,
                unused: 34,
                unused_sensitive: 13,
                in_grace: 1,
                creep_score: Some(46),
                suggestions: 3,
                by_risk: BTreeMap::from([
                    ("high".to_owned(), 1),
                    ("medium".to_owned(), 1),
                    ("low".to_owned(), 1),
                ]),
            },
            changes: WeeklyChanges {
                new_suggestions: vec!["s1".to_owned()],
                closed_suggestions: vec![ClosedSuggestion {
                    id: "s-old".to_owned(),
                    kind: "remove-unused".to_owned(),
                    subject: FRONT.to_owned(),
                    grant: Some("list configmaps".to_owned()),
                    reason: "used".to_owned(),
                }],
                newly_judged: vec![HOSTILE.to_owned()],
                grants_added: 3,
                grants_removed: 1,
                creep_score_previous: Some(40),
            },
            identities: vec![
                pay.clone(),
                hostile.clone(),
                identity(
                    FRONT,
                    STATUS_JUDGED,
                    [10, 10, 0, 0, 0],
                    Some(0),
                    Some(5),
                    90.0,
                ),
                identity(
                    BATCH,
                    STATUS_HISTORY_SHORT,
                    [8, 0, 0, 0, 0],
                    None,
                    None,
                    12.5,
                ),
            ],
            suggestions: vec![first, second, third],
            top_unused_sensitive: vec![pay, hostile],
            generated_at: at("2026-11-30T06:00:00Z"),
        }
    }

    fn empty_report() -> WeeklyReport {
        WeeklyReport {
            totals: WeeklyTotals::default(),
            changes: WeeklyChanges::default(),
            identities: Vec::new(),
            suggestions: Vec::new(),
            top_unused_sensitive: Vec::new(),
            inventory: Vec::new(),
            ..report()
        }
    }

    /// The `width` of the first `class` rect after the chart row titled
    /// with `subject`.
    fn bar_width(html: &str, subject_escaped: &str, class: &str) -> f64 {
        let chart = &html[html.find("id=\"granted-vs-used\"").unwrap()..];
        let row = &chart[chart.find(&format!("<title>{subject_escaped}:")).unwrap()..];
        let row = &row[..row.find("</g>").unwrap()];
        let rect = &row[row.find(&format!("class=\"{class}\"")).unwrap()..];
        let width = &rect[rect.find("width=\"").unwrap() + 7..];
        width[..width.find('"').unwrap()].parse().unwrap()
    }

    #[test]
    fn html_has_every_section_in_order_and_three_accessible_charts() {
        let html = render_html(&report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</html>"));
        let mut last = 0;
        for id in SECTIONS {
            let at = html
                .find(&format!("id=\"{id}\""))
                .unwrap_or_else(|| panic!("no section {id}"));
            assert!(at > last, "section {id} out of order");
            last = at;
        }
        assert_eq!(html.matches("<svg").count(), 3);
        for svg in html.split("<svg").skip(1) {
            let open = &svg[..svg.find('>').unwrap()];
            assert!(open.contains("role=\"img\""), "{open}");
            assert!(open.contains("aria-label=\""), "{open}");
            assert!(svg[open.len() + 1..].starts_with("<title>"));
        }
        // Self-contained: nothing loaded from elsewhere, nothing run.
        for external in ["<script", "<link", "<img", "src=", "@import", "url("] {
            assert!(!html.contains(external), "{external}");
        }
        assert!(html.contains("2026-11-23 to 2026-11-29"));
        assert!(html.contains("<code>opa/data.json</code>"));
        // Estate creep 46 against 40 a week earlier.
        assert!(html.contains("46<span class=\"delta worse\""));
        assert!(html.contains("\u{25b2} 6</span>"));
        // Per identity too: PAY went from 70 to 75.
        assert!(html.contains(
            "75<span class=\"delta worse\" title=\"change since 2026-W47\">\u{25b2} 5</span>"
        ));
        assert!(html.contains("What changed since 2026-W47"));
        assert!(html.contains("<td><b>used</b> the identity has used it since</td>"));
        assert!(html.contains(&format!(
            "<code>{HOSTILE_ESCAPED}</code>: judged for the first time"
        )));
        assert!(html.contains(&format!(
            "<code>{BATCH}</code></td><td class=\"num\">12.5</td>"
        )));
        assert_eq!(html.matches("<tr class=\"suggestion\"").count(), 3);
        assert!(html.contains("<span class=\"badge new\">new</span>"));
    }

    #[test]
    fn html_escapes_every_hostile_string() {
        let html = render_html(&report());
        assert!(!html.contains("<script>"));
        assert!(!html.contains("alert(1)</script>"));
        assert!(!html.contains("&\"q\""));
        // Table, chart tooltip, changes list, suggestions.
        assert!(html.matches(HOSTILE_ESCAPED).count() >= 4);
        assert!(html.contains("No call in 90d needed it, &quot;so&quot; remove it,\nthen re-run"));
        assert!(html.contains("<code>get pods|logs</code>"));
    }

    /// Every element opened is closed, in order (void and self-closed
    /// elements aside): nothing from the data opened or closed a tag.
    fn assert_balanced(html: &str) {
        let mut open: Vec<&str> = Vec::new();
        for tag in html.split('<').skip(1) {
            let tag = &tag[..tag.find('>').expect("unclosed tag")];
            if tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            let name = tag.split([' ', '\n']).next().unwrap();
            if let Some(name) = name.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "closing {name}");
            } else if !matches!(name, "meta" | "br") {
                open.push(name);
            }
        }
        assert!(open.is_empty(), "left open: {open:?}");
    }

    #[test]
    fn html_is_balanced() {
        assert_balanced(&render_html(&report()));
        assert_balanced(&render_html(&empty_report()));
    }

    #[test]
    fn bars_are_proportional_to_grants() {
        let html = render_html(&report());
        // PAY holds the most grants (40): its bar spans the full width.
        assert_eq!(bar_width(&html, PAY, "bar-granted"), BAR_WIDTH);
        assert_eq!(bar_width(&html, PAY, "bar-used"), 10.0 / 40.0 * BAR_WIDTH);
        assert_eq!(
            bar_width(&html, PAY, "bar-unused-sensitive"),
            12.0 / 40.0 * BAR_WIDTH
        );
        assert_eq!(
            bar_width(&html, PAY, "bar-unused-other"),
            18.0 / 40.0 * BAR_WIDTH
        );
        assert_eq!(
            bar_width(&html, HOSTILE_ESCAPED, "bar-used"),
            15.0 / 40.0 * BAR_WIDTH
        );
        assert_eq!(
            bar_width(&html, HOSTILE_ESCAPED, "bar-granted"),
            BAR_WIDTH / 2.0
        );
        // Highest creep score first; the history-short identity is not charted.
        let chart = &html[html.find("id=\"granted-vs-used\"").unwrap()
            ..html.find("id=\"creep-distribution\"").unwrap()];
        let pay = chart.find(&format!("<title>{PAY}:")).unwrap();
        let hostile = chart.find(&format!("<title>{HOSTILE_ESCAPED}:")).unwrap();
        let front = chart.find(&format!("<title>{FRONT}:")).unwrap();
        assert!(pay < hostile && hostile < front);
        assert!(!chart.contains(BATCH));
    }

    #[test]
    fn diff_lines_are_classed() {
        let html = render_html(&report());
        assert!(html.contains("<span class=\"file\">--- granted</span>"));
        assert!(html.contains("<span class=\"file\">+++ suggested</span>"));
        assert!(html.contains("<span class=\"hunk\">@@ -1,3 +1,2 @@</span>"));
        // After the hunk header, `--` is a removed line, not a file header.
        assert!(html.contains("<span class=\"del\">-- verbs: [delete]</span>"));
        assert!(html.contains("<span class=\"add\">+- verbs: [get]</span>"));
        assert!(html.contains("<pre class=\"policy\">{&quot;allow&quot;"));
    }

    #[test]
    fn histogram_buckets_scores() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(9), 0);
        assert_eq!(bucket(10), 1);
        assert_eq!(bucket(99), 9);
        assert_eq!(bucket(100), 9);
        assert_eq!(bucket(250), 9);
        assert_eq!(bucket(-3), 0);
        assert_eq!(bucket_bounds(9), (90, 100));
        let buckets = creep_buckets(&report().identities);
        assert_eq!(buckets, [1, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
        let html = render_html(&report());
        assert!(html.contains("<title>1 identities with a creep score of 70 to 79</title>"));
    }

    #[test]
    fn suggestion_table_is_capped() {
        let mut report = report();
        let template = report.suggestions[0].clone();
        report.suggestions = (1..=250)
            .map(|rank| RankedSuggestion {
                rank,
                ..template.clone()
            })
            .collect();
        let html = render_html(&report);
        assert_eq!(
            html.matches("<tr class=\"suggestion\"").count(),
            SUGGESTION_ROWS
        );
        assert!(html.contains("50 more suggestions are not shown"));
        assert!(html.contains("id=\"suggestion-200\""));
        assert!(!html.contains("id=\"suggestion-201\""));
        let markdown = render_markdown(&report);
        assert!(markdown.contains("50 more suggestions are not shown"));
        assert_eq!(markdown.matches("\n#### ").count(), MARKDOWN_POLICIES);
        assert_eq!(
            render_csv(&report)
                .lines()
                .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
                .count(),
            250
        );
    }

    #[test]
    fn empty_report_says_there_is_nothing_to_show() {
        let empty = WeeklyReport {
            totals: WeeklyTotals {
                creep_score: None,
                ..WeeklyTotals::default()
            },
            ..empty_report()
        };
        let html = render_html(&empty);
        for id in SECTIONS {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert_eq!(html.matches("<svg").count(), 0);
        assert_eq!(html.matches("nothing to chart").count(), 3);
        assert!(html.contains("No suggestions this week: nothing to show."));
        assert!(html.contains("No identity holds unused sensitive grants."));
        assert!(html.contains("nothing judged this week"));
        assert!(html.contains("Inventory: none given."));

        let markdown = render_markdown(&empty);
        assert_eq!(markdown.matches("nothing to chart").count(), 3);
        assert!(markdown.contains("No suggestions this week: nothing to show."));
        assert!(markdown.contains("| Estate creep score | — (nothing judged) |"));

        assert_eq!(render_csv(&empty), format!("{}\n", CSV_COLUMNS.join(",")));
    }

    /// RFC 4180 records: quoted fields may hold commas, doubled quotes and
    /// line breaks.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => {
                    assert!(field.is_empty(), "quote inside an unquoted field");
                    quoted = true;
                }
                (false, ',') => record.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(!quoted, "unterminated quoted field");
        assert!(field.is_empty() && record.is_empty(), "no final line end");
        records
    }

    #[test]
    fn csv_round_trips() {
        let csv = render_csv(&report());
        assert!(!csv.contains('\r'));
        let records = parse_csv(&csv);
        assert_eq!(records.len(), 4);
        for record in &records {
            assert_eq!(record.len(), CSV_COLUMNS.len(), "{record:?}");
        }
        assert_eq!(records[0], CSV_COLUMNS);
        let column = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        let [first, second, third] = [&records[1], &records[2], &records[3]];
        assert_eq!(first[column("explanation")], EXPLANATION);
        assert_eq!(first[column("new")], "true");
        assert_eq!(first[column("last_used")], "");
        assert_eq!(first[column("identity_status")], "judged");
        assert_eq!(first[column("identity_creep_score")], "75");
        assert_eq!(second[column("subject")], HOSTILE);
        assert_eq!(second[column("grant")], "get pods|logs");
        assert_eq!(second[column("replacement")], "get pods; get pods/log");
        assert_eq!(second[column("last_used")], "2026-11-20T10:04:05Z");
        assert_eq!(second[column("confidence")], "0.8");
        assert_eq!(second[column("identity_status")], "partly-in-grace");
        assert_eq!(second[column("identity_granted")], "20");
        assert_eq!(second[column("identity_used")], "15");
        assert_eq!(second[column("window_end")], "2026-11-30T00:00:00Z");
        // No identity entry for GONE: identity columns stay empty.
        assert_eq!(third[column("rank")], "3");
        assert_eq!(third[column("grant")], "");
        for name in [
            "identity_status",
            "identity_granted",
            "identity_used",
            "identity_creep_score",
        ] {
            assert_eq!(third[column(name)], "", "{name}");
        }
    }

    /// Pipes not preceded by an odd number of backslashes.
    fn cell_separators(line: &str) -> usize {
        let mut count = 0;
        let mut backslashes = 0;
        for c in line.chars() {
            match c {
                '\\' => backslashes += 1,
                '|' if backslashes % 2 == 0 => {
                    count += 1;
                    backslashes = 0;
                }
                _ => backslashes = 0,
            }
        }
        count
    }

    #[test]
    fn markdown_tables_keep_their_shape() {
        let markdown = render_markdown(&report());
        assert!(markdown.contains("`get pods\\|logs`"));
        // Every row of every table has as many cells as its header.
        let mut header = None;
        let mut tables = 0;
        for line in markdown.lines() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            match header {
                None => {
                    header = Some(cell_separators(line));
                    tables += 1;
                }
                Some(cells) => assert_eq!(cell_separators(line), cells, "{line}"),
            }
        }
        assert_eq!(tables, 8);
        // The explanation's line break stays inside its row.
        assert!(markdown.contains("\"so\" remove it,<br>then re-run |"));
        assert!(markdown.contains("| Estate creep score | 46 (▲ 6 since 2026-W47) |"));
        // Subjects sit in code spans, where markup is inert; none escapes one.
        assert!(markdown.contains(&format!("- `{HOSTILE}`: judged for the first time")));
        for line in markdown.lines() {
            for (n, part) in line.split('`').enumerate() {
                assert!(n % 2 == 1 || !part.contains("<script>"), "{line}");
            }
        }
    }

    #[test]
    fn markdown_fences_policies_by_language() {
        let markdown = render_markdown(&report());
        assert!(markdown.contains("```yaml\nrules:\n- verbs: [get]\n"));
        assert!(markdown.contains("```json\n{\"allow\": [\"get pods\"]}\n```\n"));
        assert_eq!(markdown.matches("```diff\n--- granted\n").count(), 3);
        // A backtick run in a policy lengthens the fence.
        let mut out = String::new();
        fenced(&mut out, "yaml", "a: \"```\"");
        assert_eq!(out, "````yaml\na: \"```\"\n````\n");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`a"), "`` `a ``");
        assert_eq!(md_text("a|b_<c>\r\nd"), "a\\|b\\_\\<c\\><br>d");
    }

    #[test]
    fn formats_parse_and_json_round_trips() {
        for (input, format) in [
            ("html", ReportFormat::Html),
            ("md", ReportFormat::Markdown),
            ("Markdown", ReportFormat::Markdown),
            ("csv", ReportFormat::Csv),
            ("JSON", ReportFormat::Json),
        ] {
            assert_eq!(ReportFormat::parse(input), Ok(format));
            assert_eq!(format.to_string().parse::<ReportFormat>(), Ok(format));
        }
        let err = ReportFormat::parse("pdf").unwrap_err();
        assert!(err.contains("`pdf`") && err.contains("html, md, markdown, csv or json"));
        assert_eq!(
            ReportFormat::Html.content_type(),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            ReportFormat::Markdown.content_type(),
            "text/markdown; charset=utf-8"
        );
        assert_eq!(ReportFormat::Csv.content_type(), "text/csv; charset=utf-8");
        assert_eq!(ReportFormat::Json.content_type(), "application/json");
        assert_eq!(ReportFormat::Markdown.extension(), "md");

        let report = report();
        let json = render(&report, ReportFormat::Json);
        assert!(json.ends_with("}\n"));
        let back: WeeklyReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert_eq!(render(&report, ReportFormat::Csv), render_csv(&report));
    }

    #[test]
    fn numbers_and_labels_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(-1234567), "-1,234,567");
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdef", 4), "\u{2026}def");
        assert_eq!(trend(Some(3), Some(5)), Some(Trend::Down(2)));
        assert_eq!(trend(Some(3), None), None);
        assert_eq!(text_bar(1, 100), "█");
        assert_eq!(text_bar(0, 100), "");
    }
}
