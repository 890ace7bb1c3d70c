//! Links the release `mlgate` with the functions a server runs packed together, in the order of
//! `link/symbol-order.txt` (made by bench/symbol-order.sh). The code is 35 MiB and the kernel
//! maps it in blocks (128 KiB or more here) around every page a process touches, so scattered
//! hot functions kept 14 MiB of it resident; packed, about 5 MiB (BENCHMARKS.md, "Resident
//! memory"). scripts/release-check.sh checks that a release build was packed.
//!
//! Only where the linker is known to be lld, which reads `--symbol-ordering-file`: rustc's
//! default on x86_64 Linux since 1.90, unless a linker is configured. Elsewhere, or with
//! `MLGATE_NO_SYMBOL_ORDER=1`, the binary links as before. Names the list lacks are laid out
//! after it; lld's warnings about them are off, as the list outlives some of its names.
use std::{env, path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=link/symbol-order.txt");
    println!("cargo:rerun-if-env-changed=MLGATE_NO_SYMBOL_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let wanted = var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("MLGATE_NO_SYMBOL_ORDER").is_empty()
        // A configured linker (`target.<triple>.linker`, `-C linker` or `-fuse-ld` in the
        // flags) may not be lld.
        && env::var_os("RUSTC_LINKER").is_none()
        && !["linker", "fuse-ld"].iter().any(|flag| var("CARGO_ENCODED_RUSTFLAGS").contains(flag))
        && rustc_minor().is_some_and(|minor| minor >= 90);
    if !wanted {
        return;
    }
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/symbol-order.txt");
    if list.is_file() {
        println!("cargo:rustc-link-arg-bin=mlgate=-Wl,--symbol-ordering-file={}", list.display());
        println!("cargo:rustc-link-arg-bin=mlgate=-Wl,--no-warn-symbol-ordering");
    }
}

/// The minor version of the rustc building this crate (`rustc 1.95.0 (...)` gives 95).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    let mut parts = version.split_whitespace().nth(1)?.split('.');
    match (parts.next()?, parts.next()?) {
        ("1", minor) => minor.parse().ok(),
        _ => None,
    }
}
