//! The run lifecycle: `ready → spawning → running → stopping → stopped`.
//!
//! The controller drives nodes through [`NodeHandle`]; `blast run` is a
//! controller with one in-process node, so the local and the distributed
//! case share this code.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use blast_engine::{LocalNode, NodeConfig, NodeEvent};

use crate::console;
use crate::csv::{CsvReport, REWRITE_INTERVAL as CSV_REWRITE_INTERVAL};
use crate::html;
use crate::load::{Command, Driver, Target};
use crate::output;
use crate::plan::RunPlan;
use crate::stats::RunStats;
use crate::stop_on::StopConditions;
use crate::summary::Summary;
use crate::threshold::{self, ThresholdResult};

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Nodes are ready, no user started.
    Ready,
    /// Users are being started.
    Spawning,
    /// All users are running.
    Running,
    /// Users are being stopped; requests in flight are awaited.
    Stopping,
    /// Everything stopped, statistics final.
    Stopped,
}

/// What the controller needs of a node, in-process or remote.
pub trait NodeHandle {
    /// Moves to `users` users run-wide at `rate` per second.
    fn ramp_to(&mut self, users: u64, rate: f64);
    /// Moves each user type to its count (by index into the scenario's
    /// user types), at `rate` users per second in all.
    fn ramp_types_to(&mut self, users: &[u64], rate: f64);
    /// Open model: moves the arrival rate to `rate` per second over `over`.
    fn set_rate(&mut self, rate: f64, over: Duration);
    /// The run's planned end: nothing due at or after it starts.
    fn end_at(&mut self, at: Instant);
    /// Stops the node's load; its last delta follows on the event channel.
    fn stop(&mut self);
    /// The node's events.
    fn events(&self) -> &flume::Receiver<NodeEvent>;
    /// Waits for the node to end; returns problems to report.
    fn finish(self: Box<Self>) -> Vec<String>;
    /// Whether the node's shards are pinned to cores.
    fn pinned(&self) -> bool;
}

/// A node in this process.
pub struct InProcessNode {
    node: LocalNode,
    events: flume::Receiver<NodeEvent>,
}

impl InProcessNode {
    /// Starts a node in this process.
    pub fn start(config: NodeConfig) -> Result<InProcessNode, RunError> {
        let (node, events) = LocalNode::start(config).map_err(|e| RunError::Node(e.to_string()))?;
        Ok(InProcessNode { node, events })
    }
}

impl NodeHandle for InProcessNode {
    fn ramp_to(&mut self, users: u64, rate: f64) {
        self.node.ramp_to(users, rate);
    }
    fn ramp_types_to(&mut self, users: &[u64], rate: f64) {
        self.node.ramp_types_to(users, rate);
    }
    fn set_rate(&mut self, rate: f64, over: Duration) {
        self.node.set_rate(rate, over);
    }
    fn end_at(&mut self, at: Instant) {
        self.node.end_at(at);
    }
    fn stop(&mut self) {
        self.node.stop();
    }
    fn events(&self) -> &flume::Receiver<NodeEvent> {
        &self.events
    }
    fn finish(self: Box<Self>) -> Vec<String> {
        self.node.join()
    }
    fn pinned(&self) -> bool {
        self.node.pinned
    }
}

/// A run that could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A node could not start.
    #[error("{0}")]
    Node(String),
    /// The JSON summary could not be written.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The result of a finished run.
pub struct RunOutcome {
    /// The summary.
    pub summary: Summary,
    /// The state the run ended in (always `Stopped`).
    pub state: RunState,
    /// The threshold that stopped the run (`--abort-on-fail`), if one did.
    pub threshold_abort: Option<ThresholdResult>,
    /// Why the run could not go on as planned (the scenario's `shape()`
    /// failed, a shard failed, the node was lost), if it could not; its
    /// outputs are still written, and the exit code is 1.
    pub failed: Option<String>,
}

/// Why a run ended.
enum Stop {
    /// As planned (duration, stages, shape, iterations).
    Planned(String),
    /// Early: a stop condition or the script's `stop_test()`.
    Early(String),
    /// A threshold failed with `--abort-on-fail`, or Ctrl-C.
    Other(String),
    /// The run could not go on: `shape()` failed, a shard failed or the
    /// node was lost.
    Failed(String),
}

/// How long stopping may take beyond the stop timeout before the run gives
/// up waiting for a node's last report.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs `plan` on `node`, printing the live table, until the plan is over
/// (its duration, stages, shape or iterations), something stops it early,
/// or `interrupted` is set; returns the summary. `driver` is the plan's
/// load over time, `stop_on` its stop conditions.
pub(crate) fn run(
    plan: &RunPlan,
    mut driver: Driver,
    mut stop_on: StopConditions,
    mut node: Box<dyn NodeHandle>,
    interrupted: Arc<AtomicBool>,
) -> Result<RunOutcome, RunError> {
    let mut stats = RunStats::default();
    let mut reset_pending = plan.reset_stats;
    let terminal = std::io::stderr().is_terminal();
    let quiet = plan.outputs.quiet;
    // The live table and the progress; `--quiet` and `--only-summary` drop
    // both.
    let live = !plan.only_summary && !quiet;
    let reports_on_stdout = output::reports_on_stdout(plan);
    let mut connect_judged = false;
    let mut csv_report = match &plan.outputs.csv {
        None => None,
        Some(prefix) => match CsvReport::create(prefix, plan.outputs.csv_full_history) {
            Ok(report) => Some(report),
            Err(e) => {
                node.stop();
                let _ = node.finish();
                return Err(RunError::Output {
                    path: CsvReport::paths(prefix)[0].display().to_string(),
                    reason: e.to_string(),
                });
            }
        },
    };
    // The run's clock starts once its outputs are ready (creating them can
    // take a while, and a FIFO waits for its reader), just before the
    // first load command: the planned end below is on the same clock as
    // the schedule the node starts then, so an open model starts exactly
    // rate × duration.
    let started = Instant::now();
    let started_ms = unix_ms();
    // Rates are over the time since the statistics began: the start, or the
    // reset.
    let mut stats_since = started;
    let mut next_csv = started + CSV_REWRITE_INTERVAL;
    let mut threshold_abort: Option<ThresholdResult> = None;
    let end = plan.duration.map(|d| started + d);
    // Arrivals and spawns due at or after the planned end do not start.
    if let Some(planned) = [plan.duration, driver.planned_end()]
        .into_iter()
        .flatten()
        .min()
    {
        node.end_at(started + planned);
    }
    let mut next_print = started + plan.print_interval;
    let stop: Stop;
    // Set when a script calls stop_test(reason), a stop condition holds or
    // the iterations are done.
    let mut requested: Option<Stop> = None;
    loop {
        let now = Instant::now();
        if interrupted.load(Ordering::Relaxed) {
            stop = Stop::Other("interrupted".into());
            break;
        }
        if end.is_some_and(|end| now >= end) {
            stop = Stop::Planned("duration".into());
            break;
        }
        if let Some(reason) = requested.take() {
            stop = reason;
            break;
        }
        let mut end_of_plan = None;
        let shape_now = || blast_script::ShapeNow {
            users: stats.users(),
            rate: stats.current(None).0,
        };
        for command in driver.tick(now.duration_since(started), shape_now) {
            match command {
                Command::Ramp { users, rate } => node.ramp_to(users, rate),
                Command::RampTypes { users, rate } => node.ramp_types_to(&users, rate),
                Command::Rate { rate, over } => node.set_rate(rate, over),
                Command::End(reason) => end_of_plan = Some(Stop::Planned(reason)),
                Command::Fail(reason) => end_of_plan = Some(Stop::Failed(reason)),
            }
        }
        if let Some(end) = end_of_plan {
            stop = end;
            break;
        }
        if reset_pending && driver_target_reached(&driver, &stats, now.duration_since(started)) {
            reset_pending = false;
            stats.reset();
            stats_since = Instant::now();
            stop_on.reset();
            if !quiet {
                eprintln!("Statistics reset: the ramp reached its target (--reset-stats)");
            }
        }
        if now >= next_print {
            next_print += plan.print_interval;
            let elapsed = started.elapsed();
            if live {
                let table = console::live_table(&stats);
                output::print_human(reports_on_stdout, &format!("{table}\n"));
                if !terminal {
                    // A log, not a terminal: the progress as a plain line.
                    eprintln!(
                        "progress: {}",
                        progress_line(plan, driver.target_users(), &stats, elapsed)
                    );
                }
            }
            if plan.thresholds.abort_on_fail
                && elapsed >= plan.thresholds.delay
                && let Some(violation) = threshold::first_violation(
                    &plan.thresholds.list,
                    &stats,
                    stats_since.elapsed().as_secs_f64(),
                )
            {
                stop = Stop::Other(format!("threshold failed: {}", violation.threshold));
                eprintln!("Threshold failed: {}", violation.describe());
                threshold_abort = Some(violation);
                break;
            }
        }
        // Wake at least every 200 ms to notice an interrupt and follow the
        // load plan.
        let mut deadline = next_print.min(now + Duration::from_millis(200));
        // And when the plan next changes the load, so a stage or a shape's
        // second starts on time.
        if let Some(change) = driver.next_change(now.duration_since(started)) {
            deadline = deadline.min(started + change);
        }
        if let Some(end) = end {
            deadline = deadline.min(end);
        }
        match node.events().recv_deadline(deadline) {
            Ok(NodeEvent::Delta(delta)) => {
                if let Some(w) = stats.merge(&delta) {
                    log::warn!("{w}");
                }
                warn_if_nothing_connects(&mut connect_judged, &stats);
                if stats.just_saturated() {
                    log::warn!(
                        "the load generator is over 90% busy: it, not the target, may be the bottleneck (use more --cores or nodes)"
                    );
                }
                write_csv(&mut csv_report, |r| {
                    r.append_history(&stats, delta.at_ms, delta.last)
                });
                if let Some(reason) = stop_on.observe(&delta, started.elapsed()) {
                    requested.get_or_insert(Stop::Early(format!("stop condition: {reason}")));
                }
                if csv_report.is_some() && Instant::now() >= next_csv {
                    next_csv = Instant::now() + CSV_REWRITE_INTERVAL;
                    let mut so_far = Summary::build(
                        plan,
                        &stats,
                        (started_ms, unix_ms(), stats_since.elapsed().as_secs_f64()),
                        node.pinned(),
                        "running",
                    );
                    if driver.is_open() {
                        so_far.parameters.set_open_model(&plan.open);
                    }
                    write_csv(&mut csv_report, |r| r.write_tables(&so_far, false));
                }
                if terminal && live {
                    progress(plan, driver.target_users(), &stats, started.elapsed());
                }
            }
            Ok(NodeEvent::Warning(w)) => log::warn!("{w}"),
            Ok(NodeEvent::StopRequested(reason)) => {
                requested.get_or_insert(Stop::Early(format!("stop_test: {reason}")));
            }
            Ok(NodeEvent::IterationsDone) => {
                requested.get_or_insert(Stop::Planned("iterations done".into()));
            }
            Ok(NodeEvent::SpawningComplete(users)) => {
                // Each ramp that reached its target, as Locust says it; a
                // ramp a new target turned around does not.
                if !quiet && users > 0 {
                    eprintln!("All {users} users spawned");
                }
            }
            Ok(NodeEvent::Failed(reason)) => {
                stop = Stop::Failed(reason);
                break;
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => {
                stop = Stop::Failed("node lost".into());
                break;
            }
        }
    }
    if terminal && live {
        eprintln!();
    }
    let (stop_reason, stopped_early, mut failed) = match stop {
        Stop::Planned(reason) | Stop::Other(reason) => (reason, false, None),
        Stop::Early(reason) => (reason, true, None),
        Stop::Failed(reason) => (reason.clone(), false, Some(reason)),
    };
    if !quiet {
        eprintln!("Stopping ({stop_reason}): waiting for requests in flight...");
    }
    node.stop();
    let give_up = Instant::now() + plan.stop_timeout + STOP_GRACE;
    loop {
        match node.events().recv_deadline(give_up) {
            Ok(NodeEvent::Delta(delta)) => {
                if let Some(w) = stats.merge(&delta) {
                    log::warn!("{w}");
                }
                warn_if_nothing_connects(&mut connect_judged, &stats);
                write_csv(&mut csv_report, |r| {
                    r.append_history(&stats, delta.at_ms, delta.last)
                });
                if delta.last {
                    break;
                }
            }
            Ok(NodeEvent::Warning(w)) => log::warn!("{w}"),
            Ok(
                NodeEvent::StopRequested(_)
                | NodeEvent::IterationsDone
                | NodeEvent::SpawningComplete(_),
            ) => {}
            Ok(NodeEvent::Failed(reason)) => {
                // While stopping: the stop reason stands, the run failed.
                failed.get_or_insert(reason);
            }
            Err(_) => {
                log::warn!("a node did not send its last report; totals may be short");
                break;
            }
        }
    }
    let seconds = stats_since.elapsed().as_secs_f64();
    let ended_ms = unix_ms();
    let pinned = node.pinned();
    for problem in node.finish() {
        log::warn!("{problem}");
    }
    let mut summary = Summary::build(
        plan,
        &stats,
        (started_ms, ended_ms, seconds),
        pinned,
        &stop_reason,
    );
    summary.stopped_early = stopped_early;
    if driver.is_open() {
        summary.parameters.set_open_model(&plan.open);
    }
    summary.thresholds = threshold::evaluate(&plan.thresholds.list, &stats, seconds);
    if let Some(path) = &plan.json {
        output::write_output(path, summary.to_json().as_bytes()).map_err(|e| RunError::Output {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    if let (Some(report), Some(prefix)) = (&csv_report, &plan.outputs.csv) {
        report
            .write_tables(&summary, true)
            .map_err(|e| RunError::Output {
                path: CsvReport::paths(prefix)[0].display().to_string(),
                reason: e.to_string(),
            })?;
    }
    if let Some(path) = &plan.outputs.html {
        let report = html::render(
            &summary,
            stats.history(),
            crate::REPORT_INTERVAL.as_secs_f64(),
        );
        output::write_output(path, report.as_bytes()).map_err(|e| RunError::Output {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(RunOutcome {
        summary,
        state: RunState::Stopped,
        threshold_abort,
        failed,
    })
}

/// Says once, on the first report that holds a request (during the run or
/// while it stops), when every request so far failed to connect.
fn warn_if_nothing_connects(judged: &mut bool, stats: &RunStats) {
    if !*judged && stats.aggregated().requests > 0 {
        *judged = true;
        if let Some(w) = console::connect_warning(stats) {
            log::warn!("{w}");
        }
    }
}

/// Whether the load first reached its target (`--reset-stats`).
fn driver_target_reached(driver: &Driver, stats: &RunStats, elapsed: Duration) -> bool {
    match driver.first_target() {
        Some(Target::Users(users)) => stats.users() >= users,
        Some(Target::RateAt(at)) => elapsed >= at,
        None => false,
    }
}

/// Runs `write` on the CSV report, if there is one; on an error, warns and
/// drops the report (the run goes on).
fn write_csv(
    report: &mut Option<CsvReport>,
    write: impl FnOnce(&mut CsvReport) -> std::io::Result<()>,
) {
    if let Some(r) = report.as_mut()
        && let Err(e) = write(r)
    {
        log::warn!("cannot write the CSV files ({e}); they stop here");
        *report = None;
    }
}

/// The progress line on a terminal: a bar when the run time is known,
/// then [`progress_line`], rewritten in place.
fn progress(plan: &RunPlan, target: Option<u64>, stats: &RunStats, elapsed: Duration) {
    const WIDTH: usize = 20;
    let bar = plan
        .duration
        .map(|d| {
            let done = (elapsed.as_secs_f64() / d.as_secs_f64().max(1e-9) * WIDTH as f64) as usize;
            let done = done.min(WIDTH);
            format!("[{}{}] ", "#".repeat(done), ".".repeat(WIDTH - done))
        })
        .unwrap_or_default();
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r{bar}{}   ",
        progress_line(plan, target, stats, elapsed)
    );
    let _ = err.flush();
}

/// Elapsed / total time, users, requests, failures and current requests
/// per second.
fn progress_line(
    plan: &RunPlan,
    target: Option<u64>,
    stats: &RunStats,
    elapsed: Duration,
) -> String {
    let total = plan
        .duration
        .map_or("--:--".to_string(), |d| console::clock(d.as_secs()));
    let (rps, _) = stats.current(None);
    let all = stats.aggregated();
    format!(
        "{} / {}  users {}{}  reqs {}  fails {}  rps {:.0}",
        console::clock(elapsed.as_secs()),
        total,
        stats.users(),
        target.map_or(String::new(), |t| format!("/{t}")),
        all.requests,
        all.failures,
        rps
    )
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
