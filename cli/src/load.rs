//! `state load`: `Store::import_from` from a file or standard input, with a
//! progress display on a terminal. While `state serve` holds the store, the CLI
//! reads the input and sends it to the server in chunks (`remote::forward_load`),
//! and the server runs this same command on what it receives.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde_json::json;
use state_core::{Error, ImportProgress, ImportReport};

use crate::args::Format;
use crate::dump::core_format;
use crate::fail::{CmdResult, Failure};
use crate::open::{self, Access, Target, Time};
use crate::output::Output;

/// `state load`.
pub fn load(target: &Target, file: &Path, format: Option<Format>, out: &mut Output) -> CmdResult {
    let start = Instant::now();
    let format = format.map_or_else(|| state_core::Format::from_path(file), core_format);
    let shown = display_name(file);
    // Run by `state serve` for a caller: the input is what the caller sends (the
    // server opens no path a caller names), and the caller shows the progress.
    let (input, size, bar): (Box<dyn Read>, Option<u64>, Option<ProgressBar>) =
        match crate::remote::take_input() {
            Some(sent) => (Box::new(sent), None, Some(ProgressBar::hidden())),
            None => {
                let (input, size) = open_input(file)?;
                (input, size, None)
            }
        };
    let store = target.open(Access::Create, Time::Live)?;
    let bar = bar.unwrap_or_else(|| progress_bar(format, size, &shown));
    let mut last = ImportProgress::default();
    let result = open::with_store(store, |store| {
        Ok(store.import_from(input, format, |p| {
            last = *p;
            show(&bar, format, p, &shown);
        }))
    });
    bar.finish_and_clear();
    let summary = result?.map_err(|e| failure(e, &shown, format, &last))?;
    let secs = start.elapsed().as_secs_f64();
    report(out, &shown, format, &summary, secs)
}

fn report(
    out: &mut Output,
    shown: &str,
    format: state_core::Format,
    summary: &ImportReport,
    secs: f64,
) -> CmdResult {
    if out.json {
        return out.json_line(&json!({
            "file": shown,
            "format": format.as_str(),
            "buckets": summary.buckets,
            "records": summary.records,
            "value_bytes": summary.value_bytes,
            "expired_skipped": summary.expired_skipped,
            "seconds": secs,
        }));
    }
    let mut line = format!(
        "loaded {} records ({} of values) into {} buckets from {shown} in {secs:.2} s",
        summary.records,
        HumanBytes(summary.value_bytes),
        summary.buckets,
    );
    if summary.expired_skipped > 0 {
        line.push_str(&format!(
            "; skipped {} already expired",
            summary.expired_skipped
        ));
    }
    out.line(line)
}

/// The import's error, naming the input; a refused JSON-lines line says what was
/// loaded before it.
fn failure(e: Error, shown: &str, format: state_core::Format, last: &ImportProgress) -> Failure {
    match e {
        Error::InvalidArgument(m) | Error::TooLarge(m) => {
            let f = Failure::usage(format!("{shown}: {m}"));
            if format == state_core::Format::JsonLines && last.line > 0 {
                f.with_hint(format!(
                    "the {} records before line {} were loaded; fix the file and load it \
                     again (loading overwrites, so that is safe)",
                    last.records_done, last.line
                ))
            } else {
                f
            }
        }
        Error::Io { path, source } if path == Path::new("<input>") => {
            Failure::input(Path::new(shown), source)
        }
        other => other.into(),
    }
}

/// The input of `state load FILE`: the file (with its size) or standard input.
pub fn open_input(file: &Path) -> CmdResult<(Box<dyn Read>, Option<u64>)> {
    Ok(if is_stdin(file) {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(file).map_err(|e| Failure::input(file, e))?;
        let len = f.metadata().map(|m| m.len()).ok();
        (Box::new(f), len)
    })
}

/// How messages name the input: its path as given, or "standard input".
pub fn display_name(file: &Path) -> String {
    if is_stdin(file) {
        "standard input".into()
    } else {
        file.display().to_string()
    }
}

fn is_stdin(file: &Path) -> bool {
    file.as_os_str() == "-"
}

/// The progress of sending the input to `state serve` (bytes sent, a bar when the
/// size is known), on standard error when it is a terminal.
pub fn sending_bar(size: Option<u64>, shown: &str) -> ProgressBar {
    progress_bar(state_core::Format::JsonLines, size, shown)
}

/// A progress display on standard error when it is a terminal, else a hidden one:
/// JSON lines show bytes read (a bar when the size is known), JSON a spinner while
/// the core reads and checks the whole input, then a bar of records written.
fn progress_bar(format: state_core::Format, size: Option<u64>, shown: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template, msg) = match (format, size) {
        (state_core::Format::JsonLines, Some(n)) => (
            ProgressBar::new(n),
            "{spinner} {msg} {wide_bar} {bytes}/{total_bytes} eta {eta}",
            format!("loading {shown}"),
        ),
        (state_core::Format::JsonLines, None) => (
            ProgressBar::new_spinner(),
            "{spinner} {msg}: {bytes} read in {elapsed}",
            format!("loading {shown}"),
        ),
        _ => (
            ProgressBar::new_spinner(),
            "{spinner} {msg} {elapsed}",
            format!("reading {shown} ({})", HumanBytes(size.unwrap_or_default())),
        ),
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = bar.with_style(style);
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn show(bar: &ProgressBar, format: state_core::Format, p: &ImportProgress, shown: &str) {
    if format == state_core::Format::JsonLines {
        bar.set_position(p.bytes_read);
        return;
    }
    if bar.length() != Some(p.records_total) {
        bar.set_length(p.records_total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {wide_bar} {pos}/{len} records eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("loading {shown}"));
    }
    bar.set_position(p.records_done);
}
