"""Session management pages in-process: record, list, manage, share, import, export.

The recorder's writer thread has its own database connection, so these tests
commit (``transaction=True``) for it to see the session rows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
from django.test import Client

from tests.unit.test_formats import check_speedscope_schema
from webprof.core.protocol import ProfileDelta
from webprof.models import Host
from webprof.sessions import share
from webprof.sessions.models import Session, ShareLink
from webprof.sessions.recording import RECORDER, now_ms
from webprof.sessions.store import SessionReader, save_deltas

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]

ORIGIN = 1_750_000_000_000
FOLDED = b"app;main;parse 30\napp;main;render 12\nbash;readline 5\n"


@pytest.fixture(autouse=True)
def no_recording_left():
    """A recording outliving its test would write into the next test's tables."""
    yield
    for sid in Session.objects.filter(state="recording").values_list("pk", flat=True):
        RECORDER.stop(sid)
    RECORDER.wait_idle()


def login(django_user_model, name: str, **extra) -> tuple[Client, object]:
    user = django_user_model.objects.create_user(name, password="s3cret-pass", **extra)
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def alice(django_user_model):
    return login(django_user_model, "alice")


@pytest.fixture
def host() -> Host:
    return Host.objects.create(name="box1", kernel="6.18.0-test", frequency_hz=99,
                               interval_ms=1000, wanted_collectors=["cpu", "syscall"],
                               collector_options={"frequency_hz": 99, "pid": 42})


def cpu_delta(start_ms: int, leaf: str = "hot", samples: int = 40,
              host: str = "box1") -> ProfileDelta:
    return ProfileDelta(host=host, kind="cpu", seq=0, start_ms=start_ms, interval_ms=1000,
                        frequency_hz=99, strings=["app", "main", leaf],
                        stacks=[[7, 0, samples, 1, 2]], health={"samples": samples},
                        slot_ms=20, slots=[[0, samples // 2, 10, samples - samples // 2]])


def status_of(client: Client, sid: int) -> dict:
    resp = client.get(f"/sessions/{sid}/status.json")
    assert resp.status_code == 200
    return resp.json()


def folded_lines(tree) -> set[str]:
    return set(tree.to_folded().splitlines())


# ------------------------------------------------------------------------ recording

def test_record_status_stop_keeps_the_fed_interval(alice, host):
    client, user = alice
    resp = client.post("/sessions/record/", {"host": "box1", "name": "", "duration_s": ""})
    assert resp.status_code == 201, resp.content
    body = resp.json()
    sid = body["id"]
    assert body == {"id": sid, "url": f"/sessions/{sid}/",
                    "status_url": f"/sessions/{sid}/status.json",
                    "stop_url": f"/sessions/{sid}/stop/"}
    session = Session.objects.get(pk=sid)
    assert session.name.startswith("box1 ") and session.owner == user
    assert (session.kernel, session.frequency_hz, session.interval_ms) == ("6.18.0-test", 99, 1000)
    assert session.collectors["collectors"] == ["cpu", "syscall"]
    assert session.collectors["pid"] == 42 and session.stop_at_ms is None
    assert session.source == "live" and session.state == "recording"

    RECORDER.feed(cpu_delta(now_ms()))
    RECORDER.feed(cpu_delta(now_ms(), host="other-host"))  # not recorded
    RECORDER.wait_idle()
    live = status_of(client, sid)
    assert live["state"] == "recording" and live["intervals"] == 1
    assert live["size_bytes"] > 0 and live["remaining_ms"] is None
    assert live["planned_ms"] is None and live["elapsed_ms"] >= 0

    assert client.post(f"/sessions/{sid}/stop/").status_code == 200
    RECORDER.wait_idle()
    done = status_of(client, sid)
    assert done["state"] == "complete" and done["intervals"] == 1
    session.refresh_from_db()
    assert session.kinds == ["cpu"] and session.intervals == 1
    tree = SessionReader(session).tree("cpu").tree
    assert folded_lines(tree) == {"app;main;hot 40"}
    # Stopping again: not recording any more.
    resp = client.post(f"/sessions/{sid}/stop/")
    assert resp.status_code == 409 and "not recording" in resp.json()["errors"]["__all__"]


def test_fixed_duration_recording_ends_by_itself(alice, host):
    client, _ = alice
    resp = client.post("/sessions/record/", {"host": "box1", "name": "short", "duration_s": "1"})
    sid = resp.json()["id"]
    first = status_of(client, sid)
    assert first["state"] == "recording" and first["planned_ms"] == 1000
    assert 0 <= first["remaining_ms"] <= 1000
    RECORDER.feed(cpu_delta(now_ms() - 500))
    deadline = time.monotonic() + 10
    while status_of(client, sid)["state"] != "complete":
        assert time.monotonic() < deadline, "a 1 s recording did not end within 10 s"
        time.sleep(0.2)
    session = Session.objects.get(pk=sid)
    assert session.name == "short" and session.intervals == 1 and session.state == "complete"


@pytest.mark.parametrize(("post", "field", "words"), [
    ({"duration_s": "0"}, "duration_s", "at least 1 second"),
    ({"duration_s": "86401"}, "duration_s", "at most 86400"),
    ({"duration_s": "ten"}, "duration_s", "whole number"),
    ({"name": "x" * 201}, "name", "at most 200"),
    ({"name": "bad\x07name"}, "name", "printable"),
    ({"host": ""}, "host", "which host"),
])
def test_record_validation_errors_name_the_field(alice, host, post, field, words):
    client, _ = alice
    resp = client.post("/sessions/record/", {"host": "box1", **post})
    assert resp.status_code == 400
    assert words in resp.json()["errors"][field]
    assert not Session.objects.exists()


def test_record_unknown_host_is_404_and_anonymous_is_sent_to_login(alice):
    client, _ = alice
    resp = client.post("/sessions/record/", {"host": "nosuch", "duration_s": "10"})
    assert resp.status_code == 404
    assert "no collector has ever connected as 'nosuch'" in resp.json()["errors"]["host"]
    resp = Client().post("/sessions/record/", {"host": "nosuch"})
    assert resp.status_code == 302 and resp["Location"].startswith("/login/")
    assert not Session.objects.exists()


def test_record_needs_the_csrf_token_the_live_page_carries(django_user_model, host):
    user = django_user_model.objects.create_user("csrf", password="s3cret-pass")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/hosts/box1/cpu/").content.decode()
    assert 'id="record"' in page and 'data-host="box1"' in page
    token = re.search(r'id="record-form".*?name="csrfmiddlewaretoken" value="([^"]+)"',
                      page, re.S).group(1)
    assert client.post("/sessions/record/", {"host": "box1"}).status_code == 403
    resp = client.post("/sessions/record/", {"host": "box1", "duration_s": "5"},
                       HTTP_X_CSRFTOKEN=token)
    assert resp.status_code == 201
    assert 'id="record"' in client.get("/hosts/box1/latency/syscall/").content.decode()


# ------------------------------------------------------------------------ list

def make_sessions(owner, n: int, **fields) -> list[Session]:
    return [Session.objects.create(
        name=f"s{i:03d}", host="box1", started_ms=ORIGIN + i * 1000,
        ended_ms=ORIGIN + i * 1000 + (i % 7) * 1000, size_bytes=i * 100, owner=owner,
        state="complete", **fields) for i in range(n)]


def row_ids(resp) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-id="(\d+)"', resp.content.decode())]


def test_list_search_sort_and_pagination(alice, django_user_model):
    client, user = alice
    _, zoe = login(django_user_model, "zoe")
    sessions = make_sessions(user, 120)
    Session.objects.create(name="Checkout regression", host="db-7", notes="after the DEPLOY",
                           started_ms=ORIGIN, owner=zoe, size_bytes=3 * 1024 * 1024)
    resp = client.get("/sessions/")
    page = resp.content.decode()
    assert resp.status_code == 200 and "page 1 of 3" in page
    ids = row_ids(resp)
    assert len(ids) == 50 and ids[0] == sessions[-1].pk  # newest first by default
    assert len(row_ids(client.get("/sessions/?page=3"))) == 21
    assert "3.0 MiB" in client.get("/sessions/?q=checkout").content.decode()
    for q in ("CHECKOUT", "DB-7", "deploy", "ZOE"):
        found = row_ids(client.get("/sessions/", {"q": q}))
        assert found == [Session.objects.get(name="Checkout regression").pk], q
    assert len(row_ids(client.get("/sessions/?q=s11"))) == 10  # s110..s119
    by_size = row_ids(client.get("/sessions/?sort=size"))
    assert by_size[:2] == [sessions[0].pk, sessions[1].pk]
    longest = row_ids(client.get("/sessions/?sort=-duration&q=s0"))
    assert Session.objects.get(pk=longest[0]).duration_ms == 6000
    assert row_ids(client.get("/sessions/?sort=-owner"))[0] == \
        Session.objects.get(name="Checkout regression").pk
    assert row_ids(client.get("/sessions/?sort=owner"))[0] == sessions[0].pk
    # An unknown sort key (or an injection attempt) falls back to newest first.
    newest = row_ids(client.get("/sessions/"))[:3]
    assert row_ids(client.get("/sessions/?sort=password"))[:3] == newest
    assert row_ids(client.get("/sessions/?sort=-owner__password"))[0] == sessions[-1].pk


def test_list_empty_state_says_how_to_record(alice):
    client, _ = alice
    page = client.get("/sessions/").content.decode()
    assert "No sessions yet" in page and "Record" in page and "Import folded file" in page
    assert Client().get("/sessions/").status_code == 302


# ------------------------------------------------------------------------ manage

def test_rename_and_notes_owner_staff_others_anonymous(alice, django_user_model):
    client, user = alice
    session = make_sessions(user, 1)[0]
    resp = client.post(f"/sessions/{session.pk}/edit/",
                       {"name": "  renamed ", "notes": "before the fix"})
    assert resp.status_code == 302 and resp["Location"] == f"/sessions/{session.pk}/manage/"
    session.refresh_from_db()
    assert (session.name, session.notes) == ("renamed", "before the fix")
    other, _ = login(django_user_model, "mallory")
    resp = other.post(f"/sessions/{session.pk}/edit/", {"name": "pwned"})
    assert resp.status_code == 403 and "owner" in resp.content.decode()
    page = other.get(f"/sessions/{session.pk}/manage/").content.decode()
    assert "Only the session's owner or an admin" in page and "edit-form" not in page
    resp = Client().post(f"/sessions/{session.pk}/edit/", {"name": "anon"})
    assert resp.status_code == 302 and resp["Location"].startswith("/login/")
    staff, _ = login(django_user_model, "admin", is_staff=True)
    resp = staff.post(f"/sessions/{session.pk}/edit/", {"name": "by staff", "notes": "",
                                                      "next": "/sessions/"})
    assert resp.status_code == 302 and resp["Location"] == "/sessions/"
    resp = staff.post(f"/sessions/{session.pk}/edit/", {"name": "", "next": "https://evil/"})
    assert resp.status_code == 400 and "Give the session a name" in resp.content.decode()
    resp = staff.post(f"/sessions/{session.pk}/edit/", {"name": "x", "next": "https://evil/"})
    assert resp["Location"] == f"/sessions/{session.pk}/manage/"
    session.refresh_from_db()
    assert session.name == "x"
    assert client.post("/sessions/999999/edit/", {"name": "x"}).status_code == 404


def test_viewer_page_embeds_the_manage_controls_for_the_owner(alice, django_user_model):
    client, user = alice
    session = make_sessions(user, 1, notes="kept <b>notes</b>")[0]
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert 'id="edit-form"' in page and f'value="{session.name}"' in page
    assert "kept &lt;b&gt;notes&lt;/b&gt;</textarea>" in page
    assert f'name="next" value="/sessions/{session.pk}/"' in page
    resp = client.post(f"/sessions/{session.pk}/edit/",
                       {"name": "from viewer", "notes": "", "next": f"/sessions/{session.pk}/"})
    assert resp["Location"] == f"/sessions/{session.pk}/"
    other, _ = login(django_user_model, "mallory")
    assert 'id="edit-form"' not in other.get(f"/sessions/{session.pk}/").content.decode()


def test_delete_confirms_then_deletes_and_stops_a_recording(alice, django_user_model, host):
    client, user = alice
    session = save_deltas([cpu_delta(ORIGIN + s * 1000) for s in range(3)], name="old",
                          host="box1", started_ms=ORIGIN, owner=user)
    other, _ = login(django_user_model, "mallory")
    assert other.get(f"/sessions/{session.pk}/delete/").status_code == 403
    assert other.post(f"/sessions/{session.pk}/delete/").status_code == 403
    page = client.get(f"/sessions/{session.pk}/delete/").content.decode()
    facts = " ".join(page.split())
    assert "3 recorded intervals (4 profile chunks, 0 latency chunks)" in facts, facts
    assert f"{session.size_bytes} B on disk" in page
    resp = client.post(f"/sessions/{session.pk}/delete/")
    assert resp.status_code == 302 and resp["Location"] == "/sessions/"
    assert not Session.objects.filter(pk=session.pk).exists()
    assert "Deleted session" in client.get("/sessions/").content.decode()
    # A recording session is stopped before its rows go.
    sid = client.post("/sessions/record/", {"host": "box1"}).json()["id"]
    assert "stopped first" in client.get(f"/sessions/{sid}/delete/").content.decode()
    assert client.post(f"/sessions/{sid}/delete/").status_code == 302
    assert not RECORDER.is_recording(sid) and not Session.objects.filter(pk=sid).exists()
    RECORDER.feed(cpu_delta(now_ms()))
    RECORDER.wait_idle()
    assert not Session.objects.filter(pk=sid).exists()


def test_share_shown_once_resolves_and_revokes(alice, django_user_model):
    client, user = alice
    session = make_sessions(user, 1)[0]
    resp = client.post(f"/sessions/{session.pk}/shares/", {"expires": "7d"})
    page = resp.content.decode()
    assert resp.status_code == 200
    url = re.search(r'id="share-url" type="text" readonly value="([^"]+)"', page).group(1)
    token = re.fullmatch(r"http://testserver/s/([A-Za-z0-9_-]{40,})/", url).group(1)
    link = share.resolve(token)
    assert link is not None and link.session == session and link.created_by == user
    assert link.expires is not None
    again = client.get(f"/sessions/{session.pk}/manage/").content.decode()
    assert token not in again and f"/s/{link.prefix}…" in again  # the token is shown once
    other, _ = login(django_user_model, "mallory")
    assert other.post(f"/sessions/{session.pk}/shares/", {"expires": "1d"}).status_code == 403
    assert other.post(f"/sessions/shares/{link.pk}/revoke/").status_code == 403
    assert share.resolve(token) is not None
    resp = client.post(f"/sessions/{session.pk}/shares/", {"expires": "forever"})
    assert resp.status_code == 400 and "Choose an expiry" in resp.content.decode()
    resp = client.post(f"/sessions/shares/{link.pk}/revoke/")
    assert resp.status_code == 302
    assert share.resolve(token) is None
    assert f"/s/{link.prefix}…" not in client.get(resp["Location"]).content.decode()
    never = client.post(f"/sessions/{session.pk}/shares/", {"expires": "never"})
    assert "never expires" in never.content.decode()
    assert ShareLink.objects.filter(session=session, expires__isnull=True).count() == 1


# ------------------------------------------------------------------------ import, export

def upload(client: Client, data: bytes, name: str = "imported"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/sessions/import/",
                       {"name": name, "file": SimpleUploadedFile("x.folded", data)})


def test_import_good_and_bad_files(alice):
    client, user = alice
    assert "Import a folded file" in client.get("/sessions/import/").content.decode()
    resp = upload(client, FOLDED)
    session = Session.objects.get()
    assert resp.status_code == 302 and resp["Location"] == f"/sessions/{session.pk}/"
    assert session.source == "import" and session.owner == user and session.kinds == ["cpu"]
    assert folded_lines(SessionReader(session).tree("cpu").tree) == \
        set(FOLDED.decode().splitlines())
    for bad, words in ((b"a;b 1\nc;d 2\nthis line has no count\n", "line 3"),
                       (b"ok 1\n\xff\xfe 2\n", "not UTF-8"),
                       (b"", "empty")):
        resp = upload(client, bad, name="bad")
        assert resp.status_code == 400 and words in resp.content.decode(), words
    assert upload(client, FOLDED, name="").status_code == 400
    assert Session.objects.count() == 1


@pytest.fixture
def recorded(alice) -> Session:
    deltas = [cpu_delta(ORIGIN + s * 1000, leaf="early" if s < 2 else "late")
              for s in range(4)]
    return save_deltas(deltas, name="two phases", host="box1", started_ms=ORIGIN,
                       owner=alice[1], frequency_hz=99, interval_ms=1000)


def test_export_folded_range_and_speedscope(alice, recorded):
    client, _ = alice
    resp = client.get(f"/sessions/{recorded.pk}/export/", {"format": "folded", "kind": "cpu"})
    assert resp.status_code == 200
    assert resp["Content-Disposition"] == 'attachment; filename="two-phases.cpu.folded"'
    assert set(resp.content.decode().splitlines()) == {"app;main;early 80", "app;main;late 80"}
    ranged = client.get(f"/sessions/{recorded.pk}/export/",
                        {"format": "folded", "from": ORIGIN + 2000, "to": ORIGIN + 4000})
    assert ranged.content.decode().splitlines() == ["app;main;late 80"]
    resp = client.get(f"/sessions/{recorded.pk}/export/", {"format": "speedscope"})
    assert resp["Content-Type"] == "application/json"
    doc = json.loads(resp.content)
    check_speedscope_schema(doc)
    assert sum(doc["profiles"][0]["weights"]) == 160
    assert Client().get(f"/sessions/{recorded.pk}/export/").status_code == 302


@pytest.mark.skipif(shutil.which("go") is None,
                    reason="go not on PATH: scripts/setup.sh installs golang-go (go tool pprof)")
def test_export_pprof_read_by_go_tool_pprof(alice, recorded, tmp_path):
    client, _ = alice
    resp = client.get(f"/sessions/{recorded.pk}/export/", {"format": "pprof", "kind": "cpu"})
    assert resp["Content-Disposition"] == 'attachment; filename="two-phases.cpu.pb.gz"'
    path = tmp_path / "cpu.pb.gz"
    path.write_bytes(resp.content)
    proc = subprocess.run(["go", "tool", "pprof", "-top", "-nodecount=50", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[-1]: line.split()[0] for line in proc.stdout.splitlines()
            if line.strip().endswith(("early", "late"))}
    assert rows == {"early": "80", "late": "80"}, proc.stdout


@pytest.mark.parametrize(("query", "words"), [
    ({"format": "xml"}, "unknown format 'xml'"),
    ({"format": "folded", "kind": "offcpu"}, "no 'offcpu' profile"),
    ({"format": "folded", "from": "yesterday"}, "from must be a time in unix milliseconds"),
    ({"format": "folded", "from": "-5"}, "from is out of range"),
    ({"format": "folded", "from": str(ORIGIN + 3000), "to": str(ORIGIN + 1000)},
     "must end after it starts"),
])
def test_export_bad_parameters_are_400_with_the_reason(alice, recorded, query, words):
    client, _ = alice
    resp = client.get(f"/sessions/{recorded.pk}/export/", query)
    assert resp.status_code == 400 and words in resp.content.decode()
    assert "Traceback" not in resp.content.decode()
