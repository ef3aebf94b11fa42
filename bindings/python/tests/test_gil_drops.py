"""No Python object is released without the GIL.

The extension is built without pyo3's reference pool (docs/python.md, "Building"):
a Python reference dropped by a thread that does not hold the GIL aborts the
process instead of being queued. These tests drive every path where the
extension holds or lends a Python object, or drops one of its objects away from
the thread that made it, in a child process, so that an abort fails the test
(with the child's stderr) rather than the whole run:

- file objects lent to `Store.export` / `Store.import_` (the core drops the
  writer and the reader with the GIL released), on success and when the file
  object raises; their reference counts must come back to where they were;
- watchers (with the event-loop wake-up socket), cursors, iterators in the
  middle of a batch, stores and `StateService`s made in one thread and dropped
  in another;
- the same objects still alive at interpreter exit, with daemon threads blocked
  in GIL-free waits (a watcher's `_recv`, an iterator's refills) and writers
  feeding them;
- the same for a remote bucket, its cursor, iterator and watcher (in
  test_remote.py, against its server: test_remote_objects_are_released_with_the_gil).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Runs in the child. argv: store directory, engine.
EMBEDDED = textwrap.dedent(
    """
    import gc, io, sys, threading
    import libstate

    path, engine = sys.argv[1], sys.argv[2]
    store = libstate.open(path + "/a", engine)
    b = store.bucket("b")
    b.set_many({"k%04d" % i: b"v" * 10 for i in range(1000)})

    # File objects lent to export and import come back with the references
    # they had (the core dropped the writer / reader without the GIL).
    out = io.BytesIO()
    before = sys.getrefcount(out)
    store.export(out, "jsonl")
    assert sys.getrefcount(out) == before, (sys.getrefcount(out), before)
    src = io.BytesIO(out.getvalue())
    before = sys.getrefcount(src)
    assert store.import_(src, "jsonl").records == 1000
    assert sys.getrefcount(src) == before
    json_src = io.BytesIO(b'{"c": {"k": "dg=="}}')
    store.import_(json_src, "json")

    class Broken(io.RawIOBase):
        def write(self, data):
            raise RuntimeError("broken writer")
        def read(self, n=-1):
            raise RuntimeError("broken reader")

    for call in (lambda f: store.export(f, "jsonl"), lambda f: store.import_(f, "jsonl")):
        broken = Broken()
        before = sys.getrefcount(broken)
        try:
            call(broken)
        except RuntimeError as e:
            assert "broken" in str(e)
        else:
            raise AssertionError("the file object's exception was not raised")
        assert sys.getrefcount(broken) == before

    def objects(s):
        bk = s.bucket("b")
        w = bk.watch("k")
        w._wakeup_fd()
        bk["k0001"] = b"changed"  # queued for the watcher, wakes its socket
        c = bk.cursor()
        c.seek("k0100")
        it = iter(bk.items())
        next(it)  # the iterator holds a batch of entries
        svc = libstate.StateService(s)
        return [bk, w, c, it, svc, s]

    # Made here, dropped in another thread.
    made = objects(libstate.open(path + "/b", engine))
    def drop():
        made.clear()
        gc.collect()
    t = threading.Thread(target=drop)
    t.start()
    t.join()
    assert not made

    # Made in another thread, dropped here.
    box = []
    t = threading.Thread(target=lambda: box.extend(objects(libstate.open(path + "/c", engine))))
    t.start()
    t.join()
    box.clear()
    gc.collect()

    # Left alive at exit, with threads blocked in GIL-free waits and a writer.
    alive = objects(store)
    watcher, iterator = alive[1], iter(b)
    def wait_events():
        while True:
            watcher._recv(None)
    def scan():
        while True:
            for _ in b:
                pass
    def write():
        i = 0
        while True:
            b["k%04d" % (i % 1000)] = b"w"
            i += 1
    for f in (wait_events, scan, write):
        threading.Thread(target=f, daemon=True).start()
    clock = libstate.ManualClock()
    timed = libstate.open(path + "/d", engine, clock=clock)
    timed.bucket("t").set("k", b"v", ttl=5)
    print("ok", flush=True)
    """
)


def run_child(code: str, *args: str) -> None:
    p = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code, *args],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, f"exit status {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stdout.strip() == "ok", p.stdout + p.stderr


def test_python_objects_are_released_with_the_gil(tmp_path: Path, engine: str) -> None:
    run_child(EMBEDDED, str(tmp_path), engine)
