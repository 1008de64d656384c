//! Full-text search: how text becomes terms ([`Analyzer`]) and how a term scores a row
//! ([`Bm25`]). The index of terms (dictionary, postings) is stored by `strata-format`;
//! the exact top-k over it is the engine's.

mod analyzer;
mod bm25;

pub use analyzer::{Analyzer, MAX_TERM_LEN};
pub use bm25::{Bm25, TermWeight};
