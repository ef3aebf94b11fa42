//! Clients and their tokens: `<store>/clients.toml` (mode 0600).
//!
//! ```toml
//! [clients.dashboard]
//! token_sha256 = "9f86d0…"      # SHA-256 of the token; the token itself is never stored
//! max_records = 10000           # optional quota
//! max_bytes = 1048576           # optional quota
//! max_value_size = 65536        # optional quota
//!
//! [unix.alice]                  # Unix user alice may use the socket, as client unix:alice
//! max_records = 100             # optional quota
//! ```
//!
//! A token is 256 random bits from the operating system, URL-safe base64 (43
//! characters), printed once by `state client add`. With that much entropy a plain
//! SHA-256 is a sound way to store it (a slow password hash protects guessable
//! secrets; nothing here is guessable). Comparisons run in constant time, and a
//! failed check takes the same path whether the client exists or not.
//!
//! Two namespaces of identities, which never meet: token clients (`dashboard`,
//! bucket `dashboard`) and Unix users on the socket (`unix:alice`, bucket
//! `unix:alice`). A client name cannot contain `:`
//! ([`state_core::limits::check_client_name`]), so no token client can alias a
//! Unix user. A Unix user is a client only if it is the user the server runs as,
//! root, or listed under `[unix]`.
//!
//! The file is trusted only if nobody but its owner could have written it, as
//! OpenSSH's StrictModes: the file and its directory must be owned by the user the
//! process runs as (or root) and not be writable by group or others. It is written
//! through a randomly named temporary file created exclusively with mode 0600 in
//! the same directory, synced, renamed over the list, and the directory synced.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use state_service::Quota;
use subtle::ConstantTimeEq;

/// The file name of the client list inside a store directory.
pub const CLIENTS_FILE: &str = "clients.toml";

/// The prefix of the client names of Unix users on the socket (`unix:alice`); the
/// client's bucket has the same name.
pub const UNIX_PREFIX: &str = "unix:";

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
    /// An administrator (`state client add NAME --admin`): its token reaches the
    /// administration commands (LIBSTATE.RUN `client ...`) over TCP too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
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

/// A Unix user allowed on the socket (besides the server's own user and root, who
/// always are), as client `unix:NAME`, with an optional quota.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixEntry {
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

impl UnixEntry {
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
    /// Token clients by name (the name is the client's bucket).
    #[serde(default)]
    pub clients: BTreeMap<String, ClientEntry>,
    /// Unix users allowed on the socket by user name (their client and bucket is
    /// `unix:NAME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unix: BTreeMap<String, UnixEntry>,
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    hex
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

/// What a name given to `state client` names: a token client (`dashboard`) or a
/// Unix user on the socket (`unix:alice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientName<'a> {
    /// A client that signs in with a token.
    Token(&'a str),
    /// A Unix user, by user name (without the `unix:` prefix).
    Unix(&'a str),
}

impl<'a> ClientName<'a> {
    /// Parses and checks a name (see [`state_core::limits::check_client_name`]).
    ///
    /// # Errors
    /// A name outside the allowed set, saying which character and what is allowed.
    pub fn parse(name: &'a str) -> Result<ClientName<'a>, AuthFileError> {
        let parsed = match name.strip_prefix(UNIX_PREFIX) {
            Some(user) => ClientName::Unix(user),
            None => ClientName::Token(name),
        };
        let bare = match parsed {
            ClientName::Token(n) | ClientName::Unix(n) => n,
        };
        state_core::limits::check_client_name(bare).map_err(|e| AuthFileError(message(&e)))?;
        Ok(parsed)
    }
}

fn message(e: &state_core::Error) -> String {
    match e {
        state_core::Error::InvalidArgument(m) => m.clone(),
        e => e.to_string(),
    }
}

/// The effective user id of this process.
fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Checks that `meta` (of `path`, a file or directory the client list depends on)
/// could only have been written by this process's user or root: owned by the
/// effective user or root, and not writable by group or others (OpenSSH's
/// StrictModes).
fn check_trusted(path: &Path, meta: &Metadata, what: &str) -> Result<(), AuthFileError> {
    let me = euid();
    let owner = meta.uid();
    if owner != me && owner != 0 {
        let (owner_name, me_name) = (user_name(owner), user_name(me));
        return Err(AuthFileError(format!(
            "refusing the client list: {what} {} is owned by {owner_name} (uid {owner}), \
             not by {me_name} (uid {me}) who runs this, or root, so that user could change \
             who may sign in; fix: run this as {owner_name} if the list is theirs, else \
             `chown {me_name} {}`",
            path.display(),
            path.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(AuthFileError(format!(
            "refusing the client list: {what} {} is writable by {} (mode {mode:04o}), so \
             another user could change who may sign in; fix: `chmod go-w {}`",
            path.display(),
            match mode & 0o022 {
                0o020 => "its group",
                0o002 => "every user",
                _ => "its group and every user",
            },
            path.display()
        )));
    }
    Ok(())
}

/// The directory a client list at `path` is in.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks the directory of the client list at `path` (see [`check_trusted`]).
/// Returns whether the directory exists.
fn check_dir(path: &Path) -> Result<bool, AuthFileError> {
    let dir = dir_of(path);
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(AuthFileError(format!("cannot read {}: {e}", dir.display()))),
    };
    check_trusted(dir, &meta, "directory")?;
    Ok(true)
}

impl ClientsFile {
    /// Reads the client list at `path`; a missing file (or directory) is an empty list.
    ///
    /// # Errors
    /// An unreadable or malformed file, a client name outside the allowed set, a
    /// symbolic link, or a file or directory another user could have written (owned
    /// by someone but this process's user or root, or writable by group or others):
    /// the message names the path, the problem and the fix.
    pub fn load(path: &Path) -> Result<ClientsFile, AuthFileError> {
        if !check_dir(path)? {
            return Ok(ClientsFile::default());
        }
        let cannot_read =
            |e: std::io::Error| AuthFileError(format!("cannot read {}: {e}", path.display()));
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(AuthFileError(format!(
                    "refusing the client list: {} is a symbolic link; name the file itself \
                     with --clients",
                    path.display()
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ClientsFile::default()),
            Err(e) => return Err(cannot_read(e)),
        }
        let mut f = std::fs::File::open(path).map_err(cannot_read)?;
        // The checks look at the file that was opened, not at whatever the name
        // points to a moment later.
        let meta = f.metadata().map_err(cannot_read)?;
        if !meta.is_file() {
            return Err(AuthFileError(format!(
                "refusing the client list: {} is not a regular file",
                path.display()
            )));
        }
        check_trusted(path, &meta, "file")?;
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(cannot_read)?;
        let file: ClientsFile = toml::from_str(&text).map_err(|e| {
            AuthFileError(format!(
                "{} is not a valid client list: {e}",
                path.display()
            ))
        })?;
        for (name, prefix) in file
            .clients
            .keys()
            .map(|n| (n, ""))
            .chain(file.unix.keys().map(|n| (n, "unix.")))
        {
            state_core::limits::check_client_name(name).map_err(|e| {
                AuthFileError(format!(
                    "{}: [{prefix}{}]: {}; rename or remove that entry",
                    path.display(),
                    name.escape_debug().take(64).collect::<String>(),
                    message(&e)
                ))
            })?;
        }
        Ok(file)
    }

    /// Writes the list to `path` atomically: a temporary file with a random name,
    /// created exclusively (`O_EXCL`) with mode 0600 in the same directory, written,
    /// synced and renamed over `path`; then the directory is synced. The directory
    /// must be one only this user (or root) can write.
    ///
    /// # Errors
    /// An untrusted directory, I/O errors; the message names the path.
    pub fn save(&self, path: &Path) -> Result<(), AuthFileError> {
        use std::os::unix::fs::PermissionsExt;
        let text = toml::to_string_pretty(self)
            .map_err(|e| AuthFileError(format!("cannot encode the client list: {e}")))?;
        check_dir(path)?;
        let dir = dir_of(path);
        let io = |e: std::io::Error| AuthFileError(format!("cannot write {}: {e}", path.display()));
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| CLIENTS_FILE.to_string());
        // tempfile opens with O_CREAT|O_EXCL and the mode given here, retrying with
        // another random name if one exists: a file someone else made in advance is
        // never opened, and nobody else can open ours.
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{base}."))
            .suffix(".tmp")
            .rand_bytes(12)
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(io)?;
        let f = tmp.as_file_mut();
        f.write_all(b"# libstate clients: managed by `state client add|list|rm`.\n# Tokens are stored as SHA-256 hashes only.\n\n")
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuthFileError(format!("cannot sync {}: {e}", dir.display())))?;
        Ok(())
    }

    /// Adds token client `name` with `quota` and returns its fresh token.
    ///
    /// # Errors
    /// If `name` is not a valid client name, is a `unix:` name (see
    /// [`ClientsFile::allow_unix`]), the client exists, or one exists whose name
    /// differs only in case.
    pub fn add(&mut self, name: &str, quota: Quota) -> Result<String, AuthFileError> {
        let name = match ClientName::parse(name)? {
            ClientName::Token(n) => n,
            ClientName::Unix(_) => {
                return Err(AuthFileError(format!(
                    "{name:?} names a Unix user; allow it with `state client add {name}`"
                )))
            }
        };
        check_new(name, self.clients.keys(), "")?;
        let token = new_token()?;
        self.clients.insert(
            name.to_string(),
            ClientEntry {
                token_sha256: hash_token(&token),
                max_records: quota.max_records,
                max_bytes: quota.max_bytes,
                max_value_size: quota.max_value_size,
                admin: false,
            },
        );
        Ok(token)
    }

    /// Makes token client `name` an administrator (or not).
    ///
    /// # Errors
    /// If there is no token client `name`.
    pub fn set_admin(&mut self, name: &str, admin: bool) -> Result<(), AuthFileError> {
        match self.clients.get_mut(name) {
            Some(e) => {
                e.admin = admin;
                Ok(())
            }
            None => Err(AuthFileError(format!("no client {name:?}"))),
        }
    }

    /// Gives token client `name` a fresh token, which is returned (the old one stops
    /// working).
    ///
    /// # Errors
    /// If there is no token client `name`.
    pub fn rotate(&mut self, name: &str) -> Result<String, AuthFileError> {
        let Some(e) = self.clients.get_mut(name) else {
            return Err(AuthFileError(format!("no client {name:?}")));
        };
        let token = new_token()?;
        e.token_sha256 = hash_token(&token);
        Ok(token)
    }

    /// Sets the quota of client `name` (a token client, or `unix:USER`).
    ///
    /// # Errors
    /// If there is no such client.
    pub fn set_quota(&mut self, name: &str, quota: Quota) -> Result<(), AuthFileError> {
        let missing = || AuthFileError(format!("no client {name:?}"));
        match name.strip_prefix(UNIX_PREFIX) {
            Some(user) => {
                let e = self.unix.get_mut(user).ok_or_else(missing)?;
                e.max_records = quota.max_records;
                e.max_bytes = quota.max_bytes;
                e.max_value_size = quota.max_value_size;
            }
            None => {
                let e = self.clients.get_mut(name).ok_or_else(missing)?;
                e.max_records = quota.max_records;
                e.max_bytes = quota.max_bytes;
                e.max_value_size = quota.max_value_size;
            }
        }
        Ok(())
    }

    /// Whether token client `name` is an administrator.
    pub fn is_admin(&self, name: &str) -> bool {
        self.clients.get(name).is_some_and(|e| e.admin)
    }

    /// Allows Unix user `user` (a user name, without `unix:`) on the socket, as client
    /// `unix:USER`, with `quota`.
    ///
    /// # Errors
    /// If `user` is not a valid client name, or is already allowed (or one whose name
    /// differs only in case).
    pub fn allow_unix(&mut self, user: &str, quota: Quota) -> Result<(), AuthFileError> {
        state_core::limits::check_client_name(user).map_err(|e| AuthFileError(message(&e)))?;
        check_new(user, self.unix.keys(), UNIX_PREFIX)?;
        self.unix.insert(
            user.to_string(),
            UnixEntry {
                max_records: quota.max_records,
                max_bytes: quota.max_bytes,
                max_value_size: quota.max_value_size,
            },
        );
        Ok(())
    }

    /// Which client `token` belongs to (with `name`, only that client is checked;
    /// names are compared exactly). Every entry is compared in constant time,
    /// whether or not one matches.
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

    /// The quota of client `name` (a token client, or `unix:USER`), if it has an
    /// entry.
    pub fn quota(&self, name: &str) -> Option<Quota> {
        match name.strip_prefix(UNIX_PREFIX) {
            Some(user) => self.unix.get(user).map(UnixEntry::quota),
            None => self.clients.get(name).map(ClientEntry::quota),
        }
    }

    /// Whether any entry sets a quota.
    pub fn any_quota(&self) -> bool {
        self.clients.values().any(|e| !e.quota().is_unlimited())
            || self.unix.values().any(|e| !e.quota().is_unlimited())
    }
}

/// Refuses a new name that exists, or differs from an existing one only in ASCII
/// case (`Alice` next to `alice` is a look-alike, not a second client).
fn check_new<'a>(
    name: &str,
    existing: impl Iterator<Item = &'a String>,
    prefix: &str,
) -> Result<(), AuthFileError> {
    for e in existing {
        if e == name {
            return Err(AuthFileError(format!(
                "client {prefix}{name} exists; remove it first (`state client rm {prefix}{name}`) \
                 to add it again"
            )));
        }
        if e.eq_ignore_ascii_case(name) {
            return Err(AuthFileError(format!(
                "client {prefix}{name} would differ from client {prefix}{e} only in case; \
                 choose a name that does not look like an existing one"
            )));
        }
    }
    Ok(())
}

/// The client list as the server sees it: reloaded when the file (or its directory's
/// owner or mode) changes, so `state client add` takes effect without a restart. A
/// new version that fails to load, or that others could have written, is refused:
/// the previous list stays and the error is logged once.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    /// The version last looked at (loaded or refused) and the list last loaded.
    state: RwLock<(Option<Stamp>, ClientsFile)>,
    /// The user the server runs as: allowed on the socket by default, with root.
    euid: u32,
    /// Whether the list last loaded sets any quota (read at every write, so kept
    /// apart from the list's lock).
    any_quota: AtomicBool,
}

impl Registry {
    /// Loads the list at `path`.
    ///
    /// # Errors
    /// As [`ClientsFile::load`].
    pub fn open(path: PathBuf) -> Result<Registry, AuthFileError> {
        let stamp = Some(stamp(&path));
        let file = ClientsFile::load(&path)?;
        Ok(Registry {
            path,
            any_quota: AtomicBool::new(file.any_quota()),
            state: RwLock::new((stamp, file)),
            euid: euid(),
        })
    }

    /// A registry with no clients and no file (tests and fuzzing).
    pub fn empty() -> Registry {
        Registry {
            path: PathBuf::new(),
            state: RwLock::new((None, ClientsFile::default())),
            euid: euid(),
            any_quota: AtomicBool::new(false),
        }
    }

    /// The file the registry reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rereads the file if it changed since the last look. A file that became
    /// malformed or untrusted keeps the last good list (and is logged once).
    pub fn refresh(&self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        let now = Some(stamp(&self.path));
        if self.state.read().0 == now {
            return;
        }
        match ClientsFile::load(&self.path) {
            Ok(file) => {
                let mut state = self.state.write();
                self.any_quota.store(file.any_quota(), Ordering::Release);
                *state = (now, file);
            }
            Err(e) => {
                self.state.write().0 = now;
                tracing::error!("keeping the previous client list: {e}");
            }
        }
    }

    /// Rereads the file now, changed or not (SIGHUP). On error the previous list
    /// stays in force and the error is returned.
    ///
    /// # Errors
    /// As [`ClientsFile::load`].
    pub fn reload(&self) -> Result<(), AuthFileError> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let now = Some(stamp(&self.path));
        match ClientsFile::load(&self.path) {
            Ok(file) => {
                let mut state = self.state.write();
                self.any_quota.store(file.any_quota(), Ordering::Release);
                *state = (now, file);
                Ok(())
            }
            Err(e) => {
                self.state.write().0 = now;
                Err(e)
            }
        }
    }

    /// Whether token client `name` is an administrator ([`ClientEntry::admin`]).
    pub fn is_admin(&self, name: &str) -> bool {
        self.state.read().1.is_admin(name)
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

    /// The quota of client `name` (a token client or `unix:USER`), if it has an
    /// entry.
    pub fn quota(&self, name: &str) -> Option<Quota> {
        self.state.read().1.quota(name)
    }

    /// Whether the list sets any quota.
    pub fn any_quota(&self) -> bool {
        self.any_quota.load(Ordering::Acquire)
    }

    /// The client a peer on the Unix socket with user id `uid` acts as without a
    /// token: `unix:NAME` (NAME its user name) if it is the user the server runs as,
    /// root, or listed under `[unix]`; `None` otherwise (it must AUTH), also for a
    /// uid without a user name or with one outside the client-name set.
    pub fn unix_client(&self, uid: u32) -> Option<String> {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()?;
        self.unix_client_named(uid, &user.name)
    }

    /// Whether the Unix user `uid`, signed in by peer credentials as `client`
    /// (`unix:NAME`), is still allowed (false once its `[unix.NAME]` entry is gone,
    /// unless it is the server's own user or root).
    pub fn unix_still_allowed(&self, uid: u32, client: &str) -> bool {
        uid == self.euid
            || uid == 0
            || client
                .strip_prefix(UNIX_PREFIX)
                .is_some_and(|name| self.state.read().1.unix.contains_key(name))
    }

    fn unix_client_named(&self, uid: u32, name: &str) -> Option<String> {
        if let Err(e) = state_core::limits::check_client_name(name) {
            tracing::debug!(
                uid,
                "a Unix user on the socket has no client: {}",
                message(&e)
            );
            return None;
        }
        self.refresh();
        let allowed = uid == self.euid || uid == 0 || self.state.read().1.unix.contains_key(name);
        if !allowed {
            tracing::debug!(
                uid,
                user = name,
                "Unix user not allowed as a client on the socket (not in [unix] of {}): it must AUTH",
                self.path.display()
            );
            return None;
        }
        Some(format!("{UNIX_PREFIX}{name}"))
    }
}

/// The service's quota source in `state serve`: each client's entry in the list
/// (as last reloaded), each limit it leaves unset falling back to the server's
/// default quota (`--max-records`, ...). The service reads it at every
/// quota-checked write, so a change to the list applies from the next reload.
#[derive(Debug)]
pub struct ClientQuotas {
    registry: Arc<Registry>,
    default: Quota,
}

impl ClientQuotas {
    /// The quotas of `registry`'s clients, with `default` for what an entry leaves
    /// unset.
    pub fn new(registry: Arc<Registry>, default: Quota) -> ClientQuotas {
        ClientQuotas { registry, default }
    }
}

impl state_service::QuotaSource for ClientQuotas {
    fn quota(&self, client: &str) -> Quota {
        self.registry
            .quota(client)
            .unwrap_or_default()
            .or(self.default)
    }

    fn limits_anyone(&self) -> bool {
        !self.default.is_unlimited() || self.registry.any_quota()
    }
}

/// What tells one version of the file from the next, and a change of its trust:
/// `save` renames a new file over it (a new inode), the modification time alone can
/// repeat within the file system's clock tick, and chmod/chown change the mode and
/// owner (of the file, or of its directory, whose other changes do not matter).
type Stamp = (Option<FileStamp>, Option<(u64, u32, u32)>);
type FileStamp = (SystemTime, u64, u64, u32, u32);

fn stamp(path: &Path) -> Stamp {
    let file = std::fs::symlink_metadata(path)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.ino(), m.len(), m.mode(), m.uid())));
    let dir = std::fs::metadata(dir_of(path))
        .ok()
        .map(|m| (m.ino(), m.mode(), m.uid()));
    (file, dir)
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

    fn chmod(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_planted_at_a_temporary_name_captures_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        // What another user could have prepared: a file at the fixed temporary name
        // the list used to be written through (world-writable, and owned by nobody
        // when the test can arrange that), and a symbolic link at another likely name.
        let planted = dir.path().join(".clients.toml.tmp");
        std::fs::write(&planted, "planted").unwrap();
        chmod(&planted, 0o666);
        let as_root = euid() == 0;
        if as_root {
            std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        }
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.path().join(".clients.toml.new")).unwrap();
        let mut f = ClientsFile::default();
        let t = f.add("alice", Quota::default()).unwrap();
        f.save(&path).unwrap();
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.is_file());
        assert_eq!(m.uid(), euid(), "the list belongs to the user who wrote it");
        assert_eq!(mode(&path), 0o600);
        assert_ne!(m.ino(), std::fs::metadata(&planted).unwrap().ino());
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "planted");
        if as_root {
            assert_eq!(std::fs::metadata(&planted).unwrap().uid(), 65534);
        }
        assert!(!target.exists(), "nothing was written through the link");
        assert_eq!(
            entries(dir.path()),
            [".clients.toml.new", ".clients.toml.tmp", "clients.toml"],
            "no temporary file is left behind"
        );
        assert_eq!(
            ClientsFile::load(&path)
                .unwrap()
                .verify(None, &t)
                .as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn a_list_or_directory_others_can_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        let mut f = ClientsFile::default();
        f.add("alice", Quota::default()).unwrap();
        f.save(&path).unwrap();
        for m in [0o666, 0o620, 0o602] {
            chmod(&path, m);
            let e = ClientsFile::load(&path).unwrap_err().0;
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(&format!("chmod go-w {}", path.display())), "{e}");
        }
        chmod(&path, 0o644);
        assert!(
            ClientsFile::load(&path).is_ok(),
            "readable by others is fine"
        );
        for m in [0o777, 0o770, 0o1777, 0o707] {
            chmod(dir.path(), m);
            let e = ClientsFile::load(&path).unwrap_err().0;
            assert!(e.contains("directory"), "{e}");
            assert!(
                e.contains(&format!("chmod go-w {}", dir.path().display())),
                "{e}"
            );
            let e = f.save(&path).unwrap_err().0;
            assert!(
                e.contains(&format!("chmod go-w {}", dir.path().display())),
                "{e}"
            );
        }
        chmod(dir.path(), 0o755);
        assert!(ClientsFile::load(&path).is_ok());
        // A missing list in an untrusted directory is refused too: anyone could
        // create it there later.
        let open = tempfile::tempdir().unwrap();
        chmod(open.path(), 0o777);
        assert!(ClientsFile::load(&clients_path(open.path())).is_err());
        if euid() == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let e = ClientsFile::load(&path).unwrap_err().0;
            assert!(e.contains("is owned by") && e.contains("uid 65534"), "{e}");
            std::os::unix::fs::chown(&path, Some(0), None).unwrap();
            std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
            let e = ClientsFile::load(&path).unwrap_err().0;
            assert!(e.contains("directory") && e.contains("is owned by"), "{e}");
        }
    }

    #[test]
    fn a_symbolic_link_as_the_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.toml");
        ClientsFile::default().save(&real).unwrap();
        let path = clients_path(dir.path());
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let e = ClientsFile::load(&path).unwrap_err().0;
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn the_server_keeps_its_list_when_a_new_version_is_untrusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        let mut f = ClientsFile::default();
        let old = f.add("old", Quota::default()).unwrap();
        f.save(&path).unwrap();
        let reg = Registry::open(path.clone()).unwrap();
        let new = f.add("new", Quota::default()).unwrap();
        f.save(&path).unwrap();
        chmod(&path, 0o666);
        assert_eq!(
            reg.verify(None, &new),
            None,
            "the untrusted version is not loaded"
        );
        assert_eq!(
            reg.verify(None, &old).as_deref(),
            Some("old"),
            "the old list stays"
        );
        chmod(&path, 0o600);
        assert_eq!(
            reg.verify(None, &new).as_deref(),
            Some("new"),
            "fixed: loaded"
        );
        // The directory turning group-writable is a change too.
        f.clients.remove("old");
        f.save(&path).unwrap();
        chmod(dir.path(), 0o770);
        assert_eq!(
            reg.verify(None, &old).as_deref(),
            Some("old"),
            "kept, not reloaded"
        );
        chmod(dir.path(), 0o700);
        assert_eq!(
            reg.verify(None, &old),
            None,
            "trusted again: the removal applies"
        );
    }

    #[test]
    fn bad_names_in_the_file_are_reported_with_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        for (toml, entry) in [
            ("[clients.\"al ice\"]\ntoken_sha256 = \"00\"\n", "[al ice]"),
            (
                "[clients.\"\u{430}lice\"]\ntoken_sha256 = \"00\"\n",
                "[\u{430}lice]",
            ),
            (
                "[clients.\"unix:root\"]\ntoken_sha256 = \"00\"\n",
                "[unix:root]",
            ),
            ("[unix.\"bad/user\"]\n", "[unix.bad/user]"),
        ] {
            std::fs::write(&path, toml).unwrap();
            chmod(&path, 0o600);
            let e = ClientsFile::load(&path).unwrap_err().0;
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(entry), "{entry}: {e}");
            assert!(
                e.contains("is not allowed") && e.contains("ASCII letters"),
                "{e}"
            );
        }
    }

    #[test]
    fn names_are_checked_and_unix_users_have_their_own_namespace() {
        assert_eq!(
            ClientName::parse("root").unwrap(),
            ClientName::Token("root")
        );
        assert_eq!(
            ClientName::parse("unix:root").unwrap(),
            ClientName::Unix("root")
        );
        for bad in ["unix:", "unix:a:b", "Unix:x", "alice ", "a\u{202e}b", ""] {
            assert!(ClientName::parse(bad).is_err(), "{bad:?}");
        }
        let mut f = ClientsFile::default();
        f.add("alice", Quota::default()).unwrap();
        let e = f.add("Alice", Quota::default()).unwrap_err().0;
        assert!(e.contains("only in case"), "{e}");
        assert!(f.add("unix:alice", Quota::default()).is_err());
        // A token client root and the Unix user root are two clients.
        let t = f.add("root", Quota::default()).unwrap();
        f.allow_unix(
            "alice",
            Quota {
                max_records: Some(3),
                ..Quota::default()
            },
        )
        .unwrap();
        assert!(f.allow_unix("alice", Quota::default()).is_err());
        assert!(f.allow_unix("ALICE", Quota::default()).is_err());
        assert!(f.allow_unix("a b", Quota::default()).is_err());
        assert_eq!(f.verify(None, &t).as_deref(), Some("root"));
        assert_eq!(f.verify(Some("unix:root"), &t), None);
        assert_eq!(f.quota("unix:alice").unwrap().max_records, Some(3));
        assert_eq!(f.quota("alice"), Some(Quota::default()));
        assert_eq!(f.quota("unix:bob"), None);
        // Exact comparison: no case folding or trimming when signing in.
        assert_eq!(f.verify(Some("Root"), &t), None);
        assert_eq!(f.verify(Some("root "), &t), None);
    }

    #[test]
    fn only_allowed_unix_users_are_clients_on_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_path(dir.path());
        let reg = Registry::open(path.clone()).unwrap();
        // The user the server runs as and root are allowed by default.
        let me = euid();
        let my_name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(me))
            .unwrap()
            .unwrap()
            .name;
        assert_eq!(reg.unix_client(me), Some(format!("unix:{my_name}")));
        assert_eq!(reg.unix_client(0).as_deref(), Some("unix:root"));
        // Anyone else needs an entry; a uid is not in question here, so a made-up one.
        let other = if me == 4242 { 4243 } else { 4242 };
        assert_eq!(reg.unix_client_named(other, "alice"), None);
        let mut f = ClientsFile::load(&path).unwrap();
        f.allow_unix("alice", Quota::default()).unwrap();
        f.save(&path).unwrap();
        assert_eq!(
            reg.unix_client_named(other, "alice").as_deref(),
            Some("unix:alice")
        );
        assert_eq!(
            reg.unix_client_named(other, "Alice"),
            None,
            "compared exactly"
        );
        // A user name outside the client-name set is never a client.
        assert_eq!(reg.unix_client_named(me, "bad name"), None);
        f.unix.remove("alice");
        f.save(&path).unwrap();
        assert_eq!(
            reg.unix_client_named(other, "alice"),
            None,
            "removed: not allowed"
        );
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
