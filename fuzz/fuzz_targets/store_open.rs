//! Opening a store whose only WAL file holds arbitrary bytes after a valid header: the
//! engine's batch decoder and recovery must return a result, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata::{Db, Metric, Options};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    drop(Db::open(dir.path(), Options::new(4, Metric::L2)).unwrap());
    let wal = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    let salt = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    // Frame the fuzz input as one record so the batch decoder sees it.
    let mut rec = Vec::new();
    let count = data.first().copied().unwrap_or(1).max(1) as u32;
    strata_wal::record::encode_record(&mut rec, salt, 1, count, 1, 32, data).unwrap();
    bytes.extend_from_slice(&rec);
    std::fs::write(&wal, &bytes).unwrap();
    if let Ok(db) = Db::open(dir.path(), Options::existing()) {
        let _ = db.search(&[0.0; 4], &strata::SearchOptions::new(3));
    }
});
