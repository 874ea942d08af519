"""Every kind in the table is whole: a BPF program, a loader, a protocol
family and a page.  A half-added kind fails here, naming what is missing."""

from __future__ import annotations

import importlib
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from webprof.core import kinds
from webprof.core.protocol import MESSAGE_TYPES, LatencyDelta, ProfileDelta
from webprof.core.tracespec import OPTION_FIELDS, TRACE_KINDS

pytestmark = [pytest.mark.web, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parents[2]
ALL = [k.name for k in kinds.KINDS]


def test_the_table_names_each_kind_once_in_both_families():
    assert len(set(ALL)) == len(ALL)
    assert set(kinds.STACK) | set(kinds.HISTOGRAM) == set(ALL)
    assert not set(kinds.STACK) & set(kinds.HISTOGRAM)
    assert kinds.STORAGE_ORDER == (*kinds.STACK, *kinds.HISTOGRAM)


@pytest.mark.parametrize("name", ALL)
def test_kind_has_a_bpf_program(name):
    program = ROOT / "bpf" / kinds.BY_NAME[name].program
    assert program.is_file(), f"{name}: no BPF program {program}"
    assert "BPF" in program.read_text(), f"{name}: {program} holds no BPF map or program"


@pytest.mark.parametrize("name", ALL)
def test_kind_has_a_loader(name):
    module_name, _, class_name = kinds.BY_NAME[name].loader.partition(":")
    loader = getattr(importlib.import_module(module_name), class_name, None)
    assert loader is not None, f"{name}: no loader {kinds.BY_NAME[name].loader}"
    for method in ("__enter__", "__exit__", "close", "drain", "cflags"):
        assert callable(getattr(loader, method, None)), f"{name}: loader lacks {method}()"


@pytest.mark.parametrize("name", ALL)
def test_kind_has_a_protocol_family(name):
    kind = kinds.BY_NAME[name]
    message = MESSAGE_TYPES[kind.message_type]
    assert message is (ProfileDelta if kind.is_stack else LatencyDelta)
    assert kind.unit in ("samples", "us", "hits")
    # Trace-only kinds are refused without a trace, accepted with one.
    body = _delta(kind, trace_id=0)
    if kind.live:
        message(**body).validate()
    else:
        with pytest.raises(ValueError):
            message(**body).validate()
    message(**_delta(kind, trace_id=7)).validate()


@pytest.mark.parametrize("name", ALL)
def test_kind_has_a_trace_form_entry(name):
    kind = kinds.BY_NAME[name]
    assert TRACE_KINDS[name] == (kind.trace_title, kind.trace_fields)
    assert set(kind.trace_fields) <= set(OPTION_FIELDS), f"{name}: unknown trace fields"


@pytest.mark.parametrize("name", [k.name for k in kinds.KINDS if k.live])
def test_live_kind_has_a_page(logged_in, name):
    kind = kinds.BY_NAME[name]
    path = (f"/hosts/box1/{name}/" if kind.is_stack else f"/hosts/box1/latency/{name}/")
    resp = logged_in.get(path)
    assert resp.status_code == 200, f"{name}: {path} answered {resp.status_code}"
    assert f'data-kind="{name}"'.encode() in resp.content, f"{name}: the page is not its own"
    host_page = logged_in.get("/hosts/box1/").content.decode()
    assert path in host_page, f"{name}: the host page has no link to {path}"


def test_trace_only_kinds_have_no_live_page(logged_in):
    for kind in kinds.KINDS:
        if not kind.live:
            path = (f"/hosts/box1/{kind.name}/" if kind.is_stack
                    else f"/hosts/box1/latency/{kind.name}/")
            assert logged_in.get(path).status_code == 404, kind.name


def test_trace_form_offers_every_kind(logged_in, django_user_model):
    page = logged_in.get("/traces/new/").content.decode()
    for kind in kinds.KINDS:
        assert f'value="{kind.name}"' in page, f"the trace form lacks {kind.name}"


def _delta(kind: kinds.Kind, trace_id: int) -> dict:
    common = {"host": "box1", "kind": kind.name, "seq": 1, "start_ms": 1_700_000_000_000,
              "interval_ms": 1000, "health": {}, "trace_id": trace_id}
    if kind.is_stack:
        return {**common, "frequency_hz": 49, "strings": ["app", "main"],
                "stacks": [[42, 0, 3, 1]]}
    return {**common, "series": {"all": [[0, 1, 5]]}}


def test_models_match_their_migrations():
    """A change of the kind table that changes stored choices comes with a migration."""
    out = StringIO()
    try:
        call_command("makemigrations", "webprof", "--check", "--dry-run", stdout=out)
    except SystemExit as exc:
        raise AssertionError(f"models changed without a migration:\n{out.getvalue()}") from exc
