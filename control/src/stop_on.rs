//! Stop conditions (`--stop-on`): the run stops early when one holds.
//!
//! A condition is written like a threshold ([`crate::threshold`]'s grammar,
//! plus `dropped`, the open model's dropped iterations) with an optional
//! rolling window: `[ENDPOINT ": "] METRIC OP VALUE ["for" DURATION]`, such
//! as `fail_ratio>0.05 for 10s`, `p95>2s for 30s`, `rps<10 for 5s`,
//! `GET /login: fail_ratio>0.5` or `dropped>100 for 10s`. Unlike a
//! threshold, it says when to stop: true means stop.
//!
//! [`StopCondition::parse`] reads one; [`StopConditions::observe`] is fed
//! the run's merged deltas and gives the reason to stop once one holds.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use blast_proto::{EntryDelta, EntryKey, Method, StatsDelta};

use crate::REPORT_INTERVAL;
use crate::threshold::{self, ComparedMetric, Metric, Op, ThresholdError};

/// Where parse errors say the expression came from.
const ORIGIN: &str = "--stop-on";

/// The metrics a stop condition may name, for error messages.
const METRICS_HELP: &str =
    "use p<N> (p95, p99.9), avg, min, max, med, fail_ratio, rps, fail_rps, checks or dropped";

/// The most buckets a window keeps: a longer window merges several
/// reports per bucket, so that memory (a latency histogram per bucket, for
/// time metrics) and the work of summing the window stay bounded.
const MAX_BUCKETS: u64 = 60;

/// What a stop condition measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopMetric {
    /// What a threshold measures: a percentile, `fail_ratio`, `rps`...
    Stat(Metric),
    /// Open-model iterations dropped because no user came free in time, a
    /// count.
    Dropped,
}

impl StopMetric {
    /// The metric as it is written: `p99.9`, `fail_ratio`, `dropped`...
    pub fn label(self) -> String {
        match self {
            StopMetric::Stat(m) => m.label(),
            StopMetric::Dropped => "dropped".into(),
        }
    }

    /// Whether measuring it needs the latency histograms (`avg` needs only
    /// the sum).
    fn needs_latencies(self) -> bool {
        matches!(
            self,
            StopMetric::Stat(Metric::Percentile(_) | Metric::Min | Metric::Max | Metric::Med)
        )
    }
}

/// Whether `metric` is a time, in milliseconds.
fn is_time(metric: Metric) -> bool {
    matches!(
        metric,
        Metric::Percentile(_) | Metric::Avg | Metric::Min | Metric::Max | Metric::Med
    )
}

impl ComparedMetric for StopMetric {
    fn parse_name(text: &str) -> Result<StopMetric, String> {
        if text.eq_ignore_ascii_case("dropped") {
            return Ok(StopMetric::Dropped);
        }
        threshold::parse_metric(text, METRICS_HELP).map(StopMetric::Stat)
    }

    fn parse_limit(self, text: &str) -> Result<f64, (Option<Range<usize>>, String)> {
        match self {
            StopMetric::Stat(m) => m.parse_limit(text),
            StopMetric::Dropped if text.is_empty() => {
                Err((None, "no value after the comparison".into()))
            }
            StopMetric::Dropped => text.parse::<u64>().map(|n| n as f64).map_err(|_| {
                (
                    None,
                    format!(
                        "dropped is a count of iterations: write a whole number, e.g. dropped>100, not {text:?}"
                    ),
                )
            }),
        }
    }

    fn whole_run_only(self) -> Option<&'static str> {
        match self {
            StopMetric::Stat(m) => m.whole_run_only(),
            StopMetric::Dropped => Some(
                "dropped iterations are counted for the whole run, not by endpoint: leave the endpoint out",
            ),
        }
    }
}

/// One parsed stop condition: `[ENDPOINT ": "] METRIC OP VALUE ["for"
/// DURATION]`.
#[derive(Clone, Debug, PartialEq)]
pub struct StopCondition {
    /// The entry it applies to; every request together when `None`.
    pub endpoint: Option<EntryKey>,
    /// What it measures.
    pub metric: StopMetric,
    /// The comparison that, when it holds, stops the run.
    pub op: Op,
    /// The limit: milliseconds for times, a ratio from 0 to 1 for
    /// `fail_ratio` and `checks`, a number per second for rates, a count
    /// for `dropped`.
    pub limit: f64,
    /// Measure over the last this much of the run (`for 10s`), a whole
    /// number of report intervals; since the start when `None`.
    pub window: Option<Duration>,
}

impl StopCondition {
    /// Parses `[METHOD NAME ": "] METRIC OP VALUE ["for" DURATION]`. Errors
    /// name the expression and point at the bad part, as
    /// [`crate::threshold::Threshold::parse`]'s do.
    pub fn parse(expr: &str) -> Result<StopCondition, ThresholdError> {
        let fail = |at: Range<usize>, message: String| ThresholdError {
            origin: ORIGIN.into(),
            expr: expr.to_string(),
            at,
            message,
        };
        let (condition_end, window) = match find_for(expr) {
            None => (expr.len(), None),
            Some(for_at) => {
                let keyword = for_at..for_at + "for".len();
                let condition_from = expr[..for_at].rfind(": ").map_or(0, |i| i + 2);
                if expr[condition_from..for_at].trim().is_empty() {
                    return Err(fail(
                        keyword,
                        "no condition before \"for\": write e.g. fail_ratio>0.05 for 10s".into(),
                    ));
                }
                let at = threshold::span_of(expr, keyword.end..expr.len());
                if at.is_empty() {
                    return Err(fail(
                        keyword,
                        "no duration after \"for\": write e.g. for 10s".into(),
                    ));
                }
                let window = parse_window(&expr[at.clone()]).map_err(|m| fail(at, m))?;
                (for_at, Some(window))
            }
        };
        let c = threshold::parse_comparison::<StopMetric>(&expr[..condition_end], ORIGIN).map_err(
            |e| ThresholdError {
                expr: expr.to_string(),
                ..e
            },
        )?;
        Ok(StopCondition {
            endpoint: c.endpoint,
            metric: c.metric,
            op: c.op,
            limit: c.limit,
            window,
        })
    }

    /// What it measures, as reasons say it: `fail_ratio`, `p95 of GET /a`.
    fn measured_label(&self) -> String {
        match &self.endpoint {
            Some(k) => format!("{} of {} {}", self.metric.label(), k.method, k.name),
            None => self.metric.label(),
        }
    }

    /// The metric over `sample`, which covers `seconds`; `None` when there
    /// is nothing to measure (a time with no request).
    fn measure(&self, sample: &Sample, seconds: f64) -> Option<f64> {
        match self.metric {
            StopMetric::Dropped => Some(sample.dropped as f64),
            StopMetric::Stat(m) => threshold::measure(
                m,
                Some(&sample.requests),
                seconds,
                threshold::passed_ratio(sample.checks_passed, sample.checks_failed),
            ),
        }
    }

    /// `value` as reasons write it.
    fn format_measured(&self, value: f64) -> String {
        match self.metric {
            StopMetric::Dropped => format!("{value}"),
            StopMetric::Stat(m) => threshold::format_value(value, m.unit()),
        }
    }
}

/// The expression, normalized: `GET /login: fail_ratio>0.5 for 10s`.
/// It parses back to the same condition.
impl fmt::Display for StopCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = &self.endpoint {
            write!(f, "{} {}: ", k.method, k.name)?;
        }
        write!(f, "{}{}", self.metric.label(), self.op.as_str())?;
        match self.metric {
            // Whole seconds read better as seconds; anything else stays in
            // milliseconds, so that it parses back exactly.
            StopMetric::Stat(m)
                if is_time(m) && self.limit >= 1000.0 && (self.limit / 1000.0).fract() == 0.0 =>
            {
                write!(f, "{}s", self.limit / 1000.0)?
            }
            StopMetric::Stat(m) if is_time(m) => write!(f, "{}ms", self.limit)?,
            _ => write!(f, "{}", self.limit)?,
        }
        if let Some(window) = self.window {
            write!(f, " for {}", duration_text(window))?;
        }
        Ok(())
    }
}

/// `1m30s`, `10s`, `1h`: humantime's form without spaces, so that it stays
/// one word and parses back.
fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// Where the `for` that starts the window is: the last word `for` after
/// the endpoint (whose name may hold one).
fn find_for(expr: &str) -> Option<usize> {
    let from = expr.rfind(": ").map_or(0, |i| i + 2);
    // ASCII lowercasing keeps byte offsets.
    let lower = expr.to_ascii_lowercase();
    lower[from..]
        .match_indices("for")
        .map(|(i, _)| from + i)
        .filter(|&i| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + "for".len()..].chars().next();
            (i == from || before.is_some_and(char::is_whitespace))
                && after.is_none_or(char::is_whitespace)
        })
        .last()
}

/// Parses a window: `10s`, `5m`, `1h30m`, or a bare number of seconds.
fn parse_window(text: &str) -> Result<Duration, String> {
    let not_a_duration = || format!("{text:?} is not a duration like 10s, 5m or 1h30m");
    let window = match text.parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds).map_err(|_| not_a_duration())?,
        Err(_) => humantime::parse_duration(text).map_err(|_| not_a_duration())?,
    };
    let interval = humantime::format_duration(REPORT_INTERVAL);
    if window < REPORT_INTERVAL {
        return Err(format!(
            "the window must last at least {interval}: statistics come every {interval}"
        ));
    }
    if window.as_nanos() % REPORT_INTERVAL.as_nanos() != 0 {
        return Err(format!(
            "the window must be a whole number of {interval} intervals: statistics come every {interval}"
        ));
    }
    Ok(window)
}

/// What a condition keeps of some reports: its scope's requests, and the
/// run's checks and dropped iterations.
struct Sample {
    /// Counts, and latencies only when the metric needs them.
    requests: EntryDelta,
    checks_passed: u64,
    checks_failed: u64,
    dropped: u64,
}

impl Sample {
    fn new() -> Sample {
        Sample {
            requests: EntryDelta::new(EntryKey {
                method: Method::Get,
                name: String::new(),
            }),
            checks_passed: 0,
            checks_failed: 0,
            dropped: 0,
        }
    }

    /// Adds what `delta` holds for `scope` (every request when `None`).
    fn add_delta(&mut self, delta: &StatsDelta, scope: Option<&EntryKey>, latencies: bool) {
        // Custom timings (`metric()`) are not requests: only an endpoint
        // that names one measures it.
        let in_scope = |e: &&EntryDelta| match scope {
            Some(key) => &e.key == key,
            None => e.key.method != Method::Metric,
        };
        for e in delta.entries.iter().filter(in_scope) {
            add_requests(&mut self.requests, e, latencies);
        }
        for c in &delta.checks {
            self.checks_passed += c.passed;
            self.checks_failed += c.failed;
        }
        self.dropped += delta.dropped;
    }

    fn add(&mut self, other: &Sample, latencies: bool) {
        add_requests(&mut self.requests, &other.requests, latencies);
        self.checks_passed += other.checks_passed;
        self.checks_failed += other.checks_failed;
        self.dropped += other.dropped;
    }
}

/// Adds `from`'s counts (and latencies if asked) to `into`: less than
/// [`EntryDelta::merge`], which also merges the uncorrected latencies.
fn add_requests(into: &mut EntryDelta, from: &EntryDelta, latencies: bool) {
    into.requests += from.requests;
    into.failures += from.failures;
    into.latency_sum_us += from.latency_sum_us;
    if latencies {
        // Auto-resizing histograms cannot run out of range.
        let _ = into.latency.add(&from.latency);
    }
}

/// A rolling window of reports, in buckets of `width` report slots.
struct Window {
    /// Its length in report slots.
    slots: u64,
    /// Slots per bucket: 1 up to [`MAX_BUCKETS`] slots, more beyond.
    width: u64,
    /// (bucket number, what its reports hold), oldest first.
    buckets: VecDeque<(u64, Sample)>,
    /// The latest report's slot.
    latest: u64,
}

impl Window {
    fn new(window: Duration) -> Window {
        let slots = (window.as_secs_f64() / REPORT_INTERVAL.as_secs_f64()).ceil() as u64;
        let slots = slots.max(1);
        Window {
            slots,
            width: slots.div_ceil(MAX_BUCKETS),
            buckets: VecDeque::new(),
            latest: 0,
        }
    }

    fn add(&mut self, slot: u64, delta: &StatsDelta, scope: Option<&EntryKey>, latencies: bool) {
        let bucket = slot / self.width;
        match self.buckets.back_mut() {
            // A report out of order joins the latest bucket.
            Some((latest, sample)) if *latest >= bucket => {
                sample.add_delta(delta, scope, latencies)
            }
            _ => {
                let mut sample = Sample::new();
                sample.add_delta(delta, scope, latencies);
                self.buckets.push_back((bucket, sample));
            }
        }
        self.latest = self.latest.max(slot);
        let first = self.first_bucket();
        while self.buckets.front().is_some_and(|&(b, _)| b < first) {
            self.buckets.pop_front();
        }
    }

    /// The oldest bucket wholly inside the window.
    fn first_bucket(&self) -> u64 {
        (self.latest + 1)
            .saturating_sub(self.slots)
            .div_ceil(self.width)
    }

    /// The time the buckets cover, in seconds: the window's length, less
    /// the part of a bucket that has partly left it.
    fn seconds(&self) -> f64 {
        let covered = self.latest + 1 - self.first_bucket() * self.width;
        covered as f64 * REPORT_INTERVAL.as_secs_f64()
    }

    fn sum(&self, latencies: bool) -> Sample {
        let mut sum = Sample::new();
        for (_, sample) in &self.buckets {
            sum.add(sample, latencies);
        }
        sum
    }
}

/// What one condition has observed.
enum Tally {
    /// Everything since the start (no `for`).
    Cumulative(Box<Sample>),
    /// The last `for` of it.
    Window(Window),
}

/// One condition and what it observed.
struct Watch {
    condition: StopCondition,
    tally: Tally,
}

impl Watch {
    fn new(condition: StopCondition) -> Watch {
        let tally = match condition.window {
            Some(window) => Tally::Window(Window::new(window)),
            None => Tally::Cumulative(Box::new(Sample::new())),
        };
        Watch { condition, tally }
    }

    /// The reason to stop, when the condition holds `age` after
    /// observation began.
    fn check(&self, age: Duration, since: &str) -> Option<String> {
        let c = &self.condition;
        let latencies = c.metric.needs_latencies();
        let (measured, over) = match &self.tally {
            // Nothing happened over no time.
            Tally::Cumulative(_) if age.is_zero() => return None,
            Tally::Cumulative(sample) => (c.measure(sample, age.as_secs_f64()), since.to_string()),
            // A window only judges once the run is as old as it is.
            Tally::Window(_) if c.window.is_some_and(|w| age < w) => return None,
            Tally::Window(w) => (
                c.measure(&w.sum(latencies), w.seconds()),
                format!("over the last {}", duration_text(c.window?)),
            ),
        };
        let measured = measured?;
        c.op.holds(measured, c.limit).then(|| {
            format!(
                "{c} ({} = {} {over})",
                c.measured_label(),
                c.format_measured(measured)
            )
        })
    }
}

/// The run's stop conditions, with what each has observed.
pub struct StopConditions {
    watches: Vec<Watch>,
    /// When observation began, into the run: the start, or the latest
    /// delta before the last [`StopConditions::reset`].
    origin: Duration,
    /// The latest delta's time into the run.
    latest: Duration,
    /// When the first delta since `origin` came, into the run: report
    /// slots count from it, so whatever the phase of reports relative to
    /// the run's start, each falls near a whole slot.
    anchor: Option<Duration>,
    /// Whether observation restarted, for the reasons' wording.
    was_reset: bool,
}

impl StopConditions {
    /// Watches `conditions`, in order: the first that holds is the reason.
    pub fn new(conditions: Vec<StopCondition>) -> StopConditions {
        StopConditions {
            watches: conditions.into_iter().map(Watch::new).collect(),
            origin: Duration::ZERO,
            latest: Duration::ZERO,
            anchor: None,
            was_reset: false,
        }
    }

    /// Parses every expression (`--stop-on`, as written) and watches them.
    pub fn parse_all(exprs: &[String]) -> Result<StopConditions, ThresholdError> {
        let conditions = exprs
            .iter()
            .map(|e| StopCondition::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StopConditions::new(conditions))
    }

    /// True when there is no condition to watch.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// Takes in the run's next merged delta, `elapsed` into the run, and
    /// returns the reason to stop when a condition holds: the condition
    /// and what was measured, e.g. `fail_ratio>0.05 for 10s (fail_ratio =
    /// 0.0833 over the last 10s)`.
    ///
    /// Deltas are taken to come once per [`REPORT_INTERVAL`], in order;
    /// several close together (say, one per node) fall in one report's
    /// slot, though conditions are judged after each. A condition with
    /// `for D` measures the last `D` of reports and is only checked once
    /// the run (or the time since [`StopConditions::reset`]) is at least
    /// `D` old; one without, everything since the start. A window longer
    /// than 60 reports moves in steps of `D / 60`, so it covers the last
    /// `D` less up to one step: memory stays at 61 buckets at most.
    pub fn observe(&mut self, delta: &StatsDelta, elapsed: Duration) -> Option<String> {
        self.latest = self.latest.max(elapsed);
        let anchor = *self.anchor.get_or_insert(elapsed);
        let slot = (elapsed.saturating_sub(anchor).as_secs_f64() / REPORT_INTERVAL.as_secs_f64())
            .round() as u64;
        for watch in &mut self.watches {
            let scope = watch.condition.endpoint.as_ref();
            let latencies = watch.condition.metric.needs_latencies();
            match &mut watch.tally {
                Tally::Cumulative(sample) => sample.add_delta(delta, scope, latencies),
                Tally::Window(window) => window.add(slot, delta, scope, latencies),
            }
        }
        let age = elapsed.saturating_sub(self.origin);
        let since = if self.was_reset {
            "since the statistics were reset"
        } else {
            "since the start"
        };
        self.watches.iter().find_map(|w| w.check(age, since))
    }

    /// Forgets everything observed, as when the run clears its statistics;
    /// windows start filling again from the next delta.
    pub fn reset(&mut self) {
        for watch in &mut self.watches {
            *watch = Watch::new(watch.condition.clone());
        }
        self.origin = self.latest;
        self.anchor = None;
        self.was_reset = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blast_proto::CheckDelta;

    fn ok(expr: &str) -> StopCondition {
        StopCondition::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn watch(exprs: &[&str]) -> StopConditions {
        StopConditions::new(exprs.iter().map(|e| ok(e)).collect())
    }

    fn key(method: Method, name: &str) -> EntryKey {
        EntryKey {
            method,
            name: name.into(),
        }
    }

    /// `requests` to `GET name` taking `ms` each, the first `failures` of
    /// them failed.
    fn entry(name: &str, requests: u64, failures: u64, ms: u64) -> EntryDelta {
        let (method, name) = match name.strip_prefix("METRIC ") {
            Some(name) => (Method::Metric, name),
            None => (Method::Get, name),
        };
        let mut e = EntryDelta::new(key(method, name));
        for i in 0..requests {
            e.record(ms * 1000, 0, i < failures);
        }
        e
    }

    fn delta(entries: Vec<EntryDelta>) -> StatsDelta {
        StatsDelta {
            entries,
            ..Default::default()
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_window_judges_only_once_full_and_only_while_it_holds() {
        let mut stop = watch(&["fail_ratio>0.05 for 10s"]);
        // Seconds 1 to 3 fail 60%, then nothing fails.
        let mut reasons = Vec::new();
        for s in 1..=14u64 {
            let failures = if s <= 3 { 60 } else { 0 };
            let d = delta(vec![entry("/", 100, failures, 1)]);
            reasons.push(stop.observe(&d, secs(s as f64)));
        }
        assert!(reasons[..9].iter().all(Option::is_none), "{reasons:?}");
        assert_eq!(
            reasons[9].as_deref(),
            Some("fail_ratio>0.05 for 10s (fail_ratio = 0.1800 over the last 10s)")
        );
        // Windows 2..=11 and 3..=12 still hold, 4..=13 no longer does.
        assert!(reasons[10].as_ref().unwrap().contains("= 0.1200"));
        assert!(reasons[11].as_ref().unwrap().contains("= 0.0600"));
        assert_eq!(reasons[12..], [None, None]);
    }

    #[test]
    fn reports_off_the_second_and_several_per_second_count_once() {
        // Reports at 0.6 s past each second, jittered, and two at a time
        // (two nodes): 10 requests each, 20 a second.
        let mut stop = watch(&["rps<19.9 for 5s", "rps>20.1 for 5s"]);
        for s in 0..30u64 {
            let at = s as f64 + 0.6 + if s % 2 == 0 { 0.03 } else { -0.04 };
            let d = delta(vec![entry("/", 10, 0, 1)]);
            // The first half of a report is judged too, as if whole.
            let _ = stop.observe(&d, secs(at));
            assert_eq!(stop.observe(&d, secs(at + 0.01)), None, "at {at}");
        }
        let Tally::Window(w) = &stop.watches[0].tally else {
            panic!("a window")
        };
        assert_eq!((w.buckets.len(), w.seconds()), (5, 5.0));
    }

    #[test]
    fn rps_below_a_floor_over_a_window_counts_silent_seconds() {
        let mut stop = watch(&["rps<10 for 5s"]);
        for s in 1..=5 {
            let d = delta(vec![entry("/", 20, 0, 1)]);
            assert_eq!(stop.observe(&d, secs(s as f64)), None);
        }
        // 5 a second from now on: the window's mean falls below 10 at the
        // fourth slow second ((20 + 4 × 5) / 5 = 8).
        let mut first = None;
        for s in 6..=12 {
            let d = delta(vec![entry("/", 5, 0, 1)]);
            if let Some(reason) = stop.observe(&d, secs(s as f64)) {
                first.get_or_insert((s, reason));
            }
        }
        assert_eq!(
            first,
            Some((9, "rps<10 for 5s (rps = 8.00/s over the last 5s)".into()))
        );

        // No report for three seconds (a stalled node) still counts as time.
        let mut stop = watch(&["rps<10 for 5s"]);
        for s in 1..=5 {
            let d = delta(vec![entry("/", 20, 0, 1)]);
            assert_eq!(stop.observe(&d, secs(s as f64)), None);
        }
        let reason = stop.observe(&delta(vec![]), secs(9.0)).unwrap();
        assert!(
            reason.ends_with("(rps = 4.00/s over the last 5s)"),
            "{reason}"
        );
    }

    #[test]
    fn endpoint_conditions_look_at_their_endpoint_only() {
        let mut stop = watch(&[
            "GET /items: fail_ratio>0.5",
            "p99>1s",
            "GET /login: fail_ratio>0.5",
        ]);
        // /login fails 60%, the total 6 in 110; a slow custom timing is no
        // request and stays out of the total's p99.
        let d = delta(vec![
            entry("/items", 100, 0, 5),
            entry("/login", 10, 6, 5),
            entry("METRIC checkout", 10, 0, 5000),
        ]);
        assert_eq!(
            stop.observe(&d, secs(1.0)).as_deref(),
            Some("GET /login: fail_ratio>0.5 (fail_ratio of GET /login = 0.6000 since the start)")
        );

        // Latencies of one endpoint over a window, where the aggregated
        // p95 stays at the fast endpoint's 1 ms; a custom timing by name.
        let mut slow = watch(&["GET /slow: p95>2s for 3s"]);
        let mut total = watch(&["p95>2s for 3s"]);
        let mut checkout = watch(&["METRIC checkout: max>=3s"]);
        let mut reasons = Vec::new();
        for s in 1..=3 {
            let d = delta(vec![
                entry("/fast", 1000, 0, 1),
                entry("/slow", 10, 0, 2500),
                entry("METRIC checkout", 1, 0, s * 1000),
            ]);
            let at = secs(s as f64);
            assert_eq!(total.observe(&d, at), None);
            reasons.push((slow.observe(&d, at), checkout.observe(&d, at)));
        }
        assert_eq!(reasons[..2], [(None, None), (None, None)]);
        let (slow, checkout) = &reasons[2];
        assert_eq!(
            slow.as_deref(),
            Some("GET /slow: p95>2s for 3s (p95 of GET /slow = 2501 ms over the last 3s)")
        );
        assert_eq!(
            checkout.as_deref(),
            Some("METRIC checkout: max>=3s (max of METRIC checkout = 3000 ms since the start)")
        );
    }

    #[test]
    fn dropped_iterations_are_counted_over_the_window_or_the_run() {
        let mut stop = watch(&["dropped>100 for 5s"]);
        let dropped = |n| StatsDelta {
            dropped: n,
            ..Default::default()
        };
        for s in 1..=4 {
            assert_eq!(stop.observe(&dropped(30), secs(s as f64)), None);
        }
        assert_eq!(
            stop.observe(&dropped(30), secs(5.0)).as_deref(),
            Some("dropped>100 for 5s (dropped = 150 over the last 5s)")
        );
        let mut stop = watch(&["dropped>100"]);
        let reasons: Vec<_> = (1..=4)
            .map(|s| stop.observe(&dropped(30), secs(s as f64)))
            .collect();
        assert_eq!(reasons[..3], [None, None, None]);
        assert_eq!(
            reasons[3].as_deref(),
            Some("dropped>100 (dropped = 120 since the start)")
        );
    }

    #[test]
    fn without_for_everything_since_the_start_counts() {
        // p95 since the start: 95 fast seconds hold it down until slow
        // ones pass 5% of all requests.
        let mut stop = watch(&["p95>500ms"]);
        for s in 1..=19 {
            let d = delta(vec![entry("/", 100, 0, 100)]);
            assert_eq!(stop.observe(&d, secs(s as f64)), None);
        }
        let slow = || delta(vec![entry("/", 100, 0, 1000)]);
        assert_eq!(stop.observe(&slow(), secs(20.0)), None, "5% slow");
        assert_eq!(
            stop.observe(&slow(), secs(21.0)).as_deref(),
            Some("p95>500ms (p95 = 1000 ms since the start)")
        );
        // Rates are over the time since the start.
        let mut stop = watch(&["rps<10"]);
        let d = delta(vec![entry("/", 50, 0, 1)]);
        assert_eq!(stop.observe(&d, secs(2.0)), None);
        assert_eq!(stop.observe(&delta(vec![]), secs(5.0)), None, "10/s");
        assert_eq!(
            stop.observe(&delta(vec![]), secs(6.0)).as_deref(),
            Some("rps<10 (rps = 8.33/s since the start)")
        );
        // Checks too: 8 of 10 passed.
        let mut stop = watch(&["checks<0.9"]);
        let d = StatsDelta {
            checks: vec![CheckDelta {
                name: "ok".into(),
                passed: 8,
                failed: 2,
            }],
            ..Default::default()
        };
        assert_eq!(
            stop.observe(&d, secs(1.0)).as_deref(),
            Some("checks<0.9 (checks = 0.8000 since the start)")
        );
    }

    #[test]
    fn reset_forgets_and_windows_fill_again() {
        let mut stop = watch(&["fail_ratio>0.05 for 5s", "fail_rps>=50"]);
        let failing = || delta(vec![entry("/", 100, 10, 1)]);
        for s in 1..=4 {
            assert_eq!(stop.observe(&failing(), secs(s as f64)), None);
        }
        assert!(stop.observe(&failing(), secs(5.0)).is_some());
        stop.reset();
        // 5 s since the reset before the window judges again.
        for s in 6..=9 {
            assert_eq!(stop.observe(&failing(), secs(s as f64)), None);
        }
        assert!(stop.observe(&failing(), secs(10.0)).is_some());
        // Cumulative conditions count from the reset: 50 failures in 1 s.
        let mut stop = watch(&["fail_rps>=50"]);
        let d = delta(vec![entry("/", 100, 50, 1)]);
        assert_eq!(stop.observe(&d, secs(10.0)), None, "5/s since the start");
        stop.reset();
        assert_eq!(
            stop.observe(&d, secs(11.0)).as_deref(),
            Some("fail_rps>=50 (fail_rps = 50.00/s since the statistics were reset)")
        );
    }

    #[test]
    fn a_long_window_keeps_a_bounded_number_of_buckets() {
        let mut stop = watch(&["p99>1s for 10m"]);
        for s in 1..=1200 {
            let d = delta(vec![entry("/", 1, 0, 1)]);
            assert_eq!(stop.observe(&d, secs(s as f64)), None);
        }
        let Tally::Window(w) = &stop.watches[0].tally else {
            panic!("a window")
        };
        assert!(
            w.buckets.len() as u64 <= MAX_BUCKETS + 1,
            "{}",
            w.buckets.len()
        );
        let seconds = w.seconds();
        assert!((591.0..=600.0).contains(&seconds), "{seconds}");
        let requests = w.sum(false).requests.requests;
        assert_eq!(requests as f64, seconds);
    }

    #[test]
    fn the_grammar_adds_dropped_and_a_window_to_thresholds() {
        let c = ok("GET /items/:id: p99>1s for 30s");
        assert_eq!(c.endpoint, Some(key(Method::Get, "/items/:id")));
        assert_eq!(c.metric, StopMetric::Stat(Metric::Percentile(99.0)));
        assert_eq!((c.op, c.limit), (Op::Gt, 1000.0));
        assert_eq!(c.window, Some(Duration::from_secs(30)));
        let c = ok("dropped>=100");
        assert_eq!(
            (c.metric, c.op, c.limit),
            (StopMetric::Dropped, Op::Ge, 100.0)
        );
        assert_eq!(c.window, None);
    }

    #[test]
    fn display_normalizes_and_parses_back() {
        let cases = [
            ("fail_ratio>0.05 for 10s", "fail_ratio>0.05 for 10s"),
            ("  p95 > 2000ms  for  30s ", "p95>2s for 30s"),
            ("rps<10 for 5", "rps<10 for 5s"),
            ("get /login: FAIL_RATIO>50%", "GET /login: fail_ratio>0.5"),
            ("dropped>=100 FOR 1m30s", "dropped>=100 for 1m30s"),
            ("p99.9>250us", "p99.9>0.25ms"),
            ("avg>1.5s for 2m", "avg>1500ms for 2m"),
            ("checks<99% for 3600", "checks<0.99 for 1h"),
            ("METRIC checkout: p95>2s", "METRIC checkout: p95>2s"),
            (
                "GET /search for x: rps<1 for 10s",
                "GET /search for x: rps<1 for 10s",
            ),
            ("GET /a: b: fail_rps>=3/s", "GET /a: b: fail_rps>=3"),
        ];
        for (expr, normalized) in cases {
            let c = ok(expr);
            assert_eq!(c.to_string(), normalized, "{expr}");
            assert_eq!(ok(normalized), c, "{expr}");
        }
    }

    /// Each bad expression, the part the error points at, and words the
    /// message must hold.
    #[test]
    fn bad_expressions_point_at_the_bad_part() {
        let cases: &[(&str, &str, &str)] = &[
            ("fail_ratio>>1", ">>", "unknown operator"),
            (
                "fail_ratio 0.05 for 10s",
                "fail_ratio 0.05",
                "no comparison",
            ),
            ("fail_ratio>0.05 for 0s", "0s", "at least 1s"),
            ("fail_ratio>0.05 for 0", "0", "at least 1s"),
            ("fail_ratio>0.05 for 500ms", "500ms", "at least 1s"),
            ("fail_ratio>0.05 for 1500ms", "1500ms", "whole number"),
            ("fail_ratio>0.05 for 2.5", "2.5", "whole number"),
            ("fail_ratio>0.05 for soon", "soon", "not a duration"),
            ("fail_ratio>0.05 for -3", "-3", "not a duration"),
            ("fail_ratio>0.05 for", "for", "no duration"),
            ("for 10s", "for", "no condition"),
            ("GET /a: for 10s", "for", "no condition"),
            ("latency>1s for 10s", "latency", "unknown metric"),
            ("droped>1", "droped", "dropped"),
            ("<3 for 10s", "<", "no metric"),
            ("p95> for 10s", ">", "no value"),
            ("dropped>", ">", "no value"),
            ("p95>2xs for 10s", "xs", "unknown unit"),
            ("fail_ratio>2 for 10s", "2", "ratio from 0 to 1"),
            ("dropped>1.5", "1.5", "whole number"),
            ("dropped>10ms for 5s", "10ms", "whole number"),
            ("GET /x: dropped>10", "GET /x", "leave the endpoint out"),
            (
                "GET /x: checks<0.9 for 5s",
                "GET /x",
                "leave the endpoint out",
            ),
            ("GET /x:p95>1s for 5s", "GET /x:p95", "separate an endpoint"),
            ("FETCH /x: p95>1s", "FETCH", "unknown method"),
            ("p95>1sfor 10s", "sfor 10s", "unknown unit"),
            ("", "", "empty"),
        ];
        for &(expr, part, word) in cases {
            let e = StopCondition::parse(expr).expect_err(expr);
            assert_eq!(&expr[e.at.clone()], part, "{expr}: {e}");
            assert!(e.message.contains(word), "{expr}: {e}");
            assert_eq!(e.expr, expr);
        }
    }

    #[test]
    fn errors_name_the_flag_and_the_expression() {
        let e = StopCondition::parse("fail_ratio>>1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad --stop-on \"fail_ratio>>1\": unknown operator \">>\": use <, <=, > or >=\n    fail_ratio>>1\n              ^^"
        );
        let e = StopConditions::parse_all(&["p95>1s".into(), "p95>1s for 0s".into()])
            .err()
            .unwrap();
        assert_eq!(e.expr, "p95>1s for 0s");
        assert!(
            e.to_string()
                .starts_with("bad --stop-on \"p95>1s for 0s\": the window must last at least 1s"),
            "{e}"
        );
        let e = StopCondition::parse("lat>1").unwrap_err();
        assert!(e.message.ends_with("fail_rps, checks or dropped"), "{e}");
    }
}
