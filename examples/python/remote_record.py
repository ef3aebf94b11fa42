"""The original state service's example over `state serve`, from Python: a typed
record Put, then Get (`stateClient.Put("mykey", &myRecord)` /
`stateClient.Get("mykey", &myRecord)`).

    python examples/python/remote_record.py [URL]

URL is e.g. ``state+unix:///srv/app/state-data/state.sock``; without one it
connects to the default store's socket (``$STATE_STORE/state.sock``, else
``./state-data/state.sock``) of a running ``state serve``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

import libstate


@dataclass
class MyData:
    """MyData can be a dataclass or a native type."""

    name: str
    columns: int
    widgets: list[str] = field(default_factory=list)


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else None
    # The one line that differs from the embedded program
    # (`b = libstate.open("state-data").bucket("user1")`).
    with libstate.connect(url) as b:
        # write record
        my_record = MyData("dashboard", 3, ["clock", "weather"])
        b.set_json("mykey", asdict(my_record))

        # read record
        found = MyData(**b.get_json("mykey"))
        assert found == my_record, (found, my_record)
        print(f"python/libstate.connect: put then got {found} from {b.endpoint}")


if __name__ == "__main__":
    main()
