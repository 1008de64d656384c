//! Shared pieces of Strata's whole-store proof suite (`tests/proof`), its crash child
//! process (`src/bin/crash_child.rs`) and the fuzz targets (`fuzz/`): the seeded
//! workload with its history of states, the fuzz target bodies, a BM25 reference, and
//! how tests find (or visibly skip without) what they need from outside the repository.
#![warn(missing_docs)]

pub mod external;
pub mod fault_proxy;
pub mod fixtures;
pub mod fuzz;
pub mod text;
pub mod workload;
