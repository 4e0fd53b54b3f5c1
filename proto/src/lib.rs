//! Everything of blast that crosses a process (or thread) boundary.
//!
//! Today that is the statistics a shard reports: [`StatsDelta`], made of
//! per-endpoint [`EntryDelta`]s keyed by [`EntryKey`] ([`Method`] + name),
//! failures grouped by [`FailureKind`], and script errors. The controller and
//! node messages and their frame codec join it with distributed runs.
//!
//! This crate knows nothing of sockets, executors or scripts.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod failure;
mod method;
mod stats;

pub use failure::FailureKind;
pub use method::Method;
pub use stats::{
    CheckDelta, EntryDelta, EntryKey, FailureDelta, LatencyHistogram, ScriptErrorDelta, StatsDelta,
    merge_checks, merge_errors, merge_failures, new_histogram,
};
