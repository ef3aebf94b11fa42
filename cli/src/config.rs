//! `state serve --config FILE`: settings from a TOML file, one key per flag.
//!
//! Precedence, highest first: the command line, `STATE_*` environment variables,
//! the file, the built-in defaults. The file's keys are the flags' long names with
//! `-` or `_` (`max-connections` or `max_connections`); a key no flag has, or a
//! value of the wrong type, is an error naming the file and the key. How it works:
//! the command line is parsed once; each file key whose flag was not given on the
//! command line or in the environment becomes `--flag=value` appended to the
//! arguments, which are then parsed again, so the file's values pass through the
//! same parsers and checks as flags.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::args::Cli;
#[cfg(test)]
use crate::args::Command;
use crate::fail::{CmdResult, Failure};

/// Global options the file may set too.
const GLOBAL_KEYS: &[&str] = &["store", "engine"];

/// Parses `argv` (with the program name first), applying `state serve --config`.
/// Usage errors, `--help` and `--version` exit as clap does.
pub fn parse(argv: Vec<OsString>) -> CmdResult<(Cli, bool)> {
    let command = Cli::command();
    let matches = command.clone().get_matches_from(argv.clone());
    let file = match matches.subcommand() {
        Some(("serve", sm)) => sm.get_one::<std::path::PathBuf>("config").cloned(),
        _ => None,
    };
    let Some(file) = file else {
        let cli = Cli::from_arg_matches(&matches).map_err(|e| Failure::usage(e.to_string()))?;
        return Ok((cli, given(&matches, "store")));
    };
    let Some(("serve", serve_matches)) = matches.subcommand() else {
        return Err(Failure::usage("--config belongs to state serve"));
    };
    let serve = command
        .find_subcommand("serve")
        .ok_or_else(|| Failure::usage("state serve is missing from the command line"))?;
    let extra = file_args(&file, &command, &matches, serve, serve_matches)?;
    let mut all = argv;
    all.extend(extra);
    let in_file = |e: clap::Error| {
        Failure::usage(format!(
            "{}: {}",
            file.display(),
            first_line(&e.to_string())
        ))
    };
    let merged = command.try_get_matches_from(all).map_err(in_file)?;
    let cli = Cli::from_arg_matches(&merged).map_err(in_file)?;
    Ok((cli, given(&merged, "store")))
}

/// Whether `id` was set on the command line or in the environment.
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

fn first_line(s: &str) -> &str {
    s.trim_start_matches("error: ").lines().next().unwrap_or(s)
}

/// The file's settings as arguments, for the flags not given otherwise.
fn file_args(
    file: &Path,
    top: &clap::Command,
    top_matches: &ArgMatches,
    serve: &clap::Command,
    serve_matches: &ArgMatches,
) -> CmdResult<Vec<OsString>> {
    let text = std::fs::read_to_string(file).map_err(|e| Failure::input(file, e))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Failure::usage(format!("{}: {e}", file.display())))?;
    let bad =
        |key: &str, why: String| Failure::usage(format!("{}: key {key:?}: {why}", file.display()));
    let mut out = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let (arg, matches) = if GLOBAL_KEYS.contains(&id.as_str()) {
            (
                top.get_arguments().find(|a| a.get_id() == id.as_str()),
                top_matches,
            )
        } else {
            (
                serve.get_arguments().find(|a| a.get_id() == id.as_str()),
                serve_matches,
            )
        };
        let Some(arg) = arg.filter(|a| a.get_long().is_some() && id != "config" && id != "help")
        else {
            return Err(bad(
                key,
                "no such setting (the keys are state serve's flags)".into(),
            ));
        };
        if given(matches, &id) {
            continue;
        }
        let long = arg.get_long().unwrap_or(key);
        match arg.get_action() {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) => out.push(format!("--{long}").into()),
                toml::Value::Boolean(false) => {}
                _ => return Err(bad(key, "expected true or false".into())),
            },
            ArgAction::Append => {
                let items: Vec<&toml::Value> = match value {
                    toml::Value::Array(a) => a.iter().collect(),
                    v => vec![v],
                };
                for v in items {
                    out.push(format!("--{long}={}", scalar(v).map_err(|w| bad(key, w))?).into());
                }
            }
            _ => out.push(format!("--{long}={}", scalar(value).map_err(|w| bad(key, w))?).into()),
        }
    }
    Ok(out)
}

/// A TOML string or number as the text a flag takes.
fn scalar(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        other => Err(format!(
            "expected a string or an integer, not {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_of(cli: Cli) -> crate::args::ServeArgs {
        match cli.command {
            Command::Serve(a) => *a,
            other => panic!("not serve: {other:?}"),
        }
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("state")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn the_file_sets_what_the_command_line_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("serve.toml");
        std::fs::write(
            &f,
            "store = \"/srv/s\"\nresp = \"127.0.0.1:1111\"\nhttp = \"off\"\n\
             max-connections = 7\nsync = true\ncors = [\"https://a.example\", \"https://b.example\"]\n\
             read_timeout = \"2s\"\nunix-mode = \"0660\"\n",
        )
        .unwrap();
        let path = f.to_str().unwrap();
        let (cli, store_given) = parse(argv(&[
            "serve",
            "--config",
            path,
            "--resp",
            "127.0.0.1:2222",
        ]))
        .unwrap();
        assert_eq!(cli.store, std::path::PathBuf::from("/srv/s"));
        assert!(store_given);
        let a = serve_of(cli);
        assert_eq!(a.resp, "127.0.0.1:2222", "the flag wins over the file");
        assert_eq!(a.http, "off");
        assert_eq!(a.max_connections, 7);
        assert!(a.sync);
        assert_eq!(a.cors, ["https://a.example", "https://b.example"]);
        assert_eq!(a.read_timeout, std::time::Duration::from_secs(2));
        assert_eq!(a.unix_mode, 0o660);
        assert_eq!(
            a.write_timeout,
            std::time::Duration::from_secs(10),
            "default kept"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("serve.toml");
        let path = f.to_str().unwrap().to_string();
        for (text, expect) in [
            (
                "max_conections = 7\n",
                "\"max_conections\": no such setting",
            ),
            ("sync = \"yes\"\n", "\"sync\": expected true or false"),
            ("max-connections = \"many\"\n", "invalid value 'many'"),
            ("unix-mode = \"0999\"\n", "not an octal mode"),
            ("resp = \n", "serve.toml"),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = parse(argv(&["serve", "--config", &path])).unwrap_err();
            assert!(e.message.contains(expect), "{text:?}: {}", e.message);
            assert!(e.message.contains("serve.toml"), "{}", e.message);
        }
    }
}
