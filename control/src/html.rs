//! `--html FILE`: one self-contained HTML report. The run's data travels as
//! JSON in a `<script type="application/json">` element (with `<`, `>` and
//! `&` escaped, so no data can close it); a small script of blast's builds
//! the tables from it through `textContent` and draws the charts with
//! [uPlot](https://github.com/leeoniya/uPlot), which is embedded too. A
//! Content-Security-Policy forbids every fetch, so the report opens
//! offline and cannot call anywhere.

use serde::Serialize;

use crate::stats::HistoryPoint;
use crate::summary::Summary;

const UPLOT_JS: &str = include_str!("../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uplot/uPlot.min.css");
const REPORT_JS: &str = include_str!("../assets/report.js");
const REPORT_CSS: &str = include_str!("../assets/report.css");

/// No fetches at all: only the page's own inline scripts and styles run.
const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// One point of the charts.
#[derive(Serialize)]
struct ChartPoint {
    /// Unix seconds.
    t: f64,
    users: u64,
    rps: f64,
    fail_rps: f64,
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
    /// Task iterations completed per second.
    iterations_rps: f64,
    /// Open-model iterations dropped per second.
    dropped_rps: f64,
    /// The report's generator lateness p99, ms.
    lateness_p99: Option<f64>,
}

#[derive(Serialize)]
struct ReportData<'a> {
    summary: &'a Summary,
    history: Vec<ChartPoint>,
}

/// Reports a chart's rates average over: a node merges its shards'
/// reports on its own clock, so one report can hold two shard intervals
/// and the next none; a few reports together even that out.
const RATE_WINDOW: usize = 3;

/// Chart points from the per-report history. Rates are over the last
/// [`RATE_WINDOW`] reports (the first reports: since the start, the first
/// covering one report interval); percentiles are each report's own.
fn chart_points(history: &[HistoryPoint], interval_s: f64) -> Vec<ChartPoint> {
    // Running totals of requests, failures, iterations and drops, from 0.
    let mut sums = Vec::with_capacity(history.len() + 1);
    sums.push([0u64; 4]);
    for h in history {
        let [r, f, i, d] = sums.last().copied().unwrap_or_default();
        sums.push([
            r + h.requests,
            f + h.failures,
            i + h.iterations,
            d + h.dropped,
        ]);
    }
    history
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let from = (i + 1).saturating_sub(RATE_WINDOW);
            let span = if i >= RATE_WINDOW {
                h.at_ms.saturating_sub(history[i - RATE_WINDOW].at_ms) as f64 / 1000.0
            } else {
                h.at_ms.saturating_sub(history[0].at_ms) as f64 / 1000.0 + interval_s
            }
            .max(interval_s / 10.0);
            let rate = |k: usize| (sums[i + 1][k] - sums[from][k]) as f64 / span;
            let [p50, p95, p99] = h.percentiles_ms.map_or([None; 3], |p| p.map(Some));
            ChartPoint {
                t: h.at_ms as f64 / 1000.0,
                users: h.users,
                rps: rate(0),
                fail_rps: rate(1),
                p50,
                p95,
                p99,
                iterations_rps: rate(2),
                dropped_rps: rate(3),
                lateness_p99: h.lateness_p99_ms,
            }
        })
        .collect()
}

/// JSON that can sit inside a `<script>` element: `<`, `>`, `&` and the
/// two line separators JavaScript once disliked are written as `\uXXXX`
/// escapes, which JSON reads back as the same characters.
fn script_safe_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("report data always serializes");
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The report for a finished run: `summary`, and `history` (one point per
/// report, `interval_s` apart) for the charts.
pub fn render(summary: &Summary, history: &[HistoryPoint], interval_s: f64) -> String {
    let data = ReportData {
        summary,
        history: chart_points(history, interval_s),
    };
    let mut html = String::with_capacity(UPLOT_JS.len() + 64 * 1024);
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"");
    html.push_str(CSP);
    html.push_str(
        "\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    html.push_str("<title>blast report</title>\n<style>\n");
    html.push_str(UPLOT_CSS);
    html.push('\n');
    html.push_str(REPORT_CSS);
    html.push_str("</style>\n</head>\n<body>\n<main id=\"report\">\n");
    html.push_str("<noscript><p>This report draws its tables and charts with JavaScript; the same data is in the JSON below and in blast's --json and --csv outputs.</p></noscript>\n");
    html.push_str("</main>\n<script type=\"application/json\" id=\"blast-data\">");
    html.push_str(&script_safe_json(&data));
    html.push_str("</script>\n<script>\n");
    html.push_str(UPLOT_JS);
    html.push_str("\n</script>\n<script>\n");
    html.push_str(REPORT_JS);
    html.push_str("</script>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_scripts_cannot_close_their_element() {
        for (name, text) in [
            ("uPlot", UPLOT_JS),
            ("uPlot css", UPLOT_CSS),
            ("report.js", REPORT_JS),
            ("report.css", REPORT_CSS),
        ] {
            let lower = text.to_ascii_lowercase();
            assert!(!lower.contains("</script"), "{name}");
            assert!(!lower.contains("</style"), "{name}");
            assert!(!lower.contains("<!--"), "{name}");
        }
    }

    #[test]
    fn data_is_escaped_for_a_script_element() {
        let nasty = serde_json::json!({ "name": "</script><script>alert(1)</script> & \u{2028}" });
        let out = script_safe_json(&nasty);
        assert!(
            !out.contains('<') && !out.contains('>') && !out.contains('&'),
            "{out}"
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, nasty);
    }

    /// The data a rendered report carries.
    fn data_of(html: &str) -> serde_json::Value {
        let start = html.find("id=\"blast-data\">").unwrap() + "id=\"blast-data\">".len();
        let end = start + html[start..].find("</script>").unwrap();
        serde_json::from_str(&html[start..end]).unwrap()
    }

    #[test]
    fn the_report_carries_what_the_script_draws() {
        let summary = crate::summary::tests::open_summary();
        let stats = crate::summary::tests::open_run();
        let html = render(&summary, stats.history(), 1.0);
        let data = data_of(&html);
        let s = &data["summary"];
        // The script reads these names; a rename here breaks the report.
        assert_eq!(s["stopped_early"], true);
        assert_eq!(s["stop_reason"], "stop condition: fail_ratio>0.5");
        assert_eq!(s["corrected"], true);
        assert_eq!(s["parameters"]["model"], "open");
        assert_eq!(s["parameters"]["load"], "rate");
        assert_eq!(s["iterations"]["dropped"], 3);
        assert!(s["health"]["lateness_ms"]["p99.9"].is_number());
        assert!(s["total"]["uncorrected"]["percentiles_ms"]["99"].is_number());
        let history = data["history"].as_array().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1]["iterations_rps"], 50.0);
        assert_eq!(history[1]["dropped_rps"], 1.5);
        assert!((history[1]["lateness_p99"].as_f64().unwrap() - 1.5).abs() < 0.01);
        for name in [
            "stopped_early",
            "uncorrected",
            "iterations_rps",
            "dropped_rps",
            "lateness_p99",
            "lateness_ms",
            "rate_stages",
            "max_wait_s",
        ] {
            assert!(REPORT_JS.contains(name), "report.js does not use {name}");
        }
    }

    #[test]
    fn chart_rates_average_over_the_last_reports() {
        let point = |at_ms, requests, failures| HistoryPoint {
            at_ms,
            users: 3,
            requests,
            failures,
            busy: 0.0,
            percentiles_ms: None,
            iterations: requests / 2,
            dropped: failures,
            lateness_p99_ms: None,
        };
        // One report holds two intervals' requests, the next none.
        let points = chart_points(
            &[
                point(10_000, 10, 1),
                point(11_000, 40, 2),
                point(12_000, 0, 0),
                point(13_000, 30, 3),
                point(13_002, 20, 0),
            ],
            1.0,
        );
        let rps: Vec<f64> = points.iter().map(|p| p.rps).collect();
        assert_eq!(rps, [10.0, 25.0, 50.0 / 3.0, 70.0 / 3.0, 50.0 / 2.002]);
        assert_eq!(points[3].fail_rps, 5.0 / 3.0);
        assert_eq!(points[3].iterations_rps, 35.0 / 3.0);
        assert_eq!(points[3].dropped_rps, 5.0 / 3.0);
        assert_eq!(points[0].t, 10.0);
        assert!(points[0].p95.is_none());
    }
}
