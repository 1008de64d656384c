//! Shared pieces of Strata's whole-store proof suite (`tests/proof`), its crash child
//! process (`src/bin/crash_child.rs`) and the fuzz targets (`fuzz/`): the seeded
//! workload with its history of states, and the fuzz target bodies.
#![warn(missing_docs)]

pub mod fuzz;
pub mod workload;
