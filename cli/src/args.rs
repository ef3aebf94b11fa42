//! The command line: global options and subcommands (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use state_core::Engine;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  not found: the key (or bucket) named does not exist, or has no TTL to report
  2  usage: bad arguments or bad input (malformed load file, invalid key, bucket name,
     TTL or value); nothing of the rejected input was written (see `load` for jsonl)
  3  store error: the store cannot be used (missing, locked by another process,
     corrupt, I/O error) or `check` found problems";

/// Inspect and edit a libstate store: buckets, keys, values and TTLs; dump, load,
/// check and compact it.
#[derive(Debug, Parser)]
#[command(name = "state", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The store directory.
    #[arg(
        long,
        short = 's',
        global = true,
        env = state_service::STORE_ENV,
        default_value = state_service::DEFAULT_STORE_DIR,
        value_name = "DIR"
    )]
    pub store: PathBuf,

    /// Storage engine: sled or memfile. Default: the engine the store was created
    /// with (sled for a new store).
    #[arg(long, global = true, value_name = "ENGINE", value_parser = parse_engine)]
    pub engine: Option<Engine>,

    /// Print results as JSON for scripts (values base64-encoded).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the buckets that hold at least one record.
    Buckets,

    /// Show the engine, counts of buckets, records and expiring keys, and bytes on disk.
    Info,

    /// Print a value: text if it is printable UTF-8, else `base64:...`.
    Get {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Write the value's bytes exactly as stored, without a newline.
        #[arg(long)]
        raw: bool,
    },

    /// Set a value, from the command line, a file (--file F) or standard input (-).
    Set {
        /// The bucket (created by its first record).
        bucket: String,
        /// The key.
        key: String,
        /// The value; `-` reads it from standard input. A value that starts with `-`
        /// goes after `--`: `state set b k -- -5`.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file (`-` for standard input).
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
        /// Time to live, e.g. 30s, 5m, 1h 30m, 500ms. Without it any TTL is cleared.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        ttl: Option<Duration>,
    },

    /// Delete a key (exit code 1 if it did not exist).
    Del {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },

    /// List keys in byte order, optionally with their values.
    Keys {
        /// The bucket.
        bucket: String,
        /// Only keys that start with this prefix.
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// Start at this key: the first key >= K (with --reverse, the last key <= K).
        #[arg(long, value_name = "K")]
        from: Option<String>,
        /// At most N keys.
        #[arg(long, short = 'n', value_name = "N")]
        limit: Option<u64>,
        /// Descending order.
        #[arg(long, short = 'r')]
        reverse: bool,
        /// Print each key's value too (tab-separated; JSON: base64).
        #[arg(long, short = 'v')]
        values: bool,
    },

    /// Show a key's remaining time to live.
    Ttl {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },

    /// Give an existing key a time to live.
    Expire {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Time to live, e.g. 30s, 5m, 1h 30m.
        #[arg(value_parser = parse_duration, value_name = "DURATION")]
        ttl: Duration,
    },

    /// Remove a key's time to live, so it never expires.
    Persist {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },

    /// Remove a bucket and every record in it.
    RmBucket {
        /// The bucket.
        bucket: String,
    },

    /// Write buckets (default: all) in the original state service's JSON format
    /// `{bucket: {key: base64}}`, or as JSON lines with TTLs (--format jsonl).
    Dump {
        /// Only these buckets.
        buckets: Vec<String>,
        /// Write to this file (atomically: a temporary file renamed into place)
        /// instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },

    /// Load a dump or an original state service store file (`-` for standard input).
    ///
    /// json (the default; also the original's store files): the whole file is checked
    /// before anything is written, then each bucket is written in one atomic batch.
    /// jsonl (--format jsonl, or a .jsonl/.ndjson file): streamed in batches; at a bad
    /// line the records before it stay loaded and the error names the line. Loading
    /// overwrites keys that exist and keeps the others, so it can simply be rerun.
    Load {
        /// The file to load; `-` reads standard input.
        file: PathBuf,
        /// Input format (default: jsonl for .jsonl/.ndjson files, else json).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },

    /// Verify the store: open it (which checks the engine's checksums), read every
    /// record of every bucket and check the expiry index. Exit code 3 if anything is
    /// wrong.
    Check,

    /// Reclaim space, keeping every live record and TTL (memfile: fold the logs into a
    /// snapshot; sled: copy into a fresh store beside this one, verify the copy, swap it
    /// in). Reports bytes before and after.
    Compact,

    /// Write a point-in-time copy of the store to the new directory DEST (a store of
    /// the same engine: open it with --store DEST, or move it into place to restore).
    /// Works while the store is open in a program, which goes on reading and writing
    /// meanwhile. A store kept on a Redis server is backed up with Redis's tools.
    Backup {
        /// The new directory for the copy (must not exist).
        dest: std::path::PathBuf,
    },

    /// Serve the store to many programs: the Redis protocol on a Unix socket
    /// (<store>/state.sock, mode 0600; the server's own Unix user and root, and users
    /// allowed with `state client add unix:NAME`, are client unix:NAME there without a
    /// token) and on loopback TCP
    /// port 7379, and the original's JSON API over HTTP on loopback port 7380. Each
    /// connection reaches only its own client's bucket. Runs in the foreground, logs
    /// to standard error (RUST_LOG=debug for more); SIGTERM or Ctrl-C stops it
    /// cleanly. Creates the store if it does not exist.
    Serve(Box<ServeArgs>),

    /// Manage the clients of `state serve` and their tokens (<store>/clients.toml).
    Client(ClientArgs),

    /// Write the man pages and shell completions generated from this command-line
    /// definition into DIR (used by packaging: `make dist`; hidden from --help).
    #[command(hide = true)]
    Generate {
        /// Output directory: man pages go to DIR/man1, completions to
        /// DIR/completions (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// `state client` options and subcommand.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The client list (default: clients.toml in the store directory; required for
    /// a store opened by URL).
    #[arg(long, value_name = "FILE", global = true)]
    pub clients: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// `state serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Read settings from this TOML file: one key per flag, named like the flag
    /// without its dashes (`resp = "127.0.0.1:7379"`, `max-connections = 100`,
    /// `sync = true`, `cors = ["https://a.example"]`; `store` and `engine` too).
    /// Flags on the command line and STATE_* environment variables override it.
    #[arg(long, value_name = "FILE", env = "STATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Create the store directory if it does not exist (without it, only the
    /// default store, ./state-data, is created: a mistyped --store is refused).
    #[arg(long, env = "STATE_CREATE")]
    pub create: bool,
    /// Unix socket for the Redis protocol, or `off` (default: <store>/state.sock).
    #[arg(long, value_name = "PATH|off", env = "STATE_UNIX")]
    pub unix: Option<String>,
    /// The Unix socket's permissions, in octal (default 0600: only the server's own
    /// user can connect). 0660 with --unix-group lets that group's users connect;
    /// each still needs `state client add unix:USER` to get a bucket.
    #[arg(long, value_name = "MODE", value_parser = parse_mode, default_value = "0600", env = "STATE_UNIX_MODE")]
    pub unix_mode: u32,
    /// The Unix socket's group (a name or a numeric id; the server's user must be
    /// a member, or root).
    #[arg(long, value_name = "GROUP", env = "STATE_UNIX_GROUP")]
    pub unix_group: Option<String>,
    /// How the server logs to standard error: text (coloured on a terminal unless
    /// NO_COLOR is set) or json (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "STATE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Redis-protocol TCP address, or `off`.
    #[arg(
        long,
        value_name = "ADDR|off",
        default_value = "127.0.0.1:7379",
        env = "STATE_RESP"
    )]
    pub resp: String,
    /// HTTP address, or `off`.
    #[arg(
        long,
        value_name = "ADDR|off",
        default_value = "127.0.0.1:7380",
        env = "STATE_HTTP"
    )]
    pub http: String,
    /// TLS certificate chain (PEM) for the TCP listeners.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "STATE_TLS_CERT"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "STATE_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
    /// Allow listening on a non-loopback address without TLS.
    #[arg(long, env = "STATE_INSECURE")]
    pub insecure: bool,
    /// Serve this directory's files at / on the HTTP listener (e.g. examples/web).
    #[arg(long, value_name = "DIR", env = "STATE_WEB")]
    pub web: Option<PathBuf>,
    /// Allow this origin to call the HTTP API from a browser (repeatable).
    #[arg(long, value_name = "ORIGIN", env = "STATE_CORS", value_delimiter = ',')]
    pub cors: Vec<String>,
    /// Most connections at once (the next one gets an error and is closed).
    #[arg(long, default_value_t = 1024, env = "STATE_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// A request must arrive whole within this time of its first byte (RESP
    /// requests and HTTP bodies), and a TLS handshake complete within it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s", env = "STATE_READ_TIMEOUT")]
    pub read_timeout: Duration,
    /// A peer that does not read its replies for this long is disconnected.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s", env = "STATE_WRITE_TIMEOUT")]
    pub write_timeout: Duration,
    /// A connection must sign in within this time of being accepted (HTTP: send an
    /// authorized request).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s", env = "STATE_AUTH_TIMEOUT")]
    pub auth_timeout: Duration,
    /// Most connections at once that have not signed in; one more closes the oldest.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 128,
        env = "STATE_MAX_PENDING"
    )]
    pub max_pending: usize,
    /// Most bytes one signed-in connection may hold of requests: the request being
    /// received plus its queued MULTI commands.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, env = "STATE_MAX_QUERY_BYTES")]
    pub max_query_bytes: usize,
    /// Most bytes of one connection's replies: a reply that would be larger is
    /// refused with an error before it is built.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, env = "STATE_MAX_OUTPUT_BYTES")]
    pub max_output_bytes: usize,
    /// Most bytes all connections together may hold in request and reply buffers.
    #[arg(long, value_name = "BYTES", default_value_t = 192 << 20, env = "STATE_MAX_BUFFERED_BYTES")]
    pub max_buffered_bytes: usize,
    /// Most channels plus patterns one RESP connection may subscribe to.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 128,
        env = "STATE_MAX_SUBSCRIPTIONS"
    )]
    pub max_subscriptions: usize,
    /// Most keys one RESP connection's client-side-caching table (CLIENT TRACKING,
    /// default mode) remembers; past it the oldest key is invalidated and forgotten.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        env = "STATE_TRACKING_TABLE_MAX_KEYS"
    )]
    pub tracking_table_max_keys: usize,
    /// Answer HTTP requests for this Host name too (repeatable; loopback addresses,
    /// IP literals and `localhost` are always served). Other names get 421, which
    /// stops DNS-rebinding pages.
    #[arg(
        long,
        value_name = "NAME",
        env = "STATE_HTTP_HOST",
        value_delimiter = ','
    )]
    pub http_host: Vec<String>,
    /// Require `Authorization: Bearer TOKEN` on GET /metrics.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STATE_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Close connections idle this long (default: never, as Redis).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = "STATE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<Duration>,
    /// Default quota: most records per client (a client's own entry overrides it).
    #[arg(long, value_name = "N", env = "STATE_MAX_RECORDS")]
    pub max_records: Option<u64>,
    /// Default quota: most bytes of keys plus values per client.
    #[arg(long, value_name = "BYTES", env = "STATE_MAX_BYTES")]
    pub max_bytes: Option<u64>,
    /// Default quota: largest value per client, in bytes.
    #[arg(long, value_name = "BYTES", env = "STATE_MAX_VALUE_SIZE")]
    pub max_value_size: Option<u64>,
    /// Sync durability: every write is on disk before it is acknowledged.
    #[arg(long, env = "STATE_SYNC")]
    pub sync: bool,
    /// Event loops for Redis-protocol connections: each a thread that reads, runs
    /// and answers the requests of the connections handed to it in turn (default:
    /// one per two cores, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024), env = "STATE_THREADS")]
    pub threads: Option<u64>,
    /// How often the store's sweeper removes expired keys, which is when `expired`
    /// notifications are sent (expired keys are invisible to reads at once).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, default_value = "1s", env = "STATE_SWEEP_INTERVAL")]
    pub sweep_interval: Duration,
    /// The client list (default: clients.toml in the store directory; required for
    /// a store opened by URL, where every instance should name the same file).
    #[arg(long, value_name = "FILE", env = "STATE_CLIENTS")]
    pub clients: Option<PathBuf>,
    /// For tests on this machine only: Redis-protocol connections act as client
    /// CLIENT (default `dev`) without signing in, as Redis without a password.
    /// Refused unless every TCP listener is on a loopback address.
    #[arg(long, value_name = "CLIENT", num_args = 0..=1, default_missing_value = "dev", require_equals = true)]
    pub dev_no_auth: Option<String>,
}

/// `state client` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Add a client and print its new token (the only line on standard output,
    /// shown once: only a hash of it is stored). `unix:USER` instead allows Unix
    /// user USER on the socket, as client unix:USER, without a token (nothing is
    /// printed).
    Add {
        /// The client's name (its bucket): 1 to 64 ASCII letters, digits, '.', '_'
        /// and '-'; or unix:USER.
        name: String,
        /// Quota: most records.
        #[arg(long, value_name = "N")]
        max_records: Option<u64>,
        /// Quota: most bytes of keys plus values.
        #[arg(long, value_name = "BYTES")]
        max_bytes: Option<u64>,
        /// Quota: largest value, in bytes.
        #[arg(long, value_name = "BYTES")]
        max_value_size: Option<u64>,
        /// An administrator: its token may also run `state client ...` (usage,
        /// quotas, tokens, data) through the server over TCP.
        #[arg(long)]
        admin: bool,
    },
    /// List the clients and their quotas (Unix users as unix:USER).
    List,
    /// List the clients with their usage (records, bytes of keys plus values) and
    /// quotas. Reads the store (through `state serve` while it runs).
    Usage,
    /// Set a client's quota (the limits given; the others become unlimited), or
    /// clear it with --clear. A running server applies it at once.
    Quota {
        /// The client's name, or unix:USER.
        name: String,
        /// Most records.
        #[arg(long, value_name = "N")]
        max_records: Option<u64>,
        /// Most bytes of keys plus values.
        #[arg(long, value_name = "BYTES")]
        max_bytes: Option<u64>,
        /// Largest value, in bytes.
        #[arg(long, value_name = "BYTES")]
        max_value_size: Option<u64>,
        /// Remove every limit.
        #[arg(long, conflicts_with_all = ["max_records", "max_bytes", "max_value_size"])]
        clear: bool,
    },
    /// Give a client a new token, printed once (the old one stops working and its
    /// sessions end).
    Rotate {
        /// The client's name.
        name: String,
    },
    /// Remove every record of a client's bucket (the client stays).
    Purge {
        /// The client's name, or unix:USER.
        name: String,
    },
    /// Remove a client: its token stops working (its bucket's data stays);
    /// `unix:USER` takes Unix user USER's permission to use the socket away.
    Rm {
        /// The client's name, or unix:USER.
        name: String,
    },
}

/// `state serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// A dump/load format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The original state service's `{bucket: {key: base64}}` (no TTLs).
    Json,
    /// One `{"bucket","key","value"[,"expires_at_ms"]}` object per line (keeps TTLs).
    Jsonl,
}

fn parse_engine(s: &str) -> Result<Engine, String> {
    s.parse::<Engine>().map_err(|e| e.to_string())
}

/// Parses "30s", "5m", "1h 30m", "250ms"; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 30s, 5m, 1h 30m, 500ms)"))
}

/// An octal file mode such as `0660` or `660`, at most `0777`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!(
            "{s:?} is not an octal mode from 0000 to 0777 (e.g. 0660)"
        )),
    }
}

/// A duration greater than zero (how often something runs).
fn parse_interval(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be greater than zero".to_string()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_no_auth_is_off_unless_given_and_names_dev_by_default() {
        let serve = |args: &[&str]| {
            let mut v = vec!["state", "serve"];
            v.extend_from_slice(args);
            match Cli::parse_from(v).command {
                Command::Serve(a) => a.dev_no_auth,
                _ => panic!("serve parses as serve"),
            }
        };
        assert_eq!(serve(&[]), None);
        assert_eq!(serve(&["--dev-no-auth"]).as_deref(), Some("dev"));
        assert_eq!(serve(&["--dev-no-auth=bob"]).as_deref(), Some("bob"));
        // Without '=' the next word is not taken as the client.
        assert_eq!(
            serve(&["--dev-no-auth", "--resp", "127.0.0.1:0"]).as_deref(),
            Some("dev")
        );
    }

    #[test]
    fn serve_sweeps_at_the_cores_default_interval_unless_told() {
        let Command::Serve(a) = Cli::parse_from(["state", "serve"]).command else {
            panic!("serve parses as serve");
        };
        assert_eq!(a.sweep_interval, state_core::DEFAULT_SWEEP_INTERVAL);
        let Command::Serve(a) =
            Cli::parse_from(["state", "serve", "--sweep-interval", "250ms"]).command
        else {
            panic!("serve parses as serve");
        };
        assert_eq!(a.sweep_interval, Duration::from_millis(250));
        let e = Cli::try_parse_from(["state", "serve", "--sweep-interval", "0s"]).unwrap_err();
        assert!(e.to_string().contains("greater than zero"), "{e}");
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
