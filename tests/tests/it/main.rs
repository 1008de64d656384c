//! Whole-store tests, one binary (link time matters on two cores).

mod ann;
mod calibration;
mod common;
mod compaction;
mod concurrency;
mod corruption;
mod durability;
mod errors;
mod filtered;
mod fixtures;
mod gpu_build;
mod lock;
mod model;
mod observed_recall;
mod poison;
mod pq_reference;
mod read_only;
mod remote;
mod repair_backup;
mod shared_data;
mod string_keys;
mod text_search;
mod vector_codecs;
