//! The connection cap: every open connection holds one of a fixed number of slots, sized below the
//! process's open-file limit, so that an outsider holding idle sockets can never leave the server
//! without a descriptor to accept with. When every slot is taken, the connection idle the longest
//! is closed to make room for the new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Descriptors kept for everything but client connections: standard streams, the runtime's
/// epoll and wake-up descriptors, the listeners, the users, TLS and temporary files.
const RESERVE_BASE: u64 = 64;
/// Descriptors a database connection may take (SQLite: the database, its WAL and shared memory).
const PER_DATABASE_CONNECTION: u64 = 3;

/// The connection cap for an open-file limit of `nofile`, with `database_connections` in the
/// pool, no higher than `configured` when set: the limit minus the reserve, and at least half the
/// limit whatever the reserve (a tiny limit must still serve a few clients).
pub(crate) fn cap_for(nofile: u64, database_connections: u32, configured: Option<usize>) -> usize {
    let reserve = RESERVE_BASE + PER_DATABASE_CONNECTION * u64::from(database_connections);
    let from_limit = nofile.saturating_sub(reserve).max(nofile / 2).max(1);
    let from_limit = usize::try_from(from_limit).unwrap_or(usize::MAX);
    // A semaphore holds at most this many permits; no system gets near it.
    let cap = from_limit.min(Semaphore::MAX_PERMITS);
    configured.map_or(cap, |c| c.min(cap))
}

/// The open connections of one server (its listeners share it) and the slots they hold.
#[derive(Debug)]
pub(crate) struct Connections {
    cap: usize,
    slots: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    /// Connections told to close to make room, not closed yet.
    evicting: AtomicUsize,
    epoch: Instant,
}

/// What the registry knows of one connection.
#[derive(Debug)]
pub(crate) struct Slot {
    /// 0 while a request is being answered; otherwise 1 + the nanoseconds from the epoch at which
    /// the connection went idle (accepted, or its last answer made).
    idle_since: AtomicU64,
    /// Whether a request has ever been handed to the service on it.
    served: AtomicBool,
    evicted: AtomicBool,
    evict: Notify,
    epoch: Instant,
}

impl Slot {
    /// A request is being answered.
    pub(crate) fn busy(&self) {
        self.idle_since.store(0, Ordering::Relaxed);
        if !self.served.load(Ordering::Relaxed) {
            self.served.store(true, Ordering::Relaxed);
        }
    }

    /// The answer is made; the connection waits for its next request.
    pub(crate) fn idle(&self) {
        self.idle_since
            .store(since(self.epoch, Instant::now()), Ordering::Relaxed);
    }

    /// Whether a request has ever been handed to the service on this connection.
    pub(crate) fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// Completes when the connection is to close to make room for a new one.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// 1 + nanoseconds from `epoch` to `now` (never 0, which means busy).
fn since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// A connection's place in the registry: dropping it (when the connection ends) frees its slot.
#[derive(Debug)]
pub(crate) struct Held {
    connections: Arc<Connections>,
    slot: Arc<Slot>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Held {
    /// The connection's slot, for its service and its task.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
        if self.slot.evicted.load(Ordering::Relaxed) {
            self.connections.evicting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How long the accept loop waits for a slot before looking again for an idle connection to
/// close (connections that were all busy may have gone idle meanwhile).
const RETRY_EVICTION: Duration = Duration::from_millis(100);

impl Connections {
    /// A registry of at most `cap` connections.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        let cap = cap.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            cap,
            slots: Arc::new(Semaphore::new(cap)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            evicting: AtomicUsize::new(0),
            epoch: Instant::now(),
        })
    }

    /// The cap.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        // Inserts and removes cannot leave the map half-changed.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot if one is free now.
    pub(crate) fn try_hold(self: &Arc<Self>) -> Option<Held> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        Some(self.register(permit))
    }

    /// A slot, once one is free: meanwhile the connection idle the longest is told to close
    /// (unless one told earlier is still closing), and another every [`RETRY_EVICTION`] while
    /// none frees its slot (every connection busy, or the one told finishing an answer).
    /// Returns how many connections were told to close besides the slot.
    pub(crate) async fn hold(self: &Arc<Self>) -> (Held, usize) {
        let mut evicted = 0;
        let mut waited = false;
        loop {
            if (waited || self.evicting.load(Ordering::Relaxed) == 0) && self.evict_oldest_idle() {
                evicted += 1;
            }
            waited = true;
            let wait = Arc::clone(&self.slots).acquire_owned();
            // The semaphore is never closed; a timeout looks for an idle connection again.
            if let Ok(Ok(permit)) = tokio::time::timeout(RETRY_EVICTION, wait).await {
                return (self.register(permit), evicted);
            }
        }
    }

    fn register(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Held {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            idle_since: AtomicU64::new(since(self.epoch, Instant::now())),
            served: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
            epoch: self.epoch,
        });
        self.lock().insert(id, Arc::clone(&slot));
        Held {
            connections: Arc::clone(self),
            slot,
            id,
            _permit: permit,
        }
    }

    /// Tells the connection idle the longest to close; `false` when none is idle. A scan of every
    /// connection, but only when the cap is reached, and once per connection accepted then.
    pub(crate) fn evict_oldest_idle(&self) -> bool {
        let open = self.lock();
        let oldest = open
            .values()
            .filter(|s| !s.evicted.load(Ordering::Relaxed))
            .filter_map(|s| {
                let since = s.idle_since.load(Ordering::Relaxed);
                (since != 0).then_some((since, s))
            })
            .min_by_key(|(since, _)| *since);
        let Some((_, slot)) = oldest else {
            return false;
        };
        slot.evicted.store(true, Ordering::Relaxed);
        self.evicting.fetch_add(1, Ordering::Relaxed);
        // `notify_one` keeps the notification for a task not yet waiting.
        slot.evict.notify_one();
        true
    }

    /// Waits until every connection has ended.
    pub(crate) async fn all_closed(&self) {
        let all = u32::try_from(self.cap).unwrap_or(u32::MAX);
        // Each open connection holds one permit: all of them back means none is open. (A cap
        // over u32::MAX would end the wait early; no open-file limit is that high.)
        let _ = self.slots.acquire_many(all).await;
    }
}

/// Raises the soft open-file limit to the hard one (Linux), so that the connection cap is not
/// set by a low default (1024 on many systems) while the system allows more. Returns the limit in
/// force afterwards and the one before, or `None` where it cannot be read.
pub(crate) fn raise_open_file_limit() -> Option<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let before = limit.current?;
        match limit.maximum {
            Some(hard) if hard > before => {
                let raised = Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                };
                match setrlimit(Resource::Nofile, raised) {
                    Ok(()) => Some((hard, before)),
                    Err(_) => Some((before, before)),
                }
            }
            _ => Some((before, before)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_below_the_open_file_limit() {
        assert_eq!(cap_for(256, 8, None), 256 - 64 - 24);
        assert_eq!(cap_for(1_048_576, 8, None), 1_048_576 - 88);
        // A tiny limit still serves clients, with half of it.
        assert_eq!(cap_for(100, 8, None), 50);
        assert_eq!(cap_for(0, 8, None), 1);
        // A setting lowers the cap, never raises it past the limit.
        assert_eq!(cap_for(256, 8, Some(10)), 10);
        assert_eq!(cap_for(256, 8, Some(100_000)), 168);
    }

    #[tokio::test]
    async fn at_the_cap_the_connection_idle_the_longest_is_told_to_close() {
        let connections = Connections::new(3);
        let a = connections.try_hold().unwrap();
        let b = connections.try_hold().unwrap();
        let c = connections.try_hold().unwrap();
        assert!(connections.try_hold().is_none());
        // `a` is answering a request; `b` went idle before `c` (both were idle since accepted,
        // `c` has answered a request since).
        a.slot().busy();
        c.slot().busy();
        c.slot().idle();
        let wait = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move { connections.hold().await }
        });
        tokio::time::timeout(Duration::from_secs(1), b.slot().evicted())
            .await
            .expect("the oldest idle connection was not told to close");
        assert!(!a.slot().evicted.load(Ordering::Relaxed));
        assert!(!c.slot().evicted.load(Ordering::Relaxed));
        drop(b);
        let (held, evicted) = tokio::time::timeout(Duration::from_secs(1), wait)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(evicted, 1);
        assert_eq!(connections.lock().len(), 3);
        drop((a, c, held));
        tokio::time::timeout(Duration::from_secs(1), connections.all_closed())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn with_every_connection_busy_the_new_one_waits_for_a_slot() {
        let connections = Connections::new(1);
        let a = connections.try_hold().unwrap();
        a.slot().busy();
        let wait = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move { connections.hold().await }
        });
        tokio::time::sleep(RETRY_EVICTION * 2).await;
        assert!(!wait.is_finished());
        assert!(!a.slot().evicted.load(Ordering::Relaxed));
        // Once it goes idle, it is the one closed.
        a.slot().idle();
        tokio::time::timeout(Duration::from_secs(1), a.slot().evicted())
            .await
            .unwrap();
        drop(a);
        tokio::time::timeout(Duration::from_secs(1), wait)
            .await
            .unwrap()
            .unwrap();
    }
}
