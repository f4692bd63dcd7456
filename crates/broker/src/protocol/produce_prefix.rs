//! Where a Produce request's records sit in its frame, read from the frame's first
//! bytes before the rest has arrived. Why: the connection can then place the frame in
//! memory so that the records line up with the blocks of the partition's O_DIRECT
//! appends, and the log writes them from the request buffer without a copy
//! (`log::direct_io`). Only the fields before the records are read, with
//! `kafka-protocol`'s primitive codecs; the request is decoded as usual afterwards.

use bytes::Buf;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

/// The one partition a Produce request writes to, and where its records are.
#[derive(Debug, PartialEq, Eq)]
pub struct ProduceRecordsPosition {
    pub topic: String,
    pub partition: i32,
    /// From the frame's first byte (after the 4-byte size).
    pub records_offset: usize,
    pub records_bytes: usize,
}

/// `None` unless `prefix` begins a Produce request of a version Fjord serves, for
/// exactly one partition of one topic, and holds every field before that partition's
/// records. The header is decoded by `kafka-protocol`; the few body fields after it
/// by hand (the crate decodes whole messages only).
pub fn records_position(prefix: &[u8]) -> Option<ProduceRecordsPosition> {
    if prefix.len() < 4 || i16::from_be_bytes([prefix[0], prefix[1]]) != ApiKey::Produce as i16 {
        return None;
    }
    let version = i16::from_be_bytes([prefix[2], prefix[3]]);
    let (min, max) = super::supported_versions(ApiKey::Produce)?;
    if !(min..=max).contains(&version) {
        return None;
    }
    // Read in place: the prefix is not copied.
    let mut buf: &[u8] = prefix;
    RequestHeader::decode(&mut buf, ApiKey::Produce.request_header_version(version)).ok()?;
    let flexible = version >= 9;
    let _transactional_id = string(&mut buf, flexible)?;
    let _acks = get(&mut buf, Buf::get_i16)?;
    let _timeout_ms = get(&mut buf, Buf::get_i32)?;
    if array_len(&mut buf, flexible)? != 1 {
        return None;
    }
    let topic = string(&mut buf, flexible)??;
    if array_len(&mut buf, flexible)? != 1 {
        return None;
    }
    let partition = get(&mut buf, Buf::get_i32)?;
    let records_bytes = match flexible {
        true => unsigned_varint(&mut buf)?.checked_sub(1)? as usize,
        false => usize::try_from(get(&mut buf, Buf::get_i32)?).ok()?,
    };
    Some(ProduceRecordsPosition {
        topic: std::str::from_utf8(topic).ok()?.to_owned(),
        partition,
        records_offset: prefix.len() - buf.remaining(),
        records_bytes,
    })
}

/// A fixed-size field, if the prefix holds it.
fn get<'a, T>(buf: &mut &'a [u8], read: fn(&mut &'a [u8]) -> T) -> Option<T> {
    (buf.remaining() >= std::mem::size_of::<T>()).then(|| read(buf))
}

/// An unsigned varint of at most 5 bytes.
fn unsigned_varint(buf: &mut &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for i in 0..5 {
        let b = get(buf, Buf::get_u8)?;
        value |= ((b & 0x7f) as u32) << (i * 7);
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

/// A nullable string's bytes, compact (length + 1 as a varint) or with an `i16` length.
fn string<'a>(buf: &mut &'a [u8], flexible: bool) -> Option<Option<&'a [u8]>> {
    let len = match flexible {
        true => unsigned_varint(buf)? as i64 - 1,
        false => get(buf, Buf::get_i16)? as i64,
    };
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    let (field, rest) = buf.split_at_checked(len)?;
    *buf = rest;
    Some(Some(field))
}

/// An array's element count: compact (`n + 1` as a varint) or an `i32`.
fn array_len(buf: &mut &[u8], flexible: bool) -> Option<i64> {
    match flexible {
        true => Some(unsigned_varint(buf)? as i64 - 1),
        false => Some(get(buf, Buf::get_i32)? as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame(version: i16, partitions: i32) -> (Vec<u8>, Bytes) {
        let records = Bytes::from(vec![7u8; 3000]);
        let data = (0..partitions)
            .map(|i| {
                PartitionProduceData::default()
                    .with_index(i + 4)
                    .with_records(Some(records.clone()))
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_data(data)]);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("rdkafka")));
        let mut out = bytes::BytesMut::new();
        header
            .encode(&mut out, ApiKey::Produce.request_header_version(version))
            .expect("header");
        req.encode(&mut out, version).expect("body");
        (out.to_vec(), records)
    }

    /// Every served version, flexible or not: the offset found is where the records are.
    #[test]
    fn finds_the_records_of_a_single_partition_request() {
        for version in [3, 8, 9, 12] {
            let (frame, records) = frame(version, 1);
            let pos = records_position(&frame[..200]).expect("position");
            assert_eq!((pos.topic.as_str(), pos.partition), ("orders", 4));
            assert_eq!(pos.records_bytes, records.len());
            assert_eq!(
                &frame[pos.records_offset..pos.records_offset + records.len()],
                &records[..]
            );
        }
    }

    /// Two partitions, another API, a version Fjord refuses, a cut-off prefix: no answer.
    #[test]
    fn anything_else_has_no_position() {
        let (two, _) = frame(9, 2);
        assert!(records_position(&two).is_none());
        let (mut other, _) = frame(9, 1);
        other[1] = 1; // Fetch
        assert!(records_position(&other).is_none());
        let (mut old, _) = frame(9, 1);
        old[3] = 2; // Produce v2
        assert!(records_position(&old).is_none());
        let (cut, _) = frame(9, 1);
        assert!(records_position(&cut[..20]).is_none());
        assert!(records_position(&[]).is_none());
    }
}
