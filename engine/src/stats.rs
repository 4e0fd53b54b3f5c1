//! A shard's statistics: every request, failure and script error since the
//! last report, cut into a [`StatsDelta`] every interval.
//!
//! Recording is on the request path: it looks an entry up by name without
//! allocating, and formats nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blast_proto::{
    CheckDelta, EntryDelta, EntryKey, FailureDelta, FailureKind, LatencyHistogram, Method,
    ScriptErrorDelta, StatsDelta, new_histogram,
};

const METHODS: usize = 8;

fn method_slot(method: Method) -> usize {
    match method {
        Method::Get => 0,
        Method::Post => 1,
        Method::Put => 2,
        Method::Delete => 3,
        Method::Head => 4,
        Method::Patch => 5,
        Method::Options => 6,
        Method::Metric => 7,
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a shard recorded since its last delta.
pub(crate) struct ShardStats {
    source: u32,
    seq: u64,
    /// Entry index by name, then by method.
    index: HashMap<String, [Option<u32>; METHODS]>,
    entries: Vec<EntryDelta>,
    failures: HashMap<(u32, FailureKind, String), FailureDelta>,
    errors: HashMap<(String, String), ScriptErrorDelta>,
    checks: HashMap<String, CheckDelta>,
    iterations: u64,
    dropped: u64,
    lateness: LatencyHistogram,
}

impl ShardStats {
    pub(crate) fn new(source: u32) -> ShardStats {
        ShardStats {
            source,
            seq: 0,
            index: HashMap::new(),
            entries: Vec::new(),
            failures: HashMap::new(),
            errors: HashMap::new(),
            checks: HashMap::new(),
            iterations: 0,
            dropped: 0,
            lateness: new_histogram(),
        }
    }

    fn entry(&mut self, method: Method, name: &str) -> u32 {
        let slot = method_slot(method);
        if let Some(Some(i)) = self.index.get(name).map(|slots| slots[slot]) {
            return i;
        }
        let i = self.entries.len() as u32;
        self.entries.push(EntryDelta::new(EntryKey {
            method,
            name: name.to_string(),
        }));
        self.index
            .entry(name.to_string())
            .or_insert([None; METHODS])[slot] = Some(i);
        i
    }

    /// Records one request: its latency, body bytes, and failure if any.
    pub(crate) fn record(
        &mut self,
        method: Method,
        name: &str,
        latency: Duration,
        bytes: u64,
        failure: Option<(FailureKind, &str)>,
    ) {
        self.record_late(method, name, latency, Duration::ZERO, bytes, failure);
    }

    /// Records one request sent `late` after it was due: its latency is
    /// recorded corrected (`latency + late`) and as measured.
    pub(crate) fn record_late(
        &mut self,
        method: Method,
        name: &str,
        latency: Duration,
        late: Duration,
        bytes: u64,
        failure: Option<(FailureKind, &str)>,
    ) {
        let i = self.entry(method, name);
        let us = micros(latency);
        let corrected = us.saturating_add(micros(late));
        self.entries[i as usize].record_corrected(corrected, us, bytes, failure.is_some());
        if let Some((kind, message)) = failure {
            let now = unix_ms();
            let key = self.entries[i as usize].key.clone();
            self.failures
                .entry((i, kind, message.to_string()))
                .and_modify(|f| {
                    f.count += 1;
                    f.last_seen_ms = now;
                })
                .or_insert_with(|| FailureDelta {
                    key,
                    kind,
                    message: message.to_string(),
                    count: 1,
                    first_seen_ms: now,
                    last_seen_ms: now,
                });
        }
    }

    /// Counts one task iteration done.
    pub(crate) fn record_iteration(&mut self) {
        self.iterations += 1;
    }

    /// Counts one open-model iteration dropped.
    pub(crate) fn record_dropped(&mut self) {
        self.dropped += 1;
    }

    /// Records how late a scheduled start began, by the shard's timers.
    pub(crate) fn record_lateness(&mut self, late: Duration) {
        let _ = self.lateness.record(micros(late));
    }

    /// Records a script error.
    pub(crate) fn record_error(&mut self, message: &str, location: &str) {
        let now = unix_ms();
        self.errors
            .entry((message.to_string(), location.to_string()))
            .and_modify(|e| {
                e.count += 1;
                e.last_seen_ms = now;
            })
            .or_insert_with(|| ScriptErrorDelta {
                message: message.to_string(),
                location: location.to_string(),
                count: 1,
                first_seen_ms: now,
                last_seen_ms: now,
            });
    }

    /// Records one outcome of the check `name`.
    pub(crate) fn record_check(&mut self, name: &str, passed: bool) {
        let check = match self.checks.get_mut(name) {
            Some(check) => check,
            None => self.checks.entry(name.to_string()).or_insert(CheckDelta {
                name: name.to_string(),
                ..CheckDelta::default()
            }),
        };
        if passed {
            check.passed += 1;
        } else {
            check.failed += 1;
        }
    }

    /// Cuts the delta: everything recorded since the last cut, numbered.
    pub(crate) fn cut(&mut self, users: u64, busy: f64, last: bool) -> StatsDelta {
        self.index.clear();
        let mut failures: Vec<FailureDelta> = self.failures.drain().map(|(_, f)| f).collect();
        failures.sort_by(|a, b| (&a.key, a.kind).cmp(&(&b.key, b.kind)));
        let mut errors: Vec<ScriptErrorDelta> = self.errors.drain().map(|(_, e)| e).collect();
        errors.sort_by(|a, b| (&a.location, &a.message).cmp(&(&b.location, &b.message)));
        let mut checks: Vec<CheckDelta> = self.checks.drain().map(|(_, c)| c).collect();
        checks.sort_by(|a, b| a.name.cmp(&b.name));
        let delta = StatsDelta {
            source: self.source,
            seq: self.seq,
            at_ms: unix_ms(),
            entries: std::mem::take(&mut self.entries),
            failures,
            errors,
            checks,
            users,
            busy,
            last,
            iterations: std::mem::take(&mut self.iterations),
            dropped: std::mem::take(&mut self.dropped),
            lateness: std::mem::replace(&mut self.lateness, new_histogram()),
        };
        self.seq += 1;
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_method_and_name_and_cuts_numbered_deltas() {
        let mut s = ShardStats::new(3);
        s.record(Method::Get, "/", Duration::from_micros(100), 10, None);
        s.record(
            Method::Get,
            "/",
            Duration::from_micros(200),
            10,
            Some((FailureKind::Status(500), "")),
        );
        s.record(Method::Post, "/", Duration::from_micros(300), 0, None);
        s.record(
            Method::Get,
            "/",
            Duration::from_micros(50),
            0,
            Some((FailureKind::Status(500), "")),
        );
        s.record_error("boom", "x.rhai:1:2");
        s.record_error("boom", "x.rhai:1:2");
        s.record_check("ok", true);
        s.record_check("ok", false);
        s.record_check("ok", true);
        let d = s.cut(7, 0.5, false);
        assert_eq!((d.source, d.seq, d.users), (3, 0, 7));
        assert_eq!(d.entries.len(), 2);
        assert_eq!(d.entries[0].requests, 3);
        assert_eq!(d.entries[0].failures, 2);
        assert_eq!(d.entries[1].key.method, Method::Post);
        assert_eq!(d.failures.len(), 1);
        assert_eq!(d.failures[0].count, 2);
        assert_eq!(d.errors[0].count, 2);
        assert_eq!((d.checks[0].passed, d.checks[0].failed), (2, 1));
        let d = s.cut(7, 0.5, true);
        assert_eq!(d.seq, 1);
        assert!(d.is_empty() && d.last);
    }
}
