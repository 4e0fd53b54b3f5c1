//! What a run is asked to do.

use std::path::PathBuf;
use std::time::Duration;

use blast_engine::http::Origin;
use blast_script::Scenario;

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
}
