// Table rows built from data, shared by the pages that list things (hosts,
// traces, processes, latency statistics).  Text goes in as text, never as
// markup: names come from hosts and binaries.

// Appends a <td> holding `content` (a node, or text) to row `tr`; `cls`, when
// given, is its class.  Returns the cell.
export function cell(tr, content, cls) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

export function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}
