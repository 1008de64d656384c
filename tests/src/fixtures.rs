//! The content of the fixture stores this build writes (`tests/fixtures/README.md`), so
//! that the tests that open them and the program that writes them agree.

use strata::{Db, Metric, Options, WriteBatch};

/// The vector of `id` in every fixture store.
pub fn vector(id: u64) -> Vec<f32> {
    (0..8u64)
        .map(|j| ((id * 31 + j * 7) % 97) as f32 / 97.0 - 0.5)
        .collect()
}

/// The text of `id` in `store-v6-text` (words an English stemmer folds, Cyrillic, CJK;
/// none on multiples of 7).
pub fn v6_text(id: u64) -> Option<String> {
    const TOPICS: [&str; 5] = [
        "mounting file systems",
        "the network sockets",
        "память процесса",
        "北京 kernel modules",
        "signals and pipes",
    ];
    (!id.is_multiple_of(7)).then(|| format!("record {id} about {}", TOPICS[id as usize % 5]))
}

/// The live records of `store-v6-text`: ids 0..340 but 10..20.
pub fn v6_live(id: u64) -> bool {
    id < 340 && !(10..20).contains(&id)
}

/// Writes `store-v6-text` into `dir` (which must not hold a store): an `english`-analyzer
/// store of 8-d L2 vectors, ids 0..300 in one indexed segment, then a batch deleting
/// 10..20 and writing 300..340 left in the log (the store is dropped without closing).
pub fn write_store_v6_text(dir: &std::path::Path) -> strata::Result<()> {
    let o = Options::new(8, Metric::L2)
        .analyzer(strata::Analyzer::English)
        .background_compaction(false)
        .index(strata::IndexOptions {
            min_rows: Some(64),
            ..strata::IndexOptions::default()
        });
    let db = Db::open(dir, o)?;
    let put = |b: &mut WriteBatch, id: u64| {
        match v6_text(id) {
            Some(t) => b.upsert_text(id, &vector(id), &t, None, None),
            None => b.upsert(id, &vector(id)),
        };
    };
    let mut b = WriteBatch::new();
    (0..300).for_each(|id| put(&mut b, id));
    db.write(b)?;
    db.flush()?;
    let mut b = WriteBatch::new();
    (10..20).for_each(|id| {
        b.delete(id);
    });
    (300..340).for_each(|id| put(&mut b, id));
    db.write(b)?;
    // Dropped without closing: the last batch stays in the log only.
    std::mem::forget(db);
    Ok(())
}
