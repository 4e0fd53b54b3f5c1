// blast's HTML report: builds the page from the run's data (the JSON in
// #blast-data) and draws its charts with uPlot, which the page embeds.
// Every piece of run data reaches the page through textContent, never as
// markup.
(function () {
  "use strict";

  const root = document.getElementById("report");

  function showError(message) {
    let banner = document.getElementById("report-error");
    if (!banner) {
      banner = document.createElement("p");
      banner.id = "report-error";
      document.body.insertBefore(banner, document.body.firstChild);
    }
    banner.textContent = "This report could not be drawn completely: " + message;
  }
  window.addEventListener("error", function (e) {
    showError(e.message);
  });

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function section(title) {
    const s = el("section");
    s.appendChild(el("h2", null, title));
    root.appendChild(s);
    return s;
  }

  function table(parent, header, rows, numericFrom) {
    const t = el("table");
    const head = el("tr");
    header.forEach(function (h, i) {
      head.appendChild(el("th", i >= numericFrom ? "num" : null, h));
    });
    t.appendChild(el("thead")).appendChild(head);
    const body = el("tbody");
    rows.forEach(function (row) {
      const tr = el("tr", row.className || null);
      row.cells.forEach(function (c, i) {
        tr.appendChild(el("td", i >= numericFrom ? "num" : null, c));
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
    parent.appendChild(t);
    return t;
  }

  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v < 10) return v.toFixed(2);
    if (v < 100) return v.toFixed(1);
    return v.toFixed(0);
  }
  function rate(v) {
    return v === null || v === undefined ? "–" : v.toFixed(1);
  }
  function percent(part, whole) {
    return whole === 0 ? "0.00%" : ((part * 100) / whole).toFixed(2) + "%";
  }
  function when(unixMs) {
    return new Date(unixMs).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  function seconds(s) {
    if (s === null || s === undefined) return "n/a";
    const whole = Math.round(s);
    const m = Math.floor(whole / 60);
    return (m > 0 ? m + " min " : "") + (whole % 60) + " s";
  }

  let data;
  try {
    data = JSON.parse(document.getElementById("blast-data").textContent);
  } catch (e) {
    showError("its data does not parse (" + e + ")");
    return;
  }
  const s = data.summary;
  const p = s.parameters;
  document.title = "blast report: " + p.scenario + " → " + p.host;

  const header = el("header");
  header.appendChild(el("h1", null, "blast report"));
  header.appendChild(
    el("p", "lead", p.scenario + " against " + p.host + ", started " + when(s.started_at_ms))
  );
  root.appendChild(header);
  if (s.stopped_early) {
    const banner = el("p", "stopped", "Stopped early: " + s.stop_reason);
    banner.id = "stopped-early";
    root.appendChild(banner);
  }

  const open = p.model === "open";
  const dropped = s.iterations.dropped;
  const late = s.health.lateness_ms;

  // Key figures.
  const failed = s.thresholds.filter(function (t) { return !t.passed; }).length;
  const figures = el("div", "figures");
  [
    ["requests", String(s.total.requests)],
    ["failures", s.total.failures + " (" + percent(s.total.failures, s.total.requests) + ")"],
    ["requests/s", rate(s.total.rps)],
    ["p95", ms(s.total.requests ? s.total.percentiles_ms["95"] : null) + " ms"],
    ["iterations", String(s.iterations.completed)],
  ].concat(open || dropped > 0 ? [["dropped iterations", String(dropped), dropped > 0]] : [])
   .concat(late ? [["generator lateness p99", ms(late.p99) + " ms"]] : [])
   .concat([
    ["thresholds", s.thresholds.length === 0 ? "none" :
      failed === 0 ? "all " + s.thresholds.length + " passed" : failed + " of " + s.thresholds.length + " failed",
      failed > 0],
    ["ended by", s.stop_reason + (s.stopped_early ? " (early)" : ""), s.stopped_early],
  ]).forEach(function (f) {
    const box = el("div", "figure" + (f[2] ? " bad" : ""));
    box.appendChild(el("div", "value", f[1]));
    box.appendChild(el("div", "label", f[0]));
    figures.appendChild(box);
  });
  root.appendChild(figures);

  // Parameters.
  const params = section("Run");
  function stages(list, unit) {
    if (list.length === 0) return "none";
    return list.map(function (st) { return seconds(st.duration_s) + " → " + st[unit] + (unit === "rate" ? "/s" : " users"); }).join(", ");
  }
  const load = [["load model", p.model + (open ? " (arrival rate)" : " (users)")]];
  if (p.load === "users") {
    load.push(["users", p.users], ["spawn rate", p.spawn_rate + " users/s"]);
  } else if (p.load === "stages") {
    load.push(["stages", stages(p.stages, "users")]);
  } else if (p.load === "rate") {
    load.push(["rate", p.rate + " iterations/s"], ["rate stages", stages(p.rate_stages, "rate")]);
  } else if (p.load === "shape") {
    load.push(["load", "the scenario's shape()"]);
  }
  if (open) {
    load.push(
      ["max users", p.max_users === null ? "default (10 s of arrivals at the peak rate, at least 100)" : p.max_users],
      ["max wait", p.max_wait_s + " s"],
      ["arrivals", p.arrivals]
    );
  }
  if (p.iterations !== null) load.push(["iterations", p.iterations]);
  if (p.iterations_per_user !== null) load.push(["iterations per user", p.iterations_per_user]);
  if (p.reset_stats) load.push(["reset stats", "once the ramp first reached its target"]);
  if (p.stop_on.length > 0) load.push(["stop on", p.stop_on.join("; ")]);
  table(params, ["Parameter", "Value"], [
    ["scenario", p.scenario],
    ["host", p.host],
  ].concat(load).concat([
    ["planned run time", p.planned],
    ["actual run time", seconds(s.duration_s)],
    ["stop reason", s.stop_reason + (s.stopped_early ? " (stopped early)" : "")],
    ["cores", p.cores + (p.pinned ? " (pinned)" : " (not pinned)")],
    ["request timeout", p.timeout_s + " s"],
    ["stop timeout", p.stop_timeout_s + " s"],
    ["seed", p.seed === null ? "random" : p.seed],
    ["started", when(s.started_at_ms)],
    ["ended", when(s.ended_at_ms)],
    ["blast", s.blast_version],
  ]).map(function (r) { return { cells: r }; }), 2);

  if (s.thresholds.length > 0) {
    const th = section("Thresholds");
    table(th, ["Verdict", "Threshold", "Measured"], s.thresholds.map(function (t) {
      let measured;
      if (t.measured === null) {
        measured = "no requests" + (t.endpoint ? " to " + t.endpoint : "");
      } else if (t.unit === "ms") {
        measured = ms(t.measured) + " ms";
      } else if (t.unit === "/s") {
        measured = t.measured.toFixed(2) + "/s";
      } else {
        measured = t.measured.toFixed(4);
      }
      return {
        className: t.passed ? "pass" : "fail",
        cells: [t.passed ? "PASS" : "FAIL", t.threshold, measured],
      };
    }), 3);
  }

  // Charts over time.
  const charts = section("Over time");
  const h = data.history;
  const colors = {
    rps: "#1f77b4",
    failures: "#d62728",
    p50: "#2ca02c",
    p95: "#ff7f0e",
    p99: "#9467bd",
    users: "#17becf",
    iterations: "#8c564b",
    dropped: "#e377c2",
    lateness: "#bcbd22",
  };
  const plots = [];
  function chart(id, title, yLabel, series, format) {
    const box = el("div", "chart");
    box.id = id;
    charts.appendChild(box);
    if (h.length === 0) {
      box.appendChild(el("p", "none", title + ": no report arrived during the run"));
      return;
    }
    const width = Math.max(480, Math.min(1200, charts.clientWidth || 960));
    const opts = {
      title: title,
      width: width,
      height: 240,
      scales: { x: { time: true } },
      series: [{ label: "time" }].concat(series.map(function (sr) {
        return {
          label: sr.label,
          stroke: sr.color,
          width: 2,
          spanGaps: sr.spanGaps === true,
          points: { show: h.length < 3 },
          value: function (u, v) { return v === null || v === undefined ? "–" : format(v); },
        };
      })),
      axes: [{}, { label: yLabel, size: 64 }],
    };
    const columns = [h.map(function (pt) { return pt.t; })].concat(series.map(function (sr) {
      return h.map(function (pt) { return pt[sr.key]; });
    }));
    plots.push(new uPlot(opts, columns, box));
  }
  chart("chart-rps", "Requests and failures per second (over the last 3 reports)", "per second", [
    { key: "rps", label: "requests/s", color: colors.rps },
    { key: "fail_rps", label: "failures/s", color: colors.failures },
  ], function (v) { return v.toFixed(1); });
  chart("chart-latency", "Response time percentiles (each report's requests)", "ms", [
    { key: "p50", label: "p50", color: colors.p50, spanGaps: true },
    { key: "p95", label: "p95", color: colors.p95, spanGaps: true },
    { key: "p99", label: "p99", color: colors.p99, spanGaps: true },
  ], ms);
  chart("chart-users", "Users", "users", [
    { key: "users", label: "users", color: colors.users },
  ], function (v) { return v.toFixed(0); });
  chart("chart-iterations", "Iterations per second (over the last 3 reports)", "per second", [
    { key: "iterations_rps", label: "completed/s", color: colors.iterations },
  ].concat(open || dropped > 0 ? [{ key: "dropped_rps", label: "dropped/s", color: colors.dropped }] : []),
  function (v) { return v.toFixed(1); });
  if (late) {
    chart("chart-lateness", "Generator lateness p99 (each report's scheduled starts)", "ms", [
      { key: "lateness_p99", label: "lateness p99", color: colors.lateness, spanGaps: true },
    ], ms);
  }
  window.addEventListener("resize", function () {
    const width = Math.max(480, Math.min(1200, charts.clientWidth || 960));
    plots.forEach(function (u) { u.setSize({ width: width, height: 240 }); });
  });

  // Tables.
  const all = s.endpoints.concat([s.total]);
  const requests = section("Requests");
  table(requests, ["Type", "Name", "# reqs", "# fails", "RPS", "fails/s", "Min ms", "Avg ms", "Max ms", "Avg size B"],
    all.map(function (e) {
      return {
        className: e === s.total ? "total" : null,
        cells: [e.method, e.name, e.requests, e.failures + " (" + percent(e.failures, e.requests) + ")",
          rate(e.rps), rate(e.failures_per_s), ms(e.min_ms), ms(e.avg_ms), ms(e.max_ms),
          e.avg_content_size.toFixed(0)],
      };
    }), 2);

  const labels = s.percentiles.map(function (q) { return String(q); });
  const pct = section("Response time percentiles (ms)");
  if (s.corrected) {
    pct.appendChild(el("p", "note",
      "Latencies are corrected for coordinated omission: a request that was due before it was sent " +
      "(an open-model iteration that waited for a free user, a paced user behind its schedule) is timed " +
      "from when it was due. The uncorrected rows time each request from when it was sent."));
  }
  function percentileCells(e, figures) {
    return labels.map(function (l) { return e.requests === 0 ? "–" : ms(figures.percentiles_ms[l]); });
  }
  const pctRows = [];
  all.forEach(function (e) {
    pctRows.push({
      className: e === s.total ? "total" : null,
      cells: [e.method, e.name].concat(percentileCells(e, e)),
    });
    if (s.corrected) {
      pctRows.push({
        className: "uncorrected" + (e === s.total ? " total" : ""),
        cells: ["", "↳ uncorrected"].concat(percentileCells(e, e.uncorrected)),
      });
    }
  });
  table(pct, ["Type", "Name"].concat(labels.map(function (l) { return "p" + l; })), pctRows, 2);

  if (s.failures.length > 0) {
    const f = section("Failures");
    table(f, ["Method", "Name", "Error", "Occurrences", "First seen", "Last seen"], s.failures.map(function (x) {
      return { cells: [x.method, x.name, x.error, x.occurrences, when(x.first_seen_ms), when(x.last_seen_ms)] };
    }), 3);
  }
  if (s.errors.length > 0) {
    const e = section("Script errors");
    table(e, ["Count", "Location", "Error", "First seen", "Last seen"], s.errors.map(function (x) {
      return { cells: [x.count, x.location, x.message, when(x.first_seen_ms), when(x.last_seen_ms)] };
    }), 5);
  }
  if (s.checks.length > 0) {
    const c = section("Checks");
    table(c, ["Check", "Passed", "Failed", "Pass rate"], s.checks.map(function (x) {
      return {
        className: x.failed > 0 ? "fail" : null,
        cells: [x.name, x.passed, x.failed, percent(x.passed, x.passed + x.failed)],
      };
    }), 1);
  }

  const health = section("Load generator");
  const notes = [
    "Iterations: " + s.iterations.completed + " completed" +
      (open || dropped > 0 ? ", " + dropped + " dropped" : "") + ".",
  ];
  if (dropped > 0) {
    notes.push("Dropped iterations were due but no user came free within the max wait: the target was too slow " +
      "for the arrival rate, or the user pool (max users) too small. They are not in the request figures.");
  }
  notes.push("Busiest shard: " + (s.health.max_busy * 100).toFixed(0) + "% busy at its peak; " +
    s.health.busy_reports + " reports over 90%.");
  if (s.health.generator_saturated) {
    notes.push("The load generator was saturated: it, not the target, may have limited the load. Use more cores or nodes.");
  }
  if (late) {
    notes.push("Generator lateness: how late scheduled starts began by the generator's own timers, over " +
      s.health.scheduled + " scheduled starts. High lateness means a saturated generator, not a slow target.");
  } else {
    notes.push("Generator lateness: nothing was scheduled (no arrival rate, no paced users).");
  }
  notes.forEach(function (n) { health.appendChild(el("p", null, n)); });
  if (late) {
    const lt = table(health, ["Generator lateness", "p50", "p90", "p99", "p99.9", "max"], [{
      cells: ["ms", ms(late.p50), ms(late.p90), ms(late.p99), ms(late["p99.9"]), ms(late.max)],
    }], 1);
    lt.id = "lateness";
  }
  s.warnings.forEach(function (w) { health.appendChild(el("p", null, "Warning: " + w)); });
  root.setAttribute("data-rendered", String(plots.length));
})();
