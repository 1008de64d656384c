//! The segment builder's tests: GPU fallback, level-0 coding, PQ-less segments, the text
//! index's row order.
use super::*;
use strata_index::gpu::ReferenceKernels;

fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * dim)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect()
}

fn options() -> IndexOptions {
    IndexOptions {
        train_sample: 4096,
        ..IndexOptions::default()
    }
}

/// `ids`' rows of `vectors` (L2) with `payloads` and nothing else, stored as `codec`.
fn plain_rows<'a>(
    dim: usize,
    ids: &'a [u64],
    vectors: &'a [f32],
    payloads: &'a [Option<&'a [u8]>],
    codec: strata_format::VectorCodec,
) -> SegmentRows<'a> {
    SegmentRows {
        dim,
        metric: Metric::L2,
        max_seq: 1,
        ids,
        vectors,
        payloads,
        metadata: &[],
        keys: &[],
        texts: &[],
        analyzer: Default::default(),
        unindexed: &[],
        vector_codec: codec,
    }
}

/// Kernels that fail from the `fail_from`-th call on (0-based).
struct Failing {
    calls: std::sync::atomic::AtomicUsize,
    fail_from: usize,
}

impl BuildKernels for Failing {
    fn device_name(&self) -> String {
        "failing".into()
    }
    fn nearest_codes(
        &self,
        rows: &[f32],
        bounds: &[usize],
        centroids: &[f32],
        codes: &mut [u8],
        dists: &mut [f32],
    ) -> Result<(), GpuError> {
        if self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            >= self.fail_from
        {
            return Err(GpuError("CUDA_ERROR_ILLEGAL_ADDRESS".into()));
        }
        ReferenceKernels.nearest_codes(rows, bounds, centroids, codes, dists)
    }
    fn earlier_neighbors(&self, rows: &[f32], dim: usize, k: usize) -> Result<Vec<u32>, GpuError> {
        if self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            >= self.fail_from
        {
            return Err(GpuError("out of memory".into()));
        }
        ReferenceKernels.earlier_neighbors(rows, dim, k)
    }
}

#[test]
fn a_failing_gpu_falls_back_to_the_cpu_stage_by_stage() {
    let (n, dim) = (3000, 8);
    let rows = data(n, dim, 3);
    let o = options();
    let cpu = BuiltIndex::build_on(None, &rows, dim, Metric::L2, &o, WalkOn::Pq, &|_, _, _| {
        true
    })
    .unwrap();
    // k-means makes 16 assignment calls, encoding 1, the graph one per level.
    for (fail_from, bits, stage) in [
        (0, 0, "k-means"),
        (5, 0, "k-means"),
        (16, BUILT_GPU_KMEANS, "encode"),
        (17, BUILT_GPU_KMEANS | BUILT_GPU_CODES, "neighbour lists"),
        (18, BUILT_GPU_KMEANS | BUILT_GPU_CODES, "neighbour lists"),
    ] {
        let k = Failing {
            calls: Default::default(),
            fail_from,
        };
        let ix = BuiltIndex::build_on(
            Some(&k),
            &rows,
            dim,
            Metric::L2,
            &o,
            WalkOn::Pq,
            &|_, _, _| true,
        )
        .unwrap();
        assert_eq!(ix.report.built_by, bits, "failing from call {fail_from}");
        assert_eq!(ix.meta.built_by, bits);
        let why = ix.report.fallback.as_deref().unwrap_or("");
        assert!(why.starts_with(stage), "from call {fail_from}: {why}");
        // Whatever ran where, the index is the CPU's or as good.
        assert_eq!(ix.pq, cpu.pq);
        assert_eq!(ix.codes, cpu.codes);
        assert_eq!(ix.graph.node_count(), n);
        if bits == 0 {
            assert_eq!(ix.report.gpu, None, "nothing ran on the GPU");
        }
    }
}

/// Level 0 is Rice-coded only past `rice_from_bytes` of packed layout (and when
/// coding makes it smaller, as it does after the spatial order).
#[test]
fn level0_is_rice_coded_only_past_the_size_threshold() {
    let (n, dim) = (2000, 8);
    let rows = data(n, dim, 6);
    let order = strata_index::hnsw::spatial_order(&rows, dim);
    let ordered: Vec<f32> = order
        .iter()
        .flat_map(|&r| {
            rows[r as usize * dim..(r as usize + 1) * dim]
                .iter()
                .copied()
        })
        .collect();
    let built = BuiltIndex::build(&ordered, dim, Metric::L2, &options());
    let packed = built.graph.level0().len();
    for (from, coded) in [
        (usize::MAX, false),
        (packed, false),
        (packed - 1, true),
        (0, true),
    ] {
        let mut ix = BuiltIndex::build(&ordered, dim, Metric::L2, &options());
        ix.code_level0(from);
        assert_eq!(
            ix.meta.l0_rice.is_some(),
            coded,
            "from {from}, packed {packed}"
        );
        assert_eq!(ix.level0_rice.is_some(), coded);
        if coded {
            assert!(ix.input().level0.len() < packed);
        }
    }
}

/// Each codec's segment: `int8` ones, and `f32` ones up to `pq_from_bytes`, get a
/// graph and no PQ (no training or encoding stage, `pq_m` 0, empty codebook and
/// codes); the others PQ codes for every row.
#[test]
fn segments_walked_on_their_rows_are_written_without_pq_codes() {
    let (n, dim) = (1200, 8);
    let rows = data(n, dim, 5);
    let ids: Vec<u64> = (0..n as u64).collect();
    let payloads = vec![None; n];
    let dir = tempfile::tempdir().unwrap();
    let vector_bytes = n * dim * 4;
    for codec in strata_format::vector_codec::VECTOR_CODECS {
        for pq_from_bytes in [0, vector_bytes - 1, vector_bytes, usize::MAX] {
            let path = dir
                .path()
                .join(format!("{}-{pq_from_bytes}.seg", codec.name()));
            let seg = plain_rows(dim, &ids, &rows, &payloads, codec);
            let o = IndexOptions {
                min_rows: Some(100),
                pq_from_bytes,
                ..options()
            };
            let report = write_segment(&strata_vfs::OsVfs, &path, &seg, &o, &|_, _, _| true)
                .unwrap()
                .unwrap();
            let reader = strata_format::SegmentReader::open(&strata_vfs::OsVfs, &path).unwrap();
            let ix = reader.index().expect("indexed");
            let on_rows = match codec {
                strata_format::VectorCodec::Int8 => true,
                strata_format::VectorCodec::F32 => vector_bytes <= pq_from_bytes,
                _ => false,
            };
            let what = format!("{codec:?}, pq from {pq_from_bytes}: {:?}", report.stages);
            let trained = report.time(Stage::Train) + report.time(Stage::Encode);
            assert_eq!(trained.is_zero(), on_rows, "{what}");
            if on_rows {
                assert_eq!(ix.meta.pq_m, 0, "{what}");
                assert!(ix.codebook.is_empty() && ix.codes.is_empty(), "{what}");
            } else {
                assert!(ix.meta.pq_m > 0, "{what}");
                assert_eq!(ix.codes.len(), n * ix.meta.pq_m as usize, "{what}");
            }
            assert_ne!(ix.meta.entry_node, u32::MAX, "{what}: a graph");
            reader.verify().unwrap();
        }
    }
}

/// Segments reranked on their rows get the walk codes `walk_codes` asks for: scalar
/// codes (one per dimension, the codebook a grid that decodes to each row within half a
/// step) by default up to `SCALAR_MAX_DIM` dimensions, PQ codes (trained, not a grid)
/// when asked for or when `pq_m` is set. At `GRID_SEARCH_MIN_DIM` dimensions the graph's
/// searches score those codes too, which must not change them.
#[test]
fn walk_codes_are_scalar_by_default_and_pq_when_asked() {
    for dim in [8, hnsw::GRID_SEARCH_MIN_DIM] {
        walk_codes_of(dim);
    }
}

fn walk_codes_of(dim: usize) {
    let n = 1200;
    let rows = data(n, dim, 8);
    let ids: Vec<u64> = (0..n as u64).collect();
    let payloads = vec![None; n];
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (WalkCodes::Auto, None, true),
        (WalkCodes::Scalar, None, true),
        (WalkCodes::Scalar, Some(2), true),
        (WalkCodes::Auto, Some(2), false),
        (WalkCodes::Pq, None, false),
    ];
    for codec in [
        strata_format::VectorCodec::F32,
        strata_format::VectorCodec::F16,
    ] {
        for (i, (walk_codes, pq_m, scalar)) in cases.into_iter().enumerate() {
            let what = format!("{dim}-d {codec:?}, {walk_codes:?}, pq_m {pq_m:?}");
            let path = dir.path().join(format!("{}-{i}.seg", codec.name()));
            let seg = plain_rows(dim, &ids, &rows, &payloads, codec);
            let o = IndexOptions {
                min_rows: Some(100),
                pq_from_bytes: 0,
                walk_codes,
                pq_m,
                ..options()
            };
            let report = write_segment(&strata_vfs::OsVfs, &path, &seg, &o, &|_, _, _| true)
                .unwrap()
                .unwrap();
            assert_eq!(report.time(Stage::Train).is_zero(), scalar, "{what}");
            let reader = strata_format::SegmentReader::open(&strata_vfs::OsVfs, &path).unwrap();
            let ix = reader.index().expect("indexed");
            let pq = ProductQuantizer::from_parts(dim, ix.meta.pq_m as usize, ix.codebook.to_vec())
                .unwrap();
            assert_eq!(pq.scalar_grid().is_some(), scalar, "{what}");
            if !scalar {
                assert_eq!(
                    ix.meta.pq_m as usize,
                    pq_m.unwrap_or(pq::default_m(dim)),
                    "{what}"
                );
                continue;
            }
            assert_eq!(ix.meta.pq_m as usize, dim, "{what}");
            let (lo, step) = pq.scalar_grid().unwrap();
            // Rows are stored in the spatial order: decode each stored row's code and
            // compare it with the row of the same id.
            let mut out = Vec::new();
            for r in 0..n {
                let id = reader.id_rows(r..r + 1).unwrap()[0] as usize;
                let code = &ix.codes[r * dim..(r + 1) * dim];
                let row = reader.vector_rows(r..r + 1, &mut out).unwrap().to_vec();
                for j in 0..dim {
                    let x = lo[j] + code[j] as f32 * step[j];
                    let want = rows[id * dim + j];
                    assert!(
                        (x - want).abs() <= step[j] / 2.0 + 1e-5,
                        "{what}: row {r} (id {id}) dimension {j}: {x} vs {want}"
                    );
                    assert!((row[j] - want).abs() < 1e-2, "{what}: stored row");
                }
            }
            reader.verify().unwrap();
        }
    }
}

/// An indexed segment's rows are reordered: each row's text, and the text index's
/// postings and lengths, follow its row.
#[test]
fn the_text_index_follows_the_rows_order() {
    let (n, dim) = (1200, 8);
    let rows = data(n, dim, 6);
    let ids: Vec<u64> = (0..n as u64).collect();
    let owned: Vec<String> = (0..n).map(|i| format!("Tag{} ID{i}", i % 10)).collect();
    let texts: Vec<Option<&str>> = owned
        .iter()
        .enumerate()
        .map(|(i, t)| (i % 2 == 1).then_some(t.as_str()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.seg");
    let payloads = vec![None; n];
    let seg = SegmentRows {
        texts: &texts,
        analyzer: strata_index::text::Analyzer::Default,
        ..plain_rows(dim, &ids, &rows, &payloads, strata_format::VectorCodec::F32)
    };
    let o = IndexOptions {
        min_rows: Some(100),
        ..options()
    };
    let report = write_segment(&strata_vfs::OsVfs, &path, &seg, &o, &|_, _, _| true)
        .unwrap()
        .unwrap();
    assert!(report.row_order.is_some(), "indexed rows are reordered");
    let reader = strata_format::SegmentReader::open(&strata_vfs::OsVfs, &path).unwrap();
    reader.verify().unwrap();
    let ix = reader.text_index().unwrap().unwrap();
    assert_eq!(ix.docs() as usize, n / 2);
    let (mut rs, mut tfs) = (vec![0; 128], vec![0; 128]);
    for row in 0..n {
        let id = reader.ids()[row] as usize;
        assert_eq!(reader.text(row).unwrap().as_deref(), texts[id]);
        assert_eq!(ix.length(row as u32), if id % 2 == 1 { 2 } else { 0 });
        if id % 2 == 1 {
            let e = ix.lookup(&format!("id{id}")).unwrap().unwrap();
            let p = ix.postings(e).unwrap();
            assert_eq!(p.decode(0, &mut rs, &mut tfs).unwrap(), 1);
            assert_eq!(rs[0] as usize, row);
        }
    }
    assert!(report.time(Stage::Text) > Duration::ZERO);
}

#[test]
fn auto_and_cpu_build_on_the_cpu_without_a_gpu() {
    let rows = data(500, 4, 4);
    for device in [BuildDevice::Cpu, BuildDevice::Auto, BuildDevice::Gpu] {
        let o = IndexOptions {
            device,
            gpu_min_rows: 100,
            ..options()
        };
        let ix = BuiltIndex::build(&rows, 4, Metric::L2, &o);
        if device == BuildDevice::Cpu || Gpu::shared().is_err() {
            assert_eq!(ix.report.built_by, 0, "{device}");
            assert_eq!(
                ix.report.fallback, None,
                "choosing the CPU is not a fallback"
            );
        }
    }
}
