//! Our k-means and product quantizer against faiss on the same real data (SIFT10K):
//! quantization error within 3 % of faiss's. Needs `../shared/data` and the peers'
//! Python environment (`../shared/peers/setup.sh`); skips with a reason otherwise.

use std::path::Path;
use std::process::Command;

use strata_index::kmeans::{self, KMeansParams};
use strata_index::pq::ProductQuantizer;
use strata_tests::external;

fn read_fvecs(path: &Path) -> (Vec<f32>, usize) {
    let b = std::fs::read(path).unwrap();
    let dim = i32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    for rec in b.chunks_exact(4 + 4 * dim) {
        out.extend(
            rec[4..]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
        );
    }
    (out, dim)
}

const SCRIPT: &str = r#"
import sys, numpy as np, faiss
def fvecs(p):
    a = np.fromfile(p, dtype=np.int32); d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy().view(np.float32)
learn, base = fvecs(sys.argv[1])[:10000], fvecs(sys.argv[2])
km = faiss.Kmeans(learn.shape[1], 256, niter=15, seed=1, max_points_per_centroid=1000)
km.train(learn)
_, I = km.index.search(learn, 1)
kobj = float(((learn - km.centroids[I[:, 0]]) ** 2).sum(1).mean())
pq = faiss.ProductQuantizer(learn.shape[1], int(sys.argv[3]), 8)
pq.train(learn)
rec = pq.decode(pq.compute_codes(base))
print(kobj, float(((base - rec) ** 2).sum(1).mean()))
"#;

#[test]
fn kmeans_and_pq_errors_are_within_three_percent_of_faiss() {
    const TEST: &str = "kmeans_and_pq_errors_are_within_three_percent_of_faiss";
    let Some(data) = external::shared_data("siftsmall", "siftsmall_learn.fvecs") else {
        external::skip(
            TEST,
            "../shared/data/siftsmall is not present beside this repository",
        );
        return;
    };
    let (learn_p, base_p) = (
        data.join("siftsmall_learn.fvecs"),
        data.join("siftsmall_base.fvecs"),
    );
    let Some(py) = external::faiss_python() else {
        external::skip(
            TEST,
            "no Python with faiss (run ../shared/peers/setup.sh, or set PEERS_PY)",
        );
        return;
    };
    let (mut learn, dim) = read_fvecs(&learn_p);
    learn.truncate(10_000 * dim);
    let (base, _) = read_fvecs(&base_p);
    // Sixteen bytes per code (8 dimensions per sub-quantizer), a common configuration.
    let m = 16;
    let out = Command::new(py)
        .args(["-c", SCRIPT])
        .arg(&learn_p)
        .arg(&base_p)
        .arg(m.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "faiss script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().unwrap());
    let (faiss_kmeans, faiss_pq) = (it.next().unwrap(), it.next().unwrap());

    let ours_kmeans = kmeans::train(
        &learn,
        dim,
        &KMeansParams {
            k: 256,
            iters: 15,
            sample: 256_000,
            seed: 1,
        },
    )
    .objective;
    let pq = ProductQuantizer::train(&learn, dim, m, 65_536, 1);
    let codes = pq.encode_all(&base);
    let n = base.len() / dim;
    let ours_pq = base
        .chunks_exact(dim)
        .zip(codes.chunks_exact(m))
        .map(|(v, c)| {
            v.iter()
                .zip(pq.decode(c))
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n as f64;
    println!(
        "k-means (k=256, SIFT learn): ours {ours_kmeans:.1}, faiss {faiss_kmeans:.1} ({:+.2} %)",
        100.0 * (ours_kmeans / faiss_kmeans - 1.0)
    );
    println!(
        "PQ m={m} on SIFT base: ours {ours_pq:.1}, faiss {faiss_pq:.1} ({:+.2} %)",
        100.0 * (ours_pq / faiss_pq - 1.0)
    );
    assert!(
        ours_kmeans <= faiss_kmeans * 1.03,
        "k-means objective {ours_kmeans} vs faiss {faiss_kmeans}"
    );
    assert!(
        ours_pq <= faiss_pq * 1.03,
        "PQ error {ours_pq} vs faiss {faiss_pq}"
    );
}
