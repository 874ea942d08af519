import json
import random

import pytest

from webprof.core import protocol as P
from webprof.core import trace_messages as T

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
    P.ProfileDelta(
        host="web-1", kind="cpu", seq=4, start_ms=1_700_000_001_000, interval_ms=1000,
        frequency_hz=99, strings=["nginx", "main", "read_[k]"],
        stacks=[[42, 0, 7, 1, 2], [42, 0, 1, 1]], health={"samples": 8},
        slot_ms=P.DEFAULT_SLOT_MS, slots=[[0, 2, 17, 4, 49, 1], [3, 1]],
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
    T.TraceStart(trace_id=7, spec={"kind": "funclat", "duration_s": 5, "binary": "/bin/true",
                                   "symbols": ["main"]}),
    T.TraceCancel(trace_id=7),
    T.TraceState(trace_id=7, state="failed", elapsed_ms=10, remaining_ms=0,
                 reason="symbol not found", errors={"symbols": "'x' is not in /bin/true"}),
    T.CollectorQuery(query_id=1, what="symbols", args={"binary": "/bin/true", "prefix": "ma"}),
    T.CollectorAnswer(query_id=1, result=["main"], error=""),
    P.ProfileDelta(host="h", kind="usdt", seq=0, start_ms=1, interval_ms=1000, frequency_hz=0,
                   strings=["app", "probe"], stacks=[[1, 0, 3, 1]], health={}, trace_id=7),
    P.LatencyDelta(host="h", kind="funclat", seq=0, start_ms=1, interval_ms=1000,
                   series={"parse": [[512, 1024, 9]]}, health={}, trace_id=7),
]


def test_trace_only_kinds_need_a_trace_id():
    for example in EXAMPLES[-2:]:
        body = {**example.to_dict(), "trace_id": 0}
        with pytest.raises(P.ProtocolError, match="unknown kind"):
            P.decode(body)


def test_trace_state_rejects_unknown_states():
    with pytest.raises(P.ProtocolError, match="unknown state"):
        P.decode({"v": 1, "type": "trace.state", "trace_id": 1, "state": "exploded"})


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


# -- sub-second slots of profile.delta ----------------------------------------


def with_slots() -> dict:
    return json.loads(P.encode(EXAMPLES[2]))


def test_slots_round_trip_and_old_messages_still_decode():
    message = P.decode(P.encode(EXAMPLES[2]))
    assert message.slot_ms == 20 and message.slots == [[0, 2, 17, 4, 49, 1], [3, 1]]
    assert message.slot_count() == 50
    old = good()  # a collector without sub-second data sends neither field
    old.pop("slot_ms")
    old.pop("slots")
    decoded = P.decode(old)
    assert decoded.slot_ms == 0 and decoded.slots == []


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda d: d.update(slot_ms=0), "slots given but slot_ms is 0"),
        (lambda d: d.update(slot_ms=-20), "slot_ms must be an int >= 0"),
        (lambda d: d["slots"].pop(), "1 slots entries for 2 stacks"),
        (lambda d: d["slots"].append([0, 1]), "3 slots entries for 2 stacks"),
        (lambda d: d["slots"][1].append(4), "slots[1] has odd length 3"),
        (lambda d: d["slots"][1].__setitem__(1, 1.0), "field 'slots' has the wrong type"),
        (lambda d: d["slots"][0].__setitem__(2, True), "field 'slots' has the wrong type"),
        (lambda d: d["slots"][0].__setitem__(4, 50), "slots[0] has a slot outside 0..49"),
        (lambda d: d["slots"][1].__setitem__(0, -1), "slots[1] has a slot outside 0..49"),
        (lambda d: d.update(interval_ms=900), "slots[0] has a slot outside 0..44"),
        (lambda d: d["slots"][0].__setitem__(2, 0), "slots[0] has slots that are not strictly"),
        (lambda d: d["slots"].__setitem__(0, [17, 2, 0, 4, 49, 1]),
         "slots[0] has slots that are not strictly increasing"),
        (lambda d: d["slots"].__setitem__(0, [0, 3, 17, 4, 49, 0]), "slots[0] has a weight <= 0"),
        (lambda d: d["slots"].__setitem__(0, [0, 9, 17, -3, 49, 1]), "slots[0] has a weight <= 0"),
        (lambda d: d["slots"][1].__setitem__(1, 2),
         "slots[1] weights sum to 2, not the stack's weight 1"),
        (lambda d: d["slots"].__setitem__(0, []), "slots[0] weights sum to 0"),
    ],
)
def test_decode_rejects_bad_slots(mutate, reason):
    data = with_slots()
    mutate(data)
    with pytest.raises(P.ProtocolError) as err:
        P.decode(json.dumps(data))
    assert reason in str(err.value)


@pytest.mark.parametrize("value", [1.0, True, "1", None])
def test_validate_rejects_non_int_slot_values_in_built_messages(value):
    # decode() checks JSON types first; validate() must hold for messages a
    # collector builds in Python too.
    body = {k: v for k, v in with_slots().items() if k not in ("v", "type")}
    body["slots"] = [[0, 2, 17, 4, 49, 1], [3, value]]
    with pytest.raises(P.ProtocolError) as err:
        P.ProfileDelta(**body).validate()
    assert "slots[1] must be a list of ints" in str(err.value)


def random_delta(rng: random.Random, n: int) -> P.ProfileDelta:
    stacks, slots = [], []
    for _ in range(n):
        times = sorted(rng.sample(range(50), rng.choice([1, 1, 2, 3, 5])))
        weights = [rng.randint(1, 4) for _ in times]
        stacks.append([rng.randint(1, 99), 0, sum(weights), 1])
        slots.append([x for pair in zip(times, weights, strict=True) for x in pair])
    return P.ProfileDelta(host="h", kind="cpu", seq=1, start_ms=0, interval_ms=1000,
                          frequency_hz=99, strings=["p", "f"], stacks=stacks, health={},
                          slot_ms=20, slots=slots)


def test_bulk_and_per_entry_slot_checks_agree():
    """validate() runs a bulk check and only on failure looks entry by entry:
    every single corruption must be caught and named at the right entry."""
    rng = random.Random(7)
    corruptions = [
        lambda s: s.append(1),
        lambda s: s.__setitem__(0, 50),
        lambda s: s.__setitem__(0, -1),
        lambda s: s.__setitem__(1, 0),
        lambda s: s.__setitem__(1, s[1] + 1),
        lambda s: s.extend([s[-2], 1]),  # repeats the last slot
        lambda s: s.__setitem__(0, 0.5),
    ]
    for trial in range(200):
        delta = random_delta(rng, 40)
        delta.validate()
        bad = rng.randrange(40)
        rng.choice(corruptions)(delta.slots[bad])
        with pytest.raises(P.ProtocolError) as err:
            delta.validate()
        assert f"slots[{bad}] " in str(err.value), (trial, delta.slots[bad], err.value)
