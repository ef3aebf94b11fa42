//! The Redis commands: argument parsing and reply shapes as Redis 7 has them, over
//! the client's bucket. Every data command runs against a core transaction
//! ([`state_core::Txn`]), so read-modify-writes are atomic against every other client
//! and MULTI/EXEC applies its queue as one batch; the commonest reads and plain
//! writes take the bucket's direct path.

use state_core::{Bucket, Error, ErrorKind, Expiry, StateService, Ttl, Txn};

use crate::glob;
use crate::resp::Out;
use crate::strops;

/// How a command may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connection and server commands (no key space).
    Conn,
    /// Reads and writes of the client's keys, run inside a transaction.
    Data,
    /// Iteration with a server-side cursor (not inside MULTI).
    Scan,
}

/// One command's table entry: name, Redis arity (n: exactly n arguments counting
/// the name; -n: at least n), kind.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity.
    pub arity: i32,
    /// What it does.
    pub kind: Kind,
    /// Whether it writes (COMMAND's flags).
    pub write: bool,
    /// Whether its work grows with the data (it runs where it cannot stall the
    /// connections that share its thread).
    pub heavy: bool,
}

const fn spec(name: &'static str, arity: i32, kind: Kind, write: bool) -> Spec {
    Spec {
        name,
        arity,
        kind,
        write,
        heavy: false,
    }
}

impl Spec {
    /// This command, marked heavy.
    const fn heavy(self) -> Spec {
        Spec {
            heavy: true,
            ..self
        }
    }
}

/// Every command the server knows.
pub static COMMANDS: &[Spec] = &[
    spec("ping", -1, Kind::Conn, false),
    spec("echo", 2, Kind::Conn, false),
    spec("quit", -1, Kind::Conn, false),
    spec("hello", -1, Kind::Conn, false),
    spec("auth", -2, Kind::Conn, false),
    spec("select", 2, Kind::Conn, false),
    spec("client", -2, Kind::Conn, false),
    spec("command", -1, Kind::Conn, false),
    spec("config", -2, Kind::Conn, false),
    spec("info", -1, Kind::Conn, false).heavy(),
    spec("multi", 1, Kind::Conn, false),
    spec("exec", 1, Kind::Conn, false).heavy(),
    spec("discard", 1, Kind::Conn, false),
    spec("reset", 1, Kind::Conn, false),
    spec("subscribe", -2, Kind::Conn, false),
    spec("psubscribe", -2, Kind::Conn, false),
    spec("unsubscribe", -1, Kind::Conn, false),
    spec("punsubscribe", -1, Kind::Conn, false),
    spec("dbsize", 1, Kind::Data, false).heavy(),
    spec("get", 2, Kind::Data, false),
    spec("set", -3, Kind::Data, true),
    spec("setnx", 3, Kind::Data, true),
    spec("setex", 4, Kind::Data, true),
    spec("psetex", 4, Kind::Data, true),
    spec("getdel", 2, Kind::Data, true),
    spec("getex", -2, Kind::Data, true),
    spec("getset", 3, Kind::Data, true),
    spec("mget", -2, Kind::Data, false),
    spec("mset", -3, Kind::Data, true),
    spec("msetnx", -3, Kind::Data, true),
    spec("strlen", 2, Kind::Data, false),
    spec("append", 3, Kind::Data, true),
    spec("incr", 2, Kind::Data, true),
    spec("incrby", 3, Kind::Data, true),
    spec("decr", 2, Kind::Data, true),
    spec("decrby", 3, Kind::Data, true),
    spec("del", -2, Kind::Data, true),
    spec("unlink", -2, Kind::Data, true),
    spec("exists", -2, Kind::Data, false),
    spec("type", 2, Kind::Data, false),
    spec("keys", 2, Kind::Data, false).heavy(),
    spec("flushdb", -1, Kind::Data, true).heavy(),
    // The client's whole key space is its one database: FLUSHALL is FLUSHDB.
    spec("flushall", -1, Kind::Data, true).heavy(),
    spec("expire", -3, Kind::Data, true),
    spec("pexpire", -3, Kind::Data, true),
    spec("expireat", -3, Kind::Data, true),
    spec("pexpireat", -3, Kind::Data, true),
    spec("ttl", 2, Kind::Data, false),
    spec("pttl", 2, Kind::Data, false),
    spec("expiretime", 2, Kind::Data, false),
    spec("pexpiretime", 2, Kind::Data, false),
    spec("persist", 2, Kind::Data, true),
    spec("scan", -2, Kind::Scan, false).heavy(),
    spec("setrange", 4, Kind::Data, true),
    spec("getrange", 4, Kind::Data, false),
    spec("substr", 4, Kind::Data, false),
    spec("setbit", 4, Kind::Data, true),
    spec("getbit", 3, Kind::Data, false),
    spec("bitcount", -2, Kind::Data, false),
    spec("bitpos", -3, Kind::Data, false),
    spec("bitop", -4, Kind::Data, true),
    spec("lcs", -3, Kind::Data, false).heavy(),
    spec("incrbyfloat", 3, Kind::Data, true),
    spec("rename", 3, Kind::Data, true),
    spec("renamenx", 3, Kind::Data, true),
    spec("copy", -3, Kind::Data, true),
    spec("randomkey", 1, Kind::Data, false),
    spec("touch", -2, Kind::Data, false),
    spec("object", -2, Kind::Data, false),
    spec("time", 1, Kind::Conn, false),
];

/// The table index and entry of a command name (any case).
pub fn lookup(name: &[u8]) -> Option<(usize, &'static Spec)> {
    if name.len() > 16 {
        return None;
    }
    let mut lower = [0u8; 16];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, s)| s.name.len() == lower.len() && s.name.as_bytes() == lower)
}

/// Whether `args` (including the name) fit `spec`'s arity.
pub fn arity_ok(spec: &Spec, n: usize) -> bool {
    let n = n as i32;
    if spec.arity >= 0 {
        n == spec.arity
    } else {
        n >= -spec.arity
    }
}

/// `-ERR unknown command ...` as Redis words it.
pub fn unknown_command(out: &mut Out, args: &[&[u8]]) {
    let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default());
    let mut msg = format!("ERR unknown command '{}', with args beginning with: ", name);
    for a in args.iter().skip(1).take(20) {
        msg.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
    }
    out.error(&msg);
}

/// `-ERR wrong number of arguments ...`.
pub fn wrong_arity(out: &mut Out, name: &str) {
    out.error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ));
}

/// Whether `name` may name a connection (CLIENT SETNAME and HELLO ... SETNAME, one
/// rule for both, as in Redis): only the characters `!` to `~`, no spaces, newlines
/// or anything else. If not, replies Redis's error. (An empty name clears it.)
pub fn connection_name_ok(name: &[u8], out: &mut Out) -> bool {
    if name.iter().all(|c| (b'!'..=b'~').contains(c)) {
        return true;
    }
    out.error("ERR Client names cannot contain spaces, newlines or special characters.");
    false
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

/// Parses an integer as Redis's `string2ll` does: no spaces, no `+`, no leading
/// zeros, within i64.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    match digits.first() {
        Some(c) if (b'1'..=b'9').contains(c) => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        n = if neg {
            n.checked_mul(10)?.checked_sub(d)?
        } else {
            n.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(n)
}

/// A key argument as a `str` within libstate's rules, or the error reply naming
/// the rule.
pub fn key_arg(b: &[u8]) -> Result<&str, String> {
    let s = std::str::from_utf8(b).map_err(|_| {
        "ERR invalid key: libstate keys are UTF-8 text of 1 to 1024 bytes, and this one is not UTF-8"
            .to_string()
    })?;
    state_core::limits::check_key(s).map_err(|e| {
        format!(
            "ERR invalid key: libstate keys are UTF-8 text of 1 to 1024 bytes ({})",
            strip_kind(&e)
        )
    })?;
    Ok(s)
}

fn strip_kind(e: &Error) -> String {
    let s = e.to_string();
    match s.split_once(": ") {
        Some((_, rest)) if e.kind() == ErrorKind::InvalidArgument => rest.to_string(),
        _ => s,
    }
}

/// The reply for a core error that ends one command (not the connection).
pub fn error_reply(out: &mut Out, e: &Error) {
    match e.kind() {
        ErrorKind::QuotaExceeded => out.error(&format!("ERR {e}")),
        ErrorKind::InvalidArgument => out.error(&format!("ERR {}", strip_kind(e))),
        ErrorKind::TooLarge => out.error(&format!("ERR {e}")),
        _ => out.error(&format!("ERR {e}")),
    }
}

/// A command's failure inside a transaction: a reply for this command only, or a
/// store error that aborts the transaction.
enum Fail {
    Reply(String),
    Store(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        match e.kind() {
            // A bad value or key for this command: Redis-style error reply.
            ErrorKind::InvalidArgument => Fail::Reply(format!("ERR {}", strip_kind(&e))),
            _ => Fail::Store(e),
        }
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Reply(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Fail {
        Fail::Reply(s.to_string())
    }
}

type Res = Result<(), Fail>;

fn key(b: &[u8]) -> Result<&str, Fail> {
    key_arg(b).map_err(Fail::Reply)
}

fn int(b: &[u8]) -> Result<i64, Fail> {
    parse_i64(b).ok_or(Fail::Reply(NOT_INTEGER.into()))
}

/// Runs data command `spec` with `args` (name first) inside `tx`, writing its reply.
///
/// # Errors
/// A store error (I/O, closed, corrupt, quota at commit): the whole transaction
/// must be abandoned.
pub fn exec_in_txn(
    tx: &mut Txn<'_>,
    spec: &Spec,
    args: &[&[u8]],
    out: &mut Out,
) -> Result<(), Error> {
    match run(tx, spec.name, args, out) {
        Ok(()) => Ok(()),
        Err(Fail::Reply(msg)) => {
            out.error(&msg);
            Ok(())
        }
        Err(Fail::Store(e)) => Err(e),
    }
}

fn now(tx: &Txn<'_>) -> i64 {
    i64::try_from(tx.now_ms()).unwrap_or(i64::MAX)
}

/// The absolute deadline for an expire-style argument.
fn deadline(tx: &Txn<'_>, n: i64, unit_ms: i64, absolute: bool, cmd: &str) -> Result<i64, Fail> {
    let bad = || Fail::Reply(format!("ERR invalid expire time in '{cmd}' command"));
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    if absolute {
        Ok(ms)
    } else {
        ms.checked_add(now(tx)).ok_or_else(bad)
    }
}

fn expiry_at(d: i64) -> Expiry {
    Expiry::At(u64::try_from(d.max(0)).unwrap_or(0))
}

fn run(tx: &mut Txn<'_>, name: &str, args: &[&[u8]], out: &mut Out) -> Res {
    match name {
        "get" => {
            if tx.get_with(key(args[1])?, |v| out.bulk(v))?.is_none() {
                out.null();
            }
            Ok(())
        }
        "set" => set(tx, args, out),
        "setnx" => {
            let k = key(args[1])?;
            if tx.contains(k)? {
                out.int(0);
            } else {
                tx.put(k, args[2].to_vec(), Expiry::Never)?;
                out.int(1);
            }
            Ok(())
        }
        "setex" | "psetex" => {
            let k = key(args[1])?;
            let n = int(args[2])?;
            if n <= 0 {
                return Err(format!("ERR invalid expire time in '{name}' command").into());
            }
            let unit = if name == "setex" { 1000 } else { 1 };
            let d = deadline(tx, n, unit, false, name)?;
            tx.put(k, args[3].to_vec(), expiry_at(d))?;
            out.ok();
            Ok(())
        }
        "getdel" => {
            let k = key(args[1])?;
            match tx.get(k)?.map(|s| s.value.clone()) {
                Some(v) => {
                    tx.delete(k)?;
                    out.bulk(&v);
                }
                None => out.null(),
            }
            Ok(())
        }
        "getex" => getex(tx, args, out),
        "getset" => {
            let k = key(args[1])?;
            let old = tx.get(k)?.map(|s| s.value.clone());
            tx.put(k, args[2].to_vec(), Expiry::Never)?;
            match old {
                Some(v) => out.bulk(&v),
                None => out.null(),
            }
            Ok(())
        }
        "mget" => {
            let keys: Vec<Option<&str>> = args[1..].iter().map(|a| key_arg(a).ok()).collect();
            out.array(keys.len());
            for k in keys {
                if out.overflowed() {
                    // The reply is refused whole: stop reading values for it.
                    break;
                }
                match k {
                    Some(k) => {
                        if tx.get_with(k, |v| out.bulk(v))?.is_none() {
                            out.null();
                        }
                    }
                    // Redis replies nil for a key that cannot exist.
                    None => out.null(),
                }
            }
            Ok(())
        }
        "mset" | "msetnx" => {
            if args.len() % 2 != 1 {
                return Err(format!("ERR wrong number of arguments for '{name}' command").into());
            }
            let pairs: Vec<(&str, &[u8])> = args[1..]
                .chunks(2)
                .map(|p| key(p[0]).map(|k| (k, p[1])))
                .collect::<Result<_, _>>()?;
            if name == "msetnx" {
                for (k, _) in &pairs {
                    if tx.contains(k)? {
                        out.int(0);
                        return Ok(());
                    }
                }
            }
            for (k, v) in pairs {
                tx.put(k, v.to_vec(), Expiry::Never)?;
            }
            if name == "msetnx" {
                out.int(1);
            } else {
                out.ok();
            }
            Ok(())
        }
        "strlen" => {
            let n = tx.get(key(args[1])?)?.map_or(0, |s| s.value.len());
            out.int(n as i64);
            Ok(())
        }
        "append" => {
            let k = key(args[1])?;
            let (mut v, exp) = match tx.get(k)? {
                Some(s) => (s.value.clone(), Expiry::Keep),
                None => (Vec::new(), Expiry::Never),
            };
            v.extend_from_slice(args[2]);
            let len = v.len();
            tx.put(k, v, exp)?;
            out.int(len as i64);
            Ok(())
        }
        "incr" | "decr" | "incrby" | "decrby" => {
            let k = key(args[1])?;
            let by = match name {
                "incr" => 1,
                "decr" => -1,
                "incrby" => int(args[2])?,
                _ => {
                    let n = int(args[2])?;
                    n.checked_neg()
                        .ok_or(Fail::Reply("ERR decrement would overflow".into()))?
                }
            };
            let (old, exp) = match tx.get(k)? {
                Some(s) => (
                    parse_i64(&s.value).ok_or(Fail::Reply(NOT_INTEGER.into()))?,
                    Expiry::Keep,
                ),
                None => (0, Expiry::Never),
            };
            let new = old.checked_add(by).ok_or(Fail::Reply(
                "ERR increment or decrement would overflow".into(),
            ))?;
            tx.put(k, new.to_string().into_bytes(), exp)?;
            out.int(new);
            Ok(())
        }
        "del" | "unlink" => {
            let mut n = 0;
            for a in &args[1..] {
                if let Ok(k) = key_arg(a) {
                    if tx.delete(k)? {
                        n += 1;
                    }
                }
            }
            out.int(n);
            Ok(())
        }
        "exists" => {
            let mut n = 0;
            for a in &args[1..] {
                if let Ok(k) = key_arg(a) {
                    if tx.contains(k)? {
                        n += 1;
                    }
                }
            }
            out.int(n);
            Ok(())
        }
        "type" => {
            let present = match key_arg(args[1]) {
                Ok(k) => tx.contains(k)?,
                Err(_) => false,
            };
            out.simple(if present { "string" } else { "none" });
            Ok(())
        }
        "keys" => {
            // Inside MULTI (the only way here): within the transaction.
            let pattern = glob::Pattern::new(args[1]).map_err(|e| Fail::Reply(e.to_string()))?;
            let mut found = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let batch = tx.keys(after.as_deref(), 1024)?;
                let Some(last) = batch.last().cloned() else {
                    break;
                };
                found.extend(batch.into_iter().filter(|k| pattern.matches(k.as_bytes())));
                after = Some(last);
            }
            out.array(found.len());
            for k in found {
                out.bulk(k.as_bytes());
                if out.overflowed() {
                    break;
                }
            }
            Ok(())
        }
        "dbsize" => {
            let mut n = 0u64;
            let mut after: Option<String> = None;
            loop {
                let batch = tx.keys(after.as_deref(), 4096)?;
                let Some(last) = batch.last().cloned() else {
                    break;
                };
                n += batch.len() as u64;
                after = Some(last);
            }
            out.int(i64::try_from(n).unwrap_or(i64::MAX));
            Ok(())
        }
        "flushdb" | "flushall" => {
            match args.get(1) {
                None => {}
                Some(a) if a.eq_ignore_ascii_case(b"async") || a.eq_ignore_ascii_case(b"sync") => {}
                Some(_) => return Err(SYNTAX.into()),
            }
            if args.len() > 2 {
                return Err(SYNTAX.into());
            }
            tx.clear()?;
            out.ok();
            Ok(())
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => expire(tx, name, args, out),
        "setrange" => setrange(tx, args, out),
        "getrange" | "substr" => {
            let (start, end) = (int(args[2])?, int(args[3])?);
            let k = key(args[1])?;
            if tx
                .get_with(k, |v| out.bulk(strops::getrange(v, start, end)))?
                .is_none()
            {
                out.bulk(b"");
            }
            Ok(())
        }
        "setbit" => setbit(tx, args, out),
        "getbit" => {
            let k = key(args[1])?;
            let offset = bit_offset(tx, args[2])?;
            let bit = tx.get_with(k, |v| strops::getbit(v, offset))?;
            out.int(i64::from(bit.unwrap_or(0)));
            Ok(())
        }
        "bitcount" => bitcount(tx, args, out),
        "bitpos" => bitpos(tx, args, out),
        "bitop" => bitop(tx, args, out),
        "lcs" => lcs(tx, args, out),
        "incrbyfloat" => {
            let k = key(args[1])?;
            let (old, exp) = match tx.get(k)? {
                Some(s) => (Some(s.value.clone()), Expiry::Keep),
                None => (None, Expiry::Never),
            };
            let new = strops::incrbyfloat(old.as_deref(), args[2]).map_err(|e| match e {
                strops::FloatError::NotFloat => "ERR value is not a valid float",
                strops::FloatError::NotFinite => "ERR increment would produce NaN or Infinity",
            })?;
            tx.put(k, new.clone().into_bytes(), exp)?;
            out.bulk(new.as_bytes());
            Ok(())
        }
        "rename" | "renamenx" => rename(tx, name, args, out),
        "copy" => copy(tx, args, out),
        "randomkey" => randomkey(tx, out),
        "touch" => {
            let mut n = 0;
            for a in &args[1..] {
                if let Ok(k) = key_arg(a) {
                    if tx.contains(k)? {
                        n += 1;
                    }
                }
            }
            out.int(n);
            Ok(())
        }
        "object" => object(tx, args, out),
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => {
            let k = key(args[1])?;
            let reply = match tx.get(k)? {
                None => -2,
                Some(s) => match s.expires_at_ms {
                    None => -1,
                    Some(d) => {
                        let d = i64::try_from(d).unwrap_or(i64::MAX);
                        let v = if name.ends_with("time") {
                            d
                        } else {
                            (d - now(tx)).max(0)
                        };
                        if name.starts_with('p') {
                            v
                        } else {
                            (v + 500) / 1000
                        }
                    }
                },
            };
            out.int(reply);
            Ok(())
        }
        "persist" => {
            let k = key(args[1])?;
            let had = tx.get(k)?.is_some_and(|s| s.expires_at_ms.is_some());
            if had {
                tx.set_expiry(k, None)?;
            }
            out.int(i64::from(had));
            Ok(())
        }
        other => Err(format!("ERR unknown command '{other}'").into()),
    }
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
fn set(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let k = key(args[1])?;
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut exp: Option<i64> = None;
    let mut i = 3;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        let next = args.get(i + 1);
        match a.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"get" => get = true,
            b"keepttl" if exp.is_none() => keepttl = true,
            b"ex" | b"px" | b"exat" | b"pxat" if exp.is_none() && !keepttl && next.is_some() => {
                let n = int(next.copied().unwrap_or_default())?;
                if n <= 0 {
                    return Err("ERR invalid expire time in 'set' command".into());
                }
                let (unit, abs) = match a.as_slice() {
                    b"ex" => (1000, false),
                    b"px" => (1, false),
                    b"exat" => (1000, true),
                    _ => (1, true),
                };
                exp = Some(deadline(tx, n, unit, abs, "set")?);
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    let old = tx.get(k)?.map(|s| s.value.clone());
    let go = !(nx && old.is_some() || xx && old.is_none());
    if go {
        let e = match (exp, keepttl) {
            (Some(d), _) => expiry_at(d),
            (None, true) => Expiry::Keep,
            (None, false) => Expiry::Never,
        };
        tx.put(k, args[2].to_vec(), e)?;
    }
    if get {
        match old {
            Some(v) => out.bulk(&v),
            None => out.null(),
        }
    } else if go {
        out.ok();
    } else {
        out.null();
    }
    Ok(())
}

/// Redis's largest string (proto-max-bulk-len's default, 512 MiB).
const PROTO_MAX_BULK: u64 = 512 << 20;

/// The largest value a command may build here: Redis's 512 MiB or the store's
/// maximum value size, whichever is smaller. (A client's own quota is checked
/// when the transaction commits.)
fn max_value(tx: &Txn<'_>) -> u64 {
    (tx.bucket().store().max_value_size() as u64).min(PROTO_MAX_BULK)
}

/// The error for a value that would grow past [`max_value`].
fn too_big(tx: &Txn<'_>) -> Fail {
    let max = max_value(tx);
    if max == PROTO_MAX_BULK {
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into()
    } else {
        format!(
            "ERR string exceeds maximum allowed size (the store's maximum value size, {max} bytes)"
        )
        .into()
    }
}

/// SETRANGE key offset value: the new length is checked against the largest
/// value before anything is allocated.
fn setrange(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let k = key(args[1])?;
    let offset = int(args[2])?;
    if offset < 0 {
        return Err("ERR offset is out of range".into());
    }
    let src = args[3];
    let (len, exp) = match tx.get(k)? {
        Some(s) => (Some(s.value.len()), Expiry::Keep),
        None => (None, Expiry::Never),
    };
    if src.is_empty() {
        // Nothing to write: the length as it is (a missing key is not created).
        out.int(len.unwrap_or(0) as i64);
        return Ok(());
    }
    let Some(new_len) =
        strops::setrange_len(len.unwrap_or(0), offset as u64, src.len(), max_value(tx))
    else {
        return Err(too_big(tx));
    };
    let mut v = tx.get(k)?.map(|s| s.value.clone()).unwrap_or_default();
    v.reserve(new_len.saturating_sub(v.len()));
    strops::setrange(&mut v, offset as usize, src);
    tx.put(k, v, exp)?;
    out.int(new_len as i64);
    Ok(())
}

/// A SETBIT/GETBIT offset: a non-negative integer whose byte is below the largest
/// value (Redis: below 512 MiB).
fn bit_offset(tx: &Txn<'_>, b: &[u8]) -> Result<u64, Fail> {
    let bad = || Fail::Reply("ERR bit offset is not an integer or out of range".into());
    let n = parse_i64(b).ok_or_else(bad)?;
    if n < 0 || (n as u64 >> 3) >= max_value(tx) {
        return Err(bad());
    }
    Ok(n as u64)
}

/// SETBIT key offset 0|1
fn setbit(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let k = key(args[1])?;
    let offset = bit_offset(tx, args[2])?;
    let on = match args[3] {
        b"0" => false,
        b"1" => true,
        _ => return Err("ERR bit is not an integer or out of range".into()),
    };
    let (mut v, exp) = match tx.get(k)? {
        Some(s) => (s.value.clone(), Expiry::Keep),
        None => (Vec::new(), Expiry::Never),
    };
    let old = strops::setbit(&mut v, offset, on);
    tx.put(k, v, exp)?;
    out.int(i64::from(old));
    Ok(())
}

/// BYTE or BIT (true for BIT).
fn bit_unit(b: &[u8]) -> Result<bool, Fail> {
    if b.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if b.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(SYNTAX.into())
    }
}

/// BITCOUNT key [start end [BYTE|BIT]] (a missing key is 0 before the range is
/// read, as in Redis 7.0).
fn bitcount(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let k = key(args[1])?;
    let Some(v) = tx.get(k)?.map(|s| s.value.clone()) else {
        out.int(0);
        return Ok(());
    };
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let (s, e) = (int(args[2])?, int(args[3])?);
            let bits = match args.get(4) {
                Some(u) if !(s < 0 && e < 0 && s > e) => bit_unit(u)?,
                _ => false,
            };
            Some((s, e, bits))
        }
        _ => return Err(SYNTAX.into()),
    };
    out.int(strops::bitcount(&v, range) as i64);
    Ok(())
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
fn bitpos(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let k = key(args[1])?;
    let bit = match parse_i64(args[2]) {
        Some(0) => false,
        Some(1) => true,
        Some(_) => return Err("ERR The bit argument must be 1 or 0.".into()),
        None => return Err(NOT_INTEGER.into()),
    };
    let Some(v) = tx.get(k)?.map(|s| s.value.clone()) else {
        // A missing key is zeros without end.
        out.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let range = match args.len() {
        3 => None,
        4..=6 => {
            let s = int(args[3])?;
            let bits = match args.get(5) {
                Some(u) => bit_unit(u)?,
                None => false,
            };
            let e = match args.get(4) {
                Some(e) => Some(int(e)?),
                None => None,
            };
            Some((s, e, bits))
        }
        _ => return Err(SYNTAX.into()),
    };
    out.int(strops::bitpos(&v, bit, range));
    Ok(())
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
fn bitop(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let op = match args[1].to_ascii_lowercase().as_slice() {
        b"and" => strops::BitOp::And,
        b"or" => strops::BitOp::Or,
        b"xor" => strops::BitOp::Xor,
        b"not" => strops::BitOp::Not,
        _ => return Err(SYNTAX.into()),
    };
    if op == strops::BitOp::Not && args.len() != 4 {
        return Err("ERR BITOP NOT must be called with a single source key.".into());
    }
    let dest = key(args[2])?;
    let mut srcs: Vec<Option<Vec<u8>>> = Vec::with_capacity(args.len() - 3);
    for a in &args[3..] {
        let v = match key_arg(a) {
            Ok(k) => tx.get(k)?.map(|s| s.value.clone()),
            Err(_) => None,
        };
        srcs.push(v);
    }
    let views: Vec<Option<&[u8]>> = srcs.iter().map(Option::as_deref).collect();
    let v = strops::bitop(op, &views);
    let len = v.len();
    if len == 0 {
        tx.delete(dest)?;
    } else {
        tx.put(dest, v, Expiry::Never)?;
    }
    out.int(len as i64);
    Ok(())
}

/// Most bytes of the table LCS may build (Redis: proto-max-bulk-len, 512 MiB;
/// here less, since every client shares the server's memory).
const LCS_TABLE_MAX: u128 = 64 << 20;

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
fn lcs(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let value = |tx: &mut Txn<'_>, a: &[u8]| -> Result<Vec<u8>, Fail> {
        Ok(match key_arg(a) {
            Ok(k) => tx.get(k)?.map(|s| s.value.clone()).unwrap_or_default(),
            Err(_) => Vec::new(),
        })
    };
    let a = value(tx, args[1])?;
    let b = value(tx, args[2])?;
    let (mut idx, mut len, mut withlen, mut min) = (false, false, false, 0u64);
    let mut i = 3;
    while i < args.len() {
        let o = args[i].to_ascii_lowercase();
        match o.as_slice() {
            b"idx" => idx = true,
            b"len" => len = true,
            b"withmatchlen" => withlen = true,
            b"minmatchlen" if i + 1 < args.len() => {
                min = int(args[i + 1])?.max(0) as u64;
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    if idx && len {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    if strops::lcs_table_bytes(a.len(), b.len()) > LCS_TABLE_MAX {
        return Err(format!(
            "ERR Insufficient memory, transient memory for LCS exceeds the limit of {LCS_TABLE_MAX} bytes"
        )
        .into());
    }
    let r = strops::lcs(&a, &b, min);
    if idx {
        out.map(2);
        out.bulk(b"matches");
        out.array(r.matches.len());
        for m in &r.matches {
            out.array(if withlen { 3 } else { 2 });
            out.array(2);
            out.int(m.a.0 as i64);
            out.int(m.a.1 as i64);
            out.array(2);
            out.int(m.b.0 as i64);
            out.int(m.b.1 as i64);
            if withlen {
                out.int(m.len as i64);
            }
        }
        out.bulk(b"len");
        out.int(r.text.len() as i64);
    } else if len {
        out.int(r.text.len() as i64);
    } else {
        out.bulk(&r.text);
    }
    Ok(())
}

/// RENAME / RENAMENX src dst: the value and its deadline move.
fn rename(tx: &mut Txn<'_>, name: &str, args: &[&[u8]], out: &mut Out) -> Res {
    let nx = name == "renamenx";
    let src = key_arg(args[1]).map_err(|_| Fail::Reply("ERR no such key".into()))?;
    let dst = key(args[2])?;
    let Some(rec) = tx.get(src)?.cloned() else {
        return Err("ERR no such key".into());
    };
    if src == dst {
        if nx {
            out.int(0);
        } else {
            out.ok();
        }
        return Ok(());
    }
    if nx && tx.contains(dst)? {
        out.int(0);
        return Ok(());
    }
    let exp = rec.expires_at_ms.map_or(Expiry::Never, Expiry::At);
    tx.put(dst, rec.value, exp)?;
    tx.delete(src)?;
    if nx {
        out.int(1);
    } else {
        out.ok();
    }
    Ok(())
}

/// COPY src dst [DB 0] [REPLACE]: one database per client, so DB may only name 0.
fn copy(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        let o = args[i].to_ascii_lowercase();
        match o.as_slice() {
            b"replace" => replace = true,
            b"db" if i + 1 < args.len() => {
                if int(args[i + 1])? != 0 {
                    return Err("ERR DB index is out of range".into());
                }
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    if args[1] == args[2] {
        return Err("ERR source and destination objects are the same".into());
    }
    let src = key(args[1])?;
    let dst = key(args[2])?;
    let Some(rec) = tx.get(src)?.cloned() else {
        out.int(0);
        return Ok(());
    };
    if !replace && tx.contains(dst)? {
        out.int(0);
        return Ok(());
    }
    let exp = rec.expires_at_ms.map_or(Expiry::Never, Expiry::At);
    tx.put(dst, rec.value, exp)?;
    out.int(1);
    Ok(())
}

/// Keys RANDOMKEY chooses among: up to this many from a random point of the key
/// order on (wrapping around); a bucket that has no more keys than this gets a
/// uniform choice.
const RANDOMKEY_WINDOW: usize = 1024;

/// RANDOMKEY: a key chosen at random, nil for an empty bucket.
fn randomkey(tx: &mut Txn<'_>, out: &mut Out) -> Res {
    let mut seed = [0u8; 16];
    getrandom::getrandom(&mut seed)
        .map_err(|e| Fail::Store(Error::Internal(format!("no randomness: {e}"))))?;
    // A random starting point among printable ASCII keys.
    let start: String = seed[..8]
        .iter()
        .map(|b| char::from(b' ' + b % 95))
        .collect();
    let mut window = tx.keys(Some(&start), RANDOMKEY_WINDOW)?;
    if window.len() < RANDOMKEY_WINDOW {
        for k in tx.keys(None, RANDOMKEY_WINDOW - window.len())? {
            if k.as_str() > start.as_str() {
                break;
            }
            window.push(k);
        }
    }
    if window.is_empty() {
        out.null();
        return Ok(());
    }
    let r = u64::from_le_bytes(seed[8..16].try_into().unwrap_or_default());
    let pick = &window[(r % window.len() as u64) as usize];
    out.bulk(pick.as_bytes());
    Ok(())
}

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT|HELP
fn object(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let sub = args[1].to_ascii_lowercase();
    if sub == b"help" && args.len() == 2 {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation Redis would use for the value",
            "    stored at <key> (libstate stores every value as bytes).",
            "FREQ <key>",
            "    libstate does not track access frequency: an error.",
            "HELP",
            "    Print this help.",
            "IDLETIME <key>",
            "    libstate does not track access times: an error.",
            "REFCOUNT <key>",
            "    Return the number of references of the value stored at <key> (always 1).",
        ];
        out.array(lines.len());
        for l in lines {
            out.simple(l);
        }
        return Ok(());
    }
    if args.len() != 3
        || !matches!(
            sub.as_slice(),
            b"encoding" | b"freq" | b"idletime" | b"refcount"
        )
    {
        return Err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(args[1])
        )
        .into());
    }
    let k = key(args[2])?;
    let Some(encoding) = tx.get_with(k, |v| {
        if v.len() <= 20 && parse_i64(v).is_some() {
            "int"
        } else if v.len() <= 44 {
            "embstr"
        } else {
            "raw"
        }
    })?
    else {
        out.null();
        return Ok(());
    };
    match sub.as_slice() {
        b"encoding" => out.bulk(encoding.as_bytes()),
        b"refcount" => out.int(1),
        b"freq" => return Err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into()),
        _ => return Err("ERR libstate does not track access times (OBJECT IDLETIME)".into()),
    }
    Ok(())
}

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
fn getex(tx: &mut Txn<'_>, args: &[&[u8]], out: &mut Out) -> Res {
    let k = key(args[1])?;
    let mut change: Option<Option<i64>> = None;
    let mut i = 2;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        let next = args.get(i + 1);
        match a.as_slice() {
            b"persist" if change.is_none() => change = Some(None),
            b"ex" | b"px" | b"exat" | b"pxat" if change.is_none() && next.is_some() => {
                let n = int(next.copied().unwrap_or_default())?;
                if n <= 0 {
                    return Err("ERR invalid expire time in 'getex' command".into());
                }
                let (unit, abs) = match a.as_slice() {
                    b"ex" => (1000, false),
                    b"px" => (1, false),
                    b"exat" => (1000, true),
                    _ => (1, true),
                };
                change = Some(Some(deadline(tx, n, unit, abs, "getex")?));
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    let Some(value) = tx.get(k)?.map(|s| s.value.clone()) else {
        out.null();
        return Ok(());
    };
    match change {
        None => {}
        Some(None) => {
            tx.set_expiry(k, None)?;
        }
        Some(Some(d)) => {
            tx.set_expiry(k, Some(u64::try_from(d.max(0)).unwrap_or(0)))?;
        }
    }
    out.bulk(&value);
    Ok(())
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key n [NX|XX|GT|LT]
fn expire(tx: &mut Txn<'_>, name: &str, args: &[&[u8]], out: &mut Out) -> Res {
    let k = key(args[1])?;
    let n = int(args[2])?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        match a.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(format!("ERR Unsupported option {}", String::from_utf8_lossy(a)).into())
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let unit = if name.starts_with('p') { 1 } else { 1000 };
    let when = deadline(tx, n, unit, name.ends_with("at"), name)?;
    let Some(current) = tx.get(k)?.map(|s| s.expires_at_ms) else {
        out.int(0);
        return Ok(());
    };
    let current = current.map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        out.int(0);
        return Ok(());
    }
    if when <= now(tx) {
        tx.delete(k)?;
    } else {
        tx.set_expiry(k, Some(u64::try_from(when).unwrap_or(u64::MAX)))?;
    }
    out.int(1);
    Ok(())
}

/// Fast paths outside MULTI for the commonest commands, with the same replies as
/// [`exec_in_txn`]. Returns `false` if `spec` has no fast path.
///
/// # Errors
/// A store error (the caller replies with it).
pub fn fast_path(
    bucket: &Bucket,
    svc: &StateService,
    spec: &Spec,
    args: &[&[u8]],
    out: &mut Out,
) -> Result<bool, Error> {
    let client = bucket.name();
    match spec.name {
        "get" => {
            let k = match key_arg(args[1]) {
                Ok(k) => k,
                Err(msg) => {
                    out.error(&msg);
                    return Ok(true);
                }
            };
            if bucket.get_with(k, |v| out.bulk(v))?.is_none() {
                out.null();
            }
            Ok(true)
        }
        "set" if args.len() == 3 && !svc.has_quota(client) => {
            match key_arg(args[1]) {
                Ok(k) => match bucket.set(k, args[2]) {
                    Ok(()) => out.ok(),
                    Err(e) if e.kind() == ErrorKind::InvalidArgument => error_reply(out, &e),
                    Err(e) => return Err(e),
                },
                Err(msg) => out.error(&msg),
            }
            Ok(true)
        }
        "mset" if args.len() % 2 == 1 && !svc.has_quota(client) => {
            let pairs: Result<Vec<(&str, &[u8])>, String> = args[1..]
                .chunks(2)
                .map(|p| key_arg(p[0]).map(|k| (k, p[1])))
                .collect();
            match pairs {
                Ok(pairs) => match bucket.set_multiple(pairs) {
                    Ok(()) => out.ok(),
                    Err(e) if e.kind() == ErrorKind::InvalidArgument => error_reply(out, &e),
                    Err(e) => return Err(e),
                },
                Err(msg) => out.error(&msg),
            }
            Ok(true)
        }
        "mget" => {
            // One batch lookup without the store's write lock; the reply is built as
            // the values are lent (and refused whole past the output limit).
            let valid: Vec<(usize, &str)> = args[1..]
                .iter()
                .enumerate()
                .filter_map(|(i, a)| key_arg(a).ok().map(|k| (i, k)))
                .collect();
            let keys: Vec<&str> = valid.iter().map(|(_, k)| *k).collect();
            let n = args.len() - 1;
            // Measure first (lent, nothing copied): a reply over the limit is refused
            // before a byte of it is built, and one that fits is built into a buffer
            // of its final size, without reallocations while the store is locked.
            let mut size = 16 * n;
            bucket.get_multiple_with(&keys, |_, v| size = size.saturating_add(v.len() + 16))?;
            if size > out.room() {
                out.refuse();
                return Ok(true);
            }
            out.buf.reserve(size);
            out.array(n);
            let mut next = 0;
            bucket.get_multiple_with(&keys, |j, v| {
                let i = valid[j].0;
                while next < i {
                    out.null();
                    next += 1;
                }
                out.bulk(v);
                next = i + 1;
            })?;
            while next < n {
                out.null();
                next += 1;
            }
            Ok(true)
        }
        "keys" => {
            // Read in key order without the store's write lock (the read lock is
            // taken and released every few hundred keys), so writers never wait for
            // a KEYS over a large bucket; the pattern is compiled once.
            let pattern = match glob::Pattern::new(args[1]) {
                Ok(p) => p,
                Err(e) => {
                    out.error(&e.to_string());
                    return Ok(true);
                }
            };
            let mut found: Vec<String> = Vec::new();
            let mut bytes = 0usize;
            let room = out.room();
            let mut over = false;
            bucket.scan(.., false, |k, _| {
                if pattern.matches(k.as_bytes()) {
                    bytes += k.len() + 16;
                    if bytes > room {
                        over = true;
                        return std::ops::ControlFlow::Break(());
                    }
                    found.push(k.to_string());
                }
                std::ops::ControlFlow::Continue(())
            })?;
            if over {
                out.refuse();
                return Ok(true);
            }
            out.array(found.len());
            for k in found {
                out.bulk(k.as_bytes());
            }
            Ok(true)
        }
        "dbsize" => {
            out.int(i64::try_from(bucket.len()?).unwrap_or(i64::MAX));
            Ok(true)
        }
        "ttl" | "pttl" => {
            let k = match key_arg(args[1]) {
                Ok(k) => k,
                Err(msg) => {
                    out.error(&msg);
                    return Ok(true);
                }
            };
            let reply = match bucket.ttl(k)? {
                Ttl::Missing => -2,
                Ttl::NoExpiry => -1,
                Ttl::Expires(d) => {
                    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                    if spec.name == "pttl" {
                        ms
                    } else {
                        (ms + 500) / 1000
                    }
                }
            };
            out.int(reply);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Bytes of the values a queued command (name first) would return, from lent
/// reads outside any transaction (0 for commands that return no stored value, or
/// when a read fails: the run itself reports that).
pub fn reply_size_hint(bucket: &Bucket, cmd: &[Vec<u8>]) -> usize {
    let Some(name) = cmd.first() else {
        return 0;
    };
    let keys: &[Vec<u8>] = match name.to_ascii_lowercase().as_slice() {
        b"get" | b"getdel" | b"getex" | b"getset" => cmd.get(1..2).unwrap_or_default(),
        b"mget" => cmd.get(1..).unwrap_or_default(),
        _ => &[],
    };
    keys.iter()
        .filter_map(|k| key_arg(k).ok())
        .filter_map(|k| bucket.get_with(k, <[u8]>::len).ok().flatten())
        .fold(0usize, |a, n| a.saturating_add(n + 16))
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type], through the service's
/// server-side cursor table: keys in key order, each key present throughout the
/// scan returned exactly once.
///
/// # Errors
/// A store error.
pub fn scan(svc: &StateService, client: &str, args: &[&[u8]], out: &mut Out) -> Result<(), Error> {
    let Some(start) = std::str::from_utf8(args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        out.error("ERR invalid cursor");
        return Ok(());
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count: usize = 10;
    let mut only_strings = true;
    let mut i = 2;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        let Some(v) = args.get(i + 1) else {
            out.error(SYNTAX);
            return Ok(());
        };
        match a.as_slice() {
            b"match" => pattern = Some(v),
            b"count" => match parse_i64(v) {
                Some(n) if n >= 1 => count = usize::try_from(n).unwrap_or(usize::MAX).min(100_000),
                Some(_) => {
                    out.error(SYNTAX);
                    return Ok(());
                }
                None => {
                    out.error(NOT_INTEGER);
                    return Ok(());
                }
            },
            b"type" => only_strings = v.eq_ignore_ascii_case(b"string"),
            _ => {
                out.error(SYNTAX);
                return Ok(());
            }
        }
        i += 2;
    }
    let id = if start == 0 {
        svc.open_cursor(client)?
    } else {
        start
    };
    let pattern = match pattern.map(glob::Pattern::new).transpose() {
        Ok(p) => p,
        Err(e) => {
            out.error(&e.to_string());
            return Ok(());
        }
    };
    let mut keys: Vec<String> = Vec::new();
    let stepped = svc.with_cursor(client, id, |c| {
        c.next_n_with(count, |k, _| {
            if only_strings && pattern.as_ref().is_none_or(|p| p.matches(k.as_bytes())) {
                keys.push(k.to_string());
            }
        })
    });
    let stepped = match stepped {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::InvalidArgument => {
            out.error("ERR invalid cursor: it was finished, expired after being idle, or belongs to another connection's client");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let next = if stepped < count {
        svc.release_cursor(client, id);
        0
    } else {
        id
    };
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(keys.len());
    for k in keys {
        out.bulk(k.as_bytes());
    }
    Ok(())
}
