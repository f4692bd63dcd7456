//! Committed offsets and their records in `__consumer_offsets`, in Kafka's formats:
//!
//! ```text
//! offset commit key   (version 1): version i16, group string, topic string, partition i32
//! offset commit value (version 3): version i16, offset i64, leader_epoch i32,
//!                                  metadata string, commit_timestamp i64
//! group metadata key  (version 2): version i16, group string
//! group metadata value (version 3): version i16, protocol_type string, generation i32,
//!     protocol nullable string, leader nullable string, current_state_timestamp i64,
//!     [member_id string, group_instance_id nullable string, client_id string,
//!      client_host string, rebalance_timeout i32, session_timeout i32,
//!      subscription bytes, assignment bytes]
//! ```
//! A null value is a tombstone (offsets or group deleted). Strings are
//! i16-length-prefixed (-1: null); bytes i32-length-prefixed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// `(topic, partition) -> committed offset` of one group.
pub type GroupOffsets = BTreeMap<(String, i32), OffsetAndMetadata>;

fn put_string(b: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    b.put_i16(len as i16);
    b.put_slice(&s.as_bytes()[..len]);
}

fn get_string(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = b.get_i16();
    if len < 0 {
        return Some(String::new());
    }
    if b.remaining() < len as usize {
        return None;
    }
    String::from_utf8(b.split_to(len as usize).to_vec()).ok()
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + group.len() + topic.len());
    b.put_i16(1);
    put_string(&mut b, group);
    put_string(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn offset_value(o: &OffsetAndMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(32 + o.metadata.len());
    b.put_i16(3);
    b.put_i64(o.offset);
    b.put_i32(o.leader_epoch);
    put_string(&mut b, &o.metadata);
    b.put_i64(o.commit_timestamp_ms);
    b.freeze()
}

/// A record read back from `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq)]
pub enum OffsetsRecord {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetAndMetadata>,
    },
    GroupMetadata {
        group: String,
        value: Option<GroupMetadataValue>,
    },
}

/// A classic group as stored: what Kafka writes when a generation completes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadataValue>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// Members one stored group may hold: a limit on what a record can make us allocate.
const MEMBERS_MAX: usize = 100_000;

pub fn group_metadata_key(group: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + group.len());
    b.put_i16(2);
    put_string(&mut b, group);
    b.freeze()
}

fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len().min(i32::MAX as usize) as i32);
    b.put_slice(v);
}

pub fn group_metadata_value(g: &GroupMetadataValue) -> Bytes {
    let mut b = BytesMut::with_capacity(64 + g.members.len() * 128);
    b.put_i16(3);
    put_string(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable_string(&mut b, g.protocol.as_deref());
    put_nullable_string(&mut b, g.leader.as_deref());
    b.put_i64(g.current_state_timestamp_ms);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_string(&mut b, &m.member_id);
        put_nullable_string(&mut b, m.group_instance_id.as_deref());
        put_string(&mut b, &m.client_id);
        put_string(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

fn get_nullable_string(b: &mut Bytes) -> Option<Option<String>> {
    if b.remaining() < 2 {
        return None;
    }
    if i16::from_be_bytes([b[0], b[1]]) < 0 {
        b.advance(2);
        return Some(None);
    }
    get_string(b).map(Some)
}

fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    if b.remaining() < 4 {
        return None;
    }
    let len = b.get_i32();
    if len < 0 {
        return Some(Bytes::new());
    }
    (b.remaining() >= len as usize).then(|| b.split_to(len as usize))
}

fn get_i32(b: &mut Bytes) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

/// Versions 0-3 (the non-flexible ones); `None` for anything else or a short value.
fn parse_group_metadata_value(mut v: Bytes) -> Option<GroupMetadataValue> {
    if v.remaining() < 2 {
        return None;
    }
    let version = v.get_i16();
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = get_string(&mut v)?;
    let generation = get_i32(&mut v)?;
    let protocol = get_nullable_string(&mut v)?;
    let leader = get_nullable_string(&mut v)?;
    let current_state_timestamp_ms = if version >= 2 {
        (v.remaining() >= 8).then(|| v.get_i64())?
    } else {
        -1
    };
    let count = usize::try_from(get_i32(&mut v)?).ok()?.min(MEMBERS_MAX);
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = get_string(&mut v)?;
        let group_instance_id = if version >= 3 {
            get_nullable_string(&mut v)?
        } else {
            None
        };
        let client_id = get_string(&mut v)?;
        let client_host = get_string(&mut v)?;
        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut v)? } else { -1 };
        let session_timeout_ms = get_i32(&mut v)?;
        let subscription = get_bytes(&mut v)?;
        let assignment = get_bytes(&mut v)?;
        members.push(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

pub fn parse_record(key: Option<&Bytes>, value: Option<&Bytes>) -> Option<OffsetsRecord> {
    let mut k = key?.clone();
    if k.remaining() < 2 {
        return None;
    }
    match k.get_i16() {
        0 | 1 => {
            let group = get_string(&mut k)?;
            let topic = get_string(&mut k)?;
            if k.remaining() < 4 {
                return None;
            }
            let partition = k.get_i32();
            let value = match value {
                None => None,
                Some(v) => Some(parse_value(v.clone())?),
            };
            Some(OffsetsRecord::Commit {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => Some(OffsetsRecord::GroupMetadata {
            group: get_string(&mut k)?,
            value: match value {
                None => None,
                Some(v) => Some(parse_group_metadata_value(v.clone())?),
            },
        }),
        _ => None,
    }
}

fn parse_value(mut v: Bytes) -> Option<OffsetAndMetadata> {
    if v.remaining() < 2 {
        return None;
    }
    let version = v.get_i16();
    if v.remaining() < 8 {
        return None;
    }
    let offset = v.get_i64();
    let leader_epoch = if version >= 3 && v.remaining() >= 4 {
        v.get_i32()
    } else {
        -1
    };
    let metadata = get_string(&mut v)?;
    let commit_timestamp_ms = if v.remaining() >= 8 { v.get_i64() } else { -1 };
    Some(OffsetAndMetadata {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_record_round_trips() {
        let o = OffsetAndMetadata {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 7,
        };
        let k = offset_key("g", "t", 1);
        let v = offset_value(&o);
        assert_eq!(
            parse_record(Some(&k), Some(&v)),
            Some(OffsetsRecord::Commit {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
                value: Some(o)
            })
        );
        let g = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 9,
            members: vec![MemberMetadataValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let gk = group_metadata_key("g");
        assert_eq!(
            parse_record(Some(&gk), Some(&group_metadata_value(&g))),
            Some(OffsetsRecord::GroupMetadata {
                group: "g".into(),
                value: Some(g)
            })
        );
        assert_eq!(
            parse_record(Some(&k), None),
            Some(OffsetsRecord::Commit {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
                value: None
            })
        );
    }
}
