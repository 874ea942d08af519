"""A trace target as ``-D`` constants for bpf/target.h (process, cgroup, task name).

Only numbers leave this module: the task name is packed into two u64
words, the cgroup is its id.  Nothing a user typed is ever C text.
:func:`comm_text` goes the other way, for names the kernel reports.
"""

from __future__ import annotations

import struct

COMM_BYTES = 16  # TASK_COMM_LEN: 15 characters and a NUL


def comm_words(comm: str) -> tuple[int, int]:
    """The 16 NUL-padded bytes bpf_get_current_comm() fills for ``comm``, as two
    little-endian u64; ValueError when the name cannot be a task name."""
    raw = comm.encode("utf-8")
    if not 0 < len(raw) < COMM_BYTES or b"\0" in raw:
        raise ValueError("a task name is 1 to 15 bytes")
    return struct.unpack("<QQ", raw.ljust(COMM_BYTES, b"\0"))


def comm_text(raw: bytes) -> str:
    """A task name as the kernel hands it over (NUL-padded bytes), "[unknown]" if empty."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") or "[unknown]"


def target_cflags(pid: int | None = None, cgroup_id: int | None = None,
                  comm: str | None = None) -> list[str]:
    """``-D`` flags selecting the target in bpf/target.h (none: everything)."""
    flags = []
    if pid is not None:
        flags.append(f"-DFILTER_TGID={int(pid)}")
    if cgroup_id is not None:
        flags.append(f"-DFILTER_CGROUP={int(cgroup_id)}ULL")
    if comm is not None:
        low, high = comm_words(comm)
        flags += [f"-DFILTER_COMM_LO={low}ULL", f"-DFILTER_COMM_HI={high}ULL"]
    return flags
