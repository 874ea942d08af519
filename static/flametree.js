// Flame trees in the browser: decode the server's wire form, merge trees with a
// sign (sliding windows subtract what falls out), and the per-function and
// search statistics the table and search box show.
//
// A node is {name, key, self, total, children: Map<key, node> | null, folded}.
// `key` equals `name` except for the server's "[other: N frames]" folds: their
// N differs from one interval to the next, so every fold under one parent
// shares the key OTHER_KEY and merging sums them instead of piling up siblings.
// `folded` is the largest N seen, shown as the fold's label.

export const OTHER_PREFIX = "[other: ";
export const OTHER_KEY = "[other]";
// The frame between a blocked stack and its waker's stack in off-wake trees
// (webprof.core.protocol.WAKER_SEPARATOR): frames above it are the waker's.
export const WAKER_SEPARATOR = "--";

export function isOther(name) {
  return name.startsWith(OTHER_PREFIX) || name === OTHER_KEY;
}

export function newNode(name) {
  const other = isOther(name);
  const folded = other ? parseInt(name.slice(OTHER_PREFIX.length), 10) || 0 : 0;
  return {
    name: other ? otherLabel(folded) : name,
    key: other ? OTHER_KEY : name,
    self: 0,
    total: 0,
    children: null,
    folded,
  };
}

function otherLabel(folded) {
  return `${OTHER_PREFIX}${folded} frames]`;
}

export function emptyTree() {
  return newNode("");
}

// Decode {"names": [...], "nodes": [nameIdx, self, nChildren, ...]} (pre-order
// triples, root first).  Iterative with an explicit stack: a deep recursive
// workload would otherwise blow the JS call stack.  Throws on malformed input
// so a bad message is reported instead of drawing a half tree.  onNode(node,
// i), when given, sees each node as triple i is read into it (the root is
// triple 0; triples that merge into one node each call it): the diff page
// adds its per-triple columns that way.
export function decodeWire(wire, onNode = null) {
  const names = wire && wire.names;
  const nodes = wire && wire.nodes;
  if (!Array.isArray(names) || !Array.isArray(nodes) || nodes.length < 3 || nodes.length % 3) {
    throw new Error("flame tree: nodes must be a non-empty list of triples");
  }
  const root = emptyTree();
  root.self = nodes[1];
  if (onNode) onNode(root, 0);
  const stack = [[root, nodes[2]]]; // [node, children still to read]
  let pos = 3;
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top[1] === 0) {
      stack.pop();
      if (stack.length) stack[stack.length - 1][0].total += top[0].total;
      continue;
    }
    top[1] -= 1;
    if (pos + 3 > nodes.length) throw new Error("flame tree: truncated node list");
    const name = names[nodes[pos]];
    if (typeof name !== "string") throw new Error("flame tree: name index out of range");
    const child = childFor(top[0], name);
    child.self += nodes[pos + 1];
    child.total += nodes[pos + 1];
    if (onNode) onNode(child, pos / 3);
    stack.push([child, nodes[pos + 2]]);
    pos += 3;
  }
  root.total += root.self;
  if (pos !== nodes.length) throw new Error("flame tree: trailing nodes after the root");
  return root;
}

// Child of `parent` for `name`, created if missing.  Two wire folds under one
// parent (cannot happen today, but cheap to allow) merge into one node.
function childFor(parent, name) {
  if (!parent.children) parent.children = new Map();
  const key = isOther(name) ? OTHER_KEY : name;
  let child = parent.children.get(key);
  if (!child) {
    child = newNode(name);
    parent.children.set(key, child);
  } else if (child.key === OTHER_KEY) {
    const n = newNode(name).folded;
    if (n > child.folded) {
      child.folded = n;
      child.name = otherLabel(n);
    }
  }
  return child;
}

// dst += sign * src, in place.  Subtraction drops nodes whose total reaches
// zero so a sliding window does not collect empty nodes over time.
export function mergeInto(dst, src, sign = 1) {
  const stack = [[dst, src]];
  while (stack.length) {
    const [d, s] = stack.pop();
    d.self += sign * s.self;
    d.total += sign * s.total;
    if (sign > 0 && s.folded > d.folded) {
      d.folded = s.folded;
      d.name = otherLabel(s.folded);
    }
    if (!s.children) continue;
    if (!d.children) d.children = new Map();
    for (const [key, sc] of s.children) {
      let dc = d.children.get(key);
      if (!dc) {
        dc = newNode(sc.name);
        d.children.set(key, dc);
      }
      stack.push([dc, sc]);
    }
  }
  if (sign < 0) prune(dst);
  return dst;
}

function prune(root) {
  const stack = [root];
  while (stack.length) {
    const node = stack.pop();
    if (!node.children) continue;
    for (const [key, child] of node.children) {
      if (child.total <= 0) node.children.delete(key);
      else stack.push(child);
    }
  }
}

export function cloneTree(root) {
  return mergeInto(emptyTree(), root, 1);
}

export function countNodes(root) {
  let n = 0;
  const stack = [root];
  while (stack.length) {
    const node = stack.pop();
    n += 1;
    if (node.children) for (const c of node.children.values()) stack.push(c);
  }
  return n - 1;
}

// Walk a path of keys from the root; null when any step no longer exists.
export function findPath(root, keys) {
  let node = root;
  for (const key of keys) {
    node = node.children && node.children.get(key);
    if (!node) return null;
  }
  return node;
}

// Per-function self and total.  Depth 1 holds process names, not functions,
// so it is left out.  "total" counts a function once per stack even when it
// recurses: a node adds its total only if no ancestor has the same key.
export function functionStats(root) {
  const stats = new Map();
  const onPath = new Map();
  // Explicit stack of [node, depth, leaving]; leaving=true pops the path count.
  const stack = [];
  if (root.children) for (const c of root.children.values()) stack.push([c, 1, false]);
  while (stack.length) {
    const [node, depth, leaving] = stack.pop();
    if (depth > 1) {
      if (leaving) {
        onPath.set(node.key, onPath.get(node.key) - 1);
        continue;
      }
      let s = stats.get(node.key);
      if (!s) stats.set(node.key, (s = { name: node.key === OTHER_KEY ? "[other: folded frames]" : node.name, self: 0, total: 0 }));
      s.self += node.self;
      const seen = onPath.get(node.key) || 0;
      if (!seen) s.total += node.total;
      onPath.set(node.key, seen + 1);
      stack.push([node, depth, true]);
    }
    if (node.children) for (const c of node.children.values()) stack.push([c, depth + 1, false]);
  }
  return stats;
}

// Build a name predicate from the search box: "/re/flags" is a regex, anything
// else a case-insensitive substring.  Returns {test, error}; a bad regex gives
// an error message and matches nothing.
export function makeMatcher(text) {
  const q = (text || "").trim();
  if (!q) return { test: null, error: null };
  const m = /^\/(.+)\/([a-z]*)$/.exec(q);
  if (m) {
    try {
      const re = new RegExp(m[1], m[2].replace("g", "") || "i");
      return { test: (name) => re.test(name), error: null };
    } catch (e) {
      return { test: () => false, error: `bad regex: ${e.message}` };
    }
  }
  const needle = q.toLowerCase();
  return { test: (name) => name.toLowerCase().includes(needle), error: null };
}

// Samples in stacks with at least one matching frame below `root`.  A match
// adds its subtree total and stops descending, so nested matches are counted
// once.
export function matchedSamples(root, test) {
  let sum = 0;
  const stack = root.children ? [...root.children.values()] : [];
  while (stack.length) {
    const node = stack.pop();
    if (test(node.name)) {
      sum += node.total;
      continue;
    }
    if (node.children) for (const c of node.children.values()) stack.push(c);
  }
  return sum;
}
