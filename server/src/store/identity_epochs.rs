//! The epochs of the identity index: issuances are keyed by `(idx >> EPOCH_SHIFT, identity)`,
//! and a search for a set of identities reads them one window of epochs at a time, newest
//! first.

use std::ops::RangeInclusive;

/// `issuances_by_identity_epoch` (SQLite's migration 0006, PostgreSQL's 0001) keys each issuance by
/// `(idx >> EPOCH_SHIFT, identity, idx)`, so that the writer's batches insert into the
/// current epoch's pages only. Queries repeat its expression exactly, so that the engine
/// seeks each (epoch, identity) pair.
pub const EPOCH_SHIFT: u32 = 12;

/// The epochs of the log indexes below `top`, in windows from the newest: one epoch, then
/// two, four and so on, the last ending at epoch 0. An identity with many issuances is
/// served by the first window; one with few costs a query per doubling, not per epoch.
pub fn epoch_windows(top: u64) -> impl Iterator<Item = RangeInclusive<u64>> {
    let first = top.checked_sub(1).map(|last| (last >> EPOCH_SHIFT, 1u64));
    std::iter::successors(first, |&(hi, width)| {
        let next = hi.checked_sub(width)?;
        Some((next, width * 2))
    })
    .map(|(hi, width)| hi.saturating_sub(width - 1)..=hi)
}

/// Whether to find which of `candidates` identities still have issuances by seeking each
/// epoch of the index for each (at most `candidates` x epochs seeks, fewer for those with
/// recent issuances) rather than by one scan of the whole index: a seek costs about as much
/// as reading ten index entries. `lowest..=highest` are the lowest and highest indexes of
/// the issuances kept.
pub fn seek_each_epoch(candidates: usize, lowest: u64, highest: u64) -> bool {
    let epochs = (highest >> EPOCH_SHIFT) - (lowest >> EPOCH_SHIFT) + 1;
    let span = highest - lowest + 1;
    (candidates as u64)
        .saturating_mul(epochs)
        .saturating_mul(10)
        <= span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_from_the_newest_epoch_down_to_zero() {
        let windows: Vec<_> = epoch_windows((20 << EPOCH_SHIFT) + 5).collect();
        assert_eq!(windows, vec![20..=20, 18..=19, 14..=17, 6..=13, 0..=5]);
        let covered: u64 = windows.iter().map(|w| w.end() - w.start() + 1).sum();
        assert_eq!(covered, 21, "every epoch once");
    }

    #[test]
    fn few_candidates_seek_and_many_scan() {
        let top = 10_000_000;
        assert!(seek_each_epoch(1, 0, top), "one identity: 2,442 seeks");
        assert!(seek_each_epoch(400, 0, top));
        assert!(!seek_each_epoch(500, 0, top), "a scan reads fewer pages");
        assert!(
            !seek_each_epoch(2, 5, 9),
            "a small log: a scan of a few entries"
        );
        assert!(!seek_each_epoch(usize::MAX, 0, top), "no overflow");
    }

    #[test]
    fn windows_of_small_logs() {
        assert_eq!(epoch_windows(0).count(), 0, "an empty log has no epochs");
        assert_eq!(epoch_windows(1).collect::<Vec<_>>(), vec![0..=0]);
        assert_eq!(
            epoch_windows(1 << EPOCH_SHIFT).collect::<Vec<_>>(),
            vec![0..=0],
            "index 4095 is the last of epoch 0"
        );
        assert_eq!(
            epoch_windows((1 << EPOCH_SHIFT) + 1).collect::<Vec<_>>(),
            vec![1..=1, 0..=0]
        );
    }
}
