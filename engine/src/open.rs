//! The open model: iterations start on a schedule (an arrival rate), each
//! on a free user from a pool, no matter how slowly the target answers.
//!
//! A shard's pool grows ahead of need up to the shard's share of the
//! node's `max_users`: when an arrival takes the last free user, another
//! is made (it runs its start hook, then joins the pool). An arrival that
//! finds no free user waits in the shard's backlog for the next one to
//! come free, for at most `max_wait`; one that waits longer is dropped and
//! counted, never silently skipped. Every request of an iteration is timed
//! from when the iteration was due (coordinated-omission correction, as in
//! wrk2) and recorded as measured beside it. How late the shard's timer
//! woke for each arrival is the generator's lateness.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::drive::drive;
use crate::http::HttpClient;
use crate::runtime;
use crate::schedule::Schedule;
use crate::shard::{Shard, ShardSettings, report_iterations_done};
use crate::user::{Outcome, VirtualUser, Work};

/// A user waiting in the pool, with its connections and cookies.
struct Idle {
    user: Box<dyn VirtualUser>,
    client: HttpClient,
}

/// One shard's part of the open model.
pub(crate) struct Pool {
    index: u64,
    shards: u64,
    schedule: Schedule,
    /// The run-wide arrival count at which this shard's next arrival is due.
    next: f64,
    poisson: bool,
    rng: fastrand::Rng,
    /// This shard's users at most.
    max: u64,
    max_wait: Duration,
    free: Vec<Idle>,
    /// When each iteration waiting for a user was due, oldest first.
    backlog: VecDeque<Instant>,
    /// Users in the pool: starting, free or busy.
    users: u64,
    /// Users still running their start hook: each will take an iteration
    /// from the backlog (or be the free user ahead of need) when it is done.
    starting: u64,
    /// Users made so far (for their run-wide indices).
    made: u64,
}

impl Pool {
    pub(crate) fn new(index: usize, settings: &ShardSettings) -> Pool {
        let shards = settings.shards as u64;
        let index = index as u64;
        let (max, max_wait, poisson, seed) = match settings.open {
            Some(open) => (
                // Users k ≡ index (mod shards) below max_users.
                (open.max_users + shards - 1 - index) / shards,
                open.max_wait,
                open.poisson,
                open.seed,
            ),
            None => (0, Duration::ZERO, false, 0),
        };
        let mut pool = Pool {
            index,
            shards,
            schedule: Schedule::idle(settings.epoch),
            next: index as f64,
            poisson,
            rng: fastrand::Rng::with_seed(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            max,
            max_wait,
            free: Vec::new(),
            backlog: VecDeque::new(),
            users: 0,
            starting: 0,
            made: 0,
        };
        if poisson {
            pool.next = pool.gap();
        }
        pool
    }

    /// How far along the run-wide count this shard's next Poisson arrival
    /// is: this shard's process runs at 1/shards of the rate.
    fn gap(&mut self) -> f64 {
        -(self.shards as f64) * (1.0 - self.rng.f64()).ln()
    }

    pub(crate) fn set_rate(&mut self, rate: f64, over: Duration, at: Instant) {
        self.schedule = self.schedule.then(rate, over, at);
    }
}

/// Starts this shard's arrivals as the schedule says, until it runs out
/// (a rate of zero), the iteration limit is reached or the run stops. A
/// new rate replaces this task with a new one; the pool keeps its place in
/// the schedule.
pub(crate) async fn run_arrivals(shard: Rc<Shard>) {
    loop {
        let due = {
            let pool = shard.pool.borrow();
            match pool.schedule.time_of(pool.next) {
                Some(due) => due,
                None => return,
            }
        };
        let now = Instant::now();
        if due > now {
            runtime::sleep_until(due).await;
        }
        // Only arrivals due before the run's planned end start, so a run
        // of T seconds at R/s starts R·T of them.
        if shard.stopping.fired() || shard.end.get().is_some_and(|end| due >= end) {
            return;
        }
        let woke = Instant::now();
        shard
            .stats
            .borrow_mut()
            .record_lateness(woke.saturating_duration_since(due));
        if let Some(budget) = &shard.settings.budget
            && !budget.take()
        {
            return;
        }
        {
            let mut pool = shard.pool.borrow_mut();
            pool.next += if pool.poisson {
                pool.gap()
            } else {
                pool.shards as f64
            };
        }
        dispatch(&shard, due, woke);
    }
}

/// Starts the iteration due at `due` on a free user, or queues it.
fn dispatch(shard: &Rc<Shard>, due: Instant, now: Instant) {
    drop_expired(shard, now);
    let mut pool = shard.pool.borrow_mut();
    if let Some(idle) = pool.free.pop() {
        // One user ahead of need is enough: none if one is starting.
        let grow = pool.free.is_empty() && pool.starting == 0 && pool.users < pool.max;
        drop(pool);
        runtime::spawn(serve(shard.clone(), idle, Some(due))).detach();
        if grow {
            // Ahead of need: the next arrival should find a user ready.
            make_user(shard);
        }
        return;
    }
    // A user is made for every waiting iteration that no starting user
    // will take; while start hooks run, arrivals do not each make another.
    let grow = pool.users < pool.max && pool.starting <= pool.backlog.len() as u64;
    if pool.users >= pool.max && pool.max_wait.is_zero() {
        drop(pool);
        dropped(shard, 1);
        return;
    }
    pool.backlog.push_back(due);
    drop(pool);
    if grow {
        make_user(shard);
    }
}

/// Drops the queued iterations that have waited longer than `max_wait`.
fn drop_expired(shard: &Shard, now: Instant) {
    let mut pool = shard.pool.borrow_mut();
    let mut expired = 0;
    while let Some(&due) = pool.backlog.front() {
        if now.saturating_duration_since(due) <= pool.max_wait {
            break;
        }
        pool.backlog.pop_front();
        expired += 1;
    }
    drop(pool);
    dropped(shard, expired);
}

fn dropped(shard: &Shard, n: u64) {
    for _ in 0..n {
        shard.stats.borrow_mut().record_dropped();
        if let Some(budget) = &shard.settings.budget
            && budget.finish()
        {
            report_iterations_done(shard);
        }
    }
}

/// Adds a user to the pool: it runs its start hook, then serves.
fn make_user(shard: &Rc<Shard>) {
    let k = {
        let mut pool = shard.pool.borrow_mut();
        pool.users += 1;
        pool.starting += 1;
        pool.made += 1;
        (pool.made - 1) * pool.shards + pool.index
    };
    shard.alive.set(shard.alive.get() + 1);
    let user = shard.scenario.new_user(k);
    let shard = shard.clone();
    runtime::spawn(async move {
        let mut idle = Idle {
            user,
            client: HttpClient::default(),
        };
        let outcome = drive(
            &shard,
            &mut *idle.user,
            Work::OnStart,
            &mut idle.client,
            &shard.stopping,
            Duration::ZERO,
        )
        .await;
        shard.pool.borrow_mut().starting -= 1;
        if matches!(outcome, Outcome::Completed | Outcome::Failed(_)) {
            serve(shard, idle, None).await;
        } else {
            end_user(&shard, idle).await;
        }
    })
    .detach();
}

/// Runs iterations on `idle`: the one due at `first`, then any waiting in
/// the backlog; then the user goes back to the pool.
async fn serve(shard: Rc<Shard>, mut idle: Idle, first: Option<Instant>) {
    let mut next = first;
    loop {
        let due = match next.take() {
            Some(due) => due,
            None => {
                drop_expired(&shard, Instant::now());
                match shard.pool.borrow_mut().backlog.pop_front() {
                    Some(due) => due,
                    None => break,
                }
            }
        };
        if shard.stopping.fired() {
            break;
        }
        let late = Instant::now().saturating_duration_since(due);
        let outcome = drive(
            &shard,
            &mut *idle.user,
            Work::Task,
            &mut idle.client,
            &shard.stopping,
            late,
        )
        .await;
        shard.stats.borrow_mut().record_iteration();
        if let Some(budget) = &shard.settings.budget
            && budget.finish()
        {
            report_iterations_done(&shard);
        }
        if !matches!(outcome, Outcome::Completed | Outcome::Failed(_)) {
            // The script stopped this user, or the run is stopping.
            return end_user(&shard, idle).await;
        }
    }
    if shard.stopping.fired() {
        return end_user(&shard, idle).await;
    }
    shard.pool.borrow_mut().free.push(idle);
}

/// Runs a user's stop hook and takes it out of the pool.
async fn end_user(shard: &Shard, mut idle: Idle) {
    drive(
        shard,
        &mut *idle.user,
        Work::OnStop,
        &mut idle.client,
        &shard.client.hard_stop,
        Duration::ZERO,
    )
    .await;
    shard.pool.borrow_mut().users -= 1;
    shard.alive.set(shard.alive.get() - 1);
}

/// When the run stops: iterations still waiting for a user are dropped,
/// and every free user runs its stop hook. Busy users end theirs when their
/// iteration is cut.
pub(crate) fn stop_pool(shard: &Rc<Shard>) {
    let (waiting, free) = {
        let mut pool = shard.pool.borrow_mut();
        let waiting = pool.backlog.len() as u64;
        pool.backlog.clear();
        (waiting, std::mem::take(&mut pool.free))
    };
    dropped(shard, waiting);
    for idle in free {
        let shard = shard.clone();
        runtime::spawn(async move { end_user(&shard, idle).await }).detach();
    }
}
