"""Every regex that validates a field matches the whole value: ``re.match(r"^x$")``
accepts "x\n" because ``$`` also matches before a final newline."""

from __future__ import annotations

import pytest

from collectors.tracecheck import _prefix
from webprof.core.tracespec import SpecErrors, parse_spec

pytestmark = pytest.mark.unit

BASE = {
    "comm": {"kind": "cpu", "duration_s": 5, "target": "comm", "comm": "main"},
    "symbols": {"kind": "funclat", "duration_s": 5, "binary": "/bin/true", "symbols": ["main"]},
    "probe": {"kind": "usdt", "duration_s": 5, "binary": "/bin/true", "probe": "app:tick"},
    "tracepoint": {"kind": "tracepoint", "duration_s": 5,
                   "tracepoint": "sched:sched_switch"},
    "syscalls": {"kind": "syscall", "duration_s": 5, "syscalls": ["read"]},
    "device": {"kind": "biolat", "duration_s": 5, "device": "sda"},
}


def with_newline(field: str) -> dict:
    data = dict(BASE[field])
    value = data[field]
    data[field] = [value[0] + "\n"] if isinstance(value, list) else value + "\n"
    return data


@pytest.mark.parametrize("field", sorted(BASE))
def test_a_trailing_newline_is_refused(field: str) -> None:
    parse_spec(BASE[field])  # the value itself is fine
    with pytest.raises(SpecErrors) as info:
        parse_spec(with_newline(field))
    assert field in info.value.errors


def test_a_query_prefix_with_a_trailing_newline_is_refused() -> None:
    assert _prefix({"prefix": "ma"}) == "ma"
    with pytest.raises(ValueError, match="prefix"):
        _prefix({"prefix": "ma\n"})

