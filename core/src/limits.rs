//! The size and character rules for keys, bucket names and values (docs/guarantees.md,
//! "Keys, names, values"),
//! checked once here before anything reaches an engine.

use crate::error::{Error, Result};

/// Longest key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest bucket name, in bytes of UTF-8.
pub const MAX_BUCKET_NAME_LEN: usize = 255;
/// Longest client name of `state serve`, in bytes (see [`check_client_name`]).
pub const MAX_CLIENT_NAME_LEN: usize = 64;
/// Default largest value, in bytes (16 MiB); see [`crate::StoreBuilder::max_value_size`].
pub const DEFAULT_MAX_VALUE_SIZE: usize = 16 << 20;
/// Default largest total size of one batch (keys plus values), in bytes (256 MiB);
/// see [`crate::StoreBuilder::max_batch_size`].
pub const DEFAULT_MAX_BATCH_SIZE: usize = 256 << 20;

/// Checks a key: 1..=1024 bytes. (Rust's `&str` already guarantees UTF-8.)
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "key {:?}... is {} bytes, more than the limit of {MAX_KEY_LEN}",
            truncate(key, 32),
            key.len()
        )));
    }
    Ok(())
}

/// Checks a watch prefix: at most as long as the longest key (`""` watches every key).
pub fn check_watch_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "watch prefix is {} bytes, more than the longest key ({MAX_KEY_LEN})",
            prefix.len()
        )));
    }
    Ok(())
}

/// Buckets whose names start with a control character are libstate's own (user
/// bucket names cannot contain one: [`check_bucket_name`]).
pub(crate) fn is_user_bucket(name: &str) -> bool {
    !name.starts_with(|c: char| c.is_control())
}

/// Checks a bucket name: 1..=255 bytes, no NUL or other control characters.
pub fn check_bucket_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("bucket name must not be empty"));
    }
    if name.len() > MAX_BUCKET_NAME_LEN {
        return Err(Error::invalid(format!(
            "bucket name {:?}... is {} bytes, more than the limit of {MAX_BUCKET_NAME_LEN}",
            truncate(name, 32),
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "bucket name {name:?} contains the control character {:?}",
            c
        )));
    }
    Ok(())
}

/// Checks a client name of `state serve` (a token client's name in `clients.toml`,
/// or the Unix user name a peer on the socket is known by): 1 to
/// [`MAX_CLIENT_NAME_LEN`] characters, each an ASCII letter, digit, `.`, `_` or `-`.
///
/// The set is small on purpose: no look-alike letters from other scripts, no
/// spaces, controls or bidi marks, and no `:`, so a token client's name can never
/// collide with the `unix:` namespace of peer identities. Names are compared
/// exactly (`Alice` and `alice` are two names). The CLI, the server and the
/// loading of `clients.toml` all check names with this function.
pub fn check_client_name(name: &str) -> Result<()> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if !name.is_empty() && name.len() <= MAX_CLIENT_NAME_LEN && name.bytes().all(allowed) {
        return Ok(());
    }
    let why = if name.is_empty() {
        "it is empty".to_string()
    } else if name.len() > MAX_CLIENT_NAME_LEN {
        format!("it is {} bytes long", name.len())
    } else {
        let c = name
            .chars()
            .find(|c| !c.is_ascii() || !allowed(*c as u8))
            .unwrap_or('?');
        format!("it contains {c:?} ({})", c.escape_unicode())
    };
    Err(Error::invalid(format!(
        "client name {:?}{} is not allowed: {why}; a client name is 1 to \
         {MAX_CLIENT_NAME_LEN} of the ASCII letters, digits, '.', '_' and '-'",
        truncate(name, 32),
        if name.chars().count() > 32 { "..." } else { "" }
    )))
}

/// Checks a value against the store's maximum value size.
pub(crate) fn check_value(key: &str, value: &[u8], max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "value for key {key:?} is {} bytes, more than the store's limit of {max}",
            value.len()
        )));
    }
    Ok(())
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limits() {
        assert!(check_key("").is_err());
        assert!(check_key("a").is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn bucket_name_limits() {
        assert!(check_bucket_name("").is_err());
        assert!(check_bucket_name("user1").is_ok());
        assert!(check_bucket_name("a\0b").is_err());
        assert!(check_bucket_name("a\nb").is_err());
        assert!(check_bucket_name(&"b".repeat(255)).is_ok());
        assert!(check_bucket_name(&"b".repeat(256)).is_err());
        assert!(check_bucket_name("ünïcode ok").is_ok());
    }

    #[test]
    fn client_names_are_a_small_ascii_set() {
        for ok in ["alice", "Alice", "svc-1.prod_2", "a", "..", &"n".repeat(64)] {
            assert!(check_client_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            &"n".repeat(65),
            "unix:alice",
            "alice ",
            " alice",
            "a b",
            "\u{430}lice",   // Cyrillic a
            "alice\u{202e}", // right-to-left override
            "al\u{200b}ice", // zero-width space
            "ünï",
            "a\nb",
            "a\0b",
            "a/b",
            "a@b",
        ] {
            let e = check_client_name(bad).unwrap_err().to_string();
            assert!(e.contains("is not allowed"), "{bad:?}: {e}");
            assert!(e.contains("ASCII letters, digits"), "{e}");
        }
        let e = check_client_name("\u{430}lice").unwrap_err().to_string();
        assert!(
            e.contains("\\u{430}"),
            "the offending character is named: {e}"
        );
        let e = check_client_name(&"x".repeat(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(
            e.len() < 300,
            "a long name is not repeated in full: {} bytes",
            e.len()
        );
    }

    #[test]
    fn value_limit() {
        assert!(check_value("k", &[0; 10], 10).is_ok());
        assert!(check_value("k", &[0; 11], 10).is_err());
    }
}
