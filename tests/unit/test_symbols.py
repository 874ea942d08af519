"""Pure parts of the symbolizer: kallsyms parsing and lookup, maps parsing, ELF
symbol tables, privilege explanations.  No root, no bcc."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from collectors.bcc_env import CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, check_privileges
from collectors.elf import ElfError, ElfSymbols
from collectors.symbols import KernelSymbols, Symbolizer, parse_maps

pytestmark = pytest.mark.unit

KALLSYMS = """\
ffffffff81000000 T _text
ffffffff81000000 T startup_64
ffffffff81000100 t secondary_startup_64
ffffffff81001000 T do_syscall_64
ffffffff81002000 D some_data
ffffffff81003000 W weak_fn
ffffffffc0000000 t ext4_read [ext4]
garbage line
"""


def test_kallsyms_keeps_text_symbols_sorted() -> None:
    k = KernelSymbols.from_text(KALLSYMS)
    assert k.addrs == sorted(k.addrs)
    assert "some_data" not in k.names
    assert k.names[0] == "_text"  # first name at an address wins


@pytest.mark.parametrize(("addr", "name"), [
    (0xFFFFFFFF81000000, "_text"),
    (0xFFFFFFFF810000FF, "_text"),
    (0xFFFFFFFF81000100, "secondary_startup_64"),
    (0xFFFFFFFF81001ABC, "do_syscall_64"),
    (0xFFFFFFFF81002500, "do_syscall_64"),  # data symbols are skipped
    (0xFFFFFFFF81003001, "weak_fn"),
    (0xFFFFFFFFC0000010, "ext4_read"),
    (0xFFFFFFFF80000000, None),  # below the first symbol
])
def test_kallsyms_bisect(addr: int, name: str | None) -> None:
    assert KernelSymbols.from_text(KALLSYMS).name(addr) == name


def test_kallsyms_with_hidden_addresses_is_empty() -> None:
    hidden = "0000000000000000 T _text\n0000000000000000 T do_syscall_64\n"
    assert KernelSymbols.from_text(hidden).name(0x1234) is None


def test_kernel_frames_are_suffixed(tmp_path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    sym = Symbolizer(kallsyms=str(path))
    assert sym.kernel_frames([0xFFFFFFFF81001000, 1]) == ["do_syscall_64_[k]", "[unknown]_[k]"]


def test_parse_maps_keeps_executable_mappings() -> None:
    text = (
        "55d0c0000000-55d0c0001000 r--p 00000000 08:01 123 /usr/bin/prog\n"
        "55d0c0001000-55d0c0005000 r-xp 00001000 08:01 123 /usr/bin/prog\n"
        "7f0000000000-7f0000001000 r-xp 00000000 00:00 0 \n"
        "7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0 [vdso]\n"
        "7f1000000000-7f1000100000 r-xp 00028000 08:01 9 /lib/a b.so (deleted)\n"
    )
    maps = parse_maps(text)
    assert [(m.start, m.offset, m.path) for m in maps] == [
        (0x55D0C0001000, 0x1000, "/usr/bin/prog"),
        (0x7F0000000000, 0, ""),
        (0x7F1000000000, 0x28000, "/lib/a b.so (deleted)"),
        (0x7FFC00000000, 0, "[vdso]"),
    ]


def test_elf_rejects_non_elf(tmp_path) -> None:
    path = tmp_path / "not-elf"
    path.write_bytes(b"#!/bin/sh\n" + b"\0" * 100)
    with pytest.raises(ElfError):
        ElfSymbols.from_path(str(path))


def test_user_address_of_a_libc_function_resolves() -> None:
    """The live path: this process's maps + libc's symbol table on disk."""
    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    sym = Symbolizer()
    (name,) = sym.user_frames(os.getpid(), [addr + 1])
    assert name in ("getpid", "__getpid"), name
    assert sym.user_frames(os.getpid(), [8]) == ["[unknown]"]  # unmapped page


def test_exited_process_uses_its_snapshot() -> None:
    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    sym = Symbolizer(proc="/proc")
    sym.note_process(os.getpid())
    gen = sym.generation(os.getpid())
    sym._proc = "/nonexistent"  # as if /proc/PID had vanished after the snapshot
    assert sym.user_frames(os.getpid(), [addr])[0] in ("getpid", "__getpid")
    assert sym.generation(os.getpid()) == gen


@pytest.mark.parametrize(("euid", "caps", "missing"), [
    (0, 0, None),
    (1000, 1 << CAP_SYS_ADMIN, None),
    (1000, (1 << CAP_BPF) | (1 << CAP_PERFMON), None),
    (1000, 1 << CAP_BPF, "CAP_PERFMON"),
    (1000, 0, "CAP_BPF and CAP_PERFMON"),
])
def test_check_privileges_explains(euid: int, caps: int, missing: str | None) -> None:
    problem = check_privileges(euid=euid, caps=caps)
    if missing is None:
        assert problem is None
    else:
        assert f"missing {missing}:" in problem and "run as root" in problem


def test_interpreter_binary_parses() -> None:
    elf = ElfSymbols.from_path(os.path.realpath(sys.executable))
    assert elf.segments and elf.starts == sorted(elf.starts)
