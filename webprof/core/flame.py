"""The flame-tree model shared by collectors, server and tests.

A tree node keeps ``self`` (samples whose leaf is this frame) and ``total``
(``self`` plus the totals of its children).  The root is an unnamed node whose
children are process names, so a root-to-leaf path reads the same as a line
of Brendan Gregg's folded format: ``comm;outermost;...;leaf COUNT``.

Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

OTHER_PREFIX = "[other: "


class FoldedFormatError(ValueError):
    """A folded-stack line could not be parsed; ``line_no`` is 1-based."""

    def __init__(self, line_no: int, line: str, reason: str) -> None:
        super().__init__(f"line {line_no}: {reason}: {line[:120]!r}")
        self.line_no = line_no
        self.line = line
        self.reason = reason


@dataclass
class Node:
    name: str
    self_count: int = 0
    total: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    def child(self, name: str) -> Node:
        node = self.children.get(name)
        if node is None:
            # Positional, with the dict given: ~4x cheaper than the default factory.
            node = self.children[name] = Node(name, 0, 0, {})
        return node

    def count_nodes(self) -> int:
        """This node and all below it (iterative: stacks can be deep)."""
        count = 0
        stack = [self]
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
        return count


class FlameTree:
    """An aggregate of weighted stacks. Weights are sample counts or microseconds."""

    def __init__(self) -> None:
        self.root = Node("")

    @property
    def total(self) -> int:
        return self.root.total

    def add(self, frames: Iterable[str], weight: int) -> None:
        """Add one stack, outermost frame first.  Zero weights are ignored."""
        if weight < 0:
            raise ValueError(f"negative weight {weight}")
        if weight == 0:
            return
        node = self.root
        node.total += weight
        for name in frames:
            node = node.child(name)
            node.total += weight
        node.self_count += weight

    def merge(self, other: FlameTree, sign: int = 1) -> None:
        """Add (``sign=1``) or subtract (``sign=-1``) another tree in place.

        Subtraction removes nodes whose total drops to zero, so that a sliding
        window does not accumulate empty nodes.
        """
        _merge_node(self.root, other.root, sign)

    def copy(self) -> FlameTree:
        out = FlameTree()
        out.merge(self)
        return out

    def stacks(self) -> Iterator[tuple[tuple[str, ...], int]]:
        """Yield ``(frames, self_weight)`` for every node with self weight,
        sorted by path.  One path list is shared along the walk, so a deep
        stack costs its depth once, not once per frame."""
        path: list[str] = []
        work = [(node, 0) for _, node in sorted(self.root.children.items(), reverse=True)]
        while work:
            node, depth = work.pop()
            del path[depth:]
            path.append(node.name)
            if node.self_count:
                yield tuple(path), node.self_count
            work.extend((child, depth + 1)
                        for _, child in sorted(node.children.items(), reverse=True))

    def node_count(self) -> int:
        """Nodes other than the root."""
        return self.root.count_nodes() - 1

    def truncated(self, max_nodes: int) -> FlameTree:
        """Return a copy with at most ``max_nodes`` nodes (root excluded).

        Nodes are kept largest-total first (a node is only considered once its
        parent is kept).  The children of a kept node that did not fit are
        folded into one ``[other: N frames]`` child holding their combined
        total as self weight, so every kept node's total stays exact.
        """
        if max_nodes < 1:
            raise ValueError("max_nodes must be at least 1")
        if self.node_count() <= max_nodes:
            return self.copy()
        return self._truncate(max_nodes)

    def fitted(self, max_nodes: int) -> tuple[FlameTree, int]:
        """This tree itself when it fits the budget, else a truncated copy;
        with the number of real nodes folded away."""
        count = self.node_count()
        if count <= max_nodes:
            return self, 0
        small = self._truncate(max_nodes)
        return small, count - _real_node_count(small.root)

    def _truncate(self, max_nodes: int) -> FlameTree:
        keep = _select_nodes(self.root, max_nodes)
        out = FlameTree()
        _copy_kept(self.root, out.root, keep)
        return out

    def to_folded(self) -> str:
        lines = [";".join(path) + f" {count}" for path, count in self.stacks()]
        return "\n".join(sorted(lines)) + ("\n" if lines else "")

    @classmethod
    def parse_folded(cls, text: str) -> FlameTree:
        tree = cls()
        for line_no, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            stack, sep, count = line.rpartition(" ")
            if not sep or not stack:
                raise FoldedFormatError(line_no, raw, "expected 'frame;frame;... COUNT'")
            try:
                weight = int(count)
            except ValueError:
                raise FoldedFormatError(line_no, raw, "count is not an integer") from None
            if weight < 0:
                raise FoldedFormatError(line_no, raw, "negative count")
            tree.add(stack.split(";"), weight)
        return tree

    def to_wire(self) -> dict[str, list]:
        """Compact form: a name table and a pre-order list of
        ``name_index, self, child_count`` triples, flattened.  Totals are
        recomputed by the reader, so they are not sent."""
        names: list[str] = []
        index: dict[str, int] = {}
        nodes: list[int] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            idx = index.get(node.name)
            if idx is None:
                idx = index[node.name] = len(names)
                names.append(node.name)
            nodes.extend((idx, node.self_count, len(node.children)))
            stack.extend(reversed(list(node.children.values())))
        return {"names": names, "nodes": nodes}

    @classmethod
    def from_wire(cls, wire: dict[str, list]) -> FlameTree:
        names, nodes = wire["names"], wire["nodes"]
        if len(nodes) % 3 or not nodes:
            raise ValueError("nodes must be a non-empty list of triples")
        tree = cls()
        root = tree.root
        root.self_count = root.total = nodes[1]
        # Iterative pre-order read: [node, children still to read] per level.
        open_nodes: list[list] = [[root, nodes[2]]]
        pos = 3
        while open_nodes:
            top = open_nodes[-1]
            if not top[1]:
                open_nodes.pop()
                if open_nodes:
                    open_nodes[-1][0].total += top[0].total
                continue
            top[1] -= 1
            if pos >= len(nodes):
                raise ValueError("truncated node list")
            name_idx, self_count, n_children = nodes[pos : pos + 3]
            pos += 3
            child = top[0].child(names[name_idx])
            child.self_count = child.total = self_count
            open_nodes.append([child, n_children])
        if pos != len(nodes):
            raise ValueError("trailing nodes after the root")
        return tree


def _merge_node(dst: Node, src: Node, sign: int) -> None:
    """Add ``sign`` times ``src`` into ``dst``; iterative, as stacks can be deep.

    A node's counts change when its parent is visited, so a subtraction can
    drop a node whose total reaches zero before walking below it."""
    dst.self_count += sign * src.self_count
    dst.total += sign * src.total
    work = [(dst, src)]
    while work:
        d, s = work.pop()
        for name, child in s.children.items():
            target = d.child(name)
            target.self_count += sign * child.self_count
            target.total += sign * child.total
            if target.total <= 0 and sign < 0:
                del d.children[name]
            elif child.children:
                work.append((target, child))


def _select_nodes(root: Node, budget: int) -> set[int]:
    """Ids of the largest nodes that fit in ``budget``, chosen best-first.

    Nodes are taken in descending total (a child only after its parent).  A
    kept node with any child left out needs one "other" node, so a prefix of
    that order costs ``kept + parents_with_folds``; the longest prefix whose
    cost fits the budget is kept.  The cost is tracked incrementally: keeping
    a node with children opens a fold, keeping a parent's last child closes it.
    """
    order: list[Node] = []
    heap: list[tuple[int, int, Node, Node]] = []
    tie = 0
    for child in root.children.values():
        heapq.heappush(heap, (-child.total, tie, child, root))
        tie += 1
    kept_children: dict[int, int] = {}
    folds = 1 if root.children else 0
    best = 0
    while heap and len(order) < budget:
        _, _, node, parent = heapq.heappop(heap)
        order.append(node)
        if node.children:
            folds += 1
        done = kept_children.get(id(parent), 0) + 1
        kept_children[id(parent)] = done
        if done == len(parent.children):
            folds -= 1
        if len(order) + folds <= budget:
            best = len(order)
        for child in node.children.values():
            heapq.heappush(heap, (-child.total, tie, child, node))
            tie += 1
    return {id(node) for node in order[:best]}


def _copy_kept(src_root: Node, dst_root: Node, keep: set[int]) -> None:
    work = [(src_root, dst_root)]
    while work:
        src, dst = work.pop()
        dst.self_count = src.self_count
        dst.total = src.total
        folded_total = 0
        folded_count = 0
        for name, child in src.children.items():
            if id(child) in keep:
                work.append((child, dst.child(name)))
            else:
                folded_total += child.total
                folded_count += 1
        if folded_count:
            other = dst.child(f"{OTHER_PREFIX}{folded_count} frames]")
            other.self_count += folded_total
            other.total += folded_total


def _real_node_count(root: Node) -> int:
    """Nodes below ``root`` that are not "[other ...]" folds."""
    count = 0
    stack = list(root.children.values())
    while stack:
        node = stack.pop()
        if not node.name.startswith(OTHER_PREFIX):
            count += 1
        stack.extend(node.children.values())
    return count
