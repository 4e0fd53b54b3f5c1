//! blast's control side: the run lifecycle and the reporters.
//!
//! A [`RunPlan`] says what to do; [`run_local`] drives it on nodes through
//! [`NodeHandle`] (today one [`InProcessNode`]; remote nodes join with
//! distributed runs), merges their deltas into [`RunStats`], prints the
//! live table and returns the [`Summary`] that the console and `--json`
//! report. The other reporters: [`csv`] (Locust's CSV files), [`html`] (the
//! self-contained report), all written through [`output`] (`-`, links and
//! FIFOs kept); [`threshold`] parses and judges pass/fail thresholds.
//!
//! This crate may depend on the engine, the script crate and proto; nothing
//! below it knows it exists.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod console;
pub mod csv;
pub mod html;
mod load;
pub mod output;
mod plan;
mod run;
mod stats;
pub mod stop_on;
mod summary;
pub mod threshold;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use plan::{
    Arrivals, Iterations, Load, OpenSettings, OutputOptions, RunPlan, Stage, ThresholdOptions,
};
pub use run::{InProcessNode, NodeHandle, RunError, RunOutcome, RunState};
pub use stats::{Health, HistoryPoint, RunStats};
pub use summary::{
    CheckSummary, EndpointSummary, ErrorSummary, FailureSummary, HealthSummary, IterationsSummary,
    LatenessSummary, LoadModel, LoadParameters, OpenParameters, PERCENTILES, Parameters, RateStage,
    Summary, UncorrectedSummary, UserStage, percentile_label, planned_length,
};

use blast_engine::http::{Limits, Origins};
use blast_engine::{IterationLimit, NodeConfig, OpenModel};

/// How often shards report.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `plan` on an in-process node: the whole of `blast run`.
pub fn run_local(plan: &RunPlan, interrupted: Arc<AtomicBool>) -> Result<RunOutcome, RunError> {
    let mut origins = vec![plan.host.clone()];
    origins.extend(plan.extra_hosts.iter().cloned());
    // One table for the node and the scenario: a host a script names
    // during the run gets the same index everywhere.
    let origins = Arc::new(Origins::new(origins, plan.insecure));
    let driver = load::Driver::new(plan).map_err(RunError::Node)?;
    let stop_on = stop_on::StopConditions::parse_all(&plan.stop_on)
        .map_err(|e| RunError::Node(e.to_string()))?;
    let open = driver.is_open().then(|| OpenModel {
        max_users: plan.open.max_users.unwrap_or_else(|| {
            // Ten seconds' worth of arrivals at the highest rate; a shape's
            // rate is known only as it goes.
            driver
                .peak_rate()
                .map_or(10_000, |rate| ((rate * 10.0).ceil() as u64).max(100))
        }),
        max_wait: plan.open.max_wait,
        poisson: plan.open.arrivals == Arrivals::Poisson,
        seed: plan.seed.unwrap_or_else(fastrand_seed),
    });
    let config = NodeConfig {
        shards: plan.cores,
        origins: origins.clone(),
        limits: Limits::default(),
        timeout: plan.timeout,
        stop_timeout: plan.stop_timeout,
        report_interval: REPORT_INTERVAL,
        scenario: plan.scenario.builder(&origins, plan.seed, plan.cores),
        open,
        iterations: plan.iterations.map(|i| IterationLimit {
            count: i.count,
            per_user: i.per_user,
        }),
    };
    let node = InProcessNode::start(config)?;
    if !node.pinned() {
        log::warn!(
            "{} cores asked for, {} available: shards are not pinned to cores",
            plan.cores,
            blast_engine::allowed_cpus().len()
        );
    }
    run::run(plan, driver, stop_on, Box::new(node), interrupted)
}

/// A seed for Poisson gaps when the run has none.
fn fastrand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
