//! Pass/fail thresholds: `[ENDPOINT ": "] METRIC OP VALUE`, such as
//! `p95<300ms`, `fail_ratio<0.01` or `GET /items/:id: p99<500ms`.
//!
//! Thresholds are parsed once, before any load ([`Threshold::parse`],
//! [`thresholds_from`] for the scenario's and the command line's lists
//! together), evaluated over the run's cumulative statistics live (for
//! `--abort-on-fail`) and at the end ([`evaluate`]). Stop conditions
//! ([`crate::stop_on`]) share the grammar's parser and the measures.

use std::fmt;
use std::ops::Range;

use blast_proto::{EntryDelta, EntryKey, Method};
use serde::Serialize;

use crate::console::format_ms;
use crate::stats::RunStats;

/// What a threshold measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A response-time percentile (`p95`, `p99.9`), 0 < p ≤ 100.
    Percentile(f64),
    /// Mean response time.
    Avg,
    /// Fastest response.
    Min,
    /// Slowest response.
    Max,
    /// Median response time (`p50`).
    Med,
    /// Failed requests over all requests, 0 to 1.
    FailRatio,
    /// Requests per second over the run.
    Rps,
    /// Failed requests per second over the run.
    FailRps,
    /// Passed script checks over all checks, 0 to 1 (1 when there are none).
    Checks,
}

/// How a metric's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Milliseconds; `ms`, `s` or `us` suffixes.
    Time,
    /// A ratio from 0 to 1, or a percentage.
    Ratio,
    /// A plain number per second.
    Rate,
}

impl Metric {
    fn kind(self) -> Kind {
        match self {
            Metric::Percentile(_) | Metric::Avg | Metric::Min | Metric::Max | Metric::Med => {
                Kind::Time
            }
            Metric::FailRatio | Metric::Checks => Kind::Ratio,
            Metric::Rps | Metric::FailRps => Kind::Rate,
        }
    }

    /// The metric as it is written: `p99.9`, `avg`, `fail_ratio`...
    pub fn label(self) -> String {
        match self {
            Metric::Percentile(p) => format!("p{p}"),
            Metric::Avg => "avg".into(),
            Metric::Min => "min".into(),
            Metric::Max => "max".into(),
            Metric::Med => "med".into(),
            Metric::FailRatio => "fail_ratio".into(),
            Metric::Rps => "rps".into(),
            Metric::FailRps => "fail_rps".into(),
            Metric::Checks => "checks".into(),
        }
    }

    /// The unit of its values in reports: `ms`, `/s`, or empty for ratios.
    pub fn unit(self) -> &'static str {
        match self.kind() {
            Kind::Time => "ms",
            Kind::Ratio => "",
            Kind::Rate => "/s",
        }
    }
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// The operator as it is written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Whether `measured` compares to `limit` as the operator says.
    pub(crate) fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
        }
    }
}

/// One parsed threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The expression as written (trimmed).
    pub expr: String,
    /// The entry it applies to; the aggregated total when `None`.
    pub endpoint: Option<EntryKey>,
    /// What it measures.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit: milliseconds for times, a ratio from 0 to 1 for
    /// `fail_ratio` and `checks`, a number per second for rates.
    pub limit: f64,
}

/// A threshold that does not parse, with the part that is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThresholdError {
    /// Where it came from: `threshold`, `--threshold`, `scenario threshold`.
    pub origin: String,
    /// The expression as written.
    pub expr: String,
    /// The bad part, as a byte range of `expr`.
    pub at: Range<usize>,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.expr[..self.at.start].chars().count();
        let width = self.expr[self.at.clone()].chars().count().max(1);
        write!(
            f,
            "bad {} {:?}: {}\n    {}\n    {}{}",
            self.origin,
            self.expr,
            self.message,
            self.expr,
            " ".repeat(start),
            "^".repeat(width)
        )
    }
}

impl std::error::Error for ThresholdError {}

/// The metrics a threshold may name, for error messages.
const METRICS_HELP: &str =
    "use p<N> (p95, p99.9), avg, min, max, med, fail_ratio, rps, fail_rps or checks";

/// A metric the `[ENDPOINT ": "] METRIC OP VALUE` grammar can name: a
/// threshold's [`Metric`], or a stop condition's, which adds `dropped`.
pub(crate) trait ComparedMetric: Copy {
    /// Parses the metric's name (`p95`, `fail_ratio`...); the error says
    /// what is wrong.
    fn parse_name(text: &str) -> Result<Self, String>;
    /// Parses a limit for the metric; on error, the bad part of `text` (or
    /// all of it) and why.
    fn parse_limit(self, text: &str) -> Result<f64, (Option<Range<usize>>, String)>;
    /// Why the metric cannot be asked of one endpoint, if it cannot.
    fn whole_run_only(self) -> Option<&'static str>;
}

impl ComparedMetric for Metric {
    fn parse_name(text: &str) -> Result<Metric, String> {
        parse_metric(text, METRICS_HELP)
    }

    fn parse_limit(self, text: &str) -> Result<f64, (Option<Range<usize>>, String)> {
        parse_value(self, text)
    }

    fn whole_run_only(self) -> Option<&'static str> {
        (self == Metric::Checks)
            .then_some("checks are counted by check name, not by endpoint: leave the endpoint out")
    }
}

/// A parsed `[ENDPOINT ": "] METRIC OP VALUE`.
pub(crate) struct Comparison<M> {
    /// The entry it applies to; the aggregated total when `None`.
    pub(crate) endpoint: Option<EntryKey>,
    /// What it measures.
    pub(crate) metric: M,
    /// The comparison.
    pub(crate) op: Op,
    /// The limit, as [`ComparedMetric::parse_limit`] gave it.
    pub(crate) limit: f64,
}

/// Parses `[METHOD NAME ": "] METRIC OP VALUE`; errors name `origin`.
pub(crate) fn parse_comparison<M: ComparedMetric>(
    expr: &str,
    origin: &str,
) -> Result<Comparison<M>, ThresholdError> {
    let fail = |at: Range<usize>, message: String| ThresholdError {
        origin: origin.into(),
        expr: expr.to_string(),
        at,
        message,
    };
    if expr.trim().is_empty() {
        return Err(fail(0..expr.len(), "it is empty".into()));
    }
    // The endpoint ends at the last ": " (names may hold ": " too).
    let (endpoint, rest_at) = match expr.rfind(": ") {
        Some(i) => (
            Some(parse_endpoint(expr, 0..i).map_err(|(at, m)| fail(at, m))?),
            i + 2,
        ),
        None => (None, 0),
    };
    let rest = &expr[rest_at..];
    let Some(op_at) = rest.find(['<', '>', '=', '!']) else {
        return Err(fail(
            span_of(expr, rest_at..expr.len()),
            "no comparison: write METRIC OP VALUE, e.g. p95<300ms, with OP one of <, <=, >, >="
                .into(),
        ));
    };
    let op_at = rest_at + op_at;
    let op_len = expr[op_at..]
        .chars()
        .take_while(|c| matches!(c, '<' | '>' | '=' | '!'))
        .count();
    let op = match &expr[op_at..op_at + op_len] {
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        other => {
            return Err(fail(
                op_at..op_at + op_len,
                format!("unknown operator {other:?}: use <, <=, > or >="),
            ));
        }
    };
    let metric_at = span_of(expr, rest_at..op_at);
    let metric = M::parse_name(&expr[metric_at.clone()]).map_err(|m| {
            let hint = if expr[metric_at.clone()].contains(':') {
                " (separate an endpoint from the metric with \": \", e.g. \"GET /items/:id: p99<500ms\")"
            } else {
                ""
            };
            let at = if metric_at.is_empty() {
                op_at..op_at + op_len
            } else {
                metric_at.clone()
            };
            fail(at, format!("{m}{hint}"))
        })?;
    if let Some(why) = metric.whole_run_only()
        && endpoint.is_some()
    {
        return Err(fail(span_of(expr, 0..rest_at - 2), why.into()));
    }
    let value_at = span_of(expr, op_at + op_len..expr.len());
    let limit = metric
        .parse_limit(&expr[value_at.clone()])
        .map_err(|(sub, m)| {
            let at = if value_at.is_empty() {
                op_at..op_at + op_len
            } else {
                match sub {
                    Some(sub) => value_at.start + sub.start..value_at.start + sub.end,
                    None => value_at.clone(),
                }
            };
            fail(at, m)
        })?;
    Ok(Comparison {
        endpoint,
        metric,
        op,
        limit,
    })
}

impl Threshold {
    /// Parses `[METHOD NAME ": "] METRIC OP VALUE`.
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let c = parse_comparison::<Metric>(expr, "threshold")?;
        Ok(Threshold {
            expr: expr.trim().to_string(),
            endpoint: c.endpoint,
            metric: c.metric,
            op: c.op,
            limit: c.limit,
        })
    }

    /// What it compares, for overriding: (endpoint, metric).
    fn key(&self) -> (Option<EntryKey>, String) {
        (self.endpoint.clone(), self.metric.label())
    }

    /// The endpoint as written in reports: `GET /items/:id`.
    pub fn endpoint_label(&self) -> Option<String> {
        self.endpoint
            .as_ref()
            .map(|k| format!("{} {}", k.method, k.name))
    }
}

/// `range` of `s` without surrounding whitespace.
pub(crate) fn span_of(s: &str, range: Range<usize>) -> Range<usize> {
    let part = &s[range.clone()];
    let start = range.start + (part.len() - part.trim_start().len());
    let end = range.end - (part.len() - part.trim_end().len());
    if start > end {
        start..start
    } else {
        start..end
    }
}

/// Parses `METHOD NAME` in `expr[range]`.
fn parse_endpoint(expr: &str, range: Range<usize>) -> Result<EntryKey, (Range<usize>, String)> {
    let at = span_of(expr, range);
    let text = &expr[at.clone()];
    const HELP: &str = "an endpoint is METHOD NAME, e.g. \"GET /items/:id: p99<500ms\"";
    let Some((method, name)) = text.split_once(char::is_whitespace) else {
        return Err((at, format!("no method before the name: {HELP}")));
    };
    let method = if method.eq_ignore_ascii_case("METRIC") {
        Method::Metric
    } else {
        Method::parse(method).ok_or_else(|| {
            (
                at.start..at.start + method.len(),
                format!("unknown method {method:?}: {HELP}"),
            )
        })?
    };
    let name = name.trim();
    if name.is_empty() {
        return Err((at, format!("no name after the method: {HELP}")));
    }
    Ok(EntryKey {
        method,
        name: name.to_string(),
    })
}

/// Parses a threshold metric's name; `help` lists the names the caller
/// accepts, for its errors.
pub(crate) fn parse_metric(text: &str, help: &str) -> Result<Metric, String> {
    let metric = match text.to_ascii_lowercase().as_str() {
        "" => return Err(format!("no metric before the comparison: {help}")),
        "avg" => Metric::Avg,
        "min" => Metric::Min,
        "max" => Metric::Max,
        "med" => Metric::Med,
        "fail_ratio" => Metric::FailRatio,
        "rps" => Metric::Rps,
        "fail_rps" => Metric::FailRps,
        "checks" => Metric::Checks,
        lower => {
            let p = lower
                .strip_prefix('p')
                .and_then(|n| n.parse::<f64>().ok().filter(|_| !n.starts_with(['+', '-'])))
                .ok_or_else(|| format!("unknown metric {text:?}: {help}"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "percentile {text:?} is out of range: it must be above 0 and at most 100"
                ));
            }
            Metric::Percentile(p)
        }
    };
    Ok(metric)
}

/// Parses the value for `metric`; on error, the bad part of `text` (or all
/// of it) and why.
fn parse_value(metric: Metric, text: &str) -> Result<f64, (Option<Range<usize>>, String)> {
    if text.is_empty() {
        return Err((None, "no value after the comparison".into()));
    }
    let digits = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(text.len(), |(i, _)| i);
    let number: f64 = text[..digits].parse().map_err(|_| {
        (
            None,
            format!("{text:?} is not a number with an optional unit, e.g. 300ms or 0.01"),
        )
    })?;
    let unit_at = digits + (text[digits..].len() - text[digits..].trim_start().len());
    let unit = &text[unit_at..];
    let unit_span = Some(unit_at..text.len());
    let label = metric.label();
    match metric.kind() {
        Kind::Time => match unit {
            "" | "ms" => Ok(number),
            "s" => Ok(number * 1000.0),
            "us" | "µs" => Ok(number / 1000.0),
            _ => Err((
                unit_span,
                format!("unknown unit {unit:?} for {label}: use ms, s or us (a bare number is ms)"),
            )),
        },
        Kind::Ratio => {
            let ratio = match unit {
                "" => number,
                "%" => number / 100.0,
                _ => {
                    return Err((
                        unit_span,
                        format!(
                            "{label} is a ratio: write a number from 0 to 1 or a percentage (0.01 or 1%), not {unit:?}"
                        ),
                    ));
                }
            };
            if ratio > 1.0 {
                return Err((
                    None,
                    format!("{label} is a ratio from 0 to 1 (or 0% to 100%)"),
                ));
            }
            Ok(ratio)
        }
        Kind::Rate => match unit {
            "" | "/s" => Ok(number),
            _ => Err((
                unit_span,
                format!("{label} takes a plain number per second, not {unit:?}"),
            )),
        },
    }
}

/// Parses the scenario's thresholds and the command line's together. A
/// command-line threshold replaces the scenario's on the same endpoint and
/// metric; the scenario's others stay.
pub fn thresholds_from(
    scenario: &[String],
    cli: &[String],
) -> Result<Vec<Threshold>, ThresholdError> {
    let parse_all = |list: &[String], origin: &str| {
        list.iter()
            .map(|expr| {
                Threshold::parse(expr).map_err(|mut e| {
                    e.origin = origin.to_string();
                    e
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let from_cli = parse_all(cli, "--threshold")?;
    let from_scenario = parse_all(scenario, "scenario threshold")?;
    let mut all: Vec<Threshold> = from_scenario
        .into_iter()
        .filter(|t| !from_cli.iter().any(|c| c.key() == t.key()))
        .collect();
    all.extend(from_cli);
    Ok(all)
}

/// One threshold's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// The expression as written.
    pub threshold: String,
    /// `METHOD NAME`, or `None` for the aggregated total.
    pub endpoint: Option<String>,
    /// `p95`, `avg`, `fail_ratio`...
    pub metric: String,
    /// `<`, `<=`, `>`, `>=`.
    pub op: String,
    /// The limit, in `unit`.
    pub limit: f64,
    /// `ms`, `/s`, or empty for ratios.
    pub unit: String,
    /// What was measured, in `unit`; `None` when the endpoint saw no
    /// request (or, for times, nothing was measured at all).
    pub measured: Option<f64>,
    /// Whether the threshold held.
    pub passed: bool,
}

impl ThresholdResult {
    /// `PASS  p95<300ms  (p95 = 12.3 ms)`.
    pub fn describe(&self) -> String {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let what = match &self.endpoint {
            Some(e) => format!("{} of {e}", self.metric),
            None => self.metric.clone(),
        };
        let measured = match self.measured {
            None => format!(
                "no requests{}",
                self.endpoint
                    .as_ref()
                    .map(|e| format!(" to {e}"))
                    .unwrap_or_default()
            ),
            Some(v) => format!("{what} = {}", format_value(v, &self.unit)),
        };
        format!("{verdict}  {}  ({measured})", self.threshold)
    }
}

/// `v` in `unit` as reports write it: `12.3 ms`, `4.00/s`, `0.0500`.
pub(crate) fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{} ms", format_ms(v)),
        "/s" => format!("{v:.2}/s"),
        _ => format!("{v:.4}"),
    }
}

/// The thresholds' verdicts as the console prints them.
pub fn report_text(results: &[ThresholdResult]) -> String {
    let mut out = String::from("Thresholds\n");
    for r in results {
        out.push_str("  ");
        out.push_str(&r.describe());
        out.push('\n');
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        out.push_str(&format!(
            "{failed} of {} thresholds failed\n",
            results.len()
        ));
    }
    out
}

/// The ratio of passed script checks, from 0 to 1; 1 when the run made no
/// check (nothing failed).
pub fn checks_ratio(stats: &RunStats) -> f64 {
    let (passed, failed) = stats
        .checks()
        .iter()
        .fold((0u64, 0u64), |(p, f), c| (p + c.passed, f + c.failed));
    passed_ratio(passed, failed)
}

/// `passed` over all, from 0 to 1; 1 when there were none.
pub(crate) fn passed_ratio(passed: u64, failed: u64) -> f64 {
    if passed + failed == 0 {
        1.0
    } else {
        passed as f64 / (passed + failed) as f64
    }
}

/// Measures `metric` of `entry` over `seconds`; `None` when there is
/// nothing to measure.
pub(crate) fn measure(
    metric: Metric,
    entry: Option<&EntryDelta>,
    seconds: f64,
    checks: f64,
) -> Option<f64> {
    if metric == Metric::Checks {
        return Some(checks);
    }
    let entry = entry?;
    let n = entry.requests;
    let ms = |us: u64| us as f64 / 1000.0;
    let h = &entry.latency;
    match metric {
        Metric::FailRatio => Some(if n == 0 {
            0.0
        } else {
            entry.failures as f64 / n as f64
        }),
        Metric::Rps => Some(n as f64 / seconds.max(1e-9)),
        Metric::FailRps => Some(entry.failures as f64 / seconds.max(1e-9)),
        _ if n == 0 => None,
        Metric::Percentile(p) => Some(ms(h.value_at_quantile(p / 100.0))),
        Metric::Med => Some(ms(h.value_at_quantile(0.5))),
        Metric::Avg => Some(entry.latency_sum_us as f64 / n as f64 / 1000.0),
        Metric::Min => Some(ms(h.min())),
        Metric::Max => Some(ms(h.max())),
        Metric::Checks => unreachable!("handled above"),
    }
}

/// Evaluates `thresholds` over the run's statistics so far, `seconds` into
/// the run (rates are over that time). A threshold on an endpoint that saw
/// no request fails (most likely its name is misspelt), as does a time
/// threshold when nothing was measured.
pub fn evaluate(thresholds: &[Threshold], stats: &RunStats, seconds: f64) -> Vec<ThresholdResult> {
    if thresholds.is_empty() {
        return Vec::new();
    }
    let total = stats.aggregated();
    let checks = checks_ratio(stats);
    thresholds
        .iter()
        .map(|t| {
            let entry = match &t.endpoint {
                None => Some(&total),
                Some(key) => stats.totals().find(|e| &e.key == key),
            };
            let measured = measure(t.metric, entry, seconds, checks);
            ThresholdResult {
                threshold: t.expr.clone(),
                endpoint: t.endpoint_label(),
                metric: t.metric.label(),
                op: t.op.as_str().to_string(),
                limit: t.limit,
                unit: t.metric.unit().to_string(),
                measured,
                passed: measured.is_some_and(|m| t.op.holds(m, t.limit)),
            }
        })
        .collect()
}

/// The first threshold that fails on what was measured so far, for
/// `--abort-on-fail`. Thresholds with nothing measured yet are skipped:
/// they may still pass.
pub fn first_violation(
    thresholds: &[Threshold],
    stats: &RunStats,
    seconds: f64,
) -> Option<ThresholdResult> {
    evaluate(thresholds, stats, seconds)
        .into_iter()
        .find(|r| r.measured.is_some() && !r.passed)
}

#[cfg(test)]
#[path = "threshold_tests.rs"]
mod tests;
