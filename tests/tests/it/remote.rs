//! Stores kept in a bucket (`Options::remote`): restore, fencing of a second writer,
//! racing claims, a writer killed at every step of a flush's upload and commit, and
//! garbage collection. Every test runs on a local folder through `file://` and on S3 (moto's
//! server on loopback, `STRATA_TEST_S3`; `test.sh` starts it).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use strata::remote_store::{Bucket, FileKind, RemoteWriter};
use strata::vfs::{Action, FaultVfs, Op, Vfs};
use strata::{Db, Durability, Error, Metric, Options, RemoteConfig, SearchOptions};
use strata_tests::external;
use strata_tests::fault_proxy::{Fault, FaultProxy, Plan};

use crate::common;

/// A bucket to test against, and the folder behind it when it is local.
struct Backend {
    label: &'static str,
    config: RemoteConfig,
    _folder: Option<tempfile::TempDir>,
}

/// A prefix no other test or run uses.
fn unique(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{test}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The S3 bucket of `STRATA_TEST_S3` at a fresh prefix.
fn s3(endpoint: &str, test: &str) -> RemoteConfig {
    s3_at(endpoint, &unique(test))
}

/// The S3 bucket behind `endpoint`, at `prefix`.
fn s3_at(endpoint: &str, prefix: &str) -> RemoteConfig {
    RemoteConfig::new(format!("s3://strata-test/{prefix}"))
        .option("aws_endpoint", endpoint)
        .option("aws_allow_http", "true")
        .option("aws_access_key_id", "test")
        .option("aws_secret_access_key", "test")
        .option("aws_region", "us-east-1")
}

/// A local folder bucket, and S3 when `STRATA_TEST_S3` names an endpoint (else a printed
/// skip of that half, a failure in CI).
fn backends(test: &str) -> Vec<Backend> {
    let folder = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", folder.path().display());
    let mut out = vec![Backend {
        label: "folder",
        config: RemoteConfig::new(url),
        _folder: Some(folder),
    }];
    match external::s3_endpoint() {
        Some(ep) => out.push(Backend {
            label: "s3",
            config: s3(&ep, test),
            _folder: None,
        }),
        None => external::skip(
            &format!("{test} (S3 half)"),
            &format!(
                "{} is not set (test.sh starts moto's S3 server on loopback and sets it)",
                external::S3_ENDPOINT_VAR
            ),
        ),
    }
    out
}

const DIM: usize = 8;

fn options(config: &RemoteConfig) -> Options {
    common::small(DIM, Metric::L2).remote(config.clone())
}

fn vector(id: u64) -> Vec<f32> {
    (0..DIM)
        .map(|i| ((id * 31 + i as u64 * 7) % 97) as f32 / 97.0)
        .collect()
}

/// The whole error chain as text.
fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Checks that the store in `dir` holds exactly the ids in `live`, with their vectors.
fn assert_holds(db: &Db, live: &[u64], what: &str) {
    assert_eq!(db.len(), live.len() as u64, "{what}: live rows");
    for &id in live {
        let r = db
            .get(id)
            .expect("get")
            .unwrap_or_else(|| panic!("{what}: id {id} missing"));
        assert_eq!(r.vector, vector(id), "{what}: id {id}");
    }
}

#[test]
fn a_store_in_a_bucket_restores_with_every_flushed_write() {
    for b in backends("restore") {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), options(&b.config)).expect("create");
        for id in 0..300 {
            db.upsert(id, &vector(id)).expect("upsert");
        }
        for id in (0..300).step_by(7) {
            db.delete(id).expect("delete");
        }
        db.flush().expect("flush");
        db.compact(true, &|_, _, _| true).expect("compact");
        let live: Vec<u64> = (0..300).filter(|id| id % 7 != 0).collect();
        let q = vector(5);
        let want = db.search(&q, &SearchOptions::exact(10)).expect("search");
        db.close().expect("close");

        let copy = tempfile::tempdir().expect("tempdir");
        let report = strata::restore(&b.config, copy.path()).expect("restore");
        assert!(
            report.files >= 1 && report.bytes > 0,
            "{}: {report:?}",
            b.label
        );
        let restored = Db::open(copy.path(), Options::existing()).expect("open the copy");
        assert_holds(&restored, &live, b.label);
        let got = restored
            .search(&q, &SearchOptions::exact(10))
            .expect("search");
        assert_eq!(
            got.iter().map(|h| h.id).collect::<Vec<_>>(),
            want.iter().map(|h| h.id).collect::<Vec<_>>(),
            "{}",
            b.label
        );
        drop(restored);

        // The original directory reopens as the bucket's writer and keeps going.
        let db = Db::open(dir.path(), options(&b.config)).expect("reopen");
        assert_holds(&db, &live, b.label);
        db.upsert(1000, &vector(1000)).expect("upsert");
        db.close().expect("close");
    }
}

#[test]
fn a_new_writer_fences_the_old_one_and_the_old_directory_diverges() {
    for b in backends("fence") {
        let a_dir = tempfile::tempdir().expect("tempdir");
        let a = Db::open(a_dir.path(), options(&b.config)).expect("create");
        for id in 0..50 {
            a.upsert(id, &vector(id)).expect("upsert");
        }
        a.flush().expect("flush");

        // A second writer on another machine: an empty directory restores and claims.
        let b_dir = tempfile::tempdir().expect("tempdir");
        let second = Db::open(b_dir.path(), Options::existing().remote(b.config.clone()))
            .expect("take over");
        assert_holds(&second, &(0..50).collect::<Vec<_>>(), b.label);

        // The first writer's next commit loses: it stops, and never overwrites.
        a.upsert(60, &vector(60))
            .expect("a write to the log still succeeds");
        let e = a.flush().expect_err("the fenced writer's flush must fail");
        assert!(
            chain(&e).contains("another writer committed"),
            "{}: {}",
            b.label,
            chain(&e)
        );
        assert!(
            a.upsert(61, &vector(61)).is_err(),
            "{}: writes after fencing",
            b.label
        );
        drop(a);

        for id in 100..140 {
            second.upsert(id, &vector(id)).expect("upsert");
        }
        second.close().expect("close");

        match Db::open(a_dir.path(), options(&b.config)) {
            Err(Error::RemoteDiverged { .. }) => {}
            other => panic!(
                "{}: reopening the fenced directory gave {:?}",
                b.label,
                other.map(|_| ())
            ),
        }
        let copy = tempfile::tempdir().expect("tempdir");
        strata::restore(&b.config, copy.path()).expect("restore");
        let restored = Db::open(copy.path(), Options::existing()).expect("open");
        let want: Vec<u64> = (0..50).chain(100..140).collect();
        assert_holds(&restored, &want, b.label);
    }
}

#[test]
fn of_two_racing_claims_exactly_one_wins_every_time() {
    let races = 1000;
    for b in backends("race") {
        // The claims' REMOTE files go to a simulated disk: the race is the bucket's.
        let fs: Arc<dyn Vfs> = Arc::new(strata::vfs::SimVfs::new());
        let dirs = [Path::new("/writer0"), Path::new("/writer1")];
        for d in dirs {
            fs.create_dir_all(d).expect("mkdir");
        }
        let probe = Bucket::connect(&b.config).expect("connect");
        let mut wins = [0u32; 2];
        let mut latest = None;
        for race in 0..races {
            let barrier = Barrier::new(2);
            let outcomes: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|w| {
                        let (latest, barrier, dir, fs, config) =
                            (&latest, &barrier, dirs[w], &fs, &b.config);
                        s.spawn(move || {
                            let bucket = Bucket::connect(config).expect("connect");
                            barrier.wait();
                            RemoteWriter::claim(
                                bucket,
                                latest.as_ref(),
                                &**fs,
                                dir,
                                format!("writer {w} race {race}").into_bytes(),
                                &[],
                                Duration::from_secs(600),
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("join"))
                    .collect()
            });
            let won: Vec<usize> = (0..2).filter(|&w| outcomes[w].is_ok()).collect();
            assert_eq!(won.len(), 1, "{} race {race}: winners {won:?}", b.label);
            let lost = 1 - won[0];
            assert!(
                matches!(
                    outcomes[lost],
                    Err(strata::remote_store::Error::Fenced { .. })
                ),
                "{} race {race}: the loser got {:?}",
                b.label,
                outcomes[lost].as_ref().map(|_| ())
            );
            wins[won[0]] += 1;
            let now = probe
                .latest_after(race as u64)
                .expect("latest")
                .expect("a commit");
            assert_eq!(now.seq, race as u64 + 1, "{}", b.label);
            assert_eq!(
                now.manifest,
                format!("writer {} race {race}", won[0]).into_bytes(),
                "{}: the bucket holds the winner's commit",
                b.label
            );
            latest = Some(now);
        }
        println!("{}: {races} races, wins {wins:?}", b.label);
    }
}

/// Fails every disk operation from the `at`-th change on once armed, as a machine that
/// dies there.
fn dying_at(at: u64, armed: Arc<AtomicBool>) -> impl Fn(u64, Op, &Path, usize) -> Action {
    let seen = AtomicU64::new(0);
    move |_, op, _, _| {
        if armed.load(Ordering::SeqCst)
            && op.mutates()
            && seen.fetch_add(1, Ordering::SeqCst) + 1 >= at
        {
            Action::Crash { keep: 0 }
        } else {
            Action::Proceed
        }
    }
}

#[test]
fn a_writer_killed_at_every_step_of_a_flush_loses_nothing() {
    for b in backends("killed") {
        let mut at = 1;
        loop {
            let config = b.config.clone();
            let config = RemoteConfig {
                url: format!("{}/{at}", config.url),
                ..config
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let armed = Arc::new(AtomicBool::new(false));
            let fs: Arc<dyn Vfs> = Arc::new(FaultVfs::new(
                strata::vfs::os(),
                dying_at(at, armed.clone()),
            ));
            let db = Db::open(dir.path(), options(&config).vfs(fs)).expect("create");
            for id in 0..40 {
                db.upsert(id, &vector(id)).expect("upsert");
            }
            db.flush().expect("flush");
            for id in 40..80 {
                db.upsert(id, &vector(id)).expect("upsert");
            }
            for id in (0..80).step_by(9) {
                db.delete(id).expect("delete");
            }
            armed.store(true, Ordering::SeqCst);
            let survived = db.flush().is_ok();
            drop(db);
            let live: Vec<u64> = (0..80).filter(|id| id % 9 != 0).collect();

            // Every acknowledged write is in the directory and its bucket together.
            let reopened = Db::open(dir.path(), options(&config)).unwrap_or_else(|e| {
                panic!("{} killed at change {at}: reopen: {}", b.label, chain(&e))
            });
            assert_holds(
                &reopened,
                &live,
                &format!("{} killed at change {at}", b.label),
            );
            reopened.close().expect("close");
            // And the bucket alone restores them all (the reopen committed them).
            let copy = tempfile::tempdir().expect("tempdir");
            strata::restore(&config, copy.path()).expect("restore");
            let restored = Db::open(copy.path(), Options::existing()).expect("open");
            assert_holds(
                &restored,
                &live,
                &format!("{} restore after change {at}", b.label),
            );
            drop(restored);
            if survived {
                println!(
                    "{}: a flush makes {} changes; killed at each",
                    b.label,
                    at - 1
                );
                assert!(at > 3, "{}: the flush was never interrupted", b.label);
                break;
            }
            at += 1;
        }
    }
}

#[test]
fn garbage_is_collected_after_the_grace_period_and_never_before() {
    for b in backends("gc") {
        for grace in [Duration::ZERO, Duration::from_secs(3600)] {
            let config = RemoteConfig {
                url: format!("{}/grace{}", b.config.url, grace.as_secs()),
                ..b.config.clone()
            }
            .gc_grace(grace);
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open(dir.path(), options(&config)).expect("create");
            for round in 0..4u64 {
                for id in round * 40..round * 40 + 40 {
                    db.upsert(id, &vector(id)).expect("upsert");
                }
                db.delete(round * 40).expect("delete");
                db.flush().expect("flush");
            }
            db.compact(true, &|_, _, _| true).expect("compact");
            db.close().expect("close");
            let bucket = Bucket::connect(&config).expect("connect");
            let latest = bucket.latest().expect("latest").expect("a commit");
            // One more collection by a fresh writer session, then count what is left.
            let copy = tempfile::tempdir().expect("tempdir");
            let writer = Db::open(dir.path(), options(&config)).expect("reopen");
            drop(writer);
            let _ = copy;
            let manifests = bucket.manifests().expect("list").len();
            let objects = bucket
                .list(strata::remote_store::names::DATA)
                .expect("list")
                .len();
            let segs = latest
                .files
                .iter()
                .filter(|f| f.kind == FileKind::Segment)
                .count();
            if grace.is_zero() {
                assert!(manifests <= 3, "{}: {manifests} commits left", b.label);
                assert!(
                    objects <= latest.files.len() + 2,
                    "{}: {objects} objects left for {} named",
                    b.label,
                    latest.files.len()
                );
            } else {
                assert!(
                    manifests >= 6,
                    "{}: commits collected inside the grace period ({manifests})",
                    b.label
                );
                assert!(
                    objects > segs + 2,
                    "{}: objects collected inside the grace period ({objects})",
                    b.label
                );
            }
            let restore_dir = tempfile::tempdir().expect("tempdir");
            strata::restore(&config, restore_dir.path()).expect("restore");
            let restored = Db::open(restore_dir.path(), Options::existing()).expect("open");
            let live: Vec<u64> = (0..160).filter(|id| id % 40 != 0).collect();
            assert_holds(&restored, &live, b.label);
        }
    }
}

#[test]
fn bucket_durability_needs_a_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    match Db::open(
        dir.path(),
        Options::new(DIM, Metric::L2).durability(Durability::Bucket),
    ) {
        Err(Error::InvalidArgument(strata::InvalidArgument::BucketDurability)) => {}
        other => panic!("got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_new_writer_takes_over_every_write_acknowledged_in_the_bucket() {
    for b in backends("takeover") {
        let a_dir = tempfile::tempdir().expect("tempdir");
        let opts = Options::new(DIM, Metric::L2)
            .durability(Durability::Bucket)
            .remote(b.config.clone());
        let a = Db::open(a_dir.path(), opts).expect("create");
        for id in 0..30 {
            a.upsert(id, &vector(id)).expect("upsert");
        }
        for id in (0..30).step_by(4) {
            a.delete(id).expect("delete");
        }
        // The writer's machine is lost: nothing was flushed, its directory is gone.
        let b_dir = tempfile::tempdir().expect("tempdir");
        let second = Db::open(b_dir.path(), Options::existing().remote(b.config.clone()))
            .expect("take over");
        let live: Vec<u64> = (0..30).filter(|id| id % 4 != 0).collect();
        assert_holds(&second, &live, b.label);
        // The old writer's next write is refused: the new session fenced its log.
        let e = a
            .upsert(99, &vector(99))
            .expect_err("a fenced writer must not acknowledge");
        assert!(
            chain(&e).contains("another writer"),
            "{}: {}",
            b.label,
            chain(&e)
        );
        drop(a);
        second.upsert(100, &vector(100)).expect("upsert");
        second.close().expect("close");
        let copy = tempfile::tempdir().expect("tempdir");
        strata::restore(&b.config, copy.path()).expect("restore");
        let restored = Db::open(copy.path(), Options::existing()).expect("open");
        let mut want = live.clone();
        want.push(100);
        assert_holds(&restored, &want, b.label);
    }
}

#[test]
fn a_bucket_durable_writer_killed_at_every_step_loses_no_acknowledged_write() {
    const WRITES: u64 = 24;
    for b in backends("bucket-killed") {
        let mut at = 1;
        loop {
            let config = RemoteConfig {
                url: format!("{}/{at}", b.config.url),
                ..b.config.clone()
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let armed = Arc::new(AtomicBool::new(false));
            let fs: Arc<dyn Vfs> = Arc::new(FaultVfs::new(
                strata::vfs::os(),
                dying_at(at, armed.clone()),
            ));
            let opts = options(&config)
                .memtable_bytes(1024)
                .durability(Durability::Bucket)
                .vfs(fs);
            let db = Db::open(dir.path(), opts).expect("create");
            armed.store(true, Ordering::SeqCst);
            // Upserts, with every third id deleted right after; stop at the first failure.
            let mut acked: Vec<u64> = Vec::new();
            let mut deleted: Vec<u64> = Vec::new();
            let mut all_ok = true;
            for id in 0..WRITES {
                if db.upsert(id, &vector(id)).is_err() {
                    all_ok = false;
                    break;
                }
                acked.push(id);
                if id % 3 == 0 {
                    if db.delete(id).is_err() {
                        all_ok = false;
                        break;
                    }
                    deleted.push(id);
                }
            }
            drop(db);
            drop(dir); // the machine is gone: only the bucket is left

            let what = format!("{} killed at change {at}", b.label);
            let copy = tempfile::tempdir().expect("tempdir");
            strata::restore(&config, copy.path())
                .unwrap_or_else(|e| panic!("{what}: restore: {}", chain(&e)));
            let restored = Db::open(copy.path(), Options::existing())
                .unwrap_or_else(|e| panic!("{what}: open: {}", chain(&e)));
            for &id in &acked {
                let got = restored.get(id).expect("get");
                if deleted.contains(&id) {
                    assert!(got.is_none(), "{what}: deleted id {id} is back");
                } else {
                    let r = got.unwrap_or_else(|| panic!("{what}: acknowledged id {id} lost"));
                    assert_eq!(r.vector, vector(id), "{what}: id {id}");
                }
            }
            // Nothing beyond the write that failed.
            let attempted = acked.last().map_or(0, |l| l + 1);
            assert!(
                restored.len() <= attempted + 1,
                "{what}: {} rows",
                restored.len()
            );
            drop(restored);
            if all_ok {
                println!(
                    "{}: {WRITES} writes make {} changes; killed at each",
                    b.label,
                    at - 1
                );
                assert!(
                    at > WRITES,
                    "{}: the writes were never interrupted",
                    b.label
                );
                break;
            }
            at += 1;
        }
    }
}

/// S3 through a fault-injecting proxy applying `plan` (with few, quick client retries),
/// and the same prefix reached directly; a printed skip without S3.
fn proxied(test: &str, plan: Plan) -> Option<(FaultProxy, RemoteConfig, RemoteConfig)> {
    let Some(endpoint) = external::s3_endpoint() else {
        external::skip(
            test,
            &format!(
                "{} is not set (test.sh starts moto's S3 server)",
                external::S3_ENDPOINT_VAR
            ),
        );
        return None;
    };
    let upstream = endpoint.trim_start_matches("http://").to_string();
    let proxy = FaultProxy::start(&upstream, plan).expect("start the proxy");
    let prefix = unique(test);
    let through = s3_at(&proxy.endpoint(), &prefix).retries(3, Duration::from_secs(5));
    Some((proxy, through, s3_at(&endpoint, &prefix)))
}

#[test]
fn a_flaky_bucket_loses_nothing() {
    let plan: Plan = Box::new(|n, method, _| match n {
        n if n % 5 == 0 => Fault::Unavailable,
        n if n % 7 == 0 => Fault::DropRequest,
        n if n % 11 == 0 && method == "PUT" => Fault::DropReply,
        n if n % 13 == 0 => Fault::Delay(30),
        _ => Fault::Pass,
    });
    let Some((proxy, through, direct)) = proxied("flaky", plan) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options(&through).durability(Durability::Bucket))
        .unwrap_or_else(|e| panic!("create: {}", chain(&e)));
    for id in 0..120 {
        db.upsert(id, &vector(id))
            .unwrap_or_else(|e| panic!("upsert {id}: {}", chain(&e)));
        if id % 10 == 0 {
            db.delete(id)
                .unwrap_or_else(|e| panic!("delete {id}: {}", chain(&e)));
        }
        if id == 60 {
            db.flush()
                .unwrap_or_else(|e| panic!("flush: {}", chain(&e)));
        }
    }
    db.compact(true, &|_, _, _| true)
        .unwrap_or_else(|e| panic!("compact: {}", chain(&e)));
    db.close()
        .unwrap_or_else(|e| panic!("close: {}", chain(&e)));
    let faults = proxy.faults();
    for kind in [Fault::Unavailable, Fault::DropRequest, Fault::DropReply] {
        assert!(
            faults.iter().any(|f| f.3 == kind),
            "no {kind:?} was injected in {} requests",
            proxy.requests()
        );
    }
    let copy = tempfile::tempdir().expect("tempdir");
    strata::restore(&direct, copy.path()).expect("restore");
    let restored = Db::open(copy.path(), Options::existing()).expect("open");
    let live: Vec<u64> = (0..120).filter(|id| id % 10 != 0).collect();
    assert_holds(&restored, &live, "flaky bucket");
    println!(
        "{} requests, {} faults injected",
        proxy.requests(),
        faults.len()
    );
}

#[test]
fn a_writer_cut_off_at_every_request_leaves_a_consistent_bucket() {
    let mut at = 1;
    loop {
        let cut = at;
        let plan: Plan = Box::new(move |n, _, _| {
            if n >= cut {
                Fault::DropRequest
            } else {
                Fault::Pass
            }
        });
        let Some((proxy, through, direct)) = proxied("cut", plan) else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut acked: Vec<u64> = Vec::new();
        let mut completed = false;
        if let Ok(db) = Db::open(dir.path(), options(&through).durability(Durability::Bucket)) {
            completed = (|| {
                for id in 0..8 {
                    db.upsert(id, &vector(id)).ok()?;
                    acked.push(id);
                }
                db.flush().ok()?;
                db.upsert(8, &vector(8)).ok()?;
                acked.push(8);
                Some(())
            })()
            .is_some();
            drop(db);
        }
        drop(proxy);
        let what = format!("cut off from request {at}");
        // Whatever was committed or acknowledged is whole in the bucket.
        let copy = tempfile::tempdir().expect("tempdir");
        match strata::restore(&direct, copy.path()) {
            Ok(_) => {
                let restored = Db::open(copy.path(), Options::existing()).expect("open");
                for &id in &acked {
                    let r = restored.get(id).expect("get");
                    assert_eq!(r.map(|r| r.vector), Some(vector(id)), "{what}: id {id}");
                }
            }
            Err(e) => assert!(
                acked.is_empty(),
                "{what}: restore failed with acknowledged writes: {}",
                chain(&e)
            ),
        }
        // A new writer collects what no commit names (the cut-off uploads).
        let next = tempfile::tempdir().expect("tempdir");
        if let Ok(db) = Db::open(
            next.path(),
            options(&direct.clone().gc_grace(Duration::ZERO)),
        ) {
            db.close().expect("close");
            let bucket = Bucket::connect(&direct).expect("connect");
            let latest = bucket.latest().expect("latest").expect("a commit");
            let objects = bucket
                .list(strata::remote_store::names::DATA)
                .expect("list");
            assert_eq!(
                objects.len(),
                latest.files.len(),
                "{what}: unnamed objects left"
            );
        }
        if completed {
            println!("cut off at each of {} requests", at - 1);
            assert!(at > 10, "the writer was never cut off");
            break;
        }
        at += 1;
    }
}

fn random_vector(rng: &mut impl rand::Rng, dim: usize) -> Vec<f32> {
    common::vector(rng, dim)
}

/// Asserts that `replica` answers `queries` exactly as `primary` (same ids, distances).
fn assert_same_answers(primary: &Db, replica: &strata::Replica, queries: &[Vec<f32>], what: &str) {
    let opts = SearchOptions {
        ef: Some(48),
        ..SearchOptions::new(10)
    };
    for (i, q) in queries.iter().enumerate() {
        let want = primary.search(q, &opts).expect("primary search");
        let got = replica.search(q, &opts).expect("replica search");
        let ids = |h: &[strata::Hit]| {
            h.iter()
                .map(|h| (h.id, h.distance.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&got), ids(&want), "{what}: query {i}");
    }
}

#[test]
fn a_replica_answers_as_the_primary_does_at_the_same_commit() {
    const DIM: usize = 16;
    for b in backends("replica") {
        let mut rng = common::rng(17);
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options::new(DIM, Metric::L2)
            .index(strata_tests::workload::small_index(64, 32))
            .background_compaction(false)
            .remote(b.config.clone());
        let primary = Db::open(dir.path(), opts).expect("create");
        for round in 0..2u64 {
            for id in round * 1500..round * 1500 + 1500 {
                primary
                    .upsert(id, &random_vector(&mut rng, DIM))
                    .expect("upsert");
            }
            primary.flush().expect("flush");
        }
        for id in (0..3000).step_by(13) {
            primary.delete(id).expect("delete");
        }
        primary.flush().expect("flush");
        let queries: Vec<Vec<f32>> = (0..40).map(|_| random_vector(&mut rng, DIM)).collect();

        for cache_bytes in [64 << 20, 64 << 10] {
            let cache = tempfile::tempdir().expect("tempdir");
            let replica = Db::open_replica(b.config.clone(), cache.path(), cache_bytes)
                .unwrap_or_else(|e| panic!("{}: open replica: {}", b.label, chain(&e)));
            assert_eq!(replica.len(), primary.len(), "{}", b.label);
            let what = format!("{} cache {cache_bytes}", b.label);
            assert_same_answers(&primary, &replica, &queries, &what);
            for id in [1u64, 14, 1499, 2999] {
                assert_eq!(
                    replica.get(id).expect("get").map(|r| r.vector),
                    primary.get(id).expect("get").map(|r| r.vector),
                    "{what}: id {id}"
                );
            }
            let s = replica.replica_stats();
            assert!(
                s.vector_reads > 0,
                "{what}: full vectors never read by range: {s:?}"
            );
            assert!(
                s.cached_bytes <= cache_bytes.max(64 << 10),
                "{what}: cache over budget: {s:?}"
            );
            let seg_bytes: u64 = common::files_with_ext(dir.path(), "seg")
                .iter()
                .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
                .sum();
            assert!(
                s.front_bytes < seg_bytes,
                "{what}: fronts {s:?} vs segments {seg_bytes}"
            );

            // The primary moves on; the replica follows to the new commit.
            for id in 3000..3400 {
                primary
                    .upsert(id, &random_vector(&mut rng, DIM))
                    .expect("upsert");
            }
            primary.flush().expect("flush");
            primary.compact(true, &|_, _, _| true).expect("compact");
            let before = replica.seq();
            assert!(
                replica.refresh().expect("refresh") || replica.seq() > before,
                "{what}: did not follow"
            );
            let bucket = Bucket::connect(&b.config).expect("connect");
            assert_eq!(
                replica.seq(),
                bucket.latest().expect("latest").expect("a commit").seq,
                "{what}"
            );
            assert_eq!(replica.len(), primary.len(), "{what}");
            assert_same_answers(
                &primary,
                &replica,
                &queries,
                &format!("{what}, after compaction"),
            );
        }
        primary.close().expect("close");
    }
}

#[test]
fn a_replica_refuses_vectors_damaged_in_the_bucket() {
    const DIM: usize = 16;
    let folder = tempfile::tempdir().expect("tempdir");
    let config = RemoteConfig::new(format!("file://{}", folder.path().display()));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = common::rng(23);
    let opts = Options::new(DIM, Metric::L2)
        .index(strata_tests::workload::small_index(64, 32))
        .remote(config.clone());
    let db = Db::open(dir.path(), opts).expect("create");
    let vectors: Vec<Vec<f32>> = (0..2000).map(|_| random_vector(&mut rng, DIM)).collect();
    for (id, v) in vectors.iter().enumerate() {
        db.upsert(id as u64, v).expect("upsert");
    }
    db.close().expect("close");
    // Flip one byte inside the full vectors of the segment object in the bucket.
    let seg = walk(folder.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment object");
    let bytes = std::fs::read(&seg).expect("read");
    let sections =
        strata_format::segment::sections_from_tail(&bytes, bytes.len() as u64).expect("sections");
    let vectors_at = sections
        .iter()
        .find(|(k, _)| *k == strata_format::segment::SectionKind::Vectors as u32)
        .map(|(_, r)| r.clone())
        .expect("a vectors section");
    common::flip(&seg, vectors_at.start + 1000);

    let cache = tempfile::tempdir().expect("tempdir");
    let replica = Db::open_replica(config, cache.path(), 1 << 20).expect("open replica");
    let (mut refused, mut served) = (0, 0);
    for (id, v) in vectors.iter().enumerate() {
        match replica.get(id as u64) {
            Ok(Some(r)) => {
                assert_eq!(&r.vector, v, "id {id}: a damaged vector was served");
                served += 1;
            }
            Ok(None) => panic!("id {id} missing"),
            Err(e) => {
                assert!(e.is_corruption(), "id {id}: {}", chain(&e));
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the damaged block was never reported");
    assert!(served > 1900, "only {served} undamaged rows served");
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
