//! After a failed write the store refuses writes with a sticky error until reopened, and
//! a reopen recovers everything acknowledged.
//!
//! The failure is real: a child process lowers its file-size limit (RLIMIT_FSIZE, with
//! SIGXFSZ ignored) so the WAL append fails with EFBIG.

use crate::common;
use strata::{Db, Error, Metric, Options};

const CHILD_ENV: &str = "STRATA_TEST_POISON_CHILD_DIR";

#[test]
fn failed_wal_write_poisons_until_reopen() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Db::open(dir.path(), Options::new(64, Metric::L2))
        .unwrap()
        .close()
        .unwrap();
    let out = common::run_child(
        "poison::failed_wal_write_poisons_until_reopen",
        CHILD_ENV,
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acked: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CHILD-ACKED "))
        .unwrap_or_else(|| {
            panic!(
                "child output: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .trim()
        .parse()
        .unwrap();
    assert!(stdout.contains("CHILD-STICKY ok"), "child output: {stdout}");
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    for id in 0..acked {
        let r = db
            .get(id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged id {id} lost"));
        assert_eq!(r.vector[0], id as f32);
    }
    assert!(acked > 0);
    db.upsert(acked + 1000, &[1.0; 64]).unwrap();
}

fn child(dir: &str) {
    let db = Db::open(dir, Options::existing()).unwrap();
    // SAFETY: runs only in the re-executed child process. `signal` installs SIG_IGN (no
    // handler code runs, so nothing async-signal-unsafe can happen), and `setrlimit` is
    // a plain syscall reading a fully initialised `rlimit` on the stack; both are safe
    // with the store's threads running.
    // Effect: writes past 48 KiB fail with EFBIG instead of killing the child.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: 48 * 1024,
            rlim_max: libc::RLIM_INFINITY,
        };
        libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
    }
    let mut acked = 0u64;
    let err = loop {
        let mut v = vec![0.0f32; 64];
        v[0] = acked as f32;
        match db.upsert(acked, &v) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "the file-size limit never triggered");
    };
    println!("first error: {err}");
    println!("CHILD-ACKED {acked}");
    // Sticky: later writes fail with Poisoned even though they would fit, and name the
    // first failure (the EFBIG write) as their source.
    let first_is_cause = |r: strata::Result<()>| match r {
        Err(e @ Error::Poisoned { .. }) => {
            std::error::Error::source(&e).is_some_and(|s| s.to_string() == err.to_string())
        }
        _ => false,
    };
    let sticky = first_is_cause(db.delete(0)) && first_is_cause(db.upsert(1, &[0.0; 64]));
    let reported = db
        .background_error()
        .is_some_and(|e| e.to_string() == err.to_string());
    println!(
        "CHILD-STICKY {}",
        if sticky && reported { "ok" } else { "no" }
    );
    std::process::exit(0);
}
