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
#[path = "stop_on_tests.rs"]
mod tests;
