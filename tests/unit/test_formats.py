import gzip
import json
import shutil
import subprocess
from collections import Counter

import pytest

from webprof.core.flame import FlameTree, FoldedFormatError
from webprof.core.formats import parse_folded_any, to_pprof, to_speedscope

pytestmark = pytest.mark.unit


def sample_tree() -> FlameTree:
    t = FlameTree()
    t.add(["app", "main", "parse", "lex"], 50)
    t.add(["app", "main", "parse"], 10)
    t.add(["app", "main", "render", "write_[k]"], 5)
    t.add(["app", "main", "render"], 30)
    t.add(["bash", "main", "readline"], 4)
    t.add(["bash"], 1)
    return t


# ------------------------------------------------------------------ speedscope

# A hand-written subset of speedscope's file-format-schema.json: required keys
# and their types, checked without network access.
SPEEDSCOPE_TOP = {"$schema": str, "shared": dict, "profiles": list, "name": str, "exporter": str}
SPEEDSCOPE_SAMPLED = {
    "type": str, "name": str, "unit": str, "startValue": (int, float),
    "endValue": (int, float), "samples": list, "weights": list,
}  # fmt: skip
UNITS = {"none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


def check_speedscope_schema(doc: dict) -> None:
    for key, typ in SPEEDSCOPE_TOP.items():
        assert isinstance(doc.get(key), typ), key
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = doc["shared"]["frames"]
    assert isinstance(frames, list)
    for frame in frames:
        assert isinstance(frame, dict) and isinstance(frame["name"], str)
    assert doc["profiles"]
    for prof in doc["profiles"]:
        for key, typ in SPEEDSCOPE_SAMPLED.items():
            assert isinstance(prof.get(key), typ), key
        assert prof["type"] == "sampled"
        assert prof["unit"] in UNITS
        assert len(prof["samples"]) == len(prof["weights"])
        for sample in prof["samples"]:
            assert all(isinstance(i, int) and 0 <= i < len(frames) for i in sample)
        assert all(isinstance(w, (int, float)) and w >= 0 for w in prof["weights"])
        assert prof["startValue"] <= prof["endValue"]


def test_speedscope_schema_and_round_trip():
    tree = sample_tree()
    doc = json.loads(json.dumps(to_speedscope(tree, "sess 1")))
    check_speedscope_schema(doc)
    prof = doc["profiles"][0]
    assert prof["endValue"] == tree.total == 100
    names = [f["name"] for f in doc["shared"]["frames"]]
    assert len(names) == len(set(names))
    rebuilt = FlameTree()
    for sample, weight in zip(prof["samples"], prof["weights"], strict=True):
        rebuilt.add([names[i] for i in sample], weight)
    assert rebuilt.to_folded() == tree.to_folded()


def test_speedscope_units():
    doc = to_speedscope(sample_tree(), "off", unit="microseconds")
    assert doc["profiles"][0]["unit"] == "microseconds"
    with pytest.raises(ValueError, match="unit"):
        to_speedscope(sample_tree(), "x", unit="furlongs")


def test_speedscope_empty_tree():
    doc = to_speedscope(FlameTree(), "empty")
    check_speedscope_schema(doc)
    assert doc["profiles"][0]["samples"] == [] and doc["profiles"][0]["endValue"] == 0


# ------------------------------------------------------------------ pprof
# An independent minimal protobuf reader: it knows wire types, not our encoder.


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def read_message(buf: bytes) -> dict[int, list]:
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wtype = key >> 3, key & 7
        if wtype == 0:
            val, pos = read_varint(buf, pos)
        elif wtype == 2:
            n, pos = read_varint(buf, pos)
            val, pos = buf[pos : pos + n], pos + n
        else:
            raise AssertionError(f"unexpected wire type {wtype}")
        fields.setdefault(num, []).append(val)
    assert pos == len(buf)
    return fields


def read_packed(fields: dict[int, list], num: int) -> list[int]:
    out = []
    for chunk in fields.get(num, []):
        if isinstance(chunk, int):
            out.append(chunk)
            continue
        pos = 0
        while pos < len(chunk):
            v, pos = read_varint(chunk, pos)
            out.append(v)
    return out


def decode_pprof(data: bytes) -> dict:
    prof = read_message(gzip.decompress(data))
    strings = [s.decode() for s in prof[6]]
    funcs = {}
    for raw in prof[5]:
        f = read_message(raw)
        funcs[f[1][0]] = strings[f.get(2, [0])[0]]
    locs = {}
    for raw in prof[4]:
        loc = read_message(raw)
        (line,) = [read_message(x) for x in loc[4]]
        locs[loc[1][0]] = funcs[line[1][0]]
    samples = []
    for raw in prof.get(2, []):
        s = read_message(raw)
        samples.append(([locs[i] for i in read_packed(s, 1)], read_packed(s, 2)))
    (st,) = [read_message(x) for x in prof[1]]
    return {
        "strings": strings,
        "sample_type": (strings[st.get(1, [0])[0]], strings[st.get(2, [0])[0]]),
        "samples": samples,
        "period": prof.get(12, [0])[0],
    }


def test_pprof_decodes_leaf_first_with_totals():
    tree = sample_tree()
    out = decode_pprof(to_pprof(tree))
    assert out["strings"][0] == ""
    assert out["sample_type"] == ("samples", "count")
    assert out["period"] == 0
    got = Counter()
    for locs, values in out["samples"]:
        assert len(values) == 1
        got[tuple(reversed(locs))] += values[0]
    assert dict(got) == dict(tree.stacks())
    assert sum(got.values()) == 100
    leaf_first = {tuple(locs) for locs, _ in out["samples"]}
    assert ("lex", "parse", "main", "app") in leaf_first


def test_pprof_sample_type_and_period():
    out = decode_pprof(to_pprof(sample_tree(), ("off_cpu", "microseconds"), period=1000))
    assert out["sample_type"] == ("off_cpu", "microseconds")
    assert out["period"] == 1000


def test_pprof_large_values_and_unicode():
    t = FlameTree()
    t.add(["prø", "fn<T>::über"], 3_000_000_000)
    out = decode_pprof(to_pprof(t))
    assert out["samples"] == [(["fn<T>::über", "prø"], [3_000_000_000])]


@pytest.mark.skipif(
    shutil.which("go") is None,
    reason="go not on PATH: scripts/setup.sh installs golang-go (go tool pprof)",
)
def test_go_tool_pprof_reads_it(tmp_path):
    path = tmp_path / "cpu.pb.gz"
    path.write_bytes(to_pprof(sample_tree(), period=10_101_010))
    proc = subprocess.run(
        ["go", "tool", "pprof", "-top", "-nodecount=100", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for leaf in ("lex", "parse", "render", "write_[k]", "readline", "bash"):
        assert leaf in text, text
    assert "of 100 total" in text or "100 total" in text, text


# ------------------------------------------------------------------ folded import

WEBPROF_FOLDED = sample_tree().to_folded()

STACKCOLLAPSE_PERF = """\
swapper;secondary_startup_64_[k];start_secondary_[k];cpu_idle_[k] 120
python3-4242;_start;__libc_start_main;Py_RunMain;_PyEval_EvalFrameDefault 37
python3-4242;_start;__libc_start_main;Py_RunMain;[unknown] 3
node;v8::internal::Heap::Scavenge();operator new(unsigned long) 5
node;LazyCompile:~foo /app/x.js:1_[j] 2
"""

BCC_PROFILE_F = """\
stress-ng;[unknown];stress_cpu;-;asm_sysvec_apic_timer_interrupt;sysvec_apic_timer_interrupt 7
stress-ng;[unknown];stress_cpu 90
swapper/0;secondary_startup_64_no_verify_[k];do_idle_[k];default_idle_[k] 200
bash;[Missed User Stack];-;do_syscall_64;__x64_sys_read 1
"""


def test_import_webprof_own_output():
    tree = parse_folded_any(WEBPROF_FOLDED)
    assert tree.to_folded() == WEBPROF_FOLDED
    assert tree.total == 100


def test_import_stackcollapse_perf():
    tree = parse_folded_any(STACKCOLLAPSE_PERF)
    assert tree.total == 167
    assert set(tree.root.children) == {"swapper", "python3-4242", "node"}
    node = tree.root.children["node"].children["v8::internal::Heap::Scavenge()"]
    assert node.children["operator new(unsigned long)"].self_count == 5
    assert "LazyCompile:~foo /app/x.js:1_[j]" in tree.root.children["node"].children


def test_import_bcc_profile_delimiter_marks_kernel_frames():
    tree = parse_folded_any(BCC_PROFILE_F)
    assert tree.total == 298
    stacks = dict(tree.stacks())
    assert stacks[
        ("stress-ng", "[unknown]", "stress_cpu", "asm_sysvec_apic_timer_interrupt_[k]",
         "sysvec_apic_timer_interrupt_[k]")
    ] == 7  # fmt: skip
    assert stacks[("stress-ng", "[unknown]", "stress_cpu")] == 90
    assert stacks[("bash", "[Missed User Stack]", "do_syscall_64_[k]", "__x64_sys_read_[k]")] == 1
    assert not any("-" in path for path in stacks)


def test_import_skips_blank_comments_and_crlf():
    tree = parse_folded_any("# header\r\n\r\napp;main 2\r\napp;main\t3\r\n")
    assert dict(tree.stacks()) == {("app", "main"): 5}


@pytest.mark.parametrize(
    ("text", "line_no", "reason"),
    [
        ("app;main 1\napp;main\n", 2, "expected"),
        ("app;main 1\n\n# c\napp;main x\n", 4, "integer"),
        ("app;main -3\n", 1, "integer"),
        ("app;main 1.5\n", 1, "integer"),
        ("a 1\nb 2\napp;;main 4\n", 3, "empty frame"),
        ("app;main ²\n", 1, "integer"),
        ("\n# only a comment\n", 1, "no stacks"),
        ("", 1, "no stacks"),
    ],
)
def test_import_bad_files_name_first_bad_line(text, line_no, reason):
    with pytest.raises(FoldedFormatError) as err:
        parse_folded_any(text)
    assert err.value.line_no == line_no
    assert reason in err.value.reason
    assert f"line {line_no}:" in str(err.value)


def test_import_error_stops_at_first_bad_line():
    with pytest.raises(FoldedFormatError) as err:
        parse_folded_any("a;b 1\nbad\nalso bad\n")
    assert err.value.line_no == 2
