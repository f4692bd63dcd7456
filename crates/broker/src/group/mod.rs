//! The group coordinator (classic and consumer protocols): membership, rebalances, committed offsets.
//!
//! - `classic_group`: one group's state machine (Empty, PreparingRebalance,
//!   CompletingRebalance, Stable, Dead), driven by joins, syncs, heartbeats, leaves and
//!   the clock. Pure: it answers through the channels members wait on.
//! - `offsets`: committed offsets and their records in `__consumer_offsets`
//!   (Kafka's key and value formats).
//! - `consumer_group`: one group of the consumer protocol (KIP-848): group epoch,
//!   target assignment, and each member's reconciliation towards it. Pure.
//! - `consumer_records`: such a group as Kafka's coordinator records, written by
//!   difference.
//! - `assignor`: the server-side assignors of that protocol, `uniform` and `range`.
//! - `coordinator`: the shared map of groups, timers, and persistence;
//!   `consumer_coordinator` is its consumer-protocol half.

pub mod assignor;
pub mod classic_group;
pub mod consumer_coordinator;
pub mod consumer_group;
pub mod consumer_records;
pub mod coordinator;
pub mod offsets;

pub use coordinator::GroupCoordinator;

/// Appends one group's records to `__consumer_offsets` (the caller's I/O). The
/// coordinator calls it while it still holds the group, so a group's records reach the
/// log in the order its state changed; the error is a Kafka error code.
pub type RecordWriter<'a> = &'a dyn Fn(&str, &consumer_records::RawRecords) -> Result<(), i16>;

/// Kafka's `__consumer_offsets`.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode`, so a group maps to the same `__consumer_offsets`
/// partition as in Kafka: `abs(hash) % partitions`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    // Kafka's Utils.abs maps i32::MIN to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn java_hash_code_partitioning() {
        // "my-group".hashCode() == -1906497762 in Java.
        assert_eq!(super::partition_for("my-group", 50), 1906497762 % 50);
        assert_eq!(super::partition_for("", 50), 0);
    }
}
