"""static/flametree.js and static/table.js in real headless Chromium.

The browser rebuilds "last N seconds" and "since start" from interval trees
itself, so its tree arithmetic must agree with the Python model
(webprof.core.flame) that produced the wire form.  No daphne needed: the
repository is served by a loopback http.server and the modules are imported
into a page.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from webprof.core.flame import FlameTree

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Reads a JS tree back as {"name;path": [self, total]} for comparison with Python.
FLATTEN_JS = """
  const flatten = (root) => {
    const out = {};
    const walk = (node, path) => {
      if (path) out[path] = [node.self, node.total];
      if (node.children) for (const c of node.children.values())
        walk(c, path ? `${path};${c.name}` : c.name);
    };
    walk(root, "");
    out[""] = [root.self, root.total];
    return out;
  };
"""


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(REPO))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=CHROMIUM_ARGS)
            pg = browser.new_page()
            pg.goto(f"http://127.0.0.1:{server.server_address[1]}/bench/render_bench.html")
            pg.wait_for_function("window.benchReady === true")
            pg.evaluate("async () => { window.ft = await import('/static/flametree.js');"
                        " window.tb = await import('/static/table.js'); }")
            yield pg
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def py_flat(tree: FlameTree) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"": [tree.root.self_count, tree.root.total]}
    stack = [(tree.root, "")]
    while stack:
        node, path = stack.pop()
        for child in node.children.values():
            p = f"{path};{child.name}" if path else child.name
            out[p] = [child.self_count, child.total]
            stack.append((child, p))
    return out


FOLDED_A = """\
spin;main;outer;inner 50
spin;main;outer 5
spin;main;rec;rec;rec 7
spin;main;sys_write_[k] 3
worker;main;loop 11
"""
FOLDED_B = """\
spin;main;outer;inner 20
worker;main;idle 4
"""


def test_decode_matches_python_totals(page):
    tree = FlameTree.parse_folded(FOLDED_A)
    flat = page.evaluate(f"(w) => {{ {FLATTEN_JS} return flatten(ft.decodeWire(w)); }}",
                         tree.to_wire())
    assert flat == py_flat(tree)


def test_merge_with_sign_is_python_merge(page):
    a, b = FlameTree.parse_folded(FOLDED_A), FlameTree.parse_folded(FOLDED_B)
    got = page.evaluate(
        f"""([a, b]) => {{ {FLATTEN_JS}
          const t = ft.decodeWire(a), u = ft.decodeWire(b);
          ft.mergeInto(t, u, 1);
          const sum = flatten(t);
          ft.mergeInto(t, u, -1);
          return [sum, flatten(t)];
        }}""",
        [a.to_wire(), b.to_wire()],
    )
    both = a.copy()
    both.merge(b)
    assert got[0] == py_flat(both)
    # Subtracting B again gives A back, with B-only nodes ("idle") pruned.
    assert got[1] == py_flat(a)


def test_function_stats_count_recursion_once(page):
    tree = FlameTree.parse_folded("p;f;g;f;h 5\np;f 3\np;k;f 2\n")
    stats = page.evaluate(
        "(w) => Object.fromEntries([...ft.functionStats(ft.decodeWire(w)).values()]"
        ".map((s) => [s.name, [s.self, s.total]]))",
        tree.to_wire(),
    )
    # f: self 3 + 2; total 5 + 3 + 2 = 10, not 15 (the inner f of p;f;g;f;h adds nothing).
    assert stats == {"f": [5, 10], "g": [0, 5], "h": [5, 5], "k": [0, 2]}


def test_search_counts_nested_matches_once(page):
    tree = FlameTree.parse_folded("p;f;g;f;h 5\np;f 3\np;k;f 2\np;z 90\n")
    got = page.evaluate(
        """(w) => { const t = ft.decodeWire(w);
          const m = (q) => ft.matchedSamples(t, ft.makeMatcher(q).test);
          return [m('F'), m('/^[gh]$/'), m('/^k$/'), ft.makeMatcher('/(/').error]; }""",
        tree.to_wire(),
    )
    assert got[:3] == [10, 5, 2]
    assert got[3].startswith("bad regex")


def test_folds_merge_into_one_node(page):
    one = FlameTree.parse_folded("p;a 100\np;[other: 3 frames] 4\n")
    two = FlameTree.parse_folded("p;a 90\np;[other: 5 frames] 6\n")
    got = page.evaluate(
        """([x, y]) => { const t = ft.decodeWire(x); ft.mergeInto(t, ft.decodeWire(y), 1);
          const kids = [...t.children.get('p').children.values()];
          return kids.map((k) => [k.name, k.total, k.folded]); }""",
        [one.to_wire(), two.to_wire()],
    )
    assert sorted(got) == [["[other: 5 frames]", 10, 5], ["a", 190, 0]]


def test_malformed_wire_is_rejected(page):
    errors = page.evaluate(
        """() => [{names: [''], nodes: [0, 1]}, {names: [''], nodes: [0, 0, 1]},
                  {names: [''], nodes: [0, 0, 1, 7, 1, 0]},
                  {names: [''], nodes: [0, 0, 0, 0, 0, 0]}]
          .map((w) => { try { ft.decodeWire(w); return null; } catch (e) { return e.message; } })"""
    )
    assert errors == [
        "flame tree: nodes must be a non-empty list of triples",
        "flame tree: truncated node list",
        "flame tree: name index out of range",
        "flame tree: trailing nodes after the root",
    ]


def test_table_sorts_and_escapes_names(page):
    rows = page.evaluate(
        """() => {
          const el = document.createElement('table');
          document.body.appendChild(el);
          const t = new tb.FunctionTable(el);
          const stats = new Map([
            ['a', {name: 'a', self: 5, total: 9}],
            ['<img src=x onerror=alert(1)>', {name: '<img src=x onerror=alert(1)>', self: 7,
              total: 7}],
            ['c', {name: 'c', self: 1, total: 20}]]);
          t.update(stats, 20);
          const names = () => [...el.querySelectorAll('td.fn')].map((td) => td.textContent);
          const bySelf = names();
          el.querySelector('th[data-key=total]').click();
          const byTotal = names();
          el.querySelector('th[data-key=total]').click();
          const byTotalAsc = names();
          return [bySelf, byTotal, byTotalAsc, el.querySelectorAll('img').length,
                  el.querySelector('tbody tr td:nth-child(3)').textContent];
        }"""
    )
    evil = "<img src=x onerror=alert(1)>"
    assert rows[0] == [evil, "a", "c"]
    assert rows[1] == ["c", "a", evil]
    assert rows[2] == [evil, "a", "c"]
    assert rows[3] == 0  # the name was shown as text, never parsed as markup
    assert rows[4] == "35.00"  # self % of the first row in ascending total order (7/20)
