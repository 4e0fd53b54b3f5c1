//! blast's load engine: one shard per core, each with its own executor,
//! HTTP/1.1 client, users and statistics.
//!
//! - [`LocalNode`] starts the shards of this process, takes commands (ramp
//!   to N users, stop) and delivers merged [`blast_proto::StatsDelta`]s.
//! - [`VirtualUser`] is what a shard runs; a per-shard [`ShardScenario`]
//!   makes users. The engine knows nothing of Rhai.
//! - [`http`] is the HTTP/1.1 client: a sans-IO codec, connections, TLS.
//!
//! Nothing here knows the controller exists. Only the `runtime` module names
//! the executor library (glommio).

#![warn(missing_docs)]

mod aggregate;
mod drive;
pub mod http;
mod node;
mod open;
mod ramp;
mod runtime;
mod schedule;
mod shard;
mod stats;
mod user;

pub use node::{IterationLimit, LocalNode, NodeConfig, NodeError, NodeEvent, OpenModel};
pub use runtime::allowed_cpus;
pub use user::{
    Outcome, Resume, ScenarioBuilder, ScriptError, ShardScenario, Step, TestHook, VirtualUser,
    Wait, Work,
};
