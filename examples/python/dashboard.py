#!/usr/bin/env python3
"""libstate example: the saved state of a small dashboard.

Each user of a dashboard gets a bucket holding the layout (JSON), one record per
widget (``widget/<id>``), and a short-lived UI session. The program saves a layout,
edits it, lists widgets page by page with a cursor, and answers one request through
the state service as the original HiveOT service would. Run it twice: the second
run finds the state the first one saved.

    python examples/python/dashboard.py [STORE_DIR]
"""

from __future__ import annotations

import json
import sys
from typing import TypedDict

import libstate


class Widget(TypedDict):
    """One tile of the dashboard."""

    kind: str
    title: str
    col: int
    row: int


DEFAULT_WIDGETS: dict[str, Widget] = {
    "clock": {"kind": "clock", "title": "Time", "col": 0, "row": 0},
    "temp-kitchen": {"kind": "gauge", "title": "Kitchen", "col": 1, "row": 0},
    "temp-garage": {"kind": "gauge", "title": "Garage", "col": 2, "row": 0},
    "door-front": {"kind": "switch", "title": "Front door", "col": 0, "row": 1},
    "lights": {"kind": "switch", "title": "Lights", "col": 1, "row": 1},
}


def save_default_dashboard(user: libstate.Bucket) -> None:
    """Writes the layout and every widget in one atomic batch."""
    batch = {f"widget/{wid}": json.dumps(w).encode() for wid, w in DEFAULT_WIDGETS.items()}
    batch["layout"] = json.dumps({"cols": 3, "theme": "dark"}).encode()
    user.set_many(batch)


def list_widgets(user: libstate.Bucket, page_size: int = 2) -> list[str]:
    """Lists the widget ids page by page, as a UI would fetch them."""
    ids: list[str] = []
    with user.cursor() as cur:
        first = cur.seek("widget/")
        page = [first] if first is not None and first[0].startswith("widget/") else []
        while page:
            for key, _value in page:
                if not key.startswith("widget/"):
                    return ids
                ids.append(key.removeprefix("widget/"))
            page = cur.next_n(page_size)
    return ids


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "state-data"
    with libstate.open(path) as store:
        user = store.bucket("user1")

        if "layout" in user:
            print(f"found a saved dashboard with {len(user)} records in {store.path}")
        else:
            save_default_dashboard(user)
            print(f"saved a new dashboard in {store.path}")

        layout = user.get_json("layout")
        layout["opened"] = layout.get("opened", 0) + 1
        user.set_json("layout", layout)
        print(f"layout: {layout}")

        # Move one widget; set_json replaces the record.
        garage: Widget = user.get_json("widget/temp-garage")
        garage["row"] = 2
        user.set_json("widget/temp-garage", garage)

        # The UI session expires by itself after 30 minutes without a refresh.
        user.set("session", b"token-1234", ttl=30 * 60)
        left = user.ttl("session")
        print(f"session expires in {left:.0f} s" if left is not None else "session never expires")

        print("widgets:", ", ".join(list_widgets(user)))
        print("switches:", [k for k, v in user.prefix("widget/") if b'"switch"' in v])

        # The service gives each client its own bucket; values travel base64-encoded.
        svc = store.service()
        reply = svc.handle("user1", "getMultiple", '{"keys": ["layout", "missing"]}')
        print(f"service getMultiple -> {reply[:60]}...")

        try:
            user["widget/"] = "not bytes"  # type: ignore[assignment]
        except TypeError as e:
            print(f"refused a str value: {e}")
        try:
            user[""] = b"x"
        except libstate.InvalidArgument as e:
            print(f"refused an empty key: {e}")
        store.flush()
        # The Rust and C examples use the same store directory with buckets of their own.
        print(f"buckets in the store: {', '.join(store.bucket_names())}")
        print(f"info: {store.info()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
