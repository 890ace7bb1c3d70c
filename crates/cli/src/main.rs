//! # mlgate: the one binary
//!
//! `mlgate serve` runs the server; every other command mirrors the Azure CLI's words
//! (`login`, `account`, `ad sp`) over the `mlgate-client` SDK. Layout:
//! - [`alloc`]: the allocator and how it gives memory back;
//! - [`cli`]: the clap command tree;
//! - [`serve`]: configuration from flags and environment, logging, signals;
//! - [`profile`]: the signed-in profile and token cache (`~/.mlgate/profile.json`, mode 0600);
//! - [`commands`]: one module per command group; [`output`]: `-o` formats and `--query`;
//! - [`docs`]: the command-line reference generated from [`cli`].

mod alloc;
mod cli;
mod commands;
mod docs;
mod output;
mod profile;
mod serve;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `mlgate sandbox-exec ...` (internal: how the server starts entry scripts) confines this
    // process and execs the program; it must run before any thread starts.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == "sandbox-exec") {
        let code = mlgate_serving::sandbox::main(&raw[2..]);
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    alloc::configure();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            if let Some(hint) = commands::hint(&e) {
                eprintln!("{hint}");
            }
            // Exit codes as the Azure CLI's: 2 for a usage error, 1 for any other.
            if e.downcast_ref::<commands::UsageError>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
