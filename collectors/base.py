"""What every loader shares: compile, attach, detach, flip map sets, read health.

A loader is one small class per BPF program (``CpuCollector``,
``OffCpuCollector``, the ``LatencyCollector`` family, ...).  Built, it holds
only options; entering compiles its kind's program (:attr:`Loader.source`,
named by the kind table) with :meth:`cflags` and runs :meth:`attach`;
leaving (or :meth:`close`, which may be called any number of times)
detaches everything with ``BPF.cleanup()``.  A failed attach detaches what
was attached before re-raising, so a loader that did not enter leaves
nothing in the kernel.

Every program keeps two sets of maps and a ``control`` map naming the one
being written; :meth:`Loader._flip` switches the kernel to the other set and
says which one to drain and the interval it covers.  Health counters are
per-CPU running totals kept by the kernel; :meth:`Loader._health_delta`
turns them into per-interval counts.

:class:`Collector` is what the runner and the trace manager need of a loader.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from collectors import bcc_env
from collectors.target import target_cflags
from webprof.core import kinds
from webprof.core.clock import now_ms
from webprof.core.protocol import Message

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"


class Collector(Protocol):
    """A loader as the fleet (runner.py) and the traces (traces.py) drive it."""

    kind: str

    def __enter__(self) -> Collector: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def close(self) -> None: ...

    def drain(self) -> Message: ...


class Loader:
    """Lifecycle of one BPF program; subclasses add options, cflags, attach and drain."""

    kind: str = ""
    # Names of the program's health counters, in the order of its enum
    # health_index (None: a counter not reported per interval).
    kernel_health: ClassVar[tuple[str | None, ...]] = ()

    def __init__(self, *, pid: int | None = None, cgroup_id: int | None = None,
                 target_comm: str | None = None, interval_ms: int = 1000,
                 host: str | None = None) -> None:
        self.pid = pid
        # Targeted traces: a cgroup v2 id and an exact task name, both tested
        # in the kernel (bpf/target.h).
        self.cgroup_id = cgroup_id
        self.target_comm = target_comm
        self.interval_ms = interval_ms
        self.host = host or socket.gethostname()
        self.seq = 0
        self._bpf: Any = None  # bcc.BPF while entered
        self._set = 0  # the map set the kernel writes
        self._start_ms = 0  # wall clock when the interval being counted began
        self._health_totals = [[0] * len(self.kernel_health) for _ in range(2)]

    @property
    def source(self) -> Path:
        """The program under bpf/ that the kind table names for this kind."""
        return BPF_DIR / kinds.BY_NAME[self.kind].program

    # -- lifecycle ----------------------------------------------------------
    def cflags(self) -> list[str]:
        """``-D`` flags of the target (bpf/target.h); subclasses add their own."""
        return target_cflags(self.pid, self.cgroup_id, self.target_comm)

    def attach(self, bpf: Any) -> None:
        """Attach probes or fill maps once the program is loaded; may raise.
        Tracepoint programs (TRACEPOINT_PROBE) attach themselves on load."""

    def started(self) -> None:
        """Called once entered and attached, before the first interval starts."""

    def __enter__(self) -> Self:
        bpf = bcc_env.load(self.source, self.cflags())
        try:
            self.attach(bpf)
        except Exception:
            bpf.cleanup()  # detach what attached before the failure
            raise
        self._bpf = bpf
        self.started()
        self._start_ms = now_ms()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Detach and free the program; does nothing when it is not loaded."""
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def _require(self) -> Any:  # -> bcc.BPF
        if self._bpf is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use it as a "
                               "context manager")
        return self._bpf

    # -- draining -----------------------------------------------------------
    def _flip(self) -> tuple[int, int, int]:
        """Point the programs at the other map set and start the next interval.

        Returns the set to drain (nobody writes it any more) and the interval
        it covers: ``(set, start_ms, interval_ms)``.
        """
        bpf = self._require()
        old, now = self._set, now_ms()
        self._set = bcc_env.flip_set(bpf, old)
        start, self._start_ms = self._start_ms, now
        return old, start, max(now - start, 0)

    def _health_delta(self, set_index: int) -> dict[str, int]:
        """This set's counters since it was last drained (the kernel keeps totals).

        The ``health`` array holds ``len(kernel_health)`` counters per set,
        set 0's first; a program with one set of counters passes 0.
        """
        table = self._require()[b"health"]
        totals = self._health_totals[set_index]
        base = set_index * len(self.kernel_health)
        delta = {}
        for i, name in enumerate(self.kernel_health):
            total = int(table.sum(table.Key(base + i)).value)
            if name is not None:
                delta[name] = max(total - totals[i], 0)
            totals[i] = total
        return delta
