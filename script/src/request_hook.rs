//! `fn on_request(req)`: a scenario's per-request hook (Locust's
//! `events.request`), called in the user's context once each request's
//! result is final.
//!
//! A response can still be reclassified (`r.fail()`, `r.succeed()`) until
//! the user's next request or sleep or the end of its task; the engine
//! records it then, and the hook runs then too, so it sees what the
//! statistics count. A scenario without the function pays one flag test
//! per request. An error in the hook is counted as a script error at its
//! position; it ends neither the task nor changes the request's result.
//! Requests the hook itself makes are not passed to it.

use blast_engine::{ScriptError, Step};
use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use crate::bridge;
use crate::scenario::{ScenarioError, innermost, location};
use crate::user::with_ctx;

/// The hook's name.
pub(crate) const ON_REQUEST: &str = "on_request";

/// A finished request, as the hook gets it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RequestInfo {
    pub(crate) method: &'static str,
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) status: u16,
    pub(crate) latency_ms: f64,
    pub(crate) size: u64,
    pub(crate) ok: bool,
    /// Why it failed (`HTTP 500`, `connection failed`, a script's
    /// `r.fail(reason)`); empty when it did not.
    pub(crate) error: String,
}

impl RequestInfo {
    fn into_map(self) -> Map {
        let mut map = Map::new();
        map.insert("method".into(), self.method.into());
        map.insert("name".into(), self.name.into());
        map.insert("url".into(), self.url.into());
        map.insert("status".into(), Dynamic::from_int(i64::from(self.status)));
        map.insert("latency".into(), Dynamic::from_float(self.latency_ms));
        map.insert("size".into(), Dynamic::from_int(self.size as i64));
        map.insert("ok".into(), self.ok.into());
        map.insert("error".into(), self.error.clone().into());
        map.insert("exception".into(), self.error.into());
        map
    }
}

/// Whether the scenario defines the hook; one that takes other than one
/// parameter is an error, found before the run.
pub(crate) fn defined(file: &str, ast: &AST) -> Result<bool, ScenarioError> {
    match ast.iter_fn_def().find(|f| f.name == ON_REQUEST) {
        None => Ok(false),
        Some(f) if f.params.len() == 1 => Ok(true),
        Some(f) => Err(ScenarioError::Script {
            location: location(file, f.body.start_position()),
            message: format!(
                "{ON_REQUEST}() takes {} parameter(s); it must take one, the finished request: fn {ON_REQUEST}(req) {{ ... }}",
                f.params.len()
            ),
        }),
    }
}

/// Keeps `info` for the hook (called only when the scenario has one),
/// unless this request is the hook's own. `info` is only built when needed.
pub(crate) fn finished(info: impl FnOnce() -> RequestInfo) {
    with_ctx(|c| {
        if !c.in_hook {
            c.finished_request = Some(info());
        }
    });
}

/// `r.fail(reason)` / `r.succeed()` on the latest response.
pub(crate) fn reclassified(failure: Option<&str>) {
    with_ctx(|c| {
        if let Some(info) = &mut c.finished_request {
            info.ok = failure.is_none();
            info.error = failure.unwrap_or_default().to_string();
        }
    });
}

/// Takes the finished request the hook has not seen, entering the hook.
fn take() -> Option<RequestInfo> {
    with_ctx(|c| {
        let info = c.finished_request.take()?;
        c.in_hook = true;
        Some(info)
    })
}

fn leave(file: &str, result: Result<Dynamic, Box<EvalAltResult>>) {
    with_ctx(|c| c.in_hook = false);
    let Err(e) = result else {
        return;
    };
    let (inner, message, pos) = innermost(&e);
    if matches!(inner, EvalAltResult::ErrorTerminated(..)) {
        // The run or user is stopping (or the hook called stop_user()): the
        // piece of work ends at its next step.
        return;
    }
    // Requests need a piece of work, so one is running: the engine counts
    // the error and resumes at once.
    let _ = bridge::suspend(Step::ScriptError(ScriptError {
        message: format!("in {ON_REQUEST}(): {message}"),
        location: location(file, pos),
    }));
}

/// Runs the hook for the latest finished request, from a script function
/// about to make the next request or sleep.
pub(crate) fn run_from(call: &NativeCallContext) {
    let Some(info) = take() else {
        return;
    };
    let mut req = Dynamic::from_map(info.into_map());
    // Called as a method on the user's `this`, as its tasks are.
    let result = match with_ctx(|c| c.this.clone()) {
        Some(mut this) => call.call_fn_raw(ON_REQUEST, true, true, &mut [&mut this, &mut req]),
        None => call.call_fn_raw(ON_REQUEST, false, false, &mut [&mut req]),
    };
    leave(call.call_source().unwrap_or_default(), result);
}

/// Runs the hook for the latest finished request once a piece of work
/// ended, with the user's `this`.
pub(crate) fn run_after(engine: &Engine, ast: &AST, file: &str, this: &mut Dynamic) {
    let Some(info) = take() else {
        return;
    };
    // Not `call_fn`, which would run the top level again first.
    let options = CallFnOptions::new()
        .eval_ast(false)
        .rewind_scope(true)
        .bind_this_ptr(this);
    let result = engine.call_fn_with_options::<Dynamic>(
        options,
        &mut rhai::Scope::new(),
        ast,
        ON_REQUEST,
        (Dynamic::from_map(info.into_map()),),
    );
    leave(file, result);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use blast_engine::http::Response;
    use blast_engine::{Outcome, Resume, ShardScenario, Step, VirtualUser, Work};

    use crate::scenario::{CompileContext, compile};
    use crate::user::ShardScript;

    fn user_of(source: &str) -> Box<dyn VirtualUser> {
        let context = CompileContext {
            origins: Some(Arc::new(blast_engine::http::Origins::new(
                vec![blast_engine::http::Origin::resolve("http://127.0.0.1:1").unwrap()],
                false,
            ))),
            dir: std::path::PathBuf::new(),
            shard: 0,
            shards: 1,
            tags: crate::TagFilter::default(),
            shared: Arc::default(),
            cursors: crate::data::RunCursors::default(),
        };
        let compiled = compile("u.rhai", source, context).unwrap();
        ShardScript::new("u.rhai", compiled, 1, vec![0], 1).new_user(0)
    }

    fn response(status: u16, size: u64) -> Resume {
        Resume::Response(Box::new(Response {
            status,
            body_len: size,
            elapsed: Duration::from_millis(3),
            ..Response::default()
        }))
    }

    fn metric_name(step: Step) -> String {
        match step {
            Step::Metric { name, .. } => name,
            other => panic!("expected the hook's metric, got {other:?}"),
        }
    }

    const HOOKED: &str = "user(\"A\", #{ tasks: [Fn(\"t\")] });\n\
        fn on_request(req) {\n\
            metric(`${req.method} ${req.name} ${req.url} ${req.status} ${req.size} ${req.ok} [${req.error}] ${req.latency > 0.0}`, 1);\n\
            if req.status == 500 { http::get(\"/from-hook\"); nothing_here }\n\
        }\n\
        fn t() {\n\
            let r = http::get(\"/a\");\n\
            r.fail(\"nope\");\n\
            http::post(\"/b\", #{ name: \"B\" });\n\
            sleep(1);\n\
            http::get(\"/c\");\n\
        }\n";

    #[test]
    fn the_hook_sees_each_final_result_and_its_errors_do_not_end_the_task() {
        let mut user = user_of(HOOKED);
        assert!(matches!(user.start(Work::Task), Step::Request(r) if r.path == "/a"));
        assert!(matches!(user.resume(response(200, 5)), Step::Reclassify(_)));
        // The next request makes the first one's result final: the hook
        // runs before it goes, with the script's reclassification.
        assert_eq!(
            metric_name(user.resume(Resume::Woke)),
            "GET /a http://127.0.0.1:1/a 200 5 false [nope] true"
        );
        assert!(matches!(user.resume(Resume::Woke), Step::Request(r) if r.path == "/b"));
        assert_eq!(
            metric_name(user.resume(response(500, 0))),
            "POST B http://127.0.0.1:1/b 500 0 false [HTTP 500] true"
        );
        // The hook's own request is not passed to it; its error is counted
        // at its position and the task goes on to its sleep.
        assert!(matches!(user.resume(Resume::Woke), Step::Request(r) if r.path == "/from-hook"));
        match user.resume(response(200, 0)) {
            Step::ScriptError(e) => {
                assert_eq!(e.location, "u.rhai:4:49");
                assert!(e.message.starts_with("in on_request(): "), "{e:?}");
                assert!(e.message.contains("nothing_here"), "{e:?}");
            }
            other => panic!("expected the hook's error, got {other:?}"),
        }
        assert!(matches!(user.resume(Resume::Woke), Step::Sleep(_)));
        assert!(matches!(user.resume(Resume::Woke), Step::Request(r) if r.path == "/c"));
        // The task's last request: the hook runs when the task ends.
        assert_eq!(
            metric_name(user.resume(response(404, 9))),
            "GET /c http://127.0.0.1:1/c 404 9 false [HTTP 404] true"
        );
        assert!(matches!(
            user.resume(Resume::Woke),
            Step::Done(Outcome::Completed)
        ));
    }

    #[test]
    fn the_hook_and_its_helpers_share_the_users_this() {
        // Counted in `this` by the hook (mid-task and at the end of the
        // task) and by a helper it calls the ordinary way; the task reads
        // the counts.
        let mut user = user_of(
            "user(\"A\", #{ on_start: Fn(\"s\"), tasks: [Fn(\"t\")] });\n\
             fn s() { this.seen = 0; this.helped = 0; }\n\
             fn help() { this.helped += 1; }\n\
             fn on_request(req) { this.seen += 1; help(); }\n\
             fn t() { http::get(\"/a\"); http::get(\"/b\"); metric(`${this.seen} ${this.helped}`, 1); }\n",
        );
        assert!(matches!(user.start(Work::OnStart), Step::Done(_)));
        let mut task = |expected: &str| {
            assert!(matches!(user.start(Work::Task), Step::Request(_)));
            assert!(matches!(user.resume(response(200, 0)), Step::Request(_)));
            // /a's hook ran before /b went; /b's runs when the task ends.
            assert_eq!(metric_name(user.resume(response(200, 0))), expected);
            assert!(matches!(
                user.resume(Resume::Woke),
                Step::Done(Outcome::Completed)
            ));
        };
        task("1 1");
        task("3 3");
    }

    #[test]
    fn without_the_hook_nothing_runs_and_a_wrong_hook_is_refused() {
        let mut user = user_of(
            "user(\"A\", #{ tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/a\"); http::get(\"/b\"); }\n",
        );
        assert!(matches!(user.start(Work::Task), Step::Request(_)));
        assert!(matches!(user.resume(response(200, 0)), Step::Request(_)));
        assert!(matches!(
            user.resume(response(200, 0)),
            Step::Done(Outcome::Completed)
        ));
        let e = crate::Scenario::from_source(
            "u.rhai",
            "user(\"A\", #{ tasks: [Fn(\"t\")] });\nfn t() { }\nfn on_request() { }\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("u.rhai:3:17: on_request() takes 0 parameter(s); it must take one"),
            "{e}"
        );
    }
}
