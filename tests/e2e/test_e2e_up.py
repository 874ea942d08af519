"""``webprof up``: admin account, server + collector children, clean stops."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from e2eproc import ROOT, free_port, login, wait_for_port

from tests.conftest import require_bpf

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_up(tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log = tmp_path / "up.log"
    env = {"WEBPROF_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "webprof.cli", "up", "--port", str(port), "--interval", "0.5"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_for_port(port, proc, log, 30)
    return proc, port, log


def test_up_serves_collects_and_stops_on_sigterm(tmp_path):
    require_bpf()
    proc, port, log = start_up(tmp_path)
    try:
        wait_for(lambda: "webprof is up" in log.read_text(), 20, "the 'up' line")
        text = log.read_text()
        password = re.search(r"created admin account 'admin' with password (\S+)", text)
        assert password, text
        saved = tmp_path / "data" / "admin-password"
        assert saved.read_text().strip() == password.group(1)
        assert saved.stat().st_mode & 0o777 == 0o600
        cookie = login(f"http://127.0.0.1:{port}", "admin", password.group(1))

        def host_connected() -> bool:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/hosts.json")
            req.add_header("Cookie", cookie)
            hosts = json.load(urllib.request.urlopen(req, timeout=5))["hosts"]
            return any(h["connected"] for h in hosts)

        wait_for(host_connected, 20, "the local collector to connect")
        kids = children(proc.pid)
        assert len(kids) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0, log.read_text()[-2000:]
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists(), f"child {kid} survived"


def test_up_stops_server_when_collector_dies(tmp_path):
    require_bpf()
    proc, _port, log = start_up(tmp_path)
    try:
        wait_for(lambda: "webprof is up" in log.read_text(), 20, "the 'up' line")
        server, collector = children(proc.pid)
        subprocess.run(["kill", "-KILL", str(collector)], check=True)
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 1
    assert "the collector exited with code -9; stopping the server" in log.read_text()
    assert not Path(f"/proc/{server}").exists()
