"""Shared test helpers.

eBPF tests call :func:`require_bpf`.  On a machine without eBPF they skip with
the reason printed; with ``WEBPROF_REQUIRE_BPF=1`` (set by ``make test`` and
CI) the same condition is a failure, so a CI machine that lost its eBPF
support cannot pass by skipping.
"""

from __future__ import annotations

import functools
import os

import pytest


@functools.cache
def _bpf_problem() -> str | None:
    if os.geteuid() != 0:
        return "not root: eBPF tests need root (or CAP_BPF + CAP_PERFMON)"
    try:
        from collectors import bcc_env

        bcc_env.prepare()
        import bcc  # noqa: F401
    except Exception as exc:  # any failure here means "no eBPF on this machine"
        return f"eBPF is not usable here: {type(exc).__name__}: {exc}"
    return None


def require_bpf() -> None:
    problem = _bpf_problem()
    if problem is None:
        return
    if os.environ.get("WEBPROF_REQUIRE_BPF") == "1":
        pytest.fail(f"WEBPROF_REQUIRE_BPF=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def bcc_ready() -> None:
    require_bpf()
