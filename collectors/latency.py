"""Latency histograms: run queue, block I/O and system calls.

Each collector loads one program from ``bpf/`` (runqlat, biolat, syscall),
which counts events into log2 histograms of microseconds in the kernel;
``drain()`` flips the kernel to the other histogram set, reads and clears
the old one, names the series and returns a ``LatencyDelta``::

    with SyscallCollector(pid=1234) as collector:
        while running:
            time.sleep(1)
            delta = collector.drain()   # series: syscall name -> buckets

``record_main`` is ``webprof record runqlat|biolat|syscall``.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from pathlib import Path

from collectors import bcc_env, histogram, record, syscalls
from collectors.maps import HashDrainer
from collectors.target import target_cflags
from webprof.core.protocol import HEALTH_KEYS, LatencyDelta

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
NSLOTS = 41  # MAX_SLOT + 1 in the programs
NR_SLOTS = 1024  # size of syscall.bpf.c's wanted_nr
DEFAULT_MAX_SERIES = 20
OTHER = "other"


class LatencyCollector:
    """Common loader: compile, attach (TRACEPOINT_PROBE attaches on load), drain."""

    kind = ""
    source = ""
    key = struct.Struct("<II")
    # Order of enum health_index in the program, as protocol HEALTH_KEYS names.
    kernel_health: tuple[str, ...] = ("samples", "start_map_full", "counts_map_full",
                                      "filtered")
    hist_size = 8192

    def __init__(self, pid: int | None = None, interval_ms: int = 1000, *,
                 host: str | None = None, max_series: int | None = DEFAULT_MAX_SERIES,
                 start_size: int = 16384, cgroup_id: int | None = None,
                 target_comm: str | None = None) -> None:
        self.pid = pid
        # Targeted traces: cgroup v2 id and exact task name (bpf/target.h).
        self.cgroup_id = cgroup_id
        self.target_comm = target_comm
        self.interval_ms = interval_ms
        self.host = host or socket.gethostname()
        self.max_series = max_series
        self.start_size = start_size
        self.seq = 0
        self._bpf = None
        self._set = 0
        self._start_ms = 0
        self._drainer = HashDrainer()
        self._health_totals = [dict.fromkeys(self.kernel_health, 0) for _ in range(2)]

    # -- lifecycle ----------------------------------------------------------
    def cflags(self) -> list[str]:
        flags = [f"-DSTART_SIZE={int(self.start_size)}", f"-DHIST_SIZE={int(self.hist_size)}"]
        return flags + target_cflags(self.pid, self.cgroup_id, self.target_comm)

    def __enter__(self) -> LatencyCollector:
        self._bpf = bcc_env.load(BPF_DIR / self.source, self.cflags())
        try:
            self.after_load(self._bpf)
        except Exception:
            self.close()
            raise
        self._start_ms = _now_ms()
        return self

    def after_load(self, bpf) -> None:
        """Fill maps or attach probes once the program is loaded; may raise."""

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    # -- draining -----------------------------------------------------------
    def drain(self) -> LatencyDelta:
        """Histograms since the previous drain, named, as one protocol message."""
        bpf = self._require()
        old = self._set
        now = _now_ms()
        self._set = bcc_env.flip_set(bpf, old)
        # The old set: nobody writes it any more.
        keys, counts = self._drainer.drain(bpf[f"hist{old}".encode()].map_fd,
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
        delta = LatencyDelta(
            host=self.host, kind=self.kind, seq=self.seq, start_ms=self._start_ms,
            interval_ms=max(now - self._start_ms, 0),
            series={name: histogram.from_slots(s) for name, s in slots.items() if any(s.values())},
            health=health)
        self._start_ms = now
        return delta

    def _health_delta(self, set_index: int) -> dict[str, int]:
        """This set's counters since it was last drained (the kernel keeps totals)."""
        table = self._require()[b"health"]
        totals = self._health_totals[set_index]
        delta = {}
        for i, name in enumerate(self.kernel_health):
            value = int(table.sum(table.Key(set_index * len(self.kernel_health) + i)).value)
            delta[name] = max(value - totals[name], 0)
            totals[name] = value
        return delta

    def series_slot(self, key: tuple) -> tuple[str, int]:
        """Unpacked histogram key -> (series name, slot)."""
        raise NotImplementedError

    def finish_series(self, slots: dict[str, dict[int, int]],
                      set_index: int) -> dict[str, dict[int, int]]:
        """Hook for whole-system series and caps; identity by default."""
        return slots

    def _require(self):  # -> bcc.BPF
        if self._bpf is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use it as a "
                               "context manager")
        return self._bpf


class SyscallCollector(LatencyCollector):
    """System call latency per system call name (optionally one process)."""

    kind = "syscall"
    source = "syscall.bpf.c"
    key = struct.Struct("<II")  # struct hist_key: nr, slot

    def __init__(self, *args, syscalls: list[int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only these system call numbers (a trace's names filter), or all.
        self.syscalls = sorted(set(syscalls)) if syscalls else None
        if self.syscalls and not 0 <= self.syscalls[0] <= self.syscalls[-1] < NR_SLOTS:
            raise ValueError(f"system call numbers must be 0..{NR_SLOTS - 1}")

    def after_load(self, bpf) -> None:
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
    source = "runqlat.bpf.c"
    key = struct.Struct("<16sI")  # struct hist_key: next_comm, slot

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._all_totals = [[0] * NSLOTS for _ in range(2)]

    def series_slot(self, key: tuple) -> tuple[str, int]:
        comm, slot = key
        name = comm.split(b"\0", 1)[0].decode("utf-8", "replace") or "[unknown]"
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
    source = "biolat.bpf.c"
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
    """Keep the ``max_series`` largest series; fold the rest into "other"."""
    if max_series is None or len(slots) <= max_series:
        return dict(slots)
    ranked = sorted(slots, key=lambda name: (-sum(slots[name].values()), name))
    kept = {name: slots[name] for name in ranked[:max_series]}
    other = dict(kept.get(OTHER, {}))
    for name in ranked[max_series:]:
        for slot, n in slots[name].items():
            other[slot] = other.get(slot, 0) + n
    kept[OTHER] = other
    return kept


COLLECTORS: dict[str, type[LatencyCollector]] = {
    "runqlat": RunqlatCollector, "biolat": BiolatCollector, "syscall": SyscallCollector}


# -- webprof record runqlat|biolat|syscall -------------------------------------
def record_main(args: argparse.Namespace) -> int:
    """``webprof record runqlat|biolat|syscall``: log2 histograms, JSON or text."""
    code = record.preflight(args.pid)
    if code is not None:
        return code
    try:
        collector = COLLECTORS[args.kind](pid=args.pid, max_series=None)
    except ValueError as exc:
        print(f"webprof record {args.kind}: {exc}", file=sys.stderr)
        return 1
    series: dict[str, list[list[int]]] = {}
    health: dict[str, int] = {}

    def add(delta: LatencyDelta) -> None:
        record.add_health(health, delta)
        for name, buckets in delta.series.items():
            series[name] = histogram.merge(series.get(name, []), buckets)

    code = record.run(collector, args.duration, args.pid, record.keeping(args, add))
    if code is not None:
        return code
    if args.kind == "runqlat":
        series = _cap_buckets(series)
    if args.format == "json":
        text = json.dumps({"unit": "us", "series": series}, sort_keys=True) + "\n"
    else:
        label = {"runqlat": "task", "biolat": "disk", "syscall": "syscall"}[args.kind]
        text = histogram.render_all(series, label=label)
    record.finish(text, args.output, f"{len(series)} series", health, "no events")
    return 0


def _cap_buckets(series: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
    """cap_series over bucket lists, keeping "all" outside the cap."""
    everything = series.pop("all", [])
    slots = {name: {histogram.slot_of(low): n for low, _, n in buckets}
             for name, buckets in series.items()}
    capped = {name: histogram.from_slots(s)
              for name, s in cap_series(slots, DEFAULT_MAX_SERIES).items()}
    if everything:
        capped["all"] = everything
    return capped


def _now_ms() -> int:
    return int(time.time() * 1000)
