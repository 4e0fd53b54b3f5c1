//! The scenario language: a Rhai engine with blast's functions and limits.
//!
//! A scenario's top level declares user types with `user(name, #{...})`;
//! their tasks are script functions (or groups of tasks). Inside tasks,
//! `http::` calls, `sleep`, `check` and friends suspend the user's
//! coroutine (see the bridge) and hand a step to the engine.
//!
//! The full reference is `docs/scenario.md`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use blast_engine::{Resume, Step};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};

use crate::bridge::{self, MAX_CALL_LEVELS};
use crate::data::{FeedOptions, Feeds};
use crate::declare::{
    Declared, TaskDef, WaitTime, group_of, non_negative, positive, tags_of, task_of, user_of,
    weight_of,
};
use crate::http_api::{self, HttpContext};
use crate::shared::{SharedStore, shared_module};
use crate::user::with_ctx;

/// Most operations one piece of work may run before it is stopped as a
/// runaway script.
const MAX_OPERATIONS: u64 = 50_000_000;

/// Every this many operations a running script lets other users run: the
/// shard is cooperative, and a busy script would stall every timer on it.
const YIELD_EVERY: u64 = 4096;

/// The value `stop_user()` terminates a piece of work with.
pub(crate) const STOP_USER: &str = "blast:stop_user";

/// The longest time a script may name (a sleep, a timeout, a metric): about
/// 31 years. Longer ones cannot be added to a clock reading.
pub(crate) const MAX_SECONDS: f64 = 1e9;

/// `seconds` (checked to be 0 or more by the caller) as a duration, or an
/// error naming `what` when it is longer than [`MAX_SECONDS`].
pub(crate) fn duration_of(
    seconds: f64,
    what: &str,
    pos: Position,
) -> Result<Duration, Box<EvalAltResult>> {
    if seconds <= MAX_SECONDS
        && let Ok(d) = Duration::try_from_secs_f64(seconds)
    {
        return Ok(d);
    }
    Err(err(
        format!("{what} is {seconds:e} seconds: at most {MAX_SECONDS:e} seconds can be said"),
        pos,
    ))
}

pub(crate) fn err(message: impl Into<String>, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        pos,
    ))
}

pub(crate) fn number(
    value: &Dynamic,
    what: &str,
    pos: Position,
) -> Result<f64, Box<EvalAltResult>> {
    value
        .as_float()
        .or_else(|_| value.as_int().map(|i| i as f64))
        .map_err(|_| {
            err(
                format!("{what} must be a number, not {}", value.type_name()),
                pos,
            )
        })
}

/// A script function that only makes sense while a user runs.
fn in_user(step: Step, what: &str, pos: Position) -> Result<(), Box<EvalAltResult>> {
    match bridge::suspend(step) {
        Some(Resume::Stopping) => Err(Box::new(EvalAltResult::ErrorTerminated(Dynamic::UNIT, pos))),
        Some(_) => Ok(()),
        None => Err(err(
            format!(
                "{what} can only be used inside a task or hook, not {}",
                bridge::outside_place()
            ),
            pos,
        )),
    }
}

/// What the functions of one shard's engine share.
pub(crate) struct EngineContext {
    pub(crate) http: Rc<HttpContext>,
    pub(crate) declared: Rc<RefCell<Declared>>,
    pub(crate) feeds: Rc<Feeds>,
    pub(crate) test_data: Rc<RefCell<Dynamic>>,
    /// The node's run-wide `store::` (state users share).
    pub(crate) shared: Arc<SharedStore>,
}

/// Builds a script engine for one thread: blast's functions and limits.
pub(crate) fn new_engine(context: &EngineContext) -> Engine {
    let mut engine = Engine::new();
    // Limits bound the native stack a script can use (the coroutine's stack
    // is sized from them) and stop runaway scripts with an error.
    engine
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(64, 32)
        .set_max_operations(MAX_OPERATIONS)
        .set_max_string_size(64 << 20)
        .set_max_array_size(1 << 20)
        .set_max_map_size(1 << 20)
        .set_max_modules(16);
    engine.disable_symbol("eval");
    engine.on_progress(|ops| {
        if ops % YIELD_EVERY == 0
            && let Some(Resume::Stopping) = bridge::suspend(Step::Yield)
        {
            return Some(Dynamic::UNIT);
        }
        None
    });
    // Through the `log` facade: the binary shows them on stderr, and in
    // its --logfile, at its --loglevel.
    engine.on_print(|text| log::info!("{}", with_ctx(|c| c.label.clone()) + text));
    engine.on_debug(|text, _, _| log::debug!("{}", with_ctx(|c| c.label.clone()) + text));

    register_declarations(&mut engine, context);
    register_waits(&mut engine);
    register_utilities(&mut engine, context);
    http_api::register_response(&mut engine);
    crate::shape::register_ctx(&mut engine);
    engine.register_static_module("http", http_api::http_module(context.http.clone()).into());
    engine.register_static_module(
        "store",
        shared_module(context.shared.clone(), context.feeds.clone()).into(),
    );
    engine
}

fn register_declarations(engine: &mut Engine, context: &EngineContext) {
    engine.register_type_with_name::<TaskDef>("Task");
    let task = |f: Dynamic, weight: Dynamic, tags: Option<Dynamic>, pos: Position| {
        let mut task = task_of(f, pos)?;
        task.weight = weight_of(&weight, "a task's weight", pos)?;
        if let Some(tags) = tags {
            task.tags = tags_of(tags, pos)?;
        }
        Ok::<_, Box<EvalAltResult>>(task)
    };
    engine.register_fn(
        "task",
        move |ctx: NativeCallContext, f: Dynamic, weight: Dynamic| {
            task(f, weight, None, ctx.call_position())
        },
    );
    engine.register_fn(
        "task",
        move |ctx: NativeCallContext, f: Dynamic, weight: Dynamic, tags: Dynamic| {
            task(f, weight, Some(tags), ctx.call_position())
        },
    );
    engine.register_fn("group", |ctx: NativeCallContext, options: Map| {
        group_of(options, ctx.call_position())
    });
    let declared = context.declared.clone();
    engine.register_fn(
        "user",
        move |ctx: NativeCallContext, name: &str, options: Map| {
            let user = user_of(name, options, ctx.call_position())?;
            let mut declared = declared.borrow_mut();
            if declared.users.iter().any(|u| u.name == user.name) {
                return Err(err(
                    format!("user type {name:?} is declared twice"),
                    ctx.call_position(),
                ));
            }
            declared.users.push(user);
            Ok(())
        },
    );
    let declared = context.declared.clone();
    engine.register_fn(
        "thresholds",
        move |ctx: NativeCallContext, list: Array| -> Result<(), Box<EvalAltResult>> {
            let mut all = Vec::new();
            for item in list {
                all.push(item.into_string().map_err(|_| {
                    err(
                        "thresholds takes an array of strings such as \"p95<300ms\"",
                        ctx.call_position(),
                    )
                })?);
            }
            declared.borrow_mut().thresholds.extend(all);
            Ok(())
        },
    );
}

fn register_waits(engine: &mut Engine) {
    engine.register_type_with_name::<WaitTime>("WaitTime");
    engine.register_fn(
        "between",
        |ctx: NativeCallContext, a: Dynamic, b: Dynamic| {
            let pos = ctx.call_position();
            let (a, b) = (
                non_negative(&a, "between's minimum", pos)?,
                non_negative(&b, "between's maximum", pos)?,
            );
            if b < a {
                return Err(err(
                    format!("between({a}, {b}) needs minimum <= maximum"),
                    pos,
                ));
            }
            Ok(WaitTime::Between(a, b))
        },
    );
    engine.register_fn("constant", |ctx: NativeCallContext, s: Dynamic| {
        Ok::<_, Box<EvalAltResult>>(WaitTime::Constant(non_negative(
            &s,
            "constant's seconds",
            ctx.call_position(),
        )?))
    });
    engine.register_fn("constant_pacing", |ctx: NativeCallContext, s: Dynamic| {
        Ok::<_, Box<EvalAltResult>>(WaitTime::ConstantPacing(positive(
            &s,
            "constant_pacing's seconds",
            ctx.call_position(),
        )?))
    });
    engine.register_fn(
        "constant_throughput",
        |ctx: NativeCallContext, n: Dynamic| {
            Ok::<_, Box<EvalAltResult>>(WaitTime::ConstantThroughput(positive(
                &n,
                "constant_throughput's tasks per second",
                ctx.call_position(),
            )?))
        },
    );
    engine.register_fn("poisson", |ctx: NativeCallContext, mean: Dynamic| {
        Ok::<_, Box<EvalAltResult>>(WaitTime::Poisson(positive(
            &mean,
            "poisson's mean seconds",
            ctx.call_position(),
        )?))
    });
}

fn register_utilities(engine: &mut Engine, context: &EngineContext) {
    fn sleep(ctx: NativeCallContext, seconds: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let pos = ctx.call_position();
        let s = non_negative(&seconds, "sleep's seconds", pos)?;
        crate::request_hook::run_from(&ctx);
        with_ctx(|c| c.pending_open = false);
        let duration = duration_of(s, "sleep's time", pos)?;
        in_user(Step::Sleep(duration), "sleep()", pos)
    }
    // Rhai's own sleep(INT) and sleep(FLOAT) block the thread, so the whole
    // shard, and match those arguments before a `Dynamic` one: override
    // them by their exact types.
    engine.register_fn("sleep", |ctx: NativeCallContext, s: rhai::INT| {
        sleep(ctx, Dynamic::from_int(s))
    });
    engine.register_fn("sleep", |ctx: NativeCallContext, s: rhai::FLOAT| {
        sleep(ctx, Dynamic::from_float(s))
    });
    engine.register_fn("sleep", sleep);
    engine.register_fn("rand_int", |ctx: NativeCallContext, low: i64, high: i64| {
        if low > high {
            return Err(err(
                format!("rand_int({low}, {high}) needs low <= high"),
                ctx.call_position(),
            ));
        }
        Ok(with_ctx(|c| c.rng.i64(low..=high)))
    });
    engine.register_fn("rand_float", || with_ctx(|c| c.rng.f64()));
    engine.register_fn("rand_float", |low: f64, high: f64| {
        with_ctx(|c| low + (high - low) * c.rng.f64())
    });
    engine.register_fn("uuid", || {
        let (a, b) = with_ctx(|c| (c.rng.u64(..), c.rng.u64(..)));
        // Version 4, variant 10.
        let a = (a & !0xF000) | 0x4000;
        let b = (b & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    });
    engine.register_fn("now", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });
    engine.register_fn("env", |ctx: NativeCallContext, name: &str| {
        std::env::var(name).map_err(|_| {
            err(
                format!(
                    "environment variable {name} is not set (give a default: env({name:?}, \"...\"))"
                ),
                ctx.call_position(),
            )
        })
    });
    engine.register_fn("env", |name: &str, default: Dynamic| -> Dynamic {
        std::env::var(name).map_or(default, Dynamic::from)
    });
    engine.register_fn("log", |value: Dynamic| {
        let label = with_ctx(|c| c.label.clone());
        log::info!("{label}{value}");
    });
    engine.register_fn(
        "check",
        |ctx: NativeCallContext, passed: bool, name: &str| -> Result<bool, Box<EvalAltResult>> {
            in_user(
                Step::Check {
                    name: name.to_string(),
                    passed,
                },
                "check()",
                ctx.call_position(),
            )?;
            Ok(passed)
        },
    );
    engine.register_fn(
        "metric",
        |ctx: NativeCallContext, name: &str, value_ms: Dynamic| {
            let pos = ctx.call_position();
            let ms = non_negative(&value_ms, "metric's milliseconds", pos)?;
            let elapsed = duration_of(ms / 1000.0, "metric's time", pos)?;
            in_user(
                Step::Metric {
                    name: name.to_string(),
                    elapsed,
                },
                "metric()",
                pos,
            )
        },
    );
    engine.register_fn("stop_user", |ctx: NativeCallContext| -> Result<(), _> {
        with_ctx(|c| c.stop_user = true);
        Err(Box::new(EvalAltResult::ErrorTerminated(
            Dynamic::from(STOP_USER),
            ctx.call_position(),
        )))
    });
    engine.register_fn("stop_test", |ctx: NativeCallContext, reason: &str| {
        in_user(
            Step::StopTest(reason.to_string()),
            "stop_test()",
            ctx.call_position(),
        )
    });
    engine.register_fn("interrupt", || with_ctx(|c| c.interrupt = true));
    let feeds = context.feeds.clone();
    engine.register_fn("feed", move |ctx: NativeCallContext, file: &str| {
        feeds
            .next(file, FeedOptions::default())
            .map_err(|e| err(e, ctx.call_position()))
    });
    let feeds = context.feeds.clone();
    engine.register_fn(
        "feed",
        move |ctx: NativeCallContext, file: &str, options: Map| {
            FeedOptions::of(&options)
                .and_then(|options| feeds.next(file, options))
                .map_err(|e| err(e, ctx.call_position()))
        },
    );
    let data = context.test_data.clone();
    engine.register_fn("test_data", move || data.borrow().clone());
}
