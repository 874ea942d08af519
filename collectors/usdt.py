"""USDT probes of an ELF file, read from its ``.note.stapsdt`` notes.

A ``<sys/sdt.h>`` probe site leaves one note (owner "stapsdt", type 3)
whose descriptor is three addresses then three NUL-terminated strings::

    pc         u64  address of the probe's nop instruction
    base       u64  link-time address of the .stapsdt.base section
    semaphore  u64  address of the probe's is-enabled counter, or 0
    provider, name, argument description

If the file was prelinked (moved after linking), the notes keep link-time
addresses: the distance between ``.stapsdt.base``'s address now and the
recorded ``base`` moves ``pc`` and ``semaphore`` alike.  The resulting
virtual address is what bcc's ``attach_uprobe(name=binary, addr=...)``
takes; bcc turns it into a file offset through the load segments.

A probe whose semaphore is not 0 only fires while the semaphore is
non-zero (the program tests it before building the arguments).  webprof
refuses such probes instead of writing into the traced processes' memory:
see :data:`SEMAPHORE_REASON`.  One probe name may have several sites (a
probe in an inlined function); each is a separate address and all are
attached.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from collectors.elf import ElfSections, read_elf

NOTE_OWNER = "stapsdt"
NOTE_TYPE = 3
NOTE_SECTION = ".note.stapsdt"
BASE_SECTION = ".stapsdt.base"
_ADDRS = struct.Struct("<QQQ")
SEMAPHORE_REASON = ("this probe is guarded by a semaphore (an is-enabled probe): it fires only "
                    "while a tracer increments a counter in every traced process, which webprof "
                    "does not do; choose a probe without a semaphore")


@dataclass(frozen=True)
class UsdtProbe:
    provider: str
    name: str
    pc: int  # as recorded in the note
    base: int  # link-time address of .stapsdt.base (0: none recorded)
    semaphore: int  # recorded address of the is-enabled counter, 0: none
    address: int  # pc moved by the prelink distance: give this to attach_uprobe(addr=)

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.name}"


def parse_note(desc: bytes, base_now: int | None) -> UsdtProbe | None:
    """One stapsdt descriptor -> probe; None when it is malformed."""
    if len(desc) < _ADDRS.size + 3:
        return None
    pc, base, semaphore = _ADDRS.unpack_from(desc, 0)
    strings = desc[_ADDRS.size:].split(b"\0")
    if len(strings) < 3:
        return None
    try:
        provider, name = strings[0].decode("ascii"), strings[1].decode("ascii")
    except UnicodeDecodeError:
        return None
    shift = base_now - base if base and base_now is not None else 0
    return UsdtProbe(provider, name, pc, base, semaphore, pc + shift)


def probes_of(elf: ElfSections) -> list[UsdtProbe]:
    """Every probe site of a mapped ELF file, in note order."""
    base_now = elf.address_of(BASE_SECTION)
    out = []
    for owner, kind, desc in elf.notes(NOTE_SECTION):
        if owner == NOTE_OWNER and kind == NOTE_TYPE:
            probe = parse_note(desc, base_now)
            if probe is not None:
                out.append(probe)
    return out


def probes(path: str) -> list[UsdtProbe]:
    """Every probe site of the ELF file at ``path`` (ElfError / OSError on bad files)."""
    return read_elf(path, probes_of)


def sites(path: str, label: str) -> list[UsdtProbe]:
    """The sites of probe ``provider:name`` in ``path``; empty when it has none."""
    return [p for p in probes(path) if p.label == label]


def summary(path: str) -> dict[str, list[str]]:
    """The ``usdt_probes`` query's answer: probe labels, and those needing a semaphore."""
    found = probes(path)
    labels = sorted({p.label for p in found})
    guarded = sorted({p.label for p in found if p.semaphore})
    return {"probes": labels, "semaphores": guarded}
