//! Bounded password hashing: at most `concurrency` hashes run at once, on tokio's blocking threads
//! (never on the async workers), with at most `queue` more waiting. Past that a caller is told
//! [`Busy`] at once instead of piling up memory (each argon2id hash holds 19 MiB while it runs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// Every hashing slot and every queue place is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated")]
pub struct Busy;

/// A bounded pool for password hashing work.
#[derive(Debug)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    /// Requests admitted: running plus waiting.
    admitted: AtomicUsize,
    limit: usize,
    concurrency: usize,
}

impl HashPool {
    /// A pool running at most `concurrency` jobs at once (at least 1) with at most `queue` waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            admitted: AtomicUsize::new(0),
            limit: concurrency + queue,
            concurrency,
        }
    }

    /// How many jobs may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Jobs hashing right now.
    pub fn in_flight(&self) -> usize {
        self.concurrency - self.permits.available_permits()
    }

    /// Runs `job` on a blocking thread once a slot is free, or answers [`Busy`] at once when the
    /// queue is full. If the caller goes away while waiting, its place is freed; once started, a
    /// job runs to the end and holds its slot until then.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Busy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let admitted = self.admitted.fetch_add(1, Ordering::AcqRel);
        let _place = Place(&self.admitted);
        if admitted >= self.limit {
            return Err(Busy);
        }
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|_| Busy)
    }
}

/// Gives back an admission place when the request is done or dropped.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_beyond_concurrency_plus_queue_are_busy_at_once() {
        let pool = Arc::new(HashPool::new(1, 1));
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
        let p = Arc::clone(&pool);
        let queued = tokio::spawn(async move { p.run(|| 2).await });
        // Let the second job take its queue place.
        while pool.admitted.load(Ordering::Acquire) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(pool.run(|| 3).await, Err(Busy));
        release_tx.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(1));
        assert_eq!(queued.await.unwrap(), Ok(2));
        assert_eq!(pool.run(|| 4).await, Ok(4));
        assert_eq!(pool.admitted.load(Ordering::Acquire), 0);
    }
}
