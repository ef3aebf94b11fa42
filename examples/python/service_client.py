"""The dashboard example over the network: any Redis client reaches `state serve`.

    python examples/python/service_client.py PORT NAME TOKEN

Saves a layout with redis-py, reads it back, counts visits atomically (INCR),
keeps a session key that expires, and pages through the client's keys with SCAN.
"""

from __future__ import annotations

import json
import sys

import redis


def main() -> None:
    port, name, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    r = redis.Redis(host="127.0.0.1", port=port, username=name, password=token)
    r.set("layout", json.dumps({"cols": 3, "widgets": ["temp", "power"]}))
    layout = json.loads(r.get("layout") or b"{}")
    visits = r.incr("visits")
    r.set("session", "abc", ex=1800)
    print(f"python/redis-py: layout={layout} visits={visits} session ttl={r.ttl('session')}s")
    print(f"python/redis-py: keys of {name}: {sorted(k.decode() for k in r.scan_iter(count=100))}")


if __name__ == "__main__":
    main()
