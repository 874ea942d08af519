import pytest

from webprof.core.flame import OTHER_PREFIX, FlameTree, FoldedFormatError

pytestmark = pytest.mark.unit


def sample_tree() -> FlameTree:
    t = FlameTree()
    t.add(["app", "main", "parse", "lex"], 50)
    t.add(["app", "main", "parse"], 10)
    t.add(["app", "main", "render"], 30)
    t.add(["app", "main", "render", "write_[k]"], 5)
    t.add(["bash", "main", "readline"], 4)
    for i in range(40):
        t.add(["app", "main", "tiny", f"leaf{i}"], 1)
    return t


def totals_consistent(node) -> bool:
    return node.total == node.self_count + sum(c.total for c in node.children.values()) and all(
        totals_consistent(c) for c in node.children.values()
    )


def test_add_counts_self_and_total():
    t = sample_tree()
    main = t.root.children["app"].children["main"]
    assert main.children["parse"].self_count == 10
    assert main.children["parse"].total == 60
    assert t.total == 50 + 10 + 30 + 5 + 4 + 40
    assert totals_consistent(t.root)


def test_zero_weight_ignored_negative_rejected():
    t = FlameTree()
    t.add(["a"], 0)
    assert t.node_count() == 0
    with pytest.raises(ValueError):
        t.add(["a"], -1)


def test_merge_then_subtract_restores_original():
    a, b = sample_tree(), FlameTree()
    b.add(["app", "main", "parse"], 7)
    b.add(["zsh", "x"], 3)
    before = a.to_folded()
    a.merge(b)
    assert a.total == sample_tree().total + 10
    a.merge(b, sign=-1)
    assert a.to_folded() == before
    assert "zsh" not in a.root.children  # emptied nodes are removed


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 8, 13, 40, 60])
def test_truncation_keeps_totals_and_budget(budget):
    t = sample_tree()
    small = t.truncated(budget)
    assert small.node_count() <= budget
    assert small.total == t.total
    assert totals_consistent(small.root)


def test_truncation_folds_small_nodes_into_labelled_other():
    t = sample_tree()
    small = t.truncated(12)
    tiny = small.root.children["app"].children["main"].children.get("tiny")
    assert tiny is not None and tiny.total == 40
    (other,) = [n for n in tiny.children.values() if n.name.startswith(OTHER_PREFIX)]
    real = [n for n in tiny.children.values() if n is not other]
    assert other.name == f"[other: {40 - len(real)} frames]"
    assert other.total + sum(n.total for n in real) == 40
    assert small.node_count() == 12  # the budget is used, not wasted
    # the largest paths survive intact
    assert small.root.children["app"].children["main"].children["parse"].total == 60


def test_truncation_is_noop_within_budget():
    t = sample_tree()
    assert t.truncated(10_000).to_folded() == t.to_folded()


def test_folded_round_trip():
    t = sample_tree()
    text = t.to_folded()
    assert "app;main;parse;lex 50\n" in text
    assert FlameTree.parse_folded(text).to_folded() == text


def test_parse_folded_merges_identical_stacks_and_skips_blank():
    t = FlameTree.parse_folded("a;b 2\n\n# comment\na;b 3\n")
    assert t.to_folded() == "a;b 5\n"


@pytest.mark.parametrize(
    "text,line_no",
    [("a;b 1\nno-count\n", 2), ("a;b x\n", 1), ("a;b -3\n", 1), ("a;b 1\n\n 5\n", 3)],
)
def test_parse_folded_names_first_bad_line(text, line_no):
    with pytest.raises(FoldedFormatError) as err:
        FlameTree.parse_folded(text)
    assert err.value.line_no == line_no
    assert f"line {line_no}" in str(err.value)


def test_wire_round_trip_preserves_tree():
    t = sample_tree()
    wire = t.to_wire()
    assert wire["names"][0] == ""
    assert len(wire["nodes"]) == 3 * (t.node_count() + 1)
    back = FlameTree.from_wire(wire)
    assert back.to_folded() == t.to_folded()
    assert back.total == t.total


def test_wire_rejects_truncated_node_list():
    wire = sample_tree().to_wire()
    wire["nodes"] = wire["nodes"][:-3]
    with pytest.raises(ValueError):
        FlameTree.from_wire(wire)
