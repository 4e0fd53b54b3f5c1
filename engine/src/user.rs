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

    /// How long to wait after a task before the next one.
    fn wait_time(&mut self) -> Duration;
}

/// A scenario as one shard sees it: it makes that shard's users.
pub trait ShardScenario {
    /// Makes the user with this run-wide index (0, 1, 2, ... in spawn order
    /// across all shards).
    fn new_user(&self, index: u64) -> Box<dyn VirtualUser>;
}

/// Builds a shard's scenario on the shard's own thread (scenarios hold
/// per-thread state such as a script engine). An error stops the run before
/// any load.
pub type ScenarioBuilder =
    std::sync::Arc<dyn Fn(usize) -> Result<Box<dyn ShardScenario>, String> + Send + Sync>;
