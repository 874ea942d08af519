"""The registry's arguments per kind, from a live config and from a checked trace.

The loader classes are replaced by one that records its arguments: what is
tested is which keywords each kind gets (the bpf tier builds the real ones).
"""

from __future__ import annotations

import pytest

from collectors import registry
from collectors.tracecheck import HostFacts
from webprof.core.protocol import CollectorConfig
from webprof.core.tracespec import TraceSpec

pytestmark = pytest.mark.unit


class Recorded:
    def __init__(self, **arguments: object) -> None:
        self.arguments = arguments


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "loader_class", lambda kind: Recorded)
    return lambda collector: collector.arguments


def test_live_collectors_get_their_options(built) -> None:
    config = CollectorConfig(collectors=["cpu"], frequency_hz=99, pid=42, comm="db",
                             min_block_us=5, max_block_us=900, user_threads_only=False)
    common = {"interval_ms": 500, "host": "h"}
    assert built(registry.for_config("cpu", config, 500, "h")) == {"frequency_hz": 99, **common}
    assert built(registry.for_config("offwake", config, 500, "h")) == {
        "kind": "offwake", "pid": 42, "comm": "db", "min_block_us": 5, "max_block_us": 900,
        "user_threads_only": False, **common}
    for kind in ("runqlat", "biolat", "syscall"):
        assert built(registry.for_config(kind, config, 500, "h")) == {"pid": 42, **common}


def test_traces_get_the_target_and_the_checked_fields(built) -> None:
    facts = HostFacts(binary="/usr/bin/app", cgroup_id=77, device=8 << 20,
                      syscalls=[0, 1], usdt_addresses=[0x1266])
    common = {"interval_ms": 1000, "host": "h", "cgroup_id": 77}
    process = {"pid": 42, "target_comm": None}

    def args(kind: str, **spec: object) -> dict:
        return built(registry.for_trace(TraceSpec(kind, 5, pid=42, **spec), facts, "h", 1000))

    assert args("cpu", frequency_hz=99) == {"frequency_hz": 99, **process, **common}
    assert args("offcpu", min_block_us=3) == {"kind": "offcpu", "min_block_us": 3,
                                              **process, **common}
    assert args("runqlat") == {**process, **common}
    assert args("syscall", syscalls=["read", "write"]) == {"syscalls": [0, 1], **process,
                                                           **common}
    assert args("funclat", symbols=["parse"]) == {"binary": "/usr/bin/app",
                                                  "symbols": ["parse"], **process, **common}
    assert args("usdt", probe="app:hit") == {"kind": "usdt", "binary": "/usr/bin/app",
                                             "addresses": [0x1266], **process, **common}
    assert args("tracepoint", tracepoint="sched:sched_switch") == {
        "kind": "tracepoint", "tracepoint": "sched:sched_switch", **process, **common}
    # No process target for block I/O: the device only.
    assert args("biolat", device="vda") == {"device": 8 << 20, **common}
