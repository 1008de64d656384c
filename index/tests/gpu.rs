//! The GPU kernels against their CPU references (`harness = false`: the lines it prints
//! are shown by `cargo test`). Each check runs when the machine can and otherwise says
//! what it skipped and why; a check that runs and disagrees fails the test.
//!
//! * kernels compile (needs NVRTC only, no GPU): `LD_LIBRARY_PATH=<dir of
//!   libnvrtc.so.13> cargo test -p strata-index --features gpu --test gpu`;
//! * PQ codes equal the CPU's except exact ties;
//! * neighbour lists equal the CPU's except near-ties;
//! * the k-means objective within 1 % of the CPU's.

use rand::{Rng, SeedableRng};
use strata_index::exact::{earlier_neighbors, NO_NEIGHBOR};
use strata_index::gpu::{BuildKernels, Gpu, GpuError};
use strata_index::pq::{nearest_codes, ProductQuantizer};

fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * dim)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect()
}

#[cfg(feature = "gpu")]
fn kernels_compile() -> Result<String, String> {
    let mut out = Vec::new();
    for arch in ["compute_80", "compute_90"] {
        match strata_index::gpu::compile(arch) {
            Ok(bytes) => out.push(format!("{arch}: {bytes} bytes of PTX")),
            Err(e) if e.0.contains("not found") => return Err(format!("SKIPPED ({e})")),
            Err(e) => panic!("{arch}: {e}"),
        }
    }
    Ok(out.join(", "))
}

#[cfg(not(feature = "gpu"))]
fn kernels_compile() -> Result<String, String> {
    Err("SKIPPED (built without the `gpu` feature)".into())
}

fn codes_equal(gpu: &Gpu) -> String {
    let mut out = Vec::new();
    for (n, dim, m) in [(20_000, 50, 25), (5_000, 128, 32), (1_000, 10, 4)] {
        let rows = data(n, dim, 1);
        let pq = ProductQuantizer::train(&rows, dim, m, 4096, 3);
        let (mut want, mut want_d) = (vec![0u8; n * m], vec![0f32; n * m]);
        nearest_codes(
            &rows,
            pq.bounds(),
            pq.centroids(),
            &mut want,
            Some(&mut want_d),
        );
        let (mut got, mut got_d) = (vec![0u8; n * m], vec![0f32; n * m]);
        gpu.nearest_codes(&rows, pq.bounds(), pq.centroids(), &mut got, &mut got_d)
            .unwrap();
        let mut ties = 0;
        for t in 0..n * m {
            assert_eq!(got_d[t], want_d[t], "row {} sub {}: distance", t / m, t % m);
            if got[t] != want[t] {
                ties += 1; // equal distances: an exact tie
            }
        }
        out.push(format!("{n}x{dim} m {m}: {ties} ties"));
    }
    out.join("; ")
}

fn lists_equal(gpu: &Gpu) -> String {
    let mut out = Vec::new();
    for (n, dim, k) in [
        (20_000, 50, 200),
        (3_000, 128, 64),
        (300, 3, 256),
        (1, 4, 8),
    ] {
        let rows = data(n, dim, 2);
        let want = earlier_neighbors(&rows, dim, k);
        let got = gpu.earlier_neighbors(&rows, dim, k).unwrap();
        assert_eq!(got.len(), want.len());
        let d = |i: usize, j: u32| {
            if j == NO_NEIGHBOR {
                f32::INFINITY
            } else {
                strata_index::distance::l2_squared(
                    &rows[i * dim..][..dim],
                    &rows[j as usize * dim..][..dim],
                )
            }
        };
        let mut differ = 0;
        for i in 0..n {
            for s in 0..k {
                let (g, w) = (got[i * k + s], want[i * k + s]);
                assert!(
                    g == NO_NEIGHBOR || (g as usize) < i,
                    "row {i}: {g} is not earlier"
                );
                if g != w {
                    differ += 1;
                    let (dg, dw) = (d(i, g), d(i, w));
                    assert!(
                        (dg - dw).abs() <= 1e-4 * dw.max(1e-6),
                        "row {i} slot {s}: {g} at {dg} vs {w} at {dw}"
                    );
                }
            }
        }
        out.push(format!("{n}x{dim} k {k}: {differ} near-tie slots"));
    }
    out.join("; ")
}

fn kmeans_objective(gpu: &Gpu) -> String {
    let (n, dim, m) = (50_000, 50, 25);
    let rows = data(n, dim, 3);
    let (_, want) =
        ProductQuantizer::train_batched(&rows, dim, m, 65_536, 7, &mut |r, b, c, codes, d| {
            nearest_codes(r, b, c, codes, Some(d));
            Ok::<(), GpuError>(())
        })
        .unwrap();
    let (_, got) =
        ProductQuantizer::train_batched(&rows, dim, m, 65_536, 7, &mut |r, b, c, codes, d| {
            gpu.nearest_codes(r, b, c, codes, d)
        })
        .unwrap();
    assert!((got - want).abs() <= 0.01 * want, "gpu {got} vs cpu {want}");
    format!("gpu {got:.6}, cpu {want:.6}")
}

/// One comparison on the device; returns the figures to print.
type Check = fn(&Gpu) -> String;

fn main() {
    println!("gpu kernels:");
    match kernels_compile() {
        Ok(s) => println!("  compile with NVRTC: ok ({s})"),
        Err(s) => println!("  compile with NVRTC: {s}"),
    }
    let checks: [(&str, Check); 3] = [
        ("PQ codes equal the CPU's", codes_equal),
        ("neighbour lists equal the CPU's", lists_equal),
        ("k-means objective within 1 %", kmeans_objective),
    ];
    match Gpu::shared() {
        Ok(gpu) => {
            println!("  device: {}", gpu.name());
            for (name, check) in checks {
                println!("  {name}: ok ({})", check(gpu));
            }
        }
        Err(e) => {
            for (name, _) in checks {
                println!("  {name}: SKIPPED (no GPU: {e})");
            }
        }
    }
}
