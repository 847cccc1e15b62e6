"""Run `ccapi ...` with CPython's cyclic-GC activity counted (used by bench.py --gc-stats).

    python bench/gc_probe.py OUT.jsonl serve --host H --port P

On SIGUSR1 it appends one JSON line to OUT.jsonl: per generation, the number of
collections, the seconds spent in them and the objects they freed, plus the
number of tracked objects. The gateway itself is unchanged.
"""

from __future__ import annotations

import gc
import json
import signal
import sys
import time
from typing import Any

_OUT = sys.argv[1]
_stats = {gen: {"collections": 0, "seconds": 0.0, "collected": 0} for gen in (0, 1, 2)}
_started = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    s = _stats[info["generation"]]
    s["collections"] += 1
    s["seconds"] += time.perf_counter() - _started[0]
    s["collected"] += info["collected"]


def _dump(signum: int, frame: Any) -> None:
    line = {
        "t": time.monotonic(),
        "gc": _stats,
        "tracked_objects": len(gc.get_objects()),
        "threshold": gc.get_threshold(),
    }
    with open(_OUT, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def main() -> int:
    gc.callbacks.append(_on_gc)
    signal.signal(signal.SIGUSR1, _dump)
    from ccapi.cli import main as ccapi_main

    return ccapi_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
