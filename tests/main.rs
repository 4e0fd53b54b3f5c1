//! blast's integration tests: one binary, one module per area. Load tests
//! take `blast_cli::exclusive()` so they run one at a time.

mod blast_cli;
mod engine_faults;
mod engine_nginx;
mod harness_selftest;
mod hosts;
mod load_models;
mod outputs;
mod scenario_language;
mod scripts;
mod shared_state;
mod support;
mod target_runs;
