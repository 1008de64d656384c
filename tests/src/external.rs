//! What some tests need from outside this repository (`../shared/data`, the peers'
//! Python with faiss), and the one way they skip without it.
//!
//! A skip is printed straight to the process's standard error, which the test harness
//! does not capture, so it shows in every run. With `STRATA_REQUIRE_DATA=1` (CI sets it:
//! CI has the data) a skip is a failure instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable that turns every skip into a failure.
pub const REQUIRE_VAR: &str = "STRATA_REQUIRE_DATA";

/// Whether this run requires every external input (`STRATA_REQUIRE_DATA=1`).
pub fn required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| v == "1")
}

/// Skips the calling test with a visible reason, or panics when [`required`].
pub fn skip(test: &str, reason: &str) {
    assert!(!required(), "{test}: {REQUIRE_VAR}=1, but {reason}");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// `../shared/data/<set>` beside this repository, when it holds `probe`.
pub fn shared_data(set: &str, probe: &str) -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(set);
    d.join(probe).exists().then_some(d)
}

/// A Python with `faiss` and `numpy`: `$PEERS_PY`, else the peers' virtualenv made by
/// `../shared/peers/setup.sh`.
pub fn faiss_python() -> Option<PathBuf> {
    let py = std::env::var_os("PEERS_PY")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(".cache/strata-peers/venv/bin/python"))
        })?;
    let ok = Command::new(&py)
        .args(["-c", "import faiss, numpy"])
        .output()
        .ok()?
        .status
        .success();
    ok.then_some(py)
}

/// The environment variable naming an S3-compatible endpoint on loopback (moto's server,
/// started by `test.sh`) whose bucket `strata-test` the remote-store tests use.
pub const S3_ENDPOINT_VAR: &str = "STRATA_TEST_S3";

/// The S3 endpoint of [`S3_ENDPOINT_VAR`], if set.
pub fn s3_endpoint() -> Option<String> {
    std::env::var(S3_ENDPOINT_VAR)
        .ok()
        .filter(|s| !s.is_empty())
}
