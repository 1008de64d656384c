//! Segment open, verify, id lookup and payload reads over arbitrary bytes: never panic,
//! never read out of bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::{MappedBytes, SegmentReader};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("000001.seg");
    std::fs::write(&path, data).unwrap();
    let Ok(bytes) = MappedBytes::open(&path) else { return };
    if let Ok(seg) = SegmentReader::from_bytes(&path, bytes) {
        let _ = seg.verify();
        let rows = seg.rows().min(1000);
        for row in 0..rows {
            let _ = seg.vector(row);
            let _ = seg.payload(row);
        }
        if let Some(&id) = seg.ids().first() {
            let _ = seg.find(id);
        }
    }
});
