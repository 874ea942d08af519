"""The ELF reader against crafted files (collectors/elf.py): tables bounded by
their sections, names cut at their table's end and at MAX_NAME_BYTES, section
headers outside the file refused; nothing but ElfError escapes, and what it
returns is bounded by the input's size.  A hypothesis generator builds
small, mostly well-formed files, then breaks their fields and bytes."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import usdt
from collectors.elf import (
    MAX_NAME_BYTES,
    NAME_BYTES_PER_TABLE_BYTE,
    ElfError,
    ElfSections,
    ElfSymbols,
)

pytestmark = pytest.mark.unit

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
NOTE = struct.Struct("<III")
SHSTRTAB = b"\0.symtab\0.strtab\0.shstrtab\0.note.stapsdt\0.dynsym\0"
NAME_AT = {n.decode(): SHSTRTAB.index(n) for n in
           (b".symtab", b".strtab", b".shstrtab", b".note.stapsdt", b".dynsym")}
# Values that break arithmetic: zero, small, around the file, the top of each width.
WILD = st.sampled_from([0, 1, 7, 24, 63, 64, 4095, 2**16 - 1, 2**31, 2**32 - 1, 2**32,
                        2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)


def build(strtab: bytes, symbols: list[tuple], notes: bytes) -> tuple[bytes, dict]:
    """A small ELF file, and where its section headers live (for mutations)."""
    body = bytearray(b"\0" * EHDR.size + b"\0" * PHDR.size)
    spans = {}
    for name, blob in (("shstrtab", SHSTRTAB), ("strtab", strtab),
                       ("symtab", b"".join(SYM.pack(*s) for s in symbols)),
                       ("note", notes)):
        spans[name] = (len(body), len(blob))
        body += blob
    shoff = len(body)
    headers = [(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
               (NAME_AT[".shstrtab"], 3, 0, 0, *spans["shstrtab"], 0, 0, 1, 0),
               (NAME_AT[".strtab"], 3, 0, 0, *spans["strtab"], 0, 0, 1, 0),
               (NAME_AT[".symtab"], 2, 0, 0, *spans["symtab"], 2, 0, 8, SYM.size),
               (NAME_AT[".note.stapsdt"], 7, 0, 0x1000, *spans["note"], 0, 0, 4, 0),
               (NAME_AT[".dynsym"], 11, 0, 0, *spans["symtab"], 2, 0, 8, SYM.size)]
    for h in headers:
        body += SHDR.pack(*h)
    body[:EHDR.size] = EHDR.pack(b"\x7fELF\x02\x01\x01" + b"\0" * 9, 3, 62, 1, 0,
                                 EHDR.size, shoff, 0, EHDR.size, PHDR.size, 1, SHDR.size,
                                 len(headers), 1)
    body[EHDR.size:EHDR.size + PHDR.size] = PHDR.pack(1, 5, 0, 0, 0, len(body), len(body), 0)
    return bytes(body), {"shoff": shoff, "count": len(headers)}


@st.composite
def elves(draw) -> bytes:
    strtab = draw(st.binary(max_size=300))  # often without a NUL at all
    symbols = draw(st.lists(st.tuples(
        st.integers(0, 400) | st.integers(0, 2**32 - 1), st.sampled_from([2, 10, 1, 0x12]),
        st.integers(0, 255), st.integers(0, 2**16 - 1), st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1)), max_size=40))
    notes = b"".join(NOTE.pack(*n) + draw(st.binary(max_size=40)) for n in draw(st.lists(
        st.tuples(st.integers(0, 64) | WILD.filter(lambda v: v < 2**32),
                  st.integers(0, 64) | WILD.filter(lambda v: v < 2**32),
                  st.sampled_from([3, 1])), max_size=4)))
    data, where = build(strtab, symbols, notes)
    data = bytearray(data)
    # Break section header fields: offset, size, link, entsize; or the ELF header's.
    for _ in range(draw(st.integers(0, 4))):
        which = draw(st.integers(0, where["count"] - 1))
        field = draw(st.sampled_from([(24, "<Q"), (32, "<Q"), (40, "<I"), (56, "<Q"),
                                      (0, "<I")]))
        value = draw(WILD) % (1 << (8 * struct.calcsize(field[1])))
        struct.pack_into(field[1], data, where["shoff"] + which * SHDR.size + field[0], value)
    for _ in range(draw(st.integers(0, 2))):
        offset, fmt = draw(st.sampled_from([(32, "<Q"), (40, "<Q"), (54, "<H"), (56, "<H"),
                                            (58, "<H"), (60, "<H"), (62, "<H")]))
        value = draw(WILD) % (1 << (8 * struct.calcsize(fmt)))
        struct.pack_into(fmt, data, offset, value)
    for _ in range(draw(st.integers(0, 6))):  # and a few bytes anywhere
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.none() | st.integers(0, len(data)))
    return bytes(data if cut is None else data[:cut])


def names_bound(data: bytes) -> int:
    """What all the distinct names read from a file may total: each table's
    budget, and the tables lie inside the file (a few tables at most here)."""
    return 3 * (NAME_BYTES_PER_TABLE_BYTE * len(data) + MAX_NAME_BYTES)


def read_everything(data: bytes) -> None:
    for read in (lambda: ElfSymbols.from_bytes(data).names,
                 lambda: ElfSections(data).function_names(),
                 lambda: [p.label for p in usdt.probes_of(ElfSections(data))],
                 lambda: [desc for _, _, desc in ElfSections(data).notes(".note.stapsdt")]):
        try:
            out = read()
        except ElfError:
            continue
        distinct = set(out)
        assert all(len(n) <= MAX_NAME_BYTES for n in distinct if isinstance(n, str))
        assert sum(len(n) for n in distinct) <= names_bound(data)
        assert len(out) <= len(data)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(elves())
def test_crafted_files_raise_only_elf_error_and_give_bounded_output(data: bytes) -> None:
    read_everything(data)


def test_the_fuzz_run_is_quick() -> None:
    started = time.monotonic()
    test_crafted_files_raise_only_elf_error_and_give_bounded_output()
    assert time.monotonic() - started < 30


def test_names_without_a_nul_stop_at_their_table() -> None:
    """A 200 KB file whose string table has no NUL: each symbol's name used to be
    "the rest of the file" (20 MB of names from 200 KB).  Now a name stops at
    MAX_NAME_BYTES, and names overlapping beyond reason make the file malformed."""
    strtab = bytes(65 + i % 26 for i in range(100_000))
    symbols = [(i * 11, 0x12, 0, 1, 0x1000 + 16 * i, 16) for i in range(4000)]
    data, _ = build(strtab, symbols, b"")
    assert len(data) < 250_000
    with pytest.raises(ElfError, match="names overlap"):
        ElfSymbols.from_bytes(data)
    with pytest.raises(ElfError, match="names overlap"):
        ElfSections(data).function_names()
    few, _ = build(strtab, symbols[:10], b"")
    names = ElfSections(few).function_names()
    assert len(names) == 10 and {len(n) for n in names} == {MAX_NAME_BYTES}
    tail, _ = build(b"\0main", [(1, 0x12, 0, 1, 0x1000, 16)], b"\0" * 64)
    assert ElfSymbols.from_bytes(tail).names == ["main"]  # cut at its table's end


def test_a_symbol_table_outside_the_file_is_refused() -> None:
    data, where = build(b"\0main\0", [(1, 0x12, 0, 1, 0x1000, 16)], b"")
    data = bytearray(data)
    struct.pack_into("<Q", data, where["shoff"] + 3 * SHDR.size + 32, 10**9)  # symtab size
    with pytest.raises(ElfError, match="outside the file"):
        ElfSymbols.from_bytes(bytes(data))
    with pytest.raises(ElfError, match="outside the file"):
        ElfSections(bytes(data)).function_names()


def test_a_well_formed_file_reads() -> None:
    data, _ = build(b"\0main\0helper\0", [(1, 0x12, 0, 1, 0x1000, 16),
                                         (6, 0x12, 0, 1, 0x1010, 16)], b"")
    assert ElfSections(data).function_names() == {"main", "helper"}
    assert ElfSymbols.from_bytes(data).names == ["main", "helper"]
