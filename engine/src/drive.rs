//! Driving one piece of a user's work (a hook or a task) to its end:
//! performing each step it asks for (a request, with redirects; a sleep; a
//! check or metric) and recording its requests, corrected for lateness.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use blast_proto::FailureKind;

use crate::http::{HttpClient, MAX_REDIRECTS, Request, Response, follow, is_redirect};
use crate::runtime::{self, Signal};
use crate::shard::{Shard, ShardReport};
use crate::user::{Outcome, Resume, Step, VirtualUser, Work};

/// A response recorded once its piece of work moves on, so the script can
/// still reclassify it (`r.fail()`, `r.succeed()`).
struct Pending {
    method: blast_proto::Method,
    name: String,
    elapsed: Duration,
    late: Duration,
    bytes: u64,
    failure: Option<(FailureKind, String)>,
}

fn flush(shard: &Shard, pending: &mut Option<Pending>) {
    if let Some(p) = pending.take() {
        shard.stats.borrow_mut().record_late(
            p.method,
            &p.name,
            p.elapsed,
            p.late,
            p.bytes,
            p.failure
                .as_ref()
                .map(|(kind, message)| (*kind, message.as_str())),
        );
    }
}

/// Runs one piece of a user's work to its end. The work started `late`
/// after it was due: each of its requests is recorded both as measured and
/// corrected by that much (it was due that much earlier).
pub(crate) async fn drive(
    shard: &Shard,
    user: &mut dyn VirtualUser,
    work: Work,
    client: &mut HttpClient,
    stop: &Signal,
    late: Duration,
) -> Outcome {
    // The stop hook may still send requests while the run stops (a logout),
    // until the stop timeout cuts them; other work ends at its next step.
    let cut_short = || {
        if work == Work::OnStop {
            shard.client.hard_stop.fired()
        } else {
            stop.fired()
        }
    };
    let mut pending: Option<Pending> = None;
    let mut step = guarded(|| user.start(work));
    loop {
        let input = match step {
            Step::Done(outcome) => {
                flush(shard, &mut pending);
                if let Outcome::Failed(error) = &outcome {
                    shard
                        .stats
                        .borrow_mut()
                        .record_error(&error.message, &error.location);
                }
                return outcome;
            }
            Step::Check { name, passed } => {
                shard.stats.borrow_mut().record_check(&name, passed);
                Resume::Woke
            }
            Step::Metric { name, elapsed } => {
                shard.stats.borrow_mut().record(
                    blast_proto::Method::Metric,
                    &name,
                    elapsed,
                    0,
                    None,
                );
                Resume::Woke
            }
            Step::Reclassify(failure) => {
                if let Some(p) = &mut pending {
                    p.failure = failure.map(|reason| (FailureKind::Script, reason));
                }
                Resume::Woke
            }
            Step::ScriptError(error) => {
                shard
                    .stats
                    .borrow_mut()
                    .record_error(&error.message, &error.location);
                Resume::Woke
            }
            Step::StopTest(reason) => {
                let _ = shard.reports.send(ShardReport::StopTest(reason));
                Resume::Woke
            }
            _ if cut_short() => Resume::Stopping,
            Step::Request(mut request) => {
                flush(shard, &mut pending);
                let response = fetch(shard, client, &mut request).await;
                let failure = failure_of(&request, &response).map(|kind| (kind, String::new()));
                pending = Some(Pending {
                    method: request.method,
                    name: std::mem::take(&mut request.name),
                    elapsed: response.elapsed,
                    late,
                    bytes: response.body_len,
                    failure,
                });
                Resume::Response(Box::new(response))
            }
            Step::Sleep(duration) => {
                flush(shard, &mut pending);
                futures_lite::future::or(runtime::sleep(duration), async {
                    if work == Work::OnStop {
                        shard.client.hard_stop.wait().await
                    } else {
                        stop.wait().await
                    }
                })
                .await;
                if cut_short() {
                    Resume::Stopping
                } else {
                    Resume::Woke
                }
            }
            Step::Yield => {
                runtime::yield_now().await;
                Resume::Woke
            }
        };
        step = guarded(|| user.resume(input));
    }
}

/// Sends `request`, following redirects when it asks to: the hops count
/// as one request, timed from the first byte sent to the last received,
/// and the final response is the one the script sees. `request` ends as
/// the last hop sent (its method is what the entry is recorded under only
/// via the caller's copy of the first).
async fn fetch(shard: &Shard, client: &mut HttpClient, request: &mut Request) -> Response {
    let first_method = request.method;
    let mut response = client.send(&shard.client, request).await;
    if !request.follow_redirects {
        return response;
    }
    let mut elapsed = response.elapsed;
    let mut bytes = response.body_len;
    let mut hops = 0;
    while response.failure.is_none() && is_redirect(response.status) {
        let Some(location) = response
            .head
            .headers
            .get("location")
            .map(|l| String::from_utf8_lossy(l).into_owned())
        else {
            // A redirect without a target is the final answer.
            break;
        };
        hops += 1;
        if hops > MAX_REDIRECTS {
            response.failure = Some(FailureKind::TooManyRedirects);
            break;
        }
        if let Err(kind) = follow(&shard.client.origins, request, response.status, &location) {
            response.failure = Some(kind);
            break;
        }
        response = client.send(&shard.client, request).await;
        elapsed += response.elapsed;
        bytes += response.body_len;
        if shard.client.hard_stop.fired() {
            break;
        }
    }
    response.elapsed = elapsed;
    response.body_len = bytes;
    // Recorded under the method the script used.
    request.method = first_method;
    response
}

/// Runs a user's code, turning a panic into a failed piece of work so the
/// shard (and every other user on it) survives.
fn guarded(f: impl FnOnce() -> Step) -> Step {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = crate::runtime::panic_message(panic.as_ref());
        Step::Done(Outcome::Failed(crate::user::ScriptError {
            message: format!("internal error: {message}"),
            location: String::new(),
        }))
    })
}

/// Whether a response counts as failed: a transport failure, or a status
/// the request does not accept.
fn failure_of(request: &Request, response: &Response) -> Option<FailureKind> {
    if let Some(kind) = response.failure {
        return Some(kind);
    }
    (!request.accepts(response.status)).then_some(FailureKind::Status(response.status))
}
