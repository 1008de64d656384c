//! Whole-store tests live in `tests/it/`; this crate has no library code.
