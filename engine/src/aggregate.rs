//! The node's aggregator: it merges shard deltas into one delta per report
//! interval and sequences the end of a run (every shard stops its users,
//! the run-wide stop hook runs once, every shard finishes). A shard that
//! fails (panics outside user code) is counted out, so the others still
//! finish and the node says so instead of waiting forever.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use blast_proto::StatsDelta;

use crate::node::NodeEvent;
use crate::shard::{ShardCommand, ShardReport};
use crate::user::TestHook;

/// Merges shard deltas into one node delta per interval and sequences the
/// end of a run (see [`Aggregator::run`]).
pub(crate) struct Aggregator {
    pub(crate) shards: usize,
    pub(crate) interval: Duration,
    /// Whether an iteration limit is per user (every shard must be done).
    pub(crate) per_user: bool,
    pub(crate) commands: Vec<flume::Sender<ShardCommand>>,
    pub(crate) events: flume::Sender<NodeEvent>,
    pub(crate) hook_results: flume::Sender<Result<Option<String>, String>>,
}

/// Shard deltas with one number, merged, waiting for the rest.
struct Bucket {
    delta: StatsDelta,
    /// When its first delta came: a shard that is later than two intervals
    /// behind it does not hold the others back.
    since: Instant,
}

/// What the aggregator knows of one shard.
#[derive(Clone, Copy, Default)]
struct ShardState {
    /// The number of its next delta.
    next_seq: u64,
    /// It sent its last delta, or failed: nothing more will come.
    finished: bool,
    /// It failed (its thread panicked).
    failed: bool,
    /// Its users have all stopped (or it failed).
    users_stopped: bool,
    users: u64,
    busy: f64,
}

/// Whether the aggregator goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    End,
}

/// The aggregator's state during a run.
struct Merge<'a> {
    config: &'a Aggregator,
    buckets: BTreeMap<u64, Bucket>,
    shards: Vec<ShardState>,
    /// The number of the next merged delta to send.
    next_out: u64,
    /// The sequence number of the next delta the node sends.
    seq: u64,
    iterations_done: usize,
    start_hook_done: bool,
    /// The shard the stop hook was sent to, once it was.
    stop_hook_on: Option<usize>,
    /// Ramps some shards have finished: how many shards, by ramp number.
    ramps_done: BTreeMap<u64, usize>,
}

impl Aggregator {
    /// Shards cut their deltas on the node's clock, so every shard's delta
    /// number `n` covers the same second: the merged delta `n` goes out
    /// once each running shard's has come (or two intervals after the
    /// first, if one is late; its delta then joins the next). After every
    /// shard's last delta, it sends the last merged one and ends. It also
    /// sequences the end of a run: once every shard's users stopped, the
    /// stop hook runs on the first shard still running, then every shard
    /// is told to finish.
    pub(crate) fn run(self, reports: flume::Receiver<ShardReport>) {
        let mut merge = Merge {
            config: &self,
            buckets: BTreeMap::new(),
            shards: vec![ShardState::default(); self.shards],
            next_out: 0,
            seq: 0,
            iterations_done: 0,
            start_hook_done: false,
            stop_hook_on: None,
            ramps_done: BTreeMap::new(),
        };
        loop {
            let deadline = merge.buckets.values().next().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |b| b.since + self.interval * 2,
            );
            let flow = match reports.recv_deadline(deadline) {
                Ok(report) => merge.on_report(report),
                Err(flume::RecvTimeoutError::Timeout) => merge.send_oldest(),
                Err(flume::RecvTimeoutError::Disconnected) => {
                    merge.all_gone();
                    Flow::End
                }
            };
            if flow == Flow::End {
                return;
            }
        }
    }
}

impl Merge<'_> {
    fn warn(&self, warning: String) {
        let _ = self.config.events.send(NodeEvent::Warning(warning));
    }

    fn send_all(&self, command: &ShardCommand) {
        for tx in &self.config.commands {
            let _ = tx.send(command.clone());
        }
    }

    /// Sends one merged delta; false when nobody listens any more.
    fn emit(&mut self, mut delta: StatsDelta, last: bool) -> bool {
        delta.source = 0;
        delta.seq = self.seq;
        self.seq += 1;
        if delta.at_ms == 0 {
            delta.at_ms = crate::stats::unix_ms();
        }
        if last {
            delta.users = 0;
        } else {
            delta.users = self.shards.iter().map(|s| s.users).sum();
        }
        delta.busy = self.shards.iter().map(|s| s.busy).fold(0.0, f64::max);
        delta.last = last;
        self.config
            .events
            .send(NodeEvent::Delta(Box::new(delta)))
            .is_ok()
    }

    fn on_report(&mut self, report: ShardReport) -> Flow {
        match report {
            ShardReport::Delta(delta) => return self.on_delta(*delta),
            ShardReport::Ready(..) => {}
            ShardReport::UsersStopped(shard) => self.users_stopped(shard),
            ShardReport::HookDone(TestHook::Start, result) => {
                self.start_hook_done = true;
                let _ = self.config.hook_results.send(result);
            }
            ShardReport::RampDone { id, users } => self.ramp_done(id, users),
            ShardReport::HookDone(TestHook::SpawningComplete(_), result) => {
                if let Err(e) = result {
                    self.warn(format!("on_spawning_complete failed: {e}"));
                }
            }
            ShardReport::HookDone(TestHook::Stop, result) => {
                if let Err(e) = result {
                    self.warn(format!("on_test_stop failed: {e}"));
                }
                self.send_all(&ShardCommand::Finish);
            }
            ShardReport::StopTest(reason) => {
                let _ = self.config.events.send(NodeEvent::StopRequested(reason));
            }
            ShardReport::IterationsDone => {
                self.iterations_done += 1;
                let needed = if self.config.per_user {
                    self.shards.len()
                } else {
                    1
                };
                if self.iterations_done == needed {
                    let _ = self.config.events.send(NodeEvent::IterationsDone);
                }
            }
            ShardReport::Failed { shard, reason } => return self.on_failed(shard, reason),
        }
        Flow::Continue
    }

    fn on_delta(&mut self, delta: StatsDelta) -> Flow {
        let shard = delta.source as usize;
        let Some(state) = self.shards.get_mut(shard) else {
            return Flow::Continue;
        };
        let expected = state.next_seq;
        state.next_seq = delta.seq + 1;
        if delta.last {
            state.finished = true;
        } else {
            state.users = delta.users;
            state.busy = delta.busy;
        }
        if delta.seq != expected {
            self.warn(format!(
                "shard {shard}: delta {} arrived where {expected} was due; merged anyway, counts may be off",
                delta.seq
            ));
        }
        let bucket = self
            .buckets
            .entry(delta.seq.max(self.next_out))
            .or_insert_with(|| Bucket {
                delta: StatsDelta::default(),
                since: Instant::now(),
            });
        bucket.delta.merge(&delta);
        bucket.delta.at_ms = bucket.delta.at_ms.max(delta.at_ms);
        self.send_ready()
    }

    /// Sends the last delta when every shard is finished, else every
    /// merged delta all running shards have passed.
    fn send_ready(&mut self) -> Flow {
        if self.shards.iter().all(|s| s.finished) {
            let mut last = StatsDelta::default();
            for bucket in std::mem::take(&mut self.buckets).into_values() {
                last.merge(&bucket.delta);
                last.at_ms = last.at_ms.max(bucket.delta.at_ms);
            }
            self.emit(last, true);
            return Flow::End;
        }
        while self
            .shards
            .iter()
            .all(|s| s.finished || s.next_seq > self.next_out)
        {
            let delta = self
                .buckets
                .remove(&self.next_out)
                .map(|b| b.delta)
                .unwrap_or_default();
            self.next_out += 1;
            if !self.emit(delta, false) {
                return Flow::End;
            }
        }
        Flow::Continue
    }

    /// A shard is late: sends what came; its delta joins the next one.
    fn send_oldest(&mut self) -> Flow {
        if let Some((&n, _)) = self.buckets.iter().next() {
            let bucket = self.buckets.remove(&n).map(|b| b.delta).unwrap_or_default();
            self.next_out = n + 1;
            if !self.emit(bucket, false) {
                return Flow::End;
            }
        }
        Flow::Continue
    }

    /// Once every shard's users stopped, the stop hook runs on the first
    /// shard still running.
    fn users_stopped(&mut self, shard: usize) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        state.users_stopped = true;
        if self.stop_hook_on.is_some() || !self.shards.iter().all(|s| s.users_stopped) {
            return;
        }
        if let Some(alive) = self.shards.iter().position(|s| !s.failed) {
            self.stop_hook_on = Some(alive);
            let _ = self.config.commands[alive].send(ShardCommand::RunHook(TestHook::Stop));
        }
    }

    /// Once every running shard has made every change of ramp `id`, the
    /// run has its `users`: whoever runs the node hears of it, and the
    /// spawning-complete hook runs on the first shard still running
    /// (unless the run is stopping). A ramp that a
    /// newer one replaced on some shard never completes there; once a
    /// newer ramp completes, older ones never will.
    fn ramp_done(&mut self, id: u64, users: u64) {
        let done = self.ramps_done.entry(id).or_insert(0);
        *done += 1;
        let running = self.shards.iter().filter(|s| !s.failed).count();
        if *done < running {
            return;
        }
        self.ramps_done = self.ramps_done.split_off(&(id + 1));
        // (A failed shard counts as stopped, but the run is not stopping.)
        if self.shards.iter().any(|s| s.users_stopped && !s.failed) {
            return;
        }
        let _ = self.config.events.send(NodeEvent::SpawningComplete(users));
        if let Some(first) = self.shards.iter().position(|s| !s.failed) {
            let hook = ShardCommand::RunHook(TestHook::SpawningComplete(users));
            let _ = self.config.commands[first].send(hook);
        }
    }

    /// A shard's thread panicked: whoever runs the node hears of it (the
    /// run's figures now miss that shard's latest requests), and the shard
    /// no longer holds back merging, the stop hook or the end.
    fn on_failed(&mut self, shard: usize, reason: String) -> Flow {
        let Some(state) = self.shards.get_mut(shard) else {
            return Flow::Continue;
        };
        if state.finished {
            // It had sent its last delta: nothing it counted is lost.
            self.warn(format!(
                "shard {shard} failed after its last report: {reason}"
            ));
            return Flow::Continue;
        }
        state.finished = true;
        state.failed = true;
        state.users = 0;
        state.busy = 0.0;
        let message = format!(
            "shard {shard} failed: {reason} (its requests since its last report are not counted)"
        );
        let _ = self.config.events.send(NodeEvent::Failed(message.clone()));
        if shard == 0 && !self.start_hook_done {
            self.start_hook_done = true;
            let _ = self.config.hook_results.send(Err(message));
        }
        if self.stop_hook_on == Some(shard) {
            self.warn("on_test_stop did not finish: its shard failed".into());
            self.send_all(&ShardCommand::Finish);
        }
        if !self.shards[shard].users_stopped {
            self.users_stopped(shard);
        }
        self.send_ready()
    }

    /// Every shard is gone, some perhaps without a last delta.
    fn all_gone(&mut self) {
        let lost: Vec<String> = self
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.finished)
            .map(|(i, _)| i.to_string())
            .collect();
        if !lost.is_empty() {
            self.warn(format!(
                "shard(s) {} ended without their last report",
                lost.join(", ")
            ));
        }
        let mut last = StatsDelta::default();
        for bucket in std::mem::take(&mut self.buckets).into_values() {
            last.merge(&bucket.delta);
        }
        self.emit(last, true);
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
