//! The allocator: mimalloc (faster than glibc's under the server's many small allocations),
//! set up to give memory back. Built without transparent huge pages (`no_thp`): with them, an
//! idle server's 7 MiB of heap grew to 18 MiB of resident 2 MiB pages. And mimalloc keeps freed
//! memory for a while, so every password check left argon2's 19 MiB resident on a quiet
//! server; the password-check pool now asks it to give that back at once (bench/rss.sh;
//! BENCHMARKS.md). And the binary's own code is kept out of huge pages and read-ahead (see
//! [`keep_code_pages_small`]). This is the one module of the workspace allowed
//! `unsafe`: one call into mimalloc's C API and one `madvise`.
#![allow(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Configures the allocator; call first thing in `main`.
pub fn configure() {
    mlgate_core::password::set_memory_release_hook(release);
}

/// The binary holds 35 MiB of code of which a server runs about 3 MiB. With transparent huge
/// pages on (`always`, as on many distributions), the kernel may map its text in 2 MiB pages,
/// and it reads ahead around every fault: the resident size of the code then varied by several
/// MiB from run to run of the same build. Advising the executable's own mappings
/// `MADV_NOHUGEPAGE` and `MADV_RANDOM` keeps it near what the server touches; the kernel still
/// maps a block (128 KiB or more) around each fault, which is why the release build packs the
/// code a server runs together (`build.rs`). Best effort: on failure nothing changes but the
/// resident size. Only `serve` calls it (first thing): a short-lived command gains nothing
/// from reading `/proc/self/maps`.
pub fn keep_code_pages_small() {
    let (Ok(exe), Ok(maps)) =
        (std::fs::read_link("/proc/self/exe"), std::fs::read_to_string("/proc/self/maps"))
    else {
        return;
    };
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap_or_default();
        if fields.nth(4).map(std::path::Path::new) != Some(exe.as_path()) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) =
            (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
        else {
            continue;
        };
        for advice in [rustix::mm::Advice::LinuxNoHugepage, rustix::mm::Advice::Random] {
            // SAFETY: the range is a whole mapping of this process's executable, read from
            // /proc/self/maps; these two pieces of advice change how pages are faulted in,
            // never the mapping's contents, protection or lifetime.
            let _ =
                unsafe { rustix::mm::madvise(start as *mut std::ffi::c_void, end - start, advice) };
        }
    }
}

/// Returns the calling thread's freed memory to the system (after argon2's 19 MiB).
fn release() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
