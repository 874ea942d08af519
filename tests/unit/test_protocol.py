import json

import pytest

from webprof.core import protocol as P

pytestmark = pytest.mark.unit

EXAMPLES = [
    P.CollectorHello(
        host="web-1", kernel="6.18", collectors=["cpu"], frequency_hz=49,
        interval_ms=1000, agent_version="0.1.0",
    ),
    P.ProfileDelta(
        host="web-1", kind="cpu", seq=3, start_ms=1_700_000_000_000, interval_ms=1000,
        frequency_hz=49, strings=["nginx", "main", "read_[k]"], stacks=[[42, 0, 7, 1, 2]],
        health={"samples": 7, "lost_user_stacks": 0},
    ),
    P.LiveSubscribe(host="web-1", pid=42, comm=None),
    P.LiveSnapshot(
        host="web-1", started_ms=1, interval_ms=1000, frequency_hz=49, max_nodes=16384,
        since_start={"names": [""], "nodes": [0, 0, 0]},
        recent=[{"seq": 1, "end_ms": 2, "samples": 0, "tree": {"names": [""], "nodes": [0, 0, 0]},
                 "folded_nodes": 0}],
    ),
    P.LiveInterval(host="web-1", seq=1, end_ms=2, samples=0,
                   tree={"names": [""], "nodes": [0, 0, 0]}, folded_nodes=0),
    P.LatencyDelta(
        host="web-1", kind="syscall", seq=1, start_ms=1, interval_ms=1000,
        series={"read": [[0, 1, 3], [2048, 4096, 7]]}, health={"lost_events": 0},
    ),
    P.LatencySubscribe(host="web-1", kind="runqlat"),
    P.LatencySnapshot(host="web-1", kind="biolat", unit="us", interval_ms=1000,
                      intervals=[{"seq": 1, "end_ms": 2, "series": {}, "health": {}}]),
    P.LatencyInterval(host="web-1", kind="biolat", unit="us", seq=1, end_ms=2,
                      series={"vda:write": [[64, 128, 1]]}),
    P.CollectorConfig(collectors=["cpu", "offcpu", "runqlat"], pid=7, min_block_us=10),
    P.HostStatus(host="web-1", connected=True, last_seen_ms=5),
    P.Error(code="bad_message", message="x", dropped=1),
]


def test_every_message_type_has_an_example():
    assert {type(m) for m in EXAMPLES} == set(P.MESSAGE_TYPES.values())


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.type)
def test_encode_decode_round_trip(message):
    text = P.encode(message)
    assert json.loads(text)["v"] == P.PROTOCOL_VERSION
    assert P.decode(text) == message
    assert P.decode(text.encode()) == message


def test_handler_names_map_dots_to_underscores():
    assert P.handler_name("live.interval") == "live_interval"


def good() -> dict:
    return json.loads(P.encode(EXAMPLES[1]))


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda d: d.update(type="profile.nope"), "unknown message type"),
        (lambda d: d.update(v=2), "version"),
        (lambda d: d.pop("v"), "version"),
        (lambda d: d.update(extra=1), "unexpected fields ['extra']"),
        (lambda d: d.pop("host"), "missing fields ['host']"),
        (lambda d: d.update(seq="3"), "field 'seq' has the wrong type"),
        (lambda d: d.update(seq=True), "field 'seq' has the wrong type"),
        (lambda d: d.update(stacks=[[1, 0]]), "stacks[0]"),
        (lambda d: d.update(stacks=[[1, 0, 1, 99]]), "string not in the table"),
        (lambda d: d.update(stacks=[[1, 0, 0, 1]]), "bad pid or weight"),
        (lambda d: d.update(kind="gpu"), "unknown kind"),
        (lambda d: d.update(health={"bogus": 1}), "unknown health counters"),
        (lambda d: d.update(health={"samples": "1"}), "field 'health'"),
    ],
)
def test_decode_rejects_bad_messages_with_one_error(mutate, reason):
    data = good()
    mutate(data)
    with pytest.raises(P.ProtocolError) as err:
        P.decode(json.dumps(data))
    assert reason in str(err.value)


@pytest.mark.parametrize("raw", [b"\xff\xfe", "not json", "[1,2]", "42"])
def test_decode_rejects_non_objects(raw):
    with pytest.raises(P.ProtocolError):
        P.decode(raw)


def test_iter_stacks_resolves_strings():
    (entry,) = list(EXAMPLES[1].iter_stacks())
    assert entry == (42, "nginx", ["main", "read_[k]"], 7)


@pytest.mark.parametrize(
    "message,reason",
    [
        ({"type": "latency.delta", "host": "h", "kind": "gpu", "seq": 0, "start_ms": 0,
          "interval_ms": 1, "series": {}, "health": {}}, "unknown kind"),
        ({"type": "latency.delta", "host": "h", "kind": "syscall", "seq": 0, "start_ms": 0,
          "interval_ms": 1, "series": {"read": [[4, 2, 1]]}, "health": {}}, "bad bucket"),
        ({"type": "collector.config", "collectors": ["cpu", "rm -rf"]}, "unknown collectors"),
        ({"type": "collector.config", "collectors": [], "frequency_hz": 100000}, "1..999"),
        ({"type": "collector.config", "collectors": [], "comm": "x" * 16}, "1..15"),
        ({"type": "collector.config", "collectors": [], "min_block_us": 10,
          "max_block_us": 5}, "block time range"),
        ({"type": "live.subscribe", "host": "h", "kind": "nope"}, "unknown kind"),
    ],
)
def test_decode_rejects_bad_values(message, reason):
    with pytest.raises(P.ProtocolError) as err:
        P.decode({"v": P.PROTOCOL_VERSION, **message})
    assert reason in str(err.value)
