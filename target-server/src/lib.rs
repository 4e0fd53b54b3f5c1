//! blast's built-in target: a small, fast HTTP/1.1 server to point load
//! tests at, which counts exactly what it was sent.
//!
//! It backs `blast target` ([`serve_forever`]), `blast demo` and the test
//! suite ([`Target`], started in-process on a free port). Its endpoints
//! (`/`, `/bytes/N`, `/delay/MS`, `/status/CODE`, `/login`, `/me`,
//! `/logout`, `/items`, `/redirect/N`, `/echo`, and the uncounted `/_blast/counts` and
//! `/_blast/reset`) are listed in [`ENDPOINTS`] and answered in `routes.rs`. Every request it answers is
//! counted by path, by method and by second of arrival ([`Counts`]), and
//! optionally appended to an access log. A [`Stall`] makes the server pause
//! now and then, for testing a load generator's coordinated-omission
//! correction.
//!
//! HTTP is hyper's, on a tokio runtime of its own with a configurable number
//! of worker threads ([`TargetOptions`]): this crate never parses HTTP itself,
//! so it is an independent check on blast's own client. It depends on no
//! other blast crate.
//!
//! Modules:
//! - `target`: the [`Target`] handle and [`serve_forever`];
//! - `server`: binding, the runtime, the accept loop and shutdown;
//! - `service`: one request, from hyper's body to a counted response;
//! - `endpoints`: the documented list of paths ([`ENDPOINTS`]);
//! - `routes`, `items`, `session`: what each path answers;
//! - `reply`, `body`: response shapes and the response body type;
//! - `counter`, `counts`, `access_log`: what was served, live and as a snapshot;
//! - `stall`: stop-the-world pauses ([`Stall`]);
//! - `options`, `error`: [`TargetOptions`] and [`TargetError`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access_log;
mod body;
mod counter;
mod counts;
mod endpoints;
mod error;
mod items;
mod options;
mod reply;
mod routes;
mod server;
mod service;
mod session;
mod stall;
mod target;

pub use counts::Counts;
pub use endpoints::{ENDPOINTS, Endpoint, endpoints_help};
pub use error::TargetError;
pub use options::TargetOptions;
pub use stall::Stall;
pub use target::{Target, serve_forever};
