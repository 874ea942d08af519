"""USDT note parsing (collectors/usdt.py), ELF sections and notes (collectors/elf.py)
and the packing of a task name for bpf/target.h (collectors/target.py)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from collectors import usdt
from collectors.elf import ElfError, ElfSections, read_elf
from collectors.target import comm_words, target_cflags

WORKLOADS = Path(__file__).resolve().parents[1] / "bpf" / "workloads"


def note(pc: int, base: int, semaphore: int, provider: bytes, name: bytes) -> bytes:
    return struct.pack("<QQQ", pc, base, semaphore) + provider + b"\0" + name + b"\0-4@%eax\0"


def test_note_without_prelink_keeps_pc() -> None:
    probe = usdt.parse_note(note(0x1266, 0x2078, 0, b"app", b"tick"), base_now=0x2078)
    assert probe.label == "app:tick" and probe.address == 0x1266 and probe.semaphore == 0


def test_prelinked_note_moves_by_the_base_distance() -> None:
    # .stapsdt.base now sits 0x10000 higher than when the note was written.
    probe = usdt.parse_note(note(0x1266, 0x2078, 0x4068, b"app", b"tick"), base_now=0x12078)
    assert probe.address == 0x11266 and probe.pc == 0x1266 and probe.semaphore == 0x4068


def test_note_without_base_section_is_not_moved() -> None:
    probe = usdt.parse_note(note(0x1266, 0x2078, 0, b"app", b"tick"), base_now=None)
    assert probe.address == 0x1266


@pytest.mark.parametrize("desc", [b"", b"\0" * 24, struct.pack("<QQQ", 1, 2, 3) + b"only"])
def test_malformed_notes_are_skipped(desc: bytes) -> None:
    assert usdt.parse_note(desc, 0) is None


def test_not_elf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    path.write_text("#!/bin/sh\necho hello there, this is long enough for a header\n" * 4)
    with pytest.raises(ElfError):
        read_elf(str(path), lambda elf: None)


@pytest.fixture(scope="module")
def probes_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (scripts/setup.sh installs it)")
    out = tmp_path_factory.mktemp("usdt") / "probes"
    run = subprocess.run(["gcc", "-O0", "-fno-omit-frame-pointer", "-fno-inline", "-o", str(out),
                          str(WORKLOADS / "probes.c"), str(WORKLOADS / "probes_guarded.c")],
                         capture_output=True, text=True)
    if "sys/sdt.h" in run.stderr:
        pytest.skip("<sys/sdt.h> is missing: scripts/setup.sh installs systemtap-sdt-dev")
    assert run.returncode == 0, run.stderr
    return str(out)


def test_probes_of_a_compiled_binary(probes_binary: str) -> None:
    assert usdt.summary(probes_binary) == {"probes": ["webprof:tick", "webprof_guarded:hit"],
                                           "semaphores": ["webprof_guarded:hit"]}
    (tick,) = usdt.sites(probes_binary, "webprof:tick")
    # The probe's nop lies inside fire_tick(): its address is within that function.
    names = read_elf(probes_binary, ElfSections.function_names)
    assert {"slow_call", "fire_tick", "probe_burst", "main"} <= names
    assert "clock_nanosleep" not in names  # imported, not defined here
    from collectors.elf import ElfSymbols

    symbols = ElfSymbols.from_path(probes_binary)
    assert symbols.name_at_vaddr(tick.address) == "fire_tick"


def test_comm_words_pack_the_kernel_bytes() -> None:
    low, high = comm_words("nginx")
    assert struct.pack("<QQ", low, high) == b"nginx".ljust(16, b"\0")
    assert comm_words("a" * 15)[1] == int.from_bytes(b"aaaaaaa\0", "little")
    for bad in ("", "a" * 16, "a\0b"):
        with pytest.raises(ValueError):
            comm_words(bad)


def test_target_cflags_are_numbers_only() -> None:
    flags = target_cflags(pid=42, cgroup_id=1234, comm="x'; drop")
    assert flags[:2] == ["-DFILTER_TGID=42", "-DFILTER_CGROUP=1234ULL"]
    assert all(f.split("=", 1)[1].rstrip("UL").isdigit() for f in flags)
