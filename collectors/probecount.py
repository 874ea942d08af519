"""Probe hits with stacks: loads bpf/cpu.bpf.c built with -DPROBE_COUNT, drains
ProfileDelta "usdt"/"tracepoint".

That build swaps the sampling entry point for ``on_hit`` and keeps the CPU
collector's maps (same key, stack sets and health layout), so everything
after attaching is :class:`CpuCollector`'s:
the double-buffered drain, symbolization through collectors/symbols.py
(kernel frames suffixed ``_[k]``), sub-second slots.  Weights are hits.

Usage (targets and names checked first, see collectors/tracecheck.py)::

    with ProbeCountCollector("tracepoint", tracepoint="syscalls:sys_enter_getppid") as pc:
        time.sleep(1)
        delta = pc.drain()
    with ProbeCountCollector("usdt", binary="/usr/bin/app", addresses=[0x1266], pid=42):
        ...

A USDT probe is attached as a uprobe at each of its sites
(``attach_uprobe(name=binary, addr=site)``); a tracepoint with
``attach_tracepoint(tp="category:name")``.  Request values reach bcc's
attach calls and ``-D`` numbers only, never the C text.
"""

from __future__ import annotations

from typing import Any

from collectors.bcc_env import bcc_uprobe_events, remove_uprobe_events
from collectors.cpu import CpuCollector

KINDS = ("usdt", "tracepoint")


class ProbeCountCollector(CpuCollector):
    def __init__(self, kind: str, *, tracepoint: str | None = None, binary: str | None = None,
                 addresses: list[int] | tuple[int, ...] = (), pid: int | None = None,
                 cgroup_id: int | None = None, target_comm: str | None = None,
                 interval_ms: int = 1000, host: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if kind == "usdt" and not (binary and addresses):
            raise ValueError("a USDT probe needs a binary and at least one address")
        if kind == "tracepoint" and not tracepoint:
            raise ValueError("a tracepoint trace needs category:name")
        super().__init__(frequency_hz=0, pid=pid, interval_ms=interval_ms, host=host,
                         counts_size=16384, stack_storage_size=8192, cgroup_id=cgroup_id,
                         target_comm=target_comm)
        self.kind = kind
        self.tracepoint = tracepoint
        self.binary = binary
        self.addresses = list(addresses)

    def cflags(self) -> list[str]:
        flags = super().cflags() + ["-DPROBE_COUNT"]
        if self.kind == "usdt":
            flags.append("-DPROBE_USER")
        return flags

    def attach_entry(self, bpf: Any) -> None:
        """Attach on_hit to the probe point (bcc detaches it in cleanup())."""
        if self.kind == "tracepoint":
            bpf.attach_tracepoint(tp=self.tracepoint.encode(), fn_name=b"on_hit")
            return
        pid = self.pid if self.pid is not None else -1
        for address in self.addresses:
            before = bcc_uprobe_events()
            try:
                bpf.attach_uprobe(name=self.binary.encode(), addr=address, fn_name=b"on_hit",
                                  pid=pid)
            except Exception as exc:  # bcc raises plain Exception when the kernel refuses
                # bcc retries a refused probe through tracefs and leaves the event behind.
                remove_uprobe_events(bcc_uprobe_events() - before)
                raise RuntimeError(f"the kernel refused a probe at {address:#x} in "
                                   f"{self.binary} ({exc})") from None
