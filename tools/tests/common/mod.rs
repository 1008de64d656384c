//! Running the `strata` binary from the command-line tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `strata` with `args`.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata")
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = strata(args);
    assert!(
        out.status.success(),
        "strata {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr, checked to be one `error:` line.
pub fn fails(args: &[&str]) -> String {
    let out = strata(args);
    assert!(!out.status.success(), "strata {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "one-line error expected, got: {err:?}"
    );
    err
}

/// Writes `rows` as an `.fvecs` file.
pub fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut b = Vec::new();
    for r in rows {
        b.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

/// Runs a command that must succeed; returns its stderr.
pub fn ok_stderr(args: &[&str]) -> String {
    let out = strata(args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "strata {args:?} failed: {err}");
    err
}

/// A fresh 2-d L2 store in `t`; returns its path.
pub fn store_2d(t: &tempfile::TempDir) -> String {
    let d = t.path().join("store").to_str().unwrap().to_string();
    ok(&["create", &d, "--dim", "2", "--metric", "l2"]);
    d
}

/// Writes `text` to the file `name` in `t`; returns its path.
pub fn write(t: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = t.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Live rows of the store in `d`, from `strata inspect`.
pub fn live_rows(d: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&ok(&["inspect", d])).unwrap();
    v["live_rows"].as_u64().unwrap()
}
