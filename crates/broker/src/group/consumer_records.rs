//! A consumer-protocol group (KIP-848) as records in `__consumer_offsets`, in Kafka's
//! coordinator record formats. Keys are not flexible: `type i16` then strings with i16
//! lengths. Values are flexible (`version i16 = 0`, compact strings and arrays, tagged
//! fields):
//!
//! ```text
//! 3 ConsumerGroupMetadata            key (group)          value: epoch i32,
//!     tagged field 0: metadata_hash i64 (Kafka 4.1, KIP-1101)
//! 5 ConsumerGroupMemberMetadata      key (group, member)  value: instance_id?, rack_id?,
//!     client_id, client_host, [subscribed topic], regex?, rebalance_timeout_ms i32,
//!     server_assignor?
//! 6 ConsumerGroupTargetAssignmentMetadata key (group)     value: assignment_epoch i32
//! 7 ConsumerGroupTargetAssignmentMember   key (group, member) value: [topic_id uuid, [partition i32]]
//! 8 ConsumerGroupCurrentMemberAssignment  key (group, member) value: member_epoch i32,
//!     previous_member_epoch i32, state i8, [assigned], [pending revocation]
//! ```
//! A null value is a tombstone. Persistence is by difference: `ConsumerGroup::record_view`
//! renders the group as these records, and only those that changed since the last
//! write are written again.

use super::assignor::Assignment;
use super::consumer_group::{ConsumerGroup, MemberState};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

pub const GROUP_EPOCH: i16 = 3;
pub const MEMBER_METADATA: i16 = 5;
pub const TARGET_EPOCH: i16 = 6;
pub const TARGET_MEMBER: i16 = 7;
pub const CURRENT_ASSIGNMENT: i16 = 8;

/// Entries a decoded array may hold: a limit on what a record can make us allocate.
const ARRAY_MAX: usize = 1 << 20;

/// A record's identity: its type and, for member records, the member id.
pub type RecordKey = (i16, String);

pub fn key_bytes(group: &str, key: &RecordKey) -> Bytes {
    let mut b = BytesMut::with_capacity(6 + group.len() + key.1.len());
    b.put_i16(key.0);
    put_string(&mut b, group);
    if key.0 != GROUP_EPOCH && key.0 != TARGET_EPOCH {
        put_string(&mut b, &key.1);
    }
    b.freeze()
}

fn put_string(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_compact_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_uvarint(b, s.len() as u64 + 1);
            b.put_slice(s.as_bytes());
        }
    }
}

fn put_partitions(b: &mut BytesMut, a: &Assignment) {
    put_uvarint(b, a.len() as u64 + 1);
    for (topic, ps) in a {
        b.put_slice(topic.as_bytes());
        put_uvarint(b, ps.len() as u64 + 1);
        for p in ps {
            b.put_i32(*p);
        }
        put_uvarint(b, 0);
    }
}

fn value(write: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    write(&mut b);
    put_uvarint(&mut b, 0);
    b.freeze()
}

fn state_byte(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

impl ConsumerGroup {
    /// The group as its records: the group-level ones, and those of every member or
    /// only of `member`.
    pub fn record_view(&self, member: Option<&str>) -> BTreeMap<RecordKey, Bytes> {
        let mut out = BTreeMap::new();
        let hash = self.metadata_hash();
        let mut epoch = BytesMut::with_capacity(20);
        epoch.put_i16(0);
        epoch.put_i32(self.group_epoch);
        // One tagged field: tag 0, 8 bytes, the subscribed topics' metadata hash.
        epoch.put_slice(&[1, 0, 8]);
        epoch.put_i64(hash);
        out.insert((GROUP_EPOCH, String::new()), epoch.freeze());
        out.insert(
            (TARGET_EPOCH, String::new()),
            value(|b| b.put_i32(self.assignment_epoch)),
        );
        for m in self
            .members
            .values()
            .filter(|m| member.is_none_or(|id| id == m.member_id))
        {
            let id = m.member_id.clone();
            out.insert(
                (MEMBER_METADATA, id.clone()),
                value(|b| {
                    put_compact_string(b, m.instance_id.as_deref());
                    put_compact_string(b, m.rack_id.as_deref());
                    put_compact_string(b, Some(&m.client_id));
                    put_compact_string(b, Some(&m.client_host));
                    put_uvarint(b, m.subscribed_topic_names.len() as u64 + 1);
                    for t in &m.subscribed_topic_names {
                        put_compact_string(b, Some(t));
                    }
                    put_compact_string(b, m.subscribed_topic_regex.as_deref());
                    b.put_i32(m.rebalance_timeout_ms.clamp(-1, i32::MAX as i64) as i32);
                    put_compact_string(b, m.server_assignor.as_deref());
                }),
            );
            if let Some(t) = self.target.get(&id) {
                out.insert((TARGET_MEMBER, id.clone()), value(|b| put_partitions(b, t)));
            }
            out.insert(
                (CURRENT_ASSIGNMENT, id),
                value(|b| {
                    b.put_i32(m.member_epoch);
                    b.put_i32(m.previous_member_epoch);
                    b.put_i8(state_byte(m.state));
                    put_partitions(b, &m.assigned);
                    put_partitions(b, &m.pending_revocation);
                }),
            );
        }
        out
    }
}

/// Raw records for `__consumer_offsets`: key, and value or `None` for a tombstone.
pub type RawRecords = Vec<(Bytes, Option<Bytes>)>;

impl ConsumerGroup {
    /// The records to write since the last call: `member` names the only member an
    /// operation touched, `None` means any may have changed (or left: tombstones).
    pub fn take_changes(&mut self, member: Option<&str>) -> RawRecords {
        let member = if std::mem::take(&mut self.rewrite_all) {
            None
        } else {
            member
        };
        let view = self.record_view(member);
        let mut out: Vec<(RecordKey, Option<Bytes>)> = view
            .iter()
            .filter(|(k, v)| self.persisted.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        if member.is_none() {
            out.extend(
                self.persisted
                    .keys()
                    .filter(|k| !view.contains_key(*k))
                    .map(|k| (k.clone(), None)),
            );
        }
        for (k, v) in &out {
            match v {
                Some(v) => self.persisted.insert(k.clone(), v.clone()),
                None => self.persisted.remove(k),
            };
        }
        out.into_iter()
            .map(|(k, v)| (key_bytes(&self.group_id, &k), v))
            .collect()
    }

    /// A hash of the subscribed topics' metadata (names, ids, partition counts): stored
    /// with the group epoch, so a restart notices topics that changed meanwhile.
    pub fn metadata_hash(&self) -> i64 {
        let mut bytes = Vec::new();
        for (name, (id, partitions)) in &self.subscription_metadata {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(id.as_bytes());
            bytes.extend_from_slice(&partitions.to_be_bytes());
        }
        (i64::from(crate::log::record_batch::crc32c(&bytes)) << 32) | (bytes.len() as i64 & 0xffff_ffff)
    }

    /// After a failed write: what is on disk is unknown, so the next write is the whole
    /// group again.
    pub fn forget_persisted(&mut self) {
        self.persisted.clear();
        self.rewrite_all = true;
    }

    /// Tombstones for every record of the group (it is deleted): those written, those
    /// its members would have, and always the target and group epochs', the group
    /// epoch's last, as Kafka's `createGroupTombstoneRecords` ends. Always: after a
    /// failed write `persisted` is empty while the log may hold anything, and a loader
    /// drops the whole group at its epoch's tombstone, whatever came before it.
    pub fn tombstones(&self) -> RawRecords {
        let epochs = [(TARGET_EPOCH, String::new()), (GROUP_EPOCH, String::new())];
        let mut keys: BTreeSet<RecordKey> = self.persisted.keys().cloned().collect();
        keys.extend(self.record_view(None).into_keys());
        let mut keys: Vec<RecordKey> = keys.into_iter().filter(|k| !epochs.contains(k)).collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        keys.extend(epochs);
        keys.iter().map(|k| (key_bytes(&self.group_id, k), None)).collect()
    }

    /// The member a record read back belongs to, created on its first record.
    fn loaded_member(&mut self, id: &str) -> &mut super::consumer_group::ConsumerMember {
        let hb = super::consumer_group::ConsumerHeartbeat::default();
        self.members
            .entry(id.to_string())
            .or_insert_with(|| super::consumer_group::new_member(id, &hb))
    }

    /// Applies a record read back at start-up; `None` is a tombstone.
    pub fn apply(&mut self, key: &RecordKey, value: Option<RecordValue>) {
        let id = &key.1;
        match (key.0, value) {
            (GROUP_EPOCH, Some(RecordValue::GroupEpoch { epoch, metadata_hash })) => {
                self.group_epoch = epoch;
                self.loaded_metadata_hash = metadata_hash;
            }
            (TARGET_EPOCH, Some(RecordValue::Epoch(e))) => self.assignment_epoch = e,
            (MEMBER_METADATA, None) => drop(self.members.remove(id)),
            (TARGET_MEMBER, None) => drop(self.target.remove(id)),
            (TARGET_MEMBER, Some(RecordValue::Target(a))) => drop(self.target.insert(id.clone(), a)),
            (
                MEMBER_METADATA,
                Some(RecordValue::Member {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                    subscribed_topic_regex,
                    rebalance_timeout_ms,
                    server_assignor,
                }),
            ) => {
                let m = self.loaded_member(id);
                m.instance_id = instance_id;
                m.rack_id = rack_id;
                m.client_id = client_id;
                m.client_host = client_host;
                m.subscribed_topic_names = subscribed_topic_names.into_iter().collect();
                m.subscribed_topic_regex = subscribed_topic_regex;
                m.rebalance_timeout_ms = rebalance_timeout_ms as i64;
                m.server_assignor = server_assignor;
            }
            (
                CURRENT_ASSIGNMENT,
                Some(RecordValue::Current {
                    member_epoch,
                    previous_member_epoch,
                    state,
                    assigned,
                    pending_revocation,
                }),
            ) => {
                // After compaction this record may come before the member's metadata.
                let m = self.loaded_member(id);
                m.member_epoch = member_epoch;
                m.previous_member_epoch = previous_member_epoch;
                m.state = state;
                m.assigned = assigned;
                m.pending_revocation = pending_revocation;
            }
            _ => {}
        }
    }
}

/// A value read back, decoded enough to rebuild the group.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordValue {
    Epoch(i32),
    GroupEpoch {
        epoch: i32,
        metadata_hash: i64,
    },
    Member {
        instance_id: Option<String>,
        rack_id: Option<String>,
        client_id: String,
        client_host: String,
        subscribed_topic_names: Vec<String>,
        subscribed_topic_regex: Option<String>,
        rebalance_timeout_ms: i32,
        server_assignor: Option<String>,
    },
    Target(Assignment),
    Current {
        member_epoch: i32,
        previous_member_epoch: i32,
        state: MemberState,
        assigned: Assignment,
        pending_revocation: Assignment,
    },
}

/// Decodes a key of types 3, 5, 6, 7 or 8: `(group, (type, member id))`.
pub fn parse_key(mut k: Bytes) -> Option<(String, RecordKey)> {
    let kind = (k.remaining() >= 2).then(|| k.get_i16())?;
    let group = get_string(&mut k)?;
    let member = match kind {
        GROUP_EPOCH | TARGET_EPOCH => String::new(),
        MEMBER_METADATA | TARGET_MEMBER | CURRENT_ASSIGNMENT => get_string(&mut k)?,
        _ => return None,
    };
    Some((group, (kind, member)))
}

fn get_string(b: &mut Bytes) -> Option<String> {
    let len = usize::try_from((b.remaining() >= 2).then(|| b.get_i16())?).ok()?;
    (b.remaining() >= len).then(|| String::from_utf8_lossy(&b.split_to(len)).to_string())
}

fn get_uvarint(b: &mut Bytes) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = (b.remaining() >= 1).then(|| b.get_u8())?;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn get_compact_string(b: &mut Bytes) -> Option<Option<String>> {
    let n = usize::try_from(get_uvarint(b)?).ok()?;
    if n == 0 {
        return Some(None);
    }
    (b.remaining() > n - 1).then(|| Some(String::from_utf8_lossy(&b.split_to(n - 1)).to_string()))
}

fn get_i32(b: &mut Bytes) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

/// A compact array's length, refused when the bytes left cannot hold it.
fn get_array_len(b: &mut Bytes, min_entry_bytes: usize) -> Option<usize> {
    let n = usize::try_from(get_uvarint(b)?).ok()?.checked_sub(1)?;
    (n <= ARRAY_MAX && n.saturating_mul(min_entry_bytes) <= b.remaining()).then_some(n)
}

/// Reads the tagged fields, returning the i64 under `tag` (0 when absent).
fn get_tagged_i64(b: &mut Bytes, tag: u64) -> Option<i64> {
    let mut found = 0;
    for _ in 0..get_uvarint(b)? {
        let t = get_uvarint(b)?;
        let size = usize::try_from(get_uvarint(b)?).ok()?;
        let mut field = (b.remaining() >= size).then(|| b.split_to(size))?;
        if t == tag && size == 8 {
            found = field.get_i64();
        }
    }
    Some(found)
}

fn skip_tagged_fields(b: &mut Bytes) -> Option<()> {
    for _ in 0..get_uvarint(b)? {
        get_uvarint(b)?;
        let size = usize::try_from(get_uvarint(b)?).ok()?;
        (b.remaining() >= size).then(|| b.advance(size))?;
    }
    Some(())
}

fn get_partitions(b: &mut Bytes) -> Option<Assignment> {
    let mut out = Assignment::new();
    for _ in 0..get_array_len(b, 18)? {
        let id = Uuid::from_slice(&(b.remaining() >= 16).then(|| b.split_to(16))?).ok()?;
        let count = get_array_len(b, 4)?;
        let parts = out.entry(id).or_default();
        for _ in 0..count {
            parts.insert(get_i32(b)?);
        }
        skip_tagged_fields(b)?;
    }
    Some(out)
}

/// Decodes the value of a record of type `kind` (version 0).
pub fn parse_value(kind: i16, mut v: Bytes) -> Option<RecordValue> {
    if (v.remaining() >= 2).then(|| v.get_i16())? != 0 {
        return None;
    }
    let out = match kind {
        GROUP_EPOCH => {
            let epoch = get_i32(&mut v)?;
            let metadata_hash = get_tagged_i64(&mut v, 0)?;
            return Some(RecordValue::GroupEpoch { epoch, metadata_hash });
        }
        TARGET_EPOCH => RecordValue::Epoch(get_i32(&mut v)?),
        MEMBER_METADATA => {
            let instance_id = get_compact_string(&mut v)?;
            let rack_id = get_compact_string(&mut v)?;
            let client_id = get_compact_string(&mut v)?.unwrap_or_default();
            let client_host = get_compact_string(&mut v)?.unwrap_or_default();
            let mut subscribed_topic_names = Vec::new();
            for _ in 0..get_array_len(&mut v, 1)? {
                subscribed_topic_names.push(get_compact_string(&mut v)?.unwrap_or_default());
            }
            let subscribed_topic_regex = get_compact_string(&mut v)?;
            let rebalance_timeout_ms = get_i32(&mut v)?;
            let server_assignor = get_compact_string(&mut v)?;
            RecordValue::Member {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_topic_names,
                subscribed_topic_regex,
                rebalance_timeout_ms,
                server_assignor,
            }
        }
        TARGET_MEMBER => RecordValue::Target(get_partitions(&mut v)?),
        CURRENT_ASSIGNMENT => {
            let member_epoch = get_i32(&mut v)?;
            let previous_member_epoch = get_i32(&mut v)?;
            let state = match (v.remaining() >= 1).then(|| v.get_i8())? {
                0 => MemberState::Stable,
                1 => MemberState::UnrevokedPartitions,
                2 => MemberState::UnreleasedPartitions,
                _ => return None,
            };
            RecordValue::Current {
                member_epoch,
                previous_member_epoch,
                state,
                assigned: get_partitions(&mut v)?,
                pending_revocation: get_partitions(&mut v)?,
            }
        }
        _ => return None,
    };
    skip_tagged_fields(&mut v)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::Assignor;
    use crate::group::consumer_group::{ConsumerGroupLimits, ConsumerHeartbeat};

    /// Records written by difference rebuild the same group when read back.
    #[test]
    fn records_round_trip_through_apply() {
        let topic = Uuid::new_v4();
        let lookup = move |n: &str| (n == "t").then_some((topic, 5));
        let limits = ConsumerGroupLimits {
            max_size: 10,
            default_assignor: Assignor::Uniform,
        };
        let mut g = ConsumerGroup::new("g", Assignor::Uniform);
        let mut written: Vec<(Bytes, Option<Bytes>)> = Vec::new();
        for (id, instance) in [("a", None), ("b", Some("i-b".to_string()))] {
            let hb = ConsumerHeartbeat {
                group_id: "g".into(),
                member_id: id.into(),
                instance_id: instance,
                rebalance_timeout_ms: 1000,
                subscribed_topic_names: Some(vec!["t".into()]),
                owned: Some(Assignment::new()),
                ..Default::default()
            };
            let reply = g.heartbeat(&hb, 0, &limits, &lookup);
            assert_eq!(reply.error_code, 0);
            written.extend(g.take_changes(None));
        }
        assert!(g.take_changes(None).is_empty(), "nothing new to write");
        let mut loaded = ConsumerGroup::new("g", Assignor::Uniform);
        for (k, v) in written {
            let (group, key) = parse_key(k).expect("key");
            assert_eq!(group, "g");
            loaded.apply(&key, v.map(|v| parse_value(key.0, v).expect("value")));
        }
        loaded.refresh_subscription_metadata(&lookup);
        assert_eq!(
            loaded.loaded_metadata_hash,
            g.metadata_hash(),
            "the metadata hash is kept"
        );
        assert_eq!(loaded.record_view(None), g.record_view(None));
        assert_eq!(
            parse_value(TARGET_MEMBER, Bytes::from_static(b"\0\0\xff\xff\xff\xff\x0f")),
            None
        );
    }
}
