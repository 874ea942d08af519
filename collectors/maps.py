"""Fast reads of BPF maps by file descriptor, below bcc's per-entry ctypes objects.

bcc's table classes build one ctypes object per key and value; for 10,000
entries per interval that costs more than the syscalls.  These helpers call
libbcc's thin syscall wrappers with preallocated buffers and decode the raw
bytes with :mod:`struct`.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import struct
from collections.abc import Iterable

from bcc.libbcc import lib

STACK_DEPTH = 127  # PERF_MAX_STACK_DEPTH as used by BPF_STACK_TRACE


class BatchUnsupported(Exception):
    """The kernel refused BPF_MAP_LOOKUP_AND_DELETE_BATCH (older than 5.6)."""


def drain_hash_batch_raw(fd: int, max_entries: int,
                         key_size: int) -> tuple[bytes, list[int]]:
    """Look up and delete every entry of a hash map whose values are u64.

    Returns (all keys back to back, values): callers decode the keys with
    ``Struct.iter_unpack``, with no slice per entry.  Raises
    :class:`BatchUnsupported` when the kernel lacks batch operations before
    anything was deleted.
    """
    keys = ct.create_string_buffer(key_size * max_entries)
    values = (ct.c_uint64 * max_entries)()
    count = ct.c_uint32(0)
    in_batch = ct.c_uint32(0)
    out_batch = ct.c_uint32(0)
    total = 0
    while total < max_entries:
        count.value = max_entries - total
        res = lib.bpf_lookup_and_delete_batch(
            fd,
            ct.byref(in_batch) if total else None,
            ct.byref(out_batch),
            ct.byref(keys, key_size * total),
            ct.byref(values, 8 * total),
            ct.byref(count),
        )
        err = ct.get_errno()
        total += count.value
        if res != 0:
            if err == errno.ENOENT:
                break  # walked the whole map
            if total == 0 and err in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise BatchUnsupported(os.strerror(err))
            raise OSError(err, f"BPF_MAP_LOOKUP_AND_DELETE_BATCH: {os.strerror(err)}")
        if count.value == 0:
            break
        in_batch.value = out_batch.value
    return ct.string_at(keys, key_size * total), values[:total]


def drain_hash_slow(fd: int, key_size: int) -> list[tuple[bytes, int]]:
    """Fallback for kernels without batch ops: walk keys, look up, then delete.

    Only safe on a map no program writes to meanwhile (the inactive set).
    """
    keys = all_keys(fd, key_size)
    value = ct.c_uint64()
    result = []
    for key in keys:
        buf = ct.create_string_buffer(key, key_size)
        if lib.bpf_lookup_elem(fd, buf, ct.byref(value)) == 0:
            result.append((key, value.value))
        lib.bpf_delete_elem(fd, buf)
    return result


class HashDrainer:
    """Empties a u64-valued hash map per call: by batch while the kernel allows
    it, entry by entry once it has refused (remembered, so an old kernel pays
    the refused syscall once).  Only for a map no program writes any more (a
    drained set), which is what makes the entry-by-entry walk safe."""

    def __init__(self) -> None:
        self.batch_ok = True

    def drain(self, fd: int, max_entries: int, key_size: int) -> tuple[bytes, list[int]]:
        """(all keys back to back, values), as :func:`drain_hash_batch_raw`."""
        if self.batch_ok:
            try:
                return drain_hash_batch_raw(fd, max_entries, key_size)
            except BatchUnsupported:
                self.batch_ok = False
        entries = drain_hash_slow(fd, key_size)
        return b"".join(k for k, _ in entries), [v for _, v in entries]


def all_keys(fd: int, key_size: int) -> list[bytes]:
    keys = []
    prev = None
    nxt = ct.create_string_buffer(key_size)
    while lib.bpf_get_next_key(fd, prev, nxt) == 0:
        keys.append(nxt.raw)
        prev = ct.create_string_buffer(nxt.raw, key_size)
    return keys


_ZERO_IP = bytes(8)
_IPS = [struct.Struct(f"<{n}Q") for n in range(STACK_DEPTH + 1)]


class StackReader:
    """Reads and deletes entries of one BPF_STACK_TRACE map.

    Stack maps have no batch operations, so this is one syscall per id; the
    loops keep the Python work per id to a few C calls (10,000+ ids per drain).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._key = ct.c_uint32()
        # The kernel writes straight into a bytearray that find() and slicing
        # read in place (it zero-fills past the trace's end on every lookup).
        self._raw = bytearray(8 * STACK_DEPTH)
        self._buf = (ct.c_char * len(self._raw)).from_buffer(self._raw)

    def read_raw(self, stack_ids: Iterable[int]) -> dict[int, bytes]:
        """stack id -> the trace as bytes: little-endian u64 addresses, innermost first.

        Bytes rather than integers: hashing them is what callers caching
        names by stack content need, and most stacks never need unpacking.
        Missing ids are left out.
        """
        result = {}
        key, raw, fd = self._key, self._raw, self.fd
        lookup, find, view = lib.bpf_lookup_elem, raw.find, memoryview(raw)
        key_ref, buf_ref = ct.byref(key), ct.byref(self._buf)
        for sid in stack_ids:
            key.value = sid
            if lookup(fd, key_ref, buf_ref) != 0:
                continue
            # The trace ends at the first zero address (an aligned 8-byte zero).
            end = find(_ZERO_IP)
            while end % 8 and end != -1:
                end = find(_ZERO_IP, end + 1)
            result[sid] = view[:end].tobytes() if end != -1 else bytes(raw)
        return result

    def read(self, stack_ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
        """stack id -> addresses, innermost first; missing ids are left out."""
        return {sid: unpack_stack(raw) for sid, raw in self.read_raw(stack_ids).items()}

    def delete(self, stack_ids: Iterable[int]) -> None:
        key, fd, delete = self._key, self.fd, lib.bpf_delete_elem
        key_ref = ct.byref(key)
        for sid in stack_ids:
            key.value = sid
            delete(fd, key_ref)

    def delete_all(self) -> int:
        """Delete every entry, including ids no counts key refers to.

        Cheap after :meth:`delete` of the known ids: the walk then only meets
        the leftovers.  Keys are collected first because a stack map restarts
        its walk from id 0 when the previous key was deleted.
        """
        key, ids = self._key, []
        key_ref = ct.byref(key)
        prev = None
        while lib.bpf_get_next_key(self.fd, prev, key_ref) == 0:
            ids.append(key.value)
            prev = key_ref  # the kernel copies the key in before writing the next
        self.delete(ids)
        return len(ids)


def unpack_stack(raw: bytes) -> tuple[int, ...]:
    """Addresses of a trace from :meth:`StackReader.read_raw`."""
    return _IPS[len(raw) // 8].unpack(raw)
