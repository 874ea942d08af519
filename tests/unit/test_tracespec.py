"""Trace requests are checked for shape, type, range and characters on both sides."""

from __future__ import annotations

import pytest

from webprof.core.tracespec import Limits, SpecErrors, parse_spec

pytestmark = pytest.mark.unit


DEFAULT = Limits()


def errors_of(data: dict, limits: Limits = DEFAULT) -> dict[str, str]:
    with pytest.raises(SpecErrors) as info:
        parse_spec(data, limits)
    return info.value.errors


def test_a_good_request_round_trips() -> None:
    spec = parse_spec({"kind": "funclat", "duration_s": "5", "target": "pid", "pid": 42,
                       "binary": "/usr/bin/app", "symbols": "parse_request, handle"})
    assert spec.symbols == ["parse_request", "handle"] and spec.duration_s == 5
    assert parse_spec(spec.to_dict()) == spec
    assert "pid 42" in spec.describe() and "5 s" in spec.describe()


@pytest.mark.parametrize("symbol", ['x"y', "a;b", "a\nb", "a b", "1abc", "$(reboot)", "a'b"])
def test_injection_in_symbols_is_refused(symbol: str) -> None:
    errors = errors_of({"kind": "funclat", "duration_s": 5, "binary": "/bin/true",
                        "symbols": [symbol]})
    assert "symbols" in errors and "not valid" in errors["symbols"]


@pytest.mark.parametrize("path, reason", [
    ("/usr/../etc/shadow", "'..'"), ("relative/bin", "absolute"), ("/bin/tr\nue", "control"),
    ("", "required")])
def test_bad_paths_are_refused(path: str, reason: str) -> None:
    errors = errors_of({"kind": "usdt", "duration_s": 5, "binary": path, "probe": "p:n"})
    assert reason in errors["binary"]


@pytest.mark.parametrize("field, value", [
    ("duration_s", -1), ("duration_s", 0), ("duration_s", 10**30), ("duration_s", 3601),
    ("duration_s", "ten"), ("duration_s", True), ("frequency_hz", 1000),
    ("frequency_hz", 2**64)])
def test_numbers_out_of_range_are_refused(field: str, value: object) -> None:
    data = {"kind": "cpu", "duration_s": 5, field: value}
    assert field in errors_of(data)


def test_limits_are_configurable() -> None:
    tight = Limits(max_duration_s=10, max_frequency_hz=99, max_functions=2)
    assert "duration_s" in errors_of({"kind": "cpu", "duration_s": 11}, tight)
    assert "frequency_hz" in errors_of({"kind": "cpu", "duration_s": 5, "frequency_hz": 199},
                                       tight)
    errors = errors_of({"kind": "funclat", "duration_s": 5, "binary": "/bin/true",
                        "symbols": ["a", "b", "c"]}, tight)
    assert "at most 2" in errors["symbols"]


def test_unknown_fields_and_fields_of_other_kinds_are_refused() -> None:
    errors = errors_of({"kind": "runqlat", "duration_s": 5, "symbols": ["x"], "shell": "1"})
    assert errors["shell"] == "unknown field" and "not used" in errors["symbols"]
    assert "kind" in errors_of({"kind": "rm -rf", "duration_s": 5})
    assert "__all__" in errors_of(["not", "a", "dict"])  # type: ignore[arg-type]


def test_targets_need_their_value() -> None:
    assert "pid" in errors_of({"kind": "cpu", "duration_s": 5, "target": "pid"})
    assert "comm" in errors_of({"kind": "cpu", "duration_s": 5, "target": "comm",
                                "comm": "much-too-long-process-name"})
    assert "pid" in errors_of({"kind": "cpu", "duration_s": 5, "target": "system", "pid": 3})
    assert "tracepoint" in errors_of({"kind": "tracepoint", "duration_s": 5,
                                      "tracepoint": "../../x"})
