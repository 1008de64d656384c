//! A flipped byte in a segment, a deletion file, a WAL file or the manifest is reported
//! as corruption naming the file, never a panic.

use std::path::{Path, PathBuf};

use strata::{Db, Error, Metric, Options};

use crate::common::{self, flip, vector};

/// A closed store with two segments, a deletion file and WAL records after the last flush.
fn build(dir: &Path) {
    let db = Db::open(dir, Options::new(16, Metric::L2)).unwrap();
    let mut rng = common::rng(42);
    for i in 0..300 {
        db.upsert_with_payload(i, &vector(&mut rng, 16), format!("p{i}").as_bytes())
            .unwrap();
        if i == 150 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    for i in 0..20 {
        db.delete(i).unwrap();
    }
    db.flush().unwrap();
    for i in 300..340 {
        db.upsert(i, &vector(&mut rng, 16)).unwrap();
    }
    drop(db); // leave the last writes in the WAL
}

fn open_err(dir: &Path) -> Error {
    match Db::open(dir, Options::existing()) {
        Ok(_) => panic!("a damaged store opened"),
        Err(e) => e,
    }
}

fn assert_names(e: &Error, path: &Path) {
    match e {
        Error::Corruption { path: p, .. } => {
            assert_eq!(p, path, "error names the damaged file: {e}")
        }
        other => panic!("expected corruption of {}, got {other}", path.display()),
    }
}

fn fresh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let p = dir.path().to_path_buf();
    (dir, p)
}

#[test]
fn flipped_manifest_byte_is_corruption_naming_the_manifest() {
    let (_t, dir) = fresh();
    let m = dir.join("MANIFEST");
    for off in [0u64, 9, 17, 30, std::fs::metadata(&m).unwrap().len() - 1] {
        flip(&m, off);
        assert_names(&open_err(&dir), &m);
        assert_names(&strata::verify(&dir).unwrap_err(), &m);
        flip(&m, off);
    }
    Db::open(&dir, Options::existing()).unwrap();
}

#[test]
fn flipped_segment_metadata_fails_open_and_vector_damage_fails_verify() {
    let (_t, dir) = fresh();
    let seg = common::files_with_ext(&dir, "seg")[0].clone();
    let len = std::fs::metadata(&seg).unwrap().len();
    // Header, id section, table and footer are checked at open.
    for off in [3u64, 20, 64, 70, len - 100, len - 20, len - 1] {
        flip(&seg, off);
        assert_names(&open_err(&dir), &seg);
        flip(&seg, off);
    }
    // The vectors section (after the ids and the 8-byte vector codec section, each in a
    // 64-byte aligned slot) is checked per block by the first read, and by verify.
    let vectors_at = 64 + (151u64 * 8).next_multiple_of(64) + 64 + 40;
    flip(&seg, vectors_at);
    let e = strata::verify(&dir).unwrap_err();
    assert_names(&e, &seg);
    let db = Db::open(&dir, Options::existing()).unwrap();
    let e = db
        .search(&[0.0; 16], &strata::SearchOptions::exact(1000))
        .unwrap_err();
    assert_names(&e, &seg);
    db.close().unwrap();
    flip(&seg, vectors_at);
    strata::verify(&dir).unwrap();
}

#[test]
fn flipped_deletion_file_byte_is_corruption() {
    let (_t, dir) = fresh();
    let del = common::files_with_ext(&dir, "del")[0].clone();
    flip(&del, 45);
    assert_names(&open_err(&dir), &del);
}

#[test]
fn flipped_wal_byte_before_the_last_record_is_corruption() {
    let (_t, dir) = fresh();
    let wals = common::files_with_ext(&dir, "wal");
    let wal = wals
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 1000)
        .unwrap()
        .clone();
    flip(&wal, 32 + 30);
    assert_names(&open_err(&dir), &wal);
    assert_names(&strata::verify(&dir).unwrap_err(), &wal);
}

#[test]
fn random_flips_never_panic() {
    let (_t, dir) = fresh();
    let mut rng = common::rng(7);
    let pristine: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..150 {
        let (f, bytes) = &pristine[rand::Rng::random_range(&mut rng, 0..pristine.len())];
        if bytes.is_empty() {
            continue;
        }
        let off = rand::Rng::random_range(&mut rng, 0..bytes.len() as u64);
        flip(f, off);
        // Either a clean open (damage in padding, a torn tail, or large sections that
        // only verify reads) or a typed error.
        match Db::open(&dir, Options::existing()) {
            Ok(db) => {
                opened += 1;
                let _ = db.search(&[0.0; 16], &strata::SearchOptions::new(5));
                let _ = db.get(5);
            }
            Err(Error::Corruption { .. }) => refused += 1,
            Err(e) => panic!("flip of {} at {off}: unexpected error {e}", f.display()),
        }
        let _ = strata::verify(&dir);
        // Restore the pristine store (an open may have cut a WAL tail or removed files).
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if !p.ends_with("LOCK") {
                std::fs::remove_file(p).unwrap();
            }
        }
        for (p, b) in &pristine {
            std::fs::write(p, b).unwrap();
        }
    }
    println!("random flips: {opened} opened cleanly, {refused} refused as corruption");
    assert!(refused > 0);
}
