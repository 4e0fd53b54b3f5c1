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
    /// resolved, in that order.
    pub extra_hosts: Vec<Origin>,
    /// Users to reach.
    pub users: u64,
    /// Users started per second until `users` are running.
    pub spawn_rate: f64,
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
