//! The scenario language: a Rhai engine with blast's functions and limits.
//!
//! A scenario's top level declares user types with `user(name, #{...})`;
//! their tasks are script functions. Inside tasks, `http::` calls and
//! `sleep` suspend the user's coroutine (see the bridge).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use blast_engine::{Resume, Step};
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, Position};

use crate::bridge::{self, MAX_CALL_LEVELS};
use crate::http_api::{self, HttpContext};

/// How long a user waits between tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WaitTime {
    /// No wait.
    None,
    /// Always this many seconds.
    Constant(f64),
    /// Uniformly random between the two, in seconds.
    Between(f64, f64),
}

impl WaitTime {
    /// The wait, given a uniform random number in [0, 1).
    pub fn sample(self, unit: f64) -> Duration {
        let seconds = match self {
            WaitTime::None => 0.0,
            WaitTime::Constant(s) => s,
            WaitTime::Between(a, b) => a + (b - a) * unit,
        };
        Duration::from_secs_f64(seconds.max(0.0))
    }
}

impl std::fmt::Display for WaitTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitTime::None => f.write_str("none"),
            WaitTime::Constant(s) => write!(f, "constant({s})"),
            WaitTime::Between(a, b) => write!(f, "between({a}, {b})"),
        }
    }
}

/// A task as declared: a script function and its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskDef {
    /// The script function that runs the task.
    pub function: String,
    /// Relative weight of the task among its user type's tasks.
    pub weight: u32,
}

/// A user type as declared by `user(name, #{...})`.
#[derive(Clone, Debug, PartialEq)]
pub struct UserType {
    /// The type's name.
    pub name: String,
    /// Relative share of users.
    pub weight: u32,
    /// Wait between tasks.
    pub wait: WaitTime,
    /// The tasks.
    pub tasks: Vec<TaskDef>,
    /// Where the type was declared.
    pub position: Position,
}

/// Most operations one piece of work may run before it is stopped as a
/// runaway script.
const MAX_OPERATIONS: u64 = 50_000_000;

/// Every this many operations a running script lets other users run: the
/// shard is cooperative, and a busy script would stall every timer on it.
const YIELD_EVERY: u64 = 4096;

fn err(message: impl Into<String>, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        pos,
    ))
}

fn number(value: &Dynamic, what: &str, pos: Position) -> Result<f64, Box<EvalAltResult>> {
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

fn weight_of(value: &Dynamic, what: &str, pos: Position) -> Result<u32, Box<EvalAltResult>> {
    match value.as_int() {
        Ok(w) if (1..=1_000_000).contains(&w) => Ok(w as u32),
        Ok(w) => Err(err(
            format!("{what} must be between 1 and 1000000, not {w}"),
            pos,
        )),
        Err(t) => Err(err(format!("{what} must be an integer, not {t}"), pos)),
    }
}

/// Reads one entry of a user type's `tasks` array.
fn task_of(value: Dynamic, pos: Position) -> Result<TaskDef, Box<EvalAltResult>> {
    if let Some(task) = value.clone().try_cast::<TaskDef>() {
        return Ok(task);
    }
    if let Some(f) = value.clone().try_cast::<FnPtr>() {
        return task_from_fn(&f, 1, pos);
    }
    Err(err(
        format!(
            "a task must be Fn(\"name\") or task(Fn(\"name\"), weight), not {}",
            value.type_name()
        ),
        pos,
    ))
}

fn task_from_fn(f: &FnPtr, weight: u32, pos: Position) -> Result<TaskDef, Box<EvalAltResult>> {
    if f.curry().is_empty() && !f.fn_name().starts_with("anon$") {
        Ok(TaskDef {
            function: f.fn_name().to_string(),
            weight,
        })
    } else {
        Err(err(
            "a task must name a script function: Fn(\"name\"), not a closure",
            pos,
        ))
    }
}

/// Reads `user(name, options)`.
fn user_of(name: &str, options: Map, pos: Position) -> Result<UserType, Box<EvalAltResult>> {
    let mut user = UserType {
        name: name.to_string(),
        weight: 1,
        wait: WaitTime::None,
        tasks: Vec::new(),
        position: pos,
    };
    if name.is_empty() {
        return Err(err("a user type needs a name", pos));
    }
    let mut has_tasks = false;
    for (key, value) in options {
        match key.as_str() {
            "weight" => user.weight = weight_of(&value, "weight", pos)?,
            "wait" => {
                user.wait = if let Some(w) = value.clone().try_cast::<WaitTime>() {
                    w
                } else if value.is_unit() {
                    WaitTime::None
                } else {
                    let s = number(&value, "wait", pos)?;
                    if !(s >= 0.0 && s.is_finite()) {
                        return Err(err("wait must be a non-negative number of seconds", pos));
                    }
                    WaitTime::Constant(s)
                }
            }
            "tasks" => {
                has_tasks = true;
                let tasks = value
                    .try_cast::<Array>()
                    .ok_or_else(|| err("tasks must be an array of tasks", pos))?;
                for task in tasks {
                    user.tasks.push(task_of(task, pos)?);
                }
            }
            other => {
                return Err(err(
                    format!("unknown user option {other:?} (known: weight, wait, tasks)"),
                    pos,
                ));
            }
        }
    }
    if !has_tasks || user.tasks.is_empty() {
        return Err(err(
            format!("user type {name:?} has no tasks: give tasks: [Fn(\"name\"), ...]"),
            pos,
        ));
    }
    Ok(user)
}

/// Builds a script engine for one thread: blast's functions and limits,
/// with `user()` declarations collected into `users`.
pub(crate) fn new_engine(http: Rc<HttpContext>, users: Rc<RefCell<Vec<UserType>>>) -> Engine {
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

    engine.register_type_with_name::<WaitTime>("WaitTime");
    engine.register_type_with_name::<TaskDef>("Task");
    engine.register_fn(
        "between",
        |ctx: NativeCallContext, a: Dynamic, b: Dynamic| {
            let pos = ctx.call_position();
            let (a, b) = (
                number(&a, "between's minimum", pos)?,
                number(&b, "between's maximum", pos)?,
            );
            if !(a >= 0.0 && b >= a && b.is_finite()) {
                return Err(err(
                    format!("between({a}, {b}) needs 0 <= minimum <= maximum"),
                    pos,
                ));
            }
            Ok(WaitTime::Between(a, b))
        },
    );
    engine.register_fn("constant", |ctx: NativeCallContext, s: Dynamic| {
        let pos = ctx.call_position();
        let s = number(&s, "constant's seconds", pos)?;
        if !(s >= 0.0 && s.is_finite()) {
            return Err(err("constant(seconds) needs a non-negative number", pos));
        }
        Ok(WaitTime::Constant(s))
    });
    engine.register_fn(
        "task",
        |ctx: NativeCallContext, f: FnPtr, weight: Dynamic| {
            let pos = ctx.call_position();
            task_from_fn(&f, weight_of(&weight, "a task's weight", pos)?, pos)
        },
    );
    engine.register_fn(
        "user",
        move |ctx: NativeCallContext, name: &str, options: Map| {
            let user = user_of(name, options, ctx.call_position())?;
            if users.borrow().iter().any(|u| u.name == user.name) {
                return Err(err(
                    format!("user type {name:?} is declared twice"),
                    ctx.call_position(),
                ));
            }
            users.borrow_mut().push(user);
            Ok(())
        },
    );
    engine.register_fn("sleep", |ctx: NativeCallContext, seconds: Dynamic| {
        let pos = ctx.call_position();
        let s = number(&seconds, "sleep's seconds", pos)?;
        if !(s >= 0.0 && s.is_finite()) {
            return Err(err("sleep(seconds) needs a non-negative number", pos));
        }
        match bridge::suspend(Step::Sleep(Duration::from_secs_f64(s))) {
            Some(Resume::Stopping) => {
                Err(Box::new(EvalAltResult::ErrorTerminated(Dynamic::UNIT, pos)))
            }
            Some(_) => Ok(()),
            None => Err(err("sleep() can only be used inside a task or hook", pos)),
        }
    });
    engine.register_fn("rand_int", |ctx: NativeCallContext, low: i64, high: i64| {
        if low > high {
            return Err(err(
                format!("rand_int({low}, {high}) needs low <= high"),
                ctx.call_position(),
            ));
        }
        Ok(crate::user::with_rng(|rng| rng.i64(low..=high)))
    });
    engine.register_fn("rand_float", || crate::user::with_rng(|rng| rng.f64()));
    engine.register_fn("rand_float", |low: f64, high: f64| {
        crate::user::with_rng(|rng| low + (high - low) * rng.f64())
    });
    http_api::register_response(&mut engine);
    engine.register_static_module("http", http_api::http_module(http).into());
    engine
}
