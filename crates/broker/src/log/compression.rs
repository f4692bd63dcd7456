//! Recompression, as Kafka's `LogValidator` does it when a topic's `compression.type`
//! is a codec and a producer's batch uses another: the batch is decoded and encoded
//! again with the topic's codec, keeping every record's offset delta, timestamp, key,
//! value and headers and the batch's producer id, epoch and base sequence.
//!
//! Decompression is bounded: a batch may not expand past `expanded_bytes_max`
//! (a small compressed batch must not become gigabytes in memory). Snappy's block
//! lengths are read from its headers before anything is allocated.

use super::log_validator::{self, RecordsSummary};
use super::record_batch::{self, BatchError, BatchHeader};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet};
use std::io::Read;

/// Byte 21 of a v2 batch holds its attributes; the low three bits are the codec.
const ATTRIBUTES_OFFSET: usize = 21;

/// Kafka's xerial-snappy framing header.
const SNAPPY_XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// The codec a topic's `compression.type` asks for; `None` for `producer`.
pub fn target_codec(compression_type: &str) -> Option<Compression> {
    match compression_type {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// The codec of a (validated) v2 batch.
pub fn batch_codec(batch: &[u8]) -> Option<Compression> {
    let attributes = *batch.get(ATTRIBUTES_OFFSET + 1)?;
    Some(match attributes & 0x07 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => return None,
    })
}

/// Limit: how many times its own size a stored batch may expand to when the broker
/// decodes it (recompression, compaction, a timestamp lookup); at least
/// `EXPANDED_BYTES_MIN`. Producers' batches are walked, not held, when validated (up to
/// `PRODUCE_EXPANDED_BYTES_MAX`), so a stored batch may expand to far more than this:
/// decoding it whole must stop, not allocate that.
pub const EXPANSION_MAX: usize = 64;
const EXPANDED_BYTES_MIN: usize = 1 << 20;

/// How many bytes a batch of `batch_bytes` may decode to (see `EXPANSION_MAX`).
pub fn expanded_bytes_max(batch_bytes: usize) -> usize {
    batch_bytes.saturating_mul(EXPANSION_MAX).max(EXPANDED_BYTES_MIN)
}

/// Decodes the batch at the front of `input` (consuming it), its records decompressed
/// to at most `expanded_bytes_max` bytes; past that, an error and nothing allocated
/// beyond the limit.
pub fn decode_bounded(input: &mut Bytes, expanded_bytes_max: usize) -> anyhow::Result<RecordSet> {
    let decompress = |compressed: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> {
        decompress_bounded(compressed, codec, expanded_bytes_max)
    };
    RecordBatchDecoder::decode_with_custom_compression(input, Some(decompress))
}

/// The levels gzip, lz4 and zstd compress at: the topic's `compression.*.level`
/// (KIP-390). Gzip's -1 is its library default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionLevels {
    pub gzip: i32,
    pub lz4: i32,
    pub zstd: i32,
}

impl CompressionLevels {
    pub fn of(config: &crate::config::TopicConfig) -> CompressionLevels {
        CompressionLevels {
            gzip: config.compression_gzip_level,
            lz4: config.compression_lz4_level,
            zstd: config.compression_zstd_level,
        }
    }
}

/// Decodes one validated batch and encodes it again with `target`, at `levels`, its
/// records' offset deltas (and sequences) in order, as Kafka's
/// `LogValidator.buildRecordsAndAssignOffsets` assigns them whatever the producer sent.
pub fn recompress(
    batch: &[u8],
    target: Compression,
    levels: CompressionLevels,
    expanded_bytes_max: usize,
) -> Result<Bytes, BatchError> {
    let invalid = |e: anyhow::Error| BatchError::Invalid(format!("recompressing: {e}"));
    let mut input = Bytes::copy_from_slice(batch);
    let mut set = decode_bounded(&mut input, expanded_bytes_max).map_err(invalid)?;
    let header = BatchHeader::parse(batch)?;
    for (i, record) in set.records.iter_mut().enumerate() {
        // One batch from these: the encoder starts another wherever offset minus
        // sequence changes, so both move together (a base sequence of -1 stays -1).
        record.offset = header.base_offset + i as i64;
        record.sequence = header.base_sequence.wrapping_add(i as i32);
    }
    let mut out = BytesMut::with_capacity(batch.len());
    let options = RecordEncodeOptions {
        version: 2,
        compression: target,
    };
    match target {
        Compression::Gzip | Compression::Lz4 | Compression::Zstd => {
            let compress = |records: &mut BytesMut, out: &mut BytesMut, codec: Compression| {
                compress_at(records, out, codec, levels)
            };
            RecordBatchEncoder::encode_with_custom_compression(&mut out, &set.records, &options, Some(compress))
        }
        Compression::None | Compression::Snappy => RecordBatchEncoder::encode(&mut out, &set.records, &options),
    }
    .map_err(invalid)?;
    Ok(out.freeze())
}

/// Compresses a batch's records with `codec` at its level in `levels`, in the framing
/// Kafka uses for each (gzip's stream, lz4's frame with independent blocks, zstd's
/// frame).
fn compress_at(
    records: &[u8],
    out: &mut BytesMut,
    codec: Compression,
    levels: CompressionLevels,
) -> anyhow::Result<()> {
    use bytes::BufMut;
    use std::io::Write;
    match codec {
        Compression::Gzip => {
            let level = match levels.gzip {
                -1 => flate2::Compression::default(),
                n => flate2::Compression::new(n.clamp(1, 9) as u32),
            };
            let mut e = flate2::write::GzEncoder::new(out.writer(), level);
            e.write_all(records)?;
            e.finish()?;
        }
        Compression::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(levels.lz4.clamp(1, 17) as u32)
                .block_mode(lz4::BlockMode::Independent)
                .build(out.writer())?;
            e.write_all(records)?;
            let (_, finished) = e.finish();
            finished?;
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out.writer(), levels.zstd)?;
            e.write_all(records)?;
            e.finish()?;
        }
        other => anyhow::bail!("no level for {other:?}"),
    }
    Ok(())
}

/// Limit: how many bytes a produced batch's records may decompress to while they are
/// validated (`walk_compressed_records`). Kafka decompresses every produced batch with
/// no limit; this one bounds the CPU a single batch may take on a network thread (about
/// 0.1-0.5 s, by codec) and refuses only data no real producer sends (a 1 MiB batch
/// expanding 256 times). Memory is not the reason: the walk holds only the decoder's
/// window.
pub const PRODUCE_EXPANDED_BYTES_MAX: u64 = 256 << 20;

/// Walks the records of the compressed batch `batch` (validated up to its records,
/// `header` its header) as they are decompressed, as Kafka's `LogValidator` decompresses
/// every produced batch: a stream that does not decompress is CORRUPT_MESSAGE, one that
/// expands past `PRODUCE_EXPANDED_BYTES_MAX` INVALID_RECORD. Snappy, whose expansion is
/// at most about 21 times, is decompressed whole within `expanded_bytes_max`.
pub fn walk_compressed_records(
    batch: &[u8],
    header: &BatchHeader,
    visit: impl FnMut(log_validator::RecordFields),
) -> Result<RecordsSummary, BatchError> {
    let data = &batch[record_batch::BATCH_HEADER_BYTES..];
    let corrupt = |e: std::io::Error| BatchError::Corrupt(format!("decompressing: {e}"));
    let stream: Box<dyn Read + '_> = match batch_codec(batch) {
        Some(Compression::Gzip) => Box::new(flate2::read::GzDecoder::new(data)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::new(data).map_err(corrupt)?),
        Some(Compression::Lz4) => Box::new(lz4::Decoder::new(data).map_err(corrupt)?),
        Some(Compression::Snappy) => {
            let records = snappy_bounded(data, expanded_bytes_max(batch.len()))
                .map_err(|e| BatchError::Corrupt(format!("decompressing: {e}")))?;
            return log_validator::walk_records_visiting(header, &records[..], visit);
        }
        Some(Compression::None) => return log_validator::walk_records_visiting(header, data, visit),
        None => return Err(BatchError::Invalid("unknown compression codec".into())),
    };
    let mut reader = std::io::BufReader::new(stream.take(PRODUCE_EXPANDED_BYTES_MAX));
    let walked = log_validator::walk_record_stream(header, &mut reader, visit);
    if walked.is_err() && reader.get_ref().limit() == 0 {
        return Err(BatchError::Invalid(format!(
            "the batch's records expand past {PRODUCE_EXPANDED_BYTES_MAX} bytes"
        )));
    }
    walked
}

fn decompress_bounded(compressed: &mut Bytes, codec: Compression, max: usize) -> anyhow::Result<Bytes> {
    let data = compressed.copy_to_bytes(compressed.remaining());
    let limit = max as u64 + 1;
    let mut out = Vec::new();
    match codec {
        Compression::None => return Ok(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(&data[..])
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(&data[..])?
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Lz4 => {
            lz4::Decoder::new(&data[..])?.take(limit).read_to_end(&mut out)?;
        }
        Compression::Snappy => out = snappy_bounded(&data, max)?,
    }
    if out.len() > max {
        anyhow::bail!("batch expands past {max} bytes");
    }
    Ok(Bytes::from(out))
}

/// Raw snappy, or Kafka's xerial framing: `magic(8) version(4) compat(4)`, then blocks
/// of `length(4) raw-snappy`.
fn snappy_bounded(data: &[u8], max: usize) -> anyhow::Result<Vec<u8>> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> anyhow::Result<()> {
        let len = snap::raw::decompress_len(block)?;
        if out.len() + len > max {
            anyhow::bail!("batch expands past {max} bytes");
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new().decompress(block, &mut out[start..])?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(SNAPPY_XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data.get(16..).ok_or_else(|| anyhow::anyhow!("short snappy header"))?;
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let block = len
            .and_then(|n| rest.get(4..4 + n))
            .ok_or_else(|| anyhow::anyhow!("truncated snappy block"))?;
        raw(block, &mut out)?;
        rest = &rest[4 + block.len()..];
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::records::{Record, TimestampType};

    /// A valid zstd batch (header and CRC right, one record claimed) whose records
    /// section is `expanded_bytes` of zeros in a few kilobytes: what a producer may
    /// store, since Fjord, as Kafka, keeps a producer's compressed batch as it came.
    pub(crate) fn zstd_bomb(expanded_bytes: usize, timestamp: i64) -> Vec<u8> {
        use crate::log::record_batch::{compute_crc, BATCH_HEADER_BYTES, LOG_OVERHEAD};
        use std::io::Write;
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..expanded_bytes.div_ceil(zeros.len()) {
            encoder.write_all(&zeros).expect("compress");
        }
        let compressed = encoder.finish().expect("zstd");
        let mut b = vec![0u8; BATCH_HEADER_BYTES];
        let length = (BATCH_HEADER_BYTES - LOG_OVERHEAD + compressed.len()) as i32;
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[16] = 2;
        b[21..23].copy_from_slice(&4i16.to_be_bytes());
        b[27..35].copy_from_slice(&timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&timestamp.to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[57..61].copy_from_slice(&1i32.to_be_bytes());
        b.extend(compressed);
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn a_bomb_decodes_to_an_error_not_an_allocation() {
        let bomb = zstd_bomb(256 << 20, 1_000);
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let mut input = Bytes::from(bomb.clone());
        let limit = expanded_bytes_max(bomb.len());
        assert!(limit < 8 << 20, "{limit}");
        assert!(decode_bounded(&mut input, limit).is_err());
    }

    fn batch(value: Bytes, codec: Compression) -> Bytes {
        let record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: 3,
            timestamp: 1,
            key: Some(Bytes::from_static(b"k")),
            value: Some(value),
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut out, [record].iter(), &options).expect("encode");
        out.freeze()
    }

    const DEFAULT_LEVELS: CompressionLevels = CompressionLevels {
        gzip: -1,
        lz4: 9,
        zstd: 3,
    };

    /// The topic's level is the one used: each codec at its lowest and highest level
    /// reads back the same records, the highest no larger than the lowest (and for
    /// gzip and zstd on text, strictly smaller).
    #[test]
    fn recompression_uses_the_topics_levels() {
        let text: String = (0..20_000)
            .map(|i| format!("record {} of a text log, ", i * 7919 % 10007))
            .collect();
        let source = batch(Bytes::from(text.clone()), Compression::None);
        for (codec, low, high) in [
            (
                Compression::Gzip,
                CompressionLevels {
                    gzip: 1,
                    ..DEFAULT_LEVELS
                },
                CompressionLevels {
                    gzip: 9,
                    ..DEFAULT_LEVELS
                },
            ),
            (
                Compression::Lz4,
                CompressionLevels {
                    lz4: 1,
                    ..DEFAULT_LEVELS
                },
                CompressionLevels {
                    lz4: 17,
                    ..DEFAULT_LEVELS
                },
            ),
            (
                Compression::Zstd,
                CompressionLevels {
                    zstd: -5,
                    ..DEFAULT_LEVELS
                },
                CompressionLevels {
                    zstd: 19,
                    ..DEFAULT_LEVELS
                },
            ),
        ] {
            let small = recompress(&source, codec, high, 4 << 20).expect("high level");
            let large = recompress(&source, codec, low, 4 << 20).expect("low level");
            assert!(
                small.len() <= large.len(),
                "{codec:?}: {} > {}",
                small.len(),
                large.len()
            );
            if codec != Compression::Lz4 {
                assert!(small.len() < large.len(), "{codec:?}: the level made no difference");
            }
            for b in [small, large] {
                assert_eq!(batch_codec(&b), Some(codec));
                let set = RecordBatchDecoder::decode(&mut b.clone()).expect("decodes");
                assert_eq!(set.records[0].value.as_deref(), Some(text.as_bytes()));
            }
        }
    }

    /// A compressed batch claiming 2^31-1 records may not reserve memory for them.
    #[test]
    fn a_huge_record_count_is_an_error_not_an_allocation() {
        let mut b = BytesMut::from(&batch(Bytes::from(vec![0u8; 64 << 10]), Compression::Gzip)[..]);
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crate::log::record_batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(recompress(&b, Compression::Zstd, DEFAULT_LEVELS, 64 << 20).is_err());
    }

    #[test]
    fn recompresses_and_refuses_a_bomb() {
        let zeros = Bytes::from(vec![0u8; 1 << 20]);
        let gzip = batch(zeros, Compression::Gzip);
        assert!(gzip.len() < 16 << 10, "a megabyte of zeros compresses well");
        assert!(
            recompress(&gzip, Compression::Zstd, DEFAULT_LEVELS, 64 << 10).is_err(),
            "expands past the limit"
        );
        let zstd = recompress(&gzip, Compression::Zstd, DEFAULT_LEVELS, 2 << 20).expect("recompressed");
        assert!(matches!(batch_codec(&zstd), Some(Compression::Zstd)));
        let mut again = zstd.clone();
        let set = RecordBatchDecoder::decode(&mut again).expect("decodes");
        assert_eq!((set.records[0].producer_id, set.records[0].sequence), (7, 3));
        assert_eq!(set.records[0].value.as_ref().map(|v| v.len()), Some(1 << 20));
    }
}
