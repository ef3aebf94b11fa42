//! `state`: the libstate command-line tool. Inspect and edit a store's buckets, keys,
//! values and TTLs; dump and load it (including the original state service's store
//! files); check and compact it; serve it (`state serve`). See `docs/cli.md` and
//! `state --help`.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

mod args;
mod backup;
mod check;
mod cmds;
mod compact;
mod config;
mod dump;
mod fail;
mod generate;
mod load;
mod locked;
mod open;
mod output;
mod remote;
mod serve;
mod supervise;

use std::process::ExitCode;

use crate::args::{Cli, Command};
use crate::cmds::{KeysQuery, ValueSource};
use crate::fail::CmdResult;
use crate::open::{Access, Target, Time};
use crate::output::Output;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with code 2.
    let (cli, store_given) = match config::parse(std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(f) => {
            eprintln!("state: {}", f.message);
            return ExitCode::from(f.code as u8);
        }
    };
    // While `state serve` holds the store, the command runs there (remote.rs).
    let is_url = cli
        .store
        .to_str()
        .is_some_and(state_core::engine::is_redis_url);
    if remote::remotable(&cli.command) && !is_url {
        if let Some(sock) = remote::live_socket(&cli.store) {
            let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
            return match remote::forward(&sock, &cli, &args) {
                Ok(code) => ExitCode::from(code),
                Err(f) => {
                    eprintln!("state: {}", f.message);
                    if let Some(hint) = &f.hint {
                        eprintln!("hint: {hint}");
                    }
                    ExitCode::from(f.code as u8)
                }
            };
        }
    }
    let mut out = Output::new(cli.json);
    let result = run(cli, store_given, &mut out).and_then(|()| out.flush());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`state keys b | head`) is not an error.
        Err(f) if f.message.ends_with(output::BROKEN_PIPE) => ExitCode::SUCCESS,
        Err(f) => {
            // Whatever was printed before the failure goes out first.
            let _ = out.flush();
            eprintln!("state: {}", f.message);
            if let Some(hint) = &f.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(f.code as u8)
        }
    }
}

/// Runs one command (also for an administrator, in `state serve`: remote.rs).
pub(crate) fn run(cli: Cli, store_given: bool, out: &mut Output) -> CmdResult {
    let target = Target {
        dir: cli.store,
        engine: cli.engine,
    };
    let live = |access| target.open(access, Time::Live);
    match cli.command {
        Command::Buckets => open::with_store(live(Access::Existing)?, |s| cmds::buckets(s, out)),
        Command::Info => open::with_store(live(Access::Existing)?, |s| cmds::info(s, out)),
        Command::Get { bucket, key, raw } => open::with_store(live(Access::Existing)?, |s| {
            cmds::get(s, &bucket, &key, raw, out)
        }),
        Command::Set {
            bucket,
            key,
            value,
            file,
            ttl,
        } => {
            // Read the value first: a bad --file must not create a store.
            let source = match (&value, &file) {
                (Some(v), _) => ValueSource::Arg(v),
                (None, Some(f)) => ValueSource::File(f),
                (None, None) => return Err(fail::Failure::usage("set needs a VALUE or --file")),
            };
            let bytes = source.read()?;
            open::with_store(live(Access::Create)?, |s| {
                cmds::set(s, &bucket, &key, &bytes, ttl, out)
            })
        }
        Command::Del { bucket, key } => open::with_store(live(Access::Existing)?, |s| {
            cmds::del(s, &bucket, &key, out)
        }),
        Command::Keys {
            bucket,
            prefix,
            from,
            limit,
            reverse,
            values,
        } => {
            let q = KeysQuery {
                prefix: prefix.as_deref(),
                from: from.as_deref(),
                limit,
                reverse,
                values,
            };
            open::with_store(live(Access::Existing)?, |s| cmds::keys(s, &bucket, &q, out))
        }
        Command::Ttl { bucket, key } => open::with_store(live(Access::Existing)?, |s| {
            cmds::ttl(s, &bucket, &key, out)
        }),
        Command::Expire { bucket, key, ttl } => open::with_store(live(Access::Existing)?, |s| {
            cmds::expire(s, &bucket, &key, ttl, out)
        }),
        Command::Persist { bucket, key } => open::with_store(live(Access::Existing)?, |s| {
            cmds::persist(s, &bucket, &key, out)
        }),
        Command::RmBucket { bucket } => open::with_store(live(Access::Existing)?, |s| {
            cmds::rm_bucket(s, &bucket, out)
        }),
        Command::Dump {
            buckets,
            output,
            format,
        } => {
            let now = open::now_ms();
            let store = target.open(Access::Existing, Time::FrozenAt(now))?;
            open::with_store(store, |s| {
                dump::dump(s, &buckets, output.as_deref(), format, out)
            })
        }
        Command::Load { file, format } => load::load(&target, &file, format, out),
        Command::Check => check::check(&target, out),
        Command::Compact => compact::compact(&target, out),
        Command::Backup { dest } => backup::backup(&target, &dest, out),
        Command::Serve(args) => serve::serve(&target, store_given, *args),
        Command::Client(args) => serve::client(&target, args, out),
        Command::Generate { dir } => generate::generate(&dir, out),
    }
}
