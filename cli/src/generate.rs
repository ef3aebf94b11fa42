//! `state generate DIR` (hidden): the man pages and shell completions, made from the
//! same clap definition the binary parses with, so they cannot drift from it.
//! Packaging runs it (`make dist`, the .deb); users get the files from their package.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Cli;
use crate::fail::{CmdResult, Failure};
use crate::output::Output;

/// The shells completions are written for, and each one's file name.
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "state"),
    (Shell::Zsh, "_state"),
    (Shell::Fish, "state.fish"),
];

/// Writes `DIR/man1/state.1`, one `state-SUB.1` per visible subcommand (and
/// `state-client-SUB.1`), and `DIR/completions/{state,_state,state.fish}`; prints the
/// files written.
pub fn generate(dir: &Path, out: &mut Output) -> CmdResult {
    let man_dir = dir.join("man1");
    let comp_dir = dir.join("completions");
    for d in [&man_dir, &comp_dir] {
        fs::create_dir_all(d).map_err(|e| write_failure(d, &e))?;
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    man_pages(&cmd, "state", &man_dir, &mut written)?;
    for (shell, name) in SHELLS {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "state", &mut buf);
        let path = comp_dir.join(name);
        fs::write(&path, buf).map_err(|e| write_failure(&path, &e))?;
        written.push(path);
    }
    for p in written {
        out.line(p.display().to_string())?;
    }
    Ok(())
}

/// The page of `cmd` as `name.1`, then those of its visible subcommands.
fn man_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> CmdResult {
    let page = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .map_err(|e| Failure::output(format_args!("the man page of {name}"), e))?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, buf).map_err(|e| write_failure(&path, &e))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

fn write_failure(path: &Path, e: &std::io::Error) -> Failure {
    Failure::output(path.display(), e)
}
