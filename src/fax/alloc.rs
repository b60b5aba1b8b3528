//! The C allocator's settings for a long-running box, and giving its freed
//! memory back when the box goes quiet. Only glibc needs either: musl (the
//! static builds) returns large blocks by itself and keeps no per-thread
//! arenas.
//!
//! Blocks of 128 KB and more (an upload, a decoded page) are mapped on
//! their own and returned to the system when freed. glibc starts with that
//! threshold but raises it, up to 32 MB, each time a large mapped block is
//! freed; from then on large blocks come from its per-thread arenas, which
//! keep them after they are freed. Twenty 30 MB uploads, each served on its
//! own thread, took the box to 372 MB and left it at 280 MB; with the
//! threshold fixed at 128 KB, 128 MB and back to 35 MB (issue 18 item 7,
//! issue 27's memory that stays after calls). Setting it also stops glibc
//! from moving it.
//!
//! Each call runs on threads of its own, and glibc gives a new thread an
//! arena of its own (up to 8 per core) that keeps what the thread freed:
//! 200 one-page faxes over 4 loopback channels left the release binary at
//! 31.5 MB, 13.7 MB above its idle 17.8 MB, 16 arenas holding 4.7 MB free.
//! With 2 arenas it ended at 27.1 MB; `malloc_trim` once the calls were
//! done took it to 26.4 MB (issue 27; the rest was the stacks of finished
//! attempt threads, see `scheduler`).

/// Fixes the allocator's mmap threshold at 128 KB (glibc's starting value,
/// kept for good) and lets all threads share two arenas. Called first
/// thing in `main`, before any other thread exists.
pub fn configure_for_a_long_running_box() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets numbers inside glibc's allocator; it is
    // called before any other thread exists, M_MMAP_THRESHOLD takes any
    // value up to 32 MB and M_ARENA_MAX any positive count.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        // Two, not one: the API's threads taking in uploads and the calls'
        // threads then rarely wait for each other's allocations.
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands the memory freed since the last call back to the system (glibc
/// keeps freed pages inside its arenas otherwise). Cheap enough to call
/// whenever the box goes quiet, such as when its last call has ended:
/// it walks a few MB of free lists.
pub fn return_freed_memory_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes glibc's own arena locks and may be called
    // from any thread at any time; 0 keeps no extra pad at the heap top.
    unsafe {
        libc::malloc_trim(0);
    }
}
