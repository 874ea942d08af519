"""Function latency from uprobes: loads bpf/funclat.bpf.c, drains LatencyDelta "funclat".

Usage (targeted traces; the binary and symbols are checked first, see
collectors/tracecheck.py)::

    with FuncLatCollector("/usr/bin/app", ["parse", "render"], pid=42) as fl:
        time.sleep(1)
        delta = fl.drain()   # series: symbol -> log2 us buckets; counts = calls

The program holds eight entry/return handler pairs; pair ``i`` is attached
to ``symbols[i]`` by bcc (``attach_uprobe(name=binary, sym=symbol)``), so
symbol names go to bcc's attach call and never into C.  Calls per second
are a series' count over the interval.
"""

from __future__ import annotations

import struct
from typing import Any

from collectors.bcc_env import bcc_uprobe_events, remove_uprobe_events
from collectors.latency import LatencyCollector

MAX_FUNCTIONS = 8  # FUNC_PAIR(0) .. FUNC_PAIR(7) in funclat.bpf.c


class FuncLatCollector(LatencyCollector):
    kind = "funclat"
    key = struct.Struct("<II")  # struct hist_key: fn, slot
    hist_size = 2048

    def __init__(self, binary: str, symbols: list[str], pid: int | None = None,
                 **kwargs) -> None:
        super().__init__(pid=pid, **kwargs)
        if not 1 <= len(symbols) <= MAX_FUNCTIONS:
            raise ValueError(f"1 to {MAX_FUNCTIONS} functions, not {len(symbols)}")
        self.binary = binary
        self.symbols = list(symbols)
        self.max_series = None  # one series per symbol, at most 8

    def attach(self, bpf: Any) -> None:
        """Attach pair i to symbol i (bcc detaches them all in cleanup()).

        Every uretprobe goes on before any uprobe.  The kernel arms a return
        probe when the function is entered, so a call entered between an
        entry probe and its return probe would be timed at entry and never
        at return; with the returns first, a call running at attach time is
        simply not counted (its return finds no start time).
        """
        pid = self.pid if self.pid is not None else -1
        for prefix in ("return", "entry"):
            for i, symbol in enumerate(self.symbols):
                self._attach(bpf, prefix, i, symbol, pid)

    def _attach(self, bpf, prefix: str, index: int, symbol: str, pid: int) -> None:
        """One probe; a refusal leaves no tracefs event behind and says which.

        When the kernel refuses a uprobe (perf_event_open fails, e.g. on a
        function that starts with a trap instruction), bcc 0.26 retries
        through tracefs: it defines a uprobe event there, fails again and
        leaves the definition behind.  Nothing fires from it, but it pins
        the binary and piles up with every failed trace, so it is removed.
        """
        attach = bpf.attach_uretprobe if prefix == "return" else bpf.attach_uprobe
        before = bcc_uprobe_events()
        try:
            attach(name=self.binary.encode(), sym=symbol.encode(),
                   fn_name=f"{prefix}_{index}".encode(), pid=pid)
        except Exception as exc:  # bcc raises plain Exception
            remove_uprobe_events(bcc_uprobe_events() - before)
            what = "return probe" if prefix == "return" else "probe"
            raise RuntimeError(f"the kernel refused a {what} on {symbol} in {self.binary} "
                               f"({exc}): some functions cannot be probed") from None

    def series_slot(self, key: tuple) -> tuple[str, int]:
        fn, slot = key
        name = self.symbols[fn] if fn < len(self.symbols) else f"function_{fn}"
        return name, slot
