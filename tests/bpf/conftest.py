"""Fixtures for the eBPF tier: compiled ground-truth workloads."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

WORKLOADS = Path(__file__).parent / "workloads"
CFLAGS = ["-O1", "-fno-omit-frame-pointer", "-fno-inline", "-fno-optimize-sibling-calls"]


@pytest.fixture(scope="session")
def cpu_shares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cpu_shares workload built with frame pointers (see its header)."""
    out = tmp_path_factory.mktemp("workloads") / "cpu_shares"
    subprocess.run(["gcc", *CFLAGS, "-Wall", "-o", str(out), str(WORKLOADS / "cpu_shares.c")],
                   check=True)
    return out

