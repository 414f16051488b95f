//! Bounded password hashing: a fixed set of `concurrency` threads of our own (never the async
//! workers) takes jobs from a queue of at most `queue` places. Past that a caller is told [`Busy`]
//! at once instead of piling up. Fixed threads also bound memory: each argon2id hash needs 19 MiB,
//! and the allocator keeps that memory per thread, so `concurrency` threads hold at most
//! `concurrency` such buffers (tokio's blocking pool would spread them over up to 512 threads).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Every hashing thread is busy and every queue place is taken (or the pool is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool for password hashing work.
#[derive(Debug)]
pub struct HashPool {
    jobs: SyncSender<Job>,
    in_flight: Arc<AtomicUsize>,
    concurrency: usize,
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
                .spawn(move || work(&inbox))?;
        }
        Ok(Self {
            jobs,
            in_flight: Arc::new(AtomicUsize::new(0)),
            concurrency,
        })
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
        let (done, answer) = tokio::sync::oneshot::channel();
        let in_flight = Arc::clone(&self.in_flight);
        let job: Job = Box::new(move || {
            if done.is_closed() {
                return;
            }
            in_flight.fetch_add(1, Ordering::AcqRel);
            let out = catch_unwind(AssertUnwindSafe(job));
            in_flight.fetch_sub(1, Ordering::AcqRel);
            match out {
                Ok(out) => {
                    let _ = done.send(out);
                }
                Err(_) => tracing::error!("a password hashing job panicked"),
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => Busy,
        })?;
        answer.await.map_err(|_| Busy)
    }
}

fn work(inbox: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, not while it runs.
        let job = match inbox.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            // The pool was dropped: no more jobs will come.
            Err(_) => return,
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
    async fn a_panicking_job_does_not_kill_its_thread() {
        let pool = HashPool::new(1, 4).unwrap();
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, Err(Busy));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }
}
