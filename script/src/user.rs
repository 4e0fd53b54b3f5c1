//! Script users: the engine's [`VirtualUser`] implemented by running the
//! scenario's functions on coroutines.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blast_engine::{
    Outcome, Resume, ScriptError, ShardScenario, Step, TestHook, VirtualUser, Wait, Work,
};
use rhai::{CallFnOptions, Dynamic, EvalAltResult, Map, Scope};

use crate::bridge::{self, Progress, StackPool};
use crate::declare::{GroupDef, TaskDef, TaskKind, UserType, WaitTime};
use crate::language::STOP_USER;
use crate::request_hook::{self, RequestInfo};
use crate::scenario::{Compiled, innermost, location};

/// The running user's own state that script functions reach: swapped into
/// the thread while the user's work runs, out when it suspends or ends.
pub(crate) struct UserCtx {
    /// The user's random generator, seeded from the run's seed and the
    /// user's index (and type, for users made by type), so `--seed`
    /// repeats every choice.
    pub(crate) rng: fastrand::Rng,
    /// `[Type#index] `, the prefix of the user's log lines.
    pub(crate) label: String,
    /// Index of the origin relative URLs go to.
    pub(crate) origin: u16,
    /// Requests sent so far; a response's number is the count when it
    /// arrived.
    pub(crate) requests: u64,
    /// Whether the latest response is still unrecorded (can be
    /// reclassified): until the next request, sleep or the end of the work.
    pub(crate) pending_open: bool,
    /// `interrupt()` was called: leave the current group after this task.
    pub(crate) interrupt: bool,
    /// A group's on_start failed: the groups entered with it are left, so
    /// their on_start runs again when they are next picked.
    pub(crate) group_start_failed: bool,
    /// `stop_user()` was called.
    pub(crate) stop_user: bool,
    /// What the custom wait function returned after the last task.
    pub(crate) custom_wait: Option<Duration>,
    /// The user's `this` (a shared map), for helper functions called the
    /// ordinary way (see `this_binding`).
    pub(crate) this: Option<Dynamic>,
    /// `on_request` is running: its own requests are not passed to it.
    pub(crate) in_hook: bool,
    /// The latest request, kept for `on_request` until its result is final.
    pub(crate) finished_request: Option<RequestInfo>,
}

impl UserCtx {
    pub(crate) fn new(rng: fastrand::Rng, label: String, origin: u16) -> UserCtx {
        UserCtx {
            rng,
            label,
            origin,
            requests: 0,
            pending_open: false,
            interrupt: false,
            stop_user: false,
            custom_wait: None,
            group_start_failed: false,
            this: None,
            in_hook: false,
            finished_request: None,
        }
    }
}

thread_local! {
    static CTX: RefCell<UserCtx> =
        RefCell::new(UserCtx::new(fastrand::Rng::new(), String::new(), 0));
}

/// Runs `f` with the running user's state.
pub(crate) fn with_ctx<T>(f: impl FnOnce(&mut UserCtx) -> T) -> T {
    CTX.with(|ctx| f(&mut ctx.borrow_mut()))
}

fn swap_ctx(user: &mut UserCtx) {
    CTX.with(|ctx| std::mem::swap(&mut *ctx.borrow_mut(), user));
}

/// What every user on a shard shares.
struct Shared {
    file: String,
    compiled: Compiled,
    /// User type by run-wide user index (past the fixed-count users) modulo
    /// its length: weighted types in proportion, interleaved.
    cycle: Vec<usize>,
    /// `(type, count)` of the fixed-count types, in declaration order: the
    /// first users of the run.
    fixed: Vec<(usize, u64)>,
    /// Origin index of each user type.
    origins: Vec<u16>,
    /// Shards in the run (users are dealt to shards by index).
    shards: u64,
    stacks: StackPool,
    seed: u64,
}

/// A scenario on one shard.
pub(crate) struct ShardScript {
    shared: Rc<Shared>,
}

/// Spreads the weighted user types over a cycle as evenly as their weights
/// allow (smooth weighted round robin), so any prefix of users is close to
/// the weights' proportions. Fixed-count types are not in it.
fn type_cycle(users: &[UserType]) -> Vec<usize> {
    let weighted: Vec<(usize, u64)> = users
        .iter()
        .enumerate()
        .filter(|(_, u)| u.fixed_count.is_none())
        .map(|(i, u)| (i, u64::from(u.weight)))
        .collect();
    if weighted.is_empty() {
        return Vec::new();
    }
    // Weights are capped at 1e6 each; reduce by their common divisor.
    let divisor = weighted.iter().map(|&(_, w)| w).fold(0, gcd);
    let weights: Vec<i64> = weighted
        .iter()
        .map(|&(_, w)| (w / divisor) as i64)
        .collect();
    let sum: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut cycle = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let best = (0..weights.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        current[best] -= sum;
        cycle.push(weighted[best].0);
    }
    cycle
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl ShardScript {
    /// `origins[t]` is the origin index of user type `t`.
    pub(crate) fn new(
        file: &str,
        compiled: Compiled,
        seed: u64,
        origins: Vec<u16>,
        shards: usize,
    ) -> ShardScript {
        let cycle = type_cycle(&compiled.users);
        let fixed = compiled
            .users
            .iter()
            .enumerate()
            .filter_map(|(i, u)| u.fixed_count.map(|n| (i, n)))
            .collect();
        ShardScript {
            shared: Rc::new(Shared {
                file: file.to_string(),
                compiled,
                cycle,
                fixed,
                origins,
                shards: shards.max(1) as u64,
                stacks: StackPool::default(),
                seed,
            }),
        }
    }

    /// The user type of the user with run-wide `index`: fixed-count types
    /// first, then the weighted cycle; `None` when the index is past every
    /// fixed count and no type is weighted.
    ///
    /// User `k` runs on shard `k mod shards`. Each shard walks the cycle in
    /// order from its own offset, so every shard holds the types in their
    /// proportions (shards that run at different speeds do not skew the
    /// types' shares of the work) and any prefix of users run-wide does
    /// too.
    fn type_of(&self, index: u64) -> Option<usize> {
        let shared = &self.shared;
        let mut rest = index;
        for &(kind, count) in &shared.fixed {
            if rest < count {
                return Some(kind);
            }
            rest -= count;
        }
        if shared.cycle.is_empty() {
            return None;
        }
        let len = shared.cycle.len() as u64;
        let shard = rest % shared.shards;
        let offset = shard * len / shared.shards;
        Some(shared.cycle[((rest / shared.shards + offset) % len) as usize])
    }

    fn rng_for(&self, index: u64) -> fastrand::Rng {
        // Each user's choices depend only on the run's seed and its index,
        // not on which shard runs it.
        fastrand::Rng::with_seed(self.shared.seed ^ index.wrapping_mul(GOLDEN))
    }

    /// The generator of the user with `index` among users of `user_type`.
    ///
    /// It is [`ShardScript::rng_for`]'s of a run-wide index that
    /// `new_user` never reaches (top bit set, then the type, then the index
    /// within it), and multiplying by an odd constant is one-to-one, so no
    /// user made by type shares a seed with one made by index, nor with
    /// another made by type (below 2^40 users per type and 2^22 types).
    fn rng_for_type(&self, user_type: usize, index: u64) -> fastrand::Rng {
        let key = (1 << 63) | ((user_type as u64) << 40) | (index & ((1 << 40) - 1));
        fastrand::Rng::with_seed(self.shared.seed ^ key.wrapping_mul(GOLDEN))
    }

    fn make_user(&self, kind: usize, rng: fastrand::Rng, label: String) -> ScriptUser {
        ScriptUser::new(
            self.shared.clone(),
            Role::User(kind),
            UserCtx::new(rng, label, self.shared.origins[kind]),
        )
    }

    /// The user with `index` among users of `user_type`, whatever the
    /// type's weight or `fixed_count`: a load that sets each type's count
    /// (a shape's per-type map) decides how many there are.
    fn user_of_type(&self, user_type: usize, index: u64) -> Option<ScriptUser> {
        let name = &self.shared.compiled.users.get(user_type)?.name;
        Some(self.make_user(
            user_type,
            self.rng_for_type(user_type, index),
            format!("[{name}#{index}] "),
        ))
    }
}

/// The hook run each time a ramp reaches its target, with the user count.
pub(crate) const SPAWNING_COMPLETE: &str = "on_spawning_complete";

/// 2^64 divided by the golden ratio, odd: spreads user indices over seeds.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl ShardScenario for ShardScript {
    fn new_user(&self, index: u64) -> Box<dyn VirtualUser> {
        let Some(kind) = self.type_of(index) else {
            // Every fixed-count user exists already and no type is
            // weighted: this user has nothing to do.
            return Box::new(IdleUser);
        };
        let name = &self.shared.compiled.users[kind].name;
        Box::new(self.make_user(kind, self.rng_for(index), format!("[{name}#{index}] ")))
    }

    fn new_user_of_type(&self, user_type: usize, index: u64) -> Option<Box<dyn VirtualUser>> {
        self.user_of_type(user_type, index)
            .map(|u| Box::new(u) as Box<dyn VirtualUser>)
    }

    fn test_hook(&self, hook: TestHook) -> Option<Box<dyn VirtualUser>> {
        let (name, args) = match hook {
            TestHook::Start => ("on_test_start", Vec::new()),
            TestHook::Stop => ("on_test_stop", Vec::new()),
            TestHook::SpawningComplete(users) => {
                (SPAWNING_COMPLETE, vec![Dynamic::from(users as rhai::INT)])
            }
        };
        // A hook takes its arguments or none (on_spawning_complete() may
        // ignore the count).
        let def =
            self.shared.compiled.ast.iter_fn_def().find(|f| {
                f.name == name && (f.params.is_empty() || f.params.len() == args.len())
            })?;
        let args = if def.params.is_empty() {
            Vec::new()
        } else {
            args
        };
        let mut user = ScriptUser::new(
            self.shared.clone(),
            Role::Hook(name),
            UserCtx::new(self.rng_for(u64::MAX), format!("[{name}] "), 0),
        );
        user.args = args;
        Some(Box::new(user))
    }

    fn set_test_data(&self, json: &str) {
        let value = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| rhai::serde::to_dynamic(v).ok())
            .unwrap_or(Dynamic::UNIT);
        *self.shared.compiled.test_data.borrow_mut() = value;
    }
}

/// A user past every fixed count when no type is weighted: it waits.
struct IdleUser;

impl VirtualUser for IdleUser {
    fn start(&mut self, _work: Work) -> Step {
        Step::Done(Outcome::Completed)
    }
    fn resume(&mut self, _input: Resume) -> Step {
        Step::Done(Outcome::Completed)
    }
    fn wait(&mut self) -> Wait {
        Wait::For(Duration::from_secs(3600))
    }
}

/// What a script user is for.
#[derive(Clone, Copy)]
enum Role {
    /// A user of this type.
    User(usize),
    /// A run-wide hook, by function name.
    Hook(&'static str),
}

/// A group the user is in, and where it is in a sequential one.
struct ActiveGroup {
    group: Arc<GroupDef>,
    next: usize,
}

/// The state a piece of work hands back when it ends: `this`, and what the
/// function returned.
type Finished = (Dynamic, Dynamic);

/// One script user.
struct ScriptUser {
    shared: Rc<Shared>,
    role: Role,
    /// The user's own state (`this` in its functions); taken by the piece of
    /// work in progress and given back when it ends.
    this: Option<Dynamic>,
    work: Option<bridge::Work<Finished>>,
    ctx: UserCtx,
    /// Groups entered, innermost last.
    groups: Vec<ActiveGroup>,
    /// Next task of a sequential user type.
    next_task: usize,
    /// When the current task started, for pacing waits.
    task_started: Instant,
    /// What the last piece of work returned, as JSON (hooks only).
    result: Option<String>,
    /// What a hook is called with (on_spawning_complete's user count).
    args: Vec<Dynamic>,
    /// What the custom wait function last answered.
    last_custom_wait: Option<Duration>,
    /// How many groups the user was in before its latest task's pick.
    entered: usize,
}

/// The wait after a custom wait function failed before it ever answered.
const WAIT_AFTER_A_FAILED_WAIT: Duration = Duration::from_secs(1);

impl ScriptUser {
    fn new(shared: Rc<Shared>, role: Role, mut ctx: UserCtx) -> ScriptUser {
        // Shared, so that helpers called the ordinary way change the same
        // map as the task (see `this_binding`).
        let this = Dynamic::from_map(Map::new()).into_shared();
        ctx.this = Some(this.clone());
        ScriptUser {
            shared,
            role,
            this: Some(this),
            work: None,
            ctx,
            groups: Vec::new(),
            next_task: 0,
            task_started: Instant::now(),
            result: None,
            args: Vec::new(),
            last_custom_wait: None,
            entered: 0,
        }
    }

    fn user_type(&self) -> Option<&UserType> {
        match self.role {
            Role::User(kind) => self.shared.compiled.users.get(kind),
            Role::Hook(_) => None,
        }
    }

    /// Chooses the next task: from the innermost group the user is in, by
    /// weight or in order; choosing a group enters it and chooses inside.
    fn pick_task(&mut self) -> Option<String> {
        let Role::User(kind) = self.role else {
            return None;
        };
        let shared = self.shared.clone();
        let user = &shared.compiled.users[kind];
        // Bounded: each round enters one more group, and groups nest only
        // as deep as the scenario wrote them.
        for _ in 0..64 {
            let kind = match self.groups.last_mut() {
                Some(active) => {
                    let group = active.group.clone();
                    let task = pick(
                        &group.tasks,
                        group.sequential,
                        &mut active.next,
                        &mut self.ctx.rng,
                    );
                    task.kind.clone()
                }
                None => pick(
                    &user.tasks,
                    user.sequential,
                    &mut self.next_task,
                    &mut self.ctx.rng,
                )
                .kind
                .clone(),
            };
            match kind {
                TaskKind::Function(name) => return Some(name),
                TaskKind::Group(group) => self.groups.push(ActiveGroup { group, next: 0 }),
            }
        }
        None
    }

    fn progress(&mut self, progress: Progress<Finished>) -> Step {
        match progress {
            Progress::Step(step) => step,
            Progress::Finished((outcome, (this, value))) => {
                self.this = Some(this);
                if matches!(self.role, Role::Hook(_)) && outcome == Outcome::Completed {
                    self.result = rhai::serde::from_dynamic::<serde_json::Value>(&value)
                        .ok()
                        .filter(|v| !v.is_null())
                        .map(|v| v.to_string());
                }
                if self.ctx.group_start_failed {
                    // As Locust drops a TaskSet whose on_start raised: the
                    // groups entered with this task are left unstarted.
                    self.ctx.group_start_failed = false;
                    self.ctx.interrupt = false;
                    self.groups.truncate(self.entered);
                }
                if self.ctx.interrupt {
                    self.ctx.interrupt = false;
                    self.groups.pop();
                }
                if self.ctx.stop_user {
                    return Step::Done(Outcome::StopUser);
                }
                Step::Done(outcome)
            }
        }
    }

    /// The wait after a task when the user is in its `depth` outermost
    /// groups: the innermost of them with a wait of its own, else its type's.
    fn wait_at(&self, depth: usize) -> WaitTime {
        self.groups[..depth.min(self.groups.len())]
            .iter()
            .rev()
            .find_map(|g| g.group.wait)
            .or_else(|| self.user_type().map(|u| u.wait))
            .unwrap_or(WaitTime::None)
    }

    /// Starts `plan` on a coroutine, to its first step or its end. The
    /// user's state must be swapped in (and out again before
    /// [`ScriptUser::progress`] reads it).
    fn run(&mut self, plan: Plan) -> Result<Progress<Finished>, Step> {
        let shared = self.shared.clone();
        let mut this = self
            .this
            .take()
            .unwrap_or_else(|| Dynamic::from_map(Map::new()));
        let body = move || {
            let (outcome, value) = plan.run(&shared, &mut this);
            // The last request's result is final now.
            if shared.compiled.on_request {
                request_hook::run_after(
                    &shared.compiled.engine,
                    &shared.compiled.ast,
                    &shared.file,
                    &mut this,
                );
            }
            (outcome, (this, value))
        };
        match bridge::Work::start(&self.shared.stacks, body) {
            Ok((work, progress)) => {
                self.work = work;
                Ok(progress)
            }
            Err(e) => Err(Step::Done(Outcome::Failed(ScriptError {
                message: format!("cannot allocate a coroutine stack: {e}"),
                location: self.shared.file.clone(),
            }))),
        }
    }
}

/// What one piece of work runs.
#[derive(Default)]
struct Plan {
    /// Functions run in order (the on_start hooks of groups just entered,
    /// then the task; or the on_stop hooks of the groups the user is in,
    /// innermost first, then its type's on_stop); an error ends the piece.
    functions: Vec<String>,
    /// Run when a function calls `interrupt()`: the left group's on_stop.
    on_interrupt: Option<String>,
    /// The wait function to call at the end, when the user stays in its
    /// groups and when it leaves the innermost (after a task only).
    wait: (Option<&'static str>, Option<&'static str>),
    /// What the functions are called with (a hook's arguments; none for
    /// tasks).
    args: Vec<Dynamic>,
    /// How many of `functions` are on_start hooks of groups just entered.
    group_starts: usize,
    /// Run every function even after one failed (the stop hooks: a
    /// group's failing on_stop must not skip the type's); the first error
    /// is the outcome.
    keep_going: bool,
}

impl Plan {
    /// Runs the plan as the user whose state is `this`: what the last
    /// function returned, and how the piece ended.
    fn run(&self, shared: &Shared, this: &mut Dynamic) -> (Outcome, Dynamic) {
        let compiled = &shared.compiled;
        let call_with = |this: &mut Dynamic, function: &str, args: Vec<Dynamic>| {
            let options = CallFnOptions::new()
                .eval_ast(false)
                .rewind_scope(true)
                .bind_this_ptr(this);
            compiled
                .engine
                .call_fn_with_options::<Dynamic>(
                    options,
                    &mut Scope::new(),
                    &compiled.ast,
                    compiled.renamed.internal(function),
                    args,
                )
                .map_err(|e| outcome_of(compiled, &shared.file, function, &e))
        };
        let call = |this: &mut Dynamic, function: &str| call_with(this, function, Vec::new());
        let mut value = Dynamic::UNIT;
        let mut outcome = Outcome::Completed;
        for (i, function) in self.functions.iter().enumerate() {
            match call_with(this, function, self.args.clone()) {
                Ok(v) => value = v,
                Err(ended) => {
                    let stopping = matches!(ended, Outcome::Aborted | Outcome::StopUser);
                    if i < self.group_starts && !stopping {
                        with_ctx(|c| c.group_start_failed = true);
                    }
                    if outcome == Outcome::Completed || stopping {
                        outcome = ended;
                    }
                    if stopping || !self.keep_going {
                        break;
                    }
                }
            }
        }
        if matches!(outcome, Outcome::Aborted | Outcome::StopUser) {
            return (outcome, value);
        }
        let interrupted = with_ctx(|c| c.interrupt);
        if interrupted
            && let Some(f) = &self.on_interrupt
            && let Err(ended) = call(this, f)
        {
            if matches!(ended, Outcome::Aborted | Outcome::StopUser) {
                return (ended, value);
            }
            if outcome == Outcome::Completed {
                outcome = ended;
            }
        }
        let wait = if interrupted {
            self.wait.1
        } else {
            self.wait.0
        };
        if let Some(f) = wait {
            let seconds = call(this, f).and_then(|v| {
                let seconds = v
                    .as_float()
                    .or_else(|_| v.as_int().map(|i| i as f64))
                    .ok()
                    .filter(|s| *s >= 0.0 && *s <= crate::language::MAX_SECONDS)
                    .and_then(|s| Duration::try_from_secs_f64(s).ok());
                seconds.ok_or_else(|| {
                    Outcome::Failed(ScriptError {
                        message: format!(
                            "wait function {f}() returned {}; it must return the seconds to wait, a number 0 or more",
                            if v.is_int() || v.is_float() {
                                v.to_string()
                            } else {
                                v.type_name().to_string()
                            }
                        ),
                        location: location(&shared.file, compiled.function_position(f)),
                    })
                })
            });
            match seconds {
                Ok(d) => with_ctx(|c| c.custom_wait = Some(d)),
                Err(ended) => {
                    if matches!(ended, Outcome::Aborted | Outcome::StopUser) {
                        return (ended, value);
                    }
                    if outcome == Outcome::Completed {
                        outcome = ended;
                    }
                }
            }
        }
        (outcome, value)
    }
}

/// Picks one of `tasks`: the next in order when `sequential`, else by
/// weight.
fn pick<'a>(
    tasks: &'a [TaskDef],
    sequential: bool,
    next: &mut usize,
    rng: &mut fastrand::Rng,
) -> &'a TaskDef {
    if sequential {
        let task = &tasks[*next % tasks.len()];
        *next = (*next + 1) % tasks.len();
        return task;
    }
    let total: u32 = tasks.iter().map(|t| t.weight).sum();
    let mut at = rng.u32(0..total.max(1));
    for task in tasks {
        if at < task.weight {
            return task;
        }
        at -= task.weight;
    }
    &tasks[0]
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
        EvalAltResult::ErrorTerminated(value, _) => {
            return if value.clone().into_string().is_ok_and(|s| s == STOP_USER) {
                Outcome::StopUser
            } else {
                Outcome::Aborted
            };
        }
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
        let mut plan = Plan::default();
        match (work, self.role) {
            (Work::Task, Role::User(_)) => {
                self.task_started = Instant::now();
                let entered = self.groups.len();
                let Some(task) = self.pick_task() else {
                    return Step::Done(Outcome::Completed);
                };
                plan.functions = self.groups[entered..]
                    .iter()
                    .filter_map(|g| g.group.on_start.clone())
                    .collect();
                plan.group_starts = plan.functions.len();
                self.entered = entered;
                plan.functions.push(task);
                plan.on_interrupt = self.groups.last().and_then(|g| g.group.on_stop.clone());
                let custom = |w: WaitTime| match w {
                    WaitTime::Custom(f) => Some(f),
                    _ => None,
                };
                let depth = self.groups.len();
                plan.wait = (
                    custom(self.wait_at(depth)),
                    custom(self.wait_at(depth.saturating_sub(1))),
                );
            }
            (Work::OnStart, Role::User(_)) => {
                plan.functions
                    .extend(self.user_type().and_then(|u| u.on_start.clone()));
            }
            (Work::OnStop, Role::User(_)) => {
                // Leaving the groups it is in, innermost first.
                plan.functions = self
                    .groups
                    .drain(..)
                    .rev()
                    .filter_map(|g| g.group.on_stop.clone())
                    .collect();
                plan.functions
                    .extend(self.user_type().and_then(|u| u.on_stop.clone()));
                plan.keep_going = true;
            }
            (Work::OnStart, Role::Hook(name)) => {
                plan.functions.push(name.to_string());
                plan.args = self.args.clone();
            }
            (_, Role::Hook(_)) => {}
        }
        if plan.functions.is_empty() {
            return Step::Done(Outcome::Completed);
        }
        swap_ctx(&mut self.ctx);
        let started = self.run(plan);
        swap_ctx(&mut self.ctx);
        // Only now is `self.ctx` the user's again: a piece that ended at
        // once (an `interrupt()` in a task without a request) is seen.
        match started {
            Ok(progress) => self.progress(progress),
            Err(step) => step,
        }
    }

    fn resume(&mut self, input: Resume) -> Step {
        match self.work.take() {
            Some(work) => {
                swap_ctx(&mut self.ctx);
                let (work, progress) = work.resume(&self.shared.stacks, input);
                swap_ctx(&mut self.ctx);
                self.work = work;
                self.progress(progress)
            }
            None => Step::Done(Outcome::Completed),
        }
    }

    fn wait(&mut self) -> Wait {
        let wait = self.wait_at(self.groups.len());
        if let WaitTime::Custom(_) = wait {
            // Its function ran at the end of the task.
            // A function that failed (its error is counted) must not
            // make the user hammer the target: it waits as long as the
            // function last said, or a second if it never answered.
            let wait = self
                .ctx
                .custom_wait
                .take()
                .or(self.last_custom_wait)
                .unwrap_or(WAIT_AFTER_A_FAILED_WAIT);
            self.last_custom_wait = Some(wait);
            return Wait::For(wait);
        }
        match wait.period() {
            Some(period) => Wait::Pace(period),
            None => Wait::For(wait.after(self.task_started.elapsed(), self.ctx.rng.f64())),
        }
    }

    fn result(&mut self) -> Option<String> {
        self.result.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Position;

    fn user(weight: u32, fixed_count: Option<u64>) -> UserType {
        UserType {
            name: format!("u{weight}"),
            weight,
            fixed_count,
            wait: WaitTime::None,
            tasks: vec![TaskDef {
                kind: TaskKind::Function("t".into()),
                weight: 1,
                tags: Vec::new(),
            }],
            sequential: false,
            on_start: None,
            on_stop: None,
            host: None,
            position: Position::NONE,
        }
    }

    #[test]
    fn type_cycle_follows_weights_and_interleaves() {
        assert_eq!(
            type_cycle(&[user(3, None), user(1, None)]),
            vec![0, 0, 1, 0]
        );
        assert_eq!(type_cycle(&[user(2, None), user(2, None)]), vec![0, 1]);
        let cycle = type_cycle(&[user(5, None), user(3, None), user(2, None)]);
        assert_eq!(cycle.len(), 10);
        assert_eq!(cycle.iter().filter(|&&i| i == 1).count(), 3);
        assert_eq!(type_cycle(&[user(1, Some(2)), user(1, None)]), vec![1]);
        assert!(type_cycle(&[user(1, Some(2))]).is_empty());
    }

    /// A shard of a scenario whose types A and B each request
    /// `/items/<random>` from their own generators.
    fn shard(seed: u64) -> ShardScript {
        shard_of(
            "user(\"A\", #{ tasks: [Fn(\"t\")] });\n\
             user(\"B\", #{ fixed_count: 1, tasks: [Fn(\"t\")] });\n\
             fn t() { http::get(`/items/${rand_int(0, 1000000000)}`); }\n",
            seed,
        )
    }

    fn shard_of(source: &str, seed: u64) -> ShardScript {
        let context = crate::scenario::CompileContext {
            origins: Some(Arc::new(blast_engine::http::Origins::new(
                vec![blast_engine::http::Origin::resolve("http://127.0.0.1:1").unwrap()],
                false,
            ))),
            dir: std::path::PathBuf::new(),
            shard: 0,
            shards: 1,
            tags: crate::TagFilter::default(),
            cursors: crate::data::RunCursors::default(),
            shared: Arc::default(),
        };
        let compiled = crate::scenario::compile("u.rhai", source, context).unwrap();
        ShardScript::new("u.rhai", compiled, seed, vec![0, 0], 1)
    }

    /// The path of the first request of a task by `user`.
    fn first_path(mut user: Box<dyn VirtualUser>) -> String {
        match user.start(Work::Task) {
            Step::Request(request) => request.path,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn users_of_a_type_are_seeded_from_the_seed_type_and_index() {
        let (one, other) = (shard(7), shard(7));
        let typed = |s: &ShardScript, t, i| first_path(s.new_user_of_type(t, i).unwrap());
        // Reproducible with the seed.
        for (t, i) in [(0, 0), (0, 5), (1, 0), (1, 3)] {
            assert_eq!(typed(&one, t, i), typed(&other, t, i));
        }
        assert_ne!(typed(&one, 0, 0), typed(&shard(8), 0, 0));
        // Distinct across types, indices, and from users made by index.
        let mut paths: Vec<String> = (0..2)
            .flat_map(|t| (0..50).map(move |i| (t, i)))
            .map(|(t, i)| typed(&one, t, i))
            .chain((0..100).map(|i| first_path(one.new_user(i))))
            .collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 200);
        // B has fixed_count 1, but a per-type load decides the count.
        let user = one.user_of_type(1, 3).unwrap();
        assert_eq!(user.ctx.label, "[B#3] ");
        assert!(matches!(user.role, Role::User(1)));
        assert!(one.new_user_of_type(2, 0).is_none());
    }

    #[test]
    fn sleep_suspends_the_user_whatever_its_argument() {
        // Rhai's own sleep(INT) / sleep(FLOAT) would block the shard.
        let shard = shard_of(
            "user(\"A\", #{ tasks: [Fn(\"t\")] });\n\
             fn t() { sleep(2); sleep(0.25); sleep(\"x\"); }\n",
            1,
        );
        let mut user = shard.new_user(0);
        let step = user.start(Work::Task);
        assert!(
            matches!(step, Step::Sleep(d) if d == Duration::from_secs(2)),
            "{step:?}"
        );
        let step = user.resume(Resume::Woke);
        assert!(
            matches!(step, Step::Sleep(d) if d == Duration::from_millis(250)),
            "{step:?}"
        );
        let step = user.resume(Resume::Woke);
        assert!(
            matches!(&step, Step::Done(Outcome::Failed(e)) if e.message == "sleep's seconds must be a number, not string"),
            "{step:?}"
        );
    }

    /// Drives a piece of work whose steps are all sleeps to its end: the
    /// seconds slept, in order, and how it ended.
    fn sleeps(user: &mut Box<dyn VirtualUser>, work: Work) -> (Vec<f64>, Outcome) {
        let mut slept = Vec::new();
        let mut step = user.start(work);
        loop {
            match step {
                Step::Sleep(d) => slept.push(d.as_secs_f64()),
                Step::Done(outcome) => return (slept, outcome),
                other => panic!("unexpected {other:?}"),
            }
            step = user.resume(Resume::Woke);
        }
    }

    #[test]
    fn groups_run_their_hooks_on_entering_and_leaving() {
        let shard = shard_of(
            "user(\"A\", #{ on_stop: Fn(\"bye\"), tasks: [group(#{ on_start: Fn(\"enter\"), on_stop: Fn(\"leave\"), tasks: [Fn(\"inside\")] })] });\n\
             fn enter() { sleep(1); }\n\
             fn leave() { sleep(2); }\n\
             fn inside() { this.n = if this.n == () { 1 } else { this.n + 1 }; sleep(3); if this.n == 2 { interrupt(); } }\n\
             fn bye() { sleep(4); }\n",
            1,
        );
        let mut user = shard.new_user(0);
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::Task), (vec![1.0, 3.0], done));
        // interrupt() leaves the group: its on_stop runs after the task.
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::Task), (vec![3.0, 2.0], done));
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::Task), (vec![1.0, 3.0], done));
        // Stopping while in the group leaves it, then the user's on_stop.
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::OnStop), (vec![2.0, 4.0], done));
    }

    #[test]
    fn a_group_whose_on_start_fails_is_left_and_a_failing_on_stop_skips_nothing() {
        // enter() fails the first time: the user is not left in the group
        // without its setup, so the next pick enters (and sets up) again.
        let shard = shard_of(
            "user(\"A\", #{ on_stop: Fn(\"bye\"), tasks: [group(#{ on_start: Fn(\"enter\"), on_stop: Fn(\"leave\"), tasks: [Fn(\"inside\")] })] });\n\
             fn enter() { this.tries = if this.tries == () { 1 } else { this.tries + 1 }; sleep(1); if this.tries == 1 { throw \"no setup\" } }\n\
             fn leave() { sleep(2); throw \"leave failed\" }\n\
             fn inside() { sleep(3); }\n\
             fn bye() { sleep(4); }\n",
            1,
        );
        let mut user = shard.new_user(0);
        let (slept, outcome) = sleeps(&mut user, Work::Task);
        assert_eq!(slept, vec![1.0]);
        assert!(matches!(outcome, Outcome::Failed(e) if e.message.contains("no setup")));
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::Task), (vec![1.0, 3.0], done));
        // The group's on_stop fails; the type's still runs, and the error
        // is the outcome.
        let (slept, outcome) = sleeps(&mut user, Work::OnStop);
        assert_eq!(slept, vec![2.0, 4.0]);
        assert!(matches!(outcome, Outcome::Failed(e) if e.message.contains("leave failed")));
    }

    #[test]
    fn nested_groups_are_entered_outermost_first_and_left_innermost_first() {
        let shard = shard_of(
            "user(\"A\", #{ on_stop: Fn(\"bye\"), tasks: [group(#{ on_start: Fn(\"outer_in\"), on_stop: Fn(\"outer_out\"), tasks: [\n\
                 group(#{ on_start: Fn(\"inner_in\"), on_stop: Fn(\"inner_out\"), tasks: [Fn(\"t\")] })] })] });\n\
             fn outer_in() { sleep(1); }\nfn inner_in() { sleep(2); }\nfn t() { sleep(3); }\n\
             fn inner_out() { sleep(4); }\nfn outer_out() { sleep(5); }\nfn bye() { sleep(6); }\n",
            1,
        );
        let mut user = shard.new_user(0);
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::Task), (vec![1.0, 2.0, 3.0], done));
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::Task), (vec![3.0], done));
        let done = Outcome::Completed;
        assert_eq!(sleeps(&mut user, Work::OnStop), (vec![4.0, 5.0, 6.0], done));
    }

    #[test]
    fn a_wait_function_sets_each_wait_as_the_user() {
        let shard = shard_of(
            "user(\"A\", #{ wait: Fn(\"my_wait\"), tasks: [Fn(\"t\"), group(#{ wait: Fn(\"group_wait\"), sequential: true, tasks: [Fn(\"g1\"), Fn(\"g2\")] })], sequential: true });\n\
             fn t() { this.n = if this.n == () { 1 } else { this.n + 1 }; }\n\
             fn g1() { }\n\
             fn g2() { interrupt(); }\n\
             fn my_wait() { this.n * 0.5 }\n\
             fn group_wait() { this.n * 0.25 }\n",
            1,
        );
        let mut user = shard.new_user(0);
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(sleeps(&mut user, Work::Task).1, Outcome::Completed);
            waits.push(user.wait());
        }
        let ms = Duration::from_millis;
        // t; g1 in the group (its wait); g2, which leaves the group, so the
        // type's wait applies; then again with n = 2.
        assert_eq!(
            waits,
            [ms(500), ms(250), ms(500), ms(1000), ms(500), ms(1000)]
                .map(Wait::For)
                .to_vec()
        );
        let bad = shard_of(
            "user(\"A\", #{ wait: Fn(\"my_wait\"), tasks: [Fn(\"t\")] });\n\
             fn t() { }\n\
             fn my_wait() { \"soon\" }\n",
            1,
        );
        let mut user = bad.new_user(0);
        let (_, outcome) = sleeps(&mut user, Work::Task);
        assert_eq!(
            outcome,
            Outcome::Failed(ScriptError {
                message: "wait function my_wait() returned string; it must return the seconds to wait, a number 0 or more".into(),
                location: "u.rhai:3:14".into(),
            })
        );
        // Never answered: a second, not back to back.
        assert_eq!(user.wait(), Wait::For(Duration::from_secs(1)));
        // After a good answer, a failure keeps the last one.
        let flaky = shard_of(
            "user(\"A\", #{ wait: Fn(\"my_wait\"), tasks: [Fn(\"t\")] });\n\
             fn t() { this.n = if this.n == () { 1 } else { this.n + 1 }; }\n\
             fn my_wait() { if this.n == 1 { 0.25 } else { throw \"broken\" } }\n",
            1,
        );
        let mut user = flaky.new_user(0);
        assert_eq!(sleeps(&mut user, Work::Task).1, Outcome::Completed);
        assert_eq!(user.wait(), Wait::For(Duration::from_millis(250)));
        assert!(matches!(
            sleeps(&mut user, Work::Task).1,
            Outcome::Failed(_)
        ));
        assert_eq!(user.wait(), Wait::For(Duration::from_millis(250)));
    }

    #[test]
    fn sequential_picks_go_round_in_order_and_weights_are_followed() {
        let task = |name: &str, weight| TaskDef {
            kind: TaskKind::Function(name.into()),
            weight,
            tags: Vec::new(),
        };
        let tasks = vec![task("a", 3), task("b", 1)];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut next = 0;
        let order: Vec<String> = (0..5)
            .map(|_| pick(&tasks, true, &mut next, &mut rng).label())
            .collect();
        assert_eq!(order, ["a()", "b()", "a()", "b()", "a()"]);
        let a = (0..40_000)
            .filter(|_| pick(&tasks, false, &mut next, &mut rng).label() == "a()")
            .count();
        assert!((29_400..=30_600).contains(&a), "{a}");
    }
}
