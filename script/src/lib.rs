//! blast's scenario language, in Rhai.
//!
//! A scenario declares user types (`user(name, #{ weight, wait, tasks })`)
//! whose tasks are script functions that call `http::get(...)` and friends.
//! [`Scenario`] compiles and validates a file on the main thread and gives
//! the engine a builder that compiles it again on each shard; there, each
//! user's work runs on a pooled stackful coroutine (the bridge), so scripts
//! read as plain blocking code while the shard never blocks. A scenario may
//! also define a load shape, `shape(elapsed)`, which [`Shape`] runs on the
//! controller's thread.
//!
//! This crate depends on the engine; the engine knows nothing of it.

#![warn(missing_docs)]

mod bridge;
mod data;
mod declare;
mod discard;
mod hosts;
mod http_api;
mod language;
mod request_hook;
mod scenario;
mod shape;
mod shared;
mod this_binding;
mod typos;
mod user;

pub use declare::{GroupDef, TaskDef, TaskKind, UserType, WaitTime};
pub use http_api::HttpResponse;
pub use scenario::{Scenario, ScenarioError, TagFilter};
pub use shape::{Shape, ShapeNow, ShapeTick};
