"""Wall-clock time as the protocol counts it: unix milliseconds.

One helper for both sides, so collectors, the hub, the recorder and traces
agree on what "now" is.  Pure Python.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Unix time in whole milliseconds."""
    return time.time_ns() // 1_000_000
