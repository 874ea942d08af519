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
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from collectors import bcc_env
from collectors.maps import HashDrainer, StackReader
from collectors.slots import slot_windows, wall_minus_mono_ns
from collectors.symbols import StackNames, Symbolizer
from collectors.target import target_cflags
from webprof.core.protocol import DEFAULT_SLOT_MS, HEALTH_KEYS, ProfileDelta

BPF_SOURCE = Path(__file__).resolve().parent.parent / "bpf" / "cpu.bpf.c"
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


class CpuCollector:
    """Loader for cpu.bpf.c.  Entering compiles and attaches; leaving detaches."""

    kind = "cpu"
    source = BPF_SOURCE

    def __init__(self, frequency_hz: int = 49, pid: int | None = None,
                 interval_ms: int = 1000, *, host: str | None = None,
                 counts_size: int = 40960, stack_storage_size: int = 16384,
                 slot_ms: int = DEFAULT_SLOT_MS, cgroup_id: int | None = None,
                 target_comm: str | None = None) -> None:
        self.frequency_hz = frequency_hz
        self.pid = pid
        # Targeted traces: a cgroup v2 id and an exact task name, both tested
        # in the kernel (bpf/target.h).
        self.cgroup_id = cgroup_id
        self.target_comm = target_comm
        self.interval_ms = interval_ms
        self.host = host or socket.gethostname()
        self.counts_size = counts_size
        self.stack_storage_size = stack_storage_size
        if not 1 <= slot_ms <= 1000:
            raise ValueError(f"slot_ms must be 1..1000, not {slot_ms}")
        self.slot_ms = slot_ms
        self.symbolizer = Symbolizer()
        self.names = StackNames(self.symbolizer, max_entries=_CACHE_MAX)
        self.seq = 0
        self.lost_task_events = 0
        self._bpf = None
        self._set = 0
        self._health_totals = [dict.fromkeys(KERNEL_HEALTH, 0) for _ in range(2)]
        self._start_ms = 0
        self._expired_at = 0.0
        self._drainer = HashDrainer()
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------
    def cflags(self) -> list[str]:
        flags = [f"-DCOUNTS_SIZE={int(self.counts_size)}",
                 f"-DSTACK_STORAGE_SIZE={int(self.stack_storage_size)}",
                 f"-DSLOT_NS={int(self.slot_ms) * 1_000_000}"]
        return flags + target_cflags(self.pid, self.cgroup_id, self.target_comm)

    def __enter__(self) -> CpuCollector:
        self._bpf = bcc_env.load(self.source, self.cflags())
        try:
            self._bpf[b"new_tasks"].open_perf_buffer(self._on_new_task, page_cnt=16,
                                                    lost_cb=self._on_lost_tasks)
            self.attach(self._bpf)
        except Exception:
            self._bpf.cleanup()
            self._bpf = None
            raise
        self.symbolizer.kernel_frames([])  # load /proc/kallsyms now, not in the first drain
        self._start_ms = _now_ms()
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_tasks, name="cpu-new-tasks",
                                        daemon=True)
        self._poller.start()
        return self

    def attach(self, bpf) -> None:
        """Attach the sampling program (probecount.py attaches probes instead)."""
        from bcc import PerfSWConfig, PerfType

        bpf.attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK,
                              fn_name=b"on_cpu_sample", sample_freq=self.frequency_hz)

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

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
        bpf = self._require()
        old = self._set
        now = _now_ms()
        self._set = bcc_env.flip_set(bpf, old)
        table = bpf[f"counts{old}".encode()]
        keys, values = self._drainer.drain(table.map_fd, self.counts_size, KEY.size)
        counts = [(*k, n) for k, n in zip(KEY.iter_unpack(keys), values, strict=True)]
        raw = RawInterval(old, self._start_ms, max(now - self._start_ms, 0), counts,
                          self._health_delta(old), wall_minus_mono_ns())
        self._start_ms = now
        return raw

    def _health_delta(self, set_index: int) -> dict[str, int]:
        """This set's counters since it was last drained (the kernel keeps totals)."""
        table = self._require()[b"health"]
        totals = self._health_totals[set_index]
        delta = {}
        for i, name in enumerate(KERNEL_HEALTH):
            total = int(table.sum(table.Key(set_index * len(KERNEL_HEALTH) + i)).value)
            delta[name] = max(total - totals[name], 0)
            totals[name] = total
        return delta

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
            delta = self.encode(raw, merged, unknown, keys)
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
              ) -> tuple[dict[tuple, dict[int, int]], int, int]:
        """(pid, comm, frames outermost first) -> {window: samples}, identical names
        merged; how many unknown frames the merged stacks hold; and how many
        distinct stack keys (pid, user id, kernel id, comm) the counts hold.

        The kernel key holds the slot, so a stack arrives once per slot it was
        sampled in: each stack key is named once, at its first entry, and its
        later entries only add to the windows of the merged stack it named.
        ``window`` maps monotonic slots to the message's (collectors/slots.py).
        """
        merged: dict[tuple, dict[int, int]] = {}
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
                comm = comms[comm_raw] = _comm(comm_raw)
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

    def encode(self, raw: RawInterval, merged: dict[tuple, dict[int, int]], unknown: int,
               keys: int) -> ProfileDelta:
        """The message: one stacks entry per merged stack, its windows beside it.
        ``keys`` is the number of distinct stack keys drained (health "stacks")."""
        index = _StringIndex()  # insertion-ordered: becomes the strings table
        lookup = index.__getitem__
        rows: list[list[int]] = []
        slot_rows: list[list[int]] = []
        append, append_slots = rows.append, slot_rows.append
        for (pid, comm, frames), per_window in merged.items():
            if len(per_window) == 1:  # the common case at 1 s intervals
                ((w, n),) = per_window.items()
                append_slots([w, n])
            else:
                pairs: list[int] = []
                for w in sorted(per_window):
                    pairs += (w, per_window[w])
                n = sum(per_window.values())
                append_slots(pairs)
            row = [pid, index[comm], n]
            row += map(lookup, frames)
            append(row)
        health = dict.fromkeys(HEALTH_KEYS, 0)
        health.update(raw.health)
        health["stacks"] = keys
        health["unknown_symbols"] = unknown
        self.seq += 1
        return ProfileDelta(host=self.host, kind=self.kind, seq=self.seq,
                            start_ms=raw.start_ms, interval_ms=raw.interval_ms,
                            frequency_hz=self.frequency_hz, strings=list(index),
                            stacks=rows, health=health, slot_ms=self.slot_ms,
                            slots=slot_rows)

    def _require(self):  # -> bcc.BPF
        if self._bpf is None:
            raise RuntimeError("CpuCollector is not running: use it as a context manager")
        return self._bpf


class _StringIndex(dict):
    """name -> index in the strings table; a missing name gets the next index.

    Subscripting a dict subclass that only adds ``__missing__`` stays a C
    call for names already present, which is nearly every frame.
    """

    def __missing__(self, name: str) -> int:
        index = self[name] = len(self)
        return index


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") or "[unknown]"


def _now_ms() -> int:
    return int(time.time() * 1000)

