//! Committed offsets and their records in `__consumer_offsets`, in Kafka's formats:
//!
//! ```text
//! offset commit key   (version 1): version i16, group string, topic string, partition i32
//! offset commit value (version 3): version i16, offset i64, leader_epoch i32,
//!                                  metadata string, commit_timestamp i64
//! group metadata key  (version 2): version i16, group string
//! ```
//! A null value is a tombstone (offsets deleted). Strings are i16-length-prefixed.

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
    },
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
