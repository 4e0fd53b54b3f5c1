//! A node: the shards of one process, and the aggregator that merges their
//! deltas into one delta per report interval for whoever runs the node (the
//! controller, in-process or over the network).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blast_proto::StatsDelta;

use crate::aggregate::Aggregator;
use crate::http::{Limits, Origins};
use crate::ramp::RampLine;
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
    /// The origins requests may go to (index 0 is the run's host); more
    /// are added as scripts and redirects name new hosts. The scenario's
    /// builder must be given the same table.
    /// run's host.
    pub origins: Arc<Origins>,
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
    /// A ramp of the closed model reached its target: this many users run
    /// (Locust's spawning_complete). A ramp replaced before it got there
    /// never says so.
    SpawningComplete(u64),
    /// A shard failed (its thread panicked outside user code: a bug in
    /// blast). The other shards go on and still finish when stopped, but
    /// the run's figures miss that shard's latest requests and its share of
    /// the load: whoever runs the node should stop it and say the run
    /// failed.
    Failed(String),
}

/// The shards of this process.
pub struct LocalNode {
    commands: Vec<flume::Sender<ShardCommand>>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    aggregator: Option<JoinHandle<()>>,
    /// The line each group of users last moved along (run-wide counts).
    lines: BTreeMap<Group, RampLine>,
    /// The spawn rate of the last ramp.
    last_rate: f64,
    /// The number of the next ramp.
    next_ramp: u64,
    shards: usize,
    /// Whether shards are pinned to cores.
    pub pinned: bool,
}

impl LocalNode {
    /// Starts `config.shards` shards and builds the scenario on each. Returns
    /// once every shard is ready, with the channel its merged deltas come on.
    pub fn start(config: NodeConfig) -> Result<(LocalNode, flume::Receiver<NodeEvent>), NodeError> {
        let shards = config.shards.max(1);
        let tls = if config.origins.any_https() {
            Some(config.origins.tls().map_err(NodeError::Tls)?)
        } else {
            None
        };
        let settings = ShardSettings {
            shards,
            origins: config.origins,
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
            let failures = report_tx.clone();
            let on_panic = move |reason| {
                let _ = failures.send(ShardReport::Failed {
                    shard: index,
                    reason,
                });
            };
            let thread = runtime::start_shard(
                format!("blast-shard-{index}"),
                cpu,
                move || run_shard(index, settings, command_rx, reports),
                on_panic,
            )
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
            lines: BTreeMap::new(),
            last_rate: 0.0,
            next_ramp: 0,
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
    /// second from now, from wherever a ramp still in progress has got.
    pub fn ramp_to(&mut self, users: u64, rate: f64) {
        self.ramp(&[(Group::Mixed, users)], rate);
    }

    /// Moves each user type `t` to `users[t]` users (run-wide), spawning
    /// or stopping `rate` users per second in all: each type's share of the
    /// rate is its share of the change, so every type arrives together.
    pub fn ramp_types_to(&mut self, users: &[u64], rate: f64) {
        let targets: Vec<(Group, u64)> = users
            .iter()
            .enumerate()
            .map(|(t, &n)| (Group::Type(t), n))
            .collect();
        self.ramp(&targets, rate);
    }

    /// Replaces the ramp in progress with lines from where each group has
    /// got to its target. A ramp to the targets already set is kept (a
    /// plan that holds sends the same targets again), unless it is still
    /// under way and the rate changed.
    fn ramp(&mut self, targets: &[(Group, u64)], rate: f64) {
        let at = Instant::now();
        let line = |group: &Group| self.lines.get(group).copied();
        let same = targets
            .iter()
            .all(|(g, to)| line(g).map_or(*to == 0, |l| l.to == *to));
        let reached = targets
            .iter()
            .all(|(g, _)| line(g).is_none_or(|l| l.reached(at)));
        if same && (reached || rate == self.last_rate) {
            return;
        }
        let from: Vec<u64> = targets
            .iter()
            .map(|(g, _)| line(g).map_or(0, |l| l.position(at)))
            .collect();
        let change: u64 = targets
            .iter()
            .zip(&from)
            .map(|((_, to), from)| to.abs_diff(*from))
            .sum();
        let lines: Vec<(Group, RampLine)> = targets
            .iter()
            .zip(from)
            .map(|(&(group, to), from)| {
                let share = if change == 0 {
                    rate
                } else {
                    rate * to.abs_diff(from) as f64 / change as f64
                };
                let line = RampLine {
                    from,
                    to,
                    rate: share,
                    at,
                };
                (group, line)
            })
            .collect();
        for (group, line) in &lines {
            self.lines.insert(*group, *line);
        }
        self.last_rate = rate;
        let id = self.next_ramp;
        self.next_ramp += 1;
        self.send(ShardCommand::Ramp { id, lines });
    }

    /// The run's planned end: no user is spawned and no arrival starts at
    /// or after `at`, so an open-model run of T seconds at R/s starts
    /// exactly R·T iterations.
    pub fn end_at(&mut self, at: Instant) {
        self.send(ShardCommand::EndAt(at));
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

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
