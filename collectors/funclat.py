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

from collectors.latency import LatencyCollector

MAX_FUNCTIONS = 8  # FUNC_PAIR(0) .. FUNC_PAIR(7) in funclat.bpf.c


class FuncLatCollector(LatencyCollector):
    kind = "funclat"
    source = "funclat.bpf.c"
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

    def after_load(self, bpf) -> None:
        """Attach pair i to symbol i (bcc detaches them all in cleanup())."""
        pid = self.pid if self.pid is not None else -1
        for i, symbol in enumerate(self.symbols):
            name, sym = self.binary.encode(), symbol.encode()
            bpf.attach_uprobe(name=name, sym=sym, fn_name=f"entry_{i}".encode(), pid=pid)
            bpf.attach_uretprobe(name=name, sym=sym, fn_name=f"return_{i}".encode(), pid=pid)

    def series_slot(self, key: tuple) -> tuple[str, int]:
        fn, slot = key
        name = self.symbols[fn] if fn < len(self.symbols) else f"function_{fn}"
        return name, slot
