//! Writing results: text for humans, JSON for scripts.

use std::borrow::Cow;
use std::io::{self, BufWriter, Write};

use serde::Serialize;

use crate::fail::{CmdResult, Failure};

/// Standard output (or, for a command `state serve` runs for its administrator,
/// a buffer sent back), buffered, in human or JSON mode.
pub struct Output {
    /// `--json`.
    pub json: bool,
    out: BufWriter<Box<dyn Write + Send>>,
    /// Where notes go: standard error, or a buffer sent back with the output.
    notes: Box<dyn Write + Send>,
}

impl Output {
    /// Standard output in the given mode.
    pub fn new(json: bool) -> Output {
        Output::to(json, Box::new(io::stdout()), Box::new(io::stderr()))
    }

    /// Output to `w`, notes to `notes`, in the given mode.
    pub fn to(json: bool, w: Box<dyn Write + Send>, notes: Box<dyn Write + Send>) -> Output {
        Output {
            json,
            out: BufWriter::with_capacity(1 << 16, w),
            notes,
        }
    }

    /// A line for the user beside the result (standard error): `state: {msg}`.
    pub fn note(&mut self, msg: impl std::fmt::Display) {
        let _ = writeln!(self.notes, "state: {msg}");
    }

    /// Writes raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> CmdResult {
        self.out.write_all(b).map_err(stdout_failure)
    }

    /// Writes one line of text.
    pub fn line(&mut self, s: impl AsRef<str>) -> CmdResult {
        self.bytes(s.as_ref().as_bytes())?;
        self.bytes(b"\n")
    }

    /// Writes a value as one line of JSON.
    pub fn json_line(&mut self, v: &impl Serialize) -> CmdResult {
        serde_json::to_writer(&mut self.out, v).map_err(|e| stdout_failure(e.into()))?;
        self.bytes(b"\n")
    }

    /// Flushes standard output.
    pub fn flush(&mut self) -> CmdResult {
        self.out.flush().map_err(stdout_failure)
    }

    /// The underlying writer, for streaming output.
    pub fn writer(&mut self) -> &mut BufWriter<Box<dyn Write + Send>> {
        &mut self.out
    }
}

/// A failed write to standard output. A closed pipe (`state keys b | head`) is not
/// worth a message; `main` exits quietly for it.
pub fn stdout_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::output("standard output", BROKEN_PIPE)
    } else {
        Failure::output("standard output", e)
    }
}

/// The message of a failure caused by a closed standard output.
pub const BROKEN_PIPE: &str = "broken pipe";

/// A value as text, if it is UTF-8 without control characters (with `multiline`,
/// newlines, tabs and carriage returns are allowed), so printing it cannot garble a
/// terminal or a one-line listing.
pub fn as_text(value: &[u8], multiline: bool) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?;
    let printable = s
        .chars()
        .all(|c| !c.is_control() || (multiline && matches!(c, '\n' | '\t' | '\r')));
    printable.then_some(s)
}

/// A value for humans: its text, or `base64:` and its base64 encoding.
pub fn human_value(value: &[u8], multiline: bool) -> Cow<'_, str> {
    match as_text(value, multiline) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(format!("base64:{}", b64(value))),
    }
}

/// A key for humans: as is, or escaped if it holds control characters.
pub fn human_key(key: &str) -> Cow<'_, str> {
    if key.chars().any(char::is_control) {
        Cow::Owned(key.escape_debug().to_string())
    } else {
        Cow::Borrowed(key)
    }
}

/// Base64 (standard alphabet, padded), as the original service and dumps encode values.
pub fn b64(value: &[u8]) -> String {
    state_core::encode_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_print_as_text_and_others_as_base64() {
        assert_eq!(human_value(b"hello world", false), "hello world");
        assert_eq!(human_value(b"two\nlines", true), "two\nlines");
        assert_eq!(human_value(b"two\nlines", false), "base64:dHdvCmxpbmVz");
        assert_eq!(human_value(&[0, 255], true), "base64:AP8=");
        assert_eq!(human_value(b"\x1b[31mred", true), "base64:G1szMW1yZWQ=");
        assert_eq!(human_value(b"", false), "");
    }

    #[test]
    fn keys_with_control_characters_are_escaped() {
        assert_eq!(human_key("plain/key"), "plain/key");
        assert_eq!(human_key("a\tb"), "a\\tb");
    }
}
