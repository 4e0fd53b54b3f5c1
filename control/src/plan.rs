//! What a run is asked to do.

use std::path::PathBuf;
use std::time::Duration;

use blast_engine::http::Origin;
use blast_script::Scenario;

use crate::threshold::Threshold;

/// A run, as the command line (and later the config file) describes it.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The compiled, validated scenario.
    pub scenario: Scenario,
    /// The host requests go to, resolved.
    pub host: Origin,
    /// The hosts user types name with `host` (`Scenario::extra_hosts`),
    /// resolved, in that order (their indices follow the run's host), then
    /// any hosts the script writes out (`Scenario::literal_hosts`) that
    /// resolved.
    pub extra_hosts: Vec<Origin>,
    /// Users to reach (`Load::Users`).
    pub users: u64,
    /// Users started per second until `users` are running (`Load::Users`).
    pub spawn_rate: f64,
    /// How load is applied over time.
    pub load: Load,
    /// How the open model (an arrival rate) runs, when the load is one.
    pub open: OpenSettings,
    /// Clear the statistics once the ramp first reaches its target.
    pub reset_stats: bool,
    /// End the run after this many task iterations.
    pub iterations: Option<Iterations>,
    /// Stop conditions (`--stop-on`), as written.
    pub stop_on: Vec<String>,
    /// How long the run lasts from its start; until interrupted if `None`.
    pub duration: Option<Duration>,
    /// Shards (one per core).
    pub cores: usize,
    /// Default request timeout, connecting included.
    pub timeout: Duration,
    /// How long stopping waits for requests in flight.
    pub stop_timeout: Duration,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Seed for users' random choices.
    pub seed: Option<u64>,
    /// Where to write the JSON summary.
    pub json: Option<PathBuf>,
    /// How often the live table is printed.
    pub print_interval: Duration,
    /// Print only the final summary.
    pub only_summary: bool,
    /// CSV and HTML reports, and how much the console says.
    pub outputs: OutputOptions,
    /// Pass/fail thresholds.
    pub thresholds: ThresholdOptions,
}

/// How load is applied over time.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// Closed model: `users` users, started at `spawn_rate` per second.
    Users,
    /// Closed model: ramp linearly to each stage's user count over its
    /// duration (`--stages 30s:100,2m:100,30s:0`); the run ends after the
    /// last stage.
    Stages(Vec<Stage>),
    /// Open model: iterations start at `start` per second, then the rate
    /// ramps linearly to each stage's rate over its duration
    /// (`--rate-stages 1m:100/s,5m:1000/s`); with stages, the run ends after
    /// the last.
    Rate {
        /// Iterations per second at the start.
        start: f64,
        /// The ramps that follow.
        stages: Vec<Stage>,
    },
    /// The scenario's `shape(elapsed_s)` function says, every second.
    Shape,
}

/// One stage: reach `target` (users, or iterations per second) linearly
/// over `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    /// How long the ramp takes.
    pub duration: Duration,
    /// Users, or iterations per second, at its end.
    pub target: f64,
}

/// How iterations are spaced in the open model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly spaced.
    #[default]
    Even,
    /// A Poisson process (exponential gaps) with the same mean rate.
    Poisson,
}

/// The open model's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenSettings {
    /// Users the pool may grow to (run-wide); `None`: ten seconds' worth
    /// of arrivals at the highest rate, at least 100.
    pub max_users: Option<u64>,
    /// How long an iteration may wait for a free user before it is
    /// dropped.
    pub max_wait: Duration,
    /// How arrivals are spaced.
    pub arrivals: Arrivals,
}

impl Default for OpenSettings {
    fn default() -> OpenSettings {
        OpenSettings {
            max_users: None,
            max_wait: Duration::from_secs(1),
            arrivals: Arrivals::Even,
        }
    }
}

/// `--iterations N` / `--iterations-per-user N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iterations {
    /// How many.
    pub count: u64,
    /// Per user rather than in total.
    pub per_user: bool,
}

/// Reports besides the console table and `json`, and the console's
/// verbosity.
#[derive(Clone, Debug, Default)]
pub struct OutputOptions {
    /// `--csv PREFIX`: Locust's four CSV files, `PREFIX_stats.csv`...
    pub csv: Option<PathBuf>,
    /// `--csv-full-history`: every entry in the history file, not only the
    /// aggregated row.
    pub csv_full_history: bool,
    /// `--html FILE`: the self-contained HTML report.
    pub html: Option<PathBuf>,
    /// `--quiet`: no live table, progress or summary table; only warnings,
    /// errors and threshold verdicts.
    pub quiet: bool,
}

/// Thresholds and when they are checked.
#[derive(Clone, Debug, Default)]
pub struct ThresholdOptions {
    /// The thresholds, the scenario's and the command line's merged
    /// ([`crate::threshold::thresholds_from`]).
    pub list: Vec<Threshold>,
    /// Stop the run as soon as a threshold fails on what was measured so
    /// far (checked every print interval).
    pub abort_on_fail: bool,
    /// How long after the start live checks begin.
    pub delay: Duration,
}
