//! Bounded password hashing: a fixed set of `concurrency` threads of our own (never the async
//! workers) takes jobs from a queue of at most `queue` places. Past that a caller is told [`Busy`]
//! at once instead of piling up. Fixed threads also bound memory: each argon2id hash needs 19 MiB,
//! and the allocator keeps that memory per thread, so `concurrency` threads hold at most
//! `concurrency` such buffers (tokio's blocking pool would spread them over up to 512 threads).
//! A thread that has had no job for [`RELEASE_AFTER`] gives its buffer back, so that an idle
//! server holds none.
//!
//! Places are shared fairly between clients: a caller that names its client
//! ([`HashPool::reserve_for`]) may wait a while for a place when all are taken, and each freed
//! place goes to the waiting client that holds the fewest places. A flood from many addresses
//! then slows a newcomer's login by about one round of the queue instead of refusing it.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher as _, Hash, RandomState};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a hashing thread keeps its working memory with no job to do. Under a steady stream of
/// logins the memory is reused from one hash to the next; a login after a quiet spell pays for
/// allocating it again (a few milliseconds of page faults next to a ~25 ms hash).
pub(super) const RELEASE_AFTER: Duration = Duration::from_secs(2);

/// How much hashing threads lower their scheduling priority (a nice value, added to the
/// process's). When a hash and an async worker want the same core, the kernel then gives the
/// worker most of it: with 10, about nine tenths (CFS weights 1024 and 110). A login flood slows
/// logins, not token checks. On a core nobody else wants, hashing runs at full speed as before.
pub(super) const HASHING_NICENESS: i32 = 10;

/// Every hashing thread is busy and every queue place is taken (or the pool is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// How many callers may wait for a place, per place: beyond it a newcomer takes the place in
/// line of the client that holds the most (or is refused when it would hold as many).
const WAITERS_PER_PLACE: usize = 4;

/// The key of callers that do not name a client: they share one.
const SHARED_KEY: u64 = 0;

/// A bounded pool for password hashing work.
#[derive(Debug)]
pub struct HashPool {
    jobs: SyncSender<Job>,
    in_flight: Arc<AtomicUsize>,
    concurrency: usize,
    admission: Arc<Mutex<Admission>>,
    /// Places: running plus queued jobs.
    capacity: usize,
    /// Hashes client keys (addresses) into the admission's map; random per pool, so that a
    /// client cannot choose addresses that collide with another's.
    keys: RandomState,
}

/// Who holds the places, and who waits for one.
#[derive(Debug, Default)]
struct Admission {
    /// Places reserved (running, queued, or about to be): at most the pool's capacity.
    reserved: usize,
    /// Places held or waited for, per client key.
    held: HashMap<u64, usize>,
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    key: u64,
    grant: tokio::sync::oneshot::Sender<()>,
}

impl Admission {
    fn held(&self, key: u64) -> usize {
        self.held.get(&key).copied().unwrap_or(0)
    }

    fn add(&mut self, key: u64) {
        *self.held.entry(key).or_default() += 1;
    }

    fn remove(&mut self, key: u64) {
        if let Some(n) = self.held.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(&key);
            }
        }
    }

    /// A place held by `key` is free: it goes to the waiter whose client holds the fewest
    /// (the earliest among equals), or back to the pool.
    fn release(&mut self, key: u64) {
        self.remove(key);
        loop {
            let next = self
                .waiters
                .iter()
                .enumerate()
                .min_by_key(|(i, w)| (self.held(w.key), *i))
                .map(|(i, _)| i);
            let Some(waiter) = next.and_then(|i| self.waiters.remove(i)) else {
                self.reserved = self.reserved.saturating_sub(1);
                return;
            };
            if waiter.grant.send(()).is_ok() {
                return;
            }
            // Its caller went away: the place goes on to the next.
            self.remove(waiter.key);
        }
    }
}

/// A place in the pool, reserved with [`HashPool::reserve`]: a job run with it is not refused
/// for want of room. Dropping it unused gives the place back.
#[derive(Debug)]
pub struct Slot<'a> {
    pool: &'a HashPool,
    held: Held,
}

/// Gives a reserved place back when dropped: with the [`Slot`] when it is not used, else when its
/// job is done (or skipped).
#[derive(Debug)]
struct Held {
    admission: Arc<Mutex<Admission>>,
    key: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.admission).release(self.key);
    }
}

fn lock(admission: &Mutex<Admission>) -> MutexGuard<'_, Admission> {
    // Changes under the lock are counter updates and queue moves: a panic leaves nothing torn.
    admission.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A caller's place in line; dropping it (a timeout, or the caller went away) leaves the line,
/// and gives back a place granted in the meantime.
struct Waiting<'a> {
    pool: &'a HashPool,
    id: u64,
    key: u64,
    granted: tokio::sync::oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut admission = lock(&self.pool.admission);
        if let Some(i) = admission.waiters.iter().position(|w| w.id == self.id) {
            admission.waiters.remove(i);
            admission.remove(self.key);
        } else if self.granted.try_recv().is_ok() {
            admission.release(self.key);
        }
    }
}

impl HashPool {
    /// Starts `concurrency` hashing threads (at least 1) with a queue of `queue` places.
    pub fn new(concurrency: usize, queue: usize) -> std::io::Result<Self> {
        let concurrency = concurrency.max(1);
        let (jobs, inbox) = sync_channel::<Job>(queue);
        let inbox = Arc::new(Mutex::new(inbox));
        for i in 0..concurrency {
            let inbox = Arc::clone(&inbox);
            std::thread::Builder::new()
                .name(format!("authd-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    work(&inbox);
                })?;
        }
        Ok(Self {
            jobs,
            in_flight: Arc::new(AtomicUsize::new(0)),
            concurrency,
            admission: Arc::default(),
            capacity: concurrency + queue,
            keys: RandomState::new(),
        })
    }

    /// Reserves a place for a job, or answers [`Busy`] at once when every thread is busy and
    /// every queue place is taken. Reserving first lets a caller refuse work it could not hash
    /// before doing anything else for it (such as writing a login attempt to the database).
    pub fn reserve(&self) -> Result<Slot<'_>, Busy> {
        let mut admission = lock(&self.admission);
        if admission.reserved >= self.capacity {
            return Err(Busy);
        }
        admission.reserved += 1;
        admission.add(SHARED_KEY);
        Ok(self.slot(SHARED_KEY))
    }

    /// Reserves a place for a job of `client` (an address), waiting up to `wait` when all are
    /// taken: each place freed meanwhile goes to the waiting client holding the fewest, so that
    /// a few clients with many requests cannot starve the others. [`Busy`] past `wait`, or at
    /// once when the line is full of clients holding no more than this one.
    pub async fn reserve_for(&self, client: &impl Hash, wait: Duration) -> Result<Slot<'_>, Busy> {
        // Never the shared key, so that named clients are counted apart from unnamed callers.
        let key = self.keys.hash_one(client) | 1;
        let (id, granted) = {
            let mut admission = lock(&self.admission);
            if admission.reserved < self.capacity {
                admission.reserved += 1;
                admission.add(key);
                return Ok(self.slot(key));
            }
            if admission.waiters.len() >= self.capacity.saturating_mul(WAITERS_PER_PLACE) {
                let mine = admission.held(key) + 1;
                // The latest waiter of the client holding the most gives way, if it holds more.
                let victim = admission
                    .waiters
                    .iter()
                    .enumerate()
                    .max_by_key(|(i, w)| (admission.held(w.key), *i))
                    .filter(|(_, w)| admission.held(w.key) > mine)
                    .map(|(i, _)| i);
                let Some(waiter) = victim.and_then(|i| admission.waiters.remove(i)) else {
                    return Err(Busy);
                };
                // Dropping its sender tells it: Busy.
                admission.remove(waiter.key);
            }
            let id = admission.next_id;
            admission.next_id = admission.next_id.wrapping_add(1);
            let (grant, granted) = tokio::sync::oneshot::channel();
            admission.waiters.push_back(Waiter { id, key, grant });
            admission.add(key);
            (id, granted)
        };
        let mut waiting = Waiting {
            pool: self,
            id,
            key,
            granted,
            done: false,
        };
        match tokio::time::timeout(wait, &mut waiting.granted).await {
            Ok(Ok(())) => {
                waiting.done = true;
                Ok(self.slot(key))
            }
            // Refused to make room for another client: its place in line is already gone.
            Ok(Err(_)) => {
                waiting.done = true;
                Err(Busy)
            }
            Err(_) => {
                let mut admission = lock(&self.admission);
                if let Some(i) = admission.waiters.iter().position(|w| w.id == id) {
                    admission.waiters.remove(i);
                    admission.remove(key);
                    waiting.done = true;
                    return Err(Busy);
                }
                drop(admission);
                // Granted just as the wait ran out: take it.
                waiting.done = true;
                if waiting.granted.try_recv().is_ok() {
                    Ok(self.slot(key))
                } else {
                    Err(Busy)
                }
            }
        }
    }

    fn slot(&self, key: u64) -> Slot<'_> {
        Slot {
            pool: self,
            held: Held {
                admission: Arc::clone(&self.admission),
                key,
            },
        }
    }

    /// How many jobs may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Jobs running right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Runs `job` on a hashing thread, or answers [`Busy`] at once when the queue is full. A job
    /// whose caller went away while it waited in the queue is skipped.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Busy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.reserve()?.run(job).await
    }
}

impl Slot<'_> {
    /// Runs `job` in the reserved place on a hashing thread. A job whose caller went away while it
    /// waited in the queue is skipped. [`Busy`] only when the pool is gone or the job panicked.
    pub async fn run<T, F>(self, job: F) -> Result<T, Busy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Self { pool, held } = self;
        let (done, answer) = tokio::sync::oneshot::channel();
        let in_flight = Arc::clone(&pool.in_flight);
        let job: Job = Box::new(move || {
            if done.is_closed() {
                return;
            }
            in_flight.fetch_add(1, Ordering::AcqRel);
            let out = catch_unwind(AssertUnwindSafe(job));
            in_flight.fetch_sub(1, Ordering::AcqRel);
            // The place is free before the caller hears back.
            drop(held);
            match out {
                Ok(out) => {
                    let _ = done.send(out);
                }
                Err(_) => tracing::error!("a password hashing job panicked"),
            }
        });
        // A reserved place fits in the queue, except for the moment between a thread taking a
        // job and the job starting; then it is refused like any job past the bound.
        pool.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => Busy,
        })?;
        answer.await.map_err(|_| Busy)
    }
}

/// Lowers the calling thread's scheduling priority by [`HASHING_NICENESS`] (Linux: the nice value
/// is per thread). Never fails the pool: without it hashing only competes more with the workers.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let me = Some(rustix::thread::gettid());
        let lowered = getpriority_process(me)
            .and_then(|now| setpriority_process(me, (now + HASHING_NICENESS).min(19)));
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "cannot lower the hashing threads' priority");
        }
    }
}

fn work(inbox: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, not while it runs.
        let job = match inbox.lock() {
            Ok(rx) => match rx.recv_timeout(RELEASE_AFTER) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                // The pool was dropped: no more jobs will come.
                Err(RecvTimeoutError::Disconnected) => return,
            },
            Err(_) => return,
        };
        match job {
            Some(job) => job(),
            None => super::password::release_thread_memory(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_beyond_concurrency_plus_queue_are_busy_at_once() {
        let pool = Arc::new(HashPool::new(1, 1).unwrap());
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let p = Arc::clone(&pool);
        let running = tokio::spawn(async move {
            p.run(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                1
            })
            .await
        });
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(pool.in_flight(), 1);
        // Poll the second job once: that puts it in the one queue place (without waiting for a
        // spawned task to get there first, which would race with the probe below).
        let queued = pool.run(|| 2);
        tokio::pin!(queued);
        assert!(
            tokio::time::timeout(Duration::ZERO, &mut queued)
                .await
                .is_err(),
            "the second job cannot finish while the first holds the only thread"
        );
        // Running and queue are full: a third is refused at once.
        assert_eq!(pool.run(|| 3).await, Err(Busy));
        release_tx.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(1));
        assert_eq!(queued.await, Ok(2));
        assert_eq!(pool.run(|| 4).await, Ok(4));
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn places_are_reserved_up_to_threads_plus_queue_and_given_back() {
        // One thread and two queue places: three places.
        let pool = HashPool::new(1, 2).unwrap();
        let a = pool.reserve().unwrap();
        let b = pool.reserve().unwrap();
        let c = pool.reserve().unwrap();
        assert!(matches!(pool.reserve(), Err(Busy)));
        assert_eq!(pool.run(|| 1).await, Err(Busy), "run needs a place too");
        // A place dropped unused and one whose job is done are both free again.
        drop(a);
        assert_eq!(b.run(|| 2).await, Ok(2));
        let d = pool.reserve().unwrap();
        let e = pool.reserve().unwrap();
        assert!(matches!(pool.reserve(), Err(Busy)));
        drop((c, d, e));
        assert_eq!(pool.run(|| 3).await, Ok(3));
        let all: Vec<_> = (0..3).map(|_| pool.reserve().unwrap()).collect();
        assert!(matches!(pool.reserve(), Err(Busy)));
        drop(all);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority_than_the_rest() {
        let mine = rustix::process::getpriority_process(None).unwrap();
        let pool = HashPool::new(1, 1).unwrap();
        let theirs = pool
            .run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap())
            .await
            .unwrap();
        assert_eq!(theirs, (mine + HASHING_NICENESS).min(19));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), mine);
    }

    #[tokio::test]
    async fn an_idle_thread_gives_its_hashing_memory_back() {
        use crate::users::password::{StoredHash, hash_password, holds_thread_memory};
        let stored = StoredHash::parse(&hash_password(b"pw").unwrap()).unwrap();
        let pool = HashPool::new(1, 4).unwrap();
        let held = pool
            .run(move || stored.verify(b"pw") && holds_thread_memory())
            .await;
        assert_eq!(
            held,
            Ok(true),
            "a verification keeps its memory for the next"
        );
        tokio::time::sleep(RELEASE_AFTER + Duration::from_millis(500)).await;
        assert_eq!(pool.run(holds_thread_memory).await, Ok(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_freed_place_goes_to_the_waiting_client_holding_the_fewest() {
        // Two places, both the flood's.
        let pool = Arc::new(HashPool::new(1, 1).unwrap());
        let held = pool.reserve_for(&"flood", Duration::ZERO).await.unwrap();
        let kept = pool.reserve_for(&"flood", Duration::ZERO).await.unwrap();
        // The flood waits first, then a newcomer.
        let p = Arc::clone(&pool);
        let flood = tokio::spawn(async move {
            p.reserve_for(&"flood", Duration::from_secs(5))
                .await
                .map(drop)
        });
        while lock(&pool.admission).waiters.is_empty() {
            tokio::task::yield_now().await;
        }
        let p = Arc::clone(&pool);
        let newcomer = tokio::spawn(async move {
            let slot = p.reserve_for(&"newcomer", Duration::from_secs(5)).await;
            (slot.is_ok(), lock(&p.admission).waiters.len())
        });
        while lock(&pool.admission).waiters.len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        // The flood holds a place and waits for another; the newcomer only waits: the newcomer
        // gets the freed place while the flood still waits (though it asked first).
        assert_eq!(newcomer.await.unwrap(), (true, 1));
        assert_eq!(flood.await.unwrap(), Ok(()));
        drop(kept);
        assert_eq!(lock(&pool.admission).reserved, 0);
        assert!(lock(&pool.admission).held.is_empty());
    }

    #[tokio::test]
    async fn a_wait_that_runs_out_is_busy_and_leaves_the_line() {
        let pool = HashPool::new(1, 0).unwrap();
        let held = pool.reserve().unwrap();
        assert!(matches!(
            pool.reserve_for(&"a", Duration::from_millis(20)).await,
            Err(Busy)
        ));
        assert!(lock(&pool.admission).waiters.is_empty());
        drop(held);
        assert_eq!(lock(&pool.admission).reserved, 0);
        assert!(pool.reserve_for(&"a", Duration::ZERO).await.is_ok());
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_kill_its_thread() {
        let pool = HashPool::new(1, 4).unwrap();
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, Err(Busy));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }
}
