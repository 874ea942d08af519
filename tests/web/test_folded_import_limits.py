"""Folded imports are read in chunks and bounded: file size, line length,
frames per line and distinct frames, each refused with a clear message; a deep
but allowed stack is stored in time linear in its depth."""

from __future__ import annotations

import io
import random
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webprof.core.flame import FlameTree, FoldedFormatError
from webprof.core.formats import MAX_FOLDED_FRAMES, MAX_FOLDED_LINE_CHARS, parse_folded_any
from webprof.sessions import export
from webprof.sessions.export import ExportError, export_session, folded_lines, import_folded
from webprof.sessions.models import Session, SessionStack
from webprof.sessions.store import SessionReader, save_tree

pytestmark = [pytest.mark.web, pytest.mark.django_db]


class EndlessFolded(io.RawIOBase):
    """A stream of ``pattern`` repeated for ever; counts what was read."""

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        assert n > 0, "the importer must read in chunks, never the whole stream"
        reps = n // len(self.pattern) + 1
        out = (self.pattern * reps)[:n]
        self.read_bytes += len(out)
        return out


def test_an_endless_upload_stops_at_the_size_limit(monkeypatch):
    monkeypatch.setattr(export, "MAX_IMPORT_BYTES", 3 * 1024 * 1024)
    stream = EndlessFolded(b"app;main;work 1\n")
    with pytest.raises(ExportError, match="the file is larger than 3 MiB"):
        import_folded(stream, "endless")
    assert stream.read_bytes <= 3 * 1024 * 1024 + export.IMPORT_CHUNK_BYTES
    assert not Session.objects.exists()


def test_an_upload_that_says_its_size_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr(export, "MAX_IMPORT_BYTES", 1024)
    upload = SimpleUploadedFile("big.folded", b"a;b 1\n" * 1000)
    with pytest.raises(ExportError, match="larger than"):
        import_folded(upload, "big")
    assert upload.tell() == 0


def test_an_endless_line_is_refused_by_its_number_before_it_is_read_whole():
    stream = EndlessFolded(b"frame;")
    head = io.BytesIO(b"app;main 1\n# comment\n")

    class Joined(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            return head.read(n) or stream.read(n)

    with pytest.raises(ExportError, match=f"line 3: line longer than {MAX_FOLDED_LINE_CHARS}"):
        import_folded(Joined(), "one long line")
    assert stream.read_bytes <= MAX_FOLDED_LINE_CHARS + 2 * export.IMPORT_CHUNK_BYTES


def test_too_many_frames_in_a_line_is_refused_by_line():
    deep = ";".join(f"f{i}" for i in range(MAX_FOLDED_FRAMES + 1))
    data = f"app;main 1\napp;{deep} 2\n".encode()
    with pytest.raises(ExportError, match=f"line 2: {MAX_FOLDED_FRAMES + 2} frames, more than "
                                          f"{MAX_FOLDED_FRAMES}"):
        import_folded(data, "too deep")
    assert not Session.objects.exists()


def test_a_line_over_the_length_limit_is_refused_in_text_too():
    with pytest.raises(FoldedFormatError, match="line 1: line longer than 10 characters"):
        parse_folded_any("app;main;x 1\n", max_line_chars=10)


def test_distinct_frames_are_bounded():
    lines = [f"app;f{i} 1" for i in range(50)]
    with pytest.raises(FoldedFormatError, match="line 50: the stacks so far make more than 50"):
        parse_folded_any(lines, max_nodes=50)
    assert parse_folded_any(lines * 3, max_nodes=51).total == 150  # repeats add no node


def test_deepest_allowed_line_imports_and_round_trips():
    frames = [f"f{i}" for i in range(MAX_FOLDED_FRAMES - 1)]
    data = ("app;" + ";".join(frames) + " 7\n").encode()
    session = import_folded(data, "deep")
    assert export_session(session, "folded").data == data
    (stack,) = SessionStack.objects.filter(session=session)
    assert len(stack.frames) == 4 * len(frames)


def test_storing_a_deep_tree_is_linear_in_its_depth():
    # 200,000 frames: a step that copies the path per frame (quadratic) makes
    # 2 * 10^10 copies and takes many minutes; linear storage takes seconds.
    depth = 200_000
    tree = FlameTree()
    tree.add(["app", *(f"f{i}" for i in range(depth))], 3)
    tree.add(["app", "f0", "f1"], 2)
    started = time.monotonic()
    session = save_tree(tree, 1_780_000_000_000, name="deep")
    result = SessionReader(session).tree("cpu")
    assert result.tree.total == 5 and result.tree.node_count() == depth + 1
    assert time.monotonic() - started < 60


def test_folded_lines_match_splitlines_across_any_chunking(monkeypatch):
    rng = random.Random(3)
    pieces = ["a;b 1", "", "c 2", "é;ü 3", "\u2028", "# x", "z;y 10"]
    ends = ["\n", "\r\n", "\r", "\x0c"]
    for _ in range(200):
        text = "".join(rng.choice(pieces) + rng.choice(ends) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.3:
            text += rng.choice(pieces)  # no end on the last line
        monkeypatch.setattr(export, "IMPORT_CHUNK_BYTES", rng.randint(1, 9))
        assert list(folded_lines(io.BytesIO(text.encode()))) == text.splitlines(), repr(text)


def test_bad_utf8_in_a_later_chunk_names_its_byte(monkeypatch):
    monkeypatch.setattr(export, "IMPORT_CHUNK_BYTES", 4)
    with pytest.raises(ExportError, match=r"not UTF-8 text \(byte 8 is not\)"):
        list(folded_lines(io.BytesIO(b"a;b 1\nc \xff 2\n")))


def test_the_size_message_names_the_limit_in_mib(logged_in, monkeypatch):
    monkeypatch.setattr(export, "MAX_IMPORT_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr("webprof.sessions.views.MAX_IMPORT_BYTES", 4 * 1024 * 1024)
    body = b"app;main;work 1\n" * (5 * 1024 * 1024 // 16)
    resp = logged_in.post("/sessions/import/",
                          {"name": "big", "file": SimpleUploadedFile("big.folded", body)})
    assert resp.status_code == 400
    assert "The file is larger than 4 MiB." in resp.content.decode()


def test_import_view_refuses_an_oversized_upload_with_a_message(logged_in, monkeypatch):
    monkeypatch.setattr(export, "MAX_IMPORT_BYTES", 64 * 1024)
    monkeypatch.setattr("webprof.sessions.views.MAX_IMPORT_BYTES", 64 * 1024)
    body = b"app;main;work 1\n" * 5000  # 80 KB
    resp = logged_in.post("/sessions/import/",
                          {"name": "big", "file": SimpleUploadedFile("big.folded", body)})
    assert resp.status_code == 400
    assert "larger than" in resp.content.decode()
    assert not Session.objects.exists()
    small = b"app;main;work 1\n" * 100
    resp = logged_in.post("/sessions/import/",
                          {"name": "small", "file": SimpleUploadedFile("s.folded", small)})
    assert resp.status_code == 302


def test_import_view_refuses_a_body_announced_too_large_without_reading_it(
        logged_in, monkeypatch):
    monkeypatch.setattr(export, "MAX_IMPORT_BYTES", 1024)
    monkeypatch.setattr("webprof.sessions.views.MAX_IMPORT_BYTES", 1024)
    body = b"app;main;work 1\n" * 10_000  # 160 KB: over the limit plus the 64 KiB slack
    resp = logged_in.post("/sessions/import/",
                          {"name": "big", "file": SimpleUploadedFile("big.folded", body)})
    assert resp.status_code == 400 and "larger than" in resp.content.decode()
    assert "Give the session a name" not in resp.content.decode()


def test_import_view_still_checks_csrf(django_user_model):
    from django.test import Client

    user = django_user_model.objects.create_user("csrf-user", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    resp = client.post("/sessions/import/",
                       {"name": "x", "file": SimpleUploadedFile("x.folded", b"a;b 1\n")})
    assert resp.status_code == 403
    assert not Session.objects.exists()


def test_an_oversized_upload_from_the_real_form_gets_the_size_message(
        django_user_model, monkeypatch):
    # With CSRF enforced as in production: the token (first in the form) must
    # still be read when the upload is stopped, or the user sees a 403 page.
    import re

    from django.test import Client

    monkeypatch.setattr(export, "MAX_IMPORT_BYTES", 1024)
    monkeypatch.setattr("webprof.sessions.views.MAX_IMPORT_BYTES", 1024)
    user = django_user_model.objects.create_user("form-user", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/sessions/import/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    for size in (2_000, 200_000):  # over the limit; over it plus the 64 KiB slack
        body = b"app;main;work 1\n" * (size // 16)
        resp = client.post("/sessions/import/", {
            "csrfmiddlewaretoken": token, "file": SimpleUploadedFile("big.folded", body),
            "name": "big"})
        assert resp.status_code == 400, size
        assert "larger than" in resp.content.decode(), size
    assert not Session.objects.exists()
