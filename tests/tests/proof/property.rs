//! Model-based property test (a proptest state machine): random sequences of upsert,
//! delete, get, exact search, batch, flush, compact, clean reopen, process-crash reopen
//! and power-cut reopen run on a store over the simulated file system and on a model,
//! the store holding `u64` ids or string keys ([`workload::key_of`]).
//! After a power cut the model rolls back to the durable frontier: under
//! `Durability::Always` nothing acknowledged is lost; under `Durability::Never` the store holds the
//! state of some step at or after the last flush or clean close. Failures are shrunk
//! and their seeds kept in `property.proptest-regressions` (committed), which every run
//! replays first.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use strata::vfs::{CutStyle, SimVfs};
use strata::{Db, Durability, KeyKind, SearchOptions};
use strata_tests::workload::{self, State, Write, DIM};

use crate::Tally;

/// Cases per round at CI scale (`STRATA_PROPTEST_CASES` overrides).
const CASES: u32 = 1000;

#[derive(Debug, Clone)]
enum Action {
    Upsert(u64, u8, bool),
    Delete(u64),
    Batch(Vec<(bool, u64, u8)>),
    Get(u64),
    Search(u8, usize),
    Flush,
    Compact(bool),
    Reopen,
    ProcessCrash,
    PowerCut(Option<u64>),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (0..24u64, any::<u8>(), any::<bool>()).prop_map(|(i, s, p)| Action::Upsert(i, s, p)),
        3 => (0..24u64).prop_map(Action::Delete),
        3 => prop::collection::vec((any::<bool>(), 0..24u64, any::<u8>()), 1..6).prop_map(Action::Batch),
        2 => (0..24u64).prop_map(Action::Get),
        2 => (any::<u8>(), 1..10usize).prop_map(|(s, k)| Action::Search(s, k)),
        2 => Just(Action::Flush),
        1 => any::<bool>().prop_map(Action::Compact),
        1 => Just(Action::Reopen),
        1 => Just(Action::ProcessCrash),
        2 => prop::option::of(any::<u64>()).prop_map(Action::PowerCut),
    ]
}

fn vector(seed: u8, id: u64) -> Vec<f32> {
    (0..DIM)
        .map(|i| ((seed as usize * 7 + id as usize * 13 + i * 29) % 41) as f32 / 8.0 - 2.5)
        .collect()
}

struct Machine {
    fs: SimVfs,
    sync: Durability,
    keys: KeyKind,
    db: Option<Db>,
    /// States since the last reopen; the last is the current one.
    history: Vec<State>,
    /// Index in `history` of the newest state known durable.
    frontier: usize,
}

fn fail(what: String) -> TestCaseError {
    TestCaseError::fail(what)
}

impl Machine {
    fn open(fs: &SimVfs, sync: Durability, keys: KeyKind) -> Result<Db, TestCaseError> {
        Db::open(
            Path::new("/p"),
            workload::options(sync, Arc::new(fs.clone())).keys(keys),
        )
        .map_err(|e| fail(format!("open: {e}")))
    }

    fn db(&self) -> Result<&Db, TestCaseError> {
        self.db.as_ref().ok_or_else(|| fail("no store".into()))
    }

    fn current(&self) -> State {
        self.history.last().cloned().unwrap_or_default()
    }

    fn write(&mut self, ws: Vec<Write>) -> Result<(), TestCaseError> {
        self.db()?
            .write(workload::batch_for(self.keys, &ws))
            .map_err(|e| fail(format!("write: {e}")))?;
        let mut s = self.current();
        workload::apply(&mut s, &ws);
        self.history.push(s);
        if self.sync == Durability::Always {
            self.frontier = self.history.len() - 1;
        }
        Ok(())
    }

    /// Reopens on `fs`; the store must hold a state of `history[from..]`.
    fn reopen(&mut self, fs: SimVfs, from: usize) -> Result<(), TestCaseError> {
        let db = Self::open(&fs, self.sync, self.keys)?;
        let got = workload::read_state(&db).map_err(fail)?;
        let found = (from..self.history.len())
            .rev()
            .find(|&j| self.history.get(j) == Some(&got));
        if found.is_none() {
            return Err(fail(format!(
                "after reopen: not a state at or after the durable frontier {from} of {}: {}",
                self.history.len() - 1,
                workload::diff(&self.current(), &got)
            )));
        }
        self.fs = fs;
        self.db = Some(db);
        self.history = vec![got];
        self.frontier = 0;
        Ok(())
    }

    fn step(&mut self, a: &Action) -> Result<(), TestCaseError> {
        match a {
            Action::Upsert(id, s, p) => {
                let payload = p.then(|| vec![*s; (*s % 9) as usize]);
                let metadata = (*s % 3 == 0).then(|| workload::metadata_for(*s as usize, *id));
                let text = (*s % 2 == 1).then(|| workload::text_for(*s as usize, *id));
                self.write(vec![Write::Upsert {
                    id: *id,
                    vector: vector(*s, *id),
                    payload,
                    metadata,
                    text,
                }])?
            }
            Action::Delete(id) => self.write(vec![Write::Delete(*id)])?,
            Action::Batch(ops) => self.write(
                ops.iter()
                    .map(|&(up, id, s)| {
                        if up {
                            Write::Upsert {
                                id,
                                vector: vector(s, id),
                                payload: None,
                                metadata: None,
                                text: None,
                            }
                        } else {
                            Write::Delete(id)
                        }
                    })
                    .collect(),
            )?,
            Action::Get(id) => {
                let db = self.db()?;
                let got = match self.keys {
                    KeyKind::String => db.get_key(&workload::key_of(*id)),
                    _ => db.get(*id),
                };
                let got = got
                    .map_err(|e| fail(format!("get: {e}")))?
                    .map(workload::stored);
                let cur = self.current();
                prop_assert_eq!(got.as_ref(), cur.get(id), "get {}", id);
            }
            Action::Search(s, k) => {
                let q = vector(*s, 99);
                let hits = self
                    .db()?
                    .search(&q, &SearchOptions::exact(*k))
                    .map_err(|e| fail(format!("search: {e}")))?;
                let cur = self.current();
                let mut want: Vec<f32> = cur
                    .values()
                    .map(|(v, _, _, _)| v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum())
                    .collect();
                want.sort_by(f32::total_cmp);
                want.truncate(*k);
                prop_assert_eq!(hits.len(), want.len());
                for (h, w) in hits.iter().zip(&want) {
                    let id = match self.keys {
                        KeyKind::String => h
                            .key
                            .as_deref()
                            .and_then(workload::id_of_key)
                            .ok_or_else(|| fail(format!("hit without a known key: {h:?}")))?,
                        _ => h.id,
                    };
                    let Some((v, _, _, _)) = cur.get(&id) else {
                        return Err(fail(format!("search returned dead id {}", h.id)));
                    };
                    let d: f32 = v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum();
                    prop_assert!((h.distance - d).abs() <= 1e-3 * (1.0 + d));
                    prop_assert!((h.distance - w).abs() <= 1e-3 * (1.0 + w));
                }
            }
            Action::Flush => {
                self.db()?
                    .flush()
                    .map_err(|e| fail(format!("flush: {e}")))?;
                self.frontier = self.history.len() - 1;
            }
            Action::Compact(full) => {
                self.db()?
                    .compact(*full, &|_, _, _| true)
                    .map_err(|e| fail(format!("compact: {e}")))?;
            }
            Action::Reopen => {
                if let Some(db) = self.db.take() {
                    db.close().map_err(|e| fail(format!("close: {e}")))?;
                }
                // A clean close leaves everything durable: a power cut right after it
                // loses nothing.
                let image = self.fs.power_cut(CutStyle::SyncedOnly);
                let last = self.history.len() - 1;
                self.reopen(image, last)?;
            }
            Action::ProcessCrash => {
                drop(self.db.take());
                // The kernel survives: everything written is there.
                let last = self.history.len() - 1;
                self.reopen(self.fs.clone(), last)?;
            }
            Action::PowerCut(style) => {
                drop(self.db.take());
                let style = style.map_or(CutStyle::SyncedOnly, CutStyle::Random);
                let image = self.fs.power_cut(style);
                let frontier = self.frontier;
                self.reopen(image, frontier)?;
            }
        }
        Ok(())
    }
}

fn run_case(never: bool, keyed: bool, actions: &[Action]) -> Result<(), TestCaseError> {
    let fs = SimVfs::new();
    let sync = if never {
        Durability::Never
    } else {
        Durability::Always
    };
    let keys = if keyed { KeyKind::String } else { KeyKind::U64 };
    let db = Machine::open(&fs, sync, keys)?;
    let mut m = Machine {
        fs,
        sync,
        keys,
        db: Some(db),
        history: vec![State::new()],
        frontier: 0,
    };
    for a in actions {
        m.step(a)?;
    }
    let got = workload::read_state(m.db()?).map_err(fail)?;
    prop_assert_eq!(&got, &m.current());
    Ok(())
}

/// One round.
pub fn run(round: u64) -> Tally {
    let mut tally = Tally::default();
    let cases = std::env::var("STRATA_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proof/property.proptest-regressions",
        ))),
        ..Config::default()
    };
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(0x9209 + round).to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(action(), 1..40),
    );
    let result = runner.run(&strategy, |(never, keyed, actions)| {
        run_case(never, keyed, &actions)
    });
    tally.add("property cases", u64::from(cases));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (never, keyed, actions))) => tally.lose(format!(
            "property (never={never}, keyed={keyed}): {why}; minimal sequence: {actions:?}"
        )),
        Err(TestError::Abort(why)) => tally.lose(format!("property aborted: {why}")),
    }
    tally
}
