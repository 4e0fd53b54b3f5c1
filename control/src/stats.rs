//! The run's statistics, as the controller keeps them: totals since the
//! start (or since `--reset-stats` cleared them), one point per report for
//! history, and a rolling window for the "current" figures the live table
//! shows.

use std::collections::{BTreeMap, VecDeque};

use blast_proto::{
    CheckDelta, EntryDelta, EntryKey, FailureDelta, FailureKind, LatencyHistogram,
    ScriptErrorDelta, StatsDelta, merge_checks, merge_errors, merge_failures, new_histogram,
};

/// How far back "current" rates and percentiles look, in milliseconds.
const WINDOW_MS: u64 = 10_000;

/// Busy ratio above which a shard is taken to be saturated.
pub const BUSY_THRESHOLD: f64 = 0.9;

/// Consecutive busy reports after which the run warns.
pub const BUSY_REPORTS: u32 = 3;

/// One report's worth of run-wide figures, for history.
#[derive(Clone, Debug)]
pub struct HistoryPoint {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Users at that time.
    pub users: u64,
    /// Requests in the report.
    pub requests: u64,
    /// Failures in the report.
    pub failures: u64,
    /// Busiest shard's busy ratio.
    pub busy: f64,
    /// Response-time percentiles p50, p95 and p99 of the report's requests,
    /// in milliseconds (corrected for coordinated omission); `None` when it
    /// had none.
    pub percentiles_ms: Option<[f64; 3]>,
    /// Task iterations completed in the report.
    pub iterations: u64,
    /// Open-model iterations dropped in the report.
    pub dropped: u64,
    /// p99 of the report's generator lateness, in milliseconds; `None`
    /// when nothing was scheduled.
    pub lateness_p99_ms: Option<f64>,
}

/// A rolling window entry.
struct WindowSlice {
    at_ms: u64,
    entries: Vec<EntryDelta>,
}

/// What the generator's health looked like over the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// Highest busy ratio any shard reported.
    pub max_busy: f64,
    /// Reports in which a shard was above the threshold.
    pub busy_reports: u64,
    /// Whether the generator was saturated long enough to warn.
    pub saturated: bool,
    /// Current run of consecutive busy reports.
    streak: u32,
}

/// Whether an entry counts requests (custom `metric()` timings do not).
fn is_request(entry: &EntryDelta) -> bool {
    entry.key.method != blast_proto::Method::Metric
}

/// p50, p95 and p99 in milliseconds of the requests in `entries`.
fn report_percentiles(entries: &[EntryDelta]) -> Option<[f64; 3]> {
    let mut all = new_histogram();
    for e in entries.iter().filter(|e| is_request(e)) {
        let _ = all.add(&e.latency);
    }
    if all.is_empty() {
        return None;
    }
    Some([0.5, 0.95, 0.99].map(|q| all.value_at_quantile(q) as f64 / 1000.0))
}

/// Everything the controller knows about the run's requests.
pub struct RunStats {
    totals: BTreeMap<EntryKey, EntryDelta>,
    failures: Vec<FailureDelta>,
    errors: Vec<ScriptErrorDelta>,
    checks: Vec<CheckDelta>,
    iterations: u64,
    dropped: u64,
    /// When the first and the last report holding a dropped iteration were
    /// cut, in milliseconds since the Unix epoch.
    dropped_seen_ms: Option<(u64, u64)>,
    lateness: LatencyHistogram,
    history: Vec<HistoryPoint>,
    window: VecDeque<WindowSlice>,
    users: u64,
    health: Health,
    /// Next expected sequence number per source.
    expected: BTreeMap<u32, u64>,
    warnings: Vec<String>,
}

impl Default for RunStats {
    fn default() -> RunStats {
        RunStats {
            totals: BTreeMap::new(),
            failures: Vec::new(),
            errors: Vec::new(),
            checks: Vec::new(),
            iterations: 0,
            dropped: 0,
            dropped_seen_ms: None,
            lateness: new_histogram(),
            history: Vec::new(),
            window: VecDeque::new(),
            users: 0,
            health: Health::default(),
            expected: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }
}

impl RunStats {
    /// Merges one node delta. Returns a warning when the delta is out of
    /// sequence (merged anyway, and reported, never silently).
    pub fn merge(&mut self, delta: &StatsDelta) -> Option<String> {
        let expected = self.expected.entry(delta.source).or_insert(0);
        let warning = (delta.seq != *expected).then(|| {
            format!(
                "report {} from node {} arrived where {} was due: a report was lost or repeated",
                delta.seq, delta.source, expected
            )
        });
        *expected = delta.seq + 1;
        if let Some(w) = &warning {
            self.warnings.push(w.clone());
        }
        for entry in &delta.entries {
            self.totals
                .entry(entry.key.clone())
                .and_modify(|t| t.merge(entry))
                .or_insert_with(|| entry.clone());
        }
        merge_failures(&mut self.failures, &delta.failures);
        merge_errors(&mut self.errors, &delta.errors);
        merge_checks(&mut self.checks, &delta.checks);
        self.iterations += delta.iterations;
        self.dropped += delta.dropped;
        if delta.dropped > 0 {
            let (first, last) = self
                .dropped_seen_ms
                .get_or_insert((delta.at_ms, delta.at_ms));
            *first = (*first).min(delta.at_ms);
            *last = (*last).max(delta.at_ms);
        }
        let _ = self.lateness.add(&delta.lateness);

        if !delta.last {
            self.users = delta.users;
        }
        let requests = delta
            .entries
            .iter()
            .filter(|e| is_request(e))
            .map(|e| e.requests)
            .sum();
        let failures = delta
            .entries
            .iter()
            .filter(|e| is_request(e))
            .map(|e| e.failures)
            .sum();
        self.history.push(HistoryPoint {
            at_ms: delta.at_ms,
            users: delta.users,
            requests,
            failures,
            busy: delta.busy,
            percentiles_ms: report_percentiles(&delta.entries),
            iterations: delta.iterations,
            dropped: delta.dropped,
            lateness_p99_ms: (!delta.lateness.is_empty())
                .then(|| delta.lateness.value_at_quantile(0.99) as f64 / 1000.0),
        });
        self.track_health(delta.busy, delta.last);
        self.window.push_back(WindowSlice {
            at_ms: delta.at_ms,
            entries: delta.entries.clone(),
        });
        while self
            .window
            .front()
            .is_some_and(|s| s.at_ms + WINDOW_MS < delta.at_ms)
        {
            self.window.pop_front();
        }
        warning
    }

    /// Clears what the run measured so far, for `--reset-stats` (as
    /// Locust's `reset_stats`): the totals per entry, failures, script
    /// errors, checks, iterations, dropped iterations, generator lateness
    /// and the rolling window. The history, the generator's health, the
    /// user count, the sequence tracking and the warnings stay: they
    /// describe the run, not its measurement.
    pub fn reset(&mut self) {
        self.totals.clear();
        self.failures.clear();
        self.errors.clear();
        self.checks.clear();
        self.iterations = 0;
        self.dropped = 0;
        self.dropped_seen_ms = None;
        self.lateness.reset();
        self.window.clear();
    }

    fn track_health(&mut self, busy: f64, last: bool) {
        if last {
            return;
        }
        let h = &mut self.health;
        h.max_busy = h.max_busy.max(busy);
        if busy > BUSY_THRESHOLD {
            h.busy_reports += 1;
            h.streak += 1;
            if h.streak >= BUSY_REPORTS {
                h.saturated = true;
            }
        } else {
            h.streak = 0;
        }
    }

    /// Script checks so far, by name.
    pub fn checks(&self) -> Vec<CheckDelta> {
        let mut checks = self.checks.clone();
        checks.sort_by(|a, b| a.name.cmp(&b.name));
        checks
    }

    /// True once, when the generator has just been found saturated.
    pub fn just_saturated(&self) -> bool {
        self.health.saturated && self.health.streak == BUSY_REPORTS
    }

    /// Generator health so far.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Users at the last report.
    pub fn users(&self) -> u64 {
        self.users
    }

    /// Totals per entry, in (method, name) order.
    pub fn totals(&self) -> impl Iterator<Item = &EntryDelta> {
        self.totals.values()
    }

    /// All entries merged into one.
    pub fn aggregated(&self) -> EntryDelta {
        let mut all = EntryDelta::new(EntryKey {
            method: blast_proto::Method::Get,
            name: "Aggregated".to_string(),
        });
        // Custom timings (`metric()`) are not requests: they have their own
        // rows but stay out of the total, which counts what servers saw.
        for e in self.totals.values().filter(|e| is_request(e)) {
            all.merge(e);
        }
        all
    }

    /// Failures so far, most frequent first.
    pub fn failures(&self) -> Vec<FailureDelta> {
        let mut f = self.failures.clone();
        f.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.key, a.kind).cmp(&(&b.key, b.kind)))
        });
        f
    }

    /// Script errors so far, most frequent first.
    pub fn errors(&self) -> Vec<ScriptErrorDelta> {
        let mut e = self.errors.clone();
        e.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.location.cmp(&b.location))
        });
        e
    }

    /// Task iterations completed so far.
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    /// Open-model iterations dropped so far (no user came free in time).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// When the first and the last report holding a dropped iteration were
    /// cut, in milliseconds since the Unix epoch; `None` before any drop.
    pub fn dropped_seen_ms(&self) -> Option<(u64, u64)> {
        self.dropped_seen_ms
    }

    /// Generator lateness so far, in microseconds: how late each scheduled
    /// start began. Empty when nothing was scheduled.
    pub fn lateness(&self) -> &LatencyHistogram {
        &self.lateness
    }

    /// Whether any latency so far was corrected for coordinated omission
    /// (timed from when the request was due, not when it was sent).
    pub fn corrected(&self) -> bool {
        self.totals.values().any(|e| e.uncorrected.is_some())
    }

    /// Per-report history.
    pub fn history(&self) -> &[HistoryPoint] {
        &self.history
    }

    /// Sequence warnings so far.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Current figures for `key` (or every entry when `None`): requests per
    /// second over the window and the window's latency histogram.
    pub fn current(&self, key: Option<&EntryKey>) -> (f64, LatencyHistogram) {
        let mut hist = new_histogram();
        let mut requests = 0;
        for slice in &self.window {
            for e in slice
                .entries
                .iter()
                .filter(|e| key.map_or(is_request(e), |k| &e.key == k))
            {
                let _ = hist.add(&e.latency);
                requests += e.requests;
            }
        }
        (
            requests as f64 * 1000.0 / self.window_span_ms() as f64,
            hist,
        )
    }

    /// Failures per second for `key` (or every entry when `None`) over the
    /// same window as [`RunStats::current`].
    pub fn current_failures(&self, key: Option<&EntryKey>) -> f64 {
        let failures: u64 = self
            .window
            .iter()
            .flat_map(|slice| &slice.entries)
            .filter(|e| key.map_or(is_request(e), |k| &e.key == k))
            .map(|e| e.failures)
            .sum();
        failures as f64 * 1000.0 / self.window_span_ms() as f64
    }

    /// The time the window covers, in milliseconds (at least 1).
    fn window_span_ms(&self) -> u64 {
        let span_ms = match (self.window.front(), self.window.back()) {
            // The first slice covers the interval before its cut.
            (Some(first), Some(last)) if self.window.len() > 1 => {
                let per = (last.at_ms - first.at_ms) / (self.window.len() as u64 - 1);
                last.at_ms - first.at_ms + per
            }
            _ => 1000,
        };
        span_ms.max(1)
    }

    /// Number of failures of `kind` so far, across entries.
    pub fn failures_of(&self, kind: FailureKind) -> u64 {
        self.failures
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blast_proto::Method;

    fn delta(seq: u64, at_ms: u64, n: u64, busy: f64) -> StatsDelta {
        let mut e = EntryDelta::new(EntryKey {
            method: Method::Get,
            name: "/".into(),
        });
        for i in 0..n {
            e.record(1000 + i, 1, false);
        }
        StatsDelta {
            seq,
            at_ms,
            entries: vec![e],
            users: 5,
            busy,
            ..Default::default()
        }
    }

    #[test]
    fn totals_history_window_and_health() {
        let mut s = RunStats::default();
        for i in 0..20 {
            assert!(s.merge(&delta(i, 1000 * (i + 1), 10, 0.95)).is_none());
        }
        assert_eq!(s.aggregated().requests, 200);
        assert_eq!(s.history().len(), 20);
        let (rps, hist) = s.current(None);
        assert!((rps - 10.0).abs() < 0.01, "{rps}");
        assert_eq!(hist.len(), 110);
        assert!(s.health().saturated);
        assert_eq!(s.health().busy_reports, 20);
        // A gap is reported, and the counts still merge.
        assert!(s.merge(&delta(25, 30_000, 1, 0.1)).is_some());
        assert_eq!(s.aggregated().requests, 201);
        assert_eq!(s.warnings().len(), 1);
    }
    #[test]
    fn current_failures_and_each_reports_percentiles() {
        let mut e = EntryDelta::new(EntryKey {
            method: Method::Get,
            name: "/".into(),
        });
        for i in 1..=100 {
            e.record(i * 1000, 0, i % 10 == 0);
        }
        let mut s = RunStats::default();
        s.merge(&StatsDelta {
            entries: vec![e],
            ..Default::default()
        });
        s.merge(&StatsDelta {
            seq: 1,
            at_ms: 1000,
            ..Default::default()
        });
        // Two reports, one second apart: 10 failures over 2 s.
        assert_eq!(s.current_failures(None), 5.0);
        let [p50, p95, p99] = s.history()[0].percentiles_ms.unwrap();
        for (got, want) in [(p50, 50.0), (p95, 95.0), (p99, 99.0)] {
            assert!((got - want).abs() < want * 0.001, "{got} vs {want}");
        }
        assert_eq!(
            s.history()[1].percentiles_ms,
            None,
            "no request, no percentile"
        );
    }

    /// A delta with `iterations`, `dropped` and lateness samples (µs).
    fn open_delta(
        seq: u64,
        at_ms: u64,
        iterations: u64,
        dropped: u64,
        late_us: &[u64],
    ) -> StatsDelta {
        let mut d = delta(seq, at_ms, 2, 0.2);
        d.iterations = iterations;
        d.dropped = dropped;
        for &us in late_us {
            d.lateness.record(us).unwrap();
        }
        d
    }

    #[test]
    fn iterations_drops_and_lateness_add_up_and_reach_the_history() {
        let mut s = RunStats::default();
        s.merge(&open_delta(0, 1000, 10, 0, &[100, 200]));
        s.merge(&open_delta(1, 2000, 7, 3, &[5_000]));
        s.merge(&open_delta(2, 3000, 4, 1, &[]));
        assert_eq!((s.iterations(), s.dropped()), (21, 4));
        assert_eq!(s.dropped_seen_ms(), Some((2000, 3000)));
        assert_eq!(s.lateness().len(), 3);
        // Histograms keep 3 significant digits.
        assert!(s.lateness().equivalent(s.lateness().max(), 5_000));
        let h = s.history();
        assert_eq!(
            h.iter()
                .map(|p| (p.iterations, p.dropped))
                .collect::<Vec<_>>(),
            [(10, 0), (7, 3), (4, 1)]
        );
        assert_eq!(h[0].lateness_p99_ms, Some(0.2));
        assert!((h[1].lateness_p99_ms.unwrap() - 5.0).abs() < 0.005);
        assert_eq!(h[2].lateness_p99_ms, None, "nothing was scheduled");
        assert!(!s.corrected());
    }

    #[test]
    fn corrected_once_any_latency_was() {
        let mut s = RunStats::default();
        s.merge(&delta(0, 1000, 3, 0.1));
        assert!(!s.corrected());
        let mut d = delta(1, 2000, 0, 0.1);
        d.entries[0].record_corrected(9_000, 1_000, 0, false);
        s.merge(&d);
        assert!(s.corrected());
        let all = s.aggregated();
        assert!(all.latency.equivalent(all.latency.max(), 9_000));
        assert_eq!(all.uncorrected_latency().max(), 1_002);
    }

    #[test]
    fn reset_clears_the_measurements_and_keeps_the_run() {
        let mut s = RunStats::default();
        let mut first = open_delta(0, 1000, 5, 2, &[300]);
        first.failures.push(FailureDelta {
            key: first.entries[0].key.clone(),
            kind: FailureKind::Status(500),
            message: String::new(),
            count: 1,
            first_seen_ms: 1000,
            last_seen_ms: 1000,
        });
        first.errors.push(ScriptErrorDelta {
            message: "boom".into(),
            location: "s.rhai:1:1".into(),
            count: 1,
            first_seen_ms: 1000,
            last_seen_ms: 1000,
        });
        first.checks.push(CheckDelta {
            name: "ok".into(),
            passed: 1,
            failed: 0,
        });
        first.busy = 0.95;
        s.merge(&first);
        // A gap, warned about before the reset.
        assert!(s.merge(&open_delta(2, 2000, 1, 0, &[])).is_some());
        s.reset();
        assert_eq!(s.totals().count(), 0);
        assert_eq!(s.aggregated().requests, 0);
        assert!(s.failures().is_empty() && s.errors().is_empty() && s.checks().is_empty());
        assert_eq!((s.iterations(), s.dropped()), (0, 0));
        assert_eq!(s.dropped_seen_ms(), None);
        assert!(s.lateness().is_empty());
        let (rps, window) = s.current(None);
        assert_eq!((rps, window.len()), (0.0, 0));
        // Kept: history, health, users, sequence tracking and warnings.
        assert_eq!(s.history().len(), 2);
        assert_eq!(s.health().max_busy, 0.95);
        assert_eq!(s.users(), 5);
        assert_eq!(s.warnings().len(), 1);
        assert!(s.merge(&open_delta(3, 3000, 2, 1, &[100])).is_none());
        assert_eq!((s.iterations(), s.dropped()), (2, 1));
        assert_eq!(s.aggregated().requests, 2);
    }
}
