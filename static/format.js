// Numbers, times and sizes as the pages show them.  Every formatter of the
// browser code lives here, so that a duration, a size or a latency reads the
// same on every page.

const pad = (n) => String(n).padStart(2, "0");

// ---- durations ------------------------------------------------------------

// Whole seconds as m:ss, or h:mm:ss from an hour on.
function clock(s) {
  return s < 3600 ? `${Math.floor(s / 60)}:${pad(s % 60)}`
    : `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

// A duration as m:ss, or h:mm:ss from an hour on; negative counts as zero.
export function fmtClock(ms) {
  return clock(Math.max(0, Math.round(ms / 1000)));
}

// A recording's length: "12.3 s" under a minute, then "4:05 min", "1:02:03".
export function fmtElapsed(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  return s < 3600 ? `${clock(s)} min` : clock(s);
}

// A tick of a time axis in whole seconds: "45s", then "2:05", "1:02:05".
export function fmtSecond(s) {
  return s < 60 ? `${s}s` : clock(s);
}

// A span in ms: "800 ms", then seconds to four digits ("12.35 s").
export function fmtSpan(ms) {
  return ms < 1000 ? `${ms} ms` : `${Number((ms / 1000).toPrecision(4))} s`;
}

// ---- microseconds and weights ---------------------------------------------

// [number, unit] of a time in µs: under a millisecond as whole µs, then ms or
// s with three significant digits.
function scaleUs(v) {
  const a = Math.abs(v);
  if (a < 1000) return [Math.round(v), "µs"];
  if (a < 1e6) return [Number((v / 1000).toPrecision(3)), "ms"];
  return [Number((v / 1e6).toPrecision(3)), "s"];
}

// "812 µs", "3.4 ms", "1.05 s".
export function fmtUs(v) {
  const [n, unit] = scaleUs(v);
  return `${n} ${unit}`;
}

// The same without the space, for axis labels: "512µs", "2.05ms", "1.05s".
export function fmtShort(us) {
  const [n, unit] = scaleUs(us);
  return `${n}${unit}`;
}

// A weight in the view's unit: sample counts, or microseconds as fmtUs.
export function fmtWeight(v, unit = "samples") {
  if (unit !== "us") return `${v} samples`;
  return fmtUs(v);
}

// The formatter of a weight in a table cell, where the column says the unit:
// times as fmtUs, counts as whole numbers (the diff's scaled counts have
// fractions).
export function cellFormat(unit) {
  return unit === "us" ? fmtUs : (v) => String(Math.round(v));
}

// A log2 latency bucket [low, high) in µs: "[2048, 4096) µs".
export function fmtBucket([low, high]) {
  return `[${low}, ${high}) µs`;
}

// ---- counts and shares ----------------------------------------------------

// Events per second: whole and grouped from 100 on ("1,234"), else 3 digits.
export function fmtRate(v) {
  return v >= 100 ? Math.round(v).toLocaleString() : v.toPrecision(3);
}

// `part` as a percentage of `whole`, two decimals: "12.50%".
export function fmtPercent(part, whole) {
  return `${((100 * part) / (whole || 1)).toFixed(2)}%`;
}

// A change with its sign ("+12", "−3 ms", "±0"), the magnitude by `fmt`.
export function fmtSigned(v, fmt) {
  return `${v > 0 ? "+" : v < 0 ? "−" : "±"}${fmt(Math.abs(v))}`;
}

// A change relative to what it was: "+12.5%", "-3.0%"; "new" from nothing.
export function fmtChangePct(change, before) {
  if (!before) return change ? "new" : "0%";
  return `${change > 0 ? "+" : ""}${((100 * change) / before).toFixed(1)}%`;
}

// A byte count in binary units: "812 B", "3.4 MiB".
export function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

// ---- wall-clock times, in the browser's locale and time zone ---------------

// A time of day from unix ms.
export function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString();
}

// A time of day to the millisecond: "14:03:07.250".
export function fmtTimeMs(ms) {
  const at = new Date(ms);
  return `${at.toLocaleTimeString()}.${String(at.getMilliseconds()).padStart(3, "0")}`;
}

// A date and time from unix ms or an ISO 8601 string.
export function fmtDateTime(t) {
  return new Date(t).toLocaleString();
}

// A Date as "2025-01-31 14:03:07", for default names.
export function fmtStamp(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A Date as "14:03", for default names.
export function fmtHourMinute(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
