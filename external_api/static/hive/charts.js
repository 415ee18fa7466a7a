// Agent Hive dashboard: per pool, a chart of its instances (desired and online), queued and running
// tasks over the last hour, with its scaling decisions marked; and the alerts panel.
//
// Data: /dashboard/series/ (the pool samples the monitoring beat records, and the scaling decisions)
// and /api/v1/alerts/, both with the session. Kept current by the event stream, which dashboard.js
// relays as `hive:event` DOM events (pool.scaled, task.*, agent.* redraw the charts; alert.* the
// panel), and by a refresh every monitoring interval. Charts are drawn by uPlot (vendor/uplot, MIT).
(() => {
  "use strict";

  const MINUTES = 60;
  const MAX_ALERTS = 20;
  const HEIGHT = 170;
  const COLOURS = { desired: "#6b7380", online: "#0b5cad", queued: "#b7791f", running: "#17803d", mark: "#b42318" };

  const charts = new Map(); // pool name -> { figure, plot, decisions, range }
  let refreshEvery = 30000;
  let periodic = null;

  const { $, el } = window.hiveDom; // dashboard.js

  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) {
      window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.json();
  }

  function note(selector, text) {
    const box = $(selector);
    box.textContent = text || "";
    box.hidden = !text;
  }

  // --- charts ------------------------------------------------------------------------------------
  function since(seconds) {
    const minutes = Math.round((Date.now() / 1000 - seconds) / 60);
    return minutes < 1 ? "just now" : `${minutes}m ago`;
  }

  // Vertical marks where the scaler changed the pool's desired size, labelled "1→2".
  function markDecisions(u, entry) {
    const ctx = u.ctx;
    const { top, height } = u.bbox;
    const ratio = uPlot.pxRatio || 1;
    ctx.save();
    ctx.strokeStyle = COLOURS.mark;
    ctx.fillStyle = COLOURS.mark;
    ctx.lineWidth = 1.5 * ratio;
    ctx.setLineDash([4 * ratio, 3 * ratio]);
    ctx.font = `${10 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const decision of entry.decisions) {
      if (decision.t < entry.range[0] || decision.t > entry.range[1]) continue;
      const x = Math.round(u.valToPos(decision.t, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.fillText(`${decision.previous}→${decision.desired}`, x + 3 * ratio, top + 2 * ratio);
    }
    ctx.restore();
  }

  function chartOptions(entry, width) {
    const stepped = uPlot.paths.stepped({ align: 1 });
    return {
      width,
      height: HEIGHT,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, auto: false, range: () => entry.range },
        y: { auto: true, range: (u, min, max) => [0, Math.max(2, Math.ceil(max * 1.15))] },
      },
      axes: [{ stroke: "#6b7380" }, { stroke: "#6b7380", size: 36 }],
      series: [
        {},
        { label: "desired", stroke: COLOURS.desired, width: 2, dash: [6, 4], paths: stepped },
        { label: "online", stroke: COLOURS.online, width: 2, paths: stepped },
        { label: "queued", stroke: COLOURS.queued, width: 1.5, fill: "rgba(183,121,31,0.08)" },
        { label: "running", stroke: COLOURS.running, width: 1.5 },
      ],
      hooks: { draw: [(u) => markDecisions(u, entry)] },
    };
  }

  function caption(pool, samples) {
    const last = samples.t.length - 1;
    const now = last >= 0
      ? `${samples.online[last]} online of ${samples.desired[last]} wanted, ${samples.queued[last]} queued, ${samples.running[last]} running`
      : "no samples yet";
    const decision = pool.decisions[pool.decisions.length - 1];
    const scaled = decision ? ` · scaled ${decision.previous}→${decision.desired} ${since(decision.t)}` : "";
    return `${now}${scaled}`;
  }

  function drawPool(pool, body) {
    const samples = pool.samples;
    const data = [samples.t, samples.desired, samples.online, samples.queued, samples.running];
    let entry = charts.get(pool.pool);
    if (!entry) {
      const figure = el("figure", { class: "pool-chart", dataset: { pool: pool.pool } },
        el("figcaption", {}, el("strong", {}, pool.pool), " ", el("span", { class: "now" })),
        el("div", { class: "plot" }));
      $("#charts").append(figure);
      entry = { figure, plot: null, decisions: [], range: [body.since, body.now] };
      charts.set(pool.pool, entry);
    }
    entry.decisions = pool.decisions;
    entry.range = [body.since, body.now];
    const width = Math.max(260, entry.figure.clientWidth - 4);
    if (!entry.plot) entry.plot = new uPlot(chartOptions(entry, width), data, entry.figure.querySelector(".plot"));
    else entry.plot.setData(data);
    Object.assign(entry.figure.dataset, { points: String(samples.t.length), decisions: String(pool.decisions.length) });
    entry.figure.querySelector(".now").textContent = caption(pool, samples);
    entry.figure.title = pool.decisions.map((d) => `${new Date(d.t * 1000).toLocaleTimeString()} ${d.previous}→${d.desired}: ${d.reason}`).join("\n");
  }

  async function loadSeries() {
    try {
      const body = await getJSON(`/dashboard/series/?minutes=${MINUTES}`);
      refreshEvery = Math.max(5000, body.interval * 1000);
      const names = new Set(body.pools.map((p) => p.pool));
      for (const [name, entry] of charts) {
        if (names.has(name)) continue;
        if (entry.plot) entry.plot.destroy();
        entry.figure.remove();
        charts.delete(name);
      }
      // The window starts at the hour's first sample (at least a minute back), so a hive that
      // started a moment ago fills its charts instead of drawing at their right edge.
      const first = Math.min(...body.pools.map((p) => (p.samples.t.length ? p.samples.t[0] : Infinity)));
      const start = Math.min(Math.max(body.since, Number.isFinite(first) ? first : body.since), body.now - 60);
      const span = { ...body, since: start };
      for (const pool of body.pools) drawPool(pool, span);
      $("#charts-window").textContent = `last ${Math.max(1, Math.round((body.now - start) / 60))} min`;
      note("#charts-note", body.enabled ? "" : "performance monitoring is off (external_api.performance_monitoring.enabled): no samples are recorded");
    } catch (err) {
      note("#charts-note", `could not load the pools' history: ${err.message}`);
    }
    schedule();
  }

  function schedule() {
    clearTimeout(periodic);
    periodic = setTimeout(loadSeries, refreshEvery);
  }

  // --- alerts ------------------------------------------------------------------------------------
  function alertNode(alert) {
    const when = alert.resolved_at
      ? `resolved ${new Date(alert.resolved_at).toLocaleTimeString()}`
      : `since ${new Date(alert.raised_at).toLocaleTimeString()}`;
    return el("li", { class: `alert level-${alert.level} status-${alert.status}`,
                      dataset: { alertId: alert.id, subject: alert.subject, level: alert.level, status: alert.status } },
      el("span", { class: "level" }, alert.status === "active" ? alert.level : "resolved"),
      el("span", { class: "subject" }, alert.subject),
      el("span", { class: "message" }, alert.resolved_at ? alert.resolution : alert.message),
      alert.recommendation && !alert.resolved_at ? el("span", { class: "advice" }, alert.recommendation) : null,
      el("time", { datetime: alert.resolved_at || alert.raised_at }, when));
  }

  async function loadAlerts() {
    try {
      const alerts = await getJSON(`/api/v1/alerts/?limit=${MAX_ALERTS}`);
      alerts.sort((a, b) => (a.status !== "active") - (b.status !== "active") || String(b.raised_at).localeCompare(String(a.raised_at)));
      const active = alerts.filter((a) => a.status === "active").length;
      $("#alerts").replaceChildren(...alerts.map(alertNode));
      $("#alert-count").textContent = active ? `${active} active` : "none active";
      $("#alerts-panel").classList.toggle("alerting", active > 0);
      note("#alerts-note", alerts.length ? "" : "no alerts");
    } catch (err) {
      note("#alerts-note", `could not load the alerts: ${err.message}`);
    }
  }

  // --- live ----------------------------------------------------------------------------------------
  const timers = {};
  function soon(name, fn, delay) {
    if (timers[name]) return;
    timers[name] = setTimeout(() => { timers[name] = null; fn(); }, delay);
  }

  document.addEventListener("hive:event", (e) => {
    const type = e.detail.type || "";
    if (type.startsWith("alert.")) soon("alerts", loadAlerts, 300);
    if (type === "pool.scaled" || type === "pool.resized" || type.startsWith("task.") || type.startsWith("agent.")) {
      soon("series", loadSeries, type === "pool.scaled" ? 300 : 3000);
    }
  });

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const entry of charts.values()) if (entry.plot) entry.plot.setSize({ width: Math.max(260, entry.figure.clientWidth - 4), height: HEIGHT });
    }, 200);
  });

  document.addEventListener("DOMContentLoaded", () => {
    loadSeries();
    loadAlerts();
    setInterval(loadAlerts, 60000); // alert events keep it current; this catches a missed one
  });
})();
