//! The allocator: mimalloc (faster than glibc's under the server's many small allocations),
//! set up to give memory back. Built without transparent huge pages (`no_thp`): with them, an
//! idle server's 7 MiB of heap grew to 18 MiB of resident 2 MiB pages. And mimalloc keeps freed
//! memory for a while, so every password check left argon2's 19 MiB resident on a quiet
//! server; the password-check pool now asks it to give that back at once (bench/rss.sh;
//! BENCHMARKS.md). This is the one module of the workspace allowed `unsafe`: one call into
//! mimalloc's C API.
#![allow(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Configures the allocator; call first thing in `main`.
pub fn configure() {
    mlgate_core::password::set_memory_release_hook(release);
}

/// Returns the calling thread's freed memory to the system (after argon2's 19 MiB).
fn release() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
