//! What the engine runs: virtual users, as resumable state machines.
//!
//! A user does its work in pieces ([`Work`]): its start hook, a task, its
//! stop hook. The engine starts a piece with [`VirtualUser::start`] and gets
//! back a [`Step`]: a request to send, a sleep, or the end of the piece. It
//! performs the step and hands the result back with
//! [`VirtualUser::resume`]. The script layer implements this with a
//! coroutine per piece, so scripts read as plain sequential code; between
//! pieces a user holds no coroutine at all.

use std::time::Duration;

use crate::http::{Request, Response};

/// A piece of a user's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Once, before the first task.
    OnStart,
    /// One task, chosen by the user.
    Task,
    /// Once, when the user is stopped.
    OnStop,
}

/// What a user asks the engine to do next.
#[derive(Debug)]
pub enum Step {
    /// Send this request and resume with its response.
    Request(Box<Request>),
    /// Sleep, then resume with [`Resume::Woke`].
    Sleep(Duration),
    /// Let other users run, then resume with [`Resume::Woke`].
    Yield,
    /// Count one outcome of the named check; resume with [`Resume::Woke`].
    Check {
        /// The check's name.
        name: String,
        /// Whether it held.
        passed: bool,
    },
    /// Record a custom timing as a `METRIC` entry; resume with
    /// [`Resume::Woke`].
    Metric {
        /// The entry's name.
        name: String,
        /// The time to record.
        elapsed: Duration,
    },
    /// Change how the latest response of this piece of work counts: failed
    /// with this reason, or (`None`) succeeded. A response is recorded when
    /// the piece of work makes its next request, sleeps or ends, so until
    /// then it can still be reclassified. Resume with [`Resume::Woke`].
    Reclassify(Option<String>),
    /// Stop the whole run, for this reason; resume with [`Resume::Woke`]
    /// (the stop follows shortly).
    StopTest(String),
    /// Count a script error and go on (an error in a hook that must not
    /// end the piece of work it runs in); resume with [`Resume::Woke`].
    ScriptError(ScriptError),
    /// The piece of work is over.
    Done(Outcome),
}

/// How a piece of work ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran to its end.
    Completed,
    /// It stopped on a script error; the user goes on with its next task.
    Failed(ScriptError),
    /// It was cut short because the run or the user is stopping.
    Aborted,
    /// The script asked for this user to stop.
    StopUser,
}

/// A script error, as the errors table counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// The error message.
    pub message: String,
    /// Where it happened, as `file:line:column`.
    pub location: String,
}

/// What the engine hands back when it resumes a user.
#[derive(Debug)]
pub enum Resume {
    /// The answer to [`Step::Request`] (failures included: see
    /// [`Response::failure`]).
    Response(Box<Response>),
    /// A sleep or yield is over.
    Woke,
    /// The run is stopping: end the piece of work now.
    Stopping,
}

/// One virtual user: the engine drives it, it decides what to do.
pub trait VirtualUser {
    /// Starts a piece of work and runs it to its first step.
    fn start(&mut self, work: Work) -> Step;

    /// Resumes the piece of work in progress with the result of its last step.
    fn resume(&mut self, input: Resume) -> Step;

    /// How to wait after a task before the next one (closed model; the
    /// open model starts tasks on its own schedule).
    fn wait(&mut self) -> Wait;

    /// What the last piece of work returned, as JSON, when it is worth
    /// keeping (a run-wide start hook's result).
    fn result(&mut self) -> Option<String> {
        None
    }
}

/// How a user waits between tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// This long after the task ended.
    For(Duration),
    /// Keep a schedule of one task every this long: the next task is due
    /// one period after the last was due (Locust's `constant_pacing` and
    /// `constant_throughput`). A user behind its schedule starts its next
    /// task at once, and its requests are timed from when the task was due.
    Pace(Duration),
}

/// The run-wide hooks, each run on one shard: the start and stop hooks
/// once per run, the spawning-complete hook once per completed ramp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestHook {
    /// Before any user starts; what it returns is given to every shard.
    Start,
    /// After every user stopped.
    Stop,
    /// A ramp reached its target, leaving this many users run-wide
    /// (closed model); runs beside the users.
    SpawningComplete(u64),
}

/// A scenario as one shard sees it: it makes that shard's users.
pub trait ShardScenario {
    /// Makes the user with this run-wide index (0, 1, 2, ... in spawn order
    /// across all shards).
    fn new_user(&self, index: u64) -> Box<dyn VirtualUser>;

    /// Makes the user with index `index` among the users of type
    /// `user_type` (its place in the scenario's list of user types), for
    /// loads that set each type's count. `None` when there is no such type.
    fn new_user_of_type(&self, user_type: usize, index: u64) -> Option<Box<dyn VirtualUser>> {
        let _ = (user_type, index);
        None
    }

    /// A user that runs the run-wide `hook` as its [`Work::OnStart`], when
    /// the scenario has that hook.
    fn test_hook(&self, hook: TestHook) -> Option<Box<dyn VirtualUser>> {
        let _ = hook;
        None
    }

    /// What the start hook returned (JSON), before any user of this shard
    /// starts.
    fn set_test_data(&self, json: &str) {
        let _ = json;
    }
}

/// Builds a shard's scenario on the shard's own thread (scenarios hold
/// per-thread state such as a script engine). An error stops the run before
/// any load.
pub type ScenarioBuilder =
    std::sync::Arc<dyn Fn(usize) -> Result<Box<dyn ShardScenario>, String> + Send + Sync>;
