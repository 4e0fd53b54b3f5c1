//! A node: the shards of one process, and the aggregator that merges their
//! deltas into one delta per report interval for whoever runs the node (the
//! controller, in-process or over the network).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blast_proto::StatsDelta;

use crate::http::{Limits, Origin, tls_config};
use crate::runtime;
use crate::shard::{ShardCommand, ShardReport, ShardSettings, run_shard};
use crate::user::{ScenarioBuilder, TestHook};

/// How a node runs.
#[derive(Clone)]
pub struct NodeConfig {
    /// Number of shards (threads, one executor each).
    pub shards: usize,
    /// The origins requests may go to, resolved already; index 0 is the
    /// run's host.
    pub origins: Vec<Origin>,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Response limits.
    pub limits: Limits,
    /// Default request timeout (connecting included).
    pub timeout: Duration,
    /// How long a stop waits for requests in flight.
    pub stop_timeout: Duration,
    /// How often shards report.
    pub report_interval: Duration,
    /// Builds each shard's scenario.
    pub scenario: ScenarioBuilder,
}

/// An error that stops a node from starting.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A shard thread or executor could not start.
    #[error("cannot start shard {shard}: {reason}")]
    Shard {
        /// Which shard.
        shard: usize,
        /// Why.
        reason: String,
    },
    /// The scenario could not be set up on a shard.
    #[error("{0}")]
    Scenario(String),
    /// TLS could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// What a node tells whoever runs it.
#[derive(Debug)]
pub enum NodeEvent {
    /// The merged delta of all shards for one interval. The last one has
    /// `last` set: after it, nothing more comes.
    Delta(StatsDelta),
    /// Something the user should know (a shard lost, a sequence gap).
    Warning(String),
    /// A script asked for the run to stop (`stop_test(reason)`).
    StopRequested(String),
}

/// The shards of this process.
pub struct LocalNode {
    commands: Vec<flume::Sender<ShardCommand>>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    aggregator: Option<JoinHandle<()>>,
    /// The run-wide user count the last ramp aims at.
    target_users: u64,
    shards: usize,
    /// Whether shards are pinned to cores.
    pub pinned: bool,
}

impl LocalNode {
    /// Starts `config.shards` shards and builds the scenario on each. Returns
    /// once every shard is ready, with the channel its merged deltas come on.
    pub fn start(config: NodeConfig) -> Result<(LocalNode, flume::Receiver<NodeEvent>), NodeError> {
        let shards = config.shards.max(1);
        let needs_tls = config
            .origins
            .iter()
            .any(|o| o.scheme == crate::http::Scheme::Https);
        let tls = if needs_tls {
            Some(tls_config(config.insecure).map_err(NodeError::Tls)?)
        } else {
            None
        };
        let settings = ShardSettings {
            shards,
            origins: Arc::from(config.origins),
            tls,
            limits: config.limits,
            timeout: config.timeout,
            stop_timeout: config.stop_timeout,
            report_interval: config.report_interval,
            scenario: config.scenario,
        };
        // Pin one shard per core when the machine has the cores.
        let cpus = runtime::allowed_cpus();
        let pinned = shards <= cpus.len();
        let (report_tx, report_rx) = flume::unbounded();
        let mut commands = Vec::with_capacity(shards);
        let mut threads = Vec::with_capacity(shards);
        for index in 0..shards {
            let (command_tx, command_rx) = flume::unbounded();
            let settings = settings.clone();
            let reports = report_tx.clone();
            let cpu = if pinned {
                cpus.get(index).copied()
            } else {
                None
            };
            let thread = runtime::start_shard(format!("blast-shard-{index}"), cpu, move || {
                run_shard(index, settings, command_rx, reports)
            })
            .map_err(|e| NodeError::Shard {
                shard: index,
                reason: e.to_string(),
            })?;
            commands.push(command_tx);
            threads.push(thread);
        }
        drop(report_tx);
        let mut node = LocalNode {
            commands,
            threads,
            aggregator: None,
            target_users: 0,
            shards,
            pinned,
        };
        // Wait until every shard has built its scenario.
        let mut ready = 0;
        while ready < shards {
            match report_rx.recv() {
                Ok(ShardReport::Ready(Ok(()))) => ready += 1,
                Ok(ShardReport::Ready(Err(e))) => {
                    node.abort();
                    return Err(NodeError::Scenario(e));
                }
                Ok(_) => {}
                Err(_) => {
                    let reason = node.abort();
                    return Err(NodeError::Shard {
                        shard: ready,
                        reason,
                    });
                }
            }
        }
        let (event_tx, event_rx) = flume::unbounded();
        let (hook_tx, hook_rx) = flume::unbounded();
        let interval = settings.report_interval;
        let commands = node.commands.clone();
        let aggregator = std::thread::Builder::new()
            .name("blast-aggregator".into())
            .spawn(move || aggregate(shards, interval, report_rx, event_tx, commands, hook_tx));
        match aggregator {
            Ok(thread) => node.aggregator = Some(thread),
            Err(e) => {
                node.abort();
                return Err(NodeError::Shard {
                    shard: 0,
                    reason: e.to_string(),
                });
            }
        }
        // The run-wide start hook, on shard 0, before any user; what it
        // returns goes to every shard ahead of the first ramp.
        let _ = node.commands[0].send(ShardCommand::RunHook(TestHook::Start));
        match hook_rx.recv() {
            Ok(Ok(Some(json))) => {
                for tx in &node.commands {
                    let _ = tx.send(ShardCommand::TestData(json.clone()));
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                node.abort();
                return Err(NodeError::Scenario(format!("on_test_start failed: {e}")));
            }
            Err(_) => {
                let reason = node.abort();
                return Err(NodeError::Shard { shard: 0, reason });
            }
        }
        Ok((node, event_rx))
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Moves to `users` users (run-wide), spawning or stopping `rate` per
    /// second from now.
    pub fn ramp_to(&mut self, users: u64, rate: f64) {
        let command = ShardCommand::Ramp {
            from: self.target_users,
            to: users,
            rate,
            at: Instant::now(),
        };
        self.target_users = users;
        for tx in &self.commands {
            let _ = tx.send(command.clone());
        }
    }

    /// Stops the run: shards stop their users; once all have, shard 0 runs
    /// the run-wide stop hook; then every shard reports a last delta and
    /// ends. The event channel delivers the final merged delta and closes.
    pub fn stop(&mut self) {
        for tx in &self.commands {
            let _ = tx.send(ShardCommand::StopUsers);
        }
    }

    /// Waits for every shard and the aggregator to end (after [`stop`]).
    ///
    /// [`stop`]: LocalNode::stop
    pub fn join(mut self) -> Vec<String> {
        self.commands.clear();
        let mut problems = Vec::new();
        for (index, thread) in self.threads.drain(..).enumerate() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("shard {index}: {e}")),
                Err(_) => problems.push(format!("shard {index} panicked")),
            }
        }
        if let Some(aggregator) = self.aggregator.take() {
            let _ = aggregator.join();
        }
        problems
    }

    /// Stops and joins whatever started, returning why a shard failed.
    fn abort(&mut self) -> String {
        for tx in &self.commands {
            let _ = tx.send(ShardCommand::Finish);
        }
        self.commands.clear();
        let mut reason = String::from("a shard ended before it was ready");
        for thread in self.threads.drain(..) {
            if let Ok(Err(e)) = thread.join() {
                reason = e.to_string();
            }
        }
        reason
    }
}

/// Merges shard deltas into one node delta per interval; after every shard's
/// last delta, sends the last merged one and ends. It also sequences the
/// end of a run: once every shard's users stopped, the stop hook runs on
/// shard 0, then every shard is told to finish.
fn aggregate(
    shards: usize,
    interval: Duration,
    reports: flume::Receiver<ShardReport>,
    events: flume::Sender<NodeEvent>,
    commands: Vec<flume::Sender<ShardCommand>>,
    hook_results: flume::Sender<Result<Option<String>, String>>,
) {
    let mut stopped = 0;
    let mut pending = StatsDelta::default();
    let mut expected_seq = vec![0u64; shards];
    let mut users = vec![0u64; shards];
    let mut busy = vec![0f64; shards];
    let mut finished = vec![false; shards];
    let mut seq = 0u64;
    let mut next = Instant::now() + interval;
    let mut emit = |pending: &mut StatsDelta, users: &[u64], busy: &[f64], last: bool| {
        let mut delta = std::mem::take(pending);
        delta.seq = seq;
        seq += 1;
        delta.at_ms = crate::stats::unix_ms();
        delta.users = users.iter().sum();
        delta.busy = busy.iter().copied().fold(0.0, f64::max);
        delta.last = last;
        events.send(NodeEvent::Delta(delta)).is_ok()
    };
    loop {
        let report = reports.recv_deadline(next);
        match report {
            Ok(ShardReport::Delta(delta)) => {
                let shard = delta.source as usize;
                if shard >= shards {
                    continue;
                }
                if delta.seq != expected_seq[shard] {
                    let _ = events.send(NodeEvent::Warning(format!(
                        "shard {shard}: delta {} arrived where {} was due; merged anyway, counts may be off",
                        delta.seq, expected_seq[shard]
                    )));
                }
                expected_seq[shard] = delta.seq + 1;
                if delta.last {
                    finished[shard] = true;
                } else {
                    users[shard] = delta.users;
                    busy[shard] = delta.busy;
                }
                pending.merge(&delta);
                if finished.iter().all(|&f| f) {
                    users.fill(0);
                    emit(&mut pending, &users, &busy, true);
                    return;
                }
            }
            Ok(ShardReport::Ready(..)) => {}
            Ok(ShardReport::UsersStopped) => {
                stopped += 1;
                if stopped == shards {
                    let _ = commands[0].send(ShardCommand::RunHook(TestHook::Stop));
                }
            }
            Ok(ShardReport::HookDone(TestHook::Start, result)) => {
                let _ = hook_results.send(result);
            }
            Ok(ShardReport::HookDone(TestHook::Stop, result)) => {
                if let Err(e) = result {
                    let _ = events.send(NodeEvent::Warning(format!("on_test_stop failed: {e}")));
                }
                for tx in &commands {
                    let _ = tx.send(ShardCommand::Finish);
                }
            }
            Ok(ShardReport::StopTest(reason)) => {
                let _ = events.send(NodeEvent::StopRequested(reason));
            }
            Err(flume::RecvTimeoutError::Timeout) => {
                next += interval;
                if !emit(&mut pending, &users, &busy, false) {
                    return;
                }
            }
            Err(flume::RecvTimeoutError::Disconnected) => {
                // Every shard is gone; some without a last delta.
                let lost: Vec<String> = finished
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| !**f)
                    .map(|(i, _)| i.to_string())
                    .collect();
                if !lost.is_empty() {
                    let _ = events.send(NodeEvent::Warning(format!(
                        "shard(s) {} ended without their last report",
                        lost.join(", ")
                    )));
                }
                users.fill(0);
                emit(&mut pending, &users, &busy, true);
                return;
            }
        }
    }
}
