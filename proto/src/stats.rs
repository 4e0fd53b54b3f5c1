//! The statistics snapshot a shard (and later a node) reports every interval.
//!
//! A delta holds what happened since the previous one, so deltas add up:
//! merging every delta a run produced gives the run's totals exactly, and
//! histograms merge without loss.

use std::collections::HashMap;

use hdrhistogram::Histogram;

use crate::{FailureKind, Method};

/// Latency histogram, in microseconds, 3 significant digits, auto-resizing.
pub type LatencyHistogram = Histogram<u64>;

/// A fresh, empty latency histogram.
pub fn new_histogram() -> LatencyHistogram {
    // 3 significant digits: every recorded value is kept within 0.1%.
    Histogram::new(3).expect("3 significant digits is a valid histogram precision")
}

/// One row of the statistics: a request type and a name that groups URLs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    /// The request's method.
    pub method: Method,
    /// The name requests are grouped under (the URL path unless the script
    /// gives one).
    pub name: String,
}

/// What one entry recorded during one interval.
#[derive(Clone, Debug)]
pub struct EntryDelta {
    /// Which entry.
    pub key: EntryKey,
    /// Latency of every request, failed or not, in microseconds. Where a
    /// request was due earlier than it was sent (an open-model iteration
    /// that started late, a paced user behind its schedule), this is the
    /// corrected latency, timed from when it was due (coordinated
    /// omission).
    pub latency: LatencyHistogram,
    /// The uncorrected latencies (timed from when each request was sent),
    /// kept only once one differed from its corrected value; `None` means
    /// they equal [`EntryDelta::latency`].
    pub uncorrected: Option<LatencyHistogram>,
    /// Requests completed (answered or failed).
    pub requests: u64,
    /// Of those, failed.
    pub failures: u64,
    /// Response body bytes received.
    pub bytes: u64,
    /// Exact sum of latencies in microseconds, for an exact average.
    pub latency_sum_us: u64,
    /// Exact sum of uncorrected latencies in microseconds.
    pub uncorrected_sum_us: u64,
}

impl EntryDelta {
    /// An empty delta for `key`.
    pub fn new(key: EntryKey) -> EntryDelta {
        EntryDelta {
            key,
            latency: new_histogram(),
            uncorrected: None,
            requests: 0,
            failures: 0,
            bytes: 0,
            latency_sum_us: 0,
            uncorrected_sum_us: 0,
        }
    }

    /// Records one request that was sent when it was due.
    pub fn record(&mut self, latency_us: u64, bytes: u64, failed: bool) {
        self.record_corrected(latency_us, latency_us, bytes, failed);
    }

    /// Records one request timed both from when it was due (`corrected_us`)
    /// and from when it was sent (`uncorrected_us`).
    pub fn record_corrected(
        &mut self,
        corrected_us: u64,
        uncorrected_us: u64,
        bytes: u64,
        failed: bool,
    ) {
        if corrected_us != uncorrected_us && self.uncorrected.is_none() {
            // Until now both were the same.
            self.uncorrected = Some(self.latency.clone());
        }
        // Auto-resizing histograms only refuse values beyond u64's range.
        let _ = self.latency.record(corrected_us.max(1));
        if let Some(u) = &mut self.uncorrected {
            let _ = u.record(uncorrected_us.max(1));
        }
        self.requests += 1;
        self.failures += u64::from(failed);
        self.bytes += bytes;
        self.latency_sum_us += corrected_us;
        self.uncorrected_sum_us += uncorrected_us;
    }

    /// The uncorrected latencies (from when each request was sent).
    pub fn uncorrected_latency(&self) -> &LatencyHistogram {
        self.uncorrected.as_ref().unwrap_or(&self.latency)
    }

    /// Adds `other`'s counts to this one's.
    pub fn merge(&mut self, other: &EntryDelta) {
        if self.uncorrected.is_none() && other.uncorrected.is_some() {
            self.uncorrected = Some(self.latency.clone());
        }
        if let Some(u) = &mut self.uncorrected {
            let _ = u.add(other.uncorrected_latency());
        }
        // Both histograms auto-resize, so adding cannot run out of range.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.failures += other.failures;
        self.bytes += other.bytes;
        self.latency_sum_us += other.latency_sum_us;
        self.uncorrected_sum_us += other.uncorrected_sum_us;
    }
}

/// Failures of one kind for one entry during an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureDelta {
    /// Which entry failed.
    pub key: EntryKey,
    /// Why.
    pub kind: FailureKind,
    /// The script's reason for [`FailureKind::Script`]; empty otherwise.
    pub message: String,
    /// How many times.
    pub count: u64,
    /// When first seen, in milliseconds since the Unix epoch.
    pub first_seen_ms: u64,
    /// When last seen, in milliseconds since the Unix epoch.
    pub last_seen_ms: u64,
}

impl FailureDelta {
    /// The text of the error, as a report shows it.
    pub fn error_text(&self) -> String {
        if self.message.is_empty() {
            self.kind.to_string()
        } else {
            self.message.clone()
        }
    }
}

/// A script error (an exception in a task) during an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptErrorDelta {
    /// The error message.
    pub message: String,
    /// Where, as `file:line:column`.
    pub location: String,
    /// How many times.
    pub count: u64,
    /// When first seen, in milliseconds since the Unix epoch.
    pub first_seen_ms: u64,
    /// When last seen, in milliseconds since the Unix epoch.
    pub last_seen_ms: u64,
}

/// The outcomes of one named script check (`check(cond, name)`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckDelta {
    /// The check's name.
    pub name: String,
    /// Times it held.
    pub passed: u64,
    /// Times it did not.
    pub failed: u64,
}

/// Adds `more` checks into `into`, by name.
pub fn merge_checks(into: &mut Vec<CheckDelta>, more: &[CheckDelta]) {
    for check in more {
        match into.iter_mut().find(|c| c.name == check.name) {
            Some(c) => {
                c.passed += check.passed;
                c.failed += check.failed;
            }
            None => into.push(check.clone()),
        }
    }
}

/// Everything a shard or node recorded since its previous delta.
#[derive(Clone, Debug)]
pub struct StatsDelta {
    /// Who sent it (a shard index, or a node id).
    pub source: u32,
    /// Numbered from 0 per source with no gaps, so a lost or repeated delta
    /// shows.
    pub seq: u64,
    /// When the delta was cut, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Per-entry counts and latencies.
    pub entries: Vec<EntryDelta>,
    /// Failures by entry and kind.
    pub failures: Vec<FailureDelta>,
    /// Script errors by message and location.
    pub errors: Vec<ScriptErrorDelta>,
    /// Script checks by name.
    pub checks: Vec<CheckDelta>,
    /// Users alive at the time of the cut.
    pub users: u64,
    /// Fraction of the interval the sender was busy (0.0 to 1.0); for a node,
    /// the busiest of its shards.
    pub busy: f64,
    /// Set on the last delta a source sends in a run.
    pub last: bool,
    /// Task iterations completed (any outcome).
    pub iterations: u64,
    /// Open-model iterations dropped: no user came free in time.
    pub dropped: u64,
    /// Generator lateness in microseconds: how late each scheduled start
    /// (an open-model arrival, a paced user's next task) actually began,
    /// as the sender's timers saw it. High values mean a saturated
    /// generator, not a slow target.
    pub lateness: LatencyHistogram,
}

impl Default for StatsDelta {
    fn default() -> StatsDelta {
        StatsDelta {
            source: 0,
            seq: 0,
            at_ms: 0,
            entries: Vec::new(),
            failures: Vec::new(),
            errors: Vec::new(),
            checks: Vec::new(),
            users: 0,
            busy: 0.0,
            last: false,
            iterations: 0,
            dropped: 0,
            lateness: new_histogram(),
        }
    }
}

impl StatsDelta {
    /// True when the delta holds no request, failure or error.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.iterations == 0
            && self.dropped == 0
            && self.failures.is_empty()
            && self.errors.is_empty()
            && self.checks.is_empty()
    }

    /// Adds the counts of `other` to this delta (entries, failures and
    /// errors by key). Users add up, busy keeps the maximum; source, seq and
    /// times are the caller's to set.
    pub fn merge(&mut self, other: &StatsDelta) {
        let mut index: HashMap<EntryKey, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.clone(), i))
            .collect();
        for entry in &other.entries {
            match index.get(&entry.key) {
                Some(&i) => self.entries[i].merge(entry),
                None => {
                    index.insert(entry.key.clone(), self.entries.len());
                    self.entries.push(entry.clone());
                }
            }
        }
        merge_failures(&mut self.failures, &other.failures);
        merge_errors(&mut self.errors, &other.errors);
        merge_checks(&mut self.checks, &other.checks);
        self.users += other.users;
        self.busy = self.busy.max(other.busy);
        self.iterations += other.iterations;
        self.dropped += other.dropped;
        let _ = self.lateness.add(&other.lateness);
    }
}

/// Adds `more` failures into `into`, by (entry, kind, message).
pub fn merge_failures(into: &mut Vec<FailureDelta>, more: &[FailureDelta]) {
    for failure in more {
        match into.iter_mut().find(|f| {
            f.key == failure.key && f.kind == failure.kind && f.message == failure.message
        }) {
            Some(f) => {
                f.count += failure.count;
                f.first_seen_ms = f.first_seen_ms.min(failure.first_seen_ms);
                f.last_seen_ms = f.last_seen_ms.max(failure.last_seen_ms);
            }
            None => into.push(failure.clone()),
        }
    }
}

/// Adds `more` script errors into `into`, by (message, location).
pub fn merge_errors(into: &mut Vec<ScriptErrorDelta>, more: &[ScriptErrorDelta]) {
    for error in more {
        match into
            .iter_mut()
            .find(|e| e.message == error.message && e.location == error.location)
        {
            Some(e) => {
                e.count += error.count;
                e.first_seen_ms = e.first_seen_ms.min(error.first_seen_ms);
                e.last_seen_ms = e.last_seen_ms.max(error.last_seen_ms);
            }
            None => into.push(error.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> EntryKey {
        EntryKey {
            method: Method::Get,
            name: name.to_string(),
        }
    }

    #[test]
    fn merging_deltas_adds_counts_and_histograms() {
        let mut a = StatsDelta::default();
        let mut e = EntryDelta::new(key("/"));
        e.record(100, 10, false);
        e.record(300, 10, true);
        a.entries.push(e);
        let mut b = StatsDelta::default();
        let mut e = EntryDelta::new(key("/"));
        e.record(200, 5, false);
        b.entries.push(e);
        b.entries.push(EntryDelta::new(key("/other")));
        b.failures.push(FailureDelta {
            key: key("/"),
            kind: FailureKind::Status(500),
            message: String::new(),
            count: 2,
            first_seen_ms: 5,
            last_seen_ms: 9,
        });
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.entries.len(), 2);
        let root = &a.entries[0];
        assert_eq!(root.requests, 4);
        assert_eq!(root.failures, 1);
        assert_eq!(root.bytes, 30);
        assert_eq!(root.latency.len(), 4);
        assert_eq!(root.latency_sum_us, 800);
        assert_eq!(a.failures.len(), 1);
        assert_eq!(a.failures[0].count, 4);
        assert!(root.uncorrected.is_none(), "nothing was corrected");
    }

    #[test]
    fn uncorrected_latencies_are_kept_once_they_differ() {
        let mut a = EntryDelta::new(key("/"));
        a.record(100, 0, false);
        a.record_corrected(5_000, 200, 0, false);
        let u = a.uncorrected.as_ref().unwrap();
        assert!(a.latency.equivalent(a.latency.max(), 5_000));
        assert_eq!(u.max(), 200);
        assert_eq!(u.len(), 2);
        assert_eq!((a.latency_sum_us, a.uncorrected_sum_us), (5_100, 300));
        // Merging into an entry that never differed keeps both sides exact.
        let mut b = EntryDelta::new(key("/"));
        b.record(300, 0, false);
        b.merge(&a);
        let u = b.uncorrected_latency();
        assert_eq!((b.latency.len(), u.len()), (3, 3));
        assert!(b.latency.equivalent(b.latency.max(), 5_000));
        assert_eq!(u.max(), 300);
    }
}
