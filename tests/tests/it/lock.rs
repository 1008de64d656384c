//! A second process opening an open store gets a clear "locked" error.

use crate::common;
use strata::{Db, Error, Metric, Options};

const CHILD_ENV: &str = "STRATA_TEST_LOCK_CHILD_DIR";

#[test]
fn second_process_gets_locked_error() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // Child side: try to open the store the parent holds.
        match Db::open(&dir, Options::existing()) {
            Err(e @ Error::Locked { .. }) => println!("CHILD-RESULT locked: {e}"),
            Err(e) => println!("CHILD-RESULT other error: {e}"),
            Ok(_) => println!("CHILD-RESULT opened"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(2, Metric::L2)).unwrap();
    let out = common::run_child(
        "lock::second_process_gets_locked_error",
        CHILD_ENV,
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CHILD-RESULT locked: store"),
        "child said: {stdout}"
    );
    assert!(
        stdout.contains("locked by another process"),
        "message is clear: {stdout}"
    );
    drop(db);
    // Released on drop: a new open succeeds.
    Db::open(dir.path(), Options::existing()).unwrap();
}

#[test]
fn second_handle_in_the_same_process_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), Options::new(2, Metric::L2)).unwrap();
    let e = Db::open(dir.path(), Options::existing()).err().unwrap();
    assert!(matches!(e, Error::AlreadyOpen { .. }), "{e}");
    assert!(
        e.to_string().contains("already open in this process"),
        "{e}"
    );
}
