//! Which outbox entries are known to be on disk. sled shows a transaction's writes to every
//! reader as soon as it returns, long before they reach the disk; if the flush that follows
//! fails (a full disk), they are gone after a restart. The delivery lanes therefore skip every
//! entry written since the last flush that covers it, so a receiver never sees an event that
//! the disk does not hold.

use std::collections::HashMap;

use super::OutboxKey;

/// Outbox keys written but not yet covered by a successful flush.
///
/// Each finished write gets the next number; a flush covers every write numbered up to the
/// count when it started. A write still in its transaction has no number yet and stays hidden
/// whatever flushes finish meanwhile, so the rule holds with many commits in flight at once.
#[derive(Debug, Default)]
pub(super) struct Watermark {
    /// The number of the last write that finished.
    written: u64,
    /// Each hidden key and the number of the write that made it (None while it runs).
    hidden: HashMap<OutboxKey, Option<u64>>,
}

impl Watermark {
    /// A transaction is about to write `keys`: hide them before any reader can see them.
    pub(crate) fn writing(&mut self, keys: &[OutboxKey]) {
        for key in keys {
            self.hidden.insert(key.clone(), None);
        }
    }

    /// The transaction writing `keys` committed: the next flush to start covers them.
    pub(crate) fn wrote(&mut self, keys: &[OutboxKey]) {
        self.written += 1;
        for key in keys {
            self.hidden.insert(key.clone(), Some(self.written));
        }
    }

    /// The transaction writing `keys` failed, so they were never written.
    pub(crate) fn abandoned(&mut self, keys: &[OutboxKey]) {
        for key in keys {
            self.hidden.remove(key);
        }
    }

    /// Call as a flush starts; hand the answer to `flushed` when it succeeds.
    pub(crate) fn flush_starts(&self) -> u64 {
        self.written
    }

    /// A flush that started at `covered` succeeded: everything written before it is on disk.
    /// A flush that failed reports nothing, and what it should have covered stays hidden.
    pub(crate) fn flushed(&mut self, covered: u64) {
        self.hidden
            .retain(|_, write| write.is_none_or(|write| write > covered));
    }

    pub(crate) fn hides(&self, key: &OutboxKey) -> bool {
        self.hidden.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> OutboxKey {
        OutboxKey(name.as_bytes().to_vec())
    }

    #[test]
    fn an_entry_is_hidden_from_before_its_write_until_a_flush_that_started_after_it() {
        let mut mark = Watermark::default();
        let (a, b) = (key("a"), key("b"));
        mark.writing(std::slice::from_ref(&a));
        assert!(mark.hides(&a), "hidden while the transaction runs");
        // A flush that started before `a` was written does not cover it.
        let early = mark.flush_starts();
        mark.wrote(std::slice::from_ref(&a));
        mark.flushed(early);
        assert!(
            mark.hides(&a),
            "a flush from before the write covers nothing"
        );

        mark.writing(std::slice::from_ref(&b));
        let covering = mark.flush_starts();
        mark.flushed(covering);
        assert!(!mark.hides(&a), "written before the flush started: on disk");
        assert!(
            mark.hides(&b),
            "still in its transaction when the flush started"
        );
        mark.wrote(std::slice::from_ref(&b));
        assert!(mark.hides(&b));
        let next = mark.flush_starts();
        mark.flushed(next);
        assert!(!mark.hides(&b));
    }

    #[test]
    fn a_failed_flush_leaves_its_entries_hidden_until_a_later_one_succeeds() {
        let mut mark = Watermark::default();
        let a = key("a");
        mark.writing(std::slice::from_ref(&a));
        mark.wrote(std::slice::from_ref(&a));
        let _failed = mark.flush_starts();
        // The flush failed: nothing is reported, so `a` stays out of the lanes' sight.
        assert!(mark.hides(&a));
        let retry = mark.flush_starts();
        mark.flushed(retry);
        assert!(!mark.hides(&a));
    }

    #[test]
    fn an_abandoned_write_leaves_nothing_behind() {
        let mut mark = Watermark::default();
        let keys = [key("a"), key("b")];
        mark.writing(&keys);
        mark.abandoned(&keys);
        assert!(!mark.hides(&keys[0]) && !mark.hides(&keys[1]));
        assert!(mark.hidden.is_empty());
    }
}
