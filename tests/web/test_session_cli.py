"""The session sub-commands, run as a user runs them: the installed ``webprof``
console script in a subprocess, against a private data directory.

Each test gets its own WEBPROF_DATA_DIR (and so its own SQLite file, created
and migrated by the first command).  Sessions come from ``webprof import``,
or, where a test needs real timing, from synthetic deltas saved by a small
script through the same store the recorder uses.  The test reads the
database file directly with sqlite3 to check what was (not) created and to
age sessions for the retention tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.test_formats import (
    BCC_PROFILE_F,
    STACKCOLLAPSE_PERF,
    WEBPROF_FOLDED,
    check_speedscope_schema,
)

pytestmark = pytest.mark.web

ROOT = Path(__file__).resolve().parents[2]
WEBPROF = str(ROOT / ".venv" / "bin" / "webprof")
DAY_MS = 86_400_000


class Cli:
    """Runs ``webprof`` with one data directory; reads its database."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("WEBPROF_") and k != "DATABASE_URL"}
        self.env["WEBPROF_DATA_DIR"] = str(data_dir)

    def __call__(self, *args: str, stdin: bytes | None = None, ok: bool = True,
                 **env: str) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([WEBPROF, *args], input=stdin, capture_output=True, timeout=60,
                              env={**self.env, **env})
        if ok:
            assert proc.returncode == 0, proc.stderr.decode()
        assert b"Traceback" not in proc.stderr, proc.stderr.decode()
        return proc

    def fails(self, *args: str, stdin: bytes | None = None, **env: str) -> str:
        """The one error line of a command that must exit 2."""
        proc = self(*args, stdin=stdin, ok=False, **env)
        err = proc.stderr.decode()
        assert proc.returncode == 2, (proc.returncode, err)
        assert len(err.strip().splitlines()) == 1, err
        return err.strip()

    def imported(self, text: str, name: str) -> int:
        return int(self("import", "-", "--name", name, stdin=text.encode()).stdout)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data_dir / "webprof.sqlite3")

    def sql(self, query: str, *params: object) -> list[tuple]:
        with self.db() as conn:
            return conn.execute(query, params).fetchall()

    def session_ids(self) -> list[int]:
        return [r[0] for r in self.sql("SELECT id FROM webprof_session ORDER BY id")]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def text(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode()


def test_import_all_three_dialects_then_list_and_search(cli: Cli) -> None:
    own = cli.imported(WEBPROF_FOLDED, "own output")
    perf = cli.imported(STACKCOLLAPSE_PERF, "perf run")
    bcc = cli.imported(BCC_PROFILE_F, "bcc profile")
    assert [own, perf, bcc] == cli.session_ids()
    rows = json.loads(text(cli("sessions", "--json")))
    assert [r["id"] for r in rows] == [bcc, perf, own]  # newest first
    by_name = {r["name"]: r for r in rows}
    assert by_name["perf run"]["kinds"] == ["cpu"] and by_name["perf run"]["state"] == "complete"
    assert by_name["perf run"]["source"] == "import" and by_name["perf run"]["owner"] is None
    assert all(r["size_bytes"] > 0 for r in rows)
    listing = text(cli("sessions")).splitlines()
    assert listing[0].split()[:4] == ["ID", "NAME", "HOST", "KINDS"]
    assert "STATE" in listing[0] and len(listing) == 4
    assert any("bcc profile" in line and "complete" in line for line in listing)
    found = json.loads(text(cli("sessions", "-q", "PERF", "--json")))
    assert [r["id"] for r in found] == [perf]
    # The stored totals are the files' totals (167 and 298 samples, see test_formats).
    totals = dict(cli.sql("SELECT session_id, SUM(weight) FROM webprof_profilechunk "
                          "WHERE level = 0 GROUP BY session_id"))
    assert totals == {own: 100, perf: 167, bcc: 298}


def test_import_from_a_file_and_bad_files_create_nothing(cli: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good.folded"
    good.write_text(WEBPROF_FOLDED)
    first = int(text(cli("import", str(good), "--name", "from file")))
    bad = "app;main 3\napp;main;x 2\napp;main;y two\napp;z 1\n"
    err = cli.fails("import", "-", "--name", "broken", stdin=bad.encode())
    assert "line 3" in err and "y two" in err, err
    (tmp_path / "bin.folded").write_bytes(b"app;main 1\n\xff\xfe 2\n")
    assert "UTF-8" in cli.fails("import", str(tmp_path / "bin.folded"), "--name", "x")
    assert "No such file" in cli.fails("import", str(tmp_path / "missing"), "--name", "x")
    assert "no stacks" in cli.fails("import", "-", "--name", "z", stdin=b"# nothing\n")
    assert cli.session_ids() == [first]  # nothing partial was created
    assert cli.sql("SELECT COUNT(*) FROM webprof_sessionstack WHERE session_id != ?",
                   first) == [(0,)]


def test_share_shares_unshare(cli: Cli) -> None:
    sid = cli.imported(WEBPROF_FOLDED, "to share")
    url = text(cli("share", "to share", "--expires", "7d",
                   WEBPROF_PUBLIC_URL="https://prof.example.com/")).strip()
    prefix = "https://prof.example.com/s/"
    assert url.startswith(prefix) and url.endswith("/"), url
    token = url[len(prefix):-1]
    assert len(token) >= 40
    # Stored hashed, never in clear, with its expiry one week out.
    digest, stored_prefix, expires = cli.sql(
        "SELECT digest, prefix, expires FROM webprof_sharelink WHERE session_id = ?", sid)[0]
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert stored_prefix == token[:8] and expires is not None
    assert token not in (cli.data_dir / "webprof.sqlite3").read_bytes().decode("latin-1")
    other = text(cli("share", str(sid), "--base-url", "http://10.0.0.5:9000")).strip()
    assert other.startswith("http://10.0.0.5:9000/s/") and other != url
    default = text(cli("share", str(sid))).strip()
    assert default.startswith(f"http://{socket.gethostname()}:8000/s/"), default
    listed = json.loads(text(cli("shares", str(sid), "--json")))
    assert len(listed) == 3 and listed[0]["prefix"] == token[:8]
    assert listed[0]["expires"] is not None and listed[1]["expires"] is None
    assert token[:8] in text(cli("shares", "to share"))

    # Tokens are URL-safe base64 and may start with "-": "--" ends the options.
    assert "revoked" in text(cli("unshare", "--", token[:8]))
    cli("unshare", other)  # the whole URL works too
    assert [r["prefix"] for r in json.loads(text(cli("shares", str(sid), "--json")))] == [
        default.rstrip("/").rsplit("/", 1)[1][:8]]
    assert "no share link" in cli.fails("unshare", "nosuchtk")
    assert "no share link" in cli.fails("unshare", "a" * 43)
    assert "30m, 12h, 7d" in cli.fails("share", str(sid), "--expires", "soon")
    assert "http" in cli.fails("share", str(sid), "--base-url", "ftp://x")


def test_sessions_are_found_by_id_or_exact_name(cli: Cli) -> None:
    a = cli.imported(WEBPROF_FOLDED, "twin")
    b = cli.imported(WEBPROF_FOLDED, "twin")
    err = cli.fails("share", "twin")
    assert f"ids {a}, {b}" in err, err
    assert "no session" in cli.fails("shares", "twi")
    assert "no session" in cli.fails("export", "999", "--format", "folded", "-o", "-")
    cli("shares", str(b))


def test_folded_round_trip_is_byte_identical(cli: Cli, tmp_path: Path) -> None:
    sid = cli.imported(STACKCOLLAPSE_PERF, "perf")
    first = cli("export", str(sid), "--format", "folded", "-o", "-").stdout
    again = cli.imported(first.decode(), "again")
    out = tmp_path / "again.folded"
    cli("export", str(again), "--format", "folded", "-o", str(out))
    assert out.read_bytes() == first
    assert sum(int(line.rsplit(b" ", 1)[1]) for line in first.splitlines()) == 167


def test_speedscope_export_passes_the_schema_check(cli: Cli, tmp_path: Path) -> None:
    cli.imported(WEBPROF_FOLDED, "ss")
    out = tmp_path / "s.json"
    cli("export", "ss", "--format", "speedscope", "-o", str(out))
    doc = json.loads(out.read_text())
    check_speedscope_schema(doc)
    assert doc["profiles"][0]["endValue"] == 100
    assert doc["profiles"][0]["unit"] == "none"


@pytest.mark.skipif(shutil.which("go") is None,
                    reason="go not on PATH: scripts/setup.sh installs golang-go (go tool pprof)")
def test_pprof_export_is_read_by_go_tool_pprof(cli: Cli, tmp_path: Path) -> None:
    sid = cli.imported(WEBPROF_FOLDED, "pp")
    out = tmp_path / "cpu.pb.gz"
    cli("export", str(sid), "--format", "pprof", "--kind", "cpu", "-o", str(out))
    proc = subprocess.run(["go", "tool", "pprof", "-top", "-nodecount=100", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for leaf in ("lex", "parse", "render", "write_[k]", "readline", "bash"):
        assert leaf in proc.stdout, proc.stdout
    assert "100 total" in proc.stdout, proc.stdout


TIMED_SESSION = """
import django, sys
django.setup()
from webprof.core.protocol import LatencyDelta, ProfileDelta
from webprof.sessions.store import save_deltas
T0 = 1_750_000_000_000
def second(s, leaf):  # 100 samples, 2 in each 20 ms slot of the second
    return ProfileDelta(host="h", kind="cpu", seq=s, start_ms=T0 + s * 1000, interval_ms=1000,
                        frequency_hz=100, strings=["app", "main", leaf],
                        stacks=[[7, 0, 100, 1, 2]], health={"samples": 100}, slot_ms=20,
                        slots=[[x for i in range(50) for x in (i, 2)]])
deltas = [second(s, "early" if s < 5 else "late") for s in range(10)]
deltas.append(LatencyDelta(host="h", kind="syscall", seq=0, start_ms=T0, interval_ms=1000,
                           series={"read": [[2, 4, 9]]}, health={}))
print(save_deltas(deltas, name=sys.argv[1], host="h", started_ms=T0).pk)
"""


def timed_session(cli: Cli, name: str) -> int:
    """10 s of CPU samples: ``early`` for 5 s, then ``late``; plus syscall latency."""
    cli("sessions")  # creates and migrates the database
    proc = subprocess.run([sys.executable, "-c", TIMED_SESSION, name], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env={**cli.env, "DJANGO_SETTINGS_MODULE": "webprof.settings"})
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def folded(cli: Cli, *args: str) -> dict[str, int]:
    out = text(cli("export", *args, "--format", "folded", "-o", "-"))
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in out.splitlines()}


def test_export_ranges_in_seconds_from_the_start(cli: Cli) -> None:
    sid = str(timed_session(cli, "timed"))
    assert folded(cli, sid) == {"app;main;early": 500, "app;main;late": 500}
    assert folded(cli, sid, "--to", "5") == {"app;main;early": 500}
    assert folded(cli, sid, "--from", "5") == {"app;main;late": 500}
    # Slot precision: 4.5 s .. 5.5 s is 25 slots of each phase.
    assert folded(cli, sid, "--from", "4.5", "--to", "5.5") == {
        "app;main;early": 50, "app;main;late": 50}
    assert "after" in cli.fails("export", sid, "--format", "folded", "--from", "3", "--to",
                                "2", "-o", "-")
    assert "no 'offcpu' profile" in cli.fails("export", sid, "--format", "pprof", "--kind",
                                             "offcpu", "-o", "-")
    rows = json.loads(text(cli("sessions", "--json")))
    assert rows[0]["kinds"] == ["cpu", "syscall"] and rows[0]["duration_ms"] == 10_000


# ------------------------------------------------------------------ prune


def age_sessions(cli: Cli, days: dict[int, float], size: int = 1000) -> None:
    """Move sessions ``days`` into the past and give each ``size`` bytes."""
    now = int(time.time() * 1000)
    with cli.db() as conn:
        for sid, d in days.items():
            start = now - int(d * DAY_MS)
            conn.execute("UPDATE webprof_session SET started_ms = ?, ended_ms = ?, "
                         "size_bytes = ? WHERE id = ?", (start, start + 60_000, size, sid))


def test_prune_by_age_keeps_recording_sessions(cli: Cli) -> None:
    old, older, recording, new = (cli.imported(WEBPROF_FOLDED, n)
                                  for n in ("old", "older", "recording", "new"))
    age_sessions(cli, {old: 31, older: 45, recording: 60, new: 2})
    cli.sql("UPDATE webprof_session SET state = 'recording' WHERE id = ?", recording)
    dry = text(cli("prune", "--max-age", "30d", "--dry-run"))
    assert "would remove session" in dry and "'old'" in dry and "'older'" in dry
    assert "'recording'" not in dry and "'new'" not in dry and "would free 2.0 KiB" in dry
    assert cli.session_ids() == [old, older, recording, new]
    done = text(cli("prune", "--max-age", "30d"))
    assert done.count("removed session") == 2 and "removed 2 sessions, freed 2.0 KiB" in done
    assert cli.session_ids() == [recording, new]
    # Everything of theirs went with them, and the WAL was checkpointed.
    for table in ("webprof_profilechunk", "webprof_sessionstack", "webprof_sessionstring"):
        assert cli.sql(f"SELECT COUNT(*) FROM {table} WHERE session_id IN (?, ?)",
                       old, older) == [(0,)]
    wal = cli.data_dir / "webprof.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    # Idempotent: a second run has nothing to do and says so.
    again = cli("prune", "--max-age", "30d")
    assert "nothing to prune" in text(again) and again.returncode == 0


def test_prune_by_size_removes_the_oldest_first(cli: Cli) -> None:
    ids = [cli.imported(WEBPROF_FOLDED, f"s{i}") for i in range(5)]
    recording = ids[0]
    age_sessions(cli, {sid: 10 - i for i, sid in enumerate(ids)})  # 1000 B each
    cli.sql("UPDATE webprof_session SET state = 'recording' WHERE id = ?", recording)
    # 4000 B finished (the recording is not counted); the limit (from the
    # setting) is 2.5 KiB = 2560 B.
    dry = text(cli("prune", "--dry-run", WEBPROF_RETENTION_MAX_BYTES="2.5K"))
    assert [line.split()[3] for line in dry.splitlines() if line.startswith("would remove")] \
        == [str(ids[1]), str(ids[2])]
    text(cli("prune", "--vacuum", WEBPROF_RETENTION_MAX_BYTES="2.5K"))
    assert cli.session_ids() == [recording, ids[3], ids[4]]
    # A flag overrides the setting; "none" lifts the limit.
    assert "no limit set" in text(cli("prune", "--max-size", "none",
                                      WEBPROF_RETENTION_MAX_BYTES="1K"))
    assert "no limit set" in text(cli("prune"))
    assert "10G" in cli.fails("prune", "--max-size", "lots")
    err = cli.fails("prune", WEBPROF_RETENTION_MAX_BYTES="ten")
    assert "WEBPROF_RETENTION_MAX_BYTES" in err, err
    err = cli.fails("prune", WEBPROF_RETENTION_MAX_AGE_DAYS="-3")
    assert "WEBPROF_RETENTION_MAX_AGE_DAYS" in err, err
    assert cli.session_ids() == [recording, ids[3], ids[4]]


def test_prune_takes_a_lock(cli: Cli) -> None:
    sid = cli.imported(WEBPROF_FOLDED, "locked")
    age_sessions(cli, {sid: 40})
    with open(cli.data_dir / "prune.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = cli("prune", "--max-age", "30d", ok=False)
        assert busy.returncode == 1 and b"another prune is running" in busy.stderr
        assert cli.session_ids() == [sid]
        waiting = subprocess.Popen([WEBPROF, "prune", "--max-age", "30d", "--wait"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env)
        time.sleep(2)
        assert waiting.poll() is None  # blocked on the lock
        assert cli.session_ids() == [sid]
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert b"removed 1 sessions" in out
    assert cli.session_ids() == []


def test_every_session_command_has_help_with_examples(cli: Cli) -> None:
    for name in ("sessions", "share", "unshare", "shares", "export", "import", "prune"):
        out = text(cli(name, "--help"))
        assert "examples:" in out and f"webprof {name}" in out.split("examples:")[1], name
    assert "WEBPROF_PUBLIC_URL" in text(cli("share", "--help"))
    assert "--vacuum" in text(cli("prune", "--help"))
    assert "--save NAME" in text(cli("record", "cpu", "--help"))
