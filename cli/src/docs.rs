//! `tokenledger completions SHELL` and `tokenledger man [--out DIR]`: shell completion
//! scripts (clap_complete) and manual pages (clap_mangen), made from the same command
//! definition as `--help`, so they never drift from it.

use std::path::{Path, PathBuf};

use clap::{Args, Command};
use clap_complete::Shell;

use crate::exit::Failure;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one page per command and subcommand (tokenledger.1, tokenledger-resolve.1, ...)
    /// into DIR, created if missing; without it, print the main page to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for `shell`.
pub fn completions(args: &CompletionsArgs, mut command: Command) {
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
}

/// Prints the main page, or writes every page into `--out`.
pub fn man(args: &ManArgs, command: Command) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure::Error(format!("writing the manual pages: {e}"));
    match &args.out {
        None => clap_mangen::Man::new(command)
            .render(&mut std::io::stdout())
            .map_err(failed),
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(failed)?;
            for path in write_pages(command, dir).map_err(failed)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

/// Writes the page of `command` and of each subcommand, depth first; returns their paths.
fn write_pages(command: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    write_tree(command, dir, &mut written)?;
    Ok(written)
}

fn write_tree(command: Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub.clone(), dir, written)?;
    }
    written.push(clap_mangen::Man::new(command).generate_to(dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        Command::new("tool")
            .about("a tool")
            .subcommand(Command::new("one").subcommand(Command::new("deep")))
            .subcommand(Command::new("two"))
    }

    #[test]
    fn one_page_per_command_and_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_pages(command(), dir.path()).unwrap();
        let mut names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["tool-one-deep.1", "tool-one.1", "tool-two.1", "tool.1"]
        );
        let main = std::fs::read_to_string(dir.path().join("tool.1")).unwrap();
        assert!(main.starts_with(".ie"), "{main}");
        assert!(main.contains("a tool"));
    }
}
