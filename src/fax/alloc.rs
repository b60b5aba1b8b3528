//! The C allocator's one setting Faxbox changes: blocks of 128 KB and more
//! (an upload, a decoded page) are mapped on their own and returned to the
//! system when freed.
//!
//! glibc starts with that threshold but raises it, up to 32 MB, each time a
//! large mapped block is freed; from then on large blocks come from its
//! per-thread arenas, which keep them after they are freed. Twenty 30 MB
//! uploads, each served on its own thread, took the box to 372 MB and left
//! it at 280 MB; with the threshold fixed at 128 KB, 128 MB and back to
//! 35 MB (issue 18 item 7, issue 27's memory that stays after calls).
//! Setting it also stops glibc from moving it.

/// Fixes the allocator's mmap threshold at 128 KB (glibc's starting value,
/// kept for good). Called first thing in `main`. Other C libraries (musl,
/// in the static builds) return large blocks anyway.
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a number inside glibc's allocator; it is
    // called before any other thread exists, and M_MMAP_THRESHOLD takes any
    // value up to 32 MB.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
