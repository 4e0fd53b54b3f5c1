//! The end-of-run summary: what the console prints and `--json` writes.
//! Its JSON form is described by `docs/summary.schema.json`.

use std::collections::BTreeMap;

use blast_proto::{EntryDelta, LatencyHistogram};
use serde::Serialize;

use crate::plan::{Arrivals, Load, OpenSettings, RunPlan};
use crate::stats::RunStats;
use crate::threshold::ThresholdResult;

/// The percentiles every summary reports, as Locust's tables do.
pub const PERCENTILES: [f64; 11] = [
    50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0,
];

/// A percentile's label: `50`, `99.9`, `100`.
pub fn percentile_label(p: f64) -> String {
    let s = format!("{p}");
    s.trim_end_matches(".0").to_string()
}

/// Latency figures of one entry, in milliseconds. The top-level figures
/// are corrected for coordinated omission (a request that was due before
/// it was sent is timed from when it was due); `uncorrected` has the same
/// figures timed from when each request was sent.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointSummary {
    /// Request method (`GET`...), or empty for the aggregated row.
    pub method: String,
    /// Entry name, or `Aggregated`.
    pub name: String,
    /// Requests completed.
    pub requests: u64,
    /// Of those, failed.
    pub failures: u64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Failures per second over the run.
    pub failures_per_s: f64,
    /// Fastest response.
    pub min_ms: f64,
    /// Mean response time (exact).
    pub avg_ms: f64,
    /// Slowest response.
    pub max_ms: f64,
    /// Percentiles by label (`"50"`, `"99.9"`...), from full-precision
    /// histograms (3 significant digits).
    pub percentiles_ms: BTreeMap<String, f64>,
    /// The same figures without the correction; equal to the ones above
    /// when nothing was corrected.
    pub uncorrected: UncorrectedSummary,
    /// Response body bytes received.
    pub bytes: u64,
    /// Mean body size in bytes.
    pub avg_content_size: f64,
}

/// Latency figures timed from when each request was sent (not corrected
/// for coordinated omission), in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct UncorrectedSummary {
    /// Mean response time (exact).
    pub avg_ms: f64,
    /// Slowest response.
    pub max_ms: f64,
    /// Percentiles by label, as [`EndpointSummary::percentiles_ms`].
    pub percentiles_ms: BTreeMap<String, f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// [`PERCENTILES`] of `h` by label; zeros when it is empty.
fn percentiles_ms(h: &LatencyHistogram) -> BTreeMap<String, f64> {
    PERCENTILES
        .iter()
        .map(|&p| {
            let v = if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(p / 100.0))
            };
            (percentile_label(p), v)
        })
        .collect()
}

impl EndpointSummary {
    /// Summarises `entry` over `seconds` of run time.
    pub fn of(entry: &EntryDelta, method: &str, seconds: f64) -> EndpointSummary {
        let h = &entry.latency;
        let n = entry.requests;
        let seconds = seconds.max(1e-9);
        let per_request = |sum_us: u64| {
            if n == 0 {
                0.0
            } else {
                sum_us as f64 / n as f64 / 1000.0
            }
        };
        let max = |h: &LatencyHistogram| if n == 0 { 0.0 } else { ms(h.max()) };
        // Without a correction the uncorrected sum is the same as the
        // corrected one; taking the corrected one keeps them equal even for
        // a delta that never filled it in.
        let (uncorrected_sum_us, uncorrected) = match &entry.uncorrected {
            Some(u) => (entry.uncorrected_sum_us, u),
            None => (entry.latency_sum_us, h),
        };
        EndpointSummary {
            method: method.to_string(),
            name: entry.key.name.clone(),
            requests: n,
            failures: entry.failures,
            rps: n as f64 / seconds,
            failures_per_s: entry.failures as f64 / seconds,
            min_ms: if n == 0 { 0.0 } else { ms(h.min()) },
            avg_ms: per_request(entry.latency_sum_us),
            max_ms: max(h),
            percentiles_ms: percentiles_ms(h),
            uncorrected: UncorrectedSummary {
                avg_ms: per_request(uncorrected_sum_us),
                max_ms: max(uncorrected),
                percentiles_ms: percentiles_ms(uncorrected),
            },
            bytes: entry.bytes,
            avg_content_size: if n == 0 {
                0.0
            } else {
                entry.bytes as f64 / n as f64
            },
        }
    }
}

/// Failures of one kind for one entry.
#[derive(Clone, Debug, Serialize)]
pub struct FailureSummary {
    /// Request method.
    pub method: String,
    /// Entry name.
    pub name: String,
    /// The error.
    pub error: String,
    /// How many times.
    pub occurrences: u64,
    /// First seen, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// Last seen, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

/// A script error.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorSummary {
    /// The message.
    pub message: String,
    /// `file:line:column`.
    pub location: String,
    /// How many times.
    pub count: u64,
    /// First seen, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// Last seen, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

/// A script check's outcomes (`check(cond, name)`).
#[derive(Clone, Debug, Serialize)]
pub struct CheckSummary {
    /// The check's name.
    pub name: String,
    /// Times it held.
    pub passed: u64,
    /// Times it did not.
    pub failed: u64,
}

/// The run's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct Parameters {
    /// Scenario file.
    pub scenario: String,
    /// Target host URL.
    pub host: String,
    /// `closed` (users that each wait for their previous request) or
    /// `open` (iterations started at an arrival rate). Set together with
    /// `open` by [`Parameters::set_open_model`].
    pub model: LoadModel,
    /// How load was applied over time (`load` in the JSON, with its own
    /// fields beside it).
    #[serde(flatten)]
    pub load: LoadParameters,
    /// The open model's settings; `None` (and absent from the JSON) in the
    /// closed model.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenParameters>,
    /// `--iterations N`: the run ends after N task iterations in total.
    pub iterations: Option<u64>,
    /// `--iterations-per-user N`: each user ends after N task iterations.
    pub iterations_per_user: Option<u64>,
    /// `--reset-stats`: the statistics were cleared once the ramp first
    /// reached its target.
    pub reset_stats: bool,
    /// Stop conditions (`--stop-on`), as written.
    pub stop_on: Vec<String>,
    /// Planned duration in seconds, if any.
    pub duration_s: Option<f64>,
    /// What ends the run as planned, in words ([`planned_length`]): `for
    /// 5m`, `for 1m 30s (the stages)`, `until shape() ends`...
    pub planned: String,
    /// Shards (cores) used.
    pub cores: usize,
    /// Whether shards were pinned to cores.
    pub pinned: bool,
    /// Request timeout in seconds.
    pub timeout_s: f64,
    /// Stop timeout in seconds.
    pub stop_timeout_s: f64,
    /// Random seed, if one was given.
    pub seed: Option<u64>,
}

/// What ends `plan` as planned, in words that follow "against URL" in
/// the console's first line and stand as the HTML report's planned run
/// time: `for 5m`, `for 1m 30s (the stages)`, `for 1000 iterations`,
/// `until shape() ends`, several joined by `or` ("whichever comes first"),
/// and `until stopped (Ctrl-C)` only when nothing else ends it.
pub fn planned_length(plan: &RunPlan) -> String {
    let human = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let total = |stages: &[crate::plan::Stage]| human(stages.iter().map(|s| s.duration).sum());
    let mut ends = Vec::new();
    if let Some(d) = plan.duration {
        ends.push(format!("for {}", human(d)));
    }
    match &plan.load {
        Load::Stages(stages) => ends.push(format!("for {} (the stages)", total(stages))),
        Load::Rate { stages, .. } if !stages.is_empty() => {
            ends.push(format!("for {} (the rate stages)", total(stages)));
        }
        Load::Shape => ends.push("until shape() ends".to_string()),
        Load::Users | Load::Rate { .. } => {}
    }
    match plan.iterations {
        Some(i) if i.per_user => ends.push(format!("for {} iterations per user", i.count)),
        Some(i) => ends.push(format!("for {} iterations", i.count)),
        None => {}
    }
    match ends.len() {
        0 => "until stopped (Ctrl-C)".to_string(),
        1 => ends.remove(0),
        _ => format!("{}, whichever comes first", ends.join(" or ")),
    }
}

impl Parameters {
    /// Marks the run as an open-model one with `open`'s settings: for a
    /// `shape()` that returns rates, which only the run knows.
    pub fn set_open_model(&mut self, open: &OpenSettings) {
        self.model = LoadModel::Open;
        self.open = Some(OpenParameters {
            max_users: open.max_users,
            max_wait_s: open.max_wait.as_secs_f64(),
            arrivals: match open.arrivals {
                Arrivals::Even => "even",
                Arrivals::Poisson => "poisson",
            }
            .to_string(),
        });
    }
}

/// The load model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadModel {
    /// A number of users, each starting its next task when the previous
    /// one (and its wait) is done.
    Closed,
    /// Iterations started at an arrival rate, however slowly the target
    /// answers.
    Open,
}

/// How load was applied over time, as [`Load`] says; in the JSON, `load`
/// names the variant and its fields sit beside it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "load", rename_all = "lowercase")]
pub enum LoadParameters {
    /// `-u`/`-r`: this many users, started at this rate.
    Users {
        /// Users.
        users: u64,
        /// Users started per second.
        spawn_rate: f64,
    },
    /// `--stages`: user counts reached linearly, stage after stage.
    Stages {
        /// The stages, in order.
        stages: Vec<UserStage>,
    },
    /// `--rate` / `--rate-stages`: the open model's arrival rate.
    Rate {
        /// Iterations per second at the start.
        rate: f64,
        /// Rates reached linearly, stage after stage (empty: a constant
        /// rate).
        rate_stages: Vec<RateStage>,
    },
    /// The scenario's `shape(elapsed)` function set the load.
    Shape,
}

/// A `--stages` stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserStage {
    /// How long the ramp takes, in seconds.
    pub duration_s: f64,
    /// Users at its end.
    pub users: u64,
}

/// A `--rate-stages` stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateStage {
    /// How long the ramp takes, in seconds.
    pub duration_s: f64,
    /// Iterations per second at its end.
    pub rate: f64,
}

impl LoadParameters {
    fn of(load: &Load, users: u64, spawn_rate: f64) -> LoadParameters {
        match load {
            Load::Users => LoadParameters::Users { users, spawn_rate },
            Load::Stages(stages) => LoadParameters::Stages {
                stages: stages
                    .iter()
                    .map(|s| UserStage {
                        duration_s: s.duration.as_secs_f64(),
                        users: s.target as u64,
                    })
                    .collect(),
            },
            Load::Rate { start, stages } => LoadParameters::Rate {
                rate: *start,
                rate_stages: stages
                    .iter()
                    .map(|s| RateStage {
                        duration_s: s.duration.as_secs_f64(),
                        rate: s.target,
                    })
                    .collect(),
            },
            Load::Shape => LoadParameters::Shape,
        }
    }
}

/// The open model's settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpenParameters {
    /// `--max-users`: the users the pool may grow to; `None`: the default
    /// (ten seconds' worth of arrivals at the highest rate, at least 100).
    pub max_users: Option<u64>,
    /// `--max-wait`: how long an iteration may wait for a free user before
    /// it is dropped, in seconds.
    pub max_wait_s: f64,
    /// `--arrivals`: `even` or `poisson`.
    pub arrivals: String,
}

/// Load generator health.
#[derive(Clone, Debug, Serialize)]
pub struct HealthSummary {
    /// Highest busy ratio (0 to 1) any shard reported.
    pub max_busy: f64,
    /// Reports in which a shard was over 90% busy.
    pub busy_reports: u64,
    /// True when a shard stayed over 90% busy for several seconds: the
    /// generator, not the target, may have limited the load.
    pub generator_saturated: bool,
    /// How late scheduled starts (open-model arrivals, paced users' next
    /// tasks) began by the generator's own timers; `None` when nothing was
    /// scheduled.
    pub lateness_ms: Option<LatenessSummary>,
    /// Scheduled starts measured.
    pub scheduled: u64,
}

/// Generator lateness percentiles, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatenessSummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// The latest start.
    pub max: f64,
}

impl LatenessSummary {
    /// Percentiles of `lateness` (µs); `None` when it is empty.
    pub fn of(lateness: &LatencyHistogram) -> Option<LatenessSummary> {
        if lateness.is_empty() {
            return None;
        }
        let q = |q: f64| ms(lateness.value_at_quantile(q));
        Some(LatenessSummary {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            max: ms(lateness.max()),
        })
    }
}

/// Task iterations over the run.
#[derive(Clone, Debug, Serialize)]
pub struct IterationsSummary {
    /// Iterations completed, whatever their outcome.
    pub completed: u64,
    /// Open-model iterations dropped: no user came free within
    /// `--max-wait`.
    pub dropped: u64,
    /// When the first and the last report holding a drop were cut, in
    /// milliseconds since the Unix epoch (the CSV's First and Last Seen);
    /// not in the JSON.
    #[serde(skip)]
    pub dropped_seen_ms: Option<(u64, u64)>,
}

/// The summary of a whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// blast's version.
    pub blast_version: String,
    /// The run's parameters.
    pub parameters: Parameters,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Start, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// End, ms since the Unix epoch.
    pub ended_at_ms: u64,
    /// Seconds from the first spawn to the end of the stop.
    pub duration_s: f64,
    /// Why the run ended: `duration`, `interrupted`, `stop condition:
    /// ...`...
    pub stop_reason: String,
    /// Whether the run ended before its plan did, because a stop condition
    /// held or the script called `stop_test()`. [`Summary::build`] leaves
    /// it false; the run sets it.
    pub stopped_early: bool,
    /// Whether any latency was corrected for coordinated omission: then
    /// the figures differ from their `uncorrected` ones.
    pub corrected: bool,
    /// The percentiles reported, in order.
    pub percentiles: Vec<f64>,
    /// Per entry.
    pub endpoints: Vec<EndpointSummary>,
    /// All entries together.
    pub total: EndpointSummary,
    /// Failures grouped by (method, name, error).
    pub failures: Vec<FailureSummary>,
    /// Script errors grouped by (message, location).
    pub errors: Vec<ErrorSummary>,
    /// Script checks by name.
    pub checks: Vec<CheckSummary>,
    /// Task iterations completed and dropped.
    pub iterations: IterationsSummary,
    /// Load generator health.
    pub health: HealthSummary,
    /// Thresholds (the scenario's and `--threshold`) and their verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// Anything else the user should know.
    pub warnings: Vec<String>,
}

impl Summary {
    /// Builds the summary of a finished run.
    pub fn build(
        plan: &RunPlan,
        stats: &RunStats,
        timing: (u64, u64, f64),
        pinned: bool,
        stop_reason: &str,
    ) -> Summary {
        let (started_at_ms, ended_at_ms, seconds) = timing;
        let endpoints = stats
            .totals()
            .map(|e| EndpointSummary::of(e, e.key.method.as_str(), seconds))
            .collect();
        let total = EndpointSummary::of(&stats.aggregated(), "", seconds);
        let failures = stats
            .failures()
            .into_iter()
            .map(|f| FailureSummary {
                method: f.key.method.to_string(),
                name: f.key.name.clone(),
                error: f.error_text(),
                occurrences: f.count,
                first_seen_ms: f.first_seen_ms,
                last_seen_ms: f.last_seen_ms,
            })
            .collect();
        let errors = stats
            .errors()
            .into_iter()
            .map(|e| ErrorSummary {
                message: e.message,
                location: e.location,
                count: e.count,
                first_seen_ms: e.first_seen_ms,
                last_seen_ms: e.last_seen_ms,
            })
            .collect();
        let health = stats.health();
        let mut parameters = Parameters {
            scenario: plan.scenario.file().to_string(),
            host: plan.host.url(),
            model: LoadModel::Closed,
            load: LoadParameters::of(&plan.load, plan.users, plan.spawn_rate),
            open: None,
            iterations: plan.iterations.filter(|i| !i.per_user).map(|i| i.count),
            iterations_per_user: plan.iterations.filter(|i| i.per_user).map(|i| i.count),
            reset_stats: plan.reset_stats,
            stop_on: plan.stop_on.clone(),
            duration_s: plan.duration.map(|d| d.as_secs_f64()),
            planned: planned_length(plan),
            cores: plan.cores,
            pinned,
            timeout_s: plan.timeout.as_secs_f64(),
            stop_timeout_s: plan.stop_timeout.as_secs_f64(),
            seed: plan.seed,
        };
        if matches!(plan.load, Load::Rate { .. }) {
            parameters.set_open_model(&plan.open);
        }
        let started = std::time::UNIX_EPOCH + std::time::Duration::from_millis(started_at_ms);
        Summary {
            blast_version: env!("CARGO_PKG_VERSION").to_string(),
            parameters,
            started_at: humantime::format_rfc3339_millis(started).to_string(),
            started_at_ms,
            ended_at_ms,
            duration_s: seconds,
            stop_reason: stop_reason.to_string(),
            stopped_early: false,
            corrected: stats.corrected(),
            percentiles: PERCENTILES.to_vec(),
            endpoints,
            total,
            failures,
            errors,
            checks: stats
                .checks()
                .into_iter()
                .map(|c| CheckSummary {
                    name: c.name,
                    passed: c.passed,
                    failed: c.failed,
                })
                .collect(),
            iterations: IterationsSummary {
                completed: stats.iterations(),
                dropped: stats.dropped(),
                dropped_seen_ms: stats.dropped_seen_ms(),
            },
            health: HealthSummary {
                max_busy: health.max_busy,
                busy_reports: health.busy_reports,
                generator_saturated: health.saturated,
                lateness_ms: LatenessSummary::of(stats.lateness()),
                scheduled: stats.lateness().len(),
            },
            // Evaluated by the run once the summary is final.
            thresholds: Vec::new(),
            warnings: stats.warnings().to_vec(),
        }
    }

    /// The summary as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary always serializes")
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
pub(crate) mod tests;
