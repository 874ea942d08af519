// Plotly for the pages' charts, with the options every chart shares.
//
// The bundle (vendor/plotly.min.js, served from the plotly Python package so
// pages work offline) is a UMD script with no ES module build: a page loads it
// with a classic <script> tag before its module, and this module is the one
// place that reads the global it sets.

const CONFIG = { displayModeBar: false, responsive: true };

// False where the page did not load the bundle (or it failed to load).
export function hasPlotly() {
  return Boolean(window.Plotly);
}

export function react(el, traces, layout) {
  return window.Plotly.react(el, traces, layout, CONFIG);
}

export function newPlot(el, traces, layout) {
  return window.Plotly.newPlot(el, traces, layout, CONFIG);
}

export function relayout(el, update) {
  return window.Plotly.relayout(el, update);
}
