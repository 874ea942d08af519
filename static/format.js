// Numbers as the pages show them, shared so that a duration or a size reads
// the same on every page.

const pad = (n) => String(n).padStart(2, "0");

// A duration as m:ss, or h:mm:ss from an hour on; negative counts as zero.
export function fmtClock(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 3600 ? `${Math.floor(s / 60)}:${pad(s % 60)}`
    : `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

// A byte count in binary units: "812 B", "3.4 MiB".
export function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}
