//! What a scenario declares: user types, their tasks and groups, and wait
//! times, checked as the script's top level runs (`user(...)`, `task(...)`,
//! `group(...)`, `between(...)`), with errors at the script's position.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, FnPtr, Map, Position};

use crate::language::{err, number};

/// How long a user waits between tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WaitTime {
    /// No wait.
    None,
    /// Always this many seconds.
    Constant(f64),
    /// Uniformly random between the two, in seconds.
    Between(f64, f64),
    /// Start a task every this many seconds: the wait is what is left of
    /// the period after the task (Locust's `constant_pacing`).
    ConstantPacing(f64),
    /// This many tasks per second per user at most (Locust's
    /// `constant_throughput`): pacing of `1 / n` seconds.
    ConstantThroughput(f64),
    /// Exponentially distributed waits with this mean in seconds, so a
    /// user's tasks arrive as a Poisson process.
    Poisson(f64),
    /// What this script function returns, in seconds: called after each
    /// task, as the user (with its `this`).
    Custom(&'static str),
}

/// A custom wait function's name, kept for the life of the process so that
/// [`WaitTime`] stays `Copy`: one copy per distinct name.
fn intern(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.push(leaked);
    leaked
}

impl WaitTime {
    /// The period of a pacing wait (`constant_pacing`, `constant_throughput`):
    /// such users keep a schedule, so their latencies can be corrected
    /// against it.
    pub fn period(self) -> Option<Duration> {
        let seconds = match self {
            WaitTime::ConstantPacing(period) => period,
            WaitTime::ConstantThroughput(rate) => 1.0 / rate,
            _ => return None,
        };
        Duration::try_from_secs_f64(seconds.max(0.0)).ok()
    }

    /// The wait after a task that took `took`, given a uniform random number
    /// `unit` in [0, 1) (none for a custom wait: its function says).
    pub fn after(self, took: Duration, unit: f64) -> Duration {
        let seconds = match self {
            WaitTime::None | WaitTime::Custom(_) => 0.0,
            WaitTime::Constant(s) => s,
            WaitTime::Between(a, b) => a + (b - a) * unit,
            WaitTime::ConstantPacing(period) => period - took.as_secs_f64(),
            WaitTime::ConstantThroughput(rate) => 1.0 / rate - took.as_secs_f64(),
            WaitTime::Poisson(mean) => -mean * (1.0 - unit).ln(),
        };
        Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
    }
}

impl std::fmt::Display for WaitTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitTime::None => f.write_str("none"),
            WaitTime::Constant(s) => write!(f, "constant({s})"),
            WaitTime::Between(a, b) => write!(f, "between({a}, {b})"),
            WaitTime::ConstantPacing(s) => write!(f, "constant_pacing({s})"),
            WaitTime::ConstantThroughput(n) => write!(f, "constant_throughput({n})"),
            WaitTime::Poisson(m) => write!(f, "poisson({m})"),
            WaitTime::Custom(name) => write!(f, "Fn({name:?})"),
        }
    }
}

/// What a task runs.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskKind {
    /// A script function without parameters.
    Function(String),
    /// A group of tasks the user stays in until a task calls `interrupt()`
    /// (Locust's TaskSet).
    Group(Arc<GroupDef>),
}

/// A nested group of tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDef {
    /// Its tasks.
    pub tasks: Vec<TaskDef>,
    /// Run the tasks in order, round and round, instead of by weight.
    pub sequential: bool,
    /// Its own wait between tasks; the user type's when `None`.
    pub wait: Option<WaitTime>,
    /// Function run when a user enters the group.
    pub on_start: Option<String>,
    /// Function run when a user leaves the group (`interrupt()`, or the
    /// user stopping while in it).
    pub on_stop: Option<String>,
}

/// A task as declared: what it runs, its weight, its tags.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskDef {
    /// What the task runs.
    pub kind: TaskKind,
    /// Relative weight among its siblings.
    pub weight: u32,
    /// Tags, for `--tags` / `--exclude-tags`.
    pub tags: Vec<String>,
}

impl TaskDef {
    /// A short label: the function's name, or `group`.
    pub fn label(&self) -> String {
        match &self.kind {
            TaskKind::Function(name) => format!("{name}()"),
            TaskKind::Group(_) => "group".to_string(),
        }
    }
}

/// A user type as declared by `user(name, #{...})`.
#[derive(Clone, Debug, PartialEq)]
pub struct UserType {
    /// The type's name.
    pub name: String,
    /// Relative share of users (ignored with `fixed_count`).
    pub weight: u32,
    /// Exactly this many users of the type, run-wide, spawned first.
    pub fixed_count: Option<u64>,
    /// Wait between tasks.
    pub wait: WaitTime,
    /// The tasks.
    pub tasks: Vec<TaskDef>,
    /// Run the tasks in order instead of by weight.
    pub sequential: bool,
    /// Function run once per user before its first task.
    pub on_start: Option<String>,
    /// Function run once per user when it stops.
    pub on_stop: Option<String>,
    /// Host URL for this type's relative URLs, instead of the run's `-H`.
    pub host: Option<String>,
    /// Where the type was declared.
    pub position: Position,
}

/// What a scenario's top level declares besides user types.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub(crate) users: Vec<UserType>,
    pub(crate) thresholds: Vec<String>,
}

pub(crate) fn positive(
    value: &Dynamic,
    what: &str,
    pos: Position,
) -> Result<f64, Box<EvalAltResult>> {
    let n = number(value, what, pos)?;
    if n > 0.0 && n.is_finite() {
        Ok(n)
    } else {
        Err(err(format!("{what} must be more than 0, not {n}"), pos))
    }
}

pub(crate) fn non_negative(
    value: &Dynamic,
    what: &str,
    pos: Position,
) -> Result<f64, Box<EvalAltResult>> {
    let n = number(value, what, pos)?;
    if n >= 0.0 && n.is_finite() {
        Ok(n)
    } else {
        Err(err(format!("{what} must be 0 or more, not {n}"), pos))
    }
}

pub(crate) fn weight_of(
    value: &Dynamic,
    what: &str,
    pos: Position,
) -> Result<u32, Box<EvalAltResult>> {
    match value.as_int() {
        Ok(w) if (1..=1_000_000).contains(&w) => Ok(w as u32),
        Ok(w) => Err(err(
            format!("{what} must be between 1 and 1000000, not {w}"),
            pos,
        )),
        Err(t) => Err(err(format!("{what} must be an integer, not {t}"), pos)),
    }
}

fn function_name(f: &FnPtr, what: &str, pos: Position) -> Result<String, Box<EvalAltResult>> {
    if f.curry().is_empty() && !f.fn_name().starts_with("anon$") {
        Ok(f.fn_name().to_string())
    } else {
        Err(err(
            format!("{what} must name a script function: Fn(\"name\"), not a closure"),
            pos,
        ))
    }
}

pub(crate) fn tags_of(value: Dynamic, pos: Position) -> Result<Vec<String>, Box<EvalAltResult>> {
    let array = value
        .try_cast::<Array>()
        .ok_or_else(|| err("a task's tags must be an array of strings", pos))?;
    array
        .into_iter()
        .map(|t| {
            t.into_string()
                .map_err(|_| err("a task's tags must be an array of strings", pos))
        })
        .collect()
}

/// Reads one entry of a `tasks` array: `Fn("name")`, `task(...)` or
/// `group(...)`.
pub(crate) fn task_of(value: Dynamic, pos: Position) -> Result<TaskDef, Box<EvalAltResult>> {
    if let Some(task) = value.clone().try_cast::<TaskDef>() {
        return Ok(task);
    }
    if let Some(f) = value.clone().try_cast::<FnPtr>() {
        return Ok(TaskDef {
            kind: TaskKind::Function(function_name(&f, "a task", pos)?),
            weight: 1,
            tags: Vec::new(),
        });
    }
    Err(err(
        format!(
            "a task must be Fn(\"name\"), task(Fn(\"name\"), weight[, tags]) or group(#{{...}}), not {}",
            value.type_name()
        ),
        pos,
    ))
}

fn tasks_of(value: Dynamic, pos: Position) -> Result<Vec<TaskDef>, Box<EvalAltResult>> {
    let tasks = value
        .try_cast::<Array>()
        .ok_or_else(|| err("tasks must be an array of tasks", pos))?;
    if tasks.is_empty() {
        return Err(err("tasks must not be empty", pos));
    }
    tasks.into_iter().map(|t| task_of(t, pos)).collect()
}

fn wait_of(value: &Dynamic, pos: Position) -> Result<WaitTime, Box<EvalAltResult>> {
    if let Some(w) = value.clone().try_cast::<WaitTime>() {
        Ok(w)
    } else if let Some(f) = value.clone().try_cast::<FnPtr>() {
        Ok(WaitTime::Custom(intern(function_name(
            &f,
            "a wait function",
            pos,
        )?)))
    } else if value.is_unit() {
        Ok(WaitTime::None)
    } else {
        Ok(WaitTime::Constant(non_negative(value, "wait", pos)?))
    }
}

fn hook_of(
    value: Dynamic,
    what: &str,
    pos: Position,
) -> Result<Option<String>, Box<EvalAltResult>> {
    if value.is_unit() {
        return Ok(None);
    }
    let f = value
        .try_cast::<FnPtr>()
        .ok_or_else(|| err(format!("{what} must be Fn(\"name\")"), pos))?;
    Ok(Some(function_name(&f, what, pos)?))
}

const USER_OPTIONS: &str = "weight, fixed_count, wait, tasks, sequential, on_start, on_stop, host";

/// Reads `user(name, options)`.
pub(crate) fn user_of(
    name: &str,
    options: Map,
    pos: Position,
) -> Result<UserType, Box<EvalAltResult>> {
    let mut user = UserType {
        name: name.to_string(),
        weight: 1,
        fixed_count: None,
        wait: WaitTime::None,
        tasks: Vec::new(),
        sequential: false,
        on_start: None,
        on_stop: None,
        host: None,
        position: pos,
    };
    if name.is_empty() {
        return Err(err("a user type needs a name", pos));
    }
    for (key, value) in options {
        match key.as_str() {
            "weight" => user.weight = weight_of(&value, "weight", pos)?,
            "fixed_count" => match value.as_int() {
                Ok(n) if n >= 0 => user.fixed_count = Some(n as u64),
                _ => return Err(err("fixed_count must be an integer, 0 or more", pos)),
            },
            "wait" => user.wait = wait_of(&value, pos)?,
            "tasks" => user.tasks = tasks_of(value, pos)?,
            "sequential" => {
                user.sequential = value
                    .as_bool()
                    .map_err(|_| err("sequential must be true or false", pos))?
            }
            "on_start" => user.on_start = hook_of(value, "on_start", pos)?,
            "on_stop" => user.on_stop = hook_of(value, "on_stop", pos)?,
            "host" => {
                let host = value
                    .into_string()
                    .map_err(|_| err("host must be a URL string", pos))?;
                if !(host.starts_with("http://") || host.starts_with("https://")) {
                    return Err(err(
                        format!("host {host:?} must be an http:// or https:// URL"),
                        pos,
                    ));
                }
                user.host = Some(host.trim_end_matches('/').to_string());
            }
            other => {
                return Err(err(
                    format!("unknown user option {other:?} (known: {USER_OPTIONS})"),
                    pos,
                ));
            }
        }
    }
    if user.tasks.is_empty() {
        return Err(err(
            format!("user type {name:?} has no tasks: give tasks: [Fn(\"name\"), ...]"),
            pos,
        ));
    }
    Ok(user)
}

/// Reads `group(#{ tasks, sequential, wait })`.
pub(crate) fn group_of(options: Map, pos: Position) -> Result<TaskDef, Box<EvalAltResult>> {
    let mut group = GroupDef {
        tasks: Vec::new(),
        sequential: false,
        wait: None,
        on_start: None,
        on_stop: None,
    };
    let mut weight = 1;
    let mut tags = Vec::new();
    for (key, value) in options {
        match key.as_str() {
            "tasks" => group.tasks = tasks_of(value, pos)?,
            "sequential" => {
                group.sequential = value
                    .as_bool()
                    .map_err(|_| err("sequential must be true or false", pos))?
            }
            "wait" => group.wait = Some(wait_of(&value, pos)?),
            "weight" => weight = weight_of(&value, "weight", pos)?,
            "tags" => tags = tags_of(value, pos)?,
            "on_start" => group.on_start = hook_of(value, "on_start", pos)?,
            "on_stop" => group.on_stop = hook_of(value, "on_stop", pos)?,
            other => {
                return Err(err(
                    format!(
                        "unknown group option {other:?} (known: tasks, sequential, wait, weight, tags, on_start, on_stop)"
                    ),
                    pos,
                ));
            }
        }
    }
    if group.tasks.is_empty() {
        return Err(err("a group needs tasks: group(#{ tasks: [...] })", pos));
    }
    Ok(TaskDef {
        kind: TaskKind::Group(Arc::new(group)),
        weight,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_their_definitions() {
        let ms = Duration::from_millis;
        assert_eq!(WaitTime::None.after(ms(5), 0.5), ms(0));
        assert_eq!(WaitTime::Constant(2.0).after(ms(5), 0.5), ms(2000));
        assert_eq!(WaitTime::Between(1.0, 3.0).after(ms(5), 0.5), ms(2000));
        assert_eq!(WaitTime::ConstantPacing(1.0).after(ms(300), 0.5), ms(700));
        assert_eq!(WaitTime::ConstantPacing(1.0).after(ms(1300), 0.5), ms(0));
        assert_eq!(
            WaitTime::ConstantThroughput(4.0).after(ms(50), 0.5),
            ms(200)
        );
        let mean: f64 = (0..10_000)
            .map(|i| WaitTime::Poisson(2.0).after(ms(0), (f64::from(i) + 0.5) / 10_000.0))
            .map(|d| d.as_secs_f64())
            .sum::<f64>()
            / 10_000.0;
        assert!((mean - 2.0).abs() < 0.02, "{mean}");
    }
}
