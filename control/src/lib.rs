//! blast's control side: the run lifecycle and the reporters.
//!
//! A [`RunPlan`] says what to do; [`run`] drives it on nodes through
//! [`NodeHandle`] (today one [`InProcessNode`]; remote nodes join with
//! distributed runs), merges their deltas into [`RunStats`], prints the
//! live table and returns the [`Summary`] that the console and `--json`
//! report. The other reporters: [`csv`] (Locust's CSV files), [`html`] (the
//! self-contained report); [`threshold`] parses and judges pass/fail
//! thresholds.
//!
//! This crate may depend on the engine, the script crate and proto; nothing
//! below it knows it exists.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod console;
pub mod csv;
pub mod html;
mod plan;
mod run;
mod stats;
mod summary;
pub mod threshold;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use plan::{
    Arrivals, Iterations, Load, OpenSettings, OutputOptions, RunPlan, Stage, ThresholdOptions,
};
pub use run::{InProcessNode, NodeHandle, RunError, RunOutcome, RunState, run};
pub use stats::{Health, HistoryPoint, RunStats};
pub use summary::{
    CheckSummary, EndpointSummary, ErrorSummary, FailureSummary, HealthSummary, PERCENTILES,
    Parameters, Summary, percentile_label,
};

use blast_engine::NodeConfig;
use blast_engine::http::Limits;

/// How often shards report.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `plan` on an in-process node: the whole of `blast run`.
pub fn run_local(plan: &RunPlan, interrupted: Arc<AtomicBool>) -> Result<RunOutcome, RunError> {
    let mut origins = vec![plan.host.clone()];
    origins.extend(plan.extra_hosts.iter().cloned());
    let config = NodeConfig {
        shards: plan.cores,
        origins: origins.clone(),
        insecure: plan.insecure,
        limits: Limits::default(),
        timeout: plan.timeout,
        stop_timeout: plan.stop_timeout,
        report_interval: REPORT_INTERVAL,
        scenario: plan.scenario.builder(&origins, plan.seed, plan.cores),
    };
    let node = InProcessNode::start(config)?;
    if !node.pinned() {
        eprintln!(
            "warning: {} cores asked for, {} available: shards are not pinned to cores",
            plan.cores,
            blast_engine::allowed_cpus().len()
        );
    }
    run(plan, Box::new(node), interrupted)
}
