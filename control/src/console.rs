//! The console reporter: the live table while a run goes, a progress line
//! on a terminal, and the end summary.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};

use crate::stats::RunStats;
use crate::summary::{LoadModel, PERCENTILES, Summary, percentile_label};

/// Formats milliseconds with precision that suits their size.
pub fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn new_table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(header);
    for i in 2..table.column_count() {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.00%".into()
    } else {
        format!("{:.2}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The warning for a run whose requests so far all failed before a
/// connection was made (refused, unreachable, a failed TLS handshake): one
/// line at the start, naming the most frequent reason with its address,
/// rather than a table of failures at the end. `None` before any request,
/// or when one got through.
pub fn connect_warning(stats: &RunStats) -> Option<String> {
    let all = stats.aggregated();
    let failures = stats.failures();
    let connect: u64 = failures
        .iter()
        .filter(|f| f.kind.is_connect())
        .map(|f| f.count)
        .sum();
    if all.requests == 0 || connect < all.requests {
        return None;
    }
    // Failures come most frequent first.
    let reason = failures.first()?.error_text();
    Some(format!("every request so far failed to connect: {reason}"))
}

/// The live table: per entry, totals so far and current RPS and
/// percentiles over the last seconds.
pub fn live_table(stats: &RunStats) -> String {
    let mut table = new_table(vec![
        "Type",
        "Name",
        "# reqs",
        "# fails",
        "cur RPS",
        "cur p50 ms",
        "cur p95 ms",
        "cur p99 ms",
    ]);
    let mut row = |method: &str, name: &str, requests: u64, failures: u64, key| {
        let (rps, hist) = stats.current(key);
        let q = |p: f64| {
            if hist.is_empty() {
                "-".to_string()
            } else {
                format_ms(hist.value_at_quantile(p) as f64 / 1000.0)
            }
        };
        table.add_row(vec![
            method.to_string(),
            name.to_string(),
            requests.to_string(),
            format!("{failures} ({})", percent(failures, requests)),
            format!("{rps:.1}"),
            q(0.5),
            q(0.95),
            q(0.99),
        ]);
    };
    for e in stats.totals() {
        row(
            e.key.method.as_str(),
            &e.key.name,
            e.requests,
            e.failures,
            Some(&e.key),
        );
    }
    let all = stats.aggregated();
    row("", "Aggregated", all.requests, all.failures, None);
    table.to_string()
}

/// The end summary: requests, latency percentiles, failures and errors.
pub fn summary_text(summary: &Summary) -> String {
    let mut out = String::new();
    let mut table = new_table(vec![
        "Type",
        "Name",
        "# reqs",
        "# fails",
        "RPS",
        "fails/s",
        "Min ms",
        "Avg ms",
        "Max ms",
        "Avg size B",
    ]);
    for e in summary
        .endpoints
        .iter()
        .chain(std::iter::once(&summary.total))
    {
        table.add_row(vec![
            e.method.clone(),
            e.name.clone(),
            e.requests.to_string(),
            format!("{} ({})", e.failures, percent(e.failures, e.requests)),
            format!("{:.1}", e.rps),
            format!("{:.1}", e.failures_per_s),
            format_ms(e.min_ms),
            format_ms(e.avg_ms),
            format_ms(e.max_ms),
            format!("{:.0}", e.avg_content_size),
        ]);
    }
    out.push_str("Requests\n");
    out.push_str(&table.to_string());
    out.push('\n');

    let labels: Vec<String> = PERCENTILES
        .iter()
        .map(|&p| format!("p{}", percentile_label(p)))
        .collect();
    let mut header = vec!["Type", "Name"];
    header.extend(labels.iter().map(String::as_str));
    let mut table = new_table(header);
    for e in summary
        .endpoints
        .iter()
        .chain(std::iter::once(&summary.total))
    {
        let mut row = vec![e.method.clone(), e.name.clone()];
        for &p in &PERCENTILES {
            let v = e
                .percentiles_ms
                .get(&percentile_label(p))
                .copied()
                .unwrap_or(0.0);
            row.push(if e.requests == 0 {
                "-".into()
            } else {
                format_ms(v)
            });
        }
        table.add_row(row);
    }
    out.push_str("\nResponse time percentiles (ms)\n");
    out.push_str(&table.to_string());
    out.push('\n');
    if summary.corrected {
        let total = &summary.total;
        let p = |label: &str| format_ms(total.uncorrected.percentiles_ms[label]);
        out.push_str(&format!(
            "Latencies are corrected for coordinated omission (timed from when each request was due); uncorrected, Aggregated: p50 {} ms, p99 {} ms\n",
            p("50"),
            p("99")
        ));
    }

    if !summary.failures.is_empty() {
        let mut table = new_table(vec!["Method", "Name", "Error", "Occurrences"]);
        for f in &summary.failures {
            table.add_row(vec![
                f.method.clone(),
                f.name.clone(),
                f.error.clone(),
                f.occurrences.to_string(),
            ]);
        }
        out.push_str("\nFailures\n");
        out.push_str(&table.to_string());
        out.push('\n');
    }
    if !summary.errors.is_empty() {
        let mut table = new_table(vec!["Count", "Location", "Error"]);
        for e in &summary.errors {
            table.add_row(vec![
                e.count.to_string(),
                e.location.clone(),
                e.message.clone(),
            ]);
        }
        out.push_str("\nScript errors\n");
        out.push_str(&table.to_string());
        out.push('\n');
    }
    if !summary.checks.is_empty() {
        let mut table = new_table(vec!["Check", "Passed", "Failed", "Pass rate"]);
        for c in &summary.checks {
            let total = c.passed + c.failed;
            table.add_row(vec![
                c.name.clone(),
                c.passed.to_string(),
                c.failed.to_string(),
                format!("{:.2}%", c.passed as f64 * 100.0 / total.max(1) as f64),
            ]);
        }
        out.push_str("\nChecks\n");
        out.push_str(&table.to_string());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&iterations_line(summary));
    if let Some(late) = &summary.health.lateness_ms {
        out.push_str(&format!(
            "Generator lateness: p50 {} ms, p99 {} ms, max {} ms over {} scheduled starts\n",
            format_ms(late.p50),
            format_ms(late.p99),
            format_ms(late.max),
            summary.health.scheduled
        ));
    }
    if summary.health.generator_saturated {
        out.push_str(&format!(
            "\nWarning: the load generator was over 90% busy (peak {:.0}%) for {} reports: it, not the target, may have limited the load. Use more --cores or nodes.\n",
            summary.health.max_busy * 100.0,
            summary.health.busy_reports
        ));
    }
    if summary.stopped_early {
        out.push_str(&format!("\nStopped early: {}\n", summary.stop_reason));
    }
    out
}

/// `Iterations: N completed`, with the dropped ones in the open model or
/// whenever there are some.
fn iterations_line(summary: &Summary) -> String {
    let it = &summary.iterations;
    let mut line = format!("Iterations: {} completed", it.completed);
    if summary.parameters.model == LoadModel::Open || it.dropped > 0 {
        line.push_str(&format!(", {} dropped", it.dropped));
        if it.dropped > 0 {
            line.push_str(
                " (no user came free within --max-wait: the target is too slow for the rate, or --max-users too low)",
            );
        }
    }
    line.push('\n');
    line
}

/// `mm:ss` of a number of seconds.
pub fn clock(seconds: u64) -> String {
    format!("{:02}:{:02}", seconds / 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::tests::{closed_summary, open_summary};
    use blast_proto::{EntryDelta, EntryKey, FailureDelta, FailureKind, Method, StatsDelta};

    /// Stats of `ok` passing requests and `refused` refused ones.
    fn stats_with(ok: u64, refused: u64) -> RunStats {
        let key = EntryKey {
            method: Method::Get,
            name: "/".into(),
        };
        let mut e = EntryDelta::new(key.clone());
        for _ in 0..ok {
            e.record(1000, 10, false);
        }
        for _ in 0..refused {
            e.record(200, 0, true);
        }
        let mut stats = RunStats::default();
        stats.merge(&StatsDelta {
            entries: vec![e],
            failures: vec![FailureDelta {
                key,
                kind: FailureKind::Refused("127.0.0.1:9".parse().unwrap()),
                message: String::new(),
                count: refused,
                first_seen_ms: 0,
                last_seen_ms: 0,
            }],
            ..Default::default()
        });
        stats
    }

    #[test]
    fn a_run_that_never_connects_is_told_so_with_the_address() {
        assert_eq!(
            connect_warning(&stats_with(0, 3)).as_deref(),
            Some("every request so far failed to connect: connection refused (127.0.0.1:9)")
        );
        assert_eq!(connect_warning(&stats_with(1, 3)), None);
        assert_eq!(connect_warning(&stats_with(0, 0)), None);
    }

    #[test]
    fn an_open_run_that_was_corrected_and_stopped_early() {
        let text = summary_text(&open_summary());
        let total = &open_summary().total;
        let corrected = format!(
            "Latencies are corrected for coordinated omission (timed from when each request was due); uncorrected, Aggregated: p50 {} ms, p99 {} ms\n",
            format_ms(total.uncorrected.percentiles_ms["50"]),
            format_ms(total.uncorrected.percentiles_ms["99"]),
        );
        assert!(text.contains(&corrected), "{text}");
        assert!(
            text.contains(
                "\nIterations: 100 completed, 3 dropped (no user came free within --max-wait"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nGenerator lateness: p50 0.40 ms, p99 1.50 ms, max 1.50 ms over 8 scheduled starts\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\nStopped early: stop condition: fail_ratio>0.5\n"),
            "{text}"
        );
        // The layout before it is the usual one.
        let requests = text.find("Requests\n").unwrap();
        let percentiles = text.find("\nResponse time percentiles (ms)\n").unwrap();
        let failures = text.find("\nFailures\n").unwrap();
        let iterations = text.find("\nIterations:").unwrap();
        assert!(requests < percentiles && percentiles < failures && failures < iterations);
    }

    #[test]
    fn a_closed_run_says_only_its_iterations() {
        let text = summary_text(&closed_summary());
        assert!(text.contains("\nIterations: 100 completed\n"), "{text}");
        for absent in [
            "dropped",
            "coordinated omission",
            "lateness",
            "Stopped early",
        ] {
            assert!(!text.contains(absent), "{absent}: {text}");
        }
        // An open run without drops still says how many were dropped.
        let mut open = open_summary();
        open.iterations.dropped = 0;
        assert!(
            summary_text(&open).contains("\nIterations: 100 completed, 0 dropped\n"),
            "dropped shows in the open model"
        );
        // A closed run with drops (a shape) says so too.
        let mut closed = closed_summary();
        closed.iterations.dropped = 2;
        assert!(summary_text(&closed).contains("Iterations: 100 completed, 2 dropped ("));
    }
}
