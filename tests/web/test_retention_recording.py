"""Retention and a recording in progress: the size limit counts finished
sessions only, so one long recording cannot make prune delete them all."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_session_cli import WEBPROF_FOLDED, Cli, age_sessions, text

pytestmark = pytest.mark.web


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def test_huge_recording_does_not_push_out_finished_sessions(cli: Cli) -> None:
    small = [cli.imported(WEBPROF_FOLDED, f"small{i}") for i in range(3)]
    huge = cli.imported(WEBPROF_FOLDED, "recording")
    age_sessions(cli, {sid: 5 - i for i, sid in enumerate(small)})  # 1000 B each
    cli.sql("UPDATE webprof_session SET state = 'recording', size_bytes = ? WHERE id = ?",
            50 * 1024**3, huge)
    done = cli("prune", "--max-size", "1M")
    assert "nothing to prune" in text(done)
    assert "still recording hold 50.0 GiB" in done.stderr.decode()
    assert cli.session_ids() == [*small, huge]
    # Over the limit by the finished ones alone: the oldest finished go, not all.
    assert "removed 1 sessions" in text(cli("prune", "--max-size", "2000"))
    assert cli.session_ids() == [small[1], small[2], huge]
