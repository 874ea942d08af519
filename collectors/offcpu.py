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

Sub-second time: the kernel counts blocked time per absolute CLOCK_MONOTONIC
window of ``slot_ms`` in which each block ended (the key's ``slot``).  The
drain maps those slots to the message's windows, numbered from the interval's
wall-clock ``start_ms``, names each stack key once, and sends one stacks
entry per merged stack with its microseconds per window in ``slots``.
"""

from __future__ import annotations

import ctypes as ct
import os
import struct
import time

from collectors.base import Loader
from collectors.delta import Merged, build_profile_delta
from collectors.maps import HashDrainer, StackReader, all_keys

# The handler webprof/cli.py names for this kind; the command is record.main.
from collectors.slots import slot_windows, wall_minus_mono_ns
from collectors.symbols import Symbolizer
from collectors.target import comm_text
from webprof.core.protocol import DEFAULT_SLOT_MS, HEALTH_KEYS, WAKER_SEPARATOR, ProfileDelta

KINDS = ("offcpu", "offwake")
# struct key_t: tgid, user id, kernel id, monotonic slot, comm (+ the waker's
# tgid, user id, kernel id, comm with OFFWAKE).
KEY = struct.Struct("<IiiI16s")
WAKE_KEY = struct.Struct("<IiiI16sIii16s")
START = struct.Struct("<QIIii16s")  # struct start_t: ts_ns, tgid, set, user, kernel, comm
WAKER = struct.Struct("<IIii16s")  # struct waker_t: tgid, set, user, kernel, comm
# Order of enum health_index in offcpu.bpf.c, mapped to protocol HEALTH_KEYS
# (None: kept for totals() only).
KERNEL_HEALTH = ("samples", "lost_user_stacks", "lost_kernel_stacks", "stack_map_full",
                 "counts_map_full", "start_map_full", "filtered", "lost_events", None)
PURGE_EVERY_S = 10.0  # how often start entries of vanished threads are purged
EXPIRE_EVERY_S = 10.0  # symbol snapshots of exited processes are kept 60 s anyway


class OffCpuCollector(Loader):
    """Loader for offcpu.bpf.c.  Entering compiles and attaches; leaving detaches."""

    kernel_health = KERNEL_HEALTH

    def __init__(self, kind: str = "offcpu", pid: int | None = None, comm: str | None = None,
                 min_block_us: int = 1, max_block_us: int | None = None,
                 user_threads_only: bool = True, interval_ms: int = 1000, *,
                 host: str | None = None, counts_size: int = 40960,
                 stack_storage_size: int = 16384, start_size: int = 65536,
                 cgroup_id: int | None = None, target_comm: str | None = None,
                 slot_ms: int = DEFAULT_SLOT_MS) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if not 1 <= slot_ms <= 1000:
            raise ValueError(f"slot_ms must be 1..1000, not {slot_ms}")
        if max_block_us is not None and max_block_us < min_block_us:
            raise ValueError("max_block_us is below min_block_us")
        # The target (pid, cgroup_id, target_comm) is tested in the kernel at
        # switch-out (bpf/target.h); ``comm`` is the live view's substring
        # filter, applied in user space.
        super().__init__(pid=pid, cgroup_id=cgroup_id, target_comm=target_comm,
                         interval_ms=interval_ms, host=host)
        self.kind = kind
        self.comm = comm
        self.min_block_us, self.max_block_us = min_block_us, max_block_us
        self.user_threads_only = user_threads_only
        self.counts_size, self.stack_storage_size = counts_size, stack_storage_size
        self.start_size = start_size
        self.slot_ms = slot_ms
        self.symbolizer = Symbolizer()
        self._key = WAKE_KEY if kind == "offwake" else KEY
        self._drainer = HashDrainer()
        self._last_purge = 0.0
        self._expired_at = 0.0
        self._known_tgids: set[int] = set()
        # Stack ids of late entries (see _take_late), freed at their set's drain.
        self._late_ids: list[set[int]] = [set(), set()]

    # -- lifecycle ----------------------------------------------------------
    def cflags(self) -> list[str]:
        flags = [f"-DCOUNTS_SIZE={int(self.counts_size)}",
                 f"-DSTACK_STORAGE_SIZE={int(self.stack_storage_size)}",
                 f"-DSTART_SIZE={int(self.start_size)}",
                 f"-DMIN_BLOCK_NS={int(self.min_block_us) * 1000}",
                 f"-DSLOT_NS={int(self.slot_ms) * 1_000_000}"]
        if self.max_block_us is not None:
            flags.append(f"-DMAX_BLOCK_NS={int(self.max_block_us) * 1000}")
        flags += super().cflags()
        if not self.user_threads_only:
            flags.append("-DALL_THREADS")
        if self.kind == "offwake":
            flags.append("-DOFFWAKE")
        return flags

    def started(self) -> None:
        self.symbolizer.kernel_frames([])  # load /proc/kallsyms now, not in the first drain

    # -- draining -----------------------------------------------------------
    def drain(self) -> ProfileDelta:
        """Blocked time since the previous drain, symbolized, as one protocol message."""
        flip_mono_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        old, start_ms, interval_ms = self._flip()
        wall_minus_mono = wall_minus_mono_ns()
        pending = self._pending_stack_ids(old)  # before the counts: see the BPF header
        table = self._require()[f"counts{old}".encode()]
        keys, values = self._drainer.drain(table.map_fd, self.counts_size, self._key.size)
        counts = list(zip(self._key.iter_unpack(keys), values, strict=True))
        late, late_stacks = self._take_late(self._set, flip_mono_ns)
        health = dict.fromkeys(HEALTH_KEYS, 0)
        health.update(self._health_delta(0))  # one set of counters, not one per map set
        groups = [(counts, self._take_stacks(old, counts, pending, health)),
                  (late, late_stacks)]
        window = slot_windows({key[3] for rows in (counts, late) for key, _ in rows},
                              start_ms, interval_ms, self.slot_ms, wall_minus_mono)
        merged, unknown, filtered, keys = self._merge(groups, window)
        health["filtered"] += filtered
        health["stacks"] = keys
        health["unknown_symbols"] = unknown
        self.seq += 1
        delta = build_profile_delta(merged, health, host=self.host, kind=self.kind,
                                    seq=self.seq, start_ms=start_ms, interval_ms=interval_ms,
                                    frequency_hz=0, slot_ms=self.slot_ms)
        mono = time.monotonic()
        if mono - self._expired_at >= EXPIRE_EVERY_S:  # stats /proc per stale pid
            self._expired_at = mono
            self.symbolizer.expire()
        return delta

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
        """Read the stacks ``counts`` name, then free every id no pending thread
        needs, with the ids of late entries taken from this set while it was active."""
        fd = self._require()[f"stacks{set_index}".encode()].map_fd
        reader = StackReader(fd)
        ids = {i for key, _ in counts for i in _stack_ids(key) if i >= 0}
        stacks = reader.read(ids)
        ids |= self._late_ids[set_index]
        self._late_ids[set_index] = set()
        if health["counts_map_full"] or health["stack_map_full"]:
            # Ids whose count was dropped have no key: sweep the whole set.
            ids = {struct.unpack("<I", k)[0] for k in all_keys(fd, 4)}
        reader.delete(ids - pending)
        return stacks

    def _take_late(self, set_index: int, flip_mono_ns: int
                   ) -> tuple[list[tuple[tuple, int]], dict[int, tuple[int, ...]]]:
        """Entries of the active set whose slot ended before the flip, and their stacks.

        They are blocks that began in this set before the previous drain and
        ended while the other set was active (see the BPF header): taken now,
        they land in the interval they ended in instead of one interval late.
        No program writes a slot that has ended, so lookup then delete cannot
        race; the stack ids stay (new blocks may share them) and are freed at
        this set's own drain.
        """
        from bcc.libbcc import lib

        bpf = self._require()
        fd = bpf[f"counts{set_index}".encode()].map_fd
        flip_slot = (flip_mono_ns // (self.slot_ms * 1_000_000)) & 0xFFFFFFFF
        value = ct.c_uint64()
        late = []
        for raw in set(all_keys(fd, self._key.size)):
            key = self._key.unpack(raw)
            if not 0 < (flip_slot - key[3]) & 0xFFFFFFFF < 1 << 31:  # u32 slots wrap
                continue
            buf = ct.create_string_buffer(raw, len(raw))
            if lib.bpf_lookup_elem(fd, buf, ct.byref(value)) == 0 and value.value:
                late.append((key, value.value))
            lib.bpf_delete_elem(fd, buf)
        ids = {i for key, _ in late for i in _stack_ids(key) if i >= 0}
        self._late_ids[set_index] |= ids
        stacks = StackReader(bpf[f"stacks{set_index}".encode()].map_fd).read(ids)
        return late, stacks

    def totals(self) -> dict[str, int]:
        """Kernel running totals since load, including every sched_switch seen."""
        table = self._require()[b"health"]
        names = [n or "switches" for n in KERNEL_HEALTH]
        return {n: int(table.sum(table.Key(i)).value) for i, n in enumerate(names)}

    def _merge(self, groups: list[tuple[list, dict[int, tuple[int, ...]]]],
               window: dict[int, int]) -> tuple[Merged, int, int, int]:
        """(pid, comm, frames) -> {window: us}, identical names merged; unknown
        frames; stack keys dropped by the comm filter; stack keys drained.

        ``groups`` pairs counts with the stacks their ids name (the drained set,
        and the late entries of the active one).  The kernel key holds the slot,
        so a stack arrives once per window it stopped blocking in: each stack
        key (the kernel key without its slot) is named once per group.
        """
        merged: Merged = {}
        unknown = filtered = keys = 0
        for counts, stacks in groups:
            resolved: dict[tuple, dict[int, int] | None] = {}  # None: filtered by comm
            for key, us in counts:
                stack_key = key[:3] + key[4:]
                if stack_key not in resolved:
                    named = self._name(key, stacks)
                    per_window = None if named is None else merged.get(named[0])
                    if named is None:
                        filtered += 1
                    elif per_window is None:
                        per_window = merged[named[0]] = {}
                        unknown += named[1]
                    resolved[stack_key] = per_window
                per_window = resolved[stack_key]
                if per_window is not None and us > 0:
                    w = window[key[3]]
                    per_window[w] = per_window.get(w, 0) + us
            keys += len(resolved)
        # A stack whose entries were all 0 us (min_block_us=0) is not sent.
        return {k: v for k, v in merged.items() if v}, unknown, filtered, keys

    def _name(self, key: tuple, stacks: dict[int, tuple[int, ...]]) -> tuple[tuple, int] | None:
        """((pid, comm, frames), unknown frames) of one kernel key; None when the
        comm filter drops it."""
        comm = comm_text(key[4])
        if self.comm is not None and self.comm not in comm:
            return None
        frames = self._frames(key[0], key[1], key[2], stacks)
        if self.kind == "offwake":
            waker = self._frames(key[5], key[6], key[7], stacks)
            waker.reverse()  # innermost first: the waker sits above the blocked stack
            if waker or key[8][:1] != b"\0":  # no waker seen (e.g. preempted): none
                frames += [WAKER_SEPARATOR, *waker, comm_text(key[8])]
        unknown = sum(1 for f in frames if f.startswith("[unknown]"))
        return (key[0], comm, tuple(frames)), unknown

    def _frames(self, tgid: int, user_id: int, kernel_id: int,
                stacks: dict[int, tuple[int, ...]]) -> list[str]:
        """User then kernel frames, outermost first (traces come innermost first)."""
        frames = self.symbolizer.user_frames(tgid, stacks[user_id]) if user_id in stacks else []
        frames.reverse()
        if kernel_id in stacks:
            frames += reversed(self.symbolizer.kernel_frames(stacks[kernel_id]))
        return frames


def _stack_ids(key: tuple) -> tuple[int, ...]:
    return (key[1], key[2], key[6], key[7]) if len(key) > 5 else (key[1], key[2])


def _read_hash(table, value: struct.Struct):
    """(u32 key, unpacked value) of every entry, without bcc's per-entry objects."""
    from bcc.libbcc import lib

    buf = ct.create_string_buffer(value.size)
    key = ct.c_uint32()
    for raw in all_keys(table.map_fd, 4):
        key.value = struct.unpack("<I", raw)[0]
        if lib.bpf_lookup_elem(table.map_fd, ct.byref(key), buf) == 0:
            yield key.value, value.unpack(buf.raw)
