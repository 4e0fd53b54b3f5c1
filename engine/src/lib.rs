//! blast's load engine: one shard per core, each with its own executor,
//! HTTP/1.1 client, users and statistics.
//!
//! The engine knows nothing of Rhai: it runs any [`VirtualUser`] a
//! per-shard [`ShardScenario`] creates. Nothing here knows the controller
//! exists; a node reports [`blast_proto::StatsDelta`]s over a channel.

#![warn(missing_docs)]

pub mod http;
