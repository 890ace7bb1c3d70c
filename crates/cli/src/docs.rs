//! The command-line reference (`docs/cli.md`), generated from the clap definitions so that
//! it cannot drift: `mlgate docs cli > docs/cli.md`, and a test fails when the file differs.

use std::fmt::Write;

use clap::CommandFactory;

use crate::cli::Cli;

pub fn cli_markdown() -> String {
    let mut root = Cli::command();
    root.build();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# mlgate command-line reference\n\n\
         Generated from the command definitions by `mlgate docs cli > docs/cli.md`; a test \
         fails when this file is out of date. `mlgate COMMAND --help` prints the same.\n\n\
         Exit codes: 0 success, 1 error, 2 usage error (a wrong flag, a missing value, a \
         destructive command without `--yes` and no terminal to confirm on).\n"
    );
    let _ = writeln!(out, "## Options of every client command\n");
    let _ = writeln!(
        out,
        "Every command that talks to a server (all but `serve`, `keys` and `tls`) takes these, \
         after the command or before it (`keys` takes `-o` and `--query`):\n"
    );
    if let Some(login) = root.find_subcommand("login") {
        let globals: Vec<&clap::Arg> = login
            .get_arguments()
            .filter(|a| matches!(a.get_id().as_str(), "server" | "ca_file" | "output" | "query"))
            .collect();
        options_table(&mut out, &globals);
    }
    let _ = writeln!(out, "## Commands\n");
    for sub in root.get_subcommands() {
        command(&mut out, sub, "mlgate");
    }
    out
}

fn command(out: &mut String, cmd: &clap::Command, parent: &str) {
    if cmd.is_hide_set() || cmd.get_name() == "help" {
        return;
    }
    let path = format!("{parent} {}", cmd.get_name());
    let about = cmd.get_long_about().or(cmd.get_about()).map(|s| s.to_string()).unwrap_or_default();
    let has_children = cmd.get_subcommands().any(|c| c.get_name() != "help" && !c.is_hide_set());
    let level = if has_children { "###" } else { "####" };
    let _ = writeln!(out, "{level} `{path}`\n\n{}\n", about.trim());
    if has_children {
        let _ = writeln!(out, "| command | what it does |\n|---|---|");
        for c in cmd.get_subcommands().filter(|c| c.get_name() != "help" && !c.is_hide_set()) {
            let about = c.get_about().map(|s| s.to_string()).unwrap_or_default();
            let _ = writeln!(out, "| `{}` | {} |", c.get_name(), cell(&about));
        }
        let _ = writeln!(out);
    } else {
        let args: Vec<&clap::Arg> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set())
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .collect();
        if !args.is_empty() {
            options_table(out, &args);
        }
    }
    for c in cmd.get_subcommands() {
        command(out, c, &path);
    }
}

fn options_table(out: &mut String, args: &[&clap::Arg]) {
    let _ = writeln!(out, "| option | meaning |\n|---|---|");
    for a in args {
        let _ = writeln!(out, "| {} | {} |", flag(a), cell(&meaning(a)));
    }
    let _ = writeln!(out);
}

fn flag(a: &clap::Arg) -> String {
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(format!("-{s}"));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("--{l}"));
    }
    if names.is_empty() {
        names.push(a.get_id().to_string().to_uppercase());
    }
    let takes_value = a.get_action().takes_values();
    let value = if takes_value {
        let v = a
            .get_value_names()
            .and_then(|v| v.first().map(|s| s.to_string()))
            .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
        format!(" {v}")
    } else {
        String::new()
    };
    format!("`{}{value}`", names.join(", "))
}

fn meaning(a: &clap::Arg) -> String {
    let mut text = a.get_long_help().or(a.get_help()).map(|s| s.to_string()).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('.') {
        text.push('.');
    }
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| match v.get_help() {
            Some(h) => format!("`{}`: {}", v.get_name(), h.to_string().trim_end_matches('.')),
            None => format!("`{}`", v.get_name()),
        })
        .collect();
    let is_bool = values.len() == 2 && values.iter().all(|v| v == "`true`" || v == "`false`");
    if !values.is_empty() && a.get_action().takes_values() && !is_bool {
        let _ = write!(text, " One of {}.", values.join("; "));
    }
    let defaults: Vec<String> =
        a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
    if !defaults.is_empty() && a.get_action().takes_values() && !defaults[0].is_empty() {
        let _ = write!(text, " Default: `{}`.", defaults.join(","));
    }
    if let Some(env) = a.get_env() {
        let _ = write!(text, " Environment: `{}`.", env.to_string_lossy());
    }
    if a.is_required_set() {
        let _ = write!(text, " Required.");
    }
    text
}

/// One table cell: no line breaks, no pipes.
fn cell(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/cli.md is what `mlgate docs cli` prints today.
    #[test]
    fn docs_cli_md_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == cli_markdown(),
            "docs/cli.md is out of date: run `cargo run -p mlgate-cli -- docs cli > docs/cli.md`"
        );
    }

    /// Every command and every flag says what it is for.
    #[test]
    fn every_command_and_flag_has_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && !cmd.is_hide_set() {
                missing.push(path.clone());
            }
            for a in cmd.get_arguments() {
                if a.get_help().is_none() && !a.is_hide_set() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for c in cmd.get_subcommands() {
                walk(c, &path, missing);
            }
        }
        let mut root = Cli::command();
        root.build();
        let mut missing = Vec::new();
        walk(&root, "", &mut missing);
        assert!(missing.is_empty(), "without a description: {missing:#?}");
    }

    /// `serve --help` lists the server's flags only.
    #[test]
    fn serve_takes_no_client_flags() {
        let mut root = Cli::command();
        root.build();
        let serve = root
            .find_subcommand("serve")
            .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect::<Vec<_>>());
        let serve = serve.unwrap_or_default();
        for client in ["server", "ca_file", "output", "query", "subscription"] {
            assert!(!serve.contains(&client.to_string()), "serve has --{client}: {serve:?}");
        }
        assert!(serve.contains(&"listen".to_string()));
    }
}
