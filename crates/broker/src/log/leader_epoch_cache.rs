//! Kafka's `LeaderEpochFileCache` lookups over a log's leader-epoch cache: the
//! `(epoch, start_offset)` pairs of `leader-epoch-checkpoint`, epochs strictly rising.
//! The cache itself lives in `LocalLog`, under the log's lock; these are pure functions
//! of it, so OffsetForLeaderEpoch and Fetch's divergence check answer as Kafka does.

/// Kafka's `endOffsetFor`: the end offset of `requested_epoch` (where the next epoch
/// starts, or `log_end_offset` for the latest) and the epoch that answers it, which is
/// the largest known epoch at or below `requested_epoch`. `None` when the epoch is
/// undefined (negative) or past every known epoch (Kafka's UNDEFINED_EPOCH).
pub fn end_offset_for(epochs: &[(i32, i64)], requested_epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
    if requested_epoch < 0 {
        return None;
    }
    let (latest, _) = *epochs.last()?;
    if latest == requested_epoch {
        // The current leader's epoch is still being written to: it ends at the log end.
        return Some((requested_epoch, log_end_offset));
    }
    let higher = epochs.iter().position(|(e, _)| *e > requested_epoch)?;
    let (_, higher_start) = epochs[higher];
    match higher.checked_sub(1) {
        // Older than every epoch left: its data is gone, so the first epoch's start.
        None => Some((requested_epoch, higher_start)),
        Some(floor) => Some((epochs[floor].0, higher_start)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of Kafka's `LeaderEpochFileCacheTest` for `endOffsetFor`.
    #[test]
    fn end_offsets_are_the_ones_kafka_answers() {
        let epochs = [(2, 6), (4, 11), (6, 20)];
        assert_eq!(end_offset_for(&epochs, -1, 30), None);
        assert_eq!(end_offset_for(&epochs, 6, 30), Some((6, 30)));
        assert_eq!(end_offset_for(&epochs, 7, 30), None);
        assert_eq!(end_offset_for(&epochs, 4, 30), Some((4, 20)));
        // An epoch between two known ones ends where the next starts, answered by the
        // epoch below it.
        assert_eq!(end_offset_for(&epochs, 5, 30), Some((4, 20)));
        assert_eq!(end_offset_for(&epochs, 3, 30), Some((2, 11)));
        // Below every known epoch: the first known epoch's start.
        assert_eq!(end_offset_for(&epochs, 1, 30), Some((1, 6)));
        assert_eq!(end_offset_for(&[], 0, 30), None);
        assert_eq!(end_offset_for(&[(0, 0)], 0, 0), Some((0, 0)));
    }
}
