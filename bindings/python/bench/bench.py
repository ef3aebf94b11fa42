#!/usr/bin/env python3
"""libstate's Python benchmark: libstate beside the stores Python users pick today.

This is the project's peer harness (workload and method unchanged) with libstate
adapters added: "libstate" (sled engine) and "libstate-memfile" (memfile engine,
skipped while the core lacks it). `make bench-python` runs it; docs/bench-python.md
has the figures. The `gil` command measures whether releasing the GIL around a
point read helps or hurts (see `cmd_gil`).

  python bench.py gil --n 100000 --dir /tmp/x

Workload (mirrors the Go project's benchmark): random 10-char alphanumeric
keys, 100 random bytes per value, N preloaded records.

Each library runs in its own process so RSS is per library:

  python bench.py run --lib lmdb --n 100000 --dir /tmp/x --json out.json
  python bench.py all --n 100000 --dir /tmp/x --out results-100k.json
  python bench.py report results-100k.json [results-1m.json ...]

`all` runs every library in a child process with the same interpreter, except
libraries listed with --python LIB=INTERPRETER (e.g. dbm.gnu=/usr/bin/python3
when the interpreter in use lacks _gdbm).

Timing: time.perf_counter_ns around chunks of consecutive operations; the
chunk size is chosen from a warm-up so that one chunk lasts >= ~20 us (this
amortises the ~50 ns cost of the timer itself for sub-microsecond ops).
The reported figure is the median of per-op times over chunks.

To add a new library: subclass Adapter, register it in ADAPTERS.

Setup: python3 -m venv venv && venv/bin/pip install lmdb diskcache sqlitedict plyvel rocksdict
(dbm.gnu needs an interpreter built with _gdbm; on Debian: apt-get install python3-gdbm
and pass --python dbm.gnu=/usr/bin/python3). Only the stdlib is needed by the harness itself.
"""
import argparse
import gc
import json
import os
import random
import shutil
import string
import subprocess
import sys
import time
from itertools import islice

pc = time.perf_counter_ns
ALNUM = string.ascii_letters + string.digits
KEYLEN = 10
VALLEN = 100
PRELOAD_BATCH = 10_000
MIN_CHUNK_NS = 20_000


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def proc_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def disk_usage(path):
    """Allocated bytes (like du), and apparent bytes."""
    alloc = apparent = 0
    if os.path.isfile(path):
        st = os.stat(path)
        return st.st_blocks * 512, st.st_size
    for root, _dirs, files in os.walk(path):
        for fn in files:
            try:
                st = os.stat(os.path.join(root, fn))
            except FileNotFoundError:
                continue
            alloc += st.st_blocks * 512
            apparent += st.st_size
    return alloc, apparent


def gen_keys(rng, n, exclude=None):
    seen = set() if exclude is None else None
    out = []
    choices = rng.choices
    while len(out) < n:
        k = "".join(choices(ALNUM, k=KEYLEN))
        if exclude is not None:
            if k in exclude:
                continue
        elif k in seen:
            continue
        else:
            seen.add(k)
        out.append(k)
    return out


def median(xs):
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def time_unary(fn, args, warm, max_s):
    """median per-op ns of fn(a) for a in args, chunked."""
    for a in args[:warm]:
        fn(a)
    t0 = pc()
    probe = args[warm:warm + 200] or args[:200]
    for a in probe:
        fn(a)
    per = max(1, (pc() - t0) // len(probe))
    b = max(1, min(1000, MIN_CHUNK_NS // per))
    body = args[warm:]
    chunks = [body[i:i + b] for i in range(0, len(body), b)]
    samples = []
    deadline = pc() + int(max_s * 1e9)
    nops = 0
    for ch in chunks:
        t = pc()
        for a in ch:
            fn(a)
        samples.append((pc() - t) / len(ch))
        nops += len(ch)
        if pc() > deadline and len(samples) >= 20:
            break
    return {"median_ns": median(samples), "ops": nops, "chunk": b,
            "mean_ns": sum(samples) / len(samples)}


def time_binary(fn, pairs, warm, max_s):
    for k, v in pairs[:warm]:
        fn(k, v)
    t0 = pc()
    probe = pairs[warm:warm + 50] or pairs[:50]
    for k, v in probe:
        fn(k, v)
    per = max(1, (pc() - t0) // len(probe))
    b = max(1, min(1000, MIN_CHUNK_NS // per))
    body = pairs[warm:]
    chunks = [body[i:i + b] for i in range(0, len(body), b)]
    samples = []
    deadline = pc() + int(max_s * 1e9)
    nops = 0
    for ch in chunks:
        t = pc()
        for k, v in ch:
            fn(k, v)
        samples.append((pc() - t) / len(ch))
        nops += len(ch)
        if pc() > deadline and len(samples) >= 20:
            break
    return {"median_ns": median(samples), "ops": nops, "chunk": b,
            "mean_ns": sum(samples) / len(samples)}


def time_each(fn, args, warm, max_s, min_reps=5):
    """median ns of one call fn(a) (for batch ops: one call = one batch)."""
    for a in args[:warm]:
        fn(a)
    samples = []
    deadline = pc() + int(max_s * 1e9)
    for a in args[warm:]:
        t = pc()
        fn(a)
        samples.append(pc() - t)
        if pc() > deadline and len(samples) >= min_reps:
            break
    return {"median_ns": median(samples), "reps": len(samples),
            "mean_ns": sum(samples) / len(samples)}


# --------------------------------------------------------------------------
# adapters
# --------------------------------------------------------------------------

class Adapter:
    name = "?"
    key_type = bytes        # type of keys handed to the library
    ordered = False         # supports ordered iteration from a key
    persistent = True
    # variants of the write path: (label, durability, open-opts, do_set1, do_setmany)
    variants = [("default", "?", {}, True, True)]
    main_set1 = "default"   # which variant feeds the main table
    main_setmany = "default"

    def version(self):
        return ""

    def open(self, path, **opts):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def preload_batch(self, items):
        self.setmany(items)

    def set1_fn(self):
        raise NotImplementedError

    def setmany(self, items):
        raise NotImplementedError

    def get_fn(self):
        raise NotImplementedError

    def getmany(self, keys):
        g = self.get_fn()
        return [g(k) for k in keys]

    def iter_from(self, key, n):
        raise NotImplementedError

    def iter_all(self):
        raise NotImplementedError


_DICT_STORE = {}


class DictAdapter(Adapter):
    name = "dict"
    persistent = False
    variants = [("default", "none (in memory)", {}, True, True)]

    def version(self):
        return "builtin"

    def open(self, path, **opts):
        self.d = _DICT_STORE.setdefault(path, {})

    def close(self):
        pass

    def set1_fn(self):
        return self.d.__setitem__

    def setmany(self, items):
        self.d.update(items)

    def get_fn(self):
        return self.d.get

    def iter_all(self):
        c = 0
        for _ in self.d:
            c += 1
        return c


class LmdbAdapter(Adapter):
    name = "lmdb"
    ordered = True
    variants = [
        ("default (sync=True)", "fsync per commit", {}, True, True),
        ("sync=False", "no fsync (OS flush); survives process crash", {"sync": False}, True, True),
    ]
    main_set1 = main_setmany = "default (sync=True)"

    def version(self):
        import lmdb
        return "py-lmdb %s (LMDB %s)" % (lmdb.__version__, ".".join(map(str, lmdb.version())))

    def open(self, path, **opts):
        import lmdb
        self.env = lmdb.open(path, map_size=16 << 30, **opts)

    def close(self):
        self.env.close()

    def set1_fn(self):
        env = self.env

        def put(k, v):
            with env.begin(write=True) as txn:
                txn.put(k, v)
        return put

    def setmany(self, items):
        with self.env.begin(write=True) as txn:
            put = txn.put
            for k, v in items:
                put(k, v)

    def get_fn(self):
        env = self.env

        def get(k):
            with env.begin() as txn:
                return txn.get(k)
        return get

    def getmany(self, keys):
        with self.env.begin() as txn:
            g = txn.get
            return [g(k) for k in keys]

    def iter_from(self, key, n):
        c = 0
        with self.env.begin() as txn:
            cur = txn.cursor()
            if cur.set_range(key):
                for k, v in islice(cur, n):
                    c += 1
        return c

    def iter_all(self):
        c = 0
        with self.env.begin() as txn:
            for _ in txn.cursor().iternext(keys=True, values=False):
                c += 1
        return c


class PlyvelAdapter(Adapter):
    name = "plyvel"
    ordered = True
    variants = [
        ("default (sync=False)", "no fsync (OS page cache); survives process crash", {}, True, True),
        ("sync=True", "fsync per write/batch", {"sync": True}, True, True),
    ]
    main_set1 = main_setmany = "default (sync=False)"

    def version(self):
        import plyvel
        return "plyvel %s (LevelDB %s)" % (plyvel.__version__, plyvel.__leveldb_version__)

    def open(self, path, sync=False):
        import plyvel
        self.db = plyvel.DB(path, create_if_missing=True)
        self.sync = sync

    def close(self):
        self.db.close()

    def set1_fn(self):
        put = self.db.put
        if self.sync:
            return lambda k, v: put(k, v, sync=True)
        return put

    def setmany(self, items):
        with self.db.write_batch(sync=self.sync) as wb:
            put = wb.put
            for k, v in items:
                put(k, v)

    def get_fn(self):
        return self.db.get

    def iter_from(self, key, n):
        c = 0
        with self.db.iterator(start=key) as it:
            for k, v in islice(it, n):
                c += 1
        return c

    def iter_all(self):
        c = 0
        with self.db.iterator(include_value=False) as it:
            for _ in it:
                c += 1
        return c


class RocksdictAdapter(Adapter):
    name = "rocksdict"
    ordered = True
    variants = [
        ("default (WAL, sync=False)", "WAL, no fsync; survives process crash", {}, True, True),
        ("sync=True", "WAL fsync per write/batch", {"sync": True}, True, True),
    ]
    main_set1 = main_setmany = "default (WAL, sync=False)"

    def version(self):
        import importlib.metadata as md
        return "rocksdict %s" % md.version("rocksdict")

    def open(self, path, sync=False):
        from rocksdict import Rdict, WriteOptions
        self.db = Rdict(path)
        if sync:
            wo = WriteOptions()
            wo.sync = True
            self.db.set_write_options(wo)

    def close(self):
        self.db.close()

    def set1_fn(self):
        return self.db.put

    def setmany(self, items):
        from rocksdict import WriteBatch
        wb = WriteBatch()
        put = wb.put
        for k, v in items:
            put(k, v)
        self.db.write(wb)

    def get_fn(self):
        return self.db.get

    def getmany(self, keys):
        return self.db.get(keys)  # multi_get

    def iter_from(self, key, n):
        c = 0
        for k, v in islice(self.db.items(from_key=key), n):
            c += 1
        return c

    def iter_all(self):
        c = 0
        for _ in self.db.keys():
            c += 1
        return c


class DiskcacheAdapter(Adapter):
    name = "diskcache"
    key_type = bytes
    variants = [
        ("default (WAL, synchronous=NORMAL)", "no fsync per commit (fsync at WAL checkpoint); survives process crash", {}, True, True),
        ("synchronous=FULL", "fsync per commit", {"sqlite_synchronous": 2}, True, True),
    ]
    main_set1 = main_setmany = "default (WAL, synchronous=NORMAL)"

    def version(self):
        import diskcache, sqlite3
        return "diskcache %s (SQLite %s)" % (diskcache.__version__, sqlite3.sqlite_version)

    def open(self, path, **opts):
        import diskcache
        # default size_limit is 1 GiB which is above what the workload stores.
        self.c = diskcache.Cache(path, **opts)

    def close(self):
        self.c.close()

    def set1_fn(self):
        return self.c.__setitem__

    def setmany(self, items):
        c = self.c
        with c.transact():
            for k, v in items:
                c[k] = v

    def get_fn(self):
        return self.c.get

    def iter_all(self):
        c = 0
        for _ in self.c:
            c += 1
        return c


class SqlitedictAdapter(Adapter):
    name = "sqlitedict"
    key_type = str
    variants = [
        ("autocommit=True", "commit per set (journal DELETE, synchronous=FULL: fsync)", {"autocommit": True}, True, False),
        ("autocommit=False + commit() per batch", "fsync per commit()", {"autocommit": False}, False, True),
    ]
    main_set1 = "autocommit=True"
    main_setmany = "autocommit=False + commit() per batch"

    def version(self):
        import importlib.metadata as md
        import sqlite3
        return "sqlitedict %s (SQLite %s)" % (md.version("sqlitedict"), sqlite3.sqlite_version)

    def open(self, path, autocommit=False):
        from sqlitedict import SqliteDict
        self.d = SqliteDict(os.path.join(path, "db.sqlite"), autocommit=autocommit)

    def close(self):
        self.d.close()

    def set1_fn(self):
        return self.d.__setitem__

    def setmany(self, items):
        d = self.d
        for k, v in items:
            d[k] = v
        d.commit()

    def get_fn(self):
        return self.d.get

    def iter_all(self):
        c = 0
        for _ in self.d.keys():
            c += 1
        return c


class DbmDumbAdapter(Adapter):
    name = "dbm.dumb"
    variants = [("default", "no fsync; index (.dir) rewritten on sync()/close()", {}, True, True)]

    def version(self):
        return "stdlib (Python %s)" % sys.version.split()[0]

    def open(self, path, **opts):
        import dbm.dumb
        self.d = dbm.dumb.open(os.path.join(path, "db"), "c")

    def close(self):
        self.d.close()

    def set1_fn(self):
        return self.d.__setitem__

    def setmany(self, items):
        d = self.d
        for k, v in items:
            d[k] = v
        d.sync()

    def get_fn(self):
        return self.d.get

    def iter_all(self):
        c = 0
        for _ in self.d.keys():
            c += 1
        return c


class DbmGnuAdapter(Adapter):
    name = "dbm.gnu"
    variants = [
        ("default (flag 'c', fast)", "no fsync", {}, True, True),
        ("flag 's' (GDBM_SYNC)", "requested sync; strace on gdbm 1.23 shows no per-write fsync", {"flag": "cs"}, True, False),
    ]
    main_set1 = main_setmany = "default (flag 'c', fast)"

    def version(self):
        return "stdlib dbm.gnu (Python %s)" % sys.version.split()[0]

    def open(self, path, flag="c"):
        import dbm.gnu
        os.makedirs(path, exist_ok=True)
        self.d = dbm.gnu.open(os.path.join(path, "db"), flag)

    def close(self):
        self.d.close()

    def set1_fn(self):
        return self.d.__setitem__

    def setmany(self, items):
        d = self.d
        for k, v in items:
            d[k] = v
        d.sync()

    def get_fn(self):
        return self.d.get

    def iter_all(self):
        c = 0
        d = self.d
        k = d.firstkey()
        while k is not None:
            c += 1
            k = d.nextkey(k)
        return c


class DbmSqlite3Adapter(Adapter):
    """stdlib dbm.sqlite3 (Python >= 3.13 only)."""
    name = "dbm.sqlite3"
    variants = [("default", "SQLite default (autocommit per set)", {}, True, True)]

    def version(self):
        return "stdlib dbm.sqlite3 (Python %s)" % sys.version.split()[0]

    def open(self, path, **opts):
        import dbm.sqlite3
        os.makedirs(path, exist_ok=True)
        self.d = dbm.sqlite3.open(os.path.join(path, "db"), "c")

    def close(self):
        self.d.close()

    def set1_fn(self):
        return self.d.__setitem__

    def setmany(self, items):
        d = self.d
        for k, v in items:
            d[k] = v

    def get_fn(self):
        return self.d.get

    def iter_all(self):
        c = 0
        for _ in self.d.keys():
            c += 1
        return c


class LibstateAdapter(Adapter):
    """libstate with the sled engine: one bucket, str keys, bytes values."""
    name = "libstate"
    engine = "sled"
    key_type = str
    ordered = True
    variants = [
        ("default (periodic, sync=False)",
         "background fdatasync every 0.5 s; survives a process crash, power loss loses <= 0.5 s",
         {}, True, True),
        ("sync=True", "fdatasync before every write call returns (group commit)",
         {"sync": True}, True, True),
    ]
    main_set1 = main_setmany = "default (periodic, sync=False)"

    def version(self):
        import libstate
        return "libstate %s (engine %s)" % (libstate.__version__, self.engine)

    def open(self, path, **opts):
        import libstate
        # LIBSTATE_CACHE_SIZE (bytes) overrides the sled cache for what-if runs.
        if os.environ.get("LIBSTATE_CACHE_SIZE"):
            opts.setdefault("cache_size", int(os.environ["LIBSTATE_CACHE_SIZE"]))
        self.store = libstate.open(path, self.engine, **opts)
        self.b = self.store.bucket("bench")

    def close(self):
        self.store.close()

    def set1_fn(self):
        return self.b.set

    def setmany(self, items):
        self.b.set_many(items)

    def get_fn(self):
        return self.b.get

    def getmany(self, keys):
        # A dict of the keys found (duplicates in `keys` collapse).
        return self.b.get_many(keys)

    def iter_from(self, key, n):
        with self.b.cursor() as c:
            first = c.seek(key)
            if first is None:
                return 0
            return 1 + len(c.next_n(n - 1))

    def iter_all(self):
        c = 0
        for _ in self.b:
            c += 1
        return c


class LibstateMemfileAdapter(LibstateAdapter):
    """libstate with the memfile engine (in-memory B-tree + append-only log)."""
    name = "libstate-memfile"
    engine = "memfile"


ADAPTERS = {a.name: a for a in [LibstateAdapter, LibstateMemfileAdapter, DictAdapter, LmdbAdapter, PlyvelAdapter, RocksdictAdapter,
                                DiskcacheAdapter, SqlitedictAdapter, DbmDumbAdapter,
                                DbmGnuAdapter, DbmSqlite3Adapter]}


# --------------------------------------------------------------------------
# one library, one process
# --------------------------------------------------------------------------

def run_one(libname, n, base_dir, seed=42, quick=False):
    A = ADAPTERS[libname]
    a = A()
    res = {"lib": libname, "n": n, "version": a.version(), "python": sys.version.split()[0],
           "key_type": A.key_type.__name__, "ops": {}, "variants": []}
    path = os.path.join(base_dir, "%s-%d" % (libname, n))
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    conv = (lambda k: k.encode()) if A.key_type is bytes else (lambda k: k)

    rng = random.Random(seed)
    t = time.time()
    keys_s = gen_keys(rng, n)
    keyset = set(keys_s)
    miss_s = gen_keys(rng, 50_000, exclude=keyset)
    del keyset
    keys = [conv(k) for k in keys_s]
    del keys_s
    miss = [conv(k) for k in miss_s]
    del miss_s
    gc.collect()
    res["keygen_s"] = time.time() - t
    rbytes = rng.randbytes

    # ---- preload
    st0 = proc_status()
    res["rss_before_open"] = st0["VmRSS"]
    res["peak_reset"] = reset_peak_rss()
    a.open(path)
    t_pre = 0
    for i in range(0, n, PRELOAD_BATCH):
        items = [(k, rbytes(VALLEN)) for k in keys[i:i + PRELOAD_BATCH]]
        t = pc()
        a.preload_batch(items)
        t_pre += pc() - t
    st1 = proc_status()
    res["preload_s"] = t_pre / 1e9
    res["preload_rec_per_s"] = n / (t_pre / 1e9)
    res["rss_after_preload"] = st1["VmRSS"]
    res["peak_rss_preload"] = st1["VmHWM"]
    t = pc()
    a.close()
    res["close_after_preload_s"] = (pc() - t) / 1e9
    res["disk_after_preload"] = disk_usage(path)

    # ---- open time (open + one get, ready to serve)
    if A.persistent:
        probe = keys[rng.randrange(n)]
        # Peak RSS of the opens alone: VmHWM reset to the current RSS first.
        res["rss_before_reopen"] = proc_status()["VmRSS"]
        res["peak_reset_open"] = reset_peak_rss()
        samples = []
        deadline = time.time() + (30 if not quick else 5)
        for i in range(6):
            t = pc()
            a.open(path)
            a.get_fn()(probe)
            samples.append(pc() - t)
            a.close()
            if time.time() > deadline and len(samples) >= 2:
                break
        res["ops"]["open"] = {"median_ns": median(samples[1:] if len(samples) > 2 else samples),
                              "first_ns": samples[0], "reps": len(samples)}
        res["peak_rss_open"] = proc_status()["VmHWM"]
    a.open(path)

    scale = 0.1 if quick else 1.0
    # ---- reads
    g = a.get_fn()
    get_keys = rng.choices(keys, k=int(110_000 * scale))
    r = time_unary(g, get_keys, warm=int(10_000 * scale), max_s=20)
    res["ops"]["get1"] = r
    chk = g(get_keys[0])
    assert chk is not None and len(chk) == VALLEN, (libname, chk)
    assert g(miss[0]) is None
    res["ops"]["get_missing"] = time_unary(g, miss, warm=int(5_000 * scale), max_s=20)

    batches = [rng.choices(keys, k=1000) for _ in range(int(220 * scale) or 5)]
    res["ops"]["getmany1000"] = time_each(a.getmany, batches, warm=int(20 * scale) or 1, max_s=15)
    got = a.getmany(batches[0])
    if isinstance(got, dict):
        assert set(got) == set(batches[0]) and all(len(v) == VALLEN for v in got.values()), libname
    else:
        assert len(got) == 1000 and all(x is not None for x in got), libname

    if A.ordered:
        starts = rng.choices(keys, k=int(220 * scale) or 5)
        # starting keys close to the end yield fewer than 1000; keep them in, as in the Go bench
        cnts = [a.iter_from(k, 1000) for k in starts[:5]]
        res["ops"]["iter1000"] = time_each(lambda k: a.iter_from(k, 1000), starts,
                                           warm=int(20 * scale) or 1, max_s=15)
        res["ops"]["iter1000"]["sample_counts"] = cnts
    else:
        res["ops"]["iter1000"] = None

    samples = []
    deadline = time.time() + 40
    for i in range(4):
        t = pc()
        c = a.iter_all()
        samples.append(pc() - t)
        if time.time() > deadline and len(samples) >= 2:
            break
    assert c == n, (libname, c, n)
    res["ops"]["iter_all"] = {"median_ns": median(samples[1:]) if len(samples) > 2 else median(samples),
                              "keys_per_s": n / (median(samples[1:] if len(samples) > 2 else samples) / 1e9),
                              "reps": len(samples)}
    a.close()

    # ---- writes, per variant
    for label, durability, opts, do1, dom in A.variants:
        v = {"label": label, "durability": durability}
        a.open(path, **opts)
        if do1:
            pairs = [(k, rbytes(VALLEN)) for k in rng.choices(keys, k=int(5_500 * scale))]
            v["set1"] = time_binary(a.set1_fn(), pairs, warm=int(500 * scale) or 10, max_s=20)
        if dom:
            bs = [[(k, rbytes(VALLEN)) for k in rng.choices(keys, k=1000)]
                  for _ in range(int(55 * scale) or 5)]
            v["setmany1000"] = time_each(a.setmany, bs, warm=int(5 * scale) or 1, max_s=20)
        a.close()
        res["variants"].append(v)
        if label == A.main_set1 and "set1" in v:
            res["ops"]["set1"] = v["set1"]
        if label == A.main_setmany and "setmany1000" in v:
            res["ops"]["setmany1000"] = v["setmany1000"]

    res["disk_after_all"] = disk_usage(path)
    res["peak_rss_process"] = proc_status()["VmHWM"]
    shutil.rmtree(path, ignore_errors=True)
    return res


# --------------------------------------------------------------------------
# driver / report
# --------------------------------------------------------------------------

def machine_facts():
    facts = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    facts["cpus"] = os.cpu_count()
    facts["python"] = sys.version.split()[0]
    try:
        facts["kernel"] = os.uname().release
    except Exception:
        pass
    return facts


DEFAULT_LIBS = ["libstate", "libstate-memfile", "dict", "lmdb", "plyvel", "rocksdict",
                "diskcache", "sqlitedict", "dbm.gnu"]


def available(lib, py):
    """Whether `lib` can run under interpreter `py` (a peer may not be installed, and
    the memfile engine may not exist in this build of libstate yet)."""
    probe = {
        "libstate-memfile": "import libstate, tempfile, os\n"
                            "libstate.open(os.path.join(tempfile.mkdtemp(), 's'), 'memfile').close()",
        "dbm.gnu": "import dbm.gnu",
        "lmdb": "import lmdb", "plyvel": "import plyvel", "rocksdict": "import rocksdict",
        "diskcache": "import diskcache", "sqlitedict": "import sqlitedict",
        "libstate": "import libstate",
    }.get(lib)
    if probe is None:
        return True
    return subprocess.run([py, "-c", probe], capture_output=True).returncode == 0


def cmd_all(args):
    libs = args.libs.split(",") if args.libs else DEFAULT_LIBS
    pys = dict(x.split("=", 1) for x in (args.python or []))
    out = {"machine": machine_facts(), "n": args.n, "results": [], "skipped": []}
    for lib in libs:
        if lib == "dbm.sqlite3" and sys.version_info < (3, 13) and lib not in pys:
            continue
        py = pys.get(lib, sys.executable)
        if not available(lib, py):
            print("==> %s: not available under %s, skipped" % (lib, py), file=sys.stderr, flush=True)
            out["skipped"].append(lib)
            continue
        tmpjson = os.path.join(args.dir, "res-%s-%d.json" % (lib, args.n))
        cmd = [py, os.path.abspath(__file__), "run", "--lib", lib, "--n", str(args.n),
               "--dir", args.dir, "--json", tmpjson] + (["--quick"] if args.quick else [])
        t = time.time()
        print("==> %s n=%d (%s)" % (lib, args.n, py), file=sys.stderr, flush=True)
        p = subprocess.run(cmd, timeout=args.timeout)
        if p.returncode != 0:
            out["results"].append({"lib": lib, "n": args.n, "error": "rc=%d" % p.returncode})
            continue
        with open(tmpjson) as f:
            r = json.load(f)
        r["wall_s"] = time.time() - t
        out["results"].append(r)
        print("    done in %.1fs" % r["wall_s"], file=sys.stderr, flush=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


def fmt_ns(ns):
    if ns is None:
        return "n/a"
    if ns < 1_000:
        return "%.0f ns" % ns
    if ns < 1_000_000:
        return "%.2f µs" % (ns / 1e3) if ns < 10_000 else "%.1f µs" % (ns / 1e3)
    if ns < 1_000_000_000:
        return "%.2f ms" % (ns / 1e6) if ns < 10_000_000 else "%.1f ms" % (ns / 1e6)
    return "%.2f s" % (ns / 1e9)


def fmt_rate(x):
    if x is None:
        return "n/a"
    if x >= 1e6:
        return "%.1f M/s" % (x / 1e6)
    return "%.0f k/s" % (x / 1e3)


def fmt_bytes(b):
    if b is None:
        return "n/a"
    return "%.0f MiB" % (b / 2**20) if b >= 10 * 2**20 else "%.1f MiB" % (b / 2**20)


def cmd_report(args):
    for fn in args.files:
        with open(fn) as f:
            data = json.load(f)
        n = data["n"]
        print("\n### N = %s\n" % format(n, "_"))
        print("| library | preload | set 1 | set 1000 (batch) | get 1 | get missing | get 1000 | "
              "iter 1000 from key | full iter | open | peak RSS Δ | disk |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in data["results"]:
            if "error" in r:
                print("| %s | error %s |" % (r["lib"], r["error"]))
                continue
            o = r["ops"]

            def m(name):
                x = o.get(name)
                return fmt_ns(x["median_ns"]) if x else "n/a"
            rssd = r["peak_rss_preload"] - r["rss_before_open"]
            disk = r["disk_after_preload"][0] if r["lib"] != "dict" else None
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["lib"], fmt_rate(r["preload_rec_per_s"]), m("set1"), m("setmany1000"),
                m("get1"), m("get_missing"), m("getmany1000"), m("iter1000"),
                fmt_rate(o["iter_all"]["keys_per_s"]), m("open"), fmt_bytes(rssd), fmt_bytes(disk)))
        print("\n#### write modes (N = %s)\n" % format(n, "_"))
        print("| library | mode | durability | set 1 | set 1000 (batch) |")
        print("|---|---|---|---|---|")
        for r in data["results"]:
            for v in r.get("variants", []):
                s1 = fmt_ns(v["set1"]["median_ns"]) if "set1" in v else "—"
                sm = fmt_ns(v["setmany1000"]["median_ns"]) if "setmany1000" in v else "—"
                print("| %s | %s | %s | %s | %s |" % (r["lib"], v["label"], v["durability"], s1, sm))
        print("\nversions / extra:")
        for r in data["results"]:
            if "error" in r:
                continue
            reopen = ("peak RSS Δ of the opens %s, " % fmt_bytes(r["peak_rss_open"] - r["rss_before_reopen"])
                      if r.get("peak_reset_open") and "peak_rss_open" in r else "")
            print("- %s: %s, python %s, keys=%s, preload %.1fs, rss before open %s, peak after preload %s, "
                  "%sdisk after all writes %s, open first %s" % (
                      r["lib"], r["version"], r["python"], r["key_type"], r["preload_s"],
                      fmt_bytes(r["rss_before_open"]), fmt_bytes(r["peak_rss_preload"]), reopen,
                      fmt_bytes(r["disk_after_all"][0]),
                      fmt_ns(r["ops"]["open"]["first_ns"]) if r["ops"].get("open") else "n/a"))


# --------------------------------------------------------------------------
# GIL: release it around a point read, or not?
# --------------------------------------------------------------------------

def cmd_gil(args):
    """Compares Bucket._get_attached (GIL held) with Bucket._get_detached (GIL
    released) on one store: median latency on one thread, and aggregate throughput of
    T threads all reading. Prints a table and writes JSON."""
    import threading
    import libstate

    path = os.path.join(args.dir, "gil-%d" % args.n)
    shutil.rmtree(path, ignore_errors=True)
    rng = random.Random(7)
    keys = gen_keys(rng, args.n)
    out = {"machine": machine_facts(), "n": args.n, "engine": args.engine,
           "latency_ns": {}, "threads": {}}
    with libstate.open(path, args.engine) as store:
        b = store.bucket("bench")
        for i in range(0, args.n, PRELOAD_BATCH):
            b.set_many([(k, rng.randbytes(VALLEN)) for k in keys[i:i + PRELOAD_BATCH]])
        fns = {"attached": b._get_attached, "detached": b._get_detached, "public get": b.get}
        probe = rng.choices(keys, k=60_000)
        rounds = {name: [] for name in fns}
        for _ in range(5):  # interleaved rounds: the machine is shared and noisy
            for name, fn in fns.items():
                rounds[name].append(time_unary(fn, probe, warm=5_000, max_s=5)["median_ns"])
        for name, xs in rounds.items():
            out["latency_ns"][name] = {"median": median(xs), "rounds": xs}

        per_thread = 40_000
        samples = {}
        for _ in range(args.rounds):  # interleaved rounds, median per cell
            for t in (1, 2, 4):
                for name in ("attached", "detached"):
                    fn = fns[name]
                    work = [rng.choices(keys, k=per_thread) for _ in range(t)]
                    barrier = threading.Barrier(t + 1)

                    def run(ks, fn=fn, barrier=barrier):
                        barrier.wait()
                        for k in ks:
                            fn(k)
                    ths = [threading.Thread(target=run, args=(w,)) for w in work]
                    for th in ths:
                        th.start()
                    barrier.wait()
                    t0 = pc()
                    for th in ths:
                        th.join()
                    dt = pc() - t0
                    samples.setdefault("%s x%d" % (name, t), []).append(t * per_thread / (dt / 1e9))
        out["threads"] = {k: median(v) for k, v in samples.items()}
        out["threads_rounds"] = samples
    shutil.rmtree(path, ignore_errors=True)

    print("\n### GIL around a point read (N = %s, engine %s)\n" % (format(args.n, "_"), args.engine))
    print("| variant | get 1, one thread (median of 5 rounds) |")
    print("|---|---|")
    for name, r in out["latency_ns"].items():
        print("| %s | %s (rounds: %s) |" % (name, fmt_ns(r["median"]),
                                           ", ".join(fmt_ns(x) for x in r["rounds"])))
    print("\n| threads reading at once (median of %d rounds) | GIL held (attached) | GIL released (detached) |" % args.rounds)
    print("|---|---|---|")
    for t in (1, 2, 4):
        print("| %d | %s | %s |" % (t, fmt_rate(out["threads"]["attached x%d" % t]),
                                    fmt_rate(out["threads"]["detached x%d" % t])))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("run")
    p.add_argument("--lib", required=True, choices=list(ADAPTERS))
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dir", required=True)
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true")
    p = sp.add_parser("all")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--libs")
    p.add_argument("--python", action="append", help="LIB=INTERPRETER")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--quick", action="store_true")
    p = sp.add_parser("gil")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dir", required=True)
    p.add_argument("--engine", default="sled")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out")
    p = sp.add_parser("report")
    p.add_argument("files", nargs="+")
    args = ap.parse_args()
    if args.cmd == "run":
        os.makedirs(args.dir, exist_ok=True)
        r = run_one(args.lib, args.n, args.dir, quick=args.quick)
        s = json.dumps(r, indent=1)
        if args.json:
            with open(args.json, "w") as f:
                f.write(s)
        else:
            print(s)
    elif args.cmd == "all":
        os.makedirs(args.dir, exist_ok=True)
        cmd_all(args)
    elif args.cmd == "gil":
        os.makedirs(args.dir, exist_ok=True)
        cmd_gil(args)
    else:
        cmd_report(args)


if __name__ == "__main__":
    main()
