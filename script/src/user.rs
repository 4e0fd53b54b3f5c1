//! Script users: the engine's [`VirtualUser`] implemented by running the
//! scenario's functions on coroutines.

use std::rc::Rc;
use std::time::Duration;

use blast_engine::{Outcome, Resume, ScriptError, ShardScenario, Step, VirtualUser, Work};
use rhai::{CallFnOptions, Dynamic, EvalAltResult, Map, Scope};

use crate::bridge::{self, Progress, StackPool};
use crate::language::UserType;
use crate::scenario::{Compiled, innermost, location};

thread_local! {
    /// The random generator of the user whose work is running on this
    /// thread, so a run with `--seed` repeats every user's choices.
    static RNG: std::cell::RefCell<fastrand::Rng> = std::cell::RefCell::new(fastrand::Rng::new());
}

/// Runs `f` with the running user's random generator.
pub(crate) fn with_rng<T>(f: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
    RNG.with(|rng| f(&mut rng.borrow_mut()))
}

/// Swaps the user's generator in for the duration of its step.
fn swap_rng(user_rng: &mut fastrand::Rng) {
    RNG.with(|rng| std::mem::swap(&mut *rng.borrow_mut(), user_rng));
}

/// What every user on a shard shares.
struct Shared {
    file: String,
    compiled: Compiled,
    /// User type by run-wide user index modulo its length: types in
    /// proportion to their weights, interleaved.
    cycle: Vec<usize>,
    stacks: StackPool,
    seed: u64,
}

/// A scenario on one shard.
pub(crate) struct ShardScript {
    shared: Rc<Shared>,
}

/// Spreads user types over a cycle as evenly as their weights allow
/// (smooth weighted round robin), so any prefix of users is close to the
/// weights' proportions.
fn type_cycle(users: &[UserType]) -> Vec<usize> {
    let total: u64 = users.iter().map(|u| u64::from(u.weight)).sum();
    // Weights are capped at 1e6 each; reduce by their common divisor.
    let divisor = users.iter().map(|u| u64::from(u.weight)).fold(0, gcd);
    let weights: Vec<i64> = users
        .iter()
        .map(|u| (u64::from(u.weight) / divisor) as i64)
        .collect();
    let length = (total / divisor) as usize;
    let sum: i64 = weights.iter().sum();
    let mut current = vec![0i64; users.len()];
    let mut cycle = Vec::with_capacity(length);
    for _ in 0..length {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let best = (0..users.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        current[best] -= sum;
        cycle.push(best);
    }
    cycle
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl ShardScript {
    pub(crate) fn new(file: &str, compiled: Compiled, seed: u64) -> ShardScript {
        let cycle = type_cycle(&compiled.users);
        ShardScript {
            shared: Rc::new(Shared {
                file: file.to_string(),
                compiled,
                cycle,
                stacks: StackPool::default(),
                seed,
            }),
        }
    }
}

impl ShardScenario for ShardScript {
    fn new_user(&self, index: u64) -> Box<dyn VirtualUser> {
        let shared = self.shared.clone();
        let kind = shared.cycle[(index % shared.cycle.len() as u64) as usize];
        // Each user's choices depend only on the run's seed and its index,
        // not on which shard runs it.
        let rng = fastrand::Rng::with_seed(shared.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Box::new(ScriptUser {
            shared,
            kind,
            this: Some(Dynamic::from_map(Map::new())),
            work: None,
            rng,
        })
    }
}

/// One script user.
struct ScriptUser {
    shared: Rc<Shared>,
    /// Index of its user type.
    kind: usize,
    /// The user's own state (`this` in its functions); taken by the piece of
    /// work in progress and given back when it ends.
    this: Option<Dynamic>,
    work: Option<bridge::Work<Dynamic>>,
    rng: fastrand::Rng,
}

impl ScriptUser {
    fn user_type(&self) -> &UserType {
        &self.shared.compiled.users[self.kind]
    }

    fn pick_task(&mut self) -> String {
        let tasks = &self.shared.compiled.users[self.kind].tasks;
        let total: u32 = tasks.iter().map(|t| t.weight).sum();
        let mut pick = self.rng.u32(0..total.max(1));
        for task in tasks {
            if pick < task.weight {
                return task.function.clone();
            }
            pick -= task.weight;
        }
        tasks[0].function.clone()
    }

    fn progress(&mut self, progress: Progress<Dynamic>) -> Step {
        match progress {
            Progress::Step(step) => step,
            Progress::Finished((outcome, this)) => {
                self.this = Some(this);
                Step::Done(outcome)
            }
        }
    }

    /// Runs `function` of the scenario on a coroutine.
    fn run_function(&mut self, function: String) -> Step {
        let shared = self.shared.clone();
        let mut this = self
            .this
            .take()
            .unwrap_or_else(|| Dynamic::from_map(Map::new()));
        let body = move || {
            let result = {
                let options = CallFnOptions::new()
                    .eval_ast(false)
                    .rewind_scope(true)
                    .bind_this_ptr(&mut this);
                shared.compiled.engine.call_fn_with_options::<Dynamic>(
                    options,
                    &mut Scope::new(),
                    &shared.compiled.ast,
                    &function,
                    (),
                )
            };
            let outcome = match result {
                Ok(_) => Outcome::Completed,
                Err(e) => outcome_of(&shared.compiled, &shared.file, &function, &e),
            };
            (outcome, this)
        };
        match bridge::Work::start(&self.shared.stacks, body) {
            Ok((work, progress)) => {
                self.work = work;
                self.progress(progress)
            }
            Err(e) => Step::Done(Outcome::Failed(ScriptError {
                message: format!("cannot allocate a coroutine stack: {e}"),
                location: self.shared.file.clone(),
            })),
        }
    }
}

/// How a script call of `function` that returned an error ended.
fn outcome_of(compiled: &Compiled, file: &str, function: &str, e: &EvalAltResult) -> Outcome {
    let (inner, message, mut pos) = innermost(e);
    if pos.is_none() {
        // Rhai gives a stack overflow no position: the task it happened in
        // is the best there is.
        pos = compiled.function_position(function);
    }
    let message = match inner {
        EvalAltResult::ErrorTerminated(..) => return Outcome::Aborted,
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "call stack too deep in {function}(): more than {} nested calls (runaway recursion?)",
            bridge::MAX_CALL_LEVELS
        ),
        EvalAltResult::ErrorTooManyOperations(_) => {
            "too many operations in one task (runaway loop?)".to_string()
        }
        _ => message,
    };
    Outcome::Failed(ScriptError {
        message,
        location: location(file, pos),
    })
}

impl VirtualUser for ScriptUser {
    fn start(&mut self, work: Work) -> Step {
        match work {
            Work::Task => {
                let function = self.pick_task();
                swap_rng(&mut self.rng);
                let step = self.run_function(function);
                swap_rng(&mut self.rng);
                step
            }
            // Start and stop hooks come with the full scenario language.
            Work::OnStart | Work::OnStop => Step::Done(Outcome::Completed),
        }
    }

    fn resume(&mut self, input: Resume) -> Step {
        match self.work.take() {
            Some(work) => {
                swap_rng(&mut self.rng);
                let (work, progress) = work.resume(&self.shared.stacks, input);
                swap_rng(&mut self.rng);
                self.work = work;
                self.progress(progress)
            }
            None => Step::Done(Outcome::Completed),
        }
    }

    fn wait_time(&mut self) -> Duration {
        let wait = self.user_type().wait;
        wait.sample(self.rng.f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::{TaskDef, WaitTime};
    use rhai::Position;

    fn user(weight: u32) -> UserType {
        UserType {
            name: format!("u{weight}"),
            weight,
            wait: WaitTime::None,
            tasks: vec![TaskDef {
                function: "t".into(),
                weight: 1,
            }],
            position: Position::NONE,
        }
    }

    #[test]
    fn type_cycle_follows_weights_and_interleaves() {
        assert_eq!(type_cycle(&[user(3), user(1)]), vec![0, 0, 1, 0]);
        assert_eq!(type_cycle(&[user(2), user(2)]), vec![0, 1]);
        let cycle = type_cycle(&[user(5), user(3), user(2)]);
        assert_eq!(cycle.len(), 10);
        assert_eq!(cycle.iter().filter(|&&i| i == 1).count(), 3);
    }
}
