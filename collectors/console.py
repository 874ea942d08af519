"""The collector's log lines: one stamped line on stderr per event.

``webprof collect`` runs as a service (systemd keeps stderr in the journal)
or in a terminal; either way one plain line per event, flushed at once, is
what a person reads.  Shared by the runner, the uplink and the traces.
"""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp} webprof collect: {message}", file=sys.stderr, flush=True)
