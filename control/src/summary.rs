//! The end-of-run summary: what the console prints and `--json` writes.
//! Its JSON form is described by `docs/summary.schema.json`.

use std::collections::BTreeMap;

use blast_proto::EntryDelta;
use serde::Serialize;

use crate::plan::RunPlan;
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

/// Latency figures of one entry, in milliseconds.
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
    /// Response body bytes received.
    pub bytes: u64,
    /// Mean body size in bytes.
    pub avg_content_size: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl EndpointSummary {
    /// Summarises `entry` over `seconds` of run time.
    pub fn of(entry: &EntryDelta, method: &str, seconds: f64) -> EndpointSummary {
        let h = &entry.latency;
        let n = entry.requests;
        let seconds = seconds.max(1e-9);
        let percentiles_ms = PERCENTILES
            .iter()
            .map(|&p| {
                let v = if n == 0 {
                    0.0
                } else {
                    ms(h.value_at_quantile(p / 100.0))
                };
                (percentile_label(p), v)
            })
            .collect();
        EndpointSummary {
            method: method.to_string(),
            name: entry.key.name.clone(),
            requests: n,
            failures: entry.failures,
            rps: n as f64 / seconds,
            failures_per_s: entry.failures as f64 / seconds,
            min_ms: if n == 0 { 0.0 } else { ms(h.min()) },
            avg_ms: if n == 0 {
                0.0
            } else {
                entry.latency_sum_us as f64 / n as f64 / 1000.0
            },
            max_ms: if n == 0 { 0.0 } else { ms(h.max()) },
            percentiles_ms,
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
    /// Users.
    pub users: u64,
    /// Spawn rate, users per second.
    pub spawn_rate: f64,
    /// Planned duration in seconds, if any.
    pub duration_s: Option<f64>,
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
    /// Why the run ended: `duration`, `interrupted`.
    pub stop_reason: String,
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
        let started = std::time::UNIX_EPOCH + std::time::Duration::from_millis(started_at_ms);
        Summary {
            blast_version: env!("CARGO_PKG_VERSION").to_string(),
            parameters: Parameters {
                scenario: plan.scenario.file().to_string(),
                host: plan.host.url(),
                users: plan.users,
                spawn_rate: plan.spawn_rate,
                duration_s: plan.duration.map(|d| d.as_secs_f64()),
                cores: plan.cores,
                pinned,
                timeout_s: plan.timeout.as_secs_f64(),
                stop_timeout_s: plan.stop_timeout.as_secs_f64(),
                seed: plan.seed,
            },
            started_at: humantime::format_rfc3339_millis(started).to_string(),
            started_at_ms,
            ended_at_ms,
            duration_s: seconds,
            stop_reason: stop_reason.to_string(),
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
            health: HealthSummary {
                max_busy: health.max_busy,
                busy_reports: health.busy_reports,
                generator_saturated: health.saturated,
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
