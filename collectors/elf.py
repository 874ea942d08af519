"""Function symbols of one ELF file, for turning user-space addresses into names.

bcc's own symbolizer (``BPF.sym``) works per process id and reads the
binaries through ``/proc/PID``: once a process has exited it answers
``[unknown]``.  Reading the symbol tables from the files on disk instead
lets a process that exited before the drain keep its names, and lets every
process that maps the same library share one table.

Only 64-bit little-endian ELF is read (x86_64, arm64).  ``.symtab`` is used
when present (unstripped binaries, test workloads), ``.dynsym`` otherwise.

The collector runs as root and some paths come from users (trace requests,
host questions), so every file is treated as hostile: it is opened only if
it is a regular file (never a FIFO, device or /proc file that would block a
thread), of at most :data:`MAX_FILE_BYTES`, starting with the ELF magic;
every table is read within its section, which must lie inside the file;
names stop at their table's end and at :data:`MAX_NAME_BYTES`; a table has
at most :data:`MAX_SYMBOLS` entries, and the distinct names read from one
table total at most :data:`NAME_BYTES_PER_TABLE_BYTE` times its size.
Anything else is an :class:`ElfError`, the one error a malformed file raises.
"""

from __future__ import annotations

import bisect
import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
PT_LOAD = 1
SHT_SYMTAB = 2
SHT_DYNSYM = 11
STT_FUNC = 2
STT_GNU_IFUNC = 10
MAX_FILE_BYTES = 2 << 30  # 2 GiB: larger files are refused, not read
MAX_NAME_BYTES = 4096  # longer names are cut (no uprobe target is that long)
MAX_SYMBOLS = 4_000_000  # entries of one symbol table (libxul has ~1 M)
# Linkers share a name's tail between strings ("bar" inside "foo_bar"), so
# the names read may exceed their table a little, never by this factor.
NAME_BYTES_PER_TABLE_BYTE = 4
SPECIAL_ROOTS = ("/proc", "/sys", "/dev")  # pseudo files: never read as binaries
T = TypeVar("T")


class ElfError(ValueError):
    """The file is not an ELF file this module can read (or may not be read)."""


class FileBytes:
    """An open file read like bytes (``len``, slices) with pread: the parts
    this module needs are copied, never mapped, so a file truncated while it
    is read gives an ElfError instead of killing the collector with SIGBUS."""

    def __init__(self, fd: int, size: int, what: str) -> None:
        self.fd, self.size, self.what = fd, size, what

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(self.size)
        if stop <= start:
            return b""
        data = os.pread(self.fd, stop - start, start)
        if len(data) != stop - start:
            raise ElfError(f"{self.what} shrank while it was being read")
        return data


Data = bytes | mmap.mmap | FileBytes  # what the readers below take


@contextmanager
def opened(path: str, *, public: bool = False) -> Iterator[FileBytes]:
    """The file at ``path`` open for reading, after the checks that make it safe
    to open as root: a regular file (stat'ed before it is opened, so a FIFO or
    a device is never opened), opened without following a final symlink and
    without blocking, the same file after opening, small enough, ELF magic.
    ``public``: refuse files that not every user may read, with the message
    of a missing file, so that a query does not tell them apart.
    OSError when missing or unreadable; ElfError for anything else."""
    before = os.lstat(path)
    if public and not before.st_mode & stat.S_IROTH:
        raise FileNotFoundError(2, "no file readable by every user", path)
    _check_stat(path, before)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise ElfError(f"{path} changed while it was being opened")
        _check_stat(path, st)
        if os.pread(fd, len(ELF_MAGIC), 0) != ELF_MAGIC:
            raise ElfError(f"{path} is not an ELF file")
        yield FileBytes(fd, st.st_size, path)
    finally:
        os.close(fd)


def _check_stat(path: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ElfError(f"{path} is not a regular file")
    if st.st_size < _EHDR.size:
        raise ElfError(f"{path}: too short for ELF")
    if st.st_size > MAX_FILE_BYTES:
        raise ElfError(f"{path} is larger than {MAX_FILE_BYTES >> 30} GiB")


def resolve(path: str) -> str:
    """``path`` with every symlink resolved, refused when it lies under /proc,
    /sys or /dev (their files are not binaries, and some block their reader)."""
    real = os.path.realpath(path)
    if any(real == root or real.startswith(root + "/") for root in SPECIAL_ROOTS):
        raise ElfError(f"{path}: files under {', '.join(SPECIAL_ROOTS)} are not read")
    return real


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
        """OSError when unreadable, ElfError when not a readable ELF file."""
        with opened(path) as data:
            return _malformed_as_elf_error(path, lambda: cls.from_bytes(data, path))

    @classmethod
    def from_bytes(cls, data: Data, what: str = "<bytes>") -> ElfSymbols:
        hdr = _header(data, what)
        # hdr: type, machine, version, entry, phoff, shoff, flags, ehsize,
        #      phentsize, phnum, shentsize, shnum, shstrndx
        phoff, phentsize, phnum = hdr[4], hdr[8], hdr[9]
        table = _table(data, what, "program headers", phoff, phentsize, phnum, _PHDR.size)
        segments = []
        for i in range(phnum):
            p_type, _, offset, vaddr, _, filesz, _, _ = _PHDR.unpack_from(table, i * phentsize)
            if p_type == PT_LOAD:
                segments.append(Segment(offset, vaddr, filesz))
        sections = _section_headers(data, hdr, what)
        table = _pick_symbol_table(sections)
        pairs = _read_functions(data, sections, table, what) if table is not None else {}
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


def _read_functions(data: Data, sections: list[tuple], index: int,
                    what: str = "<bytes>") -> dict[int, tuple[int, str]]:
    """start address -> (end address, name) for defined function symbols."""
    result: dict[int, tuple[int, str]] = {}
    names, entries = _symbols(data, sections, index, what)
    for st_name, st_info, _, st_shndx, st_value, st_size in entries:
        if st_shndx == 0 or st_value == 0 or (st_info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC):
            continue
        if st_value in result and result[st_value][0] > st_value:
            continue  # keep the first alias that has a size
        result[st_value] = (st_value + st_size, names.at(st_name))
    return result


# -- bounds: every read below stays inside the file and inside its section -------
def _header(data: Data, what: str) -> tuple:
    if len(data) < _EHDR.size:
        raise ElfError(f"{what}: too short for ELF")
    ident, *hdr = _EHDR.unpack(data[:_EHDR.size])
    if ident[:4] != ELF_MAGIC or ident[4] != 2 or ident[5] != 1:
        raise ElfError(f"{what}: not a 64-bit little-endian ELF file")
    return tuple(hdr)


def _table(data: Data, what: str, label: str, offset: int,
           entsize: int, count: int, least: int) -> bytes:
    """The bytes of a table of ``count`` entries of ``entsize`` bytes (at least
    ``least``) at ``offset``, which must lie inside the file."""
    if count and (entsize < least or offset + count * entsize > len(data)):
        raise ElfError(f"{what}: malformed ELF ({label} outside the file)")
    return data[offset:offset + count * entsize] if count else b""


def _section_headers(data: Data, hdr: tuple, what: str) -> list[tuple]:
    shoff, shentsize, shnum = hdr[5], hdr[10], hdr[11]
    table = _table(data, what, "section headers", shoff, shentsize, shnum, _SHDR.size)
    return [_SHDR.unpack_from(table, i * shentsize) for i in range(shnum)]


def _section_span(data: Data, sections: list[tuple], index: int,
                  what: str) -> tuple[int, int]:
    """[start, end) of a section's bytes, which must lie inside the file."""
    if not 0 <= index < len(sections):
        raise ElfError(f"{what}: malformed ELF (section {index} does not exist)")
    return _span(data, sections[index], what)


def _span(data: Data, section: tuple, what: str) -> tuple[int, int]:
    offset, size = section[4], section[5]
    if offset + size > len(data):
        raise ElfError(f"{what}: malformed ELF (a section lies outside the file)")
    return offset, offset + size


class _Names:
    """The NUL-terminated names of one string table, read within it: a name
    stops at its first NUL, the table's end or MAX_NAME_BYTES; each offset is
    read once, and all the names read total at most a few times the table."""

    def __init__(self, data: Data, start: int, end: int, what: str) -> None:
        self.table, self.what = data[start:end], what
        self.budget = NAME_BYTES_PER_TABLE_BYTE * (end - start) + MAX_NAME_BYTES
        self.cache: dict[int, str] = {}

    def at(self, offset: int) -> str:
        name = self.cache.get(offset)
        if name is not None:
            return name
        if offset >= len(self.table):
            raise ElfError(f"{self.what}: malformed ELF (a name lies outside its table)")
        stop = min(len(self.table), offset + MAX_NAME_BYTES)
        nul = self.table.find(b"\0", offset, stop)
        raw = self.table[offset:stop if nul < 0 else nul]
        self.budget -= len(raw) + 1
        if self.budget < 0:
            raise ElfError(f"{self.what}: malformed ELF (its names overlap beyond reason)")
        name = self.cache[offset] = raw.decode("utf-8", "replace")
        return name


def _symbols(data: Data, sections: list[tuple], index: int,
             what: str) -> tuple[_Names, Iterator[tuple[int, ...]]]:
    """The string table of one symbol table, and its entries (st_name, st_info,
    st_other, st_shndx, st_value, st_size); names are read only when asked for."""
    start, end = _section_span(data, sections, index, what)
    entsize = sections[index][9] or _SYM.size
    if entsize < _SYM.size:
        raise ElfError(f"{what}: malformed ELF (symbol entries of {entsize} bytes)")
    if (end - start) // entsize > MAX_SYMBOLS:
        raise ElfError(f"{what}: over {MAX_SYMBOLS} symbols in one table")
    names = _Names(data, *_section_span(data, sections, sections[index][6], what), what)
    table = data[start:end]
    return names, (_SYM.unpack_from(table, pos) for pos in range(0, len(table) - entsize + 1,
                                                                   entsize))


def _malformed_as_elf_error(what: str, read: Callable[[], T]) -> T:
    try:
        return read()
    except (struct.error, IndexError, OverflowError) as exc:
        raise ElfError(f"{what}: malformed ELF ({exc})") from None


# -- sections, all function names and notes (targeted traces) ------------------
SHT_NOTE = 7
ELF_MAGIC = b"\x7fELF"
_NOTE = struct.Struct("<III")


class ElfSections:
    """Section headers of one 64-bit little-endian ELF file, by name.

    Used by targeted traces: the names a uprobe may attach to (both symbol
    tables) and the notes of a section (``.note.stapsdt`` for USDT probes).
    Valid only while the file it was made from is open: see :func:`read_elf`.
    """

    def __init__(self, data: Data, what: str = "<bytes>") -> None:
        hdr = _header(data, what)
        self.data, self.what = data, what
        self.type = hdr[0]  # ET_EXEC 2, ET_DYN 3
        shstrndx = hdr[12]
        self.sections = _section_headers(data, hdr, what)
        self.by_name: dict[str, tuple] = {}
        if shstrndx < len(self.sections):
            names = _Names(data, *_section_span(data, self.sections, shstrndx, what), what)
            for sec in self.sections:
                self.by_name.setdefault(names.at(sec[0]), sec)

    def function_names(self) -> set[str]:
        """Defined FUNC (and IFUNC) symbols of .symtab and .dynsym together."""
        names: set[str] = set()
        for i, sec in enumerate(self.sections):
            if sec[1] in (SHT_SYMTAB, SHT_DYNSYM) and sec[5]:
                names.update(_function_names(self.data, self.sections, i, self.what))
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
        start, end = _span(self.data, sec, self.what)
        table, pos = self.data[start:end], 0
        while pos + _NOTE.size <= len(table):
            namesz, descsz, kind = _NOTE.unpack_from(table, pos)
            pos += _NOTE.size
            name_end = pos + ((namesz + 3) & ~3)  # name and descriptor are 4-byte aligned
            desc_end = name_end + ((descsz + 3) & ~3)
            if desc_end > len(table):
                break  # a note running past its section: the rest is not notes
            owner = table[pos:pos + namesz].rstrip(b"\0").decode("ascii", "replace")
            out.append((owner, kind, table[name_end:name_end + descsz]))
            pos = desc_end
        return out


def read_elf(path: str, use: Callable[[ElfSections], T]) -> T:
    """Open ``path`` and call ``use(ElfSections)`` while it is open.

    For targeted traces, whose paths come from users: ``path`` is resolved
    and refused under /proc, /sys and /dev (:func:`resolve`), and the file
    must be readable by every user (:func:`opened`).  Raises ElfError for
    files that are not ELF, are malformed or may not be read, OSError when
    missing or unreadable.  Only the tables asked for are read into memory.
    """
    real = resolve(path)
    with opened(real, public=True) as data:
        return _malformed_as_elf_error(path, lambda: use(ElfSections(data, path)))


def _function_names(data: Data, sections: list[tuple], index: int,
                    what: str = "<bytes>") -> set[str]:
    """Every defined function symbol's name, aliases included (:func:`_read_functions`
    keeps one name per address, but a uprobe may name any of them)."""
    names, entries = _symbols(data, sections, index, what)
    return {names.at(st_name) for st_name, st_info, _, st_shndx, st_value, _ in entries
            if st_shndx and st_value and (st_info & 0xF) in (STT_FUNC, STT_GNU_IFUNC)}
