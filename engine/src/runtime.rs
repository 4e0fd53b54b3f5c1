//! The one module that names glommio: start shards, spawn tasks, sleep,
//! connect, and a stop signal. Everything else in the engine goes through
//! here, so that a leaner io_uring backend can replace glommio later.

use std::any::Any;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

/// A connected TCP stream (futures-io `AsyncRead + AsyncWrite`).
pub(crate) type TcpStream = glommio::net::TcpStream;

/// A spawned task; dropping it cancels the task.
pub(crate) type Task<T> = glommio::Task<T>;

/// The io_uring memory each executor registers. Glommio's default (10 MiB)
/// needs a large `RLIMIT_MEMLOCK`; sockets need none of it.
const IO_MEMORY: usize = 64 << 10;

/// How often the executor checks timers and I/O while tasks keep it busy.
/// Scheduling is cooperative: a long time slice delays every user's timers.
const PREEMPT_TIMER: Duration = Duration::from_millis(1);

/// The CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    // SAFETY: CPU_ISSET only reads the set, for indices below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Starts a shard: a thread running one executor, pinned to `cpu` when given.
/// `body` builds the shard's main future on that thread. When anything on
/// the shard panics (a task's panic unwinds through the executor), the
/// thread ends with an error and `on_panic` hears the panic's message, so
/// the node can count the shard out rather than wait for it.
pub(crate) fn start_shard<G, F, T>(
    name: String,
    cpu: Option<usize>,
    body: G,
    on_panic: impl FnOnce(String) + Send + 'static,
) -> io::Result<std::thread::JoinHandle<io::Result<T>>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    // Glommio's own `spawn` joins into a glommio error type; a plain thread
    // that makes and runs the executor keeps errors as io::Error.
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let executor = LocalExecutorBuilder::new(placement)
                .name(&name)
                .io_memory(IO_MEMORY)
                .preempt_timer(PREEMPT_TIMER)
                .make()
                .map_err(|e| io::Error::other(format!("cannot start executor {name}: {e}")))?;
            match std::panic::catch_unwind(AssertUnwindSafe(|| executor.run(body()))) {
                Ok(value) => Ok(value),
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    on_panic(message.clone());
                    Err(io::Error::other(format!("panicked: {message}")))
                }
            }
        })
}

/// The message of a caught panic (a `String` or `&str` payload; anything
/// else is just "panic").
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".to_string())
}

/// Spawns `future` on the current shard.
pub(crate) fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> Task<T> {
    glommio::spawn_local(future)
}

/// Sleeps for `duration`.
pub(crate) async fn sleep(duration: Duration) {
    if !duration.is_zero() {
        glommio::timer::sleep(duration).await;
    }
}

/// Sleeps until `deadline` (returns at once if it has passed).
pub(crate) async fn sleep_until(deadline: Instant) {
    sleep(deadline.saturating_duration_since(Instant::now())).await;
}

/// Lets other tasks on the shard run.
pub(crate) async fn yield_now() {
    futures_lite::future::yield_now().await;
}

/// Runs `future` for at most `limit`; `None` when time ran out (the future is
/// dropped, which cancels whatever it was doing).
pub(crate) async fn with_timeout<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep(limit).await;
        None
    })
    .await
}

/// Connects to `addr` within `limit`, with Nagle's algorithm off (requests
/// are written whole, so batching only adds latency).
pub(crate) async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let limit = limit.max(Duration::from_millis(1));
    let stream = TcpStream::connect_timeout(addr, limit)
        .await
        .map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    Ok(stream)
}

/// A one-shot signal that any number of tasks on one shard can wait for.
#[derive(Clone)]
pub(crate) struct Signal {
    // A semaphore with no permits: waiters park on it, and closing it wakes
    // them all at once.
    gate: Rc<glommio::sync::Semaphore>,
    fired: Rc<std::cell::Cell<bool>>,
}

impl Signal {
    pub(crate) fn new() -> Signal {
        Signal {
            gate: Rc::new(glommio::sync::Semaphore::new(0)),
            fired: Rc::new(std::cell::Cell::new(false)),
        }
    }

    /// Fires the signal: every waiter, now and later, returns.
    pub(crate) fn fire(&self) {
        self.fired.set(true);
        self.gate.close();
    }

    /// True once fired.
    pub(crate) fn fired(&self) -> bool {
        self.fired.get()
    }

    /// Waits until the signal fires.
    pub(crate) async fn wait(&self) {
        // Acquiring a permit of a semaphore that never gets any only ends
        // when the semaphore is closed.
        let _ = self.gate.acquire(1).await;
    }
}

/// CPU time this thread has used, user and system. A shard's busy ratio is
/// its CPU time over wall time, so kernel work on its sockets counts too.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, and CLOCK_THREAD_CPUTIME_ID
    // is supported by every Linux that has io_uring.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_runs_timers_and_a_signal_wakes_every_waiter() {
        let handle = start_shard(
            "test-shard".into(),
            None,
            || async {
                let signal = Signal::new();
                let waiters: Vec<_> = (0..3)
                    .map(|_| {
                        let s = signal.clone();
                        spawn(async move { s.wait().await })
                    })
                    .collect();
                sleep(Duration::from_millis(5)).await;
                assert!(!signal.fired());
                signal.fire();
                for w in waiters {
                    w.await;
                }
                let timed_out =
                    with_timeout(Duration::from_millis(5), sleep(Duration::from_secs(60))).await;
                (
                    signal.fired(),
                    timed_out.is_none(),
                    thread_cpu_time() > Duration::ZERO,
                )
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(handle.join().unwrap().unwrap(), (true, true, true));
    }

    #[test]
    fn a_panicking_task_ends_its_shard_with_an_error_and_says_why() {
        let (tx, rx) = flume::unbounded();
        let handle = start_shard(
            "test-shard".into(),
            None,
            || async {
                let task = spawn(async {
                    sleep(Duration::from_millis(1)).await;
                    panic!("a bug on a shard");
                });
                task.await;
                sleep(Duration::from_secs(3600)).await;
            },
            move |message| tx.send(message).unwrap(),
        )
        .unwrap();
        let ended = handle.join().expect("the panic is caught on the thread");
        assert!(
            ended.unwrap_err().to_string().contains("a bug on a shard"),
            "the thread's error names the panic"
        );
        assert_eq!(rx.try_recv().unwrap(), "a bug on a shard");
    }
}
