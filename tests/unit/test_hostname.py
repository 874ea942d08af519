"""Host names: one rule, used by the server's ingest and by `webprof collect --name`."""

import pytest

from webprof.cli import build_parser
from webprof.core.hostname import host_name_problem

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", [
    "box1", "web-1.example.com", "db_9", "a", "x" * 63, ".".join(["x" * 63] * 3) + ".y" * 30,
    "2001-db8--1",
])
def test_valid_names(name):
    assert len(name) <= 253
    assert host_name_problem(name) is None


@pytest.mark.parametrize("name, why", [
    ("", "empty"),
    ("a/b", "only letters"),
    ("../etc", "empty label"),
    ("a b", "only letters"),
    ("wéb", "only letters"),
    ("box1.", "empty label"),
    (".box1", "empty label"),
    ("a..b", "empty label"),
    ("x" * 64, "label over 63"),
    (".".join(["x" * 63] * 4), "at most 253"),
    ("a\nb", "only letters"),
    ("a%2Fb", "only letters"),
])
def test_invalid_names_say_why(name, why):
    assert why in host_name_problem(name)


def test_collect_refuses_a_bad_name_before_connecting(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["collect", "--server", "ws://127.0.0.1:1", "--name", "a/b"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--name" in err and "may hold only letters, digits" in err


def test_collect_takes_a_good_name():
    args = build_parser().parse_args(["collect", "--server", "ws://h:1", "--name", "db-9.lan"])
    assert args.name == "db-9.lan"
