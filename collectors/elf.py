"""Function symbols of one ELF file, for turning user-space addresses into names.

bcc's own symbolizer (``BPF.sym``) works per process id and reads the
binaries through ``/proc/PID``: once a process has exited it answers
``[unknown]``.  Reading the symbol tables from the files on disk instead
lets a process that exited before the drain keep its names, and lets every
process that maps the same library share one table.

Only 64-bit little-endian ELF is read (x86_64, arm64).  ``.symtab`` is used
when present (unstripped binaries, test workloads), ``.dynsym`` otherwise.
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
from dataclasses import dataclass

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
PT_LOAD = 1
SHT_SYMTAB = 2
SHT_DYNSYM = 11
STT_FUNC = 2
STT_GNU_IFUNC = 10


class ElfError(ValueError):
    """The file is not an ELF file this module can read."""


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD program header: file bytes [offset, offset+filesz) load at vaddr."""

    offset: int
    vaddr: int
    filesz: int


class ElfSymbols:
    """Sorted function symbols and load segments of one file.

    :meth:`name_at_offset` maps a *file offset* (what /proc/PID/maps gives
    after subtracting the mapping start) to a function name, which works
    for executables and position-independent code alike.
    """

    def __init__(self, starts: list[int], ends: list[int], names: list[str],
                 segments: list[Segment]) -> None:
        self.starts = starts
        self.ends = ends
        self.names = names
        self.segments = segments

    @classmethod
    def from_path(cls, path: str) -> ElfSymbols:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _EHDR.size:
                raise ElfError(f"{path}: too short for ELF")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                try:
                    return cls.from_bytes(data, path)
                except (struct.error, IndexError) as exc:
                    raise ElfError(f"{path}: malformed ELF ({exc})") from None

    @classmethod
    def from_bytes(cls, data: bytes | mmap.mmap, what: str = "<bytes>") -> ElfSymbols:
        ident, *hdr = _EHDR.unpack_from(data, 0)
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            raise ElfError(f"{what}: not a 64-bit little-endian ELF file")
        # hdr: type, machine, version, entry, phoff, shoff, flags, ehsize,
        #      phentsize, phnum, shentsize, shnum, shstrndx
        phoff, shoff = hdr[4], hdr[5]
        phentsize, phnum, shentsize, shnum = hdr[8], hdr[9], hdr[10], hdr[11]
        segments = []
        for i in range(phnum):
            p_type, _, offset, vaddr, _, filesz, _, _ = _PHDR.unpack_from(
                data, phoff + i * phentsize)
            if p_type == PT_LOAD:
                segments.append(Segment(offset, vaddr, filesz))
        sections = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        table = _pick_symbol_table(sections)
        pairs = _read_functions(data, sections, table) if table is not None else {}
        starts = sorted(pairs)
        ends = [pairs[s][0] for s in starts]
        names = [pairs[s][1] for s in starts]
        return cls(starts, ends, names, segments)

    def vaddr_of_offset(self, offset: int) -> int | None:
        for seg in self.segments:
            if seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        return None

    def name_at_vaddr(self, vaddr: int) -> str | None:
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i < 0:
            return None
        # Size-0 symbols (hand-written assembly) cover up to the next symbol.
        if self.ends[i] > self.starts[i] and vaddr >= self.ends[i]:
            return None
        return self.names[i]

    def name_at_offset(self, offset: int) -> str | None:
        vaddr = self.vaddr_of_offset(offset)
        return None if vaddr is None else self.name_at_vaddr(vaddr)


def _pick_symbol_table(sections: list[tuple]) -> int | None:
    for wanted in (SHT_SYMTAB, SHT_DYNSYM):
        for i, sec in enumerate(sections):
            if sec[1] == wanted and sec[5]:
                return i
    return None


def _read_functions(data: bytes | mmap.mmap, sections: list[tuple],
                    index: int) -> dict[int, tuple[int, str]]:
    """start address -> (end address, name) for defined function symbols."""
    _, _, _, _, offset, size, link, _, _, entsize = sections[index]
    str_off = sections[link][4]
    entsize = entsize or _SYM.size
    result: dict[int, tuple[int, str]] = {}
    for pos in range(offset, offset + size - entsize + 1, entsize):
        st_name, st_info, _, st_shndx, st_value, st_size = _SYM.unpack_from(data, pos)
        if st_shndx == 0 or st_value == 0 or (st_info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC):
            continue
        if st_value in result and result[st_value][0] > st_value:
            continue  # keep the first alias that has a size
        start = str_off + st_name
        end = data.find(b"\0", start)
        name = bytes(data[start:end]).decode("utf-8", "replace")
        result[st_value] = (st_value + st_size, name)
    return result


# -- sections, all function names and notes (targeted traces) ------------------
SHT_NOTE = 7
ELF_MAGIC = b"\x7fELF"
_NOTE = struct.Struct("<III")


class ElfSections:
    """Section headers of one mapped 64-bit little-endian ELF file, by name.

    Used by targeted traces: the names a uprobe may attach to (both symbol
    tables) and the notes of a section (``.note.stapsdt`` for USDT probes).
    Valid only while the mapping it was made from is open: see :func:`read_elf`.
    """

    def __init__(self, data: bytes | mmap.mmap, what: str = "<bytes>") -> None:
        ident, *hdr = _EHDR.unpack_from(data, 0)
        if ident[:4] != ELF_MAGIC or ident[4] != 2 or ident[5] != 1:
            raise ElfError(f"{what}: not a 64-bit little-endian ELF file")
        self.data = data
        self.type = hdr[0]  # ET_EXEC 2, ET_DYN 3
        shoff, shentsize, shnum, shstrndx = hdr[5], hdr[10], hdr[11], hdr[12]
        self.sections = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        names_at = self.sections[shstrndx][4] if shstrndx < shnum else None
        self.by_name: dict[str, tuple] = {}
        for sec in self.sections:
            if names_at is not None:
                self.by_name.setdefault(_cstring(data, names_at + sec[0]), sec)

    def function_names(self) -> set[str]:
        """Defined FUNC (and IFUNC) symbols of .symtab and .dynsym together."""
        names: set[str] = set()
        for i, sec in enumerate(self.sections):
            if sec[1] in (SHT_SYMTAB, SHT_DYNSYM) and sec[5]:
                names.update(_function_names(self.data, self.sections, i))
        return names

    def address_of(self, section: str) -> int | None:
        """The load address (sh_addr) of a section, None when absent."""
        sec = self.by_name.get(section)
        return None if sec is None else sec[3]

    def notes(self, section: str) -> list[tuple[str, int, bytes]]:
        """(owner, type, descriptor bytes) of every note in a SHT_NOTE section."""
        sec = self.by_name.get(section)
        if sec is None or sec[1] != SHT_NOTE:
            return []
        out = []
        pos, end = sec[4], sec[4] + sec[5]
        while pos + _NOTE.size <= end:
            namesz, descsz, kind = _NOTE.unpack_from(self.data, pos)
            pos += _NOTE.size
            owner = bytes(self.data[pos:pos + namesz]).rstrip(b"\0").decode("ascii", "replace")
            pos += (namesz + 3) & ~3  # name and descriptor are 4-byte aligned
            desc = bytes(self.data[pos:pos + descsz])
            pos += (descsz + 3) & ~3
            out.append((owner, kind, desc))
        return out


def read_elf(path: str, use):  # use: ElfSections -> T; returns T
    """Map ``path`` and call ``use(ElfSections)`` while it is mapped.

    Raises ElfError for files that are not ELF or are malformed, OSError when
    unreadable.  Reading through a mapping keeps large binaries off the heap.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < _EHDR.size:
            raise ElfError(f"{path}: too short for ELF")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return use(ElfSections(data, path))
            except (struct.error, IndexError) as exc:
                raise ElfError(f"{path}: malformed ELF ({exc})") from None


def _function_names(data: bytes | mmap.mmap, sections: list[tuple], index: int) -> set[str]:
    """Every defined function symbol's name, aliases included (:func:`_read_functions`
    keeps one name per address, but a uprobe may name any of them)."""
    _, _, _, _, offset, size, link, _, _, entsize = sections[index]
    str_off = sections[link][4]
    entsize = entsize or _SYM.size
    names = set()
    for pos in range(offset, offset + size - entsize + 1, entsize):
        st_name, st_info, _, st_shndx, st_value, _ = _SYM.unpack_from(data, pos)
        if st_shndx and st_value and (st_info & 0xF) in (STT_FUNC, STT_GNU_IFUNC):
            names.add(_cstring(data, str_off + st_name))
    return names


def _cstring(data: bytes | mmap.mmap, start: int) -> str:
    end = data.find(b"\0", start)
    return bytes(data[start:end]).decode("utf-8", "replace")
