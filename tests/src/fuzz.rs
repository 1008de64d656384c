//! The bodies of the fuzz targets. `fuzz/fuzz_targets/*.rs` call these from libFuzzer;
//! the proof suite runs them over the committed corpus, the crash artifacts and seeded
//! mutations on every `cargo test`, so every input that once crashed stays a regression
//! test. Each body panics only on a real bug (a broken invariant); hostile bytes must
//! give errors.

use std::path::Path;
use std::sync::Arc;

use strata::vfs::{CutStyle, FailPlan, FaultVfs, SimVfs, Vfs};
use strata::{Db, Durability, Options};
use strata_format::segment::SectionKind;
use strata_format::{DeletionBitmap, Manifest, SegmentReader};
use strata_index::hnsw::{self, GraphView, Level0Layout, Visited};
use strata_index::pq::ProductQuantizer;
use strata_wal::{replay, ReplayMode};

use crate::workload::{self, State, Write, DIM};

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// The fuzz targets by name, for the corpus runner.
pub const TARGETS: &[(&str, Body)] = &[
    ("wal_replay", wal_replay),
    ("segment_open", segment_open),
    ("manifest_decode", manifest_decode),
    ("deletion_decode", deletion_decode),
    ("store_open", store_open),
    ("store_ops", store_ops),
    ("filter_parse", filter_parse),
    ("metadata_decode", metadata_decode),
    ("field_index_decode", field_index_decode),
    ("text_index_decode", text_index_decode),
    ("remote_decode", remote_decode),
];

/// A text index's three sections in one input: `rows u16`, then the lengths of
/// `TEXT_TERMS` and `TEXT_POSTINGS` (`u32` each), then the three sections back to back
/// (`TEXT_LENGTHS` the rest).
pub fn text_index_input(rows: u16, s: &strata_format::text_index::TextSections) -> Vec<u8> {
    let mut out = rows.to_le_bytes().to_vec();
    out.extend((s.terms.len() as u32).to_le_bytes());
    out.extend((s.postings.len() as u32).to_le_bytes());
    out.extend(&s.terms);
    out.extend(&s.postings);
    out.extend(&s.lengths);
    out
}

/// The text index decoders (term dictionary, posting blocks, lengths) over arbitrary
/// sections ([`text_index_input`]): never panic; decoded rows lie below the row count,
/// ascend and end at their block's last row; an index `verify` accepts looks up every
/// term of its dictionary to its own entry, and decodes every block.
pub fn text_index_decode(data: &[u8]) {
    use strata_format::text_index::{TextIndex, POSTING_BLOCK};
    let word = |at: usize, n: usize| -> usize {
        data.get(at..at + n).map_or(0, |b| {
            b.iter().rev().fold(0usize, |a, &x| a << 8 | x as usize)
        })
    };
    let rows = word(0, 2) as u32;
    let (terms_len, postings_len) = (word(2, 4), word(6, 4));
    let body = data.get(10..).unwrap_or_default();
    let terms = body.get(..terms_len.min(body.len())).unwrap_or_default();
    let rest = body.get(terms.len()..).unwrap_or_default();
    let postings = rest.get(..postings_len.min(rest.len())).unwrap_or_default();
    let lengths = rest.get(postings.len()..).unwrap_or_default();
    let Ok(ix) = TextIndex::open([terms, postings, lengths], [0; 3], rows) else {
        return;
    };
    let verified = ix.verify().is_ok();
    let (mut rs, mut tfs) = (vec![0u32; POSTING_BLOCK], vec![0u32; POSTING_BLOCK]);
    let mut seen = Vec::new();
    let _ = ix.for_each_term(|t, e| {
        seen.push((t.to_vec(), e));
        Ok(())
    });
    for (term, entry) in seen.iter().take(200) {
        if let Ok(t) = std::str::from_utf8(term) {
            let found = ix.lookup(t);
            assert!(
                !verified || matches!(found, Ok(Some(e)) if e == *entry),
                "term {t:?} of a verified dictionary looks up to {found:?}"
            );
        }
        let Ok(list) = ix.postings(*entry) else {
            assert!(!verified, "a verified index's posting list fails to open");
            continue;
        };
        for b in 0..list.blocks().min(64) {
            match list.decode(b, &mut rs, &mut tfs) {
                Ok(n) => {
                    let rows_ok = rs[..n].windows(2).all(|w| w[0] < w[1])
                        && rs[..n].iter().all(|&r| r < rows)
                        && rs.get(n - 1) == Some(&list.skip(b).last_row);
                    assert!(rows_ok, "a decoded block's rows are out of order or range");
                }
                Err(_) => assert!(!verified, "a verified index's block fails to decode"),
            }
        }
    }
    let _ = ix.lookup("zzz");
    let _ = ix.length(rows.saturating_sub(1));
}

/// The metadata-index decoder (a segment's `FIELD_INDEX` section) over arbitrary bytes:
/// never panics, and what decodes holds only rows below its row count and encodes to
/// bytes that decode to the same index.
pub fn field_index_decode(data: &[u8]) {
    use strata_format::field_index::FieldIndexData;
    if let Ok(d) = FieldIndexData::decode(data, 0) {
        for f in d.fields.values() {
            for m in [&f.present, &f.nulls, &f.bools[0], &f.bools[1]]
                .into_iter()
                .chain(f.strings.values())
            {
                assert!(m.max().is_none_or(|r| r < d.rows), "row past the index");
            }
        }
        let again = FieldIndexData::decode(&d.encode(), 0).expect("own encoding decodes");
        assert_eq!(again, d);
    }
}

/// The binary metadata decoder over arbitrary bytes: never panics, and what decodes
/// encodes back to exactly the same bytes (the encoding is canonical).
pub fn metadata_decode(data: &[u8]) {
    if let Ok(m) = strata::Metadata::decode(data, 0) {
        assert_eq!(m.encode(), data, "a second encoding of {m:?}");
        let back = strata::Metadata::from_json(&m.to_json()).expect("own JSON parses");
        assert_eq!(back, m);
    }
}

/// Filter and metadata parsing over arbitrary text: never panics; what parses passes
/// validation, reads back equal from its own JSON, and evaluates on sample metadata.
pub fn filter_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sample = strata::Metadata::from_json_str(
        r#"{"a": 1, "b": "x", "tags": ["x", 2], "o": {"x": 0.5}, "n": null, "t": true}"#,
    )
    .expect("sample metadata");
    if let Ok(f) = strata::Filter::from_json_str(text) {
        assert!(f.validate().is_ok(), "a parsed filter validates: {text}");
        let back = strata::Filter::from_json(&f.to_json()).expect("own JSON parses");
        assert_eq!(back.matches(&sample), f.matches(&sample), "{text}");
    }
    if let Ok(m) = strata::Metadata::from_json_str(text) {
        let back = strata::Metadata::from_json(&m.to_json()).expect("own JSON parses");
        assert_eq!(back, m, "{text}");
        let _ = strata::Filter::All.matches(&m);
    }
}

fn sim_dir() -> (SimVfs, &'static Path) {
    let fs = SimVfs::new();
    let dir = Path::new("/fuzz");
    fs.create_dir_all(dir).expect("sim dir");
    (fs, dir)
}

/// WAL replay over arbitrary bytes: never panics; a read-only replay after the repair
/// reads the same records.
pub fn wal_replay(data: &[u8]) {
    let (fs, dir) = sim_dir();
    let path = dir.join(strata_wal::file_name(1));
    // Most inputs get a valid header so that the fuzzer reaches the records.
    let mut bytes = strata_wal::record::encode_file_header(0x1234, 1).to_vec();
    if data.first() == Some(&0) {
        bytes.clear();
    }
    bytes.extend_from_slice(data);
    fs.put(&path, &bytes).expect("put");
    let files = vec![(1, path.clone())];
    let log = Arc::new(fs.clone());
    let read = |mode| {
        let mut got = Vec::new();
        let r = replay::<()>(&*log, &files, mode, |r| {
            got.push((r.record.seq, r.record.count, r.record.payload.to_vec()));
            Ok(())
        });
        (r.is_ok(), got)
    };
    let (ok, first) = read(ReplayMode::Repair);
    if ok && fs.exists(&path).unwrap_or(false) {
        let (ok2, second) = read(ReplayMode::ReadOnly);
        assert!(ok2, "a repaired log must replay");
        assert_eq!(first, second, "a repaired log must replay the same records");
    }
}

/// Segment open, verify, row reads and a graph walk over arbitrary bytes.
pub fn segment_open(data: &[u8]) {
    let path = Path::new("/fuzz/000001.seg");
    let bytes = strata_vfs::MappedBytes::from_vec(data.to_vec());
    let Ok(seg) = SegmentReader::from_bytes(path, bytes) else {
        return;
    };
    let _ = seg.verify();
    for row in 0..seg.rows().min(1000) {
        let _ = seg.vector(row);
        let _ = seg.payload(row);
        let _ = seg.metadata(row);
        let _ = seg.text(row);
        // A key read back must find its own row.
        if let Ok(Some(key)) = seg.key(row) {
            let key = key.to_owned();
            if let Ok(rows) = seg.rows_with_key(&key) {
                assert!(
                    rows.contains(&row) || seg.verify().is_err(),
                    "key of row {row} does not find it in a segment verify accepts"
                );
            }
        }
    }
    let _ = seg.rows_with_key("k");
    // The text index (segment format 6): read like a search reads it.
    if let Ok(Some(ix)) = seg.text_index() {
        let (mut rs, mut tfs) = (vec![0u32; 128], vec![0u32; 128]);
        for term in ["note", "alpha", "ключ", "7"] {
            if let Ok(Some(e)) = ix.lookup(term) {
                if let Ok(list) = ix.postings(e) {
                    for b in 0..list.blocks().min(16) {
                        if let Ok(n) = list.decode(b, &mut rs, &mut tfs) {
                            assert!(rs[..n].iter().all(|&r| (r as usize) < seg.rows()));
                        }
                    }
                }
            }
        }
    }
    // Block checksums (segment format 5): a segment verify accepts passes every check.
    let verified = seg.verify().is_ok();
    for kind in [
        SectionKind::Vectors,
        SectionKind::PqCodes,
        SectionKind::GraphLevel0,
    ] {
        let check = seg.row_check(kind);
        for row in 0..seg.rows().min(1000) {
            let ok = check.row(row).is_ok();
            assert!(
                ok || !verified,
                "{kind:?} row {row} fails a check verify passed"
            );
        }
    }
    let mut all = Vec::new();
    let _ = seg.read_vectors(0..seg.rows().min(1000), &mut all);
    if let Some(&id) = seg.ids().first() {
        let _ = seg.find(id);
    }
    if let Some(ix) = seg.index() {
        let m = ix.meta;
        let entry = (m.entry_node != u32::MAX).then_some((m.entry_node, m.entry_level as usize));
        let layout = Level0Layout::stored(m.l0_id_bits, m.l0_rice);
        if let Some(Ok(g)) = layout.map(|layout| {
            GraphView::parse(
                seg.rows(),
                m.m0 as usize,
                layout,
                entry,
                ix.level0,
                ix.upper,
            )
        }) {
            // What a search checks before reading a node's level-0 neighbours.
            let check = seg.row_check(SectionKind::GraphLevel0);
            for node in 0..seg.rows().min(1000) as u32 {
                for span in g.level0_spans(node) {
                    let ok = check.bytes(span).is_ok();
                    assert!(
                        ok || !verified,
                        "level-0 span of {node} fails a check verify passed"
                    );
                }
            }
            let codes = ix.codes;
            let pq_m = m.pq_m as usize;
            let dist = |n: u32| {
                codes
                    .get(n as usize * pq_m)
                    .map_or(f32::INFINITY, |&c| c as f32)
            };
            let _ = hnsw::search(&g, dist, 16, &mut Visited::new());
            // A segment of `int8` rows (with or without PQ codes) is walked on them.
            if let Some(rows) = seg.int8_rows() {
                let dim = seg.dim();
                let query = vec![0.5f32; dim];
                let metric = strata_index::Metric::L2;
                let q = strata_index::sq8::Sq8Query::new(&query, rows.lo, rows.step, metric);
                let dist = |n: u32| {
                    let at = n as usize * dim;
                    rows.codes
                        .get(at..at + dim)
                        .map_or(f32::INFINITY, |row| q.distance(row))
                };
                let _ = hnsw::search(&g, dist, 16, &mut Visited::new());
            }
        }
        let _ = ProductQuantizer::from_parts(seg.dim(), m.pq_m as usize, ix.codebook.to_vec());
    }
    // The front in process memory: loads whenever verify passes, and reads the same.
    let before = seg
        .index()
        .map(|ix| (ix.meta, ix.codes.to_vec(), ix.level0.to_vec()));
    let mut seg = seg;
    let loaded = seg.load_front();
    assert!(
        loaded.is_ok() || !verified,
        "a verified segment's front fails to load"
    );
    if loaded.is_ok() {
        let after = seg
            .index()
            .map(|ix| (ix.meta, ix.codes.to_vec(), ix.level0.to_vec()));
        assert_eq!(before, after, "the front reads differently from memory");
    }
}

/// Manifest decoding: never panics; what decodes re-encodes to the same bytes.
pub fn manifest_decode(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data, "manifest round trip");
    }
}

/// The decoders of what a bucket holds, chosen by the first byte: 0 a remote manifest,
/// 1 a log object (and its header alone), 2 the `REMOTE` attachment (each re-encodes to
/// the same bytes when it decodes), 3 a segment's section table from its tail (the next
/// 8 bytes the file length). Never panics.
pub fn remote_decode(data: &[u8]) {
    use strata_remote::{Attachment, LogHeader, LogObject, RemoteManifest};
    let [which, body @ ..] = data else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(m) = RemoteManifest::decode(body) {
                assert_eq!(m.encode(), body, "remote manifest round trip");
            }
        }
        1 => {
            let _ = LogHeader::decode(body);
            if let Ok(o) = LogObject::decode(body) {
                assert_eq!(o.encode(), body, "log object round trip");
            }
        }
        2 => {
            if let Some(a) = Attachment::decode(body) {
                assert_eq!(a.encode(), body, "attachment round trip");
            }
        }
        _ => {
            let [l0, l1, l2, l3, l4, l5, l6, l7, tail @ ..] = body else {
                return;
            };
            let len = u64::from_le_bytes([*l0, *l1, *l2, *l3, *l4, *l5, *l6, *l7]);
            let _ = strata_format::segment::sections_from_tail(tail, len);
        }
    }
}

/// Seeds of [`remote_decode`]: one valid object of each kind, and a real segment's tail
/// (`segment`, a whole segment file).
pub fn remote_decode_seeds(segment: Option<&[u8]>) -> Vec<Vec<u8>> {
    use strata_remote::{Attachment, FileKind, LogObject, LogRecord, RemoteFile, RemoteManifest};
    let manifest = RemoteManifest {
        seq: 3,
        epoch: 2,
        store_id: 7,
        unix_ms: 1,
        checkpoint_seq: 9,
        files: vec![RemoteFile {
            kind: FileKind::Segment,
            no: 4,
            epoch: 2,
        }],
        manifest: b"MANIFEST bytes".to_vec(),
    };
    let log = LogObject {
        epoch: 2,
        no: 5,
        fence: false,
        records: vec![LogRecord {
            seq: 10,
            count: 2,
            kind: 1,
            payload: vec![1, 2, 3],
        }],
    };
    let attachment = Attachment {
        store_id: 7,
        epoch: 2,
        based_on: 1,
        url: "s3://bucket/store".into(),
    };
    let mut out = vec![
        [&[0u8][..], &manifest.encode()].concat(),
        [&[1u8][..], &log.encode()].concat(),
        [&[2u8][..], &attachment.encode()].concat(),
    ];
    if let Some(seg) = segment {
        let tail = &seg[seg.len().saturating_sub(512)..];
        out.push([&[3u8][..], &(seg.len() as u64).to_le_bytes(), tail].concat());
    }
    out
}

/// Deletion-file decoding: never panics; what decodes re-encodes to the same bytes.
pub fn deletion_decode(data: &[u8]) {
    let [a, b, body @ ..] = data else {
        return;
    };
    let rows = u16::from_le_bytes([*a, *b]) as usize;
    if let Ok(d) = DeletionBitmap::decode(body, 7, rows) {
        assert_eq!(d.encode(7), body, "deletion file round trip");
    }
}

/// Opening a store whose WAL holds one record framing arbitrary bytes: the batch
/// decoder and recovery return a result, never panic.
pub fn store_open(data: &[u8]) {
    let (fs, dir) = sim_dir();
    let fs: Arc<dyn Vfs> = Arc::new(fs);
    let opts = || workload::options(Durability::Always, fs.clone());
    drop(Db::open(dir, opts()).expect("create"));
    let Some((name, _)) = fs
        .list(dir)
        .expect("list")
        .into_iter()
        .find(|(n, _)| n.ends_with(".wal"))
    else {
        panic!("a new store has a WAL file");
    };
    let wal = dir.join(name);
    let mut bytes = fs.read(&wal).expect("read");
    let salt = bytes
        .get(12..16)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let mut rec = Vec::new();
    let count = data.first().copied().unwrap_or(1).max(1) as u32;
    if strata_wal::record::encode_record(&mut rec, salt, 1, count, 1, 32, data).is_err() {
        return;
    }
    bytes.extend_from_slice(&rec);
    fs.remove(&wal).expect("remove");
    fs.create_new(&wal)
        .and_then(|f| f.write_all(&bytes).and_then(|()| f.sync()))
        .expect("rewrite");
    if let Ok(db) = Db::open(dir, Options::existing().vfs(fs.clone())) {
        let _ = db.search(&[0.0; DIM], &strata::SearchOptions::new(3));
    }
}

/// An operation sequence against a `BTreeMap` model, over a simulated file system with
/// injected I/O failures, clean reopens and power cuts. After a failed write or flush the
/// store must refuse writes until reopened; every reopen must find exactly the
/// acknowledged writes (plus, possibly, the one batch whose failure was reported).
pub fn store_ops(data: &[u8]) {
    let mut input = data.iter().copied();
    let dir = Path::new("/fuzz");
    let open = |fs: &SimVfs, plan: Option<FailPlan>| {
        let inner: Arc<dyn Vfs> = Arc::new(fs.clone());
        let vfs: Arc<dyn Vfs> = match plan {
            Some(p) => Arc::new(FaultVfs::failing(inner, p)),
            None => inner,
        };
        Db::open(dir, workload::options(Durability::Always, vfs))
    };
    let mut fs = SimVfs::new();
    let mut model = State::new();
    // The batch whose write failed: after a reopen it is wholly there or wholly absent.
    let mut uncertain: Option<Vec<Write>> = None;
    let mut failed = false;
    let mut db = Some(open(&fs, None).expect("create"));
    let mut step = 0u32;
    while let Some(op) = input.next() {
        step += 1;
        let Some(d) = db.as_ref() else { break };
        match op % 10 {
            0..=4 => {
                let id = u64::from(input.next().unwrap_or(0) % 16);
                let w = if op % 10 == 4 {
                    Write::Delete(id)
                } else {
                    let vector: Vec<f32> = (0..DIM)
                        .map(|_| f32::from(input.next().unwrap_or(7)) / 64.0 - 2.0)
                        .collect();
                    let payload = (op % 2 == 0).then(|| step.to_le_bytes().to_vec());
                    let metadata = (op % 3 == 0).then(|| workload::metadata_for(step as usize, id));
                    let text = (op % 4 == 1).then(|| workload::text_for(step as usize, id));
                    Write::Upsert {
                        id,
                        vector,
                        payload,
                        metadata,
                        text,
                    }
                };
                match d.write(workload::batch(std::slice::from_ref(&w))) {
                    Ok(()) => {
                        assert!(!failed, "a write was acknowledged after a failed one");
                        workload::apply(&mut model, &[w]);
                    }
                    Err(_) if failed => {}
                    Err(_) => {
                        failed = true;
                        uncertain = Some(vec![w]);
                    }
                }
            }
            5 => {
                if d.flush().is_err() {
                    failed = true;
                }
            }
            6 => {
                // A failed compaction leaves the store as it was: not a write failure.
                let _ = d.compact(input.next().unwrap_or(0) % 2 == 0, &|_, _, _| true);
            }
            kind => {
                // 7: the process restarts; 8: the power fails; 9: the process restarts
                // and the next session's I/O fails at a chosen operation.
                drop(db.take());
                if kind == 8 {
                    let style = match input.next() {
                        Some(s) if s % 2 == 1 => CutStyle::Random(u64::from(s)),
                        _ => CutStyle::SyncedOnly,
                    };
                    fs = fs.power_cut(style);
                }
                let got = {
                    let reopened = open(&fs, None).expect("reopen without faults");
                    workload::read_state(&reopened).expect("read back")
                };
                let mut with = model.clone();
                if let Some(ws) = uncertain.take() {
                    workload::apply(&mut with, &ws);
                }
                assert!(
                    got == model || got == with,
                    "after a reopen: {}",
                    workload::diff(&model, &got)
                );
                model = got;
                failed = false;
                let plan = (kind == 9).then(|| {
                    let at = u64::from(input.next().unwrap_or(1)).max(1);
                    FailPlan {
                        at,
                        persistent: at % 3 == 0,
                        errno: if at % 2 == 0 { 28 } else { 5 },
                    }
                });
                // An open that meets its planned fault fails cleanly; go on without it.
                db = Some(match open(&fs, plan) {
                    Ok(d) => d,
                    Err(_) => open(&fs, None).expect("reopen without faults"),
                });
            }
        }
    }
}
