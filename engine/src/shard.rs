//! One shard: a thread with its own executor, users, connections and
//! statistics. It takes commands (ramp to N users, stop) and sends a stats
//! delta every report interval; nothing on the request path is shared with
//! another thread.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blast_proto::StatsDelta;

use crate::drive::drive;
use crate::http::{ClientShared, HttpClient, Limits, Origins};
use crate::ramp::{self, Change, RampLine};
use crate::runtime::{self, Signal, Task};
use crate::stats::ShardStats;
use crate::user::{Outcome, ScenarioBuilder, ShardScenario, TestHook, VirtualUser, Wait, Work};

/// A command from the node to a shard.
#[derive(Clone, Debug)]
pub(crate) enum ShardCommand {
    /// Move each group's users along its line (run-wide counts), in
    /// place of the ramp in progress, if any (see `crate::ramp`). Each
    /// shard handles the run-wide user indices `k` with `k % shards ==
    /// index`, at the time user `k` is due, so all shards together follow
    /// the rate. The shard reports `RampDone(id, ..)` once it made every
    /// change.
    Ramp {
        id: u64,
        lines: Vec<(Group, RampLine)>,
    },
    /// Nothing due at or after this instant starts: no user is spawned, no
    /// arrival begins (the run's planned end, when it is known).
    EndAt(Instant),
    /// Open model: from `at`, move the run-wide arrival rate linearly to
    /// `rate` per second over `over` (a step when zero).
    Rate {
        rate: f64,
        over: Duration,
        at: Instant,
    },
    /// Stop every user (the stop hooks run); report `UsersStopped`.
    StopUsers,
    /// Run a run-wide hook (shard 0 only); report `HookDone`.
    RunHook(TestHook),
    /// What the start hook returned, as JSON, for the scenario.
    TestData(String),
    /// Stop every user still running, send the last delta and end.
    Finish,
}

/// What a shard tells its node.
#[derive(Debug)]
pub(crate) enum ShardReport {
    /// The scenario was built (or not) and the shard takes commands.
    Ready(Result<(), String>),
    /// A stats delta.
    Delta(Box<StatsDelta>),
    /// Every user of this shard has stopped.
    UsersStopped(usize),
    /// This shard made every change of ramp `id`, which leaves `users`
    /// users run-wide.
    RampDone { id: u64, users: u64 },
    /// A run-wide hook ended: what it returned (JSON), or why it failed.
    HookDone(TestHook, Result<Option<String>, String>),
    /// A script asked for the run to stop.
    StopTest(String),
    /// The iteration limit is reached: in total (the shard that completed
    /// the last one says so) or, per user, for every user of this shard.
    IterationsDone,
    /// The shard's thread panicked outside user code; nothing more comes
    /// from it.
    Failed {
        /// Which shard.
        shard: usize,
        /// The panic's message.
        reason: String,
    },
}

/// Which users a ramp moves: the scenario's mix of types, or one type
/// (for loads that set each type's count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Group {
    Mixed,
    Type(usize),
}

/// The open model's settings, for one node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenSettings {
    /// This node's users at most (split across shards).
    pub(crate) max_users: u64,
    /// How long an iteration may wait for a free user.
    pub(crate) max_wait: Duration,
    /// Poisson arrivals rather than evenly spaced ones.
    pub(crate) poisson: bool,
    /// Seed for Poisson gaps.
    pub(crate) seed: u64,
}

/// An iteration limit shared by the node's shards.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Iterations per user, or in total.
    pub(crate) per_user: bool,
    pub(crate) count: u64,
    /// Total: iterations not yet handed out.
    pub(crate) left: std::sync::atomic::AtomicU64,
    /// Total: iterations finished (or dropped).
    pub(crate) done: std::sync::atomic::AtomicU64,
}

impl Budget {
    pub(crate) fn new(count: u64, per_user: bool) -> Budget {
        Budget {
            per_user,
            count,
            left: std::sync::atomic::AtomicU64::new(count),
            done: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Hands out one iteration of the total; false once none is left.
    pub(crate) fn take(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.per_user
            || self
                .left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
    }

    /// Counts one handed-out iteration as over; true for the last one.
    pub(crate) fn finish(&self) -> bool {
        use std::sync::atomic::Ordering;
        !self.per_user && self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.count
    }
}

/// Settings every shard of a node shares.
#[derive(Clone)]
pub(crate) struct ShardSettings {
    pub(crate) shards: usize,
    pub(crate) origins: Arc<Origins>,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) limits: Limits,
    pub(crate) timeout: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) report_interval: Duration,
    /// When the node started: every shard cuts its deltas at `epoch + k ·
    /// report_interval`, so deltas with the same number cover the same
    /// time.
    pub(crate) epoch: Instant,
    pub(crate) scenario: ScenarioBuilder,
    /// The open model's settings, when the load is an arrival rate.
    pub(crate) open: Option<OpenSettings>,
    /// The iteration limit, if any.
    pub(crate) budget: Option<Arc<Budget>>,
}

/// A closed-model user, as its shard holds it.
struct UserHandle {
    /// Finish the current task, run the stop hook, end.
    retire: Signal,
    /// End at the next request or sleep.
    stop: Signal,
    task: Task<()>,
}

/// The shard's state, shared by its tasks.
pub(crate) struct Shard {
    pub(crate) index: usize,
    pub(crate) settings: ShardSettings,
    pub(crate) scenario: Box<dyn ShardScenario>,
    pub(crate) stats: RefCell<ShardStats>,
    pub(crate) client: ClientShared,
    /// Closed-model users by group and run-wide index.
    users: RefCell<BTreeMap<(Group, u64), UserHandle>>,
    /// Users that have not yet finished.
    pub(crate) alive: Cell<u64>,
    /// Ramps in progress.
    pub(crate) ramping: Cell<u32>,
    /// Whether `IterationsDone` was sent.
    pub(crate) iterations_done: Cell<bool>,
    /// The open model's pool and schedule.
    pub(crate) pool: RefCell<crate::open::Pool>,
    /// Fired when the run stops: no new user, no new task.
    pub(crate) stopping: Signal,
    /// The run's planned end: nothing due at or after it starts.
    pub(crate) end: Cell<Option<Instant>>,
    /// Where reports go (a script's request to stop the run, among others).
    pub(crate) reports: flume::Sender<ShardReport>,
}

/// The shard's main future.
pub(crate) async fn run_shard(
    index: usize,
    settings: ShardSettings,
    commands: flume::Receiver<ShardCommand>,
    reports: flume::Sender<ShardReport>,
) {
    let scenario = match std::panic::catch_unwind(AssertUnwindSafe(|| (settings.scenario)(index))) {
        Ok(Ok(scenario)) => scenario,
        Ok(Err(e)) => {
            let _ = reports.send(ShardReport::Ready(Err(e)));
            return;
        }
        Err(_) => {
            let _ = reports.send(ShardReport::Ready(Err("the scenario panicked".into())));
            return;
        }
    };
    let hard_stop = Signal::new();
    let tls = settings.tls.clone().map(futures_rustls::TlsConnector::from);
    let shard = Rc::new(Shard {
        index,
        client: ClientShared::new(
            settings.origins.clone(),
            tls,
            settings.limits,
            settings.timeout,
            hard_stop.clone(),
        ),
        scenario,
        stats: RefCell::new(ShardStats::new(index as u32)),
        users: RefCell::new(BTreeMap::new()),
        alive: Cell::new(0),
        ramping: Cell::new(0),
        iterations_done: Cell::new(false),
        pool: RefCell::new(crate::open::Pool::new(index, &settings)),
        settings,
        stopping: Signal::new(),
        end: Cell::new(None),
        reports: reports.clone(),
    });
    let _ = reports.send(ShardReport::Ready(Ok(())));

    let reporter = runtime::spawn(report_loop(shard.clone(), reports.clone()));
    let mut ramp: Option<Task<()>> = None;
    let mut arrivals: Option<Task<()>> = None;
    // Run-wide hooks that run beside the users (on_spawning_complete).
    // Each with its number; a finished one's number lands in `hooks_done`,
    // and it is dropped when the next starts (a long soak with a shape
    // completes a ramp every few seconds).
    let mut hooks: Vec<(u64, Task<()>)> = Vec::new();
    let hooks_done: Rc<RefCell<Vec<u64>>> = Rc::default();
    let mut hooks_started = 0u64;
    let mut users_stopped = false;
    while let Ok(command) = commands.recv_async().await {
        match command {
            ShardCommand::Ramp { id, lines } => {
                // A new ramp replaces one still in progress; it plans from
                // the users the shard has, so none is lost or made twice.
                drop(ramp.take());
                if !users_stopped {
                    let counted = Ramping::new(&shard);
                    ramp = Some(runtime::spawn(run_ramp(shard.clone(), id, lines, counted)));
                }
            }
            ShardCommand::EndAt(end) => shard.end.set(Some(end)),
            ShardCommand::Rate { rate, over, at } => {
                drop(arrivals.take());
                if !users_stopped {
                    shard.pool.borrow_mut().set_rate(rate, over, at);
                    arrivals = Some(runtime::spawn(crate::open::run_arrivals(shard.clone())));
                }
            }
            ShardCommand::StopUsers => {
                drop(ramp.take());
                drop(arrivals.take());
                // Hooks still going end at their next step; one stuck in a
                // request gets what is left of the users' stop timeout,
                // then is cut.
                let deadline = Instant::now() + shard.settings.stop_timeout;
                stop_users(&shard, &hard_stop).await;
                for (_, hook) in hooks.drain(..) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let _ = runtime::with_timeout(left, hook).await;
                }
                users_stopped = true;
                let _ = reports.send(ShardReport::UsersStopped(index));
            }
            ShardCommand::RunHook(hook @ TestHook::SpawningComplete(_)) => {
                // Beside the users, so the shard keeps taking commands; it
                // ends at its next request or sleep once the run stops.
                if !users_stopped {
                    let done: Vec<u64> = hooks_done.borrow_mut().drain(..).collect();
                    hooks.retain(|(number, _)| !done.contains(number));
                    let (shard, finished) = (shard.clone(), hooks_done.clone());
                    let number = hooks_started;
                    hooks_started += 1;
                    let task = runtime::spawn(async move {
                        let result = run_hook(&shard, hook, &shard.stopping).await;
                        let _ = shard.reports.send(ShardReport::HookDone(hook, result));
                        finished.borrow_mut().push(number);
                    });
                    hooks.push((number, task));
                }
            }
            ShardCommand::RunHook(hook) => {
                let result = run_hook(&shard, hook, &Signal::new()).await;
                let _ = reports.send(ShardReport::HookDone(hook, result));
            }
            ShardCommand::TestData(json) => shard.scenario.set_test_data(&json),
            ShardCommand::Finish => break,
        }
    }
    drop(ramp);
    drop(arrivals);
    drop(hooks);
    if !users_stopped {
        stop_users(&shard, &hard_stop).await;
    }
    drop(reporter);
    let last = shard.stats.borrow_mut().cut(0, 0.0, true);
    let _ = reports.send(ShardReport::Delta(Box::new(last)));
}

/// Runs a run-wide hook on this shard, its requests counted like any
/// other: what it returned (JSON), or why it failed.
async fn run_hook(
    shard: &Rc<Shard>,
    hook: TestHook,
    stop: &Signal,
) -> Result<Option<String>, String> {
    let Some(mut user) = shard.scenario.test_hook(hook) else {
        return Ok(None);
    };
    let mut client = HttpClient::default();
    match drive(
        shard,
        &mut *user,
        Work::OnStart,
        &mut client,
        stop,
        Duration::ZERO,
    )
    .await
    {
        Outcome::Completed | Outcome::StopUser => Ok(user.result()),
        Outcome::Failed(e) => Err(format!("{} ({})", e.message, e.location)),
        // The run stopping ends this hook at its next step, as documented.
        Outcome::Aborted if matches!(hook, TestHook::SpawningComplete(_)) => Ok(None),
        Outcome::Aborted => Err("stopped before it finished".into()),
    }
}

/// Stops every user: waiting users end at once, users in a task end it at
/// their next request or sleep, requests in flight are awaited up to the
/// stop timeout and then cut (counted as stopped).
async fn stop_users(shard: &Rc<Shard>, hard_stop: &Signal) {
    shard.stopping.fire();
    let users: Vec<UserHandle> = std::mem::take(&mut *shard.users.borrow_mut())
        .into_values()
        .collect();
    for user in &users {
        user.retire.fire();
        user.stop.fire();
    }
    crate::open::stop_pool(shard);
    let join_all = async {
        for user in users {
            user.task.await;
        }
        // Users stopped earlier by a ramp-down may still be in their stop
        // hook; they hold a count in `alive` until they end.
        while shard.alive.get() > 0 {
            runtime::sleep(Duration::from_millis(5)).await;
        }
    };
    let mut join_all = std::pin::pin!(join_all);
    if runtime::with_timeout(shard.settings.stop_timeout, join_all.as_mut())
        .await
        .is_none()
    {
        // Out of patience: requests still in flight end as stopped, and
        // every user ends at its next step, which comes at once.
        hard_stop.fire();
        let _ = runtime::with_timeout(Duration::from_secs(5), join_all.as_mut()).await;
    }
}

/// Sends a delta every report interval, with the shard's busy ratio.
async fn report_loop(shard: Rc<Shard>, reports: flume::Sender<ShardReport>) {
    let interval = shard.settings.report_interval;
    // Cut on the node's clock, so every shard's delta number k covers the
    // same time.
    let epoch = shard.settings.epoch;
    // Delta n covers [epoch + n·interval, epoch + (n+1)·interval); a shard
    // that started late catches up with empty deltas.
    let mut k = 1u32;
    let mut next = epoch + interval * k;
    let mut wall = Instant::now();
    let mut cpu = runtime::thread_cpu_time();
    loop {
        runtime::sleep_until(next).await;
        k += 1;
        next = epoch + interval * k;
        let (now_wall, now_cpu) = (Instant::now(), runtime::thread_cpu_time());
        let elapsed = now_wall.duration_since(wall).as_secs_f64();
        let busy = if elapsed > 0.01 {
            (now_cpu.saturating_sub(cpu).as_secs_f64() / elapsed).min(1.0)
        } else {
            0.0
        };
        (wall, cpu) = (now_wall, now_cpu);
        let delta = shard.stats.borrow_mut().cut(shard.alive.get(), busy, false);
        if reports.send(ShardReport::Delta(Box::new(delta))).is_err() {
            return;
        }
    }
}

/// Moves this shard's users along each group's line, each change at the
/// time it is due, then says the ramp is done.
async fn run_ramp(shard: Rc<Shard>, id: u64, lines: Vec<(Group, RampLine)>, counted: Ramping) {
    let (index, shards) = (shard.index as u64, shard.settings.shards as u64);
    // One lazy stream of changes per group, each in due order.
    let mut streams: Vec<_> = lines
        .iter()
        .map(|(group, line)| {
            let live: BTreeSet<u64> = shard
                .users
                .borrow()
                .range((*group, 0)..=(*group, u64::MAX))
                .map(|((_, k), _)| *k)
                .collect();
            let group = *group;
            ramp::changes(*line, live, index, shards)
                .map(move |(due, change)| (due, group, change))
                .peekable()
        })
        .collect();
    // The groups' lines start together and interleave by due time: take
    // the earliest head each time (there are only as many as user types).
    loop {
        let next = streams
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.peek().map(|(due, ..)| (*due, i)))
            .min();
        let Some((_, i)) = next else {
            break;
        };
        let Some((due, group, change)) = streams[i].next() else {
            break;
        };
        runtime::sleep_until(due).await;
        if shard.stopping.fired() || shard.end.get().is_some_and(|end| due >= end) {
            return;
        }
        match change {
            Change::Spawn(k) => spawn_user(&shard, group, k),
            Change::Retire(k) => retire_user(&shard, group, k),
        }
    }
    drop(counted);
    let users = lines.iter().map(|(_, line)| line.to).sum();
    let _ = shard.reports.send(ShardReport::RampDone { id, users });
    check_users_done(&shard);
}

/// Counts a ramp in progress for as long as it lives: until it ends, or
/// is dropped (replaced by a new one) even before it started.
struct Ramping(Rc<Shard>);

impl Ramping {
    fn new(shard: &Rc<Shard>) -> Ramping {
        shard.ramping.set(shard.ramping.get() + 1);
        Ramping(shard.clone())
    }
}

impl Drop for Ramping {
    fn drop(&mut self) {
        self.0.ramping.set(self.0.ramping.get() - 1);
    }
}

/// Stops a user as Locust does on a ramp down: it finishes its task (for
/// at most the stop timeout) and runs its stop hook. It is no longer one
/// of the shard's users at once, so its index is free for a later ramp up.
fn retire_user(shard: &Rc<Shard>, group: Group, k: u64) {
    let removed = shard.users.borrow_mut().remove(&(group, k));
    if let Some(user) = removed {
        user.retire.fire();
        user.task.detach();
        let (stop, patience) = (user.stop, shard.settings.stop_timeout);
        runtime::spawn(async move {
            runtime::sleep(patience).await;
            stop.fire();
        })
        .detach();
    }
}

fn spawn_user(shard: &Rc<Shard>, group: Group, k: u64) {
    if shard.users.borrow().contains_key(&(group, k)) {
        // Running already: replacing its handle would cancel its task.
        return;
    }
    let user = match group {
        Group::Mixed => shard.scenario.new_user(k),
        Group::Type(t) => match shard.scenario.new_user_of_type(t, k) {
            Some(user) => user,
            None => return,
        },
    };
    let (retire, stop) = (Signal::new(), Signal::new());
    let alive = Alive::new(shard);
    let task = runtime::spawn(run_user(
        shard.clone(),
        user,
        retire.clone(),
        stop.clone(),
        alive,
    ));
    shard
        .users
        .borrow_mut()
        .insert((group, k), UserHandle { retire, stop, task });
}

/// Counts a user in `alive` for as long as its task lives, even if the
/// task is cancelled: a count that outlived its user would make the stop
/// wait for it in vain.
struct Alive(Rc<Shard>);

impl Alive {
    fn new(shard: &Rc<Shard>) -> Alive {
        shard.alive.set(shard.alive.get() + 1);
        Alive(shard.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.set(self.0.alive.get() - 1);
        check_users_done(&self.0);
    }
}

/// A closed-model user's life: start hook, tasks with waits between them,
/// stop hook. `retire` ends it after its current task; `stop` at its next
/// request or sleep.
async fn run_user(
    shard: Rc<Shard>,
    mut user: Box<dyn VirtualUser>,
    retire: Signal,
    stop: Signal,
    alive: Alive,
) {
    let mut client = HttpClient::default();
    let mut outcome = drive(
        &shard,
        &mut *user,
        Work::OnStart,
        &mut client,
        &stop,
        Duration::ZERO,
    )
    .await;
    let budget = shard.settings.budget.clone();
    let mut done = 0u64;
    // When the next task is due, for a user that keeps a schedule.
    let mut due: Option<Instant> = None;
    while !retire.fired() && matches!(outcome, Outcome::Completed | Outcome::Failed(_)) {
        if let Some(budget) = &budget
            && ((budget.per_user && done >= budget.count) || !budget.take())
        {
            break;
        }
        let started = Instant::now();
        let late = due.map_or(Duration::ZERO, |d| started.saturating_duration_since(d));
        outcome = drive(&shard, &mut *user, Work::Task, &mut client, &stop, late).await;
        shard.stats.borrow_mut().record_iteration();
        done += 1;
        if let Some(budget) = &budget
            && budget.finish()
        {
            report_iterations_done(&shard);
        }
        if retire.fired() || !matches!(outcome, Outcome::Completed | Outcome::Failed(_)) {
            break;
        }
        match user.wait() {
            Wait::Pace(period) => {
                // Keep the schedule: the next task is due a period after
                // this one was; a user behind it goes on at once.
                let next = due.unwrap_or(started) + period;
                due = Some(next);
                if next > Instant::now() {
                    futures_lite::future::or(runtime::sleep_until(next), retire.wait()).await;
                    let woke = Instant::now();
                    if woke >= next {
                        shard
                            .stats
                            .borrow_mut()
                            .record_lateness(woke.duration_since(next));
                    }
                } else {
                    runtime::yield_now().await;
                }
            }
            Wait::For(wait) => {
                due = None;
                if !wait.is_zero() {
                    futures_lite::future::or(runtime::sleep(wait), retire.wait()).await;
                } else {
                    // A user with no wait still lets the others on its
                    // shard run.
                    runtime::yield_now().await;
                }
            }
        }
    }
    drive(
        &shard,
        &mut *user,
        Work::OnStop,
        &mut client,
        &stop,
        Duration::ZERO,
    )
    .await;
    drop(alive);
}

/// Per-user iteration limits: once every user this shard was asked for
/// has run its iterations and ended, the shard is done.
fn check_users_done(shard: &Shard) {
    let Some(budget) = &shard.settings.budget else {
        return;
    };
    if budget.per_user
        && shard.settings.open.is_none()
        && shard.ramping.get() == 0
        && shard.alive.get() == 0
    {
        report_iterations_done(shard);
    }
}

pub(crate) fn report_iterations_done(shard: &Shard) {
    if !shard.iterations_done.replace(true) {
        let _ = shard.reports.send(ShardReport::IterationsDone);
    }
}
