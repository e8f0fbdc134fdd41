//! Locks that survive a panic of another holder: [`lock`], [`read`] and [`write`] take a std
//! lock, and if a panicking thread poisoned it, log that once and go on with the data as left.
//!
//! The topic list, topic configs, partition lists, the admin lock and the producer-id
//! allocator change by whole inserts, removes or assignments: whatever a panic interrupted, they
//! hold a consistent value. The group coordinator and the transaction coordinator may be caught
//! halfway through updating one group or transaction; going on leaves that one group or
//! transaction in an odd state that its own timeouts (session, rebalance, transaction) and its
//! clients' retries move on from, where refusing service would stop every group or transaction
//! of the broker until a restart. A partition's log is different (an append updates several
//! fields and files, and later appends build on them): `Partition::lock_log` reopens it from
//! its files instead.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering it from poisoning; `what` names it in the log.
pub(crate) fn lock<'a, T>(m: &'a Mutex<T>, what: &str) -> MutexGuard<'a, T> {
    m.lock().unwrap_or_else(|e| {
        poisoned(what);
        m.clear_poison();
        PoisonError::into_inner(e)
    })
}

/// Read-locks `l`, recovering it from poisoning; `what` names it in the log.
pub(crate) fn read<'a, T>(l: &'a RwLock<T>, what: &str) -> RwLockReadGuard<'a, T> {
    l.read().unwrap_or_else(|e| {
        poisoned(what);
        l.clear_poison();
        PoisonError::into_inner(e)
    })
}

/// Write-locks `l`, recovering it from poisoning; `what` names it in the log.
pub(crate) fn write<'a, T>(l: &'a RwLock<T>, what: &str) -> RwLockWriteGuard<'a, T> {
    l.write().unwrap_or_else(|e| {
        poisoned(what);
        l.clear_poison();
        PoisonError::into_inner(e)
    })
}

fn poisoned(what: &str) {
    tracing::error!(
        lock = what,
        "a request panicked holding this lock; going on with its data as left"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let m = Mutex::new(vec![1]);
        let l = RwLock::new(7);
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let mut g = m.lock().unwrap();
                    g.push(2);
                    let _w = l.write().unwrap();
                    panic!("holding both");
                })
                .join();
        });
        assert!(m.is_poisoned() && l.is_poisoned());
        assert_eq!(*lock(&m, "m"), vec![1, 2]);
        assert!(!m.is_poisoned(), "cleared: the next caller logs nothing");
        assert_eq!(*read(&l, "l"), 7);
        *write(&l, "l") = 8;
        assert_eq!(*l.read().unwrap(), 8);
    }
}
