//! Segment open, verify, id lookup and payload reads over arbitrary bytes: never panic,
//! never read out of bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::{MappedBytes, SegmentReader};
use strata_index::hnsw::{self, GraphView, Visited};
use strata_index::pq::ProductQuantizer;

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
        // The index sections: parse the graph and walk it as a search would.
        if let Some(ix) = seg.index() {
            let m = ix.meta;
            let entry = (m.entry_node != u32::MAX).then_some((m.entry_node, m.entry_level as usize));
            if let Ok(g) = GraphView::parse(seg.rows(), m.m0 as usize, m.l0_id_bits, entry, ix.level0, ix.upper) {
                let codes = ix.codes;
                let pq_m = m.pq_m as usize;
                let dist = |n: u32| codes.get(n as usize * pq_m).map_or(f32::INFINITY, |&c| c as f32);
                let _ = hnsw::search(&g, dist, 16, &mut Visited::new());
            }
            let _ = ProductQuantizer::from_parts(seg.dim(), m.pq_m as usize, ix.codebook.to_vec());
        }
    }
});
