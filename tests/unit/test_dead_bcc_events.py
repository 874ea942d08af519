"""Which tracefs events a starting collector removes: bcc's, of dead pids only."""

from __future__ import annotations

import os

import pytest

from collectors import bcc_env

pytestmark = pytest.mark.unit


def test_only_bcc_events_of_dead_processes(tmp_path) -> None:
    dead = 999_999
    assert not os.path.exists(f"/proc/{dead}")
    events = tmp_path / "uprobe_events"
    events.write_text(
        f"p:uprobes/p__bin_true_0x1000_bcc_{dead} /bin/true:0x0000000000001000\n"
        f"r:uprobes/r__bin_true_0x1000_bcc_{dead} /bin/true:0x0000000000001000\n"
        "p:uprobes/p__bin_true_0x1000_bcc_1 /bin/true:0x0000000000001000\n"
        f"p:uprobes/p__bin_true_0x1000_bcc_{os.getpid()} /bin/true:0x0000000000001000\n"
        f"p:uprobes/mine_{dead} /bin/true:0x0000000000001000\n")
    assert bcc_env.dead_bcc_events(str(events)) == {
        f"uprobes/p__bin_true_0x1000_bcc_{dead}", f"uprobes/r__bin_true_0x1000_bcc_{dead}"}
    assert bcc_env.dead_bcc_events(str(tmp_path / "missing")) == set()
