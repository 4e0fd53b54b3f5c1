//! A node: the shards of one process, and the aggregator that merges their
//! deltas into one delta per report interval for whoever runs the node (the
//! controller, in-process or over the network).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blast_proto::StatsDelta;

use crate::http::{Limits, Origin, tls_config};
use crate::runtime;
use crate::shard::{
    Budget, Group, OpenSettings, ShardCommand, ShardReport, ShardSettings, run_shard,
};
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
    /// The open model's settings, when the load is an arrival rate
    /// ([`LocalNode::set_rate`]).
    pub open: Option<OpenModel>,
    /// End after this many task iterations.
    pub iterations: Option<IterationLimit>,
}

/// How the open model runs on a node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenModel {
    /// Users the node's pool may grow to, across its shards.
    pub max_users: u64,
    /// How long an iteration may wait for a free user before it is
    /// dropped (zero: dropped at once when none is free).
    pub max_wait: Duration,
    /// Poisson arrivals (exponential gaps) rather than evenly spaced ones.
    pub poisson: bool,
    /// Seed for the Poisson gaps.
    pub seed: u64,
}

/// An iteration limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IterationLimit {
    /// How many task iterations.
    pub count: u64,
    /// Per user rather than in total.
    pub per_user: bool,
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
    Delta(Box<StatsDelta>),
    /// Something the user should know (a shard lost, a sequence gap).
    Warning(String),
    /// A script asked for the run to stop (`stop_test(reason)`).
    StopRequested(String),
    /// The iteration limit was reached: every iteration ran (or, in the
    /// open model, was dropped).
    IterationsDone,
}

/// The shards of this process.
pub struct LocalNode {
    commands: Vec<flume::Sender<ShardCommand>>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    aggregator: Option<JoinHandle<()>>,
    /// The run-wide user count the last ramp aims at.
    target_users: u64,
    /// The same, per user type, for loads that set each type's count.
    target_types: Vec<u64>,
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
            epoch: Instant::now(),
            scenario: config.scenario,
            open: config.open.map(|o| OpenSettings {
                max_users: o.max_users,
                max_wait: o.max_wait,
                poisson: o.poisson,
                seed: o.seed,
            }),
            budget: config
                .iterations
                .map(|i| Arc::new(Budget::new(i.count, i.per_user))),
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
            target_types: Vec::new(),
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
        let aggregator = Aggregator {
            shards,
            interval: settings.report_interval,
            per_user: settings.budget.as_ref().is_some_and(|b| b.per_user),
            commands: node.commands.clone(),
            events: event_tx,
            hook_results: hook_tx,
        };
        let aggregator = std::thread::Builder::new()
            .name("blast-aggregator".into())
            .spawn(move || aggregator.run(report_rx));
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
            group: Group::Mixed,
            from: self.target_users,
            to: users,
            rate,
            at: Instant::now(),
        };
        self.target_users = users;
        self.send(command);
    }

    /// Moves each user type `t` to `users[t]` users (run-wide), spawning
    /// or stopping `rate` users per second in all: each type's share of the
    /// rate is its share of the change, so every type arrives together.
    pub fn ramp_types_to(&mut self, users: &[u64], rate: f64) {
        if self.target_types.len() < users.len() {
            self.target_types.resize(users.len(), 0);
        }
        let change: u64 = users
            .iter()
            .zip(&self.target_types)
            .map(|(to, from)| to.abs_diff(*from))
            .sum();
        let at = Instant::now();
        for (t, &to) in users.iter().enumerate() {
            let from = self.target_types[t];
            if from == to {
                continue;
            }
            let share = rate * to.abs_diff(from) as f64 / change as f64;
            self.send(ShardCommand::Ramp {
                group: Group::Type(t),
                from,
                to,
                rate: share,
                at,
            });
            self.target_types[t] = to;
        }
    }

    /// Open model: moves the arrival rate (iterations per second, run-wide)
    /// linearly to `rate` over `over`, from now (a step when `over` is
    /// zero). Needs [`NodeConfig::open`].
    pub fn set_rate(&mut self, rate: f64, over: Duration) {
        self.send(ShardCommand::Rate {
            rate,
            over,
            at: Instant::now(),
        });
    }

    fn send(&self, command: ShardCommand) {
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

/// Merges shard deltas into one node delta per interval and sequences the
/// end of a run (see [`Aggregator::run`]).
struct Aggregator {
    shards: usize,
    interval: Duration,
    /// Whether an iteration limit is per user (every shard must be done).
    per_user: bool,
    commands: Vec<flume::Sender<ShardCommand>>,
    events: flume::Sender<NodeEvent>,
    hook_results: flume::Sender<Result<Option<String>, String>>,
}

/// Shard deltas with one number, merged, waiting for the rest.
struct Bucket {
    delta: StatsDelta,
    /// When its first delta came: a shard that is later than two intervals
    /// behind it does not hold the others back.
    since: Instant,
}

impl Aggregator {
    /// Shards cut their deltas on the node's clock, so every shard's delta
    /// number `n` covers the same second: the merged delta `n` goes out
    /// once each running shard's has come (or two intervals after the
    /// first, if one is late; its delta then joins the next). After every
    /// shard's last delta, it sends the last merged one and ends. It also
    /// sequences the end of a run: once every shard's users stopped, the
    /// stop hook runs on shard 0, then every shard is told to finish.
    fn run(self, reports: flume::Receiver<ShardReport>) {
        let shards = self.shards;
        let mut buckets: BTreeMap<u64, Bucket> = BTreeMap::new();
        // Per shard: the number of its next delta.
        let mut next_seq = vec![0u64; shards];
        let mut finished = vec![false; shards];
        let mut users = vec![0u64; shards];
        let mut busy = vec![0f64; shards];
        // The number of the next merged delta to send.
        let mut next_out = 0u64;
        let mut seq = 0u64;
        let mut stopped = 0;
        let mut iterations_done = 0;
        let emit = |delta: StatsDelta, users: &[u64], busy: &[f64], last: bool, seq: &mut u64| {
            let mut delta = delta;
            delta.source = 0;
            delta.seq = *seq;
            *seq += 1;
            if delta.at_ms == 0 {
                delta.at_ms = crate::stats::unix_ms();
            }
            delta.users = users.iter().sum();
            delta.busy = busy.iter().copied().fold(0.0, f64::max);
            delta.last = last;
            self.events.send(NodeEvent::Delta(Box::new(delta))).is_ok()
        };
        loop {
            let deadline = buckets.values().next().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |b| b.since + self.interval * 2,
            );
            match reports.recv_deadline(deadline) {
                Ok(ShardReport::Delta(delta)) => {
                    let shard = delta.source as usize;
                    if shard >= shards {
                        continue;
                    }
                    if delta.seq != next_seq[shard] {
                        let _ = self.events.send(NodeEvent::Warning(format!(
                            "shard {shard}: delta {} arrived where {} was due; merged anyway, counts may be off",
                            delta.seq, next_seq[shard]
                        )));
                    }
                    next_seq[shard] = delta.seq + 1;
                    if delta.last {
                        finished[shard] = true;
                    } else {
                        users[shard] = delta.users;
                        busy[shard] = delta.busy;
                    }
                    let bucket = buckets
                        .entry(delta.seq.max(next_out))
                        .or_insert_with(|| Bucket {
                            delta: StatsDelta::default(),
                            since: Instant::now(),
                        });
                    bucket.delta.merge(&delta);
                    bucket.delta.at_ms = bucket.delta.at_ms.max(delta.at_ms);
                    if finished.iter().all(|&f| f) {
                        let mut last = StatsDelta::default();
                        for bucket in std::mem::take(&mut buckets).into_values() {
                            last.merge(&bucket.delta);
                            last.at_ms = last.at_ms.max(bucket.delta.at_ms);
                        }
                        users.fill(0);
                        emit(last, &users, &busy, true, &mut seq);
                        return;
                    }
                    // Send every number all running shards have passed.
                    while (0..shards).all(|s| finished[s] || next_seq[s] > next_out) {
                        let delta = buckets
                            .remove(&next_out)
                            .map(|b| b.delta)
                            .unwrap_or_default();
                        next_out += 1;
                        if !emit(delta, &users, &busy, false, &mut seq) {
                            return;
                        }
                    }
                }
                Ok(ShardReport::Ready(..)) => {}
                Ok(ShardReport::UsersStopped) => {
                    stopped += 1;
                    if stopped == shards {
                        let _ = self.commands[0].send(ShardCommand::RunHook(TestHook::Stop));
                    }
                }
                Ok(ShardReport::HookDone(TestHook::Start, result)) => {
                    let _ = self.hook_results.send(result);
                }
                Ok(ShardReport::HookDone(TestHook::Stop, result)) => {
                    if let Err(e) = result {
                        let _ = self
                            .events
                            .send(NodeEvent::Warning(format!("on_test_stop failed: {e}")));
                    }
                    for tx in &self.commands {
                        let _ = tx.send(ShardCommand::Finish);
                    }
                }
                Ok(ShardReport::StopTest(reason)) => {
                    let _ = self.events.send(NodeEvent::StopRequested(reason));
                }
                Ok(ShardReport::IterationsDone) => {
                    iterations_done += 1;
                    if iterations_done == if self.per_user { shards } else { 1 } {
                        let _ = self.events.send(NodeEvent::IterationsDone);
                    }
                }
                Err(flume::RecvTimeoutError::Timeout) => {
                    // A shard is late: send what came, its delta joins the
                    // next one.
                    if let Some((&n, _)) = buckets.iter().next() {
                        let bucket = buckets.remove(&n).map(|b| b.delta).unwrap_or_default();
                        next_out = n + 1;
                        if !emit(bucket, &users, &busy, false, &mut seq) {
                            return;
                        }
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
                        let _ = self.events.send(NodeEvent::Warning(format!(
                            "shard(s) {} ended without their last report",
                            lost.join(", ")
                        )));
                    }
                    let mut last = StatsDelta::default();
                    for bucket in std::mem::take(&mut buckets).into_values() {
                        last.merge(&bucket.delta);
                    }
                    users.fill(0);
                    emit(last, &users, &busy, true, &mut seq);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blast_proto::{EntryDelta, EntryKey, Method};

    fn delta(shard: u32, seq: u64, requests: u64, last: bool) -> ShardReport {
        let mut entry = EntryDelta::new(EntryKey {
            method: Method::Get,
            name: "/".into(),
        });
        for _ in 0..requests {
            entry.record(100, 0, false);
        }
        ShardReport::Delta(Box::new(StatsDelta {
            source: shard,
            seq,
            at_ms: 1000 * (seq + 1),
            entries: vec![entry],
            users: 1,
            last,
            ..StatsDelta::default()
        }))
    }

    /// Feeds `reports` to an aggregator of `shards` shards and returns the
    /// request counts of the merged deltas it sent, in order.
    fn merged(shards: usize, reports: Vec<ShardReport>) -> Vec<(u64, bool)> {
        let (report_tx, report_rx) = flume::unbounded();
        let (event_tx, event_rx) = flume::unbounded();
        let (hook_tx, _hook_rx) = flume::unbounded();
        let aggregator = Aggregator {
            shards,
            interval: Duration::from_secs(3600),
            per_user: false,
            commands: Vec::new(),
            events: event_tx,
            hook_results: hook_tx,
        };
        for report in reports {
            report_tx.send(report).unwrap();
        }
        drop(report_tx);
        aggregator.run(report_rx);
        event_rx
            .try_iter()
            .filter_map(|e| match e {
                NodeEvent::Delta(d) => {
                    Some((d.entries.iter().map(|e| e.requests).sum::<u64>(), d.last))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn deltas_with_one_number_go_out_together() {
        // Shard 1 runs a delta behind shard 0: each second still goes out
        // as one delta holding both shards' counts for it.
        let out = merged(
            2,
            vec![
                delta(0, 0, 10, false),
                delta(0, 1, 20, false),
                delta(1, 0, 1, false),
                delta(0, 2, 30, false),
                delta(1, 1, 2, false),
                delta(1, 2, 3, false),
                delta(0, 3, 0, true),
                delta(1, 3, 4, true),
            ],
        );
        assert_eq!(out, [(11, false), (22, false), (33, false), (4, true)]);
    }

    #[test]
    fn a_finished_shard_holds_nothing_back() {
        let out = merged(
            2,
            vec![
                delta(1, 0, 5, true),
                delta(0, 0, 1, false),
                delta(0, 1, 2, false),
                delta(0, 2, 3, true),
            ],
        );
        // Shard 1's last delta joins second 0; shard 0 goes on alone.
        assert_eq!(out, [(6, false), (2, false), (3, true)]);
    }

    #[test]
    fn a_lost_shard_still_ends_the_stream() {
        let out = merged(2, vec![delta(0, 0, 7, false)]);
        assert_eq!(out, [(7, true)]);
    }
}
