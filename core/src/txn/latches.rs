//! Latches: per-key mutual exclusion for write commands (TiKV `storage/txn/latch.rs`).
//!
//! - **Inputs**: a command's keys (as a [`LatchLock`]) and its [`CommandId`]; releases.
//! - **Outputs**: whether the command now holds all its latches; on release, the commands
//!   to wake (each then calls `acquire` again).
//! - **Invariants**: a fixed number of slots; key hash → slot; each slot keeps a FIFO queue of
//!   `(key hash, command)`, and a command owns a hash when it is the first entry with that
//!   hash. A command takes its hashes in ascending order, one at a time, waiting in the first
//!   queue it cannot lead, so no two commands wait for each other (no deadlock) and "if
//!   command A is ahead of B in one latch, it is ahead of B in every latch they share". A new
//!   command is refused with `Busy` when any of its slots already holds
//!   `LATCH_SLOT_WAITERS_MAX` entries; together with the scheduler's bound on pending
//!   commands (`flow_control`) this keeps every queue bounded.

use std::collections::VecDeque;

use crate::limits;
use crate::types::fnv;

/// Identifies a scheduled command.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CommandId(pub u64);

/// The latches one command needs, and how many it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatchLock {
    required_hashes: Vec<u64>,
    owned_count: usize,
    queued: bool,
}

/// The FNV-1a hash of a key that picks its latch.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut hash = fnv::FNV_OFFSET;
    fnv::fold(&mut hash, key);
    hash
}

impl LatchLock {
    /// The latches for `keys` (duplicates collapse).
    pub fn new<K: AsRef<[u8]>>(keys: &[K]) -> LatchLock {
        let mut required_hashes: Vec<u64> = keys.iter().map(|k| key_hash(k.as_ref())).collect();
        required_hashes.sort_unstable();
        required_hashes.dedup();
        LatchLock {
            required_hashes,
            owned_count: 0,
            queued: false,
        }
    }

    /// Latches held so far.
    pub fn owned_count(&self) -> usize {
        assert!(self.owned_count <= self.required_hashes.len());
        self.owned_count
    }

    /// True once every latch is held.
    pub fn acquired(&self) -> bool {
        self.owned_count == self.required_hashes.len()
    }
}

/// The latch refused a new command: its queues are full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("latch queue full ({waiters} waiters)")]
pub struct LatchBusy {
    /// Entries in the fullest slot.
    pub waiters: usize,
}

/// All latch slots of a store.
#[derive(Debug)]
pub struct Latches {
    slots: Vec<VecDeque<(u64, CommandId)>>,
}

impl Latches {
    /// `slot_count` slots (a power of two).
    pub fn new(slot_count: usize) -> Latches {
        assert!(
            slot_count.is_power_of_two(),
            "slot count must be a power of two"
        );
        assert!(slot_count <= limits::LATCH_SLOTS_MAX);
        Latches {
            slots: (0..slot_count).map(|_| VecDeque::new()).collect(),
        }
    }

    fn slot(&self, hash: u64) -> usize {
        (hash as usize) & (self.slots.len() - 1)
    }

    fn first_owner(&self, hash: u64) -> Option<CommandId> {
        let slot = &self.slots[self.slot(hash)];
        slot.iter().find(|(h, _)| *h == hash).map(|(_, who)| *who)
    }

    /// Tries to take the rest of `lock`'s latches for `who`; true when all are held.
    /// On `false` the command waits in one queue and is returned by a later `release`.
    pub fn acquire(&mut self, lock: &mut LatchLock, who: CommandId) -> Result<bool, LatchBusy> {
        if !lock.queued {
            self.admit(lock)?;
            lock.queued = true;
        }
        assert!(lock.owned_count <= lock.required_hashes.len());
        while !lock.acquired() {
            let hash = lock.required_hashes[lock.owned_count];
            let slot = self.slot(hash);
            match self.first_owner(hash) {
                Some(owner) if owner == who => lock.owned_count += 1,
                Some(_) => {
                    if !self.slots[slot].contains(&(hash, who)) {
                        self.slots[slot].push_back((hash, who));
                    }
                    return Ok(false);
                }
                None => {
                    self.slots[slot].push_back((hash, who));
                    lock.owned_count += 1;
                }
            }
        }
        Ok(true)
    }

    fn admit(&self, lock: &LatchLock) -> Result<(), LatchBusy> {
        let fullest = lock
            .required_hashes
            .iter()
            .map(|&hash| self.slots[self.slot(hash)].len())
            .max()
            .unwrap_or(0);
        if fullest >= limits::LATCH_SLOT_WAITERS_MAX {
            return Err(LatchBusy { waiters: fullest });
        }
        Ok(())
    }

    /// Releases every latch `who` holds in `lock`; returns the commands that are now first
    /// for a released hash (to call `acquire` again), in order, without duplicates.
    pub fn release(&mut self, lock: &LatchLock, who: CommandId) -> Vec<CommandId> {
        assert!(lock.acquired(), "release before acquiring every latch");
        let mut wake = Vec::new();
        for &hash in &lock.required_hashes {
            let slot = self.slot(hash);
            let queue = &mut self.slots[slot];
            let position = queue.iter().position(|entry| entry.0 == hash);
            assert_eq!(
                position.map(|p| queue[p].1),
                Some(who),
                "released a latch not held"
            );
            queue.remove(position.expect("checked"));
            if let Some(next) = self.first_owner(hash) {
                if !wake.contains(&next) {
                    wake.push(next);
                }
            }
        }
        wake
    }

    /// Entries queued in all slots (for metrics and tests).
    pub fn entries(&self) -> usize {
        self.slots.iter().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_command_waits_then_wakes() {
        let mut latches = Latches::new(256);
        let mut a = LatchLock::new(&[b"k1", b"k2"]);
        let mut b = LatchLock::new(&[b"k2", b"k3"]);
        let mut c = LatchLock::new(&[b"k4"]);
        assert_eq!(latches.acquire(&mut a, CommandId(1)), Ok(true));
        assert_eq!(latches.acquire(&mut b, CommandId(2)), Ok(false));
        assert_eq!(
            latches.acquire(&mut c, CommandId(3)),
            Ok(true),
            "disjoint keys run"
        );
        assert_eq!(latches.release(&a, CommandId(1)), vec![CommandId(2)]);
        assert_eq!(latches.acquire(&mut b, CommandId(2)), Ok(true));
        assert_eq!(latches.release(&b, CommandId(2)), Vec::<CommandId>::new());
        latches.release(&c, CommandId(3));
        assert_eq!(latches.entries(), 0);
    }

    #[test]
    fn waiters_are_woken_in_fifo_order() {
        let mut latches = Latches::new(16);
        let mut locks: Vec<LatchLock> = (0..4).map(|_| LatchLock::new(&[b"hot"])).collect();
        assert_eq!(latches.acquire(&mut locks[0], CommandId(0)), Ok(true));
        for (index, lock) in locks.iter_mut().enumerate().skip(1) {
            assert_eq!(latches.acquire(lock, CommandId(index as u64)), Ok(false));
        }
        for index in 0..3 {
            let woken = latches.release(&locks[index], CommandId(index as u64));
            assert_eq!(woken, vec![CommandId(index as u64 + 1)]);
            let next = &mut locks[index + 1];
            assert_eq!(latches.acquire(next, CommandId(index as u64 + 1)), Ok(true));
        }
    }

    #[test]
    fn full_queue_refuses_new_commands() {
        let mut latches = Latches::new(16);
        let mut holders: Vec<LatchLock> = Vec::new();
        for index in 0..limits::LATCH_SLOT_WAITERS_MAX {
            let mut lock = LatchLock::new(&[b"hot"]);
            let _ = latches.acquire(&mut lock, CommandId(index as u64)).unwrap();
            holders.push(lock);
        }
        let mut extra = LatchLock::new(&[b"hot"]);
        let refused = latches.acquire(&mut extra, CommandId(9_999));
        assert_eq!(
            refused,
            Err(LatchBusy {
                waiters: limits::LATCH_SLOT_WAITERS_MAX
            })
        );
        assert_eq!(
            latches.entries(),
            limits::LATCH_SLOT_WAITERS_MAX,
            "nothing enqueued"
        );
    }

    #[test]
    fn no_keys_means_acquired_at_once() {
        let mut latches = Latches::new(16);
        let mut lock = LatchLock::new::<&[u8]>(&[]);
        assert_eq!(latches.acquire(&mut lock, CommandId(1)), Ok(true));
        assert!(latches.release(&lock, CommandId(1)).is_empty());
    }
}
