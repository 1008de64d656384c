//! Each thread's reusable visited set for graph walks (memtable and segment searches).

use std::cell::RefCell;

use strata_index::hnsw::Visited;

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::new());
}

/// Runs `f` with this thread's reusable visited set.
pub(crate) fn with_visited<T>(f: impl FnOnce(&mut Visited) -> T) -> T {
    VISITED.with(|v| f(&mut v.borrow_mut()))
}
