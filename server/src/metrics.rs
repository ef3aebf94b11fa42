//! Counters for `GET /metrics` (Prometheus text format).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use state_core::{ErrorKind, StoreCounts};
use state_service::ErrorKind as Kind;

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BOUNDS: [f64; 10] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.025, 0.1,
];

/// The server's counters. All updates are relaxed atomic adds.
#[derive(Debug)]
pub struct Metrics {
    /// Connections accepted, ever.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections refused at the connection limit.
    pub connections_refused: AtomicU64,
    /// The names of the Redis-protocol commands, by their index in the server's
    /// command table (the index [`Local::command`] counts by).
    command_names: Vec<&'static str>,
    /// HTTP requests to `/v1/...`.
    pub http_requests: AtomicU64,
    /// Errors by kind: protocol, auth, invalid, quota, too_large, store.
    errors: [AtomicU64; 6],
    /// The per-request counters, one set per thread that serves requests (each
    /// event loop has its own; every other thread shares the first), summed when
    /// read: a thread adds to its own cache lines only.
    shards: Box<[Shard]>,
}

/// One thread's share of the per-request counters ([`Metrics::shards`]).
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    /// Commands (RESP) by index in the command table; the last slot counts
    /// unknown ones.
    commands: Box<[AtomicU64]>,
    latency: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_ns: AtomicU64,
    /// Key lookups of read commands that found the key (INFO's `keyspace_hits`).
    hits: AtomicU64,
    /// Key lookups of read commands that did not (INFO's `keyspace_misses`).
    misses: AtomicU64,
}

thread_local! {
    /// The shard this thread adds to (see [`set_thread_shard`]).
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes this thread add its counts to shard `i` (taken modulo the number of
/// shards): event loop `n` uses shard `n + 1`.
pub(crate) fn set_thread_shard(i: usize) {
    SHARD.with(|s| s.set(i));
}

/// One connection's counts, added to the shared [`Metrics`] in one go by
/// [`Local::flush`] (after each batch of pipelined requests), so connections on
/// different threads do not contend on shared counters for every request. Made by
/// [`Metrics::local`].
#[derive(Debug)]
pub struct Local {
    /// By index in the command table; the last slot counts unknown commands.
    commands: Vec<u64>,
    /// The indexes of `commands` counted since the last flush, so a flush visits
    /// those only (the table has over a hundred commands; a flush follows every
    /// batch of requests).
    touched: Vec<usize>,
    latency: [u64; LATENCY_BOUNDS.len() + 1],
    latency_sum_ns: u64,
}

impl Metrics {
    /// This thread's shard.
    fn shard(&self) -> &Shard {
        let i = SHARD.with(std::cell::Cell::get) % self.shards.len();
        &self.shards[i]
    }

    /// The sum of one counter over the shards.
    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| f(s).load(Relaxed)).sum()
    }

    /// Adds a connection's key lookups (see [`crate::resp::Out::lookup`]): hits
    /// and misses.
    pub fn lookups(&self, (hits, misses): (u64, u64)) {
        if hits == 0 && misses == 0 {
            return;
        }
        let s = self.shard();
        if hits > 0 {
            s.hits.fetch_add(hits, Relaxed);
        }
        if misses > 0 {
            s.misses.fetch_add(misses, Relaxed);
        }
    }

    /// Key lookups of read commands that found the key (INFO's `keyspace_hits`).
    pub fn keyspace_hits(&self) -> u64 {
        self.sum(|s| &s.hits)
    }

    /// Key lookups of read commands that did not (INFO's `keyspace_misses`).
    pub fn keyspace_misses(&self) -> u64 {
        self.sum(|s| &s.misses)
    }

    /// Commands run, known or not (INFO's `total_commands_processed`).
    pub fn commands_total(&self) -> u64 {
        self.shards
            .iter()
            .flat_map(|s| s.commands.iter())
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// Counts for one connection, to be added to these by [`Local::flush`].
    pub fn local(&self) -> Local {
        Local {
            commands: vec![0; self.command_names.len() + 1],
            touched: Vec::new(),
            latency: [0; LATENCY_BOUNDS.len() + 1],
            latency_sum_ns: 0,
        }
    }
}

impl Local {
    /// Counts a command by its index in the command table (`None`: unknown).
    pub fn command(&mut self, index: Option<usize>) {
        let i = index.unwrap_or(self.commands.len().saturating_sub(1));
        if let Some(c) = self.commands.get_mut(i) {
            if *c == 0 {
                self.touched.push(i);
            }
            *c += 1;
        }
    }

    /// Records how long a request took to run (excluding the network).
    pub fn latency(&mut self, d: Duration) {
        self.latency[bucket_of(d)] += 1;
        self.latency_sum_ns = self
            .latency_sum_ns
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records `n` requests run one after the other in `d` in all (the requests
    /// of one read: the clock is read per batch, not per request), each counted
    /// in the histogram at their mean time.
    pub fn latencies(&mut self, d: Duration, n: u32) {
        if n == 0 {
            return;
        }
        self.latency[bucket_of(d / n)] += u64::from(n);
        self.latency_sum_ns = self
            .latency_sum_ns
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds the counts to `m` and starts again from zero.
    pub fn flush(&mut self, m: &Metrics) {
        if self.touched.is_empty() && self.latency.iter().all(|&c| c == 0) {
            return;
        }
        let m = m.shard();
        for i in self.touched.drain(..) {
            if let Some(c) = self.commands.get_mut(i) {
                if let Some(shared) = m.commands.get(i) {
                    shared.fetch_add(*c, Relaxed);
                }
                *c = 0;
            }
        }
        for (i, c) in self.latency.iter_mut().enumerate() {
            if *c > 0 {
                m.latency[i].fetch_add(*c, Relaxed);
                *c = 0;
            }
        }
        if self.latency_sum_ns > 0 {
            m.latency_sum_ns
                .fetch_add(std::mem::take(&mut self.latency_sum_ns), Relaxed);
        }
    }
}

fn bucket_of(d: Duration) -> usize {
    let s = d.as_secs_f64();
    LATENCY_BOUNDS
        .iter()
        .position(|&b| s <= b)
        .unwrap_or(LATENCY_BOUNDS.len())
}

/// The kinds of error counted.
#[derive(Debug, Clone, Copy)]
pub enum ErrorClass {
    /// A malformed request; the connection was closed.
    Protocol = 0,
    /// A failed authentication.
    Auth = 1,
    /// A bad argument (key, value, option, unknown command).
    Invalid = 2,
    /// A write refused over quota.
    Quota = 3,
    /// A request over a size limit.
    TooLarge = 4,
    /// A store error (I/O, corrupt, closed, internal).
    Store = 5,
}

const ERROR_NAMES: [&str; 6] = ["protocol", "auth", "invalid", "quota", "too_large", "store"];

impl ErrorClass {
    /// The class of a service error.
    pub fn of(kind: Kind) -> ErrorClass {
        match kind {
            Kind::Store(ErrorKind::InvalidArgument) => ErrorClass::Invalid,
            Kind::QuotaExceeded => ErrorClass::Quota,
            Kind::Store(ErrorKind::TooLarge) => ErrorClass::TooLarge,
            _ => ErrorClass::Store,
        }
    }
}

impl Metrics {
    /// The counters of a server whose Redis-protocol commands are `command_names`,
    /// in the order of its command table: a command is counted by its index there,
    /// and `/metrics` names it by the name at that index. `threads`: how many
    /// threads count requests at once, each in a shard of its own
    /// ([`set_thread_shard`]); the shards are summed when read.
    pub fn new(command_names: Vec<&'static str>, threads: usize) -> Metrics {
        let shards = (0..threads.max(1))
            .map(|_| Shard {
                commands: (0..=command_names.len())
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                latency: Default::default(),
                latency_sum_ns: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            })
            .collect();
        Metrics {
            connections_total: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            command_names,
            http_requests: AtomicU64::new(0),
            errors: Default::default(),
            shards,
        }
    }
}

impl Metrics {
    /// Counts a command by its index in the command table (`None`: unknown).
    pub fn command(&self, index: Option<usize>) {
        let i = index.unwrap_or(self.command_names.len());
        if let Some(c) = self.shard().commands.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts an error.
    pub fn error(&self, class: ErrorClass) {
        self.errors[class as usize].fetch_add(1, Relaxed);
    }

    /// Records how long a request took to run (excluding the network).
    pub fn latency(&self, d: Duration) {
        let s = self.shard();
        s.latency[bucket_of(d)].fetch_add(1, Relaxed);
        s.latency_sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The Prometheus text exposition: the build, the process (`/proc`,
    /// `getrusage`), the server's counters (kept as requests run) and the store's
    /// bucket and record counts (`store`: [`state_core::Store::counts`], kept as
    /// writes commit; `None` leaves them out). Rendering reads no record.
    pub fn render(&self, store: Option<StoreCounts>) -> String {
        let mut o = String::new();
        let g = |o: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let _ = writeln!(
            o,
            "# HELP libstate_build_info The running build: libstate's version and the Redis version it follows.\n\
             # TYPE libstate_build_info gauge\n\
             libstate_build_info{{version=\"{}\",redis_version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            crate::REDIS_VERSION
        );
        process_metrics(&mut o);
        g(
            &mut o,
            "libstate_connections_total",
            "counter",
            "Connections accepted.",
            self.connections_total.load(Relaxed),
        );
        g(
            &mut o,
            "libstate_connections_open",
            "gauge",
            "Connections open now.",
            self.connections_open.load(Relaxed),
        );
        g(
            &mut o,
            "libstate_connections_refused_total",
            "counter",
            "Connections refused at the connection limit.",
            self.connections_refused.load(Relaxed),
        );
        g(
            &mut o,
            "libstate_http_requests_total",
            "counter",
            "HTTP API requests.",
            self.http_requests.load(Relaxed),
        );
        let _ = writeln!(o, "# HELP libstate_commands_total Redis-protocol commands by name.\n# TYPE libstate_commands_total counter");
        for i in 0..=self.command_names.len() {
            let n: u64 = self
                .shards
                .iter()
                .filter_map(|s| s.commands.get(i))
                .map(|c| c.load(Relaxed))
                .sum();
            if n > 0 {
                let name = self.command_names.get(i).copied().unwrap_or("unknown");
                let _ = writeln!(o, "libstate_commands_total{{command=\"{name}\"}} {n}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP libstate_errors_total Errors by kind.\n# TYPE libstate_errors_total counter"
        );
        for (i, name) in ERROR_NAMES.iter().enumerate() {
            let _ = writeln!(
                o,
                "libstate_errors_total{{kind=\"{name}\"}} {}",
                self.errors[i].load(Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP libstate_quota_refusals_total Writes refused over a client's quota.\n# TYPE libstate_quota_refusals_total counter\nlibstate_quota_refusals_total {}", self.errors[ErrorClass::Quota as usize].load(Relaxed));
        let _ = writeln!(o, "# HELP libstate_request_duration_seconds Time to run a request, excluding the network (the requests of one read are timed together, each at their mean).\n# TYPE libstate_request_duration_seconds histogram");
        let mut cum = 0u64;
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            cum += self.sum(|s| &s.latency[i]);
            let _ = writeln!(
                o,
                "libstate_request_duration_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        cum += self.sum(|s| &s.latency[LATENCY_BOUNDS.len()]);
        let _ = writeln!(
            o,
            "libstate_request_duration_seconds_bucket{{le=\"+Inf\"}} {cum}"
        );
        let _ = writeln!(
            o,
            "libstate_request_duration_seconds_sum {}",
            self.sum(|s| &s.latency_sum_ns) as f64 / 1e9
        );
        let _ = writeln!(o, "libstate_request_duration_seconds_count {cum}");
        if let Some(counts) = store {
            g(
                &mut o,
                "libstate_buckets",
                "gauge",
                "Buckets holding at least one record.",
                counts.buckets,
            );
            g(
                &mut o,
                "libstate_records",
                "gauge",
                "Records stored (expired ones count until the sweeper removes them).",
                counts.records,
            );
        }
        o
    }
}

/// The standard process metrics (the names Prometheus client libraries use): CPU
/// time, resident memory, open and allowed file descriptors, start time. A figure
/// that cannot be read on this system is left out.
fn process_metrics(o: &mut String) {
    let mut f = |name: &str, kind: &str, help: &str, v: f64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    use nix::sys::resource::{getrlimit, getrusage, Resource, UsageWho};
    if let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) {
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        f(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            secs(u.user_time()) + secs(u.system_time()),
        );
    }
    if let Some(kb) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
    {
        f(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            (kb * 1024) as f64,
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        f(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            dir.count() as f64,
        );
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        f(
            "process_max_fds",
            "gauge",
            "The most file descriptors the process may open.",
            soft as f64,
        );
    }
    if let Some(start) = *PROCESS_START {
        f(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the unix epoch, in seconds.",
            start,
        );
    }
}

/// When this process started, in unix seconds: the boot time (`btime` in
/// `/proc/stat`) plus the process's start in clock ticks (`/proc/self/stat`, field
/// 22). Read once.
static PROCESS_START: std::sync::LazyLock<Option<f64>> = std::sync::LazyLock::new(|| {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after its `)` are plain.
    let after = stat.rsplit_once(')')?.1;
    let ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(btime + ticks / hz as f64)
});

/// A rate limit for one kind of log line: at most `burst` lines per `period`; the
/// lines it holds back are counted and reported with the next one let through.
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    period: Duration,
    state: parking_lot::Mutex<(std::time::Instant, u32, u64)>,
}

impl LogLimiter {
    /// A limiter letting `burst` lines through per `period`.
    pub fn new(burst: u32, period: Duration) -> LogLimiter {
        LogLimiter {
            burst,
            period,
            state: parking_lot::Mutex::new((std::time::Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed)` if a line may be logged now (with how many were held back
    /// since the last one logged), `None` if it must be held back.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock();
        let now = std::time::Instant::now();
        if now.duration_since(s.0) >= self.period {
            *s = (now, 0, s.2);
        }
        if s.1 < self.burst {
            s.1 += 1;
            Some(std::mem::take(&mut s.2))
        } else {
            s.2 += 1;
            None
        }
    }
}

/// At most `max` characters of `s` for a log line, with `…` if cut, and control
/// characters escaped (a peer-chosen name cannot forge log lines).
pub fn log_safe(s: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(s);
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
