// tarn's web UI: the few things a server-rendered page cannot do alone. No inline script
// is allowed (Content-Security-Policy), so everything is wired here by element id.
"use strict";

(function () {
  const RECENT = "tarn.sql.recent";

  function recent() {
    try { return JSON.parse(localStorage.getItem(RECENT) || "[]"); } catch (e) { return []; }
  }

  // The SQL editor: Ctrl+Enter (or Cmd+Enter) runs; each query run is kept in this
  // browser's recent list.
  function editor() {
    const form = document.getElementById("sql");
    const query = document.getElementById("query");
    if (!form || !query) return;
    query.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", function () {
      const q = query.value.trim();
      if (!q) return;
      const list = recent().filter(function (x) { return x !== q; });
      list.unshift(q);
      localStorage.setItem(RECENT, JSON.stringify(list.slice(0, 20)));
    });
    const ol = document.getElementById("recent");
    if (ol) {
      recent().forEach(function (q) {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = "/ui/sql?query=" + encodeURIComponent(q);
        a.textContent = q.length > 160 ? q.slice(0, 160) + "…" : q;
        li.appendChild(a);
        ol.appendChild(li);
      });
    }
  }

  // Long tables: shown a page at a time.
  function pages() {
    document.querySelectorAll("table.rows").forEach(function (table) {
      const size = parseInt(table.dataset.pageRows || "100", 10);
      const rows = Array.from(table.tBodies[0] ? table.tBodies[0].rows : []);
      if (rows.length <= size) return;
      let at = 0;
      const nav = document.createElement("p");
      nav.className = "pages";
      const prev = document.createElement("button");
      const next = document.createElement("button");
      const where = document.createElement("span");
      prev.type = next.type = "button";
      prev.textContent = "← previous";
      next.textContent = "next →";
      nav.append(prev, " ", where, " ", next);
      table.after(nav);
      function show() {
        rows.forEach(function (r, i) { r.hidden = i < at || i >= at + size; });
        where.textContent = "rows " + (at + 1) + "–" + Math.min(at + size, rows.length) + " of " + rows.length;
        prev.disabled = at === 0;
        next.disabled = at + size >= rows.length;
      }
      prev.addEventListener("click", function () { at = Math.max(0, at - size); show(); });
      next.addEventListener("click", function () { at = Math.min(rows.length - 1, at + size); show(); });
      show();
    });
  }

  // A query's answer (the JSON the server put beside it) drawn by uPlot: column `x` along x,
  // column `y` along y, as a line, bars or points.
  function drawResult(target, data, kind, x, y) {
    const pairs = [];
    data.columns[x].forEach(function (v, i) {
      if (v !== null) pairs.push([v, data.columns[y][i]]);
    });
    pairs.sort(function (a, b) { return a[0] - b[0]; });
    const textX = data.kinds[x] === "text";
    const series = {
      label: data.names[y],
      stroke: "#2b6cb0",
      fill: kind === "bar" ? "rgba(43,108,176,0.5)" : undefined,
      width: kind === "scatter" ? 0 : 2,
      points: { show: kind === "scatter", size: 6, fill: "#2b6cb0" },
    };
    if (kind === "bar") series.paths = uPlot.paths.bars({ size: [0.7, 60] });
    if (kind === "scatter") series.paths = function () { return null; };
    return new uPlot({
      width: Math.min(target.clientWidth || 900, 1100),
      height: parseInt(target.dataset.height || "320", 10),
      scales: {
        x: kind === "bar" || textX
          ? { time: false, range: function (u, min, max) { return [min - 0.5, max + 0.5]; } }
          : { time: data.kinds[x] === "time" },
      },
      axes: [
        textX ? { values: function (u, splits) { return splits.map(function (i) { return data.labels[x][i] || ""; }); } } : {},
        {},
      ],
      series: [{ label: data.names[x] }, series],
    }, [pairs.map(function (p) { return p[0]; }), pairs.map(function (p) { return p[1]; })], target);
  }

  // The SQL page's chart: the columns and kind chosen in its form.
  function chart() {
    const island = document.getElementById("chart-data");
    const controls = document.getElementById("chart-controls");
    const target = document.getElementById("chart");
    if (!island || !controls || !target || typeof uPlot === "undefined") return;
    const data = JSON.parse(island.textContent);
    let plot = null;
    function draw() {
      if (plot) { plot.destroy(); plot = null; }
      const kind = controls.elements.kind.value;
      if (!kind) return;
      plot = drawResult(target, data, kind,
        parseInt(controls.elements.x.value, 10), parseInt(controls.elements.y.value, 10));
    }
    controls.addEventListener("change", draw);
    draw();
  }

  // A dashboard's line and bar tiles.
  function tiles() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll("div.tile-chart[data-source]").forEach(function (target) {
      const source = document.getElementById(target.dataset.source);
      if (!source) return;
      drawResult(target, JSON.parse(source.textContent), target.dataset.kind,
        parseInt(target.dataset.x, 10), parseInt(target.dataset.y, 10));
    });
  }

  // An execution's timeline: each bar placed from its data (inline styles are not allowed).
  function timeline() {
    document.querySelectorAll(".timeline .bar").forEach(function (bar) {
      bar.style.left = bar.dataset.left + "%";
      bar.style.width = bar.dataset.width + "%";
    });
  }

  // The logs of a running step, read again every two seconds until it ends.
  function follow() {
    document.querySelectorAll("pre.logs[data-follow]").forEach(function (pre) {
      const url = pre.dataset.follow;
      const timer = setInterval(function () {
        fetch(url, { credentials: "same-origin" }).then(function (r) {
          if (!r.ok) { clearInterval(timer); return null; }
          return r.text();
        }).then(function (text) {
          if (text === null) return;
          const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent = text;
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }).catch(function () { clearInterval(timer); });
      }, 2000);
      setTimeout(function () { clearInterval(timer); }, 30 * 60 * 1000);
    });
  }

  // Figures over time: one line per series, a point per window (gaps where a window has no
  // figure), from the JSON element the chart names.
  function seriesCharts() {
    if (typeof uPlot === "undefined") return;
    const colors = ["#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1", "#2c7a7b", "#97266d", "#4a5568"];
    document.querySelectorAll("div.series-chart[data-source]").forEach(function (target) {
      const source = document.getElementById(target.dataset.source);
      if (!source) return;
      const data = JSON.parse(source.textContent);
      const xs = Array.from(new Set([].concat.apply([], data.series.map(function (s) {
        return s.points.map(function (p) { return p[0]; });
      })))).sort(function (a, b) { return a - b; });
      const columns = [xs].concat(data.series.map(function (s) {
        const at = new Map(s.points.map(function (p) { return [p[0], p[1]]; }));
        return xs.map(function (x) { return at.has(x) ? at.get(x) : null; });
      }));
      new uPlot({
        width: Math.min(target.clientWidth || 900, 1100),
        height: 260,
        scales: { x: { time: target.dataset.x !== "step" } },
        series: [{ label: target.dataset.x === "step" ? "step" : "window" }].concat(data.series.map(function (s, i) {
          return { label: s.label, stroke: colors[i % colors.length], width: 2, points: { show: true, size: 5 } };
        })),
      }, columns, target);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    seriesCharts();
    tiles();
    editor();
    pages();
    chart();
    timeline();
    follow();
  });
})();
