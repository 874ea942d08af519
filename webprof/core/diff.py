"""Differential flame graphs: two trees compared as shares of their totals.

Like FlameGraph's difffolded with normalisation (``-n``): the "before" tree
is scaled by ``after.total / before.total``, so a function that kept its
share of the profile shows no change even if the two ranges differ in
length.  Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from .flame import FlameTree, Node


def diff_wire(before: FlameTree, after: FlameTree) -> dict:
    """A differential flame graph of two trees, ``before`` scaled to ``after``.

    Like FlameGraph's difffolded with normalisation: ``before`` weights are
    multiplied by ``after.total / before.total`` so the two are compared as
    shares of their totals.  The union of both trees is laid out; a node's
    width is ``max(before, after)`` so vanished code stays visible.  Returned
    as the flame wire format plus two arrays in node order: ``before`` and
    ``after`` totals (``before`` already scaled).
    """
    scale = after.total / before.total if before.total else 0.0
    names: list[str] = []
    index: dict[str, int] = {}
    nodes: list[int] = []
    before_totals: list[float] = []
    after_totals: list[int] = []
    work: list[tuple[Node | None, Node | None]] = [(before.root, after.root)]
    while work:
        b, a = work.pop()
        name = (a or b).name  # type: ignore[union-attr]
        idx = index.get(name)
        if idx is None:
            idx = index[name] = len(names)
            names.append(name)
        bt = (b.total if b else 0) * scale
        at = a.total if a else 0
        kids = sorted(set(b.children if b else ()) | set(a.children if a else ()))
        pairs = [((b.children.get(k) if b else None), (a.children.get(k) if a else None))
                 for k in kids]
        width = max(bt, at)
        child_width = sum(max((cb.total if cb else 0) * scale, ca.total if ca else 0)
                          for cb, ca in pairs)
        nodes.extend((idx, max(0, round(width - child_width)), len(pairs)))
        before_totals.append(round(bt, 2))
        after_totals.append(at)
        work.extend(reversed(pairs))
    return {"names": names, "nodes": nodes, "before": before_totals, "after": after_totals,
            "before_total": before.total, "after_total": after.total, "scale": scale}


def diff_functions(before: FlameTree, after: FlameTree) -> list[dict]:
    """Per-function self and total weights, before (scaled) and after,
    sorted by the absolute change in total."""
    scale = after.total / before.total if before.total else 0.0
    rows: dict[str, list[float]] = {}
    for which, tree, factor in ((0, before, scale), (2, after, 1.0)):
        for name, self_w, total_w in _function_weights(tree):
            row = rows.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            row[which] += self_w * factor
            row[which + 1] += total_w * factor
    out = [{"name": n, "before_self": round(r[0], 2), "before_total": round(r[1], 2),
            "after_self": r[2], "after_total": r[3], "change": round(r[3] - r[1], 2)}
           for n, r in rows.items()]
    out.sort(key=lambda r: (-abs(r["change"]), r["name"]))
    return out


def _function_weights(tree: FlameTree) -> Iterator[tuple[str, int, int]]:
    """(name, self, total) per function; recursion counted once in total."""
    self_w: Counter[str] = Counter()
    total_w: Counter[str] = Counter()
    # How often each name occurs on the path to the current node: kept up to
    # date on the way down and back up, so a deep stack costs its depth once.
    on_path: Counter[str] = Counter()
    work: list[Node | str] = list(tree.root.children.values())
    while work:
        node = work.pop()
        if isinstance(node, str):  # leaving that node's subtree
            on_path[node] -= 1
            continue
        self_w[node.name] += node.self_count
        if not on_path[node.name]:
            total_w[node.name] += node.total
        on_path[node.name] += 1
        work.append(node.name)
        work.extend(node.children.values())
    for name, total in total_w.items():
        yield name, self_w[name], total
