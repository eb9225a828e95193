//! How a build keeps its workers' caches: one `RefCell` per wasm VM (a VM
//! is single-threaded), or [`Shards`] of mutexes shared by Envoy's worker
//! threads (the native module).

use std::cell::{RefCell, RefMut};
use std::ops::DerefMut;
use std::sync::{Mutex, MutexGuard, TryLockError};

use crate::worker::Worker;

/// Per-worker caches a stream locks for one phase.
pub trait Workers {
    /// A worker's caches, locked.
    type Locked<'a>: DerefMut<Target = Worker>
    where
        Self: 'a;

    /// The caches of worker `index`, locked; `None` when busy (the caller
    /// then decides without caches: fail open).
    fn lock(&self, index: u32) -> Option<Self::Locked<'_>>;
}

/// One VM's caches: every index is the VM itself; busy only on re-entry.
impl Workers for RefCell<Worker> {
    type Locked<'a> = RefMut<'a, Worker>;

    #[inline]
    fn lock(&self, _index: u32) -> Option<RefMut<'_, Worker>> {
        self.try_borrow_mut().ok()
    }
}

/// Caches shared across threads: worker `index` uses shard `index` modulo
/// their number, so workers never contend and a busy shard is skipped.
#[derive(Debug)]
pub struct Shards(Box<[Mutex<Worker>]>);

impl Shards {
    /// `count` empty shards.
    pub fn new(count: usize) -> Self {
        Self((0..count).map(|_| Mutex::new(Worker::default())).collect())
    }
}

impl Workers for Shards {
    type Locked<'a> = MutexGuard<'a, Worker>;

    /// A shard poisoned by a panic that a hook's guard caught is reset: its
    /// caches may be half updated, and starting empty only costs a few
    /// token opens.
    fn lock(&self, index: u32) -> Option<MutexGuard<'_, Worker>> {
        let index = usize::try_from(index).ok()?.checked_rem(self.0.len())?;
        let shard = self.0.get(index)?;
        match shard.try_lock() {
            Ok(locked) => Some(locked),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut locked = poisoned.into_inner();
                *locked = Worker::default();
                shard.clear_poison();
                Some(locked)
            }
        }
    }
}
