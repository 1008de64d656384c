//! The fuzz targets' bodies over every kept crash input (`fuzz/regressions/<target>`,
//! committed, and local `fuzz/artifacts/<target>`: each crash found stays a regression
//! test), the local corpus (`fuzz/corpus/<target>`) and seeded mutations of real store files: bit flips, byte changes,
//! truncations, insertions and splices. A panic is a loss. The long runs are libFuzzer's
//! (`fuzz/run.sh`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use strata::vfs::{SimVfs, Vfs};
use strata::{Db, Durability};
use strata_tests::fuzz::TARGETS;
use strata_tests::workload;

use crate::Tally;

const MUTATIONS: usize = 1550;
const STORE_OPS_MUTATIONS: usize = 400;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            std::fs::read(&p).ok().map(|b| (p.display().to_string(), b))
        })
        .collect();
    out.sort();
    out
}

/// Real files of three small stores (string keys and `f16` vectors; `u64` ids and `f32`;
/// `u64` ids and `int8`, whose indexed segments have no PQ codes), as seeds for the
/// parsers.
fn store_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (seed, int8) in [(7, false), (8, false), (10, true)] {
        let sim = SimVfs::new();
        let dir = Path::new("/seed");
        let plan = workload::steps(seed, 60);
        let mut o = workload::options_for_seed(seed, Durability::Always, Arc::new(sim.clone()));
        if int8 {
            o = o.vector_codec(strata::VectorCodec::Int8);
        }
        if let Ok(db) = Db::open(dir, o) {
            for s in &plan {
                let _ = workload::run_step(&db, s);
            }
        }
        let files: Vec<(String, Vec<u8>)> = sim
            .list(dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(n, _)| sim.read(&dir.join(&n)).ok().map(|b| (n, b)))
            .collect();
        if int8 {
            // The seed this store is for: an indexed segment without PQ codes.
            let pq_less = files.iter().any(|(n, b)| {
                n.ends_with(".seg")
                    && strata_format::SegmentReader::from_bytes(
                        Path::new(n),
                        strata_vfs::MappedBytes::from_vec(b.clone()),
                    )
                    .is_ok_and(|s| s.index().is_some_and(|ix| ix.meta.pq_m == 0))
            });
            assert!(
                pq_less,
                "the int8 seed store has no indexed segment without PQ codes"
            );
        }
        out.extend(files);
    }
    out
}

fn seeds_for(target: &str, store: &[(String, Vec<u8>)], rng: &mut impl Rng) -> Vec<Vec<u8>> {
    let ext = |e: &str| -> Vec<Vec<u8>> {
        store
            .iter()
            .filter(|(n, _)| n.ends_with(e))
            .map(|(_, b)| b.clone())
            .collect()
    };
    match target {
        "segment_open" => ext(".seg"),
        "remote_decode" => {
            strata_tests::fuzz::remote_decode_seeds(ext(".seg").first().map(Vec::as_slice))
        }
        "manifest_decode" => ext("MANIFEST"),
        "wal_replay" => ext(".wal")
            .into_iter()
            .map(|b| {
                b.get(strata_wal::record::FILE_HEADER_LEN..)
                    .unwrap_or_default()
                    .to_vec()
            })
            .collect(),
        "filter_parse" => [
            r#"{"kind": "fact", "user": {"$in": [1, 2]}, "ts": {"$gte": 1.5, "$lt": 9}}"#,
            r#"{"$or": [{"tags": {"$contains": "x"}}, {"$not": {"o.x": {"$exists": true}}}]}"#,
            r#"{"$and": [{"a": {"$ne": null}}, {"b": {"$nin": ["x", true]}}]}"#,
            r#"{"a": 1, "o": {"x": [1, "y"], "deep": {"z": false}}, "n": null}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "metadata_decode" => [
            r#"{"a": 1, "b": "x", "tags": ["x", 2, 0.5], "o": {"x": -0.5, "d": {"z": false}}}"#,
            r#"{"n": null, "t": true, "s": "", "l": []}"#,
        ]
        .iter()
        .filter_map(|s| strata::Metadata::from_json_str(s).ok())
        .map(|m| m.encode())
        .collect(),
        "field_index_decode" => {
            let mut ix = strata_format::field_index::FieldIndexData::new(&["o.x".to_string()]);
            let rows = [
                r#"{"a": 1, "b": "x", "tags": ["x", 2, 0.5], "o": {"x": -0.5, "d": {"z": false}}}"#,
                r#"{"n": null, "t": true, "s": "", "l": [], "a": 2.5}"#,
                r#"{"a": -7, "b": "y", "tags": ["y"]}"#,
            ];
            for (row, text) in rows.iter().enumerate() {
                if let Ok(m) = strata::Metadata::from_json_str(text) {
                    ix.add(row as u32 * 40, &m);
                }
            }
            ix.finish(100);
            vec![
                ix.encode(),
                strata_format::field_index::FieldIndexData::new(&[]).encode(),
            ]
        }
        "text_index_decode" => {
            let mut ix = strata_format::text_index::TextIndexBuilder::new();
            for row in 0..300u32 {
                let terms: Vec<String> = (0..row % 7)
                    .map(|i| format!("t{}", (row * 7 + i * 13) % (3 + i * 40)))
                    .collect();
                ix.push_row(&terms);
            }
            let rows = ix.rows() as u16;
            vec![strata_tests::fuzz::text_index_input(rows, &ix.encode())]
        }
        "deletion_decode" => ext(".del")
            .into_iter()
            .map(|b| {
                // The body's rows come first; the real count is unknown here, so guess.
                let mut v = 64u16.to_le_bytes().to_vec();
                v.extend(b);
                v
            })
            .collect(),
        _ => (0..8)
            .map(|_| {
                (0..rng.random_range(8..200))
                    .map(|_| rng.random())
                    .collect()
            })
            .collect(),
    }
}

fn mutate(seed: &[u8], other: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let n = b.len();
        match rng.random_range(0..6) {
            0 if n > 0 => {
                let i = rng.random_range(0..n);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if n > 0 => {
                let i = rng.random_range(0..n);
                b[i] = rng.random();
            }
            2 if n > 0 => b.truncate(rng.random_range(0..n)),
            3 => {
                let i = rng.random_range(0..=n);
                let ins: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(i..i, ins);
            }
            4 if !other.is_empty() => {
                let i = rng.random_range(0..=n);
                let j = rng.random_range(0..other.len());
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            _ if n >= 4 => {
                // An interesting integer over four bytes.
                let i = rng.random_range(0..n - 3);
                let v: u32 = [0, 1, u32::MAX, 0x8000_0000, 64][rng.random_range(0..5)];
                b[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    b
}

/// One round.
pub fn run(round: u64) -> Tally {
    let mut tally = Tally::default();
    let store = store_seeds();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xF022 + round);
    // Quiet the default panic message: a panic is reported as a loss below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (name, body) in TARGETS {
        let check = |tally: &mut Tally, what: &str, input: &[u8]| {
            tally.add("fuzz executions", 1);
            if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
                tally.lose(format!(
                    "fuzz target {name} panics on {what} ({} bytes: {:02x?})",
                    input.len(),
                    &input[..input.len().min(64)]
                ));
            }
        };
        let mut corpus = inputs_in(&fuzz_dir().join("corpus").join(name));
        let mut kept = inputs_in(&fuzz_dir().join("regressions").join(name));
        kept.retain(|(p, _)| !p.ends_with(".keep"));
        kept.extend(inputs_in(&fuzz_dir().join("artifacts").join(name)));
        for (p, b) in kept {
            tally.add("fuzz regression inputs", 1);
            check(&mut tally, &p, &b);
        }
        for (p, b) in &corpus {
            check(&mut tally, p, b);
        }
        let mut seeds: Vec<Vec<u8>> = corpus.drain(..).map(|(_, b)| b).collect();
        seeds.extend(seeds_for(name, &store, &mut rng));
        if seeds.is_empty() {
            seeds.push(Vec::new());
        }
        let n = if *name == "store_ops" {
            STORE_OPS_MUTATIONS
        } else {
            MUTATIONS
        };
        for i in 0..n {
            let s = &seeds[rng.random_range(0..seeds.len())];
            let o = &seeds[rng.random_range(0..seeds.len())];
            let input = mutate(s, o, &mut rng);
            check(
                &mut tally,
                &format!("mutation {i} of round {round}"),
                &input,
            );
        }
    }
    std::panic::set_hook(hook);
    tally
}
