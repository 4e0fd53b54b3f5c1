//! A scenario's load shape: `fn shape(elapsed)` or `fn shape(elapsed,
//! ctx)`, which the controller calls every second to set the load (Locust's
//! `LoadTestShape.tick`). `ctx` tells it the users and requests per second
//! now, keeps a map for it between calls (`ctx.state`) and resets its clock
//! (`ctx.reset_time()`).
//!
//! The shape runs on the controller's thread with its own engine, compiled
//! from the same source as the shards' (so it reaches the scenario's helper
//! functions and constants), and never on a coroutine: it decides the load,
//! it sends nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Position, Scope};

use crate::bridge::{self, MAX_CALL_LEVELS};
use crate::declare::UserType;
use crate::scenario::{Compiled, did_you_mean, innermost, location};
use crate::user::{UserCtx, with_ctx};

/// The name of the shape function.
pub(crate) const SHAPE_FUNCTION: &str = "shape";

/// The keys a shape's map may have.
const SHAPE_KEYS: &[&str] = &["users", "spawn_rate", "rate"];

/// What one call of `shape(elapsed)` asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeTick {
    /// `#{ users: 10, spawn_rate: 5 }`: this many users (closed model),
    /// started or stopped at `spawn_rate` users per second.
    Users {
        /// Users wanted, of the types in their usual proportions.
        users: u64,
        /// Users started (or stopped) per second to get there; more than 0.
        spawn_rate: f64,
    },
    /// `#{ users: #{ Browser: 10, Api: 2 }, spawn_rate: 5 }`: this many
    /// users of each type.
    TypedUsers {
        /// Users wanted per type, by index into
        /// [`Scenario::users`](crate::Scenario::users); a type the map does
        /// not name gets 0.
        users: Vec<u64>,
        /// Users started (or stopped) per second to get there; more than 0.
        spawn_rate: f64,
    },
    /// `#{ rate: 100.0 }`: this many iterations per second (open model).
    Rate {
        /// Iterations per second, 0 or more.
        rate: f64,
    },
    /// `shape` returned `()`: the run ends.
    Stop,
}

/// What the run is doing when the shape is asked: what `ctx.users` and
/// `ctx.rate` say.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ShapeNow {
    /// Users running, as of the last one-second report (Locust's
    /// `get_current_user_count()`).
    pub users: u64,
    /// Requests per second now (the console's current RPS).
    pub rate: f64,
}

/// `ctx`, the shape's second parameter. Rhai passes arguments by value:
/// the state and the reset flag are shared with the [`Shape`], so what the
/// shape does to them outlives the call.
#[derive(Clone)]
struct ShapeCtx {
    now: ShapeNow,
    state: Rc<RefCell<Map>>,
    reset: Rc<Cell<bool>>,
}

/// Registers `ctx`'s type and its properties on an engine, so scripts that
/// use them compile (unknown functions are errors at compile time).
pub(crate) fn register_ctx(engine: &mut Engine) {
    engine
        .register_type_with_name::<ShapeCtx>("ShapeCtx")
        .register_get("users", |c: &mut ShapeCtx| c.now.users as rhai::INT)
        .register_get("rate", |c: &mut ShapeCtx| c.now.rate as rhai::FLOAT)
        .register_get("state", |c: &mut ShapeCtx| c.state.borrow().clone())
        .register_set("state", |c: &mut ShapeCtx, map: Map| {
            *c.state.borrow_mut() = map;
        })
        .register_fn("reset_time", |c: &mut ShapeCtx| c.reset.set(true));
}

/// A scenario's load shape, compiled on the thread that calls it (see
/// [`Scenario::shape`](crate::Scenario::shape)).
pub struct Shape {
    file: String,
    compiled: Compiled,
    /// What `log`, `print` and `rand_*` reach while the shape runs.
    ctx: UserCtx,
    /// Where `shape` is defined: where errors in what it returns point.
    position: Position,
    /// Whether `shape` takes `ctx`.
    takes_ctx: bool,
    /// `ctx.state`, kept between calls.
    state: Rc<RefCell<Map>>,
    /// The run's second at which the shape's clock was last reset: its
    /// `elapsed` counts from there.
    origin: f64,
}

impl Shape {
    pub(crate) fn new(file: &str, compiled: Compiled) -> Shape {
        let def = compiled
            .ast
            .iter_fn_def()
            .find(|f| f.name == SHAPE_FUNCTION && matches!(f.params.len(), 1 | 2));
        let position = def.map_or(Position::NONE, |f| f.body.start_position());
        let takes_ctx = def.is_some_and(|f| f.params.len() == 2);
        Shape {
            file: file.to_string(),
            compiled,
            ctx: UserCtx::new(fastrand::Rng::new(), format!("[{SHAPE_FUNCTION}] "), 0),
            position,
            takes_ctx,
            state: Rc::default(),
            origin: 0.0,
        }
    }

    /// Calls `shape(elapsed, ctx)` at `run_s` seconds since the run
    /// started, `now` being what the run is doing, and reads what it
    /// returned. `elapsed` is `run_s` unless the shape reset its clock
    /// (`ctx.reset_time()`): then it counts from the call that did. An
    /// error (`file:line:column: message`) is the script's: the run should
    /// stop with it.
    pub fn tick(&mut self, run_s: f64, now: &ShapeNow) -> Result<ShapeTick, String> {
        let ctx = ShapeCtx {
            now: *now,
            state: self.state.clone(),
            reset: Rc::default(),
        };
        let reset = ctx.reset.clone();
        let elapsed = (run_s - self.origin).max(0.0);
        let value = self.call(elapsed, ctx).map_err(|e| self.call_error(&e))?;
        if reset.get() {
            self.origin = run_s;
        }
        tick_of(value, &self.compiled.users, &self.compiled.dropped_users)
            .map_err(|message| format!("{}: {message}", location(&self.file, self.position)))
    }

    fn call(&mut self, elapsed_s: f64, ctx: ShapeCtx) -> Result<Dynamic, Box<EvalAltResult>> {
        with_ctx(|c| std::mem::swap(c, &mut self.ctx));
        let compiled = &self.compiled;
        let takes_ctx = self.takes_ctx;
        // Outside any coroutine even if called from one: a request or sleep
        // in the shape fails with an error instead of suspending a caller
        // that would never resume it.
        let result = bridge::outside("in shape()", || {
            let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
            let mut args = vec![Dynamic::from(elapsed_s)];
            if takes_ctx {
                args.push(Dynamic::from(ctx));
            }
            compiled.engine.call_fn_with_options::<Dynamic>(
                options,
                &mut Scope::new(),
                &compiled.ast,
                SHAPE_FUNCTION,
                args,
            )
        });
        with_ctx(|c| std::mem::swap(c, &mut self.ctx));
        result
    }

    /// `file:line:column: message` of an error `shape` raised.
    fn call_error(&self, e: &EvalAltResult) -> String {
        let (inner, message, mut pos) = innermost(e);
        if pos.is_none() {
            pos = self.position;
        }
        let message = match inner {
            EvalAltResult::ErrorStackOverflow(_) => format!(
                "call stack too deep in {SHAPE_FUNCTION}(): more than {MAX_CALL_LEVELS} nested calls (runaway recursion?)"
            ),
            EvalAltResult::ErrorTooManyOperations(_) => {
                format!("too many operations in one call of {SHAPE_FUNCTION}() (runaway loop?)")
            }
            // Only stop_user() terminates a script outside a coroutine.
            EvalAltResult::ErrorTerminated(..) => format!(
                "stop_user() cannot be used in {SHAPE_FUNCTION}(): return () from it to end the run"
            ),
            _ => message,
        };
        format!("{}: {message}", location(&self.file, pos))
    }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shape")
            .field("file", &self.file)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// Reads what `shape` returned; `users` are the scenario's user types,
/// `dropped` the names of those the tag filter dropped (their counts are
/// ignored).
fn tick_of(value: Dynamic, users: &[UserType], dropped: &[String]) -> Result<ShapeTick, String> {
    if value.is_unit() {
        return Ok(ShapeTick::Stop);
    }
    let type_name = value.type_name();
    let Some(map) = value.try_cast::<Map>() else {
        return Err(format!(
            "{SHAPE_FUNCTION}() must return a map (#{{ users: 10, spawn_rate: 5 }}, \
             #{{ users: #{{ Type: 10 }}, spawn_rate: 5 }} or #{{ rate: 100 }}) or () to end the run, not {type_name}"
        ));
    };
    let (mut count, mut spawn_rate, mut rate) = (None, None, None);
    for (key, value) in map {
        match key.as_str() {
            "users" => count = Some(value),
            "spawn_rate" => spawn_rate = Some(value),
            "rate" => rate = Some(value),
            other => {
                let hint = did_you_mean(other, SHAPE_KEYS.iter().copied()).map_or_else(
                    || format!("known: {}", SHAPE_KEYS.join(", ")),
                    |k| format!("did you mean {k}?"),
                );
                return Err(format!(
                    "{SHAPE_FUNCTION}() returned an unknown key {other:?} ({hint})"
                ));
            }
        }
    }
    match (count, rate) {
        (Some(_), Some(_)) => Err(format!(
            "{SHAPE_FUNCTION}() returned both users and rate: return users (with spawn_rate) \
             for a number of users, or rate for iterations per second"
        )),
        (None, None) => Err(format!(
            "{SHAPE_FUNCTION}() returned neither users nor rate: return #{{ users: N, spawn_rate: R }}, \
             #{{ rate: R }}, or () to end the run"
        )),
        (None, Some(rate)) => {
            if spawn_rate.is_some() {
                return Err(format!(
                    "{SHAPE_FUNCTION}() returned spawn_rate with rate: spawn_rate goes with users only"
                ));
            }
            Ok(ShapeTick::Rate {
                rate: amount(&rate, "rate")?,
            })
        }
        (Some(count), None) => {
            let Some(spawn_rate) = spawn_rate else {
                return Err(format!(
                    "{SHAPE_FUNCTION}() returned users without spawn_rate: add spawn_rate, \
                     the users started (or stopped) per second"
                ));
            };
            let spawn_rate = amount(&spawn_rate, "spawn_rate")?;
            if spawn_rate == 0.0 {
                return Err(format!(
                    "{SHAPE_FUNCTION}()'s spawn_rate must be more than 0, not 0"
                ));
            }
            if count.is_map() {
                Ok(ShapeTick::TypedUsers {
                    users: typed_counts(count.cast::<Map>(), users, dropped)?,
                    spawn_rate,
                })
            } else {
                Ok(ShapeTick::Users {
                    users: whole(&count, "users")?,
                    spawn_rate,
                })
            }
        }
    }
}

/// Users per type, by index into `users`, from a map of type names.
fn typed_counts(per_type: Map, users: &[UserType], dropped: &[String]) -> Result<Vec<u64>, String> {
    let mut counts = vec![0; users.len()];
    for (name, value) in per_type {
        let n = whole(&value, &format!("users.{name}"))?;
        match users.iter().position(|u| u.name == name.as_str()) {
            Some(i) => counts[i] = n,
            // --tags left the type no task: the run has none of its users.
            None if dropped.iter().any(|d| d == name.as_str()) => {}
            None => {
                let hint = did_you_mean(&name, users.iter().map(|u| u.name.as_str())).map_or_else(
                    || {
                        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
                        format!("user types: {}", names.join(", "))
                    },
                    |k| format!("did you mean {k}?"),
                );
                return Err(format!(
                    "{SHAPE_FUNCTION}() returned users for an unknown user type {name:?} ({hint})"
                ));
            }
        }
    }
    Ok(counts)
}

/// A finite number, 0 or more.
fn amount(value: &Dynamic, what: &str) -> Result<f64, String> {
    let n = match (value.as_int(), value.as_float()) {
        (Ok(i), _) => i as f64,
        (_, Ok(f)) => f,
        _ => {
            return Err(format!(
                "{SHAPE_FUNCTION}()'s {what} must be a number, not {}",
                value.type_name()
            ));
        }
    };
    if n.is_finite() && n >= 0.0 {
        Ok(n)
    } else {
        Err(format!(
            "{SHAPE_FUNCTION}()'s {what} must be a finite number, 0 or more, not {n}"
        ))
    }
}

/// A count of users: a whole number, 0 or more (`10` or `10.0`).
fn whole(value: &Dynamic, what: &str) -> Result<u64, String> {
    let n = amount(value, what)?;
    if n.fract() != 0.0 {
        return Err(format!(
            "{SHAPE_FUNCTION}()'s {what} must be a whole number of users, not {n} (round it: `x.round()`)"
        ));
    }
    if n >= 2f64.powi(53) {
        return Err(format!("{SHAPE_FUNCTION}()'s {what} is too large: {n}"));
    }
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario;

    const FILE: &str = "shape.rhai";

    /// A scenario with types A and Browser whose line 4 is `fn shape(t) {
    /// <body> }`: its body starts at 4:13.
    fn scenario(body: &str) -> String {
        format!(
            "user(\"A\", #{{ weight: 2, tasks: [Fn(\"t\")] }});\n\
             user(\"Browser\", #{{ tasks: [Fn(\"t\")] }});\n\
             fn t() {{ }}\n\
             fn shape(t) {{ {body} }}\n"
        )
    }

    fn shape_of(source: &str) -> Shape {
        let scenario = Scenario::from_source(FILE, source).unwrap();
        assert!(scenario.has_shape());
        scenario.shape().unwrap().unwrap()
    }

    fn tick(body: &str, elapsed: f64) -> Result<ShapeTick, String> {
        shape_of(&scenario(body)).tick(elapsed, &ShapeNow::default())
    }

    #[test]
    fn a_step_shape_steps_then_ends_the_run() {
        // The shape reaches top-level constants and helper functions.
        let source = "const STEP = 10;\n\
             user(\"U\", #{ tasks: [Fn(\"t\")] });\n\
             fn t() { }\n\
             fn level(t) { if t < 5.0 { 1 } else { 2 } }\n\
             fn shape(elapsed) {\n\
                 if elapsed >= 10.0 { return (); }\n\
                 #{ users: global::STEP * level(elapsed), spawn_rate: 5 }\n\
             }\n";
        let mut shape = shape_of(source);
        let users = |users| ShapeTick::Users {
            users,
            spawn_rate: 5.0,
        };
        for (elapsed, want) in [
            (0.0, users(10)),
            (4.99, users(10)),
            (5.0, users(20)),
            (9.5, users(20)),
            (10.0, ShapeTick::Stop),
            (11.0, ShapeTick::Stop),
        ] {
            assert_eq!(
                shape.tick(elapsed, &ShapeNow::default()),
                Ok(want),
                "at {elapsed}"
            );
        }
    }

    #[test]
    fn the_documented_example_steps_up_three_times() {
        let docs = include_str!("../../docs/scenario.md");
        let start = docs.find("const STEP_USERS").unwrap();
        let example = &docs[start..start + docs[start..].find("```").unwrap()];
        let mut shape = shape_of(&format!(
            "user(\"U\", #{{ tasks: [Fn(\"t\")] }});\nfn t() {{ }}\n{example}"
        ));
        let users = |users| {
            Ok(ShapeTick::Users {
                users,
                spawn_rate: 5.0,
            })
        };
        assert_eq!(shape.tick(0.0, &ShapeNow::default()), users(10));
        assert_eq!(shape.tick(60.0, &ShapeNow::default()), users(20));
        assert_eq!(shape.tick(179.0, &ShapeNow::default()), users(30));
        assert_eq!(shape.tick(180.0, &ShapeNow::default()), Ok(ShapeTick::Stop));
    }

    /// A scenario whose shape takes `ctx`, with `body` as its body.
    fn with_ctx(body: &str) -> Shape {
        shape_of(&format!(
            "user(\"U\", #{{ tasks: [Fn(\"t\")] }});\nfn t() {{ }}\nfn shape(t, ctx) {{\n{body}\n}}\n"
        ))
    }

    fn users(users: u64, spawn_rate: f64) -> Result<ShapeTick, String> {
        Ok(ShapeTick::Users { users, spawn_rate })
    }

    #[test]
    fn ctx_state_is_kept_between_calls() {
        let mut shape = with_ctx(
            "ctx.state.calls = (ctx.state.calls ?? 0) + 1;\n\
             let s = ctx.state; s.last = t; ctx.state = s;\n\
             #{ users: ctx.state.calls * 10, spawn_rate: 1 }",
        );
        let now = ShapeNow::default();
        assert_eq!(shape.tick(0.0, &now), users(10, 1.0));
        assert_eq!(shape.tick(1.0, &now), users(20, 1.0));
        assert_eq!(shape.tick(2.0, &now), users(30, 1.0));
        assert_eq!(shape.state.borrow()["last"].as_float(), Ok(2.0));
        // Another shape of the same scenario keeps its own.
        let mut other = with_ctx(
            "ctx.state.n = (ctx.state.n ?? 0) + 1; #{ users: ctx.state.n, spawn_rate: 1 }",
        );
        assert_eq!(other.tick(0.0, &now), users(1, 1.0));
    }

    #[test]
    fn ctx_says_the_users_and_rate_now() {
        let mut shape = with_ctx(
            "if ctx.users < 10 { #{ users: ctx.users + 5, spawn_rate: 1 } } \
             else { #{ users: ctx.users, spawn_rate: ctx.rate } }",
        );
        let now = |users, rate| ShapeNow { users, rate };
        assert_eq!(shape.tick(0.0, &now(0, 0.0)), users(5, 1.0));
        assert_eq!(shape.tick(1.0, &now(12, 42.5)), users(12, 42.5));
    }

    #[test]
    fn reset_time_restarts_the_shapes_clock() {
        // A wave that starts over once it reached 3 s: elapsed goes 0, 1,
        // 2, 3, then 1, 2, 3 again, and so on.
        let mut shape = with_ctx("if t >= 3.0 { ctx.reset_time(); }\n#{ rate: t }");
        let now = ShapeNow::default();
        let rates: Vec<f64> = (0..9)
            .map(|s| match shape.tick(s as f64, &now) {
                Ok(ShapeTick::Rate { rate }) => rate,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(rates, [0.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0]);
    }

    #[test]
    fn ctx_misuse_is_an_error_at_its_place() {
        let mut shape = with_ctx("ctx.users = 3;\n#{ rate: 1 }");
        let e = shape.tick(0.0, &ShapeNow::default()).unwrap_err();
        assert!(e.starts_with("shape.rhai:4:"), "{e}");
        let mut shape = with_ctx("let x = ctx.usres;\n#{ rate: 1 }");
        let e = shape.tick(0.0, &ShapeNow::default()).unwrap_err();
        assert!(e.starts_with("shape.rhai:4:") && e.contains("usres"), "{e}");
        // A method no function defines is found before the run.
        let e = Scenario::from_source(
            FILE,
            "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { }\nfn shape(t, ctx) {\nctx.reset_tiem();\n()\n}\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("shape.rhai:4:") && e.contains("did you mean reset_time?"),
            "{e}"
        );
    }

    #[test]
    fn the_documented_ctx_example_cycles_three_times() {
        let docs = include_str!("../../docs/scenario.md");
        let start = docs.find("fn shape(elapsed, ctx)").unwrap();
        let example = &docs[start..start + docs[start..].find("```").unwrap()];
        let mut shape = shape_of(&format!(
            "user(\"U\", #{{ tasks: [Fn(\"t\")] }});\nfn t() {{ }}\n{example}"
        ));
        let now = ShapeNow::default();
        let answers: Vec<ShapeTick> = (0..=185)
            .map(|s| shape.tick(s as f64, &now).unwrap())
            .collect();
        let users = |users| ShapeTick::Users {
            users,
            spawn_rate: 10.0,
        };
        for (s, want) in [
            (0, users(50)),
            (29, users(50)),
            (30, users(10)),
            (60, users(10)),
            (61, users(50)),
            (89, users(50)),
            (90, users(10)),
            (121, users(50)),
            (179, users(10)),
            (180, ShapeTick::Stop),
        ] {
            assert_eq!(answers[s], want, "at {s} s");
        }
    }

    #[test]
    fn per_type_maps_count_every_type_in_declaration_order() {
        assert_eq!(
            tick("#{ users: #{ Browser: 3 }, spawn_rate: 1.5 }", 0.0),
            Ok(ShapeTick::TypedUsers {
                users: vec![0, 3],
                spawn_rate: 1.5
            })
        );
        assert_eq!(
            tick("#{ users: #{ Browser: 3, A: 7.0 }, spawn_rate: 2 }", 0.0),
            Ok(ShapeTick::TypedUsers {
                users: vec![7, 3],
                spawn_rate: 2.0
            })
        );
        assert_eq!(
            tick("#{ users: #{}, spawn_rate: 2 }", 0.0),
            Ok(ShapeTick::TypedUsers {
                users: vec![0, 0],
                spawn_rate: 2.0
            })
        );
    }

    #[test]
    fn rate_maps_set_the_open_model_rate() {
        assert_eq!(
            tick("#{ rate: 100.0 }", 0.0),
            Ok(ShapeTick::Rate { rate: 100.0 })
        );
        assert_eq!(
            tick("#{ rate: t * 2 }", 2.5),
            Ok(ShapeTick::Rate { rate: 5.0 })
        );
        assert_eq!(tick("#{ rate: 0 }", 0.0), Ok(ShapeTick::Rate { rate: 0.0 }));
        assert_eq!(
            tick("#{ users: 0, spawn_rate: 1 }", 0.0),
            Ok(ShapeTick::Users {
                users: 0,
                spawn_rate: 1.0
            })
        );
    }

    #[test]
    fn bad_returns_are_errors_at_the_shape() {
        let at = "shape.rhai:4:13: ";
        for (body, message) in [
            (
                "#{ users: 10, spawn_rate: 1, rate: 5 }",
                "shape() returned both users and rate",
            ),
            ("#{}", "shape() returned neither users nor rate"),
            (
                "#{ users: \"ten\", spawn_rate: 1 }",
                "shape()'s users must be a number, not string",
            ),
            (
                "#{ rate: true }",
                "shape()'s rate must be a number, not bool",
            ),
            (
                "#{ users: -1, spawn_rate: 1 }",
                "shape()'s users must be a finite number, 0 or more, not -1",
            ),
            (
                "#{ rate: 1.0 / 0.0 }",
                "shape()'s rate must be a finite number, 0 or more, not inf",
            ),
            (
                "#{ rate: -0.5 }",
                "shape()'s rate must be a finite number, 0 or more, not -0.5",
            ),
            (
                "#{ users: 2.5, spawn_rate: 1 }",
                "shape()'s users must be a whole number of users, not 2.5",
            ),
            (
                "#{ users: 10 }",
                "shape() returned users without spawn_rate",
            ),
            (
                "#{ users: 10, spawn_rate: 0 }",
                "shape()'s spawn_rate must be more than 0, not 0",
            ),
            (
                "#{ users: 10, spawn_rate: -2 }",
                "shape()'s spawn_rate must be a finite number, 0 or more, not -2",
            ),
            (
                "#{ rate: 5, spawn_rate: 1 }",
                "shape() returned spawn_rate with rate",
            ),
            (
                "#{ users: #{ Brwoser: 1 }, spawn_rate: 1 }",
                "shape() returned users for an unknown user type \"Brwoser\" (did you mean Browser?)",
            ),
            (
                "#{ users: #{ Admin: 1 }, spawn_rate: 1 }",
                "shape() returned users for an unknown user type \"Admin\" (user types: A, Browser)",
            ),
            (
                "#{ users: #{ A: -3 }, spawn_rate: 1 }",
                "shape()'s users.A must be a finite number, 0 or more, not -3",
            ),
            (
                "#{ user: 1, spawn_rate: 1 }",
                "shape() returned an unknown key \"user\" (did you mean users?)",
            ),
            ("10", "shape() must return a map"),
            ("[10, 1]", "or () to end the run, not array"),
        ] {
            let e = tick(body, 0.0).unwrap_err();
            assert!(e.starts_with(at) && e.contains(message), "{body}: {e}");
        }
    }

    #[test]
    fn runtime_errors_carry_their_own_position() {
        let source = scenario("if t > 1.0 { helper() } else { throw \"too early\" }")
            + "fn helper() {\n    let x = 1;\n    x.nope\n}\n";
        let mut shape = shape_of(&source);
        let e = shape.tick(0.0, &ShapeNow::default()).unwrap_err();
        assert_eq!(e, "shape.rhai:4:46: too early");
        let e = shape.tick(2.0, &ShapeNow::default()).unwrap_err();
        assert!(e.starts_with("shape.rhai:7:"), "{e}");
        let e = tick("shape(t)", 0.0).unwrap_err();
        assert!(e.contains("call stack too deep in shape()"), "{e}");
        let e = tick("stop_user()", 0.0).unwrap_err();
        assert_eq!(
            e,
            "shape.rhai:4:13: stop_user() cannot be used in shape(): return () from it to end the run"
        );
    }

    #[test]
    fn requests_and_sleeps_in_a_shape_are_errors_even_on_a_coroutine() {
        let http = "http::get(\"/\"); #{ rate: 1 }";
        let sleep = "sleep(1); #{ rate: 1 }";
        let want_http =
            "shape.rhai:4:21: http requests can only be made inside a task or hook, not in shape()";
        let want_sleep =
            "shape.rhai:4:15: sleep() can only be used inside a task or hook, not in shape()";
        assert_eq!(tick(http, 0.0).unwrap_err(), want_http);
        assert_eq!(tick(sleep, 0.0).unwrap_err(), want_sleep);
        // Called from a coroutine, the shape still does not suspend it.
        let pool = bridge::StackPool::default();
        let mut shape = shape_of(&scenario(http));
        let (work, progress) = bridge::Work::start(&pool, move || {
            (
                blast_engine::Outcome::Completed,
                shape.tick(0.0, &ShapeNow::default()),
            )
        })
        .unwrap();
        assert!(work.is_none());
        let bridge::Progress::Finished((_, result)) = progress else {
            panic!("the shape suspended its caller");
        };
        assert_eq!(result.unwrap_err(), want_http);
        // Outside again, the top level's wording is back.
        assert_eq!(bridge::outside_place(), "at a script's top level");
    }

    #[test]
    fn shape_is_checked_when_the_scenario_compiles() {
        let base = "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { }\n";
        let error = |source: String| {
            Scenario::from_source(FILE, &source)
                .unwrap_err()
                .to_string()
        };
        let e = error(format!("{base}fn shape() {{ () }}\n"));
        assert_eq!(
            e,
            "shape.rhai:3:12: shape() takes 0 parameter(s); it must take the seconds since the run started, and optionally ctx: fn shape(elapsed) { ... } or fn shape(elapsed, ctx) { ... }"
        );
        let e = error(format!("{base}fn shape(a, b, c) {{ () }}\n"));
        assert!(
            e.starts_with("shape.rhai:3:19: shape() takes 3 parameter(s)"),
            "{e}"
        );
        let e = error(format!("{base}fn shape(t) {{ usres(t) }}\n"));
        assert!(
            e.starts_with("shape.rhai:3:15: unknown function usres()"),
            "{e}"
        );
        let e =
            error("user(\"U\", #{ tasks: [Fn(\"shape\")] });\nfn shape(t) { () }\n".to_string());
        assert!(
            e.starts_with("shape.rhai:1:1: shape() is the run's load shape")
                && e.ends_with("it cannot be the task function of user type \"U\""),
            "{e}"
        );
        let e = error(
            "user(\"U\", #{ on_start: Fn(\"shape\"), tasks: [Fn(\"t\")] });\nfn t() { }\nfn shape(t) { () }\n"
                .to_string(),
        );
        assert!(
            e.ends_with("it cannot be the on_start function of user type \"U\""),
            "{e}"
        );
        let none = Scenario::from_source(FILE, base).unwrap();
        assert!(!none.has_shape());
        assert!(none.shape().unwrap().is_none());
        // A task may still call the shape as a plain function.
        let calls = format!("{base}fn shape(t) {{ () }}\nfn u() {{ shape(1.0) }}\n");
        assert!(Scenario::from_source(FILE, &calls).unwrap().has_shape());
    }

    #[test]
    fn types_dropped_by_tags_are_ignored_in_per_type_maps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tags.rhai");
        std::fs::write(
            &path,
            "user(\"A\", #{ tasks: [task(Fn(\"t\"), 1, [\"a\"])] });\n\
             user(\"B\", #{ tasks: [task(Fn(\"t\"), 1, [\"b\"])] });\n\
             fn t() { }\n\
             fn shape(t) { #{ users: #{ A: 1, B: 2 }, spawn_rate: 1 } }\n",
        )
        .unwrap();
        let tags = crate::TagFilter {
            include: vec!["b".into()],
            ..Default::default()
        };
        let scenario = Scenario::load_with_tags(&path, tags).unwrap();
        let mut shape = scenario.shape().unwrap().unwrap();
        assert_eq!(
            shape.tick(0.0, &ShapeNow::default()),
            Ok(ShapeTick::TypedUsers {
                users: vec![2],
                spawn_rate: 1.0
            })
        );
        // So are the types left out by naming others on the command line.
        let only_a = crate::TagFilter {
            user_types: vec!["A".into()],
            ..Default::default()
        };
        let scenario = Scenario::load_with_tags(&path, only_a).unwrap();
        assert_eq!(scenario.users().len(), 1);
        assert_eq!(
            scenario
                .shape()
                .unwrap()
                .unwrap()
                .tick(0.0, &ShapeNow::default()),
            Ok(ShapeTick::TypedUsers {
                users: vec![1],
                spawn_rate: 1.0
            })
        );
    }
}
