//! Thread pools for background work (merges, flush index builds), optionally at idle
//! priority so that searches and writes never wait for them to give up a core.

/// With `low`, moves the calling thread to idle scheduling priority (Linux `SCHED_IDLE`:
/// every normal thread that wakes preempts it at once; elsewhere nothing changes).
/// Failure only costs search latency, so it is ignored.
pub(crate) fn lower_thread_priority(low: bool) {
    #[cfg(target_os = "linux")]
    if low {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = low;
}

/// A rayon pool of `threads` threads named `name-i`, at idle priority with `low`. `None`
/// when the threads cannot be started: the work then runs on the caller's thread.
pub(crate) fn background_pool(name: &str, threads: usize, low: bool) -> Option<rayon::ThreadPool> {
    let name = name.to_string();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(move |_| lower_thread_priority(low))
        .build()
        .ok()
}
