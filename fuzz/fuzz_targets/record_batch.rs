//! Any bytes as a produce request's records: validation returns an error or a batch
//! whose header describes bytes inside the input, and whose records' timestamps lie
//! within the rules.
#![no_main]
use broker::log::log_validator::{validate_produce_records, ValidationRules};
use broker::log::record_batch::BatchIter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = ValidationRules {
        max_message_bytes: 1 << 20,
        now_ms: 1_700_000_000_000,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        log_append_time: false,
        compacted: data.last().is_some_and(|b| b & 1 == 1),
    };
    if let Ok(b) = validate_produce_records(data, &rules) {
        assert!(b.position + b.header.size_bytes() <= data.len());
        assert!(b.records.max_timestamp <= rules.now_ms + rules.timestamp_after_max_ms);
        assert!(!rules.compacted || b.records.all_keyed);
    }
    for (pos, h) in BatchIter::new(data) {
        assert!(pos + h.size_bytes() <= data.len());
    }
});
