//! `strata-compaction`: what to merge and how.
//!
//! This crate will hold the pure compaction policy (segment metadata in, a choice out)
//! and the merge job that reads live rows of input segments and writes one output
//! segment; the engine installs the result. It is part of the workspace layout fixed in
//! `DESIGN.md` and is filled by the compaction issue. Until then the engine never merges
//! segments: deleted rows stay as soft tombstones and are skipped by every search.
#![forbid(unsafe_code)]
