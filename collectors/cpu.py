"""On-CPU stack sampling: loads bpf/cpu.bpf.c and drains it into ProfileDelta messages.

Usage::

    with CpuCollector(frequency_hz=49) as cpu:
        while running:
            time.sleep(1)
            delta = cpu.drain()

``drain()`` is ``build_delta(read_interval())``: :meth:`read_interval`
flips the kernel to the other map set and empties the old one's counts;
:meth:`build_delta` is :meth:`take_stacks` (read and free the stacks those
counts refer to) then :meth:`delta_from_stacks` (symbolize, merge, encode).
A benchmark can time the parts apart (bench/drain_bench.py).

Sub-second time: the kernel counts each stack per absolute CLOCK_MONOTONIC
window of ``slot_ms`` (the key's ``slot``).  The drain maps those slots to
the message's windows, numbered from the interval's wall-clock ``start_ms``,
names each stack key once, and sends one stacks entry per merged stack with
its windows in ``slots``.
"""

from __future__ import annotations

import ctypes as ct
import gc
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from collectors.base import Loader
from collectors.delta import Merged, build_profile_delta
from collectors.maps import HashDrainer, StackReader
from collectors.slots import slot_windows, wall_minus_mono_ns
from collectors.symbols import StackNames, Symbolizer
from collectors.target import comm_text
from webprof.core.protocol import DEFAULT_SLOT_MS, ProfileDelta

KEY = struct.Struct("<IiiI16s")  # struct key_t in cpu.bpf.c: tgid, user, kernel, slot, comm
TASK = struct.Struct("<I16s")  # struct task_t
# Order of enum health_index in cpu.bpf.c.
KERNEL_HEALTH = ("samples", "lost_user_stacks", "lost_kernel_stacks",
                 "stack_map_full", "counts_map_full")
EXPIRE_EVERY_S = 10.0  # symbol snapshots of exited processes are kept 60 s anyway
_CACHE_MAX = 200_000  # stack names kept across intervals (callers + leaves)


@dataclass
class RawInterval:
    """One interval's counts as read from the kernel, before symbolization."""

    set_index: int
    start_ms: int
    interval_ms: int
    # tgid, user id, kernel id, monotonic slot, comm, n
    counts: list[tuple[int, int, int, int, bytes, int]]
    health: dict[str, int] = field(default_factory=dict)
    wall_minus_mono_ns: int = 0  # time.time_ns() - CLOCK_MONOTONIC, measured at the drain


class CpuCollector(Loader):
    """Loader for cpu.bpf.c.  Entering compiles and attaches; leaving detaches."""

    kind = "cpu"
    kernel_health = KERNEL_HEALTH

    def __init__(self, frequency_hz: int = 49, pid: int | None = None,
                 interval_ms: int = 1000, *, host: str | None = None,
                 counts_size: int = 40960, stack_storage_size: int = 16384,
                 slot_ms: int = DEFAULT_SLOT_MS, cgroup_id: int | None = None,
                 target_comm: str | None = None) -> None:
        super().__init__(pid=pid, cgroup_id=cgroup_id, target_comm=target_comm,
                         interval_ms=interval_ms, host=host)
        self.frequency_hz = frequency_hz
        self.counts_size = counts_size
        self.stack_storage_size = stack_storage_size
        if not 1 <= slot_ms <= 1000:
            raise ValueError(f"slot_ms must be 1..1000, not {slot_ms}")
        self.slot_ms = slot_ms
        self.symbolizer = Symbolizer()
        self.names = StackNames(self.symbolizer, max_entries=_CACHE_MAX)
        self.lost_task_events = 0
        self._expired_at = 0.0
        self._drainer = HashDrainer()
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------
    def cflags(self) -> list[str]:
        flags = [f"-DCOUNTS_SIZE={int(self.counts_size)}",
                 f"-DSTACK_STORAGE_SIZE={int(self.stack_storage_size)}",
                 f"-DSLOT_NS={int(self.slot_ms) * 1_000_000}"]
        return flags + super().cflags()

    def attach(self, bpf: Any) -> None:
        """Listen for new processes, then attach the entry point."""
        bpf[b"new_tasks"].open_perf_buffer(self._on_new_task, page_cnt=16,
                                          lost_cb=self._on_lost_tasks)
        self.attach_entry(bpf)

    def attach_entry(self, bpf: Any) -> None:
        """Attach the sampling program (probecount.py attaches probes instead)."""
        from bcc import PerfSWConfig, PerfType

        bpf.attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK,
                              fn_name=b"on_cpu_sample", sample_freq=self.frequency_hz)

    def started(self) -> None:
        self.symbolizer.kernel_frames([])  # load /proc/kallsyms now, not in the first drain
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_tasks, name="cpu-new-tasks",
                                        daemon=True)
        self._poller.start()

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        super().close()

    def _poll_tasks(self) -> None:
        while not self._stop.is_set():
            self._bpf.perf_buffer_poll(timeout=50)

    def _on_new_task(self, _cpu: int, data: int, size: int) -> None:
        tgid, _comm = TASK.unpack(ct.string_at(data, TASK.size))
        self.symbolizer.note_process(tgid)

    def _on_lost_tasks(self, lost: int) -> None:
        self.lost_task_events += lost

    # -- draining -----------------------------------------------------------
    def drain(self) -> ProfileDelta:
        """Counts since the previous drain, symbolized, as one protocol message."""
        return self.build_delta(self.read_interval())

    def read_interval(self) -> RawInterval:
        """Flip the kernel to the other set, then take and clear the old set's counts."""
        old, start_ms, interval_ms = self._flip()
        table = self._require()[f"counts{old}".encode()]
        keys, values = self._drainer.drain(table.map_fd, self.counts_size, KEY.size)
        counts = [(*k, n) for k, n in zip(KEY.iter_unpack(keys), values, strict=True)]
        return RawInterval(old, start_ms, interval_ms, counts, self._health_delta(old),
                           wall_minus_mono_ns())

    def build_delta(self, raw: RawInterval) -> ProfileDelta:
        """Read and free the interval's stacks, symbolize, merge, encode."""
        return self.delta_from_stacks(raw, self.take_stacks(raw))

    def take_stacks(self, raw: RawInterval) -> dict[int, bytes]:
        """Stack id -> raw trace (``StackReader.read_raw``) of ``raw``'s set, then
        free them in the kernel."""
        reader = StackReader(self._require()[f"stacks{raw.set_index}".encode()].map_fd)
        ids = {row[1] for row in raw.counts if row[1] >= 0}
        ids.update(row[2] for row in raw.counts if row[2] >= 0)
        stacks = reader.read_raw(ids)
        # The set is no longer written, so freeing its ids cannot race.
        reader.delete(ids)
        # Ids allocated for samples whose count was dropped have no counts
        # key: when the kernel reported drops, sweep what is left.
        if raw.health.get("counts_map_full") or raw.health.get("stack_map_full"):
            reader.delete_all()
        return stacks

    def delta_from_stacks(self, raw: RawInterval, stacks: dict[int, bytes]) -> ProfileDelta:
        """Symbolize, merge and encode one interval (no kernel access)."""
        # A drain allocates hundreds of thousands of short-lived tuples, which
        # would trigger repeated cyclic-GC passes over the large symbol caches
        # (that hold no cycles); collect once afterwards instead.
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            window = slot_windows({row[3] for row in raw.counts}, raw.start_ms,
                                  raw.interval_ms, self.slot_ms, raw.wall_minus_mono_ns)
            merged, unknown, keys = self.merge(raw.counts, stacks, window)
            self.seq += 1
            delta = build_profile_delta(
                merged, {**raw.health, "stacks": keys, "unknown_symbols": unknown},
                host=self.host, kind=self.kind, seq=self.seq, start_ms=raw.start_ms,
                interval_ms=raw.interval_ms, frequency_hz=self.frequency_hz,
                slot_ms=self.slot_ms)
        finally:
            if gc_enabled:
                gc.enable()
        now = time.monotonic()
        if now - self._expired_at >= EXPIRE_EVERY_S:  # stats /proc per stale pid
            self._expired_at = now
            self.symbolizer.expire()
        self.names.trim()
        return delta

    def merge(self, counts: list[tuple[int, int, int, int, bytes, int]],
              stacks: dict[int, bytes], window: dict[int, int]
              ) -> tuple[Merged, int, int]:
        """(pid, comm, frames outermost first) -> {window: samples}, identical names
        merged; how many unknown frames the merged stacks hold; and how many
        distinct stack keys (pid, user id, kernel id, comm) the counts hold.

        The kernel key holds the slot, so a stack arrives once per slot it was
        sampled in: each stack key is named once, at its first entry, and its
        later entries only add to the windows of the merged stack it named.
        ``window`` maps monotonic slots to the message's (collectors/slots.py).
        """
        merged: Merged = {}
        resolved: dict[tuple, dict[int, int]] = {}  # stack key -> merged windows
        get = resolved.get
        name = self._stack_namer(stacks)
        unknown = 0
        for tgid, uid, kid, slot, comm_raw, n in counts:
            stack_key = (tgid, uid, kid, comm_raw)
            per_window = get(stack_key)
            if per_window is None:
                key, unknown_here = name(tgid, uid, kid, comm_raw)
                per_window = merged.get(key)
                if per_window is None:
                    per_window = merged[key] = {}
                    unknown += unknown_here
                resolved[stack_key] = per_window
            w = window[slot]
            per_window[w] = per_window.get(w, 0) + n
        return merged, unknown, len(resolved)

    def _stack_namer(self, stacks: dict[int, bytes]):  # -> (tgid, uid, kid, comm) -> ...
        """A function naming one stack key: ((pid, comm, frames), unknown frames).
        Its caches live for one drain; the symbol caches behind them persist."""
        comms: dict[bytes, str] = {}
        # pid -> (lookup of whole stacks already named, namer): naming a stack
        # whose names are cached is then a few dict lookups.
        procs: dict[int, tuple] = {}
        kernels: dict[int, tuple[tuple[str, ...], int]] = {}

        def name(tgid: int, uid: int, kid: int, comm_raw: bytes) -> tuple[tuple, int]:
            comm = comms.get(comm_raw)
            if comm is None:
                comm = comms[comm_raw] = comm_text(comm_raw)
            proc = procs.get(tgid)
            if proc is None:
                names = self.names.process(tgid)
                proc = procs[tgid] = (names.seen.get, names.frames)
            stack = stacks.get(uid, b"")
            frames, unknown = proc[0](stack) or proc[1](stack)
            if kid >= 0:
                kernel = kernels.get(kid)
                if kernel is None:
                    kernel = kernels[kid] = self.names.kernel(stacks.get(kid, b""))
                frames += kernel[0]
                unknown += kernel[1]
            return (tgid, comm, frames), unknown

        return name
