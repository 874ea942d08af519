"""`webprof collect --token-file`: a real collector process reads its token
from a private file, so the token is in no process's argv."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from e2eproc import ROOT, stop_process

from tests.conftest import require_bpf

pytestmark = pytest.mark.e2e


def collect(server, token_file: Path, name: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "webprof.cli", "collect", "--server", server.ws_url,
           "--token-file", str(token_file), "--name", name, "--interval", "0.5"]
    env = {"PATH": "/usr/bin:/bin"}  # no WEBPROF_TOKEN to fall back on
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def write_token(path: Path, token: str, mode: int) -> Path:
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def test_a_token_file_open_to_others_is_refused(webprof_server, tmp_path):
    token = write_token(tmp_path / "token", webprof_server.token, 0o644)
    proc = collect(webprof_server, token, "never-seen", tmp_path / "c.log")
    assert proc.wait(timeout=60) == 2
    out = (tmp_path / "c.log").read_text()
    assert "mode 0644" in out and f"chmod 600 {token}" in out


def test_collector_connects_with_a_private_token_file(webprof_server, login_cookie, tmp_path):
    require_bpf()
    name = f"tokfile-{secrets.token_hex(3)}"
    token = write_token(tmp_path / "token", webprof_server.token, 0o600)
    proc = collect(webprof_server, token, name, tmp_path / "c.log")
    try:
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert webprof_server.token.encode() not in argv
        deadline = time.monotonic() + 40
        while True:
            req = urllib.request.Request(webprof_server.url + "/api/hosts",
                                         headers={"Cookie": login_cookie})
            with urllib.request.urlopen(req, timeout=10) as resp:
                hosts = {h["name"]: h for h in json.loads(resp.read())["hosts"]}
            if hosts.get(name, {}).get("connected"):
                break
            assert proc.poll() is None, (tmp_path / "c.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "c.log").read_text()
            time.sleep(0.5)
    finally:
        stop_process(proc)
