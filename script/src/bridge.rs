//! The coroutine bridge: Rhai is synchronous, the engine is not. Each piece
//! of a user's work (a task, a hook) runs on a stackful coroutine; a script
//! call that needs the engine (a request, a sleep) suspends the coroutine
//! with a [`Step`] and returns what the engine resumes it with.
//!
//! Stacks come from a per-shard pool and go back when a piece of work ends,
//! so a user waiting between tasks holds none. This module holds the crate's
//! only `unsafe` code: the pointer to the running coroutine's yielder.

use std::cell::{Cell, RefCell};
use std::ptr;

use blast_engine::{Outcome, Resume, Step};
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};

/// Rhai call levels allowed; the stack is sized from it.
pub(crate) const MAX_CALL_LEVELS: usize = 24;

/// Native stack per coroutine. Rhai needs about 7.6 KiB per call level plus
/// 16 KiB in release builds and about 46 KiB per level in debug builds
/// (measured); overflowing is a SIGSEGV, so leave a wide margin. Stacks are
/// mapped lazily: only the pages a script touches cost memory.
pub(crate) const STACK_SIZE: usize = if cfg!(debug_assertions) {
    (96 << 10) * MAX_CALL_LEVELS + (1 << 20)
} else {
    (16 << 10) * MAX_CALL_LEVELS + (256 << 10)
};

type Yield = Yielder<Resume, Step>;

thread_local! {
    /// The yielder of the coroutine running on this thread, or null.
    static CURRENT: Cell<*const Yield> = const { Cell::new(ptr::null()) };
    /// Where a script runs when no coroutine is running: named by the errors
    /// of functions that need one.
    static OUTSIDE: Cell<&'static str> = const { Cell::new("at a script's top level") };
}

/// Runs `f` outside any coroutine, even when called from inside one: script
/// functions that need the engine (a request, a sleep) fail there instead
/// of suspending, and their errors say the script is `place` ("in
/// shape()"). A load shape runs this way, on the controller's thread.
pub(crate) fn outside<T>(place: &'static str, f: impl FnOnce() -> T) -> T {
    struct Restore(*const Yield, &'static str);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
            OUTSIDE.with(|o| o.set(self.1));
        }
    }
    let _restore = Restore(
        CURRENT.with(|c| c.replace(ptr::null())),
        OUTSIDE.with(|o| o.replace(place)),
    );
    f()
}

/// Where a script runs when [`suspend`] returns `None`: "at a script's top
/// level", or what [`outside`] was given.
pub(crate) fn outside_place() -> &'static str {
    OUTSIDE.with(Cell::get)
}

/// Whether a piece of a user's work (a task or hook) is running here, so
/// [`suspend`] would suspend it.
pub(crate) fn inside() -> bool {
    !CURRENT.with(Cell::get).is_null()
}

/// Suspends the running coroutine with `step` and returns what it is resumed
/// with; `None` when called outside any coroutine (e.g. from a script's top
/// level).
pub(crate) fn suspend(step: Step) -> Option<Resume> {
    let yielder = CURRENT.with(Cell::get);
    if yielder.is_null() {
        return None;
    }
    // SAFETY: CURRENT is only non-null while the coroutine that set it is
    // running on this thread (see `Work::start`): it is set when the body
    // starts and after every resume, and cleared when the body returns. A
    // coroutine's yielder lives on its own stack for the whole body, so the
    // pointer is valid here, inside that body.
    let input = unsafe { (*yielder).suspend(step) };
    // Other coroutines ran meanwhile and set CURRENT to theirs.
    CURRENT.with(|c| c.set(yielder));
    Some(input)
}

/// The result of a piece of work: how it ended, and the user's state back.
pub(crate) type WorkResult<S> = (Outcome, S);

/// A piece of work in progress.
pub(crate) struct Work<S: 'static> {
    coroutine: Coroutine<Resume, Step, WorkResult<S>, DefaultStack>,
}

/// Stacks waiting for work, per shard.
#[derive(Default)]
pub(crate) struct StackPool {
    free: RefCell<Vec<DefaultStack>>,
}

impl StackPool {
    fn take(&self) -> std::io::Result<DefaultStack> {
        match self.free.borrow_mut().pop() {
            Some(stack) => Ok(stack),
            None => DefaultStack::new(STACK_SIZE),
        }
    }

    fn give_back(&self, stack: DefaultStack) {
        self.free.borrow_mut().push(stack);
    }
}

/// What a work step produced: a step for the engine, or the finished work.
pub(crate) enum Progress<S> {
    Step(Step),
    Finished(WorkResult<S>),
}

impl<S: 'static> Work<S> {
    /// Starts `body` on a pooled stack and runs it to its first step.
    pub(crate) fn start(
        pool: &StackPool,
        body: impl FnOnce() -> WorkResult<S> + 'static,
    ) -> std::io::Result<(Option<Work<S>>, Progress<S>)> {
        let stack = pool.take()?;
        let coroutine = Coroutine::with_stack(stack, move |yielder: &Yield, _start: Resume| {
            CURRENT.with(|c| c.set(yielder as *const Yield));
            let result = body();
            CURRENT.with(|c| c.set(ptr::null()));
            result
        });
        let mut work = Work { coroutine };
        let progress = work.resume_inner(Resume::Woke);
        Ok(match progress {
            Progress::Step(step) => (Some(work), Progress::Step(step)),
            finished => {
                pool.give_back(work.coroutine.into_stack());
                (None, finished)
            }
        })
    }

    fn resume_inner(&mut self, input: Resume) -> Progress<S> {
        // A coroutine that suspended, or panicked, left its own yielder in
        // CURRENT; put back what was there, however the resume ends.
        struct Restore(*const Yield);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(Cell::get));
        let result = self.coroutine.resume(input);
        match result {
            CoroutineResult::Yield(step) => Progress::Step(step),
            CoroutineResult::Return(done) => Progress::Finished(done),
        }
    }

    /// Resumes the work with `input`; when it finishes, its stack goes back
    /// to `pool`.
    pub(crate) fn resume(
        mut self,
        pool: &StackPool,
        input: Resume,
    ) -> (Option<Work<S>>, Progress<S>) {
        match self.resume_inner(input) {
            Progress::Step(step) => (Some(self), Progress::Step(step)),
            finished => {
                pool.give_back(self.coroutine.into_stack());
                (None, finished)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn work_suspends_with_steps_and_stacks_are_reused() {
        let pool = StackPool::default();
        let (work, progress) = Work::start(&pool, || {
            let a = suspend(Step::Sleep(Duration::from_millis(1)));
            let b = suspend(Step::Yield);
            let both = matches!(a, Some(Resume::Woke)) && matches!(b, Some(Resume::Stopping));
            (
                if both {
                    Outcome::Completed
                } else {
                    Outcome::Aborted
                },
                7u32,
            )
        })
        .unwrap();
        assert!(matches!(progress, Progress::Step(Step::Sleep(_))));
        let (work, progress) = work.unwrap().resume(&pool, Resume::Woke);
        assert!(matches!(progress, Progress::Step(Step::Yield)));
        let (work, progress) = work.unwrap().resume(&pool, Resume::Stopping);
        assert!(work.is_none());
        assert!(matches!(
            progress,
            Progress::Finished((Outcome::Completed, 7))
        ));
        assert_eq!(pool.free.borrow().len(), 1);
        // Outside a coroutine there is nothing to suspend.
        assert!(suspend(Step::Yield).is_none());
    }

    #[test]
    fn interleaved_coroutines_each_see_their_own_yielder() {
        let pool = StackPool::default();
        let body = |tag: u32| {
            move || {
                let mut seen = 0;
                for _ in 0..3 {
                    if let Some(Resume::Woke) =
                        suspend(Step::Sleep(Duration::from_millis(u64::from(tag))))
                    {
                        seen += 1;
                    }
                }
                (Outcome::Completed, tag * 100 + seen)
            }
        };
        let (mut a, _) = Work::start(&pool, body(1)).unwrap();
        let (mut b, _) = Work::start(&pool, body(2)).unwrap();
        let mut results = Vec::new();
        while a.is_some() || b.is_some() {
            for w in [&mut a, &mut b] {
                if let Some(work) = w.take() {
                    let (next, progress) = work.resume(&pool, Resume::Woke);
                    if let Progress::Finished((_, r)) = progress {
                        results.push(r);
                    }
                    *w = next;
                }
            }
        }
        results.sort();
        assert_eq!(results, vec![103, 203]);
    }
}
