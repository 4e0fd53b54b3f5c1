//! Run-wide state users share (`store::push`, `store::pop`,
//! `store::incr`, ...): named counters, queues and values that every user
//! on every shard of a node reads and changes.
//!
//! A scenario's engines live one per shard thread and cannot share Rhai
//! values, so the store holds JSON values behind locks, and counters as
//! atomics: each operation is one short critical section taken by one core
//! at a time, which is what Locust's shared lists and semaphores need (a
//! credential per user, a count of events), not something to call in a
//! tight loop. One store is made per node ([`crate::Scenario::builder`]) and
//! given to every shard's engine. Waiting (`store::wait`) polls with the
//! engine's sleep: a shard's thread is never blocked.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use blast_engine::{Resume, Step};
use rhai::{Array, Dynamic, EvalAltResult, Module, NativeCallContext, Position};

use crate::bridge;
use crate::data::Feeds;
use crate::language::{err, number};

/// The functions of the `store::` module.
pub(crate) const STORE_FUNCTIONS: &[&str] = &[
    "push", "extend", "load", "pop", "len", "incr", "get", "set", "wait",
];

/// How often `store::wait` looks again.
const WAIT_POLL: Duration = Duration::from_millis(10);

/// What a key holds; a key keeps the kind it was first used as.
enum Slot {
    /// `store::incr`.
    Counter(AtomicI64),
    /// `store::push` / `store::pop`, first in, first out.
    Queue(Mutex<VecDeque<serde_json::Value>>),
    /// `store::set`.
    Value(Mutex<serde_json::Value>),
}

impl Slot {
    fn kind(&self) -> &'static str {
        match self {
            Slot::Counter(_) => "a counter",
            Slot::Queue(_) => "a queue",
            Slot::Value(_) => "a value",
        }
    }
}

/// The state every user of a node shares.
#[derive(Default)]
pub(crate) struct SharedStore {
    slots: RwLock<HashMap<String, Arc<Slot>>>,
}

/// A store operation that does not fit what the key holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WrongKind {
    key: String,
    holds: &'static str,
    wanted: &'static str,
}

impl std::fmt::Display for WrongKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store key {:?} holds {}, not {} (a key keeps the kind it was first used as)",
            self.key, self.holds, self.wanted
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SharedStore {
    fn find(&self, key: &str) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// The slot of `key`, made with `make` when the key is new.
    fn slot(&self, key: &str, make: impl FnOnce() -> Slot) -> Arc<Slot> {
        if let Some(slot) = self.find(key) {
            return slot;
        }
        self.slots
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    fn wrong(key: &str, slot: &Slot, wanted: &'static str) -> WrongKind {
        WrongKind {
            key: key.to_string(),
            holds: slot.kind(),
            wanted,
        }
    }

    /// Appends `values` to queue `key`; its length after.
    pub(crate) fn push(
        &self,
        key: &str,
        values: impl IntoIterator<Item = serde_json::Value>,
    ) -> Result<usize, WrongKind> {
        let slot = self.slot(key, || Slot::Queue(Mutex::default()));
        match &*slot {
            Slot::Queue(queue) => {
                let mut queue = lock(queue);
                queue.extend(values);
                Ok(queue.len())
            }
            other => Err(Self::wrong(key, other, "a queue")),
        }
    }

    /// Takes the oldest value of queue `key`; `None` when it is empty or
    /// was never filled.
    pub(crate) fn pop(&self, key: &str) -> Result<Option<serde_json::Value>, WrongKind> {
        match self.find(key).as_deref() {
            None => Ok(None),
            Some(Slot::Queue(queue)) => Ok(lock(queue).pop_front()),
            Some(other) => Err(Self::wrong(key, other, "a queue")),
        }
    }

    /// The length of queue `key` (0 when never filled).
    pub(crate) fn len(&self, key: &str) -> Result<usize, WrongKind> {
        match self.find(key).as_deref() {
            None => Ok(0),
            Some(Slot::Queue(queue)) => Ok(lock(queue).len()),
            Some(other) => Err(Self::wrong(key, other, "a queue")),
        }
    }

    /// Adds `by` to counter `key` (0 when new); the new value.
    pub(crate) fn incr(&self, key: &str, by: i64) -> Result<i64, WrongKind> {
        let slot = self.slot(key, || Slot::Counter(AtomicI64::new(0)));
        match &*slot {
            Slot::Counter(n) => Ok(n.fetch_add(by, Ordering::AcqRel).wrapping_add(by)),
            other => Err(Self::wrong(key, other, "a counter")),
        }
    }

    /// Sets `key` to `value`: a counter keeps being one (and takes only
    /// integers), a queue cannot be set.
    pub(crate) fn set(&self, key: &str, value: serde_json::Value) -> Result<(), WrongKind> {
        let slot = self.slot(key, || Slot::Value(Mutex::new(serde_json::Value::Null)));
        match (&*slot, value.as_i64()) {
            (Slot::Value(v), _) => *lock(v) = value,
            (Slot::Counter(n), Some(i)) => n.store(i, Ordering::Release),
            (Slot::Counter(_), None) => {
                return Err(WrongKind {
                    key: key.to_string(),
                    holds: "a counter",
                    wanted: "a place for a value that is not an integer",
                });
            }
            (other, _) => return Err(Self::wrong(key, other, "a value")),
        }
        Ok(())
    }

    /// What `key` holds: a counter's value, a value, a copy of a queue's
    /// items; `Null` when unknown.
    pub(crate) fn get(&self, key: &str) -> serde_json::Value {
        match self.find(key).as_deref() {
            None => serde_json::Value::Null,
            Some(Slot::Counter(n)) => n.load(Ordering::Acquire).into(),
            Some(Slot::Value(v)) => lock(v).clone(),
            Some(Slot::Queue(q)) => lock(q).iter().cloned().collect(),
        }
    }
}

/// Whether a value counts as "released" for `store::wait`: anything but
/// nothing, `false`, zero and the empty string or array.
fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(_) => true,
    }
}

fn to_json(value: &Dynamic, pos: Position) -> Result<serde_json::Value, Box<EvalAltResult>> {
    rhai::serde::from_dynamic::<serde_json::Value>(value).map_err(|_| {
        err(
            format!(
                "a {} cannot be shared: shared values are data (numbers, strings, booleans, arrays, maps)",
                value.type_name()
            ),
            pos,
        )
    })
}

fn to_dynamic(value: serde_json::Value) -> Dynamic {
    if value.is_null() {
        return Dynamic::UNIT;
    }
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

/// Shared state changes only in tasks and hooks: the top level runs once on
/// every shard (and once more to check the script), so a `store::push`
/// there would fill the queue once per shard.
fn in_user(call: &NativeCallContext, what: &str) -> Result<(), Box<EvalAltResult>> {
    if bridge::inside() {
        return Ok(());
    }
    Err(err(
        format!(
            "store::{what} can only be used inside a task or hook, not {} (the top level runs once on every shard: fill shared state in on_test_start(), which runs once per run)",
            bridge::outside_place()
        ),
        call.call_position(),
    ))
}

/// `store::wait(key, timeout)`: sleeps in steps until `key` holds a true
/// value; false when `timeout` ran out first.
fn wait(
    store: &SharedStore,
    call: &NativeCallContext,
    key: &str,
    timeout: Option<Duration>,
) -> Result<bool, Box<EvalAltResult>> {
    in_user(call, "wait")?;
    // Sleeping records the latest response: its result is final.
    crate::request_hook::run_from(call);
    let started = Instant::now();
    loop {
        if truthy(&store.get(key)) {
            return Ok(true);
        }
        let mut step = WAIT_POLL;
        if let Some(limit) = timeout {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Ok(false);
            }
            step = step.min(left);
        }
        match bridge::suspend(Step::Sleep(step)) {
            Some(Resume::Woke) => {}
            _ => {
                return Err(Box::new(EvalAltResult::ErrorTerminated(
                    Dynamic::UNIT,
                    call.call_position(),
                )));
            }
        }
    }
}

/// Builds the `store` module over `store`; `feeds` says where data files
/// are.
pub(crate) fn shared_module(store: Arc<SharedStore>, feeds: Rc<Feeds>) -> Module {
    let mut module = Module::new();
    let wrong = |pos: Position| move |e: WrongKind| err(e.to_string(), pos);
    let s = store.clone();
    module.set_native_fn(
        "push",
        move |call: NativeCallContext, key: &str, value: Dynamic| {
            in_user(&call, "push")?;
            let value = to_json(&value, call.call_position())?;
            s.push(key, [value])
                .map(|n| n as i64)
                .map_err(wrong(call.call_position()))
        },
    );
    let s = store.clone();
    module.set_native_fn(
        "extend",
        move |call: NativeCallContext, key: &str, values: Array| {
            in_user(&call, "extend")?;
            let values = values
                .iter()
                .map(|v| to_json(v, call.call_position()))
                .collect::<Result<Vec<_>, _>>()?;
            s.push(key, values)
                .map(|n| n as i64)
                .map_err(wrong(call.call_position()))
        },
    );
    let s = store.clone();
    module.set_native_fn(
        "load",
        move |call: NativeCallContext, key: &str, file: &str| {
            in_user(&call, "load")?;
            let pos = call.call_position();
            // Every row, once: feed() deals a file's rows out per core.
            let rows = crate::data::load(&feeds.resolve(file), true).map_err(|e| err(e, pos))?;
            let rows = rows
                .into_iter()
                .map(|row| to_json(&row, pos))
                .collect::<Result<Vec<_>, _>>()?;
            s.push(key, rows).map(|n| n as i64).map_err(wrong(pos))
        },
    );
    let s = store.clone();
    module.set_native_fn("pop", move |call: NativeCallContext, key: &str| {
        in_user(&call, "pop")?;
        s.pop(key)
            .map(|v| v.map_or(Dynamic::UNIT, to_dynamic))
            .map_err(wrong(call.call_position()))
    });
    let s = store.clone();
    module.set_native_fn("len", move |call: NativeCallContext, key: &str| {
        in_user(&call, "len")?;
        s.len(key)
            .map(|n| n as i64)
            .map_err(wrong(call.call_position()))
    });
    let s = store.clone();
    module.set_native_fn("incr", move |call: NativeCallContext, key: &str| {
        in_user(&call, "incr")?;
        s.incr(key, 1).map_err(wrong(call.call_position()))
    });
    let s = store.clone();
    module.set_native_fn(
        "incr",
        move |call: NativeCallContext, key: &str, by: rhai::INT| {
            in_user(&call, "incr")?;
            s.incr(key, by).map_err(wrong(call.call_position()))
        },
    );
    let s = store.clone();
    module.set_native_fn("get", move |call: NativeCallContext, key: &str| {
        in_user(&call, "get")?;
        Ok(to_dynamic(s.get(key)))
    });
    let s = store.clone();
    module.set_native_fn(
        "set",
        move |call: NativeCallContext, key: &str, value: Dynamic| {
            in_user(&call, "set")?;
            let value = to_json(&value, call.call_position())?;
            s.set(key, value).map_err(wrong(call.call_position()))
        },
    );
    let s = store.clone();
    module.set_native_fn("wait", move |call: NativeCallContext, key: &str| {
        wait(&s, &call, key, None)
    });
    let s = store;
    module.set_native_fn(
        "wait",
        move |call: NativeCallContext, key: &str, timeout: Dynamic| {
            let pos = call.call_position();
            let seconds = number(&timeout, "store::wait's timeout", pos)?;
            if !(seconds >= 0.0 && seconds.is_finite()) {
                return Err(err(
                    "store::wait's timeout must be a number of seconds, 0 or more",
                    pos,
                ));
            }
            let limit = crate::language::duration_of(seconds, "store::wait's timeout", pos)?;
            wait(&s, &call, key, Some(limit))
        },
    );
    module
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queues_are_first_in_first_out_and_pop_nothing_when_empty() {
        let store = SharedStore::default();
        assert_eq!(store.pop("q"), Ok(None));
        assert_eq!(store.len("q"), Ok(0));
        assert_eq!(store.push("q", [json!("a")]), Ok(1));
        assert_eq!(store.push("q", [json!({"u": 1}), json!(2)]), Ok(3));
        assert_eq!(store.get("q"), json!(["a", {"u": 1}, 2]));
        assert_eq!(store.pop("q"), Ok(Some(json!("a"))));
        assert_eq!(store.pop("q"), Ok(Some(json!({"u": 1}))));
        assert_eq!(store.pop("q"), Ok(Some(json!(2))));
        assert_eq!(store.pop("q"), Ok(None));
        assert_eq!(store.len("q"), Ok(0));
    }

    #[test]
    fn counters_count_and_keys_keep_their_kind() {
        let store = SharedStore::default();
        assert_eq!(store.get("n"), serde_json::Value::Null);
        assert_eq!(store.incr("n", 1), Ok(1));
        assert_eq!(store.incr("n", 5), Ok(6));
        assert_eq!(store.incr("n", -2), Ok(4));
        assert_eq!(store.get("n"), json!(4));
        assert_eq!(store.set("n", json!(10)), Ok(()));
        assert_eq!(store.incr("n", 1), Ok(11));
        let e = store.push("n", [json!(1)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "store key \"n\" holds a counter, not a queue (a key keeps the kind it was first used as)"
        );
        assert!(store.set("n", json!("x")).is_err());
        store.push("q", [json!(1)]).unwrap();
        assert!(store.incr("q", 1).is_err());
        assert!(store.set("q", json!(1)).is_err());
        store.set("v", json!({"a": [1]})).unwrap();
        assert_eq!(store.get("v"), json!({"a": [1]}));
        assert!(store.pop("v").is_err());
    }

    #[test]
    fn every_thread_sees_one_store() {
        let store = Arc::new(SharedStore::default());
        store.push("q", (0..4000).map(|i| json!(i))).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(v) = store.pop("q").unwrap() {
                        store.incr("popped", 1).unwrap();
                        got.push(v.as_i64().unwrap());
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<i64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..4000).collect::<Vec<_>>());
        assert_eq!(store.get("popped"), json!(4000));
    }

    #[test]
    fn scripts_reach_the_store_only_from_tasks_and_hooks_and_typos_are_caught() {
        let declare = "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { }\n";
        let top = format!("{declare}store::push(\"q\", 1);\n");
        let e = crate::Scenario::from_source("s.rhai", &top).unwrap_err();
        assert!(
            e.to_string().starts_with("s.rhai:3:8: store::push can only be used inside a task or hook, not at a script's top level"),
            "{e}"
        );
        let typo = format!("{declare}fn u() {{ store::pusj(\"q\", 1); }}\n");
        let e = crate::Scenario::from_source("s.rhai", &typo).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown function store::pusj() (did you mean store::push?)"),
            "{e}"
        );
        let fine = format!("{declare}fn u() {{ store::push(\"q\", 1); store::incr(\"n\", 2); }}\n");
        crate::Scenario::from_source("s.rhai", &fine).unwrap();
    }

    #[test]
    fn truthiness_releases_waiters() {
        for (v, t) in [
            (json!(null), false),
            (json!(false), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(""), false),
            (json!([]), false),
            (json!(true), true),
            (json!(1), true),
            (json!("go"), true),
            (json!({}), true),
        ] {
            assert_eq!(truthy(&v), t, "{v}");
        }
    }
}
