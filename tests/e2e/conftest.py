"""Fixtures for end-to-end tests: real daphne, users, collectors, workloads.

``webprof_server`` is one real daphne (``python -m daphne webprof.asgi:application``)
per session on a free port, with a file-backed SQLite in a temporary data
directory migrated by ``manage.py migrate`` first.  The browser tests reuse it
together with ``credentials`` (a user made through ``manage.py``) and
``login_cookie`` (a session obtained by logging in over HTTP).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2eproc import ROOT, Collector, Daphne, login, make_daphne, start_collector, stop_process

from tests.conftest import require_bpf


@pytest.fixture(scope="session")
def webprof_server(tmp_path_factory) -> Iterator[Daphne]:
    """One real daphne for the session (stopped at the end)."""
    server = make_daphne(tmp_path_factory.mktemp("webprof-data"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path) -> Iterator[Daphne]:
    """A daphne of the test's own, for tests that kill and restart it."""
    server = make_daphne(tmp_path / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def credentials(webprof_server: Daphne) -> tuple[str, str]:
    """A (username, password) that can log in to ``webprof_server``."""
    username, password = "e2e-user", secrets.token_urlsafe(12)
    code = (
        "from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_user({username!r}, password={password!r})"
    )
    webprof_server.manage("shell", "-c", code)
    return username, password


@pytest.fixture(scope="session")
def login_cookie(webprof_server: Daphne, credentials: tuple[str, str]) -> str:
    return login(webprof_server.url, *credentials)


@pytest.fixture
def collector_process(webprof_server: Daphne, tmp_path) -> Iterator[Collector]:
    """A real collector process streaming this machine to ``webprof_server``."""
    require_bpf()
    collector = start_collector(webprof_server, f"e2e-{secrets.token_hex(3)}", tmp_path / "c.log")
    yield collector
    stop_process(collector.proc)


@pytest.fixture(scope="session")
def spin_binary(tmp_path_factory) -> Path:
    """tests/e2e/workloads/spin.c built with frame pointers (known function names)."""
    out = tmp_path_factory.mktemp("workloads") / "webprof_spin"
    src = ROOT / "tests" / "e2e" / "workloads" / "spin.c"
    # -O0: at -O1 Debian's gcc 12 gives the leaf webprof_spin_inner no frame even
    # with -fno-omit-frame-pointer, so frame-pointer unwinding skips its caller.
    flags = ["-O0", "-fno-omit-frame-pointer", "-fno-inline"]
    cmd = ["cc", *flags, "-o", str(out), str(src)]
    subprocess.run(cmd, check=True, timeout=60)
    return out
