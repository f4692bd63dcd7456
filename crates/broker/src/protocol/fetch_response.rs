//! The Fetch response, framed by hand so record data never passes through user space:
//! the header fields are encoded into small buffers and each partition's records are a
//! `FileRecords` slice the connection sends with sendfile(2), as Kafka does.
//!
//! Layout (FetchResponse v4-v16; flexible from v12, topic ids from v13):
//! ```text
//! throttle_time_ms i32 | error_code i16 (v7+) | session_id i32 (v7+)
//! responses[]: topic string (<v13) | topic_id uuid (v13+)
//!   partitions[]: partition_index i32, error_code i16, high_watermark i64,
//!     last_stable_offset i64, log_start_offset i64 (v5+),
//!     aborted_transactions[]? (producer_id i64, first_offset i64),
//!     preferred_read_replica i32 (v11+), records bytes?,
//!     tagged fields (v12+): 0 = diverging_epoch (epoch i32, end_offset i64, tags)
//!   tagged fields (v12+)
//! tagged fields (v12+)
//! ```
//! A unit test checks every version byte for byte against the codec crate.

use crate::log::FileRecords;
use bytes::{BufMut, Bytes, BytesMut};

/// One piece of a response: bytes in memory, or a slice of a segment file.
#[derive(Debug, Clone)]
pub enum ResponseChunk {
    Bytes(Bytes),
    File(FileRecords),
}

#[derive(Debug, Clone)]
pub struct FetchPartitionData {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `Some(empty)` for read_committed fetches (no transactions to abort yet).
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// `(epoch, end_offset)` where the fetcher's log diverges from this one (v12+):
    /// the fetcher truncates to it (Kafka's `divergingEpoch`).
    pub diverging_epoch: Option<(i32, i64)>,
    pub records: FileRecords,
}

#[derive(Debug, Clone)]
pub struct FetchTopicData {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<FetchPartitionData>,
}

#[derive(Debug, Clone, Default)]
pub struct FetchResponseData {
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopicData>,
}

struct Writer {
    flexible: bool,
    chunks: Vec<ResponseChunk>,
    buf: BytesMut,
}

impl Writer {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }
    fn len(&mut self, n: usize) {
        if self.flexible {
            self.uvarint(n as u64 + 1);
        } else {
            self.buf.put_i32(n as i32);
        }
    }
    fn null(&mut self) {
        if self.flexible {
            self.uvarint(0);
        } else {
            self.buf.put_i32(-1);
        }
    }
    fn string(&mut self, s: &str) {
        if self.flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.buf.put_i16(s.len() as i16);
        }
        self.buf.put_slice(s.as_bytes());
    }
    fn tags(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }
    /// A partition's tagged fields: only `diverging_epoch` (tag 0) is ever sent.
    fn partition_tags(&mut self, p: &FetchPartitionData) {
        if !self.flexible {
            return;
        }
        let Some((epoch, end_offset)) = p.diverging_epoch else {
            return self.uvarint(0);
        };
        self.uvarint(1); // one tagged field
        self.uvarint(0); // its tag
        self.uvarint(4 + 8 + 1); // its size: epoch, end_offset, no tags of its own
        self.buf.put_i32(epoch);
        self.buf.put_i64(end_offset);
        self.uvarint(0);
    }
    fn file(&mut self, records: &FileRecords) {
        if records.is_empty() {
            return;
        }
        let head = self.buf.split().freeze();
        self.chunks.push(ResponseChunk::Bytes(head));
        self.chunks.push(ResponseChunk::File(records.clone()));
    }
}

/// Encodes the response (header included, size prefix first) as chunks.
pub fn encode(version: i16, correlation_id: i32, data: &FetchResponseData) -> (Vec<ResponseChunk>, usize) {
    let flexible = version >= 12;
    let mut w = Writer {
        flexible,
        chunks: Vec::new(),
        buf: BytesMut::with_capacity(256),
    };
    w.buf.put_i32(0); // size, patched below
    w.buf.put_i32(correlation_id);
    w.tags(); // response header v1 for flexible versions
    w.buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        w.buf.put_i16(data.error_code);
        w.buf.put_i32(data.session_id);
    }
    w.len(data.topics.len());
    for t in &data.topics {
        if version >= 13 {
            w.buf.put_slice(t.topic_id.as_bytes());
        } else {
            w.string(&t.name);
        }
        w.len(t.partitions.len());
        for p in &t.partitions {
            w.buf.put_i32(p.partition_index);
            w.buf.put_i16(p.error_code);
            w.buf.put_i64(p.high_watermark);
            w.buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.buf.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None => w.null(),
                Some(list) => {
                    w.len(list.len());
                    for (producer_id, first_offset) in list {
                        w.buf.put_i64(*producer_id);
                        w.buf.put_i64(*first_offset);
                        w.tags();
                    }
                }
            }
            if version >= 11 {
                w.buf.put_i32(-1); // preferred_read_replica
            }
            w.len(p.records.len() as usize);
            w.file(&p.records);
            w.partition_tags(p);
        }
        w.tags();
    }
    w.tags();
    let tail = w.buf.split().freeze();
    w.chunks.push(ResponseChunk::Bytes(tail));
    let total: usize = w
        .chunks
        .iter()
        .map(|c| match c {
            ResponseChunk::Bytes(b) => b.len(),
            ResponseChunk::File(f) => f.len() as usize,
        })
        .sum();
    // Patch the size prefix in the first chunk.
    if let Some(ResponseChunk::Bytes(first)) = w.chunks.first_mut() {
        let mut b = BytesMut::from(&first[..]);
        b[0..4].copy_from_slice(&((total - 4) as i32).to_be_bytes());
        *first = b.freeze();
    }
    (w.chunks, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::FileRecords;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchResponse, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use std::io::Write;

    #[test]
    fn matches_the_codec_crate_byte_for_byte_in_every_version() {
        let dir = std::env::temp_dir().join(format!("fjord-fetch-enc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data");
        let payload = b"0123456789abcdefghij";
        std::fs::File::create(&path).unwrap().write_all(payload).unwrap();
        let file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
        let id = uuid::Uuid::new_v4();
        for version in 4..=16i16 {
            for aborted in [None, Some(vec![])] {
                let records = FileRecords::new(file.clone(), 3, 10);
                let data = FetchResponseData {
                    error_code: 0,
                    session_id: 0,
                    topics: vec![FetchTopicData {
                        name: "topic-a".into(),
                        topic_id: id,
                        partitions: vec![
                            FetchPartitionData {
                                partition_index: 0,
                                error_code: 0,
                                high_watermark: 42,
                                last_stable_offset: 42,
                                log_start_offset: 7,
                                aborted_transactions: aborted.clone(),
                                diverging_epoch: None,
                                records,
                            },
                            FetchPartitionData {
                                partition_index: 1,
                                error_code: 1,
                                high_watermark: 5,
                                last_stable_offset: 5,
                                log_start_offset: 0,
                                aborted_transactions: aborted.clone(),
                                diverging_epoch: (version >= 12).then_some((3, 17)),
                                records: FileRecords::empty(),
                            },
                        ],
                    }],
                };
                let (chunks, total) = encode(version, 99, &data);
                let mut mine = Vec::new();
                for c in chunks {
                    match c {
                        ResponseChunk::Bytes(b) => mine.extend_from_slice(&b),
                        ResponseChunk::File(f) => mine.extend_from_slice(&f.read_to_bytes().unwrap()),
                    }
                }
                assert_eq!(mine.len(), total);
                let part = |i: i32, err: i16, hw: i64, lso: i64, recs: &[u8]| {
                    let mut p = PartitionData::default()
                        .with_partition_index(i)
                        .with_error_code(err)
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(if version >= 5 { lso } else { -1 })
                        .with_records(Some(Bytes::copy_from_slice(recs)));
                    p.aborted_transactions = aborted.clone().map(|_| Vec::new());
                    p
                };
                let mut diverged = part(1, 1, 5, 0, b"");
                if version >= 12 {
                    diverged.diverging_epoch = EpochEndOffset::default().with_epoch(3).with_end_offset(17);
                }
                let mut topic = FetchableTopicResponse::default()
                    .with_partitions(vec![part(0, 0, 42, 7, &payload[3..13]), diverged]);
                if version >= 13 {
                    topic.topic_id = id;
                } else {
                    topic.topic = TopicName(StrBytes::from_static_str("topic-a"));
                }
                let expected = crate::protocol::encode_response(
                    ApiKey::Fetch,
                    version,
                    99,
                    &ResponseKind::Fetch(FetchResponse::default().with_responses(vec![topic])),
                )
                .unwrap();
                assert_eq!(mine, expected.to_vec(), "version {version} aborted {aborted:?}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
