"""System call number -> name for the running architecture.

raw_syscalls tracepoints report numbers only.  The names come from the
architecture's UAPI unistd header (``#define __NR_read 0``), parsed at run
time so the table always matches the machine's own headers; numbers with no
name (a newer kernel than the headers, or no headers installed) are shown as
``syscall_N``.
"""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

# Per machine (platform.machine()): headers to try, first found wins.
HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
               "/usr/include/asm/unistd_64.h"),
    "aarch64": ("/usr/include/asm-generic/unistd.h",
                "/usr/include/aarch64-linux-gnu/asm/unistd.h"),
    "riscv64": ("/usr/include/asm-generic/unistd.h",),
    "i686": ("/usr/include/i386-linux-gnu/asm/unistd_32.h", "/usr/include/asm/unistd_32.h"),
}
_DEFINE = re.compile(r"^#define\s+(__NR(?:3264)?_\w+)\s+(.+?)\s*$", re.MULTILINE)
_ARITH = re.compile(r"^\(?\s*(\w+)\s*\+\s*(\d+)\s*\)?$")


def parse_unistd(text: str) -> dict[int, str]:
    """Number -> name from a unistd header's ``#define __NR_name value`` lines.

    Values may be numbers, other ``__NR`` names (asm-generic spells
    ``#define __NR_fcntl __NR3264_fcntl``) or ``(__NR_base + n)``; anything
    else is skipped.
    """
    raw = dict(_DEFINE.findall(text))  # macro -> value text

    def resolve(value: str, depth: int = 0) -> int | None:
        if depth > 8:
            return None
        if value.isdigit():
            return int(value)
        match = _ARITH.match(value)
        if match:
            base = resolve(match.group(1), depth + 1)
            return None if base is None else base + int(match.group(2))
        if value in raw:
            return resolve(raw[value], depth + 1)
        return None

    numbers = {macro[len("__NR_"):]: resolve(value) for macro, value in raw.items()
               if macro.startswith("__NR_")}
    table: dict[int, str] = {}
    for name, number in numbers.items():
        if number is None or name.startswith("syscalls") or name == "arch_specific_syscall":
            continue  # counts and ranges, not calls
        table.setdefault(number, name)
    return table


@functools.cache
def table(machine: str | None = None) -> dict[int, str]:
    """This machine's table; empty when no header is installed."""
    for path in HEADERS.get(machine or platform.machine(), ()):
        try:
            return parse_unistd(Path(path).read_text())
        except OSError:
            continue
    return {}


def name(number: int) -> str:
    """The system call's name, or ``syscall_N`` when unknown."""
    return table().get(number) or f"syscall_{number}"


def number(call: str) -> int | None:
    """The number of a named system call on this machine, if known."""
    for nr, known in table().items():
        if known == call:
            return nr
    return None
