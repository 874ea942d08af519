"""Addresses to function names, for kernel and user stacks.

Kernel: /proc/kallsyms is read once per interpreter (about 200,000 lines),
kept sorted and searched with bisect; names get the suffix ``_[k]``.

User: each process's executable mappings are snapshotted from
/proc/PID/maps and the symbol tables are read from the mapped files on disk
(:mod:`collectors.elf`).  Because the files outlive the process, a process
that exits before the drain still gets names as long as its maps were
snapshotted while it ran: the CPU collector asks for a snapshot as soon as
the kernel announces a new (pid, comm).  Results are cached per process and
address; snapshots of processes that are gone are dropped after a grace
period.  A pid whose maps change (exec, dlopen) gets a new ``generation``
so callers caching whole stacks can tell.
"""

from __future__ import annotations

import bisect
import functools
import os
import struct
import threading
import time
from dataclasses import dataclass, field

from collectors.elf import ElfError, ElfSymbols

UNKNOWN = "[unknown]"
KERNEL_SUFFIX = "_[k]"
_TEXT_TYPES = frozenset("tTwW")


class KernelSymbols:
    """Kernel text symbols sorted by address."""

    def __init__(self, addrs: list[int], names: list[str]) -> None:
        self.addrs = addrs
        self.names = names

    @classmethod
    def from_text(cls, text: str) -> KernelSymbols:
        """Parse kallsyms lines ``ADDR TYPE NAME [MODULE]``; keep text symbols.

        With kptr_restrict every address reads as zero; such a table is empty
        and every kernel frame stays unknown.
        """
        pairs: dict[int, str] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] not in _TEXT_TYPES:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            if addr:
                pairs.setdefault(addr, parts[2])
        addrs = sorted(pairs)
        return cls(addrs, [pairs[a] for a in addrs])

    def name(self, addr: int) -> str | None:
        """Nearest symbol at or below ``addr`` (kallsyms carries no sizes)."""
        i = bisect.bisect_right(self.addrs, addr) - 1
        return self.names[i] if i >= 0 else None


@functools.cache
def kernel_symbols(path: str = "/proc/kallsyms") -> KernelSymbols:
    try:
        with open(path) as f:
            return KernelSymbols.from_text(f.read())
    except OSError:
        return KernelSymbols([], [])


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int  # file offset mapped at ``start``
    path: str


def parse_maps(text: str) -> tuple[Mapping, ...]:
    """Executable mappings from /proc/PID/maps text, sorted by start address."""
    result = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or "x" not in parts[1]:
            continue
        start, _, end = parts[0].partition("-")
        path = parts[5].strip() if len(parts) == 6 else ""
        result.append(Mapping(int(start, 16), int(end, 16), int(parts[2], 16), path))
    return tuple(sorted(result, key=lambda m: m.start))


@dataclass
class _Process:
    maps: tuple[Mapping, ...]
    generation: int
    last_used: float
    starts: list[int] = field(init=False)
    cache: dict[int, str] = field(default_factory=dict)
    elves: dict[str, ElfSymbols | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.starts = [m.start for m in self.maps]

    def mapping(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.maps[i].end:
            return self.maps[i]
        return None


class Symbolizer:
    """Resolve stacks of any process; safe to feed snapshots from another thread."""

    def __init__(self, proc: str = "/proc", kallsyms: str = "/proc/kallsyms",
                 grace_s: float = 60.0) -> None:
        self._proc = proc
        self._kallsyms = kallsyms
        self._grace_s = grace_s
        self._processes: dict[int, _Process] = {}
        self._elf_cache: dict[tuple, ElfSymbols | None] = {}
        self._lock = threading.Lock()
        self._generations = 0

    # -- kernel -----------------------------------------------------------
    def kernel_frames(self, addrs: tuple[int, ...] | list[int]) -> list[str]:
        """Names for kernel addresses, innermost first as given, suffixed ``_[k]``."""
        ksyms = kernel_symbols(self._kallsyms)
        return [(ksyms.name(a) or "[unknown]") + KERNEL_SUFFIX for a in addrs]

    # -- processes --------------------------------------------------------
    def note_process(self, pid: int) -> None:
        """Snapshot ``pid``'s mappings now, while it is alive (called on new tasks)."""
        maps = self._read_maps(pid)
        if maps is None:
            return
        with self._lock:
            old = self._processes.get(pid)
            if old is not None and old.maps == maps:
                old.last_used = time.monotonic()
                return
            self._generations += 1
            self._processes[pid] = _Process(maps, self._generations, time.monotonic())

    def generation(self, pid: int) -> int:
        """Identity of the snapshot used for ``pid`` (0: none yet; taken on demand)."""
        proc = self._process(pid)
        return proc.generation if proc else 0

    def expire(self) -> int:
        """Drop snapshots unused for the grace period whose process is gone."""
        limit = time.monotonic() - self._grace_s
        with self._lock:
            stale = [pid for pid, p in self._processes.items()
                     if p.last_used < limit and not os.path.exists(f"{self._proc}/{pid}")]
            for pid in stale:
                del self._processes[pid]
            if len(self._elf_cache) > 1024:
                self._elf_cache.clear()
        return len(stale)

    # -- user -------------------------------------------------------------
    def user_frames(self, pid: int, addrs: tuple[int, ...] | list[int]) -> list[str]:
        """Names for one process's user addresses (order kept)."""
        proc = self._process(pid)
        if proc is None:
            return [UNKNOWN] * len(addrs)
        proc.last_used = time.monotonic()
        cache = proc.cache
        out = []
        for addr in addrs:
            name = cache.get(addr)
            if name is None:
                name = cache[addr] = self._resolve(pid, proc, addr)
            out.append(name)
        return out

    def _process(self, pid: int) -> _Process | None:
        proc = self._processes.get(pid)
        if proc is None:
            self.note_process(pid)
            proc = self._processes.get(pid)
        return proc

    def _read_maps(self, pid: int) -> tuple[Mapping, ...] | None:
        try:
            with open(f"{self._proc}/{pid}/maps") as f:
                return parse_maps(f.read())
        except (OSError, ValueError):
            return None

    def _resolve(self, pid: int, proc: _Process, addr: int) -> str:
        m = proc.mapping(addr)
        if m is None:
            return UNKNOWN
        if m.path.startswith("[") and m.path.endswith("]"):
            return m.path  # [vdso], [vsyscall]: no file to read
        if not m.path.startswith("/") or m.path.endswith(" (deleted)"):
            return UNKNOWN
        elf = proc.elves.get(m.path)
        if elf is None and m.path not in proc.elves:
            elf = proc.elves[m.path] = self._elf(pid, m.path)
        if elf is None:
            return UNKNOWN
        return elf.name_at_offset(addr - m.start + m.offset) or UNKNOWN

    def _elf(self, pid: int, path: str) -> ElfSymbols | None:
        """The symbol table of ``path`` as seen by ``pid``, shared by file identity."""
        # While the process lives, its root may be a container's; after exit
        # the host path is the best guess left.
        for candidate in (f"{self._proc}/{pid}/root{path}", path):
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key not in self._elf_cache:
                try:
                    self._elf_cache[key] = ElfSymbols.from_path(candidate)
                except (OSError, ElfError, ValueError, IndexError):
                    self._elf_cache[key] = None
            return self._elf_cache[key]
        return None


class ProcessStacks:
    """Names of one process snapshot's raw user stacks, cached across intervals.

    A sampled stack is the interrupted instruction, which varies from sample
    to sample inside a hot loop, followed by return addresses, which repeat
    as long as the call path does.  So besides whole stacks seen before
    (``seen``: one dict lookup), the callers are cached as one entry keyed by
    their raw bytes and the leaf per address: a known path reached at a new
    instruction costs two lookups instead of one symbolization per frame.
    """

    def __init__(self, symbolizer: Symbolizer, pid: int, generation: int) -> None:
        self.symbolizer = symbolizer
        self.pid = pid
        self.generation = generation
        self.seen: dict[bytes, tuple[tuple[str, ...], int]] = {}
        self.callers: dict[bytes, tuple[tuple[str, ...], int]] = {}
        self.leaves: dict[bytes, str] = {}

    def frames(self, stack: bytes) -> tuple[tuple[str, ...], int]:
        """(names outermost first, how many are unknown) for a trace from
        ``StackReader.read_raw`` (innermost first)."""
        entry = self.seen.get(stack)
        if entry is not None:
            return entry
        if not stack:
            return (), 0
        tail = stack[8:]
        callers = self.callers.get(tail)
        if callers is None:
            names = self.symbolizer.user_frames(self.pid, _unpack(tail))
            names.reverse()
            callers = self.callers[tail] = (tuple(names), _count_unknown(names))
        head = stack[:8]
        leaf = self.leaves.get(head)
        if leaf is None:
            leaf = self.leaves[head] = self.symbolizer.user_frames(
                self.pid, _unpack(head))[0]
        unknown = callers[1] + 1 if leaf.startswith(UNKNOWN) else callers[1]
        entry = self.seen[stack] = (callers[0] + (leaf,), unknown)
        return entry

    def __len__(self) -> int:
        return len(self.seen) + len(self.callers) + len(self.leaves)


class StackNames:
    """Whole-stack name caches over a :class:`Symbolizer`, bounded in entries."""

    def __init__(self, symbolizer: Symbolizer, max_entries: int = 200_000) -> None:
        self.symbolizer = symbolizer
        self.max_entries = max_entries
        self._processes: dict[int, ProcessStacks] = {}
        self._kernel: dict[bytes, tuple[tuple[str, ...], int]] = {}

    def process(self, pid: int) -> ProcessStacks:
        """The cache for ``pid``'s current snapshot (a new one after exec or dlopen)."""
        generation = self.symbolizer.generation(pid)
        cache = self._processes.get(pid)
        if cache is None or cache.generation != generation:
            cache = self._processes[pid] = ProcessStacks(self.symbolizer, pid, generation)
        return cache

    def kernel(self, stack: bytes) -> tuple[tuple[str, ...], int]:
        """(names outermost first, how many are unknown) for a raw kernel trace."""
        entry = self._kernel.get(stack)
        if entry is None:
            names = self.symbolizer.kernel_frames(_unpack(stack))
            names.reverse()
            entry = self._kernel[stack] = (tuple(names), _count_unknown(names))
        return entry

    def trim(self) -> None:
        """Forget everything once the caches outgrow ``max_entries`` (churning pids)."""
        size = len(self._kernel) + sum(len(p) for p in self._processes.values())
        if size > self.max_entries:
            self._processes.clear()
            self._kernel.clear()


def _count_unknown(names: list[str]) -> int:
    return sum(1 for name in names if name.startswith(UNKNOWN))


def _unpack(raw: bytes) -> tuple[int, ...]:
    """Little-endian u64 addresses, as in a raw BPF stack trace."""
    return struct.unpack(f"<{len(raw) // 8}Q", raw)
