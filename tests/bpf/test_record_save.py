"""``webprof record ... --save``: real eBPF recordings kept as sessions.

The CPU recording runs on cpu_shares (60/30/10 % of its CPU time in three
leaves by design, see tests/bpf/test_cpu.py): the flame tree read back from
the saved session must show the same shares within the same 3 points, and
hold exactly the stacks ``record`` wrote to its output file.  The session is
read in a separate interpreter through SessionReader, against the same data
directory the command used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bpf.test_cpu import WEBPROF, check_shares, parse_truth
from tests.conftest import require_bpf

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parents[2]
SAVED = re.compile(r"saved session (\d+) '([^']*)' \(\d+ intervals, [^)]*\): (\S+)")

READ_SESSION = """
import django, json, sys
django.setup()
from webprof.sessions.models import Session
from webprof.sessions.store import SessionReader
s = Session.objects.get(pk=int(sys.argv[1]))
reader = SessionReader(s)
kinds = [k for k in s.kinds if k in ("cpu", "offcpu", "offwake")]
out = {f: getattr(s, f) for f in ("name", "host", "kernel", "frequency_hz", "interval_ms",
                                  "kinds", "collectors", "health", "source", "state",
                                  "intervals", "size_bytes", "started_ms", "ended_ms")}
out["stacks"] = {";".join(k): v for k, v in reader.tree(kinds[0]).tree.stacks()} if kinds else {}
out["latency"] = {k: reader.latency(k) for k in s.kinds if k not in kinds}
print(json.dumps(out))
"""


@pytest.fixture(autouse=True)
def _bpf() -> None:
    require_bpf()


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WEBPROF_") and k != "DATABASE_URL"}
    return {**env, "WEBPROF_DATA_DIR": str(data_dir),
            "WEBPROF_PUBLIC_URL": "http://prof.test:8123"}


def read_session(env: dict[str, str], sid: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", READ_SESSION, str(sid)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**env, "DJANGO_SETTINGS_MODULE": "webprof.settings"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def saved(stderr: str, name: str) -> int:
    match = SAVED.search(stderr)
    assert match, stderr
    sid, got_name, url = int(match[1]), match[2], match[3]
    assert got_name == name
    assert url == f"http://prof.test:8123/sessions/{sid}/"
    return sid


def test_record_cpu_save_keeps_the_ground_truth(cpu_shares: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    proc = subprocess.Popen([str(cpu_shares), "60"], stdout=subprocess.PIPE, text=True)
    out = tmp_path / "cpu.folded"
    rec = subprocess.run([WEBPROF, "record", "cpu", "--duration", "3", "--frequency", "499",
                          "--pid", str(proc.pid), "-o", str(out), "--save", "shares run"],
                         capture_output=True, text=True, timeout=120, env=env)
    proc.terminate()
    truth = parse_truth(proc.communicate(timeout=10)[0])
    assert rec.returncode == 0, rec.stderr
    assert "Traceback" not in rec.stderr
    session = read_session(env, saved(rec.stderr, "shares run"))

    # The output file is still written, and the session holds exactly its stacks.
    written = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1])
               for line in out.read_text().splitlines()}
    assert session["stacks"] == written
    stacks = []
    for stack, weight in session["stacks"].items():
        comm, *frames = stack.split(";")
        assert comm == "cpu_shares"  # --pid filtered in the kernel
        stacks.append((frames, weight))
    check_shares(stacks, truth, min_samples=800)

    assert session["source"] == "cli" and session["state"] == "complete"
    assert session["kinds"] == ["cpu"] and session["frequency_hz"] == 499
    assert session["collectors"] == {"cpu": {"pid": proc.pid, "frequency": 499}}
    assert session["host"] == os.uname().nodename and session["kernel"] == os.uname().release
    assert session["health"]["cpu"]["samples"] >= sum(written.values())
    assert 3 <= session["intervals"] <= 5 and session["size_bytes"] > 0
    assert 2500 <= session["ended_ms"] - session["started_ms"] <= 4500


def test_record_syscall_save_keeps_latency_chunks(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    # Runs until killed: the program takes a second or two to compile and attach.
    busy = subprocess.Popen(["dd", "if=/dev/zero", "of=/dev/null", "bs=4k"],
                            stderr=subprocess.DEVNULL)
    rec = subprocess.run([WEBPROF, "record", "syscall", "--duration", "2", "--format", "json",
                          "--pid", str(busy.pid), "--save", "syscalls"],
                         capture_output=True, text=True, timeout=120, env=env)
    busy.kill()
    busy.wait()
    assert rec.returncode == 0, rec.stderr
    printed = json.loads(rec.stdout)["series"]  # stdout still carries the result
    session = read_session(env, saved(rec.stderr, "syscalls"))
    assert session["kinds"] == ["syscall"] and session["stacks"] == {}
    chunks = session["latency"]["syscall"]
    assert len(chunks) == session["intervals"] >= 2
    assert all(c["interval_ms"] > 0 for c in chunks)
    # Per syscall, the chunks add up to what the command printed.
    counts: dict[str, int] = {}
    for chunk in chunks:
        for name, buckets in chunk["series"].items():
            counts[name] = counts.get(name, 0) + sum(n for _, _, n in buckets)
    assert counts == {name: sum(n for _, _, n in b) for name, b in printed.items()}
    assert counts.get("read", 0) > 1000 and counts.get("write", 0) > 1000, counts
