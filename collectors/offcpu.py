"""Off-CPU and off-wake time per stack: loads bpf/offcpu.bpf.c, drains ProfileDelta.

Usage::

    with OffCpuCollector(kind="offwake", pid=1234) as off:
        while running:
            time.sleep(1)
            delta = off.drain()   # weights in microseconds blocked

Kind "offcpu" keys blocked time by (process, user stack, kernel stack);
"offwake" (the same program built with -DOFFWAKE) adds the waker's stacks.
See the header of bpf/offcpu.bpf.c for why the drain reads the pending
``start`` entries before it frees any stack id.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import socket
import struct
import sys
import time
from pathlib import Path

from collectors import bcc_env, record
from collectors.maps import (
    BatchUnsupported,
    StackReader,
    all_keys,
    drain_hash_batch,
    drain_hash_slow,
)
from collectors.symbols import Symbolizer
from collectors.target import target_cflags
from webprof.core.protocol import HEALTH_KEYS, WAKER_SEPARATOR, ProfileDelta

BPF_SOURCE = Path(__file__).resolve().parent.parent / "bpf" / "offcpu.bpf.c"
KINDS = ("offcpu", "offwake")
KEY = struct.Struct("<Iii16s")  # struct key_t without OFFWAKE
WAKE_KEY = struct.Struct("<Iii16sIii16s")  # struct key_t with OFFWAKE
START = struct.Struct("<QIIii16s")  # struct start_t: ts_ns, tgid, set, user, kernel, comm
WAKER = struct.Struct("<IIii16s")  # struct waker_t: tgid, set, user, kernel, comm
# Order of enum health_index in offcpu.bpf.c, mapped to protocol HEALTH_KEYS
# (None: kept for totals() only).
KERNEL_HEALTH = ("samples", "lost_user_stacks", "lost_kernel_stacks", "stack_map_full",
                 "counts_map_full", "start_map_full", "filtered", "lost_events", None)
PURGE_EVERY_S = 10.0  # how often start entries of vanished threads are purged


class OffCpuCollector:
    """Loader for offcpu.bpf.c.  Entering compiles and attaches; leaving detaches."""

    def __init__(self, kind: str = "offcpu", pid: int | None = None, comm: str | None = None,
                 min_block_us: int = 1, max_block_us: int | None = None,
                 user_threads_only: bool = True, interval_ms: int = 1000, *,
                 host: str | None = None, counts_size: int = 40960,
                 stack_storage_size: int = 16384, start_size: int = 65536,
                 cgroup_id: int | None = None, target_comm: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if max_block_us is not None and max_block_us < min_block_us:
            raise ValueError("max_block_us is below min_block_us")
        self.kind = kind
        self.pid, self.comm = pid, comm
        # Targeted traces: cgroup v2 id and exact task name, tested in the
        # kernel at switch-out (bpf/target.h); ``comm`` above is the live
        # view's substring filter, applied in user space.
        self.cgroup_id, self.target_comm = cgroup_id, target_comm
        self.min_block_us, self.max_block_us = min_block_us, max_block_us
        self.user_threads_only = user_threads_only
        self.interval_ms = interval_ms
        self.host = host or socket.gethostname()
        self.counts_size, self.stack_storage_size = counts_size, stack_storage_size
        self.start_size = start_size
        self.symbolizer = Symbolizer()
        self.seq = 0
        self._key = WAKE_KEY if kind == "offwake" else KEY
        self._bpf = None
        self._set = 0
        self._totals = [0] * len(KERNEL_HEALTH)
        self._start_ms = 0
        self._batch_ok = True
        self._last_purge = 0.0
        self._known_tgids: set[int] = set()

    # -- lifecycle ----------------------------------------------------------
    def cflags(self) -> list[str]:
        flags = [f"-DCOUNTS_SIZE={int(self.counts_size)}",
                 f"-DSTACK_STORAGE_SIZE={int(self.stack_storage_size)}",
                 f"-DSTART_SIZE={int(self.start_size)}",
                 f"-DMIN_BLOCK_NS={int(self.min_block_us) * 1000}"]
        if self.max_block_us is not None:
            flags.append(f"-DMAX_BLOCK_NS={int(self.max_block_us) * 1000}")
        flags += target_cflags(self.pid, self.cgroup_id, self.target_comm)
        if not self.user_threads_only:
            flags.append("-DALL_THREADS")
        if self.kind == "offwake":
            flags.append("-DOFFWAKE")
        return flags

    def __enter__(self) -> OffCpuCollector:
        self._bpf = bcc_env.load(BPF_SOURCE, self.cflags())
        self.symbolizer.kernel_frames([])  # load /proc/kallsyms now, not in the first drain
        self._start_ms = _now_ms()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def _require(self):  # -> bcc.BPF
        if self._bpf is None:
            raise RuntimeError("OffCpuCollector is not running: use it as a context manager")
        return self._bpf

    # -- draining -----------------------------------------------------------
    def drain(self) -> ProfileDelta:
        """Blocked time since the previous drain, symbolized, as one protocol message."""
        bpf = self._require()
        old = self._set
        now = _now_ms()
        self._set = bcc_env.flip_set(bpf, old)
        pending = self._pending_stack_ids(old)  # before the counts: see the BPF header
        table = bpf[f"counts{old}".encode()]
        counts = [(self._key.unpack(k), us) for k, us in self._take_counts(table)]
        health = self._health_delta()
        stacks = self._take_stacks(old, counts, pending, health)
        rows, unknown, filtered = self._merge(counts, stacks)
        health["filtered"] += filtered
        health["stacks"] = len(counts)
        health["unknown_symbols"] = unknown
        self.seq += 1
        delta = _encode(self, rows, health, now)
        self._start_ms = now
        self.symbolizer.expire()
        return delta

    def _take_counts(self, table) -> list[tuple[bytes, int]]:
        if self._batch_ok:
            try:
                return drain_hash_batch(table.map_fd, self.counts_size, self._key.size)
            except BatchUnsupported:
                self._batch_ok = False
        return drain_hash_slow(table.map_fd, self._key.size)

    def _pending_stack_ids(self, set_index: int) -> set[int]:
        """Stack ids of ``set_index`` that threads still off CPU will count later.

        Also snapshots the maps of processes seen blocking for the first time
        (they may exit before their block is drained) and purges start entries
        of threads that no longer exist (their last switch-out was missed).
        """
        bpf = self._require()
        ids: set[int] = set()
        purge = time.monotonic() - self._last_purge > PURGE_EVERY_S
        start = bpf[b"start"]
        for tid, (_ts, tgid, set_, user, kernel, _c) in _read_hash(start, START):
            if set_ == set_index:
                ids.update((user, kernel))
            if tgid not in self._known_tgids and len(self._known_tgids) < 100_000:
                self._known_tgids.add(tgid)
                self.symbolizer.generation(tgid)
            if purge and not os.path.exists(f"/proc/{tid}"):
                del start[start.Key(tid)]
        if self.kind == "offwake":
            for _tid, (_tgid, set_, user, kernel, _c) in _read_hash(bpf[b"wakers"], WAKER):
                if set_ == set_index:
                    ids.update((user, kernel))
        if purge:
            self._last_purge = time.monotonic()
        return {i for i in ids if i >= 0}

    def _take_stacks(self, set_index: int, counts: list, pending: set[int],
                     health: dict[str, int]) -> dict[int, tuple[int, ...]]:
        """Read the stacks ``counts`` name, then free every id no pending thread needs."""
        fd = self._require()[f"stacks{set_index}".encode()].map_fd
        reader = StackReader(fd)
        ids = {i for key, _ in counts for i in _stack_ids(key) if i >= 0}
        stacks = reader.read(ids)
        if health["counts_map_full"] or health["stack_map_full"]:
            # Ids whose count was dropped have no key: sweep the whole set.
            ids = {struct.unpack("<I", k)[0] for k in all_keys(fd, 4)}
        reader.delete(ids - pending)
        return stacks

    def _health_delta(self) -> dict[str, int]:
        table = self._require()[b"health"]
        delta = dict.fromkeys(HEALTH_KEYS, 0)
        for i, name in enumerate(KERNEL_HEALTH):
            total = int(table.sum(table.Key(i)).value)
            if name is not None:
                delta[name] += max(total - self._totals[i], 0)
            self._totals[i] = total
        return delta

    def totals(self) -> dict[str, int]:
        """Kernel running totals since load, including every sched_switch seen."""
        table = self._require()[b"health"]
        names = [n or "switches" for n in KERNEL_HEALTH]
        return {n: int(table.sum(table.Key(i)).value) for i, n in enumerate(names)}

    def _merge(self, counts: list, stacks: dict[int, tuple[int, ...]]):
        """(pid, comm, frames) -> us, identical names merged; unknown frames; keys
        dropped by the comm filter."""
        merged: dict[tuple, int] = {}
        unknown = filtered = 0
        for key, us in counts:
            comm = _comm(key[3])
            if self.comm is not None and self.comm not in comm:
                filtered += 1
                continue
            if us <= 0:
                continue
            frames = self._frames(key[0], key[1], key[2], stacks)
            if self.kind == "offwake":
                waker = self._frames(key[4], key[5], key[6], stacks)
                waker.reverse()  # innermost first: the waker sits above the blocked stack
                if waker or key[7][:1] != b"\0":  # no waker seen (e.g. preempted): none
                    frames += [WAKER_SEPARATOR, *waker, _comm(key[7])]
            unknown += sum(1 for f in frames if f.startswith("[unknown]"))
            k = (key[0], comm, tuple(frames))
            merged[k] = merged.get(k, 0) + us
        return merged, unknown, filtered

    def _frames(self, tgid: int, user_id: int, kernel_id: int,
                stacks: dict[int, tuple[int, ...]]) -> list[str]:
        """User then kernel frames, outermost first (traces come innermost first)."""
        frames = self.symbolizer.user_frames(tgid, stacks[user_id]) if user_id in stacks else []
        frames.reverse()
        if kernel_id in stacks:
            frames += reversed(self.symbolizer.kernel_frames(stacks[kernel_id]))
        return frames


def _stack_ids(key: tuple) -> tuple[int, ...]:
    return (key[1], key[2], key[5], key[6]) if len(key) > 4 else (key[1], key[2])


def _read_hash(table, value: struct.Struct):
    """(u32 key, unpacked value) of every entry, without bcc's per-entry objects."""
    from bcc.libbcc import lib

    buf = ct.create_string_buffer(value.size)
    key = ct.c_uint32()
    for raw in all_keys(table.map_fd, 4):
        key.value = struct.unpack("<I", raw)[0]
        if lib.bpf_lookup_elem(table.map_fd, ct.byref(key), buf) == 0:
            yield key.value, value.unpack(buf.raw)


def _encode(collector: OffCpuCollector, merged: dict[tuple, int], health: dict[str, int],
            now_ms: int) -> ProfileDelta:
    index: dict[str, int] = {}
    rows = []
    for (pid, comm, frames), us in merged.items():
        row = [pid, index.setdefault(comm, len(index)), us]
        row += [index.setdefault(f, len(index)) for f in frames]
        rows.append(row)
    return ProfileDelta(host=collector.host, kind=collector.kind, seq=collector.seq,
                        start_ms=collector._start_ms,
                        interval_ms=max(now_ms - collector._start_ms, 0), frequency_hz=0,
                        strings=list(index), stacks=rows, health=health)


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") or "[unknown]"


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- webprof record offcpu|offwake ---------------------------------------------
def record_main(args: argparse.Namespace) -> int:
    """``webprof record offcpu|offwake``: folded stacks in microseconds."""
    code = record.preflight(args.pid)
    if code is not None:
        return code
    try:
        collector = OffCpuCollector(kind=args.kind, pid=args.pid, min_block_us=args.min_block_us,
                                    max_block_us=args.max_block_us,
                                    user_threads_only=not args.all_threads)
    except ValueError as exc:
        print(f"webprof record: {exc}", file=sys.stderr)
        return 1
    folded = record.FoldedStacks()
    code = record.run(collector, args.duration, args.pid, record.keeping(args, folded.add))
    if code is not None:
        return code
    record.finish(folded.text(), args.output,
                  f"{len(folded.counts)} stacks, values in microseconds", folded.health,
                  "nothing blocked")
    return 0
