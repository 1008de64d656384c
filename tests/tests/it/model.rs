//! Model-based test: random upsert/delete/batch/flush/reopen/crash sequences agree with a
//! `HashMap`, and exact search agrees with brute force over the model, for every metric.

use std::collections::HashMap;

use proptest::prelude::*;
use strata::{Db, Metric, SearchOptions, WriteBatch};

use crate::common::{self, brute_force};

const DIM: usize = 6;

#[derive(Debug, Clone)]
enum Action {
    Upsert(u64, u16),
    Delete(u64),
    Batch(Vec<(bool, u64, u16)>),
    Flush,
    Reopen,
    CrashReopen,
    Search(u16, usize),
    Get(u64),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0..40u64, any::<u16>()).prop_map(|(i, s)| Action::Upsert(i, s)),
        3 => (0..40u64).prop_map(Action::Delete),
        2 => prop::collection::vec((any::<bool>(), 0..40u64, any::<u16>()), 1..6).prop_map(Action::Batch),
        1 => Just(Action::Flush),
        1 => Just(Action::Reopen),
        1 => Just(Action::CrashReopen),
        3 => (any::<u16>(), 1..12usize).prop_map(|(s, k)| Action::Search(s, k)),
        2 => (0..40u64).prop_map(Action::Get),
    ]
}

/// A deterministic, non-zero vector from a seed.
fn vec_of(seed: u16) -> Vec<f32> {
    (0..DIM)
        .map(|i| {
            ((seed as usize * 31 + i * 17) % 97) as f32 / 10.0 - 4.0
                + if i == 0 { 0.05 } else { 0.0 }
        })
        .collect()
}

struct Harness {
    dir: tempfile::TempDir,
    metric: Metric,
    db: Option<Db>,
    model: HashMap<u64, Vec<f32>>,
}

impl Harness {
    fn db(&self) -> &Db {
        self.db.as_ref().unwrap()
    }

    fn stored(&self, v: Vec<f32>) -> Vec<f32> {
        if self.metric == Metric::Cosine {
            common::normalized(&v)
        } else {
            v
        }
    }

    fn step(&mut self, a: &Action) -> Result<(), TestCaseError> {
        match a {
            Action::Upsert(id, s) => {
                self.db().upsert(*id, &vec_of(*s)).unwrap();
                let v = self.stored(vec_of(*s));
                self.model.insert(*id, v);
            }
            Action::Delete(id) => {
                self.db().delete(*id).unwrap();
                self.model.remove(id);
            }
            Action::Batch(ops) => {
                let mut b = WriteBatch::new();
                for (up, id, s) in ops {
                    if *up {
                        b.upsert(*id, &vec_of(*s));
                    } else {
                        b.delete(*id);
                    }
                }
                self.db().write(b).unwrap();
                for (up, id, s) in ops {
                    if *up {
                        let v = self.stored(vec_of(*s));
                        self.model.insert(*id, v);
                    } else {
                        self.model.remove(id);
                    }
                }
            }
            Action::Flush => self.db().flush().unwrap(),
            Action::Reopen => {
                self.db.take().unwrap().close().unwrap();
                self.db = Some(common::open(self.dir.path(), DIM, self.metric));
            }
            Action::CrashReopen => {
                drop(self.db.take());
                self.db = Some(common::open(self.dir.path(), DIM, self.metric));
            }
            Action::Get(id) => {
                let got = self.db().get(*id).unwrap().map(|r| r.vector);
                let want = self.model.get(id);
                prop_assert_eq!(got.is_some(), want.is_some(), "get {}", id);
                if let (Some(g), Some(w)) = (got, want) {
                    // Exact for l2/ip; cosine normalisation may differ in the last bit.
                    prop_assert!(
                        g.iter().zip(w).all(|(a, b)| (a - b).abs() <= 1e-6),
                        "get {}: {:?} vs {:?}",
                        id,
                        g,
                        w
                    );
                }
            }
            Action::Search(s, k) => self.check_search(&vec_of(s.wrapping_mul(7)), *k)?,
        }
        Ok(())
    }

    fn check_search(&self, q: &[f32], k: usize) -> Result<(), TestCaseError> {
        let qn = self.stored(q.to_vec());
        // Approximate search: only live rows, true distances, sorted, and k of them
        // whenever k live rows exist.
        let approx = self.db().search(q, &SearchOptions::new(k)).unwrap();
        prop_assert_eq!(approx.len(), k.min(self.model.len()));
        prop_assert!(approx.windows(2).all(|w| w[0].distance <= w[1].distance));
        for h in &approx {
            let v = self.model.get(&h.id);
            prop_assert!(v.is_some(), "approximate search returned dead id {}", h.id);
            let true_d = common::distance(self.metric, &qn, v.unwrap());
            prop_assert!((h.distance - true_d).abs() <= 1e-3 * (1.0 + true_d.abs()));
        }
        // Exact search agrees with brute force over the model.
        let hits = self.db().search(q, &SearchOptions::exact(k)).unwrap();
        let want = brute_force(self.metric, &qn, self.model.iter().map(|(i, v)| (*i, v)), k);
        prop_assert_eq!(hits.len(), want.len());
        for (h, w) in hits.iter().zip(&want) {
            let v = self.model.get(&h.id);
            prop_assert!(v.is_some(), "search returned dead id {}", h.id);
            let true_d = common::distance(self.metric, &qn, v.unwrap());
            let tol = 1e-3 * (1.0 + true_d.abs());
            prop_assert!(
                (h.distance - true_d).abs() <= tol,
                "id {} distance {} vs {}",
                h.id,
                h.distance,
                true_d
            );
            prop_assert!(
                (h.distance - w.1).abs() <= tol,
                "rank distance {} vs brute force {}",
                h.distance,
                w.1
            );
        }
        Ok(())
    }
}

fn run(metric: Metric, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), DIM, metric);
    let mut h = Harness {
        dir,
        metric,
        db: Some(db),
        model: HashMap::new(),
    };
    for a in &actions {
        h.step(a)?;
    }
    h.check_search(&vec_of(3), 40)?;
    prop_assert_eq!(h.db().stats().unwrap().live_rows, h.model.len() as u64);
    Ok(())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("STRATA_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_l2(actions in prop::collection::vec(action(), 1..60)) {
        run(Metric::L2, actions)?;
    }

    #[test]
    fn model_inner_product(actions in prop::collection::vec(action(), 1..60)) {
        run(Metric::InnerProduct, actions)?;
    }

    #[test]
    fn model_cosine(actions in prop::collection::vec(action(), 1..60)) {
        run(Metric::Cosine, actions)?;
    }
}
