"""decode() turns every bad input into ProtocolError, and bounds every number
and length a peer sends (the limits are named in webprof/core/protocol.py)."""

import json
import time
from pathlib import Path

import pytest

from webprof.core import protocol as P
from webprof.core import trace_messages as T

pytestmark = pytest.mark.unit

NOW_MS = 1_780_000_000_000


def delta(**changes) -> dict:
    body = P.ProfileDelta(
        host="web-1", kind="cpu", seq=3, start_ms=NOW_MS, interval_ms=1000, frequency_hz=49,
        strings=["nginx", "main", "read_[k]"], stacks=[[42, 0, 7, 1, 2]],
        health={"samples": 7}, slot_ms=20, slots=[[0, 7]],
    ).to_dict()
    body.update(changes)
    return body


def latency(**changes) -> dict:
    body = P.LatencyDelta(host="web-1", kind="syscall", seq=1, start_ms=NOW_MS,
                          interval_ms=1000, series={"read": [[0, 1, 3]]},
                          health={"samples": 3}).to_dict()
    body.update(changes)
    return body


def hello(**changes) -> dict:
    body = P.CollectorHello(host="web-1", kernel="6.18", collectors=["cpu"], frequency_hz=49,
                            interval_ms=1000, agent_version="0.1").to_dict()
    body.update(changes)
    return body


def refused(data, reason: str) -> None:
    text = data if isinstance(data, (str, bytes)) else json.dumps(data)
    with pytest.raises(P.ProtocolError) as err:
        P.decode(text)
    assert reason in str(err.value)


# -- every failure of decode is a ProtocolError --------------------------------


def test_integer_beyond_the_int_string_limit_is_a_protocol_error():
    text = json.dumps(delta()).replace('"seq": 3', '"seq": ' + "9" * 5000)
    refused(text, "not JSON this server accepts")
    refused(text.encode(), "not JSON this server accepts")


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_is_a_protocol_error(opener, closer):
    refused(opener * 100_000 + closer * 100_000, "nested too deeply")
    refused('{"v":1,"type":"collector.answer","query_id":1,"result":'
            + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply")


def test_nesting_in_free_form_fields_is_bounded():
    nested = "[" * 40 + "]" * 40
    refused('{"v":1,"type":"collector.answer","query_id":1,"result":' + nested + "}",
            "field 'result' is nested deeper than")
    ok = "[" * 20 + "]" * 20
    P.decode('{"v":1,"type":"collector.answer","query_id":1,"result":' + ok + "}")


def test_nan_and_infinity_are_not_json_numbers():
    refused('{"v":1,"type":"collector.answer","query_id":1,"result":NaN}', "NaN")
    refused('{"v":1,"type":"collector.answer","query_id":1,"result":[-Infinity]}', "Infinity")


@pytest.mark.parametrize("where", ["strings", "comm", "health key", "series name", "host"])
def test_lone_surrogates_are_refused_anywhere(where):
    bad = "\ud800"
    if where == "strings":
        body = delta(strings=["nginx", "main", "x" + bad])
    elif where == "comm":
        body = delta(strings=[bad, "main", "read_[k]"])
    elif where == "health key":
        body = delta(health={bad: 1})
    elif where == "series name":
        body = latency(series={"lo" + bad + "w": [[0, 1, 3]]})
    else:
        body = hello(host=bad)
    text = json.dumps(body)  # ensure_ascii: the surrogate travels as \ud800
    assert "\\ud800" in text
    refused(text, "lone surrogate")
    refused(text.encode(), "lone surrogate")
    with pytest.raises(P.ProtocolError, match="lone surrogate"):
        P.decode(body)  # a dict built in Python is checked too


def test_surrogate_pairs_and_escaped_backslashes_still_decode():
    body = delta(strings=["nginx", "main \U0001f600", "read_[k] \\ud800"])
    message = P.decode(json.dumps(body))
    assert message.strings[1].endswith("\U0001f600")
    assert message.strings[2].endswith("\\ud800")
    P.encode(message).encode("utf-8")


# -- bounds --------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"start_ms": -1}, "start_ms must be 0.."),
        ({"start_ms": P.MAX_START_MS + 1}, "start_ms must be 0.."),
        ({"interval_ms": 10**13}, "interval_ms must be 0..3600000"),
        ({"frequency_hz": -1}, "frequency_hz must be 0..100000"),
        ({"frequency_hz": 100_001}, "frequency_hz must be 0..100000"),
        ({"seq": 2**53}, "seq must be 0.."),
        ({"trace_id": 2**60}, "trace_id must be 0.."),
        ({"health": {"samples": -5}}, "health counter 'samples' must be 0.."),
        ({"health": {"lost_user_stacks": 2**53}}, "health counter 'lost_user_stacks'"),
        ({"stacks": [[2**22, 0, 7, 1, 2]]}, "bad pid or weight"),
        ({"stacks": [[42, 0, 2**53, 1, 2]], "slots": [[0, 2**53]]}, "bad pid or weight"),
        ({"stacks": [[1, 0, 2**52, 1], [2, 0, 2**52, 1]], "slot_ms": 0, "slots": []},
         "weights sum to more than"),
        ({"stacks": [[42, 0, 7, *[1] * 1025]]}, "stacks[0] has 1025 frames, more than 1024"),
        ({"strings": ["nginx", "m" * (P.MAX_STRING_CHARS + 1), "r"]},
         "strings[1] is longer than 65536 characters"),
        ({"slot_ms": 61_000}, "slot_ms must be 0..60000"),
        ({"slot_ms": 1, "interval_ms": 3_000_000}, "slots, more than 262144"),
    ],
)
def test_profile_delta_bounds(changes, reason):
    refused(delta(**changes), reason)


def test_profile_delta_count_bounds():
    many = ["s"] * (P.MAX_STRINGS + 1)
    refused(delta(strings=many), "strings has 1048577 entries, more than 1048576")
    stacks = [[1, 0, 1, 1]] * (P.MAX_STACKS_PER_DELTA + 1)
    refused(delta(stacks=stacks, slot_ms=0, slots=[]), "more than 262144")


def test_profile_delta_at_its_bounds_decodes():
    body = delta(start_ms=P.MAX_START_MS, interval_ms=P.MAX_INTERVAL_MS,
                 frequency_hz=P.MAX_FREQUENCY_HZ, seq=P.MAX_ID, trace_id=0,
                 stacks=[[P.MAX_PID - 1, 0, 7, *[1] * P.MAX_FRAMES_PER_STACK]],
                 health={"samples": P.MAX_SAFE_INT}, slot_ms=P.MAX_SLOT_MS, slots=[[59, 7]])
    message = P.decode(json.dumps(body))
    assert len(message.stacks[0]) == 3 + P.MAX_FRAMES_PER_STACK


def test_offcpu_weights_of_a_busy_host_fit():
    # offcpu weights are microseconds: a 60 s interval of 10,000 threads
    # blocked on one stack is 6e11 us, far inside the bound.
    body = delta(kind="offcpu", frequency_hz=0, interval_ms=60_000,
                 stacks=[[42, 0, 60_000_000 * 10_000, 1, 2]], slots=[[0, 60_000_000 * 10_000]])
    assert P.decode(json.dumps(body)).stacks[0][2] == 6 * 10**11


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"start_ms": -1}, "start_ms must be"),
        ({"interval_ms": 3_600_001}, "interval_ms must be"),
        ({"health": {"lost_events": -1}}, "health counter 'lost_events'"),
        ({"series": {f"s{i}": [[0, 1, 1]] for i in range(1025)}}, "1025 series"),
        ({"series": {"read": [[0, 1, 1]] * 65}}, "65 buckets, more than 64"),
        ({"series": {"read": [[0, 2**65, 1]]}}, "bad bucket"),
        ({"series": {"read": [[0, 1, 2**53]]}}, "bad bucket"),
        ({"series": {"r" * 70_000: [[0, 1, 1]]}}, "longer than 65536"),
    ],
)
def test_latency_delta_bounds(changes, reason):
    refused(latency(**changes), reason)


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"frequency_hz": -49}, "frequency_hz must be 0..100000"),
        ({"interval_ms": 10**13}, "interval_ms must be 0..3600000"),
        ({"collectors": ["cpu"] * 65}, "collectors has 65 entries"),
        ({"kernel": "k" * 257}, "kernel[0] is longer than 256"),
    ],
)
def test_collector_hello_bounds(changes, reason):
    refused(hello(**changes), reason)


@pytest.mark.parametrize(
    "message,reason",
    [
        ({"type": "trace.start", "trace_id": 2**53, "spec": {}}, "trace_id must be 1.."),
        ({"type": "trace.cancel", "trace_id": -1}, "trace_id must be 0.."),
        ({"type": "trace.state", "trace_id": 1, "state": "running", "elapsed_ms": 2**60},
         "elapsed_ms must be 0.."),
        ({"type": "trace.state", "trace_id": 1, "state": "failed",
          "errors": {f"f{i}": "x" for i in range(65)}}, "at most 64 errors"),
        ({"type": "collector.query", "query_id": -1, "what": "processes"}, "query_id"),
        ({"type": "collector.answer", "query_id": 2**53}, "query_id"),
        ({"type": "collector.config", "collectors": [], "max_block_us": 2**60}, "block time"),
    ],
)
def test_trace_and_config_message_bounds(message, reason):
    refused({"v": 1, **message}, reason)


def test_huge_numbers_do_not_print_in_full():
    with pytest.raises(P.ProtocolError) as err:
        P.decode(json.dumps(delta(start_ms=10**4000)))
    assert len(str(err.value)) < 200


@pytest.mark.parametrize(
    "body",
    [
        {"v": 1, "type": "x" * 1_000_000},
        {"v": ["x"] * 1_000_000, "type": "error"},
        {"v": 1, "type": "error", "code": "c", "message": "m",
         **{f"extra{i}" * 50: 1 for i in range(100_000)}},
        delta(health={f"bogus{i}" * 50: 1 for i in range(100_000)}),
        delta(kind="k" * 1_000_000),
        {"v": 1, "type": "trace.state", "trace_id": 1, "state": "s" * 1_000_000},
        {"v": 1, "type": "collector.query", "query_id": 1, "what": "w" * 1_000_000},
        {"v": 1, "type": "collector.config", "collectors": ["c" * 1000] * 100_000},
    ],
)
def test_error_texts_never_echo_a_huge_input(body):
    # The text goes back to the peer in an error message and into the log.
    with pytest.raises(P.ProtocolError) as err:
        P.decode(json.dumps(body))
    assert len(str(err.value)) < 800


def test_error_messages_are_bounded():
    refused({"v": 1, "type": "error", "code": "c" * 65, "message": "m"}, "code[0] is longer")
    refused({"v": 1, "type": "error", "code": "c", "message": "m" * 70_000}, "message[0] is")
    refused({"v": 1, "type": "error", "code": "c", "message": "m", "dropped": -1}, "dropped")


def test_a_real_time_delta_decodes():
    body = delta(start_ms=int(time.time() * 1000))
    assert P.decode(json.dumps(body)).start_ms == body["start_ms"]


def test_every_limit_is_documented():
    text = (Path(P.__file__).parents[2] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    for name in ("MAX_FRAMES_PER_STACK", "MAX_STACKS_PER_DELTA", "MAX_STRINGS",
                 "MAX_STRING_CHARS", "MAX_SERIES_PER_DELTA", "MAX_BUCKETS_PER_SERIES",
                 "MAX_START_MS", "MAX_INTERVAL_MS", "MAX_FREQUENCY_HZ", "MAX_SLOT_MS",
                 "MAX_SLOTS_PER_INTERVAL", "MAX_PID", "MAX_SAFE_INT"):
        assert name in text, name
    assert T.MAX_ERRORS
