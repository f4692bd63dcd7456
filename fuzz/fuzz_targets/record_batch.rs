//! Any bytes as a produce request's records: validation returns an error or batches
//! whose headers describe bytes inside the input.
#![no_main]
use broker::log::record_batch::{validate_produce_records, BatchIter, ValidationRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = ValidationRules {
        max_message_bytes: 1 << 20,
        now_ms: 1_700_000_000_000,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        log_append_time: false,
    };
    if let Ok(batches) = validate_produce_records(data, &rules) {
        for b in batches {
            assert!(b.position + b.header.size_bytes() <= data.len());
        }
    }
    for (pos, h) in BatchIter::new(data) {
        assert!(pos + h.size_bytes() <= data.len());
    }
});
