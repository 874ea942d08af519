"""Latency histograms: run queue, block I/O and system calls.

Each collector loads one program from ``bpf/`` (runqlat, biolat, syscall),
which counts events into log2 histograms of microseconds in the kernel;
``drain()`` flips the kernel to the other histogram set, reads and clears
the old one, names the series and returns a ``LatencyDelta``::

    with SyscallCollector(pid=1234) as collector:
        while running:
            time.sleep(1)
            delta = collector.drain()   # series: syscall name -> buckets

``webprof record runqlat|biolat|syscall`` is collectors/record.py.
"""

from __future__ import annotations

import struct
from typing import Any

from collectors import histogram, syscalls
from collectors.base import Loader
from collectors.maps import HashDrainer

# The handler webprof/cli.py names for this kind; the command is record.main.
from collectors.target import comm_text
from webprof.core.latency import OTHER, rank_series
from webprof.core.protocol import HEALTH_KEYS, LatencyDelta

NSLOTS = 41  # MAX_SLOT + 1 in the programs
NR_SLOTS = 1024  # size of syscall.bpf.c's wanted_nr
DEFAULT_MAX_SERIES = 20


class LatencyCollector(Loader):
    """Common loader of the histogram programs: compile, attach, drain."""

    key = struct.Struct("<II")
    # Order of enum health_index in the program, as protocol HEALTH_KEYS names.
    kernel_health = ("samples", "start_map_full", "counts_map_full", "filtered")
    hist_size = 8192

    def __init__(self, pid: int | None = None, interval_ms: int = 1000, *,
                 host: str | None = None, max_series: int | None = DEFAULT_MAX_SERIES,
                 start_size: int = 16384, cgroup_id: int | None = None,
                 target_comm: str | None = None) -> None:
        super().__init__(pid=pid, cgroup_id=cgroup_id, target_comm=target_comm,
                         interval_ms=interval_ms, host=host)
        self.max_series = max_series
        self.start_size = start_size
        self._drainer = HashDrainer()

    def cflags(self) -> list[str]:
        flags = [f"-DSTART_SIZE={int(self.start_size)}", f"-DHIST_SIZE={int(self.hist_size)}"]
        return flags + super().cflags()

    # -- draining -----------------------------------------------------------
    def drain(self) -> LatencyDelta:
        """Histograms since the previous drain, named, as one protocol message."""
        old, start_ms, interval_ms = self._flip()
        keys, counts = self._drainer.drain(self._require()[f"hist{old}".encode()].map_fd,
                                           self.hist_size, self.key.size)
        slots: dict[str, dict[int, int]] = {}
        for key, count in zip(self.key.iter_unpack(keys), counts, strict=True):
            name, slot = self.series_slot(key)
            per_slot = slots.setdefault(name, {})
            per_slot[slot] = per_slot.get(slot, 0) + count
        slots = self.finish_series(slots, old)
        health = dict.fromkeys(HEALTH_KEYS, 0)
        health.update(self._health_delta(old))
        self.seq += 1
        return LatencyDelta(
            host=self.host, kind=self.kind, seq=self.seq, start_ms=start_ms,
            interval_ms=interval_ms,
            series={name: histogram.from_slots(s) for name, s in slots.items() if any(s.values())},
            health=health)

    def series_slot(self, key: tuple) -> tuple[str, int]:
        """Unpacked histogram key -> (series name, slot)."""
        raise NotImplementedError

    def finish_series(self, slots: dict[str, dict[int, int]],
                      set_index: int) -> dict[str, dict[int, int]]:
        """Hook for whole-system series and caps; identity by default."""
        return slots


class SyscallCollector(LatencyCollector):
    """System call latency per system call name (optionally one process)."""

    kind = "syscall"
    key = struct.Struct("<II")  # struct hist_key: nr, slot

    def __init__(self, *args, syscalls: list[int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only these system call numbers (a trace's names filter), or all.
        self.syscalls = sorted(set(syscalls)) if syscalls else None
        if self.syscalls and not 0 <= self.syscalls[0] <= self.syscalls[-1] < NR_SLOTS:
            raise ValueError(f"system call numbers must be 0..{NR_SLOTS - 1}")

    def attach(self, bpf: Any) -> None:
        if self.syscalls:
            wanted = bpf[b"wanted_nr"]
            for nr in self.syscalls:
                wanted[wanted.Key(nr)] = wanted.Leaf(1)

    def cflags(self) -> list[str]:
        flags = super().cflags()
        if self.syscalls:
            flags.append("-DFILTER_SYSCALLS")
        for call, macro in (("exit", "NR_EXIT"), ("exit_group", "NR_EXIT_GROUP")):
            nr = syscalls.number(call)
            if nr is not None:
                flags.append(f"-D{macro}={nr}")
        return flags

    def series_slot(self, key: tuple) -> tuple[str, int]:
        nr, slot = key
        if nr >= 1 << 31:
            nr -= 1 << 32  # the kernel's long id, truncated to u32
        return syscalls.name(nr), slot


class RunqlatCollector(LatencyCollector):
    """Run-queue latency: "all" (whole system) plus one series per thread name.

    Per-name series beyond ``max_series`` (largest counts kept) fold into
    "other", so a fork storm cannot flood the protocol.
    """

    kind = "runqlat"
    key = struct.Struct("<16sI")  # struct hist_key: next_comm, slot

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._all_totals = [[0] * NSLOTS for _ in range(2)]

    def series_slot(self, key: tuple) -> tuple[str, int]:
        comm, slot = key
        name = comm_text(comm)
        if name in ("all", OTHER):
            name += " (task)"  # keep reserved series names unambiguous
        return name, slot

    def finish_series(self, slots: dict[str, dict[int, int]],
                      set_index: int) -> dict[str, dict[int, int]]:
        capped = cap_series(slots, self.max_series)
        capped["all"] = self._all_delta(set_index)
        return capped

    def _all_delta(self, set_index: int) -> dict[int, int]:
        table = self._require()[b"all_hist"]
        totals = self._all_totals[set_index]
        result = {}
        for slot in range(NSLOTS):
            value = int(table.sum(table.Key(set_index * NSLOTS + slot)).value)
            if value > totals[slot]:
                result[slot] = value - totals[slot]
            totals[slot] = value
        return result


class BiolatCollector(LatencyCollector):
    """Block I/O latency per device and operation ("vda:read", "vda:write", ...)."""

    kind = "biolat"
    key = struct.Struct("<I2sHI")  # struct hist_key: dev, op[2], pad, slot
    kernel_health = ("samples", "start_map_full", "counts_map_full")
    hist_size = 4096
    OPS = {"R": "read", "W": "write", "D": "discard", "E": "secure-erase", "F": "flush"}

    def __init__(self, *args, device: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.pid is not None or self.target_comm is not None:
            raise ValueError("block I/O latency cannot be filtered by process: requests are "
                             "issued by kworkers and completed in interrupts")
        self.device = device  # one disk's dev value (MAJOR << 20 | MINOR), or all
        self._names: dict[int, str] = {}

    def cflags(self) -> list[str]:
        flags = super().cflags()
        if self.device is not None:
            flags.append(f"-DFILTER_DEV={int(self.device)}")
        return flags

    def series_slot(self, key: tuple) -> tuple[str, int]:
        dev, op, _pad, slot = key
        name = self._names.get(dev)
        if name is None:
            name = self._names[dev] = device_name(dev)
        return f"{name}:{operation(op)}", slot


def operation(rwbs: bytes) -> str:
    """The operation of a request from the first two characters of its rwbs string.

    A leading 'F' is a preflush flag when an operation letter follows
    ("FWS" is a write with preflush); alone it is a flush.
    """
    text = rwbs.split(b"\0", 1)[0].decode("ascii", "replace")
    if len(text) == 2 and text[0] == "F" and text[1] in "RWDE":
        text = text[1:]
    return BiolatCollector.OPS.get(text[:1], "other")


def device_name(dev: int, sys_root: str = "/sys/dev/block") -> str:
    """Name of a block device from the kernel's internal dev_t (MAJOR << 20 | MINOR)."""
    major, minor = dev >> 20, dev & ((1 << 20) - 1)
    try:
        with open(f"{sys_root}/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return f"{major}:{minor}"


def cap_series(slots: dict[str, dict[int, int]],
               max_series: int | None) -> dict[str, dict[int, int]]:
    """Keep the series that :func:`webprof.core.latency.rank_series` keeps under
    ``max_series``; fold the rest into "other", so totals stay exact."""
    kept_names, rest = rank_series({name: sum(s.values()) for name, s in slots.items()},
                                   max_series)
    if not rest:
        return dict(slots)
    kept = {name: slots[name] for name in kept_names}
    other = dict(kept.get(OTHER, {}))
    for name in rest:
        for slot, n in slots[name].items():
            other[slot] = other.get(slot, 0) + n
    kept[OTHER] = other
    return kept
