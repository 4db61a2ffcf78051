/* daskperiment dashboard: runs table, metric charts (uPlot), parallel coordinates, compare.
 *
 * Runs against the JSON endpoints of a live dashboard, or against the data embedded in a
 * static report (same code, another "source"). Every value reaches the page through
 * textContent, never innerHTML, so recorded data cannot inject markup.
 */
(function () {
  "use strict";

  var dataElement = document.getElementById("page-data");
  var DATA = dataElement ? JSON.parse(dataElement.textContent) : {};
  var PAGE = document.body.getAttribute("data-page");
  var COLORS = ["#2463c9", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#e67700", "#5c940d",
                "#364fc7", "#a61e4d"];
  var CHART_POINTS = 1000;

  function $(id) { return document.getElementById(id); }

  function h(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
      else if (k === "checked" || k === "hidden" || k === "disabled") e[k] = v;
      else e.setAttribute(k, v);
    });
    (children || []).forEach(function (c) { e.append(c); });
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      var a = Math.abs(v);
      return (a >= 1e-3 && a < 1e7) || a === 0 ? String(+v.toPrecision(6)) : v.toExponential(4);
    }
    if (typeof v === "boolean") return v ? "True" : "False";
    return String(v);
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error || r.statusText);
          return body;
        });
      });
  }

  function query(params) {
    var q = new URLSearchParams();
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      (Array.isArray(v) ? v : [v]).forEach(function (item) { q.append(k, String(item)); });
    });
    return q.toString();
  }

  // ---- data sources ------------------------------------------------------------------
  function apiSource(api) {
    return {
      runs: function (state) {
        return getJSON(api + "/runs?" + query({ filter: state.filter, sort: state.sort, desc: state.desc ? 1 : 0,
                                                offset: state.offset, limit: state.limit }));
      },
      metric: function (name, trials) {
        return getJSON(api + "/metric?" + query({ name: name, trial: trials, points: CHART_POINTS }));
      },
      parallel: function (filter) { return getJSON(api + "/parallel?" + query({ filter: filter })); }
    };
  }

  /* The report's source: the whole table is embedded, so filter/sort/page happen here, with
     the same filter language as the server (a small parser; nothing is evaluated as code). */
  function reportSource(payload) {
    var table = payload.runs;
    var names = table.columns.map(function (c) { return c.name; });

    function filtered(text) {
      if (!text || !text.trim()) return table.rows;
      var test = compileFilter(text, names);
      return table.rows.filter(test);
    }

    function compare(a, b) {
      if (a === b) return 0;
      if (a === null || a === undefined) return 1;
      if (b === null || b === undefined) return -1;
      if (typeof a === typeof b) return a < b ? -1 : 1;
      return typeof a === "number" ? -1 : 1;
    }

    return {
      runs: function (state) {
        return new Promise(function (resolve) {
          var rows = filtered(state.filter).slice();
          var i = Math.max(0, names.indexOf(state.sort));
          rows.sort(function (x, y) {
            var c = compare(x[i], y[i]);
            if (x[i] === null || y[i] === null) return c;
            return state.desc ? -c : c;
          });
          var columns = table.columns.map(function (c, k) {
            var seen = new Set(rows.map(function (r) { return JSON.stringify(r[k]); }));
            return Object.assign({}, c, { varying: k < 2 || seen.size > 1 });
          });
          resolve({ total: table.rows.length, matched: rows.length, offset: state.offset, limit: state.limit,
                    sort: names[i], descending: state.desc, columns: columns,
                    rows: rows.slice(state.offset, state.offset + state.limit) });
        });
      },
      metric: function (name, trials) {
        var all = payload.metrics[name] || {};
        return Promise.resolve({
          name: name,
          series: trials.filter(function (t) { return all[t]; })
            .map(function (t) { return { trial: t, x: all[t][0], y: all[t][1] }; }),
          missing: trials.filter(function (t) { return !all[t]; })
        });
      },
      parallel: function (filter) {
        return new Promise(function (resolve) {
          var rows = filtered(filter);
          var status = names.indexOf("Status");
          var keep = table.columns.map(function (c, k) { return c.kind === "parameter" ? k : -1; })
            .filter(function (k) { return k >= 0; }).concat([names.indexOf("Result")]);
          var done = rows.filter(function (r) { return r[status] === "finished"; });
          resolve({ columns: keep.map(function (k) { return names[k]; }),
                    trials: done.map(function (r) { return r[0]; }),
                    rows: done.map(function (r) { return keep.map(function (k) { return r[k]; }); }) });
        });
      },
      rowsById: function (ids) {
        var wanted = new Set(ids);
        return table.rows.filter(function (r) { return wanted.has(r[0]); });
      },
      columns: table.columns
    };
  }

  // ---- the filter language (mirror of dashboard/query.py) ------------------------------
  function compileFilter(text, names) {
    var re = /\s+|(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(`[^`]*`)|(==|!=|<=|>=|<|>|=)|([()])|([A-Za-z_\u00C0-\uFFFF][\w.\u00C0-\uFFFF]*)/y;
    var tokens = [], pos = 0, m;
    while (pos < text.length) {
      re.lastIndex = pos;
      m = re.exec(text);
      if (!m) throw new Error("Filter: unexpected '" + text[pos] + "' at position " + (pos + 1));
      pos = re.lastIndex;
      if (m[1] !== undefined) tokens.push(["num", parseFloat(m[1])]);
      else if (m[2] !== undefined) tokens.push(["lit", m[2].slice(1, -1).replace(/\\(.)/g, "$1")]);
      else if (m[3] !== undefined) tokens.push(["name", m[3].slice(1, -1)]);
      else if (m[4] !== undefined) tokens.push(["op", m[4] === "=" ? "==" : m[4]]);
      else if (m[5] !== undefined) tokens.push([m[5], m[5]]);
      else if (m[6] !== undefined) {
        var w = m[6].toLowerCase();
        if (w === "and" || w === "or" || w === "not") tokens.push([w, w]);
        else if (w === "true" || w === "false") tokens.push(["lit", w === "true"]);
        else if (w === "none" || w === "null") tokens.push(["lit", null]);
        else tokens.push(["name", m[6]]);
      }
    }
    var i = 0;
    function peek() { return i < tokens.length ? tokens[i][0] : null; }
    function fail(what) { throw new Error("Filter: expected " + what + (i < tokens.length ? ", found '" + tokens[i][1] + "'" : " at the end")); }
    function column(name) {
      var k = names.indexOf(name);
      if (k < 0) k = names.map(function (n) { return n.toLowerCase(); }).indexOf(name.toLowerCase());
      if (k < 0) throw new Error("Filter: no column '" + name + "'");
      return function (row) { return row[k]; };
    }
    function truthy(v) { return v !== null && v !== undefined && v !== false && v !== 0 && v !== "" && v === v; }
    function operand() {
      var t = peek();
      if (t === "(") { i++; var e = expr(); if (peek() !== ")") fail("')'"); i++; return e; }
      if (t === "num" || t === "lit") { var v = tokens[i++][1]; return function () { return v; }; }
      if (t === "name") return column(tokens[i++][1]);
      fail("a name, a number or a quoted text");
    }
    function cmp(op, a, b) {
      if (a === null || a === undefined || b === null || b === undefined) {
        return op === "==" ? (a == null) === (b == null) : op === "!=" ? (a == null) !== (b == null) : false;
      }
      if (typeof a !== typeof b) return op === "!=";
      switch (op) {
        case "==": return a === b; case "!=": return a !== b; case "<": return a < b;
        case "<=": return a <= b; case ">": return a > b; default: return a >= b;
      }
    }
    function comparison() {
      var left = operand();
      if (peek() === "op") {
        var op = tokens[i++][1], right = operand();
        return function (row) { return cmp(op, left(row), right(row)); };
      }
      return function (row) { return truthy(left(row)); };
    }
    function not() {
      if (peek() === "not") { i++; var inner = not(); return function (row) { return !inner(row); }; }
      return comparison();
    }
    function and() {
      var left = not();
      while (peek() === "and") { i++; left = (function (l, r) { return function (row) { return l(row) && r(row); }; })(left, not()); }
      return left;
    }
    function expr() {
      var left = and();
      while (peek() === "or") { i++; left = (function (l, r) { return function (row) { return l(row) || r(row); }; })(left, and()); }
      return left;
    }
    var compiled = expr();
    if (i !== tokens.length) fail("'and', 'or' or the end");
    return compiled;
  }

  // ---- charts --------------------------------------------------------------------------
  function drawChart(container, title, series) {
    container.textContent = "";
    if (!series.length) {
      container.append(h("p", { class: "muted", text: "No points of " + title + " in these trials." }));
      return null;
    }
    var data = uPlot.join(series.map(function (s) { return [s.x, s.y]; }));
    var opts = {
      title: title, width: Math.max(320, container.clientWidth || 640), height: 300,
      scales: { x: { time: false } },
      series: [{ label: "epoch" }].concat(series.map(function (s, k) {
        return { label: "trial " + s.trial, stroke: COLORS[k % COLORS.length], width: 1.5, spanGaps: true,
                 points: { show: false } };
      })),
      legend: { live: true }
    };
    var plot = new uPlot(opts, data, container);
    container.setAttribute("data-drawn", String(series.length));
    container.setAttribute("data-drawn-at", String(Math.round(performance.now())));
    return plot;
  }

  function metricChart(source, select, container, trialsOf) {
    function draw() {
      var trials = trialsOf();
      if (!select || !trials.length) {
        container.textContent = "";
        container.append(h("p", { class: "muted", text: "Select trials to draw their metrics." }));
        return;
      }
      var name = select.value;
      source.metric(name, trials).then(function (res) { drawChart(container, name, res.series); })
        .catch(function (err) { container.textContent = ""; container.append(h("p", { class: "filter-error", text: err.message })); });
    }
    if (select) select.addEventListener("change", draw);
    return draw;
  }

  // ---- parallel coordinates --------------------------------------------------------------
  function drawParallel(canvas, res) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 600, height = canvas.clientHeight || 320;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, sans-serif";
    var columns = res.columns, rows = res.rows;
    var axes = columns.map(function (name, k) {
      var values = rows.map(function (r) { return r[k]; }).filter(function (v) { return v !== null && v !== undefined; });
      var numeric = values.length && values.every(function (v) { return typeof v === "number"; });
      if (numeric) {
        var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
        return { name: name, at: function (v) { return hi === lo ? 0.5 : (v - lo) / (hi - lo); }, lo: fmt(lo), hi: fmt(hi), used: true };
      }
      var cats = Array.from(new Set(values.map(fmt))).sort();
      return { name: name, at: function (v) { return cats.length < 2 ? 0.5 : cats.indexOf(fmt(v)) / (cats.length - 1); },
               lo: cats[0] || "", hi: cats[cats.length - 1] || "", used: values.length > 0 };
    }).filter(function (a) { return a.used; });
    if (!rows.length || axes.length < 2) {
      ctx.fillStyle = "#66707c";
      ctx.fillText(rows.length ? "Needs a parameter and a numeric result." : "No finished trials match.", 12, 24);
      return;
    }
    var left = 40, right = width - 60, top = 34, bottom = height - 26;
    var step = axes.length > 1 ? (right - left) / (axes.length - 1) : 0;
    var resultAxis = axes[axes.length - 1];
    var kept = columns.map(function (name) { return axes.findIndex(function (a) { return a.name === name; }); });
    ctx.globalAlpha = Math.max(0.15, Math.min(0.8, 30 / rows.length));
    ctx.lineWidth = 1.2;
    rows.forEach(function (row) {
      var result = row[row.length - 1];
      var t = result === null || typeof result !== "number" ? 0.5 : resultAxis.at(result);
      ctx.strokeStyle = "hsl(" + Math.round(220 - 200 * t) + ",70%,45%)";
      ctx.beginPath();
      var first = true;
      kept.forEach(function (a, k) {
        if (a < 0 || row[k] === null || row[k] === undefined) { first = true; return; }
        var x = left + a * step, y = bottom - axes[a].at(row[k]) * (bottom - top);
        if (first) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        first = false;
      });
      ctx.stroke();
    });
    ctx.globalAlpha = 1;
    ctx.strokeStyle = "#1d232b";
    ctx.fillStyle = "#1d232b";
    ctx.textAlign = "center";
    axes.forEach(function (a, k) {
      var x = left + k * step;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillText(a.name.length > 18 ? a.name.slice(0, 17) + "…" : a.name, x, 14);
      ctx.fillStyle = "#66707c";
      ctx.fillText(a.hi, x, top - 6);
      ctx.fillText(a.lo, x, bottom + 16);
      ctx.fillStyle = "#1d232b";
    });
    canvas.setAttribute("data-drawn", String(rows.length));
  }

  // ---- runs table ------------------------------------------------------------------------
  function RunsTable(source, options) {
    var state = { filter: options.filter || "", sort: "Trial", desc: true, offset: 0, limit: 100 };
    var selected = new Set();
    var onlyVarying = $("only-varying");
    var table = $("runs"), count = $("runs-count"), error = $("filter-error");
    var last = null, renders = 0;
    var listeners = [];

    function changed() { listeners.forEach(function (f) { f(); }); }

    function cell(column, value) {
      var td = h("td", { class: typeof value === "number" ? "num" : "" });
      if (column.kind === "id" && options.trialHref) td.append(h("a", { href: options.trialHref(value), text: String(value) }));
      else if (column.kind === "status") td.append(h("span", { class: "status status-" + value, text: fmt(value) }));
      else td.textContent = fmt(value);
      td.title = fmt(value);
      return td;
    }

    function render(res) {
      last = res;
      var shown = res.columns.map(function (c, k) { return [c, k]; })
        .filter(function (p) { return !onlyVarying.checked || p[0].varying; });
      var head = h("tr", {}, [h("th", { text: "" })].concat(shown.map(function (p) {
        var c = p[0];
        var cls = "sortable" + (res.sort === c.name ? (res.descending ? " sorted-desc" : " sorted-asc") : "");
        var title = c.kind === "metric" ? (c.direction === "last" ? "last value saved" : "best value (" + c.direction + ")") : c.kind;
        return h("th", { class: cls, title: title, "data-column": c.name, text: c.name, onclick: function () {
          state.desc = state.sort === c.name ? !state.desc : c.name === "Trial";
          state.sort = c.name; state.offset = 0; load();
        } });
      })));
      table.tHead.replaceChildren(head);
      table.tBodies[0].replaceChildren.apply(table.tBodies[0], res.rows.map(function (row) {
        var id = row[0];
        var box = h("input", { type: "checkbox", "aria-label": "select trial " + id, checked: selected.has(id),
          onchange: function () { if (box.checked) selected.add(id); else selected.delete(id); tr.classList.toggle("selected", box.checked); changed(); } });
        var tr = h("tr", { class: selected.has(id) ? "selected" : "", "data-trial": String(id) },
                   [h("td", {}, [box])].concat(shown.map(function (p) { return cell(p[0], row[p[1]]); })));
        return tr;
      }));
      var end = Math.min(res.offset + res.rows.length, res.matched);
      count.textContent = res.matched ? "Trials " + (res.offset + 1) + "–" + end + " of " + res.matched +
        (res.matched !== res.total ? " matching (" + res.total + " in all)" : "") : "No trial matches (" + res.total + " in all)";
      $("prev-page").disabled = res.offset === 0;
      $("next-page").disabled = end >= res.matched;
      if (!document.body.hasAttribute("data-first-paint")) {  // ms since navigation began (benchmarks)
        document.body.setAttribute("data-first-paint", String(Math.round(performance.now())));
      }
      renders += 1;
      document.body.setAttribute("data-table-ready", String(renders));  // for tests and benchmarks
      changed();
    }

    function load() {
      error.textContent = "";
      return source.runs(state).then(function (res) {
        render(res);
        if (res.building) setTimeout(load, 400);  // the newest trials now, the whole table when built
      }).catch(function (err) { error.textContent = err.message; });
    }

    $("runs-form").addEventListener("submit", function (event) {
      event.preventDefault();
      state.filter = $("filter").value;
      state.offset = 0;
      load();
      if (options.onFilter) options.onFilter(state.filter);
    });
    onlyVarying.addEventListener("change", function () { if (last) render(last); });
    $("prev-page").addEventListener("click", function () { state.offset = Math.max(0, state.offset - state.limit); load(); });
    $("next-page").addEventListener("click", function () { state.offset += state.limit; load(); });

    return {
      load: load,
      selected: function () { return Array.from(selected).sort(function (a, b) { return a - b; }); },
      visible: function () { return last ? last.rows.map(function (r) { return r[0]; }) : []; },
      onChange: function (f) { listeners.push(f); },
      filter: function () { return state.filter; }
    };
  }

  function initRuns(source, options) {
    var runs = RunsTable(source, options);
    var select = $("metric-select"), chart = $("chart"), canvas = $("parallel");
    var chartTrials = function () {
      var chosen = runs.selected();
      return chosen.length ? chosen : runs.visible().slice(0, 5);
    };
    var redraw = chart ? metricChart(source, select, chart, chartTrials) : function () {};
    var parallel = function (filter) {
      source.parallel(filter).then(function (res) { drawParallel(canvas, res); }).catch(function () {});
    };
    var lastKey = "";
    runs.onChange(function () {
      var key = chartTrials().join(",") + "|" + (select ? select.value : "");
      if (key !== lastKey) { lastKey = key; redraw(); }
      if (options.onSelection) options.onSelection(runs.selected());
    });
    options.onFilter = parallel;
    runs.load().then(function () { parallel(runs.filter()); });
    return runs;
  }

  function initLiveRuns() {
    var source = apiSource(DATA.api);
    var button = $("compare-selected");
    initRuns(source, {
      filter: DATA.filter,
      trialHref: function (id) { return "/experiment/" + encodeURIComponent(DATA.experiment) + "/trial/" + id; },
      onSelection: function (ids) {
        button.classList.toggle("disabled", ids.length < 2);
        button.href = ids.length < 2 ? "#" : "/experiment/" + encodeURIComponent(DATA.experiment) + "/compare?" + query({ trial: ids });
        button.textContent = "Compare selected (" + ids.length + ")";
      }
    });
  }

  function initReport() {
    var source = reportSource(DATA);
    var panel = $("compare-panel"), button = $("compare-selected"), onlyDiff = $("only-differences");
    var chosen = [];
    function renderCompare() {
      var rows = source.rowsById(chosen);
      var columns = source.columns;
      var tableEl = $("compare-table");
      var head = h("tr", {}, [h("th", { text: "" })].concat(rows.map(function (r) { return h("th", { text: "Trial " + r[0] }); })));
      var body = columns.slice(1).map(function (c, k) {
        var values = rows.map(function (r) { return fmt(r[k + 1]); });
        var differs = new Set(values).size > 1;
        return h("tr", { class: differs ? "differs" : "same" },
                 [h("th", { text: c.name })].concat(values.map(function (v) { return h("td", { text: v }); })));
      });
      tableEl.replaceChildren.apply(tableEl, [h("thead", {}, [head]), h("tbody", {}, body)]);
      tableEl.classList.toggle("only-diff", onlyDiff.checked);
      panel.hidden = false;
      panel.scrollIntoView();
    }
    onlyDiff.addEventListener("change", function () { $("compare-table").classList.toggle("only-diff", onlyDiff.checked); });
    button.addEventListener("click", renderCompare);
    initRuns(source, {
      filter: "",
      onSelection: function (ids) {
        chosen = ids;
        button.disabled = ids.length < 2;
        button.textContent = "Compare selected (" + ids.length + ")";
      }
    });
  }

  function initChartsOnly() {
    var source = apiSource(DATA.api);
    var select = $("metric-select"), chart = $("chart");
    if (!chart) return;
    if (!select) {  // the metric page: one metric, given
      source.metric(DATA.metrics[0], DATA.trials).then(function (res) {
        drawChart(chart, DATA.metrics[0], res.series);
        if (res.missing.length) $("chart-note").textContent = "No points in trial(s) " + res.missing.join(", ") + ".";
      }).catch(function (err) { chart.append(h("p", { class: "filter-error", text: err.message })); });
      return;
    }
    metricChart(source, select, chart, function () { return DATA.trials; })();
  }

  function initCompare() {
    var onlyDiff = $("only-differences");
    onlyDiff.addEventListener("change", function () { $("compare-table").classList.toggle("only-diff", onlyDiff.checked); });
    initChartsOnly();
  }

  if (PAGE === "runs") initLiveRuns();
  else if (PAGE === "report") initReport();
  else if (PAGE === "compare") initCompare();
  else if (PAGE === "trial" || PAGE === "metric") initChartsOnly();
})();
