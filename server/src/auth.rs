//! Clients and their tokens: `<store>/clients.toml` (mode 0600).
//!
//! ```toml
//! [clients.dashboard]
//! token_sha256 = "9f86d0…"      # SHA-256 of the token; the token itself is never stored
//! max_records = 10000           # optional quota
//! max_bytes = 1048576           # optional quota
//! max_value_size = 65536        # optional quota
//! ```
//!
//! A token is 256 random bits from the operating system, URL-safe base64 (43
//! characters), printed once by `state client add`. With that much entropy a plain
//! SHA-256 is a sound way to store it (a slow password hash protects guessable
//! secrets; nothing here is guessable). Comparisons run in constant time, and a
//! failed check takes the same path whether the client exists or not.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use state_core::Quota;
use subtle::ConstantTimeEq;

/// The file name of the client list inside a store directory.
pub const CLIENTS_FILE: &str = "clients.toml";

/// One client's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// Hex SHA-256 of the client's token.
    pub token_sha256: String,
    /// Quota: most live records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
    /// Quota: most bytes of keys plus values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Quota: largest value in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_size: Option<u64>,
}

impl ClientEntry {
    /// The entry's quota (unset fields unlimited).
    pub fn quota(&self) -> Quota {
        Quota {
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            max_value_size: self.max_value_size,
        }
    }
}

/// The contents of `clients.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsFile {
    /// Clients by name (the name is the client's bucket).
    #[serde(default)]
    pub clients: BTreeMap<String, ClientEntry>,
}

/// An error reading or writing the client list; the message names the file.
#[derive(Debug)]
pub struct AuthFileError(pub String);

impl std::fmt::Display for AuthFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthFileError {}

/// The path of the client list of the store in `store_dir`.
pub fn clients_path(store_dir: &Path) -> PathBuf {
    store_dir.join(CLIENTS_FILE)
}

/// Hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh token: 256 bits from the OS's random source, URL-safe base64.
///
/// # Errors
/// If the OS cannot provide random bytes.
pub fn new_token() -> Result<String, AuthFileError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| AuthFileError(format!("cannot get random bytes for a token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl ClientsFile {
    /// Reads the client list at `path`; a missing file is an empty list.
    ///
    /// # Errors
    /// An unreadable or malformed file (the message names it and the problem).
    pub fn load(path: &Path) -> Result<ClientsFile, AuthFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ClientsFile::default()),
            Err(e) => {
                return Err(AuthFileError(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        toml::from_str(&text).map_err(|e| {
            AuthFileError(format!(
                "{} is not a valid client list: {e}",
                path.display()
            ))
        })
    }

    /// Writes the list to `path` atomically (a temporary file renamed over it), mode 0600.
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn save(&self, path: &Path) -> Result<(), AuthFileError> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| AuthFileError(format!("cannot encode the client list: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let io = |e: std::io::Error| AuthFileError(format!("cannot write {}: {e}", path.display()));
        let tmp = dir.join(format!(".{CLIENTS_FILE}.tmp"));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(b"# libstate clients: managed by `state client add|list|rm`.\n# Tokens are stored as SHA-256 hashes only.\n\n")
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Adds client `name` with `quota` and returns its fresh token.
    ///
    /// # Errors
    /// If `name` is not a valid bucket name or the client exists.
    pub fn add(&mut self, name: &str, quota: Quota) -> Result<String, AuthFileError> {
        state_core::limits::check_bucket_name(name)
            .map_err(|e| AuthFileError(format!("client name {name:?}: {e}")))?;
        if self.clients.contains_key(name) {
            return Err(AuthFileError(format!(
                "client {name:?} exists; remove it first (`state client rm {name}`) to issue a new token"
            )));
        }
        let token = new_token()?;
        self.clients.insert(
            name.to_string(),
            ClientEntry {
                token_sha256: hash_token(&token),
                max_records: quota.max_records,
                max_bytes: quota.max_bytes,
                max_value_size: quota.max_value_size,
            },
        );
        Ok(token)
    }

    /// Which client `token` belongs to (with `name`, only that client is checked).
    /// Every entry is compared in constant time, whether or not one matches.
    pub fn verify(&self, name: Option<&str>, token: &str) -> Option<String> {
        let hash = hash_token(token);
        let mut found = None;
        for (n, entry) in &self.clients {
            let same = entry.token_sha256.as_bytes().ct_eq(hash.as_bytes());
            let name_ok = name.is_none_or(|want| want == n);
            if bool::from(same) && name_ok && found.is_none() {
                found = Some(n.clone());
            }
        }
        found
    }
}

/// The client list as the server sees it: reloaded when the file changes, so
/// `state client add` takes effect without a restart.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    state: RwLock<(Option<Stamp>, ClientsFile)>,
}

impl Registry {
    /// Loads the list at `path`.
    ///
    /// # Errors
    /// As [`ClientsFile::load`].
    pub fn open(path: PathBuf) -> Result<Registry, AuthFileError> {
        let file = ClientsFile::load(&path)?;
        let stamp = stamp(&path);
        Ok(Registry {
            path,
            state: RwLock::new((stamp, file)),
        })
    }

    /// A registry with no clients and no file (tests and fuzzing).
    pub fn empty() -> Registry {
        Registry {
            path: PathBuf::new(),
            state: RwLock::new((None, ClientsFile::default())),
        }
    }

    /// The file the registry reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rereads the file if it changed since the last look. A file that became
    /// malformed keeps the last good list (and is logged).
    pub fn refresh(&self) {
        let now = stamp(&self.path);
        if self.state.read().0 == now {
            return;
        }
        match ClientsFile::load(&self.path) {
            Ok(file) => *self.state.write() = (now, file),
            Err(e) => tracing::error!("keeping the previous client list: {e}"),
        }
    }

    /// The client `token` authenticates (see [`ClientsFile::verify`]).
    pub fn verify(&self, name: Option<&str>, token: &str) -> Option<String> {
        self.refresh();
        self.state.read().1.verify(name, token)
    }

    /// Whether client `name` is still in the list with the token whose hash is
    /// `token_sha256` (false once it was removed or its token rotated).
    pub fn still_valid(&self, name: &str, token_sha256: &str) -> bool {
        self.state
            .read()
            .1
            .clients
            .get(name)
            .is_some_and(|e| bool::from(e.token_sha256.as_bytes().ct_eq(token_sha256.as_bytes())))
    }

    /// The quota of client `name` (unlimited if unknown).
    pub fn quota(&self, name: &str) -> Option<Quota> {
        self.state
            .read()
            .1
            .clients
            .get(name)
            .map(ClientEntry::quota)
    }
}

/// What tells one version of the file from the next: `save` renames a new file over
/// it (a new inode), and the modification time alone can repeat within the
/// file system's clock tick.
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.ino(), m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_save_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        let mut f = ClientsFile::load(&path).unwrap();
        assert!(f.clients.is_empty());
        let t = f
            .add(
                "alice",
                Quota {
                    max_records: Some(5),
                    ..Quota::default()
                },
            )
            .unwrap();
        assert_eq!(t.len(), 43);
        assert!(f.add("alice", Quota::default()).is_err());
        assert!(f.add("bad\nname", Quota::default()).is_err());
        let t2 = f.add("bob", Quota::default()).unwrap();
        assert_ne!(t, t2);
        f.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&t), "the token itself is never stored");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let g = ClientsFile::load(&path).unwrap();
        assert_eq!(g, f);
        assert_eq!(g.verify(None, &t).as_deref(), Some("alice"));
        assert_eq!(g.verify(Some("alice"), &t).as_deref(), Some("alice"));
        assert_eq!(g.verify(Some("bob"), &t), None);
        assert_eq!(g.verify(None, "nope"), None);
        assert_eq!(g.clients["alice"].quota().max_records, Some(5));
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        std::fs::write(&path, "[clients.x]\nbogus = 1\n").unwrap();
        let e = ClientsFile::load(&path).unwrap_err();
        assert!(e.0.contains("clients.toml"), "{e}");
    }

    #[test]
    fn the_registry_sees_a_client_removed_right_after_it_was_added() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        let reg = Registry::open(path.clone()).unwrap();
        for _ in 0..20 {
            let mut f = ClientsFile::load(&path).unwrap();
            let t = f.add("c", Quota::default()).unwrap();
            f.save(&path).unwrap();
            assert_eq!(reg.verify(None, &t).as_deref(), Some("c"));
            f.clients.remove("c");
            f.save(&path).unwrap();
            assert_eq!(
                reg.verify(None, &t),
                None,
                "a removed client's token stops working"
            );
        }
    }

    #[test]
    fn the_registry_sees_clients_added_after_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        let reg = Registry::open(path.clone()).unwrap();
        let mut f = ClientsFile::load(&path).unwrap();
        let t = f.add("late", Quota::default()).unwrap();
        f.save(&path).unwrap();
        assert_eq!(reg.verify(None, &t).as_deref(), Some("late"));
    }
}
